//! Argo CD: bootstrap objects, reconcile-now requests and status interpretation (pure).
//!
//! The root Application `kindling-<stamp>` (in `argocd`, or in the env's own namespace on a
//! shared Argo CD: `Stamp::argo_namespace`) syncs `.kindling/argo/apps`, one child Application
//! per stamp entry, named after the entry, ordered by sync waves.

use serde_json::{Value, json};

use super::status::{EngineStatus, EntryStatus, Readiness, SourceStatus, link_dependencies};
use super::{GitCredentials, PatchRequest};
use crate::stamp::Stamp;

pub use crate::stamp::render::argo::{NAMESPACE, root_name};

pub const API_VERSION: &str = "argoproj.io/v1alpha1";
/// Argo CD compares an Application with Git again when this annotation appears.
pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";
pub const REPOSITORY_SECRET: &str = "kindling-repository";

/// The repository Secret Argo CD finds by its label and matches to Applications by URL. It is
/// always in `argocd`: Argo CD reads repository Secrets only in its own namespace
/// (argoproj/argo-cd v3.5.1 util/db/secrets.go `listSecretsByType`). An env with a project of
/// its own (`Stamp::argo_project`) has one named after it, scoped to that project, so envs on
/// one Argo CD never read each other's credentials: a scoped Secret is matched only for
/// Applications of its project (util/db/repository_secrets.go `getRepositorySecret`).
pub fn repository_secret(stamp: &Stamp, credentials: &GitCredentials) -> Value {
    let name = repository_secret_name(stamp);
    let mut data = vec![
        ("type", "git"),
        ("name", name.as_str()),
        ("url", credentials.url.as_str()),
        ("username", credentials.username.as_str()),
        ("password", credentials.password.as_str()),
    ];
    if let Some(project) = stamp.argo_project() {
        data.push(("project", project));
    }
    super::secret_object(
        &name,
        NAMESPACE,
        &[("argocd.argoproj.io/secret-type", "repository")],
        &data,
    )
}

/// The name Argo CD knows an Application by in tracking ids: its own in argocd, `NS_NAME`
/// elsewhere (argoproj/argo-cd v3.5.1 pkg/apis/application/v1alpha1/types.go `InstanceName`).
pub fn instance_name(namespace: &str, name: &str) -> String {
    match namespace {
        NAMESPACE => name.to_string(),
        namespace => format!("{namespace}_{name}"),
    }
}

/// `kindling-repository`, or `<project>-repository` for an env with a project of its own.
fn repository_secret_name(stamp: &Stamp) -> String {
    match stamp.argo_project() {
        Some(project) => format!("{project}-repository"),
        None => REPOSITORY_SECRET.to_string(),
    }
}

/// Repository Secret, then the rendered root Application and argocd-cm. Under `--hold` the
/// root has no automated sync: it is registered, shows what it would do, and waits for
/// `env approve`.
pub fn bootstrap_objects(
    stamp: &Stamp,
    rendered_bootstrap: &[Value],
    credentials: &GitCredentials,
    hold: bool,
) -> Vec<Value> {
    let root = root_name(stamp);
    // The env's own namespace first: its Applications go there (an in-cluster Gitea made it
    // already; a `KINDLING_GITEA_URL` env has none there).
    let mut objects = Vec::new();
    if stamp.argo_namespace() != NAMESPACE {
        objects.push(super::namespace_object(stamp.argo_namespace()));
    }
    objects.push(repository_secret(stamp, credentials));
    for object in rendered_bootstrap {
        let mut object = object.clone();
        if hold
            && object["kind"] == "Application"
            && object["metadata"]["name"] == root.as_str()
            && let Some(policy) = object["spec"]["syncPolicy"].as_object_mut()
        {
            policy.remove("automated");
        }
        objects.push(object);
    }
    mark_hold(&mut objects, stamp, hold);
    objects
}

/// What `env approve` sends after re-applying the root with automated sync: a sync
/// operation, so the first sync starts now rather than at the next poll.
pub fn approve_requests(stamp: &Stamp, revision: &str) -> Vec<PatchRequest> {
    vec![PatchRequest {
        api_version: API_VERSION.to_string(),
        kind: "Application".to_string(),
        namespace: stamp.argo_namespace().to_string(),
        name: root_name(stamp),
        patch: sync_operation_patch(revision),
    }]
}

pub fn refresh_patch() -> Value {
    json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}})
}

/// A sync operation, as `argocd app sync` starts one: for a root without automated sync.
pub fn sync_operation_patch(revision: &str) -> Value {
    json!({"operation": {
        "initiatedBy": {"username": "kindling"},
        "sync": {"revision": revision, "prune": true},
    }})
}

fn automated(root: &Value) -> bool {
    root["spec"]["syncPolicy"]["automated"].is_object()
}

/// A refresh of the root and every child; when the root syncs only on request (after an
/// approval, or created before automation was turned on), a sync operation on it too.
pub fn reconcile_requests(stamp: &Stamp, root: Option<&Value>) -> Vec<PatchRequest> {
    let request = |name: &str, patch: Value| PatchRequest {
        api_version: API_VERSION.to_string(),
        kind: "Application".to_string(),
        namespace: stamp.argo_namespace().to_string(),
        name: name.to_string(),
        patch,
    };
    let root_name = root_name(stamp);
    let mut requests = vec![request(&root_name, refresh_patch())];
    if let Some(root) = root
        && !automated(root)
        && root["metadata"]["annotations"][HOLD_ANNOTATION] != "true"
    {
        let revision = root["spec"]["source"]["targetRevision"]
            .as_str()
            .unwrap_or("HEAD");
        requests.push(request(&root_name, sync_operation_patch(revision)));
    }
    for entry in stamp.ordered_entries() {
        requests.push(request(&entry.name, refresh_patch()));
    }
    requests
}

/// Marks a root held by `--hold`, so a reconcile request never syncs it before approval.
pub const HOLD_ANNOTATION: &str = "kindling.dev/hold";

/// Sets or clears the hold mark on the root Application of `objects`.
pub fn mark_hold(objects: &mut [Value], stamp: &Stamp, hold: bool) {
    let root = root_name(stamp);
    for object in objects.iter_mut() {
        if object["kind"] == "Application" && object["metadata"]["name"] == root.as_str() {
            object["metadata"]["annotations"][HOLD_ANNOTATION] = Value::String(hold.to_string());
        }
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// One entry from its Application: Ready when Synced and Healthy.
pub fn entry_status(name: &str, apps: &[Value]) -> EntryStatus {
    let Some(app) = apps.iter().find(|a| a["metadata"]["name"] == name) else {
        return EntryStatus::missing(name, "Application");
    };
    let sync = text(&app["status"]["sync"]["status"]);
    let health = text(&app["status"]["health"]["status"]);
    let phase = text(&app["status"]["operationState"]["phase"]);
    let condition = app["status"]["conditions"]
        .as_array()
        .and_then(|c| c.first())
        .map(|c| {
            (
                text(&c["type"]).unwrap_or_default(),
                text(&c["message"]).unwrap_or_default(),
            )
        });
    // As Argo CD's own UI and `argocd app wait` judge an app (argoproj/argo-cd v3.5.1
    // ui/src/app/applications/components/utils.tsx, cmd/argocd/commands/app.go
    // checkResourceStatus): sync status and health decide; the last operation is shown beside
    // them and never overrides Synced + Healthy (an old failed sync stays in operationState).
    let failed_operation = matches!(phase.as_deref(), Some("Failed" | "Error"));
    let readiness = match (sync.as_deref(), health.as_deref()) {
        (_, Some("Degraded")) => Readiness::Failed,
        (_, Some("Suspended")) => Readiness::Suspended,
        (Some("Synced"), Some("Healthy")) => Readiness::Ready,
        _ if failed_operation => Readiness::Failed,
        _ if condition
            .as_ref()
            .is_some_and(|(t, _)| t.ends_with("Error")) =>
        {
            Readiness::Failed
        }
        _ => Readiness::Progressing,
    };
    let sync_health = format!(
        "{}/{}",
        sync.as_deref().unwrap_or("Unknown"),
        health.as_deref().unwrap_or("Unknown")
    );
    let operation_message = text(&app["status"]["operationState"]["message"]);
    let (reason, message) = match (readiness, &condition) {
        // Synced and Healthy: what an old operation or condition said is history.
        (Readiness::Ready, _) => (sync_health, String::new()),
        (Readiness::Failed, _) if failed_operation && health.as_deref() != Some("Degraded") => (
            format!("Sync{}", phase.as_deref().unwrap_or_default()),
            operation_message.unwrap_or_default(),
        ),
        (_, Some((kind, m))) if !m.is_empty() => (kind.clone(), m.clone()),
        _ => (
            sync_health,
            text(&app["status"]["health"]["message"])
                .or(operation_message)
                .unwrap_or_default(),
        ),
    };
    let revision = text(&app["status"]["sync"]["revision"])
        .or_else(|| text(&app["status"]["operationState"]["syncResult"]["revision"]));
    EntryStatus {
        name: name.to_string(),
        kind: "Application".to_string(),
        suspended: readiness == Readiness::Suspended,
        readiness,
        reason,
        message,
        revision,
        blocked_by: None,
        sync,
        health,
        awaiting_approval: false,
        applied_directly: false,
        drifted: Vec::new(),
    }
}

/// What an Application outside argocd that Argo CD has never written a status to may mean:
/// Argo CD ignores one in a namespace its controller does not reconcile, silently (argo-cd
/// v3.5.1 controller/appcontroller.go `canProcessApp`), and reads `application.namespaces`
/// only when it starts.
fn unseen_outside_argocd(app: &Value) -> Option<String> {
    let namespace = app["metadata"]["namespace"].as_str()?;
    let unseen = app["status"].as_object().is_none_or(|s| s.is_empty());
    (namespace != NAMESPACE && unseen).then(|| {
        format!(
            "Argo CD has not reconciled it yet; it reconciles Applications in {namespace} only when application.namespaces of argocd-cmd-params-cm names it and its application controller has restarted since"
        )
    })
}

/// The stamp's status from the Applications in its namespace (`Stamp::argo_namespace`).
pub fn status(stamp: &Stamp, apps: &[Value]) -> EngineStatus {
    let root_name = root_name(stamp);
    let root = apps
        .iter()
        .find(|a| a["metadata"]["name"] == root_name.as_str());
    let awaiting_approval = root.is_some_and(|r| !automated(r));
    let source = root.map(|r| {
        let entry = entry_status(&root_name, std::slice::from_ref(r));
        SourceStatus {
            kind: "Application".to_string(),
            name: root_name.clone(),
            readiness: entry.readiness,
            message: match unseen_outside_argocd(r) {
                Some(why) if entry.message.is_empty() => why,
                _ => entry.message,
            },
            revision: entry.revision,
        }
    });
    let entries = stamp
        .entries
        .iter()
        .map(|e| entry_status(&e.name, apps))
        .collect();
    let mut status = EngineStatus {
        engine: "argo".to_string(),
        awaiting_approval,
        source,
        entries: link_dependencies(stamp, entries),
        gates: Vec::new(),
    };
    status.mark_gates(stamp);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argo_root_never_seen_outside_argocd_says_why() {
        let root = |ns: &str, status: Value| json!({"metadata": {"name": "kindling-sample", "namespace": ns}, "status": status});
        let why = unseen_outside_argocd(&root("kindling-dev", Value::Null)).unwrap();
        assert!(why.contains("application.namespaces"), "{why}");
        assert!(unseen_outside_argocd(&root("kindling-dev", json!({}))).is_some());
        assert!(unseen_outside_argocd(&root("argocd", Value::Null)).is_none());
        let seen = json!({"sync": {"status": "Synced"}});
        assert!(unseen_outside_argocd(&root("kindling-dev", seen)).is_none());
    }

    #[test]
    fn argo_refresh_and_sync_patch_bodies() {
        assert_eq!(
            refresh_patch(),
            json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}})
        );
        assert_eq!(
            sync_operation_patch("main"),
            json!({"operation": {"initiatedBy": {"username": "kindling"}, "sync": {"revision": "main", "prune": true}}})
        );
    }
}
