//! The kind and k3d binaries: the one on PATH, else a pinned release downloaded once into the
//! data directory and verified against the sha256 in the table below. A cached binary works
//! offline; a checksum mismatch is a hard error naming both sums.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ClusterError;

/// A release binary kindling may download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedTool {
    pub name: String,
    pub version: String,
    /// Release download directory; the file is `{name}-{os}-{arch}` in it.
    pub base_url: String,
    /// `os-arch` → sha256 of that platform's binary.
    pub checksums: Vec<(String, String)>,
}

fn pinned(name: &str, version: &str, base_url: &str, sums: &[(&str, &str)]) -> PinnedTool {
    PinnedTool {
        name: name.to_string(),
        version: version.to_string(),
        base_url: base_url.to_string(),
        checksums: sums
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect(),
    }
}

/// kind v0.27.0 — the release whose node images `NODE_IMAGES` pins.
pub fn kind_tool() -> PinnedTool {
    pinned(
        "kind",
        "v0.27.0",
        "https://github.com/kubernetes-sigs/kind/releases/download/v0.27.0",
        &[
            (
                "linux-amd64",
                "a6875aaea358acf0ac07786b1a6755d08fd640f4c79b7a2e46681cc13f49a04b",
            ),
            (
                "linux-arm64",
                "5e4507a41c69679562610b1be82ba4f80693a7826f4e9c6e39236169a3e4f9d0",
            ),
            (
                "darwin-amd64",
                "3435134325b6b9406ccfec417b13bb46a808fc74e9a2ebb0ca31b379c8293863",
            ),
            (
                "darwin-arm64",
                "5240ca1acb587e1d0386532dd8c3373d81f5173b5af322919fc56f0cdd646596",
            ),
        ],
    )
}

/// k3d v5.9.0 — the release whose config schema (v1alpha5) kindling renders against.
pub fn k3d_tool() -> PinnedTool {
    pinned(
        "k3d",
        "v5.9.0",
        "https://github.com/k3d-io/k3d/releases/download/v5.9.0",
        &[
            (
                "linux-amd64",
                "06d8f25bc3a971c4eb29e0ff08429b180402db0f4dec838c9eac427e296800a0",
            ),
            (
                "linux-arm64",
                "03cde5cf23e6e8e67de5a039ecf26e5b85aca82fba3e5d13dadf904cd218a250",
            ),
        ],
    )
}

/// This machine as release assets name it (`linux-amd64`).
pub fn platform() -> String {
    let os = std::env::consts::OS;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}-{arch}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolSource {
    /// Found on PATH.
    Path,
    /// A pinned download from an earlier run.
    Cached,
    /// Downloaded just now.
    Downloaded,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedTool {
    pub name: String,
    pub path: PathBuf,
    pub source: ToolSource,
}

/// Where a pinned binary is cached.
pub fn cached_path(tool: &PinnedTool, data_dir: &Path) -> PathBuf {
    data_dir
        .join("bin")
        .join(format!("{}-{}", tool.name, tool.version))
}

/// The tool on `search_path` (the process's PATH in production), else the cached pinned
/// binary, else a fresh verified download.
pub fn resolve_tool(
    tool: &PinnedTool,
    data_dir: &Path,
    search_path: Option<&std::ffi::OsStr>,
) -> Result<ResolvedTool, ClusterError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    if let Ok(path) = which::which_in(&tool.name, search_path, cwd) {
        return Ok(ResolvedTool {
            name: tool.name.clone(),
            path,
            source: ToolSource::Path,
        });
    }
    resolve_pinned(tool, data_dir, &platform())
}

/// The pinned binary for `platform`, from the cache or downloaded (PATH not consulted).
pub fn resolve_pinned(
    tool: &PinnedTool,
    data_dir: &Path,
    platform: &str,
) -> Result<ResolvedTool, ClusterError> {
    let expected = tool
        .checksums
        .iter()
        .find(|(p, _)| p == platform)
        .map(|(_, sum)| sum.clone())
        .ok_or_else(|| {
            ClusterError::Tool(format!(
                "{} is not on PATH and kindling pins no {} {} binary for {platform}\nhelp: install {} yourself (see its documentation) and run again",
                tool.name, tool.name, tool.version, tool.name
            ))
        })?;
    let path = cached_path(tool, data_dir);
    if path.is_file() {
        let bytes = std::fs::read(&path).map_err(|source| ClusterError::Io {
            path: path.clone(),
            source,
        })?;
        let actual = sha256_hex(&bytes);
        if actual == expected {
            return Ok(ResolvedTool {
                name: tool.name.clone(),
                path,
                source: ToolSource::Cached,
            });
        }
        // A damaged cache is replaced by a verified download; it is never run.
        let _ = std::fs::remove_file(&path);
    }
    let url = format!("{}/{}-{platform}", tool.base_url, tool.name);
    let bytes = download(&url)?;
    let actual = sha256_hex(&bytes);
    if actual != expected {
        return Err(ClusterError::Tool(format!(
            "checksum mismatch for {url}:\n  expected sha256 {expected}\n  got      sha256 {actual}\nthe download was discarded; check for a proxy rewriting downloads, or install {} yourself",
            tool.name
        )));
    }
    crate::paths::write_atomic(&path, &bytes, 0o755).map_err(|source| ClusterError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(ResolvedTool {
        name: tool.name.clone(),
        path,
        source: ToolSource::Downloaded,
    })
}

/// Release binaries are tens of MB; anything far larger is not what we asked for.
const MAX_DOWNLOAD: u64 = 512 * 1024 * 1024;

fn download(url: &str) -> Result<Vec<u8>, ClusterError> {
    fetch_bytes(url, MAX_DOWNLOAD).map_err(|e| {
        ClusterError::Tool(format!(
            "cannot download {url}: {e}\nhelp: without network, put the binary on PATH"
        ))
    })
}

/// GET `url` (rustls, no OpenSSL), at most `max_bytes` of it; the error says why.
pub fn fetch_bytes(url: &str, max_bytes: u64) -> Result<Vec<u8>, String> {
    let response = ureq::get(url).call().map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(max_bytes)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
