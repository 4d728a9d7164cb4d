//! `env sync`: pushes the working tree (uncommitted edits included) and asks the engine to
//! reconcile now; with `--wait`, follows until every entry has applied the new commit.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::follow::follow;
use super::open::{gitea_of, live_kube_of, load_locked, stamp_of};
use super::steps::push::{push, render_for_env, short};
use super::{EnvError, Settings};
use crate::engine::{self, EngineStatus};
use crate::ui::Progress;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub env: String,
    pub commit: String,
    pub changed: bool,
    pub requested: Vec<String>,
    /// Each package repository pushed, with its commit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<EngineStatus>,
    pub duration_ms: u64,
}

pub async fn sync(
    settings: &Settings,
    name: &str,
    wait: Option<Duration>,
    progress: &Progress,
) -> Result<SyncReport, EnvError> {
    let started = Instant::now();
    let env_dir = settings.env_dir(name);
    let (_lock, mut state) = load_locked(settings, name, "env sync")?;
    // Entries `env apply` took over go back to the engine with this push.
    let handed_back = std::mem::take(&mut state.applied_directly);
    if !handed_back.is_empty() {
        progress.info(&format!(
            "handing {} back to the engine",
            handed_back.join(", ")
        ));
        state.save(&env_dir)?;
    }
    let stamp = stamp_of(&settings.data_dir, &state)?;
    let gitea = gitea_of(&state)?;
    super::steps::cluster::fill_cluster_facts(&mut state).await;
    let rendered = render_for_env(&stamp, &state, &gitea, &settings.data_dir)?;
    // On a shared cluster an edit may declare what someone else has there: checked before the
    // push, since the engine reads every new commit on its own.
    if !state.provider.makes_the_cluster() {
        let kube = super::open::kube_of(&state).await?;
        for unchecked in super::steps::bootstrap::stamp_objects_taken(&kube, &stamp).await? {
            progress.warn(&unchecked);
        }
    }
    progress.start("push", &format!("{}", stamp.repo_root.display()));
    let t = Instant::now();
    let commit = push(&stamp, &rendered, &gitea).await?;
    let changed = state.commit.as_deref() != Some(commit.as_str());
    progress.done(
        "push",
        t.elapsed(),
        &format!(
            "commit {}{}",
            short(&commit),
            if changed { "" } else { " (unchanged)" }
        ),
    );
    state.commit = Some(commit.clone());
    state.save(&env_dir)?;
    let (kube, _) = live_kube_of(&state, progress).await?;
    // An edited storage contract: what the nodes mount is provided now; a directory they
    // were not made with needs a new cluster, which sync does not make.
    let missing = super::storage::missing_mounts(&state, &stamp);
    if !missing.is_empty() {
        progress
            .warn(&super::storage::missing_mounts_error(name, &stamp.name, &missing).to_string());
    }
    super::storage::provide(&kube, &state, &stamp, settings.step_timeout, progress).await?;
    if !handed_back.is_empty() && !state.suspended {
        super::suspend::set_entries(&kube, state.engine, &stamp, &rendered, &handed_back, false)
            .await?;
    }
    // The packages: every directory pushed again, the objects applied again (the files may
    // have changed), and the engine asked to read them now.
    let packages = super::packages::load_all(&state.packages, state.engine)?;
    let packages_pushed = if packages.is_empty() {
        Vec::new()
    } else {
        let t = Instant::now();
        progress.start("packages", &format!("{} package(s)", packages.len()));
        let done = super::packages::push_and_apply(
            &kube,
            &super::packages::PackageTarget::of(&state, name),
            &packages,
            &gitea,
            settings.step_timeout,
        )
        .await?;
        progress.done(
            "packages",
            t.elapsed(),
            &format!("{} repositories pushed", done.pushed.len()),
        );
        done.pushed
    };
    let paused = state.hold || state.suspended;
    if !paused {
        super::packages::request_reconcile(
            &kube,
            &super::packages::PackageTarget::of(&state, name),
            &packages,
            &gitea,
        )
        .await?;
    }
    let requested = if state.hold {
        progress.info("held: not reconciling until `kindling env approve`");
        Vec::new()
    } else if state.suspended {
        progress.info(&format!(
            "suspended: pushed, not reconciling until `kindling env resume {name}`"
        ));
        Vec::new()
    } else {
        engine::request_reconcile(&kube, state.engine, &stamp, time::OffsetDateTime::now_utc())
            .await?
    };
    let status = match wait {
        Some(timeout) if !paused => {
            let t = Instant::now();
            progress.start("reconcile", &format!("waiting for {}", short(&commit)));
            let s = follow(&kube, state.engine, &stamp, timeout, progress, |s| {
                s.reconciled_at(&commit)
            })
            .await?;
            progress.done("reconcile", t.elapsed(), "every entry at the new commit");
            Some(s)
        }
        _ => None,
    };
    Ok(SyncReport {
        env: name.to_string(),
        commit,
        changed,
        requested,
        packages: packages_pushed,
        status,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}
