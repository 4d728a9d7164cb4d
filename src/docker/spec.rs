//! What a kindling container looks like, as data: names, labels, loopback-only ports, volumes,
//! restart policy, health check. Turned into Docker's create body by a pure function.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountType,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use crate::ENV_LABEL;

/// Shared image caches carry this label instead of an env's, and survive `env delete`.
pub const CACHE_LABEL: &str = "dev.kindling.cache";

/// Every published port binds here: nothing kindling runs is reachable from the network.
pub const PUBLISH_ADDRESS: &str = "127.0.0.1";

/// Which data directory made an object: envs of other data directories (another CI job's,
/// another user's) are never this one's orphans, so `env list` does not show them and
/// `env delete --all` does not touch them.
pub const DATA_LABEL: &str = "dev.kindling.data";

/// A data directory as its objects' label names it: a short hash of its path.
pub fn data_dir_id(data_dir: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    Sha256::digest(path.to_string_lossy().as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The labels of everything an env creates in Docker: its name, and the data directory
/// (`KINDLING_DATA_DIR`) whose state it belongs to.
pub fn env_labels(env: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ENV_LABEL.to_string(), env.to_string()),
        (
            DATA_LABEL.to_string(),
            data_dir_id(&crate::paths::data_dir()),
        ),
    ])
}

pub fn cache_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(CACHE_LABEL.to_string(), "true".to_string())])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    pub container_port: u16,
    pub host_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    pub path: String,
}

/// A host file or directory mounted into the container (the network's root CAs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: std::path::PathBuf,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Run inside the container; exit 0 means healthy.
    pub command: Vec<String>,
    pub interval_seconds: u64,
    pub retries: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Labels set when the container is made that say how, not whose: they are not checked
    /// when an existing container is taken as kindling's (a cache's outbound settings).
    pub creation_labels: BTreeMap<String, String>,
    pub ports: Vec<PublishedPort>,
    pub volumes: Vec<VolumeMount>,
    pub binds: Vec<BindMount>,
    pub network: Option<String>,
    /// Extra DNS names on the network (the container name always resolves).
    pub network_aliases: Vec<String>,
    /// Restart unless stopped: envs come back with the Docker engine.
    pub restart: bool,
    pub health: Option<HealthCheck>,
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Docker's create body for a spec.
pub fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let port_key = |p: &PublishedPort| format!("{}/tcp", p.container_port);
    let exposed: Vec<String> = spec.ports.iter().map(port_key).collect();
    let bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
        .ports
        .iter()
        .map(|p| {
            (
                port_key(p),
                Some(vec![PortBinding {
                    host_ip: Some(PUBLISH_ADDRESS.to_string()),
                    host_port: Some(p.host_port.to_string()),
                }]),
            )
        })
        .collect();
    let mounts = spec
        .volumes
        .iter()
        .map(|v| Mount {
            target: Some(v.path.clone()),
            source: Some(v.volume.clone()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        })
        .chain(spec.binds.iter().map(|b| Mount {
            target: Some(b.target.clone()),
            source: Some(b.source.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(b.read_only),
            ..Default::default()
        }))
        .collect();
    let networking = spec.network.as_ref().map(|network| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network.clone(),
            EndpointSettings {
                aliases: (!spec.network_aliases.is_empty()).then(|| spec.network_aliases.clone()),
                ..Default::default()
            },
        )])),
    });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        labels: Some(
            spec.labels
                .iter()
                .chain(&spec.creation_labels)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck: spec.health.as_ref().map(|h| HealthConfig {
            test: Some(
                std::iter::once("CMD".to_string())
                    .chain(h.command.iter().cloned())
                    .collect(),
            ),
            interval: Some(h.interval_seconds as i64 * NANOS_PER_SECOND),
            retries: Some(h.retries),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            mounts: Some(mounts),
            network_mode: spec.network.clone(),
            restart_policy: Some(RestartPolicy {
                name: Some(if spec.restart {
                    RestartPolicyNameEnum::UNLESS_STOPPED
                } else {
                    RestartPolicyNameEnum::NO
                }),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        networking_config: networking,
        ..Default::default()
    }
}

/// The wanted port when it is free, else the next free one above it (envs side by side).
/// `is_free` is the probe: a bind on loopback, plus ports other envs have recorded.
pub fn allocate_port(wanted: u16, is_free: impl Fn(u16) -> bool) -> Option<u16> {
    (wanted..=u16::MAX).take(1000).find(|&p| is_free(p))
}

/// Whether a port can be bound on loopback right now.
pub fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind((PUBLISH_ADDRESS, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_create_body_binds_published_ports_to_loopback_and_labels_the_env() {
        let spec = ContainerSpec {
            name: "kindling-dev-gitea".into(),
            image: crate::pins::GITEA.artifact.into(),
            labels: env_labels("dev"),
            ports: vec![PublishedPort {
                container_port: 3000,
                host_port: 3001,
            }],
            volumes: vec![VolumeMount {
                volume: "kindling-dev-gitea".into(),
                path: "/data".into(),
            }],
            network: Some("kind".into()),
            restart: true,
            ..Default::default()
        };
        let body = create_body(&spec);
        let host = body.host_config.unwrap();
        let binding = &host.port_bindings.unwrap()["3000/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some("3001"));
        assert_eq!(body.labels.unwrap()["dev.kindling.env"], "dev");
        assert_eq!(
            host.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        assert_eq!(host.network_mode.as_deref(), Some("kind"));
        assert_eq!(
            host.mounts.unwrap()[0].source.as_deref(),
            Some("kindling-dev-gitea")
        );
    }

    #[test]
    fn docker_allocate_port_takes_the_next_free_one() {
        assert_eq!(allocate_port(8443, |_| true), Some(8443));
        assert_eq!(allocate_port(8443, |p| p > 8445), Some(8446));
        assert_eq!(allocate_port(65535, |_| false), None);
    }
}
