//! Docker, through bollard: networks, containers, volumes, labels, loopback-only ports, exec,
//! health waits, image pulls, and the label sweep that makes `env delete` leave nothing behind.

mod containers;
pub mod endpoint;
mod objects;
pub mod remote;
mod spec;
mod sweep;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerStateStatusEnum, HealthStatusEnum, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

pub use spec::{
    BindMount, CACHE_LABEL, ContainerSpec, HealthCheck, PUBLISH_ADDRESS, PublishedPort,
    VolumeMount, allocate_port, cache_labels, create_body, env_labels, port_is_free,
};
pub use spec::{DATA_LABEL, data_dir_id};
pub use sweep::{EnvObjects, SweepReport};

use crate::ENV_LABEL;

/// How long a container without a health check must keep running to count as started.
const SETTLE: Duration = Duration::from_millis(500);

/// Lines of a container's log attached to a "container failed" error.
const LOG_TAIL_LINES: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "the Docker engine does not answer: {0}\nhelp: start Docker (Docker Desktop, or `sudo systemctl start docker`), or set DOCKER_HOST"
    )]
    Unreachable(String),
    #[error("{0}")]
    Endpoint(String),
    #[error("docker build {tag}: {message}")]
    Build { tag: String, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("docker: {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: BollardError,
    },
    #[error(
        "container {name} exists but is not one kindling made for this: {reason}\nhelp: {help}"
    )]
    NotOurs {
        name: String,
        reason: String,
        help: String,
    },
    #[error("container {name} failed ({state}); its last log lines:\n{logs}")]
    ContainerFailed {
        name: String,
        state: String,
        logs: String,
    },
    #[error(
        "container {name} did not become {wanted} within {seconds}s (now {state}); its last log lines:\n{logs}"
    )]
    Timeout {
        name: String,
        wanted: &'static str,
        seconds: u64,
        state: String,
        logs: String,
    },
}

fn api(action: impl Into<String>) -> impl FnOnce(BollardError) -> DockerError {
    let action = action.into();
    move |source| DockerError::Api { action, source }
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn is_conflict(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

/// Whether an ensure-style call made something or found it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ensured {
    Created,
    Existed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// A container's name without Docker's leading `/`.
fn container_name(c: bollard::models::ContainerSummary) -> Option<String> {
    c.names?
        .first()
        .map(|n| n.trim_start_matches('/').to_string())
}

#[derive(Clone)]
pub struct DockerClient {
    docker: Docker,
    /// The engine is Podman's Docker-compatible service, which runs no health checks
    /// without systemd (`wait_ready` runs them itself there).
    podman: bool,
}

/// What the Docker engine reports of itself (`kindling doctor` judges it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineFacts {
    pub version: String,
    pub cpus: i64,
    pub memory_bytes: i64,
    /// "1" or "2".
    pub cgroup_version: String,
    pub root_dir: String,
    /// `linux` or `windows`: where containers run.
    pub os_type: String,
    /// The engine host's OS as it names itself (`Docker Desktop`, `Ubuntu 24.04 LTS`…).
    pub operating_system: String,
    /// The engine is Podman's Docker-compatible service.
    pub podman: bool,
}

impl EngineFacts {
    /// Why hosts on the same network (a workshop's Wi-Fi) can reach this engine's ports
    /// published on 127.0.0.1, or `None`. Docker Engine on Linux before 28.0 routes packets
    /// addressed to a container's loopback-published port from L2 neighbours (moby/moby#45610,
    /// closed by the 28.0 hardening); 28.0 to 28.3.2 still did after a firewalld reload
    /// (CVE-2025-54388, fixed in 28.3.3). Docker Desktop runs the engine in a VM behind its
    /// own port forwarding, and Podman's rootful networking is not Docker's iptables.
    pub fn loopback_exposure(&self) -> Option<String> {
        if self.podman
            || self.os_type != "linux"
            || self.operating_system.contains("Docker Desktop")
        {
            return None;
        }
        let mut parts = self
            .version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        );
        if version < (28, 0, 0) {
            Some(format!(
                "Docker Engine {} lets hosts on the same network reach ports published on 127.0.0.1 (fixed in 28.0): on shared Wi-Fi, others can reach this env's Gitea, registry and ingress",
                self.version
            ))
        } else if version < (28, 3, 3) {
            Some(format!(
                "Docker Engine {} exposes ports published on 127.0.0.1 to the local network after a firewalld reload (CVE-2025-54388, fixed in 28.3.3)",
                self.version
            ))
        } else {
            None
        }
    }
}

impl DockerClient {
    /// Connects to the engine the docker CLI would use (`endpoint::resolve`: DOCKER_HOST, a
    /// CLI context, or the default socket), agreeing on an API version both sides speak, and
    /// checks that it answers.
    pub async fn connect() -> Result<DockerClient, DockerError> {
        let endpoint = endpoint::resolve()?;
        let docker = endpoint::client(&endpoint)?;
        let unreachable = |e: BollardError| {
            DockerError::Unreachable(format!("{} ({}): {e}", endpoint.host, endpoint.source))
        };
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        // Podman names itself among the version's components ("Podman Engine").
        let podman = docker.version().await.is_ok_and(|v| {
            v.components
                .unwrap_or_default()
                .iter()
                .any(|c| c.name.contains("Podman"))
        });
        Ok(DockerClient { docker, podman })
    }

    fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_string(), vec![label.to_string()])])
    }

    async fn containers_with(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, DockerError> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(filters)
            .build();
        crate::ui::call(|| format!("docker: list containers {filters:?}"));
        // Podman lists a container it is stopping as `stopped`, a state Docker's API schema
        // does not have, and the whole list then fails to parse; the state lasts until
        // Podman's clean-up has run, so the list is asked for again a few times.
        let mut attempts = 0;
        loop {
            match self.docker.list_containers(Some(options.clone())).await {
                Err(e) if self.podman && containers::is_podman_stopped(&e) && attempts < 20 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                other => return other.map_err(api("list containers")),
            }
        }
    }

    /// What the engine says of itself, for `kindling doctor`.
    pub async fn engine_facts(&self) -> Result<EngineFacts, DockerError> {
        crate::ui::call(|| "docker: info".to_string());
        let info = self.docker.info().await.map_err(api("docker info"))?;
        Ok(EngineFacts {
            version: info.server_version.unwrap_or_default(),
            cpus: info.ncpu.unwrap_or(0),
            memory_bytes: info.mem_total.unwrap_or(0),
            cgroup_version: info
                .cgroup_version
                .map(|v| {
                    format!("{v:?}")
                        .trim_start_matches('V')
                        .trim_start_matches('_')
                        .to_string()
                })
                .unwrap_or_default(),
            root_dir: info.docker_root_dir.unwrap_or_default(),
            os_type: info.os_type.unwrap_or_default(),
            operating_system: info.operating_system.unwrap_or_default(),
            podman: self.podman,
        })
    }

    /// Host ports published by any container, running or not (with the userland proxy off,
    /// a bind test on the host does not see them).
    pub async fn host_ports_in_use(&self) -> Result<Vec<u16>, DockerError> {
        let mut ports = Vec::new();
        for c in self.containers_with(&HashMap::new()).await? {
            for p in c.ports.unwrap_or_default() {
                ports.extend(p.public_port);
            }
            if let Some(id) = c.id
                && let Ok(inspect) = self.docker.inspect_container(&id, None).await
                && let Some(bindings) = inspect.host_config.and_then(|h| h.port_bindings)
            {
                for binding in bindings.values().flatten().flatten() {
                    if let Some(port) = binding.host_port.as_deref().and_then(|p| p.parse().ok()) {
                        ports.push(port);
                    }
                }
            }
        }
        ports.sort_unstable();
        ports.dedup();
        Ok(ports)
    }

    async fn volumes_with(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<bollard::models::Volume>, DockerError> {
        let options = ListVolumesOptionsBuilder::default()
            .filters(filters)
            .build();
        crate::ui::call(|| format!("docker: list volumes {filters:?}"));
        let listed = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(api("list volumes"))?;
        Ok(listed.volumes.unwrap_or_default())
    }

    async fn networks_with(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<bollard::models::Network>, DockerError> {
        let options = ListNetworksOptionsBuilder::default()
            .filters(filters)
            .build();
        crate::ui::call(|| format!("docker: list networks {filters:?}"));
        self.docker
            .list_networks(Some(options))
            .await
            .map_err(api("list networks"))
    }

    /// Every container (running or not) carrying `label`, with the value of its `role_label`.
    pub async fn containers_with_labels(
        &self,
        label: &str,
        role_label: &str,
    ) -> Result<Vec<(String, String)>, DockerError> {
        let mut found: Vec<(String, String)> = self
            .containers_with(&Self::label_filter(label))
            .await?
            .into_iter()
            .filter_map(|c| {
                let name = c.names?.first()?.trim_start_matches('/').to_string();
                let role = c
                    .labels
                    .and_then(|l| l.get(role_label).cloned())
                    .unwrap_or_default();
                Some((name, role))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// Names of the containers carrying `label`.
    pub async fn containers_labelled(&self, label: &str) -> Result<Vec<String>, DockerError> {
        Ok(self.labelled(label).await?.containers)
    }

    /// The host ports a container publishes, as (host ip, host port) per container port.
    pub async fn published_ports(
        &self,
        name: &str,
    ) -> Result<Vec<(u16, String, u16)>, DockerError> {
        crate::ui::call(|| format!("docker: inspect container {}", name));
        let inspect = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(api(format!("inspect container {name}")))?;
        let mut out = Vec::new();
        let bindings = inspect
            .host_config
            .and_then(|h| h.port_bindings)
            .unwrap_or_default();
        for (port, binds) in bindings {
            let container_port: u16 = port
                .split('/')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            for b in binds.unwrap_or_default() {
                out.push((
                    container_port,
                    b.host_ip.unwrap_or_default(),
                    b.host_port.and_then(|p| p.parse().ok()).unwrap_or(0),
                ));
            }
        }
        out.sort();
        Ok(out)
    }
}
