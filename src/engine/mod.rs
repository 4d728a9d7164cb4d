//! The GitOps engines, Flux and Argo CD, behind one face: install from the pinned upstream
//! manifest, bootstrap on the env's Gitea repository, request reconciliation now, and report
//! per-entry status in one model. What can be decided without a cluster (objects, patch
//! bodies, status interpretation) is pure and lives in `flux`/`argo`/`status`; the functions
//! here only move those through the Kubernetes API.

pub mod argo;
pub mod detect;
pub mod extra_ca;
pub mod flux;
pub mod manifests;
pub mod secrets;
pub mod status;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::kube::{ApplyOptions, INSTALL_FIELD_MANAGER, KubeClient, KubeError};
use crate::stamp::Stamp;
pub use crate::stamp::render::Engine;
pub use status::{EngineStatus, EntryStatus, Readiness};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Manifest(String),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(
        "the stamp's bootstrap secrets would read from this host what you have not allowed:\n{}\nhelp: a stamp can copy these into a Secret its own workloads read; if the stamp is yours and it should, allow each with `--allow-secret-from NAME` (repeatable) or KINDLING_ALLOW_SECRET_FROM=NAME,NAME ({}); on a terminal, env create and env restart ask",
        .0.iter().map(|s| format!("  - {} key {}: {}", s.secret, s.key, s.what)).collect::<Vec<_>>().join("\n"),
        .0.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(",")
    )]
    Consent(Vec<secrets::HostSource>),
    #[error("bootstrap secret {secret}, key {key}: {reason}\nhelp: {help}")]
    Secret {
        secret: String,
        key: String,
        reason: String,
        help: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The Gitea credentials the engine clones with (a token as password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitCredentials {
    pub url: String,
    pub username: String,
    pub password: String,
}

/// The namespace an engine runs in.
pub fn namespace(engine: Engine) -> &'static str {
    match engine {
        Engine::Flux => flux::NAMESPACE,
        Engine::Argo => argo::NAMESPACE,
    }
}

/// Where an env's engine objects live (Flux's Git credentials, source, root and entries; Argo
/// CD's Applications): the env's own namespace on a shared cluster, else the engine's
/// (`crate::stamp::Stamp::own_objects_namespace`).
pub fn objects_namespace(engine: Engine, stamp: &crate::stamp::Stamp) -> &str {
    objects_namespace_in(engine, stamp.own_objects_namespace.as_deref())
}

/// The same for an env whose engine objects go to `own` (None: the engine's namespace),
/// before its stamp is fitted to it.
pub fn objects_namespace_in(engine: Engine, own: Option<&str>) -> &str {
    own.unwrap_or(namespace(engine))
}

/// The objects of an install manifest, as kindling applies them: Argo CD's manifest names no
/// namespace (it is applied with `-n argocd`), so its Namespace is added in front.
///
/// Argo CD's `argocd-cmd-params-cm` gets `application.namespaces: kindling-*`, so every env on
/// it may keep its Applications in a namespace of its own ("Applications in any namespace").
/// The controller and server read the key only when they start (argoproj/argo-cd v3.5.1
/// docs/operator-manual/app-any-namespace.md), so it is in the ConfigMap before they first
/// do: install.yaml has the ConfigMap, empty, and its workloads read the key through
/// `configMapKeyRef` (manifests/install.yaml `ARGOCD_APPLICATION_NAMESPACES`).
pub fn install_objects(engine: Engine, manifest: &str) -> Result<Vec<Value>, KubeError> {
    let mut objects = crate::kube::parse_bundle(manifest)?;
    let ns = namespace(engine);
    let has_namespace = objects
        .iter()
        .any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == ns);
    if !has_namespace {
        objects.insert(0, namespace_object(ns));
    }
    if engine == Engine::Argo {
        let params = objects
            .iter_mut()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "argocd-cmd-params-cm");
        match params {
            Some(cm) => {
                cm["data"]["application.namespaces"] =
                    json!(detect::KINDLING_APPLICATION_NAMESPACES);
            }
            None => objects.push(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "argocd-cmd-params-cm", "labels": {
                    "app.kubernetes.io/name": "argocd-cmd-params-cm",
                    "app.kubernetes.io/part-of": "argocd"}},
                "data": {"application.namespaces": detect::KINDLING_APPLICATION_NAMESPACES},
            })),
        }
    }
    Ok(objects)
}

/// The proxy variables added to every container of the install manifest's workloads, so the
/// controllers reach chart repositories and OCI registries through the user's proxy (a
/// variable the manifest sets itself is left as it is).
pub fn with_proxy(objects: &mut [Value], variables: &[(String, String)]) {
    if variables.is_empty() {
        return;
    }
    for object in objects.iter_mut() {
        if !matches!(
            object["kind"].as_str(),
            Some("Deployment" | "StatefulSet" | "DaemonSet")
        ) {
            continue;
        }
        let Some(containers) = object["spec"]["template"]["spec"]["containers"].as_array_mut()
        else {
            continue;
        };
        for container in containers {
            let env = container["env"].as_array().cloned().unwrap_or_default();
            let mut env = env;
            for (name, value) in variables {
                if !env.iter().any(|e| e["name"] == name.as_str()) {
                    env.push(json!({"name": name, "value": value}));
                }
            }
            container["env"] = Value::Array(env);
        }
    }
}

pub fn namespace_object(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kindling"}},
    })
}

/// Applies the install manifest (its own field manager, namespace-less objects into the
/// engine's namespace) and waits for the controllers.
pub async fn install(
    kube: &KubeClient,
    engine: Engine,
    manifest: &str,
    proxy: &[(String, String)],
    extra: &[Value],
    timeout: Duration,
) -> Result<usize, EngineError> {
    let mut objects = install_objects(engine, manifest)?;
    with_proxy(&mut objects, proxy);
    extra_ca::merge_into(&mut objects, extra);
    let options = ApplyOptions {
        field_manager: INSTALL_FIELD_MANAGER,
        default_namespace: Some(namespace(engine)),
        crd_timeout: timeout,
    };
    let applied = kube.apply_objects(&objects, &options).await?;
    kube.wait_workloads_ready(namespace(engine), timeout)
        .await?;
    Ok(applied.len())
}

/// The objects that point the engine at the env's repository: the credentials Secret and the
/// renderer's bootstrap file (GitRepository + root Kustomization, or root Application +
/// argocd-cm). With `hold` the root is registered but does not reconcile.
pub fn bootstrap_objects(
    engine: Engine,
    stamp: &Stamp,
    rendered_bootstrap: &[Value],
    credentials: &GitCredentials,
    hold: bool,
) -> Vec<Value> {
    match engine {
        Engine::Flux => flux::bootstrap_objects(stamp, rendered_bootstrap, credentials, hold),
        Engine::Argo => argo::bootstrap_objects(stamp, rendered_bootstrap, credentials, hold),
    }
}

/// The CA Secret cert-manager's ClusterIssuer reads, with its namespace ahead of it.
pub fn ca_objects(ca_secret: &Value) -> Vec<Value> {
    let ns = ca_secret["metadata"]["namespace"]
        .as_str()
        .unwrap_or("cert-manager");
    vec![namespace_object(ns), ca_secret.clone()]
}

/// Asks the engine to reconcile now instead of at its next poll; returns what was patched.
pub async fn request_reconcile(
    kube: &KubeClient,
    engine: Engine,
    stamp: &Stamp,
    now: time::OffsetDateTime,
) -> Result<Vec<String>, EngineError> {
    let requests = match engine {
        Engine::Flux => flux::reconcile_requests(stamp, now),
        Engine::Argo => {
            let root = kube
                .get(
                    argo::API_VERSION,
                    "Application",
                    Some(stamp.argo_namespace()),
                    &argo::root_name(stamp),
                )
                .await?;
            argo::reconcile_requests(stamp, root.as_ref())
        }
    };
    let mut patched = Vec::new();
    for r in requests {
        let exists = kube
            .get(&r.api_version, &r.kind, Some(&r.namespace), &r.name)
            .await?
            .is_some();
        // Children appear only after the root applied them; patching what is not there yet
        // would fail, and they reconcile on creation anyway.
        if !exists {
            continue;
        }
        r.send(kube).await?;
        patched.push(format!("{} {}", r.kind, r.name));
    }
    Ok(patched)
}

/// `env approve`: re-applies the bootstrap objects without the hold, then (Argo CD) starts
/// the root's first sync and asks for reconciliation now.
pub async fn approve(
    kube: &KubeClient,
    engine: Engine,
    stamp: &Stamp,
    bootstrap: &[Value],
    branch: &str,
    now: time::OffsetDateTime,
) -> Result<Vec<String>, EngineError> {
    kube.apply_objects(bootstrap, &ApplyOptions::new(Duration::from_secs(60)))
        .await?;
    let mut patched = Vec::new();
    if engine == Engine::Argo {
        for r in argo::approve_requests(stamp, branch) {
            r.send(kube).await?;
            patched.push(format!("{} {} (sync)", r.kind, r.name));
        }
    }
    patched.extend(request_reconcile(kube, engine, stamp, now).await?);
    Ok(patched)
}

/// One merge patch of a reconcile request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub patch: Value,
}

impl PatchRequest {
    async fn send(&self, kube: &KubeClient) -> Result<(), KubeError> {
        kube.merge_patch(
            &self.api_version,
            &self.kind,
            Some(&self.namespace),
            &self.name,
            &self.patch,
        )
        .await
    }
}

/// A Secret kindling owns, its values base64-encoded into `data` (never `stringData`, so the
/// plain values are nowhere in the object).
pub fn secret_object(
    name: &str,
    namespace: &str,
    labels: &[(&str, &str)],
    values: &[(&str, &str)],
) -> Value {
    use base64::Engine as _;
    let mut all_labels = serde_json::Map::new();
    all_labels.insert("app.kubernetes.io/managed-by".into(), json!("kindling"));
    for (k, v) in labels {
        all_labels.insert(k.to_string(), json!(v));
    }
    let data: serde_json::Map<String, Value> = values
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                json!(base64::engine::general_purpose::STANDARD.encode(v.as_bytes())),
            )
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": all_labels},
        "type": "Opaque",
        "data": data,
    })
}

/// The engine's view of the stamp, entry by entry.
pub async fn status(
    kube: &KubeClient,
    engine: Engine,
    stamp: &Stamp,
) -> Result<EngineStatus, EngineError> {
    Ok(match engine {
        Engine::Flux => {
            let ns = Some(stamp.flux_namespace());
            let kustomizations = kube
                .list(flux::KUSTOMIZATION_API, "Kustomization", ns)
                .await?;
            let releases = kube.list(flux::HELM_RELEASE_API, "HelmRelease", ns).await?;
            let source = kube
                .get(
                    flux::GIT_REPOSITORY_API,
                    "GitRepository",
                    ns,
                    flux::GIT_REPOSITORY,
                )
                .await?;
            flux::status(stamp, source.as_ref(), &kustomizations, &releases)
        }
        Engine::Argo => {
            let apps = kube
                .list(
                    argo::API_VERSION,
                    "Application",
                    Some(stamp.argo_namespace()),
                )
                .await?;
            argo::status(stamp, &apps)
        }
    })
}

/// A wait's verdict: done when nothing is left, else what still is.
fn still_present(left: Vec<String>) -> Result<(), String> {
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("still present: {}", left.join(", ")))
    }
}

/// Removes some entries of a stamp that stays (`env down` of a stack): each entry's engine
/// object is deleted (Flux prunes what the Kustomization applied; Argo CD's resources
/// finalizer cascades) and this waits until every one is gone. The root was re-applied
/// without them first, so its own prune agrees; until it has reconciled the new commit it
/// may apply an entry again, which is deleted again. `objects_namespace` is where the env's
/// engine objects live (`objects_namespace`).
pub async fn remove_entries(
    kube: &KubeClient,
    engine: Engine,
    objects_namespace: &str,
    names: &[String],
    timeout: Duration,
) -> Result<(), EngineError> {
    if names.is_empty() {
        return Ok(());
    }
    let (api_version, kind, ns) = match engine {
        Engine::Flux => (flux::KUSTOMIZATION_API, "Kustomization", objects_namespace),
        Engine::Argo => (argo::API_VERSION, "Application", objects_namespace),
    };
    let objects: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({
                "apiVersion": api_version, "kind": kind,
                "metadata": {"name": name, "namespace": ns},
            })
        })
        .collect();
    kube.wait_for(
        &format!("{} to be removed", names.join(", ")),
        timeout,
        || async {
            let mut left = Vec::new();
            for (name, object) in names.iter().zip(&objects) {
                let Some(live) = kube.get(api_version, kind, Some(ns), name).await? else {
                    continue;
                };
                if live["metadata"]["deletionTimestamp"].is_null() {
                    kube.delete_objects(std::slice::from_ref(object)).await?;
                }
                left.push(format!("{kind} {name}"));
            }
            Ok(still_present(left))
        },
    )
    .await?;
    Ok(())
}

/// Removes the stamp from the cluster through the engine: deleting the root (Flux prunes
/// what its Kustomizations applied; Argo CD's resources finalizer cascades) and waiting until
/// all of it is really gone: the root itself (its finalizer stays until the entries are
/// gone), every entry, and the namespaces of the stamp's bootstrap Secrets, which the stamp
/// usually applies too. A Namespace that is still Terminating refuses new content (and
/// takes with it what is put there), so `env restart` must not re-apply the Secrets before.
pub async fn remove_stamp(
    kube: &KubeClient,
    engine: Engine,
    stamp: &Stamp,
    timeout: Duration,
) -> Result<(), EngineError> {
    let (api_version, kind, ns, root) = match engine {
        Engine::Flux => (
            flux::KUSTOMIZATION_API,
            "Kustomization",
            stamp.flux_namespace(),
            flux::root_name(stamp),
        ),
        Engine::Argo => (
            argo::API_VERSION,
            "Application",
            stamp.argo_namespace(),
            argo::root_name(stamp),
        ),
    };
    let root_object = json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": root, "namespace": ns},
    });
    kube.delete_objects(&[root_object]).await?;
    let mut secret_namespaces: Vec<&str> =
        stamp.secrets.iter().map(|s| s.namespace.as_str()).collect();
    secret_namespaces.sort_unstable();
    secret_namespaces.dedup();
    kube.wait_for(
        &format!("the {} stamp's objects to be removed", stamp.name),
        timeout,
        || async {
            let mut left = Vec::new();
            if kube
                .get(api_version, kind, Some(ns), &root)
                .await?
                .is_some()
            {
                left.push(format!("{kind} {root}"));
            }
            let entries = status(kube, engine, stamp).await.map_err(|e| match e {
                EngineError::Kube(k) => k,
                other => KubeError::Malformed {
                    index: 0,
                    reason: other.to_string(),
                },
            })?;
            left.extend(
                entries
                    .entries
                    .into_iter()
                    .filter(|e| e.readiness != Readiness::Missing)
                    .map(|e| e.name),
            );
            for namespace in &secret_namespaces {
                let terminating = kube
                    .get("v1", "Namespace", None, namespace)
                    .await?
                    .is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null());
                if terminating {
                    left.push(format!("namespace {namespace} (Terminating)"));
                }
            }
            Ok(still_present(left))
        },
    )
    .await?;
    Ok(())
}
