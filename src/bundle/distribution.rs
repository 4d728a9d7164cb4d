//! Just enough of the OCI distribution API (opencontainers/distribution-spec v1.1) to copy an
//! image as its registry holds it: manifests and blobs byte for byte, so every digest a node
//! or a config names (`kindest/node:…@sha256:…`) still matches after the copy. The Docker
//! engine's `docker save` would re-create the manifests and lose them.
//!
//! Pull: `GET /v2/<name>/manifests/<ref>` with the manifest media types in `Accept`, then the
//! manifests an index names and the blobs of the platforms asked for. Anonymous bearer tokens
//! as Docker Hub, GHCR and Quay hand them out (distribution/distribution v3.1.1
//! docs/content/spec/auth/token.md: a 401 with `WWW-Authenticate: Bearer realm=…,service=…,
//! scope=…`, the realm answers `{"token": …}` or `{"access_token": …}`).
//! Push: `POST /v2/<name>/blobs/uploads/` then `PUT <location>?digest=…` (monolithic upload),
//! manifests with `PUT /v2/<name>/manifests/<ref>` and their own media type.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::BundleError;

pub const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
pub const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The largest manifest accepted (the distribution spec lets registries refuse above 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// The largest blob accepted: a node image layer is under 1 GiB.
const MAX_BLOB: u64 = 8 << 30;

/// An image reference, normalised as Docker does (`busybox` → `docker.io/library/busybox`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, BundleError> {
        let bad = |why: &str| BundleError::BadReference {
            reference: text.to_string(),
            reason: why.to_string(),
        };
        let text = text.trim();
        if text.is_empty() || text.contains(char::is_whitespace) {
            return Err(bad("an image reference has no spaces"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("only sha256 digests"))?;
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad("the digest is not 64 hex digits"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (text, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => ("docker.io".to_string(), rest.to_string()),
        };
        // A tag follows the last ':' after the last '/'.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
            _ => (path.clone(), None),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty()
            || !repository
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
        {
            return Err(bad(
                "the repository name is not lower-case letters, digits and ._-/",
            ));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What a pull asks the registry for: the digest when there is one.
    pub fn wanted(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The registry's API root: Docker Hub's is registry-1.docker.io; a registry on this
    /// machine is spoken to over plain http (as Docker treats 127.0.0.0/8), any other over
    /// https.
    pub fn api_base(&self) -> String {
        if self.registry == "docker.io" {
            return "https://registry-1.docker.io".to_string();
        }
        let scheme = if crate::cluster::proxy::is_loopback_url(&format!("x://{}", self.registry)) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", self.registry)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Copies `reader` into `writer` a megabyte at a time, hashing on the way; returns the
/// `sha256:…` digest of what was copied. A layer is never held in memory whole.
pub fn copy_hashed(
    reader: &mut impl std::io::Read,
    writer: &mut impl std::io::Write,
) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        writer.write_all(&buffer[..n])?;
    }
    Ok(format!(
        "sha256:{}",
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

/// One object of an image as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// An image copied from a registry: its top manifest (an index or a single manifest), the
/// manifests under it, and the blobs of the platforms kept.
#[derive(Debug, Clone)]
pub struct PulledImage {
    pub top: Object,
    /// Platform manifests of an index, in its order (empty for a single manifest).
    pub manifests: Vec<Object>,
    /// Digests of the configs and layers kept, stored as `blobs/sha256/<hex>` under the
    /// directory `pull` was given.
    pub blobs: Vec<String>,
    /// `os/arch` of each platform whose blobs are kept.
    pub platforms: Vec<String>,
}

/// A registry session (anonymous tokens, per repository).
pub struct Client {
    agent: ureq::Agent,
    /// For registries on this machine: never through the user's proxy (ureq reads
    /// HTTP(S)_PROXY and has no loopback exception of its own).
    direct: ureq::Agent,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Client {
        // No global timeout (a node image layer takes long on a slow line); a stalled
        // connection still fails on the per-read timeout.
        let config = || {
            crate::net::agent_config()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(30)))
                .timeout_recv_body(Some(Duration::from_secs(120)))
        };
        Client {
            agent: config().build().into(),
            direct: config().proxy(None).build().into(),
        }
    }

    fn agent_for(&self, url: &str) -> &ureq::Agent {
        if crate::cluster::proxy::is_loopback_url(url) {
            &self.direct
        } else {
            &self.agent
        }
    }

    fn get(
        &self,
        from: &Reference,
        url: &str,
        accept: &str,
        token: &mut Option<String>,
        limit: u64,
    ) -> Result<(String, Vec<u8>), BundleError> {
        let (media_type, mut response) = self.respond(from, url, accept, token)?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| BundleError::Registry {
                reference: from.to_string(),
                reason: format!("{url}: {e}"),
            })?;
        Ok((media_type, bytes))
    }

    /// A blob streamed into `path` (through a temporary file beside it) and checked against
    /// its digest on the way: a layer is never held in memory whole.
    fn download(
        &self,
        from: &Reference,
        digest: &str,
        token: &mut Option<String>,
        path: &std::path::Path,
    ) -> Result<(), BundleError> {
        let url = format!("{}/v2/{}/blobs/{digest}", from.api_base(), from.repository);
        let (_, mut response) = self.respond(from, &url, "*/*", token)?;
        let failed = |reason: String| BundleError::Registry {
            reference: from.to_string(),
            reason: format!("{url}: {reason}"),
        };
        let partial = path.with_extension("partial");
        let written = (|| -> std::io::Result<String> {
            let mut file = std::fs::File::create(&partial)?;
            let mut reader = response.body_mut().with_config().limit(MAX_BLOB).reader();
            let got = copy_hashed(&mut reader, &mut file)?;
            file.sync_all()?;
            Ok(got)
        })();
        let got = match written {
            Ok(got) => got,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(failed(e.to_string()));
            }
        };
        if got != digest {
            let _ = std::fs::remove_file(&partial);
            return Err(failed(format!("arrived with digest {got}")));
        }
        std::fs::rename(&partial, path).map_err(|e| failed(e.to_string()))
    }

    /// The response to an authorised GET (an anonymous token fetched on a 401) and its
    /// media type; any status but 200 is an error that says what it means.
    fn respond(
        &self,
        from: &Reference,
        url: &str,
        accept: &str,
        token: &mut Option<String>,
    ) -> Result<(String, ureq::http::Response<ureq::Body>), BundleError> {
        let failed = |reason: String| BundleError::Registry {
            reference: from.to_string(),
            reason,
        };
        // A token runs out (Docker Hub's after 300 s): a 401 gets one fresh token.
        for attempt in 0..2 {
            let mut request = self.agent_for(url).get(url).header("Accept", accept);
            if let Some(t) = token.as_deref() {
                request = request.header("Authorization", &format!("Bearer {t}"));
            }
            let response = request.call().map_err(|e| failed(format!("{url}: {e}")))?;
            let status = response.status().as_u16();
            if status == 401 && attempt == 0 {
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                *token = Some(self.anonymous_token(&challenge, from)?);
                continue;
            }
            if status != 200 {
                let hint = match status {
                    401 | 403 => {
                        " (kindling pulls anonymously: a private image needs a SOURCE it can read without credentials)"
                    }
                    404 => " (no such image or tag there)",
                    429 => {
                        " (rate limited: wait, or copy from a mirror with `REFERENCE from SOURCE`)"
                    }
                    _ => "",
                };
                return Err(failed(format!("{url} answered {status}{hint}")));
            }
            let media_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            return Ok((media_type, response));
        }
        Err(failed(format!("{url}: refused a fresh anonymous token")))
    }

    /// The token the challenge's realm hands out for pulling.
    fn anonymous_token(&self, challenge: &str, from: &Reference) -> Result<String, BundleError> {
        let failed = |reason: String| BundleError::Registry {
            reference: from.to_string(),
            reason,
        };
        let params = challenge.strip_prefix("Bearer ").ok_or_else(|| {
            failed(format!(
                "asks for credentials ({challenge}); kindling pulls anonymously"
            ))
        })?;
        let field = |name: &str| -> Option<String> {
            params.split(',').find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm =
            field("realm").ok_or_else(|| failed("a Bearer challenge without realm".into()))?;
        let mut request = self.agent.get(&realm);
        if let Some(service) = field("service") {
            request = request.query("service", &service);
        }
        let scope =
            field("scope").unwrap_or_else(|| format!("repository:{}:pull", from.repository));
        let mut response = request
            .query("scope", &scope)
            .call()
            .map_err(|e| failed(format!("{realm}: {e}")))?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| failed(format!("{realm}: {e}")))?;
        let body: Value =
            serde_json::from_slice(&bytes).map_err(|e| failed(format!("{realm}: {e}")))?;
        body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| failed(format!("{realm} gave no token")))
    }

    /// Copies `reference` from `from` (the same image, or a mirror holding it), keeping the
    /// blobs of `platforms` (`linux/amd64`); a single-platform image keeps its own.
    pub fn pull(
        &self,
        from: &Reference,
        platforms: &[String],
        store: &std::path::Path,
    ) -> Result<PulledImage, BundleError> {
        let base = from.api_base();
        let mut token = None;
        let accept = [INDEX_TYPES.as_slice(), MANIFEST_TYPES.as_slice()]
            .concat()
            .join(", ");
        let manifest_url = |r: &str| format!("{base}/v2/{}/manifests/{r}", from.repository);
        let (media_type, bytes) = self.get(
            from,
            &manifest_url(from.wanted()),
            &accept,
            &mut token,
            MAX_MANIFEST,
        )?;
        let digest = sha256_digest(&bytes);
        if let Some(wanted) = &from.digest
            && *wanted != digest
        {
            return Err(BundleError::Registry {
                reference: from.to_string(),
                reason: format!("the registry sent a manifest whose digest is {digest}"),
            });
        }
        let parsed: Value = serde_json::from_slice(&bytes).map_err(|e| BundleError::Registry {
            reference: from.to_string(),
            reason: format!("the manifest is not JSON: {e}"),
        })?;
        let media_type = parsed["mediaType"]
            .as_str()
            .map(str::to_string)
            .unwrap_or(media_type);
        let top = Object {
            digest,
            media_type: media_type.clone(),
            bytes,
        };
        let mut image = PulledImage {
            top,
            manifests: Vec::new(),
            blobs: Vec::new(),
            platforms: Vec::new(),
        };
        if INDEX_TYPES.contains(&media_type.as_str()) {
            for entry in parsed["manifests"].as_array().into_iter().flatten() {
                let child_digest = entry["digest"].as_str().unwrap_or_default().to_string();
                let platform = format!(
                    "{}/{}",
                    entry["platform"]["os"].as_str().unwrap_or_default(),
                    entry["platform"]["architecture"]
                        .as_str()
                        .unwrap_or_default()
                );
                let (child_type, child) = self.get(
                    from,
                    &manifest_url(&child_digest),
                    &MANIFEST_TYPES.join(", "),
                    &mut token,
                    MAX_MANIFEST,
                )?;
                if sha256_digest(&child) != child_digest {
                    return Err(BundleError::Registry {
                        reference: from.to_string(),
                        reason: format!("manifest {child_digest} arrived with another digest"),
                    });
                }
                let manifest: Value = serde_json::from_slice(&child).unwrap_or(Value::Null);
                if platforms.contains(&platform) {
                    self.fetch_blobs(from, &manifest, &mut image, &mut token, store)?;
                    image.platforms.push(platform);
                }
                image.manifests.push(Object {
                    digest: child_digest,
                    media_type: entry["mediaType"]
                        .as_str()
                        .map_or(child_type, str::to_string),
                    bytes: child,
                });
            }
            if image.platforms.is_empty() {
                return Err(BundleError::Registry {
                    reference: from.to_string(),
                    reason: format!("has none of the platforms {}", platforms.join(", ")),
                });
            }
        } else {
            self.fetch_blobs(from, &parsed, &mut image, &mut token, store)?;
        }
        Ok(image)
    }

    /// The config and layers of one image manifest, each checked against its digest.
    fn fetch_blobs(
        &self,
        from: &Reference,
        manifest: &Value,
        image: &mut PulledImage,
        token: &mut Option<String>,
        store: &std::path::Path,
    ) -> Result<(), BundleError> {
        let descriptors = std::iter::once(&manifest["config"])
            .chain(manifest["layers"].as_array().into_iter().flatten());
        for d in descriptors {
            let digest = d["digest"].as_str().unwrap_or_default().to_string();
            let Some(hex) = digest
                .strip_prefix("sha256:")
                .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
            else {
                return Err(BundleError::Registry {
                    reference: from.to_string(),
                    reason: format!("a manifest names the blob '{digest}'"),
                });
            };
            if image.blobs.contains(&digest) {
                continue;
            }
            let path = store.join("blobs/sha256").join(hex);
            // Shared with an image copied before: already there, already checked.
            if !path.is_file() {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| BundleError::Io {
                        path: dir.to_path_buf(),
                        source: e,
                    })?;
                }
                self.download(from, &digest, token, &path)?;
            }
            image.blobs.push(digest);
        }
        Ok(())
    }

    /// A plain GET of `url` (a Helm repository's index or package), at most `limit` bytes.
    pub fn fetch(&self, url: &str, limit: u64) -> Result<Vec<u8>, String> {
        let mut response = self
            .agent_for(url)
            .get(url)
            .call()
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(format!("{url}: the server answered {status}"));
        }
        response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| format!("{url}: {e}"))
    }

    /// Whether the registry at `base` (on this machine) answers its API.
    pub fn answers(&self, base: &str) -> bool {
        self.direct
            .get(&format!("{base}/v2/"))
            .call()
            .is_ok_and(|r| r.status().as_u16() == 200)
    }

    /// Pushes one blob to `repository` at `base` (a registry kindling runs on this machine),
    /// unless it is there already.
    pub fn push_blob(
        &self,
        base: &str,
        repository: &str,
        digest: &str,
        path: &std::path::Path,
    ) -> Result<(), BundleError> {
        let failed = |reason: String| BundleError::Seed {
            target: format!("{base}/{repository}"),
            reason,
        };
        let head = self
            .direct
            .head(&format!("{base}/v2/{repository}/blobs/{digest}"))
            .call()
            .map_err(|e| failed(e.to_string()))?;
        if head.status().as_u16() == 200 {
            return Ok(());
        }
        let started = self
            .direct
            .post(&format!("{base}/v2/{repository}/blobs/uploads/"))
            .send_empty()
            .map_err(|e| failed(e.to_string()))?;
        if started.status().as_u16() != 202 {
            return Err(failed(format!(
                "upload start answered {}",
                started.status()
            )));
        }
        let location = started
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| failed("upload start gave no Location".into()))?;
        let location = if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            location.to_string()
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let done = self
            .direct
            .put(&format!("{location}{separator}digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .send(std::fs::File::open(path).map_err(|e| failed(e.to_string()))?)
            .map_err(|e| failed(e.to_string()))?;
        if done.status().as_u16() != 201 {
            return Err(failed(format!("blob {digest} answered {}", done.status())));
        }
        Ok(())
    }

    /// Pushes a manifest under `reference` (a tag or its digest).
    pub fn push_manifest(
        &self,
        base: &str,
        repository: &str,
        reference: &str,
        manifest: &Object,
    ) -> Result<(), BundleError> {
        let response = self
            .direct
            .put(&format!("{base}/v2/{repository}/manifests/{reference}"))
            .header("Content-Type", &manifest.media_type)
            .send(&manifest.bytes[..])
            .map_err(|e| BundleError::Seed {
                target: format!("{base}/{repository}"),
                reason: e.to_string(),
            })?;
        if response.status().as_u16() != 201 {
            let mut response = response;
            let body = response.body_mut().read_to_string().unwrap_or_default();
            return Err(BundleError::Seed {
                target: format!("{base}/{repository}:{reference}"),
                reason: format!(
                    "manifest {} answered {}: {body}",
                    manifest.digest,
                    response.status()
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_references_normalise_as_docker_does() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.api_base(), "https://registry-1.docker.io");
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("kindest/node:v1.37.0@{digest}")).unwrap();
        assert_eq!(r.repository, "kindest/node");
        assert_eq!(r.wanted(), digest);
        let r = Reference::parse("127.0.0.1:5000/kt/app:1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "kt/app", Some("1"))
        );
        assert_eq!(r.api_base(), "http://127.0.0.1:5000");
        assert_eq!(
            Reference::parse("ghcr.io/fluxcd/source-controller:v1.9.4")
                .unwrap()
                .api_base(),
            "https://ghcr.io"
        );
        for bad in ["", "a b", "Busybox", "x@sha256:12", "x@md5:aa"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
