//! The env's CA for cert-manager and the stamp's bootstrap secrets, before the engine
//! reconciles anything that needs them.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step};
use crate::engine;
use crate::env::EnvError;

pub struct Secrets;

impl Step for Secrets {
    fn name(&self) -> &'static str {
        "secrets"
    }

    fn line(&self, _ctx: &Ctx<'_>) -> String {
        "CA and bootstrap secrets".into()
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let kube = ctx.kube().await?;
            let handed_over = crate::env::open::hands_over_the_ca(
                ctx.stamp,
                ctx.state().cluster_cert_manager.is_some(),
            );
            let applied = engine::secrets::apply(
                kube,
                ctx.stamp,
                &ctx.env_dir,
                handed_over.then_some(ctx.ca_secret()?),
                ctx.settings.step_timeout,
                &ctx.settings.allow_secret_from,
            )
            .await?;
            warn_if_left_to_stamp(ctx.progress, ctx.ca_secret()?, &applied);
            Ok(format!("{} Secrets", applied.count))
        })
    }
}

/// Says so when the stamp makes the CA Secret itself (a HostK8s stack's self-signed CA).
pub fn warn_if_left_to_stamp(
    progress: &crate::ui::Progress,
    ca_secret: &serde_json::Value,
    applied: &engine::secrets::AppliedSecrets,
) {
    if let Some(certificate) = &applied.ca_left_to {
        progress.warn(&format!(
            "the stamp makes {}/{} itself ({certificate}); kindling's CA is not handed to cert-manager",
            ca_secret["metadata"]["namespace"].as_str().unwrap_or_default(),
            ca_secret["metadata"]["name"].as_str().unwrap_or_default(),
        ));
    }
}
