//! Argo CD rendering: a root Application (app of apps) whose children are one Application per
//! entry, ordered by `argocd.argoproj.io/sync-wave` = depth in the dependency graph, plus the
//! `argocd-cm` health check for Applications without which Argo CD would not wait for one
//! wave to be Healthy before syncing the next.
//!
//! Path entries holding Flux objects (HostK8s components) are translated in `from_flux`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

mod from_flux;

use super::{ObjectMeta, RenderOptions, Rendered, RenderedFile, argo_helm_repo, to_value};
use crate::stamp::manifests::{Document, directory_documents, kustomization_file};
use crate::stamp::{Entry, HelmChart, PathSource, Source, Stamp, StampError};

pub const NAMESPACE: &str = "argocd";
const IN_CLUSTER: &str = "https://kubernetes.default.svc";
const FLUX_GROUP_SUFFIX: &str = ".toolkit.fluxcd.io";

/// Argo CD 1.8 removed health assessment of Applications; app-of-apps waves only wait for
/// each other with this customisation (Argo CD docs, "Sync Waves" / app of apps).
pub const APPLICATION_HEALTH_LUA: &str = r#"hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil and obj.status.health ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
"#;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Application {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta,
    spec: ApplicationSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationSpec {
    project: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<ApplicationSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sources: Vec<ApplicationSource>,
    destination: Destination,
    sync_policy: SyncPolicy,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct ApplicationSource {
    #[serde(rename = "repoURL")]
    repo_url: String,
    target_revision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chart: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    helm: Option<HelmSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    directory: Option<DirectorySource>,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct HelmSource {
    release_name: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    values_object: Map<String, Value>,
}

#[derive(Serialize, Clone)]
struct DirectorySource {
    recurse: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    exclude: Option<String>,
}

#[derive(Serialize)]
struct Destination {
    server: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncPolicy {
    /// None for a manual gate not approved yet: Argo CD syncs nothing of it by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    automated: Option<Automated>,
    sync_options: Vec<String>,
    retry: Retry,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Automated {
    prune: bool,
    self_heal: bool,
}

#[derive(Serialize)]
struct Retry {
    limit: i64,
    backoff: Backoff,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Backoff {
    duration: &'static str,
    factor: i64,
    max_duration: &'static str,
}

fn sync_policy(prune: bool) -> SyncPolicy {
    SyncPolicy {
        automated: Some(Automated {
            prune,
            self_heal: true,
        }),
        // Server-side apply: CRDs such as cert-manager's exceed the client-side annotation limit.
        sync_options: vec!["CreateNamespace=true".into(), "ServerSideApply=true".into()],
        retry: Retry {
            limit: 10,
            backoff: Backoff {
                duration: "10s",
                factor: 2,
                max_duration: "3m",
            },
        },
    }
}

/// What Argo CD makes of a stamp's health checks, for the entries that name some.
pub fn health_checks_note(entries: &[&str]) -> String {
    format!(
        "argo: healthChecks of {} are not sent to Argo CD, which judges an Application by the health of the objects it manages",
        entries.join(", ")
    )
}

pub fn root_name(stamp: &Stamp) -> String {
    format!("kindling-{}", stamp.name)
}

pub fn render(stamp: &Stamp, opts: &RenderOptions) -> Result<Rendered, StampError> {
    let mut notes = Vec::new();
    let mut overlays = Vec::new();
    let mut apps = Vec::new();
    for (index, entry) in stamp.graph.order().iter().map(|&i| (i, &stamp.entries[i])) {
        let translated = sources_for(entry, opts, &mut notes)?;
        if let Some(overlay) = translated.overlay {
            overlays.push(overlay);
        }
        apps.push(RenderedFile {
            path: format!("argo/apps/{}.yaml", entry.name),
            documents: vec![child_application(
                stamp,
                entry,
                stamp.wave(index),
                translated.sources,
                translated.namespace,
            )],
        });
    }
    // One note for every entry with health checks, not one per entry.
    let checked: Vec<&str> = stamp
        .entries
        .iter()
        .filter(|e| !e.health_checks.is_empty())
        .map(|e| e.name.as_str())
        .collect();
    if !checked.is_empty() {
        notes.push(health_checks_note(&checked));
    }
    // argocd-cm first: the health check for Applications must be in place before the root
    // syncs, or its first sync applies every wave at once (argoproj/argo-cd v3.5.1
    // gitops-engine/pkg/sync/sync_context.go: an object without a health check counts as
    // done as soon as it is applied).
    // The layout's own AppProjects before the root: its Applications name them.
    // An env with a namespace of its own: its AppProject before the root, which names it.
    let mut bootstrap = vec![argocd_cm()];
    bootstrap.extend(own_project(stamp));
    bootstrap.extend(kept_projects(stamp, opts));
    bootstrap.push(root_application(stamp, opts));
    let mut files = vec![RenderedFile {
        path: "argo/bootstrap.yaml".to_string(),
        documents: bootstrap,
    }];
    files.extend(apps);
    files.extend(overlays);
    Ok(Rendered {
        engine: super::Engine::Argo,
        bundle_dir: opts.bundle_dir.clone(),
        files,
        notes,
        raw_files: Vec::new(),
    })
}

/// The project of an env's own Applications: the env's AppProject when they live in a
/// namespace of their own, else `default`.
fn project_of(stamp: &Stamp) -> String {
    stamp.argo_project().unwrap_or("default").to_string()
}

/// The AppProject of an env whose Applications live in a namespace of their own. Argo CD
/// reconciles an Application outside `argocd` only when its project lists that namespace in
/// `sourceNamespaces` (argoproj/argo-cd v3.5.1 pkg/apis/application/v1alpha1
/// app_project_types.go `IsAppNamespacePermitted`), and looks projects up only in its own
/// namespace (controller/appcontroller.go `getAppProj`). `default` lists none (server/server.go
/// `initializeDefaultProject`), and the docs warn against adding any to it, so the env has one
/// of its own, which permits what `default` does.
fn own_project(stamp: &Stamp) -> Option<Value> {
    let project = stamp.argo_project()?;
    Some(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": project, "namespace": NAMESPACE,
            "labels": {"dev.kindling.stamp": stamp.name}},
        "spec": {
            "description": format!("kindling: the Applications of {project}"),
            "sourceNamespaces": [project],
            "sourceRepos": ["*"],
            "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }))
}

fn root_application(stamp: &Stamp, opts: &RenderOptions) -> Value {
    let mut metadata = ObjectMeta::new(&root_name(stamp), stamp.argo_namespace());
    metadata
        .labels
        .insert("dev.kindling.stamp".into(), stamp.name.clone());
    // Deleting the root cascades to the children and their objects (`env restart`).
    metadata.finalizers = vec!["resources-finalizer.argocd.argoproj.io".to_string()];
    to_value(&Application {
        api_version: "argoproj.io/v1alpha1",
        kind: "Application",
        metadata,
        spec: ApplicationSpec {
            project: project_of(stamp),
            source: Some(ApplicationSource {
                repo_url: opts.repo_url.clone(),
                target_revision: opts.branch.clone(),
                path: Some(format!("{}/argo/apps", opts.bundle_dir)),
                chart: None,
                helm: None,
                directory: Some(DirectorySource {
                    recurse: false,
                    exclude: None,
                }),
            }),
            sources: Vec::new(),
            destination: Destination {
                server: IN_CLUSTER,
                namespace: Some(stamp.argo_namespace().to_string()),
            },
            sync_policy: sync_policy(true),
        },
    })
}

/// The `argocd-cm` keys kindling owns; applied with server-side apply, so the keys the Argo CD
/// install manifest set stay as they are.
fn argocd_cm() -> Value {
    let mut metadata = ObjectMeta::new("argocd-cm", NAMESPACE);
    metadata.labels = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "argocd-cm".to_string(),
        ),
        (
            "app.kubernetes.io/part-of".to_string(),
            "argocd".to_string(),
        ),
    ]);
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ConfigMap {
        api_version: &'static str,
        kind: &'static str,
        metadata: ObjectMeta,
        data: BTreeMap<&'static str, &'static str>,
    }
    to_value(&ConfigMap {
        api_version: "v1",
        kind: "ConfigMap",
        metadata,
        data: BTreeMap::from([(
            "resource.customizations.health.argoproj.io_Application",
            APPLICATION_HEALTH_LUA,
        )]),
    })
}

/// kindling's sync options with an entry's own: an option the entry sets (`KEY=VALUE`)
/// replaces kindling's of the same key.
fn merged_sync_options(mut options: Vec<String>, own: Option<&[String]>) -> Vec<String> {
    for o in own.unwrap_or_default() {
        let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
        options.retain(|mine| mine.split_once('=').map_or(mine.as_str(), |(k, _)| k) != key);
        options.push(o.clone());
    }
    options
}

/// The layout's AppProjects, the placeholder in `sourceRepos` replaced by the env's
/// repository URL. None for an env with a project of its own (a shared Argo CD): AppProject
/// names are one set per Argo CD (argo-cd v3.5.1 controller/appcontroller.go `getAppProj`
/// reads them in argocd only), so two envs of one layout would share them, and the env's
/// repository Secret is scoped to its own project alone (util/db/repository_secrets.go
/// `getRepositorySecret` matches the Application's project exactly). The layout's
/// Applications use the env's project then.
fn kept_projects(stamp: &Stamp, opts: &RenderOptions) -> Vec<Value> {
    if stamp.argo_project().is_some() {
        return Vec::new();
    }
    let mut seen = Vec::new();
    stamp
        .argo
        .projects
        .iter()
        .filter(|p| {
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            !seen.contains(&name) && {
                seen.push(name);
                true
            }
        })
        .map(|p| {
            let mut p = p.clone();
            p["metadata"]["namespace"] = Value::String(NAMESPACE.to_string());
            if let Some(repos) = p["spec"]["sourceRepos"].as_array_mut() {
                for r in repos.iter_mut() {
                    if r == crate::stamp::argo_layout::GITEA_SOURCE_REPO {
                        *r = Value::String(opts.repo_url.clone());
                    }
                }
            }
            p
        })
        .collect()
}

fn child_application(
    stamp: &Stamp,
    entry: &Entry,
    wave: usize,
    mut sources: Vec<ApplicationSource>,
    namespace: Option<String>,
) -> Value {
    let mut metadata =
        ObjectMeta::for_entry(&entry.name, stamp.argo_namespace(), &stamp.name, entry);
    metadata
        .annotations
        .insert("argocd.argoproj.io/sync-wave".into(), wave.to_string());
    metadata.finalizers = vec!["resources-finalizer.argocd.argoproj.io".to_string()];
    let (source, sources) = if sources.len() == 1 {
        (sources.pop(), Vec::new())
    } else {
        (None, sources)
    };
    to_value(&Application {
        api_version: "argoproj.io/v1alpha1",
        kind: "Application",
        metadata,
        spec: ApplicationSpec {
            // An Argo CD layout's own project (the env's on a shared Argo CD:
            // `kept_projects`), and its sync options over kindling's (the layout's value wins
            // for an option both set).
            project: stamp
                .argo
                .entries
                .get(&entry.name)
                .map(|(p, _)| p.clone())
                .filter(|_| stamp.argo_project().is_none())
                .unwrap_or_else(|| project_of(stamp)),
            source,
            sources,
            destination: Destination {
                server: IN_CLUSTER,
                namespace: entry.namespace.clone().or(namespace),
            },
            sync_policy: SyncPolicy {
                automated: sync_policy(entry.prune)
                    .automated
                    .filter(|_| !entry.manual_gate && !entry.applied_directly),
                sync_options: merged_sync_options(
                    sync_policy(entry.prune).sync_options,
                    stamp
                        .argo
                        .entries
                        .get(&entry.name)
                        .map(|(_, o)| o.as_slice()),
                ),
                ..sync_policy(entry.prune)
            },
        },
    })
}

struct Translated {
    sources: Vec<ApplicationSource>,
    /// Destination namespace found while translating (a HelmRelease's target namespace).
    namespace: Option<String>,
    overlay: Option<RenderedFile>,
}

fn sources_for(
    entry: &Entry,
    opts: &RenderOptions,
    notes: &mut Vec<String>,
) -> Result<Translated, StampError> {
    match &entry.source {
        Source::Helm(chart) => Ok(Translated {
            sources: vec![if opts.local_charts.contains_key(&entry.name) {
                // From the loaded bundle: a Git source whose path holds the chart.
                ApplicationSource {
                    helm: helm_source(chart, &entry.name).helm,
                    ..git_source(opts, opts.chart_dir(&entry.name), None)
                }
            } else {
                helm_source(chart, &entry.name)
            }],
            namespace: None,
            overlay: None,
        }),
        Source::Path(path) => from_flux::path_sources(entry, path, opts, notes),
        Source::Remote(remote) => Ok(Translated {
            sources: vec![remote_source(entry, remote, notes)?],
            namespace: None,
            overlay: None,
        }),
    }
}

/// A Flux cluster directory's own source as an Argo CD source: an OCIRepository as an
/// `oci://` source at its tag or digest (argo-cd v3.5.1 docs/user-guide/oci.md), a
/// GitRepository as a Git source at its branch, tag or commit. A Bucket has no Argo CD
/// equivalent.
fn remote_source(
    entry: &Entry,
    remote: &crate::stamp::RemoteSource,
    notes: &mut Vec<String>,
) -> Result<ApplicationSource, StampError> {
    let spec = &remote.object["spec"];
    let reference = &spec["ref"];
    let pick = |keys: &[&str], default: &str| {
        keys.iter()
            .find_map(|k| reference[*k].as_str())
            .unwrap_or(default)
            .to_string()
    };
    let target_revision = match remote.kind.as_str() {
        "OCIRepository" => {
            notes.push(format!(
                "{}: Argo CD reads an OCI artifact whose single layer is application/vnd.oci.image.layer.v1.tar+gzip (or a Helm chart); one made by `flux push artifact` (application/vnd.cncf.flux.content.v1.tar+gzip) needs ARGOCD_REPO_SERVER_OCI_LAYER_MEDIA_TYPES on the repo-server",
                entry.name
            ));
            pick(&["digest", "tag", "semver"], "latest")
        }
        "GitRepository" => pick(&["commit", "tag", "semver", "branch", "name"], "HEAD"),
        other => {
            return Err(StampError::Invalid {
                stamp: entry.name.clone(),
                problems: vec![crate::stamp::Problem::new(
                    &entry.declared_in,
                    Some(&entry.name),
                    "spec.sourceRef",
                    format!("a {other} source has no Argo CD equivalent"),
                    "run this layout with `--engine flux`",
                )],
            });
        }
    };
    Ok(ApplicationSource {
        repo_url: spec["url"].as_str().unwrap_or_default().to_string(),
        target_revision,
        path: Some(if remote.path.is_empty() {
            ".".to_string()
        } else {
            remote.path.clone()
        }),
        chart: None,
        helm: None,
        directory: None,
    })
}

fn helm_source(chart: &HelmChart, entry_name: &str) -> ApplicationSource {
    let (repo_url, _) = argo_helm_repo(&chart.repo);
    ApplicationSource {
        repo_url,
        target_revision: chart.version.clone(),
        path: None,
        chart: Some(chart.chart.clone()),
        helm: Some(HelmSource {
            release_name: chart
                .release_name
                .clone()
                .unwrap_or_else(|| entry_name.to_string()),
            values_object: chart.values.clone(),
        }),
        directory: None,
    }
}

fn git_source(
    opts: &RenderOptions,
    path: String,
    directory: Option<DirectorySource>,
) -> ApplicationSource {
    ApplicationSource {
        repo_url: opts.repo_url.clone(),
        target_revision: opts.branch.clone(),
        path: Some(path),
        chart: None,
        helm: None,
        directory,
    }
}
