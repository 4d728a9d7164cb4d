//! An existing env, opened from its state: the record, its stamp, its cluster's API.

use std::path::Path;

use super::state::EnvState;
use super::{EnvError, Settings};
use crate::kube::KubeClient;
use crate::lock::FileLock;
use crate::stamp::{self, Stamp};

/// The env's record; a clear error when there is no such env.
pub fn load(settings: &Settings, name: &str) -> Result<EnvState, EnvError> {
    super::validate_name(name)?;
    EnvState::load(&settings.env_dir(name))?.ok_or_else(|| EnvError::NotFound(name.to_string()))
}

/// The env's lock, then its record: a command that changes the env reads the state only once
/// no other command can be changing it. A missing env is an error, and no directory is made
/// for it.
pub fn load_locked(
    settings: &Settings,
    name: &str,
    command: &str,
) -> Result<(FileLock, EnvState), EnvError> {
    super::validate_name(name)?;
    let env_dir = settings.env_dir(name);
    if !EnvState::path(&env_dir).is_file() {
        return Err(EnvError::NotFound(name.to_string()));
    }
    let lock = match FileLock::env(&env_dir, command, settings.lock_wait) {
        Ok(lock) => lock,
        // Deleted while this command waited for it (the lock went with the directory).
        Err(_) if !EnvState::path(&env_dir).is_file() => {
            return Err(EnvError::NotFound(name.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    let state = load(settings, name)?;
    Ok((lock, state))
}

/// Loads a stamp by name or path, as `env create --stamp` and `env restart --stamp` take it.
pub fn load_stamp(stamp_arg: &str, source: &Path) -> Result<Stamp, EnvError> {
    let dir = stamp::locate_stamp(stamp_arg, source)?;
    Ok(stamp::load(&dir, None)?)
}

/// The stamp the env runs, from its recorded directory, fitted to the env's cluster (its
/// add-ons, whose fetched manifests are kept under `data_dir`, and its cert-manager).
pub fn stamp_of(data_dir: &Path, state: &EnvState) -> Result<Stamp, EnvError> {
    let mut own = with_env_stacks(stamp::load(&state.stamp_dir, None)?, state)?;
    // An approved gate is open for good: rendered and reported as any entry.
    for entry in &mut own.entries {
        if state.approved_gates.contains(&entry.name) {
            entry.manual_gate = false;
        }
        entry.applied_directly = state.applied_directly.contains(&entry.name);
    }
    fitted_to_the_cluster(own, state, data_dir)
}

/// `stamp` with the stacks `env up` added to the env (`crate::stamp::with_stacks`), each
/// loaded again from its directory, so an edit to any of them is pushed by the next sync,
/// and the apps `env deploy` deployed.
pub fn with_env_stacks(stamp: Stamp, state: &EnvState) -> Result<Stamp, EnvError> {
    let stacks = state
        .stacks
        .iter()
        .map(|s| stamp::load(&s.dir, None))
        .collect::<Result<Vec<_>, _>>()?;
    let mut stamp = stamp::with_stacks(stamp, stacks)?;
    if let Some(overlay) = &state.overlay {
        stamp = stamp::overlay::select(stamp, overlay)?;
    }
    if state.apps.is_empty() {
        return Ok(stamp);
    }
    for deployed in &state.apps {
        let app = stamp::app::find(&state.source, &deployed.name)?;
        let entry = stamp::app::entry(&state.source, &app, &deployed.namespace)?;
        if let Some(clash) = stamp.entry(&entry.name) {
            return Err(EnvError::BadInput(format!(
                "{}: entry '{}' has the name kindling gives app {} in namespace {}\nhelp: rename the entry",
                clash.declared_in.display(),
                clash.name,
                deployed.name,
                deployed.namespace
            )));
        }
        stamp.entries.push(entry);
        // Under selective sync (a HostK8s stack's `/*` and re-includes) the app's directory
        // is served too.
        let include = format!("!/software/apps/{}/", deployed.name);
        if !stamp.ignore.is_empty() && !stamp.ignore.contains(&include) {
            stamp.ignore.push(include);
        }
    }
    stamp::rebuild_graph(&mut stamp)?;
    Ok(stamp)
}

/// `stamp` with the add-ons `state` was made with (another stamp for the same env gets them
/// too: they belong to the cluster) and, on a cluster that runs its own cert-manager, without
/// the stamp's install of it (`crate::stamp::cert_manager`).
pub fn fitted_to_the_cluster(
    stamp: Stamp,
    state: &EnvState,
    data_dir: &Path,
) -> Result<Stamp, EnvError> {
    let addons: Vec<crate::addons::Addon> = state
        .addons
        .iter()
        .filter_map(|n| crate::addons::Addon::from_name(n))
        .collect();
    let declared_in = crate::addons::declared_in(state.profile.as_deref());
    let stamp = crate::addons::with_addons(stamp, &addons, &declared_in, data_dir)?;
    fitted_to_the_envs_cluster(
        stamp,
        state.cluster_cert_manager.as_ref(),
        state.objects_namespace.clone(),
        !state.provider.makes_the_cluster(),
    )
}

/// `stamp` as the env's cluster takes it: without its install of cert-manager when the
/// cluster runs its own (`crate::stamp::cert_manager`), its engine objects in
/// `objects_namespace` when the env has one of its own, and, on a cluster it shares, charts that take nothing over.
pub fn fitted_to_the_envs_cluster(
    stamp: Stamp,
    cluster_cert_manager: Option<&crate::cluster::cert_manager::ClusterCertManager>,
    objects_namespace: Option<String>,
    shared_cluster: bool,
) -> Result<Stamp, EnvError> {
    let mut stamp = match cluster_cert_manager {
        Some(found) => crate::stamp::cert_manager::with_the_clusters(
            stamp,
            &found.resource_namespace,
            crate::pki::CA_SECRET,
        )?,
        None => stamp,
    };
    stamp.own_objects_namespace = objects_namespace;
    stamp.shared_cluster = shared_cluster;
    Ok(stamp)
}

/// Whether the env's CA Secret is handed to cert-manager. Always on a cluster kindling made
/// (its add-ons and stamps count on it). On a shared cluster only when the stamp counts on
/// cert-manager (`crate::stamp::cert_manager::counted_on`), or the env uses the cluster's
/// (recorded only for a stamp that counted on one when the env was made; its install is left
/// out of the stamp since): the Secret's name is fixed (the stamp's issuer names it), so every
/// env's would be in one place, and an env whose stamp has no use for it must not be refused
/// over another env's.
pub fn hands_over_the_ca(stamp: &Stamp, uses_the_clusters_cert_manager: bool) -> bool {
    !stamp.shared_cluster
        || uses_the_clusters_cert_manager
        || crate::stamp::cert_manager::counted_on(stamp, crate::pki::CA_SECRET.1)
}

/// On a shared cluster, the question of its cert-manager (`steps::preflight::
/// cluster_cert_manager`) for an env whose earlier stamps counted on none and so never asked
/// it, once `stamp` does (`env restart --stamp`, `env up`): the answer recorded in `state`.
/// True when it was asked now; the stamp must then be fitted again.
pub async fn ask_about_the_clusters_cert_manager(
    kube: &KubeClient,
    state: &mut EnvState,
    stamp: &Stamp,
) -> Result<bool, EnvError> {
    let Some(cluster) = state.existing.clone() else {
        return Ok(false);
    };
    if state.cert_manager_asked
        || state.cluster_cert_manager.is_some()
        || !crate::stamp::cert_manager::counted_on(stamp, crate::pki::CA_SECRET.1)
    {
        return Ok(false);
    }
    let objects_namespace = crate::engine::objects_namespace(state.engine, stamp).to_string();
    state.cluster_cert_manager = super::steps::preflight::cluster_cert_manager(
        kube,
        &cluster,
        None,
        &state.name,
        state.engine,
        &objects_namespace,
        stamp,
    )
    .await?;
    state.cert_manager_asked = true;
    Ok(true)
}

/// On a shared cluster, refuses before anything changes when the env's CA Secret would go
/// (`hands_over_the_ca`) where a Secret of that fixed name is someone else's (another env's):
/// its apply would be refused only after the push.
pub async fn ca_secret_is_free(
    kube: &KubeClient,
    state: &EnvState,
    stamp: &Stamp,
) -> Result<(), EnvError> {
    if state.provider.makes_the_cluster()
        || !hands_over_the_ca(stamp, state.cluster_cert_manager.is_some())
    {
        return Ok(());
    }
    let (namespace, secret) = (state.ca_secret_namespace(), crate::pki::CA_SECRET.1);
    match kube.get("v1", "Secret", Some(namespace), secret).await? {
        Some(live) if !kube.belongs_to_the_env(&live).await? => Err(EnvError::Preflight(format!(
            "stamp {} counts on cert-manager, and the env's CA Secret would go to Secret {namespace}/{secret}, which is not the env's ({}); nothing was changed\nhelp: keep a stamp without cert-manager on this cluster, or delete the env that has it first",
            stamp.name,
            live["metadata"]["labels"][crate::ENV_LABEL]
                .as_str()
                .map(|e| format!("kindling env {e}'s"))
                .unwrap_or_else(|| "someone else's".into())
        ))),
        _ => Ok(()),
    }
}

/// Commands that re-apply the root (`env up`, `down`, `deploy`, `remove`) would resume a
/// suspended env half-way: they ask for `env resume` first. (A held env is pushed and
/// bootstrapped, and reconciles once approved.)
/// The stamp's entry `entry`, or an error naming the env's entries.
pub fn entry_of<'a>(
    stamp: &'a Stamp,
    env: &str,
    entry: &str,
) -> Result<&'a crate::stamp::Entry, EnvError> {
    stamp.entry(entry).ok_or_else(|| {
        EnvError::BadInput(format!(
            "env {env} has no entry {entry} (entries: {})",
            stamp
                .entries
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

pub fn refuse_when_suspended(state: &EnvState, verb: &str) -> Result<(), EnvError> {
    let name = &state.name;
    if state.suspended {
        return Err(EnvError::Preflight(format!(
            "env {name} is suspended; `kindling env resume {name}` first, then `env {verb}`"
        )));
    }
    Ok(())
}

/// The API client of the env's cluster.
pub async fn kube_of(state: &EnvState) -> Result<KubeClient, EnvError> {
    let cluster = state.cluster.as_ref().ok_or_else(|| {
        EnvError::Preflight(format!(
            "env {} has no cluster yet\nhelp: finish it with `kindling env create {} --stamp {}`",
            state.name, state.name, state.stamp
        ))
    })?;
    let env_dir = crate::paths::env_dir(&crate::paths::data_dir(), &state.name);
    // On a remote Docker host the API server is reached through the env's tunnel.
    if let Some(started) = tunnel(state, &env_dir)? {
        crate::ui::call(|| started.clone());
    }
    let kube = KubeClient::from_kubeconfig(&cluster.kubeconfig, Some(&cluster.context)).await?;
    Ok(owned(kube, state, &env_dir))
}

/// On a Docker engine of another machine (`crate::docker::remote`), the env's SSH tunnel for
/// every port it publishes, started unless it runs; what was started, if anything.
pub fn tunnel(state: &EnvState, env_dir: &Path) -> Result<Option<String>, EnvError> {
    if !state.provider.makes_the_cluster() {
        return Ok(None);
    }
    let Ok(endpoint) = crate::docker::endpoint::resolve() else {
        return Ok(None);
    };
    let crate::docker::remote::Reach::Tunnel { destination, .. } =
        crate::docker::remote::Reach::of(&endpoint)
    else {
        return Ok(None);
    };
    let p = &state.ports;
    let mut ports = vec![p.http, p.https];
    ports.extend(p.gitea);
    ports.extend(p.registry);
    if let Some(g) = p.gateway {
        ports.extend([g.http, g.https]);
    }
    if let Some(port) = state
        .cluster
        .as_ref()
        .and_then(|c| crate::docker::remote::api_server_port(&c.kubeconfig))
    {
        ports.push(port);
    }
    crate::docker::remote::ensure(env_dir, &destination, &ports).map_err(EnvError::Preflight)
}

/// On a cluster kindling did not make, `kube` applying only as the env's ownership allows
/// (`crate::kube::ownership`); elsewhere `kube` as it is.
pub fn owned(kube: KubeClient, state: &EnvState, env_dir: &Path) -> KubeClient {
    match state.provider.makes_the_cluster() {
        true => kube,
        false => kube.owned_by(crate::kube::ownership::Ownership::new(
            &state.name,
            owned_kinds_file(env_dir),
        )),
    }
}

/// Where the kinds of what kindling applied to a shared cluster are recorded.
pub fn owned_kinds_file(env_dir: &Path) -> std::path::PathBuf {
    env_dir.join("owned-kinds")
}

/// The env's Gitea record; an env without one has not finished `env create`. A Gitea in the
/// cluster gets the URL of a port-forward to it, opened now.
pub fn gitea_of(state: &EnvState) -> Result<super::state::GiteaState, EnvError> {
    let mut gitea = state.gitea.clone().ok_or_else(|| {
        EnvError::Preflight(format!(
            "env {} has no Gitea yet; finish `kindling env create {} --stamp {}` first",
            state.name, state.name, state.stamp
        ))
    })?;
    if gitea.in_cluster
        && let Some(cluster) = &state.cluster
    {
        gitea.url = super::steps::gitea::forward_url(cluster, &state.name)?;
    }
    Ok(gitea)
}

/// The API client of a live env's cluster, with the route to its Gitea checked and re-pointed
/// first (`route::repair_gitea_route`); what was repaired is said on the progress stream and
/// returned.
pub async fn live_kube_of(
    state: &EnvState,
    progress: &crate::ui::Progress,
) -> Result<(KubeClient, Option<String>), EnvError> {
    let kube = kube_of(state).await?;
    let repaired = super::route::repair_gitea_route(state, &kube).await?;
    if let Some(what) = &repaired {
        progress.warn(what);
    }
    Ok((kube, repaired))
}
