//! Docker answers, the provider CLI is there (on PATH or the pinned download), the stamp loaded.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step};
use crate::docker::DockerClient;
use crate::env::EnvError;

pub struct Preflight;

impl Step for Preflight {
    fn name(&self) -> &'static str {
        "preflight"
    }

    fn line(&self, _ctx: &Ctx<'_>) -> String {
        "Docker, provider CLI, stamp".into()
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let docker = DockerClient::connect().await.map_err(|e| {
                EnvError::Preflight(format!(
                    "{e}\nhelp: start Docker (`kindling doctor` checks the setup)"
                ))
            })?;
            // Ports bind to 127.0.0.1; on an engine that lets the local network reach those
            // anyway, say so before the env's Gitea and registry are published there.
            if let Ok(facts) = docker.engine_facts().await
                && let Some(exposure) = facts.loopback_exposure()
            {
                ctx.progress.warn(&format!(
                    "{exposure}; upgrade Docker Engine to 28.3.3 or later (`kindling doctor`)"
                ));
            }
            let _ = ctx.docker.set(docker);
            for warning in &ctx.stamp.warnings {
                ctx.progress
                    .warn(&crate::ui::printable(&warning.to_string()));
            }
            // Resolved once (PATH or the pinned download) and shared with the blocking calls.
            // What the secrets step will read from this host is there before anything is made.
            crate::engine::secrets::check_host_values(ctx.stamp, &ctx.settings.allow_secret_from)?;
            let provider = ctx.resolved.provider;
            let tool = crate::env::provider_tool(provider, ctx.settings)?;
            if let Some(note) = &tool.note {
                ctx.progress.warn(note);
            }
            let described = format!(
                "{}{}",
                tool.path.display(),
                tool.version
                    .as_deref()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default()
            );
            let cli = crate::cluster::provider::provider_for(
                provider,
                tool.path,
                ctx.settings.env_dir(ctx.env()),
            );
            let _ = ctx.provider.set(Arc::from(cli));
            Ok(format!(
                "stamp {} ({} entries), {} via {described}",
                ctx.stamp.name,
                ctx.stamp.entries.len(),
                provider.name(),
            ))
        })
    }
}
