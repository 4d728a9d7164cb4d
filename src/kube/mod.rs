//! The Kubernetes API through kube-rs: a client for one kubeconfig + context, server-side apply
//! of multi-document bundles with discovery (field manager `kindling`, forced), CRDs waited
//! Established before their resources, bounded waits, and bundle deletion.

pub mod order;

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
}

impl KubeClient {
    pub fn new(client: ::kube::Client) -> KubeClient {
        KubeClient { client }
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
        Ok(KubeClient { client })
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
        match pinned_kind(&self.client, &gvk).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if is_not_found(&e) => Ok(None),
            // Discovery of a group the server does not serve can also surface as a missing kind.
            Err(::kube::Error::Discovery(_)) => Ok(None),
            Err(e) => Err(api_error(format!("discovering {} {}", gvk.group, gvk.kind))(e)),
        }
    }

    /// Server-side applies every object of a multi-document YAML bundle in dependency order.
    /// A custom resource whose CRD is in the bundle is applied once that CRD is Established.
    pub async fn apply_bundle(
        &self,
        yaml: &str,
        crd_timeout: Duration,
    ) -> Result<Vec<Applied>, KubeError> {
        let objects = parse_bundle(yaml)?;
        let mut scopes = Vec::with_capacity(objects.len());
        for object in &objects {
            scopes.push(
                self.resource_of(object)
                    .await?
                    .map(|(_, caps)| caps.scope == Scope::Namespaced),
            );
        }
        let order = apply_order(&objects, |i| scopes[i]);
        let mut applied = Vec::new();
        for i in order {
            let object = &objects[i];
            let resource = match self.resource_of(object).await? {
                Some(found) => found,
                None => {
                    let Some(crd) = order::defining_crd(&objects, object) else {
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
                self.apply_one(object, &resource.0, resource.1.scope == Scope::Namespaced)
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
    ) -> Result<Applied, KubeError> {
        let (api, name, namespace) = self.api_for(object, resource, namespaced);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(object))
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
                Ok(crate::cluster::readiness::nodes_ready(&value, expected)
                    .map_err(|e| e.to_string()))
            }
        })
        .await
    }

    /// Deletes every object of a bundle in reverse dependency order; what is gone already (or
    /// whose kind the cluster no longer serves) is fine.
    pub async fn delete_bundle(&self, yaml: &str) -> Result<Vec<Applied>, KubeError> {
        let objects = parse_bundle(yaml)?;
        let mut resources = Vec::with_capacity(objects.len());
        for object in &objects {
            resources.push(self.resource_of(object).await?);
        }
        let order = delete_order(&objects, |i| {
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
