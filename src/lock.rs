//! Lock files: one mutating command per env at a time (the env's `lock`), and machine-wide
//! ones for work two envs must not do at once (allocating ports, making the root CA). A lock
//! file is created exclusively and holds the owner's pid and command. A lock whose process is
//! gone (a crash, a kill -9) is taken over; a live one makes the second command wait briefly,
//! then fail with a message naming the holder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{what} is busy: `kindling {holder}` (pid {pid}) is changing it\nhelp: wait for it to finish; if no kindling is running, remove {path}"
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
}

fn holder_alive(text: &str) -> bool {
    let Some(pid) = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return false;
    };
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    if proc.is_dir() {
        proc.join(pid.to_string()).exists()
    } else {
        // Without /proc (macOS) a lock is trusted until its holder removes it.
        true
    }
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
        crate::paths::private_dirs(dir).map_err(|e| LockError::Io {
            path: dir.to_path_buf(),
            reason: crate::paths::write_failure(&e),
        })?;
        let path = path.to_path_buf();
        let deadline = Instant::now() + wait;
        loop {
            match create_with(&path, &format!("{} {command}\n", std::process::id())) {
                Ok(()) => return Ok(FileLock { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let Ok(text) = std::fs::read_to_string(&path) else {
                        // Released between our try and our read: try again. (Reading it as
                        // stale would remove the lock someone takes next.)
                        continue;
                    };
                    if !holder_alive(&text) {
                        // The holder is gone (a crash, a kill -9); its lock is stale. Two
                        // takers of one stale lock at the same instant could still race here.
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if Instant::now() >= deadline {
                        let mut parts = text.trim().splitn(2, ' ');
                        let pid = parts.next().unwrap_or("?").to_string();
                        let holder = parts.next().unwrap_or("kindling").to_string();
                        return Err(LockError::Busy {
                            what: what.to_string(),
                            pid,
                            holder,
                            path,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(LockError::Io {
                        path,
                        reason: crate::paths::write_failure(&e),
                    });
                }
            }
        }
    }
}

/// Creates `path` holding `content`, or fails with `AlreadyExists`, in one step: the content
/// is written to a file of this process's own and hard-linked into place, so no other process
/// ever reads the lock empty (an empty lock would read as stale and be taken over).
fn create_with(path: &Path, content: &str) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}", std::process::id()));
    let draft = path.with_file_name(name);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&draft)
        .and_then(|mut file| file.write_all(content.as_bytes()));
    let linked = written.and_then(|()| std::fs::hard_link(&draft, path));
    let _ = std::fs::remove_file(&draft);
    linked
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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
        // A lock left by a process that no longer exists.
        std::fs::write(dir.path().join("lock"), "4194303999 env create\n").unwrap();
        FileLock::env(dir.path(), "env delete", Duration::ZERO).unwrap();
    }

    #[test]
    fn lock_is_never_held_twice_when_taken_concurrently() {
        // Many takers at once, none waiting: at no moment may two hold the lock. (A lock file
        // created empty and filled afterwards read as stale to a racing taker, who then took
        // it over.)
        let dir = tempfile::tempdir().unwrap();
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
        // No draft file is left beside the lock.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
