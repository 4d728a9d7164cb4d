//! The idpbuilder packages (`--package`): their directories pushed to Gitea repositories of
//! their own and their Applications applied (`crate::env::packages`). Pushing and applying
//! again changes nothing that is already there, so the step always runs when there are
//! packages.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step};

pub struct Packages;

impl Step for Packages {
    fn name(&self) -> &'static str {
        "packages"
    }

    fn line(&self, ctx: &Ctx<'_>) -> String {
        format!("{} idpbuilder package(s)", ctx.state().packages.len())
    }

    fn skip<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
        Box::pin(async move {
            ctx.state()
                .packages
                .is_empty()
                .then(|| "no packages".to_string())
        })
    }

    fn skip_is_done(&self) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        ctx: &'a Ctx<'_>,
    ) -> LocalBoxFuture<'a, Result<String, crate::env::EnvError>> {
        Box::pin(async move {
            let dirs = ctx.state().packages.clone();
            let packages = crate::env::packages::load_all(&dirs, ctx.opts.engine)?;
            let kube = ctx.kube().await?;
            let done = crate::env::packages::push_and_apply(
                kube,
                &crate::env::packages::PackageTarget {
                    engine: ctx.opts.engine,
                    env: ctx.env(),
                    flux_namespace: ctx.stamp.flux_namespace(),
                },
                &packages,
                &ctx.gitea_state()?,
                ctx.settings.step_timeout,
            )
            .await?;
            for (repo, commit) in &done.pushed {
                ctx.progress.detail(&format!(
                    "packages: pushed {repo} at {}",
                    super::push::short(commit)
                ));
            }
            for applied in &done.applied {
                ctx.progress.detail(&format!("packages: applied {applied}"));
            }
            Ok(format!(
                "{} repositories, {} objects",
                done.pushed.len(),
                done.applied.len()
            ))
        })
    }
}
