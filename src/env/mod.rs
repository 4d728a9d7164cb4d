//! Environments: `env create` as ordered idempotent steps (`steps`, run by `create`), and one
//! file per command on an existing env. Commands use the steps and the domain modules, never
//! each other.

pub mod apply;
pub mod approve;
pub mod apps;
mod bring_up;
pub mod build;
pub mod create;
pub mod delete;
pub mod diff;
mod entry_build;
pub mod entry_objects;
mod follow;
pub mod kubeconfig;
pub mod leave;
pub mod list;
pub mod open;
pub mod packages;
pub mod plan;
pub mod ports;
pub mod power;
pub mod promote;
pub mod removal;
pub mod restart;
pub(crate) mod route;
pub mod stacks;
pub mod state;
pub mod status;
pub mod steps;
pub mod storage;
pub mod suspend;
pub mod sync;
pub mod vault;
pub mod watch;

pub use approve::approve;
pub use build::build;

/// What the stamp `stamp_arg` (as `env create --stamp` takes it) would read from this host
/// that the user has not allowed yet. Empty when the stamp cannot be loaded: the command
/// itself reports that.
pub fn consent_needed_for_create(
    settings: &Settings,
    stamp_arg: &str,
    source: &std::path::Path,
) -> Vec<crate::engine::secrets::HostSource> {
    match open::load_stamp(stamp_arg, source) {
        Ok(stamp) => crate::engine::secrets::without_consent(
            &stamp.secrets,
            &stamp.repo_root,
            &settings.allow_secret_from,
        ),
        Err(_) => Vec::new(),
    }
}

/// The same for `env restart NAME [--stamp S]`.
pub fn consent_needed_for_restart(
    settings: &Settings,
    name: &str,
    new_stamp: Option<&str>,
) -> Vec<crate::engine::secrets::HostSource> {
    let Ok(state) = open::load(settings, name) else {
        return Vec::new();
    };
    let stamp = match new_stamp {
        Some(arg) => open::load_stamp(arg, &state.source),
        None => open::stamp_of(&settings.data_dir, &state),
    };
    match stamp {
        Ok(stamp) => crate::engine::secrets::without_consent(
            &stamp.secrets,
            &stamp.repo_root,
            &settings.allow_secret_from,
        ),
        Err(_) => Vec::new(),
    }
}
pub use create::create;
pub use delete::delete;
pub use kubeconfig::kubeconfig;
pub use list::list;
pub use power::{start, stop};
pub use restart::restart;
pub use status::status;
pub use suspend::{resume, suspend};
pub use sync::sync;
pub use watch::{WatchMode, WatchedTree, watch, watch_tree};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::cluster::provider::{ClusterProvider, provider_for};
use crate::cluster::{ClusterError, ClusterProfile, Provider};
use crate::docker::DockerError;
use crate::engine::{Engine, EngineError};
use crate::gitea::GiteaError;
use crate::gitea::push::PushError;
use crate::kube::KubeError;
use crate::lock::LockError;
use crate::pki::PkiError;
use crate::stamp::StampError;

pub use state::EnvState;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(transparent)]
    Stamp(#[from] StampError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Gitea(#[from] GiteaError),
    #[error(transparent)]
    Push(#[from] PushError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("env state {path}: {reason}")]
    State { path: PathBuf, reason: String },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error(
        "there is no env {0}\nhelp: `kindling env list` shows the envs; `kindling env create {0} --stamp STAMP` makes it"
    )]
    NotFound(String),
    #[error("{0}")]
    Preflight(String),
    #[error("{0}")]
    BadInput(String),
    #[error("step {0} failed on purpose (KINDLING_FAIL_AT={0}) after its side effects")]
    Injected(String),
    #[error("step {0} failed on purpose (KINDLING_FAIL_AT=before:{0}) before doing anything")]
    InjectedBefore(String),
    #[error("interrupted after step {0}; run the same command again to continue")]
    Interrupted(String),
    #[error(
        "interrupted while waiting for reconciliation; every step before it is done\nhelp: `kindling env status {0} --wait` follows it, or run the same command again"
    )]
    InterruptedWaiting(String),
    #[error("timed out after {seconds}s waiting for {what}{blocking}")]
    TimedOut {
        what: String,
        seconds: u64,
        blocking: String,
    },
}

impl EnvError {
    /// The process exit code (DESIGN.md): 2 bad input, 3 timed out waiting, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            EnvError::Stamp(StampError::Write { .. }) => 1,
            EnvError::Stamp(_) | EnvError::BadInput(_) => 2,
            EnvError::Cluster(
                ClusterError::InvalidProfile { .. }
                | ClusterError::ProfileSyntax { .. }
                | ClusterError::ProfileUnreadable { .. },
            ) => 2,
            EnvError::TimedOut { .. } => 3,
            EnvError::Interrupted(_) | EnvError::InterruptedWaiting(_) => 130,
            _ => 1,
        }
    }
}

/// Where things live and how long to wait: the process environment in production, set by tests.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// How long a second mutating command waits for the env's lock.
    pub lock_wait: Duration,
    /// `KINDLING_FAIL_AT`: the step that fails after its side effects, or with `before:STEP`
    /// before it does anything (tests).
    pub fail_at: Option<String>,
    /// `KINDLING_GITEA_URL` (+ `_USER`, `_PASSWORD`, `_CLUSTER_URL`): use this Gitea instead
    /// of starting one. Its `<user>/source` repository belongs to one env at a time.
    pub external_gitea: Option<ExternalGitea>,
    pub gitea_image: String,
    pub registry_image: String,
    pub manifests_dir: Option<PathBuf>,
    /// `KINDLING_MANIFESTS_MODIFIED=1`: the manifests dir holds the user's own edits of the
    /// pinned releases, used without comparing them with the pinned sums.
    pub manifests_modified: bool,
    /// `--trust-manifests` / `KINDLING_TRUST_MANIFESTS=1`: a local manifest copy without a
    /// pinned or recorded sum may be used.
    pub trust_manifests: bool,
    /// How long the cluster's nodes and the engine's controllers may take.
    pub step_timeout: Duration,
    /// Host values a stamp's bootstrap secrets may read beyond its own tree: environment
    /// variable names and file paths (`--allow-secret-from`, `KINDLING_ALLOW_SECRET_FROM`).
    pub allow_secret_from: Vec<String>,
    /// `--insecure-gitea` / `KINDLING_GITEA_INSECURE=1`: a `KINDLING_GITEA_URL` over plain
    /// http to another machine is accepted.
    pub insecure_gitea: bool,
}

#[derive(Debug, Clone)]
pub struct ExternalGitea {
    pub url: String,
    pub user: String,
    pub password: String,
    /// The repository URL as the cluster reaches it (default: derived from `url`).
    pub cluster_url: Option<String>,
}

impl Settings {
    /// The local manifest copies to use, if any.
    pub fn local_manifests(&self) -> Option<crate::engine::manifests::LocalCopies<'_>> {
        self.manifests_dir
            .as_deref()
            .map(|dir| crate::engine::manifests::LocalCopies {
                dir,
                modified: self.manifests_modified,
                trusted: self.trust_manifests,
            })
    }

    /// Where install manifests are cached, and where the sums of unpinned ones are recorded.
    pub fn manifest_dirs(&self) -> crate::engine::manifests::ManifestDirs {
        crate::engine::manifests::ManifestDirs {
            cache: self.cache_dir.clone(),
            records: crate::engine::manifests::records_dir(&self.data_dir),
        }
    }

    pub fn from_env() -> Settings {
        Settings::from_vars(|k| std::env::var(k).ok())
    }

    /// The settings from `lookup` (the process environment in production); empty values count
    /// as unset.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Settings {
        let var = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let seconds = |k: &str, default: u64| {
            // Bounded: a wait of u64::MAX seconds overflows the clock it is added to.
            let s = var(k).and_then(|v| v.parse().ok()).unwrap_or(default);
            Duration::from_secs(s.min(MAX_WAIT_SECONDS))
        };
        Settings {
            data_dir: crate::paths::data_dir(),
            cache_dir: crate::paths::cache_dir(),
            lock_wait: seconds("KINDLING_LOCK_WAIT", 2),
            fail_at: var("KINDLING_FAIL_AT"),
            external_gitea: var("KINDLING_GITEA_URL").map(|url| ExternalGitea {
                url: url.trim_end_matches('/').to_string(),
                user: var("KINDLING_GITEA_USER").unwrap_or_else(|| crate::gitea::ADMIN_USER.into()),
                password: var("KINDLING_GITEA_PASSWORD").unwrap_or_default(),
                cluster_url: var("KINDLING_GITEA_CLUSTER_URL"),
            }),
            gitea_image: var("KINDLING_GITEA_IMAGE").unwrap_or_else(|| crate::gitea::IMAGE.into()),
            registry_image: var("KINDLING_REGISTRY_IMAGE")
                .unwrap_or_else(|| crate::registry::REGISTRY_IMAGE.into()),
            manifests_dir: var("KINDLING_MANIFESTS_DIR").map(PathBuf::from),
            manifests_modified: var("KINDLING_MANIFESTS_MODIFIED").is_some_and(|v| v == "1"),
            trust_manifests: var("KINDLING_TRUST_MANIFESTS").is_some_and(|v| v == "1"),
            step_timeout: seconds("KINDLING_STEP_TIMEOUT", 300),
            insecure_gitea: var("KINDLING_GITEA_INSECURE").is_some_and(|v| v == "1"),
            allow_secret_from: var("KINDLING_ALLOW_SECRET_FROM")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn env_dir(&self, env: &str) -> PathBuf {
        crate::paths::env_dir(&self.data_dir, env)
    }
}

/// The longest wait a setting may ask for (a week).
const MAX_WAIT_SECONDS: u64 = 7 * 24 * 3600;

/// What `env create` is asked to make.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: String,
    pub stamp: String,
    pub engine: Engine,
    pub profile: ClusterProfile,
    pub profile_path: Option<PathBuf>,
    /// The directory holding `stamps/` (or the HostK8s tree).
    pub source: PathBuf,
    pub hold: bool,
    pub wait: bool,
    pub timeout: Duration,
    /// Make the new cluster's context the current one in the user's kubeconfig.
    pub switch_context: bool,
    /// PEM files of the network's root CAs (`--extra-ca` and the profile's `spec.extraCA`).
    pub extra_ca: Vec<PathBuf>,
    /// The kustomize overlay every entry that offers overlays uses (`--overlay`).
    pub overlay: Option<String>,
    /// idpbuilder package directories (`--package`).
    pub packages: Vec<PathBuf>,
    /// The cluster to use with `--provider existing`.
    pub existing: Option<crate::cluster::existing::ExistingCluster>,
}

/// Set by Ctrl-C; checked between steps (create) and between syncs (watch). A second Ctrl-C
/// aborts at once.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            set.store(true, Ordering::SeqCst);
            eprintln!(
                "\ninterrupt: stopping after the current step (press Ctrl-C again to abort now)"
            );
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    flag
}

/// The env's own Docker network (Gitea and the registry start on it).
pub fn network_name(env: &str) -> String {
    format!("kindling-{env}")
}

/// The provider CLI for an env: kind/k3d on PATH, else the pinned download.
pub fn provider_cli(
    provider: Provider,
    settings: &Settings,
    env: &str,
) -> Result<Box<dyn ClusterProvider + Send + Sync>, EnvError> {
    let resolved = provider_tool(provider, settings)?;
    Ok(provider_for(provider, resolved.path, settings.env_dir(env)))
}

/// Which kind or k3d binary an env uses: the one on PATH when it is recent enough, else the
/// pinned release (with the reason in `note`).
pub fn provider_tool(
    provider: Provider,
    settings: &Settings,
) -> Result<crate::cluster::tools::ResolvedTool, EnvError> {
    let tool = match provider {
        Provider::Kind => crate::cluster::tools::kind_tool(),
        Provider::K3d => crate::cluster::tools::k3d_tool(),
        Provider::Existing => {
            return Err(EnvError::Preflight(
                "an existing cluster has no provider CLI: kindling neither makes nor removes it"
                    .into(),
            ));
        }
    };
    let search_path = std::env::var_os("PATH");
    Ok(crate::cluster::tools::resolve_tool(
        &tool,
        &settings.data_dir,
        search_path.as_deref(),
    )?)
}

/// A `KINDLING_GITEA_URL` is https, or plain http to this machine only: over http to another
/// host, the token and every push would cross the network in the clear. `--insecure-gitea`
/// accepts it anyway.
pub fn check_external_gitea(settings: &Settings) -> Result<(), EnvError> {
    let Some(gitea) = &settings.external_gitea else {
        return Ok(());
    };
    let url = gitea.url.as_str();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    }
    .to_ascii_lowercase();
    let loopback = host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme.to_ascii_lowercase().as_str() {
        "https" if !host.is_empty() => Ok(()),
        "http" if loopback || settings.insecure_gitea => Ok(()),
        "http" => Err(EnvError::BadInput(format!(
            "KINDLING_GITEA_URL {url} is plain http to another machine: the Gitea token and every push would cross the network unencrypted\nhelp: use https://, or accept the risk with --insecure-gitea (KINDLING_GITEA_INSECURE=1)"
        ))),
        _ => Err(EnvError::BadInput(format!(
            "KINDLING_GITEA_URL {url} is not an http(s) URL with a host\nhelp: give it as https://HOST[:PORT]"
        ))),
    }
}

/// Env names become Docker and cluster names: keep them to what both accept.
pub fn validate_name(name: &str) -> Result<(), EnvError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(EnvError::BadInput(format!(
            "env name {name:?} is not usable\nhelp: use 1-32 lowercase letters, digits and '-', not starting or ending with '-' (it becomes the cluster name kindling-{name})"
        )))
    }
}

/// The longest env name each provider can take, so that a create never fails half-way on a
/// name the provider refuses (checked before anything is made, in `--dry-run` too):
/// - k3d refuses cluster names over 32 characters (`DefaultClusterNameMaxLength`,
///   k3d-io/k3d v5.9.0 pkg/types/defaults.go, enforced by CheckName in
///   pkg/client/clusterName.go); the cluster is `kindling-NAME`, so 23;
/// - kind names containers after the cluster and sets each as the container's hostname, and
///   a host name label is at most 63 characters (RFC 1123); the longest,
///   `kindling-NAME-external-load-balancer` (kubernetes-sigs/kind v0.33.0
///   pkg/cluster/internal/providers/common/namer.go), leaves 31.
pub fn max_name_len(provider: crate::cluster::Provider) -> usize {
    match provider {
        crate::cluster::Provider::K3d => 32 - "kindling-".len(),
        crate::cluster::Provider::Kind => 63 - "kindling-".len() - "-external-load-balancer".len(),
        // The env's namespace, `kindling-NAME`, is a DNS label (63), and so is the longest
        // name kindling gives an object there.
        crate::cluster::Provider::Existing => 63 - "kindling-".len(),
    }
}

pub fn fits_the_provider(name: &str, provider: crate::cluster::Provider) -> Result<(), EnvError> {
    let max = max_name_len(provider);
    if name.len() <= max {
        return Ok(());
    }
    let why = match provider {
        crate::cluster::Provider::K3d => {
            "k3d takes cluster names of at most 32 characters, and the cluster is kindling-NAME"
        }
        crate::cluster::Provider::Kind => {
            "kind's longest container and host name, kindling-NAME-external-load-balancer, must stay within 63 characters"
        }
        crate::cluster::Provider::Existing => {
            "the env's namespace on the cluster, kindling-NAME, must stay within 63 characters"
        }
    };
    Err(EnvError::BadInput(format!(
        "env name {name:?} is {} characters, too long for {}: {why}\nhelp: use at most {max} characters",
        name.len(),
        provider.name()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// KINDLING_GITEA_URL: https anywhere, plain http only to this machine, unless allowed.
    #[test]
    fn env_external_gitea_over_http_needs_loopback_or_consent() {
        let with = |url: &str, insecure: bool| {
            let mut settings = Settings::from_vars(|_| None);
            settings.external_gitea = Some(ExternalGitea {
                url: url.to_string(),
                user: "u".into(),
                password: String::new(),
                cluster_url: None,
            });
            settings.insecure_gitea = insecure;
            check_external_gitea(&settings)
        };
        for ok in [
            "https://gitea.example.com",
            "https://git.corp:8443/",
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "http://gitea.localhost",
            "http://[::1]:3000",
            "http://user:pw@127.0.0.1:3000",
        ] {
            with(ok, false).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for refused in [
            "http://gitea.example.com:3000",
            "http://10.0.0.5:3000",
            "http://127.0.0.1.example.com",
            "http://localhost@evil.example",
        ] {
            let err = with(refused, false).unwrap_err().to_string();
            assert!(
                err.contains("plain http to another machine"),
                "{refused}: {err}"
            );
            assert!(err.contains("--insecure-gitea"), "{err}");
            with(refused, true).unwrap();
        }
        for bad in ["ftp://gitea.example.com", "gitea.example.com", "https://"] {
            let err = with(bad, true).unwrap_err().to_string();
            assert!(err.contains("not an http(s) URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn env_names_fit_every_name_the_provider_derives() {
        use crate::cluster::Provider;
        assert_eq!(max_name_len(Provider::K3d), 23);
        assert_eq!(max_name_len(Provider::Kind), 31);
        for provider in [Provider::Kind, Provider::K3d, Provider::Existing] {
            let max = max_name_len(provider);
            let longest = "a".repeat(max);
            fits_the_provider(&longest, provider).unwrap();
            let cluster = format!("kindling-{longest}");
            match provider {
                Provider::K3d => assert_eq!(cluster.len(), 32),
                Provider::Kind => {
                    assert_eq!(format!("{cluster}-external-load-balancer").len(), 63)
                }
                // The env's namespace on the cluster.
                Provider::Existing => assert_eq!(cluster.len(), 63),
            }
            let err = fits_the_provider(&"a".repeat(max + 1), provider).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.to_string()
                    .contains(&format!("at most {max} characters")),
                "{err}"
            );
        }
    }

    #[test]
    fn env_settings_defaults_and_bounds() {
        let none = Settings::from_vars(|_| None);
        assert_eq!(none.lock_wait, Duration::from_secs(2));
        assert_eq!(none.step_timeout, Duration::from_secs(300));
        assert!(!none.manifests_modified && none.external_gitea.is_none());
        assert!(!none.insecure_gitea);
        let set = |pairs: &'static [(&'static str, &'static str)]| {
            Settings::from_vars(move |k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        let s = set(&[("KINDLING_STEP_TIMEOUT", "7"), ("KINDLING_LOCK_WAIT", "")]);
        assert_eq!(s.step_timeout, Duration::from_secs(7));
        assert_eq!(s.lock_wait, Duration::from_secs(2), "empty is unset");
        // A huge wait is bounded (it once overflowed the clock and panicked).
        let s = set(&[("KINDLING_LOCK_WAIT", "18446744073709551615")]);
        assert_eq!(s.lock_wait, Duration::from_secs(MAX_WAIT_SECONDS));
        assert!(std::time::Instant::now().checked_add(s.lock_wait).is_some());
    }

    #[test]
    fn env_names_are_checked_before_anything_is_named_after_them() {
        for good in ["dev", "ci-42", "a"] {
            validate_name(good).unwrap();
        }
        for bad in ["", "Dev", "-x", "x-", "a_b", "a.b", &"x".repeat(33)] {
            let err = validate_name(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
    }
}
