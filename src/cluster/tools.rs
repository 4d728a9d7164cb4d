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

impl PinnedTool {
    /// The pinned sha256 of the binary for `platform` (`linux-amd64`).
    pub fn pinned_sum(&self, platform: &str) -> Option<String> {
        self.checksums
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, sum)| sum.clone())
    }
}

impl From<crate::pins::Pin> for PinnedTool {
    fn from(pin: crate::pins::Pin) -> Self {
        PinnedTool {
            name: pin.name.to_string(),
            version: pin.version.to_string(),
            base_url: pin.artifact.to_string(),
            checksums: pin
                .platform_sha256()
                .iter()
                .map(|(p, s)| (p.to_string(), s.to_string()))
                .collect(),
        }
    }
}

/// kind, as the pins table has it; the release whose node images `NODE_IMAGES` pins.
pub fn kind_tool() -> PinnedTool {
    crate::pins::KIND.into()
}

/// k3d, as the pins table has it; the release whose config schema (v1alpha5) kindling renders
/// against.
pub fn k3d_tool() -> PinnedTool {
    crate::pins::K3D.into()
}

/// This machine as release assets name it (`linux-amd64`, `darwin-arm64`).
pub fn platform() -> String {
    platform_of(std::env::consts::OS, std::env::consts::ARCH)
}

/// Rust's names for an OS and architecture as kind's and k3d's release assets spell them:
/// Rust says `macos`, `x86_64` and `aarch64`; the assets say `darwin`, `amd64` and `arm64`
/// (kubernetes-sigs/kind and k3d-io/k3d release asset names, `kind-darwin-arm64`).
pub fn platform_of(os: &str, arch: &str) -> String {
    let os = match os {
        "macos" => "darwin",
        other => other,
    };
    let arch = match arch {
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
    /// The version the binary reports (`kind version`, `k3d version`), when it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why the one on PATH was passed over, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
    let Ok(path) = which::which_in(&tool.name, search_path, cwd) else {
        return resolve_pinned(tool, data_dir, &platform());
    };
    // The one on PATH is used when it is at least the pinned release: the node images and the
    // config schema kindling renders are those of that release (older ones may not read them).
    let found = reported_version(&path);
    let why = match &found {
        Some(v) if at_least(v, &tool.version) => {
            return Ok(ResolvedTool {
                name: tool.name.clone(),
                path,
                source: ToolSource::Path,
                version: found,
                note: None,
            });
        }
        Some(v) => format!(
            "{} {v} on PATH ({}) is older than {}, the oldest kindling supports; using the pinned {}",
            tool.name,
            path.display(),
            tool.version,
            tool.version
        ),
        None => format!(
            "{} on PATH ({}) does not say its version; using the pinned {}",
            tool.name,
            path.display(),
            tool.version
        ),
    };
    match resolve_pinned(tool, data_dir, &platform()) {
        Ok(mut pinned) => {
            pinned.note = Some(why);
            Ok(pinned)
        }
        Err(e) => Err(ClusterError::Tool(format!(
            "{why}, which failed: {e}\nhelp: install {} {} or later on PATH",
            tool.name, tool.version
        ))),
    }
}

/// The first `vMAJOR.MINOR.PATCH` that `<tool> version` prints: `kind v0.33.0 go1.26.1
/// linux/amd64` (kubernetes-sigs/kind v0.33.0 pkg/cmd/kind/version/version.go), `k3d version
/// v5.9.0` then the k3s line (k3d-io/k3d v5.9.0 cmd/root.go).
pub fn reported_version(binary: &Path) -> Option<String> {
    crate::ui::call(|| format!("{} version", binary.display()));
    let out = std::process::Command::new(binary)
        .arg("version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

pub fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace().find_map(|word| {
        let v = word.strip_prefix('v')?;
        let core = v.split(['-', '+']).next()?;
        let parts: Vec<&str> = core.split('.').collect();
        (parts.len() == 3 && parts.iter().all(|p| p.parse::<u64>().is_ok()))
            .then(|| format!("v{v}"))
    })
}

/// Whether `found` is the same release as `minimum` or a later one. A pre-release of the
/// minimum (`v0.33.0-alpha`) comes before it.
pub fn at_least(found: &str, minimum: &str) -> bool {
    let numbers = |v: &str| -> Option<(Vec<u64>, bool)> {
        let v = v.trim_start_matches('v');
        let (core, pre) = match v.split_once('-') {
            Some((c, _)) => (c, true),
            None => (v.split('+').next()?, false),
        };
        let nums = core
            .split('.')
            .map(|p| p.parse::<u64>().ok())
            .collect::<Option<Vec<_>>>()?;
        Some((nums, pre))
    };
    match (numbers(found), numbers(minimum)) {
        (Some((f, f_pre)), Some((m, _))) => f > m || (f == m && !f_pre),
        _ => false,
    }
}

/// The pinned binary for `platform`, from the cache or downloaded (PATH not consulted).
pub fn resolve_pinned(
    tool: &PinnedTool,
    data_dir: &Path,
    platform: &str,
) -> Result<ResolvedTool, ClusterError> {
    let expected = tool.pinned_sum(platform).ok_or_else(|| {
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
                version: Some(tool.version.clone()),
                note: None,
            });
        }
        // A damaged cache is replaced by a verified download; it is never run.
        let _ = std::fs::remove_file(&path);
    }
    let bytes = download_verified(tool, platform, &expected)?;
    crate::paths::write_atomic(&path, &bytes, 0o755).map_err(|source| ClusterError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(ResolvedTool {
        name: tool.name.clone(),
        path,
        source: ToolSource::Downloaded,
        version: Some(tool.version.clone()),
        note: None,
    })
}

/// The release binary of `tool` for `platform`, checked against its pinned sum.
fn download_verified(
    tool: &PinnedTool,
    platform: &str,
    expected: &str,
) -> Result<Vec<u8>, ClusterError> {
    let url = format!("{}/{}-{platform}", tool.base_url, tool.name);
    let bytes = download(&url)?;
    let actual = sha256_hex(&bytes);
    if actual != expected {
        return Err(ClusterError::Tool(format!(
            "checksum mismatch for {url}:\n  expected sha256 {expected}\n  got      sha256 {actual}\nthe download was discarded; check for a proxy rewriting downloads, or install {} yourself",
            tool.name
        )));
    }
    Ok(bytes)
}

/// The pinned release binary of `tool` for `platform` (`darwin-arm64`, say), for a bundle:
/// this machine's through the tool cache, another platform's downloaded and checked, never
/// cached (the cache holds the binary this machine runs).
pub fn pinned_binary(
    tool: &PinnedTool,
    data_dir: &Path,
    platform: &str,
) -> Result<Vec<u8>, ClusterError> {
    if platform == self::platform() {
        let path = resolve_pinned(tool, data_dir, platform)?.path;
        return std::fs::read(&path).map_err(|source| ClusterError::Io { path, source });
    }
    let expected = tool.pinned_sum(platform).ok_or_else(|| {
        let known: Vec<&str> = tool.checksums.iter().map(|(p, _)| p.as_str()).collect();
        ClusterError::Tool(format!(
            "kindling pins no {} {} binary for {platform}\nhelp: one of {}",
            tool.name,
            tool.version,
            known.join(", ")
        ))
    })?;
    download_verified(tool, platform, &expected)
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
    crate::ui::call(|| format!("GET {url}"));
    let agent: ureq::Agent = crate::net::agent_config().build().into();
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `body` at every path on a loopback port; returns the base URL.
    fn serve(body: &'static [u8]) -> String {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut stream = stream;
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(body);
            }
        });
        base
    }

    /// A bundle for other machines takes their binaries: downloaded and checked against the
    /// pin, never put into this machine's tool cache; a platform without a pin is named with
    /// the ones there are.
    #[test]
    fn cluster_tools_pinned_binary_of_another_platform_is_checked_not_cached() {
        let data = tempfile::tempdir().unwrap();
        let other = if platform() == "darwin-arm64" {
            "linux-amd64"
        } else {
            "darwin-arm64"
        };
        let body: &'static [u8] = b"a kind binary";
        let tool = PinnedTool {
            name: "kind".into(),
            version: "v0.0.1".into(),
            base_url: serve(body),
            checksums: vec![(other.to_string(), sha256_hex(body))],
        };
        assert_eq!(pinned_binary(&tool, data.path(), other).unwrap(), body);
        assert!(!cached_path(&tool, data.path()).exists());
        let forged = PinnedTool {
            checksums: vec![(other.to_string(), sha256_hex(b"another"))],
            ..tool.clone()
        };
        let err = pinned_binary(&forged, data.path(), other).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        let err = pinned_binary(&tool, data.path(), "plan9-mips").unwrap_err();
        assert!(
            err.to_string()
                .contains("no kind v0.0.1 binary for plan9-mips")
                && err.to_string().contains(other),
            "{err}"
        );
    }

    #[test]
    fn cluster_tools_are_pinned_for_every_platform_kindling_supports() {
        for (os, arch, key) in [
            ("linux", "x86_64", "linux-amd64"),
            ("linux", "aarch64", "linux-arm64"),
            ("macos", "x86_64", "darwin-amd64"),
            ("macos", "aarch64", "darwin-arm64"),
        ] {
            assert_eq!(platform_of(os, arch), key);
            for tool in [kind_tool(), k3d_tool()] {
                let pinned = tool.checksums.iter().any(|(p, _)| p == key);
                assert!(pinned, "{} pins no {key} binary", tool.name);
                let url = format!("{}/{}-{key}", tool.base_url, tool.name);
                assert!(
                    url.starts_with("https://github.com/") && url.contains(&tool.version),
                    "{url}"
                );
            }
        }
    }
}
