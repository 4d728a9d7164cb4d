//! Containers: run one from a spec (idempotent), wait until it is ready, exec in it, read its
//! state, address and logs, stop and remove it.

// One type's methods, split by what they work on: the parent module's names are theirs.
use super::*;

impl DockerClient {
    /// Creates the container when missing and starts it when not running. An existing
    /// container is reused as it is (its spec is the one from the run that created it), but
    /// only when kindling made it for this: every label of the spec (the env and the data dir
    /// that owns it, or the cache set), and for a shared cache its image too. A container of
    /// that name planted by someone else, or another data dir's (a second CI job on the same
    /// engine), is an error, never adopted.
    pub async fn run_container(&self, spec: &ContainerSpec) -> Result<Ensured, DockerError> {
        crate::ui::call(|| format!("docker: inspect container {}", spec.name));
        let ensured = match self.docker.inspect_container(&spec.name, None).await {
            Ok(found) => {
                // The same image under another name (the digest-pinned one and the name
                // `docker load` gave it, `crate::bundle::offline_image`) is the same image.
                let same_image = match &found.image {
                    Some(id) => self.image_id(&spec.image).await.as_ref() == Some(id),
                    None => false,
                };
                let config = found.config.unwrap_or_default();
                if let Some((reason, help)) = not_ours(spec, &config, same_image) {
                    return Err(DockerError::NotOurs {
                        name: spec.name.clone(),
                        reason,
                        help,
                    });
                }
                Ensured::Existed
            }
            Err(e) if is_not_found(&e) => {
                let options = CreateContainerOptionsBuilder::default()
                    .name(&spec.name)
                    .build();
                crate::ui::call(|| format!("docker: create container {}", spec.name));
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
            crate::ui::call(|| format!("docker: start container {}", spec.name));
            self.docker
                .start_container(&spec.name, None)
                .await
                .map_err(api(format!("start container {}", spec.name)))?;
        }
        Ok(ensured)
    }
    /// Removes the container `name` when it carries every one of `labels` (kindling made it,
    /// for this env and data dir); one that does not is left alone: `Ok(false)`, as for a
    /// missing one.
    pub async fn remove_container_if_labelled(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, DockerError> {
        crate::ui::call(|| format!("docker: inspect container {name}"));
        let found = match self.docker.inspect_container(name, None).await {
            Ok(found) => found,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(api(format!("inspect container {name}"))(e)),
        };
        let have = found.config.and_then(|c| c.labels).unwrap_or_default();
        if first_label_mismatch(labels, &have).is_some() {
            return Ok(false);
        }
        self.remove_container(name).await
    }
    /// The value of a container's label (empty when it has none), or `None` when there is no
    /// such container.
    pub async fn container_label(
        &self,
        name: &str,
        label: &str,
    ) -> Result<Option<String>, DockerError> {
        crate::ui::call(|| format!("docker: inspect container {name}"));
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(Some(
                c.config
                    .and_then(|c| c.labels)
                    .and_then(|mut l| l.remove(label))
                    .unwrap_or_default(),
            )),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect container {name}"))(e)),
        }
    }

    /// The network a container was created on (its network mode), or `None` when there is
    /// no such container.
    pub async fn network_mode(&self, name: &str) -> Result<Option<String>, DockerError> {
        crate::ui::call(|| format!("docker: inspect container {}", name));
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(c.host_config.and_then(|h| h.network_mode)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect container {name}"))(e)),
        }
    }

    /// Container status (`running`, `exited`…), with health appended when it has a check.
    pub async fn state(&self, name: &str) -> Result<String, DockerError> {
        crate::ui::call(|| format!("docker: inspect container {}", name));
        let inspect = match self.docker.inspect_container(name, None).await {
            Ok(inspect) => inspect,
            Err(e) if is_podman_stopped(&e) => return Ok("stopped".into()),
            Err(e) => return Err(api(format!("inspect container {name}"))(e)),
        };
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
        crate::ui::call(|| format!("docker: inspect container {}", name));
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
        let mut last_check = None;
        let mut stopped_looks = 0;
        loop {
            crate::ui::call(|| format!("docker: inspect container {}", name));
            let inspect = match self.docker.inspect_container(name, None).await {
                Ok(inspect) => inspect,
                // Podman (4.3) says `stopped` for a container that has just exited, before its
                // cleanup makes it `exited` with an exit code; a state Docker's API schema (and
                // so bollard) does not know. Look again for a moment, then call it failed.
                Err(e) if is_podman_stopped(&e) && stopped_looks < 10 => {
                    stopped_looks += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) if is_podman_stopped(&e) => {
                    return Err(DockerError::ContainerFailed {
                        name: name.to_string(),
                        state: "stopped".into(),
                        logs: self.logs_tail(name, LOG_TAIL_LINES).await,
                    });
                }
                Err(e) => return Err(api(format!("inspect container {name}"))(e)),
            };
            let state = inspect.state.unwrap_or_default();
            // Podman (4.3, its Docker-compatible API) reports an empty health status for a
            // container without a health check, where Docker reports none: the same thing.
            let mut health = state
                .health
                .as_ref()
                .and_then(|h| h.status)
                .filter(|h| *h != HealthStatusEnum::EMPTY);
            // Podman runs health checks from systemd timers; without systemd (a container, a CI
            // runner) none ever runs and the status stays `starting`. There kindling runs the
            // container's own check, as the engine would, once a second.
            if self.podman
                && state.status == Some(ContainerStateStatusEnum::RUNNING)
                && health == Some(HealthStatusEnum::STARTING)
                && last_check
                    .is_none_or(|t: tokio::time::Instant| t.elapsed() >= Duration::from_secs(1))
                && let Some(argv) = health_command(&inspect.config)
            {
                last_check = Some(tokio::time::Instant::now());
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                if self.exec(name, &argv).await.is_ok_and(|o| o.exit_code == 0) {
                    health = Some(HealthStatusEnum::HEALTHY);
                }
            }
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
        crate::ui::call(|| format!("docker: logs {}", name));
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
        // The command's first words only: later arguments may carry a secret (a password, a
        // script with credentials).
        crate::ui::call(|| {
            let shown = argv.len().min(4);
            format!(
                "docker: exec in {container}: {}{}",
                argv[..shown].join(" "),
                if argv.len() > shown {
                    format!(" … ({} more arguments)", argv.len() - shown)
                } else {
                    String::new()
                }
            )
        });
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
    /// Stops a running container (SIGTERM, then SIGKILL after `grace`); a stopped or missing
    /// one is fine. Stopped containers keep their state and start again with `run_container`.
    pub async fn stop_container(&self, name: &str, grace: Duration) -> Result<bool, DockerError> {
        crate::ui::call(|| format!("docker: inspect container {}", name));
        match self.docker.inspect_container(name, None).await {
            Ok(inspect) if inspect.state.as_ref().and_then(|s| s.running) == Some(true) => {}
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(api(format!("inspect container {name}"))(e)),
        }
        let options = StopContainerOptionsBuilder::default()
            .t(grace.as_secs() as i32)
            .build();
        crate::ui::call(|| format!("docker: stop container {}", name));
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("stop container {name}"))(e)),
        }
    }
    /// Starts a stopped container; `false` when it was running already or is not there.
    pub async fn start_container(&self, name: &str) -> Result<bool, DockerError> {
        crate::ui::call(|| format!("docker: inspect container {}", name));
        match self.docker.inspect_container(name, None).await {
            Ok(inspect) if inspect.state.as_ref().and_then(|s| s.running) == Some(true) => {
                return Ok(false);
            }
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(api(format!("inspect container {name}"))(e)),
        }
        crate::ui::call(|| format!("docker: start container {}", name));
        match self
            .docker
            .start_container(
                name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("start container {name}"))(e)),
        }
    }
    pub async fn remove_container(&self, name: &str) -> Result<bool, DockerError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        crate::ui::call(|| format!("docker: remove container {}", name));
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(format!("remove container {name}"))(e)),
        }
    }
}

/// The argv of a container's health check (`CMD` form, or `CMD-SHELL` through `/bin/sh -c`).
fn health_command(config: &Option<bollard::models::ContainerConfig>) -> Option<Vec<String>> {
    let test = config.as_ref()?.healthcheck.as_ref()?.test.clone()?;
    match test.first().map(String::as_str) {
        Some("CMD") => Some(test[1..].to_vec()),
        Some("CMD-SHELL") => Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]),
        _ => None,
    }
}

/// Podman's `stopped` state, which Docker's API schema does not have.
pub(super) fn is_podman_stopped(e: &BollardError) -> bool {
    matches!(e, BollardError::JsonDataError { message, .. } if message.contains("unknown variant `stopped`"))
}

/// The first of `wanted` labels that `has` lacks or holds with another value: its key, the
/// wanted value, and what `has` holds instead.
fn first_label_mismatch<'a>(
    wanted: &'a BTreeMap<String, String>,
    has: &'a HashMap<String, String>,
) -> Option<(&'a String, &'a String, Option<&'a String>)> {
    wanted
        .iter()
        .find(|(key, value)| has.get(*key) != Some(*value))
        .map(|(key, value)| (key, value, has.get(key)))
}

/// Why an existing container is not the one `spec` describes as kindling's, with the way out;
/// `None` when it is.
fn not_ours(
    spec: &ContainerSpec,
    found: &bollard::models::ContainerConfig,
    same_image: bool,
) -> Option<(String, String)> {
    let labels = found.labels.clone().unwrap_or_default();
    if let Some((key, wanted, has)) = first_label_mismatch(&spec.labels, &labels) {
        match has {
            Some(value) if key == super::DATA_LABEL => {
                return Some((
                    format!(
                        "it belongs to another kindling data dir ({key}={value}, this one is {wanted}): another user, another HOME or another CI job on the same engine"
                    ),
                    "use another env name, or the data dir that made it (KINDLING_DATA_DIR); kindling never takes over what another data dir made".to_string(),
                ));
            }
            other => {
                return Some((
                    format!(
                        "its label {key} is {}, not {wanted}",
                        other
                            .map(|v| format!("'{v}'"))
                            .unwrap_or_else(|| "missing".into())
                    ),
                    format!(
                        "it was not made by kindling: remove it yourself if it is not needed (`docker rm -f {}`), or use another name",
                        spec.name
                    ),
                ));
            }
        }
    }
    // A shared cache serves every env's pulls: its image must be the pinned one too.
    if spec.labels.contains_key(super::CACHE_LABEL)
        && found.image.as_deref() != Some(spec.image.as_str())
        && !same_image
    {
        return Some((
            format!(
                "it runs {}, not the pinned {}",
                found.image.as_deref().unwrap_or("an unknown image"),
                spec.image
            ),
            "`kindling cache prune` removes the caches; the next env makes them again".to_string(),
        ));
    }
    None
}
