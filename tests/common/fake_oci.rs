//! source-controller's OCIRepository (fluxcd/source-controller v1.9.1
//! internal/controller/ocirepository_controller.go), as far as a Flux cluster directory's own
//! sources need it: the artifact at `spec.ref.tag` (default `latest`) is pulled from its
//! registry (plain HTTP with `insecure: true`), the first layer (the default `layerSelector`)
//! is extracted, and the artifact revision is `<tag>@<manifest digest>` (`getRevision`). A
//! failed pull is Ready False `OCIArtifactPullFailed`, "failed to pull artifact from '<url>':
//! …". Not modelled: semver and digest references, verification, credentials.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::fake_cluster::Workspace;
use super::kube_api::Stored;

/// Pulls are kept this long before the registry is asked again (the object's interval,
/// shortened for tests).
const FRESH: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct OciSources {
    pulled: std::collections::HashMap<String, (Instant, Result<String, String>)>,
}

impl OciSources {
    /// Reconciles every OCIRepository: status and, when pulled, the tree in `ws` under the
    /// revision's digest (what [`served_key`] returns for a Kustomization to build from).
    pub fn reconcile(&mut self, objects: &mut [Stored], ws: &mut Workspace) {
        for s in objects
            .iter_mut()
            .filter(|s| s.object["kind"] == "OCIRepository")
        {
            let url = s.object["spec"]["url"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let tag = s.object["spec"]["ref"]["tag"]
                .as_str()
                .unwrap_or("latest")
                .to_string();
            let insecure = s.object["spec"]["insecure"] == true;
            let key = format!("{url}:{tag}");
            let fresh = self
                .pulled
                .get(&key)
                .is_some_and(|(at, _)| at.elapsed() < FRESH);
            if !fresh {
                let result = pull(&url, &tag, insecure, ws);
                self.pulled.insert(key.clone(), (Instant::now(), result));
            }
            let generation = s.object["metadata"]["generation"].clone();
            s.object["status"] = match &self.pulled[&key].1 {
                Ok(revision) => json!({"observedGeneration": generation,
                    "artifact": {"revision": revision, "digest": revision.rsplit('@').next(), "path": "x", "url": "http://x"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                        "message": format!("stored artifact for digest '{revision}'"),
                        "lastTransitionTime": "2026-11-29T08:00:00Z"}]}),
                Err(e) => json!({"observedGeneration": generation,
                    "conditions": [{"type": "Ready", "status": "False", "reason": "OCIArtifactPullFailed",
                        "message": format!("failed to pull artifact from '{url}': {e}"),
                        "lastTransitionTime": "2026-11-29T08:00:00Z"}]}),
            };
        }
    }
}

/// Where a Kustomization on an OCIRepository builds from: the tree stored under its
/// artifact's digest.
pub fn served_key(revision: &str) -> String {
    revision
        .rsplit("sha256:")
        .next()
        .unwrap_or(revision)
        .to_string()
}

fn pull(url: &str, tag: &str, insecure: bool, ws: &mut Workspace) -> Result<String, String> {
    ws.internet.connect(url, None)?;
    let rest = url
        .strip_prefix("oci://")
        .ok_or_else(|| format!("URL must be in format 'oci://<domain>/<org>/<repo>': {url}"))?;
    let (host, repository) = rest.split_once('/').ok_or("no repository in the URL")?;
    let scheme = if insecure { "http" } else { "https" };
    let base = format!("{scheme}://{host}/v2/{repository}");
    let agent = ureq::Agent::new_with_defaults();
    let mut response = agent
        .get(&format!("{base}/manifests/{tag}"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .call()
        .map_err(|e| format!("GET {base}/manifests/{tag}: {e}"))?;
    let body = response
        .body_mut()
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    let digest = format!("sha256:{}", sha256_hex(&body));
    let manifest: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .ok_or("the artifact has no layer")?;
    let revision = format!("{tag}@{digest}");
    let root = ws.tree_dir(&served_key(&revision));
    if !root.exists() {
        let mut blob = agent
            .get(&format!("{base}/blobs/{layer}"))
            .call()
            .map_err(|e| format!("GET blob {layer}: {e}"))?;
        let bytes = blob
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()))
            .unpack(&root)
            .map_err(|e| format!("extracting {layer}: {e}"))?;
    }
    Ok(revision)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
