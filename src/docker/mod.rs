//! Docker, through bollard: networks, containers, volumes, labels, loopback-only ports, exec,
//! health waits, image pulls, and the label sweep that makes `env delete` leave nothing behind.

mod spec;

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
    CACHE_LABEL, ContainerSpec, HealthCheck, PUBLISH_ADDRESS, PublishedPort, VolumeMount,
    allocate_port, cache_labels, create_body, env_labels, port_is_free,
};

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
    #[error("docker: {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: BollardError,
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

/// What a sweep removed, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.volumes.is_empty() && self.networks.is_empty()
    }
}

/// Labelled Docker objects of one env, as found (for `env list` and orphan detection).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EnvObjects {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
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
}

impl DockerClient {
    /// Connects to the local engine (DOCKER_HOST or the default socket), agreeing on an API
    /// version both sides speak, and checks that it answers.
    pub async fn connect() -> Result<DockerClient, DockerError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| DockerError::Unreachable(e.to_string()))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| DockerError::Unreachable(e.to_string()))?;
        docker
            .ping()
            .await
            .map_err(|e| DockerError::Unreachable(e.to_string()))?;
        Ok(DockerClient { docker })
    }

    fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_string(), vec![label.to_string()])])
    }

    pub async fn ensure_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Ensured, DockerError> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        if self.network_exists(name).await? {
            return Ok(Ensured::Existed);
        }
        match self.docker.create_network(request).await {
            Ok(_) => Ok(Ensured::Created),
            // Another kindling process created it in between: same outcome.
            Err(e) if is_conflict(&e) => Ok(Ensured::Existed),
            Err(e) => Err(api(format!("create network {name}"))(e)),
        }
    }

    pub async fn network_exists(&self, name: &str) -> Result<bool, DockerError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let networks = self.networks_with(&filters).await?;
        // The name filter matches substrings; compare exactly.
        Ok(networks.iter().any(|n| n.name.as_deref() == Some(name)))
    }

    async fn containers_with(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, DockerError> {
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(api("list containers"))
    }

    /// What the engine says of itself, for `kindling doctor`.
    pub async fn engine_facts(&self) -> Result<EngineFacts, DockerError> {
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
        self.docker
            .list_networks(Some(options))
            .await
            .map_err(api("list networks"))
    }

    pub async fn remove_network(&self, name: &str) -> Result<bool, DockerError> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("remove network {name}"))(e)),
        }
    }

    /// Attaches a running container to another network (e.g. a shared cache joining an env's
    /// cluster network); already attached is fine.
    pub async fn connect_network(&self, container: &str, network: &str) -> Result<(), DockerError> {
        let request = bollard::models::NetworkConnectRequest {
            container: container.to_string(),
            ..Default::default()
        };
        match self.docker.connect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 403,
                message,
            }) if message.contains("already exists") => Ok(()),
            Err(e) => Err(api(format!("connect {container} to network {network}"))(e)),
        }
    }

    /// Detaches a container from a network; not attached (or gone) is fine.
    pub async fn disconnect_network(
        &self,
        container: &str,
        network: &str,
    ) -> Result<(), DockerError> {
        let request = bollard::models::NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        match self.docker.disconnect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 403 | 404,
                ..
            }) => Ok(()),
            // Older engines answer 500 for a container that is not attached.
            Err(BollardError::DockerResponseServerError { message, .. })
                if message.contains("is not connected") =>
            {
                Ok(())
            }
            Err(e) => Err(api(format!(
                "disconnect {container} from network {network}"
            ))(e)),
        }
    }

    /// Names of the containers carrying `label`.
    pub async fn containers_labelled(&self, label: &str) -> Result<Vec<String>, DockerError> {
        Ok(self.labelled(label).await?.containers)
    }

    pub async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Ensured, DockerError> {
        if self.docker.inspect_volume(name).await.is_ok() {
            return Ok(Ensured::Existed);
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(api(format!("create volume {name}")))?;
        Ok(Ensured::Created)
    }

    /// Creates the container when missing and starts it when not running. An existing
    /// container is reused as it is: its spec is the one from the run that created it.
    pub async fn run_container(&self, spec: &ContainerSpec) -> Result<Ensured, DockerError> {
        let ensured = match self.docker.inspect_container(&spec.name, None).await {
            Ok(_) => Ensured::Existed,
            Err(e) if is_not_found(&e) => {
                let options = CreateContainerOptionsBuilder::default()
                    .name(&spec.name)
                    .build();
                self.docker
                    .create_container(Some(options), create_body(spec))
                    .await
                    .map_err(api(format!("create container {}", spec.name)))?;
                Ensured::Created
            }
            Err(e) => return Err(api(format!("inspect container {}", spec.name))(e)),
        };
        // A container just created is known not to run yet; only a found one needs a look.
        if ensured == Ensured::Created || self.state(&spec.name).await? != "running" {
            self.docker
                .start_container(&spec.name, None)
                .await
                .map_err(api(format!("start container {}", spec.name)))?;
        }
        Ok(ensured)
    }

    /// Container status (`running`, `exited`…), with health appended when it has a check.
    pub async fn state(&self, name: &str) -> Result<String, DockerError> {
        let inspect = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(api(format!("inspect container {name}")))?;
        let state = inspect.state.unwrap_or_default();
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        Ok(status)
    }

    /// The container's IPv4 address on `network`, if it is attached.
    pub async fn container_ip(
        &self,
        name: &str,
        network: &str,
    ) -> Result<Option<String>, DockerError> {
        let inspect = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(api(format!("inspect container {name}")))?;
        Ok(inspect
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty()))
    }

    /// Waits until the container is healthy (with a health check) or has kept running for a
    /// moment (without). A container that exits or turns unhealthy fails at once with its last
    /// log lines.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> Result<(), DockerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut running_since = None;
        loop {
            let inspect = self
                .docker
                .inspect_container(name, None)
                .await
                .map_err(api(format!("inspect container {name}")))?;
            let state = inspect.state.unwrap_or_default();
            let health = state.health.as_ref().and_then(|h| h.status);
            let status = state.status;
            let described = format!(
                "{}{}",
                status.map(|s| s.to_string()).unwrap_or_default(),
                health.map(|h| format!(", {h}")).unwrap_or_default()
            );
            match (status, health) {
                (Some(ContainerStateStatusEnum::RUNNING), Some(HealthStatusEnum::HEALTHY)) => {
                    return Ok(());
                }
                // Without a health check, running once proves little (a process that dies at
                // start is "running" for a moment): it must stay up for a settle window.
                (Some(ContainerStateStatusEnum::RUNNING), None | Some(HealthStatusEnum::NONE)) => {
                    let since = *running_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= SETTLE {
                        return Ok(());
                    }
                }
                (Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD), _)
                | (_, Some(HealthStatusEnum::UNHEALTHY)) => {
                    let exit = state
                        .exit_code
                        .map(|c| format!(", exit code {c}"))
                        .unwrap_or_default();
                    return Err(DockerError::ContainerFailed {
                        name: name.to_string(),
                        state: format!("{described}{exit}"),
                        logs: self.logs_tail(name, LOG_TAIL_LINES).await,
                    });
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DockerError::Timeout {
                    name: name.to_string(),
                    wanted: if health.is_some() {
                        "healthy"
                    } else {
                        "running"
                    },
                    seconds: timeout.as_secs(),
                    state: described,
                    logs: self.logs_tail(name, LOG_TAIL_LINES).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last `lines` lines of a container's output; empty when it has none or is gone.
    pub async fn logs_tail(&self, name: &str, lines: usize) -> String {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(name, Some(options));
        let mut out = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&chunk.to_string());
        }
        out
    }

    /// Runs a command in a container and captures stdout, stderr and the exit code.
    pub async fn exec(&self, container: &str, argv: &[&str]) -> Result<ExecOutput, DockerError> {
        self.exec_as(container, None, argv).await
    }

    /// [`Self::exec`] as a given user of the container (Gitea's CLI refuses to run as root).
    pub async fn exec_as(
        &self,
        container: &str,
        user: Option<&str>,
        argv: &[&str],
    ) -> Result<ExecOutput, DockerError> {
        let created = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    user: user.map(str::to_string),
                    cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(api(format!("exec in {container}")))?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(api(format!("exec in {container}")))?
        {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(api(format!("exec in {container}")))? {
                    bollard::container::LogOutput::StdErr { message } => {
                        stderr.push_str(&String::from_utf8_lossy(&message))
                    }
                    other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
                }
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(api(format!("exec in {container}")))?;
        Ok(ExecOutput {
            exit_code: inspect.exit_code.unwrap_or(-1),
            stdout,
            stderr,
        })
    }

    pub async fn image_exists(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// Pulls an image that is not there yet, reporting progress lines through `progress`.
    pub async fn ensure_image(
        &self,
        image: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Ensured, DockerError> {
        if self.image_exists(image).await {
            return Ok(Ensured::Existed);
        }
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(api(format!("pull {image}")))?;
            if let Some(status) = info.status {
                let id = info.id.map(|i| format!("{i}: ")).unwrap_or_default();
                progress(&format!("{image}: {id}{status}"));
            }
        }
        Ok(Ensured::Created)
    }

    /// Stops a running container (SIGTERM, then SIGKILL after `grace`); a stopped or missing
    /// one is fine. Stopped containers keep their state and start again with `run_container`.
    pub async fn stop_container(&self, name: &str, grace: Duration) -> Result<bool, DockerError> {
        match self.docker.inspect_container(name, None).await {
            Ok(inspect) if inspect.state.as_ref().and_then(|s| s.running) == Some(true) => {}
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(api(format!("inspect container {name}"))(e)),
        }
        let options = StopContainerOptionsBuilder::default()
            .t(grace.as_secs() as i32)
            .build();
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("stop container {name}"))(e)),
        }
    }

    pub async fn remove_container(&self, name: &str) -> Result<bool, DockerError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("remove container {name}"))(e)),
        }
    }

    pub async fn remove_volume(&self, name: &str) -> Result<bool, DockerError> {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("remove volume {name}"))(e)),
        }
    }

    /// Every container, volume and network labelled `label` (`key=value`).
    pub async fn labelled(&self, label: &str) -> Result<EnvObjects, DockerError> {
        let filters = Self::label_filter(label);
        Ok(EnvObjects {
            containers: self
                .containers_with(&filters)
                .await?
                .into_iter()
                .filter_map(container_name)
                .collect(),
            volumes: self
                .volumes_with(&filters)
                .await?
                .into_iter()
                .map(|v| v.name)
                .collect(),
            networks: self
                .networks_with(&filters)
                .await?
                .into_iter()
                .filter_map(|n| n.name)
                .collect(),
        })
    }

    /// Removes every container, then volume, then network labelled with the env (that order:
    /// volumes and networks in use cannot go first). Safe to run twice; shared caches carry no
    /// env label and stay.
    pub async fn sweep(&self, env: &str) -> Result<SweepReport, DockerError> {
        let found = self.labelled(&format!("{ENV_LABEL}={env}")).await?;
        // Within each kind, removals are independent: run them concurrently.
        async fn removed<F: std::future::Future<Output = Result<bool, DockerError>>>(
            names: Vec<String>,
            remove: impl Fn(String) -> F,
        ) -> Result<Vec<String>, DockerError> {
            let results = futures_util::future::join_all(names.iter().cloned().map(remove)).await;
            let mut out = Vec::new();
            for (name, result) in names.into_iter().zip(results) {
                if result? {
                    out.push(name);
                }
            }
            Ok(out)
        }
        // Containers first (volumes and networks in use cannot go); then volumes and networks,
        // which do not depend on each other.
        let containers = removed(found.containers, |c| async move {
            self.remove_container(&c).await
        })
        .await?;
        let (volumes, networks) = tokio::join!(
            removed(
                found.volumes,
                |v| async move { self.remove_volume(&v).await }
            ),
            removed(
                found.networks,
                |n| async move { self.remove_network(&n).await }
            ),
        );
        Ok(SweepReport {
            containers,
            volumes: volumes?,
            networks: networks?,
        })
    }

    /// Env names found on labelled Docker objects, with what each has.
    pub async fn list_envs(&self) -> Result<BTreeMap<String, EnvObjects>, DockerError> {
        let filters = Self::label_filter(ENV_LABEL);
        let mut envs: BTreeMap<String, EnvObjects> = BTreeMap::new();
        for c in self.containers_with(&filters).await? {
            let env = c.labels.as_ref().and_then(|l| l.get(ENV_LABEL)).cloned();
            if let (Some(env), Some(name)) = (env, container_name(c)) {
                envs.entry(env).or_default().containers.push(name);
            }
        }
        for v in self.volumes_with(&filters).await? {
            if let Some(env) = v.labels.get(ENV_LABEL) {
                envs.entry(env.clone())
                    .or_default()
                    .volumes
                    .push(v.name.clone());
            }
        }
        for n in self.networks_with(&filters).await? {
            if let (Some(env), Some(name)) = (
                n.labels.as_ref().and_then(|l| l.get(ENV_LABEL)).cloned(),
                n.name,
            ) {
                envs.entry(env).or_default().networks.push(name);
            }
        }
        Ok(envs)
    }

    /// The host ports a container publishes, as (host ip, host port) per container port.
    pub async fn published_ports(
        &self,
        name: &str,
    ) -> Result<Vec<(u16, String, u16)>, DockerError> {
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
