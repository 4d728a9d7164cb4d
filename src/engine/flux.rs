//! Flux: bootstrap objects, reconcile-now requests and status interpretation (pure).
//!
//! Every stamp entry is a Kustomization in `flux-system` named after the entry (Helm entries'
//! Kustomizations apply their HelmRepository + HelmRelease and wait for them), all applied by
//! the root Kustomization `kindling-<stamp>` from the GitRepository `kindling`.

use serde_json::{Value, json};

use super::status::{
    EngineStatus, EntryStatus, Readiness, SourceStatus, condition_of, link_dependencies,
};
use super::{GitCredentials, PatchRequest};
use crate::stamp::{Source, Stamp};

pub use crate::stamp::render::flux::{
    GIT_REPOSITORY, NAMESPACE, has_health_kustomization, health_name, root_name,
};

pub const GIT_REPOSITORY_API: &str = "source.toolkit.fluxcd.io/v1";
pub const KUSTOMIZATION_API: &str = "kustomize.toolkit.fluxcd.io/v1";
pub const HELM_RELEASE_API: &str = "helm.toolkit.fluxcd.io/v2";
/// Flux reconciles an object again when this annotation's value changes.
pub const RECONCILE_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";

/// The credentials Secret the GitRepository's `secretRef` names (basic auth: username and
/// password keys, as source-controller reads them).
/// It sits beside the GitRepository: a `secretRef` is local (fluxcd/source-controller
/// api/v1/gitrepository_types.go `meta.LocalObjectReference`).
pub fn credentials_secret(credentials: &GitCredentials, namespace: &str) -> Value {
    super::secret_object(
        crate::stamp::render::CREDENTIALS_SECRET,
        namespace,
        &[],
        &[
            ("username", &credentials.username),
            ("password", &credentials.password),
        ],
    )
}

/// Credentials Secret, then the rendered GitRepository and root Kustomization, the root's
/// `spec.suspend` always set (true under `--hold`) so that approving re-applies `false`.
pub fn bootstrap_objects(
    stamp: &Stamp,
    rendered_bootstrap: &[Value],
    credentials: &GitCredentials,
    hold: bool,
) -> Vec<Value> {
    let root = root_name(stamp);
    let mut objects = Vec::new();
    // An env's own namespace is there when its Gitea runs in the cluster, not when the env
    // uses a Gitea of its own (`KINDLING_GITEA_URL`).
    if stamp.flux_namespace() != NAMESPACE {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": stamp.flux_namespace()}}));
    }
    objects.push(credentials_secret(credentials, stamp.flux_namespace()));
    for object in rendered_bootstrap {
        let mut object = object.clone();
        if object["kind"] == "Kustomization" && object["metadata"]["name"] == root.as_str() {
            object["spec"]["suspend"] = Value::Bool(hold);
        }
        objects.push(object);
    }
    objects
}

/// The merge patch that asks Flux to reconcile an object now.
pub fn reconcile_patch(now: time::OffsetDateTime) -> Value {
    let stamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({"metadata": {"annotations": {RECONCILE_ANNOTATION: stamp}}})
}

/// The source first (so the new commit is fetched), then the root, then every entry in
/// dependency order; Helm entries' HelmReleases too, so a chart change is not left to the
/// release's own interval.
pub fn reconcile_requests(stamp: &Stamp, now: time::OffsetDateTime) -> Vec<PatchRequest> {
    let patch = reconcile_patch(now);
    let request = |api: &str, kind: &str, name: &str| PatchRequest {
        api_version: api.to_string(),
        kind: kind.to_string(),
        namespace: stamp.flux_namespace().to_string(),
        name: name.to_string(),
        patch: patch.clone(),
    };
    let mut requests = vec![
        request(GIT_REPOSITORY_API, "GitRepository", GIT_REPOSITORY),
        request(KUSTOMIZATION_API, "Kustomization", &root_name(stamp)),
    ];
    for entry in stamp.ordered_entries() {
        requests.push(request(KUSTOMIZATION_API, "Kustomization", &entry.name));
        if has_health_kustomization(stamp, entry) {
            requests.push(request(
                KUSTOMIZATION_API,
                "Kustomization",
                &health_name(&entry.name),
            ));
        }
        if matches!(entry.source, Source::Helm(_)) {
            requests.push(request(HELM_RELEASE_API, "HelmRelease", &entry.name));
        }
    }
    requests
}

fn named<'a>(objects: &'a [Value], name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["metadata"]["name"] == name)
}

/// A Flux object's readiness from its `Ready` condition and `spec.suspend`.
pub fn readiness_of(object: &Value) -> (Readiness, String, String) {
    if object["spec"]["suspend"] == true {
        return (
            Readiness::Suspended,
            "Suspended".to_string(),
            "reconciliation is suspended".to_string(),
        );
    }
    match condition_of(object, "Ready") {
        None => (
            Readiness::Progressing,
            "Pending".to_string(),
            "not reconciled yet".to_string(),
        ),
        Some((status, reason, message)) => {
            let stale = object["status"]["observedGeneration"].as_i64()
                < object["metadata"]["generation"].as_i64();
            let readiness = match status.as_str() {
                "True" if !stale => Readiness::Ready,
                "True" | "Unknown" => Readiness::Progressing,
                // Waiting for a dependency is not a failure of this entry.
                _ if reason == "DependencyNotReady" => Readiness::Progressing,
                _ => Readiness::Failed,
            };
            (readiness, reason, message)
        }
    }
}

/// The dependency a `DependencyNotReady` message names (`dependency 'flux-system/db' is not
/// ready`), without its namespace; an entry's health-check Kustomization stands for the entry.
pub fn dependency_in_message(message: &str) -> Option<String> {
    let start = message.find("dependency '")? + "dependency '".len();
    let rest = &message[start..];
    let name = &rest[..rest.find('\'')?];
    let name = name.rsplit('/').next().unwrap_or(name);
    Some(name.strip_suffix(".health").unwrap_or(name).to_string())
}

/// An entry whose own Kustomization is Ready is still held by its health-check Kustomization
/// until that is Ready too, at the revision the entry applied: the named checks are part of
/// what the stamp asked for, and a Ready left from the previous commit says nothing of this one.
fn with_health_checks(entry: EntryStatus, kustomizations: &[Value]) -> EntryStatus {
    if entry.readiness != Readiness::Ready {
        return entry;
    }
    let name = health_name(&entry.name);
    let pending = |message: String| EntryStatus {
        readiness: Readiness::Progressing,
        reason: "HealthChecksPending".to_string(),
        message,
        ..entry.clone()
    };
    let Some(checks) = named(kustomizations, &name) else {
        return pending(format!("Flux has not created {name} yet"));
    };
    let applied = named(kustomizations, &entry.name)
        .and_then(|k| k["status"]["lastAppliedRevision"].as_str());
    let (readiness, reason, message) = readiness_of(checks);
    let current = checks["status"]["lastAppliedRevision"].as_str() == applied;
    match readiness {
        Readiness::Ready if current => entry,
        Readiness::Ready | Readiness::Progressing => pending(format!(
            "{name} has not checked {} at this revision yet",
            entry.name
        )),
        _ if reason == "DependencyNotReady" => pending(format!(
            "{name} has not checked {} at this revision yet",
            entry.name
        )),
        _ => EntryStatus {
            suspended: readiness == Readiness::Suspended,
            readiness,
            reason,
            // The object to look at is the health-check Kustomization, not the entry's.
            message: format!("{name}: {message}"),
            ..entry
        },
    }
}

/// One entry from its Kustomization (and HelmRelease for Helm entries).
pub fn entry_status(
    name: &str,
    is_helm: bool,
    kustomizations: &[Value],
    releases: &[Value],
) -> EntryStatus {
    let Some(kustomization) = named(kustomizations, name) else {
        return EntryStatus::missing(name, "Kustomization");
    };
    let (mut readiness, mut reason, mut message) = readiness_of(kustomization);
    let mut revision = kustomization["status"]["lastAppliedRevision"]
        .as_str()
        .map(str::to_string);
    let mut kind = "Kustomization".to_string();
    if is_helm && let Some(release) = named(releases, name) {
        let (r, why, what) = readiness_of(release);
        // The release is where a chart failure shows; report it when it is the worse one.
        if readiness == Readiness::Ready || r == Readiness::Failed || r == Readiness::Suspended {
            (readiness, reason, message) = (r, why, what);
            kind = "HelmRelease".to_string();
        }
        if let Some(chart) = release["status"]["history"][0]["chartVersion"].as_str() {
            let chart_name = release["status"]["history"][0]["chartName"]
                .as_str()
                .unwrap_or(name);
            revision = Some(format!("{chart_name}@{chart}"));
        }
    }
    let blocked_by = (reason == "DependencyNotReady")
        .then(|| dependency_in_message(&message))
        .flatten();
    EntryStatus {
        name: name.to_string(),
        kind,
        suspended: readiness == Readiness::Suspended,
        readiness,
        reason,
        message,
        revision,
        blocked_by,
        sync: None,
        health: None,
        awaiting_approval: false,
        applied_directly: false,
        drifted: Vec::new(),
    }
}

pub fn source_status(git_repository: Option<&Value>) -> Option<SourceStatus> {
    let repo = git_repository?;
    let (readiness, _, message) = readiness_of(repo);
    Some(SourceStatus {
        kind: "GitRepository".to_string(),
        name: GIT_REPOSITORY.to_string(),
        readiness,
        message,
        revision: repo["status"]["artifact"]["revision"]
            .as_str()
            .map(str::to_string),
    })
}

/// The stamp's status from the objects in `flux-system`.
pub fn status(
    stamp: &Stamp,
    git_repository: Option<&Value>,
    kustomizations: &[Value],
    releases: &[Value],
) -> EngineStatus {
    let root = named(kustomizations, &root_name(stamp));
    let awaiting_approval = root.is_some_and(|r| r["spec"]["suspend"] == true);
    let entries = stamp
        .entries
        .iter()
        .map(|e| {
            let status = entry_status(
                &e.name,
                matches!(e.source, Source::Helm(_)),
                kustomizations,
                releases,
            );
            if has_health_kustomization(stamp, e) {
                with_health_checks(status, kustomizations)
            } else {
                status
            }
        })
        .collect();
    let mut entries = link_dependencies(stamp, entries);
    // Flux's own message names the dependency it waits for; prefer it when present (not when
    // an entry's health checks wait for the entry itself).
    for e in &mut entries {
        if let Some(dep) = dependency_in_message(&e.message)
            && e.reason == "DependencyNotReady"
            && dep != e.name
        {
            e.blocked_by = Some(dep);
        }
    }
    let mut status = EngineStatus {
        engine: "flux".to_string(),
        awaiting_approval,
        source: source_status(git_repository),
        entries,
        gates: Vec::new(),
    };
    status.mark_gates(stamp);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_reconcile_patch_sets_the_requested_at_annotation() {
        let now = time::macros::datetime!(2026-11-26 07:30:05 UTC);
        assert_eq!(
            reconcile_patch(now),
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-11-26T07:30:05Z"}}})
        );
    }

    #[test]
    fn flux_dependency_is_read_from_the_controller_message() {
        assert_eq!(
            dependency_in_message("dependency 'flux-system/database' is not ready").as_deref(),
            Some("database")
        );
        assert_eq!(
            dependency_in_message("dependency 'certs' is not ready").as_deref(),
            Some("certs")
        );
        assert_eq!(
            dependency_in_message("Applied revision: main@sha1:abc"),
            None
        );
        assert_eq!(dependency_in_message("dependency 'unterminated"), None);
    }

    /// An entry Ready at a new commit whose `.health` Kustomization is still Ready from the old
    /// one is not Ready yet: the checks have not run at this commit.
    #[test]
    fn flux_health_checks_count_only_at_the_entry_revision() {
        let kustomization = |name: &str, revision: &str| {
            json!({"metadata": {"name": name, "generation": 1},
            "status": {"observedGeneration": 1, "lastAppliedRevision": revision, "conditions": [
                {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": format!("Applied revision: {revision}")}
            ]}})
        };
        let entry = |objects: &[Value]| {
            with_health_checks(entry_status("api", false, objects, &[]), objects)
        };
        let stale = [
            kustomization("api", "main@sha1:new"),
            kustomization("api.health", "main@sha1:old"),
        ];
        let e = entry(&stale);
        assert_eq!(e.readiness, Readiness::Progressing, "{e:?}");
        assert_eq!(e.reason, "HealthChecksPending");
        let current = [
            kustomization("api", "main@sha1:new"),
            kustomization("api.health", "main@sha1:new"),
        ];
        assert_eq!(entry(&current).readiness, Readiness::Ready);
        let mut failed = current.clone();
        failed[1]["status"]["conditions"][0] = json!({"type": "Ready", "status": "False",
            "reason": "HealthCheckFailed", "message": "health check failed after 5m0s: timeout waiting for: [Deployment/sample/api status: 'InProgress']"});
        let e = entry(&failed);
        assert_eq!(e.readiness, Readiness::Failed);
        assert!(
            e.message.starts_with("api.health: health check failed"),
            "{e:?}"
        );
        assert_eq!(entry(&current[..1]).reason, "HealthChecksPending");
    }

    #[test]
    fn flux_stale_ready_condition_is_progressing() {
        let object = json!({
            "metadata": {"generation": 3},
            "status": {"observedGeneration": 2, "conditions": [
                {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "ok"}
            ]}
        });
        assert_eq!(readiness_of(&object).0, Readiness::Progressing);
    }
}
