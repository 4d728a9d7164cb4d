//! The Flux controllers as the env flow tests meet them: source-controller's artifact,
//! kustomize-controller and helm-controller reconciling what the pushed commit holds, in
//! scaled time (one Flux second is [`SECOND`]). What they share with the Argo CD fake (the
//! pushed tree, builds, apply, health) is in fake_cluster.rs.
//!
//! Read from fluxcd/kustomize-controller v1.9.4 (internal/controller/kustomization_controller.go
//! "KC", api/v1/kustomization_types.go "KT"), fluxcd/helm-controller v1.6.3
//! (internal/controller/helmrelease_controller.go, internal/reconcile/install.go) and fluxcd/pkg
//! at the versions their go.mod names (ssa v0.76.1, runtime v0.110.1): the versions Flux v2.9.4,
//! kindling's pin, ships. Each behaviour below names where it comes from; line numbers are
//! those of the v1.9.4 tag.
//!
//! What the fake does not model: SOPS, post-build substitution, drift detection, Helm test and
//! rollback. What a chart installs is a recorded table ([`chart_workloads`]), not a Helm render.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::env_harness::Head;
use super::fake_cluster::{
    Health, ObjectRef, Owner, SECOND, Workspace, chart_workloads, go_duration, mark_deleted, scaled,
};
use super::kube_api::{Stored, builtin_controllers};

/// kustomize-controller's `--requeue-dependency` default (main.go: 30s): how soon an entry
/// waiting for a dependency looks again.
const REQUEUE_DEPENDENCY: Duration = Duration::from_secs(30);

/// The finalizer both controllers put on their objects (fluxcd/pkg apis/meta:
/// `finalizers.fluxcd.io`).
pub const FINALIZER: &str = "finalizers.fluxcd.io";

/// `5m0s`, as Go prints a duration in Flux's messages.
fn go_print(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// A Ready condition as fluxcd/pkg runtime/conditions writes it.
fn ready(status: &str, reason: &str, message: &str) -> Value {
    json!([{"type": "Ready", "status": status, "reason": reason, "message": message,
        "lastTransitionTime": "2026-11-29T08:00:00Z", "observedGeneration": 1}])
}

/// What one Kustomization or HelmRelease is doing, between passes.
#[derive(Default)]
struct Run {
    /// Not before this instant does the controller look at it again.
    next: Option<Instant>,
    /// The revision and generation whose apply started the current health wait, and when.
    applied: Option<(String, i64, Instant)>,
    /// What it applied.
    inventory: Vec<ObjectRef>,
    /// The last `reconcile.fluxcd.io/requestedAt` handled.
    requested: Value,
    /// The revision and generation last attempted.
    attempted: Option<(String, i64)>,
    /// When its deletion was first seen.
    deleting_since: Option<Instant>,
}

pub struct FluxModel {
    ws: Workspace,
    oci: super::fake_oci::OciSources,
    runs: HashMap<String, Run>,
    /// Every Ready transition, in order: (object kind/name, reason).
    pub transitions: TransitionLog,
}

/// Ready transitions in the order they happened: (`Kind/name`, reason).
pub type TransitionLog = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

impl FluxModel {
    pub fn new(head: Head) -> FluxModel {
        FluxModel {
            ws: Workspace::new(head),
            oci: Default::default(),
            runs: HashMap::new(),
            transitions: Default::default(),
        }
    }

    /// The Ready transitions this model will record, in order.
    pub fn log(&self) -> TransitionLog {
        self.transitions.clone()
    }

    /// The controllers fetch charts through `internet`.
    pub fn behind(mut self, internet: super::fake_cluster::Internet) -> FluxModel {
        self.ws.internet = internet;
        self
    }

    /// The controller hook for the fake API.
    pub fn controller(mut self) -> impl FnMut(&mut Vec<Stored>) + Send {
        move |objects: &mut Vec<Stored>| self.pass(objects)
    }

    fn pass(&mut self, objects: &mut Vec<Stored>) {
        builtin_controllers(objects);
        super::fake_cert_manager::reconcile(objects);
        let head = self.ws.head();
        if let Some(head) = &head {
            // source-controller v1.9.x main.go: `--watch-all-namespaces=false` reads only its
            // own namespace, as the appliers below.
            let sources_only_own = watches_only_its_own(objects, "source-controller");
            let secrets: Vec<(Option<String>, String)> = objects
                .iter()
                .filter(|s| s.plural == "secrets")
                .map(|s| (s.namespace.clone(), s.name.clone()))
                .collect();
            // source-controller v1.9.4: the artifact revision is `<branch>@sha1:<commit>`.
            for s in objects.iter_mut().filter(|s| {
                s.object["kind"] == "GitRepository"
                    && (!sources_only_own || s.namespace.as_deref() == Some("flux-system"))
            }) {
                // A package's repository (idpbuilder packages kindling pushes) has its own
                // head; until it has one, no artifact.
                let url = s.object["spec"]["url"].as_str().unwrap_or_default();
                let head = match super::fake_cluster::package_repository(url) {
                    Some(repo) => match self.ws.repository_head(url, &repo) {
                        Some(h) => h,
                        None => continue,
                    },
                    // Each env's GitRepository reads its own env's Gitea.
                    None => match self.ws.head_for_url(url) {
                        Some(Some(h)) => h,
                        Some(None) => continue,
                        None => head.clone(),
                    },
                };
                // source-controller v1.9 internal/controller/gitrepository_controller.go
                // Reconcile: "Return early if the object is suspended": it keeps the artifact
                // it has, whatever the branch holds now.
                if s.object["spec"]["suspend"] == true {
                    continue;
                }
                // `secretRef` is local: read from the GitRepository's own namespace, and a
                // missing one fails the fetch, the artifact it had kept (source-controller
                // release/v1.9.x internal/controller/gitrepository_controller.go `getAuthOpts`).
                if let Some(secret) = s.object["spec"]["secretRef"]["name"].as_str()
                    && !secrets.contains(&(s.namespace.clone(), secret.to_string()))
                {
                    let message = format!(
                        "failed to get secret '{}/{secret}': secrets \"{secret}\" not found",
                        s.namespace.as_deref().unwrap_or_default()
                    );
                    s.object["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "AuthenticationFailed", "message": message, "lastTransitionTime": "2026-11-29T08:00:00Z"}]);
                    continue;
                }
                let revision = format!("main@sha1:{head}");
                let generation = s.object["metadata"]["generation"].clone();
                s.object["status"] = json!({"observedGeneration": generation, "artifact": {"revision": revision, "digest": "sha256:0", "lastUpdateTime": "2026-11-29T08:00:00Z", "path": "x", "url": "http://x"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": format!("stored artifact for revision '{revision}'"), "lastTransitionTime": "2026-11-29T08:00:00Z"}]});
            }
        }
        self.oci.reconcile(objects, &mut self.ws);
        // Every namespace's (the controllers watch all of them: fluxcd/pkg runtime/v0.110.1
        // runtime/controller/watch.go, `--watch-all-namespaces` true by default), or only
        // flux-system's for a controller run with `--watch-all-namespaces=false`
        // (kustomize-controller v1.9.4 main.go, helm-controller v1.6.3 main.go: the manager's
        // cache then holds `RUNTIME_NAMESPACE` alone).
        let only_own = (
            watches_only_its_own(objects, "kustomize-controller"),
            watches_only_its_own(objects, "helm-controller"),
        );
        let names: Vec<(String, String, String)> = objects
            .iter()
            .filter(|s| s.plural == "kustomizations" || s.plural == "helmreleases")
            .filter(|s| {
                let only_own = match s.plural.as_str() {
                    "kustomizations" => only_own.0,
                    _ => only_own.1,
                };
                !only_own || s.namespace.as_deref() == Some("flux-system")
            })
            .map(|s| {
                (
                    s.plural.clone(),
                    s.namespace.clone().unwrap_or_default(),
                    s.name.clone(),
                )
            })
            .collect();
        for (plural, ns, name) in names {
            if plural == "kustomizations" {
                // kustomize-controller builds the artifact its source has, not the branch;
                // the source in `sourceRef.namespace`, else the Kustomization's own
                // (kustomize-controller v1.9.4 kustomization_controller.go `getSource`).
                let served = Self::index(objects, "kustomizations", &ns, &name)
                    .and_then(|i| {
                        let source = &objects[i].object["spec"]["sourceRef"];
                        let source_ns = source["namespace"].as_str().unwrap_or(&ns).to_string();
                        let plural = match source["kind"].as_str() {
                            Some("OCIRepository") => "ocirepositories",
                            _ => "gitrepositories",
                        };
                        objects.iter().find(|s| {
                            s.plural == plural
                                && s.namespace.as_deref() == Some(source_ns.as_str())
                                && s.object["metadata"]["name"] == source["name"]
                        })
                    })
                    .and_then(|g| g.object["status"]["artifact"]["revision"].as_str())
                    .map(|r| match r.rsplit_once("sha1:") {
                        Some((_, commit)) => commit.to_string(),
                        // An OCI artifact's tree, stored under its digest (fake_oci).
                        None => super::fake_oci::served_key(r),
                    })
                    // A source with no artifact yet: the one pushed head, when there is one
                    // (with a Gitea per env, the source's own is the only one).
                    .or_else(|| match self.ws.head_for_url("") {
                        Some(_) => None,
                        None => head.clone(),
                    });
                self.kustomization(objects, &ns, &name, served.as_deref());
            } else {
                self.helm_release(objects, &ns, &name);
            }
        }
    }

    fn index(objects: &[Stored], plural: &str, ns: &str, name: &str) -> Option<usize> {
        objects.iter().position(|s| {
            s.plural == plural && s.name == name && s.namespace.as_deref() == Some(ns)
        })
    }

    fn set_ready(
        &self,
        objects: &mut [Stored],
        i: usize,
        status: &str,
        reason: &str,
        message: &str,
    ) {
        let s = &mut objects[i];
        let before = s.object["status"]["conditions"][0].clone();
        let generation = s.object["metadata"]["generation"].clone();
        s.object["status"]["conditions"] = ready(status, reason, message);
        s.object["status"]["conditions"][0]["observedGeneration"] = generation.clone();
        // The dependency check runs before reconcile() and leaves observedGeneration alone
        // (KC:244-265); a reconcile that ran records it.
        if status != "Unknown" && reason != "DependencyNotReady" {
            s.object["status"]["observedGeneration"] = generation;
        }
        if before["status"] != status || before["reason"] != reason {
            self.transitions.lock().unwrap().push((
                format!("{}/{}", s.object["kind"].as_str().unwrap_or(""), s.name),
                reason.to_string(),
            ));
        }
    }

    /// kustomize-controller v1.9.4, Reconcile: finalizer, deletion, suspend, dependencies,
    /// build, apply, prune, health.
    fn kustomization(
        &mut self,
        objects: &mut Vec<Stored>,
        ns: &str,
        name: &str,
        head: Option<&str>,
    ) {
        let Some(i) = Self::index(objects, "kustomizations", ns, name) else {
            return;
        };
        let object = objects[i].object.clone();
        if !object["metadata"]["deletionTimestamp"].is_null() {
            self.finalize(objects, ns, name, "kustomizations");
            return;
        }
        // Reconcile: the finalizer goes on first (kustomization_controller.go, "Add finalizer
        // first if not exist to avoid the race condition between init and delete").
        add_finalizer(&mut objects[i].object);
        if object["spec"]["suspend"] == true {
            // "Return early if the object is suspended": status stays as it was.
            return;
        }
        let Some(head) = head else { return };
        let revision = format!("main@sha1:{head}");
        let now = Instant::now();
        let id = format!("kustomizations/{ns}/{name}");
        let run = self.runs.entry(id.clone()).or_default();
        let requested =
            object["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"].clone();
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
        // A new revision or generation is reconciled at once; the same one again after
        // the requeue its last outcome asked for, or on request (requestedAt).
        let changed = run.attempted != Some((revision.clone(), generation));
        let asked = requested != run.requested;
        if asked {
            run.requested = requested;
            run.next = None;
        }
        if !changed && run.next.is_some_and(|n| n > now) {
            return;
        }
        // Every reconciliation builds and applies again, whatever the revision
        // (kustomize-controller v1.9.4 kustomization_controller.go `reconcile`: "Validate and
        // apply resources in stages", line 472): that is how Flux puts back a field edited by
        // hand, at the next interval or on request. While health checks wait (`next` unset),
        // the pass only checks.
        let due = asked || run.next.is_some_and(|n| n <= now);
        let must_apply = changed || run.applied.is_none() || due;
        // checkDependencies: every dependsOn Kustomization Ready, at its current generation
        // (and, from the same source, at the same revision).
        for dep in object["spec"]["dependsOn"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            // Without a namespace, the Kustomization's own (kustomize-controller v1.9.4
            // `checkDependencies`).
            let dep_ns = dep["namespace"].as_str().unwrap_or(ns);
            // kustomize-controller v1.9.4 `checkDependencies`: the revision is compared only
            // when the dependency reads the same source ("dep.Spec.SourceRef ==
            // obj.Spec.SourceRef").
            let ok = Self::index(objects, "kustomizations", dep_ns, dep_name).is_some_and(|d| {
                let d = &objects[d].object;
                let cond = &d["status"]["conditions"][0];
                let same_source = d["spec"]["sourceRef"] == object["spec"]["sourceRef"];
                cond["type"] == "Ready"
                    && cond["status"] == "True"
                    && d["status"]["observedGeneration"] == d["metadata"]["generation"]
                    && (!same_source || d["status"]["lastAppliedRevision"] == revision.as_str())
            });
            if !ok {
                // "dependency '%s' is not ready", reason DependencyNotReady; requeued after
                // --requeue-dependency.
                let message = format!("dependency '{dep_ns}/{dep_name}' is not ready");
                self.set_ready(objects, i, "False", "DependencyNotReady", &message);
                let run = self.runs.get_mut(&id).unwrap();
                run.next = Some(now + scaled(REQUEUE_DEPENDENCY));
                return;
            }
        }
        let timeout = go_duration(object["spec"]["timeout"].as_str().unwrap_or("5m"))
            .unwrap_or(Duration::from_secs(300));
        let retry = object["spec"]["retryInterval"]
            .as_str()
            .or(object["spec"]["interval"].as_str())
            .and_then(go_duration)
            .unwrap_or(Duration::from_secs(600));
        if must_apply {
            let run = self.runs.get_mut(&id).unwrap();
            run.attempted = Some((revision.clone(), generation));
            run.next = None;
            let path = object["spec"]["path"].as_str().unwrap_or("./").to_string();
            let built = self.ws.build_as_flux(head, &path);
            let built = match built {
                Ok(objs) => objs,
                Err(e) => {
                    self.set_ready(objects, i, "False", "BuildFailed", &e);
                    self.runs.get_mut(&id).unwrap().next = Some(now + scaled(retry));
                    return;
                }
            };
            let target = object["spec"]["targetNamespace"]
                .as_str()
                .map(str::to_string);
            match self.ws.apply(objects, Owner::Flux(name, ns), built, target) {
                Ok(inventory) => {
                    let old = std::mem::replace(
                        &mut self.runs.get_mut(&id).unwrap().inventory,
                        inventory.clone(),
                    );
                    if object["spec"]["prune"] == true {
                        for stale in old.iter().filter(|o| !inventory.contains(o)) {
                            mark_deleted(objects, stale);
                        }
                    }
                    let i = Self::index(objects, "kustomizations", ns, name).unwrap();
                    // api/v1 ResourceInventory: id `<namespace>_<name>_<group>_<kind>`, v the version.
                    objects[i].object["status"]["inventory"] = json!({"entries": inventory.iter().map(|o| {
                        let (group, version) = o.api_version.rsplit_once('/').unwrap_or(("", &o.api_version));
                        json!({"id": format!("{}_{}_{group}_{}", o.namespace.as_deref().unwrap_or(""), o.name, o.kind), "v": version})
                    }).collect::<Vec<_>>()});
                    self.runs.get_mut(&id).unwrap().applied =
                        Some((revision.clone(), generation, now));
                }
                Err(message) => {
                    // The apply error as the API server gave it, reason ReconciliationFailed.
                    self.set_ready(objects, i, "False", "ReconciliationFailed", &message);
                    self.runs.get_mut(&id).unwrap().next = Some(now + scaled(retry));
                    return;
                }
            }
        }
        let i = Self::index(objects, "kustomizations", ns, name).unwrap();
        // checkHealth: with `wait`, every applied object; otherwise `healthChecks` (and they
        // only): "if obj.Spec.Wait { toCheck = resultSet } else { toCheck = healthChecks }".
        let to_check: Vec<ObjectRef> = if object["spec"]["wait"] == true {
            self.runs[&id].inventory.clone()
        } else {
            object["spec"]["healthChecks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|h| ObjectRef {
                    api_version: h["apiVersion"].as_str().unwrap_or("").to_string(),
                    kind: h["kind"].as_str().unwrap_or("").to_string(),
                    namespace: h["namespace"].as_str().map(str::to_string),
                    name: h["name"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        };
        let waited = self.runs[&id]
            .applied
            .as_ref()
            .map(|(_, _, at)| at.elapsed())
            .unwrap_or_default();
        let mut pending = Vec::new();
        for check in &to_check {
            match self.ws.health(objects, check) {
                Health::Current => {}
                other => pending.push((check, other)),
            }
        }
        if pending.is_empty() {
            objects[i].object["status"]["lastAppliedRevision"] = json!(revision);
            objects[i].object["status"]["lastAttemptedRevision"] = json!(revision);
            self.set_ready(
                objects,
                i,
                "True",
                "ReconciliationSucceeded",
                &format!("Applied revision: {revision}"),
            );
            // Requeued after spec.interval (kustomize-controller v1.9.4 `Reconcile`: success
            // returns `RequeueAfter: obj.GetRequeueAfter()`, the interval).
            let interval = object["spec"]["interval"]
                .as_str()
                .and_then(go_duration)
                .unwrap_or(Duration::from_secs(600));
            self.runs.get_mut(&id).unwrap().next = Some(now + scaled(interval));
            return;
        }
        let failed = pending.iter().any(|(_, h)| *h == Health::Failed);
        if failed || waited >= scaled(timeout) {
            // ssa WaitForSet: "health check failed after %s: ..." / "timeout waiting for: [...]".
            let what: Vec<String> = pending
                .iter()
                .map(|(o, h)| {
                    format!(
                        "{}/{}/{} status: '{}'",
                        o.kind,
                        o.namespace.as_deref().unwrap_or(""),
                        o.name,
                        h.label()
                    )
                })
                .collect();
            let message = if failed {
                format!(
                    "health check failed after {}: failed early due to stalled resources: [{}]",
                    go_print(Duration::from_secs_f64(
                        waited.as_secs_f64() / SECOND.as_secs_f64()
                    )),
                    what.join(", ")
                )
            } else {
                format!(
                    "health check failed after {}: timeout waiting for: [{}]",
                    go_print(timeout),
                    what.join(", ")
                )
            };
            objects[i].object["status"]["lastAttemptedRevision"] = json!(revision);
            self.set_ready(objects, i, "False", "HealthCheckFailed", &message);
            let run = self.runs.get_mut(&id).unwrap();
            run.next = Some(now + scaled(retry));
            // The next attempt applies again and waits anew.
            run.applied = None;
            return;
        }
        // While it waits: Ready Unknown "Reconciliation in progress" (KC:325), and
        // Reconciling True with the health check's own message (KC:1052-1057).
        self.set_ready(
            objects,
            i,
            "Unknown",
            "Progressing",
            "Reconciliation in progress",
        );
        let reconciling = json!({"type": "Reconciling", "status": "True", "reason": "Progressing",
            "message": format!("Running health checks for revision {revision} with a timeout of {}", go_print(timeout)),
            "lastTransitionTime": "2026-11-29T08:00:00Z"});
        if let Some(c) = objects[i].object["status"]["conditions"].as_array_mut() {
            c.push(reconciling);
        }
    }

    /// Deletion of a Kustomization or HelmRelease (kustomize-controller v1.9.4 finalize):
    /// with `prune` (or deletionPolicy Delete / WaitForTermination) the inventory is deleted;
    /// with MirrorPrune and Delete the finalizer goes at once, while what was deleted may
    /// still be terminating; WaitForTermination keeps it until every object is gone or the
    /// timeout passes; Orphan deletes nothing.
    fn finalize(&mut self, objects: &mut [Stored], ns: &str, name: &str, plural: &str) {
        let Some(i) = Self::index(objects, plural, ns, name) else {
            return;
        };
        let spec = objects[i].object["spec"].clone();
        let policy = spec["deletionPolicy"]
            .as_str()
            .unwrap_or("MirrorPrune")
            .to_string();
        let delete = match policy.as_str() {
            "Delete" | "WaitForTermination" => true,
            "Orphan" => false,
            _ => plural == "helmreleases" || spec["prune"] == true,
        };
        let id = format!("{plural}/{ns}/{name}");
        let run = self.runs.entry(id.clone()).or_default();
        let inventory = run.inventory.clone();
        let started = *run.deleting_since.get_or_insert_with(Instant::now);
        if delete && spec["suspend"] != true {
            for o in inventory.iter().rev() {
                mark_deleted(objects, o);
            }
        }
        if policy == "WaitForTermination" && delete {
            // GetTimeout (KT:383-392): spec.timeout, never under 30s; on timeout the
            // finalizer goes anyway (KC:1236-1246).
            let timeout = go_duration(spec["timeout"].as_str().unwrap_or("5m"))
                .unwrap_or(Duration::from_secs(300))
                .max(Duration::from_secs(30));
            let left = inventory.iter().any(|o| objects.iter().any(|s| o.names(s)));
            if left && started.elapsed() < scaled(timeout) {
                return;
            }
        }
        let i = Self::index(objects, plural, ns, name).unwrap();
        remove_finalizer(&mut objects[i].object);
        self.runs.remove(&id);
    }

    /// The chart's artifact, as source-controller makes it for the HelmChart helm-controller
    /// creates (`<release namespace>-<release name>`, in the source's namespace). The
    /// HelmRepository's URL is fetched with the TLS settings of its `certSecretRef`
    /// (fluxcd/source-controller v1.9 internal/helm/getter/client_opts.go GetClientOpts: the
    /// Secret is read from the HelmRepository's namespace, a missing one fails with "failed to
    /// get TLS authentication secret"; fluxcd/pkg runtime/secrets: `ca.crt`, else the legacy
    /// `caFile`, added to the system roots). helm-controller reports a chart without artifact as
    /// "HelmChart '<ns>/<name>' is not ready: <message>", reason ArtifactFailed (helm-controller
    /// v1.6.3 internal/controller/helmrelease_controller.go isReady and its caller).
    ///
    /// A chart from a GitRepository is the directory `chart` of the source's artifact
    /// (`Workspace::local_chart`); what it holds is returned.
    fn chart_artifact(
        &mut self,
        objects: &[Stored],
        release: &Value,
        name: &str,
    ) -> Result<Option<super::fake_cluster::LocalChart>, String> {
        let source = &release["spec"]["chart"]["spec"]["sourceRef"];
        let release_ns = release["metadata"]["namespace"]
            .as_str()
            .unwrap_or("flux-system");
        let ns = source["namespace"].as_str().unwrap_or(release_ns);
        let chart = format!("HelmChart '{ns}/{release_ns}-{name}' is not ready");
        if source["kind"] == "GitRepository" {
            let repo_name = source["name"].as_str().unwrap_or_default();
            let Some(git) = objects.iter().find(|s| {
                s.plural == "gitrepositories"
                    && s.name == repo_name
                    && s.namespace.as_deref() == Some(ns)
            }) else {
                return Err(format!(
                    "{chart}: failed to get source: GitRepository.source.toolkit.fluxcd.io \"{repo_name}\" not found"
                ));
            };
            // The chart is read from the source's artifact: its own revision.
            let artifact = git.object["status"]["artifact"]["revision"]
                .as_str()
                .and_then(|r| r.rsplit("sha1:").next())
                .map(str::to_string);
            let Some(head) = artifact.or_else(|| self.ws.head()) else {
                return Err(format!(
                    "{chart}: no artifact available for GitRepository source '{repo_name}'"
                ));
            };
            let path = release["spec"]["chart"]["spec"]["chart"]
                .as_str()
                .unwrap_or_default();
            return self
                .ws
                .local_chart(&head, path)
                .map(Some)
                .map_err(|e| format!("{chart}: {e}"));
        }
        if source["kind"] != "HelmRepository" {
            return Ok(None);
        }
        let repo_name = source["name"].as_str().unwrap_or_default();
        let Some(repository) = objects.iter().find(|s| {
            s.plural == "helmrepositories"
                && s.name == repo_name
                && s.namespace.as_deref() == Some(ns)
        }) else {
            // internal/controller/helmchart_controller.go reconcileSource: the source is
            // looked up first.
            return Err(format!(
                "{chart}: failed to get source: HelmRepository.source.toolkit.fluxcd.io \"{repo_name}\" not found"
            ));
        };
        let url = repository.object["spec"]["url"]
            .as_str()
            .unwrap_or_default();
        let mut trusted = None;
        if let Some(secret) = repository.object["spec"]["certSecretRef"]["name"].as_str() {
            let Some(found) = objects.iter().find(|s| {
                s.plural == "secrets" && s.name == secret && s.namespace.as_deref() == Some(ns)
            }) else {
                return Err(format!(
                    "{chart}: failed to get TLS authentication secret '{ns}/{secret}': secrets \"{secret}\" not found"
                ));
            };
            use base64::Engine as _;
            let data = &found.object["data"];
            trusted = [&data["ca.crt"], &data["caFile"]]
                .into_iter()
                .find_map(|v| v.as_str())
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned());
        }
        self.ws.internet.connect(url, trusted.as_deref()).map(|_| None).map_err(|e| {
            if url.starts_with("oci://") {
                format!("{chart}: failed to get chart version for remote reference: {url}: {e}")
            } else {
                format!(
                    "{chart}: failed to fetch Helm repository index: Get \"{}/index.yaml\": {e}",
                    url.trim_end_matches('/')
                )
            }
        })
    }

    /// helm-controller v1.6.3: dependencies, then install (or upgrade) of the chart; what the
    /// chart brings is the recorded [`chart_workloads`].
    fn helm_release(&mut self, objects: &mut Vec<Stored>, ns: &str, name: &str) {
        let Some(i) = Self::index(objects, "helmreleases", ns, name) else {
            return;
        };
        let object = objects[i].object.clone();
        if !object["metadata"]["deletionTimestamp"].is_null() {
            // Uninstall: the release's objects go, then the finalizer.
            self.finalize(objects, ns, name, "helmreleases");
            return;
        }
        add_finalizer(&mut objects[i].object);
        if object["spec"]["suspend"] == true {
            return;
        }
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
        if object["status"]["observedGeneration"].as_i64() == Some(generation)
            && object["status"]["conditions"][0]["status"] == "True"
        {
            return;
        }
        for dep in object["spec"]["dependsOn"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            // Without a namespace, the HelmRelease's own (helm-controller v1.6.3
            // helmrelease_controller.go `checkDependencies`).
            let dep_ns = dep["namespace"].as_str().unwrap_or(ns);
            let ok = Self::index(objects, "helmreleases", dep_ns, dep_name)
                .is_some_and(|d| objects[d].object["status"]["conditions"][0]["status"] == "True");
            if !ok {
                self.set_ready(
                    objects,
                    i,
                    "False",
                    "DependencyNotReady",
                    &format!("dependency '{dep_ns}/{dep_name}' is not ready"),
                );
                return;
            }
        }
        let local = match self.chart_artifact(objects, &object, name) {
            Ok(local) => local,
            Err(message) => {
                self.set_ready(objects, i, "False", "ArtifactFailed", &message);
                return;
            }
        };
        let (chart, version) = match &local {
            // A chart from Git is named and versioned by its Chart.yaml.
            Some(l) => (l.name.clone(), l.version.clone()),
            None => (
                object["spec"]["chart"]["spec"]["chart"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                object["spec"]["chart"]["spec"]["version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
        };
        // helm-controller v1.6.3 api/v2/helmrelease_types.go `GetReleaseNamespace`: the
        // HelmRelease's own namespace without a target.
        let target = object["spec"]["targetNamespace"]
            .as_str()
            .unwrap_or(ns)
            .to_string();
        let release = object["spec"]["releaseName"]
            .as_str()
            .unwrap_or(name)
            .to_string();
        let id = format!("helmreleases/{ns}/{name}");
        if self
            .runs
            .get(&id)
            .is_none_or(|r| r.attempted != Some((version.clone(), generation)))
        {
            // install.createNamespace makes the namespace outside the release: an uninstall
            // leaves it (helm's own behaviour).
            let namespace = vec![
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target}}),
            ];
            if object["spec"]["install"]["createNamespace"] == true
                && let Err(message) = self
                    .ws
                    .apply(objects, Owner::HelmNamespace, namespace, None)
            {
                self.set_ready(objects, i, "False", "InstallFailed", &message);
                return;
            }
            let mut built = chart_workloads(&chart, &target, &object["spec"]["values"]);
            built.extend(local.map(|l| l.objects).unwrap_or_default());
            // helm v4 pkg/action/install.go: what the chart renders that exists already is
            // adopted (`TakeOwnership`, helm-controller v1.6.3's default) or, with
            // `install.disableTakeOwnership`, must carry this release's ownership metadata
            // (pkg/action/validate.go `existingResourceConflict`, `checkOwnership`).
            if object["spec"]["install"]["disableTakeOwnership"] == true
                && let Some(conflict) = ownership_conflict(objects, &built, &release, &target)
            {
                let message = format!(
                    "Helm install failed for release {target}/{release} with chart {chart}@{version}: unable to continue with install: {conflict}"
                );
                self.set_ready(objects, i, "False", "InstallFailed", &message);
                return;
            }
            // Helm marks what a release installs as the release's (helm v3/v4
            // pkg/action/validate.go `setMetadataVisitor`, which install.go runs: label
            // `app.kubernetes.io/managed-by: Helm`, annotations `meta.helm.sh/release-name`
            // and `meta.helm.sh/release-namespace`).
            for o in &mut built {
                o["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("Helm");
                o["metadata"]["annotations"]["meta.helm.sh/release-name"] = json!(release);
                o["metadata"]["annotations"]["meta.helm.sh/release-namespace"] = json!(target);
            }
            let release_ns = objects[i].namespace.clone().unwrap_or_default();
            let inventory = match self.ws.apply(
                objects,
                Owner::Helm(name, &release_ns),
                built,
                Some(target.clone()),
            ) {
                Ok(inventory) => inventory,
                Err(message) => {
                    let message = format!(
                        "Helm install failed for release {target}/{release} with chart {chart}@{version}: {message}"
                    );
                    self.set_ready(objects, i, "False", "InstallFailed", &message);
                    return;
                }
            };
            let run = self.runs.entry(id.clone()).or_default();
            run.inventory = inventory;
            run.attempted = Some((version.clone(), generation));
            // The install runs with Helm's wait (spec.install.disableWait unset): Ready only
            // once what the chart made is ready (internal/reconcile/install.go).
            self.set_ready(
                objects,
                i,
                "Unknown",
                "Progressing",
                &format!(
                    "Running 'install' action with timeout of {}",
                    object["spec"]["timeout"].as_str().unwrap_or("5m0s")
                ),
            );
            return;
        }
        let pending = self.runs[&id]
            .inventory
            .iter()
            .any(|o| self.ws.health(objects, o) != Health::Current);
        if pending {
            return;
        }
        let i = Self::index(objects, "helmreleases", ns, name).unwrap();
        objects[i].object["status"]["history"] = json!([{"chartName": chart, "chartVersion": version, "name": release, "namespace": target, "version": 1, "status": "deployed"}]);
        // internal/reconcile/install.go: "Helm install succeeded for release %s with chart %s".
        self.set_ready(
            objects,
            i,
            "True",
            "InstallSucceeded",
            &format!("Helm install succeeded for release {target}/{release}.v1 with chart {chart}@{version}"),
        );
    }
}

fn add_finalizer(object: &mut Value) {
    let finalizers = object["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        let mut f = finalizers;
        f.push(json!(FINALIZER));
        object["metadata"]["finalizers"] = json!(f);
    }
}

fn remove_finalizer(object: &mut Value) {
    if let Some(f) = object["metadata"]["finalizers"].as_array_mut() {
        f.retain(|f| f != FINALIZER);
    }
}

/// The first object of `built` that exists and is not release `release` in `namespace`'s, as
/// helm v4 pkg/action/validate.go says it (`resourceString`, `checkOwnership`,
/// `requireValue`).
fn ownership_conflict(
    objects: &[Stored],
    built: &[Value],
    release: &str,
    namespace: &str,
) -> Option<String> {
    built.iter().find_map(|o| {
        let kind = o["kind"].as_str()?;
        let name = o["metadata"]["name"].as_str()?;
        let ns = (!kindling::stamp::is_cluster_scoped(kind)).then_some(namespace);
        let live = objects.iter().find(|s| {
            s.object["kind"] == kind && s.namespace.as_deref() == ns && s.name == name
        })?;
        let require = |map: &Value, key: &str, want: &str, what: &str| match map[key].as_str() {
            None => Some(format!(
                "{what} validation error: missing key \"{key}\": must be set to \"{want}\""
            )),
            Some(v) if v != want => Some(format!(
                "{what} validation error: key \"{key}\" must equal \"{want}\": current value is \"{v}\""
            )),
            Some(_) => None,
        };
        let meta = &live.object["metadata"];
        let errors: Vec<String> = [
            require(&meta["labels"], "app.kubernetes.io/managed-by", "Helm", "label"),
            require(&meta["annotations"], "meta.helm.sh/release-name", release, "annotation"),
            require(
                &meta["annotations"],
                "meta.helm.sh/release-namespace",
                namespace,
                "annotation",
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!errors.is_empty()).then(|| {
            format!(
                "{kind} \"{name}\" in namespace \"{}\" exists and cannot be imported into the current release: invalid ownership metadata; {}",
                ns.unwrap_or(""),
                errors.join("; ")
            )
        })
    })
}

/// Whether a Flux controller (its Deployment in flux-system) runs with
/// `--watch-all-namespaces=false`, so reads only flux-system (fluxcd/pkg runtime/v0.110.1
/// runtime/controller/watch.go; kustomize-controller v1.9.4, helm-controller v1.6.3 and
/// source-controller v1.9.x main.go watch `RUNTIME_NAMESPACE` alone then).
fn watches_only_its_own(objects: &[Stored], controller: &str) -> bool {
    objects.iter().any(|s| {
        s.plural == "deployments"
            && s.name == controller
            && s.namespace.as_deref() == Some("flux-system")
            && s.object["spec"]["template"]["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["args"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
                // pflag sets a bool flag at each occurrence, the last one wins: bare means
                // true, `=V` is Go's strconv.ParseBool (spf13/pflag bool.go).
                .rfind(|a| {
                    a == "--watch-all-namespaces" || a.starts_with("--watch-all-namespaces=")
                })
                .is_some_and(|a| {
                    matches!(
                        a.trim_start_matches("--watch-all-namespaces"),
                        "=0" | "=f" | "=F" | "=false" | "=FALSE" | "=False"
                    )
                })
    })
}
