//! Gitea, the registry and the image caches onto the cluster's network, with what the cluster
//! needs to find them: a Service for Gitea, the KEP-1755 ConfigMap, the nodes' mirrors.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step, join_error};
use crate::cluster::Provider;
use crate::env::EnvError;
use crate::kube::ApplyOptions;
use crate::{gitea, registry};

pub struct Connect;

impl Step for Connect {
    fn name(&self) -> &'static str {
        "connect"
    }

    fn line(&self, ctx: &Ctx<'_>) -> String {
        if !ctx.resolved.provider.makes_the_cluster() {
            return "the cluster's own network".into();
        }
        let network = ctx.state().cluster.as_ref().map(|c| c.network.clone());
        format!("network {}", network.unwrap_or_default())
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let env = ctx.env();
            if !ctx.resolved.provider.makes_the_cluster() {
                // Gitea is a Deployment with its own Service there (or an external one); no
                // registry, no caches.
                return Ok(match ctx.gitea_state()?.external {
                    true => "external Gitea".into(),
                    false => format!("Gitea in namespace {}", gitea::in_cluster::namespace(env)),
                });
            }
            let docker = ctx.docker()?;
            let kube = ctx.kube().await?;
            let cluster = ctx.cluster_state()?;
            let gitea_state = ctx.gitea_state()?;
            let registry_port = ctx.state().ports.registry;
            let apply = ApplyOptions::new(Duration::from_secs(30));
            if !gitea_state.external {
                // k3s pods cannot resolve Docker container names: the engine reaches Gitea
                // through a Service + EndpointSlice on the container's address.
                let ip = crate::env::route::gitea_address(docker, env, &cluster.network).await?;
                kube.apply_objects(&gitea::service_objects(&ip), &apply)
                    .await?;
            }
            if let Some(port) = registry_port {
                docker
                    .connect_network(&registry::registry_container(env), &cluster.network)
                    .await?;
                let configmap = registry::local_registry_hosting_configmap(port);
                kube.apply_objects(&[configmap], &apply).await?;
            }
            if ctx.opts.profile.spec.image_caches {
                let progress = ctx.progress;
                let outbound = cache_outbound(ctx)?;
                registry::ensure_caches(
                    docker,
                    &cluster.network,
                    &ctx.settings.registry_image,
                    &outbound,
                    &mut |line| progress.detail(line),
                )
                .await?;
            }
            let resolved = ctx.resolved;
            if resolved.provider == Provider::Kind && !resolved.mirrors.is_empty() {
                let provider = ctx.provider()?;
                let name = cluster.name.clone();
                let nodes = tokio::task::spawn_blocking(move || provider.nodes(&name))
                    .await
                    .map_err(join_error)??;
                registry::configure_kind_nodes(docker, &nodes, &resolved.mirrors).await?;
            }
            Ok(cluster.network)
        })
    }
}

/// How the shared caches reach their upstreams for this env: the user's proxy (only what is
/// always direct added to NO_PROXY: the caches fetch from the internet alone) and the env's
/// network roots, copied where they outlive the env.
fn cache_outbound(ctx: &Ctx<'_>) -> Result<registry::CacheOutbound, EnvError> {
    let proxy = crate::cluster::proxy::ProxySettings::from_env()
        .variables(&[])
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let extra_ca = match ctx.state().extra_ca(&ctx.env_dir)? {
        Some(ca) => {
            let data_dir = &ctx.settings.data_dir;
            let copy = registry::cache_extra_ca_file(data_dir, &ca).map_err(|e| {
                EnvError::Pki(crate::pki::PkiError::Io {
                    path: data_dir.join("cache-trust"),
                    source: e,
                })
            })?;
            Some(copy)
        }
        None => None,
    };
    Ok(registry::CacheOutbound { proxy, extra_ca })
}
