//! What `env down` (a stack) and `env remove` (an app) take away after the root no longer
//! lists it: the entries' engine objects, the stack's PersistentVolumes and the Secrets
//! kindling made for it alone, the namespace kindling made for an app. It is recorded in the
//! env's state before the root changes and cleared when done, so a rerun after a crash or a
//! timeout finishes it rather than finding "nothing to remove".

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::EnvError;
use crate::engine;
use crate::kube::KubeClient;
use crate::stamp::storage::MANAGED_BY;

/// A namespaced object by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Removal {
    /// What is being removed, as the user named it (`stack sample-app`, `app simple in
    /// feature`).
    pub what: String,
    pub entries: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Named>,
    /// A namespace kindling made for an app, removed when nothing is left in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The stack's storage on the host, which stays (said again by a rerun).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_kept: Vec<std::path::PathBuf>,
}

/// `KINDLING_FAIL_AT=before:remove`: stop after the root changed and before the rest, as a
/// crash or a timeout there would (the tests' way to check that a rerun finishes the job).
pub fn injected_failure(settings: &super::Settings) -> Result<(), EnvError> {
    match settings.fail_at.as_deref() {
        Some("before:remove") => Err(EnvError::InjectedBefore("remove".into())),
        _ => Ok(()),
    }
}

/// What [`finish`] did.
#[derive(Debug, Default)]
pub struct Finished {
    pub namespace_removed: bool,
    /// The namespace kindling made, kept because something else lives in it now.
    pub namespace_kept: Option<String>,
}

/// Takes away what `removal` lists, each part only if it is still there and kindling's.
pub async fn finish(
    kube: &KubeClient,
    state: &super::state::EnvState,
    removal: &Removal,
    timeout: std::time::Duration,
) -> Result<Finished, EnvError> {
    let (engine, env) = (state.engine, state.name.as_str());
    engine::remove_entries(
        kube,
        engine,
        state.engine_objects_namespace(),
        &removal.entries,
        timeout,
    )
    .await?;
    let mut ours = Vec::new();
    for name in &removal.volumes {
        let live = kube.get("v1", "PersistentVolume", None, name).await?;
        if live.is_some_and(|l| l["metadata"]["labels"][MANAGED_BY] == "kindling") {
            ours.push(json!({"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name}}));
        }
    }
    for s in &removal.secrets {
        let live = kube
            .get("v1", "Secret", Some(&s.namespace), &s.name)
            .await?;
        if live.is_some_and(|l| l["metadata"]["labels"][MANAGED_BY] == "kindling") {
            ours.push(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": s.name, "namespace": s.namespace}}));
        }
    }
    kube.delete_objects(&ours).await?;
    let mut finished = Finished::default();
    if let Some(namespace) = &removal.namespace {
        match namespace_of_env(kube, env, namespace).await? {
            NamespaceState::Gone | NamespaceState::NotOurs => {}
            NamespaceState::Holds(what) => {
                finished.namespace_kept = Some(format!("{namespace} (holds {what})"));
            }
            NamespaceState::Empty => {
                kube.delete_objects(&[json!({
                    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace},
                })])
                .await?;
                finished.namespace_removed = true;
            }
        }
    }
    Ok(finished)
}

enum NamespaceState {
    Gone,
    NotOurs,
    /// Objects that are not going away: the first of them, by kind and name.
    Holds(String),
    Empty,
}

/// The label HostK8s puts on a namespace it made for an app.
pub const CREATED_LABEL: &str = "hostk8s.created";

/// Whether kindling made `namespace` for this env, and whether anything still lives there
/// (what is being deleted does not count). HostK8s deletes an app's namespace only when no
/// app's objects are left in it (deploy-app.py `cleanup_namespace_if_empty`).
async fn namespace_of_env(
    kube: &KubeClient,
    env: &str,
    namespace: &str,
) -> Result<NamespaceState, EnvError> {
    let Some(live) = kube.get("v1", "Namespace", None, namespace).await? else {
        return Ok(NamespaceState::Gone);
    };
    let labels = &live["metadata"]["labels"];
    if labels[MANAGED_BY] != "kindling"
        || labels[crate::ENV_LABEL] != env
        || labels[CREATED_LABEL] != "true"
    {
        return Ok(NamespaceState::NotOurs);
    }
    for (api_version, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
        ("v1", "Service"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
    ] {
        let objects = kube.list(api_version, kind, Some(namespace)).await?;
        if let Some(o) = objects.iter().find(|o| stays(o)) {
            return Ok(NamespaceState::Holds(format!(
                "{kind} {}",
                o["metadata"]["name"].as_str().unwrap_or_default()
            )));
        }
    }
    Ok(NamespaceState::Empty)
}

/// An object that is not on its way out and that the cluster did not put there itself
/// (kube-controller-manager's root-CA ConfigMap is in every namespace).
fn stays(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_null() && o["metadata"]["name"] != "kube-root-ca.crt"
}
