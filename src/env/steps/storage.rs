//! The stamp's storage in the cluster: owners and modes of the mounted directories, then the
//! StorageClasses and PersistentVolumes, before the engine reconciles the claims.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step};
use crate::env::EnvError;

pub struct Storage;

impl Step for Storage {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn line(&self, ctx: &Ctx<'_>) -> String {
        match ctx.stamp.storage.len() {
            0 => "storage (none declared)".into(),
            n => format!("{n} storage directories"),
        }
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            if ctx.stamp.storage.is_empty() {
                return Ok("none declared".into());
            }
            let kube = ctx.kube().await?;
            let state = ctx.state().clone();
            let applied = crate::env::storage::provide(
                kube,
                &state,
                ctx.stamp,
                ctx.settings.step_timeout,
                ctx.progress,
            )
            .await?;
            Ok(format!(
                "{} PersistentVolumes, {} StorageClasses, data in {}",
                applied.volumes,
                applied.classes,
                crate::env::storage::host_root(&ctx.settings.data_dir, ctx.env()).display()
            ))
        })
    }
}
