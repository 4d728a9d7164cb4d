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

/// What `env approve ENV ENTRY` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateReport {
    pub env: String,
    pub entry: String,
    /// False when the gate was open already: nothing changed.
    pub opened: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Opens an entry's manual gate (`gate: manual`): recorded in the env's state, so the
/// snapshot pushed now, and every one after, lets the engine reconcile it.
pub async fn approve_gate(
    settings: &Settings,
    name: &str,
    entry: &str,
    progress: &Progress,
) -> Result<GateReport, EnvError> {
    let env_dir = settings.env_dir(name);
    {
        let (_lock, mut state) = load_locked(settings, name, "env approve")?;
        super::open::refuse_when_suspended(&state, "approve")?;
        let mut gated = state.clone();
        gated.approved_gates.clear();
        let stamp = stamp_of(&settings.data_dir, &gated)?;
        let gates: Vec<&str> = stamp
            .entries
            .iter()
            .filter(|e| e.manual_gate)
            .map(|e| e.name.as_str())
            .collect();
        if !gates.contains(&entry) {
            return Err(EnvError::BadInput(format!(
                "entry {entry} of env {name} has no manual gate (gated entries: {})\nhelp: `gate: manual` on an entry makes one",
                if gates.is_empty() {
                    "none".to_string()
                } else {
                    gates.join(", ")
                }
            )));
        }
        if state.approved_gates.iter().any(|g| g == entry) {
            progress.info(&format!("the gate of {entry} is open already"));
            return Ok(GateReport {
                env: name.to_string(),
                entry: entry.to_string(),
                opened: false,
                commit: None,
            });
        }
        state.approved_gates.push(entry.to_string());
        state.save(&env_dir)?;
    }
    progress.info(&format!("gate of {entry} opened"));
    let synced = super::sync::sync(settings, name, None, progress).await?;
    Ok(GateReport {
        env: name.to_string(),
        entry: entry.to_string(),
        opened: true,
        commit: Some(synced.commit),
    })
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
