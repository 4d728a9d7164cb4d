//! `env watch`: `env sync` on every change of the source tree (files Git would snapshot),
//! once it has been quiet for a moment.

use std::path::Path;
use std::time::{Duration, Instant};

use super::open::load;
use super::steps::push::short;
use super::{EnvError, Settings};
use crate::ui::Progress;

/// The source tree as Git would snapshot it (honouring .gitignore): through the tree's own
/// repository, or, for a tree that is not in one, through a scratch repository, the way
/// `env sync` snapshots it.
pub struct SourceTree {
    source: std::path::PathBuf,
    scratch: Option<tempfile::TempDir>,
}

impl SourceTree {
    pub fn new(source: &Path) -> SourceTree {
        let in_repo = std::process::Command::new("git")
            .args(["rev-parse", "--is-inside-work-tree"])
            .current_dir(source)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let scratch = (!in_repo)
            .then(|| tempfile::tempdir().ok())
            .flatten()
            .filter(|dir| {
                std::process::Command::new("git")
                    .args(["init", "--quiet", "--bare"])
                    .arg(dir.path())
                    .status()
                    .is_ok_and(|s| s.success())
            });
        SourceTree {
            source: source.to_path_buf(),
            scratch,
        }
    }

    /// What the tree looks like, cheaply: every file Git would snapshot, with size and
    /// modification time.
    pub fn fingerprint(&self) -> Vec<(String, u64, u128)> {
        fingerprint(&self.source, self.scratch.as_ref().map(|d| d.path()))
    }
}

fn fingerprint(source: &Path, scratch_git_dir: Option<&Path>) -> Vec<(String, u64, u128)> {
    let mut git = std::process::Command::new("git");
    if let Some(git_dir) = scratch_git_dir {
        git.arg("--git-dir")
            .arg(git_dir)
            .arg("--work-tree")
            .arg(source);
    }
    let listed = git
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ])
        .current_dir(source)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            o.stdout
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
        });
    // Without git at all, every file counts.
    let files = listed.unwrap_or_else(|| {
        let mut all = Vec::new();
        walk(source, source, &mut all);
        all
    });
    let mut out: Vec<(String, u64, u128)> = files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(source.join(&f)).ok();
            let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            let mtime = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            (f, size, mtime)
        })
        .collect();
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if e.file_name() == ".git" {
            continue;
        }
        // A symlinked directory is not followed (a link to a parent would never end).
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.display().to_string());
        }
    }
}

/// Calls `sync_once` (an `env sync`, which the caller wires in; it returns the pushed commit)
/// on every change of the source tree, once it has been quiet for `debounce`; runs until
/// interrupted (or after `max_syncs`, for tests).
pub async fn watch<F, Fut>(
    settings: &Settings,
    name: &str,
    debounce: Duration,
    max_syncs: Option<usize>,
    progress: &Progress,
    mut sync_once: F,
) -> Result<usize, EnvError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, EnvError>>,
{
    let state = load(settings, name)?;
    let source = state.source.clone();
    let interrupted = super::interrupt_flag();
    let tree = SourceTree::new(&source);
    let mut seen = tree.fingerprint();
    let mut syncs = 0;
    progress.info(&format!(
        "watching {} (Ctrl-C stops); edits are pushed and reconciled",
        source.display()
    ));
    loop {
        if interrupted.load(std::sync::atomic::Ordering::SeqCst)
            || max_syncs.is_some_and(|m| syncs >= m)
        {
            return Ok(syncs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = tree.fingerprint();
        if now == seen {
            continue;
        }
        // Debounce: wait until the tree stops changing (an editor's save is several writes).
        let mut settled = now;
        loop {
            tokio::time::sleep(debounce).await;
            let again = tree.fingerprint();
            if again == settled {
                break;
            }
            settled = again;
        }
        seen = settled;
        let started = Instant::now();
        match sync_once().await {
            Ok(commit) => progress.info(&format!(
                "synced {} in {:.1}s",
                short(&commit),
                started.elapsed().as_secs_f64()
            )),
            Err(e) => progress.warn(&format!("sync failed: {e}")),
        }
        syncs += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_watch_sees_what_git_would_snapshot_in_a_tree_that_is_no_repository() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "*.tmp\nbuild/\n").unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a").unwrap();
        std::fs::write(dir.path().join("scratch.tmp"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("build")).unwrap();
        std::fs::write(dir.path().join("build/out"), "x").unwrap();
        let tree = SourceTree::new(dir.path());
        let names: Vec<String> = tree.fingerprint().into_iter().map(|f| f.0).collect();
        assert_eq!(names, [".gitignore", "a.yaml"]);
        // An ignored file's edit changes nothing; a tracked file's does.
        let before = tree.fingerprint();
        std::fs::write(dir.path().join("scratch.tmp"), "changed").unwrap();
        assert_eq!(tree.fingerprint(), before);
        std::fs::write(dir.path().join("a.yaml"), "changed").unwrap();
        assert_ne!(tree.fingerprint(), before);
    }

    /// A burst of edits inside the debounce window (an editor saving several files, a
    /// `git checkout`) is one sync, of the tree as the burst left it.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_watch_debounces_a_burst_of_edits_into_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("a.yaml"), "a").unwrap();
        let mut settings = Settings::from_vars(|_| None);
        settings.data_dir = dir.path().join("data");
        let state = serde_json::json!({
            "name": "w", "stamp": "sample", "stampDir": source.join("stamps/sample"),
            "source": source, "provider": "kind", "engine": "flux", "hold": false,
            "createdAt": "2026-11-29T00:00:00Z", "ports": {"http": 1, "https": 2},
        });
        let env_dir = settings.env_dir("w");
        std::fs::create_dir_all(&env_dir).unwrap();
        std::fs::write(env_dir.join("state.json"), state.to_string()).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<String>>::new()));
        let record = seen.clone();
        let tree_source = source.clone();
        let progress = crate::ui::Progress::with_mode(false, 0);
        let watching = tokio::spawn(async move {
            let settings = settings;
            watch(
                &settings,
                "w",
                Duration::from_millis(600),
                Some(2),
                &progress,
                move || {
                    let files = SourceTree::new(&tree_source)
                        .fingerprint()
                        .into_iter()
                        .map(|f| f.0)
                        .collect();
                    record.lock().unwrap().push(files);
                    async { Ok("0123456789abcdef".to_string()) }
                },
            )
            .await
        });
        // watch takes its first look within one poll; then three writes 100 ms apart.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for name in ["b.yaml", "c.yaml", "d.yaml"] {
            std::fs::write(source.join(name), name).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "watch never synced");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Well past another debounce: still the one sync, and it saw all three files.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        {
            let syncs = seen.lock().unwrap();
            assert_eq!(syncs.len(), 1, "{syncs:?}");
            assert_eq!(syncs[0], ["a.yaml", "b.yaml", "c.yaml", "d.yaml"]);
        }
        // A later edit is a second sync (and lets watch return).
        std::fs::write(source.join("e.yaml"), "e").unwrap();
        let syncs = tokio::time::timeout(Duration::from_secs(20), watching)
            .await
            .expect("watch did not return after two syncs")
            .unwrap()
            .unwrap();
        assert_eq!(syncs, 2);
    }
}
