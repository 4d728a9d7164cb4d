//! Waiting on the cluster: CRDs Established, nodes Ready, a named condition, Deployments and
//! StatefulSets rolled out. A timeout names what blocks and its latest Warning event.

// One type's methods, split by what they do: the parent module's names are theirs.
use super::*;

impl KubeClient {
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
