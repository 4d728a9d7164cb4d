//! The Kubernetes API through kube-rs: a client for one kubeconfig + context, server-side apply
//! of multi-document bundles with discovery (field manager `kindling`, forced), CRDs waited
//! Established before their resources, bounded waits, and bundle deletion.

pub mod access;
pub mod flags;
pub mod forward;
pub mod order;
pub mod ownership;
pub mod readiness;
mod wait;

pub use wait::{latest_warning_of, workloads_ready};

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
    /// An object on a shared cluster that kindling did not make (`ownership`).
    #[error("{0}")]
    NotOurs(String),
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

impl KubeError {
    /// The API server refused the request to this user (RBAC's 403), as opposed to failing.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, KubeError::Api { source: ::kube::Error::Api(status), .. } if status.code == 403)
    }
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

impl Applied {
    /// `KIND NAMESPACE/NAME` (`KIND NAME` for a cluster-scoped object).
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
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
    /// On a cluster kindling did not make: the env whose label every apply carries.
    ownership: Option<std::sync::Arc<ownership::Ownership>>,
}

impl KubeClient {
    pub fn new(client: ::kube::Client) -> KubeClient {
        KubeClient {
            client,
            discovered: Default::default(),
            ownership: None,
        }
    }

    /// This client, applying only as `ownership` allows (a cluster kindling shares).
    pub fn owned_by(mut self, ownership: ownership::Ownership) -> KubeClient {
        self.ownership = Some(std::sync::Arc::new(ownership));
        self
    }

    /// Whether this client applies for env `env` (`owned_by`).
    pub fn is_owned_by(&self, env: &str) -> bool {
        self.ownership.as_ref().is_some_and(|o| o.env == env)
    }

    /// The underlying kube-rs client (port-forwards, access reviews).
    pub fn raw(&self) -> &::kube::Client {
        &self.client
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
        let mut config = ::kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| config_error(e.to_string()))?;
        // kube takes HTTPS_PROXY from the environment for every cluster (kube-client 5.0.0
        // config/file_loader.rs proxy_url), so behind a corporate proxy the env's API server
        // on this machine would be asked for through it (and refused: kindling builds kube
        // without its proxy feature). A loopback API server is always reached directly.
        if crate::cluster::proxy::is_loopback_url(&config.cluster_url.to_string()) {
            config.proxy_url = None;
        }
        let client = ::kube::client::ClientBuilder::try_from(config)
            .map_err(|e| config_error(e.to_string()))?
            // `-v`: every request's method and path (never its body or headers).
            .with_layer(&tower::util::MapRequestLayer::new(
                |request: http::Request<::kube::client::Body>| {
                    crate::ui::call(|| {
                        format!(
                            "kube: {} {}",
                            request.method(),
                            request
                                .uri()
                                .path_and_query()
                                .map(|p| p.as_str())
                                .unwrap_or("/")
                        )
                    });
                    request
                },
            ))
            .build();
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
        let mut manager = options.field_manager.to_string();
        let object = match &self.ownership {
            None => object,
            Some(owner) => {
                let live = live_json(&api, &resource.kind, &name).await?;
                let applied = Applied {
                    kind: resource.kind.clone(),
                    name: name.clone(),
                    namespace: namespace.clone(),
                };
                let claim = match owner.claim(&object, live.as_ref()) {
                    // What the env's own engine tree applied (`env apply` takes an entry's
                    // objects over from it) is the env's too.
                    Err(_)
                        if match &live {
                            Some(live) => self.made_by_the_envs_engine(owner, live).await?,
                            None => false,
                        } =>
                    {
                        Ok(ownership::Claim::Apply)
                    }
                    other => other,
                };
                match claim {
                    Err(reason) => return Err(KubeError::NotOurs(reason)),
                    Ok(ownership::Claim::UseAsFound) => return Ok(applied),
                    Ok(ownership::Claim::SharedKeys) => {
                        // The env's bootstrap and delete, not an install manifest's apply.
                        if options.field_manager == FIELD_MANAGER {
                            manager = ownership::shared_keys_manager(&owner.env);
                        }
                        match &live {
                            Some(live) => {
                                let (kept, dropped) =
                                    ownership::without_their_keys(&object, live, &manager);
                                if !dropped.is_empty() {
                                    crate::ui::call(|| {
                                        format!(
                                            "kube: {} {name}: keys {} are set already and stay as they are",
                                            resource.kind,
                                            dropped.join(", ")
                                        )
                                    });
                                }
                                kept
                            }
                            None => object,
                        }
                    }
                    Ok(ownership::Claim::Apply) => {
                        owner
                            .record_kind(&object, namespace.as_deref())
                            .map_err(|e| KubeError::Config {
                                path: owner.kinds_file.display().to_string(),
                                reason: format!("cannot record what kindling applies: {e}"),
                            })?;
                        owner.labelled(&object)
                    }
                }
            }
        };
        let params = PatchParams::apply(&manager).force();
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(api_error(format!("applying {} {name}", resource.kind)))?;
        Ok(Applied {
            kind: resource.kind.clone(),
            name,
            namespace,
        })
    }

    /// Whether `live` was applied by an engine object of the env: its Flux Kustomization
    /// (labels `kustomize.toolkit.fluxcd.io/name`/`namespace`) or Argo CD Application
    /// (tracking annotation `APP:…`, in `argocd`), or one they made, up to the root the env
    /// labelled.
    async fn made_by_the_envs_engine(
        &self,
        owner: &ownership::Ownership,
        live: &Value,
    ) -> Result<bool, KubeError> {
        let Some(parent) = self.engine_parent_of(live).await? else {
            return Ok(false);
        };
        Ok(self.kindling_env_of(&parent).await?.as_deref() == Some(owner.env.as_str()))
    }

    /// The live engine object that applied `object` (`ownership::engine_parent`), if it is
    /// there.
    async fn engine_parent_of(&self, object: &Value) -> Result<Option<Value>, KubeError> {
        match ownership::engine_parent(object) {
            Some((api_version, kind, namespace, name)) => {
                self.get(api_version, kind, Some(&namespace), &name).await
            }
            None => Ok(None),
        }
    }

    /// The kindling env `live` belongs to: the env its label names, else the one of the
    /// engine object that applied it, up to the root an env labelled (root → entry → what the
    /// entry applied → what a chart installed: a few levels at most). None: no env's.
    pub async fn kindling_env_of(&self, live: &Value) -> Result<Option<String>, KubeError> {
        let mut at = live.clone();
        for _ in 0..5 {
            if let Some(env) = at["metadata"]["labels"][crate::ENV_LABEL].as_str() {
                return Ok(Some(env.to_string()));
            }
            match self.engine_parent_of(&at).await? {
                Some(parent) => at = parent,
                None => return Ok(None),
            }
        }
        Ok(None)
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

    /// An HTTP call to a Service through the API server's service proxy
    /// (`/api/v1/namespaces/NS/services/SCHEME:NAME:PORT/proxy/PATH`, kubernetes/kubernetes
    /// pkg/registry/core/service/proxy.go): how kindling reaches what runs in the cluster
    /// without a published port. Returns the status and body, whatever the status.
    pub async fn service_proxy(
        &self,
        method: http::Method,
        namespace: &str,
        service: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, String), KubeError> {
        let uri = format!(
            "/api/v1/namespaces/{namespace}/services/{service}/proxy/{}",
            path.trim_start_matches('/')
        );
        let action = || format!("{method} {service} in {namespace}: {path}");
        let mut request = http::Request::builder().method(method.clone()).uri(&uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(::kube::client::Body::from(body.unwrap_or_default()))
            .map_err(|e| KubeError::Config {
                path: uri.clone(),
                reason: e.to_string(),
            })?;
        let response = self
            .client
            .send(request)
            .await
            .map_err(api_error(action()))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(api_error(action()))?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// A forced server-side apply of `object` as `field_manager`, without the env's ownership
    /// (no label, no check): for giving back what an older kindling applied under another
    /// manager.
    pub async fn apply_as(&self, object: &Value, field_manager: &str) -> Result<(), KubeError> {
        let Some((resource, caps)) = self.resource_of(object).await? else {
            return Ok(());
        };
        let (api, name, _) = self.api_for(object, &resource, caps.scope == Scope::Namespaced);
        let kind = resource.kind.clone();
        api.patch(
            &name,
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(api_error(format!("applying {kind} {name}")))?;
        Ok(())
    }

    /// The object as a forced server-side apply by `field_manager` would leave it, with
    /// nothing stored (`dryRun=All`): what `env diff` compares with the live object, as
    /// fluxcd/pkg ssa `ResourceManager.Diff` does. `None` when the cluster does not serve the
    /// kind.
    pub async fn dry_run_apply(
        &self,
        object: &Value,
        field_manager: &str,
    ) -> Result<Option<Value>, KubeError> {
        let Some((resource, caps)) = self.resource_of(object).await? else {
            return Ok(None);
        };
        let (api, name, _) = self.api_for(object, &resource, caps.scope == Scope::Namespaced);
        let mut params = PatchParams::apply(field_manager).force();
        params.dry_run = true;
        let kind = resource.kind.clone();
        let result = api
            .patch(&name, &params, &Patch::Apply(object))
            .await
            .map_err(api_error(format!("dry-run applying {kind} {name}")))?;
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        Ok(Some(to_json(&result, api_version, &kind)))
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

    /// Every object of a kind, in every namespace, that carries the label `selector`
    /// (`key=value`); empty when the kind is not served.
    pub async fn list_labelled(
        &self,
        api_version: &str,
        kind: &str,
        selector: &str,
    ) -> Result<Vec<Value>, KubeError> {
        self.list_labelled_in(api_version, kind, None, selector)
            .await
    }

    /// The objects of a kind in `namespace` (every namespace when None) that carry the label
    /// `selector`; empty when the kind is not served. A user whose rights end at namespaces
    /// may list in them, not across all.
    pub async fn list_labelled_in(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Vec<Value>, KubeError> {
        let Some((api, _)) = self.api_of_kind(api_version, kind, namespace).await? else {
            return Ok(Vec::new());
        };
        let list = api
            .list(&::kube::api::ListParams::default().labels(selector))
            .await
            .map_err(api_error(format!("listing {kind} labelled {selector}")))?;
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
        // On a shared cluster, only what is the env's (suspend, resume and reconcile requests
        // address engine objects by name).
        if let Some(owner) = &self.ownership
            && let Some(live) = live_json(&api, kind, name).await?
            && !self.is_the_envs(owner, &live).await?
        {
            return Err(KubeError::NotOurs(format!(
                "{kind} {}{name} on the cluster is not env {}'s; kindling does not change it",
                namespace.map(|n| format!("{n}/")).unwrap_or_default(),
                owner.env
            )));
        }
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(api_error(format!("patching {kind} {name}")))?;
        Ok(())
    }

    /// Whether `live` belongs to the env this client works for on a cluster it shares
    /// (labelled for it, or applied by its engine tree); everything does on a cluster kindling
    /// made.
    pub async fn belongs_to_the_env(&self, live: &Value) -> Result<bool, KubeError> {
        match &self.ownership {
            None => Ok(true),
            Some(owner) => self.is_the_envs(owner, live).await,
        }
    }

    /// Whether `live` is the env's: labelled for it, or applied by its engine tree.
    async fn is_the_envs(
        &self,
        owner: &ownership::Ownership,
        live: &Value,
    ) -> Result<bool, KubeError> {
        if live["metadata"]["labels"][crate::ENV_LABEL] == owner.env.as_str() {
            return Ok(true);
        }
        self.made_by_the_envs_engine(owner, live).await
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
            // On a shared cluster, what is not the env's is never deleted, whoever asks.
            if let Some(owner) = &self.ownership {
                match live_json(&api, &resource.kind, &name).await? {
                    None => continue,
                    Some(live) if !self.is_the_envs(owner, &live).await? => {
                        crate::ui::call(|| {
                            format!(
                                "kube: {} {name} is not env {}'s; left as it is",
                                resource.kind, owner.env
                            )
                        });
                        continue;
                    }
                    Some(_) => {}
                }
            }
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

/// The object `name` as the API holds it now, as JSON; `None` when there is none.
async fn live_json(
    api: &Api<DynamicObject>,
    kind: &str,
    name: &str,
) -> Result<Option<Value>, KubeError> {
    Ok(api
        .get_opt(name)
        .await
        .map_err(api_error(format!("reading {kind} {name}")))?
        .map(|l| serde_json::to_value(l).unwrap_or_default()))
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
