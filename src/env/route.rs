//! The in-cluster route to an env's Gitea container: a Service and an EndpointSlice holding
//! the container's address on the cluster's network. Docker may hand the container another
//! address when it starts again (a Docker restart, a reboot, `docker restart`), and the slice
//! would go on naming the old one, so every command that works on a live env checks it first
//! and re-points it.

use std::time::Duration;

use super::EnvError;
use super::state::EnvState;
use crate::docker::DockerClient;
use crate::gitea;
use crate::kube::{ApplyOptions, KubeClient};

/// The env's Gitea container attached to the cluster's `network` (already attached is fine;
/// a network rebuilt behind the container does not keep it), and its address there.
pub async fn gitea_address(
    docker: &DockerClient,
    env: &str,
    network: &str,
) -> Result<String, EnvError> {
    let container = gitea::container_name(env);
    docker.connect_network(&container, network).await?;
    docker
        .container_ip(&container, network)
        .await?
        .ok_or_else(|| {
            EnvError::Preflight(format!(
                "{container} has no address on network {network}\nhelp: is it running? `kindling env create {env}` starts it again"
            ))
        })
}

/// Re-points the route when Gitea's address changed; says what it did, or `None` when the
/// route was right (or the env has no Gitea container of its own).
pub async fn repair_gitea_route(
    state: &EnvState,
    kube: &KubeClient,
) -> Result<Option<String>, EnvError> {
    let (Some(g), Some(cluster)) = (&state.gitea, &state.cluster) else {
        return Ok(None);
    };
    // An external Gitea, or one in the cluster behind its own Service, has no route to mend.
    if g.external || g.in_cluster {
        return Ok(None);
    }
    let docker = DockerClient::connect().await?;
    let ip = gitea_address(&docker, &state.name, &cluster.network).await?;
    let slice = kube
        .get(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some(gitea::SERVICE_NAMESPACE),
            &gitea::slice_name(),
        )
        .await?;
    let routed = slice
        .as_ref()
        .and_then(|s| s["endpoints"][0]["addresses"][0].as_str())
        .map(str::to_string);
    if routed.as_deref() == Some(ip.as_str()) {
        return Ok(None);
    }
    kube.apply_objects(
        &gitea::service_objects(&ip),
        &ApplyOptions::new(Duration::from_secs(30)),
    )
    .await?;
    Ok(Some(match routed {
        Some(old) => format!(
            "Gitea moved from {old} to {ip} on {}; the in-cluster route now points at it",
            cluster.network
        ),
        None => format!(
            "the in-cluster route to Gitea was missing; it now points at {ip} on {}",
            cluster.network
        ),
    }))
}
