//! Argo CD rendering: a root Application (app of apps) whose children are one Application per
//! entry, ordered by `argocd.argoproj.io/sync-wave` = depth in the dependency graph, plus the
//! `argocd-cm` health check for Applications without which Argo CD would not wait for one
//! wave to be Healthy before syncing the next.
//!
//! HostK8s entries may hold Flux HelmRepository + HelmRelease objects; those become Argo CD
//! Helm sources with the same chart, version and values, and the entry's other manifests are
//! served through a generated kustomize overlay that deletes the Flux objects.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

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
    project: &'static str,
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
    automated: Automated,
    sync_options: Vec<&'static str>,
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
        automated: Automated {
            prune,
            self_heal: true,
        },
        // Server-side apply: CRDs such as cert-manager's exceed the client-side annotation limit.
        sync_options: vec!["CreateNamespace=true", "ServerSideApply=true"],
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
        if !entry.health_checks.is_empty() {
            notes.push(format!(
                "{}: healthChecks are not sent to Argo CD, which judges an Application by the health of the objects it manages",
                entry.name
            ));
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
    let mut files = vec![RenderedFile {
        path: "argo/bootstrap.yaml".to_string(),
        documents: vec![root_application(stamp, opts), argocd_cm()],
    }];
    files.extend(apps);
    files.extend(overlays);
    Ok(Rendered {
        engine: super::Engine::Argo,
        bundle_dir: opts.bundle_dir.clone(),
        files,
        notes,
    })
}

fn root_application(stamp: &Stamp, opts: &RenderOptions) -> Value {
    let mut metadata = ObjectMeta::new(&root_name(stamp), NAMESPACE);
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
            project: "default",
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
                namespace: Some(NAMESPACE.to_string()),
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

fn child_application(
    stamp: &Stamp,
    entry: &Entry,
    wave: usize,
    mut sources: Vec<ApplicationSource>,
    namespace: Option<String>,
) -> Value {
    let mut metadata = ObjectMeta::for_entry(&entry.name, NAMESPACE, &stamp.name, entry.role);
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
            project: "default",
            source,
            sources,
            destination: Destination {
                server: IN_CLUSTER,
                namespace: entry.namespace.clone().or(namespace),
            },
            sync_policy: sync_policy(entry.prune),
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
            sources: vec![helm_source(chart, &entry.name)],
            namespace: None,
            overlay: None,
        }),
        Source::Path(path) => path_sources(entry, path, opts, notes),
    }
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

fn path_sources(
    entry: &Entry,
    path: &PathSource,
    opts: &RenderOptions,
    notes: &mut Vec<String>,
) -> Result<Translated, StampError> {
    let has_kustomization = kustomization_file(&path.host_dir).is_some();
    // Flux applies every manifest below a plain directory; Argo CD must be told to recurse.
    let plain_directory = || {
        (!has_kustomization).then_some(DirectorySource {
            recurse: true,
            exclude: None,
        })
    };
    let documents = directory_documents(&path.host_dir)?;
    let (flux, plain): (Vec<&Document>, Vec<&Document>) = documents
        .iter()
        .partition(|d| d.group().ends_with(FLUX_GROUP_SUFFIX));
    if flux.is_empty() {
        return Ok(Translated {
            sources: vec![git_source(opts, path.repo_path.clone(), plain_directory())],
            namespace: None,
            overlay: None,
        });
    }

    let (mut sources, namespace) = helm_sources(entry, &flux, notes);
    for other in flux
        .iter()
        .filter(|d| !matches!(d.kind(), "HelmRelease" | "HelmRepository"))
    {
        notes.push(format!(
            "{}: Flux {} '{}' ({}) has no Argo CD equivalent and is left out",
            entry.name,
            other.kind(),
            other.name(),
            other.file.display()
        ));
    }

    let overlay = if plain.is_empty() {
        None
    } else {
        let (source, overlay) = non_flux_source(entry, path, opts, &flux, &plain, notes);
        sources.push(source);
        overlay
    };
    if sources.is_empty() {
        notes.push(format!(
            "{}: nothing in '{}' can be deployed by Argo CD",
            entry.name, path.repo_path
        ));
    }
    Ok(Translated {
        sources,
        namespace,
        overlay,
    })
}

/// The Helm sources of a path entry's Flux HelmReleases, and the namespace they target.
fn helm_sources(
    entry: &Entry,
    flux: &[&Document],
    notes: &mut Vec<String>,
) -> (Vec<ApplicationSource>, Option<String>) {
    let mut sources = Vec::new();
    let mut namespace: Option<String> = None;
    for release in flux.iter().filter(|d| d.kind() == "HelmRelease") {
        match translate_helm_release(entry, release, flux) {
            Ok((source, target_namespace)) => {
                if namespace.is_some() && namespace != target_namespace {
                    notes.push(format!(
                        "{}: HelmReleases target different namespaces; Argo CD deploys all of them to '{}'",
                        entry.name,
                        namespace.as_deref().unwrap_or_default()
                    ));
                }
                namespace = namespace.or(target_namespace);
                sources.push(source);
            }
            Err(note) => notes.push(format!("{}: {note}", entry.name)),
        }
    }
    (sources, namespace)
}

/// The source of a path entry's other manifests: through a generated overlay that deletes the
/// Flux objects when the directory is a kustomization, else the directory without the files
/// that hold Flux objects.
fn non_flux_source(
    entry: &Entry,
    path: &PathSource,
    opts: &RenderOptions,
    flux: &[&Document],
    plain: &[&Document],
    notes: &mut Vec<String>,
) -> (ApplicationSource, Option<RenderedFile>) {
    if kustomization_file(&path.host_dir).is_some() {
        let dir = format!("{}/argo/overlays/{}", opts.bundle_dir, entry.name);
        let overlay = flux_free_overlay(&dir, &path.repo_path, flux);
        return (git_source(opts, dir, None), Some(overlay));
    }
    // Without a kustomization there is nothing to overlay; leave out the files that
    // hold Flux objects, which works when they hold nothing else.
    let mut flux_files: Vec<String> = flux
        .iter()
        .filter_map(|d| d.file.strip_prefix(&path.host_dir).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    flux_files.sort();
    flux_files.dedup();
    let mixed = plain.iter().any(|p| flux.iter().any(|f| f.file == p.file));
    if mixed {
        notes.push(format!(
            "{}: a file mixes Flux objects with other manifests; add a kustomization.yaml to the directory so kindling can separate them",
            entry.name
        ));
    }
    let source = git_source(
        opts,
        path.repo_path.clone(),
        Some(DirectorySource {
            recurse: true,
            exclude: Some(format!("{{{}}}", flux_files.join(","))),
        }),
    );
    (source, None)
}

/// A Flux HelmRelease as an Argo CD Helm source: same chart, version, release name and values.
fn translate_helm_release(
    entry: &Entry,
    release: &Document,
    flux: &[&Document],
) -> Result<(ApplicationSource, Option<String>), String> {
    let spec = release.value.get("spec").cloned().unwrap_or(Value::Null);
    let chart_spec = spec.pointer("/chart/spec").cloned().unwrap_or(Value::Null);
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let Some(chart) = text(&chart_spec, "/chart") else {
        return Err(format!(
            "HelmRelease '{}' uses spec.chartRef or has no chart; only spec.chart.spec can be translated",
            release.name()
        ));
    };
    let source_kind = text(&chart_spec, "/sourceRef/kind").unwrap_or_default();
    let source_name = text(&chart_spec, "/sourceRef/name").unwrap_or_default();
    if source_kind != "HelmRepository" {
        return Err(format!(
            "HelmRelease '{}' takes its chart from a {source_kind}; only HelmRepository sources can be translated",
            release.name()
        ));
    }
    let Some(repository) = flux
        .iter()
        .find(|d| d.kind() == "HelmRepository" && d.name() == source_name)
    else {
        return Err(format!(
            "HelmRelease '{}' refers to HelmRepository '{source_name}', which is not in the entry's directory",
            release.name()
        ));
    };
    let url = text(&repository.value, "/spec/url").unwrap_or_default();
    let url = if text(&repository.value, "/spec/type").as_deref() == Some("oci")
        && !url.starts_with("oci://")
    {
        format!("oci://{url}")
    } else {
        url
    };
    if spec.get("valuesFrom").is_some() {
        return Err(format!(
            "HelmRelease '{}': valuesFrom (values read from ConfigMaps/Secrets at run time) cannot be translated; inline the values",
            release.name()
        ));
    }
    let values = spec
        .get("values")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let helm = HelmChart {
        repo: url,
        chart,
        // Flux's default is the latest version; Argo CD's semver constraints accept `*`.
        version: text(&chart_spec, "/version").unwrap_or_else(|| "*".to_string()),
        release_name: Some(
            text(&spec, "/releaseName").unwrap_or_else(|| release.name().to_string()),
        ),
        values,
    };
    let namespace =
        text(&spec, "/targetNamespace").or_else(|| release.namespace().map(str::to_string));
    Ok((helm_source(&helm, &entry.name), namespace))
}

/// A kustomization that builds the entry's directory without its Flux objects.
fn flux_free_overlay(overlay_dir: &str, repo_path: &str, flux: &[&Document]) -> RenderedFile {
    let depth = overlay_dir.split('/').filter(|s| !s.is_empty()).count();
    let resource = format!("{}{}", "../".repeat(depth), repo_path);
    let patches: Vec<Value> = flux
        .iter()
        .map(|d| {
            let mut target = Map::new();
            target.insert("apiVersion".into(), d.api_version().into());
            target.insert("kind".into(), d.kind().into());
            let mut metadata = Map::new();
            metadata.insert("name".into(), d.name().into());
            if let Some(ns) = d.namespace() {
                metadata.insert("namespace".into(), ns.into());
            }
            target.insert("metadata".into(), Value::Object(metadata));
            let body = serde_yaml_ng::to_string(&target).unwrap_or_default();
            let mut patch = Map::new();
            patch.insert("patch".into(), format!("$patch: delete\n{body}").into());
            Value::Object(patch)
        })
        .collect();
    let mut kustomization = Map::new();
    kustomization.insert(
        "apiVersion".into(),
        "kustomize.config.k8s.io/v1beta1".into(),
    );
    kustomization.insert("kind".into(), "Kustomization".into());
    kustomization.insert("resources".into(), Value::Array(vec![resource.into()]));
    kustomization.insert("patches".into(), Value::Array(patches));
    RenderedFile {
        path: format!(
            "{}/kustomization.yaml",
            overlay_dir
                .split_once("/argo/")
                .map(|(_, rest)| format!("argo/{rest}"))
                .unwrap_or_else(|| overlay_dir.to_string())
        ),
        documents: vec![Value::Object(kustomization)],
    }
}
