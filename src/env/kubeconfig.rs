//! `env kubeconfig`: where the env's standalone kubeconfig is.

use std::path::PathBuf;

use super::open::load;
use super::{EnvError, Settings};

/// The path of the env's kubeconfig (0600, one context), for `KUBECONFIG=$(…)`.
pub fn kubeconfig(settings: &Settings, name: &str) -> Result<PathBuf, EnvError> {
    let state = load(settings, name)?;
    state
        .cluster
        .map(|c| c.kubeconfig)
        .ok_or_else(|| EnvError::Preflight(format!("env {name} has no cluster yet")))
}
