//! The Kubernetes API through kube-rs: a client for one kubeconfig + context, server-side apply
//! of multi-document bundles with discovery (field manager `kindling`, forced), CRDs waited
//! Established before their resources, bounded waits, and bundle deletion.

pub mod order;
pub mod readiness;

use std::path::Path;
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::core::GroupVersionKind;
use ::kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind};
use serde_json::Value;

pub use order::{Phase, apply_order, delete_order, phase_of};

/// The field manager of everything kindling applies.
pub const FIELD_MANAGER: &str = "kindling";

/// The field manager of upstream install manifests. Distinct from [`FIELD_MANAGER`] so that
/// re-applying an install bundle never drops fields kindling set on the same objects later
/// (server-side apply removes the fields a manager owned and no longer sends).
pub const INSTALL_FIELD_MANAGER: &str = "kindling-install";

/// How a bundle is applied.
#[derive(Debug, Clone)]
pub struct ApplyOptions<'a> {
    pub field_manager: &'a str,
    /// Where namespaced objects without a namespace go (`kubectl apply -n`); `default` if unset.
    pub default_namespace: Option<&'a str>,
    /// How long a CRD of the bundle may take to become Established.
    pub crd_timeout: Duration,
}

impl ApplyOptions<'static> {
    pub fn new(crd_timeout: Duration) -> ApplyOptions<'static> {
        ApplyOptions {
            field_manager: FIELD_MANAGER,
            default_namespace: None,
            crd_timeout,
        }
    }
}

/// A namespaced object with `metadata.namespace` set to `namespace` when it names none, as
/// `kubectl apply -n` does; the server rejects a body whose namespace differs from the path's.
fn in_namespace(object: &Value, namespace: &str) -> Value {
    let mut object = object.clone();
    if !object["metadata"]["namespace"].is_string()
        && let Some(meta) = object["metadata"].as_object_mut()
    {
        meta.insert("namespace".into(), Value::String(namespace.to_string()));
    }
    object
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {path}: {reason}")]
    Config { path: String, reason: String },
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("the cluster has no kind {kind} ({api_version}){hint}")]
    UnknownKind {
        kind: String,
        api_version: String,
        hint: String,
    },
    #[error("object {index} of the bundle is not a Kubernetes object: {reason}")]
    Malformed { index: usize, reason: String },
    #[error("timed out after {seconds}s waiting for {what}: {blocking}")]
    Timeout {
        what: String,
        seconds: u64,
        blocking: String,
    },
}

fn api_error(action: impl Into<String>) -> impl FnOnce(::kube::Error) -> KubeError {
    let action = action.into();
    move |source| KubeError::Api { action, source }
}

fn is_not_found(e: &::kube::Error) -> bool {
    matches!(e, ::kube::Error::Api(status) if status.code == 404)
}

/// What one apply did, for progress and JSON output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Clone)]
pub struct KubeClient {
    client: ::kube::Client,
    /// Kinds discovery found, by apiVersion/kind: every get, list and patch needs one, and a
    /// served kind stays served for the life of a command. Misses are not kept (a CRD may be
    /// about to become Established).
    discovered: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, (ApiResource, ApiCapabilities)>>,
    >,
}

impl KubeClient {
    pub fn new(client: ::kube::Client) -> KubeClient {
        KubeClient {
            client,
            discovered: Default::default(),
        }
    }

    /// A client for `context` of the kubeconfig at `path` (the env's standalone file).
    pub async fn from_kubeconfig(
        path: &Path,
        context: Option<&str>,
    ) -> Result<KubeClient, KubeError> {
        let config_error = |reason: String| KubeError::Config {
            path: path.display().to_string(),
            reason,
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| config_error(e.to_string()))?;
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let config = ::kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| config_error(e.to_string()))?;
        let client = ::kube::Client::try_from(config).map_err(|e| config_error(e.to_string()))?;
        Ok(KubeClient::new(client))
    }

    /// Discovery for one kind: its resource and whether it is namespaced; `None` when the
    /// cluster does not serve it (yet).
    pub async fn resource_of(
        &self,
        object: &Value,
    ) -> Result<Option<(ApiResource, ApiCapabilities)>, KubeError> {
        let gvk = gvk_of(object).ok_or_else(|| KubeError::Malformed {
            index: 0,
            reason: "no apiVersion/kind".into(),
        })?;
        let key = format!("{}/{}/{}", gvk.group, gvk.version, gvk.kind);
        if let Some(found) = self
            .discovered
            .lock()
            .ok()
            .and_then(|d| d.get(&key).cloned())
        {
            return Ok(Some(found));
        }
        match pinned_kind(&self.client, &gvk).await {
            Ok(found) => {
                if let Ok(mut d) = self.discovered.lock() {
                    d.insert(key, found.clone());
                }
                Ok(Some(found))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            // Discovery of a group the server does not serve can also surface as a missing kind.
            Err(::kube::Error::Discovery(_)) => Ok(None),
            Err(e) => Err(api_error(format!("discovering {} {}", gvk.group, gvk.kind))(e)),
        }
    }

    /// Server-side applies every object of a multi-document YAML bundle in dependency order,
    /// as field manager `kindling`, namespaced objects without a namespace going to `default`.
    pub async fn apply_bundle(
        &self,
        yaml: &str,
        crd_timeout: Duration,
    ) -> Result<Vec<Applied>, KubeError> {
        self.apply_objects(&parse_bundle(yaml)?, &ApplyOptions::new(crd_timeout))
            .await
    }

    /// Server-side applies `objects` in dependency order. A custom resource whose CRD is among
    /// them is applied once that CRD is Established.
    pub async fn apply_objects(
        &self,
        objects: &[Value],
        options: &ApplyOptions<'_>,
    ) -> Result<Vec<Applied>, KubeError> {
        let crd_timeout = options.crd_timeout;
        let mut scopes = Vec::with_capacity(objects.len());
        for object in objects {
            scopes.push(
                self.resource_of(object)
                    .await?
                    .map(|(_, caps)| caps.scope == Scope::Namespaced),
            );
        }
        let order = apply_order(objects, |i| scopes[i]);
        let mut applied = Vec::new();
        for i in order {
            let object = &objects[i];
            let resource = match self.resource_of(object).await? {
                Some(found) => found,
                None => {
                    let Some(crd) = order::defining_crd(objects, object) else {
                        return Err(unknown_kind(
                            object,
                            "; install the CRD that defines it first",
                        ));
                    };
                    let crd_name = crd["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    self.wait_crd_established(&crd_name, crd_timeout).await?;
                    self.resource_of(object).await?.ok_or_else(|| {
                        unknown_kind(
                            object,
                            &format!("; CRD {crd_name} is Established but the kind is not served"),
                        )
                    })?
                }
            };
            applied.push(
                self.apply_one(
                    object,
                    &resource.0,
                    resource.1.scope == Scope::Namespaced,
                    options,
                )
                .await?,
            );
        }
        Ok(applied)
    }

    async fn apply_one(
        &self,
        object: &Value,
        resource: &ApiResource,
        namespaced: bool,
        options: &ApplyOptions<'_>,
    ) -> Result<Applied, KubeError> {
        let object = match (namespaced, options.default_namespace) {
            (true, Some(ns)) => in_namespace(object, ns),
            _ => object.clone(),
        };
        let (api, name, namespace) = self.api_for(&object, resource, namespaced);
        let params = PatchParams::apply(options.field_manager).force();
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(api_error(format!("applying {} {name}", resource.kind)))?;
        Ok(Applied {
            kind: resource.kind.clone(),
            name,
            namespace,
        })
    }

    /// The API of an object's resource (namespaced or not), with its name and namespace; a
    /// namespaced object without a namespace goes to `default`, as kubectl does.
    fn api_for(
        &self,
        object: &Value,
        resource: &ApiResource,
        namespaced: bool,
    ) -> (Api<DynamicObject>, String, Option<String>) {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = namespaced.then(|| {
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string()
        });
        let api = match &namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        (api, name, namespace)
    }

    /// Waits until a CRD reports condition Established=True.
    pub async fn wait_crd_established(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<(), KubeError> {
        let crd = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        );
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &crd);
        self.wait_for(
            &format!("CustomResourceDefinition {name} to be Established"),
            timeout,
            || {
                let api = api.clone();
                let name = name.to_string();
                async move {
                    let object = api
                        .get(&name)
                        .await
                        .map_err(api_error(format!("reading CRD {name}")))?;
                    let status = serde_json::to_value(&object).unwrap_or_default();
                    Ok(condition(&status, "Established").map_or(
                        Err("no Established condition yet".to_string()),
                        |c| {
                            if c.0 == "True" {
                                Ok(())
                            } else {
                                Err(format!("Established={}: {}", c.0, c.1))
                            }
                        },
                    ))
                }
            },
        )
        .await
    }

    /// Polls `check` until it says ready; the error on timeout carries its last reason.
    pub async fn wait_for<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<(), KubeError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Result<(), String>, KubeError>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let blocking = match check().await? {
                Ok(()) => return Ok(()),
                Err(reason) => reason,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(KubeError::Timeout {
                    what: what.to_string(),
                    seconds: timeout.as_secs(),
                    blocking,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until `expected` nodes are registered and Ready (`cluster::readiness`).
    pub async fn wait_nodes_ready(
        &self,
        expected: usize,
        timeout: Duration,
    ) -> Result<(), KubeError> {
        let nodes =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Node"), "nodes");
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &nodes);
        self.wait_for("the cluster's nodes to be Ready", timeout, || {
            let api = api.clone();
            async move {
                // Right after create the API server may not answer yet: that is "not ready".
                let list = match api.list(&Default::default()).await {
                    Ok(list) => list,
                    Err(e) => {
                        return Ok(Err(format!(
                            "the API server is not reachable through the context: {e}"
                        )));
                    }
                };
                let value = serde_json::json!({ "items": list.items });
                Ok(readiness::nodes_ready(&value, expected).map_err(|e| e.to_string()))
            }
        })
        .await
    }

    /// The dynamic API of a kind in `namespace` (all namespaces when `None` for a namespaced
    /// kind); `None` when the cluster does not serve the kind.
    async fn api_of_kind(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Option<(Api<DynamicObject>, ApiResource)>, KubeError> {
        let probe = serde_json::json!({"apiVersion": api_version, "kind": kind});
        let Some((resource, caps)) = self.resource_of(&probe).await? else {
            return Ok(None);
        };
        let api = match (caps.scope == Scope::Namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &resource),
            _ => Api::all_with(self.client.clone(), &resource),
        };
        Ok(Some((api, resource)))
    }

    /// One object as JSON, `None` when it (or its kind) does not exist.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, KubeError> {
        let Some((api, _)) = self.api_of_kind(api_version, kind, namespace).await? else {
            return Ok(None);
        };
        match api.get(name).await {
            Ok(object) => Ok(Some(to_json(&object, api_version, kind))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api_error(format!("reading {kind} {name}"))(e)),
        }
    }

    /// Every object of a kind in `namespace` (empty when the kind is not served).
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, KubeError> {
        let Some((api, _)) = self.api_of_kind(api_version, kind, namespace).await? else {
            return Ok(Vec::new());
        };
        let list = api
            .list(&Default::default())
            .await
            .map_err(api_error(format!("listing {kind}")))?;
        Ok(list
            .items
            .iter()
            .map(|o| to_json(o, api_version, kind))
            .collect())
    }

    /// A JSON merge patch of one object (annotations, `spec.suspend`, an Argo CD operation).
    pub async fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<(), KubeError> {
        let Some((api, _)) = self.api_of_kind(api_version, kind, namespace).await? else {
            return Err(unknown_kind(
                &serde_json::json!({"apiVersion": api_version, "kind": kind}),
                "; is the engine installed?",
            ));
        };
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(api_error(format!("patching {kind} {name}")))?;
        Ok(())
    }

    /// The newest Warning event in `namespace` about an object whose name starts with
    /// `name_prefix` (a Deployment's pods carry its name as prefix), as "Reason: message".
    pub async fn latest_warning(&self, namespace: &str, name_prefix: &str) -> Option<String> {
        let events = self.list("v1", "Event", Some(namespace)).await.ok()?;
        latest_warning_of(&events, name_prefix)
    }

    /// Waits until an object reports condition `condition_type`=True; the timeout error names
    /// the object, the condition's last status and message, and its latest Warning event.
    pub async fn wait_condition(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        condition_type: &str,
        timeout: Duration,
    ) -> Result<(), KubeError> {
        let what = format!("{kind} {name} to be {condition_type}");
        let result = self
            .wait_for(&what, timeout, || async move {
                Ok(match self.get(api_version, kind, namespace, name).await? {
                    None => Err(format!("{kind} {name} does not exist yet")),
                    Some(object) => match condition(&object, condition_type) {
                        Some((status, _)) if status == "True" => Ok(()),
                        Some((status, message)) => Err(format!(
                            "{kind} {name}: {condition_type}={status}: {message}"
                        )),
                        None => Err(format!(
                            "{kind} {name} reports no {condition_type} condition yet"
                        )),
                    },
                })
            })
            .await;
        match namespace {
            Some(ns) => self.with_latest_warning(result, ns, name).await,
            None => result,
        }
    }

    /// A timeout error with the latest Warning event about `name*` in `namespace` appended.
    async fn with_latest_warning(
        &self,
        result: Result<(), KubeError>,
        namespace: &str,
        name: &str,
    ) -> Result<(), KubeError> {
        match result {
            Err(KubeError::Timeout {
                what,
                seconds,
                blocking,
            }) => {
                let event = self
                    .latest_warning(namespace, name)
                    .await
                    .map(|e| format!("; latest warning: {e}"))
                    .unwrap_or_default();
                Err(KubeError::Timeout {
                    what,
                    seconds,
                    blocking: format!("{blocking}{event}"),
                })
            }
            other => other,
        }
    }

    /// Waits until every Deployment in `namespace` is Available and every StatefulSet has its
    /// replicas ready; the timeout error names the first workload that is not, with its latest
    /// Warning event.
    pub async fn wait_workloads_ready(
        &self,
        namespace: &str,
        timeout: Duration,
    ) -> Result<(), KubeError> {
        let what = format!("the workloads in namespace {namespace} to be ready");
        let result = self
            .wait_for(&what, timeout, || async move {
                let deployments = self.list("apps/v1", "Deployment", Some(namespace)).await?;
                let statefulsets = self.list("apps/v1", "StatefulSet", Some(namespace)).await?;
                Ok(workloads_ready(&deployments, &statefulsets))
            })
            .await;
        // The blocking message starts "Kind name …": the workload the events are about.
        let name = match &result {
            Err(KubeError::Timeout { blocking, .. }) => blocking
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string(),
            _ => return result,
        };
        self.with_latest_warning(result, namespace, &name).await
    }

    /// Deletes every object of a bundle in reverse dependency order; what is gone already (or
    /// whose kind the cluster no longer serves) is fine.
    pub async fn delete_bundle(&self, yaml: &str) -> Result<Vec<Applied>, KubeError> {
        self.delete_objects(&parse_bundle(yaml)?).await
    }

    /// Deletes `objects` in reverse dependency order; gone already is fine.
    pub async fn delete_objects(&self, objects: &[Value]) -> Result<Vec<Applied>, KubeError> {
        let mut resources = Vec::with_capacity(objects.len());
        for object in objects {
            resources.push(self.resource_of(object).await?);
        }
        let order = delete_order(objects, |i| {
            resources[i]
                .as_ref()
                .map(|(_, caps)| caps.scope == Scope::Namespaced)
        });
        let mut deleted = Vec::new();
        for i in order {
            let Some((resource, caps)) = &resources[i] else {
                continue;
            };
            let (api, name, namespace) =
                self.api_for(&objects[i], resource, caps.scope == Scope::Namespaced);
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(Applied {
                    kind: resource.kind.clone(),
                    name,
                    namespace,
                }),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(api_error(format!("deleting {} {name}", resource.kind))(e)),
            }
        }
        Ok(deleted)
    }
}

fn unknown_kind(object: &Value, hint: &str) -> KubeError {
    KubeError::UnknownKind {
        kind: object["kind"].as_str().unwrap_or_default().to_string(),
        api_version: object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        hint: hint.to_string(),
    }
}

pub fn gvk_of(object: &Value) -> Option<GroupVersionKind> {
    let api_version = object["apiVersion"].as_str()?;
    let kind = object["kind"].as_str()?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Some(GroupVersionKind::gvk(group, version, kind))
}

/// A condition's (status, message) from an object's `status.conditions`.
pub fn condition(object: &Value, kind: &str) -> Option<(String, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// The objects of a multi-document YAML bundle (empty documents skipped), each checked to
/// have apiVersion, kind and metadata.name.
pub fn parse_bundle(yaml: &str) -> Result<Vec<Value>, KubeError> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|e| KubeError::Malformed {
                index,
                reason: e.to_string(),
            })?;
        if value.is_null() {
            continue;
        }
        for field in ["/apiVersion", "/kind", "/metadata/name"] {
            if !value.pointer(field).is_some_and(Value::is_string) {
                return Err(KubeError::Malformed {
                    index,
                    reason: format!(
                        "{} is missing",
                        field.trim_start_matches('/').replace('/', ".")
                    ),
                });
            }
        }
        objects.push(value);
    }
    Ok(objects)
}

fn to_json(object: &DynamicObject, api_version: &str, kind: &str) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    // List items come without apiVersion/kind; status parsing and messages want them.
    if let Some(map) = value.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(api_version.to_string()));
        map.entry("kind")
            .or_insert_with(|| Value::String(kind.to_string()));
    }
    value
}

/// Whether Deployments are Available and StatefulSets have all replicas ready (pure): the
/// first one that is not, as "Kind name: why".
pub fn workloads_ready(deployments: &[Value], statefulsets: &[Value]) -> Result<(), String> {
    for d in deployments {
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        match condition(d, "Available") {
            Some((status, _)) if status == "True" => {}
            Some((status, message)) => {
                return Err(format!(
                    "Deployment {name} is not Available ({status}): {message}"
                ));
            }
            None => {
                return Err(format!(
                    "Deployment {name} reports no Available condition yet"
                ));
            }
        }
    }
    for s in statefulsets {
        let name = s["metadata"]["name"].as_str().unwrap_or_default();
        let wanted = s["spec"]["replicas"].as_u64().unwrap_or(1);
        let ready = s["status"]["readyReplicas"].as_u64().unwrap_or(0);
        if ready < wanted {
            return Err(format!(
                "StatefulSet {name} has {ready}/{wanted} replicas ready"
            ));
        }
    }
    Ok(())
}

/// The newest Warning event about an object named `name_prefix*` (pure).
pub fn latest_warning_of(events: &[Value], name_prefix: &str) -> Option<String> {
    let time = |e: &Value| {
        ["lastTimestamp", "eventTime", "firstTimestamp"]
            .iter()
            .find_map(|f| e[*f].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    events
        .iter()
        .filter(|e| e["type"] == "Warning")
        .filter(|e| {
            e["involvedObject"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(name_prefix))
        })
        .max_by_key(|e| time(e))
        .map(|e| {
            format!(
                "{} {}: {}",
                e["involvedObject"]["name"].as_str().unwrap_or_default(),
                e["reason"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default().trim()
            )
        })
}
