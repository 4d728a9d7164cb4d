//! The stack's secret contracts written into the env's Vault (`crate::env::vault`), once the
//! engine has installed it, before the reconcile wait: the stack's ExternalSecrets read them.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step};
use crate::env::EnvError;

pub struct Vault;

impl Step for Vault {
    fn name(&self) -> &'static str {
        "vault"
    }

    fn line(&self, ctx: &Ctx<'_>) -> String {
        match crate::env::vault::wanted(ctx.stamp) {
            true => "secret contracts into Vault".into(),
            false => "Vault (no secret goes through it)".into(),
        }
    }

    /// Held, the engine installs nothing: `env approve` writes them.
    fn skip<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
        super::skip_while_held(ctx)
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            if !crate::env::vault::wanted(ctx.stamp) {
                return Ok("none".into());
            }
            let kube = ctx.kube().await?;
            let seeded = crate::env::vault::seed(
                kube,
                ctx.stamp,
                &ctx.env_dir,
                &ctx.settings.allow_secret_from,
                ctx.settings.step_timeout,
            )
            .await?;
            Ok(format!(
                "{} written, {} already there",
                seeded.written.len(),
                seeded.kept.len()
            ))
        })
    }
}
