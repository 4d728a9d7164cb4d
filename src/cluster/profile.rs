//! Cluster profiles (`clusters/*.yaml`): kindling's own small format, and the pinned table that
//! turns a Kubernetes version into node images.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ClusterError;

pub const API_VERSION: &str = "kindling.dev/v1alpha1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Kind,
    K3d,
    /// A cluster kindling did not make (`--provider existing --context NAME`): no Docker
    /// cluster, registry or caches; Gitea runs in the cluster (`crate::cluster::existing`).
    Existing,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Kind => "kind",
            Provider::K3d => "k3d",
            Provider::Existing => "existing",
        }
    }

    /// Whether kindling makes the cluster (and its Docker containers) itself.
    pub fn makes_the_cluster(self) -> bool {
        self != Provider::Existing
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterProfile {
    pub api_version: String,
    pub kind: String,
    pub metadata: ProfileMetadata,
    pub spec: ProfileSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileMetadata {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileSpec {
    pub provider: Provider,
    /// `major.minor`, mapped through [`NODE_IMAGES`].
    pub kubernetes_version: String,
    #[serde(default = "one")]
    pub control_planes: u8,
    #[serde(default)]
    pub workers: u8,
    #[serde(default)]
    pub ingress: IngressPorts,
    #[serde(default)]
    pub registry: bool,
    /// Host port of the local registry (`localhost:PORT`); the next free one when taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_port: Option<u16>,
    #[serde(default)]
    pub image_caches: bool,
    #[serde(default)]
    pub extra_port_mappings: Vec<PortMapping>,
    /// PEM files of the network's root CAs (a TLS-intercepting proxy's), relative to the
    /// profile's directory: the nodes, Gitea, the caches and the engines' chart sources trust
    /// them (`crate::pki::extra_ca`). `--extra-ca` adds more.
    #[serde(default, rename = "extraCA", skip_serializing_if = "Vec::is_empty")]
    pub extra_ca: Vec<std::path::PathBuf>,
    /// The cluster add-ons (`crate::addons`) by name; without the field, a HostK8s stack gets
    /// HostK8s' defaults and a kindling stamp none. `[]` turns them all off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addons: Option<Vec<String>>,
}

fn one() -> u8 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngressPorts {
    pub http: u16,
    pub https: u16,
}

impl Default for IngressPorts {
    fn default() -> Self {
        IngressPorts {
            http: 8080,
            https: 8443,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
}

/// Node images per Kubernetes minor version, from the pins table.
pub use crate::pins::NODE_IMAGES;

pub fn node_image(provider: Provider, kubernetes: &str) -> Option<&'static str> {
    let wanted = kubernetes.trim_start_matches('v');
    NODE_IMAGES
        .iter()
        .find(|n| n.kubernetes == wanted)
        .and_then(|n| match provider {
            Provider::Kind => Some(n.kind.artifact),
            Provider::K3d => Some(n.k3s.artifact),
            Provider::Existing => None,
        })
}

/// The profile used when none is named: `clusters/<provider>.yaml` of the source tree if it
/// exists, else the built-in default for the provider.
pub fn default_profile(provider: Provider) -> ClusterProfile {
    ClusterProfile {
        api_version: API_VERSION.to_string(),
        kind: "ClusterProfile".to_string(),
        metadata: ProfileMetadata {
            name: provider.name().to_string(),
        },
        spec: ProfileSpec {
            provider,
            kubernetes_version: NODE_IMAGES[0].kubernetes.to_string(),
            control_planes: 1,
            workers: 0,
            ingress: IngressPorts::default(),
            // An existing cluster cannot reach a registry or caches on this machine.
            registry: provider.makes_the_cluster(),
            registry_port: None,
            image_caches: provider.makes_the_cluster(),
            extra_port_mappings: Vec::new(),
            extra_ca: Vec::new(),
            addons: None,
        },
    }
}

/// One thing wrong with a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileProblem {
    pub field: &'static str,
    pub message: String,
    pub help: String,
}

pub fn load_profile(path: &Path) -> Result<ClusterProfile, ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|e| ClusterError::ProfileUnreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let profile: ClusterProfile = serde_yaml_ng::from_str(&text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        ClusterError::ProfileSyntax {
            file: path.to_path_buf(),
            line,
            column,
            message: e.to_string(),
        }
    })?;
    let mut profile = profile;
    // The CA files are named relative to the profile, like kind's extraMounts are to the
    // config (kubernetes-sigs/kind v0.33.0 pkg/cluster/internal/providers/docker/provision.go
    // makes relative hostPaths absolute).
    let base = path.parent().unwrap_or(Path::new("."));
    for file in &mut profile.spec.extra_ca {
        if file.is_relative() {
            *file = base.join(&*file);
        }
    }
    let mut problems = validate_profile(&profile);
    for file in &profile.spec.extra_ca {
        if !file.is_file() {
            problems.push(ProfileProblem {
                field: "spec.extraCA",
                message: format!("{} is not a file", file.display()),
                help: "name PEM files of your network's root CAs, relative to the profile".into(),
            });
        }
    }
    if !problems.is_empty() {
        return Err(ClusterError::InvalidProfile {
            file: path.to_path_buf(),
            problems,
        });
    }
    Ok(profile)
}

pub fn validate_profile(p: &ClusterProfile) -> Vec<ProfileProblem> {
    let mut problems = Vec::new();
    let mut problem = |field: &'static str, message: String, help: String| {
        problems.push(ProfileProblem {
            field,
            message,
            help,
        })
    };
    if p.api_version != API_VERSION {
        problem(
            "apiVersion",
            format!("'{}' is not supported", p.api_version),
            format!("use apiVersion: {API_VERSION}"),
        );
    }
    if p.kind != "ClusterProfile" {
        problem(
            "kind",
            format!("'{}' is not a cluster profile", p.kind),
            "use kind: ClusterProfile".into(),
        );
    }
    let s = &p.spec;
    for name in crate::addons::unknown_names(s.addons.as_deref().unwrap_or_default()) {
        problem(
            "spec.addons",
            format!("'{name}' is not an add-on kindling knows"),
            format!("use some of {}", crate::addons::known_names()),
        );
    }
    if node_image(s.provider, &s.kubernetes_version).is_none() {
        let known: Vec<&str> = NODE_IMAGES.iter().map(|n| n.kubernetes).collect();
        problem(
            "spec.kubernetesVersion",
            format!("'{}' has no pinned node image", s.kubernetes_version),
            format!("use one of {}", known.join(", ")),
        );
    }
    if !(1..=3).contains(&s.control_planes) {
        problem(
            "spec.controlPlanes",
            format!("{} is out of range", s.control_planes),
            "use 1 (or 3 for an HA control plane)".into(),
        );
    }
    if s.workers > 10 {
        problem(
            "spec.workers",
            format!("{} workers is more than a laptop runs", s.workers),
            "use at most 10".into(),
        );
    }
    let mut host_ports = vec![s.ingress.http, s.ingress.https];
    host_ports.extend(s.extra_port_mappings.iter().map(|m| m.host_port));
    for (i, port) in host_ports.iter().enumerate() {
        if *port < 1024 {
            problem(
                "spec.ingress / spec.extraPortMappings",
                format!("host port {port} needs root"),
                "use a port of 1024 or more (kindling never needs root to run an env)".into(),
            );
        }
        if host_ports[..i].contains(port) {
            problem(
                "spec.ingress / spec.extraPortMappings",
                format!("host port {port} is used twice"),
                "give every mapping its own host port".into(),
            );
        }
    }
    for (i, m) in s.extra_port_mappings.iter().enumerate() {
        // kind and k3d would both be handed port 0, which no container listens on.
        if m.container_port == 0 {
            problem(
                "spec.extraPortMappings",
                format!("mapping {} has containerPort 0", i + 1),
                "name the port the workload listens on in the node (a NodePort, 30000-32767)"
                    .into(),
            );
        }
    }
    problems
}
