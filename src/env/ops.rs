//! The commands on an existing env: status, sync, approve, restart, watch, delete, list,
//! kubeconfig. Each mutating one holds the env's lock.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::create::{self, apply_secrets, bootstrap_objects, push};
use super::lock::EnvLock;
use super::state::{EnvState, env_names};
use super::{EnvError, Settings, provider_cli};
use crate::docker::{DockerClient, EnvObjects, SweepReport};
use crate::engine::{self, Engine, EngineStatus};
use crate::kube::{ApplyOptions, KubeClient};
use crate::pki;
use crate::stamp::{self, Stamp};
use crate::ui::Progress;

/// How often `--wait` looks at the engine's objects.
fn poll_interval() -> Duration {
    Duration::from_millis(
        std::env::var("KINDLING_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    )
}

pub fn load(settings: &Settings, name: &str) -> Result<EnvState, EnvError> {
    super::validate_name(name)?;
    EnvState::load(&settings.env_dir(name))?.ok_or_else(|| EnvError::NotFound(name.to_string()))
}

/// The stamp rendered for the env's engine and Gitea.
fn render_for(
    stamp: &Stamp,
    engine: Engine,
    gitea: &super::state::GiteaState,
) -> Result<crate::stamp::render::Rendered, EnvError> {
    Ok(stamp::render::render(
        stamp,
        engine,
        &create::render_options(gitea),
    )?)
}

pub fn stamp_of(state: &EnvState) -> Result<Stamp, EnvError> {
    Ok(stamp::load(&state.stamp_dir, None)?)
}

pub async fn kube_of(state: &EnvState) -> Result<KubeClient, EnvError> {
    let cluster = state.cluster.as_ref().ok_or_else(|| {
        EnvError::Preflight(format!(
            "env {} has no cluster yet\nhelp: finish it with `kindling env create {} --stamp {}`",
            state.name, state.name, state.stamp
        ))
    })?;
    Ok(KubeClient::from_kubeconfig(&cluster.kubeconfig, Some(&cluster.context)).await?)
}

fn blocking_line(status: &EngineStatus) -> String {
    if status.awaiting_approval {
        return ": awaiting approval (`kindling env approve`)".into();
    }
    match status.first_blocking() {
        Some(e) => format!(
            ": {} is {} ({}){}",
            e.name,
            e.readiness.label(),
            e.reason,
            if e.message.is_empty() {
                String::new()
            } else {
                format!(": {}", e.message.lines().next().unwrap_or_default())
            }
        ),
        None => String::new(),
    }
}

/// Follows the engine's status until `until` holds; on timeout the error names the first
/// blocking entry and why.
pub async fn follow(
    kube: &KubeClient,
    engine: Engine,
    stamp: &Stamp,
    timeout: Duration,
    progress: &Progress,
    until: impl Fn(&EngineStatus) -> bool,
) -> Result<EngineStatus, EnvError> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let status = engine::status(kube, engine, stamp).await?;
        if until(&status) {
            return Ok(status);
        }
        let line = blocking_line(&status);
        if line != last {
            let ready = status
                .entries
                .iter()
                .filter(|e| e.readiness == engine::Readiness::Ready)
                .count();
            progress.info(&format!("{ready}/{} Ready{line}", status.entries.len()));
            last = line.clone();
        }
        if started.elapsed() >= timeout {
            return Err(EnvError::TimedOut {
                what: "the stamp to be reconciled".into(),
                seconds: timeout.as_secs(),
                blocking: line,
            });
        }
        tokio::time::sleep(poll_interval()).await;
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub name: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub env: String,
    pub stamp: String,
    pub provider: String,
    pub engine: String,
    /// Steps of `env create` not finished yet (a rerun of create completes them).
    pub unfinished_steps: Vec<String>,
    pub cluster: ComponentStatus,
    pub gitea: ComponentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<ComponentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The stamp's ingress hosts on the env's HTTPS port.
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciliation: Option<EngineStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub ready: bool,
}

async fn container_state(docker: Option<&DockerClient>, name: &str) -> String {
    match docker {
        Some(d) => d
            .state(name)
            .await
            .unwrap_or_else(|e| format!("unknown ({e})")),
        None => "unknown (Docker not reachable)".into(),
    }
}

/// The env's parts and the engine's per-entry status; with `wait`, follows until every entry
/// is Ready (timing out with exit 3).
pub async fn status(
    settings: &Settings,
    name: &str,
    wait: Option<Duration>,
    progress: &Progress,
) -> Result<StatusReport, EnvError> {
    let state = load(settings, name)?;
    let stamp = stamp_of(&state)?;
    let docker = DockerClient::connect().await.ok();
    let cluster_name = crate::cluster::cluster_name(name);
    let provider = state.provider;
    let s = settings.clone();
    let env_name = name.to_string();
    let cn = cluster_name.clone();
    let exists = tokio::task::spawn_blocking(move || {
        provider_cli(provider, &s, &env_name).and_then(|p| p.exists(&cn).map_err(EnvError::from))
    })
    .await
    .map_err(|e| EnvError::Preflight(e.to_string()))?;
    let cluster = ComponentStatus {
        name: cluster_name,
        state: match &exists {
            Ok(true) => "running".into(),
            Ok(false) => "missing".into(),
            Err(e) => format!(
                "unknown ({})",
                e.to_string().lines().next().unwrap_or_default()
            ),
        },
        url: state.cluster.as_ref().map(|c| c.context.clone()),
    };
    let gitea = match &state.gitea {
        Some(g) if g.external => ComponentStatus {
            name: "external".into(),
            state: "external".into(),
            url: Some(g.url.clone()),
        },
        other => ComponentStatus {
            name: crate::gitea::container_name(name),
            state: container_state(docker.as_ref(), &crate::gitea::container_name(name)).await,
            url: other.as_ref().map(|g| g.url.clone()),
        },
    };
    let registry = match state.ports.registry {
        Some(port) => Some(ComponentStatus {
            name: crate::registry::registry_container(name),
            state: container_state(docker.as_ref(), &crate::registry::registry_container(name))
                .await,
            url: Some(format!("localhost:{port}")),
        }),
        None => None,
    };
    let unfinished_steps: Vec<String> = unfinished_steps(&state).map(str::to_string).collect();
    let mut report = StatusReport {
        env: name.to_string(),
        stamp: state.stamp.clone(),
        provider: state.provider.name().into(),
        engine: state.engine.name().into(),
        unfinished_steps,
        cluster,
        gitea,
        registry,
        commit: state.commit.clone(),
        urls: create::ingress_hosts(&stamp)
            .into_iter()
            .map(|h| format!("https://{h}:{}", state.ports.https))
            .collect(),
        reconciliation: None,
        error: None,
        ready: false,
    };
    if !state.is_done("engine") || exists.as_ref().is_ok_and(|e| !e) {
        report.error = Some("the engine is not installed yet".into());
        return Ok(report);
    }
    let kube = kube_of(&state).await?;
    let result = match wait {
        Some(timeout) => {
            follow(&kube, state.engine, &stamp, timeout, progress, |s| {
                s.all_ready()
            })
            .await
        }
        None => engine::status(&kube, state.engine, &stamp)
            .await
            .map_err(EnvError::from),
    };
    match result {
        Ok(s) => {
            report.ready = s.all_ready() && report.unfinished_steps.is_empty();
            report.reconciliation = Some(s);
        }
        Err(e @ EnvError::TimedOut { .. }) => return Err(e),
        Err(e) => report.error = Some(e.to_string()),
    }
    Ok(report)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub env: String,
    pub commit: String,
    pub changed: bool,
    pub requested: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<EngineStatus>,
    pub duration_ms: u64,
}

/// Pushes the working tree and asks the engine to reconcile now; with `wait`, follows until
/// every entry has applied the new commit.
pub async fn sync(
    settings: &Settings,
    name: &str,
    wait: Option<Duration>,
    progress: &Progress,
) -> Result<SyncReport, EnvError> {
    let started = Instant::now();
    let env_dir = settings.env_dir(name);
    let mut state = load(settings, name)?;
    let _lock = EnvLock::acquire(&env_dir, "env sync", settings.lock_wait)?;
    let stamp = stamp_of(&state)?;
    let gitea = state.gitea.clone().ok_or_else(|| {
        EnvError::Preflight(format!(
            "env {name} has no Gitea yet; finish `env create` first"
        ))
    })?;
    let rendered = render_for(&stamp, state.engine, &gitea)?;
    progress.start("push", &format!("{}", stamp.repo_root.display()));
    let t = Instant::now();
    let commit = push(&stamp, &rendered, &gitea).await?;
    let changed = state.commit.as_deref() != Some(commit.as_str());
    progress.done(
        "push",
        t.elapsed(),
        &format!(
            "commit {}{}",
            &commit[..commit.len().min(12)],
            if changed { "" } else { " (unchanged)" }
        ),
    );
    state.commit = Some(commit.clone());
    state.save(&env_dir)?;
    let kube = kube_of(&state).await?;
    let requested = if state.hold {
        progress.info("held: not reconciling until `kindling env approve`");
        Vec::new()
    } else {
        engine::request_reconcile(&kube, state.engine, &stamp, time::OffsetDateTime::now_utc())
            .await?
    };
    let status = match wait {
        Some(timeout) if !state.hold => {
            let t = Instant::now();
            progress.start(
                "reconcile",
                &format!("waiting for {}", &commit[..commit.len().min(12)]),
            );
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
        status,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

fn ca_secret(settings: &Settings, env: &str) -> Result<serde_json::Value, EnvError> {
    let (root, intermediate) =
        create::ensure_env_ca(settings, env, time::OffsetDateTime::now_utc())?;
    Ok(pki::root_ca_secret(&intermediate, &root))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproveReport {
    pub env: String,
    pub was_held: bool,
    pub requested: Vec<String>,
}

/// Lets an env created with `--hold` reconcile.
pub async fn approve(
    settings: &Settings,
    name: &str,
    progress: &Progress,
) -> Result<ApproveReport, EnvError> {
    let env_dir = settings.env_dir(name);
    let mut state = load(settings, name)?;
    let _lock = EnvLock::acquire(&env_dir, "env approve", settings.lock_wait)?;
    if !state.is_done("bootstrap") {
        return Err(EnvError::Preflight(format!(
            "env {name} is not bootstrapped yet; finish `kindling env create {name} --stamp {}` first",
            state.stamp
        )));
    }
    let stamp = stamp_of(&state)?;
    let gitea = state
        .gitea
        .clone()
        .ok_or_else(|| EnvError::Preflight("no Gitea record".into()))?;
    let rendered = render_for(&stamp, state.engine, &gitea)?;
    let objects = bootstrap_objects(state.engine, &stamp, &rendered, &gitea, false);
    let kube = kube_of(&state).await?;
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
    Ok(ApproveReport {
        env: name.to_string(),
        was_held,
        requested,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartReport {
    pub env: String,
    pub removed_stamp: String,
    pub stamp: String,
    pub commit: String,
}

/// Removes the stamp's objects through the engine and bootstraps it (or another stamp) again,
/// on the same cluster.
pub async fn restart(
    settings: &Settings,
    name: &str,
    new_stamp: Option<&str>,
    progress: &Progress,
) -> Result<RestartReport, EnvError> {
    let env_dir = settings.env_dir(name);
    let mut state = load(settings, name)?;
    let _lock = EnvLock::acquire(&env_dir, "env restart", settings.lock_wait)?;
    let old = stamp_of(&state)?;
    let kube = kube_of(&state).await?;
    let t = Instant::now();
    progress.start("remove", &format!("stamp {}", old.name));
    engine::remove_stamp(&kube, state.engine, &old, settings.step_timeout).await?;
    progress.done(
        "remove",
        t.elapsed(),
        &format!("stamp {} removed", old.name),
    );
    let stamp = match new_stamp {
        Some(arg) => create::load_stamp(arg, &state.source)?,
        None => stamp_of(&state)?,
    };
    state.stamp = stamp.name.clone();
    state.stamp_dir = stamp.dir.clone();
    state.source = stamp.repo_root.clone();
    for step in ["push", "secrets", "bootstrap", "reconcile"] {
        state.forget(step);
    }
    state.save(&env_dir)?;
    let gitea = state
        .gitea
        .clone()
        .ok_or_else(|| EnvError::Preflight("no Gitea record".into()))?;
    let rendered = render_for(&stamp, state.engine, &gitea)?;
    let t = Instant::now();
    progress.start("push", &stamp.name);
    let commit = push(&stamp, &rendered, &gitea).await?;
    state.commit = Some(commit.clone());
    state.record("push", t.elapsed());
    state.save(&env_dir)?;
    progress.done(
        "push",
        t.elapsed(),
        &format!("commit {}", &commit[..commit.len().min(12)]),
    );
    let t = Instant::now();
    apply_secrets(
        &kube,
        settings,
        progress,
        &env_dir,
        &stamp,
        &ca_secret(settings, name)?,
    )
    .await?;
    state.record("secrets", t.elapsed());
    let t = Instant::now();
    let objects = bootstrap_objects(state.engine, &stamp, &rendered, &gitea, state.hold);
    kube.apply_objects(&objects, &ApplyOptions::new(settings.step_timeout))
        .await?;
    state.record("bootstrap", t.elapsed());
    if !state.hold {
        engine::request_reconcile(&kube, state.engine, &stamp, time::OffsetDateTime::now_utc())
            .await?;
        state.record("reconcile", Duration::ZERO);
    }
    state.save(&env_dir)?;
    progress.info(&format!("stamp {} bootstrapped again", stamp.name));
    Ok(RestartReport {
        env: name.to_string(),
        removed_stamp: old.name,
        stamp: stamp.name,
        commit,
    })
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteReport {
    pub env: String,
    pub cluster: Option<String>,
    pub removed: SweepReport,
    pub state_removed: bool,
}

impl DeleteReport {
    pub fn nothing(&self) -> bool {
        self.cluster.is_none() && self.removed.is_empty() && !self.state_removed
    }
}

/// Deletes everything of an env: the cluster through its provider, every labelled Docker
/// object, the state (kubeconfig, intermediate CA, generated secrets). Safe on half-made envs
/// and when there is nothing left.
pub async fn delete(
    settings: &Settings,
    name: &str,
    progress: &Progress,
) -> Result<DeleteReport, EnvError> {
    super::validate_name(name)?;
    let env_dir = settings.env_dir(name);
    let state = EnvState::load(&env_dir)?;
    let lock = if env_dir.exists() {
        Some(EnvLock::acquire(
            &env_dir,
            "env delete",
            settings.lock_wait,
        )?)
    } else {
        None
    };
    let mut report = DeleteReport {
        env: name.to_string(),
        ..Default::default()
    };
    let docker = match DockerClient::connect().await {
        Ok(docker) => docker,
        Err(e) => {
            progress.fail("docker", &e.to_string());
            return Err(e.into());
        }
    };
    // Gitea and the registry go before the cluster: attached to its network (k3d's own), they
    // would keep the provider from removing it. So do shared caches, which are only detached.
    // The cluster's nodes may carry the env label too (k3d): they are the provider's to remove.
    for container in [
        crate::gitea::container_name(name),
        crate::registry::registry_container(name),
    ] {
        if docker.remove_container(&container).await? {
            report.removed.containers.push(container);
        }
    }
    let network = state
        .as_ref()
        .and_then(|s| s.cluster.as_ref())
        .map(|c| c.network.clone());
    if let Some(network) = network.filter(|n| n != "kind") {
        for cache in docker
            .containers_labelled(crate::docker::CACHE_LABEL)
            .await?
        {
            docker.disconnect_network(&cache, &network).await?;
        }
    }
    let cluster_name = crate::cluster::cluster_name(name);
    // Without state (an orphan), the cluster may be of either provider.
    let providers = match &state {
        Some(s) => vec![s.provider],
        None => vec![
            crate::cluster::Provider::Kind,
            crate::cluster::Provider::K3d,
        ],
    };
    let t = Instant::now();
    progress.start("cluster", &cluster_name);
    let orphan = state.is_none();
    for provider in providers {
        let s = settings.clone();
        let n = name.to_string();
        let cn = cluster_name.clone();
        let deleted = tokio::task::spawn_blocking(move || {
            let cli = match provider_cli(provider, &s, &n) {
                Ok(cli) => cli,
                // No CLI for a provider the env never used: nothing of it to delete.
                Err(_) if orphan => return Ok(false),
                Err(e) => return Err(e),
            };
            if cli.exists(&cn)? {
                cli.delete(&cn)?;
                return Ok(true);
            }
            Ok(false)
        })
        .await
        .map_err(|e| EnvError::Preflight(e.to_string()))??;
        if deleted {
            report.cluster = Some(format!("{} {cluster_name}", provider.name()));
        }
    }
    progress.done(
        "cluster",
        t.elapsed(),
        if report.cluster.is_some() {
            "deleted"
        } else {
            "none"
        },
    );
    // Then everything else labelled for the env (volumes, its network, what a crash left).
    let t = Instant::now();
    progress.start(
        "docker",
        &format!("objects labelled {}={name}", crate::ENV_LABEL),
    );
    let swept = docker.sweep(name).await?;
    report.removed.containers.extend(swept.containers);
    report.removed.volumes.extend(swept.volumes);
    report.removed.networks.extend(swept.networks);
    progress.done(
        "docker",
        t.elapsed(),
        &format!(
            "{} containers, {} volumes, {} networks",
            report.removed.containers.len(),
            report.removed.volumes.len(),
            report.removed.networks.len()
        ),
    );
    drop(lock);
    if env_dir.exists() {
        std::fs::remove_dir_all(&env_dir).map_err(|e| EnvError::State {
            path: env_dir.clone(),
            reason: e.to_string(),
        })?;
        report.state_removed = true;
    }
    Ok(report)
}

/// The create steps an env still lacks, in order: the registry only if the profile wants one,
/// reconcile not while the env is held.
fn unfinished_steps(state: &EnvState) -> impl Iterator<Item = &'static str> + '_ {
    create::STEPS
        .iter()
        .copied()
        .filter(|s| *s != "registry" || state.ports.registry.is_some())
        .filter(|s| *s != "reconcile" || !state.hold)
        .filter(|s| !state.is_done(s))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListEntry {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// `complete`, `incomplete (next: STEP)`, `held`, or `orphaned` (Docker objects, no state).
    pub state: String,
    pub docker: EnvObjects,
}

/// Envs from their state, plus labelled Docker objects no state accounts for.
pub async fn list(settings: &Settings) -> Result<Vec<ListEntry>, EnvError> {
    let mut docker_envs = match DockerClient::connect().await {
        Ok(d) => d.list_envs().await?,
        Err(_) => Default::default(),
    };
    let mut out = Vec::new();
    for name in env_names(&settings.data_dir) {
        let Ok(Some(state)) = EnvState::load(&settings.env_dir(&name)) else {
            continue;
        };
        let next = unfinished_steps(&state).next();
        out.push(ListEntry {
            state: match next {
                Some(step) => format!("incomplete (next: {step})"),
                None if state.hold => "held".into(),
                None => "complete".into(),
            },
            stamp: Some(state.stamp.clone()),
            provider: Some(state.provider.name().into()),
            engine: Some(state.engine.name().into()),
            docker: docker_envs.remove(&name).unwrap_or_default(),
            name,
        });
    }
    for (name, objects) in docker_envs {
        out.push(ListEntry {
            name,
            stamp: None,
            provider: None,
            engine: None,
            state: "orphaned".into(),
            docker: objects,
        });
    }
    Ok(out)
}

pub fn kubeconfig(settings: &Settings, name: &str) -> Result<PathBuf, EnvError> {
    let state = load(settings, name)?;
    state
        .cluster
        .map(|c| c.kubeconfig)
        .ok_or_else(|| EnvError::Preflight(format!("env {name} has no cluster yet")))
}

/// What the source tree looks like, cheaply: every file Git would snapshot (honouring
/// .gitignore), with size and modification time.
pub fn fingerprint(source: &Path) -> Vec<(String, u64, u128)> {
    let listed = std::process::Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ])
        .current_dir(source)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            o.stdout
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
        });
    let files = listed.unwrap_or_else(|| {
        let mut all = Vec::new();
        walk(source, source, &mut all);
        all
    });
    let mut out: Vec<(String, u64, u128)> = files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(source.join(&f)).ok();
            let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            let mtime = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            (f, size, mtime)
        })
        .collect();
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if e.file_name() == ".git" {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.display().to_string());
        }
    }
}

/// Syncs on every change of the source tree, once it has been quiet for `debounce`; runs until
/// interrupted (or after `max_syncs`, for tests).
pub async fn watch(
    settings: &Settings,
    name: &str,
    debounce: Duration,
    timeout: Duration,
    max_syncs: Option<usize>,
    progress: &Progress,
) -> Result<usize, EnvError> {
    let state = load(settings, name)?;
    let source = state.source.clone();
    let interrupted = create::interrupt_flag();
    let mut seen = fingerprint(&source);
    let mut syncs = 0;
    progress.info(&format!(
        "watching {} (Ctrl-C stops); edits are pushed and reconciled",
        source.display()
    ));
    loop {
        if interrupted.load(std::sync::atomic::Ordering::SeqCst)
            || max_syncs.is_some_and(|m| syncs >= m)
        {
            return Ok(syncs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = fingerprint(&source);
        if now == seen {
            continue;
        }
        // Debounce: wait until the tree stops changing (an editor's save is several writes).
        let mut settled = now;
        loop {
            tokio::time::sleep(debounce).await;
            let again = fingerprint(&source);
            if again == settled {
                break;
            }
            settled = again;
        }
        seen = settled;
        let started = Instant::now();
        match sync(settings, name, Some(timeout), progress).await {
            Ok(r) => progress.info(&format!(
                "synced {} in {:.1}s",
                &r.commit[..r.commit.len().min(12)],
                started.elapsed().as_secs_f64()
            )),
            Err(e) => progress.warn(&format!("sync failed: {e}")),
        }
        syncs += 1;
    }
}
