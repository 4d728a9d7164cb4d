//! `env up [NAME] STACK` and `env down [NAME] STACK`: several stacks on one env, as HostK8s'
//! `make up NAME` / `make down NAME` run them on one cluster.
//!
//! HostK8s (danielscholl-osdu/hostk8s@2add0a5 infra/scripts/deploy-stack.py) gives each
//! stack its own bootstrap Kustomization; `down` deletes the Kustomizations labelled with
//! the stack, and Flux prunes what they applied. Its storage cleanup (manage-storage.py
//! `cleanup_storage`) deletes the stack's PersistentVolumes and keeps the data and the
//! StorageClasses. kindling does the same under its one root per env: the stacks' entries
//! join the env's stamp (`crate::stamp::with_stacks`), pushed as one snapshot. Unlike
//! HostK8s, an entry two stacks share stays until the last of them goes down (HostK8s
//! deletes the shared components' source with the stack that labelled them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::follow::follow;
use super::open::{live_kube_of, load_locked, stamp_of};
use super::state::{AddedStack, EnvState};
use super::steps::push::short;
use super::{EnvError, Settings};
use crate::engine::{self, EngineStatus, Readiness};
use crate::stamp::{self, Stamp};
use crate::ui::Progress;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpReport {
    pub env: String,
    pub stack: String,
    /// The stack's entries, in dependency order of the env's stamp.
    pub entries: Vec<String>,
    /// Of those, the ones another stack of the env declares too (one object, shared).
    pub shared: Vec<String>,
    pub commit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<EngineStatus>,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownReport {
    pub env: String,
    pub stack: String,
    /// False when the stack was not up: nothing was changed.
    pub was_up: bool,
    pub removed: Vec<String>,
    /// The stack's entries another stack still declares: they stay.
    pub kept_shared: Vec<String>,
    /// The stack's storage on the host, kept for its next `env up` (`env delete --purge`
    /// removes it with the env).
    pub storage_kept: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

pub async fn up(
    settings: &Settings,
    name: &str,
    stack_arg: &str,
    wait: Option<Duration>,
    progress: &Progress,
) -> Result<UpReport, EnvError> {
    let started = Instant::now();
    let (_lock, state) = load_locked(settings, name, "env up")?;
    super::open::refuse_when_suspended(&state, "up")?;
    let (dir, stack) = find_stack(&state, stack_arg)?;
    let added_name = stack_name(&state.source, &dir);
    let mut after = state.clone();
    if !same_dir(&dir, &state.stamp_dir) && !after.stacks.iter().any(|s| same_dir(&s.dir, &dir)) {
        after.stacks.push(AddedStack {
            name: added_name.clone(),
            dir: dir.clone(),
        });
    }
    // The add-ons the env's stacks now need from the cluster (Vault for a stack whose
    // ExternalSecrets read `vault-backend`), as a create with all of them would choose.
    let new_addons = addons_now_needed(&after)?;
    for addon in &new_addons {
        after.addons.push(addon.name().to_string());
    }
    // Everything the bring-up would fail on is found before anything changes: the stacks
    // must fit together, their secrets may read what they read, the nodes must mount the
    // new storage (mounts are fixed when the cluster is made).
    let merged = stamp_of(&settings.data_dir, &after)?;
    engine::secrets::check_host_values(&merged, &settings.allow_secret_from)?;
    let missing = super::storage::missing_mounts(&after, &merged);
    if !missing.is_empty() {
        return Err(super::storage::missing_mounts_error(
            name,
            &added_name,
            &missing,
        ));
    }
    let others = stamp_of(&settings.data_dir, &without(&state, &dir))?;
    let entries: Vec<String> = merged
        .ordered_entries()
        .filter(|e| stack.entry(&e.name).is_some())
        .map(|e| e.name.clone())
        .collect();
    let shared = entries
        .iter()
        .filter(|e| others.entry(e).is_some())
        .cloned()
        .collect();
    let (kube, _) = live_kube_of(&after, progress).await?;
    // A stack that counts on cert-manager where the env's stamps did not: the cluster's is
    // asked about now, and the stamp fitted to the answer.
    let merged =
        match super::open::ask_about_the_clusters_cert_manager(&kube, &mut after, &merged).await? {
            true => stamp_of(&settings.data_dir, &after)?,
            false => merged,
        };
    for note in crate::addons::fetch_manifests(
        &new_addons,
        &settings.data_dir,
        &settings.manifest_dirs(),
        settings.local_manifests(),
    )? {
        progress.warn(&note);
    }
    for addon in &new_addons {
        progress.info(&format!(
            "add-on {} added: stack {added_name} needs it",
            addon.name()
        ));
    }
    let commit = super::bring_up::bring_up(settings, &mut after, &merged, &kube, progress).await?;
    let status = match wait {
        Some(timeout) if !after.hold => {
            let t = Instant::now();
            progress.start("reconcile", &format!("stack {added_name}"));
            let ready = |s: &EngineStatus| {
                entries.iter().all(|name| {
                    s.entries
                        .iter()
                        .any(|e| &e.name == name && e.readiness == Readiness::Ready)
                })
            };
            let s = follow(&kube, after.engine, &merged, timeout, progress, ready).await?;
            progress.done(
                "reconcile",
                t.elapsed(),
                &format!("{} entries of {added_name} Ready", entries.len()),
            );
            Some(s)
        }
        _ => None,
    };
    Ok(UpReport {
        env: name.to_string(),
        stack: added_name,
        entries,
        shared,
        commit,
        status,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

pub async fn down(
    settings: &Settings,
    name: &str,
    stack_arg: &str,
    progress: &Progress,
) -> Result<DownReport, EnvError> {
    let (_lock, state) = load_locked(settings, name, "env down")?;
    let (dir, stack) = find_stack(&state, stack_arg)?;
    let stack_name = stack_name(&state.source, &dir);
    if same_dir(&dir, &state.stamp_dir) {
        return Err(EnvError::BadInput(format!(
            "{stack_name} is the stamp env {name} was created with, not a stack `env up` added\nhelp: `kindling env delete {name}` removes it with the env; `kindling env restart {name} --stamp OTHER` switches to another stamp"
        )));
    }
    if !state.stacks.iter().any(|s| same_dir(&s.dir, &dir))
        && let Some(pending) = state.removing.clone()
        && pending.what == format!("stack {stack_name}")
    {
        // An earlier `env down` took it out of the root and stopped before the rest.
        let (kube, _) = live_kube_of(&state, progress).await?;
        progress.start("remove", &format!("{} (finishing)", pending.what));
        let t = Instant::now();
        super::removal::finish(&kube, &state, &pending, settings.step_timeout).await?;
        let mut state = state;
        state.removing = None;
        state.save(&settings.env_dir(name))?;
        progress.done("remove", t.elapsed(), "finished");
        return Ok(DownReport {
            env: name.to_string(),
            stack: stack_name,
            was_up: true,
            removed: pending.entries,
            kept_shared: Vec::new(),
            storage_kept: pending.storage_kept,
            commit: state.commit.clone(),
        });
    }
    if !state.stacks.iter().any(|s| same_dir(&s.dir, &dir)) {
        let up: Vec<&str> = state.stacks.iter().map(|s| s.name.as_str()).collect();
        progress.info(&format!(
            "stack {stack_name} is not up on env {name}; nothing to remove (stacks up: {})",
            if up.is_empty() {
                "none besides the env's stamp".to_string()
            } else {
                up.join(", ")
            }
        ));
        return Ok(DownReport {
            env: name.to_string(),
            stack: stack_name,
            was_up: false,
            removed: Vec::new(),
            kept_shared: Vec::new(),
            storage_kept: Vec::new(),
            commit: None,
        });
    }
    super::open::refuse_when_suspended(&state, "down")?;
    let before = stamp_of(&settings.data_dir, &state)?;
    let mut after_state = without(&state, &dir);
    let after = stamp_of(&settings.data_dir, &after_state)?;
    let removed: Vec<String> = before
        .ordered_entries()
        .filter(|e| after.entry(&e.name).is_none())
        .map(|e| e.name.clone())
        .collect();
    let kept_shared = stack
        .entries
        .iter()
        .filter(|e| after.entry(&e.name).is_some())
        .map(|e| e.name.clone())
        .collect();
    let gone_storage: Vec<&stamp::storage::StorageDir> = before
        .storage
        .iter()
        .filter(|d| !after.storage.contains(d))
        .collect();
    let gone_secrets: Vec<&stamp::BootstrapSecret> = before
        .secrets
        .iter()
        .filter(|s| !after.secrets.contains(s))
        .collect();
    let removal = super::removal::Removal {
        what: format!("stack {stack_name}"),
        entries: removed.clone(),
        volumes: gone_storage.iter().map(|d| d.volume_name.clone()).collect(),
        // Secrets that go through Vault are made by External Secrets, not by kindling.
        secrets: gone_secrets
            .iter()
            .filter(|s| !s.through_vault)
            .map(|s| super::removal::Named {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
            })
            .collect(),
        namespace: None,
        storage_kept: gone_storage
            .iter()
            .map(|d| super::storage::host_dir(&settings.data_dir, name, &d.path))
            .filter(|p| p.exists())
            .collect(),
    };
    let (kube, _) = live_kube_of(&state, progress).await?;
    // The root first, without the stack: from then on the engine itself prunes it too. What
    // is left to remove is recorded with it, so a rerun finishes the job.
    after_state.removing = Some(removal.clone());
    let commit =
        super::bring_up::bring_up(settings, &mut after_state, &after, &kube, progress).await?;
    super::removal::injected_failure(settings)?;
    let t = Instant::now();
    progress.start("remove", &format!("stack {stack_name}"));
    super::removal::finish(&kube, &state, &removal, settings.step_timeout).await?;
    after_state.removing = None;
    after_state.save(&settings.env_dir(name))?;
    progress.done(
        "remove",
        t.elapsed(),
        &format!(
            "{} entries removed at commit {}",
            removed.len(),
            short(&commit)
        ),
    );
    Ok(DownReport {
        env: name.to_string(),
        stack: stack_name,
        was_up: true,
        removed,
        kept_shared,
        storage_kept: removal.storage_kept,
        commit: Some(commit),
    })
}

/// The add-ons the env's stamp and stacks call for (`crate::addons::chosen`, from the env's
/// profile or HostK8s' defaults) that the env was not made with.
fn addons_now_needed(state: &EnvState) -> Result<Vec<crate::addons::Addon>, EnvError> {
    // A cluster kindling did not make has its own (create leaves them out too).
    if !state.provider.makes_the_cluster() {
        return Ok(Vec::new());
    }
    let profile = match &state.profile {
        Some(path) => Some(crate::cluster::load_profile(path)?),
        None => None,
    };
    let listed = profile.as_ref().and_then(|p| p.spec.addons.as_deref());
    let own = super::open::with_env_stacks(stamp::load(&state.stamp_dir, None)?, state)?;
    Ok(crate::addons::chosen(listed, &own)
        .into_iter()
        .filter(|a| !state.addons.iter().any(|n| n == a.name()))
        .collect())
}

/// The stack's directory (looked up as `--stamp` is, under the env's source) and the stack.
fn find_stack(state: &EnvState, arg: &str) -> Result<(PathBuf, Stamp), EnvError> {
    // The loader's directory is absolute (and canonical): what the state records must be
    // found again from any working directory.
    let stack = stamp::load(&stamp::locate_stamp(arg, &state.source)?, None)?;
    Ok((stack.dir.clone(), stack))
}

/// Paths compared as the same directory however they were spelt.
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    canonical(a) == canonical(b)
}

/// The name a HostK8s user gives the stack (`foundation/postgres`): its path under
/// `software/stacks`, else its directory's name.
fn stack_name(source: &Path, dir: &Path) -> String {
    dir.strip_prefix(canonical(source).join("software/stacks"))
        .ok()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
}

fn without(state: &EnvState, dir: &Path) -> EnvState {
    let mut s = state.clone();
    s.stacks.retain(|a| !same_dir(&a.dir, dir));
    s
}
