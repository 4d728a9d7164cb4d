//! Rendering a stamp into the objects a GitOps engine reconciles: pure functions, model in,
//! YAML documents out. Both engines get a bundle of files meant to live under `.kindling/`
//! in the pushed source snapshot, plus the bootstrap objects kindling applies itself.

pub mod argo;
pub mod flux;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{Role, Source, Stamp, StampError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Flux,
    Argo,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Flux => "flux",
            Engine::Argo => "argo",
        }
    }
}

/// The Secret (in the engine's namespace) holding the Gitea credentials.
pub const CREDENTIALS_SECRET: &str = "kindling-git-credentials";

/// What rendering needs to know about where the stamp will be served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Clone URL as the engine (inside the cluster) reaches Gitea.
    pub repo_url: String,
    pub branch: String,
    /// Secret (in the engine's namespace) holding the Git credentials, for Flux's
    /// `secretRef`. Argo CD finds its repository Secret by URL instead.
    pub credentials_secret: Option<String>,
    /// Directory in the pushed tree that holds the rendered files.
    pub bundle_dir: String,
    /// Secret (in Flux's namespace, key `ca.crt`) with the network's root CAs, for the
    /// `certSecretRef` of HTTPS and OCI HelmRepositories; none unless the env has extra CAs.
    pub chart_ca_secret: Option<String>,
    /// Helm entries whose chart is served from the pushed tree (a loaded offline bundle holds
    /// it): entry name → the chart's files, relative to its directory. Such an entry's chart
    /// lives at [`RenderOptions::chart_dir`] and the engine reads it from Git.
    pub local_charts: BTreeMap<String, crate::bundle::charts::ChartFiles>,
    /// Files pushed as they are at their paths in the tree (the add-ons' manifests,
    /// `crate::addons::pushed_files`).
    pub extra_files: Vec<(String, Vec<u8>)>,
}

impl RenderOptions {
    /// What `env create` uses: the env's repository as the cluster reaches it (its Gitea's
    /// in-cluster Service, `gitea::service_repo_url`, unless an external Gitea is used), branch
    /// `main`, the credentials Secret.
    pub fn standard(repo_url: String) -> RenderOptions {
        RenderOptions {
            repo_url,
            branch: "main".to_string(),
            credentials_secret: Some(CREDENTIALS_SECRET.to_string()),
            bundle_dir: ".kindling".to_string(),
            chart_ca_secret: None,
            local_charts: BTreeMap::new(),
            extra_files: Vec::new(),
        }
    }

    /// Where a local chart of `entry` sits in the pushed tree.
    pub fn chart_dir(&self, entry: &str) -> String {
        format!("{}/charts/{entry}", self.bundle_dir)
    }
}

/// One rendered file, relative to the bundle directory (`flux/stamp/api.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedFile {
    pub path: String,
    pub documents: Vec<Value>,
}

impl RenderedFile {
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for (i, d) in self.documents.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            // Serialising a JSON value to YAML cannot fail: keys are strings, no tagged enums.
            out.push_str(&serde_yaml_ng::to_string(d).unwrap_or_default());
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub engine: Engine,
    pub bundle_dir: String,
    /// `bootstrap.yaml` first (applied by kindling), then what the engine reads from Git.
    pub files: Vec<RenderedFile>,
    /// What could not be carried over to this engine, said plainly.
    pub notes: Vec<String>,
    /// Files pushed as they are (the local charts), path in the tree → content.
    pub raw_files: Vec<(String, Vec<u8>)>,
}

impl Rendered {
    /// The bootstrap documents, which kindling applies itself.
    pub fn bootstrap_documents(&self) -> Vec<Value> {
        self.files
            .iter()
            .filter(|f| f.path.ends_with("bootstrap.yaml"))
            .flat_map(|f| f.documents.clone())
            .collect()
    }

    /// The files as they go into the pushed snapshot (`.kindling/...`), without the bootstrap
    /// file: the engine reads these from Git.
    pub fn bundle_files(&self) -> Vec<(String, Vec<u8>)> {
        self.files
            .iter()
            .filter(|f| !f.path.ends_with("bootstrap.yaml"))
            .map(|f| {
                (
                    format!("{}/{}", self.bundle_dir, f.path),
                    f.to_yaml().into_bytes(),
                )
            })
            .chain(self.raw_files.iter().cloned())
            .collect()
    }

    /// Every document of every file, in file order.
    pub fn documents(&self) -> impl Iterator<Item = &Value> {
        self.files.iter().flat_map(|f| f.documents.iter())
    }

    /// All files as one multi-document YAML stream, each introduced by its path.
    pub fn to_yaml_stream(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            if f.documents.is_empty() {
                continue;
            }
            out.push_str(&format!("---\n# Source: {}/{}\n", self.bundle_dir, f.path));
            out.push_str(&f.to_yaml());
        }
        out
    }

    /// Writes every file below `dir`. Each file is written to a temporary name and renamed,
    /// so an interrupted write never leaves a half file behind.
    /// Writes every file below `dir`, and removes what an earlier render into `dir` wrote and
    /// this one does not (its list is kept in `dir/.kindling-rendered`), so the directory
    /// holds exactly this render. A non-empty `dir` that no render made is refused unless
    /// `replace` says its files may be mixed with these.
    pub fn write_to(&self, dir: &Path) -> Result<(), StampError> {
        self.write_into(dir, false)
    }

    pub fn write_into(&self, dir: &Path, replace: bool) -> Result<(), StampError> {
        let record = dir.join(RENDERED_LIST);
        let earlier: Vec<String> = match std::fs::read_to_string(&record) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(_) => {
                let foreign = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
                if foreign && !replace {
                    return Err(StampError::Write {
                        path: dir.to_path_buf(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::AlreadyExists,
                            "it is not empty and no earlier render made it; pick an empty directory, or pass --force to write among its files",
                        ),
                    });
                }
                Vec::new()
            }
        };
        self.write_files(dir)?;
        let current: Vec<&str> = self.files.iter().map(|f| f.path.as_str()).collect();
        for stale in earlier.iter().filter(|p| !current.contains(&p.as_str())) {
            // Only paths below `dir` that a render wrote (never `..`).
            if !stale.split('/').any(|part| part == ".." || part.is_empty()) {
                let _ = std::fs::remove_file(dir.join(stale));
            }
        }
        let list = current.join("\n") + "\n";
        crate::paths::write_atomic(&record, list.as_bytes(), 0o644).map_err(|e| StampError::Write {
            path: record.clone(),
            source: e,
        })
    }

    fn write_files(&self, dir: &Path) -> Result<(), StampError> {
        for f in &self.files {
            let target = dir.join(&f.path);
            let parent = target.parent().unwrap_or(dir);
            std::fs::create_dir_all(parent).map_err(|e| StampError::Write {
                path: parent.to_path_buf(),
                source: e,
            })?;
            let temporary = target.with_extension("yaml.tmp");
            let write = std::fs::write(&temporary, f.to_yaml())
                .and_then(|()| std::fs::rename(&temporary, &target));
            write.map_err(|e| StampError::Write {
                path: target.clone(),
                source: e,
            })?;
        }
        Ok(())
    }
}

/// The list of files a render wrote into its `--out` directory.
pub const RENDERED_LIST: &str = ".kindling-rendered";

/// What `engine` will not do of what the stamp asks, one line per reason (the entries it
/// concerns named in it). `stamp validate` and `stamp render` print these as warnings.
pub fn engine_warnings(stamp: &Stamp, engine: Engine) -> Vec<String> {
    let names = |pick: &dyn Fn(&crate::stamp::Entry) -> bool| -> Vec<&str> {
        stamp
            .entries
            .iter()
            .filter(|e| pick(e))
            .map(|e| e.name.as_str())
            .collect()
    };
    let mut warnings = Vec::new();
    for (file, field) in crate::stamp::manifests::kustomization_unknown_fields(stamp) {
        warnings.push(match engine {
            Engine::Argo => format!(
                "argo: {}: {field} is not a kustomization field; Argo CD's kustomize build refuses the file (\"invalid Kustomization: json: unknown field\"): move it where it belongs (a mis-indented metadata key?) or remove it",
                file.display()
            ),
            Engine::Flux => format!(
                "flux: {}: {field} is not a kustomization field; Flux drops it (its kustomize-controller rewrites the file first), kustomize and Argo CD refuse the file",
                file.display()
            ),
        });
    }
    if engine == Engine::Argo {
        let checked = names(&|e| !e.health_checks.is_empty());
        if !checked.is_empty() {
            warnings.push(argo::health_checks_note(&checked));
        }
        return warnings;
    }
    let ignored = names(&|e| {
        stamp.format != crate::stamp::StampFormat::Kindling && e.wait && !e.health_checks.is_empty()
    });
    if !ignored.is_empty() {
        warnings.push(format!(
            "flux: healthChecks of {} gate nothing: Flux ignores healthChecks when wait is true (kustomize-controller checks every applied object instead); kindling keeps the stack's meaning, as under HostK8s",
            ignored.join(", ")
        ));
    }
    warnings
}

pub fn render(stamp: &Stamp, engine: Engine, opts: &RenderOptions) -> Result<Rendered, StampError> {
    let mut rendered = match engine {
        Engine::Flux => flux::render(stamp, opts),
        Engine::Argo => argo::render(stamp, opts)?,
    };
    for entry in &stamp.entries {
        let (Source::Helm(chart), Some(files)) =
            (&entry.source, opts.local_charts.get(&entry.name))
        else {
            continue;
        };
        let dir = opts.chart_dir(&entry.name);
        let from = match chart.repo.strip_prefix(super::app::IN_TREE) {
            Some(path) => format!("the app at {path}"),
            None => "the loaded bundle".to_string(),
        };
        rendered.notes.push(format!(
            "{}: chart {} {} from {from}, read by {} from the env's Git at {dir}",
            entry.name,
            chart.chart,
            chart.version,
            engine.name()
        ));
        rendered.raw_files.extend(
            files
                .iter()
                .map(|(path, bytes)| (format!("{dir}/{path}"), bytes.clone())),
        );
    }
    rendered.raw_files.extend(opts.extra_files.iter().cloned());
    Ok(rendered)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectMeta {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

impl ObjectMeta {
    pub fn new(name: &str, namespace: &str) -> Self {
        ObjectMeta {
            name: name.to_string(),
            namespace: Some(namespace.to_string()),
            labels: BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "kindling".to_string(),
            )]),
            annotations: BTreeMap::new(),
            finalizers: Vec::new(),
        }
    }

    /// Labels that let `env status` and `env restart` find what belongs to a stamp.
    pub fn for_entry(name: &str, namespace: &str, stamp: &str, entry: &super::Entry) -> Self {
        let role = entry.role;
        let mut meta = ObjectMeta::new(name, namespace);
        meta.labels.extend(entry.labels.clone());
        meta.labels
            .insert("dev.kindling.stamp".into(), stamp.into());
        let role = match role {
            Role::Component => "component",
            Role::Application => "application",
        };
        meta.labels.insert("dev.kindling.role".into(), role.into());
        meta
    }
}

/// Typed objects become JSON values once, so every consumer (YAML output, schema tests, the
/// apply layer) sees the same thing.
pub(crate) fn to_value(object: &impl Serialize) -> Value {
    // Only derive(Serialize) structs with string keys reach here; they always serialise.
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// A helm chart repository URL as Argo CD wants it: OCI registries without the scheme. Argo CD
/// treats a Helm source whose repoURL has no host part (`ghcr.io/org/charts`) as OCI and pulls
/// with OCI enabled, no repository Secret needed for a public registry
/// (argoproj/argo-cd v3.5.1 util/helm/client.go `IsHelmOciRepo`,
/// reposerver/repository/repository.go `newHelmClientResolveRevision`).
pub(crate) fn argo_helm_repo(url: &str) -> (String, bool) {
    match url.strip_prefix("oci://") {
        Some(rest) => (rest.to_string(), true),
        None => (url.to_string(), false),
    }
}
