//! The steps of `env create`, one module each, in the manner of kind's create actions
//! (kubernetes-sigs/kind `pkg/cluster/internal/create/actions/*`): each is a small type with its
//! name, a look at the world to decide whether it is already done, its work, and the one line
//! it prints. The orchestrator (`env::create`) runs them in order; what one step makes for a
//! later one (the Docker client, the CA Secret, the rendered bundle) is kept in [`Ctx`].

pub mod bootstrap;
pub mod ca;
pub mod cluster;
pub mod connect;
pub mod engine;
pub mod gitea;
pub mod images;
pub mod packages;
pub mod preflight;
pub mod push;
pub mod reconcile;
pub mod registry;
pub mod secrets;
pub mod storage;
pub mod vault;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use super::state::{ClusterState, EnvState, GiteaState};
use super::{CreateOptions, EnvError, Settings};
use crate::cluster::ResolvedCluster;
use crate::cluster::provider::ClusterProvider;
use crate::docker::DockerClient;
use crate::engine::EngineStatus;
use crate::kube::KubeClient;
use crate::stamp::Stamp;
use crate::stamp::render::Rendered;
use crate::ui::Progress;

/// The steps, in order. The steps of one group run side by side.
pub const ALL: &[&[&dyn Step]] = &[
    &[&preflight::Preflight],
    &[&ca::Ca],
    &[&cluster::Cluster, &gitea::Gitea, &registry::Registry],
    &[&connect::Connect],
    &[&images::Images],
    &[&push::Push],
    &[&engine::Engine],
    &[&secrets::Secrets],
    &[&storage::Storage],
    &[&bootstrap::Bootstrap],
    &[&packages::Packages],
    &[&vault::Vault],
    &[&reconcile::Reconcile],
];

/// The step names in order; `KINDLING_FAIL_AT` takes one of these.
pub fn names() -> Vec<&'static str> {
    ALL.iter()
        .flat_map(|g| g.iter().map(|s| s.name()))
        .collect()
}

/// The steps an env still lacks, in order: the registry only if the profile wanted one,
/// reconcile not while the env is held, the images not once the stamp is pushed.
pub fn unfinished(state: &EnvState) -> Vec<&'static str> {
    names()
        .into_iter()
        .filter(|s| *s != "registry" || state.ports.registry.is_some())
        .filter(|s| !matches!(*s, "reconcile" | "vault") || !state.hold)
        // An env made before the images step existed went on to push without it; one made
        // before the storage and vault steps bootstrapped without them, with no storage and
        // no Vault to provide.
        .filter(|s| *s != "images" || !state.is_done("push"))
        // An env without packages (one made before the step existed, too) lacks nothing.
        .filter(|s| *s != "packages" || !state.packages.is_empty())
        .filter(|s| *s != "storage" || !state.is_done("bootstrap") || !state.storage.is_empty())
        .filter(|s| {
            *s != "vault"
                || !state.is_done("bootstrap")
                || state.addons.iter().any(|a| a == "vault")
        })
        .filter(|s| !state.is_done(s))
        .collect()
}

/// The skip of a step that waits for the engine: none runs while the env is held.
pub(super) fn skip_while_held<'a>(ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
    Box::pin(async move {
        ctx.state()
            .hold
            .then(|| "held until `kindling env approve`".to_string())
    })
}

/// One step of `env create`.
pub trait Step: Sync {
    /// The name in state.json, progress lines, `KINDLING_FAIL_AT` and the JSON report.
    fn name(&self) -> &'static str;

    /// What the progress line says while the step runs.
    fn line(&self, ctx: &Ctx<'_>) -> String;

    /// `Some(why)` when what the step makes is already there. A step that makes something
    /// lasting looks at the world, not only at state.json: a cluster or container removed behind
    /// kindling's back is made again. Steps whose work is cheap and idempotent always run.
    fn skip<'a>(&'a self, _ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
        Box::pin(async { None })
    }

    /// Whether a skip means the step has nothing left to do, so it counts as done (a step
    /// skipped while the env is held is not done).
    fn skip_is_done(&self) -> bool {
        false
    }

    /// Does the work; returns the detail of the step's done line.
    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>>;
}

/// What the steps share while `env create` runs.
pub struct Ctx<'a> {
    pub opts: &'a CreateOptions,
    pub settings: &'a Settings,
    pub progress: &'a Progress,
    pub stamp: &'a Stamp,
    pub resolved: &'a ResolvedCluster,
    pub env_dir: PathBuf,
    /// The env's record. Steps that run side by side each lock it briefly, never across an
    /// await.
    state: Mutex<EnvState>,
    pub(super) docker: OnceLock<DockerClient>,
    pub(super) provider: OnceLock<Arc<dyn ClusterProvider + Send + Sync>>,
    pub(super) ca_secret: OnceLock<Value>,
    pub(super) rendered: OnceLock<Rendered>,
    pub(super) status: OnceLock<EngineStatus>,
    env_network: tokio::sync::OnceCell<String>,
    kube: tokio::sync::OnceCell<KubeClient>,
    /// Set by Ctrl-C. The orchestrator stops between steps; a step that only waits (the
    /// reconcile wait) stops at once, since it has nothing half-done to protect.
    pub interrupted: Arc<std::sync::atomic::AtomicBool>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        opts: &'a CreateOptions,
        settings: &'a Settings,
        progress: &'a Progress,
        stamp: &'a Stamp,
        resolved: &'a ResolvedCluster,
        state: EnvState,
    ) -> Ctx<'a> {
        Ctx {
            opts,
            settings,
            progress,
            stamp,
            resolved,
            env_dir: settings.env_dir(&opts.name),
            state: Mutex::new(state),
            docker: OnceLock::new(),
            provider: OnceLock::new(),
            ca_secret: OnceLock::new(),
            rendered: OnceLock::new(),
            status: OnceLock::new(),
            env_network: tokio::sync::OnceCell::new(),
            kube: tokio::sync::OnceCell::new(),
            interrupted: Arc::default(),
        }
    }

    /// Whether Ctrl-C was pressed.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn env(&self) -> &str {
        &self.opts.name
    }

    pub fn state(&self) -> MutexGuard<'_, EnvState> {
        // A step that panicked while holding the lock left nothing half-written we rely on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn into_state(self) -> EnvState {
        self.state.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    pub fn save(&self) -> Result<(), EnvError> {
        self.state().save(&self.env_dir)
    }

    pub fn docker(&self) -> Result<&DockerClient, EnvError> {
        self.docker
            .get()
            .ok_or_else(|| missing("the Docker client"))
    }

    pub fn provider(&self) -> Result<Arc<dyn ClusterProvider + Send + Sync>, EnvError> {
        self.provider
            .get()
            .cloned()
            .ok_or_else(|| missing("the provider CLI"))
    }

    pub fn ca_secret(&self) -> Result<&Value, EnvError> {
        self.ca_secret.get().ok_or_else(|| missing("the CA Secret"))
    }

    pub fn rendered(&self) -> Result<&Rendered, EnvError> {
        self.rendered
            .get()
            .ok_or_else(|| missing("the rendered stamp"))
    }

    pub fn cluster_state(&self) -> Result<ClusterState, EnvError> {
        self.state()
            .cluster
            .clone()
            .ok_or_else(|| missing("the cluster record"))
    }

    /// The Gitea record; a Gitea in the cluster with the URL of this process's port-forward.
    pub fn gitea_state(&self) -> Result<GiteaState, EnvError> {
        let state = self.state().clone();
        if state.gitea.is_none() {
            return Err(missing("the Gitea record"));
        }
        super::open::gitea_of(&state)
    }

    /// The env's own Docker network, made once: Gitea and the registry start on it side by
    /// side, and two concurrent creates of one name give Docker two networks of that name.
    pub async fn env_network(&self) -> Result<&str, EnvError> {
        let name = self
            .env_network
            .get_or_try_init(|| async {
                let name = crate::env::network_name(self.env());
                self.docker()?
                    .ensure_network(&name, &crate::docker::env_labels(self.env()))
                    .await?;
                Ok::<_, EnvError>(name)
            })
            .await?;
        Ok(name)
    }

    /// The API client of the env's cluster, once the cluster step has recorded it.
    pub async fn kube(&self) -> Result<&KubeClient, EnvError> {
        self.kube
            .get_or_try_init(|| async {
                let cluster = self.cluster_state()?;
                let kube = KubeClient::from_kubeconfig(&cluster.kubeconfig, Some(&cluster.context))
                    .await?;
                Ok::<_, EnvError>(super::open::owned(kube, &self.state(), &self.env_dir))
            })
            .await
    }

    /// For steps that make something lasting: whether state.json says it was made and `exists`
    /// confirms it. Made before but gone now: say so and forget it, so it is made again.
    pub fn made_and_present(&self, step: &str, exists: bool) -> bool {
        let mut state = self.state();
        if !state.is_done(step) {
            return false;
        }
        if !exists {
            self.progress.warn(&format!(
                "{step} was created before but is gone; making it again"
            ));
            state.forget(step);
        }
        exists
    }
}

fn missing(what: &str) -> EnvError {
    EnvError::Preflight(format!(
        "{what} is not there: an earlier step did not run (this is a bug in kindling)"
    ))
}

/// A blocking task that died: its panic, as an error.
pub fn join_error(e: tokio::task::JoinError) -> EnvError {
    EnvError::Preflight(format!("a background task failed: {e}"))
}

/// Whether the Docker container `name` is running.
async fn running(ctx: &Ctx<'_>, name: &str) -> bool {
    match ctx.docker() {
        Ok(docker) => docker.state(name).await.is_ok_and(|s| s == "running"),
        Err(_) => false,
    }
}
