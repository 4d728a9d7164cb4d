//! What each entry of `env status` runs, as HostK8s' `make status` shows it: its workloads
//! with their ready replicas, its Services, the URLs of its Ingresses and its claims.
//!
//! The objects come from the engine's own record of what it applied: a Flux Kustomization's
//! `status.inventory.entries[].id`, `<namespace>_<name>_<group>_<kind>`
//! (fluxcd/kustomize-controller v1.9.4 api/v1/inventory_types.go), or an Argo CD
//! Application's `status.resources[]` (argo-cd v3.5.1 pkg/apis/application/v1alpha1
//! types.go `ResourceStatus`). A Flux Kustomization lists a HelmRelease, not what the release
//! made: those are the objects Helm marks as the release's (helm pkg/action/validate.go
//! `setMetadataVisitor`, run by install.go: annotations `meta.helm.sh/release-name` and
//! `meta.helm.sh/release-namespace`), the release named by the HelmRelease's
//! `status.history[0]` (fluxcd/helm-controller v1.6.3 api/v2 `Snapshot`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::engine::Engine;
use crate::kube::{KubeClient, KubeError};
use crate::stamp::Stamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryObjects {
    pub entry: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<Workload>,
    /// `NAMESPACE/NAME`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// An Ingress rule's host and path on the env's host ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<Claim>,
}

impl EntryObjects {
    /// The entry runs none of what is listed.
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
            && self.services.is_empty()
            && self.urls.is_empty()
            && self.claims.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `READY/DESIRED` replicas (a DaemonSet's scheduled pods).
    pub ready: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
}

/// One object an engine applied: (namespace, name, kind).
type Ref = (String, String, String);

/// Helm's marks of the release an object belongs to.
const RELEASE_NAME: &str = "meta.helm.sh/release-name";
const RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";

/// The Helm releases (name, namespace) of the HelmReleases among `refs`, as helm-controller
/// records the last one it made.
async fn helm_releases(
    kube: &KubeClient,
    refs: &[Ref],
) -> Result<Vec<(String, String)>, KubeError> {
    let mut releases = Vec::new();
    for (ns, name, kind) in refs {
        if kind != "HelmRelease" {
            continue;
        }
        let Some(release) = kube
            .get("helm.toolkit.fluxcd.io/v2", "HelmRelease", Some(ns), name)
            .await?
        else {
            continue;
        };
        let last = &release["status"]["history"][0];
        if let (Some(name), Some(namespace)) = (last["name"].as_str(), last["namespace"].as_str()) {
            releases.push((name.to_string(), namespace.to_string()));
        }
    }
    Ok(releases)
}

/// The objects the engine records for `entry`.
pub(super) async fn refs(
    kube: &KubeClient,
    engine: Engine,
    objects_namespace: &str,
    entry: &str,
) -> Result<Vec<Ref>, KubeError> {
    let Some(object) = engine_object(kube, engine, objects_namespace, entry).await? else {
        return Ok(Vec::new());
    };
    Ok(match engine {
        Engine::Flux => object["status"]["inventory"]["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let mut parts = e["id"].as_str()?.split('_');
                let (ns, name, _group, kind) =
                    (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
                Some((ns.to_string(), name.to_string(), kind.to_string()))
            })
            .collect(),
        Engine::Argo => object["status"]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (text("namespace"), text("name"), text("kind"))
            })
            .collect(),
    })
}

/// The engine object that carries `entry`: its Flux Kustomization or Argo CD Application.
pub(super) async fn engine_object(
    kube: &KubeClient,
    engine: Engine,
    objects_namespace: &str,
    entry: &str,
) -> Result<Option<Value>, KubeError> {
    match engine {
        Engine::Flux => {
            kube.get(
                "kustomize.toolkit.fluxcd.io/v1",
                "Kustomization",
                Some(objects_namespace),
                entry,
            )
            .await
        }
        Engine::Argo => {
            kube.get(
                "argoproj.io/v1alpha1",
                "Application",
                Some(objects_namespace),
                entry,
            )
            .await
        }
    }
}

fn key(o: &Value) -> (String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        text(&o["metadata"]["namespace"]),
        text(&o["metadata"]["name"]),
    )
}

/// Each entry's objects; `http`/`https` are the env's ingress host ports, `gateway_http` the
/// host port of HostK8s' Gateway API NodePort (the ingress add-on's `ports.gateway`).
pub async fn entry_objects(
    kube: &KubeClient,
    engine: Engine,
    stamp: &Stamp,
    http: u16,
    https: u16,
    gateway_http: Option<u16>,
) -> Result<Vec<EntryObjects>, KubeError> {
    // One list per kind, whatever the number of entries.
    let mut listed: BTreeMap<&str, BTreeMap<(String, String), Value>> = BTreeMap::new();
    for (api_version, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("v1", "Service"),
        ("networking.k8s.io/v1", "Ingress"),
        ("v1", "PersistentVolumeClaim"),
        // Empty where the Gateway API is not served.
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ] {
        let objects = kube.list(api_version, kind, None).await?;
        listed.insert(kind, objects.into_iter().map(|o| (key(&o), o)).collect());
    }
    let mut all = Vec::new();
    for entry in stamp.ordered_entries() {
        let mut found = EntryObjects {
            entry: entry.name.clone(),
            workloads: Vec::new(),
            services: Vec::new(),
            urls: Vec::new(),
            claims: Vec::new(),
        };
        let mut applied = refs(
            kube,
            engine,
            crate::engine::objects_namespace(engine, stamp),
            &entry.name,
        )
        .await?;
        // What a Flux HelmRelease of the entry installed, as Helm marks it.
        for (release, release_ns) in helm_releases(kube, &applied).await? {
            for (kind, of) in &listed {
                for ((ns, name), o) in of {
                    let notes = &o["metadata"]["annotations"];
                    if notes[RELEASE_NAME] == release.as_str()
                        && notes[RELEASE_NAMESPACE] == release_ns.as_str()
                    {
                        applied.push((ns.clone(), name.clone(), kind.to_string()));
                    }
                }
            }
        }
        for (ns, name, kind) in applied {
            let Some(o) = listed
                .get(kind.as_str())
                .and_then(|of| of.get(&(ns.clone(), name.clone())))
            else {
                continue;
            };
            let count = |v: &Value| v.as_i64().unwrap_or(0);
            match kind.as_str() {
                "Deployment" | "StatefulSet" => found.workloads.push(Workload {
                    kind,
                    namespace: ns,
                    name,
                    ready: format!(
                        "{}/{}",
                        count(&o["status"]["readyReplicas"]),
                        o["spec"]["replicas"].as_i64().unwrap_or(1)
                    ),
                }),
                "DaemonSet" => found.workloads.push(Workload {
                    kind,
                    namespace: ns,
                    name,
                    ready: format!(
                        "{}/{}",
                        count(&o["status"]["numberReady"]),
                        count(&o["status"]["desiredNumberScheduled"])
                    ),
                }),
                // A LoadBalancer's address (the metallb add-on's) is where the host reaches it.
                "Service" => found.services.push(
                    match o["status"]["loadBalancer"]["ingress"][0]["ip"].as_str() {
                        Some(ip) => format!("{ns}/{name} ({ip})"),
                        None => format!("{ns}/{name}"),
                    },
                ),
                "Ingress" => found.urls.extend(ingress_urls(o, http, https)),
                "HTTPRoute" => found.urls.extend(route_urls(o, gateway_http)),
                "PersistentVolumeClaim" => found.claims.push(Claim {
                    namespace: ns,
                    name,
                    phase: o["status"]["phase"]
                        .as_str()
                        .unwrap_or("Pending")
                        .to_string(),
                    volume: o["spec"]["volumeName"].as_str().map(str::to_string),
                }),
                _ => {}
            }
        }
        all.push(found);
    }
    Ok(all)
}

/// `https://HOST:PORT/PATH` for each rule path of a host the Ingress serves over TLS, `http://`
/// on the HTTP port otherwise.
fn ingress_urls(ingress: &Value, http: u16, https: u16) -> Vec<String> {
    let tls_hosts: Vec<&str> = ingress["spec"]["tls"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["hosts"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let mut urls = Vec::new();
    for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
        let host = rule["host"].as_str().unwrap_or("localhost");
        // The scheme's own port goes unsaid (a cluster's own ingress serves on it).
        let base = match tls_hosts.contains(&host) {
            true if https == 443 => format!("https://{host}"),
            true => format!("https://{host}:{https}"),
            false if http == 80 => format!("http://{host}"),
            false => format!("http://{host}:{http}"),
        };
        let paths: Vec<&str> = rule["http"]["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["path"].as_str())
            .collect();
        if paths.is_empty() {
            urls.push(format!("{base}/"));
        }
        for path in paths {
            let url = format!("{base}{path}");
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    urls
}

/// `http://HOST[:PORT]/PATH` for each hostname and path match of an HTTPRoute
/// (gateway.networking.k8s.io/v1 `spec.hostnames`, `rules[].matches[].path.value`), on the host
/// port of HostK8s' gateway NodePort when the env has one.
fn route_urls(route: &Value, port: Option<u16>) -> Vec<String> {
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    let paths: Vec<&str> = route["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["matches"].as_array().into_iter().flatten())
        .filter_map(|m| m["path"]["value"].as_str())
        .collect();
    let mut urls = Vec::new();
    for host in route["spec"]["hostnames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if paths.is_empty() {
            urls.push(format!("http://{host}{port}/"));
        }
        for path in &paths {
            let url = format!("http://{host}{port}{path}");
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_objects_route_urls_take_hostnames_paths_and_the_gateway_port() {
        let route = serde_json::json!({"spec": {
            "hostnames": ["bookinfo.localhost"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/productpage"}},
                                   {"path": {"type": "PathPrefix", "value": "/static"}}]}]}});
        assert_eq!(
            route_urls(&route, Some(8081)),
            [
                "http://bookinfo.localhost:8081/productpage",
                "http://bookinfo.localhost:8081/static"
            ]
        );
        let bare = serde_json::json!({"spec": {"hostnames": ["a.localhost"]}});
        assert_eq!(route_urls(&bare, None), ["http://a.localhost/"]);
    }

    #[test]
    fn entry_objects_ingress_urls_follow_tls_and_paths() {
        let ingress = serde_json::json!({"spec": {
        "tls": [{"hosts": ["api.localhost"]}],
        "rules": [
            {"host": "api.localhost", "http": {"paths": [{"path": "/"}, {"path": "/v1"}]}},
            {"host": "plain.localhost", "http": {"paths": [{"path": "/x"}]}},
        ]}});
        assert_eq!(
            ingress_urls(&ingress, 8080, 8443),
            [
                "https://api.localhost:8443/",
                "https://api.localhost:8443/v1",
                "http://plain.localhost:8080/x"
            ]
        );
    }
}
