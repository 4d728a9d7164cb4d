//! A stamp brought up on a live env: pushed, its Secrets and storage provided, the engine's
//! root re-applied, Vault refilled and reconciliation asked for. `env restart` does it after
//! removing the old stamp, `env up`/`env down` after changing the env's stacks; each part
//! is idempotent, so a rerun after a crash finishes the job.

use std::time::{Duration, Instant};

use super::state::EnvState;
use super::steps::{bootstrap, push, secrets};
use super::{EnvError, Settings};
use crate::engine;
use crate::kube::{ApplyOptions, KubeClient};
use crate::stamp::Stamp;
use crate::ui::Progress;

/// Brings `stamp` up on the env of `state` (recording each part in it) and returns the
/// commit pushed. A held env is pushed and bootstrapped, not reconciled.
pub async fn bring_up(
    settings: &Settings,
    state: &mut EnvState,
    stamp: &Stamp,
    kube: &KubeClient,
    progress: &Progress,
) -> Result<String, EnvError> {
    let name = state.name.clone();
    let env_dir = settings.env_dir(&name);
    let gitea = super::open::gitea_of(state)?;
    super::steps::cluster::fill_cluster_facts(state).await;
    let rendered = push::render_for_env(stamp, state, &gitea, &settings.data_dir)?;
    // On a shared cluster, before the push: once pushed the engine reads it on its own.
    if !state.provider.makes_the_cluster() {
        for unchecked in super::steps::bootstrap::stamp_objects_taken(kube, stamp).await? {
            progress.warn(&unchecked);
        }
        super::open::ca_secret_is_free(kube, state, stamp).await?;
    }
    let t = Instant::now();
    progress.start("push", &stamp.name);
    let commit = push::push(stamp, &rendered, &gitea).await?;
    state.commit = Some(commit.clone());
    state.record("push", t.elapsed());
    state.save(&env_dir)?;
    progress.done(
        "push",
        t.elapsed(),
        &format!("commit {}", push::short(&commit)),
    );
    let t = Instant::now();
    let ca_secret =
        crate::pki::env_ca_secret(&settings.data_dir, &name, state.ca_secret_namespace())?;
    let applied = engine::secrets::apply(
        kube,
        stamp,
        &env_dir,
        super::open::hands_over_the_ca(stamp, state.cluster_cert_manager.is_some())
            .then_some(&ca_secret),
        settings.step_timeout,
        &settings.allow_secret_from,
    )
    .await?;
    secrets::warn_if_left_to_stamp(progress, &ca_secret, &applied);
    state.record("secrets", t.elapsed());
    let t = Instant::now();
    super::storage::provide(kube, state, stamp, settings.step_timeout, progress).await?;
    state.record("storage", t.elapsed());
    let t = Instant::now();
    let extra_ca = state.extra_ca(&env_dir)?;
    let objects = bootstrap::objects(
        state.engine,
        stamp,
        &rendered,
        &gitea,
        state.hold,
        extra_ca.as_ref(),
    );
    if !state.provider.makes_the_cluster() {
        bootstrap::prepare_shared_cluster(
            kube,
            state.engine,
            stamp,
            &rendered,
            settings.step_timeout,
        )
        .await?;
    }
    kube.apply_objects(&objects, &ApplyOptions::new(settings.step_timeout))
        .await?;
    state.record("bootstrap", t.elapsed());
    if !state.hold {
        super::vault::seed_with_progress(kube, stamp, settings, &name, progress).await?;
        state.record("vault", Duration::ZERO);
        engine::request_reconcile(kube, state.engine, stamp, time::OffsetDateTime::now_utc())
            .await?;
        state.record("reconcile", Duration::ZERO);
    }
    state.save(&env_dir)?;
    Ok(commit)
}
