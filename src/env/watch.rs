//! `env watch`: `env sync` on every change of the source tree (files Git would snapshot),
//! once it has been quiet for a moment.

use std::path::Path;
use std::time::{Duration, Instant};

use super::open::load;
use super::steps::push::short;
use super::{EnvError, Settings};
use crate::ui::Progress;

/// What the source tree looks like, cheaply: every file Git would snapshot (honouring
/// .gitignore), with size and modification time.
pub fn fingerprint(source: &Path) -> Vec<(String, u64, u128)> {
    let listed = std::process::Command::new("git")
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
        if path.is_dir() {
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
    let mut seen = fingerprint(&source);
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
        let now = fingerprint(&source);
        if now == seen {
            continue;
        }
        // Debounce: wait until the tree stops changing (an editor's save is several writes).
        let mut settled = now;
        loop {
            tokio::time::sleep(debounce).await;
            let again = fingerprint(&source);
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
