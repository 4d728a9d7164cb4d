//! NSS databases: where Chrome, Chromium and Firefox on Linux read their trusted roots from,
//! instead of the system store.
//!
//! Follows FiloSottile/mkcert v1.4.4 truststore_nss.go (the databases and the `sql:`/`dbm:`
//! choice) and truststore_linux.go (the Firefox profile directories): the root goes into every
//! database found, by NSS's `certutil`, under a nickname of its own. Unlike mkcert, kindling
//! never retries with sudo: these are the user's own files. Beyond mkcert v1.4.4, it also
//! looks where newer Firefox makes new profiles, `$XDG_CONFIG_HOME/mozilla/firefox` (default
//! `~/.config/mozilla/firefox`), as mozilla-firefox/firefox main
//! toolkit/xre/test/marionette/xdg_config/test_xdg_config_new.py and test_xdg_config_new_env.py
//! expect.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// certutil's name for the root: one per root, so a new root never overwrites (or is mistaken
/// for) an older one.
pub fn nickname(short_id: &str) -> String {
    format!("kindling-{short_id}")
}

/// The database format, which certutil must be told: `cert9.db` is SQLite (`sql:`), a
/// directory with only `cert8.db` is the legacy Berkeley DB format (`dbm:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NssFormat {
    Sql,
    Dbm,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NssDatabase {
    pub dir: PathBuf,
    pub format: NssFormat,
}

impl NssDatabase {
    /// certutil's `-d` argument, e.g. `sql:/home/u/.pki/nssdb`.
    pub fn spec(&self) -> String {
        let prefix = match self.format {
            NssFormat::Sql => "sql",
            NssFormat::Dbm => "dbm",
        };
        format!("{prefix}:{}", self.dir.display())
    }

    fn at(dir: PathBuf) -> Option<NssDatabase> {
        let format = if dir.join("cert9.db").is_file() {
            NssFormat::Sql
        } else if dir.join("cert8.db").is_file() {
            NssFormat::Dbm
        } else {
            return None;
        };
        Some(NssDatabase { dir, format })
    }
}

/// Every NSS database of the user whose home is `home` and XDG config directory `config_home`,
/// in a stable order: Chrome/Chromium's `~/.pki/nssdb`, snap Chromium's, then each Firefox
/// profile (legacy `~/.mozilla`, XDG, snap). Only directories that hold a
/// database count: one a browser never started in has none yet. mkcert's system-wide
/// `/etc/pki/nssdb` (CentOS 7) is left out: it is not the user's, and would need root.
pub fn databases_under(home: &Path, config_home: &Path) -> Vec<NssDatabase> {
    let mut dirs = vec![
        home.join(".pki/nssdb"),
        home.join("snap/chromium/current/.pki/nssdb"),
    ];
    for profiles in [
        home.join(".mozilla/firefox"),
        config_home.join("mozilla/firefox"),
        home.join("snap/firefox/common/.mozilla/firefox"),
    ] {
        let Ok(entries) = std::fs::read_dir(&profiles) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        found.sort();
        dirs.extend(found);
    }
    dirs.into_iter().filter_map(NssDatabase::at).collect()
}

/// The NSS side of a trust plan: the databases to act on, and whether certutil can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NssDatabases {
    pub found: Vec<NssDatabase>,
    pub certutil_on_path: bool,
}

impl NssDatabases {
    /// This machine's. Linux only: on macOS the keychain serves the browsers kindling trusts for.
    pub fn detect(home: &Path) -> NssDatabases {
        if !cfg!(target_os = "linux") {
            return NssDatabases::default();
        }
        // The XDG Base Directory rule: a relative XDG_CONFIG_HOME is ignored.
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".config"));
        NssDatabases {
            found: databases_under(home, &config_home),
            certutil_on_path: which::which("certutil").is_ok(),
        }
    }

    /// Only the databases that may hold the root `nickname`, so `ca untrust` deletes nothing
    /// that is not there and a second run has nothing left to do. A database certutil cannot
    /// read stays in: its delete will fail and say why.
    pub fn holding(mut self, nickname: &str) -> NssDatabases {
        if self.certutil_on_path {
            self.found.retain(|db| holds(db, nickname) != Some(false));
        }
        self
    }

    /// `certutil -A` for each database. Trust `C,,`: "trusted CA to issue server certs" for
    /// SSL, nothing for S/MIME or code (`certutil -H -A`, `-t trustargs`).
    pub(super) fn add_commands(&self, cert: &Path, nickname: &str) -> Vec<Vec<String>> {
        self.commands(|db| {
            vec![
                "-A".into(),
                "-d".into(),
                db.spec(),
                "-t".into(),
                "C,,".into(),
                "-n".into(),
                nickname.into(),
                "-i".into(),
                cert.display().to_string(),
            ]
        })
    }

    /// `certutil -D` for each database.
    pub(super) fn delete_commands(&self, nickname: &str) -> Vec<Vec<String>> {
        self.commands(|db| {
            vec![
                "-D".into(),
                "-d".into(),
                db.spec(),
                "-n".into(),
                nickname.into(),
            ]
        })
    }

    fn commands(&self, args: impl Fn(&NssDatabase) -> Vec<String>) -> Vec<Vec<String>> {
        if !self.certutil_on_path {
            return Vec::new();
        }
        self.found
            .iter()
            .map(|db| {
                std::iter::once("certutil".to_string())
                    .chain(args(db))
                    .collect()
            })
            .collect()
    }

    /// What the user must know when databases are there but certutil is not: `verb` is what
    /// could not be done ("add the root CA to"), `command` the one to run again.
    pub(super) fn missing_certutil(&self, verb: &str, command: &str) -> Option<String> {
        if self.certutil_on_path || self.found.is_empty() {
            return None;
        }
        let dirs: Vec<String> = self
            .found
            .iter()
            .map(|db| db.dir.display().to_string())
            .collect();
        Some(format!(
            "NSS's certutil is not installed, so kindling cannot {verb} the browsers' NSS databases (Chrome, Chromium, Firefox): {}\n\
             help: install certutil (libnss3-tools on Debian/Ubuntu, nss-tools on Fedora, nss on Arch) and run `{command}` again",
            dirs.join(", ")
        ))
    }
}

/// Whether `db` holds the root `nickname`: `Some(false)` only when certutil says it is not
/// there, `None` when it cannot tell (no certutil, a damaged or unreadable database).
pub fn holds(db: &NssDatabase, nickname: &str) -> Option<bool> {
    let out = Command::new("certutil")
        .args(["-L", "-d", &db.spec(), "-n", nickname])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if out.status.success() {
        return Some(true);
    }
    // NSS 3.87's certutil on a nickname it does not have: "certutil: Could not find cert:
    // NAME\n: PR_FILE_NOT_FOUND_ERROR: File not found" (exit 255, as for a bad database).
    let said = String::from_utf8_lossy(&out.stderr);
    said.contains("PR_FILE_NOT_FOUND_ERROR").then_some(false)
}
