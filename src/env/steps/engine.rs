//! Flux or Argo CD from its pinned install manifest (cache, download or local copy, verified),
//! applied with server-side apply; its controllers Ready.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step, join_error};
use crate::engine::{self, manifests};
use crate::env::EnvError;

pub struct Engine;

impl Step for Engine {
    fn name(&self) -> &'static str {
        "engine"
    }

    fn line(&self, ctx: &Ctx<'_>) -> String {
        let engine = ctx.opts.engine;
        format!("{} {}", engine.name(), manifests::pinned(engine).version)
    }

    /// Installed once per cluster: the cluster step forgets it when it makes a new cluster.
    fn skip<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
        Box::pin(async move {
            ctx.state()
                .is_done(self.name())
                .then(|| "installed".to_string())
        })
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let engine = ctx.opts.engine;
            // On a cluster kindling did not make, an engine that is there is used as it is.
            if !ctx.resolved.provider.makes_the_cluster() {
                let kube = ctx.kube().await?;
                let found = crate::engine::detect::find(kube, engine)
                    .await?
                    .filter(|f| f.installed_by.as_deref() != Some(ctx.env()));
                if let Some(found) = found {
                    if let Some(why) = &found.incompatible {
                        return Err(EnvError::Preflight(format!(
                            "{} {} on the cluster cannot be used: {why}\nhelp: kindling never upgrades an engine it did not install",
                            engine.name(),
                            found.version
                        )));
                    }
                    ctx.progress.detail(&format!(
                        "engine: {} {} found in {}; used as it is, never upgraded or removed by kindling",
                        engine.name(),
                        found.version,
                        crate::engine::namespace(engine)
                    ));
                    ctx.state().found_engine = Some(crate::env::state::FoundEngineState {
                        version: found.version.clone(),
                        installed_by: found.installed_by.clone(),
                    });
                    return Ok(format!(
                        "{} {} found on the cluster, used as it is",
                        engine.name(),
                        found.version
                    ));
                }
                ctx.state().found_engine = None;
            }
            let settings = ctx.settings;
            let pinned = manifests::pinned(engine);
            let (p, owned) = (pinned.clone(), settings.clone());
            let fetched = tokio::task::spawn_blocking(move || {
                manifests::fetch(&p, &owned.manifest_dirs(), owned.local_manifests())
            })
            .await
            .map_err(join_error)??;
            if let Some(note) = &fetched.note {
                ctx.progress.warn(note);
            }
            ctx.progress.detail(&format!(
                "engine: manifest {} ({:?}), server-side apply as {}",
                fetched.path.display(),
                fetched.origin,
                crate::kube::INSTALL_FIELD_MANAGER
            ));
            // The network's roots for the engine's chart sources, in place before its
            // controllers start (`engine::extra_ca`).
            let extra_ca = ctx.state().extra_ca(&ctx.env_dir)?;
            // Flux objects of the env's own namespace are the env's, not the install's: the
            // bootstrap applies them there. (Argo CD's are always in argocd.)
            let extra = match &extra_ca {
                Some(_)
                    if engine == crate::engine::Engine::Flux
                        && ctx.stamp.own_objects_namespace.is_some() =>
                {
                    Vec::new()
                }
                Some(ca) => engine::extra_ca::objects(
                    engine,
                    ctx.stamp.flux_namespace(),
                    ctx.rendered()?,
                    ca,
                ),
                None => Vec::new(),
            };
            let kube = ctx.kube().await?;
            let applied = engine::install(
                kube,
                engine,
                &fetched.text,
                &crate::cluster::proxy::ProxySettings::from_env().variables(
                    &crate::cluster::proxy::pod_direct_names(ctx.resolved.provider, ctx.env()),
                ),
                &extra,
                settings.step_timeout,
            )
            .await?;
            ctx.progress.detail(&format!(
                "engine: {applied} objects applied, controllers ready"
            ));
            ctx.state()
                .versions
                .insert(engine.name().to_string(), pinned.version.clone());
            Ok(format!(
                "{} {} (sha256 {})",
                engine.name(),
                pinned.version,
                &fetched.sha256[..12]
            ))
        })
    }
}
