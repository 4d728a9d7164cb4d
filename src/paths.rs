//! Where kindling keeps things on the host, and how it writes them: atomically, with the
//! permissions the content calls for (0600 for keys and credentials).

use std::io::Write;
use std::path::{Path, PathBuf};

/// `$KINDLING_DATA_DIR`, else the platform data directory (`~/.local/share/kindling` on Linux).
/// Holds the machine root CA and the per-env state; never pushed anywhere.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KINDLING_DATA_DIR") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("dev", "kindling", "kindling")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".kindling-data"))
}

/// `$KINDLING_CACHE_DIR`, else the platform cache directory (`~/.cache/kindling` on Linux).
/// Holds downloads that can be fetched again (install manifests); safe to delete.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KINDLING_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("dev", "kindling", "kindling")
        .map(|d| d.cache_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".kindling-cache"))
}

/// The directory of one environment's state inside the data directory.
pub fn env_dir(data_dir: &Path, env: &str) -> PathBuf {
    data_dir.join("envs").join(env)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader (or a crash) never sees half a file; the file has `mode` from its first byte on.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let private = mode & 0o077 == 0;
    // The directories of a private file are private too, whatever the umask (a data dir made
    // under `umask 000` was 0777). Directories that exist are left as they are.
    if private {
        private_dirs(dir)?;
        // A secret is never written through a symlink: not at the file (the rename would
        // replace the link, but a reader that follows it would see elsewhere), and not as the
        // directory it goes in (kindling makes those directories itself; a link there was
        // planted to send the key somewhere else).
        for planted in [path, dir] {
            if std::fs::symlink_metadata(planted).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is a symbolic link; kindling writes secrets only into its own files and directories (remove the link)",
                        planted.display()
                    ),
                ));
            }
        }
    } else {
        std::fs::create_dir_all(dir)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A temporary of a random name, created exclusively (O_EXCL: a file or symlink planted
    // under that name makes the create fail rather than be written through), 0600 from the
    // start, then given its mode and renamed over the target.
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    // A secret goes only into a directory of the user's own: one owned by someone else (a
    // shared /tmp data dir made by another user) could be read or swapped by its owner.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::MetadataExt;
        let mine = temporary.as_file().metadata()?.uid();
        let owner = std::fs::metadata(dir)?.uid();
        if mine != owner {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} belongs to uid {owner}, not to you (uid {mine}); kindling keeps secrets only in a directory of your own (set KINDLING_DATA_DIR)",
                    dir.display()
                ),
            ));
        }
    }
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temporary
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    temporary.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Refuses a data directory that exists but belongs to another user: its owner could read the
/// CA key and the env credentials kindling keeps there, or swap what kindling reads back (a
/// shared or predictable `KINDLING_DATA_DIR` under /tmp, made by someone else first).
pub fn check_owner(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(found) = std::fs::metadata(dir) else {
            return Ok(());
        };
        // Our own uid, as the file system records it for a file we make.
        let mine = tempfile::tempfile()?.metadata()?.uid();
        if found.uid() != mine {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "kindling's data dir {} belongs to uid {}, not to you (uid {mine}): its owner could read or replace the CA key and env credentials kept there\nhelp: point KINDLING_DATA_DIR at a directory of your own",
                    dir.display(),
                    found.uid()
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `dir` and any missing parent as 0700.
pub fn private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// An I/O error on a file kindling writes in its data dir, with the way out when the disk is
/// the cause: full, read-only, or not ours to write. Atomic writes leave the previous file
/// whole, so the line says the state is intact.
pub fn write_failure(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let help = match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Some(
            "the disk holding kindling's data dir is full; free space and run the command again",
        ),
        ErrorKind::ReadOnlyFilesystem => Some(
            "kindling's data dir is on a read-only file system; remount it writable or point KINDLING_DATA_DIR elsewhere",
        ),
        ErrorKind::PermissionDenied => Some(
            "kindling cannot write in its data dir; check its owner and permissions (or KINDLING_DATA_DIR)",
        ),
        _ => None,
    };
    match help {
        Some(help) => format!("{e}\nhelp: {help}; what was written before is unchanged"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_write_atomic_sets_mode_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/key.pem");
        write_atomic(&file, b"one", 0o600).unwrap();
        write_atomic(&file, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temporary file left behind: {names:?}");
    }
}
