//! An in-memory fake of the Kubernetes API server, for flows that need more than one call:
//! discovery (built-in groups from the recorded documents in tests/data/kube/, custom groups
//! derived from applied CRDs as the real server does), server-side apply and merge patches,
//! get, list, delete. A `controller` hook runs after every write and plays the cluster's
//! controllers (CRDs Established, Deployments Available, Flux/Argo CD reconciling).

use std::io::{BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::repo_dir;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: String,
    /// `X-Vault-Token`, which the service proxy passes on to Vault.
    pub vault_token: String,
}

/// One stored object, addressed as the API addresses it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub group_version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: String,
    pub object: Value,
}

pub type Controller = Box<dyn FnMut(&mut Vec<Stored>) + Send>;

#[derive(Default)]
pub struct ApiState {
    pub requests: Vec<Request>,
    pub objects: Vec<Stored>,
    pub controller: Option<Controller>,
    /// Status code to answer every PATCH with (fault injection), when set.
    pub fail_patches: Option<u16>,
    /// Fault injection: the next this many GETs of objects (discovery aside) answer 500, as
    /// an API server does while its etcd is away (kubernetes/apiserver returns a Status with
    /// reason InternalError).
    pub fail_gets: u32,
    /// Fault injection: every answer waits this long first (an API server that hangs).
    pub delay: Option<std::time::Duration>,
    /// How long a deleted Namespace stays Terminating before the namespace controller has
    /// removed its content and the Namespace (a real cluster takes seconds).
    pub namespace_termination: std::time::Duration,
    /// The Vault the `vault` add-on runs, reached through the service proxy.
    pub vault: super::fake_vault::Vault,
    /// The rights the kubeconfig's user lacks, as `kubectl auth can-i` names them
    /// (`create customresourcedefinitions.apiextensions.k8s.io`, `create pods/portforward`):
    /// a SelfSubjectAccessReview of one of them is not allowed.
    pub denied: Vec<String>,
    /// The rights the user has only in namespaces (a RoleBinding in each, no
    /// ClusterRoleBinding), as `list secrets`: refused across all namespaces, in a
    /// SelfSubjectAccessReview without a namespace and in a real request, with RBAC's answer
    /// (kubernetes/apiserver v0.36.3 pkg/endpoints/handlers/responsewriters/errors.go
    /// `forbiddenMessage`, "… at the cluster scope").
    pub denied_cluster_wide: Vec<String>,
    /// Namespaces whose objects the user may not read at all (another team's, another env's):
    /// every request there is refused with RBAC's answer (same file, "… in the namespace").
    pub denied_namespaces: Vec<String>,
    /// When each Terminating Namespace was deleted.
    terminating_since: std::collections::HashMap<String, std::time::Instant>,
    generation: i64,
}

/// The scaled time a deleted Namespace stays Terminating, unless a test sets its own.
pub const NAMESPACE_TERMINATION: std::time::Duration = std::time::Duration::from_millis(400);

/// Namespaces every cluster has from the start (kubernetes/kubernetes
/// pkg/controlplane/controller/systemnamespaces: default, kube-system, kube-public,
/// kube-node-lease).
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

pub struct FakeApi {
    pub url: String,
    pub state: Arc<Mutex<ApiState>>,
}

fn data(name: &str) -> Option<String> {
    std::fs::read_to_string(repo_dir().join("tests/data/kube").join(name)).ok()
}

/// RBAC's refusal (kubernetes/apiserver v0.36.3 pkg/endpoints/handlers/responsewriters/
/// errors.go `forbiddenMessage`): `scope` is "at the cluster scope" or "in the namespace …".
fn forbidden(resource: &str, verb: &str, plural: &str, group: &str, scope: &str) -> (u16, String) {
    (
        403,
        status_body(
            403,
            "Forbidden",
            &format!(
                "{resource} is forbidden: User \"team\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}"
            ),
        ),
    )
}

fn status_body(code: u16, reason: &str, message: &str) -> String {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
    .to_string()
}

/// Splits an API path into (group/version, namespace, plural, name).
fn parse_path(path: &str) -> Option<(String, Option<String>, String, Option<String>)> {
    let (gv, rest) = if let Some(rest) = path.strip_prefix("/api/v1") {
        ("v1".to_string(), rest)
    } else {
        let rest = path.strip_prefix("/apis/")?;
        let mut parts = rest.splitn(3, '/');
        let (g, v) = (parts.next()?, parts.next()?);
        (format!("{g}/{v}"), &rest[g.len() + v.len() + 1..])
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (namespace, segments) = if segments.len() >= 3 && segments[0] == "namespaces" {
        (Some(segments[1].to_string()), &segments[2..])
    } else {
        (None, &segments[..])
    };
    let plural = segments.first()?.to_string();
    let name = segments.get(1).map(|s| s.to_string());
    Some((gv, namespace, plural, name))
}

/// A query parameter's value (percent-decoding aside: kube-rs sends plain names).
fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// `%3D` and `%2C` back to `=` and `,` (kube-rs percent-encodes a label selector).
fn percent_decoded(s: &str) -> String {
    s.replace("%3D", "=")
        .replace("%3d", "=")
        .replace("%2C", ",")
        .replace("%2c", ",")
        .replace("%2F", "/")
        .replace("%2f", "/")
}

/// Whether a label selector of equality (`k=v`) and existence (`k`) terms, comma-separated,
/// selects `object` (kubernetes/apimachinery v0.36.3 pkg/labels/selector.go; the set-based
/// forms are not used by kindling).
pub fn selects(selector: &str, object: &Value) -> bool {
    let labels = &object["metadata"]["labels"];
    selector
        .split(',')
        .filter(|t| !t.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => labels[k.trim_end_matches('=')].as_str() == Some(v),
            None => !labels[term].is_null(),
        })
}

/// JSON merge patch (RFC 7386).
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl ApiState {
    /// The discovery document of a group/version: recorded for built-ins, derived from the
    /// applied CRDs (Established ones only) for custom groups.
    fn discovery(&self, gv: &str) -> Option<String> {
        let file = if gv == "v1" {
            "api-v1.json".to_string()
        } else {
            format!("apis-{}.json", gv.replace('/', "-"))
        };
        if gv != "source.toolkit.fluxcd.io/v1"
            && let Some(doc) = data(&file)
        {
            return Some(doc);
        }
        let (group, version) = gv.split_once('/')?;
        let resources: Vec<Value> = self
            .objects
            .iter()
            .filter(|s| s.plural == "customresourcedefinitions")
            .map(|s| &s.object)
            .filter(|crd| crd["spec"]["group"] == group)
            .filter(|crd| {
                crd["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Established" && c["status"] == "True"))
            })
            .filter(|crd| {
                crd["spec"]["versions"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|v| v["name"] == version && v["served"] == true))
            })
            .map(|crd| {
                let names = &crd["spec"]["names"];
                json!({
                    "name": names["plural"], "singularName": names["singular"],
                    "namespaced": crd["spec"]["scope"] == "Namespaced",
                    "kind": names["kind"],
                    "verbs": ["delete","deletecollection","get","list","patch","create","update","watch"],
                })
            })
            .collect();
        if resources.is_empty() {
            return None;
        }
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
                .to_string(),
        )
    }

    fn find(&self, gv: &str, ns: &Option<String>, plural: &str, name: &str) -> Option<usize> {
        self.objects.iter().position(|s| {
            s.group_version == gv && &s.namespace == ns && s.plural == plural && s.name == name
        })
    }

    fn route(&mut self, r: &Request) -> (u16, String) {
        let not_found = |what: &str| {
            (
                404,
                status_body(404, "NotFound", &format!("{what} not found")),
            )
        };
        if r.method == "GET"
            && (r.path == "/api/v1"
                || r.path.matches('/').count() == 3 && r.path.starts_with("/apis/"))
        {
            let gv = r
                .path
                .trim_start_matches("/apis/")
                .trim_start_matches("/api/");
            return match self.discovery(gv) {
                Some(doc) => (200, doc),
                None => not_found(gv),
            };
        }
        // The API server's service proxy (kubernetes/kubernetes
        // pkg/registry/core/service/proxy.go): only Vault is behind one here.
        if let Some(rest) = r
            .path
            .strip_prefix("/api/v1/namespaces/hostk8s/services/http:vault:8200/proxy/")
        {
            self.run_controller();
            let objects = std::mem::take(&mut self.objects);
            let answer = self
                .vault
                .handle(&objects, &r.method, rest, &r.vault_token, &r.body);
            self.objects = objects;
            self.run_controller();
            return answer;
        }
        if r.method == "POST" && r.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        {
            return self.access_review(&r.body);
        }
        let Some((gv, ns, plural, name)) = parse_path(&r.path) else {
            return not_found(&r.path);
        };
        if let Some(ns) = ns
            .as_deref()
            .filter(|ns| self.denied_namespaces.iter().any(|d| d == ns))
        {
            let group = gv.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            let verb = match (r.method.as_str(), name.is_some()) {
                ("GET", true) => "get",
                ("GET", false) => "list",
                ("DELETE", _) => "delete",
                ("PATCH", _) => "patch",
                _ => "create",
            };
            return forbidden(
                &plural,
                verb,
                &plural,
                group,
                &format!("in the namespace \"{ns}\""),
            );
        }
        if r.method == "GET" && name.is_none() && ns.is_none() {
            let group = gv.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            let resource = match group {
                "" => plural.clone(),
                g => format!("{plural}.{g}"),
            };
            if self
                .denied_cluster_wide
                .contains(&format!("list {resource}"))
            {
                return forbidden(&resource, "list", &plural, group, "at the cluster scope");
            }
        }
        if r.method == "GET" && self.fail_gets > 0 {
            self.fail_gets -= 1;
            return (
                500,
                status_body(500, "InternalError", "etcdserver: request timed out"),
            );
        }
        if r.method == "GET" {
            // Controllers work between requests; a poll is when the fake lets time show.
            self.run_controller();
        }
        match (r.method.as_str(), name) {
            ("GET", Some(name)) => match self.find(&gv, &ns, &plural, &name) {
                Some(i) => (200, self.objects[i].object.to_string()),
                None => not_found(&format!("{plural} \"{name}\"")),
            },
            ("GET", None) => {
                let selector = query_param(&r.query, "labelSelector").map(|s| percent_decoded(&s));
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|s| s.group_version == gv && s.plural == plural)
                    .filter(|s| ns.is_none() || s.namespace == ns)
                    .filter(|s| {
                        selector
                            .as_deref()
                            .is_none_or(|sel| selects(sel, &s.object))
                    })
                    .map(|s| s.object.clone())
                    .collect();
                (200, json!({"apiVersion": gv, "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}).to_string())
            }
            ("PATCH", Some(name)) => {
                if let Some(code) = self.fail_patches {
                    return (code, status_body(code, "InternalError", "injected failure"));
                }
                let body: Value = if r.content_type.contains("yaml") {
                    serde_yaml_ng::from_str(&r.body).unwrap_or(Value::Null)
                } else {
                    serde_json::from_str(&r.body).unwrap_or(Value::Null)
                };
                let apply = r.content_type.starts_with("application/apply-patch");
                let index = self.find(&gv, &ns, &plural, &name);
                let manager = query_param(&r.query, "fieldManager").unwrap_or_default();
                // `dryRun=All`: the answer is the object as it would be stored, and nothing
                // is (kubernetes/apiserver v0.36.3 pkg/registry/generic/registry/dryrun.go:
                // an update keeps the stored resourceVersion, a create has none).
                if query_param(&r.query, "dryRun").as_deref() == Some("All") {
                    return match (index, apply) {
                        (None, false) => not_found(&format!("{plural} \"{name}\"")),
                        (None, true) => {
                            if let Some(refused) = self.refuse_create(ns.as_deref(), &plural, &name)
                            {
                                return refused;
                            }
                            let mut object = super::fake_ssa::apply(None, &body, &manager);
                            object["metadata"]["generation"] = json!(1);
                            (200, object.to_string())
                        }
                        (Some(i), true) => {
                            let old = &self.objects[i].object;
                            let object = super::fake_ssa::apply(Some(old), &body, &manager);
                            (200, object.to_string())
                        }
                        (Some(i), false) => {
                            let mut object = self.objects[i].object.clone();
                            merge(&mut object, &body);
                            (200, object.to_string())
                        }
                    };
                }
                self.generation += 1;
                let stored = match (index, apply) {
                    (None, false) => return not_found(&format!("{plural} \"{name}\"")),
                    (None, true) => {
                        if let Some(refused) = self.refuse_create(ns.as_deref(), &plural, &name) {
                            return refused;
                        }
                        let mut object = super::fake_ssa::apply(None, &body, &manager);
                        object["metadata"]["uid"] = json!(format!("uid-{}", self.generation));
                        object["metadata"]["generation"] = json!(1);
                        object["metadata"]["resourceVersion"] = json!(self.generation.to_string());
                        self.objects.push(Stored {
                            group_version: gv.clone(),
                            plural: plural.clone(),
                            namespace: ns.clone(),
                            name: name.clone(),
                            object,
                        });
                        self.objects.len() - 1
                    }
                    (Some(i), true) => {
                        // Merged as the API server merges an apply (fake_ssa): what other
                        // managers set (status, finalizers, the binder's fields) stays.
                        let old = self.objects[i].object.clone();
                        let mut object = super::fake_ssa::apply(Some(&old), &body, &manager);
                        let spec_changed = old["spec"] != object["spec"];
                        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
                        object["metadata"]["generation"] =
                            json!(generation + i64::from(spec_changed));
                        if !old["status"].is_null() {
                            object["status"] = old["status"].clone();
                        }
                        object["metadata"]["resourceVersion"] = json!(self.generation.to_string());
                        self.objects[i].object = object;
                        i
                    }
                    (Some(i), false) => {
                        let before = self.objects[i].object["spec"].clone();
                        merge(&mut self.objects[i].object, &body);
                        if self.objects[i].object["spec"] != before {
                            let g = self.objects[i].object["metadata"]["generation"]
                                .as_i64()
                                .unwrap_or(1);
                            self.objects[i].object["metadata"]["generation"] = json!(g + 1);
                        }
                        i
                    }
                };
                let response = self.objects[stored].object.to_string();
                self.run_controller();
                (200, response)
            }
            ("DELETE", Some(name)) => match self.find(&gv, &ns, &plural, &name) {
                Some(i) => {
                    let answer = self.delete_at(i);
                    self.run_controller();
                    (200, answer.to_string())
                }
                None => not_found(&format!("{plural} \"{name}\"")),
            },
            _ => not_found(&r.path),
        }
    }

    /// A SelfSubjectAccessReview (kubernetes/api v0.36.3 authorization/v1/types.go), answered
    /// as kubernetes/kubernetes pkg/registry/authorization/selfsubjectaccessreview/rest.go
    /// answers it: 201 with the review and its status; exactly one of resourceAttributes and
    /// nonResourceAttributes, else 422. RBAC has no opinion on what it does not allow:
    /// `allowed: false` without `denied`.
    fn access_review(&mut self, body: &str) -> (u16, String) {
        let mut review: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let a = review["spec"]["resourceAttributes"].clone();
        if a.is_null() == review["spec"]["nonResourceAttributes"].is_null() {
            return (
                422,
                status_body(
                    422,
                    "Invalid",
                    "spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ),
            );
        }
        let text = |k: &str| a[k].as_str().unwrap_or_default().to_string();
        let mut resource = text("resource");
        if !text("group").is_empty() {
            resource = format!("{resource}.{}", text("group"));
        }
        if !text("subresource").is_empty() {
            resource = format!("{resource}/{}", text("subresource"));
        }
        let asked = format!("{} {resource}", text("verb"));
        let across_all = text("namespace").is_empty();
        let refused = self.denied.contains(&asked)
            || (across_all && self.denied_cluster_wide.contains(&asked));
        let allowed = !refused;
        review["status"] = if allowed {
            json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"team\""})
        } else {
            json!({"allowed": false})
        };
        (201, review.to_string())
    }

    pub fn run_controller(&mut self) {
        if let Some(mut controller) = self.controller.take() {
            controller(&mut self.objects);
            self.controller = Some(controller);
        }
        // CloudNativePG, once a chart installed it: its claims first, bound below.
        super::fake_cnpg::reconcile_clusters(&mut self.objects);
        // kube-controller-manager's own controllers, which every cluster has.
        super::fake_volumes::bind_volumes(&mut self.objects);
        // The External Secrets Operator, once the `vault` add-on installed it.
        super::fake_vault::sync_external_secrets(&mut self.objects, &self.vault);
        // kube-controller-manager's job controller.
        super::fake_jobs::run_jobs(&mut self.objects);
        // MetalLB, once the `metallb` add-on installed it.
        super::fake_metallb::assign_addresses(&mut self.objects);
        self.collect_garbage();
        // Whatever the controllers stored has a resourceVersion, as everything the API server
        // stores does (the etcd revision of its last write; clients such as fluxcd/pkg ssa
        // `Diff` read an empty one as "not there").
        for s in &mut self.objects {
            if s.object["metadata"]["resourceVersion"].is_null() && s.object.is_object() {
                self.generation += 1;
                s.object["metadata"]["resourceVersion"] = json!(self.generation.to_string());
            }
        }
    }

    /// The NamespaceLifecycle admission plugin (kubernetes/apiserver v0.36.3
    /// pkg/admission/plugin/namespace/lifecycle/admission.go, errors from apimachinery
    /// pkg/api/errors NewForbidden): no new object (a server-side apply that creates counts)
    /// in a Namespace that does not exist (404) or is being terminated (403, cause
    /// NamespaceTerminating). Updates are allowed.
    fn refuse_create(&self, ns: Option<&str>, plural: &str, name: &str) -> Option<(u16, String)> {
        let ns = ns?;
        if SYSTEM_NAMESPACES.contains(&ns) {
            return None;
        }
        let namespace = self
            .objects
            .iter()
            .find(|s| s.plural == "namespaces" && s.group_version == "v1" && s.name == ns);
        match namespace {
            None => Some((
                404,
                status_body(404, "NotFound", &format!("namespaces \"{ns}\" not found")),
            )),
            Some(n) if !n.object["metadata"]["deletionTimestamp"].is_null() => Some((
                403,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("{plural} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"),
                    "reason": "Forbidden",
                    "details": {"name": name, "kind": plural, "causes": [{"reason": "NamespaceTerminating",
                        "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]},
                    "code": 403})
                .to_string(),
            )),
            Some(_) => None,
        }
    }

    /// DELETE as the API server does it: an object with finalizers (and every Namespace,
    /// whose spec.finalizers hold `kubernetes` until the namespace controller has emptied it)
    /// is only marked with a deletionTimestamp (a Namespace also gets status.phase
    /// Terminating); it goes when its finalizers are gone (kubernetes/apiserver v0.36.3
    /// pkg/registry/generic/registry/store.go, Delete → updateForGracefulDeletionAndFinalizers).
    fn delete_at(&mut self, i: usize) -> Value {
        let object = &mut self.objects[i].object;
        let is_namespace = object["kind"] == "Namespace";
        let finalized = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if !is_namespace && !finalized {
            return self.objects.remove(i).object;
        }
        if object["metadata"]["deletionTimestamp"].is_null() {
            object["metadata"]["deletionTimestamp"] = json!("2026-11-29T00:00:00Z");
        }
        if is_namespace {
            object["status"]["phase"] = json!("Terminating");
            let name = self.objects[i].name.clone();
            self.terminating_since
                .entry(name)
                .or_insert_with(std::time::Instant::now);
        }
        self.objects[i].object.clone()
    }

    /// The namespace controller and the garbage collector, as far as the fakes need them: a
    /// Terminating Namespace's content is deleted once its time is up (there is no fixed
    /// time upstream: kubernetes/kubernetes pkg/controller/namespace/deletion/
    /// namespaced_resources_deleter.go requeues by the pods' grace periods), the Namespace
    /// goes when nothing is left in it, and a deleted object goes when its last finalizer is
    /// removed.
    fn collect_garbage(&mut self) {
        // Namespaces a controller deleted (it sets the deletionTimestamp) terminate too.
        for s in &self.objects {
            if s.plural == "namespaces" && !s.object["metadata"]["deletionTimestamp"].is_null() {
                self.terminating_since
                    .entry(s.name.clone())
                    .or_insert_with(std::time::Instant::now);
            }
        }
        let due: Vec<String> = self
            .terminating_since
            .iter()
            .filter(|(_, since)| since.elapsed() >= self.namespace_termination)
            .map(|(ns, _)| ns.clone())
            .collect();
        for ns in due {
            let content: Vec<usize> = (0..self.objects.len())
                .filter(|&i| self.objects[i].namespace.as_deref() == Some(ns.as_str()))
                .collect();
            for &i in content.iter().rev() {
                self.delete_at(i);
            }
            let left = self
                .objects
                .iter()
                .any(|s| s.namespace.as_deref() == Some(ns.as_str()));
            if !left {
                self.objects.retain(|s| {
                    !(s.plural == "namespaces" && s.group_version == "v1" && s.name == ns)
                });
                self.terminating_since.remove(&ns);
            }
        }
        self.objects.retain(|s| {
            let meta = &s.object["metadata"];
            s.object["kind"] == "Namespace"
                || meta["deletionTimestamp"].is_null()
                || meta["finalizers"].as_array().is_some_and(|f| !f.is_empty())
        });
    }

    pub fn objects_of(&self, kind: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|s| s.object["kind"] == kind)
            .map(|s| s.object.clone())
            .collect()
    }
}

/// What a cluster's built-in controllers would do at once: CRDs Established, Deployments
/// Available, StatefulSets ready.
#[allow(clippy::ptr_arg)] // the Controller signature: other controllers add objects
pub fn builtin_controllers(objects: &mut Vec<Stored>) {
    for s in objects.iter_mut() {
        let kind = s.object["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "CustomResourceDefinition" => {
                s.object["status"] = json!({"conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
                ]});
            }
            "Deployment" => {
                s.object["status"] = json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                    "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."}]});
            }
            "StatefulSet" => {
                s.object["status"] = json!({"replicas": 1, "readyReplicas": 1});
            }
            _ => {}
        }
    }
}

impl FakeApi {
    pub fn start(controller: Option<Controller>) -> FakeApi {
        // The system namespaces are objects like any other: a GET finds them.
        let objects = SYSTEM_NAMESPACES
            .iter()
            .map(|name| Stored {
                group_version: "v1".into(),
                plural: "namespaces".into(),
                namespace: None,
                name: name.to_string(),
                object: json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                    "status": {"phase": "Active"}}),
            })
            .collect();
        let state = Arc::new(Mutex::new(ApiState {
            controller,
            namespace_termination: NAMESPACE_TERMINATION,
            objects,
            ..Default::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FakeApi { url, state }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn objects_of(&self, kind: &str) -> Vec<Value> {
        self.state.lock().unwrap().objects_of(kind)
    }

    pub fn object(&self, kind: &str, name: &str) -> Option<Value> {
        self.objects_of(kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
    }

    /// Changes stored objects as a controller would (status updates between calls).
    pub fn update(&self, f: impl FnOnce(&mut Vec<Stored>)) {
        f(&mut self.state.lock().unwrap().objects);
    }

    pub async fn client(&self) -> kindling::kube::KubeClient {
        let config = ::kube::Config::new(self.url.parse().unwrap());
        kindling::kube::KubeClient::new(::kube::Client::try_from(config).unwrap())
    }

    /// A kubeconfig file whose `context` points at this fake.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) {
        let cluster = context
            .trim_start_matches("kind-")
            .trim_start_matches("k3d-");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {}\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\ncurrent-context: {context}\nusers:\n- name: {context}\n  user:\n    token: fake-{cluster}\n",
            self.url
        );
        std::fs::write(path, text).unwrap();
    }
}

fn serve(stream: std::net::TcpStream, state: &Arc<Mutex<ApiState>>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream);
    while let Some(http) = super::http::read_request(&mut reader) {
        // A pod's port-forward: a WebSocket for the rest of the connection (fake_pods).
        if http.path.ends_with("/portforward")
            && http.header("upgrade").eq_ignore_ascii_case("websocket")
        {
            let path: Vec<&str> = http.path.split('/').collect();
            // /api/v1/namespaces/NS/pods/NAME/portforward
            let (namespace, pod) = (path.get(4).copied(), path.get(6).copied());
            let forward = {
                let mut s = state.lock().unwrap();
                s.requests.push(Request {
                    method: http.method.clone(),
                    path: http.path.clone(),
                    query: http.query.clone(),
                    content_type: String::new(),
                    body: String::new(),
                    vault_token: String::new(),
                });
                s.run_controller();
                super::fake_pods::check(
                    &s.objects,
                    namespace.unwrap_or_default(),
                    pod.unwrap_or_default(),
                    &http.query,
                    &http.header("sec-websocket-protocol"),
                    &s.denied,
                )
            };
            let stream = reader.into_inner();
            if let super::fake_pods::Forward::Refuse(status, body) = &forward {
                let mut stream = stream;
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
                return;
            }
            super::fake_pods::serve(
                stream,
                &http.header("sec-websocket-key"),
                forward,
                namespace.unwrap_or_default(),
            );
            return;
        }
        let request = Request {
            content_type: http.header("content-type"),
            vault_token: http.header("x-vault-token"),
            body: String::from_utf8_lossy(&http.body).into_owned(),
            method: http.method,
            path: http.path,
            query: http.query,
        };
        let delay = state.lock().unwrap().delay;
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        let (status, response) = {
            let mut s = state.lock().unwrap();
            s.requests.push(request.clone());
            s.route(&request)
        };
        let stream = reader.get_mut();
        // One write per response: several small writes meet Nagle and delayed ACKs (40 ms each).
        let reply = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{response}",
            response.len()
        );
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
