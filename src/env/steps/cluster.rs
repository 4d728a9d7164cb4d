//! The kind or k3d cluster through its CLI, its kubeconfig, and its nodes Ready.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step, join_error};
use crate::cluster;
use crate::env::EnvError;
use crate::env::state::{ClusterState, EnvState};

pub struct Cluster;

impl Step for Cluster {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn line(&self, ctx: &Ctx<'_>) -> String {
        match &ctx.opts.existing {
            Some(existing) => format!("existing cluster, context {}", existing.context),
            None => format!(
                "{} cluster {}",
                ctx.resolved.provider.name(),
                ctx.resolved.name
            ),
        }
    }

    fn skip<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
        Box::pin(async move {
            // An existing cluster is recorded again every run (preflight checked it answers).
            if !ctx.resolved.provider.makes_the_cluster() {
                return None;
            }
            let recorded = ctx.state().cluster.is_some();
            let exists = recorded
                && ctx
                    .provider()
                    .is_ok_and(|p| p.exists(&ctx.resolved.name).unwrap_or(false));
            ctx.made_and_present(self.name(), exists)
                .then(|| "exists".to_string())
        })
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            if let Some(existing) = &ctx.opts.existing {
                ctx.state().cluster = Some(ClusterState {
                    name: existing.context.clone(),
                    context: existing.context.clone(),
                    kubeconfig: existing.kubeconfig.clone(),
                    network: String::new(),
                    load_balancer_range: None,
                });
                return Ok(format!(
                    "context {} of {}, not made by kindling",
                    existing.context,
                    existing.kubeconfig.display()
                ));
            }
            let mut resolved = ctx.resolved.clone();
            // The user's proxy goes on to the nodes (kind through its own environment, k3d
            // through its config).
            resolved.proxy = cluster::proxy::ProxySettings::from_env();
            let node_env = match resolved.provider {
                cluster::Provider::Kind => cluster::node_proxy_variables(&resolved, ctx.env()),
                cluster::Provider::K3d | cluster::Provider::Existing => Vec::new(),
            };
            let provider = ctx.provider()?;
            let context = provider.context(&resolved.name);
            let config = cluster::render_config(&resolved, ctx.env());
            ctx.progress.detail(&format!(
                "cluster: {} create {} with {}",
                resolved.provider.name(),
                resolved.name,
                ctx.env_dir
                    .join(format!("{}-config.yaml", resolved.provider.name()))
                    .display()
            ));
            let name = resolved.name.clone();
            let dir = ctx.env_dir.clone();
            let cli = provider.clone();
            let patience = ctx.settings.step_timeout;
            // A cluster of this name that this data dir never asked for (another user's or
            // another CI job's env of the same name, or one made by hand) is not taken over.
            let probe = provider.clone();
            let probed = name.clone();
            let exists = tokio::task::spawn_blocking(move || probe.exists(&probed))
                .await
                .map_err(join_error)??;
            let ours = {
                let mut state = ctx.state();
                let ours = state.cluster.is_some() || state.cluster_requested;
                if !exists {
                    state.cluster_requested = true;
                    // The nodes about to be made mount this stamp's storage, whatever an
                    // earlier cluster of the env mounted.
                    state.storage = resolved
                        .storage
                        .iter()
                        .map(|m| m.node_path.clone())
                        .collect();
                }
                ours
            };
            if exists && !ours {
                return Err(EnvError::Preflight(format!(
                    "{} cluster {name} exists, but this data dir did not make it (another user's or CI job's env of the same name, or a cluster made by hand); kindling does not take it over\nhelp: pick another env name, or use the data dir that made it (KINDLING_DATA_DIR)",
                    resolved.provider.name()
                )));
            }
            if !exists {
                crate::env::storage::make_host_dirs(&resolved.storage, &ctx.stamp.storage)?;
                ctx.save()?;
                // kind puts the cluster on the env's own network, made (labelled) here first.
                if resolved.provider == cluster::Provider::Kind {
                    ctx.env_network().await?;
                }
            }
            // kind always makes its context current (it has no flag against it, kubernetes-sigs/
            // kind v0.33.0 pkg/cluster/internal/kubeconfig/internal/kubeconfig/merge.go); with
            // --no-switch-context the current one is put back. k3d is told in its config.
            let keep_current = (!resolved.switch_context
                && resolved.provider == cluster::Provider::Kind)
                .then(cluster::user_kubeconfig::default_merge_path)
                .flatten()
                .map(|path| {
                    let current = cluster::user_kubeconfig::current_context(&path);
                    (path, current)
                });
            let (created, kubeconfig) = tokio::task::spawn_blocking(move || {
                let exists = cli.exists(&name)?;
                if !exists {
                    cli.create(&name, &config, &node_env)?;
                    if let Some((path, before)) = &keep_current
                        && cluster::user_kubeconfig::current_context(path) != *before
                    {
                        cluster::user_kubeconfig::set_current_context(path, before.as_deref())
                            .map_err(|e| {
                                EnvError::Preflight(format!(
                                    "cannot put back the current context of {}: {e}",
                                    path.display()
                                ))
                            })?;
                    }
                    let kubeconfig = cluster::provider::write_kubeconfig(&*cli, &name, &dir)?;
                    return Ok::<_, EnvError>((true, kubeconfig));
                }
                let kubeconfig = kubeconfig_of_existing(&*cli, &name, &dir, patience)?;
                Ok((false, kubeconfig))
            })
            .await
            .map_err(join_error)??;
            cluster::wait_ready(&kubeconfig, &context, &resolved, ctx.settings.step_timeout)
                .await?;
            let network = provider.docker_network(&resolved.name);
            let load_balancer_range = load_balancer_range(&network).await;
            let mut state = ctx.state();
            state.cluster = Some(ClusterState {
                name: resolved.name.clone(),
                context,
                kubeconfig,
                network,
                load_balancer_range,
            });
            // On a remote engine, the API server's port joins the tunnel.
            if let Some(started) = crate::env::open::tunnel(&state, &ctx.env_dir)? {
                ctx.progress.detail(&started);
            }
            if created {
                // A new cluster has no engine yet, whatever an earlier run recorded.
                state.forget("engine");
            }
            Ok(if created {
                "created, nodes Ready"
            } else {
                "found, nodes Ready"
            }
            .to_string())
        })
    }
}

/// The kubeconfig of a cluster this run found rather than made. The nodes exist from the
/// first seconds of a kind or k3d create, the kubeconfig only once the control plane is up
/// (kind reads the node's admin.conf, kubernetes-sigs/kind v0.33.0
/// pkg/cluster/internal/kubeconfig/kubeconfig.go). A run killed mid-create leaves its kind
/// running in its own process group; the rerun waits for it, up to the step timeout, and
/// then says what to do with a cluster that never finished.
fn kubeconfig_of_existing(
    cli: &dyn cluster::provider::ClusterProvider,
    name: &str,
    dir: &std::path::Path,
    patience: std::time::Duration,
) -> Result<std::path::PathBuf, EnvError> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match cluster::provider::write_kubeconfig(cli, name, dir) {
            Ok(path) => return Ok(path),
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            Err(e) => {
                return Err(EnvError::Preflight(format!(
                    "cluster {name} exists but gave no kubeconfig within {}s: {e}\nhelp: an earlier create of it may have been stopped part way; `kindling env delete` the env and create it again",
                    patience.as_secs()
                )));
            }
        }
    }
}

/// The metallb add-on's pool on `network` (`crate::addons::metallb::pool_range` of its IPv4
/// subnet); None when Docker cannot describe the network or its subnet holds no pool.
pub async fn load_balancer_range(network: &str) -> Option<String> {
    let docker = crate::docker::DockerClient::connect().await.ok()?;
    let subnet = docker.network_ipv4_subnet(network).await.ok().flatten()?;
    crate::addons::metallb::pool_range(&subnet)
}

/// Records the cluster's pool in an env that has none yet (one made before kindling recorded
/// it, or whose cluster step a rerun skips), before a push renders what is made from it.
pub async fn fill_cluster_facts(state: &mut EnvState) {
    let Some(network) = state
        .cluster
        .as_ref()
        .filter(|c| c.load_balancer_range.is_none())
        .map(|c| c.network.clone())
    else {
        return;
    };
    let range = load_balancer_range(&network).await;
    if let Some(cluster) = state.cluster.as_mut() {
        cluster.load_balancer_range = range;
    }
}
