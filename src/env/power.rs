//! `env stop` and `env start`: every container of the env (the cluster's nodes, Gitea, the
//! registry) stopped or started again, the shared caches left running. After a start, as
//! after a reboot, the env heals itself: the API answers on the same host port, the nodes turn
//! Ready, the in-cluster route to Gitea is re-pointed at its new address, the registry is on
//! the cluster's network again, and the engine is asked to reconcile.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::open::{kube_of, load_locked, stamp_of};
use super::state::EnvState;
use super::{EnvError, Settings};
use crate::cluster::Provider;
use crate::docker::DockerClient;
use crate::ui::Progress;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PowerReport {
    pub env: String,
    /// The containers this command stopped or started (those already so are not listed).
    pub containers: Vec<String>,
    /// What `env start` re-pointed (the Gitea route), when it had to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_repaired: Option<String>,
    pub duration_ms: u64,
}

/// The label each provider puts on its node containers, and the role label beside it
/// (kubernetes-sigs/kind v0.33.0 pkg/cluster/internal/providers/docker/constants.go:
/// `io.x-k8s.kind.cluster`, `io.x-k8s.kind.role`; k3d-io/k3d v5.9.0 pkg/types/types.go:
/// `k3d.cluster`, `k3d.role`).
fn node_labels(provider: Provider) -> (&'static str, &'static str) {
    match provider {
        Provider::Kind => ("io.x-k8s.kind.cluster", "io.x-k8s.kind.role"),
        Provider::K3d => ("k3d.cluster", "k3d.role"),
        // No node of an existing cluster is a container kindling made: a label no container
        // carries finds none.
        Provider::Existing => (
            "dev.kindling.existing-cluster",
            "dev.kindling.existing-role",
        ),
    }
}

/// Roles of the containers that run no kubelet (kind's and k3d's load balancers).
const BALANCER_ROLES: [&str; 2] = ["external-load-balancer", "loadbalancer"];

/// The env's node containers that run a kubelet (and so a containerd with images).
pub async fn kubelet_nodes(
    docker: &DockerClient,
    state: &EnvState,
) -> Result<Vec<String>, EnvError> {
    let cluster = crate::cluster::cluster_name(&state.name);
    let (label, role) = node_labels(state.provider);
    Ok(docker
        .containers_with_labels(&format!("{label}={cluster}"), role)
        .await?
        .into_iter()
        .filter(|(_, role)| !BALANCER_ROLES.contains(&role.as_str()))
        .map(|(name, _)| name)
        .collect())
}

/// What the containerd of each of the env's kubelet nodes lists (`crictl images -o json`, the
/// CRI ListImagesResponse as kubernetes-sigs/cri-tools prints it): the JSON, or why `crictl`
/// failed there (a node image without it, say).
pub async fn node_image_listings(
    docker: &DockerClient,
    state: &EnvState,
) -> Result<Vec<(String, Result<String, String>)>, EnvError> {
    let mut listings = Vec::new();
    for node in kubelet_nodes(docker, state).await? {
        let listed = docker
            .exec(&node, &["crictl", "images", "-o", "json"])
            .await?;
        let listing = if listed.exit_code == 0 {
            Ok(listed.stdout)
        } else {
            Err(listed.stderr.trim().to_string())
        };
        listings.push((node, listing));
    }
    Ok(listings)
}

/// The env's containers in start order: registry and Gitea first (the nodes pull from one and
/// the engine clones from the other), then the nodes; and how many of the nodes run a kubelet.
async fn containers(
    docker: &DockerClient,
    state: &EnvState,
) -> Result<(Vec<String>, usize), EnvError> {
    // A profile without a local registry has no such container: stopping or starting it
    // then does nothing.
    let mut names = vec![crate::registry::registry_container(&state.name)];
    if state.gitea.as_ref().is_some_and(|g| !g.external) {
        names.push(crate::gitea::container_name(&state.name));
    }
    let cluster = crate::cluster::cluster_name(&state.name);
    let (label, role) = node_labels(state.provider);
    let nodes = docker
        .containers_with_labels(&format!("{label}={cluster}"), role)
        .await?;
    let kubelets = nodes
        .iter()
        .filter(|(_, role)| !BALANCER_ROLES.contains(&role.as_str()))
        .count();
    names.extend(nodes.into_iter().map(|(name, _)| name));
    Ok((names, kubelets))
}

/// The env's containers that exist but do not run: after `env stop`, a Docker restart that
/// did not bring them back, or a half-finished start.
pub async fn stopped_containers(
    docker: &DockerClient,
    state: &EnvState,
) -> Result<Vec<String>, EnvError> {
    let (names, _) = containers(docker, state).await?;
    let mut stopped = Vec::new();
    for container in names {
        // A container that is not there is another story (`env create` makes it again).
        if let Ok(s) = docker.state(&container).await
            && s != "running"
        {
            stopped.push(container);
        }
    }
    Ok(stopped)
}

/// An existing cluster is not kindling's to stop or start.
fn refuse_on_existing(state: &EnvState, verb: &str) -> Result<(), EnvError> {
    if state.provider.makes_the_cluster() {
        return Ok(());
    }
    Err(EnvError::Preflight(format!(
        "env {} runs on an existing cluster (context {}), which kindling did not make and does not {verb}\nhelp: `kindling env suspend {}` pauses its reconciliation instead",
        state.name,
        state
            .existing
            .as_ref()
            .map(|e| e.context.as_str())
            .unwrap_or("?"),
        state.name
    )))
}

pub async fn stop(
    settings: &Settings,
    name: &str,
    progress: &Progress,
) -> Result<PowerReport, EnvError> {
    let started = Instant::now();
    let (_lock, state) = load_locked(settings, name, "env stop")?;
    refuse_on_existing(&state, "stop")?;
    let docker = DockerClient::connect().await?;
    let (mut names, _) = containers(&docker, &state).await?;
    // Nodes first, so nothing in the cluster goes on pulling or cloning from what stopped.
    names.reverse();
    let mut stopped = Vec::new();
    for container in names {
        progress.detail(&format!("stop: {container}"));
        if docker
            .stop_container(&container, Duration::from_secs(10))
            .await?
        {
            stopped.push(container);
        }
    }
    // Nothing to reach while it is stopped; `env start` opens it again.
    if crate::docker::remote::stop(&settings.env_dir(name)) {
        progress.detail("stop: the env's SSH tunnel");
    }
    Ok(PowerReport {
        env: name.to_string(),
        containers: stopped,
        route_repaired: None,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

pub async fn start(
    settings: &Settings,
    name: &str,
    progress: &Progress,
) -> Result<PowerReport, EnvError> {
    let started = Instant::now();
    let (_lock, state) = load_locked(settings, name, "env start")?;
    refuse_on_existing(&state, "start")?;
    let docker = DockerClient::connect().await?;
    let (names, kubelets) = containers(&docker, &state).await?;
    if kubelets == 0 {
        return Err(EnvError::Preflight(format!(
            "env {name} has no cluster nodes left (they were removed, not stopped)\nhelp: `kindling env create {name}` makes the missing parts again"
        )));
    }
    // kind clusters of several nodes often do not come back from a stop or a reboot: their
    // nodes' addresses change and kubeadm's certificates and kubeconfigs name the old ones
    // (kubernetes-sigs/kind#148). Said before waiting, so a timeout below is understood.
    if state.provider == Provider::Kind && kubelets > 1 {
        progress.warn(&format!(
            "kind clusters with several nodes may not come back after a stop (kubernetes-sigs/kind#148); if the nodes stay NotReady, `kindling env delete {name}` and create it again"
        ));
    }
    let mut restarted = Vec::new();
    for container in &names {
        progress.detail(&format!("start: {container}"));
        if docker.start_container(container).await? {
            restarted.push(container.clone());
        }
    }
    // Docker may hand the registry another address; the nodes reach it by name on the
    // cluster's network, which a network rebuilt behind it would not keep.
    let registry = crate::registry::registry_container(name);
    if let Some(cluster) = &state.cluster
        && restarted.contains(&registry)
    {
        docker.connect_network(&registry, &cluster.network).await?;
    }
    let kube = kube_of(&state).await?;
    let t = Instant::now();
    progress.start("nodes", &format!("{kubelets} node(s) Ready"));
    kube.wait_nodes_ready(kubelets, settings.step_timeout)
        .await?;
    progress.done("nodes", t.elapsed(), "Ready");
    let route_repaired = super::route::repair_gitea_route(&state, &kube).await?;
    if let Some(what) = &route_repaired {
        progress.info(what);
    }
    // A held or suspended env stays so: a reconcile request would sync Argo CD's root.
    if state.is_done("bootstrap") && !state.hold && !state.suspended {
        let stamp = stamp_of(&settings.data_dir, &state)?;
        crate::engine::request_reconcile(
            &kube,
            state.engine,
            &stamp,
            time::OffsetDateTime::now_utc(),
        )
        .await?;
        // Vault in dev mode comes back from a restart empty.
        super::vault::seed_with_progress(&kube, &stamp, settings, name, progress).await?;
    }
    Ok(PowerReport {
        env: name.to_string(),
        containers: restarted,
        route_repaired,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}
