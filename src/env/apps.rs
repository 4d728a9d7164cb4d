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
use crate::engine::{EngineStatus, Readiness};
use crate::kube::{ApplyOptions, KubeClient};
use crate::stamp::app::{self, AppKind};
use crate::ui::Progress;

use super::removal::CREATED_LABEL;

/// How a pending removal of an app names it.
fn removal_name(app: &str, namespace: &str) -> String {
    format!("app {app} in {namespace}")
}

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
    super::open::refuse_when_suspended(&state, "deploy")?;
    check_namespace(namespace)?;
    let app = app::find(&state.source, app_name)?;
    check_deployable(&state, &app, namespace)?;
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
    if !state.apps.contains(&deployed)
        && let Some(pending) = state.removing.clone()
        && pending.what == removal_name(app_name, namespace)
    {
        // An earlier `env remove` took it out of the root and stopped before the rest.
        let (kube, _) = live_kube_of(&state, progress).await?;
        let finished =
            super::removal::finish(&kube, &state, &pending, settings.step_timeout).await?;
        let mut state = state;
        state.removing = None;
        state.save(&settings.env_dir(name))?;
        return Ok(RemoveReport {
            env: name.to_string(),
            app: app_name.to_string(),
            namespace: namespace.to_string(),
            was_deployed: true,
            namespace_removed: finished.namespace_removed,
            commit: state.commit.clone(),
        });
    }
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
    super::open::refuse_when_suspended(&state, "remove")?;
    let mut after = state.clone();
    after.apps.retain(|a| *a != deployed);
    let stamp = stamp_of(&settings.data_dir, &after)?;
    let entry = app::entry_name(app_name, namespace);
    // The namespace is a candidate only when nothing else of the env deploys into it; it
    // goes only if kindling made it and it is empty then (`removal::finish`).
    let shared_namespace = after.apps.iter().any(|a| a.namespace == namespace)
        || stamp
            .entries
            .iter()
            .any(|e| e.namespace.as_deref() == Some(namespace));
    let removal = super::removal::Removal {
        what: removal_name(app_name, namespace),
        entries: vec![entry],
        volumes: Vec::new(),
        secrets: Vec::new(),
        namespace: (!shared_namespace).then(|| namespace.to_string()),
        storage_kept: Vec::new(),
    };
    let (kube, _) = live_kube_of(&state, progress).await?;
    after.removing = Some(removal.clone());
    let commit = super::bring_up::bring_up(settings, &mut after, &stamp, &kube, progress).await?;
    super::removal::injected_failure(settings)?;
    let t = Instant::now();
    progress.start("remove", &format!("app {app_name} in {namespace}"));
    let finished = super::removal::finish(&kube, &state, &removal, settings.step_timeout).await?;
    after.removing = None;
    after.save(&settings.env_dir(name))?;
    if let Some(kept) = &finished.namespace_kept {
        progress.info(&format!("namespace {kept}: kept"));
    }
    let namespace_removed = finished.namespace_removed;
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

/// What a deploy would fail on after the push, found before it: an entry name the engines
/// cannot use as a label value (Flux and Argo CD label what they apply with it: at most 63
/// characters), one another deployed app already makes, a Helm release name over Helm's 53,
/// and a second release of a Helm app (helm-controller keeps every release's record in the
/// HelmRelease's namespace, `flux-system`, where two releases of one name would be one).
fn check_deployable(state: &EnvState, app: &app::App, namespace: &str) -> Result<(), EnvError> {
    let entry = app::entry_name(&app.name, namespace);
    if entry.len() > 63 {
        return Err(EnvError::BadInput(format!(
            "app {} in namespace {namespace} would be entry {entry}, over the 63 characters a label value may have\nhelp: a shorter namespace or app directory name",
            app.name
        )));
    }
    if let Some(other) = state.apps.iter().find(|a| {
        app::entry_name(&a.name, &a.namespace) == entry
            && (a.name != app.name || a.namespace != namespace)
    }) {
        return Err(EnvError::BadInput(format!(
            "app {} in namespace {namespace} and the deployed app {} in namespace {} would both be entry {entry}\nhelp: deploy into another namespace",
            app.name, other.name, other.namespace
        )));
    }
    if app.kind == AppKind::Helm {
        if app.name.len() > 53 {
            return Err(EnvError::BadInput(format!(
                "app {}: a Helm release name may have at most 53 characters\nhelp: rename the app's directory",
                app.name
            )));
        }
        if let Some(other) = state
            .apps
            .iter()
            .find(|a| a.name == app.name && a.namespace != namespace)
        {
            return Err(EnvError::BadInput(format!(
                "Helm app {} is deployed in namespace {} already; a second release of the same name would share its record\nhelp: `kindling env remove {} {} -n {}` first",
                app.name, other.namespace, state.name, app.name, other.namespace
            )));
        }
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
