//! `env suspend` and `env resume` (HostK8s `make suspend` / `make resume`): reconciliation
//! paused and resumed, the cluster left as it is.
//!
//! - Flux: `spec.suspend` on every object kindling made for the stamp (the GitRepository,
//!   the root and entry Kustomizations, the HelmReleases and their HelmRepositories), as
//!   `flux suspend` patches it (fluxcd/flux2 cmd/flux/suspend.go: a merge patch of
//!   `spec.suspend`); each controller then returns early for the object (kustomize-controller
//!   v1.9.4 and helm-controller v1.6.3 Reconcile; source-controller keeps the artifact it has).
//!   HostK8s's flux-suspend.py suspends the GitRepositories only; the rest is suspended too, so
//!   a drift in the cluster is not repaired either while the env is paused.
//! - Argo CD: automated sync off on the root Application, then on each entry's (the root,
//!   syncing no more, cannot put it back); resume restores each one's rendered policy.
//!
//! `env sync` on a suspended env pushes and does not ask for reconciliation; `env restart` and
//! `env approve` refuse until `env resume`.

use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use super::open::{gitea_of, live_kube_of, load_locked, stamp_of};
use super::steps::push;
use super::{EnvError, Settings};
use crate::engine::{self, Engine, PatchRequest, argo, flux};
use crate::stamp::Source;
use crate::ui::Progress;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuspendReport {
    pub env: String,
    pub suspended: bool,
    /// The objects patched (`Kind name`), in order.
    pub patched: Vec<String>,
    pub duration_ms: u64,
}

pub async fn suspend(
    settings: &Settings,
    name: &str,
    progress: &Progress,
) -> Result<SuspendReport, EnvError> {
    set(settings, name, true, progress).await
}

pub async fn resume(
    settings: &Settings,
    name: &str,
    progress: &Progress,
) -> Result<SuspendReport, EnvError> {
    set(settings, name, false, progress).await
}

async fn set(
    settings: &Settings,
    name: &str,
    suspend: bool,
    progress: &Progress,
) -> Result<SuspendReport, EnvError> {
    let started = Instant::now();
    let env_dir = settings.env_dir(name);
    let command = if suspend { "env suspend" } else { "env resume" };
    let (_lock, mut state) = load_locked(settings, name, command)?;
    if !state.is_done("bootstrap") {
        return Err(EnvError::Preflight(format!(
            "env {name} is not bootstrapped yet; finish `kindling env create {name} --stamp {}` first",
            state.stamp
        )));
    }
    if state.hold {
        return Err(EnvError::Preflight(format!(
            "env {name} is held: nothing reconciles until `kindling env approve {name}`"
        )));
    }
    let stamp = stamp_of(&settings.data_dir, &state)?;
    let (kube, _) = live_kube_of(&state, progress).await?;
    let mut requests = match state.engine {
        Engine::Flux => flux_requests(&stamp, suspend),
        Engine::Argo if suspend => argo_suspend_requests(&stamp),
        Engine::Argo => {
            let gitea = gitea_of(&state)?;
            let rendered = push::render_for_env(&stamp, &state, &gitea, &settings.data_dir)?;
            argo_resume_requests(&stamp, rendered.documents())
        }
    };
    // Suspend from the top (nothing re-applies what was suspended below it); resume from the
    // source down.
    if !suspend {
        requests.reverse();
    }
    let t = Instant::now();
    progress.start(
        if suspend { "suspend" } else { "resume" },
        state.engine.name(),
    );
    // Recorded before the patches on suspend (a failure half-way leaves an env that sync and
    // restart treat as suspended; suspend or resume again repairs it), after them on resume.
    if suspend {
        state.suspended = true;
        state.save(&env_dir)?;
    }
    let mut patched = Vec::new();
    for r in &requests {
        if !patch_if_present(&kube, r).await? {
            continue;
        }
        patched.push(format!("{} {}", r.kind, r.name));
        if suspend
            && state.engine == Engine::Argo
            && r.name == argo::root_name(&stamp)
            && terminate_running_sync(&kube, &r.namespace, &r.name).await?
        {
            patched.push(format!("Application {} (running sync terminated)", r.name));
        }
    }
    state.suspended = suspend;
    state.save(&env_dir)?;
    if !suspend && !state.hold {
        engine::request_reconcile(&kube, state.engine, &stamp, time::OffsetDateTime::now_utc())
            .await?;
    }
    progress.done(
        if suspend { "suspend" } else { "resume" },
        t.elapsed(),
        &format!("{} objects", patched.len()),
    );
    // A dev-mode Vault that restarted while the env was suspended (`env start` leaves a
    // suspended env alone) comes back empty.
    if !suspend {
        super::vault::seed_with_progress(&kube, &stamp, settings, name, progress).await?;
    }
    Ok(SuspendReport {
        env: name.to_string(),
        suspended: suspend,
        patched,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Ends the root's sync if one is running, which would go on applying its later waves (the
/// entries' Applications with automated sync among them), as `argocd app terminate-op` does:
/// argo-cd v3.5.1 server/application/application.go TerminateOperation sets the phase to
/// Terminating and the controller stops the sync. The CRD has no status subresource. Whether
/// one was running.
async fn terminate_running_sync(
    kube: &crate::kube::KubeClient,
    namespace: &str,
    name: &str,
) -> Result<bool, EnvError> {
    let app = kube
        .get(argo::API_VERSION, "Application", Some(namespace), name)
        .await?;
    if !app.is_some_and(|a| a["status"]["operationState"]["phase"] == "Running") {
        return Ok(false);
    }
    kube.merge_patch(
        argo::API_VERSION,
        "Application",
        Some(namespace),
        name,
        &json!({"status": {"operationState": {"phase": "Terminating"}}}),
    )
    .await?;
    Ok(true)
}

/// Pauses (`take`) or resumes the engine objects of the entries `names` alone: `env apply`
/// takes an entry over and `env sync` hands it back. The same patches as `env suspend` /
/// `env resume`, for those entries only (resuming an Argo CD Application restores the
/// automated sync the render gives it).
pub async fn set_entries(
    kube: &crate::kube::KubeClient,
    engine: Engine,
    stamp: &crate::stamp::Stamp,
    rendered: &crate::stamp::render::Rendered,
    names: &[String],
    take: bool,
) -> Result<(), EnvError> {
    let requests = match (engine, take) {
        (Engine::Flux, _) => flux_requests(stamp, take),
        (Engine::Argo, true) => argo_suspend_requests(stamp),
        (Engine::Argo, false) => argo_resume_requests(stamp, rendered.documents()),
    };
    for r in requests.iter().filter(|r| names.contains(&r.name)) {
        patch_if_present(kube, r).await?;
    }
    Ok(())
}

/// Applies one pause or resume patch; an object the engine has not made yet is left (an
/// entry's appears only once the root applied it). Whether it was patched.
async fn patch_if_present(
    kube: &crate::kube::KubeClient,
    r: &PatchRequest,
) -> Result<bool, EnvError> {
    if kube
        .get(&r.api_version, &r.kind, Some(&r.namespace), &r.name)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    kube.merge_patch(
        &r.api_version,
        &r.kind,
        Some(&r.namespace),
        &r.name,
        &r.patch,
    )
    .await?;
    Ok(true)
}

/// How many of the objects `env suspend` pauses are paused now, read from the cluster: Flux
/// objects with `spec.suspend: true`, Argo CD Applications without automated sync (the root
/// and entries; a held env's are counted too, being paused as well).
pub async fn suspended_objects(
    kube: &crate::kube::KubeClient,
    engine: Engine,
    stamp: &crate::stamp::Stamp,
) -> Result<usize, EnvError> {
    let requests = match engine {
        Engine::Flux => flux_requests(stamp, true),
        Engine::Argo => argo_suspend_requests(stamp),
    };
    let mut paused = 0;
    for r in &requests {
        let Some(live) = kube
            .get(&r.api_version, &r.kind, Some(&r.namespace), &r.name)
            .await?
        else {
            continue;
        };
        let is_paused = match engine {
            Engine::Flux => live["spec"]["suspend"] == true,
            Engine::Argo => live["spec"]["syncPolicy"]["automated"].is_null(),
        };
        paused += usize::from(is_paused);
    }
    Ok(paused)
}

/// Every Flux object kindling made for `stamp`, root first, with `spec.suspend` set.
fn flux_requests(stamp: &crate::stamp::Stamp, suspend: bool) -> Vec<PatchRequest> {
    let patch = json!({"spec": {"suspend": suspend}});
    let mut requests: Vec<PatchRequest> =
        flux::reconcile_requests(stamp, time::OffsetDateTime::UNIX_EPOCH)
            .into_iter()
            .map(|r| PatchRequest {
                patch: patch.clone(),
                ..r
            })
            .collect();
    // The root Kustomization before the GitRepository: the order `reconcile_requests` gives
    // is source first.
    requests.swap(0, 1);
    for entry in stamp.ordered_entries() {
        if matches!(entry.source, Source::Helm(_)) {
            requests.push(PatchRequest {
                api_version: "source.toolkit.fluxcd.io/v1".to_string(),
                kind: "HelmRepository".to_string(),
                namespace: stamp.flux_namespace().to_string(),
                name: entry.name.clone(),
                patch: patch.clone(),
            });
        }
    }
    requests
}

fn argo_request(stamp: &crate::stamp::Stamp, name: &str, patch: Value) -> PatchRequest {
    PatchRequest {
        api_version: argo::API_VERSION.to_string(),
        kind: "Application".to_string(),
        namespace: stamp.argo_namespace().to_string(),
        name: name.to_string(),
        patch,
    }
}

/// Automated sync off: the root first, then each entry's Application.
fn argo_suspend_requests(stamp: &crate::stamp::Stamp) -> Vec<PatchRequest> {
    let off = json!({"spec": {"syncPolicy": {"automated": null}}});
    std::iter::once(argo::root_name(stamp))
        .chain(stamp.ordered_entries().map(|e| e.name.clone()))
        .map(|name| argo_request(stamp, &name, off.clone()))
        .collect()
}

/// Each Application's rendered automated policy back, in suspend order (reversed by the
/// caller: entries first, the root last).
fn argo_resume_requests<'a>(
    stamp: &crate::stamp::Stamp,
    rendered: impl Iterator<Item = &'a Value>,
) -> Vec<PatchRequest> {
    let rendered: Vec<&Value> = rendered.filter(|d| d["kind"] == "Application").collect();
    std::iter::once(argo::root_name(stamp))
        .chain(stamp.ordered_entries().map(|e| e.name.clone()))
        .filter_map(|name| {
            let app = rendered
                .iter()
                .find(|d| d["metadata"]["name"] == name.as_str())?;
            let automated = app["spec"]["syncPolicy"]["automated"].clone();
            Some(argo_request(
                stamp,
                &name,
                json!({"spec": {"syncPolicy": {"automated": automated}}}),
            ))
        })
        .collect()
}
