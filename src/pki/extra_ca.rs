//! Corporate roots (`--extra-ca FILE`, profile `spec.extraCA`): the CA a TLS-intercepting proxy
//! re-signs every HTTPS connection with. Without it every image pull of the nodes, every chart
//! the engines fetch and every mirror Gitea makes fails with "certificate signed by unknown
//! authority" (kind#2826, k3d#533).
//!
//! The roots are checked once (certificates only, each a CA, none expired), copied into the env
//! directory, and from there mounted read-only into what fetches from the internet:
//! - each node, at [`CONTAINER_PATH`]: containerd and k3s are Go programs, and Go reads every
//!   file of `/etc/ssl/certs` besides the distribution's bundle (go crypto/x509
//!   root_unix.go/root_linux.go, loadSystemRoots), so no `update-ca-certificates` is needed;
//! - the Gitea container and the pull-through caches (Go as well), at the same path;
//! - the engines, through their own settings for HTTPS chart sources (see `engine::extra_ca`).
//!
//! This is a root kindling does not make and does not constrain: it is the user's network's.
//! It goes into the env's containers and cluster only, never into the host's trust stores.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::PkiError;

/// Where the roots appear inside every node and container that gets them.
pub const CONTAINER_PATH: &str = "/etc/ssl/certs/kindling-extra-ca.pem";
/// The copy in the env directory that the containers mount.
pub const FILE_NAME: &str = "extra-ca.pem";

/// One root of the bundle, as `env status`, the plan and doctor show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtraRoot {
    pub subject: String,
    pub fingerprint_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: time::OffsetDateTime,
}

/// The corporate roots of an env: every certificate of every file given, once each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraCa {
    /// The roots re-encoded as PEM, in the order given.
    pub pem: String,
    pub roots: Vec<ExtraRoot>,
}

impl ExtraCa {
    /// Reads and checks the files; `None` when there are none.
    pub fn load(files: &[PathBuf]) -> Result<Option<ExtraCa>, PkiError> {
        Self::load_at(files, time::OffsetDateTime::now_utc())
    }

    pub fn load_at(
        files: &[PathBuf],
        now: time::OffsetDateTime,
    ) -> Result<Option<ExtraCa>, PkiError> {
        let mut found: Vec<(Vec<u8>, ExtraRoot)> = Vec::new();
        for file in files {
            let bytes = std::fs::read(file).map_err(|e| bad(file, e.to_string(), HELP_FILE))?;
            for (der, root) in roots_of(file, &bytes, now)? {
                if !found
                    .iter()
                    .any(|(_, r)| r.fingerprint_sha256 == root.fingerprint_sha256)
                {
                    found.push((der, root));
                }
            }
        }
        // In fingerprint order: the same roots from files given in another order are the
        // same bundle, byte for byte.
        found.sort_by(|a, b| a.1.fingerprint_sha256.cmp(&b.1.fingerprint_sha256));
        let pem = found.iter().map(|(der, _)| pem_of(der)).collect();
        let roots: Vec<ExtraRoot> = found.into_iter().map(|(_, r)| r).collect();
        Ok((!roots.is_empty()).then_some(ExtraCa { pem, roots }))
    }

    /// Reads the bundle back from PEM text kindling wrote (the env's copy, the state).
    pub fn from_pem(path: &Path, pem: &str) -> Result<ExtraCa, PkiError> {
        let found = roots_of(path, pem.as_bytes(), time::OffsetDateTime::UNIX_EPOCH)?;
        Ok(ExtraCa {
            pem: found.iter().map(|(der, _)| pem_of(der)).collect(),
            roots: found.into_iter().map(|(_, r)| r).collect(),
        })
    }

    /// The env's copy, which the nodes and containers mount.
    pub fn env_copy(env_dir: &Path) -> PathBuf {
        env_dir.join(FILE_NAME)
    }

    /// Writes the env's copy unless it already holds these bytes: a node mounts the file by
    /// inode, so an unchanged copy is never replaced under it.
    pub fn write_env_copy(&self, env_dir: &Path) -> Result<PathBuf, PkiError> {
        let path = Self::env_copy(env_dir);
        if std::fs::read_to_string(&path).is_ok_and(|t| t == self.pem) {
            return Ok(path);
        }
        // Public certificates, read by the containers' users (Gitea runs as uid 1000).
        crate::paths::write_atomic(&path, self.pem.as_bytes(), 0o644).map_err(|source| {
            PkiError::Io {
                path: path.clone(),
                source,
            }
        })?;
        Ok(path)
    }

    /// The roots as DER, for a TLS client's trust store (`crate::net`).
    pub fn ders(&self) -> Vec<Vec<u8>> {
        x509_parser::pem::Pem::iter_from_buffer(self.pem.as_bytes())
            .filter_map(Result::ok)
            .map(|p| p.contents)
            .collect()
    }

    /// The fingerprints, for comparing what an env was made with to what a rerun asks for.
    pub fn fingerprints(&self) -> Vec<String> {
        self.roots
            .iter()
            .map(|r| r.fingerprint_sha256.clone())
            .collect()
    }
}

const HELP_FILE: &str = "give --extra-ca (or the profile's spec.extraCA) a PEM file holding your network's root CA certificate; your IT department publishes it, or export it from your browser's certificate viewer";

fn bad(path: &Path, reason: String, help: &str) -> PkiError {
    PkiError::ExtraCa {
        path: path.to_path_buf(),
        reason,
        help: help.to_string(),
    }
}

/// Every certificate of a PEM file, checked; anything else in it is an error.
fn roots_of(
    path: &Path,
    bytes: &[u8],
    now: time::OffsetDateTime,
) -> Result<Vec<(Vec<u8>, ExtraRoot)>, PkiError> {
    let mut found = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let block = block.map_err(|e| bad(path, format!("not PEM text: {e}"), HELP_FILE))?;
        if block.label.contains("PRIVATE KEY") {
            return Err(bad(
                path,
                "holds a private key".to_string(),
                "give only the CA certificate; a private key has no place in a trust bundle, and kindling never copies one into a cluster",
            ));
        }
        if block.label != "CERTIFICATE" {
            return Err(bad(
                path,
                format!("holds a '{}' block", block.label),
                "give a file of 'CERTIFICATE' blocks only",
            ));
        }
        let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).map_err(|e| {
            bad(
                path,
                format!("a certificate cannot be read: {e}"),
                HELP_FILE,
            )
        })?;
        let subject = cert.subject().to_string();
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(bad(
                path,
                format!("'{subject}' is not a CA certificate (no basicConstraints CA:TRUE)"),
                "give the root of your proxy's chain, not a server's own certificate: `openssl s_client -showcerts -connect registry-1.docker.io:443` shows the chain; its last certificate is the one",
            ));
        }
        let not_after = cert.validity().not_after.to_datetime();
        if not_after < now {
            return Err(bad(
                path,
                format!("'{subject}' expired on {}", not_after.date()),
                "ask your IT department for the current root",
            ));
        }
        let fingerprint = Sha256::digest(&block.contents)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        found.push((
            block.contents.clone(),
            ExtraRoot {
                subject,
                fingerprint_sha256: fingerprint,
                not_after,
            },
        ));
    }
    if found.is_empty() {
        return Err(bad(path, "holds no PEM certificate".to_string(), HELP_FILE));
    }
    Ok(found)
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str("-----END CERTIFICATE-----\n");
    text
}

/// The host names of HTTPS (and OCI) URLs, without port: what Argo CD keys its
/// `argocd-tls-certs-cm` by (argoproj/argo-cd v3.5.1 pkg/apis/application/v1alpha1/
/// repository_types.go getCAPath, util/cert/cert.go ServerNameWithoutPort). Plain http needs
/// no CA.
pub fn tls_host(url: &str) -> Option<String> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("oci://") {
        rest
    } else if url.contains("://") {
        return None;
    } else {
        // Argo CD's OCI Helm sources carry no scheme (`ghcr.io/org/charts`).
        url
    };
    let host = crate::cluster::proxy::url_host(rest);
    (!host.is_empty()).then(|| host.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(name: &str, is_ca: bool) -> String {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        if is_ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn extra_ca_takes_ca_certificates_once_each_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let corp = ca("Corp Root", true);
        let other = ca("Corp Root 2", true);
        let a = dir.path().join("a.pem");
        let b = dir.path().join("b.pem");
        std::fs::write(&a, format!("{corp}{other}")).unwrap();
        std::fs::write(&b, &corp).unwrap();
        let loaded = ExtraCa::load(&[a.clone(), b.clone()]).unwrap().unwrap();
        assert_eq!(loaded.roots.len(), 2, "{loaded:?}");
        assert!(loaded.roots[0].subject.contains("Corp Root"));
        assert_eq!(ExtraCa::load(&[b, a.clone()]).unwrap().unwrap(), loaded);
        assert_eq!(loaded.pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert_eq!(ExtraCa::from_pem(&a, &loaded.pem).unwrap(), loaded);
        assert_eq!(ExtraCa::load(&[]).unwrap(), None);

        let leaf = dir.path().join("leaf.pem");
        std::fs::write(&leaf, ca("proxy.corp", false)).unwrap();
        let e = ExtraCa::load(std::slice::from_ref(&leaf))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("leaf.pem") && e.contains("not a CA certificate") && e.contains("help:"),
            "{e}"
        );
        let key = dir.path().join("key.pem");
        let pair = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key, format!("{corp}{}", pair.serialize_pem())).unwrap();
        let e = ExtraCa::load(&[key]).unwrap_err().to_string();
        assert!(e.contains("private key"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "hello\n").unwrap();
        let e = ExtraCa::load(&[empty]).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = ExtraCa::load(&[dir.path().join("missing.pem")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let later = time::OffsetDateTime::now_utc() + time::Duration::days(365 * 5000);
        let e = ExtraCa::load_at(&[a], later).unwrap_err().to_string();
        assert!(e.contains("expired"), "{e}");
    }

    #[test]
    fn extra_ca_env_copy_is_not_rewritten_when_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("corp.pem");
        std::fs::write(&file, ca("Corp", true)).unwrap();
        let loaded = ExtraCa::load(&[file]).unwrap().unwrap();
        let copy = loaded.write_env_copy(dir.path()).unwrap();
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(&copy).unwrap().ino();
        loaded.write_env_copy(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&copy).unwrap().ino(), inode);
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), loaded.pem);
    }

    #[test]
    fn tls_hosts_are_the_names_argo_cd_keys_its_certificates_by() {
        assert_eq!(
            tls_host("https://charts.corp:8443/stable").as_deref(),
            Some("charts.corp")
        );
        assert_eq!(
            tls_host("oci://ghcr.io/org/charts").as_deref(),
            Some("ghcr.io")
        );
        assert_eq!(
            tls_host("registry-1.docker.io/bitnamicharts").as_deref(),
            Some("registry-1.docker.io")
        );
        assert_eq!(
            tls_host("https://user:pw@[::1]:443/x").as_deref(),
            Some("::1")
        );
        assert_eq!(tls_host("http://gitea.local/x"), None);
    }
}
