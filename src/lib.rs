//! kindling: a complete, disposable local GitOps environment (cluster, Gitea, Flux or Argo CD,
//! a local CA, a stamp) in one command, and nothing left behind after `env delete`.
//!
//! The binary (`src/main.rs`) is a thin shell over this library. Modules are split by concept;
//! pure logic (stamps, DAG, rendering) never performs I/O beyond reading the stamp's own files.

pub mod paths;
pub mod pki;
pub mod stamp;
