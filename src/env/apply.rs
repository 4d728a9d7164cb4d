//! `env apply [ENV] ENTRY`: the fast path while iterating. The entry's directory is built
//! from the working tree and applied with server-side apply at once, after its engine object
//! is paused so the engine does not put Git's version back. `env sync` hands it back (the
//! push carries the edit, the engine takes its objects over); `env status` shows it as
//! "applied directly" until then.
//!
//! The objects are built as the engine builds them (`entry_build`).

use std::time::Instant;

use serde::Serialize;

use super::entry_build;
use super::open::{gitea_of, live_kube_of, load_locked, stamp_of};
use super::steps::push;
use super::{EnvError, Settings};
use crate::kube::ApplyOptions;
use crate::stamp::Source;
use crate::ui::Progress;

/// The field manager of what `env apply` applies: the engine's own apply takes the fields
/// over when the entry is handed back.
const FIELD_MANAGER: &str = "kindling-apply";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    pub env: String,
    pub entry: String,
    /// `KIND NAMESPACE/NAME` of each object applied.
    pub applied: Vec<String>,
    pub duration_ms: u64,
}

pub async fn apply(
    settings: &Settings,
    name: &str,
    entry_name: &str,
    progress: &Progress,
) -> Result<ApplyReport, EnvError> {
    let started = Instant::now();
    let env_dir = settings.env_dir(name);
    let (_lock, mut state) = load_locked(settings, name, "env apply")?;
    super::open::refuse_when_suspended(&state, "apply")?;
    let stamp = stamp_of(&settings.data_dir, &state)?;
    let entry = super::open::entry_of(&stamp, name, entry_name)?.clone();
    let path = match &entry.source {
        Source::Path(path) => path,
        Source::Helm(_) => {
            return Err(EnvError::BadInput(format!(
                "entry {entry_name} is a Helm chart: the engine installs it\nhelp: `kindling env sync {name}` pushes and reconciles it now"
            )));
        }
        Source::Remote(r) => {
            return Err(EnvError::BadInput(format!(
                "entry {entry_name} reads {} {}, which is not in your working tree: the engine applies it\nhelp: `kindling env sync {name}` asks it to reconcile now",
                r.kind, r.name
            )));
        }
    };
    // Built before anything changes: a broken kustomization leaves the engine in charge.
    let objects = entry_build::build(&path.host_dir, entry.namespace.as_deref())?;
    // The engine leaves it alone: recorded (so every push renders it paused), then paused.
    if !state.applied_directly.iter().any(|e| e == entry_name) {
        state.applied_directly.push(entry_name.to_string());
        state.save(&env_dir)?;
    }
    let stamp = stamp_of(&settings.data_dir, &state)?;
    let (kube, _) = live_kube_of(&state, progress).await?;
    let gitea = gitea_of(&state)?;
    let rendered = push::render_for_env(&stamp, &state, &gitea, &settings.data_dir)?;
    // Pushed with the entry paused: the root (Argo CD's self-heals its children) must not put
    // the engine back in charge. Other edits of the tree ride along, unreconciled until the
    // next sync.
    let commit = push::push(&stamp, &rendered, &gitea).await?;
    state.commit = Some(commit);
    state.save(&env_dir)?;
    super::suspend::set_entries(
        &kube,
        state.engine,
        &stamp,
        &rendered,
        &[entry_name.to_string()],
        true,
    )
    .await?;
    let t = Instant::now();
    progress.start(
        "apply",
        &format!("{entry_name} from {}", path.host_dir.display()),
    );
    let options = ApplyOptions {
        field_manager: FIELD_MANAGER,
        ..ApplyOptions::new(settings.step_timeout)
    };
    let applied = kube.apply_objects(&objects, &options).await?;
    let applied: Vec<String> = applied.iter().map(|a| a.label()).collect();
    progress.done(
        "apply",
        t.elapsed(),
        &format!(
            "{} objects; `kindling env sync {name}` hands {entry_name} back to the engine",
            applied.len()
        ),
    );
    Ok(ApplyReport {
        env: name.to_string(),
        entry: entry_name.to_string(),
        applied,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}
