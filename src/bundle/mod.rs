//! Offline bundles (`kindling bundle save/load`): one archive with what an env would fetch
//! from the internet, for a workshop room on one Wi-Fi or a machine with no network.
//!
//! The archive is an OCI image layout (opencontainers/image-spec v1.1 image-layout.md:
//! `oci-layout`, `index.json` naming every image by `org.opencontainers.image.ref.name`,
//! `blobs/sha256/…`), so skopeo, crane or oras read it too. The images are copied from their
//! registries byte for byte (`distribution`), so every pinned digest still matches. kindling's
//! own record is `kindling/bundle.json`; the pinned kind and k3d binaries sit under
//! `kindling/tools/`.
//!
//! `bundle load` checks every blob against its digest, then:
//! - seeds the shared pull-through caches: a plain registry (the pinned registry image) runs on
//!   each cache's volume for the time of the load and receives the images of its upstream. A
//!   registry in proxy mode serves what its storage holds when the upstream cannot be reached
//!   (distribution/distribution v3.1.1 registry/proxy/proxytagservice.go: "If the remote is
//!   unavailable the local association is returned"; proxymanifeststore.go and
//!   proxyblobstore.go read local storage first), and never expires what it did not fetch
//!   itself (proxyregistry.go schedules only remote fetches);
//! - puts the kind and k3d binaries into the tool cache, checked against the pins;
//! - records what it loaded, for `doctor`.

pub mod charts;
pub mod distribution;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use distribution::{Client, Object, Reference};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("'{reference}' is not an image reference: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("{}:{line}: {reason}\nhelp: one image per line: `REFERENCE` or `REFERENCE from SOURCE` (SOURCE: where to copy it from, e.g. a mirror); `#` starts a comment", file.display())]
    BadList {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "cannot copy {reference}: {reason}\nhelp: `bundle save` needs the registries (or the SOURCE mirrors of the list) reachable"
    )]
    Registry { reference: String, reason: String },
    #[error("cannot seed {target}: {reason}")]
    Seed { target: String, reason: String },
    #[error("{}: {reason}\nhelp: the bundle is damaged or not one kindling wrote; save it again", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where kindling's record sits in the archive.
pub const RECORD: &str = "kindling/bundle.json";

/// kindling's record of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleRecord {
    pub kindling_version: String,
    pub created_at: String,
    /// `os/arch` whose layers the bundle holds.
    pub platforms: Vec<String>,
    /// The platform of the images `docker load` takes from it (its `manifest.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_platform: Option<String>,
    pub images: Vec<BundleImage>,
    pub tools: Vec<BundleTool>,
    /// The engines' pinned install manifests, under `kindling/manifests/`.
    #[serde(default)]
    pub manifests: Vec<BundleManifest>,
    /// The stamp's Helm charts, as OCI artifacts in the layout.
    #[serde(default)]
    pub charts: Vec<charts::BundleChart>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleManifest {
    /// As the manifest cache names it (`flux-v2.9.4-install.yaml`).
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleImage {
    /// As the env names it (`docker.io/kindest/node:v1.37.0@sha256:…`).
    pub reference: String,
    /// Where it was copied from, when not from its own registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The digest of its top manifest (an index or a manifest).
    pub digest: String,
    pub media_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleTool {
    pub name: String,
    pub version: String,
    pub platform: String,
    pub sha256: String,
}

/// One line of an image list: the reference, and where to copy it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedImage {
    pub reference: Reference,
    pub source: Option<Reference>,
}

/// Reads an image list (`REFERENCE [from SOURCE]` per line, `#` comments).
pub fn read_list(file: &Path) -> Result<Vec<WantedImage>, BundleError> {
    let text = std::fs::read_to_string(file).map_err(io(file))?;
    let mut wanted = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| BundleError::BadList {
            file: file.to_path_buf(),
            line: i + 1,
            reason,
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let (reference, source) = match words.as_slice() {
            [r] => (*r, None),
            [r, "from", s] => (*r, Some(*s)),
            _ => return Err(bad(format!("'{line}' is not `REFERENCE [from SOURCE]`"))),
        };
        wanted.push(WantedImage {
            reference: Reference::parse(reference).map_err(|e| bad(e.to_string()))?,
            source: source
                .map(Reference::parse)
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
        });
    }
    Ok(wanted)
}

/// The images an env of `provider` and `engine` runs from kindling's pins: the node image,
/// Gitea, the registry (also the caches' image), k3d's helper images, and every image of the
/// engine's pinned install manifest (`install_manifest`, its text).
pub fn pinned_images(
    provider: crate::cluster::Provider,
    kubernetes: &str,
    gitea_image: &str,
    registry_image: &str,
    install_manifest: &str,
) -> Result<Vec<WantedImage>, BundleError> {
    let mut names: Vec<String> = Vec::new();
    if let Some(node) = crate::cluster::node_image(provider, kubernetes) {
        names.push(node.to_string());
    }
    if provider == crate::cluster::Provider::K3d {
        // k3d v5.9.0 pkg/types/images.go: the tools and load-balancer images, tagged with
        // k3d's own version, which every `k3d cluster create` runs.
        let version = crate::pins::K3D.version.trim_start_matches('v');
        names.push(format!("ghcr.io/k3d-io/k3d-tools:{version}"));
        names.push(format!("ghcr.io/k3d-io/k3d-proxy:{version}"));
    }
    names.push(gitea_image.to_string());
    names.push(registry_image.to_string());
    for document in serde_yaml_ng::Deserializer::from_str(install_manifest) {
        let Ok(object) = Value::deserialize(document) else {
            continue;
        };
        let spec = &object["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for container in spec[list].as_array().into_iter().flatten() {
                if let Some(image) = container["image"].as_str() {
                    names.push(image.to_string());
                }
            }
        }
    }
    let mut wanted: Vec<WantedImage> = Vec::new();
    for name in names {
        let reference = Reference::parse(&name)?;
        if !wanted.iter().any(|w| w.reference == reference) {
            wanted.push(WantedImage {
                reference,
                source: None,
            });
        }
    }
    Ok(wanted)
}

/// The images the nodes of a running env hold, as their containerd lists them
/// (`crictl images -o json`: `{"images": [{"repoTags": [...], "repoDigests": [...]}]}`, the CRI
/// ListImagesResponse as kubernetes-sigs/cri-tools prints it; k3s-io/k3s
/// scripts/airgap/generate-list.sh reads the same list). A tag is pinned to the digest it was
/// pulled by. What a kind node image brings preloaded (registry.k8s.io's control plane,
/// kindest's own images) is left out: the node image carries it.
pub fn node_images(crictl_json: &str, provider: crate::cluster::Provider) -> Vec<WantedImage> {
    let listing: Value = serde_json::from_str(crictl_json).unwrap_or(Value::Null);
    let mut wanted: Vec<WantedImage> = Vec::new();
    for image in listing["images"].as_array().into_iter().flatten() {
        let digests: Vec<&str> = image["repoDigests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for tag in image["repoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let Ok(mut reference) = Reference::parse(tag) else {
                continue;
            };
            let preloaded = provider == crate::cluster::Provider::Kind
                && (reference.registry == "registry.k8s.io"
                    || (reference.registry == "docker.io"
                        && reference.repository.starts_with("kindest/")));
            if preloaded {
                continue;
            }
            let repo = format!("{}/{}", reference.registry, reference.repository);
            reference.digest = digests.iter().find_map(|d| {
                let parsed = Reference::parse(d).ok()?;
                (format!("{}/{}", parsed.registry, parsed.repository) == repo)
                    .then_some(parsed.digest)
                    .flatten()
            });
            if !wanted.iter().any(|w| w.reference == reference) {
                wanted.push(WantedImage {
                    reference,
                    source: None,
                });
            }
        }
    }
    wanted
}

/// Every tag a node's `crictl images -o json` lists, named as kindling names images.
pub fn listed_tags(crictl_json: &str) -> Vec<String> {
    let listing: Value = serde_json::from_str(crictl_json).unwrap_or(Value::Null);
    listing["images"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["repoTags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().and_then(|t| Reference::parse(t).ok()))
        .map(|r| r.to_string())
        .collect()
}

/// How old a leftover of an interrupted save or load must be before the next one removes
/// it: one still in use by a save or load running beside it is younger.
pub const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes what an interrupted save or load left in `dir` (a Ctrl-C or a kill skips the
/// clean-up): entries whose names start with one of `prefixes`, or contain `.partial-`,
/// older than `age`. Returns what it removed.
pub fn sweep_leftovers(dir: &Path, prefixes: &[&str], age: std::time::Duration) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let now = std::time::SystemTime::now();
    let mut removed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(prefixes.iter().any(|p| name.starts_with(p)) || name.contains(".partial-")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|d| d >= age);
        if !old {
            continue;
        }
        let path = entry.path();
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// What `bundle save` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveReport {
    pub file: PathBuf,
    pub bytes: u64,
    pub record: BundleRecord,
}

/// Copies `images` (their `platforms`) and the pinned `tools` into the archive `file`,
/// written whole or not at all.
pub fn save(
    file: &Path,
    images: &[WantedImage],
    platforms: &[String],
    tools: &[(crate::cluster::tools::PinnedTool, String, Vec<u8>)],
    manifests: &[(String, Vec<u8>)],
    helm_charts: &[crate::stamp::HelmChart],
    progress: &mut dyn FnMut(&str),
) -> Result<SaveReport, BundleError> {
    let client = Client::new();
    // The platform `docker load` gets: this machine's when kept, else the first kept.
    let host = host_platform();
    let docker_platform = if platforms.contains(&host) {
        host
    } else {
        platforms.first().cloned().unwrap_or(host)
    };
    // Blobs go to disk as they arrive (beside the archive, so the rename at the end stays on
    // one filesystem); the archive is written from there.
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sweep_leftovers(parent, &[".kindling-bundle-"], LEFTOVER_AGE);
    let staging = tempfile::Builder::new()
        .prefix(".kindling-bundle-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let store = staging.path();
    let mut index = Vec::new();
    let mut docker_manifest = Vec::new();
    let mut record = BundleRecord {
        kindling_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: crate::env::state::now_rfc3339(),
        platforms: platforms.to_vec(),
        docker_platform: Some(docker_platform.clone()),
        images: Vec::new(),
        tools: Vec::new(),
        manifests: Vec::new(),
        charts: Vec::new(),
    };
    for chart in helm_charts {
        if record.charts.iter().any(|c| c.is(chart)) {
            continue;
        }
        progress(&format!(
            "chart {} {} (from {})",
            chart.chart,
            chart.version,
            charts::shown(&chart.repo)
        ));
        let saved = charts::save(&client, chart, store)?;
        index.push(saved.index_entry);
        record.charts.push(saved.record);
    }
    for wanted in images {
        let from = wanted.source.as_ref().unwrap_or(&wanted.reference);
        progress(&format!("image {} (from {from})", wanted.reference));
        let pulled = client.pull(from, platforms, store)?;
        // A mirror must hold the very image the reference pins.
        if let Some(pinned) = &wanted.reference.digest
            && *pinned != pulled.top.digest
        {
            return Err(BundleError::Registry {
                reference: wanted.reference.to_string(),
                reason: format!(
                    "{from} holds {}, not the pinned {pinned}",
                    pulled.top.digest
                ),
            });
        }
        for manifest in std::iter::once(&pulled.top).chain(&pulled.manifests) {
            let path = store.join(blob_path(&manifest.digest));
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            std::fs::write(&path, &manifest.bytes).map_err(io(&path))?;
        }
        index.push(json!({
            "mediaType": pulled.top.media_type,
            "digest": pulled.top.digest,
            "size": pulled.top.bytes.len(),
            "annotations": {
                "org.opencontainers.image.ref.name": wanted.reference.to_string(),
                "io.containerd.image.name": wanted.reference.to_string(),
            },
        }));
        // `docker load` reads manifest.json (the Docker archive format) and takes the paths
        // in it as they are; the first platform's image is the one it loads.
        if let Some(manifest) = platform_manifest(&pulled, &docker_platform)
            && is_image_config(manifest["config"]["mediaType"].as_str().unwrap_or_default())
            && let Some(tag) = &wanted.reference.tag
        {
            let layers: Vec<String> = manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["digest"].as_str())
                .map(blob_path)
                .collect();
            docker_manifest.push(json!({
                "Config": blob_path(manifest["config"]["digest"].as_str().unwrap_or_default()),
                "RepoTags": [format!("{}/{}:{tag}", wanted.reference.registry, wanted.reference.repository)],
                "Layers": layers,
            }));
        }
        record.images.push(BundleImage {
            reference: wanted.reference.to_string(),
            source: wanted.source.as_ref().map(ToString::to_string),
            digest: pulled.top.digest.clone(),
            media_type: pulled.top.media_type.clone(),
        });
    }
    let mut tool_files = Vec::new();
    for (tool, platform, bytes) in tools {
        let sha256 = crate::cluster::tools::sha256_hex(bytes);
        record.tools.push(BundleTool {
            name: tool.name.clone(),
            version: tool.version.clone(),
            platform: platform.clone(),
            sha256,
        });
        tool_files.push((
            format!("kindling/tools/{}-{}-{platform}", tool.name, tool.version),
            bytes.clone(),
        ));
    }
    for (name, bytes) in manifests {
        record.manifests.push(BundleManifest {
            file: name.clone(),
            sha256: crate::cluster::tools::sha256_hex(bytes),
        });
        tool_files.push((format!("kindling/manifests/{name}"), bytes.clone()));
    }
    let partial = file.with_extension(format!("partial-{}", std::process::id()));
    let written = (|| -> std::io::Result<u64> {
        let out = std::fs::File::create(&partial)?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
        fn put<W: std::io::Write>(
            tar: &mut tar::Builder<W>,
            name: &str,
            size: u64,
            content: impl std::io::Read,
            mode: u32,
        ) -> std::io::Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(mode);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, name, content)
        }
        let small = |tar: &mut tar::Builder<_>, name: &str, bytes: &[u8], mode: u32| {
            put(tar, name, bytes.len() as u64, bytes, mode)
        };
        small(
            &mut tar,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
            0o644,
        )?;
        let top = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": index,
        });
        small(
            &mut tar,
            "index.json",
            &serde_json::to_vec_pretty(&top)?,
            0o644,
        )?;
        small(
            &mut tar,
            "manifest.json",
            &serde_json::to_vec_pretty(&docker_manifest)?,
            0o644,
        )?;
        small(
            &mut tar,
            RECORD,
            &serde_json::to_vec_pretty(&record)?,
            0o644,
        )?;
        // Every blob from disk, in name order (a blob shared by two images is there once).
        let mut names: Vec<PathBuf> = match std::fs::read_dir(store.join("blobs/sha256")) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_none())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        for path in names {
            let name = format!(
                "blobs/sha256/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            let size = std::fs::metadata(&path)?.len();
            put(&mut tar, &name, size, std::fs::File::open(&path)?, 0o644)?;
        }
        for (name, bytes) in &tool_files {
            small(&mut tar, name, bytes, 0o755)?;
        }
        let inner = tar.into_inner()?;
        let file = inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(file.metadata()?.len())
    })();
    let bytes = match written {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(BundleError::Io {
                path: file.to_path_buf(),
                source: e,
            });
        }
    };
    std::fs::rename(&partial, file).map_err(io(file))?;
    Ok(SaveReport {
        file: file.to_path_buf(),
        bytes,
        record,
    })
}

/// This machine as OCI platforms name it (`linux/amd64`): the images run in Linux nodes and
/// containers whatever the host system.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// A config `docker load` takes: an image's (not a Helm chart's or another artifact's).
fn is_image_config(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.config.v1+json"
            | "application/vnd.docker.container.image.v1+json"
    )
}

/// Whether a digest is one kindling reads a blob by (`sha256:` and 64 lower-case hex digits):
/// digests come from the archive's own JSON and become file names.
fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// The image manifest of the first kept platform (or the image's only manifest).
fn platform_manifest(pulled: &distribution::PulledImage, wanted: &str) -> Option<Value> {
    let top: Value = serde_json::from_slice(&pulled.top.bytes).ok()?;
    if top["manifests"].is_array() {
        if !pulled.platforms.iter().any(|p| p == wanted) {
            return None;
        }
        let entry = top["manifests"].as_array()?.iter().find(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or_default(),
                m["platform"]["architecture"].as_str().unwrap_or_default()
            ) == wanted
        })?;
        let digest = entry["digest"].as_str()?;
        let child = pulled.manifests.iter().find(|m| m.digest == digest)?;
        serde_json::from_slice(&child.bytes).ok()
    } else {
        Some(top)
    }
}

/// A bundle unpacked and checked: every blob matches its digest.
pub struct OpenBundle {
    pub dir: tempfile::TempDir,
    pub record: BundleRecord,
}

impl OpenBundle {
    pub fn open(file: &Path, scratch: &Path) -> Result<OpenBundle, BundleError> {
        std::fs::create_dir_all(scratch).map_err(io(scratch))?;
        let dir = tempfile::tempdir_in(scratch).map_err(io(scratch))?;
        let damaged = |reason: String| BundleError::Damaged {
            path: file.to_path_buf(),
            reason,
        };
        let reader = std::fs::File::open(file).map_err(io(file))?;
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(io(file))? {
            let mut entry = entry.map_err(io(file))?;
            let name = entry.path().map_err(io(file))?.to_path_buf();
            // Only plain relative names: nothing is written outside the scratch directory.
            if name
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(damaged(format!(
                    "holds a path outside the bundle: {}",
                    name.display()
                )));
            }
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let target = dir.path().join(&name);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            // Streamed to disk, hashed on the way: a layer is never held in memory whole.
            let mut out = std::fs::File::create(&target).map_err(io(&target))?;
            let got = distribution::copy_hashed(&mut entry, &mut out).map_err(io(file))?;
            if let Some(hex) = name.to_str().and_then(|n| n.strip_prefix("blobs/sha256/"))
                && got != format!("sha256:{hex}")
            {
                return Err(damaged(format!(
                    "blob sha256:{hex} does not match its content"
                )));
            }
        }
        let text = std::fs::read(dir.path().join(RECORD))
            .map_err(|e| damaged(format!("no {RECORD}: {e}")))?;
        let record: BundleRecord =
            serde_json::from_slice(&text).map_err(|e| damaged(format!("{RECORD}: {e}")))?;
        Ok(OpenBundle { dir, record })
    }

    pub fn blob(&self, digest: &str) -> Result<Object, BundleError> {
        if !valid_digest(digest) {
            return Err(BundleError::Damaged {
                path: self.dir.path().to_path_buf(),
                reason: format!("names a blob by '{digest}', which is not a sha256 digest"),
            });
        }
        let path = self.dir.path().join(blob_path(digest));
        let bytes = std::fs::read(&path).map_err(|e| BundleError::Damaged {
            path: path.clone(),
            reason: format!("blob {digest} is missing: {e}"),
        })?;
        Ok(Object {
            digest: digest.to_string(),
            media_type: String::new(),
            bytes,
        })
    }

    /// Every object of `image` the bundle holds, in push order: blobs, platform manifests,
    /// then the top manifest.
    pub fn objects_of(
        &self,
        image: &BundleImage,
    ) -> Result<(Vec<String>, Vec<Object>, Object), BundleError> {
        let mut top = self.blob(&image.digest)?;
        top.media_type = image.media_type.clone();
        let parsed: Value = serde_json::from_slice(&top.bytes).unwrap_or(Value::Null);
        let mut blobs = Vec::new();
        let mut manifests = Vec::new();
        let take_blobs = |manifest: &Value, blobs: &mut Vec<String>| -> Result<(), BundleError> {
            for d in std::iter::once(&manifest["config"])
                .chain(manifest["layers"].as_array().into_iter().flatten())
            {
                let digest = d["digest"].as_str().unwrap_or_default();
                if !blobs.iter().any(|b| b == digest) {
                    if !valid_digest(digest) || !self.dir.path().join(blob_path(digest)).is_file() {
                        return Err(BundleError::Damaged {
                            path: self.dir.path().to_path_buf(),
                            reason: format!("blob {digest} is missing"),
                        });
                    }
                    blobs.push(digest.to_string());
                }
            }
            Ok(())
        };
        match parsed["manifests"].as_array() {
            Some(children) => {
                for child in children {
                    let digest = child["digest"].as_str().unwrap_or_default();
                    // Platforms left out of the bundle have neither manifest blobs nor layers.
                    let Ok(mut manifest) = self.blob(digest) else {
                        continue;
                    };
                    let parsed_child: Value =
                        serde_json::from_slice(&manifest.bytes).unwrap_or(Value::Null);
                    let complete = std::iter::once(&parsed_child["config"])
                        .chain(parsed_child["layers"].as_array().into_iter().flatten())
                        .all(|d| {
                            self.dir
                                .path()
                                .join(blob_path(d["digest"].as_str().unwrap_or_default()))
                                .is_file()
                        });
                    if !complete {
                        continue;
                    }
                    take_blobs(&parsed_child, &mut blobs)?;
                    manifest.media_type = child["mediaType"]
                        .as_str()
                        .unwrap_or(distribution::MANIFEST_TYPES[0])
                        .to_string();
                    manifests.push(manifest);
                }
            }
            None => take_blobs(&parsed, &mut blobs)?,
        }
        Ok((blobs, manifests, top))
    }
}

/// What `bundle load` did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    pub file: PathBuf,
    pub loaded_at: String,
    /// Cache container → the images seeded into it.
    pub seeded: BTreeMap<String, Vec<String>>,
    /// Images no cache serves (their registry has none): loaded into the Docker engine only.
    pub engine_only: Vec<String>,
    pub tools: Vec<String>,
    /// Install manifests put into the manifest cache.
    pub manifests: Vec<String>,
    /// Helm charts put into the chart store, which `env create` serves from the env's Git.
    #[serde(default)]
    pub charts: Vec<charts::BundleChart>,
    /// Reference → (the name `docker load` gave it, its image ID): what an offline create
    /// runs for a digest-pinned image (`offline_image`).
    #[serde(default)]
    pub in_engine: BTreeMap<String, (String, String)>,
    /// Reference → the bundle (absolute path) whose Docker archive entry holds it, for the
    /// images `env create` gives the nodes.
    #[serde(default)]
    pub image_files: BTreeMap<String, PathBuf>,
    pub record: BundleRecord,
}

impl LoadReport {
    /// This load on top of the one before: a second bundle (a charts-only one after an
    /// images one, say) adds to what the first gave, never makes an env forget it. What the
    /// earlier load put in place and is gone since (a chart package removed) is dropped.
    pub fn merged_over(mut self, earlier: LoadReport, data_dir: &Path) -> LoadReport {
        fn union<T: PartialEq + Clone>(new: &mut Vec<T>, old: &[T]) {
            for item in old {
                if !new.contains(item) {
                    new.push(item.clone());
                }
            }
        }
        for (cache, images) in earlier.seeded {
            union(self.seeded.entry(cache).or_default(), &images);
        }
        union(&mut self.engine_only, &earlier.engine_only);
        union(&mut self.tools, &earlier.tools);
        union(&mut self.manifests, &earlier.manifests);
        let kept: Vec<charts::BundleChart> = earlier
            .charts
            .into_iter()
            .filter(|c| charts::is_stored(data_dir, c))
            .filter(|c| !self.charts.iter().any(|n| n.same_chart_as(c)))
            .collect();
        union(&mut self.charts, &kept);
        for (reference, value) in earlier.in_engine {
            self.in_engine.entry(reference).or_insert(value);
        }
        for (reference, file) in earlier.image_files {
            self.image_files.entry(reference).or_insert(file);
        }
        for image in earlier.record.images {
            if !self
                .record
                .images
                .iter()
                .any(|i| i.reference == image.reference)
            {
                self.record.images.push(image);
            }
        }
        union(&mut self.record.tools, &earlier.record.tools);
        union(&mut self.record.manifests, &earlier.record.manifests);
        let kept: Vec<charts::BundleChart> = earlier
            .record
            .charts
            .into_iter()
            .filter(|c| !self.record.charts.iter().any(|n| n.same_chart_as(c)))
            .collect();
        union(&mut self.record.charts, &kept);
        self
    }
}

/// Where `bundle load` records the last load, for `doctor`.
pub fn loaded_record_path(data_dir: &Path) -> PathBuf {
    data_dir.join("bundle-loaded.json")
}

pub fn loaded(data_dir: &Path) -> Option<LoadReport> {
    let text = std::fs::read(loaded_record_path(data_dir)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The pinned images (`wanted`) a loaded bundle lacks.
pub fn missing_from(report: &LoadReport, wanted: &[WantedImage]) -> Vec<String> {
    wanted
        .iter()
        .map(|w| w.reference.to_string())
        .filter(|r| !report.record.images.iter().any(|i| &i.reference == r))
        .collect()
}

/// Images that run beside the cluster, in Docker, never in its nodes: the node images, k3d's
/// helpers, and (`beside`) Gitea and the registry.
const BESIDE_THE_CLUSTER: &[(&str, &str)] = &[
    ("docker.io", "kindest/node"),
    ("docker.io", "rancher/k3s"),
    ("ghcr.io", "k3d-io/k3d-tools"),
    ("ghcr.io", "k3d-io/k3d-proxy"),
];

/// An image of a loaded bundle that the nodes must be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeImage {
    /// As the bundle names it.
    pub reference: String,
    /// Its name in the bundle's Docker archive (`manifest.json` RepoTags), which the nodes'
    /// containerd will know it by.
    pub name: String,
    /// The bundle that holds it.
    pub file: PathBuf,
}

/// The images of a loaded bundle the nodes of an env cannot pull offline: those no cache of
/// the env serves (every one when the env uses no caches), less those that run beside the
/// cluster (`beside`: Gitea's and the registry's images). Only images `docker load` took.
pub fn for_nodes(report: &LoadReport, caches: bool, beside: &[&str]) -> Vec<NodeImage> {
    let repository = |r: &Reference| (r.registry.clone(), r.repository.clone());
    let beside: Vec<(String, String)> = beside
        .iter()
        .filter_map(|b| Reference::parse(b).ok())
        .map(|r| repository(&r))
        .chain(
            BESIDE_THE_CLUSTER
                .iter()
                .map(|(r, p)| (r.to_string(), p.to_string())),
        )
        .collect();
    report
        .in_engine
        .iter()
        .filter_map(|(reference, (name, _))| {
            let parsed = Reference::parse(reference).ok()?;
            let served = caches && cache_for(&parsed.registry).is_some();
            (!served && !beside.contains(&repository(&parsed))).then(|| NodeImage {
                reference: reference.clone(),
                name: name.clone(),
                file: report
                    .image_files
                    .get(reference)
                    .cloned()
                    .unwrap_or_else(|| report.file.clone()),
            })
        })
        .collect()
}

/// Writes to `out` a Docker archive (`manifest.json` and the blobs it names) of the images
/// `names` of the bundle `file`, read straight from the bundle: the layers the bundle keeps
/// for its Docker platform, so the import needs neither the Docker engine's copy (whose IDs
/// and `docker save` differ between its image stores) nor other platforms' blobs. Returns how
/// many images it holds.
pub fn node_archive(file: &Path, names: &[String], out: &Path) -> Result<usize, BundleError> {
    let damaged = |reason: String| BundleError::Damaged {
        path: file.to_path_buf(),
        reason,
    };
    let missing = |e: std::io::Error| BundleError::Seed {
        target: "the nodes".to_string(),
        reason: format!(
            "{}: {e}\nhelp: the bundle this image came from is needed until the env is made; `kindling bundle load` it again",
            file.display()
        ),
    };
    // First pass: the manifest.json entries wanted, and the blobs they name.
    let mut entries: Vec<Value> = Vec::new();
    let reader = std::fs::File::open(file).map_err(missing)?;
    for entry in tar::Archive::new(reader).entries().map_err(missing)? {
        let mut entry = entry.map_err(io(file))?;
        if entry.path().map_err(io(file))?.as_os_str() != "manifest.json" {
            continue;
        }
        let listed: Vec<Value> = serde_json::from_reader(&mut entry)
            .map_err(|e| damaged(format!("manifest.json: {e}")))?;
        entries = listed
            .into_iter()
            .filter(|e| {
                e["RepoTags"][0]
                    .as_str()
                    .is_some_and(|t| names.iter().any(|n| n == t))
            })
            .collect();
        break;
    }
    let wanted: std::collections::BTreeSet<String> = entries
        .iter()
        .flat_map(|e| {
            std::iter::once(e["Config"].as_str().unwrap_or_default().to_string()).chain(
                e["Layers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_string)),
            )
        })
        .collect();
    // Second pass: those blobs streamed into the new archive.
    let written = (|| -> std::io::Result<()> {
        let mut tar = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(out)?));
        let listing = serde_json::to_vec(&entries)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(listing.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "manifest.json", listing.as_slice())?;
        let reader = std::fs::File::open(file)?;
        for entry in tar::Archive::new(reader).entries()? {
            let mut entry = entry?;
            let name = entry.path()?.to_string_lossy().into_owned();
            if wanted.contains(&name) {
                let mut header = entry.header().clone();
                tar.append_data(&mut header, &name, &mut entry)?;
            }
        }
        tar.into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    })();
    written.map_err(missing)?;
    Ok(entries.len())
}

/// The cache container serving `registry` (the upstream host), if kindling caches it.
pub fn cache_for(registry: &str) -> Option<String> {
    crate::registry::CACHED_UPSTREAMS
        .iter()
        .find(|(host, _)| *host == registry)
        .map(|(host, _)| crate::registry::cache_container(host))
}

/// Loads a bundle: caches seeded, the Docker engine given every image (`docker load`), the
/// tools put in place; recorded for `doctor`.
pub async fn load(
    file: &Path,
    data_dir: &Path,
    cache_dir: &Path,
    registry_image: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<LoadReport, BundleError> {
    // tempfile names its directories `.tmpXXXXXX`.
    sweep_leftovers(&data_dir.join("tmp"), &[".tmp"], LEFTOVER_AGE);
    let bundle = OpenBundle::open(file, &data_dir.join("tmp"))?;
    charts::check(&bundle, file)?;
    // A bundle of charts, tools and manifests alone needs no Docker engine.
    let LoadedImages {
        in_engine,
        seeded,
        engine_only,
    } = if bundle.record.images.is_empty() {
        LoadedImages::default()
    } else {
        let docker = crate::docker::DockerClient::connect().await?;
        load_images(&docker, &bundle, file, registry_image, progress).await?
    };
    let mut tools = Vec::new();
    for tool in &bundle.record.tools {
        let pinned = [
            crate::cluster::tools::kind_tool(),
            crate::cluster::tools::k3d_tool(),
        ]
        .into_iter()
        .find(|t| t.name == tool.name && t.version == tool.version);
        let Some(pinned) = pinned else {
            progress(&format!(
                "tool {} {}: not the pinned release, left out",
                tool.name, tool.version
            ));
            continue;
        };
        if pinned.pinned_sum(&tool.platform).as_deref() != Some(tool.sha256.as_str()) {
            return Err(BundleError::Damaged {
                path: file.to_path_buf(),
                reason: format!(
                    "{} {} for {} does not match the pinned sha256",
                    tool.name, tool.version, tool.platform
                ),
            });
        }
        if tool.platform != crate::cluster::tools::platform() {
            continue;
        }
        let source = bundle.dir.path().join(format!(
            "kindling/tools/{}-{}-{}",
            tool.name, tool.version, tool.platform
        ));
        let bytes = std::fs::read(&source).map_err(io(&source))?;
        if crate::cluster::tools::sha256_hex(&bytes) != tool.sha256 {
            return Err(BundleError::Damaged {
                path: file.to_path_buf(),
                reason: format!("{} does not match its recorded sha256", source.display()),
            });
        }
        let target = crate::cluster::tools::cached_path(&pinned, data_dir);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        crate::paths::write_atomic(&target, &bytes, 0o755).map_err(io(&target))?;
        tools.push(format!("{} {}", tool.name, tool.version));
    }
    let mut manifests = Vec::new();
    for manifest in &bundle.record.manifests {
        // Only a pinned release goes into the cache, which `env create` reads before it
        // downloads (and checks again there).
        let pinned = [crate::engine::Engine::Flux, crate::engine::Engine::Argo]
            .into_iter()
            .map(crate::engine::manifests::pinned)
            .find(|p| {
                p.file_name() == manifest.file
                    && p.sha256.as_deref() == Some(manifest.sha256.as_str())
            });
        // An add-on manifest has no pinned sum (its release publishes none): the bundle the
        // user loads vouches for it, as a first download would, and its sum is recorded.
        let addon = crate::addons::manifest_of_file(&manifest.file);
        if pinned.is_none() && addon.is_none() {
            progress(&format!(
                "manifest {}: not a pinned release, left out",
                manifest.file
            ));
            continue;
        }
        let source = bundle
            .dir
            .path()
            .join("kindling/manifests")
            .join(&manifest.file);
        let bytes = std::fs::read(&source).map_err(io(&source))?;
        if crate::cluster::tools::sha256_hex(&bytes) != manifest.sha256 {
            return Err(BundleError::Damaged {
                path: file.to_path_buf(),
                reason: format!("{} does not match its recorded sha256", manifest.file),
            });
        }
        if let Some(addon) = &addon {
            crate::engine::manifests::record_sum(
                addon,
                &crate::engine::manifests::records_dir(data_dir),
                &manifest.sha256,
            )
            .map_err(|e| BundleError::Damaged {
                path: file.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        let target = cache_dir.join("manifests").join(&manifest.file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        crate::paths::write_atomic(&target, &bytes, 0o644).map_err(io(&target))?;
        manifests.push(manifest.file.clone());
    }
    let charts = charts::load(&bundle, data_dir)?;
    for chart in &charts {
        progress(&format!("chart {} {}", chart.chart, chart.version));
    }
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let image_files = in_engine
        .keys()
        .map(|reference| (reference.clone(), absolute.clone()))
        .collect();
    let mut report = LoadReport {
        file: absolute,
        loaded_at: crate::env::state::now_rfc3339(),
        seeded,
        engine_only,
        tools,
        manifests,
        charts,
        in_engine,
        image_files,
        record: bundle.record.clone(),
    };
    if let Some(earlier) = loaded(data_dir) {
        report = report.merged_over(earlier, data_dir);
    }
    let path = loaded_record_path(data_dir);
    let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
    crate::paths::write_atomic(&path, &text, 0o600).map_err(io(&path))?;
    Ok(report)
}

/// What the images of a bundle went into: see [`LoadReport`].
#[derive(Default)]
struct LoadedImages {
    in_engine: BTreeMap<String, (String, String)>,
    seeded: BTreeMap<String, Vec<String>>,
    engine_only: Vec<String>,
}

/// The bundle's images into the Docker engine (those of this machine's platform) and the
/// shared caches.
async fn load_images(
    docker: &crate::docker::DockerClient,
    bundle: &OpenBundle,
    file: &Path,
    registry_image: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<LoadedImages, BundleError> {
    // Docker first: the registry image the seeding runs may be in the bundle itself. Images
    // of another architecture are not loaded: kind would run them.
    let host = host_platform();
    let for_this_machine = bundle
        .record
        .docker_platform
        .as_deref()
        .is_none_or(|p| p == host);
    let in_engine = if for_this_machine {
        progress("docker: load the images");
        let archive = tokio::fs::File::open(file).await.map_err(io(file))?;
        docker.load_archive(archive, file).await?;
        in_engine(bundle)?
    } else {
        progress(&format!(
            "docker: the bundle's images are for {}, this machine is {host}; only the caches are seeded (save it with --platform {host})",
            bundle.record.docker_platform.as_deref().unwrap_or_default()
        ));
        BTreeMap::new()
    };
    let seeder_image = substitute(docker, &in_engine, registry_image).await;
    let mut by_cache: BTreeMap<String, Vec<&BundleImage>> = BTreeMap::new();
    let mut engine_only = Vec::new();
    for image in &bundle.record.images {
        let reference = Reference::parse(&image.reference)?;
        match cache_for(&reference.registry) {
            Some(cache) => by_cache.entry(cache).or_default().push(image),
            None => engine_only.push(image.reference.clone()),
        }
    }
    let mut seeded = BTreeMap::new();
    for (cache, images) in by_cache {
        progress(&format!("cache {cache}: {} images", images.len()));
        let done = seed_cache(docker, bundle, &cache, &images, &seeder_image).await?;
        seeded.insert(cache, done);
    }
    Ok(LoadedImages {
        in_engine,
        seeded,
        engine_only,
    })
}

/// What `docker load` made of each image: the manifest.json entry's name and the ID Docker
/// gives it (the digest of its config).
fn in_engine(bundle: &OpenBundle) -> Result<BTreeMap<String, (String, String)>, BundleError> {
    let path = bundle.dir.path().join("manifest.json");
    let entries: Vec<Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for image in &bundle.record.images {
        let reference = Reference::parse(&image.reference)?;
        let Some(tag) = &reference.tag else { continue };
        let name = format!("{}/{}:{tag}", reference.registry, reference.repository);
        let config = entries
            .iter()
            .find(|e| e["RepoTags"][0] == name.as_str())
            .and_then(|e| e["Config"].as_str())
            .and_then(|c| c.strip_prefix("blobs/sha256/"));
        if let Some(hex) = config {
            out.insert(image.reference.clone(), (name, format!("sha256:{hex}")));
        }
    }
    Ok(out)
}

/// The image to run for `reference` on a machine that loaded a bundle: the reference itself
/// when the engine has it (or no bundle says otherwise); else, for a digest-pinned image the
/// bundle brought, the name `docker load` gave it, provided the engine's image under that
/// name has the ID the bundle recorded. `docker load` records no repository digests, so
/// `docker inspect NAME@sha256:…` (kind's presence check, kubernetes-sigs/kind v0.33.0
/// pkg/cluster/internal/providers/docker/images.go pullIfNotPresent) would miss it and pull.
/// The ID is the digest of the image's config, which the pinned manifest digest names, so
/// the substitute is the pinned image.
pub async fn offline_image(
    docker: &crate::docker::DockerClient,
    data_dir: &Path,
    reference: &str,
) -> String {
    if docker.image_exists(reference).await {
        return reference.to_string();
    }
    match loaded(data_dir) {
        Some(loaded) => substitute(docker, &loaded.in_engine, reference).await,
        None => reference.to_string(),
    }
}

/// `reference`, or the name `docker load` gave it when the engine lacks the reference and
/// holds the recorded image under that name.
async fn substitute(
    docker: &crate::docker::DockerClient,
    in_engine: &BTreeMap<String, (String, String)>,
    reference: &str,
) -> String {
    if docker.image_exists(reference).await {
        return reference.to_string();
    }
    let normalised = Reference::parse(reference)
        .map(|r| r.to_string())
        .unwrap_or_default();
    match in_engine.get(&normalised) {
        Some((name, id)) if docker.image_id(name).await.as_deref() == Some(id.as_str()) => {
            name.clone()
        }
        _ => reference.to_string(),
    }
}

/// Seeds one cache's storage: its container stopped, a plain registry on its volume (index
/// completeness off, as the bundle keeps only some platforms' manifests:
/// distribution/distribution v3.1.1 `validation.manifests.indexes.platforms: none`), every
/// image pushed by digest and tag, then the seeder removed and the cache started again.
async fn seed_cache(
    docker: &crate::docker::DockerClient,
    bundle: &OpenBundle,
    cache: &str,
    images: &[&BundleImage],
    registry_image: &str,
) -> Result<Vec<String>, BundleError> {
    let volume = format!("{cache}-data");
    let labels = crate::registry::cache_set_labels();
    docker.ensure_volume(&volume, &labels).await?;
    let was_running = docker
        .state(cache)
        .await
        .is_ok_and(|s| s.starts_with("running"));
    if was_running {
        docker
            .stop_container(cache, std::time::Duration::from_secs(10))
            .await?;
    }
    let seeder_name = format!("{cache}-seeder");
    let seeded = seed_through(docker, bundle, cache, images, registry_image, &seeder_name).await;
    // Whatever happened: the seeder goes (only if it is kindling's), the cache runs again.
    let _ = docker
        .remove_container_if_labelled(&seeder_name, &labels)
        .await;
    if was_running {
        docker.start_container(cache).await?;
    }
    seeded
}

/// The seeding itself: a plain registry on the cache's volume, every image pushed to it.
async fn seed_through(
    docker: &crate::docker::DockerClient,
    bundle: &OpenBundle,
    cache: &str,
    images: &[&BundleImage],
    registry_image: &str,
    seeder_name: &str,
) -> Result<Vec<String>, BundleError> {
    use crate::docker::{ContainerSpec, PublishedPort, VolumeMount};
    let volume = format!("{cache}-data");
    let labels = crate::registry::cache_set_labels();
    let port =
        crate::docker::allocate_port(15000, crate::docker::port_is_free).ok_or_else(|| {
            BundleError::Seed {
                target: cache.to_string(),
                reason: "no free port on 127.0.0.1".into(),
            }
        })?;
    let seeder = ContainerSpec {
        name: seeder_name.to_string(),
        image: registry_image.to_string(),
        env: vec!["REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMS=none".to_string()],
        labels: labels.clone(),
        ports: vec![PublishedPort {
            container_port: crate::registry::REGISTRY_PORT,
            host_port: port,
        }],
        volumes: vec![VolumeMount {
            volume: volume.clone(),
            path: "/var/lib/registry".to_string(),
        }],
        ..Default::default()
    };
    let _ = docker
        .remove_container_if_labelled(&seeder.name, &labels)
        .await;
    docker.run_container(&seeder).await?;
    let base = format!("http://127.0.0.1:{port}");
    {
        wait_registry(&base).await?;
        let mut done = Vec::new();
        for image in images {
            let reference = Reference::parse(&image.reference)?;
            let (blobs, manifests, top) = bundle.objects_of(image)?;
            let (base, repo) = (base.clone(), reference.repository.clone());
            let tag = reference.tag.clone();
            let root = bundle.dir.path().to_path_buf();
            tokio::task::spawn_blocking(move || -> Result<(), BundleError> {
                let client = Client::new();
                for digest in &blobs {
                    client.push_blob(&base, &repo, digest, &root.join(blob_path(digest)))?;
                }
                for manifest in &manifests {
                    client.push_manifest(&base, &repo, &manifest.digest, manifest)?;
                }
                client.push_manifest(&base, &repo, &top.digest, &top)?;
                if let Some(tag) = &tag {
                    client.push_manifest(&base, &repo, tag, &top)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| BundleError::Seed {
                target: cache.to_string(),
                reason: e.to_string(),
            })??;
            done.push(image.reference.clone());
        }
        Ok(done)
    }
}

async fn wait_registry(base: &str) -> Result<(), BundleError> {
    for _ in 0..100 {
        let probe = base.to_string();
        let up = tokio::task::spawn_blocking(move || Client::new().answers(&probe))
            .await
            .unwrap_or(false);
        if up {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(BundleError::Seed {
        target: base.to_string(),
        reason: "the seeding registry did not answer within 10s; `docker logs` of the cache's -seeder container, if it is still there, says why".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_image_lists_take_references_and_sources_and_name_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("images.txt");
        std::fs::write(
            &list,
            "# charts' images\nghcr.io/stefanprodan/podinfo:6.9.0\n\nbusybox:1.37 from 127.0.0.1:5000/mirror/busybox:1.37  # a mirror\n",
        )
        .unwrap();
        let wanted = read_list(&list).unwrap();
        assert_eq!(wanted.len(), 2);
        assert_eq!(
            wanted[1].reference.to_string(),
            "docker.io/library/busybox:1.37"
        );
        assert_eq!(
            wanted[1].source.as_ref().unwrap().registry,
            "127.0.0.1:5000"
        );
        std::fs::write(&list, "busybox\nbusybox from\n").unwrap();
        let e = read_list(&list).unwrap_err().to_string();
        assert!(e.contains("images.txt:2") && e.contains("help:"), "{e}");
    }

    #[test]
    fn bundle_leftovers_of_an_interrupted_run_go_when_old_enough() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - LEFTOVER_AGE - std::time::Duration::from_secs(60);
        let stale = dir.path().join(".kindling-bundle-abc");
        std::fs::create_dir_all(stale.join("blobs")).unwrap();
        let partial = dir.path().join("workshop.partial-123");
        std::fs::write(&partial, "x").unwrap();
        let fresh = dir.path().join(".kindling-bundle-now");
        std::fs::create_dir_all(&fresh).unwrap();
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "x").unwrap();
        for path in [&stale, &partial, &other] {
            std::fs::File::open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let mut removed = sweep_leftovers(dir.path(), &[".kindling-bundle-"], LEFTOVER_AGE);
        removed.sort();
        assert_eq!(removed, vec![stale, partial]);
        assert!(fresh.is_dir(), "one in use beside it stays");
        assert!(other.is_file(), "what kindling did not make stays");
    }

    #[test]
    fn bundle_pinned_images_cover_the_node_gitea_registry_and_the_engine() {
        let manifest = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: manager\n        image: ghcr.io/fluxcd/source-controller:v1.9.4\n---\napiVersion: v1\nkind: Namespace\n";
        let wanted = pinned_images(
            crate::cluster::Provider::K3d,
            crate::cluster::NODE_IMAGES[0].kubernetes,
            "docker.gitea.com/gitea:1.27.0",
            "registry:3.1.1",
            manifest,
        )
        .unwrap();
        let names: Vec<String> = wanted.iter().map(|w| w.reference.to_string()).collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("docker.io/rancher/k3s:")),
            "{names:?}"
        );
        assert!(names.contains(&"ghcr.io/k3d-io/k3d-tools:5.9.0".to_string()));
        assert!(names.contains(&"docker.io/library/registry:3.1.1".to_string()));
        assert!(names.contains(&"ghcr.io/fluxcd/source-controller:v1.9.4".to_string()));
        assert_eq!(
            cache_for("ghcr.io").as_deref(),
            Some(crate::registry::cache_container("ghcr.io").as_str())
        );
        assert_eq!(cache_for("docker.gitea.com"), None);
    }
}
