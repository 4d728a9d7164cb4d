//! Images of a loaded offline bundle into the nodes: those the nodes could not pull with no
//! network, because no shared cache of the env serves their registry (Argo CD's redis comes
//! from public.ecr.aws) or the env uses no caches at all. They go in as the provider's own
//! image loading puts them (`kind load image-archive`, `k3d image import`), from a Docker
//! archive cut from the bundle itself.

use std::path::Path;

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step, join_error};
use crate::bundle::{self, NodeImage};
use crate::cluster::provider::ClusterProvider;
use crate::docker::DockerClient;
use crate::env::state::EnvState;
use crate::env::{EnvError, Settings};
use crate::ui::Progress;

pub struct Images;

impl Step for Images {
    fn name(&self) -> &'static str {
        "images"
    }

    fn line(&self, _ctx: &Ctx<'_>) -> String {
        "images of the loaded bundle into the nodes".into()
    }

    fn skip<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
        Box::pin(async move {
            if !ctx.resolved.provider.makes_the_cluster() {
                return Some("an existing cluster pulls its own images".into());
            }
            let caches = ctx.opts.profile.spec.image_caches;
            let wanted = match wanted(ctx.settings, caches) {
                Ok(w) => w,
                Err(why) => return Some(why),
            };
            let docker = ctx.docker().ok()?;
            let state = ctx.state().clone();
            missing_from_nodes(docker, &state, &wanted)
                .await
                .is_empty()
                .then(|| format!("the nodes hold the {} images", wanted.len()))
        })
    }

    /// Skipped, the nodes need nothing from a bundle.
    fn skip_is_done(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let state = ctx.state().clone();
            let given = give_nodes(
                ctx.docker()?,
                ctx.provider()?,
                &state,
                ctx.settings,
                ctx.opts.profile.spec.image_caches,
                ctx.progress,
            )
            .await?;
            Ok(format!("{given} images"))
        })
    }
}

/// Gives the nodes of the env `state` describes the images of the loaded bundle they lack
/// (`caches`: whether the env uses the shared caches). Also run by `env restart`, for an env
/// made before the bundle was loaded. Returns how many it gave.
pub async fn give_nodes(
    docker: &DockerClient,
    provider: std::sync::Arc<dyn ClusterProvider + Send + Sync>,
    state: &EnvState,
    settings: &Settings,
    caches: bool,
    progress: &Progress,
) -> Result<usize, EnvError> {
    let Ok(wanted) = wanted(settings, caches) else {
        return Ok(0);
    };
    let missing = missing_from_nodes(docker, state, &wanted).await;
    if missing.is_empty() {
        return Ok(0);
    }
    let scratch = settings.data_dir.join("tmp");
    std::fs::create_dir_all(&scratch)
        .map_err(|e| EnvError::Preflight(format!("cannot create {}: {e}", scratch.display())))?;
    // What a killed import left (tempfile names its files `.tmpXXXXXX`).
    bundle::sweep_leftovers(&scratch, &[".tmp"], bundle::LEFTOVER_AGE);
    let cluster = crate::cluster::cluster_name(&state.name);
    let mut given = 0;
    let mut files: Vec<&Path> = missing.iter().map(|i| i.file.as_path()).collect();
    files.sort();
    files.dedup();
    for file in files {
        let names: Vec<String> = missing
            .iter()
            .filter(|i| i.file == file)
            .map(|i| i.name.clone())
            .collect();
        let archive = tempfile::Builder::new()
            .suffix(".tar")
            .tempfile_in(&scratch)
            .map_err(|e| {
                EnvError::Preflight(format!(
                    "cannot create a file in {}: {e}",
                    scratch.display()
                ))
            })?
            .into_temp_path();
        progress.detail(&format!("from {}: {}", file.display(), names.join(" ")));
        let (file, path, out) = (file.to_path_buf(), names.clone(), archive.to_path_buf());
        let count = tokio::task::spawn_blocking(move || bundle::node_archive(&file, &path, &out))
            .await
            .map_err(join_error)??;
        if count < names.len() {
            return Err(EnvError::Preflight(format!(
                "the bundle holds {count} of the images {}\nhelp: `kindling bundle load` the bundle again",
                names.join(", ")
            )));
        }
        let (provider, cluster, path) = (provider.clone(), cluster.clone(), archive.to_path_buf());
        tokio::task::spawn_blocking(move || provider.import_images(&cluster, &path))
            .await
            .map_err(join_error)??;
        given += count;
    }
    Ok(given)
}

/// What the nodes must be given; the reason there is nothing when there is nothing.
fn wanted(settings: &Settings, caches: bool) -> Result<Vec<NodeImage>, String> {
    let Some(loaded) = bundle::loaded(&settings.data_dir) else {
        return Err("no bundle loaded".into());
    };
    if loaded.in_engine.is_empty() && !loaded.record.images.is_empty() {
        return Err(format!(
            "the loaded bundle's images are for {}, not this machine ({})",
            loaded
                .record
                .docker_platform
                .as_deref()
                .unwrap_or("another platform"),
            bundle::host_platform()
        ));
    }
    let wanted = bundle::for_nodes(
        &loaded,
        caches,
        &[&settings.gitea_image, &settings.registry_image],
    );
    if wanted.is_empty() {
        return Err(if caches {
            "the caches serve every image of the loaded bundle".into()
        } else {
            "the loaded bundle holds no image the nodes run".into()
        });
    }
    Ok(wanted)
}

/// The images some node lacks, by what each node's containerd lists. A node that cannot say
/// counts as lacking them all.
async fn missing_from_nodes(
    docker: &DockerClient,
    state: &EnvState,
    wanted: &[NodeImage],
) -> Vec<NodeImage> {
    let listings = match crate::env::power::node_image_listings(docker, state).await {
        Ok(listings) if !listings.is_empty() => listings,
        _ => return wanted.to_vec(),
    };
    let mut missing: Vec<NodeImage> = Vec::new();
    for (_, listing) in listings {
        let held = bundle::listed_tags(&listing.unwrap_or_default());
        for image in wanted {
            let name = bundle::distribution::Reference::parse(&image.name)
                .map(|r| r.to_string())
                .unwrap_or_default();
            if !held.contains(&name) && !missing.contains(image) {
                missing.push(image.clone());
            }
        }
    }
    missing
}
