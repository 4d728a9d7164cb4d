//! `env create`: the create flow of DESIGN.md as an ordered list of small idempotent steps,
//! in the manner of kind's create actions. Each step checks whether it is already done, does
//! its work, and is recorded in the env's state before the next one starts; a rerun after a
//! crash, Ctrl-C or a failed step skips what is done and finishes the rest.
//!
//!   preflight → ca → (cluster ‖ gitea ‖ registry) → connect → push → engine → secrets →
//!   bootstrap → reconcile

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::state::{ClusterState, EnvState, GiteaState, Ports, now_rfc3339};
use super::{EnvError, Settings, provider_cli};
use crate::cluster::provider::ClusterProvider;
use crate::cluster::{self, ClusterProfile, Provider, ResolvedCluster};
use crate::docker::{DockerClient, allocate_port, env_labels, port_is_free};
use crate::engine::{self, Engine, EngineStatus, GitCredentials};
use crate::gitea::{self, Auth, GiteaClient};
use crate::kube::{ApplyOptions, KubeClient};
use crate::pki::{self, LocalNames};
use crate::registry;
use crate::stamp::render::{RenderOptions, Rendered};
use crate::stamp::{self, Stamp};
use crate::ui::Progress;

/// The steps, in order; `KINDLING_FAIL_AT` takes one of these names.
pub const STEPS: &[&str] = &[
    "preflight",
    "ca",
    "cluster",
    "gitea",
    "registry",
    "connect",
    "push",
    "engine",
    "secrets",
    "bootstrap",
    "reconcile",
];

pub const DEFAULT_GITEA_PORT: u16 = 3000;
pub const DEFAULT_REGISTRY_PORT: u16 = 5001;

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: String,
    pub stamp: String,
    pub engine: Engine,
    pub profile: ClusterProfile,
    pub profile_path: Option<PathBuf>,
    /// The directory holding `stamps/` (or the HostK8s tree).
    pub source: PathBuf,
    pub hold: bool,
    pub wait: bool,
    pub timeout: Duration,
}

/// What `--dry-run` prints: everything the flow would name and create, nothing touched.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub env: String,
    pub stamp: String,
    pub provider: Provider,
    pub engine: Engine,
    pub steps: Vec<&'static str>,
    pub cluster: ResolvedCluster,
    pub context: String,
    pub cluster_config: String,
    pub ports: Ports,
    pub gitea: Value,
    pub registry: Option<String>,
    pub install_manifest: Value,
    /// Bootstrap objects with credentials shown as `<redacted>`.
    pub bootstrap: Vec<Value>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub name: String,
    /// `done` or `skipped`.
    pub status: &'static str,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateReport {
    pub env: String,
    pub stamp: String,
    pub provider: Provider,
    pub engine: Engine,
    pub steps: Vec<StepReport>,
    pub context: String,
    pub kubeconfig: PathBuf,
    pub gitea_url: String,
    pub ingress_urls: Vec<String>,
    pub awaiting_approval: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<EngineStatus>,
    pub next: Vec<String>,
}

pub enum Outcome {
    Plan(Box<Plan>),
    Created(Box<CreateReport>),
}

/// Set by Ctrl-C; checked between steps.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            set.store(true, Ordering::SeqCst);
            eprintln!(
                "\ninterrupt: stopping after the current step (press Ctrl-C again to abort now)"
            );
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    flag
}

fn to_env_err(e: tokio::task::JoinError) -> EnvError {
    EnvError::Preflight(format!("a background task failed: {e}"))
}

/// Every YAML document of the stamp's path entries, with the file it is in (unreadable or
/// templated files are skipped: this is for hints, not validation).
fn stamp_documents(stamp: &Stamp) -> Vec<(PathBuf, Value)> {
    stamp
        .entries
        .iter()
        .filter_map(|entry| match &entry.source {
            stamp::Source::Path(p) => stamp::manifests::yaml_files_below(&p.host_dir).ok(),
            _ => None,
        })
        .flatten()
        .filter_map(|file| stamp::manifests::read_documents(&file).ok())
        .flatten()
        .map(|d| (d.file, d.value))
        .collect()
}

/// Ingress host names the stamp's manifests declare (for the URLs printed at the end).
pub fn ingress_hosts(stamp: &Stamp) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for (_, value) in stamp_documents(stamp) {
        if value["kind"] != "Ingress" {
            continue;
        }
        for rule in value["spec"]["rules"].as_array().into_iter().flatten() {
            if let Some(h) = rule["host"].as_str()
                && !hosts.iter().any(|x| x == h)
            {
                hosts.push(h.to_string());
            }
        }
    }
    hosts
}

/// The cert-manager Certificate of the stamp that writes the Secret `namespace/name`, if any
/// (a HostK8s stack makes its own self-signed `root-ca-secret`): kindling then leaves that
/// Secret to the stamp instead of fighting cert-manager over it.
pub fn stamp_certificate_for(stamp: &Stamp, namespace: &str, name: &str) -> Option<String> {
    stamp_documents(stamp)
        .into_iter()
        .find_map(|(file, value)| {
            let ours = value["kind"] == "Certificate"
                && value["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("cert-manager.io/"))
                && value["spec"]["secretName"] == name
                && value["metadata"]["namespace"]
                    .as_str()
                    .is_none_or(|ns| ns == namespace);
            ours.then(|| {
                format!(
                    "Certificate {} in {}",
                    value["metadata"]["name"].as_str().unwrap_or("?"),
                    file.display()
                )
            })
        })
}

/// Ports of the other envs on this host, so side-by-side envs never pick the same ones.
fn ports_taken(settings: &Settings, except: &str) -> Vec<u16> {
    let mut taken = Vec::new();
    for name in super::state::env_names(&settings.data_dir) {
        if name == except {
            continue;
        }
        if let Ok(Some(s)) = EnvState::load(&settings.env_dir(&name)) {
            taken.extend([s.ports.http, s.ports.https]);
            taken.extend(s.ports.gitea);
            taken.extend(s.ports.registry);
        }
    }
    taken
}

fn allocate(wanted: u16, taken: &mut Vec<u16>) -> Result<u16, EnvError> {
    let port = allocate_port(wanted, |p| !taken.contains(&p) && port_is_free(p)).ok_or_else(
        || {
            EnvError::Preflight(format!(
                "no free port on 127.0.0.1 from {wanted} on\nhelp: free some ports or set other ones in the cluster profile"
            ))
        },
    )?;
    taken.push(port);
    Ok(port)
}

/// The ports of a new env: the profile's, else the next free ones (not bound on the host, not
/// published by any container, not recorded by another env).
fn allocate_ports(
    profile: &ClusterProfile,
    settings: &Settings,
    env: &str,
    docker_ports: &[u16],
) -> Result<Ports, EnvError> {
    let mut taken = ports_taken(settings, env);
    taken.extend_from_slice(docker_ports);
    let http = allocate(profile.spec.ingress.http, &mut taken)?;
    let https = allocate(profile.spec.ingress.https, &mut taken)?;
    let gitea = match settings.external_gitea {
        Some(_) => None,
        None => Some(allocate(DEFAULT_GITEA_PORT, &mut taken)?),
    };
    let registry = match profile.spec.registry {
        true => Some(allocate(
            profile.spec.registry_port.unwrap_or(DEFAULT_REGISTRY_PORT),
            &mut taken,
        )?),
        false => None,
    };
    Ok(Ports {
        http,
        https,
        gitea,
        registry,
    })
}

pub fn render_options(gitea: &GiteaState) -> RenderOptions {
    RenderOptions {
        repo_url: gitea.cluster_repo_url.clone(),
        ..RenderOptions::standard()
    }
}

fn in_cluster_url(settings: &Settings) -> String {
    match &settings.external_gitea {
        Some(g) => g
            .cluster_url
            .clone()
            .unwrap_or_else(|| format!("{}/{}/{}.git", g.url, g.user, gitea::REPOSITORY)),
        None => gitea::service_repo_url(),
    }
}

pub fn network_name(env: &str) -> String {
    format!("kindling-{env}")
}

/// The files of the rendered bundle as they go into the pushed snapshot (`.kindling/...`),
/// without the bootstrap file, which kindling applies itself.
pub fn bundle_files(rendered: &Rendered) -> Vec<(String, Vec<u8>)> {
    rendered
        .files
        .iter()
        .filter(|f| !f.path.ends_with("bootstrap.yaml"))
        .map(|f| {
            (
                format!("{}/{}", rendered.bundle_dir, f.path),
                f.to_yaml().into_bytes(),
            )
        })
        .collect()
}

/// The bootstrap documents of a rendered bundle.
pub fn bootstrap_documents(rendered: &Rendered) -> Vec<Value> {
    rendered
        .files
        .iter()
        .filter(|f| f.path.ends_with("bootstrap.yaml"))
        .flat_map(|f| f.documents.clone())
        .collect()
}

fn redact_secrets(objects: &[Value]) -> Vec<Value> {
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if o["kind"] == "Secret"
                && let Some(data) = o["data"].as_object_mut()
            {
                for v in data.values_mut() {
                    *v = json!("<redacted>");
                }
            }
            o
        })
        .collect()
}

/// Everything the flow needs while it runs.
struct Run<'a> {
    settings: &'a Settings,
    progress: &'a Progress,
    env_dir: PathBuf,
    state: EnvState,
    reports: Vec<StepReport>,
    interrupted: Arc<AtomicBool>,
}

impl Run<'_> {
    fn save(&self) -> Result<(), EnvError> {
        self.state.save(&self.env_dir)
    }

    fn injected(&self, step: &str) -> Result<(), EnvError> {
        if self.settings.fail_at.as_deref() == Some(step) {
            self.progress.fail(step, "injected failure");
            return Err(EnvError::Injected(step.to_string()));
        }
        Ok(())
    }

    fn finished(&mut self, step: &str, started: Instant, detail: String) -> Result<(), EnvError> {
        self.finished_after(step, started.elapsed(), detail)
    }

    /// For steps that ran concurrently: each keeps its own duration.
    fn finished_after(
        &mut self,
        step: &str,
        elapsed: Duration,
        detail: String,
    ) -> Result<(), EnvError> {
        self.injected(step)?;
        self.state.record(step, elapsed);
        self.save()?;
        self.progress.done(step, elapsed, &detail);
        self.reports.push(StepReport {
            name: step.to_string(),
            status: "done",
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            detail,
        });
        Ok(())
    }

    fn skipped(&mut self, step: &str, why: &str) {
        self.progress.skip(step, why);
        self.reports.push(StepReport {
            name: step.to_string(),
            status: "skipped",
            duration_ms: 0,
            detail: why.to_string(),
        });
    }

    fn between_steps(&self, last: &str) -> Result<(), EnvError> {
        if self.interrupted.load(Ordering::SeqCst) {
            return Err(EnvError::Interrupted(last.to_string()));
        }
        Ok(())
    }
}

fn failed<T>(progress: &Progress, step: &str, r: Result<T, EnvError>) -> Result<T, EnvError> {
    if let Err(e) = &r {
        progress.fail(step, &e.to_string());
    }
    r
}

/// Loads the stamp an env is created from.
pub fn load_stamp(stamp_arg: &str, source: &Path) -> Result<Stamp, EnvError> {
    let dir = stamp::locate_stamp(stamp_arg, source)?;
    Ok(stamp::load(&dir, None)?)
}

/// Creates (or finishes creating) an env; with `dry_run` only plans.
pub async fn create(
    opts: &CreateOptions,
    settings: &Settings,
    progress: &Progress,
    dry_run: bool,
) -> Result<Outcome, EnvError> {
    super::validate_name(&opts.name)?;
    let env = opts.name.as_str();
    let env_dir = settings.env_dir(env);
    let stamp = load_stamp(&opts.stamp, &opts.source)?;
    let provider = opts.profile.spec.provider;
    let existing = EnvState::load(&env_dir)?;
    if let Some(s) = &existing
        && (s.stamp != stamp.name || s.engine != opts.engine || s.provider != provider)
    {
        return Err(EnvError::BadInput(format!(
            "env {env} exists with stamp {}, {} and {}; this asks for stamp {}, {} and {}\nhelp: `kindling env restart {env} --stamp {}` switches stamps; otherwise delete it or pick another name",
            s.stamp,
            s.provider.name(),
            s.engine.name(),
            stamp.name,
            provider.name(),
            opts.engine.name(),
            stamp.name
        )));
    }
    // Allocating and recording the ports happen under one machine-wide lock, so envs created
    // side by side never pick the same ones.
    let ports_lock = match (&existing, dry_run) {
        (None, false) => Some(super::lock::EnvLock::acquire_file(
            &settings.data_dir.join("ports.lock"),
            "env create (allocating ports)",
            Duration::from_secs(30),
        )?),
        _ => None,
    };
    let ports = match &existing {
        Some(s) => s.ports.clone(),
        None => {
            let in_use = match DockerClient::connect().await {
                Ok(d) => d.host_ports_in_use().await.unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            allocate_ports(&opts.profile, settings, env, &in_use)?
        }
    };
    let resolved = cluster::resolve(
        &opts.profile,
        env,
        cluster::IngressPorts {
            http: ports.http,
            https: ports.https,
        },
        ports.registry,
    )?;
    if dry_run {
        return Ok(Outcome::Plan(Box::new(plan(
            opts, settings, &stamp, &resolved, ports,
        )?)));
    }
    let _lock = super::lock::EnvLock::acquire(&env_dir, "env create", settings.lock_wait)?;
    let state = existing.unwrap_or_else(|| EnvState {
        name: env.to_string(),
        stamp: stamp.name.clone(),
        stamp_dir: stamp.dir.clone(),
        source: stamp.repo_root.clone(),
        provider,
        engine: opts.engine,
        profile: opts.profile_path.clone(),
        hold: opts.hold,
        created_at: now_rfc3339(),
        ports,
        cluster: None,
        gitea: None,
        commit: None,
        steps: Vec::new(),
        versions: Default::default(),
    });
    let mut run = Run {
        settings,
        progress,
        env_dir,
        state,
        reports: Vec::new(),
        interrupted: interrupt_flag(),
    };
    run.save()?;
    drop(ports_lock);
    create_steps(&mut run, opts, &stamp, &resolved).await
}

async fn create_steps(
    run: &mut Run<'_>,
    opts: &CreateOptions,
    stamp: &Stamp,
    resolved: &ResolvedCluster,
) -> Result<Outcome, EnvError> {
    let env = opts.name.clone();
    let settings = run.settings;
    let progress = run.progress;

    // 1. preflight
    let started = Instant::now();
    progress.start("preflight", "Docker, provider CLI, stamp");
    let docker = failed(
        progress,
        "preflight",
        DockerClient::connect().await.map_err(|e| {
            EnvError::Preflight(format!(
                "{e}\nhelp: start Docker (`kindling doctor` checks the setup)"
            ))
        }),
    )?;
    // Resolved once (PATH or the pinned download) and shared with the blocking CLI calls.
    let provider: Arc<dyn ClusterProvider + Send + Sync> = Arc::from(failed(
        progress,
        "preflight",
        provider_cli(resolved.provider, settings, &env),
    )?);
    run.finished(
        "preflight",
        started,
        format!(
            "stamp {} ({} entries), {} via {}",
            stamp.name,
            stamp.entries.len(),
            resolved.provider.name(),
            resolved.provider.name()
        ),
    )?;
    run.between_steps("preflight")?;

    // 2. ca
    let started = Instant::now();
    progress.start("ca", "root CA and this env's intermediate");
    let now = time::OffsetDateTime::now_utc();
    let (root, intermediate) = failed(progress, "ca", ensure_env_ca(settings, &env, now))?;
    let root_info = root.info()?;
    let intermediate_info = intermediate.info()?;
    for w in pki::expiry_warnings(
        now,
        &[
            ("the root CA", &root_info),
            ("this env's intermediate CA", &intermediate_info),
        ],
    ) {
        progress.warn(&w);
    }
    let ca_secret = pki::root_ca_secret(&intermediate, &root);
    run.finished("ca", started, format!("root {}", root_info.short_id()))?;
    run.between_steps("ca")?;

    // 3. cluster ‖ gitea ‖ registry
    let cluster_name = resolved.name.clone();
    let context = provider.context(&cluster_name);
    let network = network_name(&env);
    // A step recorded as done is skipped only if what it made is still there: a cluster
    // deleted behind kindling's back, or a removed container, is made again.
    let running = |name: String| {
        let docker = docker.clone();
        async move { docker.state(&name).await.is_ok_and(|s| s == "running") }
    };
    let cluster_done = run.state.is_done("cluster")
        && run.state.cluster.is_some()
        && provider.exists(&cluster_name).unwrap_or(false);
    let gitea_done = run.state.is_done("gitea")
        && match &run.state.gitea {
            Some(g) if g.external => true,
            Some(_) => running(gitea::container_name(&env)).await,
            None => false,
        };
    let registry_wanted = opts.profile.spec.registry;
    let registry_done =
        run.state.is_done("registry") && running(registry::registry_container(&env)).await;
    for (step, done) in [
        ("cluster", cluster_done),
        ("gitea", gitea_done),
        ("registry", registry_done || !registry_wanted),
    ] {
        if !done && run.state.is_done(step) {
            progress.warn(&format!(
                "{step} was created before but is gone; making it again"
            ));
            run.state.forget(step);
        }
    }

    // The env's own network, made once here: Gitea and the registry start on it side by side,
    // and two concurrent creates of one name give Docker two networks of that name.
    if run.state.gitea.as_ref().is_none_or(|g| !g.external) || registry_wanted {
        failed(
            progress,
            "gitea",
            docker
                .ensure_network(&network, &env_labels(&env))
                .await
                .map_err(EnvError::from),
        )?;
    }
    let cluster_future = {
        let resolved = resolved.clone();
        let env_dir = run.env_dir.clone();
        let settings = settings.clone();
        let env = env.clone();
        let context = context.clone();
        let provider = provider.clone();
        async move {
            let started = Instant::now();
            let provider_kind = resolved.provider;
            let config = cluster::render_config(&resolved, &env);
            progress.detail(&format!(
                "cluster: {} create {} with {}",
                provider_kind.name(),
                resolved.name,
                env_dir
                    .join(format!("{}-config.yaml", provider_kind.name()))
                    .display()
            ));
            let name = resolved.name.clone();
            let dir = env_dir.clone();
            let (created, kubeconfig) = tokio::task::spawn_blocking(move || {
                let exists = provider.exists(&name)?;
                if !exists {
                    provider.create(&name, &config)?;
                }
                let kubeconfig = cluster::provider::write_kubeconfig(&*provider, &name, &dir)?;
                Ok::<_, EnvError>((!exists, kubeconfig))
            })
            .await
            .map_err(to_env_err)??;
            cluster::wait_ready(&kubeconfig, &context, &resolved, settings.step_timeout).await?;
            Ok::<_, EnvError>((started.elapsed(), created, kubeconfig))
        }
    };
    let gitea_future = {
        let docker = docker.clone();
        let settings = settings.clone();
        let env = env.clone();
        let network = network.clone();
        let port = run.state.ports.gitea;
        let previous = run.state.gitea.clone();
        async move {
            let started = Instant::now();
            progress.detail(&match &settings.external_gitea {
                Some(g) => format!("gitea: external {}", g.url),
                None => format!(
                    "gitea: container {} ({}) on network {network}, 127.0.0.1:{}",
                    gitea::container_name(&env),
                    settings.gitea_image,
                    port.unwrap_or_default()
                ),
            });
            let state = ensure_gitea(&docker, &settings, &env, &network, port, previous).await?;
            Ok::<_, EnvError>((started.elapsed(), state))
        }
    };
    let registry_future = {
        let docker = docker.clone();
        let settings = settings.clone();
        let env = env.clone();
        let network = network.clone();
        let port = run.state.ports.registry;
        async move {
            let started = Instant::now();
            if let Some(port) = port {
                progress.detail(&format!(
                    "registry: container {} ({}) on 127.0.0.1:{port}",
                    registry::registry_container(&env),
                    settings.registry_image
                ));
                let spec =
                    registry::local_registry_spec(&env, &network, port, &settings.registry_image);
                for v in &spec.volumes {
                    docker.ensure_volume(&v.volume, &spec.labels).await?;
                }
                docker.ensure_image(&spec.image, &mut |_| {}).await?;
                docker.run_container(&spec).await?;
                docker.wait_ready(&spec.name, settings.step_timeout).await?;
            }
            Ok::<_, EnvError>(started.elapsed())
        }
    };
    if !cluster_done {
        progress.start(
            "cluster",
            &format!("{} cluster {cluster_name}", resolved.provider.name()),
        );
    }
    if !gitea_done {
        progress.start("gitea", "source repository");
    }
    if registry_wanted && !registry_done {
        progress.start("registry", "local registry");
    }
    let (cluster_result, gitea_result, registry_result) = tokio::join!(
        async {
            if cluster_done {
                None
            } else {
                Some(cluster_future.await)
            }
        },
        async {
            if gitea_done {
                None
            } else {
                Some(gitea_future.await)
            }
        },
        async {
            if !registry_wanted || registry_done {
                None
            } else {
                Some(registry_future.await)
            }
        }
    );
    // Record what succeeded before reporting what failed, so a rerun skips it.
    let mut first_error = None;
    match cluster_result {
        None => run.skipped("cluster", "exists"),
        Some(Ok((elapsed, created, kubeconfig))) => {
            run.state.cluster = Some(ClusterState {
                name: cluster_name.clone(),
                context: context.clone(),
                kubeconfig,
                network: provider.docker_network(&cluster_name),
            });
            if created {
                // A new cluster has no engine yet, whatever an earlier run recorded.
                run.state.forget("engine");
            }
            let detail = if created {
                "created, nodes Ready"
            } else {
                "found, nodes Ready"
            };
            if let Err(e) = run.finished_after("cluster", elapsed, detail.to_string()) {
                first_error.get_or_insert(e);
            }
        }
        Some(Err(e)) => {
            progress.fail("cluster", &e.to_string());
            first_error.get_or_insert(e);
        }
    }
    match gitea_result {
        None => run.skipped("gitea", "running"),
        Some(Ok((elapsed, state))) => {
            let url = state.url.clone();
            run.state.gitea = Some(state);
            if let Err(e) = run.finished_after("gitea", elapsed, url) {
                first_error.get_or_insert(e);
            }
        }
        Some(Err(e)) => {
            progress.fail("gitea", &e.to_string());
            first_error.get_or_insert(e);
        }
    }
    match registry_result {
        None if !registry_wanted => run.skipped("registry", "not in the profile"),
        None => run.skipped("registry", "running"),
        Some(Ok(elapsed)) => {
            let detail = format!("localhost:{}", run.state.ports.registry.unwrap_or_default());
            if let Err(e) = run.finished_after("registry", elapsed, detail) {
                first_error.get_or_insert(e);
            }
        }
        Some(Err(e)) => {
            progress.fail("registry", &e.to_string());
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    run.between_steps("registry")?;
    let cluster_state = run
        .state
        .cluster
        .clone()
        .ok_or_else(|| EnvError::Preflight("the cluster step left no cluster record".into()))?;
    let gitea_state = run
        .state
        .gitea
        .clone()
        .ok_or_else(|| EnvError::Preflight("the gitea step left no Gitea record".into()))?;
    let kube = KubeClient::from_kubeconfig(&cluster_state.kubeconfig, Some(&cluster_state.context))
        .await?;

    // 4. connect: Gitea, registry and caches onto the cluster's network; node mirrors.
    let started = Instant::now();
    progress.start("connect", &format!("network {}", cluster_state.network));
    let connected = connect(
        &docker,
        &kube,
        provider.clone(),
        settings,
        &env,
        &cluster_state,
        &gitea_state,
        resolved,
        opts.profile.spec.image_caches,
        run.state.ports.registry,
    )
    .await;
    failed(progress, "connect", connected)?;
    run.finished("connect", started, cluster_state.network.clone())?;
    run.between_steps("connect")?;

    // 5. push
    let started = Instant::now();
    progress.start("push", &format!("{} → Gitea", stamp.repo_root.display()));
    let rendered = stamp::render::render(stamp, opts.engine, &render_options(&gitea_state))?;
    for note in &rendered.notes {
        progress.detail(note);
    }
    let commit = failed(progress, "push", push(stamp, &rendered, &gitea_state).await)?;
    run.state.commit = Some(commit.clone());
    run.finished(
        "push",
        started,
        format!("commit {}", &commit[..commit.len().min(12)]),
    )?;
    run.between_steps("push")?;

    // 6. engine
    if run.state.is_done("engine") {
        run.skipped("engine", "installed");
    } else {
        let started = Instant::now();
        let pinned = engine::manifests::pinned(opts.engine);
        progress.start(
            "engine",
            &format!("{} {}", opts.engine.name(), pinned.version),
        );
        let installed = async {
            let cache = settings.cache_dir.clone();
            let dir = settings.manifests_dir.clone();
            let modified = settings.manifests_modified;
            let p = pinned.clone();
            let fetched = tokio::task::spawn_blocking(move || {
                let local = dir
                    .as_deref()
                    .map(|dir| engine::manifests::LocalCopies { dir, modified });
                engine::manifests::fetch(&p, &cache, local)
            })
            .await
            .map_err(to_env_err)??;
            if let Some(note) = &fetched.note {
                progress.warn(note);
            }
            progress.detail(&format!(
                "engine: manifest {} ({:?}), server-side apply as {}",
                fetched.path.display(),
                fetched.origin,
                crate::kube::INSTALL_FIELD_MANAGER
            ));
            let applied =
                engine::install(&kube, opts.engine, &fetched.text, settings.step_timeout).await?;
            progress.detail(&format!(
                "engine: {applied} objects applied, controllers ready"
            ));
            Ok::<_, EnvError>(fetched.sha256)
        }
        .await;
        let sha = failed(progress, "engine", installed)?;
        run.state
            .versions
            .insert(opts.engine.name().to_string(), pinned.version.clone());
        run.finished(
            "engine",
            started,
            format!(
                "{} {} (sha256 {})",
                opts.engine.name(),
                pinned.version,
                &sha[..12]
            ),
        )?;
    }
    run.between_steps("engine")?;

    // 7. secrets: the CA for cert-manager and the stamp's bootstrap secrets.
    let started = Instant::now();
    progress.start("secrets", "CA and bootstrap secrets");
    let secrets = apply_secrets(&kube, settings, progress, &run.env_dir, stamp, &ca_secret).await;
    let count = failed(progress, "secrets", secrets)?;
    run.finished("secrets", started, format!("{count} Secrets"))?;
    run.between_steps("secrets")?;

    // 8. bootstrap
    let started = Instant::now();
    progress.start(
        "bootstrap",
        &format!("{} on {}", opts.engine.name(), gitea_state.cluster_repo_url),
    );
    let objects = bootstrap_objects(opts.engine, stamp, &rendered, &gitea_state, run.state.hold);
    let applied = kube
        .apply_objects(&objects, &ApplyOptions::new(settings.step_timeout))
        .await
        .map_err(EnvError::from);
    for a in failed(progress, "bootstrap", applied)? {
        progress.detail(&format!(
            "bootstrap: applied {} {}{}",
            a.kind,
            a.namespace.map(|n| format!("{n}/")).unwrap_or_default(),
            a.name
        ));
    }
    let detail = if run.state.hold {
        "registered, awaiting approval (`kindling env approve`)".to_string()
    } else {
        format!("root {}", crate::stamp::render::flux::root_name(stamp))
    };
    run.finished("bootstrap", started, detail)?;
    run.between_steps("bootstrap")?;

    // 9. reconcile
    let mut status = None;
    if run.state.hold {
        run.skipped("reconcile", "held until `kindling env approve`");
    } else {
        let started = Instant::now();
        progress.start("reconcile", "requesting reconciliation now");
        let requested =
            engine::request_reconcile(&kube, opts.engine, stamp, time::OffsetDateTime::now_utc())
                .await
                .map_err(EnvError::from);
        failed(progress, "reconcile", requested)?;
        if opts.wait {
            let followed = super::ops::follow(
                &kube,
                opts.engine,
                stamp,
                opts.timeout,
                progress,
                |s: &EngineStatus| s.all_ready(),
            )
            .await;
            status = Some(failed(progress, "reconcile", followed)?);
        }
        let detail = if opts.wait {
            "every entry Ready"
        } else {
            "requested"
        };
        run.finished("reconcile", started, detail.to_string())?;
    }

    let ingress_urls = ingress_hosts(stamp)
        .into_iter()
        .map(|h| format!("https://{h}:{}", run.state.ports.https))
        .collect();
    Ok(Outcome::Created(Box::new(CreateReport {
        env: env.clone(),
        stamp: stamp.name.clone(),
        provider: resolved.provider,
        engine: opts.engine,
        steps: run.reports.clone(),
        context: cluster_state.context.clone(),
        kubeconfig: cluster_state.kubeconfig.clone(),
        gitea_url: gitea_state.url.clone(),
        ingress_urls,
        awaiting_approval: run.state.hold,
        status,
        next: vec![
            format!("kindling env status {env}"),
            format!("kindling env sync {env}     # after editing the stamp"),
            format!("export KUBECONFIG=$(kindling env kubeconfig {env})"),
            format!("kindling env delete {env}"),
        ],
    })))
}

/// The machine root CA and this env's intermediate, made if missing. Under a machine-wide
/// lock: two commands at once must not both make a root CA.
pub fn ensure_env_ca(
    settings: &Settings,
    env: &str,
    now: time::OffsetDateTime,
) -> Result<(pki::CaPair, pki::CaPair), EnvError> {
    let _ca_lock = super::lock::EnvLock::acquire_file(
        &settings.data_dir.join("ca.lock"),
        "kindling (root CA)",
        Duration::from_secs(30),
    )?;
    let root = pki::ensure_root(&settings.data_dir, &LocalNames::default(), now)?;
    let (intermediate, _) =
        pki::ensure_intermediate(&settings.data_dir, env, &root, &LocalNames::default(), now)?;
    Ok((root, intermediate))
}

fn credentials(gitea: &GiteaState) -> GitCredentials {
    GitCredentials {
        url: gitea.cluster_repo_url.clone(),
        username: gitea.user.clone(),
        password: gitea
            .token
            .clone()
            .unwrap_or_else(|| gitea.password.clone()),
    }
}

pub fn bootstrap_objects(
    engine: Engine,
    stamp: &Stamp,
    rendered: &Rendered,
    gitea: &GiteaState,
    hold: bool,
) -> Vec<Value> {
    engine::bootstrap_objects(
        engine,
        stamp,
        &bootstrap_documents(rendered),
        &credentials(gitea),
        hold,
    )
}

/// Pushes the source snapshot with the rendered bundle; returns the commit.
pub async fn push(
    stamp: &Stamp,
    rendered: &Rendered,
    gitea: &GiteaState,
) -> Result<String, EnvError> {
    let files = bundle_files(rendered);
    let source = stamp.repo_root.clone();
    let user = gitea.user.clone();
    let token = gitea
        .token
        .clone()
        .unwrap_or_else(|| gitea.password.clone());
    let url = format!("{}/{}/{}.git", gitea.url, gitea.user, gitea::REPOSITORY);
    let message = format!("kindling: stamp {} at {}", stamp.name, now_rfc3339());
    let outcome = tokio::task::spawn_blocking(move || {
        gitea::push::push_snapshot(
            &source,
            &files,
            &message,
            &gitea::push::PushTarget {
                url: &url,
                user: &user,
                token: &token,
                branch: "main",
            },
        )
    })
    .await
    .map_err(to_env_err)??;
    Ok(outcome.commit().to_string())
}

/// Gitea for the env: the external one, or a container (network, volume, image, admin user,
/// token, repository), each part checked before it is made.
async fn ensure_gitea(
    docker: &DockerClient,
    settings: &Settings,
    env: &str,
    network: &str,
    port: Option<u16>,
    previous: Option<GiteaState>,
) -> Result<GiteaState, EnvError> {
    let (url, user, password, external) = match &settings.external_gitea {
        Some(g) => (g.url.clone(), g.user.clone(), g.password.clone(), true),
        None => {
            let port = port.ok_or_else(|| EnvError::Preflight("no Gitea port allocated".into()))?;
            let mut spec = gitea::container_spec(env, network, port);
            spec.image = settings.gitea_image.clone();
            for v in &spec.volumes {
                docker.ensure_volume(&v.volume, &spec.labels).await?;
            }
            docker.ensure_image(&spec.image, &mut |_| {}).await?;
            docker.run_container(&spec).await?;
            docker.wait_ready(&spec.name, settings.step_timeout).await?;
            let password = match previous.as_ref().filter(|p| !p.external) {
                Some(p) => p.password.clone(),
                None => gitea::new_admin_password()?,
            };
            gitea::ensure_admin(docker, &spec.name, &password).await?;
            (
                format!("http://127.0.0.1:{port}"),
                gitea::ADMIN_USER.to_string(),
                password,
                false,
            )
        }
    };
    let client = GiteaClient::new(
        &url,
        Auth::Basic {
            user: user.clone(),
            password: password.clone(),
        },
    );
    let timeout = settings.step_timeout;
    let token = tokio::task::spawn_blocking(move || {
        client.wait_healthy(timeout)?;
        let token = client.create_token()?;
        client.ensure_repository()?;
        Ok::<_, EnvError>(token)
    })
    .await
    .map_err(to_env_err)??;
    Ok(GiteaState {
        url,
        cluster_repo_url: in_cluster_url(settings),
        user,
        password,
        token: Some(token.sha1),
        external,
    })
}

#[allow(clippy::too_many_arguments)]
async fn connect(
    docker: &DockerClient,
    kube: &KubeClient,
    provider: Arc<dyn ClusterProvider + Send + Sync>,
    settings: &Settings,
    env: &str,
    cluster: &ClusterState,
    gitea: &GiteaState,
    resolved: &ResolvedCluster,
    image_caches: bool,
    registry_port: Option<u16>,
) -> Result<(), EnvError> {
    if !gitea.external {
        let container = gitea::container_name(env);
        docker.connect_network(&container, &cluster.network).await?;
        let ip = docker
            .container_ip(&container, &cluster.network)
            .await?
            .ok_or_else(|| {
                EnvError::Preflight(format!(
                    "{container} has no address on network {}",
                    cluster.network
                ))
            })?;
        kube.apply_objects(
            &gitea::service_objects(&ip),
            &ApplyOptions::new(Duration::from_secs(30)),
        )
        .await?;
    }
    if let Some(port) = registry_port {
        docker
            .connect_network(&registry::registry_container(env), &cluster.network)
            .await?;
        let configmap = registry::local_registry_hosting_configmap(port, env);
        kube.apply_objects(&[configmap], &ApplyOptions::new(Duration::from_secs(30)))
            .await?;
    }
    if image_caches {
        registry::ensure_caches(docker, &cluster.network, &settings.registry_image).await?;
    }
    if resolved.provider == Provider::Kind && !resolved.mirrors.is_empty() {
        let name = cluster.name.clone();
        let nodes = tokio::task::spawn_blocking(move || provider.nodes(&name))
            .await
            .map_err(to_env_err)??;
        registry::configure_kind_nodes(docker, &nodes, &resolved.mirrors).await?;
    }
    Ok(())
}

/// Applies the CA Secret and the stamp's bootstrap secrets; returns how many Secrets.
pub async fn apply_secrets(
    kube: &KubeClient,
    settings: &Settings,
    progress: &Progress,
    env_dir: &Path,
    stamp: &Stamp,
    ca_secret: &Value,
) -> Result<usize, EnvError> {
    let mut generated = engine::secrets::GeneratedValues::load(env_dir)?;
    let env_lookup = |k: &str| std::env::var(k).ok();
    let host = engine::secrets::HostValues {
        base_dir: &stamp.repo_root,
        env: &env_lookup,
    };
    let ca_namespace = ca_secret["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let ca_name = ca_secret["metadata"]["name"].as_str().unwrap_or_default();
    let mut objects = match stamp_certificate_for(stamp, ca_namespace, ca_name) {
        Some(certificate) => {
            progress.warn(&format!(
                "the stamp makes {ca_namespace}/{ca_name} itself ({certificate}); kindling's CA is not handed to cert-manager"
            ));
            Vec::new()
        }
        None => engine::ca_objects(ca_secret),
    };
    objects.extend(engine::secrets::resolve(
        &stamp.secrets,
        &mut generated,
        &host,
    )?);
    // Stored before applying: a value the cluster has seen is never regenerated.
    generated.store(env_dir)?;
    kube.apply_objects(&objects, &ApplyOptions::new(settings.step_timeout))
        .await?;
    Ok(objects.iter().filter(|o| o["kind"] == "Secret").count())
}

fn plan(
    opts: &CreateOptions,
    settings: &Settings,
    stamp: &Stamp,
    resolved: &ResolvedCluster,
    ports: Ports,
) -> Result<Plan, EnvError> {
    let env = opts.name.as_str();
    let gitea = GiteaState {
        url: match &settings.external_gitea {
            Some(g) => g.url.clone(),
            None => format!(
                "http://127.0.0.1:{}",
                ports.gitea.unwrap_or(DEFAULT_GITEA_PORT)
            ),
        },
        cluster_repo_url: in_cluster_url(settings),
        user: gitea::ADMIN_USER.into(),
        password: "<redacted>".into(),
        token: None,
        external: settings.external_gitea.is_some(),
    };
    let rendered = stamp::render::render(stamp, opts.engine, &render_options(&gitea))?;
    let bootstrap = redact_secrets(&bootstrap_objects(
        opts.engine,
        stamp,
        &rendered,
        &gitea,
        opts.hold,
    ));
    let pinned = engine::manifests::pinned(opts.engine);
    let context = match resolved.provider {
        Provider::Kind => format!("kind-{}", resolved.name),
        Provider::K3d => format!("k3d-{}", resolved.name),
    };
    Ok(Plan {
        env: env.to_string(),
        stamp: stamp.name.clone(),
        provider: resolved.provider,
        engine: opts.engine,
        steps: STEPS.to_vec(),
        cluster: resolved.clone(),
        context,
        cluster_config: cluster::render_config(resolved, env),
        gitea: json!({
            "container": if gitea.external { Value::Null } else { json!(gitea::container_name(env)) },
            "url": gitea.url,
            "clusterRepoUrl": gitea.cluster_repo_url,
            "image": if gitea.external { Value::Null } else { json!(settings.gitea_image) },
        }),
        registry: ports
            .registry
            .map(|p| format!("{} on localhost:{p}", registry::registry_container(env))),
        ports,
        install_manifest: json!({"version": pinned.version, "url": pinned.url, "sha256": pinned.sha256}),
        bootstrap,
        notes: rendered.notes,
    })
}
