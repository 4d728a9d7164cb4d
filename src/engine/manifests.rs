//! The pinned upstream install manifests of the GitOps engines: one table, downloaded once into
//! the cache directory, verified, reused offline. `--manifests-dir` points at a local copy for
//! hosts without internet (filled by `kindling engine manifests --out DIR` elsewhere).
//!
//! Verification: a sum in the table is authoritative. An entry whose sum this build does not
//! carry is trusted on first download and its sum recorded in the data directory
//! (`manifest-sums/*.sha256`, 0600), not beside the cached file: whoever can write the cache
//! could otherwise replace the file and its record together. Every later read, and every
//! `--manifests-dir` copy, must match the recorded sum. A mismatch is a hard error naming both
//! sums. A `--manifests-dir` copy with neither a pinned nor a recorded sum is refused unless the
//! user vouches for it (`--trust-manifests`).

use std::path::{Path, PathBuf};

use crate::cluster::tools::sha256_hex;
use crate::stamp::render::Engine;

use super::EngineError;

/// One install manifest kindling may download: an engine's, or an add-on's
/// (`crate::addons`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedManifest {
    /// `flux`, `argo`, `gateway-api`: names the file and the messages.
    pub name: &'static str,
    pub version: String,
    pub url: String,
    /// The release's sha256 when this build pins it; `None` means trust-on-first-download.
    pub sha256: Option<String>,
}

impl PinnedManifest {
    /// The file name in the cache and in a `--manifests-dir` (`flux-v2.9.4-install.yaml`).
    pub fn file_name(&self) -> String {
        format!("{}-{}-install.yaml", self.name, self.version)
    }
}

/// The engine's row of the pins table (`crate::pins`): releases whose CRDs serve the API
/// versions the renderers emit (source/kustomize v1, helm v2, argoproj.io v1alpha1).
pub fn pinned(engine: Engine) -> PinnedManifest {
    let pin = match engine {
        Engine::Flux => crate::pins::FLUX,
        Engine::Argo => crate::pins::ARGO_CD,
    };
    PinnedManifest {
        name: engine.name(),
        version: pin.version.to_string(),
        url: pin.artifact.to_string(),
        sha256: pin.sha256().map(str::to_string),
    }
}

/// Where a manifest came from this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Cached,
    Downloaded,
    Local,
}

#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub text: String,
    pub path: PathBuf,
    pub sha256: String,
    pub origin: Origin,
    /// Said once, when a sum was recorded rather than checked against the table.
    pub note: Option<String>,
}

/// An install manifest is a few MB; anything far larger is not what we asked for.
const MAX_MANIFEST: u64 = 64 * 1024 * 1024;

/// The data dir's directory of first-use sums (`ManifestDirs::records`).
pub fn records_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("manifest-sums")
}

/// Where the first-use sum of `manifest` is recorded, in the data dir's `records` directory.
fn recorded_sum_path(manifest: &PinnedManifest, records: &Path) -> PathBuf {
    records.join(format!("{}.sha256", manifest.file_name()))
}

/// Records `sha256` as the sum of `manifest` (which this build pins none for), as a first
/// download does: what `bundle load` does for an add-on manifest the user's bundle carries.
/// A sum already recorded must be the same.
pub fn record_sum(
    manifest: &PinnedManifest,
    records: &Path,
    sha256: &str,
) -> Result<(), EngineError> {
    if let Some(expected) = expected_sum(manifest, records)
        && expected != sha256
    {
        return Err(mismatch(manifest, "the bundle", &expected, sha256));
    }
    let record = recorded_sum_path(manifest, records);
    crate::paths::private_dirs(records).map_err(io_error(records))?;
    crate::paths::write_atomic(&record, format!("{sha256}\n").as_bytes(), 0o600)
        .map_err(io_error(&record))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The sum a manifest must have: the table's, else the one recorded at first download.
fn expected_sum(manifest: &PinnedManifest, records: &Path) -> Option<String> {
    manifest.sha256.clone().or_else(|| {
        std::fs::read_to_string(recorded_sum_path(manifest, records))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| s.len() == 64)
    })
}

fn mismatch(manifest: &PinnedManifest, source: &str, expected: &str, actual: &str) -> EngineError {
    EngineError::Manifest(format!(
        "checksum mismatch for the {} {} install manifest from {source}:\n  expected sha256 {expected}\n  got      sha256 {actual}\nhelp: the file was not used; check for a proxy rewriting downloads, or replace the copy with the release's own file (a copy you changed on purpose, e.g. images rewritten for a mirror, needs KINDLING_MANIFESTS_MODIFIED=1)",
        manifest.name, manifest.version
    ))
}

/// A directory of install manifests to use instead of the cache or a download
/// (`--manifests-dir`, `KINDLING_MANIFESTS_DIR`).
#[derive(Debug, Clone, Copy)]
pub struct LocalCopies<'a> {
    pub dir: &'a Path,
    /// `KINDLING_MANIFESTS_MODIFIED=1`: the copies are the user's own edits of the pinned
    /// releases (images rewritten for a mirror, say), so they cannot match the pinned sums and
    /// are used as they are, with a warning naming their sum. Off, a copy must be the release's.
    pub modified: bool,
    /// `--trust-manifests` (`KINDLING_TRUST_MANIFESTS=1`): a copy with neither a pinned nor a
    /// recorded sum may be used; without it such a copy is refused.
    pub trusted: bool,
}

/// Where the manifests are kept: the cache (the downloaded files, shared and disposable) and,
/// in the data dir, the first-use records of the sums this build does not pin.
#[derive(Debug, Clone)]
pub struct ManifestDirs {
    pub cache: PathBuf,
    pub records: PathBuf,
}

/// The verified install manifest: from the local copies when given, else the cache, else a
/// download into the cache.
pub fn fetch(
    manifest: &PinnedManifest,
    dirs: &ManifestDirs,
    local: Option<LocalCopies<'_>>,
) -> Result<FetchedManifest, EngineError> {
    let cache_dir = dirs.cache.join("manifests");
    let expected = expected_sum(manifest, &dirs.records);
    if let Some(local) = local {
        return from_local_copy(manifest, local, expected.as_deref());
    }
    let path = cache_dir.join(manifest.file_name());
    if let Ok(bytes) = std::fs::read(&path) {
        let actual = sha256_hex(&bytes);
        if expected.as_deref() == Some(actual.as_str()) {
            return Ok(FetchedManifest {
                text: into_text(bytes, &path)?,
                path,
                sha256: actual,
                origin: Origin::Cached,
                note: None,
            });
        }
        // A damaged (or unverifiable) cached copy is never applied; a verified download
        // replaces it below, and until then it stays, should the download fail.
    }
    let bytes = download(&manifest.url)?;
    let actual = sha256_hex(&bytes);
    let note = match &expected {
        Some(expected) if *expected != actual => {
            return Err(mismatch(manifest, &manifest.url, expected, &actual));
        }
        Some(_) => None,
        None => {
            let record = recorded_sum_path(manifest, &dirs.records);
            crate::paths::private_dirs(&dirs.records).map_err(io_error(&dirs.records))?;
            crate::paths::write_atomic(&record, format!("{actual}\n").as_bytes(), 0o600)
                .map_err(io_error(&record))?;
            Some(format!(
                "{} has no pinned sha256 in this build; recorded {actual} at first download, later reads must match it",
                manifest.file_name()
            ))
        }
    };
    crate::paths::write_atomic(&path, &bytes, 0o644).map_err(io_error(&path))?;
    Ok(FetchedManifest {
        text: into_text(bytes, &path)?,
        path,
        sha256: actual,
        origin: Origin::Downloaded,
        note,
    })
}

/// A manifest from the local copies: it must be the pinned release's unless the user says the
/// copies were changed on purpose.
fn from_local_copy(
    manifest: &PinnedManifest,
    local: LocalCopies<'_>,
    expected: Option<&str>,
) -> Result<FetchedManifest, EngineError> {
    let LocalCopies {
        dir,
        modified,
        trusted,
    } = local;
    let path = dir.join(manifest.file_name());
    let bytes = std::fs::read(&path).map_err(|e| {
        EngineError::Manifest(format!(
            "--manifests-dir {}: cannot read {}: {e}\nhelp: copy it there from a host with internet (`kindling engine manifests --out DIR`)",
            dir.display(),
            manifest.file_name()
        ))
    })?;
    let actual = sha256_hex(&bytes);
    if expected.is_none() && !trusted {
        return Err(EngineError::Manifest(format!(
            "{} has no pinned sha256 in this build and none was recorded on this machine, so the copy in {} cannot be checked (sha256 {actual}); it was not used\nhelp: a sum recorded on another host does not travel with the copy; if you know where this copy came from (`kindling engine manifests --out` on a connected host, say), pass --trust-manifests (KINDLING_TRUST_MANIFESTS=1)",
            manifest.file_name(),
            dir.display()
        )));
    }
    if let Some(expected) = expected
        && expected != actual
        && !modified
    {
        return Err(mismatch(
            manifest,
            &path.display().to_string(),
            expected,
            &actual,
        ));
    }
    Ok(FetchedManifest {
        text: into_text(bytes, &path)?,
        path,
        note: match expected {
            None => Some(format!(
                "{} has no pinned or recorded sha256; using the local copy with sha256 {actual}, as --trust-manifests says",
                manifest.file_name()
            )),
            Some(expected) if expected != actual => Some(format!(
                "{} is a modified copy (KINDLING_MANIFESTS_MODIFIED): sha256 {actual}, the pinned release's is {expected}",
                manifest.file_name()
            )),
            Some(_) => None,
        },
        sha256: actual,
        origin: Origin::Local,
    })
}

fn into_text(bytes: Vec<u8>, path: &Path) -> Result<String, EngineError> {
    String::from_utf8(bytes)
        .map_err(|_| EngineError::Manifest(format!("{} is not UTF-8 text", path.display())))
}

fn download(url: &str) -> Result<Vec<u8>, EngineError> {
    crate::cluster::tools::fetch_bytes(url, MAX_MANIFEST).map_err(|e| {
        EngineError::Manifest(format!(
            "cannot download {url}: {e}\nhelp: without internet, pass --manifests-dir with a copy made by `kindling engine manifests --out DIR` on a connected host"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_manifest_table_names_real_release_urls() {
        let flux = pinned(Engine::Flux);
        assert_eq!(
            flux.url,
            "https://github.com/fluxcd/flux2/releases/download/v2.9.4/install.yaml"
        );
        assert_eq!(flux.file_name(), "flux-v2.9.4-install.yaml");
        let argo = pinned(Engine::Argo);
        assert_eq!(
            argo.url,
            "https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/install.yaml"
        );
        for m in [flux, argo] {
            let sum = m
                .sha256
                .as_deref()
                .expect("every engine manifest carries its sha256");
            assert_eq!(sum.len(), 64, "{}", m.url);
            assert!(
                sum.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }
}
