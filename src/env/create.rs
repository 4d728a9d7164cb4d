//! `env create`: the steps of `env::steps` (`steps::ALL`) run in order, as kind runs its create actions. Each
//! step checks whether it is already done, does its work, and is recorded in the env's state
//! before the next one starts; a rerun after a crash, Ctrl-C or a failed step skips what is
//! done and finishes the rest.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::plan::Plan;
use super::state::{EnvState, Ports, now_rfc3339};
use super::steps::{self, Ctx, Step};
use super::{CreateOptions, EnvError, Settings};
use crate::cluster::{self, Provider};
use crate::docker::DockerClient;
use crate::engine::{Engine, EngineStatus};
use crate::lock::FileLock;
use crate::pki::extra_ca::ExtraCa;
use crate::stamp::Stamp;
use crate::ui::Progress;

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

/// Creates (or finishes creating) an env; with `dry_run` only plans.
pub async fn create(
    opts: &CreateOptions,
    settings: &Settings,
    progress: &Progress,
    dry_run: bool,
) -> Result<Outcome, EnvError> {
    super::validate_name(&opts.name)?;
    super::fits_the_provider(&opts.name, opts.profile.spec.provider)?;
    super::check_external_gitea(settings)?;
    let env_dir = settings.env_dir(&opts.name);
    let stamp = super::open::load_stamp(&opts.stamp, &opts.source)?;
    let stamp = match &opts.overlay {
        Some(overlay) => crate::stamp::overlay::select(stamp, overlay)?,
        None => stamp,
    };
    if !opts.profile.spec.provider.makes_the_cluster() {
        fits_an_existing_cluster(opts, &stamp)?;
    }
    // The packages are read (and, on Flux, translated) before anything is made.
    let package_dirs = super::packages::absolute(&opts.packages)?;
    super::packages::load_all(&package_dirs, opts.engine)?;
    // A rerun bootstraps the stacks `env up` added too: a root without them would prune
    // them. Read before the lock (the add-ons below are fitted around every entry); the
    // locked read further down must find the same list.
    let (stamp, additions_before) = match EnvState::load(&env_dir)? {
        Some(s) => (super::open::with_env_stacks(stamp, &s)?, (s.stacks, s.apps)),
        None => (stamp, Default::default()),
    };
    // The add-ons the stack needs from its cluster come first (`crate::addons`). A dry run
    // keeps their manifests in a scratch directory, gone with the plan: it makes nothing of
    // the env, and the data dir's copies are what a create records.
    let scratch = match dry_run {
        true => Some(tempfile::tempdir().map_err(|e| EnvError::State {
            path: std::env::temp_dir(),
            reason: format!("cannot make a scratch directory for the plan: {e}"),
        })?),
        false => None,
    };
    let addons_dir = scratch
        .as_ref()
        .map(|d| d.path().to_path_buf())
        .unwrap_or_else(|| settings.data_dir.clone());
    let mut addons = crate::addons::chosen(opts.profile.spec.addons.as_deref(), &stamp);
    // Add-ons are parts of a cluster (Gateway API CRDs, metrics-server, an ingress, MetalLB):
    // a cluster kindling did not make has its own, which the engine would take over and
    // remove with the env.
    if !opts.profile.spec.provider.makes_the_cluster() && !addons.is_empty() {
        progress.warn(&format!(
            "add-ons {} are not installed on an existing cluster: they are the cluster's own business",
            addons.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
        ));
        addons.clear();
    }
    let stamp = crate::addons::with_addons(
        stamp,
        &addons,
        &crate::addons::declared_in(opts.profile_path.as_deref()),
        &addons_dir,
    )?;
    // The add-ons' pinned manifests, verified, where the pushes read them (a dry run too:
    // a manifest that cannot be had is what a create would fail on).
    for note in crate::addons::fetch_manifests(
        &addons,
        &addons_dir,
        &settings.manifest_dirs(),
        settings.local_manifests(),
    )? {
        progress.warn(&note);
    }
    // The env's lock before its state (a dry run changes nothing and takes none): the state
    // read next is the one this run acts on, not one another command is changing.
    let lock = match dry_run {
        true => None,
        false => Some(FileLock::env(&env_dir, "env create", settings.lock_wait)?),
    };
    let existing = EnvState::load(&env_dir)?;
    if let Some(s) = &existing {
        same_env(s, opts, &stamp.name)?;
        if s.overlay != opts.overlay {
            return Err(EnvError::BadInput(format!(
                "env {} runs overlay {}; this asks for {}\nhelp: pass the env's overlay, or delete the env and create it with the other",
                opts.name,
                s.overlay.as_deref().unwrap_or("(none)"),
                opts.overlay.as_deref().unwrap_or("(none)")
            )));
        }
        if !opts.packages.is_empty() && !super::packages::same_dirs(&s.packages, &package_dirs) {
            return Err(EnvError::BadInput(format!(
                "env {} runs the packages [{}]; this asks for [{}]\nhelp: `kindling env restart {} --package DIR` changes them",
                opts.name,
                s.packages
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                package_dirs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                opts.name
            )));
        }
        if (s.stacks.clone(), s.apps.clone()) != additions_before {
            return Err(EnvError::Preflight(format!(
                "the stacks or apps of env {} changed while this create waited for it (`env up`/`down`/`deploy`/`remove`); run it again",
                opts.name
            )));
        }
        // A rerun would bootstrap and reconcile, undoing the suspension half-way.
        if s.suspended {
            return Err(EnvError::Preflight(format!(
                "env {} is suspended; `kindling env resume {}` first",
                opts.name, opts.name
            )));
        }
    }
    let extra_ca = ExtraCa::load(&opts.extra_ca)?;
    let extra_ca_wanted = extra_ca
        .as_ref()
        .map(ExtraCa::fingerprints)
        .unwrap_or_default();
    if let Some(s) = &existing {
        same_extra_ca(s, &extra_ca_wanted)?;
        let missing = super::storage::missing_mounts(s, &stamp);
        if (s.cluster_requested || s.cluster.is_some()) && !missing.is_empty() {
            return Err(super::storage::missing_mounts_error(
                &opts.name,
                &stamp.name,
                &missing,
            ));
        }
    }
    // Allocating and recording the ports happen under one machine-wide lock, so envs created
    // side by side never pick the same ones.
    let ports_lock = match (&existing, dry_run) {
        (None, false) => Some(FileLock::acquire(
            &settings.data_dir.join("ports.lock"),
            "port allocation",
            "env create (allocating ports)",
            Duration::from_secs(30),
        )?),
        _ => None,
    };
    let ports = match &existing {
        Some(s) => s.ports.clone(),
        None => {
            let gateway = addons.contains(&crate::addons::Addon::Ingress);
            new_ports(opts, settings, gateway).await?
        }
    };
    let ingress = cluster::IngressPorts {
        http: ports.http,
        https: ports.https,
    };
    let mut resolved = cluster::resolve(&opts.profile, &opts.name, ingress, ports.registry)?;
    // HostK8s' Gateway API NodePorts on their host ports (the ingress add-on).
    if let Some(gateway) = ports.gateway {
        let [(http_node, _), (https_node, _)] = crate::addons::GATEWAY_NODE_PORTS;
        resolved.extra_ports.extend([
            cluster::PortMapping {
                container_port: http_node,
                host_port: gateway.http,
            },
            cluster::PortMapping {
                container_port: https_node,
                host_port: gateway.https,
            },
        ]);
    }
    resolved.switch_context = opts.switch_context;
    // After `bundle load`, the digest-pinned images run under the names `docker load` gave
    // them (`bundle::offline_image`), so nothing is pulled.
    let offline;
    let settings = if !dry_run
        && opts.profile.spec.provider.makes_the_cluster()
        && crate::bundle::loaded(&settings.data_dir).is_some()
    {
        let docker = DockerClient::connect().await?;
        let data_dir = &settings.data_dir;
        resolved.image = crate::bundle::offline_image(&docker, data_dir, &resolved.image).await;
        let mut adjusted = settings.clone();
        adjusted.registry_image =
            crate::bundle::offline_image(&docker, data_dir, &settings.registry_image).await;
        adjusted.gitea_image =
            crate::bundle::offline_image(&docker, data_dir, &settings.gitea_image).await;
        offline = adjusted;
        &offline
    } else {
        settings
    };
    resolved.extra_ca = extra_ca.as_ref().map(|_| ExtraCa::env_copy(&env_dir));
    resolved.storage = super::storage::mounts(&settings.data_dir, &opts.name, &stamp);
    // A cert-manager an existing cluster runs is used in place of the stamp's install of one.
    let existing_kube = match &opts.existing {
        Some(cluster) => {
            Some(steps::preflight::existing_client(cluster, &opts.name, &env_dir).await?)
        }
        None => None,
    };
    // Where the env's engine objects live is as its record says (a rerun keeps them there; an
    // env recorded without one has them in the engine's namespace, as envs had before); a new
    // env on an existing cluster has a namespace of its own where the engine reads it. One
    // whose create stopped before it applied anything (its preflight refused it: a second env
    // on an Argo CD that did not read its namespace then) chooses again.
    let objects_namespace = match (&existing, &existing_kube) {
        (Some(state), _) if state.cluster.is_some() => state.objects_namespace.clone(),
        (_, Some(kube)) => {
            steps::preflight::objects_namespace_of_a_new_env(kube, &opts.name, opts.engine).await?
        }
        (Some(state), None) => state.objects_namespace.clone(),
        (None, None) => None,
    };
    let cluster_cert_manager = match (&opts.existing, &existing_kube) {
        (Some(cluster), Some(kube)) => {
            let objects_namespace =
                crate::engine::objects_namespace_in(opts.engine, objects_namespace.as_deref());
            steps::preflight::cluster_cert_manager(
                kube,
                cluster,
                existing.as_ref(),
                &opts.name,
                opts.engine,
                objects_namespace,
                &stamp,
            )
            .await?
        }
        _ => None,
    };
    // The question of the cluster's cert-manager was asked only for a stamp that counts on one.
    let cert_manager_counted =
        crate::stamp::cert_manager::counted_on(&stamp, crate::pki::CA_SECRET.1);
    let stamp = super::open::fitted_to_the_envs_cluster(
        stamp,
        cluster_cert_manager.as_ref(),
        objects_namespace.clone(),
        !opts.profile.spec.provider.makes_the_cluster(),
    )?;
    super::packages::fit_the_engine(opts.engine, objects_namespace.as_deref(), &package_dirs)?;
    if dry_run {
        // On an existing cluster, what the create would fail on there is known read-only.
        if let (Some(cluster), Some(kube)) = (&opts.existing, &existing_kube) {
            let ca_namespace =
                super::open::hands_over_the_ca(&stamp, cluster_cert_manager.is_some()).then(|| {
                    cluster_cert_manager
                        .as_ref()
                        .map_or(crate::pki::CA_SECRET.0, |c| c.resource_namespace.as_str())
                });
            let found = steps::preflight::check_existing(
                kube,
                cluster,
                &opts.name,
                &stamp,
                opts.engine,
                ca_namespace,
            )
            .await?;
            for unchecked in steps::bootstrap::stamp_objects_taken(kube, &stamp).await? {
                progress.warn(&unchecked);
            }
            progress.detail(&format!(
                "existing cluster {}: rights there; {found}",
                cluster.context
            ));
        }
        let mut plan = super::plan::plan(opts, settings, &stamp, &resolved, ports, steps::names())?;
        if let Some(found) = &cluster_cert_manager {
            plan.notes.push(steps::preflight::uses_the_clusters(found));
        }
        return Ok(Outcome::Plan(Box::new(plan)));
    }
    if let Some(roots) = &extra_ca {
        roots.write_env_copy(&env_dir)?;
    }
    let mut state = existing.unwrap_or_else(|| new_state(opts, &stamp, ports));
    state.objects_namespace = objects_namespace;
    state.cluster_cert_manager = cluster_cert_manager;
    state.cert_manager_asked =
        state.cert_manager_asked || (opts.existing.is_some() && cert_manager_counted);
    if !package_dirs.is_empty() {
        state.packages = package_dirs.clone();
    }
    state.extra_ca = extra_ca_wanted;
    state.addons = addons.iter().map(|a| a.name().to_string()).collect();
    if !state.cluster_requested && state.cluster.is_none() {
        state.storage = resolved
            .storage
            .iter()
            .map(|m| m.node_path.clone())
            .collect();
    }
    let mut ctx = Ctx::new(opts, settings, progress, &stamp, &resolved, state);
    ctx.interrupted = super::interrupt_flag();
    ctx.save()?;
    drop(ports_lock);
    let mut run = Run {
        ctx: &ctx,
        reports: Vec::new(),
    };
    for (i, group) in steps::ALL.iter().enumerate() {
        run.group(group).await?;
        if i + 1 < steps::ALL.len() {
            run.between(group)?;
        }
    }
    let reports = run.reports;
    drop(lock);
    report(ctx, reports)
}

/// What a cluster kindling did not make cannot give a stamp: host directories mounted into
/// its nodes (kind's extraMounts, k3d's volumes are set when a cluster is made).
fn fits_an_existing_cluster(opts: &CreateOptions, stamp: &Stamp) -> Result<(), EnvError> {
    if opts.existing.is_none() {
        return Err(EnvError::BadInput(
            "--provider existing needs --context NAME: the kubeconfig context of the cluster to use".into(),
        ));
    }
    if let Some(storage) = stamp.storage.first() {
        return Err(EnvError::BadInput(format!(
            "stamp {} declares storage {} (a directory of this machine mounted into the nodes), which a cluster kindling did not make cannot have\nhelp: use a kind or k3d env for this stamp, or give the workload a PersistentVolumeClaim of the cluster's own StorageClass",
            stamp.name, storage.name
        )));
    }
    Ok(())
}

/// A rerun must ask for the env that exists: another stamp, provider or engine is a restart
/// or a new env.
fn same_env(s: &EnvState, opts: &CreateOptions, stamp: &str) -> Result<(), EnvError> {
    let (env, provider) = (&opts.name, opts.profile.spec.provider);
    if s.existing.is_some() && s.existing != opts.existing {
        let context = |e: &Option<crate::cluster::existing::ExistingCluster>| {
            e.as_ref()
                .map(|e| format!("context {} of {}", e.context, e.kubeconfig.display()))
                .unwrap_or_else(|| "no existing cluster".into())
        };
        return Err(EnvError::BadInput(format!(
            "env {env} runs on {}; this asks for {}
help: pass the env's --context and --kubeconfig, or pick another env name",
            context(&s.existing),
            context(&opts.existing)
        )));
    }
    if s.stamp == stamp && s.engine == opts.engine && s.provider == provider {
        return Ok(());
    }
    Err(EnvError::BadInput(format!(
        "env {env} exists with stamp {}, {} and {}; this asks for stamp {stamp}, {} and {}\nhelp: `kindling env restart {env} --stamp {stamp}` switches stamps; otherwise delete it or pick another name",
        s.stamp,
        s.provider.name(),
        s.engine.name(),
        provider.name(),
        opts.engine.name(),
    )))
}

/// The ports of a new env, skipping those any container publishes.
async fn new_ports(
    opts: &CreateOptions,
    settings: &Settings,
    gateway: bool,
) -> Result<Ports, EnvError> {
    let in_use = match DockerClient::connect().await {
        Ok(d) => d.host_ports_in_use().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut ports = super::ports::allocate(&opts.profile, settings, &opts.name, &in_use, gateway)?;
    // An existing cluster gets no registry or Gitea container on this machine.
    if !opts.profile.spec.provider.makes_the_cluster() {
        ports.registry = None;
        ports.gitea = None;
    }
    Ok(ports)
}

fn new_state(opts: &CreateOptions, stamp: &Stamp, ports: Ports) -> EnvState {
    EnvState {
        name: opts.name.clone(),
        stamp: stamp.name.clone(),
        stamp_dir: stamp.dir.clone(),
        source: stamp.repo_root.clone(),
        provider: opts.profile.spec.provider,
        engine: opts.engine,
        profile: opts.profile_path.clone(),
        hold: opts.hold,
        suspended: false,
        created_at: now_rfc3339(),
        ports,
        cluster: None,
        cluster_requested: false,
        gitea: None,
        commit: None,
        steps: Vec::new(),
        versions: Default::default(),
        extra_ca: Vec::new(),
        storage: Vec::new(),
        addons: Vec::new(),
        stacks: Vec::new(),
        apps: Vec::new(),
        removing: None,
        approved_gates: Vec::new(),
        applied_directly: Vec::new(),
        overlay: opts.overlay.clone(),
        packages: Vec::new(),
        existing: opts.existing.clone(),
        found_engine: None,
        cluster_cert_manager: None,
        cert_manager_asked: false,
        objects_namespace: None,
    }
}

/// The nodes and containers mount the network's root CAs when they are made: a rerun that
/// asks for other roots than the env has would leave them trusting the old ones.
fn same_extra_ca(s: &EnvState, wanted: &[String]) -> Result<(), EnvError> {
    let made = s.cluster_requested || s.gitea.is_some();
    let sorted = |f: &[String]| {
        let mut f = f.to_vec();
        f.sort();
        f
    };
    // The same roots in another order (the profile's and the flag's) are the same roots.
    if !made || sorted(&s.extra_ca) == sorted(wanted) {
        return Ok(());
    }
    let list = |f: &[String]| match f.len() {
        0 => "none".to_string(),
        _ => f
            .iter()
            .map(|p| p.replace(':', "")[..16].to_lowercase())
            .collect::<Vec<_>>()
            .join(", "),
    };
    Err(EnvError::Preflight(format!(
        "env {} was made with extra CAs {} (SHA-256), this run asks for {}; its nodes and containers mount them when they are made\nhelp: pass the same --extra-ca files (and profile) as the first create, or `kindling env delete {}` and create it again with the new ones",
        s.name,
        list(&s.extra_ca),
        list(wanted),
        s.name
    )))
}

/// How the orchestrator wraps every step: skip what is there, `KINDLING_FAIL_AT`, the record
/// in state.json, the progress lines, and Ctrl-C between steps.
struct Run<'r, 'a> {
    ctx: &'r Ctx<'a>,
    reports: Vec<StepReport>,
}

/// What became of one step of a group.
enum Ran {
    Skipped(String),
    Finished(Duration, Result<String, EnvError>),
}

impl Run<'_, '_> {
    /// Runs a group's steps side by side; records every one that succeeded before reporting
    /// the first failure, so a rerun skips them.
    async fn group(&mut self, group: &[&dyn Step]) -> Result<(), EnvError> {
        let ctx = self.ctx;
        let mut skips = Vec::new();
        for step in group {
            let skip = step.skip(ctx).await;
            if skip.is_none() {
                ctx.progress.start(step.name(), &step.line(ctx));
            }
            skips.push(skip);
        }
        let fail_before = ctx
            .settings
            .fail_at
            .as_deref()
            .and_then(|f| f.strip_prefix("before:"));
        let ran = futures_util::future::join_all(group.iter().zip(skips).map(
            |(step, skip)| async move {
                match skip {
                    Some(why) => Ran::Skipped(why),
                    None if fail_before == Some(step.name()) => Ran::Finished(
                        Duration::ZERO,
                        Err(EnvError::InjectedBefore(step.name().to_string())),
                    ),
                    None => {
                        let started = Instant::now();
                        let result = step.run(ctx).await;
                        Ran::Finished(started.elapsed(), result)
                    }
                }
            },
        ))
        .await;
        let mut first_error = None;
        for (step, ran) in group.iter().zip(ran) {
            let recorded = match ran {
                Ran::Skipped(why) => self.skipped(*step, &why),
                Ran::Finished(elapsed, Ok(detail)) => self.finished(step.name(), elapsed, detail),
                Ran::Finished(_, Err(e)) => {
                    ctx.progress.fail(step.name(), &e.to_string());
                    Err(e)
                }
            };
            if let Err(e) = recorded {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Ctrl-C stops between steps, never inside one.
    fn between(&self, group: &[&dyn Step]) -> Result<(), EnvError> {
        if self.ctx.is_interrupted() {
            let last = group.last().map(|s| s.name()).unwrap_or_default();
            return Err(EnvError::Interrupted(last.to_string()));
        }
        Ok(())
    }

    fn finished(&mut self, step: &str, elapsed: Duration, detail: String) -> Result<(), EnvError> {
        let ctx = self.ctx;
        if ctx.settings.fail_at.as_deref() == Some(step) {
            ctx.progress.fail(step, "injected failure");
            return Err(EnvError::Injected(step.to_string()));
        }
        ctx.state().record(step, elapsed);
        ctx.save()?;
        ctx.progress.done(step, elapsed, &detail);
        self.reports.push(StepReport {
            name: step.to_string(),
            status: "done",
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            detail,
        });
        Ok(())
    }

    fn skipped(&mut self, step: &dyn Step, why: &str) -> Result<(), EnvError> {
        let name = step.name();
        if step.skip_is_done() && !self.ctx.state().is_done(name) {
            self.ctx.state().record(name, Duration::ZERO);
            self.ctx.save()?;
        }
        self.ctx.progress.skip(name, why);
        self.reports.push(StepReport {
            name: name.to_string(),
            status: "skipped",
            duration_ms: 0,
            detail: why.to_string(),
        });
        Ok(())
    }
}

/// What `env create` prints at the end: where everything is and what to run next.
fn report(ctx: Ctx<'_>, steps: Vec<StepReport>) -> Result<Outcome, EnvError> {
    let env = ctx.env().to_string();
    let (stamp, resolved, engine) = (ctx.stamp, ctx.resolved, ctx.opts.engine);
    let cluster = ctx.cluster_state()?;
    let gitea = ctx.gitea_state()?;
    let status = ctx.status.get().cloned();
    let state = ctx.into_state();
    // On a cluster kindling did not make, its ingress is the cluster's own, on no port here.
    let ingress_urls = match resolved.provider.makes_the_cluster() {
        true => crate::stamp::manifests::ingress_hosts(stamp)
            .into_iter()
            .map(|h| format!("https://{h}:{}", state.ports.https))
            .collect(),
        false => Vec::new(),
    };
    let gitea_url = match gitea.in_cluster {
        true => format!(
            "port-forward to {}/{} (opened by each kindling command that needs it)",
            crate::gitea::in_cluster::namespace(&env),
            crate::gitea::in_cluster::NAME
        ),
        false => gitea.url,
    };
    Ok(Outcome::Created(Box::new(CreateReport {
        env: env.clone(),
        stamp: stamp.name.clone(),
        provider: resolved.provider,
        engine,
        steps,
        context: cluster.context,
        kubeconfig: cluster.kubeconfig,
        gitea_url,
        ingress_urls,
        awaiting_approval: state.hold,
        status,
        next: vec![
            format!("kindling env status {env}"),
            format!("kindling env sync {env}     # after editing the stamp"),
            format!("export KUBECONFIG=$(kindling env kubeconfig {env})"),
            format!("kindling env delete {env}"),
        ],
    })))
}
