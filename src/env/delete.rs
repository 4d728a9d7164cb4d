//! `env delete`: the cluster through its provider, every Docker object labelled for the env,
//! and its state (kubeconfig, intermediate CA, generated secrets). Safe on half-made envs,
//! orphans, and when there is nothing left.

use std::time::Instant;

use serde::Serialize;

use super::state::EnvState;
use super::{EnvError, Settings, provider_cli, steps};
use crate::docker::{DockerClient, SweepReport};
use crate::lock::FileLock;
use crate::ui::Progress;

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteReport {
    pub env: String,
    pub cluster: Option<String>,
    pub removed: SweepReport,
    pub state_removed: bool,
    /// The env's storage directories, kept for its next create (`env::storage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_kept: Option<std::path::PathBuf>,
    /// The same, removed by `--purge`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_removed: Option<std::path::PathBuf>,
    /// On a cluster kindling did not make: the objects the env had applied there, removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_objects: Vec<String>,
    /// The engine that was on that cluster first, left as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_kept: Option<String>,
}

impl DeleteReport {
    pub fn nothing(&self) -> bool {
        self.cluster.is_none()
            && self.cluster_objects.is_empty()
            && self.removed.is_empty()
            && !self.state_removed
            && self.storage_removed.is_none()
    }
}

/// `purge`: remove the env's storage directories too; without it they are kept for the next
/// create of the env.
pub async fn delete(
    settings: &Settings,
    name: &str,
    purge: bool,
    progress: &Progress,
) -> Result<DeleteReport, EnvError> {
    super::validate_name(name)?;
    let env_dir = settings.env_dir(name);
    let state = EnvState::load(&env_dir)?;
    let lock = if env_dir.exists() {
        Some(FileLock::env(&env_dir, "env delete", settings.lock_wait)?)
    } else {
        None
    };
    let mut report = DeleteReport {
        env: name.to_string(),
        ..Default::default()
    };
    if let Some(s) = state.as_ref().filter(|s| !s.provider.makes_the_cluster()) {
        let t = Instant::now();
        let context = s
            .existing
            .as_ref()
            .map(|e| e.context.clone())
            .unwrap_or_default();
        progress.start(
            "cluster",
            &format!(
                "objects labelled {}={name} on context {context}",
                crate::ENV_LABEL
            ),
        );
        let left = match super::leave::leave(s, &env_dir, settings.step_timeout, progress).await {
            Ok(left) => left,
            Err(e) => {
                progress.fail("cluster", &e.to_string());
                return Err(e);
            }
        };
        let kept = left
            .engine_kept
            .as_ref()
            .map(|e| format!("; {e} kept (it was there first)"))
            .unwrap_or_default();
        progress.done(
            "cluster",
            t.elapsed(),
            &format!(
                "{} objects removed, the cluster kept{kept}",
                left.removed.len()
            ),
        );
        report.cluster_objects = left.removed;
        report.engine_kept = left.engine_kept;
        report.state_removed = remove_env_dir(&env_dir, name, lock)?;
        return Ok(report);
    }
    if crate::docker::remote::stop(&env_dir) {
        progress.detail("delete: the env's SSH tunnel ended");
    }
    let docker = match DockerClient::connect().await {
        Ok(docker) => docker,
        Err(e) => {
            progress.fail("docker", &e.to_string());
            return Err(e.into());
        }
    };
    report.removed.containers = clear_the_cluster_network(&docker, name, state.as_ref()).await?;
    // Purged while the nodes, which may own what is in the directories, are still there.
    if purge {
        let node = match &state {
            Some(s) => super::power::kubelet_nodes(&docker, s)
                .await?
                .into_iter()
                .next(),
            None => None,
        };
        let mounted = state
            .as_ref()
            .map(|s| s.storage.clone())
            .unwrap_or_default();
        // A purge that cannot finish (files a container made under another user, nodes
        // stopped) leaves the data, says why, and the rest of the delete goes on.
        match super::storage::purge(&docker, &settings.data_dir, name, node.as_deref(), &mounted)
            .await
        {
            Ok(removed) => report.storage_removed = removed,
            Err(e) => progress.warn(&e.to_string()),
        }
    }
    let t = Instant::now();
    let cluster_name = crate::cluster::cluster_name(name);
    progress.start("cluster", &cluster_name);
    report.cluster = delete_cluster(&docker, settings, name, state.as_ref()).await?;
    let deleted = if report.cluster.is_some() {
        "deleted"
    } else {
        "none"
    };
    progress.done("cluster", t.elapsed(), deleted);
    // Then everything else labelled for the env (volumes, its network, what a crash left).
    let t = Instant::now();
    progress.start(
        "docker",
        &format!("objects labelled {}={name}", crate::ENV_LABEL),
    );
    let swept = docker.sweep(name, state.is_some()).await?;
    let removed = &mut report.removed;
    removed.containers.extend(swept.containers);
    removed.volumes.extend(swept.volumes);
    removed.networks.extend(swept.networks);
    let counts = crate::ui::objects(
        removed.containers.len(),
        removed.volumes.len(),
        removed.networks.len(),
    );
    progress.done("docker", t.elapsed(), &counts);
    report.state_removed = remove_env_dir(&env_dir, name, lock)?;
    let kept = super::storage::host_root(&settings.data_dir, name);
    if kept.exists() {
        report.storage_kept = Some(kept);
    }
    Ok(report)
}

/// The directory is moved aside while the lock is still held, then removed: a command waiting
/// for the lock re-creates the lock file as it polls, and would otherwise make it again inside
/// the directory being removed (which then cannot be removed). Moved, the waiter finds no env.
/// Whether there was a directory.
fn remove_env_dir(
    env_dir: &std::path::Path,
    name: &str,
    lock: Option<FileLock>,
) -> Result<bool, EnvError> {
    if !env_dir.exists() {
        return Ok(false);
    }
    let aside = env_dir.with_file_name(format!(".{name}.deleted-{}", std::process::id()));
    let state_error = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| EnvError::State {
            path,
            reason: e.to_string(),
        }
    };
    std::fs::rename(env_dir, &aside).map_err(state_error(env_dir))?;
    drop(lock);
    std::fs::remove_dir_all(&aside).map_err(state_error(&aside))?;
    Ok(true)
}

/// Gitea and the registry go before the cluster: attached to its network (k3d's own), they
/// would keep the provider from removing it. So do shared caches, which are only detached.
/// The cluster's nodes may carry the env label too (k3d): they are the provider's to remove.
/// Returns the containers removed.
async fn clear_the_cluster_network(
    docker: &DockerClient,
    name: &str,
    state: Option<&EnvState>,
) -> Result<Vec<String>, EnvError> {
    let mut removed = Vec::new();
    // Only containers kindling made for the env: one of that name without the env's label
    // (planted) is never removed, nor, for an env of this data dir, one another data dir made.
    let mut ours = crate::docker::env_labels(name);
    if state.is_none() {
        ours.remove(crate::docker::DATA_LABEL);
    }
    for container in [
        crate::gitea::container_name(name),
        crate::registry::registry_container(name),
    ] {
        if docker
            .remove_container_if_labelled(&container, &ours)
            .await?
        {
            removed.push(container);
        }
    }
    // The cluster's own network: from the state, or for an orphan (no state) the one k3d or
    // kind would have been given. The shared `kind` network (envs made before each had its
    // own) stays attached.
    let cluster_name = crate::cluster::cluster_name(name);
    let networks = match state.and_then(|s| s.cluster.as_ref()) {
        Some(c) => vec![c.network.clone()],
        None => vec![format!("k3d-{cluster_name}"), cluster_name],
    };
    for network in networks {
        if network != "kind" && docker.network_exists(&network).await? {
            for cache in docker
                .containers_labelled(crate::docker::CACHE_LABEL)
                .await?
            {
                docker.disconnect_network(&cache, &network).await?;
            }
        }
    }
    Ok(removed)
}

/// Deletes the env's cluster through its provider; `Some("PROVIDER NAME")` when there was one.
/// Without state (an orphan), the cluster may be of either provider.
async fn delete_cluster(
    docker: &DockerClient,
    settings: &Settings,
    name: &str,
    state: Option<&EnvState>,
) -> Result<Option<String>, EnvError> {
    let cluster_name = crate::cluster::cluster_name(name);
    // An env whose create never asked for its cluster (it stopped before, or found one of that
    // name that another data dir made and refused it) has no cluster to delete: one of that
    // name is someone else's.
    if let Some(s) = state
        && s.cluster.is_none()
        && !s.cluster_requested
    {
        return Ok(None);
    }
    let providers = match state {
        Some(s) => vec![s.provider],
        None => vec![
            crate::cluster::Provider::Kind,
            crate::cluster::Provider::K3d,
        ],
    };
    let orphan = state.is_none();
    let mut deleted_one = None;
    for provider in providers {
        // kind and k3d know their clusters by their node containers' labels alone
        // (kubernetes-sigs/kind v0.33.0 pkg/cluster/internal/providers/docker/provider.go
        // ListClusters; k3d-io/k3d v5.9.0 `k3d.cluster`): with no such container there is no
        // cluster, and the CLI is neither looked up nor downloaded (a create that failed before
        // its cluster step, on a host that cannot download kind, is still deletable at once).
        let label = match provider {
            crate::cluster::Provider::Kind => format!("io.x-k8s.kind.cluster={cluster_name}"),
            crate::cluster::Provider::K3d => format!("k3d.cluster={cluster_name}"),
            // Never removed by kindling (`delete_existing`).
            crate::cluster::Provider::Existing => continue,
        };
        if docker.containers_labelled(&label).await?.is_empty() {
            continue;
        }
        let s = settings.clone();
        let n = name.to_string();
        let cn = cluster_name.clone();
        let deleted = tokio::task::spawn_blocking(move || {
            let cli = match provider_cli(provider, &s, &n) {
                Ok(cli) => cli,
                // No CLI for a provider the env never used: nothing of it to delete.
                Err(_) if orphan => return Ok(false),
                Err(e) => return Err(e),
            };
            if cli.exists(&cn)? {
                // When the deleted cluster's context was the current one, kind leaves no
                // current context (kubernetes-sigs/kind v0.33.0 .../kubeconfig/remove.go) but
                // k3d picks another one at random (k3d-io/k3d v5.9.0 pkg/client/kubeconfig.go
                // KubeconfigRemoveCluster): leave none, as kind does, rather than a cluster
                // the user never chose.
                let merge = crate::cluster::user_kubeconfig::default_merge_path();
                let was_current = merge.as_deref().is_some_and(|p| {
                    crate::cluster::user_kubeconfig::current_context(p).as_deref()
                        == Some(cli.context(&cn).as_str())
                });
                cli.delete(&cn)?;
                if was_current
                    && provider == crate::cluster::Provider::K3d
                    && let Some(path) = merge.as_deref()
                    && crate::cluster::user_kubeconfig::current_context(path).is_some()
                {
                    let _ = crate::cluster::user_kubeconfig::set_current_context(path, None);
                }
                return Ok(true);
            }
            Ok(false)
        })
        .await
        .map_err(steps::join_error)??;
        if deleted {
            deleted_one = Some(format!("{} {cluster_name}", provider.name()));
        }
    }
    Ok(deleted_one)
}
