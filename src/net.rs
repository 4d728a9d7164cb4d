//! kindling's own HTTPS requests to the internet (release binaries, install manifests, the
//! images `bundle save` copies): Mozilla's roots, as ureq uses by default, plus the network's
//! roots when the user names them, so a TLS-intercepting proxy (`crate::pki::extra_ca`)
//! does not stop kindling itself. ureq never reads the system's trust store here (its
//! default `RootCerts::WebPki`), so without this every download fails behind such a proxy.
//!
//! The roots come from `KINDLING_EXTRA_CA` (files separated by `:`) and from the command's
//! own `--extra-ca` files (`trust_also`, called once before any request).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::pki::PkiError;
use crate::pki::extra_ca::ExtraCa;

static EXTRA_ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();

fn env_files() -> Vec<PathBuf> {
    std::env::var_os("KINDLING_EXTRA_CA")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default()
}

/// Adds `files` (checked as `--extra-ca` files are) to the roots of every later request,
/// with those of `KINDLING_EXTRA_CA`. The first call decides; later ones change nothing.
pub fn trust_also(files: &[PathBuf]) -> Result<(), PkiError> {
    let mut all = env_files();
    all.extend(files.iter().cloned());
    let roots = ExtraCa::load(&all)?.map(|c| c.ders()).unwrap_or_default();
    let _ = EXTRA_ROOTS.set(roots);
    Ok(())
}

/// The network's roots for kindling's own requests (DER).
fn extra_roots() -> &'static [Vec<u8>] {
    EXTRA_ROOTS.get_or_init(|| {
        // A bad KINDLING_EXTRA_CA is reported by `trust_also` where a command calls it;
        // here it only adds nothing.
        ExtraCa::load(&env_files())
            .ok()
            .flatten()
            .map(|c| c.ders())
            .unwrap_or_default()
    })
}

/// ureq's settings for a request to the internet: Mozilla's roots and the network's.
pub fn agent_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    let builder = ureq::Agent::config_builder();
    let extra = extra_roots();
    if extra.is_empty() {
        return builder;
    }
    let certs: Vec<ureq::tls::Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .chain(
            extra
                .iter()
                .map(|der| ureq::tls::Certificate::from_der(der).to_owned()),
        )
        .collect();
    builder.tls_config(
        ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
            .build(),
    )
}
