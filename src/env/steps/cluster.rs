//! The kind or k3d cluster through its CLI, its kubeconfig, and its nodes Ready.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step, join_error};
use crate::cluster;
use crate::env::EnvError;
use crate::env::state::ClusterState;

pub struct Cluster;

impl Step for Cluster {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn line(&self, ctx: &Ctx<'_>) -> String {
        format!(
            "{} cluster {}",
            ctx.resolved.provider.name(),
            ctx.resolved.name
        )
    }

    fn skip<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
        Box::pin(async move {
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
            let resolved = ctx.resolved.clone();
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
            let (created, kubeconfig) = tokio::task::spawn_blocking(move || {
                let exists = cli.exists(&name)?;
                if !exists {
                    cli.create(&name, &config)?;
                }
                let kubeconfig = cluster::provider::write_kubeconfig(&*cli, &name, &dir)?;
                Ok::<_, EnvError>((!exists, kubeconfig))
            })
            .await
            .map_err(join_error)??;
            cluster::wait_ready(&kubeconfig, &context, &resolved, ctx.settings.step_timeout)
                .await?;
            let mut state = ctx.state();
            state.cluster = Some(ClusterState {
                name: resolved.name.clone(),
                context,
                kubeconfig,
                network: provider.docker_network(&resolved.name),
            });
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
