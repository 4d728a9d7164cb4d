//! The local CA: one root per machine, one intermediate per env.
//!
//! Better than mkcert for this use: the root key, which could sign for the host, never enters
//! a cluster; only the env's intermediate does (as cert-manager's `root-ca-secret`), and both
//! carry name constraints so they can sign for local names only.

mod env_ca;
pub mod extra_ca;
pub mod trust;

pub use env_ca::{ensure_env_ca, env_ca_secret};

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::paths::write_atomic;

const ROOT_VALIDITY_DAYS: i64 = 3650;
/// Short-lived: renewed by the next create or restart once within EXPIRY_WARNING_DAYS of its
/// end, so a copy taken from a cluster is soon worthless.
const INTERMEDIATE_VALIDITY_DAYS: i64 = 60;
/// Certificates closer than this to expiry are warned about (and intermediates renewed).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {what} cannot be read: {reason}\nhelp: {help}", path.display())]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        reason: String,
        help: String,
    },
    #[error(
        "{} and {} do not belong together (the key is not the certificate's)\nhelp: restore the pair from a backup, or delete both files to create a new CA (certificates it issued will no longer be trusted)",
        cert.display(),
        key.display()
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot create a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{0}")]
    Trust(String),
    #[error(
        "{}: this {what} is not one kindling made: {reason}\nhelp: kindling trusts and uses only a CA with the constraints it generates (local names only, TLS only). If you made it, or an older kindling did: `kindling ca untrust`, remove {} and its key, and run the command again to make a new one",
        path.display(),
        path.display()
    )]
    Foreign {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error(
        "KINDLING_CA_NAMES: '{0}' is not a DNS name or domain\nhelp: give names like '.test' (every name under test) or 'dev.example.internal', separated by commas"
    )]
    BadName(String),
    #[error("{}: not a usable extra CA: {reason}\nhelp: {help}", path.display())]
    ExtraCa {
        path: PathBuf,
        reason: String,
        help: String,
    },
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The names a kindling CA may sign for. Anything else (example.com, a bank, a corporate
/// `.internal` name, a `.local` printer) is rejected by every client that checks name
/// constraints, even if the CA leaked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNames {
    pub dns: Vec<String>,
    pub ips: Vec<(IpAddr, u8)>,
}

/// The variable that widens the names a new root may sign for (`.test,.internal`): chosen when
/// the root is made, and checked against it on every later use.
pub const CA_NAMES_VAR: &str = "KINDLING_CA_NAMES";

/// A reserved top-level domain (RFC 6761) that no real name is under: the only email and URI
/// "names" the CA permits, so it can sign no email or URI identity at all. (A permitted subtree
/// of a name form forbids every name of that form outside it; without one, a form is
/// unconstrained: RFC 5280 4.2.1.10.)
const NOWHERE: &str = ".invalid";

impl Default for LocalNames {
    fn default() -> Self {
        LocalNames {
            dns: vec!["localhost".to_string(), ".localhost".to_string()],
            ips: vec![
                (IpAddr::from([127, 0, 0, 0]), 8),
                (IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), 128),
            ],
        }
    }
}

impl LocalNames {
    /// The default names, and those the user opted into with `KINDLING_CA_NAMES`.
    pub fn configured() -> Result<LocalNames, PkiError> {
        LocalNames::with_extra(std::env::var(CA_NAMES_VAR).ok().as_deref())
    }

    pub fn with_extra(extra: Option<&str>) -> Result<LocalNames, PkiError> {
        let mut names = LocalNames::default();
        for name in extra.unwrap_or_default().split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            let bare = name.strip_prefix('.').unwrap_or(name);
            let well_formed = !bare.is_empty()
                && bare.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !well_formed {
                return Err(PkiError::BadName(name.to_string()));
            }
            let name = name.to_ascii_lowercase();
            if !names.dns.contains(&name) {
                names.dns.push(name);
            }
        }
        Ok(names)
    }

    /// The permitted subtrees, as `ca show` prints them and the check compares them.
    fn permitted(&self) -> Vec<String> {
        let mut out: Vec<String> = self.dns.iter().map(|d| format!("DNS:{d}")).collect();
        out.extend(
            self.ips
                .iter()
                .map(|(ip, prefix)| format!("IP:{ip}/{prefix}")),
        );
        out.push(format!("email:{NOWHERE}"));
        out.push(format!("URI:{NOWHERE}"));
        out
    }

    /// The NameConstraints extension (RFC 5280 4.2.1.10), critical. rcgen cannot write URI
    /// subtrees, so the extension is encoded here: DNS names and IP ranges permitted, and email
    /// and URI permitted only under `.invalid`.
    fn extension(&self) -> CustomExtension {
        let mut subtrees = Vec::new();
        for dns in &self.dns {
            subtrees.push(der::tlv(0x30, &der::tlv(0x82, dns.as_bytes())));
        }
        for (ip, prefix) in &self.ips {
            let (addr, len) = match ip {
                IpAddr::V4(v4) => (v4.octets().to_vec(), 32u32),
                IpAddr::V6(v6) => (v6.octets().to_vec(), 128u32),
            };
            let mask: Vec<u8> = (0..len / 8)
                .map(|i| {
                    let bits = (*prefix as u32).saturating_sub(i * 8).min(8);
                    (0xffu16 << (8 - bits)) as u8
                })
                .collect();
            let masked: Vec<u8> = addr.iter().zip(&mask).map(|(a, m)| a & m).collect();
            subtrees.push(der::tlv(0x30, &der::tlv(0x87, &[masked, mask].concat())));
        }
        subtrees.push(der::tlv(0x30, &der::tlv(0x81, NOWHERE.as_bytes())));
        subtrees.push(der::tlv(0x30, &der::tlv(0x86, NOWHERE.as_bytes())));
        let permitted = der::tlv(0xa0, &subtrees.concat());
        let mut extension =
            CustomExtension::from_oid_content(&[2, 5, 29, 30], der::tlv(0x30, &permitted));
        extension.set_criticality(true);
        extension
    }
}

/// Just enough DER for the name constraints: tag, definite length, content.
mod der {
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }
}

/// A CA certificate and its private key, as PEM, with where they are stored.
#[derive(Debug, Clone)]
pub struct CaPair {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl CaPair {
    /// An rcgen issuer signing with this CA (for the intermediate, and for tests' leaves).
    pub fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key = KeyPair::from_pem(&self.key_pem)?;
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, key)?)
    }

    pub fn info(&self) -> Result<CertInfo, PkiError> {
        CertInfo::from_pem(&self.cert_pem, &self.cert_path)
    }

    /// Writes key (0600) and certificate (0644), each atomically. Key first: a crash between
    /// the two writes leaves a key without a certificate, which loading reports, instead of a
    /// new certificate beside an unknown key.
    fn store(&self) -> Result<(), PkiError> {
        write_atomic(&self.key_path, self.key_pem.as_bytes(), 0o600).map_err(io(&self.key_path))?;
        write_atomic(&self.cert_path, self.cert_pem.as_bytes(), 0o644).map_err(io(&self.cert_path))
    }
}

/// A warning when a CA key can be read by anyone but its owner (group or others bits set):
/// whoever reads it can issue certificates the user's machine trusts.
pub fn key_exposure(key_path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key_path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "the CA key {} is readable by others (mode {mode:o}); `chmod 600 {}`",
            key_path.display(),
            key_path.display()
        )
    })
}

pub fn root_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("ca");
    (dir.join("root.pem"), dir.join("root-key.pem"))
}

pub fn intermediate_paths(data_dir: &Path, env: &str) -> (PathBuf, PathBuf) {
    let dir = crate::paths::env_dir(data_dir, env).join("ca");
    (
        dir.join("intermediate.pem"),
        dir.join("intermediate-key.pem"),
    )
}

/// Who and where, for certificate subjects (as mkcert does): `user@host`.
pub fn user_at_host() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "user".to_string());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_string());
    format!("{user}@{host}")
}

fn ca_params(
    common_name: &str,
    owner: &str,
    path_len: u8,
    days: i64,
    names: &LocalNames,
    now: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "kindling local CA");
    dn.push(DnType::OrganizationalUnitName, owner);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // TLS only: clients that honour a CA's extended key usage (OpenSSL, Windows, NSS) refuse
    // its leaves for S/MIME, code signing or time stamping.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.custom_extensions.push(names.extension());
    // RFC 5280 4.2.1.1: a certificate names its issuer's key (a self-signed root may, and
    // rcgen gives it its own); `openssl verify -x509_strict` refuses an intermediate without.
    params.use_authority_key_identifier_extension = true;
    // A little slack for clocks that differ between host and nodes.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    params
}

/// Loads the machine root CA, creating it on first use. A damaged or mismatched pair is an
/// error, never silently replaced: certificates already trusted hang off it.
pub fn ensure_root(
    data_dir: &Path,
    names: &LocalNames,
    now: OffsetDateTime,
) -> Result<CaPair, PkiError> {
    if let Some(root) = load_root(data_dir, names)? {
        return Ok(root);
    }
    let (cert_path, key_path) = root_paths(data_dir);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let owner = user_at_host();
    let params = ca_params(
        &format!("kindling {owner}"),
        &owner,
        1,
        ROOT_VALIDITY_DAYS,
        names,
        now,
    );
    let cert = params.self_signed(&key)?;
    let pair = CaPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_path,
        key_path,
    };
    pair.store()?;
    Ok(pair)
}

/// The machine root CA if it exists; `Ok(None)` when neither file does. A root kindling did
/// not make for `names` is an error, never used or trusted.
pub fn load_root(data_dir: &Path, names: &LocalNames) -> Result<Option<CaPair>, PkiError> {
    let (cert_path, key_path) = root_paths(data_dir);
    let root = load_pair(cert_path, key_path, "root CA")?;
    if let Some(root) = &root {
        check_made_by_kindling(&root.cert_pem, &root.cert_path, "root CA", 1, names)?;
    }
    Ok(root)
}

/// The root CA files as they are, unchecked: only for `ca untrust`, which must be able to take
/// out of the trust store a root that kindling now refuses.
pub fn load_root_as_is(data_dir: &Path) -> Result<Option<CaPair>, PkiError> {
    let (cert_path, key_path) = root_paths(data_dir);
    load_pair(cert_path, key_path, "root CA")
}

fn load_pair(
    cert_path: PathBuf,
    key_path: PathBuf,
    what: &'static str,
) -> Result<Option<CaPair>, PkiError> {
    match (cert_path.exists(), key_path.exists()) {
        (false, false) => return Ok(None),
        (true, false) | (false, true) => {
            let (present, missing) = if cert_path.exists() {
                (&cert_path, &key_path)
            } else {
                (&key_path, &cert_path)
            };
            return Err(PkiError::Corrupt {
                path: missing.clone(),
                what,
                reason: format!("it is missing while {} exists", present.display()),
                help: "restore the missing file, or delete the other one to create a new CA".into(),
            });
        }
        (true, true) => {}
    }
    let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
    let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Corrupt {
        path: key_path.clone(),
        what: "the private key",
        reason: e.to_string(),
        help: format!("the file is damaged or truncated; restore it from a backup, or delete {} and {} to create a new {what}", cert_path.display(), key_path.display()),
    })?;
    let cert_public_key = public_key_of(&cert_pem, &cert_path)?;
    if cert_public_key != key.public_key_raw() {
        return Err(PkiError::Mismatch {
            cert: cert_path,
            key: key_path,
        });
    }
    Ok(Some(CaPair {
        cert_pem,
        key_pem,
        cert_path,
        key_path,
    }))
}

/// The DER bytes of a PEM certificate, and the certificate parsed from them — once, with one
/// error that says what to do about a damaged file.
fn parse_certificate<T>(
    pem_text: &str,
    path: &Path,
    read: impl FnOnce(&[u8], &x509_parser::certificate::X509Certificate<'_>) -> T,
) -> Result<T, PkiError> {
    let corrupt = |reason: String| {
        PkiError::Corrupt {
        path: path.to_path_buf(),
        what: "the certificate",
        reason,
        help: "the file is damaged; restore it from a backup, or delete the certificate and its key to create a new one".into(),
    }
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| corrupt(e.to_string()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&pem.contents).map_err(|e| corrupt(e.to_string()))?;
    Ok(read(&pem.contents, &cert))
}

fn public_key_of(cert_pem: &str, path: &Path) -> Result<Vec<u8>, PkiError> {
    parse_certificate(cert_pem, path, |_, cert| {
        cert.public_key().subject_public_key.data.to_vec()
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Issued {
    Created,
    Reused,
    /// The previous one was within EXPIRY_WARNING_DAYS of expiry.
    Renewed,
}

/// This env's intermediate CA (1 year, path length 0), signed by the root; reused while it
/// has more than EXPIRY_WARNING_DAYS left and was issued by this root.
pub fn ensure_intermediate(
    data_dir: &Path,
    env: &str,
    root: &CaPair,
    names: &LocalNames,
    now: OffsetDateTime,
) -> Result<(CaPair, Issued), PkiError> {
    let (cert_path, key_path) = intermediate_paths(data_dir, env);
    let mut issued = Issued::Created;
    if let Some(existing) = load_pair(cert_path.clone(), key_path.clone(), "intermediate CA")? {
        let info = existing.info()?;
        let root_info = root.info()?;
        let fresh = info.not_after - now > Duration::days(EXPIRY_WARNING_DAYS);
        // One an older kindling made (a year long, wider names) is replaced, not kept.
        let current =
            check_made_by_kindling(&existing.cert_pem, &cert_path, "intermediate CA", 0, names)
                .is_ok();
        if fresh && current && info.issuer == root_info.subject {
            return Ok((existing, Issued::Reused));
        }
        issued = Issued::Renewed;
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let owner = user_at_host();
    let params = ca_params(
        &format!("kindling env {env} intermediate CA ({owner})"),
        &owner,
        0,
        INTERMEDIATE_VALIDITY_DAYS,
        names,
        now,
    );
    let cert = params.signed_by(&key, &root.issuer()?)?;
    let pair = CaPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_path,
        key_path,
    };
    pair.store()?;
    Ok((pair, issued))
}

/// What `ca show` and the expiry checks need to know about a certificate.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    pub path: PathBuf,
    pub subject: String,
    pub issuer: String,
    /// SHA-256 of the DER certificate, upper-case hex pairs separated by ':'.
    pub fingerprint_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    /// Permitted name constraints, as `DNS:…` and `IP:…/…`.
    pub permitted: Vec<String>,
}

impl CertInfo {
    pub fn from_pem(pem_text: &str, path: &Path) -> Result<CertInfo, PkiError> {
        parse_certificate(pem_text, path, |der, cert| CertInfo::of(der, cert, path))
    }

    /// What a parsed certificate (`der`, its bytes) says, for the file at `path`.
    fn of(
        der: &[u8],
        cert: &x509_parser::certificate::X509Certificate<'_>,
        path: &Path,
    ) -> CertInfo {
        let fingerprint = Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let (is_ca, path_len) = match cert.basic_constraints() {
            Ok(Some(bc)) => (bc.value.ca, bc.value.path_len_constraint),
            _ => (false, None),
        };
        let mut permitted = Vec::new();
        if let Ok(Some(nc)) = cert.name_constraints() {
            for subtree in nc.value.permitted_subtrees.iter().flatten() {
                use x509_parser::extensions::GeneralName;
                permitted.push(match &subtree.base {
                    GeneralName::DNSName(d) => format!("DNS:{d}"),
                    GeneralName::IPAddress(bytes) => ip_constraint(bytes),
                    GeneralName::RFC822Name(e) => format!("email:{e}"),
                    GeneralName::URI(u) => format!("URI:{u}"),
                    other => format!("{other:?}"),
                });
            }
        }
        let timestamp = |t: x509_parser::time::ASN1Time| t.to_datetime();
        CertInfo {
            path: path.to_path_buf(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            fingerprint_sha256: fingerprint,
            not_before: timestamp(cert.validity().not_before),
            not_after: timestamp(cert.validity().not_after),
            is_ca,
            path_len,
            permitted,
        }
    }

    /// A short, file-name-safe identifier: the first 8 hex digits of the fingerprint.
    pub fn short_id(&self) -> String {
        self.fingerprint_sha256.replace(':', "")[..8].to_lowercase()
    }
}

/// Refuses a CA certificate whose constraints differ from what kindling generates for `names`
/// (a root planted in the data dir, or one an older kindling made with wider names): CA with
/// this path length, only certificate and CRL signing, TLS usages only, and exactly these
/// permitted names, critical, nothing excluded.
pub fn check_made_by_kindling(
    cert_pem: &str,
    path: &Path,
    what: &'static str,
    path_len: u32,
    names: &LocalNames,
) -> Result<(), PkiError> {
    let reason = parse_certificate(cert_pem, path, |der, cert| {
        let info = CertInfo::of(der, cert, path);
        if !info.is_ca || info.path_len != Some(path_len) {
            return Some(format!(
                "its basic constraints are CA={} pathlen={:?}, not CA pathlen={path_len}",
                info.is_ca, info.path_len
            ));
        }
        match cert.key_usage() {
            Ok(Some(ku)) if ku.critical && ku.value.flags == (1 << 5) | (1 << 6) => {}
            _ => return Some("its key usage is not exactly certificate and CRL signing".into()),
        }
        match cert.extended_key_usage() {
            Ok(Some(eku))
                if eku.value.server_auth
                    && eku.value.client_auth
                    && !eku.value.any
                    && !eku.value.code_signing
                    && !eku.value.email_protection
                    && !eku.value.time_stamping
                    && !eku.value.ocsp_signing
                    && eku.value.other.is_empty() => {}
            _ => return Some("its extended key usage is not TLS server and client only".into()),
        }
        match cert.name_constraints() {
            Ok(Some(nc)) if nc.critical && nc.value.excluded_subtrees.is_none() => {}
            _ => return Some("it has no critical name constraints of kindling's form".into()),
        }
        let expected = names.permitted();
        if info.permitted != expected {
            return Some(format!(
                "it may sign for {}, not exactly {}{}",
                info.permitted.join(", "),
                expected.join(", "),
                if std::env::var_os(CA_NAMES_VAR).is_none() {
                    format!(" (names beyond localhost are opted into with {CA_NAMES_VAR})")
                } else {
                    String::new()
                }
            ));
        }
        None
    })?;
    match reason {
        Some(reason) => Err(PkiError::Foreign {
            path: path.to_path_buf(),
            what,
            reason,
        }),
        None => Ok(()),
    }
}

/// An IP name constraint is address followed by mask (RFC 5280 4.2.1.10).
fn ip_constraint(bytes: &[u8]) -> String {
    let half = bytes.len() / 2;
    let (addr, mask) = bytes.split_at(half);
    let prefix: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let addr = match half {
        4 => IpAddr::from(<[u8; 4]>::try_from(addr).unwrap_or_default()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(addr).unwrap_or_default()).to_string(),
        _ => format!("{addr:?}"),
    };
    format!("IP:{addr}/{prefix}")
}

/// Warnings for certificates that expire within EXPIRY_WARNING_DAYS of `now` (or already have).
pub fn expiry_warnings(now: OffsetDateTime, certs: &[(&str, &CertInfo)]) -> Vec<String> {
    certs
        .iter()
        .filter_map(|(label, info)| {
            let left = info.not_after - now;
            if left <= Duration::ZERO {
                Some(format!(
                    "{label} expired on {} ({})",
                    info.not_after.date(),
                    info.path.display()
                ))
            } else if left <= Duration::days(EXPIRY_WARNING_DAYS) {
                Some(format!(
                    "{label} expires in {} days, on {} ({})",
                    left.whole_days(),
                    info.not_after.date(),
                    info.path.display()
                ))
            } else {
                None
            }
        })
        .collect()
}

/// Where the env's CA Secret goes on a cluster kindling made (namespace, name): the
/// namespace of the stamp's cert-manager, whose ClusterIssuers read their Secrets there. On
/// a cluster with its own cert-manager the namespace is that one's
/// (`crate::cluster::cert_manager`).
pub const CA_SECRET: (&str, &str) = ("cert-manager", "root-ca-secret");

/// The Secret cert-manager's `kindling-ca` ClusterIssuer reads: the env's intermediate (chain
/// up to the root) and its key, in `namespace` (cert-manager's cluster-resource namespace,
/// [`CA_SECRET`]'s unless the cluster has its own). The root key never leaves the host.
pub fn root_ca_secret(intermediate: &CaPair, root: &CaPair, namespace: &str) -> serde_json::Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let chain = format!(
        "{}{}",
        ensure_newline(&intermediate.cert_pem),
        ensure_newline(&root.cert_pem)
    );
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": CA_SECRET.1,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kindling"},
        },
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": b64(&chain),
            "tls.key": b64(&intermediate.key_pem),
            "ca.crt": b64(&root.cert_pem),
        },
    })
}

fn ensure_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}
