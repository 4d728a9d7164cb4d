//! `env restart [--stamp S]`: removes the stamp's objects through the engine and bootstraps it
//! (or another stamp) again, on the same cluster.

use std::time::Instant;

use serde::Serialize;

use super::open::{live_kube_of, load_locked, load_stamp, stamp_of};
use super::{EnvError, Settings};
use crate::engine;
use crate::ui::Progress;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartReport {
    pub env: String,
    pub removed_stamp: String,
    pub stamp: String,
    pub commit: String,
    /// The package directories the env runs now, when `--package` changed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<std::path::PathBuf>>,
}

pub async fn restart(
    settings: &Settings,
    name: &str,
    new_stamp: Option<&str>,
    new_packages: Option<&[std::path::PathBuf]>,
    progress: &Progress,
) -> Result<RestartReport, EnvError> {
    let env_dir = settings.env_dir(name);
    let (_lock, mut state) = load_locked(settings, name, "env restart")?;
    if state.suspended {
        return Err(EnvError::Preflight(format!(
            "env {name} is suspended; `kindling env resume {name}` first"
        )));
    }
    let old = stamp_of(&settings.data_dir, &state)?;
    // The stamp to bootstrap, and what its secrets read from this host (consented to, and
    // there), before anything is removed.
    let stamp_to_bootstrap = |state: &super::state::EnvState| match new_stamp {
        // The stacks `env up` added stay beside the new stamp: they belong to the env.
        Some(arg) => super::open::fitted_to_the_cluster(
            super::open::with_env_stacks(load_stamp(arg, &state.source)?, state)?,
            state,
            &settings.data_dir,
        ),
        None => stamp_of(&settings.data_dir, state),
    };
    let mut stamp = stamp_to_bootstrap(&state)?;
    engine::secrets::check_host_values(&stamp, &settings.allow_secret_from)?;
    // The packages asked for, read (and on Flux translated) before anything is removed.
    let new_packages = match new_packages {
        Some(dirs) => {
            let dirs = super::packages::absolute(dirs)?;
            super::packages::fit_the_engine(
                state.engine,
                state.objects_namespace.as_deref(),
                &dirs,
            )?;
            super::packages::load_all(&dirs, state.engine)?;
            Some(dirs)
        }
        None => None,
    };
    let missing = super::storage::missing_mounts(&state, &stamp);
    if !missing.is_empty() {
        return Err(super::storage::missing_mounts_error(
            name,
            &stamp.name,
            &missing,
        ));
    }
    let (kube, _) = live_kube_of(&state, progress).await?;
    // On a shared cluster the new stamp's objects are checked before the old one goes: a
    // refusal then leaves the env as it was.
    if !state.provider.makes_the_cluster() {
        for unchecked in super::steps::bootstrap::stamp_objects_taken(&kube, &stamp).await? {
            progress.warn(&unchecked);
        }
        // A stamp that counts on cert-manager where the old one did not: the cluster's is
        // asked about now (its install then left out of the stamp), and the env's CA Secret
        // must not land on another env's.
        if super::open::ask_about_the_clusters_cert_manager(&kube, &mut state, &stamp).await? {
            state.save(&env_dir)?;
            stamp = stamp_to_bootstrap(&state)?;
        }
        super::open::ca_secret_is_free(&kube, &state, &stamp).await?;
    }
    let t = Instant::now();
    progress.start("remove", &format!("stamp {}", old.name));
    engine::remove_stamp(&kube, state.engine, &old, settings.step_timeout).await?;
    progress.done(
        "remove",
        t.elapsed(),
        &format!("stamp {} removed", old.name),
    );
    if let Some(dirs) = &new_packages {
        let gitea = super::open::gitea_of(&state)?;
        let t = Instant::now();
        progress.start("remove", "the packages' objects");
        let removed = super::packages::remove(
            &kube,
            &super::packages::PackageTarget::of(&state, name),
            &state.packages,
            &gitea,
        )
        .await?;
        progress.done(
            "remove",
            t.elapsed(),
            &format!("{removed} package objects removed"),
        );
        state.packages = dirs.clone();
        state.save(&env_dir)?;
    }
    state.stamp = stamp.name.clone();
    state.stamp_dir = stamp.dir.clone();
    state.source = stamp.repo_root.clone();
    for step in [
        "push",
        "secrets",
        "storage",
        "bootstrap",
        "vault",
        "reconcile",
    ] {
        state.forget(step);
    }
    state.save(&env_dir)?;
    // An env made before a bundle was loaded gets the images its nodes could not pull
    // offline now, before the new stamp needs them.
    give_bundle_images(settings, &state, progress).await?;
    let commit = super::bring_up::bring_up(settings, &mut state, &stamp, &kube, progress).await?;
    progress.info(&format!("stamp {} bootstrapped again", stamp.name));
    if new_packages.is_some() {
        let packages = super::packages::load_all(&state.packages, state.engine)?;
        let done = super::packages::push_and_apply(
            &kube,
            &super::packages::PackageTarget::of(&state, name),
            &packages,
            &super::open::gitea_of(&state)?,
            settings.step_timeout,
        )
        .await?;
        progress.info(&format!(
            "packages: {} repositories pushed, {} objects applied",
            done.pushed.len(),
            done.applied.len()
        ));
    }
    Ok(RestartReport {
        env: name.to_string(),
        removed_stamp: old.name,
        stamp: stamp.name,
        commit,
        packages: new_packages,
    })
}

/// The loaded bundle's images the env's nodes lack, given to them (`steps::images`). Whether
/// the env uses the shared caches is read from the world: a cache on the cluster's network.
async fn give_bundle_images(
    settings: &Settings,
    state: &super::state::EnvState,
    progress: &Progress,
) -> Result<(), EnvError> {
    let Some(cluster) = &state.cluster else {
        return Ok(());
    };
    // An existing cluster's nodes are not kindling's to load images into.
    if !state.provider.makes_the_cluster() || crate::bundle::loaded(&settings.data_dir).is_none() {
        return Ok(());
    }
    let docker = crate::docker::DockerClient::connect().await?;
    let mut caches = false;
    for (host, _) in crate::registry::CACHED_UPSTREAMS {
        let cache = crate::registry::cache_container(host);
        if docker
            .container_ip(&cache, &cluster.network)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            caches = true;
        }
    }
    let provider: std::sync::Arc<dyn crate::cluster::provider::ClusterProvider + Send + Sync> =
        super::provider_cli(state.provider, settings, &state.name)?.into();
    let t = Instant::now();
    let given =
        super::steps::images::give_nodes(&docker, provider, state, settings, caches, progress)
            .await?;
    if given > 0 {
        progress.done(
            "images",
            t.elapsed(),
            &format!("{given} images of the loaded bundle into the nodes"),
        );
    }
    Ok(())
}
