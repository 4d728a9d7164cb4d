//! Rendering a resolved cluster into the config kind or k3d is handed (pure functions).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::ResolvedCluster;
use crate::registry::k3s_registries_yaml;

/// Every host port kindling publishes binds loopback only.
pub const LISTEN_ADDRESS: &str = "127.0.0.1";

/// containerd reads per-registry `hosts.toml` files only with `config_path` set; kindling
/// writes the files into the nodes after creation.
const CONTAINERD_CONFIG_PATH_PATCH: &str = "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindCluster {
    kind: &'static str,
    api_version: &'static str,
    name: String,
    networking: KindNetworking,
    nodes: Vec<KindNode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    containerd_config_patches: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindNetworking {
    api_server_address: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindNode {
    role: &'static str,
    image: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_port_mappings: Vec<KindPortMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_mounts: Vec<KindMount>,
}

/// kind.x-k8s.io/v1alpha4 `Mount` (kubernetes-sigs/kind v0.33.0 pkg/apis/config/v1alpha4/
/// types.go), which kind passes to `docker run` as `--volume=HOST:CONTAINER[:ro]`
/// (pkg/cluster/internal/providers/docker/provision.go generateMountBindings).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindMount {
    host_path: String,
    container_path: String,
    read_only: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindPortMapping {
    container_port: u16,
    host_port: u16,
    listen_address: &'static str,
    protocol: &'static str,
}

/// kind `Cluster` (kind.x-k8s.io/v1alpha4). Ingress ports land on the first control plane,
/// which carries `ingress-ready=true` so the ingress controller (Traefik, hostPorts) schedules there.
pub fn render_kind(c: &ResolvedCluster) -> Value {
    // The network's root CAs, in every node (each node's containerd pulls for itself), and
    // the stamp's storage, in every node too: a pod on any node finds its volume's data.
    let mounts = || -> Vec<KindMount> {
        let roots = c.extra_ca.iter().map(|path| KindMount {
            host_path: path.display().to_string(),
            container_path: crate::pki::extra_ca::CONTAINER_PATH.to_string(),
            read_only: true,
        });
        let storage = c.storage.iter().map(|m| KindMount {
            host_path: m.host_path.display().to_string(),
            container_path: m.node_path.clone(),
            read_only: false,
        });
        roots.chain(storage).collect()
    };
    let mut nodes = Vec::new();
    for i in 0..c.control_planes {
        let first = i == 0;
        let mut mappings = Vec::new();
        if first {
            mappings.push(port(80, c.http_port));
            mappings.push(port(443, c.https_port));
            mappings.extend(
                c.extra_ports
                    .iter()
                    .map(|m| port(m.container_port, m.host_port)),
            );
        }
        nodes.push(KindNode {
            role: "control-plane",
            image: c.image.clone(),
            labels: if first {
                BTreeMap::from([("ingress-ready".to_string(), "true".to_string())])
            } else {
                BTreeMap::new()
            },
            extra_port_mappings: mappings,
            extra_mounts: mounts(),
        });
    }
    for _ in 0..c.workers {
        nodes.push(KindNode {
            role: "worker",
            image: c.image.clone(),
            labels: BTreeMap::new(),
            extra_port_mappings: Vec::new(),
            extra_mounts: mounts(),
        });
    }
    let patches = if c.mirrors.is_empty() {
        Vec::new()
    } else {
        vec![CONTAINERD_CONFIG_PATH_PATCH.to_string()]
    };
    to_value(&KindCluster {
        kind: "Cluster",
        api_version: "kind.x-k8s.io/v1alpha4",
        name: c.name.clone(),
        networking: KindNetworking {
            api_server_address: LISTEN_ADDRESS,
        },
        nodes,
        containerd_config_patches: patches,
    })
}

fn port(container_port: u16, host_port: u16) -> KindPortMapping {
    KindPortMapping {
        container_port,
        host_port,
        listen_address: LISTEN_ADDRESS,
        protocol: "TCP",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct K3dSimple {
    api_version: &'static str,
    kind: &'static str,
    metadata: K3dMetadata,
    servers: u8,
    agents: u8,
    image: String,
    #[serde(rename = "kubeAPI")]
    kube_api: K3dKubeApi,
    ports: Vec<K3dPort>,
    /// The user's proxy for every node (k3d passes nothing on by itself): k3d.io/v1alpha5
    /// `env: [{envVar, nodeFilters}]` (k3d-io/k3d v5.9.0 pkg/config/v1alpha5/types.go
    /// EnvVarWithNodeFilters).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<K3dEnv>,
    /// k3d.io/v1alpha5 `volumes: [{volume: SRC:DEST[:MODE], nodeFilters}]` (k3d-io/k3d v5.9.0
    /// pkg/config/v1alpha5/types.go VolumeWithNodeFilters): the network's root CAs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<K3dVolume>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registries: Option<K3dRegistries>,
    options: K3dOptions,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct K3dEnv {
    env_var: String,
    node_filters: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct K3dVolume {
    volume: String,
    node_filters: Vec<String>,
}

#[derive(Serialize)]
struct K3dMetadata {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct K3dKubeApi {
    #[serde(rename = "hostIP")]
    host_ip: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct K3dPort {
    port: String,
    node_filters: Vec<String>,
}

#[derive(Serialize)]
struct K3dRegistries {
    config: String,
}

#[derive(Serialize)]
struct K3dOptions {
    k3d: K3dK3dOptions,
    k3s: K3dK3sOptions,
    kubeconfig: K3dKubeconfigOptions,
    runtime: K3dRuntimeOptions,
}

#[derive(Serialize)]
struct K3dK3dOptions {
    wait: bool,
    timeout: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct K3dK3sOptions {
    extra_args: Vec<K3dArg>,
    node_labels: Vec<K3dLabel>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct K3dArg {
    arg: String,
    node_filters: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct K3dLabel {
    label: String,
    node_filters: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct K3dKubeconfigOptions {
    update_default_kubeconfig: bool,
    switch_current_context: bool,
}

#[derive(Serialize)]
struct K3dRuntimeOptions {
    labels: Vec<K3dLabel>,
}

/// k3d `Simple` (k3d.io/v1alpha5). Ingress goes through k3d's load balancer to every node's
/// ports 80/443, where the stamp's Traefik listens (hostPort); k3s's bundled traefik is disabled so it does not
/// take those ports.
pub fn render_k3d(c: &ResolvedCluster, env: &str) -> Value {
    let lb = || vec!["loadbalancer".to_string()];
    let mut ports = vec![
        K3dPort {
            port: format!("{LISTEN_ADDRESS}:{}:80", c.http_port),
            node_filters: lb(),
        },
        K3dPort {
            port: format!("{LISTEN_ADDRESS}:{}:443", c.https_port),
            node_filters: lb(),
        },
    ];
    ports.extend(c.extra_ports.iter().map(|m| K3dPort {
        port: format!("{LISTEN_ADDRESS}:{}:{}", m.host_port, m.container_port),
        node_filters: lb(),
    }));
    let registries = (!c.mirrors.is_empty()).then(|| K3dRegistries {
        config: k3s_registries_yaml(&c.mirrors),
    });
    to_value(&K3dSimple {
        api_version: "k3d.io/v1alpha5",
        kind: "Simple",
        metadata: K3dMetadata {
            name: c.name.clone(),
        },
        servers: c.control_planes,
        agents: c.workers,
        image: c.image.clone(),
        kube_api: K3dKubeApi {
            host_ip: LISTEN_ADDRESS,
        },
        ports,
        env: super::node_proxy_variables(c, env)
            .into_iter()
            .map(|(name, value)| K3dEnv {
                env_var: format!("{name}={value}"),
                node_filters: vec!["server:*".to_string(), "agent:*".to_string()],
            })
            .collect(),
        // Read-write unless `:ro` (k3d-io/k3d v5.9.0 pkg/runtimes/util/volumes.go
        // ReadVolumeMount: SRC:DEST[:OPT]; a SRC path that does not exist is only warned about,
        // so kindling makes the storage directories before the cluster).
        volumes: c
            .extra_ca
            .iter()
            .map(|path| {
                let ca = crate::pki::extra_ca::CONTAINER_PATH;
                format!("{}:{ca}:ro", path.display())
            })
            .chain(
                c.storage
                    .iter()
                    .map(|m| format!("{}:{}", m.host_path.display(), m.node_path)),
            )
            .map(|volume| K3dVolume {
                volume,
                node_filters: vec!["server:*".to_string(), "agent:*".to_string()],
            })
            .collect(),
        registries,
        options: K3dOptions {
            k3d: K3dK3dOptions {
                wait: true,
                timeout: "300s",
            },
            k3s: K3dK3sOptions {
                extra_args: vec![K3dArg {
                    arg: "--disable=traefik".to_string(),
                    node_filters: vec!["server:*".to_string()],
                }],
                node_labels: vec![K3dLabel {
                    label: "ingress-ready=true".to_string(),
                    node_filters: vec!["server:0".to_string()],
                }],
            },
            kubeconfig: K3dKubeconfigOptions {
                update_default_kubeconfig: true,
                switch_current_context: c.switch_context,
            },
            // So `env delete` can sweep k3d's containers by label like everything else.
            runtime: K3dRuntimeOptions {
                labels: vec![K3dLabel {
                    label: format!("{}={env}", crate::ENV_LABEL),
                    node_filters: vec!["all".to_string()],
                }],
            },
        },
    })
}

fn to_value(config: &impl Serialize) -> Value {
    // derive(Serialize) structs with string keys always serialise.
    serde_json::to_value(config).unwrap_or(Value::Null)
}
