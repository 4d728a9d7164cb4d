//! Lock files: one mutating command per env at a time (the env's `lock`), and machine-wide
//! ones for work two envs must not do at once (allocating ports, making the root CA).
//!
//! The lock is the operating system's advisory lock (flock) on the file, not the file's
//! existence: the kernel releases it when its holder exits, however it exits (a crash, a
//! kill -9), so a stale lock is simply free and taking it over is one atomic step. (Judging a
//! lock file stale by its pid, then removing and re-creating it, let two takers of one stale lock
//! both hold it.) The file holds the holder's pid and command, for the message a waiting
//! command gives up with.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{what} is busy: `kindling {holder}` (pid {pid}) is changing it\nhelp: wait for it to finish (the lock is released when that process exits)"
    )]
    Busy {
        what: String,
        pid: String,
        holder: String,
        path: PathBuf,
    },
    #[error("lock {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    // Holds the flock; closing it releases.
    file: File,
}

impl FileLock {
    /// Takes the lock of the env in `env_dir` for `command`, waiting up to `wait` for a live
    /// holder.
    pub fn env(env_dir: &Path, command: &str, wait: Duration) -> Result<FileLock, LockError> {
        let what = format!(
            "env {}",
            env_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        Self::acquire(&env_dir.join("lock"), &what, command, wait)
    }

    /// Takes the lock file at `path` (its directory is created); `what` names what it guards.
    pub fn acquire(
        path: &Path,
        what: &str,
        command: &str,
        wait: Duration,
    ) -> Result<FileLock, LockError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let io = |path: &Path, e: std::io::Error| LockError::Io {
            path: path.to_path_buf(),
            reason: crate::paths::write_failure(&e),
        };
        crate::paths::private_dirs(dir).map_err(|e| io(dir, e))?;
        let path = path.to_path_buf();
        let deadline = Instant::now() + wait;
        loop {
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(LockError::Io {
                    path,
                    reason: "is a symbolic link; kindling locks only its own files (remove it)"
                        .into(),
                });
            }
            let mut file = open_lock_file(&path).map_err(|e| io(&path, e))?;
            match file.try_lock() {
                Ok(()) => {
                    // A holder releasing removes the file first: a lock taken on the removed
                    // file guards nothing, so look again.
                    if !is_at(&file, &path) {
                        continue;
                    }
                    let holder = format!("{} {command}\n", std::process::id());
                    file.set_len(0)
                        .and_then(|()| file.rewind())
                        .and_then(|()| file.write_all(holder.as_bytes()))
                        .map_err(|e| io(&path, e))?;
                    return Ok(FileLock { path, file });
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        let mut text = String::new();
                        let _ = file.read_to_string(&mut text);
                        let mut parts = text.trim().splitn(2, ' ');
                        let pid = parts.next().filter(|p| !p.is_empty()).unwrap_or("?");
                        let holder = parts.next().unwrap_or("kindling");
                        return Err(LockError::Busy {
                            what: what.to_string(),
                            pid: pid.to_string(),
                            holder: holder.to_string(),
                            path,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&path, e)),
            }
        }
    }
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Whether `file` is still the file at `path` (not removed or replaced since it was opened).
fn is_at(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Removed while still held, then released as the file closes: a waiter that gets the
        // lock on this file next sees it is gone and takes the new one instead.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lock_is_exclusive_released_on_drop_and_stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileLock::env(dir.path(), "env create", Duration::ZERO).unwrap();
        let err = FileLock::env(dir.path(), "env sync", Duration::from_millis(200)).unwrap_err();
        let text = err.to_string();
        let name = dir.path().file_name().unwrap().to_string_lossy();
        assert!(text.starts_with(&format!("env {name} is busy")), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        assert!(text.contains("env create"), "{text}");
        drop(first);
        let again = FileLock::env(dir.path(), "env sync", Duration::ZERO).unwrap();
        drop(again);
        // A lock file left by a process that no longer exists (a kill -9): free.
        std::fs::write(dir.path().join("lock"), "4194303999 env create\n").unwrap();
        let taken = FileLock::env(dir.path(), "env delete", Duration::ZERO).unwrap();
        let text = std::fs::read_to_string(dir.path().join("lock")).unwrap();
        assert_eq!(text, format!("{} env delete\n", std::process::id()));
        drop(taken);
    }

    #[test]
    fn lock_is_never_held_twice_when_taken_concurrently() {
        // Many takers at once, none waiting, starting from a stale lock file: at no moment
        // may two hold the lock. (Takeover by remove-then-create let two takers of one stale
        // lock both hold it.)
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lock"), "4194303999 env create\n").unwrap();
        let holders = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let acquired = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (dir, holders, acquired) =
                    (dir.path().to_path_buf(), holders.clone(), acquired.clone());
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        let Ok(lock) = FileLock::env(&dir, "env sync", Duration::ZERO) else {
                            continue;
                        };
                        let now = holders.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(now, 0, "two holders at once");
                        acquired.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::yield_now();
                        holders.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        drop(lock);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(acquired.load(std::sync::atomic::Ordering::SeqCst) > 0);
        // Released, the lock file is gone; nothing else is left.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
