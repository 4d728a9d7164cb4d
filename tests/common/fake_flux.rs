//! The Flux controllers as the env flow tests meet them: source-controller's artifact,
//! kustomize-controller and helm-controller reconciling what the pushed commit holds, in
//! scaled time (one Flux second is [`SECOND`]).
//!
//! Read from fluxcd/kustomize-controller v1.9.4 (internal/controller/kustomization_controller.go,
//! kustomization_manager.go is not used; api/v1/kustomization_types.go) and
//! fluxcd/helm-controller v1.6.3 (internal/controller/helmrelease_controller.go), the versions
//! Flux v2.9.4 (kindling's pin) ships. Each behaviour below names where it comes from.
//!
//! What the fake does not model: SOPS, post-build substitution, drift detection, Helm test and
//! rollback. What a chart installs is a recorded table ([`chart_workloads`]), not a Helm render.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::env_harness::Head;
use super::kube_api::{Stored, builtin_controllers};

/// One second of Flux time in the fake: a `5m` timeout lasts 3 s, the 30 s dependency requeue
/// 300 ms.
pub const SECOND: Duration = Duration::from_millis(10);

/// kustomize-controller's `--requeue-dependency` default (main.go: 30s): how soon an entry
/// waiting for a dependency looks again.
const REQUEUE_DEPENDENCY: Duration = Duration::from_secs(30);

/// The finalizer both controllers put on their objects (fluxcd/pkg apis/meta:
/// `finalizers.fluxcd.io`).
pub const FINALIZER: &str = "finalizers.fluxcd.io";

/// A test can make an object's health what it needs: `InProgress`, `Failed`, or
/// `InProgressFor=<duration>` (Flux time, from when it was applied). Not an upstream field:
/// it stands for a workload that is slow or broken.
pub const HEALTH_ANNOTATION: &str = "test.kindling.dev/health";

/// Parses a Go duration as Flux writes them (`5m`, `30s`, `1m30s`, `1h`).
pub fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('h', _) => 3600.0,
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * unit;
        number.clear();
    }
    number.is_empty().then(|| Duration::from_secs_f64(total))
}

fn scaled(flux: Duration) -> Duration {
    SECOND.mul_f64(flux.as_secs_f64())
}

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
    head: Head,
    cached_head: Option<(Instant, Option<String>)>,
    snapshots: tempfile::TempDir,
    builds: HashMap<(String, String), Result<Vec<Value>, String>>,
    runs: HashMap<String, Run>,
    /// When each object this fake applied was applied (for `InProgressFor`).
    applied_at: HashMap<String, Instant>,
    /// Every Ready transition, in order: (object kind/name, reason).
    pub transitions: TransitionLog,
}

/// Ready transitions in the order they happened: (`Kind/name`, reason).
pub type TransitionLog = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// An object as Flux's inventory names it: group/version, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    fn of(object: &Value) -> ObjectRef {
        ObjectRef {
            api_version: object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind: object["kind"].as_str().unwrap_or_default().to_string(),
            namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// Whether `s` is this object (any version of the group when none is named, as a health
    /// check without apiVersion).
    fn names(&self, s: &Stored) -> bool {
        (self.api_version.is_empty() || s.group_version == self.api_version)
            && s.plural == plural_of(&self.kind)
            && s.namespace == self.namespace
            && s.name == self.name
    }

    fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.api_version,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }
}

/// The plural the API serves a kind under (the kinds the fakes meet).
pub fn plural_of(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with("ss") || lower.ends_with("ch") || lower.ends_with('x') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// Kinds that live outside namespaces, among those stamps apply.
fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "ClusterIssuer"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "IngressClass"
            | "StorageClass"
            | "PersistentVolume"
            | "PriorityClass"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
    )
}

impl FluxModel {
    pub fn new(head: Head) -> FluxModel {
        FluxModel {
            head,
            cached_head: None,
            snapshots: tempfile::tempdir().unwrap(),
            builds: HashMap::new(),
            runs: HashMap::new(),
            applied_at: HashMap::new(),
            transitions: Default::default(),
        }
    }

    /// The Ready transitions this model will record, in order.
    pub fn log(&self) -> TransitionLog {
        self.transitions.clone()
    }

    /// The controller hook for the fake API.
    pub fn controller(mut self) -> impl FnMut(&mut Vec<Stored>) + Send {
        move |objects: &mut Vec<Stored>| self.pass(objects)
    }

    fn head(&mut self) -> Option<String> {
        // A `git rev-parse` (or `docker exec`) per request would dominate the fake's time.
        if let Some((at, head)) = &self.cached_head
            && at.elapsed() < Duration::from_millis(100)
        {
            return head.clone();
        }
        let head = self.head.read();
        self.cached_head = Some((Instant::now(), head.clone()));
        head
    }

    fn pass(&mut self, objects: &mut Vec<Stored>) {
        builtin_controllers(objects);
        super::fake_cert_manager::reconcile(objects);
        let head = self.head();
        if let Some(head) = &head {
            // source-controller v1.9.4: the artifact revision is `<branch>@sha1:<commit>`.
            for s in objects
                .iter_mut()
                .filter(|s| s.object["kind"] == "GitRepository")
            {
                let revision = format!("main@sha1:{head}");
                let generation = s.object["metadata"]["generation"].clone();
                s.object["status"] = json!({"observedGeneration": generation, "artifact": {"revision": revision, "digest": "sha256:0", "lastUpdateTime": "2026-11-29T08:00:00Z", "path": "x", "url": "http://x"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": format!("stored artifact for revision '{revision}'"), "lastTransitionTime": "2026-11-29T08:00:00Z"}]});
            }
        }
        let names: Vec<(String, String)> = objects
            .iter()
            .filter(|s| s.plural == "kustomizations" || s.plural == "helmreleases")
            .map(|s| (s.plural.clone(), s.name.clone()))
            .collect();
        for (plural, name) in names {
            if plural == "kustomizations" {
                self.kustomization(objects, &name, head.as_deref());
            } else {
                self.helm_release(objects, &name);
            }
        }
    }

    fn index(objects: &[Stored], plural: &str, name: &str) -> Option<usize> {
        objects.iter().position(|s| {
            s.plural == plural && s.name == name && s.namespace.as_deref() == Some("flux-system")
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
    fn kustomization(&mut self, objects: &mut Vec<Stored>, name: &str, head: Option<&str>) {
        let Some(i) = Self::index(objects, "kustomizations", name) else {
            return;
        };
        let object = objects[i].object.clone();
        if !object["metadata"]["deletionTimestamp"].is_null() {
            self.finalize(objects, name, "kustomizations");
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
        let id = format!("kustomizations/{name}");
        let run = self.runs.entry(id.clone()).or_default();
        let requested =
            object["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"].clone();
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
        // A new revision or generation is reconciled at once; the same one again after
        // the requeue its last outcome asked for, or on request (requestedAt).
        let changed = run.attempted != Some((revision.clone(), generation));
        if requested != run.requested {
            run.requested = requested;
            run.next = None;
        }
        if !changed && run.next.is_some_and(|n| n > now) {
            return;
        }
        let must_apply = changed || run.applied.is_none();
        // checkDependencies: every dependsOn Kustomization Ready, at its current generation
        // (and, from the same source, at the same revision).
        for dep in object["spec"]["dependsOn"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let dep_ns = dep["namespace"].as_str().unwrap_or("flux-system");
            let ok = Self::index(objects, "kustomizations", dep_name).is_some_and(|d| {
                let d = &objects[d].object;
                let cond = &d["status"]["conditions"][0];
                cond["type"] == "Ready"
                    && cond["status"] == "True"
                    && d["status"]["observedGeneration"] == d["metadata"]["generation"]
                    && d["status"]["lastAppliedRevision"] == revision.as_str()
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
            self.runs.get_mut(&id).unwrap().attempted = Some((revision.clone(), generation));
            let path = object["spec"]["path"].as_str().unwrap_or("./").to_string();
            let built = self.build(head, &path);
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
            match self.apply(objects, name, built, target) {
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
                    let i = Self::index(objects, "kustomizations", name).unwrap();
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
        let i = Self::index(objects, "kustomizations", name).unwrap();
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
            match self.health(objects, check) {
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
            self.runs.get_mut(&id).unwrap().next = Some(now + scaled(Duration::from_secs(600)));
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

    /// The manifests at `path` of the pushed commit, built as kustomize-controller builds
    /// them: with the directory's kustomization.yaml, or every YAML file under it when there
    /// is none (the generator of fluxcd/pkg kustomize: "generate a kustomization.yaml").
    fn build(&mut self, head: &str, path: &str) -> Result<Vec<Value>, String> {
        let key = (head.to_string(), path.to_string());
        if let Some(done) = self.builds.get(&key) {
            return done.clone();
        }
        let root = self.snapshots.path().join(head);
        if !root.exists() {
            self.head.extract(head, &root);
        }
        let dir = root.join(path.trim_start_matches("./"));
        let result = if !dir.is_dir() {
            Err(format!(
                "kustomization path not found: stat {}: no such file or directory",
                dir.display()
            ))
        } else if dir.join("kustomization.yaml").is_file()
            || dir.join("kustomization.yml").is_file()
        {
            let out = std::process::Command::new("kubectl")
                .args(["kustomize", &dir.display().to_string()])
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(documents(&String::from_utf8_lossy(&out.stdout)))
            } else {
                Err(format!(
                    "kustomize build failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        } else {
            let mut files = Vec::new();
            yaml_files(&dir, &mut files);
            files.sort();
            Ok(files
                .iter()
                .flat_map(|f| documents(&std::fs::read_to_string(f).unwrap_or_default()))
                .collect())
        };
        self.builds.insert(key, result.clone());
        result
    }

    /// Server-side apply of the built objects, Namespaces first, labelled with the owner
    /// (`kustomize.toolkit.fluxcd.io/name`), refused as the API server refuses them.
    fn apply(
        &mut self,
        objects: &mut Vec<Stored>,
        owner: &str,
        mut built: Vec<Value>,
        target: Option<String>,
    ) -> Result<Vec<ObjectRef>, String> {
        built.sort_by_key(|o| o["kind"] != "Namespace");
        let mut inventory = Vec::new();
        for mut o in built {
            let kind = o["kind"].as_str().unwrap_or_default().to_string();
            let gv = o["apiVersion"].as_str().unwrap_or_default().to_string();
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ns = if cluster_scoped(&kind) {
                None
            } else {
                target
                    .clone()
                    .or_else(|| o["metadata"]["namespace"].as_str().map(str::to_string))
                    .or(Some("default".into()))
            };
            if let Some(ns) = &ns {
                o["metadata"]["namespace"] = json!(ns);
            }
            o["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] = json!(owner);
            o["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/namespace"] = json!("flux-system");
            let plural = plural_of(&kind);
            if let Some((reason, refused)) = admission(objects, &o, ns.as_deref()) {
                // fluxcd/pkg ssa v0.76.1 apply errors: "<Kind>/<ns>/<name> dry-run failed
                // (<reason>): <API message>", and kustomize-controller adds "\n" and the
                // change log (KC:975), so the message ends in a newline.
                return Err(format!(
                    "{kind}/{}/{name} dry-run failed ({reason}): {refused}\n",
                    ns.as_deref().unwrap_or("")
                ));
            }
            let key = ObjectRef::of(&o).key();
            match objects.iter_mut().find(|s| {
                s.group_version == gv && s.plural == plural && s.namespace == ns && s.name == name
            }) {
                Some(s) => {
                    let status = s.object["status"].clone();
                    let finalizers = s.object["metadata"]["finalizers"].clone();
                    let generation = s.object["metadata"]["generation"].as_i64().unwrap_or(1);
                    let spec_changed = s.object["spec"] != o["spec"];
                    s.object = o;
                    s.object["status"] = status;
                    if !finalizers.is_null() {
                        s.object["metadata"]["finalizers"] = finalizers;
                    }
                    s.object["metadata"]["generation"] =
                        json!(generation + i64::from(spec_changed));
                }
                None => {
                    o["metadata"]["generation"] = json!(1);
                    objects.push(Stored {
                        group_version: gv.clone(),
                        plural: plural.clone(),
                        namespace: ns.clone(),
                        name: name.clone(),
                        object: o,
                    });
                    self.applied_at.insert(key, Instant::now());
                }
            }
            inventory.push(ObjectRef {
                api_version: gv,
                kind,
                namespace: ns,
                name,
            });
        }
        Ok(inventory)
    }

    /// kstatus as Flux's health checks use it (fluxcd/cli-utils kstatus): workloads by their
    /// rollout, objects with a Ready condition by it, the rest Current once they exist.
    fn health(&self, objects: &[Stored], target: &ObjectRef) -> Health {
        let Some(s) = objects.iter().find(|s| target.names(s)) else {
            return Health::NotFound;
        };
        let o = &s.object;
        if let Some(wish) = o["metadata"]["annotations"][HEALTH_ANNOTATION].as_str() {
            match wish.split_once('=') {
                Some(("InProgressFor", d)) => {
                    let since = self
                        .applied_at
                        .get(&ObjectRef::of(o).key())
                        .map(|t| t.elapsed())
                        .unwrap_or_default();
                    if since < scaled(go_duration(d).unwrap_or_default()) {
                        return Health::InProgress;
                    }
                }
                _ if wish == "Failed" => return Health::Failed,
                _ if wish == "InProgress" => return Health::InProgress,
                _ => {}
            }
        }
        if !o["metadata"]["deletionTimestamp"].is_null() {
            return Health::InProgress;
        }
        match o["kind"].as_str().unwrap_or_default() {
            "Deployment" => {
                let available = o["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Available" && c["status"] == "True")
                });
                if available {
                    Health::Current
                } else {
                    Health::InProgress
                }
            }
            "StatefulSet" => {
                if o["status"]["readyReplicas"].as_i64()
                    >= o["spec"]["replicas"].as_i64().or(Some(1))
                {
                    Health::Current
                } else {
                    Health::InProgress
                }
            }
            _ => match o["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            {
                Some(c) if c["status"] == "True" => Health::Current,
                // kstatus: a Stalled condition is Failed; a Ready=False alone is still InProgress.
                Some(_)
                    if o["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Stalled" && c["status"] == "True")
                    }) =>
                {
                    Health::Failed
                }
                Some(_) => Health::InProgress,
                // Custom resources that Flux or cert-manager judge by conditions but that have
                // none yet are still reconciling; everything else exists and that is enough.
                None if matches!(
                    o["kind"].as_str(),
                    Some(
                        "HelmRelease"
                            | "Kustomization"
                            | "Certificate"
                            | "ClusterIssuer"
                            | "Issuer"
                    )
                ) =>
                {
                    Health::InProgress
                }
                None => Health::Current,
            },
        }
    }

    /// Deletion of a Kustomization or HelmRelease (kustomize-controller v1.9.4 finalize):
    /// with `prune` (or deletionPolicy Delete / WaitForTermination) the inventory is deleted;
    /// with MirrorPrune and Delete the finalizer goes at once, while what was deleted may
    /// still be terminating; WaitForTermination keeps it until every object is gone or the
    /// timeout passes; Orphan deletes nothing.
    fn finalize(&mut self, objects: &mut [Stored], name: &str, plural: &str) {
        let Some(i) = Self::index(objects, plural, name) else {
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
        let id = format!("{plural}/{name}");
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
        let i = Self::index(objects, plural, name).unwrap();
        remove_finalizer(&mut objects[i].object);
        self.runs.remove(&id);
    }

    /// helm-controller v1.6.3: dependencies, then install (or upgrade) of the chart; what the
    /// chart brings is the recorded [`chart_workloads`].
    fn helm_release(&mut self, objects: &mut Vec<Stored>, name: &str) {
        let Some(i) = Self::index(objects, "helmreleases", name) else {
            return;
        };
        let object = objects[i].object.clone();
        if !object["metadata"]["deletionTimestamp"].is_null() {
            // Uninstall: the release's objects go, then the finalizer.
            self.finalize(objects, name, "helmreleases");
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
            let ok = Self::index(objects, "helmreleases", dep_name)
                .is_some_and(|d| objects[d].object["status"]["conditions"][0]["status"] == "True");
            if !ok {
                let dep_ns = dep["namespace"].as_str().unwrap_or("flux-system");
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
        let chart = object["spec"]["chart"]["spec"]["chart"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let version = object["spec"]["chart"]["spec"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let target = object["spec"]["targetNamespace"]
            .as_str()
            .unwrap_or("flux-system")
            .to_string();
        let release = object["spec"]["releaseName"]
            .as_str()
            .unwrap_or(name)
            .to_string();
        let id = format!("helmreleases/{name}");
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
                && let Err(message) = self.apply(objects, name, namespace, None)
            {
                self.set_ready(objects, i, "False", "InstallFailed", &message);
                return;
            }
            let built = chart_workloads(&chart, &target, &object["spec"]["values"]);
            let inventory = match self.apply(objects, name, built, Some(target.clone())) {
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
            .any(|o| self.health(objects, o) != Health::Current);
        if pending {
            return;
        }
        let i = Self::index(objects, "helmreleases", name).unwrap();
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Current,
    InProgress,
    Failed,
    NotFound,
}

impl Health {
    fn label(self) -> &'static str {
        match self {
            Health::Current => "Current",
            Health::InProgress => "InProgress",
            Health::Failed => "Failed",
            Health::NotFound => "NotFound",
        }
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

/// A delete request from a controller: the object gets its deletionTimestamp and the fake
/// API's garbage collection (and namespace controller) does the rest.
fn mark_deleted(objects: &mut [Stored], target: &ObjectRef) {
    if let Some(s) = objects.iter_mut().find(|s| target.names(s))
        && s.object["metadata"]["deletionTimestamp"].is_null()
    {
        s.object["metadata"]["deletionTimestamp"] = json!("2026-11-29T00:00:00Z");
        if s.object["kind"] == "Namespace" {
            s.object["status"]["phase"] = json!("Terminating");
        }
    }
}

/// What the API server's admission says to a create or update (None = allowed): the
/// NamespaceLifecycle plugin, and cert-manager's validating webhook (failurePolicy Fail in
/// cert-manager/cert-manager v1.21.1 deploy/charts/cert-manager/templates/webhook-validating-webhook.yaml)
/// while its Deployment is not available.
fn admission(
    objects: &[Stored],
    object: &Value,
    ns: Option<&str>,
) -> Option<(&'static str, String)> {
    let exists = |gv: &str, plural: &str, ns: Option<&str>, name: &str| {
        objects.iter().find(|s| {
            s.group_version == gv
                && s.plural == plural
                && s.namespace.as_deref() == ns
                && s.name == name
        })
    };
    let is_new = exists(
        object["apiVersion"].as_str().unwrap_or(""),
        &plural_of(object["kind"].as_str().unwrap_or("")),
        ns,
        object["metadata"]["name"].as_str().unwrap_or(""),
    )
    .is_none();
    if let Some(ns) = ns
        && is_new
        && !["default", "kube-system", "kube-public", "kube-node-lease"].contains(&ns)
    {
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        let plural = plural_of(object["kind"].as_str().unwrap_or(""));
        match exists("v1", "namespaces", None, ns) {
            None => return Some(("NotFound", format!("namespaces \"{ns}\" not found"))),
            Some(n) if !n.object["metadata"]["deletionTimestamp"].is_null() => {
                return Some((
                    "Forbidden",
                    format!(
                        "{plural} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"
                    ),
                ));
            }
            _ => {}
        }
    }
    if object["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("cert-manager.io/"))
    {
        let webhook_ready = exists(
            "apps/v1",
            "deployments",
            Some("cert-manager"),
            "cert-manager-webhook",
        )
        .is_some_and(|d| d.object["status"]["availableReplicas"].as_i64() > Some(0));
        if !webhook_ready {
            return Some(("InternalError", "Internal error occurred: failed calling webhook \"webhook.cert-manager.io\": failed to call webhook: Post \"https://cert-manager-webhook.cert-manager.svc:443/validate?timeout=30s\": dial tcp 10.96.0.10:443: connect: connection refused".to_string()));
        }
    }
    None
}

/// What a chart release creates that health checks look at, per chart kindling's stamps use:
/// cert-manager v1.21.1 (deploy/charts/cert-manager/templates/_helpers.tpl: `cert-manager`,
/// `cert-manager-webhook`, `cert-manager-cainjector` for release `cert-manager`), Traefik
/// 41.3.0 (templates/deployment.yaml named by `fullnameOverride`, plus `extraObjects`).
/// Unknown charts bring nothing the fake knows of.
fn chart_workloads(chart: &str, namespace: &str, values: &Value) -> Vec<Value> {
    let deployment = |name: &str| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace}, "spec": {"replicas": 1}});
    match chart {
        "cert-manager" => [
            "cert-manager",
            "cert-manager-webhook",
            "cert-manager-cainjector",
        ]
        .map(deployment)
        .to_vec(),
        "traefik" => {
            let name = values["fullnameOverride"].as_str().unwrap_or("traefik");
            let mut objects = vec![deployment(name)];
            objects.extend(
                values["extraObjects"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
            objects
        }
        _ => Vec::new(),
    }
}

fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .filter_map(|d| Value::deserialize(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}
