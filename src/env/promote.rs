//! `env promote [ENV] --image NAME=TAG… [--overlay O]` and `env promote [ENV] --from A --to B`:
//! promotion by image tag, as teams do it by hand. The overlay's kustomization.yaml gets the
//! new `images[].newTag` (quoted, `crate::stamp::overlay::with_image_tag`), the snapshot is
//! pushed (`env sync`), and when the env runs that overlay kindling follows the rollout until
//! the workloads run the new tag. The edit stays in the working tree for the user to commit.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::open::{kube_of, load, stamp_of};
use super::{EnvError, Settings};
use crate::stamp::overlay;
use crate::ui::Progress;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromoteReport {
    pub env: String,
    /// The overlay edited (None: the entries' own kustomizations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay: Option<String>,
    pub changes: Vec<TagChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The env runs the edited overlay and its workloads were followed to the new tags.
    pub rolled_out: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagChange {
    pub entry: String,
    pub file: PathBuf,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
}

/// A tag to set: the entry, the image, the tag and the kustomization file.
type Wanted = (String, String, String, PathBuf);

/// What to promote.
pub enum Promotion {
    /// `--image NAME=TAG`, in `--overlay` (or the env's own).
    Tags {
        images: Vec<(String, String)>,
        overlay: Option<String>,
    },
    /// `--from A --to B`: every tag A sets, into B.
    Copy { from: String, to: String },
}

pub async fn promote(
    settings: &Settings,
    name: &str,
    promotion: Promotion,
    wait: Option<Duration>,
    progress: &Progress,
) -> Result<PromoteReport, EnvError> {
    let state = load(settings, name)?;
    let stamp = stamp_of(&settings.data_dir, &state)?;
    let (target, wanted): (Option<String>, Vec<Wanted>) = match &promotion {
        Promotion::Tags { images, overlay } => {
            let target = overlay.clone().or_else(|| state.overlay.clone());
            let files = overlay::kustomizations(&stamp, target.as_deref());
            let mut wanted = Vec::new();
            for (image, tag) in images {
                check_tag(tag)?;
                let mut found = false;
                for (entry, file) in &files {
                    let text = read(file)?;
                    if overlay::image_names(&text).contains(image) {
                        wanted.push((entry.clone(), image.clone(), tag.clone(), file.clone()));
                        found = true;
                    }
                }
                if !found {
                    let known: Vec<String> = files
                        .iter()
                        .flat_map(|(_, f)| overlay::image_names(&read(f).unwrap_or_default()))
                        .collect();
                    return Err(EnvError::BadInput(format!(
                        "no kustomization of {} sets image {image} (`images:` with `name: {image}`); images there: {}\nhelp: name one of those, or add it to the overlay's images",
                        target
                            .as_deref()
                            .map(|o| format!("overlay {o}"))
                            .unwrap_or_else(|| "the env's entries".to_string()),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
            }
            (target, wanted)
        }
        Promotion::Copy { from, to } => {
            let sources = overlay::kustomizations(&stamp, Some(from));
            let targets = overlay::kustomizations(&stamp, Some(to));
            if sources.is_empty() || targets.is_empty() {
                return Err(EnvError::BadInput(format!(
                    "the env's entries have no overlay {}\nhelp: name overlays the entries offer (their overlays/ directories)",
                    if sources.is_empty() { from } else { to }
                )));
            }
            let mut wanted = Vec::new();
            for (entry, source) in &sources {
                let Some((_, target)) = targets.iter().find(|(e, _)| e == entry) else {
                    continue;
                };
                let text = read(source)?;
                for image in overlay::image_names(&text) {
                    if let Some(tag) = overlay::image_tag(&text, &image) {
                        wanted.push((entry.clone(), image, tag, target.clone()));
                    }
                }
            }
            (Some(to.clone()), wanted)
        }
    };
    // Every file edited in memory first: nothing is written unless all of them can be.
    let mut edits: Vec<(PathBuf, String)> = Vec::new();
    let mut changes = Vec::new();
    for (entry, image, tag, file) in wanted {
        let text = match edits.iter().find(|(f, _)| *f == file) {
            Some((_, t)) => t.clone(),
            None => read(&file)?,
        };
        let from = overlay::image_tag(&text, &image);
        if from.as_deref() == Some(tag.as_str()) {
            continue;
        }
        let edited = overlay::with_image_tag(&text, &image, &tag).ok_or_else(|| {
            EnvError::BadInput(format!(
                "{}: `images:` is not a block list kindling can edit line by line\nhelp: write it as `images:` with one `- name:` item per line",
                file.display()
            ))
        })?;
        match edits.iter_mut().find(|(f, _)| *f == file) {
            Some(e) => e.1 = edited,
            None => edits.push((file.clone(), edited)),
        }
        changes.push(TagChange {
            entry,
            file,
            image,
            from,
            to: tag,
        });
    }
    if changes.is_empty() {
        progress.info("every tag is already the one asked for; nothing to push");
        return Ok(PromoteReport {
            env: name.to_string(),
            overlay: target,
            changes,
            commit: None,
            rolled_out: false,
        });
    }
    for (file, text) in &edits {
        crate::paths::write_atomic(file, text.as_bytes(), 0o644).map_err(|e| EnvError::State {
            path: file.clone(),
            reason: format!("cannot write the promoted tag: {e}"),
        })?;
        progress.info(&format!(
            "{}: edited (commit it when it is right)",
            file.display()
        ));
    }
    // The env follows what it runs: another overlay's edit is pushed, not rolled out here.
    let runs_it = target == state.overlay;
    let sync_wait = if runs_it { wait } else { None };
    let synced = super::sync::sync(settings, name, sync_wait, progress).await?;
    let mut rolled_out = false;
    if runs_it && let Some(timeout) = wait {
        let t = Instant::now();
        progress.start("rollout", "the workloads on the new tags");
        let kube = kube_of(&load(settings, name)?).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let pending = pending_images(&kube, &changes).await?;
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(EnvError::TimedOut {
                    what: "the promoted tags to roll out".into(),
                    seconds: timeout.as_secs(),
                    blocking: format!(": {}", pending.join(", ")),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        progress.done("rollout", t.elapsed(), "every workload on its new tag");
        rolled_out = true;
    }
    Ok(PromoteReport {
        env: name.to_string(),
        overlay: target,
        changes,
        commit: Some(synced.commit),
        rolled_out,
    })
}

/// The workloads whose containers run a promoted image on another tag, as `KIND NS/NAME
/// (image)`. A container's image matches by repository: `NAME`, `NAME:TAG`, `NAME@DIGEST`.
async fn pending_images(
    kube: &crate::kube::KubeClient,
    changes: &[TagChange],
) -> Result<Vec<String>, EnvError> {
    let mut pending = Vec::new();
    for (api_version, kind) in [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
    ] {
        for o in kube.list(api_version, kind, None).await? {
            let containers = o["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for c in containers {
                let Some(image) = c["image"].as_str() else {
                    continue;
                };
                for change in changes {
                    let rest = image.strip_prefix(change.image.as_str());
                    let is_it = rest
                        .is_some_and(|r| r.is_empty() || r.starts_with(':') || r.starts_with('@'));
                    if is_it && image != format!("{}:{}", change.image, change.to) {
                        pending.push(format!(
                            "{kind} {}/{} ({image})",
                            o["metadata"]["namespace"].as_str().unwrap_or_default(),
                            o["metadata"]["name"].as_str().unwrap_or_default()
                        ));
                    }
                }
            }
        }
    }
    Ok(pending)
}

/// A tag as the OCI distribution spec allows it (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).
fn check_tag(tag: &str) -> Result<(), EnvError> {
    let mut chars = tag.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && tag.len() <= 128;
    if valid {
        return Ok(());
    }
    Err(EnvError::BadInput(format!(
        "'{tag}' is not an image tag\nhelp: letters, digits, '_', '.' and '-', starting with a letter, digit or '_', at most 128"
    )))
}

fn read(file: &PathBuf) -> Result<String, EnvError> {
    std::fs::read_to_string(file).map_err(|e| EnvError::State {
        path: file.clone(),
        reason: format!("cannot read it: {e}"),
    })
}
