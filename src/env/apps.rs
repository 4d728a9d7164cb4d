//! `env deploy [NAME] APP [--namespace NS]` and `env remove [NAME] APP [--namespace NS]`:
//! HostK8s' `make deploy APP NS` / `make remove APP NS` for the apps in `software/apps`
//! (`crate::stamp::app`), deployed by the env's engine from its Git rather than applied by
//! hand, so `env sync` carries edits to them like to any entry.
//!
//! HostK8s (danielscholl-osdu/hostk8s@2add0a5 infra/scripts/deploy-app.py) means to create a
//! missing namespace labelled `hostk8s.created=true`, and `remove` deletes a namespace only
//! with that label and no app left in it, never `default` or the system ones. kindling does
//! that, with its own label besides, and only for namespaces it made.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::follow::follow;
use super::open::{live_kube_of, load_locked, stamp_of};
use super::state::{DeployedApp, EnvState};
use super::{EnvError, Settings};
use crate::engine::{self, EngineStatus, Readiness};
use crate::kube::{ApplyOptions, KubeClient};
use crate::stamp::app::{self, AppKind};
use crate::ui::Progress;

/// The label HostK8s puts on a namespace it made for an app.
const CREATED_LABEL: &str = "hostk8s.created";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReport {
    pub env: String,
    pub app: String,
    pub kind: AppKind,
    pub namespace: String,
    pub namespace_created: bool,
    /// The env's entry that deploys it.
    pub entry: String,
    pub commit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<EngineStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveReport {
    pub env: String,
    pub app: String,
    pub namespace: String,
    /// False when the app was not deployed there: nothing was changed.
    pub was_deployed: bool,
    pub namespace_removed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

pub async fn deploy(
    settings: &Settings,
    name: &str,
    app_name: &str,
    namespace: &str,
    wait: Option<Duration>,
    progress: &Progress,
) -> Result<DeployReport, EnvError> {
    let (_lock, state) = load_locked(settings, name, "env deploy")?;
    refuse_when_suspended(&state, "deploy")?;
    check_namespace(namespace)?;
    let app = app::find(&state.source, app_name)?;
    let mut after = state.clone();
    let deployed = DeployedApp {
        name: app.name.clone(),
        namespace: namespace.to_string(),
    };
    if !after.apps.contains(&deployed) {
        after.apps.push(deployed);
    }
    // Everything a bring-up would fail on, before anything changes.
    let stamp = stamp_of(&settings.data_dir, &after)?;
    let entry = app::entry_name(&app.name, namespace);
    let (kube, _) = live_kube_of(&after, progress).await?;
    let namespace_created = ensure_namespace(&kube, name, namespace, settings).await?;
    let commit = super::bring_up::bring_up(settings, &mut after, &stamp, &kube, progress).await?;
    let status = match wait {
        Some(timeout) if !after.hold => {
            let t = Instant::now();
            progress.start("reconcile", &format!("app {} in {namespace}", app.name));
            let ready = |s: &EngineStatus| {
                s.entries
                    .iter()
                    .any(|e| e.name == entry && e.readiness == Readiness::Ready)
            };
            let s = follow(&kube, after.engine, &stamp, timeout, progress, ready).await?;
            progress.done("reconcile", t.elapsed(), &format!("{entry} Ready"));
            Some(s)
        }
        _ => None,
    };
    Ok(DeployReport {
        env: name.to_string(),
        app: app.name,
        kind: app.kind,
        namespace: namespace.to_string(),
        namespace_created,
        entry,
        commit,
        status,
    })
}

pub async fn remove(
    settings: &Settings,
    name: &str,
    app_name: &str,
    namespace: &str,
    progress: &Progress,
) -> Result<RemoveReport, EnvError> {
    let (_lock, state) = load_locked(settings, name, "env remove")?;
    let deployed = DeployedApp {
        name: app_name.to_string(),
        namespace: namespace.to_string(),
    };
    if !state.apps.contains(&deployed) {
        let listed: Vec<String> = state
            .apps
            .iter()
            .map(|a| format!("{} in {}", a.name, a.namespace))
            .collect();
        progress.info(&format!(
            "app {app_name} is not deployed in namespace {namespace} of env {name}; nothing to remove (deployed: {})",
            if listed.is_empty() {
                "none".to_string()
            } else {
                listed.join(", ")
            }
        ));
        return Ok(RemoveReport {
            env: name.to_string(),
            app: app_name.to_string(),
            namespace: namespace.to_string(),
            was_deployed: false,
            namespace_removed: false,
            commit: None,
        });
    }
    refuse_when_suspended(&state, "remove")?;
    let mut after = state.clone();
    after.apps.retain(|a| *a != deployed);
    let stamp = stamp_of(&settings.data_dir, &after)?;
    let (kube, _) = live_kube_of(&state, progress).await?;
    let commit = super::bring_up::bring_up(settings, &mut after, &stamp, &kube, progress).await?;
    let t = Instant::now();
    let entry = app::entry_name(app_name, namespace);
    progress.start("remove", &format!("app {app_name} in {namespace}"));
    engine::remove_entries(&kube, state.engine, &[entry], settings.step_timeout).await?;
    // The namespace goes if kindling made it and nothing of the env still deploys into it.
    let still_used = after.apps.iter().any(|a| a.namespace == namespace)
        || stamp
            .entries
            .iter()
            .any(|e| e.namespace.as_deref() == Some(namespace));
    let namespace_removed = !still_used && remove_namespace(&kube, name, namespace).await?;
    progress.done(
        "remove",
        t.elapsed(),
        &format!(
            "app {app_name} removed{}",
            if namespace_removed {
                format!(", namespace {namespace} with it")
            } else {
                String::new()
            }
        ),
    );
    Ok(RemoveReport {
        env: name.to_string(),
        app: app_name.to_string(),
        namespace: namespace.to_string(),
        was_deployed: true,
        namespace_removed,
        commit: Some(commit),
    })
}

fn refuse_when_suspended(state: &EnvState, verb: &str) -> Result<(), EnvError> {
    let name = &state.name;
    if state.suspended {
        return Err(EnvError::Preflight(format!(
            "env {name} is suspended; `kindling env resume {name}` first, then `env {verb}`"
        )));
    }
    Ok(())
}

/// A namespace name the API accepts (an RFC 1123 label).
fn check_namespace(namespace: &str) -> Result<(), EnvError> {
    let valid = !namespace.is_empty()
        && namespace.len() <= 63
        && namespace
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !namespace.starts_with('-')
        && !namespace.ends_with('-');
    if valid {
        return Ok(());
    }
    Err(EnvError::BadInput(format!(
        "--namespace '{namespace}' is not a namespace name\nhelp: lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit"
    )))
}

/// Makes the namespace when it is missing, labelled as kindling's and as HostK8s labels the
/// namespaces it makes; whether it was made.
async fn ensure_namespace(
    kube: &KubeClient,
    env: &str,
    namespace: &str,
    settings: &Settings,
) -> Result<bool, EnvError> {
    if kube
        .get("v1", "Namespace", None, namespace)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let object = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {
            crate::stamp::storage::MANAGED_BY: "kindling",
            crate::ENV_LABEL: env,
            CREATED_LABEL: "true",
        }},
    });
    kube.apply_objects(&[object], &ApplyOptions::new(settings.step_timeout))
        .await?;
    Ok(true)
}

/// Deletes the namespace if kindling made it for this env; whether it did.
async fn remove_namespace(kube: &KubeClient, env: &str, namespace: &str) -> Result<bool, EnvError> {
    let Some(live) = kube.get("v1", "Namespace", None, namespace).await? else {
        return Ok(false);
    };
    let labels = &live["metadata"]["labels"];
    if labels[crate::stamp::storage::MANAGED_BY] != "kindling"
        || labels[crate::ENV_LABEL] != env
        || labels[CREATED_LABEL] != "true"
    {
        return Ok(false);
    }
    kube.delete_objects(&[serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace},
    })])
    .await?;
    Ok(true)
}
