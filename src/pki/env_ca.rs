//! The CA of one env: the machine's root and the env's intermediate, made if missing.

use std::path::Path;
use std::time::Duration;

use super::{CaPair, LocalNames, PkiError, ensure_intermediate, ensure_root};
use crate::lock::FileLock;

/// The machine root CA and `env`'s intermediate, made if missing, under a machine-wide lock:
/// two commands at once (two `env create`s side by side, a create and a restart) must not both
/// make a root CA.
pub fn ensure_env_ca(
    data_dir: &Path,
    env: &str,
    now: time::OffsetDateTime,
) -> Result<(CaPair, CaPair), PkiError> {
    let _ca_lock = FileLock::acquire(
        &data_dir.join("ca.lock"),
        "the root CA",
        "kindling (root CA)",
        Duration::from_secs(30),
    )?;
    let names = LocalNames::configured()?;
    let root = ensure_root(data_dir, &names, now)?;
    let (intermediate, _) = ensure_intermediate(data_dir, env, &root, &names, now)?;
    Ok((root, intermediate))
}

/// `root-ca-secret` for `env` in `namespace`: its intermediate (with the root), for
/// cert-manager to issue from.
pub fn env_ca_secret(
    data_dir: &Path,
    env: &str,
    namespace: &str,
) -> Result<serde_json::Value, PkiError> {
    let (root, intermediate) = ensure_env_ca(data_dir, env, time::OffsetDateTime::now_utc())?;
    Ok(super::root_ca_secret(&intermediate, &root, namespace))
}
