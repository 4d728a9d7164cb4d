//! `env approve`: lets an env created with `--hold` reconcile.

use std::time::Instant;

use serde::Serialize;

use super::open::{gitea_of, live_kube_of, load_locked, stamp_of};
use super::steps::{bootstrap, push};
use super::{EnvError, Settings};
use crate::engine;
use crate::ui::Progress;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproveReport {
    pub env: String,
    pub was_held: bool,
    pub requested: Vec<String>,
}

pub async fn approve(
    settings: &Settings,
    name: &str,
    progress: &Progress,
) -> Result<ApproveReport, EnvError> {
    let env_dir = settings.env_dir(name);
    let (_lock, mut state) = load_locked(settings, name, "env approve")?;
    if state.suspended {
        return Err(EnvError::Preflight(format!(
            "env {name} is suspended; `kindling env resume {name}` first"
        )));
    }
    if !state.is_done("bootstrap") {
        return Err(EnvError::Preflight(format!(
            "env {name} is not bootstrapped yet; finish `kindling env create {name} --stamp {}` first",
            state.stamp
        )));
    }
    let stamp = stamp_of(&settings.data_dir, &state)?;
    let gitea = gitea_of(&state)?;
    let rendered = push::render_for_env(&stamp, &state, &gitea, &settings.data_dir)?;
    let extra_ca = state.extra_ca(&env_dir)?;
    let objects = bootstrap::objects(
        state.engine,
        &stamp,
        &rendered,
        &gitea,
        false,
        extra_ca.as_ref(),
    );
    let (kube, _) = live_kube_of(&state, progress).await?;
    let was_held = state.hold;
    let t = Instant::now();
    progress.start("approve", "resuming the engine");
    let requested = engine::approve(
        &kube,
        state.engine,
        &stamp,
        &objects,
        "main",
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    state.hold = false;
    state.record("reconcile", t.elapsed());
    state.save(&env_dir)?;
    progress.done("approve", t.elapsed(), "reconciling");
    super::vault::seed_with_progress(&kube, &stamp, settings, name, progress).await?;
    state.record("vault", std::time::Duration::ZERO);
    state.save(&env_dir)?;
    Ok(ApproveReport {
        env: name.to_string(),
        was_held,
        requested,
    })
}
