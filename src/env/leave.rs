//! `env delete` on a cluster kindling did not make: exactly what the env applied goes, and
//! nothing else. The cluster stays, and so does everything without the env's label (the
//! user's namespaces, a Flux or Argo CD that was there first, other envs' objects).
//!
//! In order:
//! 1. the stamp, through the engine: the engine objects kindling applied (the root
//!    Kustomization or Application) are deleted and their finalizers awaited. Flux prunes a
//!    deleted Kustomization's inventory (fluxcd/kustomize-controller v1.9.4
//!    internal/controller/kustomization_controller.go `finalize`, with the default
//!    `deletionPolicy: MirrorPrune` and `prune: true`); Argo CD deletes a deleted
//!    Application's resources behind `resources-finalizer.argocd.argoproj.io`
//!    (argoproj/argo-cd v3.5.1 controller/appcontroller.go `finalizeApplicationDeletion`);
//! 2. every other object labelled `dev.kindling.env=ENV`, of the kinds recorded when they
//!    were applied (`crate::kube::ownership`): Gitea and its claim, Secrets, and the engine
//!    itself when this env installed it;
//! 3. the keys kindling set in an engine's own `argocd-cm`, given back by an empty apply.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::EnvError;
use super::state::EnvState;
use crate::ENV_LABEL;
use crate::kube::KubeClient;
use crate::kube::ownership::RecordedKind;
use crate::ui::Progress;

/// What leaving the cluster removed and kept.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Left {
    /// `KIND NAMESPACE/NAME` of every object removed.
    pub removed: Vec<String>,
    /// The engine that was there first, left as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_kept: Option<String>,
}

/// The engine kinds whose deletion the engine finishes (finalizers), first.
const ENGINE_ROOT_KINDS: &[&str] = &[
    "Kustomization",
    "HelmRelease",
    "Application",
    "ApplicationSet",
];

/// Removes what env `state` applied to its cluster.
pub async fn leave(
    state: &EnvState,
    env_dir: &std::path::Path,
    timeout: Duration,
    progress: &Progress,
) -> Result<Left, EnvError> {
    // A create that stopped before the cluster step (its preflight found rights missing, say)
    // applied nothing.
    if state.cluster.is_none() {
        return Ok(Left::default());
    }
    let kube = super::open::kube_of(state).await?;
    let selector = format!("{ENV_LABEL}={}", state.name);
    let kinds = crate::kube::ownership::recorded_kinds(&super::open::owned_kinds_file(env_dir));
    // Where the engine's objects are looked for when the user may not list them across all
    // namespaces: the engine's and every one the env applied to.
    let mut namespaces: Vec<String> = kinds.iter().filter_map(|k| k.namespace.clone()).collect();
    namespaces.push(crate::engine::namespace(state.engine).to_string());
    namespaces.push(state.engine_objects_namespace().to_string());
    namespaces.sort();
    namespaces.dedup();
    let namespaces = &namespaces;
    let mut left = Left {
        engine_kept: state
            .found_engine
            .as_ref()
            .map(|f| format!("{} {}", state.engine.name(), f.version)),
        ..Default::default()
    };
    // 1. The stamp, through the engine.
    let roots: Vec<&RecordedKind> = kinds
        .iter()
        .filter(|k| ENGINE_ROOT_KINDS.contains(&k.kind.as_str()))
        .collect();
    let waiting = labelled(&kube, &roots, &selector).await?;
    if !waiting.is_empty() {
        progress.detail(&format!(
            "delete: {} engine objects, the engine removing what they made",
            waiting.len()
        ));
        let roots: Vec<Node> = waiting.iter().map(Node::of).collect();
        // A suspended Kustomization or HelmRelease prunes nothing when deleted
        // (kustomize-controller v1.9.4 `finalizerShouldDeleteResources`: not while
        // `spec.suspend`); `env suspend` and `env apply` leave them so. Resumed first.
        let tree = grow(
            &live_engine_objects(&kube, namespaces).await?,
            roots.clone(),
        );
        for (kind, namespace, name) in &tree {
            if let Some(api_version) = flux_api_version(kind) {
                let live = kube.get(api_version, kind, Some(namespace), name).await?;
                if live.is_some_and(|l| l["spec"]["suspend"] == true) {
                    kube.merge_patch(
                        api_version,
                        kind,
                        Some(namespace),
                        name,
                        &json!({"spec": {"suspend": false}}),
                    )
                    .await?;
                }
            }
        }
        left.removed.extend(delete(&kube, &waiting).await?);
        wait_gone(&kube, roots, namespaces, timeout).await?;
    }
    // An engine this env installed stays while other envs' engine objects are there (they
    // found it and use it): its CRDs going would take theirs with them. What the install
    // applied is known by its field manager.
    let group = match state.engine {
        crate::engine::Engine::Flux => "fluxcd.io",
        crate::engine::Engine::Argo => "argoproj.io",
    };
    let engine_in_use = state.found_engine.is_none() && engine_used(&kube, group).await?;
    if engine_in_use {
        left.engine_kept = Some(format!(
            "{} (installed by this env, still used by others)",
            state.engine.name()
        ));
    }
    // 2. Everything else the env labelled.
    let others: Vec<&RecordedKind> = kinds
        .iter()
        .filter(|k| !ENGINE_ROOT_KINDS.contains(&k.kind.as_str()))
        .collect();
    let mut rest = labelled(&kube, &others, &selector).await?;
    if engine_in_use {
        rest.retain(|o| !applied_by(o, crate::kube::INSTALL_FIELD_MANAGER));
    }
    left.removed.extend(delete(&kube, &rest).await?);
    // 3. The keys of argocd-cm and argocd-tls-certs-cm, when Argo CD stays (it was there
    // first, or other envs use the one this env installed; otherwise they went with its
    // namespace). Each env applies them as a field manager of its own
    // (`ownership::shared_keys_manager`), so a key another env also set stays. An env whose
    // Applications are in argocd may be one an older kindling made, which applied them as
    // `kindling`: given back too (one such env per Argo CD, `another_env_on_the_engine`).
    if state.engine == crate::engine::Engine::Argo
        && (state.found_engine.is_some() || engine_in_use)
    {
        let older = state.engine_objects_namespace() == crate::engine::argo::NAMESPACE;
        give_back_keys(&kube, older).await?;
    }
    Ok(left)
}

/// The objects of the recorded `kinds` that carry `selector`, each listed where it was
/// recorded (a kind recorded in several places, or also without one, is found once).
async fn labelled(
    kube: &KubeClient,
    kinds: &[&RecordedKind],
    selector: &str,
) -> Result<Vec<Value>, EnvError> {
    let mut found: Vec<Value> = Vec::new();
    for k in kinds {
        for object in kube
            .list_labelled_in(&k.api_version, &k.kind, k.namespace.as_deref(), selector)
            .await?
        {
            if !found.iter().any(|f| Node::of(f) == Node::of(&object)) {
                found.push(object);
            }
        }
    }
    Ok(found)
}

async fn delete(kube: &KubeClient, objects: &[Value]) -> Result<Vec<String>, EnvError> {
    let bare: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut metadata = json!({"name": o["metadata"]["name"]});
            if let Some(ns) = o["metadata"]["namespace"].as_str() {
                metadata["namespace"] = json!(ns);
            }
            json!({"apiVersion": o["apiVersion"], "kind": o["kind"], "metadata": metadata})
        })
        .collect();
    Ok(kube
        .delete_objects(&bare)
        .await?
        .iter()
        .map(|a| a.label())
        .collect())
}

/// An engine object: `(kind, namespace, name)`.
type Node = (String, String, String);

trait NodeOf {
    fn of(object: &Value) -> Node;
}

impl NodeOf for Node {
    fn of(object: &Value) -> Node {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        (
            text(&object["kind"]),
            text(&object["metadata"]["namespace"]),
            text(&object["metadata"]["name"]),
        )
    }
}

/// The engine objects a root's deletion takes with it, as each engine marks what it applied
/// (`crate::kube::ownership::engine_parent`), and, among engine objects only, Argo CD's label
/// tracking (`app.kubernetes.io/instance`: too common on chart objects to say who made
/// anything else).
fn parent_of(object: &Value) -> Option<Node> {
    if let Some((_, kind, namespace, name)) = crate::kube::ownership::engine_parent(object) {
        return Some((kind.into(), namespace, name));
    }
    let instance = object["metadata"]["labels"]["app.kubernetes.io/instance"].as_str()?;
    let (namespace, app) = crate::kube::ownership::argo_application_of(instance);
    Some(("Application".into(), namespace, app))
}

/// The engine kinds that make other objects, and their API versions.
const ENGINE_KINDS: &[(&str, &str)] = &[
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
    ("argoproj.io/v1alpha1", "Application"),
    ("argoproj.io/v1alpha1", "ApplicationSet"),
];

/// Whether objects of the engine's API `group` are left on the cluster (the env's are gone by
/// now: they are others'). A user who may not list them all cannot tell, and then the engine
/// is taken as used: removing its CRDs would take everyone's objects of those kinds with them.
async fn engine_used(kube: &KubeClient, group: &str) -> Result<bool, EnvError> {
    for (api_version, kind) in ENGINE_KINDS.iter().filter(|(v, _)| v.contains(group)) {
        match kube.list(api_version, kind, None).await {
            Ok(all) => {
                if !all.is_empty() {
                    return Ok(true);
                }
            }
            Err(e) if e.is_forbidden() => return Ok(true),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

/// Every object of the engines' kinds on the cluster; when the user may not list them across
/// all namespaces (RBAC refuses: any other failure stops the delete), those in `namespaces`.
async fn live_engine_objects(
    kube: &KubeClient,
    namespaces: &[String],
) -> Result<Vec<Value>, EnvError> {
    let mut live = Vec::new();
    for (api_version, kind) in ENGINE_KINDS {
        match kube.list(api_version, kind, None).await {
            Ok(all) => live.extend(all),
            Err(e) if !e.is_forbidden() => return Err(e.into()),
            Err(_) => {
                for ns in namespaces {
                    live.extend(kube.list(api_version, kind, Some(ns)).await?);
                }
            }
        }
    }
    Ok(live)
}

/// `roots` and every engine object of `live` they made, and those made, until nothing new.
fn grow(live: &[Value], roots: Vec<Node>) -> std::collections::BTreeSet<Node> {
    let mut tree: std::collections::BTreeSet<Node> = roots.into_iter().collect();
    loop {
        let before = tree.len();
        for object in live {
            if parent_of(object).is_some_and(|p| tree.contains(&p)) {
                tree.insert(Node::of(object));
            }
        }
        if tree.len() == before {
            return tree;
        }
    }
}

/// The API version of a Flux kind that can be suspended.
fn flux_api_version(kind: &str) -> Option<&'static str> {
    ENGINE_KINDS
        .iter()
        .find(|(v, k)| *k == kind && v.contains("fluxcd.io"))
        .map(|(v, _)| *v)
}

/// Whether `manager` applied any of the object's fields.
fn applied_by(object: &Value, manager: &str) -> bool {
    object["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|fields| fields.iter().any(|f| f["manager"] == manager))
}

/// Waits until the engine has finished the deleted roots and every engine object they made
/// (their finalizers run while the engine runs: one kindling installed goes only after).
async fn wait_gone(
    kube: &KubeClient,
    roots: Vec<Node>,
    namespaces: &[String],
    timeout: Duration,
) -> Result<(), EnvError> {
    let deadline = Instant::now() + timeout;
    let mut tree: std::collections::BTreeSet<Node> = roots.into_iter().collect();
    loop {
        let live = live_engine_objects(kube, namespaces).await?;
        // The tree grows with what its members made, until nothing new is found.
        tree = grow(&live, tree.into_iter().collect());
        let left: Vec<String> = live
            .iter()
            .map(Node::of)
            .filter(|n| tree.contains(n))
            .map(|(kind, ns, name)| format!("{kind} {ns}/{name}"))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(EnvError::Preflight(format!(
                "the engine did not finish removing the stamp within {}s: {} still terminating (their finalizers wait for the engine)\nhelp: run `kindling env delete` again; if the engine is gone, remove the finalizers of these objects yourself",
                timeout.as_secs(),
                left.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Applies empty argocd-cm and argocd-tls-certs-cm as the env's field manager for shared
/// keys (and, for an env an `older` kindling may have made, as `kindling`): server-side apply
/// drops the keys the env set and no longer sends, unless another env's manager applies them
/// too, and leaves Argo CD's own.
async fn give_back_keys(kube: &KubeClient, older: bool) -> Result<(), EnvError> {
    for name in ["argocd-cm", crate::engine::extra_ca::ARGO_TLS_CERTS] {
        let empty = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": crate::engine::argo::NAMESPACE}});
        let Some(live) = kube
            .get(
                "v1",
                "ConfigMap",
                Some(crate::engine::argo::NAMESPACE),
                name,
            )
            .await?
        else {
            continue;
        };
        kube.apply_objects(
            std::slice::from_ref(&empty),
            &crate::kube::ApplyOptions::new(Duration::from_secs(30)),
        )
        .await?;
        let applied_as_kindling = live["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["manager"] == crate::kube::FIELD_MANAGER));
        if older && applied_as_kindling {
            kube.apply_as(&empty, crate::kube::FIELD_MANAGER).await?;
        }
    }
    Ok(())
}
