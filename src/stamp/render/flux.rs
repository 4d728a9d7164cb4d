//! Flux rendering: one GitRepository, one Kustomization per entry (dependsOn, healthChecks,
//! wait, timeout), and per Helm entry a HelmRepository + HelmRelease.
//!
//! kustomize-controller never reads `healthChecks` when `wait` is true (v1.9.4
//! internal/controller/kustomization_controller.go, checkHealth: "if obj.Spec.Wait { toCheck =
//! resultSet }"). A kindling stamp means both, so an entry that waits and names health checks
//! gets a second Kustomization, `<entry>.health`: it applies nothing (an empty directory of
//! the bundle), depends on the entry, and checks the named objects with `wait: false`. The
//! entry's dependents depend on it, so the entry's own workloads and its named checks both
//! gate them. A HostK8s stack keeps the meaning Flux gives it under HostK8s.
//!
//! Flux's `dependsOn` only links objects of the same kind, so a Helm entry's HelmRepository
//! and HelmRelease live in a directory of the bundle that its own Kustomization applies (with
//! `wait`): every dependency in the stamp is then a Kustomization → Kustomization edge.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{ObjectMeta, RenderOptions, Rendered, RenderedFile, to_value};
use crate::stamp::{Entry, HealthCheck, HelmChart, Source, Stamp, StampFormat};

/// Flux's own namespace, where it runs and where a stamp's Flux objects live unless the env
/// gives them one of their own (`Stamp::flux_namespace`).
pub const NAMESPACE: &str = "flux-system";
pub const GIT_REPOSITORY: &str = "kindling";
const DEFAULT_TIMEOUT: &str = "5m";

/// Deleting a Kustomization waits until what it applied is gone. With the default
/// (MirrorPrune) kustomize-controller removes its finalizer as soon as the deletes are sent
/// (fluxcd/kustomize-controller v1.9.4 internal/controller/kustomization_controller.go,
/// finalize), while the Namespaces are still Terminating: `env restart` would then re-apply
/// the bootstrap Secrets into namespaces about to vanish. With this policy the root is gone
/// only once the entries are, and each entry only once its objects are (or its timeout,
/// at least 30s, has passed). An entry with `prune: false` keeps Flux's default, which
/// deletes nothing then (WaitForTermination would delete whatever `prune` says).
const DELETION_POLICY: &str = "WaitForTermination";

fn deletion_policy(prune: bool) -> Option<&'static str> {
    prune.then_some(DELETION_POLICY)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Object<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta,
    spec: S,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GitRepositorySpec {
    interval: String,
    url: String,
    #[serde(rename = "ref")]
    reference: GitReference,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_ref: Option<LocalReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignore: Option<String>,
}

#[derive(Serialize)]
struct GitReference {
    branch: String,
}

#[derive(Serialize)]
struct LocalReference {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KustomizationSpec {
    interval: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_interval: Option<String>,
    timeout: String,
    path: String,
    prune: bool,
    wait: bool,
    /// `WaitForTermination` where the Kustomization prunes: see [`DELETION_POLICY`].
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_policy: Option<&'static str>,
    source_ref: CrossReference,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<DependencyReference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    health_checks: Vec<HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_namespace: Option<String>,
    /// A manual gate not approved yet: kustomize-controller skips a suspended Kustomization,
    /// and its dependents wait on it (api/v1 `KustomizationSpec.Suspend`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    suspend: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CrossReference {
    kind: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

#[derive(Serialize)]
struct DependencyReference {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HelmRepositorySpec {
    interval: &'static str,
    url: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    repository_type: Option<&'static str>,
    /// The network's root CAs: source-controller adds `ca.crt` of this Secret (same
    /// namespace) to the system roots for HTTPS and OCI repositories (fluxcd/source-controller
    /// v1.9 internal/helm/getter/client_opts.go, with fluxcd/pkg runtime/secrets
    /// TLSConfigFromSecret and WithSystemCertPool).
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_secret_ref: Option<LocalReference>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HelmReleaseSpec {
    interval: &'static str,
    release_name: String,
    target_namespace: String,
    timeout: String,
    chart: HelmChartTemplate,
    install: HelmInstall,
    upgrade: HelmUpgrade,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<DependencyReference>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    values: Map<String, Value>,
}

#[derive(Serialize)]
struct HelmChartTemplate {
    spec: HelmChartTemplateSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HelmChartTemplateSpec {
    chart: String,
    version: String,
    source_ref: CrossReference,
    interval: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HelmInstall {
    create_namespace: bool,
    crds: &'static str,
    remediation: Remediation,
    /// On a shared cluster: helm-controller takes over objects a chart renders that exist
    /// already unless told not to (fluxcd/helm-controller v1.6.3 internal/action/install.go
    /// `install.TakeOwnership = !obj.GetInstall().DisableTakeOwnership`); then Helm refuses
    /// them (helm v4 pkg/action/validate.go `existingResourceConflict`) and the env never
    /// owns, nor deletes, what someone else made.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_take_ownership: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HelmUpgrade {
    crds: &'static str,
    remediation: Remediation,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_take_ownership: bool,
}

#[derive(Serialize)]
struct Remediation {
    retries: u32,
}

/// The name of an entry's health-check Kustomization.
pub fn health_name(entry: &str) -> String {
    format!("{entry}.health")
}

/// The bundle directory the health-check Kustomizations point at: it holds an empty
/// kustomization, so they apply nothing.
const EMPTY_DIR: &str = "flux/empty";

/// Whether the entry waits for its own objects (Helm entries always do: their Kustomization
/// waits for the HelmRelease).
fn waits(entry: &Entry) -> bool {
    matches!(entry.source, Source::Helm(_)) || entry.wait
}

/// Whether the entry gets a `<entry>.health` Kustomization: it waits and names health checks,
/// which Flux would otherwise ignore, in a kindling stamp (not a HostK8s stack).
pub fn has_health_kustomization(stamp: &Stamp, entry: &Entry) -> bool {
    stamp.format == StampFormat::Kindling && waits(entry) && !entry.health_checks.is_empty()
}

/// What a dependent names to wait for `dependency`: its health-check Kustomization when it has
/// one.
fn gate_of(stamp: &Stamp, dependency: &str) -> String {
    match stamp.entry(dependency) {
        Some(e) if has_health_kustomization(stamp, e) => health_name(dependency),
        _ => dependency.to_string(),
    }
}

pub fn render(stamp: &Stamp, opts: &RenderOptions) -> Rendered {
    let mut files = vec![RenderedFile {
        path: "flux/bootstrap.yaml".to_string(),
        documents: vec![git_repository(stamp, opts), root_kustomization(stamp, opts)],
    }];
    if stamp
        .entries
        .iter()
        .any(|e| has_health_kustomization(stamp, e))
    {
        files.push(RenderedFile {
            path: format!("{EMPTY_DIR}/kustomization.yaml"),
            documents: vec![serde_json::json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [],
            })],
        });
    }
    // A cluster directory's own sources, as it declared them, applied by the root with the
    // entries that read them. Those of Flux's namespace (`flux create source … --export`
    // writes `namespace: flux-system`) go where the env's Flux objects go: the entries' own
    // `sourceRef` names no namespace, so Flux reads it from the entry's
    // (kustomize-controller v1.9.4 kustomization_controller.go `getSource`).
    if !stamp.flux_sources.is_empty() {
        files.push(RenderedFile {
            path: "flux/stamp/sources.yaml".to_string(),
            documents: stamp
                .flux_sources
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    if s["metadata"]["namespace"].is_null()
                        || s["metadata"]["namespace"] == NAMESPACE
                    {
                        s["metadata"]["namespace"] =
                            Value::String(stamp.flux_namespace().to_string());
                    }
                    s
                })
                .collect(),
        });
    }
    for entry in stamp.ordered_entries() {
        if let Source::Helm(chart) = &entry.source {
            files.push(RenderedFile {
                path: format!("flux/helm/{}/release.yaml", entry.name),
                documents: helm_objects(stamp, entry, chart, opts),
            });
        }
        let mut documents = vec![entry_kustomization(stamp, entry, opts)];
        if has_health_kustomization(stamp, entry) {
            documents.push(health_kustomization(stamp, entry, opts));
        }
        files.push(RenderedFile {
            path: format!("flux/stamp/{}.yaml", entry.name),
            documents,
        });
    }
    Rendered {
        engine: super::Engine::Flux,
        bundle_dir: opts.bundle_dir.clone(),
        files,
        notes: Vec::new(),
        raw_files: Vec::new(),
    }
}

/// The stamp's own ignore patterns, plus the rendered bundle, which must always be served.
///
/// source-controller appends `spec.ignore` after its default exclusions and the repository's
/// `.sourceignore` files, and the last match wins (fluxcd/source-controller v1.9
/// internal/controller/gitrepository_controller.go reconcileArtifact; fluxcd/pkg sourceignore
/// ExcludeExt `*.png,*.tar.gz,…`). Local charts under the bundle directory may hold such
/// files, so with local charts the bundle directory is re-included even when the stamp sets
/// no patterns of its own.
fn ignore_patterns(stamp: &Stamp, opts: &RenderOptions) -> Option<String> {
    if stamp.ignore.is_empty() && opts.local_charts.is_empty() {
        return None;
    }
    let mut lines = stamp.ignore.clone();
    lines.push(format!("!/{}/", opts.bundle_dir));
    Some(lines.join("\n") + "\n")
}

fn git_repository(stamp: &Stamp, opts: &RenderOptions) -> Value {
    to_value(&Object {
        api_version: "source.toolkit.fluxcd.io/v1",
        kind: "GitRepository",
        metadata: ObjectMeta::new(GIT_REPOSITORY, stamp.flux_namespace()),
        spec: GitRepositorySpec {
            // Short, because `env sync` also requests reconciliation explicitly.
            interval: "1m".to_string(),
            url: opts.repo_url.clone(),
            reference: GitReference {
                branch: opts.branch.clone(),
            },
            secret_ref: opts
                .credentials_secret
                .as_ref()
                .map(|name| LocalReference { name: name.clone() }),
            ignore: ignore_patterns(stamp, opts),
        },
    })
}

/// The name of the Kustomization that applies a stamp's entries.
pub fn root_name(stamp: &Stamp) -> String {
    format!("kindling-{}", stamp.name)
}

fn root_kustomization(stamp: &Stamp, opts: &RenderOptions) -> Value {
    to_value(&Object {
        api_version: "kustomize.toolkit.fluxcd.io/v1",
        kind: "Kustomization",
        metadata: ObjectMeta::new(&root_name(stamp), stamp.flux_namespace()),
        spec: KustomizationSpec {
            interval: "10m".to_string(),
            retry_interval: Some("30s".to_string()),
            timeout: DEFAULT_TIMEOUT.to_string(),
            path: format!("./{}/flux/stamp", opts.bundle_dir),
            prune: true,
            // The entries report their own readiness; the root only has to apply them.
            wait: false,
            deletion_policy: deletion_policy(true),
            source_ref: git_source_ref(),
            depends_on: Vec::new(),
            health_checks: Vec::new(),
            target_namespace: None,
            // `--hold` is the bootstrap's (`crate::engine::flux::bootstrap_objects`).
            suspend: false,
        },
    })
}

fn git_source_ref() -> CrossReference {
    CrossReference {
        kind: "GitRepository",
        name: GIT_REPOSITORY.to_string(),
        namespace: None,
    }
}

fn entry_kustomization(stamp: &Stamp, entry: &Entry, opts: &RenderOptions) -> Value {
    let mut source_ref = git_source_ref();
    let (path, target_namespace, wait) = match &entry.source {
        Source::Path(p) => (
            format!("./{}", p.repo_path),
            entry.namespace.clone(),
            entry.wait,
        ),
        // The layout's own source, as it declared it (rendered beside the entries).
        Source::Remote(r) => {
            source_ref = CrossReference {
                kind: remote_kind(&r.kind),
                name: r.name.clone(),
                namespace: None,
            };
            (format!("./{}", r.path), entry.namespace.clone(), entry.wait)
        }
        // The HelmRelease stays in flux-system (it names its own target namespace), and the
        // Kustomization must wait for it, or dependents would start before the chart is up.
        Source::Helm(_) => (
            format!("./{}/flux/helm/{}", opts.bundle_dir, entry.name),
            None,
            true,
        ),
    };
    // With a health-check Kustomization the named checks live there; here Flux would ignore
    // them.
    let health_checks = if has_health_kustomization(stamp, entry) {
        Vec::new()
    } else {
        resolved_checks(stamp, entry)
    };
    to_value(&Object {
        api_version: "kustomize.toolkit.fluxcd.io/v1",
        kind: "Kustomization",
        metadata: ObjectMeta::for_entry(&entry.name, stamp.flux_namespace(), &stamp.name, entry),
        spec: KustomizationSpec {
            interval: entry.interval.clone().unwrap_or_else(|| "10m".to_string()),
            retry_interval: Some(retry_interval_of(entry)),
            timeout: timeout_of(entry),
            path,
            prune: entry.prune,
            wait,
            deletion_policy: deletion_policy(entry.prune),
            source_ref,
            depends_on: entry
                .depends_on
                .iter()
                .map(|d| DependencyReference {
                    name: gate_of(stamp, d),
                    namespace: None,
                })
                .collect(),
            health_checks,
            target_namespace,
            suspend: entry.manual_gate || entry.applied_directly,
        },
    })
}

/// The kinds a Kustomization's `sourceRef` takes (kustomize-controller v1.9.4 api/v1
/// `CrossNamespaceSourceReference`: GitRepository, OCIRepository, Bucket).
fn remote_kind(kind: &str) -> &'static str {
    match kind {
        "OCIRepository" => "OCIRepository",
        "Bucket" => "Bucket",
        _ => "GitRepository",
    }
}

fn retry_interval_of(entry: &Entry) -> String {
    entry
        .retry_interval
        .clone()
        .unwrap_or_else(|| "1m".to_string())
}

fn timeout_of(entry: &Entry) -> String {
    entry
        .timeout
        .clone()
        .unwrap_or_else(|| DEFAULT_TIMEOUT.to_string())
}

/// The entry's health checks as Flux reads them: the apiVersion filled in for well-known
/// kinds and, in a kindling stamp, a namespaced object's namespace defaulting to the entry's
/// (Flux would look for an empty namespace and never find it). A HostK8s stack's checks stay
/// as written.
fn resolved_checks(stamp: &Stamp, entry: &Entry) -> Vec<HealthCheck> {
    entry
        .health_checks
        .iter()
        .map(|h| {
            let namespace = match (&h.namespace, stamp.format) {
                (None, StampFormat::Kindling) if !crate::stamp::is_cluster_scoped(&h.kind) => {
                    entry.namespace.clone()
                }
                (ns, _) => ns.clone(),
            };
            HealthCheck {
                api_version: h.resolved_api_version().map(str::to_string),
                namespace,
                ..h.clone()
            }
        })
        .collect()
}

/// `<entry>.health`: after the entry is Ready, the entry's named checks, with the entry's
/// timeout and retry interval.
fn health_kustomization(stamp: &Stamp, entry: &Entry, opts: &RenderOptions) -> Value {
    to_value(&Object {
        api_version: "kustomize.toolkit.fluxcd.io/v1",
        kind: "Kustomization",
        metadata: ObjectMeta::for_entry(
            &health_name(&entry.name),
            stamp.flux_namespace(),
            &stamp.name,
            entry,
        ),
        spec: KustomizationSpec {
            interval: entry.interval.clone().unwrap_or_else(|| "10m".to_string()),
            retry_interval: Some(retry_interval_of(entry)),
            timeout: timeout_of(entry),
            path: format!("./{}/{EMPTY_DIR}", opts.bundle_dir),
            prune: true,
            wait: false,
            deletion_policy: deletion_policy(true),
            source_ref: git_source_ref(),
            depends_on: vec![DependencyReference {
                name: entry.name.clone(),
                namespace: None,
            }],
            health_checks: resolved_checks(stamp, entry),
            target_namespace: None,
            suspend: false,
        },
    })
}

fn helm_objects(
    stamp: &Stamp,
    entry: &Entry,
    chart: &HelmChart,
    opts: &RenderOptions,
) -> Vec<Value> {
    let tls = crate::pki::extra_ca::tls_host(&chart.repo).is_some();
    let local = opts.local_charts.contains_key(&entry.name);
    let repository = to_value(&Object {
        api_version: "source.toolkit.fluxcd.io/v1",
        kind: "HelmRepository",
        metadata: ObjectMeta::for_entry(&entry.name, stamp.flux_namespace(), &stamp.name, entry),
        spec: HelmRepositorySpec {
            interval: "1h",
            url: chart.repo.clone(),
            repository_type: chart.is_oci().then_some("oci"),
            cert_secret_ref: opts
                .chart_ca_secret
                .clone()
                .filter(|_| tls)
                .map(|name| LocalReference { name }),
        },
    });
    // HelmRelease dependsOn may only name HelmReleases; the Kustomization carries the rest.
    let helm_dependencies = entry
        .depends_on
        .iter()
        .filter(|d| {
            stamp
                .entry(d)
                .is_some_and(|e| matches!(e.source, Source::Helm(_)))
        })
        .map(|d| DependencyReference {
            name: d.clone(),
            namespace: Some(stamp.flux_namespace().to_string()),
        })
        .collect();
    let release = to_value(&Object {
        api_version: "helm.toolkit.fluxcd.io/v2",
        kind: "HelmRelease",
        metadata: ObjectMeta::for_entry(&entry.name, stamp.flux_namespace(), &stamp.name, entry),
        spec: HelmReleaseSpec {
            interval: "10m",
            release_name: chart
                .release_name
                .clone()
                .unwrap_or_else(|| entry.name.clone()),
            target_namespace: entry
                .namespace
                .clone()
                .unwrap_or_else(|| entry.name.clone()),
            timeout: entry
                .timeout
                .clone()
                .unwrap_or_else(|| DEFAULT_TIMEOUT.to_string()),
            chart: HelmChartTemplate {
                spec: HelmChartTemplateSpec {
                    chart: if local {
                        format!("./{}", opts.chart_dir(&entry.name))
                    } else {
                        chart.chart.clone()
                    },
                    // Ignored for a chart from a GitRepository (helm-controller v1.6.3
                    // api/v2/helmrelease_types.go HelmChartTemplateSpec.Version); kept to
                    // say which version the bundle brought.
                    version: chart.version.clone(),
                    source_ref: if local {
                        CrossReference {
                            kind: "GitRepository",
                            name: GIT_REPOSITORY.to_string(),
                            namespace: Some(stamp.flux_namespace().to_string()),
                        }
                    } else {
                        CrossReference {
                            kind: "HelmRepository",
                            name: entry.name.clone(),
                            namespace: Some(stamp.flux_namespace().to_string()),
                        }
                    },
                    interval: "1h",
                },
            },
            install: HelmInstall {
                create_namespace: true,
                crds: "CreateReplace",
                remediation: Remediation { retries: 3 },
                disable_take_ownership: stamp.shared_cluster,
            },
            upgrade: HelmUpgrade {
                crds: "CreateReplace",
                remediation: Remediation { retries: 3 },
                disable_take_ownership: stamp.shared_cluster,
            },
            depends_on: helm_dependencies,
            values: chart.values.clone(),
        },
    });
    // A chart from the loaded bundle is read from the env's own repository: no
    // HelmRepository, nothing fetched from the chart's home.
    if local {
        vec![release]
    } else {
        vec![repository, release]
    }
}
