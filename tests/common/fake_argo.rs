//! The Argo CD application controller as the env flow tests meet it, in scaled time (one
//! second of Argo CD time is `fake_cluster::SECOND`).
//!
//! Read from argoproj/argo-cd v3.5.1: controller/appcontroller.go (autoSync: only when
//! OutOfSync, no operation running and the revision not already attempted; the default
//! retry of an automated sync; finalizeApplicationDeletion), controller/sync.go (the 2 s
//! delay between waves), the in-tree gitops-engine pkg/sync/sync_context.go (waves: the next
//! one starts when every object of this one is healthy; an object without a health check is
//! done once applied) and pkg/health (Deployment, StatefulSet; Application only through the
//! argocd-cm customisation), util/argo/resource_tracking.go (annotation tracking).
//!
//! Not modelled: hooks, sync options other than CreateNamespace, selfHeal timing, diffing
//! beyond "the revision changed".

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::env_harness::Head;
use super::fake_cluster::{
    Health, ObjectRef, Owner, Workspace, chart_workloads, mark_deleted, scaled,
};
use super::kube_api::{Stored, builtin_controllers};

const NAMESPACE: &str = "argocd";
const FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
/// argocd-cm key that gives Applications a health (none is built in since Argo CD 1.8).
pub const APPLICATION_HEALTH_KEY: &str = "resource.customizations.health.argoproj.io_Application";
/// controller/sync.go: the delay between sync waves.
const WAVE_DELAY: Duration = Duration::from_secs(2);

/// One Application's sync operation in progress.
struct Operation {
    revision: String,
    /// The objects to apply, by wave, lowest first.
    waves: Vec<(i64, Vec<Value>)>,
    /// Index into `waves` of the wave applied last (None before the first).
    applied: Option<usize>,
    /// Not before this instant is the next wave (or the next try) started.
    next: Instant,
    attempt: u32,
}

#[derive(Default)]
struct App {
    operation: Option<Operation>,
    /// What the last sync applied (for prune and deletion).
    inventory: Vec<ObjectRef>,
    /// The revision of the last sync that ended (successfully or not).
    attempted: Option<String>,
}

/// Child Applications in the order the root created them, with whether the customisation was
/// loaded when their wave started: what the tests assert ordering with.
pub type WaveLog = std::sync::Arc<std::sync::Mutex<Vec<(String, i64, bool)>>>;

pub struct ArgoModel {
    ws: Workspace,
    /// By instance name (`NS_NAME` outside argocd, `InstanceName`).
    apps: HashMap<String, App>,
    pub waves: WaveLog,
    /// The application controller as it last started: its StatefulSet's pod template then,
    /// and the namespaces besides argocd it reconciles Applications in.
    started: Option<(Value, Vec<String>)>,
}

impl ArgoModel {
    pub fn new(head: Head) -> ArgoModel {
        ArgoModel {
            ws: Workspace::new(head),
            apps: HashMap::new(),
            waves: Default::default(),
            started: None,
        }
    }

    pub fn log(&self) -> WaveLog {
        self.waves.clone()
    }

    /// repo-server fetches charts through `internet`.
    pub fn behind(mut self, internet: super::fake_cluster::Internet) -> ArgoModel {
        self.ws.internet = internet;
        self
    }

    pub fn controller(mut self) -> impl FnMut(&mut Vec<Stored>) + Send {
        move |objects: &mut Vec<Stored>| self.pass(objects)
    }

    fn pass(&mut self, objects: &mut Vec<Stored>) {
        builtin_controllers(objects);
        super::fake_cert_manager::reconcile(objects);
        super::fake_appset::reconcile(objects, &mut self.ws);
        let Some(head) = self.ws.head() else { return };
        let customised = objects.iter().any(|s| {
            s.plural == "configmaps"
                && s.name == "argocd-cm"
                && s.object["data"][APPLICATION_HEALTH_KEY].is_string()
        });
        let watched = self.watched_namespaces(objects);
        // argo-cd v3.5.1 controller/appcontroller.go: the informer watches argocd alone when
        // `application.namespaces` is empty, and `canProcessApp` (`isAppNamespaceAllowed`,
        // util/security/application_namespaces.go `IsNamespaceEnabled`) skips an Application
        // elsewhere whose namespace it does not match: silently, no condition, no status.
        let mut apps: Vec<(String, String)> = objects
            .iter()
            .filter(|s| s.plural == "applications")
            .filter_map(|s| Some((s.namespace.clone()?, s.name.clone())))
            .filter(|(ns, _)| {
                ns == NAMESPACE
                    || watched
                        .iter()
                        .any(|p| !p.starts_with('/') && glob_match(p, ns))
            })
            .collect();
        // The roots first: they make the others.
        apps.sort_by_key(|(_, n)| !n.starts_with("kindling-"));
        for (namespace, name) in apps {
            self.application(objects, &namespace, &name, &head, customised);
        }
    }

    /// The namespaces besides argocd the controller reconciles Applications in. It reads
    /// `--application-namespaces`, else the env install.yaml fills from `argocd-cmd-params-cm`
    /// key `application.namespaces`, once, when it starts (argo-cd v3.5.1
    /// cmd/argocd-application-controller/commands/argocd_application_controller.go;
    /// docs/operator-manual/app-any-namespace.md: "a restart is required"): here when its
    /// StatefulSet appears and whenever its pod template changes (`kubectl rollout restart`).
    /// Without a StatefulSet there is no controller to start: argocd alone. Regular
    /// expressions (`/…/`) are not modelled: they match nothing here.
    fn watched_namespaces(&mut self, objects: &[Stored]) -> Vec<String> {
        let statefulset = objects.iter().find(|s| {
            s.plural == "statefulsets"
                && s.name == "argocd-application-controller"
                && s.namespace.as_deref() == Some(NAMESPACE)
        });
        let Some(statefulset) = statefulset else {
            self.started = None;
            return Vec::new();
        };
        let read = || -> Vec<String> {
            let containers = statefulset.object["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let args: Vec<String> = containers
                .iter()
                .flat_map(|c| c["args"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            // pflag: `--application-namespaces=V` or `--application-namespaces V`.
            let flagged = args.iter().enumerate().find_map(|(i, a)| {
                match a.strip_prefix("--application-namespaces") {
                    Some(rest) if rest.starts_with('=') => Some(rest[1..].to_string()),
                    Some("") => args.get(i + 1).cloned(),
                    _ => None,
                }
            });
            // Else the flag's default, the env `ARGOCD_APPLICATION_NAMESPACES`: a literal, or
            // (install.yaml) argocd-cmd-params-cm's key; none, nothing.
            let value = flagged.or_else(|| {
                let variable = containers
                    .iter()
                    .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
                    .find(|e| e["name"] == "ARGOCD_APPLICATION_NAMESPACES")?;
                if let Some(v) = variable["value"].as_str() {
                    return Some(v.to_string());
                }
                let reference = &variable["valueFrom"]["configMapKeyRef"];
                objects
                    .iter()
                    .find(|s| {
                        s.plural == "configmaps"
                            && s.object["metadata"]["name"] == reference["name"]
                            && s.namespace.as_deref() == Some(NAMESPACE)
                    })
                    .and_then(|s| {
                        s.object["data"][reference["key"].as_str().unwrap_or_default()].as_str()
                    })
                    .map(str::to_string)
            });
            // util/env/env.go `StringsFromEnv`: split on `,`, each trimmed.
            value
                .map(|v| v.split(',').map(|p| p.trim().to_string()).collect())
                .unwrap_or_default()
        };
        let template = statefulset.object["spec"]["template"].clone();
        match &self.started {
            Some((at, namespaces)) if *at == template => namespaces.clone(),
            _ => {
                let namespaces = read();
                self.started = Some((template, namespaces.clone()));
                namespaces
            }
        }
    }

    fn index(objects: &[Stored], namespace: &str, name: &str) -> Option<usize> {
        objects.iter().position(|s| {
            s.plural == "applications"
                && s.name == name
                && s.namespace.as_deref() == Some(namespace)
        })
    }

    fn application(
        &mut self,
        objects: &mut Vec<Stored>,
        namespace: &str,
        name: &str,
        head: &str,
        customised: bool,
    ) {
        let Some(i) = Self::index(objects, namespace, name) else {
            return;
        };
        // pkg/apis/application/v1alpha1/types.go `InstanceName`: what tracking ids and the
        // controller's own records know the app by.
        let instance = match namespace {
            NAMESPACE => name.to_string(),
            ns => format!("{ns}_{name}"),
        };
        let (name, key) = (instance.as_str(), (namespace, name));
        let app = objects[i].object.clone();
        if !app["metadata"]["deletionTimestamp"].is_null() {
            // finalizeApplicationDeletion reads the project first (getAppProj): one that is
            // gone, or does not permit the app, stops the cascade (a DeletionError
            // condition; the finalizer stays; appcontroller.go processAppRefreshQueueItem).
            if let Some(refused) =
                project_gone(objects, &app).or_else(|| not_permitted(objects, &app))
            {
                objects[i].object["status"]["conditions"] =
                    json!([{"type": "DeletionError", "message": refused}]);
                return;
            }
            self.finalize(objects, key, name);
            return;
        }
        // The head the app's Git sources read: with a Gitea per env, that of the env whose
        // Gitea the root's repoURL names (nothing pushed there yet: nothing to do).
        let sources = sources_of(&app);
        let env_url = sources
            .iter()
            .filter(|s| !s["chart"].is_string())
            .filter_map(|s| s["repoURL"].as_str())
            .find(|url| super::fake_cluster::package_repository(url).is_none())
            .map(str::to_string);
        let env_head = env_url.as_deref().map(|url| self.ws.head_for_url(url));
        let in_cluster_gitea = matches!(env_head, Some(Some(_)));
        let head = match env_head {
            Some(Some(Some(h))) => h,
            Some(Some(None)) => return,
            _ => head.to_string(),
        };
        let head = head.as_str();
        // pkg/apis/application/v1alpha1/app_project_types.go `IsAppNamespacePermitted`, through
        // controller/appcontroller.go `getAppProj`: an app outside argocd whose project does
        // not list its namespace is an UnknownError condition, sync and health Unknown, and
        // nothing is reconciled.
        if let Some(refused) = not_permitted(objects, &app) {
            objects[i].object["status"]["conditions"] =
                json!([{"type": "UnknownError", "message": refused}]);
            objects[i].object["status"]["resources"] = json!([]);
            objects[i].object["status"]["sync"]["status"] = json!("Unknown");
            objects[i].object["status"]["health"]["status"] = json!("Unknown");
            return;
        }
        // An env's in-cluster Gitea keeps its repositories private: repo-server lists their
        // refs with the repository Secret for the app's project, else an unscoped one
        // (util/db/repository_secrets.go `getRepositorySecret`), and without one fails
        // (util/git/client.go "failed to list refs", go-git's "authentication required";
        // controller/state.go: a ComparisonError "Failed to load target state: …").
        if let (Some(url), true) = (&env_url, in_cluster_gitea) {
            let project = app["spec"]["project"].as_str().unwrap_or("default");
            if !has_repository_secret(objects, url, project) {
                objects[i].object["status"]["conditions"] = json!([{"type": "ComparisonError",
                    "message": "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc = failed to list refs: authentication required"}]);
                objects[i].object["status"]["sync"]["status"] = json!("Unknown");
                return;
            }
        }
        // The project first (argo-cd v3.5.1 controller/appcontroller.go: "Application
        // referencing project %s which does not exist"; util/argo/argo.go with
        // app_project_types.go `IsSourcePermitted`: "application repo %s is not permitted in
        // project '%s'"): an invalid spec is a condition, and nothing syncs.
        if let Some(invalid) = invalid_spec(objects, &app, &sources) {
            let i = Self::index(objects, key.0, key.1).unwrap();
            objects[i].object["status"]["conditions"] =
                json!([{"type": "InvalidSpecError", "message": invalid}]);
            objects[i].object["status"]["sync"]["status"] = json!("Unknown");
            return;
        }
        // A chart's revision is its version; a Git source's is its repository's head: the
        // env's pushed commit, or a package repository's (joined, for several sources).
        let revision = if sources.iter().all(|s| s["chart"].is_string()) {
            sources[0]["targetRevision"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        } else {
            let heads: Vec<String> = sources
                .iter()
                .filter(|s| !s["chart"].is_string())
                .map(|s| self.source_head(s, head))
                .collect();
            if heads.iter().all(|h| h == head) {
                head.to_string()
            } else {
                heads.join("+")
            }
        };
        // The refresh annotation is handled and removed (appcontroller.go).
        if let Some(a) = objects[i].object["metadata"]["annotations"].as_object_mut() {
            a.remove("argocd.argoproj.io/refresh");
        }
        let state = self.apps.entry(name.to_string()).or_default();
        let idle = state.operation.is_none();
        let already = state.attempted.as_deref() == Some(revision.as_str());
        let synced_at = app["status"]["sync"]["revision"]
            .as_str()
            .map(str::to_string);
        let out_of_sync = synced_at.as_deref() != Some(revision.as_str());
        let automated = app["spec"]["syncPolicy"]["automated"].is_object();
        let requested = app["operation"]["sync"].is_object();
        // autoSync: OutOfSync, nothing running, and not already attempted at this revision
        // (a failed automated sync is not retried at the same revision); or an operation.
        if idle && ((automated && out_of_sync && !already) || requested) {
            let desired = self.desired(&app, &sources, head, objects);
            let state = self.apps.get_mut(name).unwrap();
            match desired {
                Ok(objs) => {
                    state.operation = Some(Operation {
                        revision: revision.clone(),
                        waves: by_wave(objs),
                        applied: None,
                        next: Instant::now(),
                        attempt: 0,
                    });
                    set_operation(&mut objects[i].object, "Running", "", &revision);
                }
                Err(message) => {
                    state.attempted = Some(revision.clone());
                    set_operation(&mut objects[i].object, "Error", &message, &revision);
                    objects[i]
                        .object
                        .as_object_mut()
                        .map(|o| o.remove("operation"));
                }
            }
        }
        self.run_operation(objects, key, name, customised);
        let i = Self::index(objects, key.0, key.1).unwrap();
        let state = &self.apps[name];
        let health = self.app_health(objects, &state.inventory, customised);
        let object = &mut objects[i].object;
        let synced = object["status"]["sync"]["revision"] == revision.as_str();
        object["status"]["sync"]["status"] = json!(if synced { "Synced" } else { "OutOfSync" });
        object["status"]["health"]["status"] = json!(health);
        // argo-cd v3.5.1 pkg/apis/application/v1alpha1 types.go ResourceStatus: what the
        // Application manages, one record each.
        object["status"]["resources"] = json!(
            state
                .inventory
                .iter()
                .map(|o| {
                    let (group, version) = o
                        .api_version
                        .rsplit_once('/')
                        .unwrap_or(("", &o.api_version));
                    json!({"group": group, "version": version, "kind": o.kind,
                           "namespace": o.namespace.clone().unwrap_or_default(), "name": o.name,
                           "status": if synced { "Synced" } else { "OutOfSync" }})
                })
                .collect::<Vec<_>>()
        );
        if state.operation.is_some() || synced {
            // `health.message` is never written by the controller (3.0+).
            object["status"]["health"]
                .as_object_mut()
                .map(|h| h.remove("message"));
        }
    }

    /// The commit a Git source reads: its package repository's head (idpbuilder packages
    /// pushed by kindling), else the env's.
    fn source_head(&self, source: &Value, head: &str) -> String {
        let url = source["repoURL"].as_str().unwrap_or_default();
        super::fake_cluster::package_repository(url)
            .and_then(|r| self.ws.repository_head(url, &r))
            .unwrap_or_else(|| head.to_string())
    }

    /// The objects an Application's sources render to.
    fn desired(
        &mut self,
        app: &Value,
        sources: &[Value],
        head: &str,
        cluster: &[Stored],
    ) -> Result<Vec<Value>, String> {
        let namespace = app["spec"]["destination"]["namespace"]
            .as_str()
            .map(str::to_string);
        let mut objects = Vec::new();
        for source in sources {
            if let Some(chart) = source["chart"].as_str() {
                self.fetch_chart(cluster, source)?;
                let values = source["helm"]["valuesObject"].clone();
                objects.extend(chart_workloads(
                    chart,
                    namespace.as_deref().unwrap_or("default"),
                    &values,
                ));
            } else if let Some(path) = source["path"].as_str() {
                let head = self.source_head(source, head);
                let head = head.as_str();
                // argo-cd v3.5.1 util/app/discovery/discovery.go: a path holding a
                // Chart.yaml is a Helm source, rendered with the source's `helm` settings.
                match self.ws.local_chart(head, path) {
                    Ok(chart) => {
                        objects.extend(chart_workloads(
                            &chart.name,
                            namespace.as_deref().unwrap_or("default"),
                            &source["helm"]["valuesObject"],
                        ));
                        objects.extend(chart.objects.into_iter().map(|mut o| {
                            if o["metadata"]["namespace"].is_null()
                                && let Some(ns) = &namespace
                            {
                                o["metadata"]["namespace"] = json!(ns);
                            }
                            o
                        }));
                    }
                    Err(_) => objects.extend(self.ws.build(head, path)?),
                }
            }
        }
        Ok(objects)
    }

    /// repo-server pulling a chart: the CA bundle for the repository's host is the key of
    /// `argocd-tls-certs-cm` named after the host without port, and it replaces the system
    /// roots (argoproj/argo-cd v3.5.1 pkg/apis/application/v1alpha1/repository_types.go
    /// getCAPath, util/cert/cert.go GetCertBundlePathForRepository, util/helm/client.go
    /// newTLSConfig). Plain http needs none. A failed fetch fails manifest generation.
    fn fetch_chart(&self, cluster: &[Stored], source: &Value) -> Result<(), String> {
        let url = source["repoURL"].as_str().unwrap_or_default();
        // getCAPath parses a URL without scheme with a dummy one; Hostname() drops the port.
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let host = rest
            .split('/')
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default();
        let trusted = cluster
            .iter()
            .find(|s| {
                s.plural == "configmaps"
                    && s.name == "argocd-tls-certs-cm"
                    && s.namespace.as_deref() == Some(NAMESPACE)
            })
            .and_then(|s| s.object["data"][host].as_str().map(str::to_string));
        self.ws.internet.connect(url, trusted.as_deref()).map_err(|e| {
            format!(
                "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc = failed to fetch chart: {url}: {e}"
            )
        })
    }

    fn run_operation(
        &mut self,
        objects: &mut Vec<Stored>,
        key: (&str, &str),
        name: &str,
        customised: bool,
    ) {
        let Some(mut op) = self.apps.get_mut(name).and_then(|a| a.operation.take()) else {
            return;
        };
        // argo-cd v3.5.1 server/application/application.go TerminateOperation sets the phase
        // to Terminating; controller/appcontroller.go processRequestedAppOperation resumes
        // the operation and controller/sync.go calls syncCtx.Terminate(): Failed, "Operation
        // terminated", no further wave applied.
        if let Some(i) = Self::index(objects, key.0, key.1)
            && objects[i].object["status"]["operationState"]["phase"] == "Terminating"
        {
            self.finish(objects, key, name, op, "Failed", "Operation terminated");
            return;
        }
        let now = Instant::now();
        if op.next > now {
            self.apps.get_mut(name).unwrap().operation = Some(op);
            return;
        }
        let i = Self::index(objects, key.0, key.1).unwrap();
        let app = objects[i].object.clone();
        let namespace = app["spec"]["destination"]["namespace"]
            .as_str()
            .map(str::to_string);
        // Is the wave applied last done? Every object healthy, or without a health check.
        if let Some(w) = op.applied {
            let refs: Vec<ObjectRef> = op.waves[w]
                .1
                .iter()
                .map(|o| with_namespace(o, &namespace))
                .collect();
            let mut pending = false;
            for r in &refs {
                match self.object_health(objects, r, customised) {
                    Some("Degraded") => {
                        self.finish(objects, key, name, op, "Failed", &format!("one or more synchronization tasks completed unsuccessfully, reason: {}/{} is Degraded", r.kind, r.name));
                        return;
                    }
                    Some("Healthy") | None => {}
                    Some(_) => pending = true,
                }
            }
            if pending {
                self.apps.get_mut(name).unwrap().operation = Some(op);
                return;
            }
            if w + 1 == op.waves.len() {
                self.finish(
                    objects,
                    key,
                    name,
                    op,
                    "Succeeded",
                    "successfully synced (all tasks run)",
                );
                return;
            }
        }
        // CreateNamespace=true: the destination namespace is made before the first wave, and
        // is not one of the app's resources (deleting the app leaves it; gitops-engine
        // pkg/sync/sync_context.go, the namespace auto-creation task).
        let create_namespace = app["spec"]["syncPolicy"]["syncOptions"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o == "CreateNamespace=true"));
        if let (None, Some(ns), true) = (op.applied, &namespace, create_namespace) {
            let made = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let exists = objects
                .iter()
                .any(|s| s.plural == "namespaces" && s.name == *ns);
            if !exists {
                let _ = self.ws.apply(objects, Owner::Argo(name), vec![made], None);
            }
        }
        let w = op.applied.map_or(0, |w| w + 1);
        let (wave, built) = op.waves[w].clone();
        for o in &built {
            if o["kind"] == "Application" {
                self.waves.lock().unwrap().push((
                    o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    wave,
                    customised,
                ));
            }
        }
        match self
            .ws
            .apply(objects, Owner::Argo(name), built, namespace.clone())
        {
            Ok(applied) => {
                let state = self.apps.get_mut(name).unwrap();
                for r in applied {
                    if !state.inventory.contains(&r) {
                        state.inventory.push(r);
                    }
                }
                op.applied = Some(w);
                op.next = now + scaled(WAVE_DELAY);
                self.apps.get_mut(name).unwrap().operation = Some(op);
            }
            Err(message) => {
                // The retry of an automated sync (appcontroller.go: Limit 5 when the policy
                // names none; backoff from 5s, doubling, at most 3m).
                let retry = &app["spec"]["syncPolicy"]["retry"];
                let limit = retry["limit"].as_u64().unwrap_or(5) as u32;
                if op.attempt < limit {
                    let base = super::fake_cluster::go_duration(
                        retry["backoff"]["duration"].as_str().unwrap_or("5s"),
                    )
                    .unwrap_or(Duration::from_secs(5));
                    let wait = (base * 2u32.pow(op.attempt.min(10))).min(Duration::from_secs(180));
                    op.attempt += 1;
                    op.applied = None;
                    op.next = now + scaled(wait);
                    let i = Self::index(objects, key.0, key.1).unwrap();
                    objects[i].object["status"]["operationState"]["message"] = json!(format!(
                        "{message}. Retrying attempt #{} at {}.",
                        op.attempt, "2026-11-29T08:00:00Z"
                    ));
                    self.apps.get_mut(name).unwrap().operation = Some(op);
                } else {
                    let message = format!("{message} (retried {limit} times).");
                    self.finish(objects, key, name, op, "Failed", &message);
                }
            }
        }
    }

    fn finish(
        &mut self,
        objects: &mut [Stored],
        key: (&str, &str),
        name: &str,
        op: Operation,
        phase: &str,
        message: &str,
    ) {
        let i = Self::index(objects, key.0, key.1).unwrap();
        let object = &mut objects[i].object;
        set_operation(object, phase, message, &op.revision);
        // The operation field is cleared when it completes.
        object.as_object_mut().map(|o| o.remove("operation"));
        if phase == "Succeeded" {
            object["status"]["sync"]["revision"] = json!(op.revision);
            object["status"]["conditions"] = json!(null);
            // Prune what the sources no longer hold.
            let desired: Vec<ObjectRef> = op
                .waves
                .iter()
                .flat_map(|(_, w)| w.iter())
                .map(|o| {
                    with_namespace(
                        o,
                        &object["spec"]["destination"]["namespace"]
                            .as_str()
                            .map(str::to_string),
                    )
                })
                .collect();
            let prune = object["spec"]["syncPolicy"]["automated"]["prune"] == true;
            let state = self.apps.get_mut(name).unwrap();
            if prune {
                for stale in state.inventory.iter().filter(|r| {
                    !desired
                        .iter()
                        .any(|d| d.kind == r.kind && d.name == r.name && d.namespace == r.namespace)
                }) {
                    mark_deleted(objects, stale);
                }
                state.inventory.retain(|r| {
                    desired
                        .iter()
                        .any(|d| d.kind == r.kind && d.name == r.name && d.namespace == r.namespace)
                });
            }
        } else {
            // appcontroller.go: "Failed last sync attempt to [rev]: msg".
            object["status"]["conditions"] = json!([{"type": "SyncError", "message": format!("Failed last sync attempt to [{}]: {message}", op.revision), "lastTransitionTime": "2026-11-29T08:00:00Z"}]);
        }
        self.apps.get_mut(name).unwrap().attempted = Some(op.revision);
    }

    /// An object's health as Argo CD assesses it; None where there is no health check.
    fn object_health(
        &self,
        objects: &[Stored],
        r: &ObjectRef,
        customised: bool,
    ) -> Option<&'static str> {
        if r.kind == "Application" {
            if !customised {
                return None;
            }
            // argocd-cm's Lua: the child's status.health.status, Progressing without one.
            let child = objects.iter().find(|s| r.names(s));
            return Some(
                match child.and_then(|c| c.object["status"]["health"]["status"].as_str()) {
                    Some("Healthy") => "Healthy",
                    Some("Degraded") => "Degraded",
                    _ => "Progressing",
                },
            );
        }
        match self.ws.health(objects, r) {
            Health::Current => Some("Healthy"),
            Health::Failed => Some("Degraded"),
            Health::NotFound => Some("Missing"),
            Health::InProgress => Some("Progressing"),
        }
        .filter(|_| has_health_check(&r.kind))
    }

    /// controller/health.go: the worst health of the managed objects; a child Application
    /// only counts with the customisation, and a Missing or Unknown child not at all.
    fn app_health(
        &self,
        objects: &[Stored],
        inventory: &[ObjectRef],
        customised: bool,
    ) -> &'static str {
        let mut worst = "Healthy";
        for r in inventory {
            let h = match self.object_health(objects, r, customised) {
                None => continue,
                Some("Missing") if r.kind == "Application" => continue,
                Some(h) => h,
            };
            worst = match (worst, h) {
                ("Degraded", _) | (_, "Degraded") => "Degraded",
                ("Missing", _) | (_, "Missing") => "Missing",
                ("Progressing", _) | (_, "Progressing") => "Progressing",
                _ => "Healthy",
            };
        }
        worst
    }

    /// finalizeApplicationDeletion: the managed objects are deleted; the finalizer goes when
    /// none is left (a child Application with its own finalizer holds the root).
    fn finalize(&mut self, objects: &mut [Stored], key: (&str, &str), name: &str) {
        let inventory = self
            .apps
            .get(name)
            .map(|a| a.inventory.clone())
            .unwrap_or_default();
        let finalized =
            objects[Self::index(objects, key.0, key.1).unwrap()].object["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| {
                    f.iter()
                        .any(|f| f.as_str().is_some_and(|f| f.starts_with(FINALIZER)))
                });
        if finalized {
            for r in inventory.iter().rev() {
                mark_deleted(objects, r);
            }
            if inventory.iter().any(|r| objects.iter().any(|s| r.names(s))) {
                return;
            }
        }
        let i = Self::index(objects, key.0, key.1).unwrap();
        if let Some(f) = objects[i].object["metadata"]["finalizers"].as_array_mut() {
            f.retain(|f| !f.as_str().is_some_and(|f| f.starts_with(FINALIZER)));
        }
        self.apps.remove(name);
    }
}

/// Kinds with a built-in health check (gitops-engine pkg/health: Deployment, StatefulSet,
/// DaemonSet, ReplicaSet, Service, Ingress, PVC, Pod, Job, APIService, HPA; cert-manager's
/// through resource_customizations/cert-manager.io).
fn has_health_check(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "Certificate"
            | "ClusterIssuer"
            | "Issuer"
    )
}

/// Why Argo CD would not reconcile `app` for its project, if it would not. The `default`
/// project exists from the start and permits every repository (argo-cd creates it so).
fn invalid_spec(objects: &[Stored], app: &Value, sources: &[Value]) -> Option<String> {
    let project = app["spec"]["project"].as_str().unwrap_or("default");
    if project == "default" {
        return None;
    }
    let Some(p) = objects.iter().find(|s| {
        s.plural == "appprojects" && s.name == project && s.namespace.as_deref() == Some(NAMESPACE)
    }) else {
        return Some(format!(
            "Application referencing project {project} which does not exist"
        ));
    };
    let allowed: Vec<String> = p.object["spec"]["sourceRepos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(normalize_git_url))
        .collect();
    for source in sources {
        let url = source["repoURL"].as_str().unwrap_or_default();
        let wanted = normalize_git_url(url);
        // app_project_types.go `globMatch`: `*` alone permits everything.
        if !allowed.iter().any(|a| a == "*" || glob_match(a, &wanted)) {
            return Some(format!(
                "application repo {url} is not permitted in project '{project}'"
            ));
        }
    }
    None
}

/// Whether Argo CD has credentials for `url` for an app of `project`: a `repository` Secret in
/// argocd for that URL, scoped to the project or to none, or a `repo-creds` template whose URL
/// prefixes it (argo-cd v3.5.1 util/db/repository_secrets.go `getRepositorySecret`,
/// `getRepositoryCredentialIndex`; util/db/secrets.go lists them in argocd only).
fn has_repository_secret(objects: &[Stored], url: &str, project: &str) -> bool {
    use base64::Engine as _;
    let text = |s: &Stored, key: &str| {
        s.object["data"][key]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let wanted = normalize_git_url(url);
    objects
        .iter()
        .filter(|s| s.plural == "secrets" && s.namespace.as_deref() == Some(NAMESPACE))
        .any(|s| {
            let kind = &s.object["metadata"]["labels"]["argocd.argoproj.io/secret-type"];
            let secret_url = normalize_git_url(&text(s, "url"));
            let scope = text(s, "project");
            (kind == "repository" && secret_url == wanted && (scope.is_empty() || scope == project))
                || (kind == "repo-creds"
                    && !secret_url.is_empty()
                    && wanted.starts_with(&secret_url))
        })
}

/// The lister's NotFound for a project that is not there (`default` always is, here).
fn project_gone(objects: &[Stored], app: &Value) -> Option<String> {
    let project = app["spec"]["project"].as_str().unwrap_or("default");
    let there = project == "default"
        || objects.iter().any(|s| {
            s.plural == "appprojects"
                && s.name == project
                && s.namespace.as_deref() == Some(NAMESPACE)
        });
    (!there).then(|| format!("appproject.argoproj.io \"{project}\" not found"))
}

/// Why the app's project does not permit its namespace, if it does not: an app in argocd is
/// always permitted; elsewhere its project (looked up in argocd only) must list the namespace
/// in `sourceNamespaces`, and `default` lists none as created (argo-cd v3.5.1
/// app_project_types.go `IsAppNamespacePermitted`; util/argo/argo.go `GetAppProjectWithScopedResources`:
/// "application '%s' in namespace '%s' is not permitted to use project '%s'").
fn not_permitted(objects: &[Stored], app: &Value) -> Option<String> {
    let namespace = app["metadata"]["namespace"].as_str().unwrap_or(NAMESPACE);
    if namespace == NAMESPACE {
        return None;
    }
    let project = app["spec"]["project"].as_str().unwrap_or("default");
    let stored = objects.iter().find(|s| {
        s.plural == "appprojects" && s.name == project && s.namespace.as_deref() == Some(NAMESPACE)
    });
    // A project that does not exist is `invalid_spec`'s InvalidSpecError.
    if stored.is_none() && project != "default" {
        return None;
    }
    let listed = stored
        .and_then(|p| p.object["spec"]["sourceNamespaces"].as_array().cloned())
        .unwrap_or_default();
    let permitted = listed
        .iter()
        .filter_map(|n| n.as_str())
        .any(|p| !p.starts_with('/') && glob_match(p, namespace));
    (!permitted).then(|| {
        format!(
            "application '{}' in namespace '{namespace}' is not permitted to use project '{project}'",
            app["metadata"]["name"].as_str().unwrap_or_default()
        )
    })
}

/// util/git `NormalizeGitURL`, as far as the tests need it: lower case, trimmed, no `.git`.
fn normalize_git_url(url: &str) -> String {
    url.trim()
        .to_lowercase()
        .trim_end_matches(".git")
        .to_string()
}

/// util/glob `Match` with `/` as separator: `*` runs to the next `/`, `**` across them.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => (0..=t.len()).any(|i| go(&p[2..], &t[i..])),
            Some(b'*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != b'/')
                .any(|i| go(&p[1..], &t[i..])),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn sources_of(app: &Value) -> Vec<Value> {
    match app["spec"]["sources"].as_array() {
        Some(s) if !s.is_empty() => s.clone(),
        _ => vec![app["spec"]["source"].clone()],
    }
}

fn with_namespace(o: &Value, default: &Option<String>) -> ObjectRef {
    let mut r = ObjectRef::of(o);
    if r.namespace.is_none() && !kindling::stamp::is_cluster_scoped(&r.kind) {
        r.namespace = default.clone().or(Some("default".into()));
    }
    r
}

/// Objects grouped by `argocd.argoproj.io/sync-wave`, lowest first (Namespaces go first).
fn by_wave(objects: Vec<Value>) -> Vec<(i64, Vec<Value>)> {
    let mut waves: Vec<(i64, Vec<Value>)> = Vec::new();
    for o in objects {
        let wave = o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        match waves.iter_mut().find(|(w, _)| *w == wave) {
            Some((_, list)) => list.push(o),
            None => waves.push((wave, vec![o])),
        }
    }
    waves.sort_by_key(|(w, _)| *w);
    if waves.is_empty() {
        waves.push((0, Vec::new()));
    }
    waves
}

fn set_operation(object: &mut Value, phase: &str, message: &str, revision: &str) {
    object["status"]["operationState"] = json!({
        "phase": phase, "message": message,
        "operation": {"sync": {"revision": revision}},
        "syncResult": {"revision": revision},
        "startedAt": "2026-11-29T08:00:00Z",
    });
    if phase != "Running" {
        object["status"]["operationState"]["finishedAt"] = json!("2026-11-29T08:00:01Z");
    }
}
