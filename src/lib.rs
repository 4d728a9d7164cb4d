//! kindling: a complete, disposable local GitOps environment (cluster, Gitea, Flux or Argo CD,
//! a local CA, a stamp) in one command, and nothing left behind after `env delete`.
//!
//! The binary (`src/main.rs`) is a thin shell over this library. Modules are split by concept;
//! pure logic (stamps, DAG, rendering) never performs I/O beyond reading the stamp's own files.

pub mod addons;
pub mod bundle;
pub mod cluster;
pub mod docker;
pub mod doctor;
pub mod engine;
pub mod env;
pub mod gitea;
pub mod kube;
pub mod lock;
pub mod net;
pub mod paths;
pub mod pins;
pub mod pki;
pub mod registry;
pub mod stamp;
pub mod ui;

/// The Docker label every object kindling creates for an env carries; `env delete` sweeps by it.
pub const ENV_LABEL: &str = "dev.kindling.env";
