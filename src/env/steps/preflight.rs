//! Docker answers, the provider CLI is there (on PATH or the pinned download), the stamp loaded.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step};
use crate::cluster::cert_manager::ClusterCertManager;
use crate::docker::DockerClient;
use crate::env::EnvError;

pub struct Preflight;

impl Step for Preflight {
    fn name(&self) -> &'static str {
        "preflight"
    }

    fn line(&self, ctx: &Ctx<'_>) -> String {
        match ctx.opts.existing {
            Some(_) => "the cluster's API, your rights there, stamp".into(),
            None => "Docker, provider CLI, stamp".into(),
        }
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            if let Some(existing) = &ctx.opts.existing {
                return existing_cluster(ctx, existing).await;
            }
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
            stamp_checks(ctx)?;
            // Resolved once (PATH or the pinned download) and shared with the blocking calls.
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
            // An engine on another machine: the ports known now (Gitea's, the registry's,
            // the ingress) through an SSH tunnel before Gitea is asked for anything.
            let state = ctx.state().clone();
            if let Some(started) = crate::env::open::tunnel(&state, &ctx.env_dir)? {
                ctx.progress.detail(&started);
            }
            Ok(format!(
                "stamp {} ({} entries), {} via {described}",
                ctx.stamp.name,
                ctx.stamp.entries.len(),
                provider.name(),
            ))
        })
    }
}

/// The stamp's warnings said, and what the secrets step will read from this host checked to be
/// there before anything is made.
fn stamp_checks(ctx: &Ctx<'_>) -> Result<(), EnvError> {
    for warning in &ctx.stamp.warnings {
        ctx.progress
            .warn(&crate::ui::printable(&warning.to_string()));
    }
    crate::engine::secrets::check_host_values(ctx.stamp, &ctx.settings.allow_secret_from)?;
    Ok(())
}

/// An existing cluster: no Docker, no provider CLI. Its API answers, the engine on it (if any)
/// can be used, and the context's user has every right the create needs; what is missing is
/// named before anything changes.
async fn existing_cluster(
    ctx: &Ctx<'_>,
    existing: &crate::cluster::existing::ExistingCluster,
) -> Result<String, EnvError> {
    stamp_checks(ctx)?;
    let ca_namespace = {
        let state = ctx.state();
        crate::env::open::hands_over_the_ca(ctx.stamp, state.cluster_cert_manager.is_some())
            .then(|| state.ca_secret_namespace().to_string())
    };
    let kube = existing_client(existing, ctx.env(), &ctx.env_dir).await?;
    let engine_note = check_existing(
        &kube,
        existing,
        ctx.env(),
        ctx.stamp,
        ctx.opts.engine,
        ca_namespace.as_deref(),
    )
    .await?;
    for unchecked in super::bootstrap::stamp_objects_taken(&kube, ctx.stamp).await? {
        ctx.progress.warn(&unchecked);
    }
    let cert_manager = ctx
        .state()
        .cluster_cert_manager
        .as_ref()
        .map(|c| format!("; {}", uses_the_clusters(c)))
        .unwrap_or_default();
    Ok(format!(
        "stamp {} ({} entries), context {}: API answers, rights there; {engine_note}{cert_manager}",
        ctx.stamp.name,
        ctx.stamp.entries.len(),
        existing.context
    ))
}

/// What `env create` (and its `--dry-run`) checks of an existing cluster before anything
/// changes, read-only: the API answers, the engine there (if any) can be used, and the
/// context's user has every right the create needs. Says what it found of the engine.
pub async fn check_existing(
    kube: &crate::kube::KubeClient,
    existing: &crate::cluster::existing::ExistingCluster,
    env: &str,
    stamp: &crate::stamp::Stamp,
    engine: crate::engine::Engine,
    ca_namespace: Option<&str>,
) -> Result<String, EnvError> {
    // A user who may not read CRDs cannot tell: taken as absent, so the rights to install
    // it are asked for, and their lack is named.
    let found = crate::engine::detect::find(kube, engine)
        .await
        .ok()
        .flatten()
        .filter(|f| f.installed_by.as_deref() != Some(env));
    if let Some(f) = &found
        && let Some(why) = &f.incompatible
    {
        return Err(EnvError::Preflight(format!(
            "{} {} is installed on the cluster of context {}, but {why}\nhelp: kindling never changes an engine it did not install; upgrade or configure it yourself, or use the other engine (--engine)",
            engine.name(),
            f.version,
            existing.context
        )));
    }
    let objects_namespace = crate::engine::objects_namespace(engine, stamp);
    another_env_on_the_engine(kube, env, engine, objects_namespace).await?;
    let facts = crate::cluster::existing::Found {
        engine: found.is_some(),
        ca_namespace: ca_namespace.map(str::to_string),
        engine_objects_namespace: objects_namespace.to_string(),
    };
    crate::cluster::existing::check(kube, existing, env, engine, facts)
        .await
        .map_err(EnvError::Preflight)?;
    Ok(match &found {
        Some(f) => format!(
            "{} {} found{}{}",
            engine.name(),
            f.version,
            f.installed_by
                .as_ref()
                .map(|e| format!(" (installed by env {e})"))
                .unwrap_or_default(),
            only_in_its_namespace(f, objects_namespace)
                .map(|why| format!(", the env's objects in {objects_namespace}: {why}"))
                .unwrap_or_default()
        ),
        None => format!("no {}, kindling installs it", engine.name()),
    })
}

/// Why the env's engine objects are in the engine's own namespace, when the engine found
/// does not read them elsewhere.
fn only_in_its_namespace(
    found: &crate::engine::detect::FoundEngine,
    objects_namespace: &str,
) -> Option<String> {
    match found.engine {
        crate::engine::Engine::Flux => found.only_its_namespace.clone(),
        crate::engine::Engine::Argo => (objects_namespace == crate::engine::argo::NAMESPACE)
            .then(|| {
                format!(
                    "its application controller reconciles Applications only in argocd{} (application.namespaces of argocd-cmd-params-cm, or --application-namespaces); add {} there and restart it to give each env a namespace",
                    match found.application_namespaces.is_empty() {
                        true => String::new(),
                        false => format!(" and {}", found.application_namespaces.join(",")),
                    },
                    crate::engine::detect::KINDLING_APPLICATION_NAMESPACES
                )
            }),
    }
}

/// The cert-manager of an existing cluster the env uses in place of its stamp's: the answer
/// recorded when the question was first asked (a crash after the engine applied the stamp's
/// own must not make a rerun take that one for the cluster's), else one found there, asked
/// only for a stamp that counts on cert-manager. One that cannot be used, or has objects
/// under the names of the env's, stops the create before anything changes.
pub async fn cluster_cert_manager(
    kube: &crate::kube::KubeClient,
    existing: &crate::cluster::existing::ExistingCluster,
    state: Option<&crate::env::state::EnvState>,
    env: &str,
    engine: crate::engine::Engine,
    objects_namespace: &str,
    stamp: &crate::stamp::Stamp,
) -> Result<Option<ClusterCertManager>, EnvError> {
    // (An env whose own stamp installed a cert-manager is not misled by it when asked
    // again: `find` takes that one for the env's, not the cluster's.)
    if let Some(s) = state
        && (s.cert_manager_asked || s.cluster_cert_manager.is_some())
    {
        return Ok(s.cluster_cert_manager.clone());
    }
    // A stamp that counts on no cert-manager has no use for the cluster's.
    if !crate::stamp::cert_manager::counted_on(stamp, crate::pki::CA_SECRET.1) {
        return Ok(None);
    }
    // Another env that shares the engine's objects namespace is the news (the cert-manager
    // found may be its stamp's); one with its own namespace is named by `find` when its stamp
    // installed the cert-manager.
    another_env_on_the_engine(kube, env, engine, objects_namespace).await?;
    let context = &existing.context;
    let found = crate::cluster::cert_manager::find(kube, context)
        .await
        .map_err(EnvError::Preflight)?;
    if let Some(f) = &found {
        crate::cluster::cert_manager::clashes(
            kube,
            stamp,
            f,
            crate::pki::CA_SECRET.1,
            env,
            context,
        )
        .await
        .map_err(EnvError::Preflight)?;
    }
    Ok(found)
}

/// What the env does with the cluster's cert-manager, for progress and plan lines.
pub fn uses_the_clusters(found: &ClusterCertManager) -> String {
    format!(
        "cert-manager {} of the cluster (namespace {}) used, not the stamp's; the env's CA Secret goes to {}",
        found.version, found.namespace, found.resource_namespace
    )
}

/// kindling's bootstrap objects have fixed names in the namespace of the env's engine objects
/// (the Git credentials, the source, the root): another env's there would be taken over. An env
/// has a namespace of its own (`objects_namespace_of_a_new_env`), so only envs that share one (an
/// engine that reads only its own namespace, or envs made before) meet here.
async fn another_env_on_the_engine(
    kube: &crate::kube::KubeClient,
    env: &str,
    engine: crate::engine::Engine,
    engine_namespace: &str,
) -> Result<(), EnvError> {
    let other = kube
        .list_labelled("v1", "Secret", crate::ENV_LABEL)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s["metadata"]["namespace"] == engine_namespace)
        .find_map(|s| {
            s["metadata"]["labels"][crate::ENV_LABEL]
                .as_str()
                .filter(|owner| *owner != env)
                .map(str::to_string)
        });
    if let Some(other) = other {
        return Err(EnvError::Preflight(format!(
            "kindling env {other} uses this cluster's {} already: its Git credentials, source and root in {engine_namespace} have the names this env's would have; nothing was changed\nhelp: {}; delete env {other} first, use the other engine (--engine), or another cluster (a vcluster each)",
            engine.name(),
            match engine {
                crate::engine::Engine::Argo => format!(
                    "this Argo CD reconciles an env's Applications only in {engine_namespace} (application.namespaces of argocd-cmd-params-cm does not name kindling-ENV namespaces; add {} and restart its application controller), or env {other} was made before envs on Argo CD had a namespace each: either way the envs would share {engine_namespace}",
                    crate::engine::detect::KINDLING_APPLICATION_NAMESPACES
                ),
                crate::engine::Engine::Flux => format!(
                    "Flux here takes an env's objects only in {engine_namespace} (--watch-all-namespaces=false or --default-service-account), or env {other} was made before envs on Flux had a namespace each: either way the envs would share {engine_namespace}"
                ),
            }
        )));
    }
    Ok(())
}

/// Where a new env's engine objects go on an existing cluster: a namespace of its own
/// (`kindling-ENV`, beside its Gitea), so several envs share one engine; the engine's own
/// (then one env at a time) when the one found there does not read that namespace: a Flux
/// that reconciles only flux-system, or an Argo CD whose `application.namespaces` does not
/// name it. An engine kindling installs reads it (Argo CD with
/// `detect::KINDLING_APPLICATION_NAMESPACES`).
pub async fn objects_namespace_of_a_new_env(
    kube: &crate::kube::KubeClient,
    env: &str,
    engine: crate::engine::Engine,
) -> Result<Option<String>, EnvError> {
    // A user who may not read CRDs cannot tell (taken as absent, as `check_existing` does);
    // any other failure stops the create before its answer is recorded for good.
    let found = match crate::engine::detect::find(kube, engine).await {
        Ok(found) => found,
        Err(e) if e.is_forbidden() => None,
        Err(e) => return Err(e.into()),
    };
    let own = crate::gitea::in_cluster::namespace(env);
    Ok(Some(match found {
        Some(f) if !f.reads_objects_in(&own) => crate::engine::namespace(engine).to_string(),
        _ => own,
    }))
}

/// A client of the existing cluster that knows the env's ownership
/// (`crate::kube::ownership`), for the checks before anything changes.
pub async fn existing_client(
    existing: &crate::cluster::existing::ExistingCluster,
    env: &str,
    env_dir: &std::path::Path,
) -> Result<crate::kube::KubeClient, EnvError> {
    Ok(
        crate::kube::KubeClient::from_kubeconfig(&existing.kubeconfig, Some(&existing.context))
            .await?
            .owned_by(crate::kube::ownership::Ownership::new(
                env,
                crate::env::open::owned_kinds_file(env_dir),
            )),
    )
}
