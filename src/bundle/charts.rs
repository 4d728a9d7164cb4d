//! Helm charts in bundles, and the charts a loaded bundle gives an env.
//!
//! In the archive a chart is an OCI artifact as Helm itself pushes one (helm/helm v3
//! pkg/registry/constants.go: config `application/vnd.cncf.helm.config.v1+json`, one layer
//! `application/vnd.cncf.helm.chart.content.v1.tar+gzip`, the packaged chart), named in
//! `index.json` like an image, so `oras` or `helm pull` from a registry it was copied into read
//! it. A chart from an OCI registry is copied byte for byte; one from an HTTP(S) repository is
//! fetched through the repository's `index.yaml` (checked against the digest the index
//! records) and wrapped the way `helm push` would wrap it.
//!
//! `bundle load` puts each packaged chart under `DATA/charts/`. When an env's stamp names a
//! chart held there (same repository, chart and version), the chart is unpacked into the
//! pushed tree and the engine reads it from the env's own Git repository: Flux through a
//! HelmRelease whose chart source is the GitRepository (helm-controller v1.6.3
//! api/v2/reference_types.go: sourceRef kinds HelmRepository, GitRepository, Bucket; `chart`
//! is then the chart's path), Argo CD through a Git source whose path holds a Chart.yaml
//! (argo-cd v3.5.1 util/app/discovery: a Chart.yaml makes the path a Helm source). Nothing
//! leaves the machine for it, and no route to a registry is needed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::BundleError;
use super::distribution::{Client, Object, Reference, sha256_digest};
use crate::stamp::HelmChart;

/// helm/helm v3 pkg/registry/constants.go ConfigMediaType.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
/// helm/helm v3 pkg/registry/constants.go ChartLayerMediaType.
pub const CHART_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// The largest `index.yaml` read (large public repositories run to tens of MB).
const MAX_INDEX: u64 = 128 << 20;
/// The largest packaged chart read, and the most its files may hold once unpacked.
const MAX_CHART: u64 = 64 << 20;
const MAX_CHART_FILES: usize = 10_000;

/// A chart's files, relative to its directory: path → content.
pub type ChartFiles = Vec<(String, Vec<u8>)>;

/// A chart in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleChart {
    /// As the stamp names it (`https://…` or `oci://…`).
    pub repo: String,
    pub chart: String,
    pub version: String,
    /// Its OCI manifest in the archive.
    pub manifest: String,
    /// The packaged chart (`.tgz`), the manifest's one layer.
    pub archive: String,
}

impl BundleChart {
    pub fn is(&self, chart: &HelmChart) -> bool {
        same_repo(&self.repo, &chart.repo)
            && self.chart == chart.chart
            && self.version == chart.version
    }

    /// The same repository, chart and version (whatever its package).
    pub fn same_chart_as(&self, other: &BundleChart) -> bool {
        same_repo(&self.repo, &other.repo)
            && self.chart == other.chart
            && self.version == other.version
    }
}

/// Whether the chart store still holds `chart`'s package.
pub fn is_stored(data_dir: &Path, chart: &BundleChart) -> bool {
    stored_path(data_dir, &chart.archive).is_file()
}

fn same_repo(a: &str, b: &str) -> bool {
    let a = shown(a);
    let b = shown(b);
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// A repository URL without the credentials it may carry (`https://user:token@host/…`): what
/// a bundle, a progress line or an error may show. Bundles go to other machines.
pub fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// A chart copied into the staging `store` (its blobs under `blobs/sha256/`) and the
/// `index.json` entry that names it.
pub struct SavedChart {
    pub record: BundleChart,
    pub index_entry: Value,
}

/// Copies `chart` into `store`.
pub fn save(client: &Client, chart: &HelmChart, store: &Path) -> Result<SavedChart, BundleError> {
    let repo = shown(&chart.repo);
    let failed = |reason: String| BundleError::Registry {
        reference: format!("chart {} {} from {repo}", chart.chart, chart.version),
        // The fetch errors name the URL asked for, credentials and all.
        reason: reason.replace(chart.repo.trim_end_matches('/'), repo.trim_end_matches('/')),
    };
    let (name, manifest, archive) = match chart.repo.strip_prefix("oci://") {
        Some(base) => {
            // Helm turns `+` into `_` in OCI tags (helm/helm v3 pkg/registry/client.go).
            let name = format!(
                "{}/{}:{}",
                base.trim_end_matches('/'),
                chart.chart,
                chart.version.replace('+', "_")
            );
            let reference = Reference::parse(&name)?;
            let pulled = client.pull(&reference, &[], store)?;
            let parsed: Value = serde_json::from_slice(&pulled.top.bytes).unwrap_or(Value::Null);
            if parsed["config"]["mediaType"] != CONFIG_MEDIA_TYPE {
                return Err(failed(format!(
                    "{name} is not a Helm chart (its config is not {CONFIG_MEDIA_TYPE})"
                )));
            }
            let archive = parsed["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["mediaType"] == CHART_LAYER_MEDIA_TYPE)
                .and_then(|l| l["digest"].as_str())
                .map(str::to_string)
                .ok_or_else(|| failed(format!("{name} has no {CHART_LAYER_MEDIA_TYPE} layer")))?;
            // The package must unpack as a chart, as for one from a repository.
            let layer = store.join(super::blob_path(&archive));
            let packaged = std::fs::read(&layer).map_err(super::io(&layer))?;
            unpack(&packaged).map_err(|e| failed(format!("{name}: {e}")))?;
            write_blob(store, &pulled.top.bytes)?;
            (reference.to_string(), pulled.top, archive)
        }
        None => {
            let packaged = fetch_from_index(client, chart).map_err(failed)?;
            let metadata = chart_metadata(&packaged).map_err(failed)?;
            let config = serde_json::to_vec(&metadata).unwrap_or_default();
            let config_digest = write_blob(store, &config)?;
            let archive = write_blob(store, &packaged)?;
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len()},
                "layers": [{"mediaType": CHART_LAYER_MEDIA_TYPE, "digest": archive, "size": packaged.len()}],
                "annotations": {
                    "org.opencontainers.image.title": chart.chart,
                    "org.opencontainers.image.version": chart.version,
                    "org.opencontainers.image.source": repo,
                },
            }))
            .unwrap_or_default();
            let digest = write_blob(store, &manifest)?;
            let host_path = repo
                .split_once("://")
                .map_or(repo.as_str(), |(_, rest)| rest)
                .trim_end_matches('/');
            (
                format!(
                    "{host_path}/{}:{}",
                    chart.chart,
                    chart.version.replace('+', "_")
                ),
                Object {
                    digest,
                    media_type: "application/vnd.oci.image.manifest.v1+json".to_string(),
                    bytes: manifest,
                },
                archive,
            )
        }
    };
    Ok(SavedChart {
        index_entry: json!({
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": manifest.bytes.len(),
            "artifactType": CONFIG_MEDIA_TYPE,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }),
        record: BundleChart {
            repo: repo.clone(),
            chart: chart.chart.clone(),
            version: chart.version.clone(),
            manifest: manifest.digest,
            archive,
        },
    })
}

/// `bytes` as `blobs/sha256/<hex>` under `store`; its digest.
fn write_blob(store: &Path, bytes: &[u8]) -> Result<String, BundleError> {
    let digest = sha256_digest(bytes);
    let path = store.join(super::blob_path(&digest));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(super::io(dir))?;
    }
    std::fs::write(&path, bytes).map_err(super::io(&path))?;
    Ok(digest)
}

/// The packaged chart, as `helm pull` finds it: the repository's `index.yaml` lists each
/// version's URLs (relative to the repository, or absolute) and the sha256 of the package
/// (helm/helm v3 pkg/repo/index.go ChartVersion.URLs and Digest).
fn fetch_from_index(client: &Client, chart: &HelmChart) -> Result<Vec<u8>, String> {
    let base = chart.repo.trim_end_matches('/');
    let index_url = format!("{base}/index.yaml");
    let text = client.fetch(&index_url, MAX_INDEX)?;
    let index: Value = serde_yaml_ng::from_slice(&text)
        .map_err(|e| format!("{index_url} is not a Helm repository index: {e}"))?;
    let version = index["entries"][&chart.chart]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["version"] == chart.version.as_str())
        .ok_or_else(|| {
            format!(
                "{index_url} lists no version {} of {}",
                chart.version, chart.chart
            )
        })?;
    let url = version["urls"][0]
        .as_str()
        .ok_or_else(|| format!("{index_url}: version {} names no URL", chart.version))?;
    // Relative to the repository as RFC 3986 resolves it (helm/helm v3 pkg/repo
    // ResolveReferenceURL): absolute, host-absolute (`/charts/x.tgz`) or relative.
    let url = if url.contains("://") {
        url.to_string()
    } else if let Some(path) = url.strip_prefix('/') {
        let origin_end = base
            .find("://")
            .map(|i| i + 3)
            .and_then(|i| base[i..].find('/').map(|j| i + j))
            .unwrap_or(base.len());
        format!("{}/{path}", &base[..origin_end])
    } else {
        format!("{base}/{}", url.trim_start_matches("./"))
    };
    let packaged = client.fetch(&url, MAX_CHART)?;
    if let Some(recorded) = version["digest"].as_str().filter(|d| !d.is_empty()) {
        let got = sha256_digest(&packaged);
        if got.trim_start_matches("sha256:") != recorded.trim_start_matches("sha256:") {
            return Err(format!(
                "{url} arrived with digest {got}; the index records {recorded}"
            ));
        }
    }
    Ok(packaged)
}

/// A packaged chart's Chart.yaml as JSON: what `helm push` puts in the OCI config.
fn chart_metadata(packaged: &[u8]) -> Result<Value, String> {
    let files = unpack(packaged)?;
    let text = files
        .iter()
        .find(|(path, _)| path == "Chart.yaml")
        .map(|(_, bytes)| bytes)
        .ok_or("the package holds no Chart.yaml")?;
    serde_yaml_ng::from_slice(text).map_err(|e| format!("its Chart.yaml: {e}"))
}

/// The files of a packaged chart, relative to the chart's directory (Helm packs a chart as
/// `NAME/…`, helm/helm v3 pkg/chart/loader/archive.go reads the first path element as the
/// chart's directory). Only plain files inside it are taken; a link, an absolute path or a
/// `..` refuses the package, and so does one that unpacks beyond the size cap.
pub fn unpack(packaged: &[u8]) -> Result<ChartFiles, String> {
    use std::io::Read;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(packaged));
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut top: Option<String> = None;
    let mut seen = 0usize;
    for entry in archive
        .entries()
        .map_err(|e| format!("not a packaged chart: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("not a packaged chart: {e}"))?;
        seen += 1;
        if seen > MAX_CHART_FILES {
            return Err(format!(
                "the package holds more than {MAX_CHART_FILES} entries"
            ));
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| format!("not a packaged chart: {e}"))?
            .into_owned();
        if !kind.is_file() {
            return Err(format!(
                "the package holds {} that is not a plain file",
                path.display()
            ));
        }
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                std::path::Component::CurDir => {}
                _ => {
                    return Err(format!(
                        "the package holds a path outside the chart: {}",
                        path.display()
                    ));
                }
            }
        }
        if parts.len() < 2 {
            return Err(format!(
                "the package holds {} outside a chart directory",
                path.display()
            ));
        }
        // Git refuses a `.git` path in a tree; say so here rather than at the push.
        if parts.iter().any(|p| p == ".git") {
            return Err(format!(
                "the package holds {}, which Git cannot store",
                path.display()
            ));
        }
        let dir = parts.remove(0);
        if top.get_or_insert_with(|| dir.clone()) != &dir {
            return Err("the package holds more than one chart directory".to_string());
        }
        total += entry.header().size().unwrap_or(0);
        if total > MAX_CHART || files.len() >= MAX_CHART_FILES {
            return Err(format!(
                "the package unpacks to more than {} MB or {MAX_CHART_FILES} files",
                MAX_CHART >> 20
            ));
        }
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(MAX_CHART)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("not a packaged chart: {e}"))?;
        files.push((parts.join("/"), bytes));
    }
    if files.is_empty() {
        return Err("the package is empty".to_string());
    }
    Ok(files)
}

/// Where `bundle load` keeps packaged charts.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("charts")
}

fn stored_path(data_dir: &Path, archive: &str) -> PathBuf {
    store_dir(data_dir).join(format!("{}.tgz", archive.replace(':', "-")))
}

/// Checks that every chart of the bundle unpacks, before a load changes anything.
pub fn check(bundle: &super::OpenBundle, file: &Path) -> Result<(), BundleError> {
    for chart in &bundle.record.charts {
        let packaged = bundle.blob(&chart.archive)?;
        unpack(&packaged.bytes).map_err(|reason| BundleError::Damaged {
            path: file.to_path_buf(),
            reason: format!("chart {} {}: {reason}", chart.chart, chart.version),
        })?;
    }
    Ok(())
}

/// Puts each chart of the bundle (checked by [`check`]) into the chart store; the charts it
/// put there.
pub fn load(bundle: &super::OpenBundle, data_dir: &Path) -> Result<Vec<BundleChart>, BundleError> {
    let mut loaded = Vec::new();
    for chart in &bundle.record.charts {
        let packaged = bundle.blob(&chart.archive)?;
        let target = stored_path(data_dir, &chart.archive);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(super::io(parent))?;
        }
        crate::paths::write_atomic(&target, &packaged.bytes, 0o644).map_err(super::io(&target))?;
        loaded.push(chart.clone());
    }
    Ok(loaded)
}

/// The files of `chart` as the loaded bundle holds it, checked against the digest the bundle
/// recorded; `None` when no loaded bundle holds it (or its package was removed since).
pub fn local_chart(data_dir: &Path, chart: &HelmChart) -> Result<Option<ChartFiles>, BundleError> {
    let Some(report) = super::loaded(data_dir) else {
        return Ok(None);
    };
    let Some(held) = report.charts.iter().find(|c| c.is(chart)) else {
        return Ok(None);
    };
    let path = stored_path(data_dir, &held.archive);
    let packaged = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(super::io(&path)(e)),
    };
    let damaged = |reason: String| BundleError::Damaged {
        path: path.clone(),
        reason,
    };
    if sha256_digest(&packaged) != held.archive {
        return Err(damaged(format!(
            "does not match the digest {} the bundle recorded",
            held.archive
        )));
    }
    unpack(&packaged).map(Some).map_err(damaged)
}
