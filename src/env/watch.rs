//! `env watch`: `env sync` on every change of what the engine sees, once the tree has been
//! quiet for a moment.
//!
//! It goes by the operating system's file events (inotify, FSEvents, kqueue through the `notify`
//! crate), so an idle watch costs nothing however large the tree. A change counts when the
//! snapshot push would carry it (not under `.git/`, not ignored by Git) and the engine would see
//! it (not excluded by the stamp's selective-sync patterns, Flux's GitRepository
//! `spec.ignore`). `--poll` falls back to comparing the tree every 200 ms, for file systems that
//! deliver no events (some network and VM-shared mounts).

use std::path::{Path, PathBuf};
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
        fingerprint(&self.source, self.git())
    }

    /// git, run in the tree, through the scratch repository when the tree is in none.
    fn git(&self) -> std::process::Command {
        let mut git = std::process::Command::new("git");
        if let Some(git_dir) = self.scratch.as_ref().map(|d| d.path()) {
            git.arg("--git-dir")
                .arg(git_dir)
                .arg("--work-tree")
                .arg(&self.source);
        }
        git.current_dir(&self.source);
        git
    }

    /// Whether any of these paths (under `root`, the tree's own directory) is one Git would
    /// snapshot: not ignored, or tracked. When git cannot tell, it counts.
    pub fn any_not_ignored(&self, root: &Path, paths: &[PathBuf]) -> bool {
        use std::io::Write as _;
        let relative: Vec<&Path> = paths
            .iter()
            .filter_map(|p| p.strip_prefix(root).ok())
            .collect();
        let mut input = Vec::new();
        for rel in &relative {
            input.extend_from_slice(rel.as_os_str().as_encoded_bytes());
            input.push(0);
        }
        let child = self
            .git()
            .args(["check-ignore", "--stdin", "-z"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut child) = child else { return true };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&input);
        }
        let Ok(out) = child.wait_with_output() else {
            return true;
        };
        // 0: some are ignored (listed); 1: none is; anything else: git could not tell.
        match out.status.code() {
            Some(1) => true,
            Some(0) => {
                let ignored: std::collections::HashSet<&[u8]> =
                    out.stdout.split(|b| *b == 0).collect();
                relative
                    .iter()
                    .any(|rel| !ignored.contains(rel.as_os_str().as_encoded_bytes()))
            }
            _ => true,
        }
    }
}

fn fingerprint(source: &Path, mut git: std::process::Command) -> Vec<(String, u64, u128)> {
    let listed = git
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ])
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

/// What `env watch` watches: the tree kindling pushes, and the stamp's selective-sync patterns.
pub struct WatchedTree {
    pub root: PathBuf,
    /// gitignore syntax, relative to `root`.
    pub ignore: Vec<String>,
}

/// How changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// The operating system's file events.
    Events,
    /// A comparison of the tree every 200 ms.
    Poll,
}

/// Calls `sync_once` (an `env sync`, which the caller wires in; it returns the pushed commit)
/// on every change of the env's tree that the engine would see, once it has been quiet for
/// `debounce`; runs until interrupted (or after `max_syncs`, for tests).
pub async fn watch<F, Fut>(
    settings: &Settings,
    name: &str,
    debounce: Duration,
    mode: WatchMode,
    max_syncs: Option<usize>,
    progress: &Progress,
    sync_once: F,
) -> Result<usize, EnvError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, EnvError>>,
{
    let state = load(settings, name)?;
    let stamp = super::open::stamp_of(&settings.data_dir, &state)?;
    let tree = WatchedTree {
        root: stamp.repo_root.clone(),
        ignore: stamp.ignore.clone(),
    };
    let interrupted = super::interrupt_flag();
    let stop = move || interrupted.load(std::sync::atomic::Ordering::SeqCst);
    watch_tree(&tree, debounce, mode, max_syncs, progress, stop, sync_once).await
}

/// [`watch`] on a tree, with the stop condition given: the loop itself, which the benchmark
/// drives without an env.
pub async fn watch_tree<F, Fut>(
    tree: &WatchedTree,
    debounce: Duration,
    mode: WatchMode,
    max_syncs: Option<usize>,
    progress: &Progress,
    stop: impl Fn() -> bool,
    mut sync_once: F,
) -> Result<usize, EnvError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, EnvError>>,
{
    let mut changes = match mode {
        WatchMode::Events => match Changes::events(tree) {
            Ok(events) => events,
            Err(e) => {
                // inotify's watch limit (fs.inotify.max_user_watches) is the usual cause.
                progress.warn(&format!(
                    "cannot watch {} for file events ({e}); comparing the tree every 200 ms instead",
                    tree.root.display()
                ));
                Changes::poll(tree)
            }
        },
        WatchMode::Poll => Changes::poll(tree),
    };
    let mut syncs = 0;
    progress.info(&format!(
        "watching {} (Ctrl-C stops); edits are pushed and reconciled",
        tree.root.display()
    ));
    loop {
        if stop() || max_syncs.is_some_and(|m| syncs >= m) {
            return Ok(syncs);
        }
        if !changes.next(debounce, &stop).await {
            continue;
        }
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

/// The source of "the tree changed": file events, or a comparison of fingerprints.
enum Changes {
    Events {
        // Kept alive: dropping it stops the events.
        _watcher: notify::RecommendedWatcher,
        events: tokio::sync::mpsc::UnboundedReceiver<Vec<PathBuf>>,
        filter: EngineView,
    },
    Poll {
        view: EngineView,
        seen: Vec<(String, u64, u128)>,
    },
}

impl Changes {
    fn events(tree: &WatchedTree) -> Result<Changes, notify::Error> {
        use notify::Watcher as _;
        // Events name the real path (FSEvents resolves /var to /private/var): so does the filter.
        let tree = &WatchedTree {
            root: std::fs::canonicalize(&tree.root).unwrap_or_else(|_| tree.root.clone()),
            ignore: tree.ignore.clone(),
        };
        let (send, events) = tokio::sync::mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                // Reads are no change (and the push itself reads the tree).
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                let _ = send.send(event.paths);
            })?;
        watcher.watch(&tree.root, notify::RecursiveMode::Recursive)?;
        Ok(Changes::Events {
            _watcher: watcher,
            events,
            filter: EngineView::new(tree),
        })
    }

    fn poll(tree: &WatchedTree) -> Changes {
        let view = EngineView::new(tree);
        let seen = view.fingerprint();
        Changes::Poll { view, seen }
    }

    /// Waits for a change, then for the tree to be quiet for `debounce` (an editor's save is
    /// several writes; a `git checkout` many). True when something the engine sees changed;
    /// false when `stop` said so, or when everything that changed is ignored.
    async fn next(&mut self, debounce: Duration, stop: &impl Fn() -> bool) -> bool {
        match self {
            Changes::Events { events, filter, .. } => {
                let mut changed: Vec<PathBuf> = Vec::new();
                // The first relevant event; the stop flag is looked at between events.
                while changed.is_empty() {
                    if stop() {
                        return false;
                    }
                    match tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
                        Ok(Some(paths)) => changed.extend(filter.candidates(paths)),
                        Ok(None) => return false,
                        Err(_) => {}
                    }
                }
                // Then quiet for `debounce`.
                while let Ok(Some(paths)) = tokio::time::timeout(debounce, events.recv()).await {
                    changed.extend(filter.candidates(paths));
                }
                filter.seen_by_engine(&changed)
            }
            Changes::Poll { view, seen } => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let now = view.fingerprint();
                if now == *seen {
                    return false;
                }
                let mut settled = now;
                loop {
                    tokio::time::sleep(debounce).await;
                    let again = view.fingerprint();
                    if again == settled {
                        break;
                    }
                    settled = again;
                }
                *seen = settled;
                true
            }
        }
    }
}

/// Which changed paths the engine would see.
struct EngineView {
    root: PathBuf,
    /// The stamp's selective-sync patterns.
    selective: ignore::gitignore::Gitignore,
    /// Git's view of the tree (its own repository, or a scratch one), for `.gitignore`.
    git: SourceTree,
}

impl EngineView {
    fn new(tree: &WatchedTree) -> EngineView {
        // Patterns are validated when the stamp loads; one that still does not parse is left
        // out rather than stopping the watch.
        let mut builder = ignore::gitignore::GitignoreBuilder::new(&tree.root);
        for line in &tree.ignore {
            let _ = builder.add_line(None, line);
        }
        let selective = builder
            .build()
            .unwrap_or_else(|_| ignore::gitignore::Gitignore::empty());
        // Events name paths as the watcher was given them; resolve the root the same way.
        EngineView {
            root: tree.root.clone(),
            selective,
            git: SourceTree::new(&tree.root),
        }
    }

    /// The cheap filter, per event: paths in the tree, outside `.git/`, not excluded by the
    /// selective-sync patterns.
    fn candidates(&self, paths: Vec<PathBuf>) -> impl Iterator<Item = PathBuf> + '_ {
        paths.into_iter().filter(move |path| {
            let Ok(rel) = path.strip_prefix(&self.root) else {
                return false;
            };
            if rel.as_os_str().is_empty()
                || rel
                    .components()
                    .next()
                    .is_some_and(|c| c.as_os_str() == ".git")
            {
                return false;
            }
            // A directory's own event (made, removed) counts like a file in it would.
            let is_dir = path.is_dir();
            !self
                .selective
                .matched_path_or_any_parents(rel, is_dir)
                .is_ignore()
        })
    }

    /// What the engine sees of the tree, with sizes and times (for `--poll`).
    fn fingerprint(&self) -> Vec<(String, u64, u128)> {
        let mut files = self.git.fingerprint();
        files.retain(|(rel, _, _)| {
            !self
                .selective
                .matched_path_or_any_parents(rel, false)
                .is_ignore()
        });
        files
    }

    /// The Git filter, once per burst: is any of these paths not ignored by Git?
    fn seen_by_engine(&self, changed: &[PathBuf]) -> bool {
        if changed.is_empty() {
            return false;
        }
        self.git.any_not_ignored(&self.root, changed)
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
    /// `git checkout`) is one sync, of the tree as the burst left it; in both modes.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_watch_debounces_a_burst_of_edits_into_one_sync() {
        for mode in [WatchMode::Events, WatchMode::Poll] {
            debounces_a_burst(mode).await;
        }
    }

    /// The files of the tree at each sync.
    type SyncedTrees = std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>;

    /// Runs `watch_tree` on `source` in the background, recording the tree at each sync.
    fn watching(
        source: &Path,
        ignore: &[&str],
        mode: WatchMode,
        max_syncs: usize,
    ) -> (
        SyncedTrees,
        tokio::task::JoinHandle<Result<usize, EnvError>>,
    ) {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<String>>::new()));
        let record = seen.clone();
        let tree = WatchedTree {
            root: source.to_path_buf(),
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
        };
        let tree_source = source.to_path_buf();
        let task = tokio::spawn(async move {
            let progress = crate::ui::Progress::with_mode(false, 0);
            watch_tree(
                &tree,
                Duration::from_millis(600),
                mode,
                Some(max_syncs),
                &progress,
                || false,
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
        (seen, task)
    }

    async fn debounces_a_burst(mode: WatchMode) {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("a.yaml"), "a").unwrap();
        let (seen, watching) = watching(&source, &[], mode, 2);
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
            assert_eq!(syncs.len(), 1, "{mode:?}: {syncs:?}");
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

    /// Only what the engine sees counts: an edit outside the selective-sync patterns, or to a
    /// file Git ignores, is no sync; an edit inside is. In both modes.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_watch_ignores_what_the_engine_does_not_see() {
        for mode in [WatchMode::Events, WatchMode::Poll] {
            let dir = tempfile::tempdir().unwrap();
            let source = dir.path().join("source");
            std::fs::create_dir_all(source.join("stamps/app")).unwrap();
            std::fs::create_dir_all(source.join("docs")).unwrap();
            std::fs::write(source.join(".gitignore"), "*.tmp\n").unwrap();
            std::fs::write(source.join("stamps/app/a.yaml"), "a").unwrap();
            let patterns = ["/*", "!/stamps/"];
            if mode == WatchMode::Events {
                // Really by events here, not the fallback to polling.
                let tree = WatchedTree {
                    root: source.clone(),
                    ignore: patterns.iter().map(|s| s.to_string()).collect(),
                };
                assert!(Changes::events(&tree).is_ok());
            }
            let (seen, watching) = watching(&source, &patterns, mode, 1);
            tokio::time::sleep(Duration::from_millis(500)).await;
            std::fs::write(source.join("README.md"), "outside the patterns").unwrap();
            std::fs::write(source.join("docs/guide.md"), "outside too").unwrap();
            std::fs::write(source.join("stamps/app/scratch.tmp"), "ignored by Git").unwrap();
            // Well past the debounce (600 ms) and a poll.
            tokio::time::sleep(Duration::from_millis(2000)).await;
            assert!(
                seen.lock().unwrap().is_empty(),
                "{mode:?}: synced an edit the engine does not see"
            );
            std::fs::write(source.join("stamps/app/b.yaml"), "b").unwrap();
            let syncs = tokio::time::timeout(Duration::from_secs(20), watching)
                .await
                .unwrap_or_else(|_| panic!("{mode:?}: an edit inside the patterns was not synced"))
                .unwrap()
                .unwrap();
            assert_eq!(syncs, 1);
        }
    }
}
