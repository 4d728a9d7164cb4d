//! Asks the engine to reconcile now; with `--wait`, follows until every entry is Ready.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step};
use crate::engine::{self, EngineStatus};
use crate::env::EnvError;

pub struct Reconcile;

impl Step for Reconcile {
    fn name(&self) -> &'static str {
        "reconcile"
    }

    fn line(&self, _ctx: &Ctx<'_>) -> String {
        "requesting reconciliation now".into()
    }

    fn skip<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
        Box::pin(async move {
            ctx.state()
                .hold
                .then(|| "held until `kindling env approve`".to_string())
        })
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let engine = ctx.opts.engine;
            let kube = ctx.kube().await?;
            engine::request_reconcile(kube, engine, ctx.stamp, time::OffsetDateTime::now_utc())
                .await?;
            if !ctx.opts.wait {
                return Ok("requested".into());
            }
            let status = crate::env::follow::follow(
                kube,
                engine,
                ctx.stamp,
                ctx.opts.timeout,
                ctx.progress,
                |s: &EngineStatus| s.all_ready(),
            )
            .await?;
            let _ = ctx.status.set(status);
            Ok("every entry Ready".into())
        })
    }
}
