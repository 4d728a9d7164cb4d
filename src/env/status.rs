//! `env status`: the env's parts and the engine's per-entry status; with `--wait`, follows
//! until every entry is Ready (timing out with exit 3).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::follow::follow;
use super::open::{gitea_of, live_kube_of, load, stamp_of};
use super::state::EnvState;
use super::{EnvError, Settings, provider_cli, steps};
use crate::docker::DockerClient;
use crate::engine::{self, EngineStatus, Readiness};
use crate::ui::Progress;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub name: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub env: String,
    pub stamp: String,
    pub provider: String,
    pub engine: String,
    /// The engine release the env installed (the pinned one at the time), or the one it found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// `installed` by this env, or `found` on the cluster (used as it is, never upgraded or
    /// removed by kindling).
    pub engine_origin: &'static str,
    /// Where the env's engine objects (its source, root and entries) live: Flux's
    /// `flux-system`, or on a shared cluster the env's own namespace; Argo CD's `argocd`.
    pub engine_objects_namespace: String,
    /// The cluster's own cert-manager, used in place of the stamp's install (an existing
    /// cluster that ran one before the env).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<crate::cluster::cert_manager::ClusterCertManager>,
    /// The cluster add-ons (`crate::addons`), whose entries are among the entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addons: Vec<String>,
    /// Where the host reaches what the add-ons serve (HostK8s' `make status` lists them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addon_urls: Vec<AddonUrl>,
    /// Stacks added beside the stamp with `env up`, whose entries are among the entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<String>,
    /// Steps of `env create` not finished yet (a rerun of create completes them).
    pub unfinished_steps: Vec<String>,
    pub cluster: ComponentStatus,
    pub gitea: ComponentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<ComponentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The stamp's ingress hosts on the env's HTTPS port.
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciliation: Option<EngineStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The in-cluster route to Gitea pointed at an old address and was re-pointed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_repaired: Option<String>,
    pub ready: bool,
    /// Containers of the env that exist but do not run (`env stop`, or a Docker restart).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<String>,
    /// Reconciliation paused by `env suspend`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// How many of kindling's engine objects are paused now (`env suspend`'s, read from the
    /// cluster; HostK8s' `make status` counts suspended Flux objects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended_objects: Option<usize>,
    /// Pods that cannot run, and why (what HostK8s's `make status` users look for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing_pods: Vec<FailingPod>,
    /// The stamp's storage: where each directory lives and whether a claim holds its volume.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<StorageStatus>,
    /// What each entry runs (`crate::env::entry_objects`), for the entries that run anything.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<super::entry_objects::EntryObjects>,
    /// Entries whose live objects could not be compared with Git, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift_unchecked: Vec<String>,
    /// The idpbuilder packages' objects, as the engine reports them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<super::packages::PackageObjectStatus>,
}

/// An add-on's address on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddonUrl {
    pub addon: String,
    pub what: String,
    pub url: String,
}

/// The add-ons' addresses: the ingress on the env's ingress ports (and HostK8s' Gateway API
/// NodePorts on theirs), MetalLB's pool on the cluster network. Vault has none: kindling
/// reaches it through the API server's service proxy.
fn addon_urls(state: &EnvState) -> Vec<AddonUrl> {
    let mut urls = Vec::new();
    let has = |a: crate::addons::Addon| state.addons.iter().any(|n| n == a.name());
    let mut add = |addon: crate::addons::Addon, what: &str, url: String| {
        urls.push(AddonUrl {
            addon: addon.name().to_string(),
            what: what.to_string(),
            url,
        })
    };
    if has(crate::addons::Addon::Ingress) {
        add(
            crate::addons::Addon::Ingress,
            "ingress (HTTP)",
            format!("http://localhost:{}", state.ports.http),
        );
        add(
            crate::addons::Addon::Ingress,
            "ingress (HTTPS)",
            format!("https://localhost:{}", state.ports.https),
        );
        if let Some(gateway) = &state.ports.gateway {
            add(
                crate::addons::Addon::Ingress,
                "Gateway API NodePort (HTTP)",
                format!("http://localhost:{}", gateway.http),
            );
        }
    }
    if has(crate::addons::Addon::Metallb)
        && let Some(range) = state
            .cluster
            .as_ref()
            .and_then(|c| c.load_balancer_range.clone())
    {
        add(
            crate::addons::Addon::Metallb,
            "LoadBalancer addresses",
            range,
        );
    }
    urls
}

/// One storage directory of the stamp (`crate::env::storage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    pub name: String,
    /// The path in the nodes.
    pub path: String,
    pub host_path: std::path::PathBuf,
    pub volume: String,
    /// The PersistentVolume's phase (`Available`, `Bound`, `Released`), `Missing` when the
    /// cluster has none of that name, `Unknown` when it could not be read.
    pub phase: String,
    /// `NAMESPACE/NAME` of the claim bound to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
}

/// Each storage directory of `stamp` with its volume among `volumes` (`None`: not read).
pub fn storage_status(
    data_dir: &std::path::Path,
    env: &str,
    stamp: &crate::stamp::Stamp,
    volumes: Option<&[Value]>,
) -> Vec<StorageStatus> {
    stamp
        .storage
        .iter()
        .map(|d| {
            let volume = volumes.map(|all| {
                all.iter()
                    .find(|v| v["metadata"]["name"] == d.volume_name.as_str())
            });
            let phase = match volume {
                None => "Unknown".to_string(),
                Some(None) => "Missing".to_string(),
                Some(Some(v)) => v["status"]["phase"]
                    .as_str()
                    .unwrap_or("Pending")
                    .to_string(),
            };
            let claim = volume.flatten().and_then(|v| {
                let r = &v["spec"]["claimRef"];
                Some(format!(
                    "{}/{}",
                    r["namespace"].as_str()?,
                    r["name"].as_str()?
                ))
            });
            StorageStatus {
                name: d.name.clone(),
                path: d.path.clone(),
                host_path: super::storage::host_dir(data_dir, env, &d.path),
                volume: d.volume_name.clone(),
                phase,
                claim,
            }
        })
        .collect()
}

/// How long `env status` waits for the pod list.
const POD_LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// A pod that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailingPod {
    pub namespace: String,
    pub name: String,
    /// `CrashLoopBackOff`, `ImagePullBackOff`, `Unschedulable`, …
    pub reason: String,
    pub message: String,
}

/// The waiting reasons that mean a container cannot start (kubelet's, as
/// kubernetes/kubernetes pkg/kubelet/images and kuberuntime name them), as opposed to one
/// that is still being created.
const FAILING_WAIT_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The pods of a `kubectl get pods -A` list that cannot run: a container waiting for one of
/// [`FAILING_WAIT_REASONS`], a pod the scheduler cannot place (condition PodScheduled False),
/// or a failed one. Sorted by namespace and name.
pub fn failing_pods(pods: &[Value]) -> Vec<FailingPod> {
    let mut out = Vec::new();
    for pod in pods {
        let status = &pod["status"];
        let found = status["initContainerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(status["containerStatuses"].as_array().into_iter().flatten())
            .find_map(|c| {
                let waiting = &c["state"]["waiting"];
                let reason = waiting["reason"].as_str()?;
                FAILING_WAIT_REASONS.contains(&reason).then(|| {
                    (
                        reason.to_string(),
                        format!(
                            "{}: {}",
                            c["name"].as_str().unwrap_or_default(),
                            waiting["message"].as_str().unwrap_or_default()
                        )
                        .trim_end_matches(": ")
                        .to_string(),
                    )
                })
            })
            .or_else(|| {
                status["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
                    .map(|c| {
                        (
                            c["reason"].as_str().unwrap_or("Unschedulable").to_string(),
                            c["message"].as_str().unwrap_or_default().to_string(),
                        )
                    })
            })
            .or_else(|| {
                (status["phase"] == "Failed").then(|| {
                    (
                        status["reason"].as_str().unwrap_or("Failed").to_string(),
                        status["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
            });
        if let Some((reason, message)) = found {
            out.push(FailingPod {
                namespace: pod["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name: pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                reason,
                message,
            });
        }
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

async fn container_state(docker: Option<&DockerClient>, name: &str) -> String {
    match docker {
        Some(d) => d
            .state(name)
            .await
            .unwrap_or_else(|e| format!("unknown ({e})")),
        None => "unknown (Docker not reachable)".into(),
    }
}

pub async fn status(
    settings: &Settings,
    name: &str,
    wait: Option<Duration>,
    progress: &Progress,
) -> Result<StatusReport, EnvError> {
    let state = load(settings, name)?;
    let stamp = stamp_of(&settings.data_dir, &state)?;
    let parts = Parts::of(settings, &state).await?;
    let mut report = StatusReport {
        env: name.to_string(),
        stamp: state.stamp.clone(),
        provider: state.provider.name().into(),
        engine: state.engine.name().into(),
        engine_version: match &state.found_engine {
            Some(found) => Some(found.version.clone()),
            None => state.versions.get(state.engine.name()).cloned(),
        },
        engine_origin: match state.found_engine {
            Some(_) => "found",
            None => "installed",
        },
        engine_objects_namespace: crate::engine::objects_namespace(state.engine, &stamp)
            .to_string(),
        cert_manager: state.cluster_cert_manager.clone(),
        addons: state.addons.clone(),
        addon_urls: addon_urls(&state),
        stacks: state.stacks.iter().map(|s| s.name.clone()).collect(),
        unfinished_steps: steps::unfinished(&state)
            .into_iter()
            .map(str::to_string)
            .collect(),
        cluster: parts.cluster,
        gitea: parts.gitea,
        registry: parts.registry,
        commit: state.commit.clone(),
        urls: match state.provider.makes_the_cluster() {
            true => crate::stamp::manifests::ingress_hosts(&stamp)
                .into_iter()
                .map(|h| format!("https://{h}:{}", state.ports.https))
                .collect(),
            false => Vec::new(),
        },
        reconciliation: None,
        error: None,
        route_repaired: None,
        ready: false,
        stopped: Vec::new(),
        suspended: state.suspended,
        suspended_objects: None,
        failing_pods: Vec::new(),
        storage: storage_status(&settings.data_dir, name, &stamp, None),
        objects: Vec::new(),
        drift_unchecked: Vec::new(),
        packages: Vec::new(),
    };
    if let Some(docker) = &parts.docker {
        let stopped = super::power::stopped_containers(docker, &state).await?;
        if !stopped.is_empty() {
            report.error = Some(format!(
                "env {name} is stopped ({}): `kindling env start {name}` starts it again",
                stopped.join(", ")
            ));
            report.stopped = stopped;
            return Ok(report);
        }
    }
    if !state.is_done("engine") || parts.cluster_missing {
        report.error = Some("the engine is not installed yet".into());
        return Ok(report);
    }
    let (kube, repaired) = live_kube_of(&state, progress).await?;
    report.route_repaired = repaired;
    let result = match wait {
        Some(timeout) => {
            follow(&kube, state.engine, &stamp, timeout, progress, |s| {
                s.all_ready()
            })
            .await
        }
        None => engine::status(&kube, state.engine, &stamp)
            .await
            .map_err(EnvError::from),
    };
    // What cannot run says why, whatever the engine reports (a pod may crash in a ready
    // release); a cluster that cannot list pods, or not quickly, just shows none. Not after a
    // timed-out wait: the API may be the thing that hangs.
    if !matches!(result, Err(EnvError::TimedOut { .. }))
        && let Ok(Ok(pods)) =
            tokio::time::timeout(POD_LIST_TIMEOUT, kube.list("v1", "Pod", None)).await
    {
        // On a shared cluster, only the env's pods: the stamp's namespaces and its own.
        let pods: Vec<_> = match state.provider.makes_the_cluster() {
            true => pods,
            false => {
                let own = crate::gitea::in_cluster::namespace(&state.name);
                pods.into_iter()
                    .filter(|p| {
                        let ns = p["metadata"]["namespace"].as_str().unwrap_or_default();
                        ns == own
                            || stamp
                                .entries
                                .iter()
                                .any(|e| e.namespace.as_deref() == Some(ns))
                    })
                    .collect()
            }
        };
        report.failing_pods = failing_pods(&pods);
        if !stamp.storage.is_empty()
            && let Ok(Ok(volumes)) =
                tokio::time::timeout(POD_LIST_TIMEOUT, kube.list("v1", "PersistentVolume", None))
                    .await
        {
            report.storage = storage_status(&settings.data_dir, name, &stamp, Some(&volumes));
        }
        if let Ok(Ok(objects)) = tokio::time::timeout(
            POD_LIST_TIMEOUT,
            super::entry_objects::entry_objects(
                &kube,
                state.engine,
                &stamp,
                // On a cluster kindling did not make, its own ingress serves on the usual
                // ports, not on this machine's.
                if state.provider.makes_the_cluster() {
                    state.ports.http
                } else {
                    80
                },
                if state.provider.makes_the_cluster() {
                    state.ports.https
                } else {
                    443
                },
                state.ports.gateway.map(|g| g.http),
            ),
        )
        .await
        {
            report.objects = objects.into_iter().filter(|o| !o.is_empty()).collect();
        }
        if let Ok(Ok(paused)) = tokio::time::timeout(
            POD_LIST_TIMEOUT,
            super::suspend::suspended_objects(&kube, state.engine, &stamp),
        )
        .await
        {
            report.suspended_objects = Some(paused);
        }
    }
    if !state.packages.is_empty()
        && !matches!(result, Err(EnvError::TimedOut { .. }))
        && let Ok(gitea) = gitea_of(&state)
    {
        match tokio::time::timeout(
            POD_LIST_TIMEOUT,
            super::packages::status(
                &kube,
                &super::packages::PackageTarget::of(&state, name),
                &state.packages,
                &gitea,
            ),
        )
        .await
        {
            Ok(Ok(packages)) => report.packages = packages,
            Ok(Err(e)) => report.packages = unread_packages(&state.packages, &e.to_string()),
            Err(_) => {
                report.packages = unread_packages(&state.packages, "the API did not answer in time")
            }
        }
    }
    match result {
        Ok(mut s) => {
            // Does what runs still match Git? Asked of the Ready entries the engine is in
            // charge of (an entry in progress is not drift); a check that cannot run says so.
            let in_charge: Vec<String> = s
                .entries
                .iter()
                .filter(|e| e.readiness == Readiness::Ready && !e.suspended && !e.applied_directly)
                .map(|e| e.name.clone())
                .collect();
            let checked = match gitea_of(&state) {
                Ok(gitea) => tokio::time::timeout(
                    POD_LIST_TIMEOUT,
                    super::diff::drift_marks(&kube, state.engine, &stamp, &gitea, &in_charge),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(EnvError::Preflight("the comparison took too long".into()))
                }),
                Err(e) => Err(e),
            };
            match checked {
                Ok(marks) => {
                    for (entry, objects) in marks.drifted {
                        if let Some(e) = s.entries.iter_mut().find(|e| e.name == entry) {
                            e.message = format!(
                                "drifted from Git: {}; `kindling env diff {name} {entry}` shows how, `kindling env sync {name}` puts Git's back",
                                objects.join(", ")
                            );
                            e.drifted = objects;
                        }
                    }
                    report.drift_unchecked.extend(marks.unchecked);
                }
                Err(e) => report
                    .drift_unchecked
                    .push(format!("drift not checked: {e}")),
            }
            report.ready =
                s.all_ready() && s.gates.is_empty() && report.unfinished_steps.is_empty();
            report.reconciliation = Some(s);
        }
        Err(e @ EnvError::TimedOut { .. }) => return Err(e),
        Err(e) => report.error = Some(e.to_string()),
    }
    Ok(report)
}

/// Each package, saying why its objects could not be read.
fn unread_packages(
    dirs: &[std::path::PathBuf],
    why: &str,
) -> Vec<super::packages::PackageObjectStatus> {
    dirs.iter()
        .map(|d| super::packages::PackageObjectStatus {
            package: d.clone(),
            object: String::new(),
            state: format!("not read: {why}"),
            generated: Vec::new(),
        })
        .collect()
}

/// The env's cluster, Gitea and registry as Docker and the provider see them now.
struct Parts {
    /// The engine the parts were read from, when it answered (reused for what else is asked).
    docker: Option<DockerClient>,
    cluster: ComponentStatus,
    gitea: ComponentStatus,
    registry: Option<ComponentStatus>,
    /// The provider says the cluster is gone.
    cluster_missing: bool,
}

impl Parts {
    async fn of(settings: &Settings, state: &EnvState) -> Result<Parts, EnvError> {
        if !state.provider.makes_the_cluster() {
            return Self::of_existing(state).await;
        }
        let name = state.name.as_str();
        let docker = DockerClient::connect().await.ok();
        let cluster_name = crate::cluster::cluster_name(name);
        let (provider, s, env_name, cn) = (
            state.provider,
            settings.clone(),
            name.to_string(),
            cluster_name.clone(),
        );
        let exists = tokio::task::spawn_blocking(move || {
            provider_cli(provider, &s, &env_name)
                .and_then(|p| p.exists(&cn).map_err(EnvError::from))
        })
        .await
        .map_err(steps::join_error)?;
        let cluster = ComponentStatus {
            name: cluster_name,
            state: match &exists {
                Ok(true) => "running".into(),
                Ok(false) => "missing".into(),
                Err(e) => format!(
                    "unknown ({})",
                    e.to_string().lines().next().unwrap_or_default()
                ),
            },
            url: state.cluster.as_ref().map(|c| c.context.clone()),
        };
        let gitea_container = crate::gitea::container_name(name);
        let gitea = match &state.gitea {
            Some(g) if g.external => ComponentStatus {
                name: "external".into(),
                state: "external".into(),
                url: Some(g.url.clone()),
            },
            other => ComponentStatus {
                state: container_state(docker.as_ref(), &gitea_container).await,
                name: gitea_container,
                url: other.as_ref().map(|g| g.url.clone()),
            },
        };
        let registry_container = crate::registry::registry_container(name);
        let registry = match state.ports.registry {
            Some(port) => Some(ComponentStatus {
                state: container_state(docker.as_ref(), &registry_container).await,
                name: registry_container,
                url: Some(format!("localhost:{port}")),
            }),
            None => None,
        };
        Ok(Parts {
            docker,
            cluster,
            gitea,
            registry,
            cluster_missing: exists.as_ref().is_ok_and(|e| !e),
        })
    }

    /// A cluster kindling did not make: whether its API answers, and the Gitea Deployment
    /// there (or the external Gitea).
    async fn of_existing(state: &EnvState) -> Result<Parts, EnvError> {
        let context = state.cluster.as_ref().map(|c| c.context.clone());
        let kube = super::open::kube_of(state).await;
        let namespace = crate::gitea::in_cluster::namespace(&state.name);
        let gitea_deployment = match &kube {
            Ok(kube) => kube
                .get(
                    "apps/v1",
                    "Deployment",
                    Some(&namespace),
                    crate::gitea::in_cluster::NAME,
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let cluster_state = match &gitea_deployment {
            Ok(_) => "existing".to_string(),
            Err(e) => format!("unknown ({})", e.lines().next().unwrap_or_default()),
        };
        let gitea = match &state.gitea {
            Some(g) if g.external => ComponentStatus {
                name: "external".into(),
                state: "external".into(),
                url: Some(g.url.clone()),
            },
            _ => ComponentStatus {
                name: format!("{namespace}/{}", crate::gitea::in_cluster::NAME),
                state: match &gitea_deployment {
                    Ok(Some(d)) if d["status"]["readyReplicas"].as_i64().unwrap_or(0) > 0 => {
                        "running".into()
                    }
                    Ok(Some(_)) => "not ready".into(),
                    Ok(None) => "missing".into(),
                    Err(_) => "unknown".into(),
                },
                url: Some(format!(
                    "port-forward to {namespace}/{}",
                    crate::gitea::in_cluster::NAME
                )),
            },
        };
        Ok(Parts {
            docker: None,
            cluster: ComponentStatus {
                name: context.clone().unwrap_or_default(),
                state: cluster_state,
                url: context,
            },
            gitea,
            registry: None,
            cluster_missing: false,
        })
    }
}
