//! Adding the root CA to (and removing it from) the host's trust store.
//!
//! The decision — which store, which commands, whether they need root — is a pure plan; running
//! it goes through a [`CommandRunner`] so tests can record instead of touching the machine. The
//! commands are announced before they run, and sudo is never used without saying so.
//!
//! On Linux the browsers do not read the system store: the plan adds the root to every NSS
//! database found as well ([`nss`]), as the user, without sudo.

pub mod nss;

use std::path::{Path, PathBuf};

use super::PkiError;
use nss::NssDatabases;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustStore {
    /// Debian, Ubuntu: /usr/local/share/ca-certificates + update-ca-certificates.
    Debian,
    /// Fedora, RHEL: /etc/pki/ca-trust/source/anchors + update-ca-trust.
    Fedora,
    /// Arch and other p11-kit systems: `trust anchor`.
    P11Kit,
    /// macOS: the login keychain via `security`.
    MacOs,
    Unsupported,
}

impl TrustStore {
    /// The store of this machine, from the tools it has.
    pub fn detect() -> TrustStore {
        if cfg!(target_os = "macos") {
            return TrustStore::MacOs;
        }
        if !cfg!(target_os = "linux") {
            return TrustStore::Unsupported;
        }
        let has =
            |tool: &str| which::which(tool).is_ok() || Path::new("/usr/sbin").join(tool).exists();
        if has("update-ca-certificates") {
            TrustStore::Debian
        } else if has("update-ca-trust") {
            TrustStore::Fedora
        } else if has("trust") {
            TrustStore::P11Kit
        } else {
            TrustStore::Unsupported
        }
    }

    fn anchor(self, short_id: &str) -> Option<PathBuf> {
        match self {
            TrustStore::Debian => Some(PathBuf::from(format!(
                "/usr/local/share/ca-certificates/kindling-{short_id}.crt"
            ))),
            TrustStore::Fedora => Some(PathBuf::from(format!(
                "/etc/pki/ca-trust/source/anchors/kindling-{short_id}.pem"
            ))),
            _ => None,
        }
    }

    /// Whether the root is installed, where that can be told from a file; `None` = unknown.
    pub fn is_trusted(self, short_id: &str) -> Option<bool> {
        self.anchor(short_id).map(|a| a.exists())
    }
}

/// What `ca trust` / `ca untrust` will do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrustPlan {
    pub store: TrustStore,
    /// Whether the system store's commands need root (the NSS databases' never do).
    pub needs_root: bool,
    /// Each command's argv, in order (already prefixed with sudo where needed): the system
    /// store's, then each NSS database's.
    pub commands: Vec<Vec<String>>,
    /// For stores kindling cannot drive: the steps to do by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manual_steps: Option<String>,
    /// What could not be planned and how to fix it (NSS databases but no certutil).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn finish(
    store: TrustStore,
    needs_root: bool,
    running_as_root: bool,
    commands: Vec<Vec<String>>,
) -> TrustPlan {
    let commands = if needs_root && !running_as_root {
        commands
            .into_iter()
            .map(|c| std::iter::once("sudo".to_string()).chain(c).collect())
            .collect()
    } else {
        commands
    };
    TrustPlan {
        store,
        needs_root,
        commands,
        manual_steps: None,
        warnings: Vec::new(),
    }
}

/// The plan with the NSS databases' commands (as the user: never sudo) and warning after the
/// system store's.
fn with_nss(mut plan: TrustPlan, commands: Vec<Vec<String>>, warning: Option<String>) -> TrustPlan {
    plan.commands.extend(commands);
    plan.warnings.extend(warning);
    plan
}

fn manual(cert: &Path, verb: &str) -> TrustPlan {
    TrustPlan {
        store: TrustStore::Unsupported,
        needs_root: false,
        commands: Vec::new(),
        manual_steps: Some(format!(
            "kindling does not know this system's trust store. To {verb} the root CA by hand:\n  \
             - system-wide: {verb} {} as a trusted root in your OS certificate settings\n  \
             - Firefox: Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import\n  \
             - curl/OpenSSL for one command: --cacert {}",
            cert.display(),
            cert.display()
        )),
        warnings: Vec::new(),
    }
}

/// The certificate as it was read and checked, in a fresh private directory: what `ca trust`
/// installs, so the file in the data dir is not read again once the password prompt is past
/// (a swap in between would install something else). Gone when the directory is dropped.
pub fn staged_copy(
    cert_pem: &str,
    short_id: &str,
) -> std::io::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("kindling-trust-")
        .tempdir()?;
    let path = dir.path().join(format!("kindling-{short_id}.pem"));
    crate::paths::write_atomic(&path, cert_pem.as_bytes(), 0o644)?;
    Ok((dir, path))
}

pub fn trust_plan(
    store: TrustStore,
    cert: &Path,
    short_id: &str,
    running_as_root: bool,
    home: &Path,
    nss: &NssDatabases,
) -> TrustPlan {
    with_nss(
        system_trust_plan(store, cert, short_id, running_as_root, home),
        nss.add_commands(cert, &nss::nickname(short_id)),
        nss.missing_certutil("add the root CA to", "kindling ca trust"),
    )
}

fn system_trust_plan(
    store: TrustStore,
    cert: &Path,
    short_id: &str,
    running_as_root: bool,
    home: &Path,
) -> TrustPlan {
    let cert_s = cert.display().to_string();
    match store {
        TrustStore::Debian | TrustStore::Fedora => {
            let anchor = store
                .anchor(short_id)
                .unwrap_or_default()
                .display()
                .to_string();
            let refresh = if store == TrustStore::Debian {
                argv(&["update-ca-certificates"])
            } else {
                argv(&["update-ca-trust", "extract"])
            };
            finish(
                store,
                true,
                running_as_root,
                vec![argv(&["install", "-m", "0644", &cert_s, &anchor]), refresh],
            )
        }
        TrustStore::P11Kit => finish(
            store,
            true,
            running_as_root,
            vec![argv(&["trust", "anchor", "--store", &cert_s])],
        ),
        TrustStore::MacOs => {
            // The login keychain needs no root; macOS asks the user to confirm in a dialog.
            let keychain = home
                .join("Library/Keychains/login.keychain-db")
                .display()
                .to_string();
            finish(
                store,
                false,
                running_as_root,
                // `-p ssl`: trusted for TLS only, not for mail or code (security(1) man page,
                // add-trusted-cert "-p policy").
                vec![argv(&[
                    "security",
                    "add-trusted-cert",
                    "-r",
                    "trustRoot",
                    "-p",
                    "ssl",
                    "-k",
                    &keychain,
                    &cert_s,
                ])],
            )
        }
        TrustStore::Unsupported => manual(cert, "install"),
    }
}

/// `nss`: the databases that may hold the root ([`NssDatabases::holding`]), so that nothing
/// absent is deleted and a second `ca untrust` succeeds.
pub fn untrust_plan(
    store: TrustStore,
    cert: &Path,
    short_id: &str,
    running_as_root: bool,
    nss: &NssDatabases,
) -> TrustPlan {
    with_nss(
        system_untrust_plan(store, cert, short_id, running_as_root),
        nss.delete_commands(&nss::nickname(short_id)),
        nss.missing_certutil("remove the root CA from", "kindling ca untrust"),
    )
}

fn system_untrust_plan(
    store: TrustStore,
    cert: &Path,
    short_id: &str,
    running_as_root: bool,
) -> TrustPlan {
    let cert_s = cert.display().to_string();
    match store {
        TrustStore::Debian | TrustStore::Fedora => {
            let anchor = store
                .anchor(short_id)
                .unwrap_or_default()
                .display()
                .to_string();
            let refresh = if store == TrustStore::Debian {
                argv(&["update-ca-certificates", "--fresh"])
            } else {
                argv(&["update-ca-trust", "extract"])
            };
            finish(
                store,
                true,
                running_as_root,
                vec![argv(&["rm", "-f", &anchor]), refresh],
            )
        }
        TrustStore::P11Kit => finish(
            store,
            true,
            running_as_root,
            vec![argv(&["trust", "anchor", "--remove", &cert_s])],
        ),
        TrustStore::MacOs => finish(
            store,
            false,
            running_as_root,
            vec![argv(&["security", "remove-trusted-cert", &cert_s])],
        ),
        TrustStore::Unsupported => manual(cert, "remove"),
    }
}

/// How one command ended.
pub struct CommandOutcome {
    pub success: bool,
    pub stderr: String,
}

/// Runs commands for the trust plan; the real one spawns processes, tests record.
pub trait CommandRunner {
    fn run(&mut self, argv: &[String]) -> std::io::Result<CommandOutcome>;
}

pub struct SystemCommandRunner;

impl CommandRunner for SystemCommandRunner {
    fn run(&mut self, argv: &[String]) -> std::io::Result<CommandOutcome> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty command"))?;
        crate::ui::call(|| argv.join(" "));
        // stdin and the terminal stay attached so sudo (or macOS) can ask for a password.
        let output = std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::piped())
            .output()?;
        Ok(CommandOutcome {
            success: output.status.success(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Announces the plan, then runs it command by command; stops at the first failure.
pub fn execute(
    plan: &TrustPlan,
    runner: &mut dyn CommandRunner,
    announce: &mut dyn FnMut(&str),
) -> Result<(), PkiError> {
    if let Some(steps) = &plan.manual_steps {
        announce(steps);
    }
    for warning in &plan.warnings {
        announce(&format!("warning: {warning}"));
    }
    if plan.commands.is_empty() {
        return Ok(());
    }
    let privileges = if plan.needs_root {
        " (the system trust store needs root privileges)"
    } else {
        ""
    };
    let listing: Vec<String> = plan
        .commands
        .iter()
        .map(|c| format!("  {}", c.join(" ")))
        .collect();
    announce(&format!(
        "kindling will run{privileges}:\n{}",
        listing.join("\n")
    ));
    for command in &plan.commands {
        let outcome = runner
            .run(command)
            .map_err(|e| PkiError::Trust(format!("cannot run `{}`: {e}", command.join(" "))))?;
        if !outcome.success {
            return Err(PkiError::Trust(format!(
                "`{}` failed: {}",
                command.join(" "),
                outcome.stderr.trim()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder {
        log: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
        fail_on: Option<&'static str>,
    }

    impl CommandRunner for Recorder {
        fn run(&mut self, argv: &[String]) -> std::io::Result<CommandOutcome> {
            self.log
                .borrow_mut()
                .push(format!("run {}", argv.join(" ")));
            let fail = self.fail_on.is_some_and(|f| argv.iter().any(|a| a == f));
            Ok(CommandOutcome {
                success: !fail,
                stderr: if fail {
                    "permission denied".into()
                } else {
                    String::new()
                },
            })
        }
    }

    fn run(plan: &TrustPlan, fail_on: Option<&'static str>) -> (Result<(), PkiError>, Vec<String>) {
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut recorder = Recorder {
            log: log.clone(),
            fail_on,
        };
        let announce_log = log.clone();
        let result = execute(plan, &mut recorder, &mut |text| {
            announce_log.borrow_mut().push(format!("say {text}"))
        });
        let entries = log.borrow().clone();
        (result, entries)
    }

    #[test]
    fn ca_trust_debian_installs_the_anchor_with_sudo_after_saying_so() {
        let plan = trust_plan(
            TrustStore::Debian,
            Path::new("/d/ca/root.pem"),
            "ab12cd34",
            false,
            Path::new("/home/u"),
            &NssDatabases::default(),
        );
        assert!(plan.needs_root);
        let (result, log) = run(&plan, None);
        result.unwrap();
        assert_eq!(
            log,
            [
                "say kindling will run (the system trust store needs root privileges):\n  sudo install -m 0644 /d/ca/root.pem /usr/local/share/ca-certificates/kindling-ab12cd34.crt\n  sudo update-ca-certificates",
                "run sudo install -m 0644 /d/ca/root.pem /usr/local/share/ca-certificates/kindling-ab12cd34.crt",
                "run sudo update-ca-certificates",
            ]
        );
    }

    #[test]
    fn ca_trust_as_root_needs_no_sudo() {
        let plan = trust_plan(
            TrustStore::Fedora,
            Path::new("/d/root.pem"),
            "ab12cd34",
            true,
            Path::new("/root"),
            &NssDatabases::default(),
        );
        assert_eq!(plan.commands[0][0], "install");
        assert_eq!(plan.commands[1], ["update-ca-trust", "extract"]);
    }

    #[test]
    fn ca_trust_macos_uses_the_login_keychain_without_root() {
        let plan = trust_plan(
            TrustStore::MacOs,
            Path::new("/d/root.pem"),
            "x",
            false,
            Path::new("/Users/u"),
            &NssDatabases::default(),
        );
        assert!(!plan.needs_root);
        assert_eq!(
            plan.commands,
            [argv(&[
                "security",
                "add-trusted-cert",
                "-r",
                "trustRoot",
                "-p",
                "ssl",
                "-k",
                "/Users/u/Library/Keychains/login.keychain-db",
                "/d/root.pem"
            ])]
        );
    }

    #[test]
    fn ca_trust_stops_at_the_first_failing_command_with_its_stderr() {
        let plan = trust_plan(
            TrustStore::Debian,
            Path::new("/d/root.pem"),
            "ab12cd34",
            false,
            Path::new("/h"),
            &NssDatabases::default(),
        );
        let (result, log) = run(&plan, Some("install"));
        let err = result.unwrap_err().to_string();
        assert!(err.contains("permission denied"), "{err}");
        assert_eq!(log.iter().filter(|l| l.starts_with("run")).count(), 1);
    }

    #[test]
    fn ca_untrust_removes_the_anchor_and_refreshes() {
        let plan = untrust_plan(
            TrustStore::Debian,
            Path::new("/d/root.pem"),
            "ab12cd34",
            true,
            &NssDatabases::default(),
        );
        assert_eq!(
            plan.commands,
            [
                argv(&[
                    "rm",
                    "-f",
                    "/usr/local/share/ca-certificates/kindling-ab12cd34.crt"
                ]),
                argv(&["update-ca-certificates", "--fresh"])
            ]
        );
        let p11 = untrust_plan(
            TrustStore::P11Kit,
            Path::new("/d/root.pem"),
            "x",
            false,
            &NssDatabases::default(),
        );
        assert_eq!(
            p11.commands,
            [argv(&[
                "sudo",
                "trust",
                "anchor",
                "--remove",
                "/d/root.pem"
            ])]
        );
    }

    #[test]
    fn ca_trust_unknown_system_prints_manual_steps_and_runs_nothing() {
        let plan = trust_plan(
            TrustStore::Unsupported,
            Path::new("/d/root.pem"),
            "x",
            false,
            Path::new("/h"),
            &NssDatabases::default(),
        );
        let (result, log) = run(&plan, None);
        result.unwrap();
        assert_eq!(log.len(), 1);
        assert!(log[0].contains("--cacert /d/root.pem"), "{}", log[0]);
    }

    fn nss_db(dir: &str, format: nss::NssFormat) -> nss::NssDatabase {
        nss::NssDatabase {
            dir: PathBuf::from(dir),
            format,
        }
    }

    /// A Chrome database (SQLite) and an old Firefox profile (Berkeley DB), certutil present.
    fn two_nss_databases() -> NssDatabases {
        NssDatabases {
            found: vec![
                nss_db("/home/u/.pki/nssdb", nss::NssFormat::Sql),
                nss_db("/home/u/.mozilla/firefox/old.default", nss::NssFormat::Dbm),
            ],
            certutil_on_path: true,
        }
    }

    #[cfg(unix)]
    #[test]
    fn ca_trust_finds_every_nss_database_under_home_as_sql_or_dbm() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let touch = |rel: &str| {
            let path = h.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        };
        let config = h.join(".config");
        assert_eq!(nss::databases_under(h, &config), []);
        touch(".pki/nssdb/cert9.db");
        // snap Chromium: `current` is a link to the revision in use.
        touch("snap/chromium/2951/.pki/nssdb/cert9.db");
        std::os::unix::fs::symlink("2951", h.join("snap/chromium/current")).unwrap();
        // A profile with both formats (migrated) is SQLite; one with only cert8.db is not.
        touch(".mozilla/firefox/b.default-release/cert9.db");
        touch(".mozilla/firefox/b.default-release/cert8.db");
        touch(".mozilla/firefox/a.old/cert8.db");
        // Not databases: Firefox's own files, and a profile never started (no database yet).
        touch(".mozilla/firefox/profiles.ini");
        touch(".mozilla/firefox/Crash Reports/events/x");
        std::fs::create_dir_all(h.join(".mozilla/firefox/c.never-started")).unwrap();
        // Newer Firefox: profiles under the XDG config directory.
        touch(".config/mozilla/firefox/x.default/cert9.db");
        touch("snap/firefox/common/.mozilla/firefox/s.default/cert9.db");
        // Not where any browser looks.
        touch(".pki/other/cert9.db");

        let found: Vec<String> = nss::databases_under(h, &config)
            .iter()
            .map(|d| d.spec())
            .collect();
        let at = |rel: &str| h.join(rel).display().to_string();
        assert_eq!(
            found,
            [
                format!("sql:{}", at(".pki/nssdb")),
                format!("sql:{}", at("snap/chromium/current/.pki/nssdb")),
                format!("dbm:{}", at(".mozilla/firefox/a.old")),
                format!("sql:{}", at(".mozilla/firefox/b.default-release")),
                format!("sql:{}", at(".config/mozilla/firefox/x.default")),
                format!(
                    "sql:{}",
                    at("snap/firefox/common/.mozilla/firefox/s.default")
                ),
            ]
        );
        // XDG_CONFIG_HOME elsewhere: Firefox's profiles are looked for there instead.
        touch("xdg/mozilla/firefox/y.default/cert9.db");
        let elsewhere = nss::databases_under(h, &h.join("xdg"));
        assert!(
            elsewhere
                .iter()
                .any(|d| d.dir == h.join("xdg/mozilla/firefox/y.default"))
        );
        assert!(
            !elsewhere
                .iter()
                .any(|d| d.dir.starts_with(h.join(".config")))
        );
    }

    #[test]
    fn ca_trust_adds_the_root_to_every_nss_database_without_sudo() {
        let plan = trust_plan(
            TrustStore::Debian,
            Path::new("/d/root.pem"),
            "ab12cd34",
            false,
            Path::new("/home/u"),
            &two_nss_databases(),
        );
        assert!(plan.needs_root);
        assert_eq!(
            plan.commands,
            [
                argv(&[
                    "sudo",
                    "install",
                    "-m",
                    "0644",
                    "/d/root.pem",
                    "/usr/local/share/ca-certificates/kindling-ab12cd34.crt"
                ]),
                argv(&["sudo", "update-ca-certificates"]),
                argv(&[
                    "certutil",
                    "-A",
                    "-d",
                    "sql:/home/u/.pki/nssdb",
                    "-t",
                    "C,,",
                    "-n",
                    "kindling-ab12cd34",
                    "-i",
                    "/d/root.pem"
                ]),
                argv(&[
                    "certutil",
                    "-A",
                    "-d",
                    "dbm:/home/u/.mozilla/firefox/old.default",
                    "-t",
                    "C,,",
                    "-n",
                    "kindling-ab12cd34",
                    "-i",
                    "/d/root.pem"
                ]),
            ]
        );
        assert!(plan.warnings.is_empty());
        // All of it is said before anything runs, and all of it runs.
        let (result, log) = run(&plan, None);
        result.unwrap();
        assert!(log[0].contains("  certutil -A -d dbm:/home/u/.mozilla/firefox/old.default"));
        assert_eq!(log.iter().filter(|l| l.starts_with("run")).count(), 4);
    }

    #[test]
    fn ca_untrust_deletes_the_root_from_each_nss_database_without_sudo() {
        let plan = untrust_plan(
            TrustStore::Fedora,
            Path::new("/d/root.pem"),
            "ab12cd34",
            false,
            &two_nss_databases(),
        );
        assert_eq!(
            plan.commands[2..],
            [
                argv(&[
                    "certutil",
                    "-D",
                    "-d",
                    "sql:/home/u/.pki/nssdb",
                    "-n",
                    "kindling-ab12cd34"
                ]),
                argv(&[
                    "certutil",
                    "-D",
                    "-d",
                    "dbm:/home/u/.mozilla/firefox/old.default",
                    "-n",
                    "kindling-ab12cd34"
                ]),
            ]
        );
        assert!(plan.commands[..2].iter().all(|c| c[0] == "sudo"));
        // Databases found to hold no such root (`NssDatabases::holding`) leave nothing to do.
        let none = NssDatabases {
            found: Vec::new(),
            certutil_on_path: true,
        };
        let plan = untrust_plan(
            TrustStore::Fedora,
            Path::new("/d/root.pem"),
            "ab12cd34",
            true,
            &none,
        );
        assert!(plan.commands.iter().all(|c| c[0] != "certutil"));
    }

    #[test]
    fn ca_trust_nss_databases_without_certutil_are_named_with_the_package_to_install() {
        let without = NssDatabases {
            certutil_on_path: false,
            ..two_nss_databases()
        };
        let plan = trust_plan(
            TrustStore::Debian,
            Path::new("/d/root.pem"),
            "ab12cd34",
            true,
            Path::new("/home/u"),
            &without,
        );
        // The system store is still done; no certutil command is planned.
        assert_eq!(plan.commands.len(), 2);
        assert!(plan.commands.iter().all(|c| c[0] != "certutil"));
        let [warning] = &plan.warnings[..] else {
            panic!("{:?}", plan.warnings)
        };
        for says in [
            "/home/u/.pki/nssdb",
            "/home/u/.mozilla/firefox/old.default",
            "help: install certutil (libnss3-tools on Debian/Ubuntu, nss-tools on Fedora, nss on Arch)",
            "`kindling ca trust` again",
        ] {
            assert!(warning.contains(says), "{says}: {warning}");
        }
        let (result, log) = run(&plan, None);
        result.unwrap();
        assert!(log.contains(&format!("say warning: {warning}")), "{log:?}");
        let undo = untrust_plan(
            TrustStore::Debian,
            Path::new("/d/root.pem"),
            "x",
            true,
            &without,
        );
        assert!(undo.warnings[0].contains("`kindling ca untrust` again"));
        // No databases, no certutil: nothing to say.
        let neither = NssDatabases::default();
        let plan = trust_plan(
            TrustStore::Debian,
            Path::new("/d/root.pem"),
            "x",
            true,
            Path::new("/home/u"),
            &neither,
        );
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn ca_trust_unknown_system_store_still_adds_the_root_to_nss() {
        let plan = trust_plan(
            TrustStore::Unsupported,
            Path::new("/d/root.pem"),
            "ab12cd34",
            false,
            Path::new("/home/u"),
            &two_nss_databases(),
        );
        assert!(!plan.needs_root);
        let (result, log) = run(&plan, None);
        result.unwrap();
        assert!(log[0].contains("--cacert /d/root.pem"), "{}", log[0]);
        assert_eq!(
            log[1],
            "say kindling will run:\n  certutil -A -d sql:/home/u/.pki/nssdb -t C,, -n kindling-ab12cd34 -i /d/root.pem\n  certutil -A -d dbm:/home/u/.mozilla/firefox/old.default -t C,, -n kindling-ab12cd34 -i /d/root.pem"
        );
        assert_eq!(
            log.iter().filter(|l| l.starts_with("run certutil")).count(),
            2
        );
    }
}
