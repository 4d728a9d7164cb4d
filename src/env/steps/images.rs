//! Images of a loaded offline bundle into the nodes: those the nodes could not pull with no
//! network, because no shared cache of the env serves their registry (Argo CD's redis comes
//! from public.ecr.aws) or the env uses no caches at all. They go in as the provider's own
//! image loading puts them (`kind load image-archive`, `k3d image import`), from the Docker
//! engine that `bundle load` gave them to.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step, join_error};
use crate::bundle::{self, NodeImage};
use crate::env::EnvError;

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
            let wanted = match wanted(ctx) {
                None => return Some("no bundle loaded".into()),
                Some(w) if w.is_empty() => {
                    return Some("the caches serve every image of the loaded bundle".into());
                }
                Some(w) => w,
            };
            let missing = missing_from_nodes(ctx, &wanted).await;
            missing
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
            let docker = ctx.docker()?;
            let wanted = wanted(ctx).unwrap_or_default();
            let missing = missing_from_nodes(ctx, &wanted).await;
            // Only what the engine still holds as the bundle loaded it (an image removed or
            // replaced since is said, not imported).
            let mut names = Vec::new();
            for image in &missing {
                if docker.image_id(&image.in_engine).await.as_deref() == Some(image.id.as_str()) {
                    names.push(image.in_engine.clone());
                } else {
                    ctx.progress.warn(&format!(
                        "{}: the Docker engine no longer holds it as the bundle loaded it; `kindling bundle load` again",
                        image.reference
                    ));
                }
            }
            if names.is_empty() {
                return Ok("nothing to import".into());
            }
            let scratch = ctx.settings.data_dir.join("tmp");
            std::fs::create_dir_all(&scratch).map_err(|e| {
                EnvError::Preflight(format!("cannot create {}: {e}", scratch.display()))
            })?;
            let archive = tempfile::Builder::new()
                .prefix(".images-")
                .suffix(".tar")
                .tempfile_in(&scratch)
                .map_err(|e| {
                    EnvError::Preflight(format!(
                        "cannot create a file in {}: {e}",
                        scratch.display()
                    ))
                })?
                .into_temp_path();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            ctx.progress
                .detail(&format!("docker save {}", names.join(" ")));
            docker.save_archive(&refs, &archive).await?;
            let provider = ctx.provider()?;
            let cluster = ctx.cluster_state()?.name;
            let path = archive.to_path_buf();
            tokio::task::spawn_blocking(move || provider.import_images(&cluster, &path))
                .await
                .map_err(join_error)??;
            Ok(format!("{} images", names.len()))
        })
    }
}

/// What the nodes must be given, `None` when no bundle is loaded.
fn wanted(ctx: &Ctx<'_>) -> Option<Vec<NodeImage>> {
    let loaded = bundle::loaded(&ctx.settings.data_dir)?;
    Some(bundle::for_nodes(
        &loaded,
        ctx.opts.profile.spec.image_caches,
        &[&ctx.settings.gitea_image, &ctx.settings.registry_image],
    ))
}

/// The images some node lacks, by what each node's containerd lists (`crictl images -o json`,
/// the CRI ListImagesResponse). A node that cannot say counts as lacking them all.
async fn missing_from_nodes(ctx: &Ctx<'_>, wanted: &[NodeImage]) -> Vec<NodeImage> {
    let Ok(docker) = ctx.docker() else {
        return wanted.to_vec();
    };
    let state = ctx.state().clone();
    let Ok(nodes) = crate::env::power::kubelet_nodes(docker, &state).await else {
        return wanted.to_vec();
    };
    if nodes.is_empty() {
        return wanted.to_vec();
    }
    let mut missing: Vec<NodeImage> = Vec::new();
    for node in nodes {
        let listed = docker
            .exec(&node, &["crictl", "images", "-o", "json"])
            .await
            .ok()
            .filter(|o| o.exit_code == 0)
            .map(|o| o.stdout)
            .unwrap_or_default();
        let held = bundle::listed_tags(&listed);
        for image in wanted {
            let name = bundle::distribution::Reference::parse(&image.in_engine)
                .map(|r| r.to_string())
                .unwrap_or_default();
            if !held.contains(&name) && !missing.contains(image) {
                missing.push(image.clone());
            }
        }
    }
    missing
}
