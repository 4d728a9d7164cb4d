//! The env's own registry container, when the profile wants one.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step, running};
use crate::env::EnvError;
use crate::registry;

pub struct Registry;

impl Step for Registry {
    fn name(&self) -> &'static str {
        "registry"
    }

    fn line(&self, _ctx: &Ctx<'_>) -> String {
        "local registry".into()
    }

    fn skip<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
        Box::pin(async move {
            if !ctx.opts.profile.spec.registry {
                return Some("not in the profile".into());
            }
            if !ctx.resolved.provider.makes_the_cluster() {
                return Some("an existing cluster cannot reach a registry on this machine".into());
            }
            let exists = running(ctx, &registry::registry_container(ctx.env())).await;
            ctx.made_and_present(self.name(), exists)
                .then(|| "running".to_string())
        })
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let env = ctx.env();
            let image = &ctx.settings.registry_image;
            let port = ctx
                .state()
                .ports
                .registry
                .ok_or_else(|| EnvError::Preflight("no registry port allocated".into()))?;
            let network = ctx.env_network().await?;
            ctx.progress.detail(&format!(
                "registry: container {} ({image}) on 127.0.0.1:{port}",
                registry::registry_container(env),
            ));
            let docker = ctx.docker()?;
            let spec = registry::local_registry_spec(env, network, port, image);
            for v in &spec.volumes {
                docker.ensure_volume(&v.volume, &spec.labels).await?;
            }
            docker.ensure_image(&spec.image, &mut |_| {}).await?;
            docker.run_container(&spec).await?;
            docker
                .wait_ready(&spec.name, ctx.settings.step_timeout)
                .await?;
            Ok(format!("localhost:{port}"))
        })
    }
}
