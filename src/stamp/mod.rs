//! Stamps: the desired state kindling pushes to Gitea and hands to the GitOps engine.
//!
//! A stamp is loaded from either kindling's own `stamp.yaml` ([`native`]) or an unchanged
//! HostK8s stack ([`hostk8s`]) into one engine-neutral model ([`Stamp`]), validated
//! ([`validate`]), ordered ([`graph`]) and rendered for Flux or Argo CD ([`render`]).

pub(crate) mod argo_layout;
pub mod cert_manager;
mod error;
pub mod generator;
pub mod graph;
mod hostk8s;
mod locate;
pub mod manifests;
mod native;
pub mod overlay;
pub mod package;
pub mod render;
mod stacks;
pub mod storage;
mod validate;

use std::path::{Path, PathBuf};

pub use error::{Problem, StampError};
pub use generator::{GeneratorKind, SecretGenerator};
pub use graph::Graph;
pub use hostk8s::app;
pub use locate::{StampListing, list_stamps, locate_stamp};
pub use stacks::with_stacks;

/// The files of the stamp's HostK8s extension stacks, pushed whatever the source tree's ignore
/// files say (`hostk8s::extension`).
pub fn extension_files(stamp: &Stamp) -> Result<Vec<(String, Vec<u8>)>, StampError> {
    hostk8s::extension::pushed_files(stamp)
}
pub(crate) use validate::rebuild_graph;

/// A loaded, validated stamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    pub name: String,
    pub description: Option<String>,
    pub format: StampFormat,
    /// The stamp's own directory on the host.
    pub dir: PathBuf,
    /// The file the stamp was declared in (stamp.yaml, or the HostK8s stack file).
    pub file: PathBuf,
    /// The directory that becomes the root of the Git repository kindling pushes; every entry
    /// path is relative to it, because that is how Flux and Argo CD address paths.
    pub repo_root: PathBuf,
    /// Selective-sync patterns (gitignore syntax), as in Flux's GitRepository `spec.ignore`.
    pub ignore: Vec<String>,
    /// Components first, then applications, each in declaration order.
    pub entries: Vec<Entry>,
    pub secrets: Vec<BootstrapSecret>,
    /// Host directories the nodes mount, offered as PersistentVolumes (`storage`).
    pub storage: Vec<storage::StorageDir>,
    /// Dependency order and waves, computed when the stamp was validated.
    pub graph: Graph,
    /// What loads but may not do what the stamp's author expects (each with its file, field
    /// and what happens instead); shown by `stamp validate`, `stamp render` and `env create`.
    pub warnings: Vec<Problem>,
    /// What an Argo CD layout (format `argo`) keeps of its own on Argo CD.
    pub argo: ArgoKept,
    /// The Flux sources a Flux cluster directory declares besides its own repository
    /// (OCIRepository, GitRepository, Bucket, HelmRepository), applied as they are on Flux.
    pub flux_sources: Vec<serde_json::Value>,
    /// Where the env's engine objects (Flux's objects, Argo CD's Applications) live when not in
    /// the engine's own namespace (an env on a shared cluster: its own namespace), set from the
    /// env's record (`crate::env::open::fitted_to_the_envs_cluster`); None for a stamp on its
    /// own.
    pub own_objects_namespace: Option<String>,
    /// The env shares its cluster (`--provider existing`): a chart must not take over objects
    /// it did not create, as helm-controller's default would.
    pub shared_cluster: bool,
}

/// An Argo CD layout's own projects and sync options, kept when it runs on Argo CD: the
/// AppProjects its directories define (applied at bootstrap, their `sourceRepos` naming the
/// pushed repository pointed at the env's Gitea too), and each entry's project and
/// `syncOptions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArgoKept {
    pub projects: Vec<serde_json::Value>,
    /// Entry name → (project, sync options).
    pub entries: std::collections::BTreeMap<String, (String, Vec<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StampFormat {
    /// `stamp.yaml` with `kind: Stamp`.
    Kindling,
    /// A HostK8s stack: Flux Kustomizations in `stack.yaml`.
    Hostk8s,
    /// A Flux cluster directory as `flux bootstrap` leaves it (`clusters/NAME/` with
    /// `flux-system/`).
    Flux,
    /// A directory of Argo CD Applications (app-of-apps included).
    Argo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Component,
    Application,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub role: Role,
    pub source: Source,
    /// Target namespace: Flux `targetNamespace`, Argo CD destination namespace.
    pub namespace: Option<String>,
    pub depends_on: Vec<String>,
    pub health_checks: Vec<HealthCheck>,
    /// A Go duration (`5m`), how long the engine waits for the entry to become ready.
    pub timeout: Option<String>,
    pub wait: bool,
    pub prune: bool,
    pub interval: Option<String>,
    pub retry_interval: Option<String>,
    /// For entries flattened out of a HostK8s component (`component-certs`): the parent's name.
    pub group: Option<String>,
    /// Where the entry was declared, for error messages.
    pub declared_in: PathBuf,
    /// Labels the entry's engine objects carry besides kindling's: a HostK8s stack's own
    /// (`hostk8s.stack`, `hostk8s.type`).
    pub labels: std::collections::BTreeMap<String, String>,
    /// `gate: manual`: the engine does not reconcile it (nor what depends on it) until
    /// `env approve ENV ENTRY`; cleared on the env's stamp once approved.
    pub manual_gate: bool,
    /// `env apply ENV ENTRY` applied it from the working tree: the engine leaves it alone
    /// (rendered suspended) until `env sync` hands it back.
    pub applied_directly: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A kustomize directory or a directory of plain manifests.
    Path(PathSource),
    Helm(HelmChart),
    /// A path in a source kindling does not push: an OCIRepository, GitRepository or Bucket
    /// a Flux cluster directory declares, which keeps its remote URL.
    Remote(RemoteSource),
}

/// A Flux source a layout declares, and the path in it one of its Kustomizations reads.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSource {
    /// `OCIRepository`, `GitRepository` or `Bucket`.
    pub kind: String,
    pub name: String,
    /// The source object as the layout declares it.
    pub object: serde_json::Value,
    /// The Kustomization's `path` in that source, without a leading `./`.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PathSource {
    /// Relative to the repository root, `/`-separated, without a leading `./`.
    pub repo_path: String,
    /// The same directory on the host (for validation and translation).
    pub host_dir: PathBuf,
}

impl PathSource {
    /// The source tree the path is relative to: `host_dir` less `repo_path`.
    pub fn source_root(&self) -> PathBuf {
        let depth = self
            .repo_path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .count();
        self.host_dir
            .ancestors()
            .nth(depth)
            .unwrap_or(&self.host_dir)
            .to_path_buf()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HelmChart {
    /// `https://…` chart repository or `oci://…` registry.
    pub repo: String,
    pub chart: String,
    pub version: String,
    pub release_name: Option<String>,
    pub values: serde_json::Map<String, serde_json::Value>,
    /// `plainHttp: true`: the stamp accepts an `http://` repository (charts fetched without
    /// TLS, so anyone on the path can swap them).
    pub plain_http: bool,
}

impl HelmChart {
    pub fn is_oci(&self) -> bool {
        self.repo.starts_with("oci://")
    }

    /// A chart kept in the env's own repository (a HostK8s app's), read by the engine from
    /// Git: nothing to fetch or bundle.
    pub fn in_tree(&self) -> bool {
        self.repo.starts_with(app::IN_TREE)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl HealthCheck {
    /// The apiVersion to send to the engine: the declared one, else the one of a well-known
    /// kind. Flux needs it to find the object; `None` means the stamp must declare it.
    pub fn resolved_api_version(&self) -> Option<&str> {
        self.api_version
            .as_deref()
            .or_else(|| well_known_api_version(&self.kind))
    }
}

/// Kinds that live outside namespaces, among those health checks name.
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "ClusterIssuer"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "IngressClass"
            | "StorageClass"
            | "PersistentVolume"
            | "PriorityClass"
            | "APIService"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
    )
}

/// apiVersions of the kinds health checks commonly name, so stamps (and HostK8s stacks, which
/// omit it) need not spell them out.
pub fn well_known_api_version(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps/v1",
        "Secret"
        | "ConfigMap"
        | "Service"
        | "Namespace"
        | "PersistentVolumeClaim"
        | "Pod"
        | "ServiceAccount" => "v1",
        "Job" | "CronJob" => "batch/v1",
        "Ingress" => "networking.k8s.io/v1",
        "Certificate" | "Issuer" | "ClusterIssuer" => "cert-manager.io/v1",
        "HelmRelease" => "helm.toolkit.fluxcd.io/v2",
        "Kustomization" => "kustomize.toolkit.fluxcd.io/v1",
        "CustomResourceDefinition" => "apiextensions.k8s.io/v1",
        _ => return None,
    })
}

/// A Secret kindling creates at `env create` from the host, never stored in Git.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BootstrapSecret {
    pub name: String,
    pub namespace: String,
    pub keys: Vec<SecretKey>,
    /// Written into the env's Vault at `secret/NAMESPACE/NAME` (an ExternalSecret makes the
    /// Secret) rather than applied as a Secret: a HostK8s contract with the `vault` add-on.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub through_vault: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretKey {
    pub key: String,
    pub value: SecretValue,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SecretValue {
    /// A non-sensitive literal (a user name, a host): fine in Git, kept with its secret.
    Literal(String),
    /// A random value, generated once per env and kept in the env's state.
    Generate(SecretGenerator),
    FromFile(PathBuf),
    FromEnv(String),
}

impl Stamp {
    /// The namespace of the env's Flux objects: its own on a shared cluster, else Flux's.
    pub fn flux_namespace(&self) -> &str {
        self.own_objects_namespace
            .as_deref()
            .unwrap_or(render::flux::NAMESPACE)
    }

    /// The namespace of the env's Argo CD Applications: its own on a shared cluster (Argo CD
    /// watching it, "Applications in any namespace"), else Argo CD's.
    pub fn argo_namespace(&self) -> &str {
        self.own_objects_namespace
            .as_deref()
            .unwrap_or(render::argo::NAMESPACE)
    }

    /// The AppProject (in Argo CD's namespace) of an env whose Applications live in a
    /// namespace of their own: named after it, as AppProject names are one set per Argo CD.
    pub fn argo_project(&self) -> Option<&str> {
        self.own_objects_namespace
            .as_deref()
            .filter(|ns| *ns != render::argo::NAMESPACE)
    }

    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Entries in dependency order (dependencies before dependents).
    pub fn ordered_entries(&self) -> impl Iterator<Item = &Entry> {
        self.graph.order().iter().map(|&i| &self.entries[i])
    }

    /// The sync wave (depth in the dependency graph) of the entry at `index`.
    pub fn wave(&self, index: usize) -> usize {
        self.graph.wave(index)
    }
}

/// Loads and validates the stamp in `dir` (or the stamp file `dir` names). `source_root`
/// overrides the repository root (`--source`); otherwise it is derived from the layout.
pub fn load(dir: &Path, source_root: Option<&Path>) -> Result<Stamp, StampError> {
    // Absolute paths make repository-relative paths well defined whatever the caller's cwd.
    let dir = &std::fs::canonicalize(dir).map_err(|e| StampError::io(dir, e))?;
    let source_root = match source_root {
        Some(root) => Some(std::fs::canonicalize(root).map_err(|e| StampError::io(root, e))?),
        None => None,
    };
    let source_root = source_root.as_deref();
    let (dir, file) = if dir.is_file() {
        let parent = dir.parent().unwrap_or(Path::new(".")).to_path_buf();
        (parent, Some(dir.to_path_buf()))
    } else {
        (dir.to_path_buf(), None)
    };
    // "Not a stamp" only when the stamp's files are really absent: a directory kindling may not
    // read, or a stamp.yaml it cannot reach (a link loop), says so instead.
    if file.is_none() {
        std::fs::read_dir(&dir).map_err(|e| StampError::io(&dir, e))?;
        for name in [
            "stamp.yaml",
            "stack.yaml",
            "kustomization.yaml",
            "kustomization.yml",
        ] {
            present(&dir.join(name))?;
        }
    }
    let native_file = file.clone().unwrap_or_else(|| dir.join("stamp.yaml"));
    // A stamp.yaml linked from elsewhere is not this directory's stamp (and not what is pushed).
    if file.is_none() && present(&native_file)? {
        manifests::within(&native_file, &dir)?;
    }
    if native_file.is_file() && native::is_native_stamp(&native_file)? {
        let draft = native::load(&native_file, &dir, source_root)?;
        return validate::finish(draft);
    }
    if file.is_none()
        && let Some(draft) = hostk8s::flux_cluster::load(&dir)?
    {
        return validate::finish(draft);
    }
    if let Some(draft) = hostk8s::load(&dir, file.as_deref())? {
        return validate::finish(draft);
    }
    if file.is_none()
        && let Some(draft) = argo_layout::load(&dir, source_root)?
    {
        return validate::finish(draft);
    }
    Err(StampError::UnknownFormat { dir })
}

/// Whether `path` is there: absent (not found, or a parent that is no directory) is `false`;
/// any other failure to look (permission denied, a link loop) is an error naming the path.
pub(crate) fn present(path: &Path) -> Result<bool, StampError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(StampError::io(path, e)),
    }
}

/// A stamp as loaded, before validation: the loaders record what they could not convert in
/// `problems`, and validation adds the rest, so a user sees every problem at once.
#[derive(Debug)]
pub(crate) struct Draft {
    pub stamp: Stamp,
    pub problems: Vec<Problem>,
    /// Names of entries dropped because they could not be converted; dependencies on them are
    /// not reported a second time.
    pub dropped: Vec<String>,
}

/// Resolves `.` and `..` without touching the file system (the path may not exist yet).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `host_dir` relative to `repo_root`, `/`-separated, as engines address paths in Git;
/// `None` when it lies outside. The root itself is `.`.
pub(crate) fn repo_relative(repo_root: &Path, host_dir: &Path) -> Option<String> {
    let relative = normalize(host_dir)
        .strip_prefix(normalize(repo_root))
        .ok()?
        .to_path_buf();
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.is_empty() {
        Some(".".to_string())
    } else {
        Some(parts.join("/"))
    }
}
