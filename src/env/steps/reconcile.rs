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
        super::skip_while_held(ctx)
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
            let follow = crate::env::follow::follow(
                kube,
                engine,
                ctx.stamp,
                ctx.opts.timeout,
                ctx.progress,
                |s: &EngineStatus| s.all_ready(),
            );
            // The wait may take the whole --timeout (10 min by default); Ctrl-C ends it at once.
            let interrupt = async {
                while !ctx.is_interrupted() {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            };
            let status = tokio::select! {
                status = follow => status?,
                () = interrupt => return Err(EnvError::InterruptedWaiting(ctx.env().to_string())),
            };
            let _ = ctx.status.set(status);
            Ok("every entry Ready".into())
        })
    }
}
