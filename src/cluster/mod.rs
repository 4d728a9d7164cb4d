//! Clusters: profiles, the configs rendered for kind and k3d, and the provider CLIs behind a
//! narrow trait. kindling drives the real `kind` and `k3d` binaries; it does not reimplement them.

pub mod cert_manager;
pub mod existing;
mod profile;
pub mod provider;
pub mod proxy;
mod render;
pub mod tools;
pub mod user_kubeconfig;

use std::path::PathBuf;

pub use profile::{
    API_VERSION, ClusterProfile, IngressPorts, NODE_IMAGES, PortMapping, ProfileProblem,
    ProfileSpec, Provider, default_profile, load_profile, node_image, validate_profile,
};
pub use render::{LISTEN_ADDRESS, render_k3d, render_kind};

use crate::registry::{Mirror, mirrors};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot read the cluster profile: {reason}\nhelp: pass an existing profile with --profile, or leave it out for the default (clusters/kind.yaml)", path.display())]
    ProfileUnreadable { path: PathBuf, reason: String },
    #[error("{}:{line}:{column}: {message}", file.display())]
    ProfileSyntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cluster profile {} is invalid:\n{}", file.display(), problems.iter().map(|p| format!("  - {}: {}\n    help: {}", p.field, p.message, p.help)).collect::<Vec<_>>().join("\n"))]
    InvalidProfile {
        file: PathBuf,
        problems: Vec<ProfileProblem>,
    },
    #[error("`{command}` failed (exit {code}):\n{stderr_tail}")]
    Command {
        command: String,
        code: String,
        stderr_tail: String,
    },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Tool(String),
}

/// Everything needed to render a provider config: the profile, applied to one env.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedCluster {
    pub name: String,
    pub provider: Provider,
    pub image: String,
    pub control_planes: u8,
    pub workers: u8,
    pub http_port: u16,
    pub https_port: u16,
    pub extra_ports: Vec<PortMapping>,
    pub mirrors: Vec<Mirror>,
    /// Whether the provider makes the new cluster's context the current one (kind always
    /// does; k3d's `kubeconfig.switchCurrentContext`). On by default, as `kind create cluster`.
    pub switch_context: bool,
    /// The user's proxy, passed on to the nodes (`proxy`); none unless the caller sets it
    /// from the environment.
    pub proxy: proxy::ProxySettings,
    /// The env's copy of the network's root CAs (`crate::pki::extra_ca`), mounted read-only
    /// into every node; none unless the env has some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_ca: Option<PathBuf>,
    /// The stamp's storage directories, each mounted read-write into every node; none unless
    /// the stamp declares storage (`crate::env::storage`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<StorageMount>,
}

/// A host directory and where every node sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageMount {
    pub host_path: PathBuf,
    pub node_path: String,
}

/// kind and k3d both get `kindling-NAME`, so envs never collide with the user's own clusters.
pub fn cluster_name(env: &str) -> String {
    format!("kindling-{env}")
}

/// Applies a profile to an env. `ports` are the ingress host ports actually allocated (the
/// profile's, or the next free ones when several envs run side by side); `registry_port` is the
/// host port of the env's local registry when the profile wants one.
pub fn resolve(
    profile: &ClusterProfile,
    env: &str,
    ports: IngressPorts,
    registry_port: Option<u16>,
) -> Result<ResolvedCluster, ClusterError> {
    let spec = &profile.spec;
    // An existing cluster has its nodes already.
    let image = match spec.provider {
        Provider::Existing => "",
        provider => node_image(provider, &spec.kubernetes_version).ok_or_else(|| {
            ClusterError::Tool(format!(
                "no pinned node image for Kubernetes {}",
                spec.kubernetes_version
            ))
        })?,
    };
    let existing = spec.provider == Provider::Existing;
    Ok(ResolvedCluster {
        name: cluster_name(env),
        provider: spec.provider,
        image: image.to_string(),
        control_planes: spec.control_planes,
        workers: spec.workers,
        http_port: ports.http,
        https_port: ports.https,
        extra_ports: spec.extra_port_mappings.clone(),
        mirrors: mirrors(
            env,
            registry_port.filter(|_| spec.registry && !existing),
            spec.image_caches && !existing,
        ),
        switch_context: true,
        proxy: proxy::ProxySettings::default(),
        extra_ca: None,
        storage: Vec::new(),
    })
}

/// The proxy variables for the nodes of `cluster` (env `env`): what must stay direct added to
/// NO_PROXY (k3s's ranges for k3d; kind adds its own).
pub fn node_proxy_variables(cluster: &ResolvedCluster, env: &str) -> Vec<(String, String)> {
    let mut direct = proxy::env_direct_names(env);
    if cluster.provider == Provider::K3d {
        direct.extend(proxy::K3S_RANGES.iter().map(|r| r.to_string()));
    }
    cluster.proxy.variables(&direct)
}

/// Waits until every node of the cluster is Ready, reached through `context` of the env's
/// kubeconfig; the error names the blocking node and condition (or the unreachable API).
pub async fn wait_ready(
    kubeconfig: &std::path::Path,
    context: &str,
    cluster: &ResolvedCluster,
    timeout: std::time::Duration,
) -> Result<(), crate::kube::KubeError> {
    let client = crate::kube::KubeClient::from_kubeconfig(kubeconfig, Some(context)).await?;
    let nodes = usize::from(cluster.control_planes) + usize::from(cluster.workers);
    client.wait_nodes_ready(nodes, timeout).await
}

/// The provider config for a resolved cluster, as YAML text.
pub fn render_config(cluster: &ResolvedCluster, env: &str) -> String {
    let value = match cluster.provider {
        Provider::Kind => render_kind(cluster),
        Provider::K3d => render_k3d(cluster, env),
        // Nothing to configure: the cluster is there.
        Provider::Existing => serde_json::Value::Null,
    };
    serde_yaml_ng::to_string(&value).unwrap_or_default()
}
