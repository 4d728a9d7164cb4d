//! The kind and k3d CLIs behind one narrow trait. Output is captured; a failure carries the
//! command line and the tail of its stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{ClusterError, Provider};

/// What the env flow needs from a cluster provider.
pub trait ClusterProvider {
    fn provider(&self) -> Provider;
    fn exists(&self, name: &str) -> Result<bool, ClusterError>;
    /// Creates the cluster from a rendered config; merges its context into the user's
    /// kubeconfig as the provider itself does. `env` goes to the provider's process (kind
    /// passes the proxy variables it finds there on to its nodes).
    fn create(
        &self,
        name: &str,
        config_yaml: &str,
        env: &[(String, String)],
    ) -> Result<(), ClusterError>;
    /// Deletes the cluster (and its kubeconfig context); succeeds when there is none.
    fn delete(&self, name: &str) -> Result<(), ClusterError>;
    /// A standalone kubeconfig for the cluster (written to the env's data dir for CI).
    fn kubeconfig(&self, name: &str) -> Result<String, ClusterError>;
    /// The node containers, for writing registry config into them.
    fn nodes(&self, name: &str) -> Result<Vec<String>, ClusterError>;
    /// Imports the images of `archive` (Docker's archive format) into the containerd of every
    /// node that runs pods, as the provider's own image loading does.
    fn import_images(&self, name: &str, archive: &Path) -> Result<(), ClusterError>;
    /// The Docker network the nodes are on; Gitea and the registry join it.
    fn docker_network(&self, name: &str) -> String;
    /// The kubeconfig context the provider creates.
    fn context(&self, name: &str) -> String;
}

pub fn provider_for(
    provider: Provider,
    binary: PathBuf,
    work_dir: PathBuf,
) -> Box<dyn ClusterProvider + Send + Sync> {
    match provider {
        Provider::Kind => Box::new(KindCli { binary, work_dir }),
        Provider::K3d => Box::new(K3dCli { binary, work_dir }),
        Provider::Existing => Box::new(NoCli),
    }
}

/// An existing cluster: no CLI makes, lists or removes it.
struct NoCli;

impl NoCli {
    fn refuse<T>(&self) -> Result<T, ClusterError> {
        Err(ClusterError::Tool(
            "an existing cluster has no provider CLI: kindling neither makes nor removes it".into(),
        ))
    }
}

impl ClusterProvider for NoCli {
    fn provider(&self) -> Provider {
        Provider::Existing
    }
    fn exists(&self, _name: &str) -> Result<bool, ClusterError> {
        self.refuse()
    }
    fn create(&self, _: &str, _: &str, _: &[(String, String)]) -> Result<(), ClusterError> {
        self.refuse()
    }
    fn delete(&self, _name: &str) -> Result<(), ClusterError> {
        self.refuse()
    }
    fn kubeconfig(&self, _name: &str) -> Result<String, ClusterError> {
        self.refuse()
    }
    fn nodes(&self, _name: &str) -> Result<Vec<String>, ClusterError> {
        self.refuse()
    }
    fn import_images(&self, _: &str, _: &Path) -> Result<(), ClusterError> {
        self.refuse()
    }
    fn docker_network(&self, _name: &str) -> String {
        String::new()
    }
    fn context(&self, _name: &str) -> String {
        String::new()
    }
}

/// errno "text file busy" (Linux and macOS).
const ETXTBSY: i32 = 26;

/// Lines of stderr kept in errors: enough to see the cause, not the whole log.
const STDERR_TAIL_LINES: usize = 20;

fn run(binary: &Path, args: &[&str]) -> Result<String, ClusterError> {
    run_with(binary, args, &[])
}

/// [`run`] with extra environment variables for the CLI.
fn run_with(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String, ClusterError> {
    let command_line = std::iter::once(binary.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    crate::ui::call(|| command_line.clone());
    let mut attempts = 0;
    let output = loop {
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .envs(env.iter().copied());
        // The engine kindling uses, named to kind (through the docker CLI it runs) and k3d in
        // the variables both honour over any context, so the cluster lands beside Gitea and
        // the registry. An endpoint that cannot be resolved is reported when kindling itself
        // connects; here the CLI is left to its own defaults.
        if let Ok(endpoint) = crate::docker::endpoint::resolve() {
            command.env_remove("DOCKER_CONTEXT");
            command.envs(endpoint.child_env());
        }
        // A process group of its own: a terminal's Ctrl-C goes to kindling's group, and kind
        // or k3d killed halfway through writing a cluster (kind#2045, k3d#644) would leave it
        // half made. kindling stops between steps instead, after the CLI has finished.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        match command.output() {
            // ETXTBSY: the binary was just written (a fresh download) and a child forked by
            // another thread still holds it open for writing; it goes away when that child execs.
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && attempts < 20 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            result => {
                break result.map_err(|source| ClusterError::Spawn {
                    command: command_line.clone(),
                    source,
                })?;
            }
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
        return Err(ClusterError::Command {
            command: command_line,
            code: output
                .status
                .code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "signal".into()),
            stderr_tail: tail,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Writes the config where the provider can read it, and where a user debugging can find it.
fn write_config(work_dir: &Path, provider: &str, yaml: &str) -> Result<PathBuf, ClusterError> {
    let path = work_dir.join(format!("{provider}-config.yaml"));
    std::fs::create_dir_all(work_dir).map_err(|source| ClusterError::Io {
        path: work_dir.to_path_buf(),
        source,
    })?;
    let mut file = std::fs::File::create(&path).map_err(|source| ClusterError::Io {
        path: path.clone(),
        source,
    })?;
    file.write_all(yaml.as_bytes())
        .map_err(|source| ClusterError::Io {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

pub struct KindCli {
    pub binary: PathBuf,
    /// Where the rendered config is written (the env's data dir).
    pub work_dir: PathBuf,
}

impl ClusterProvider for KindCli {
    fn provider(&self) -> Provider {
        Provider::Kind
    }

    fn exists(&self, name: &str) -> Result<bool, ClusterError> {
        let out = run(&self.binary, &["get", "clusters"])?;
        Ok(out.lines().any(|l| l.trim() == name))
    }

    fn create(
        &self,
        name: &str,
        config_yaml: &str,
        env: &[(String, String)],
    ) -> Result<(), ClusterError> {
        let config = write_config(&self.work_dir, "kind", config_yaml)?;
        let config = config.display().to_string();
        // kind waits for the control plane itself; kindling then waits for every node.
        // The cluster goes on a network of its own, not the `kind` network every kind cluster
        // on the host shares (whose pods could otherwise reach this env's Gitea and registry):
        // kind takes the network's name from KIND_EXPERIMENTAL_DOCKER_NETWORK and uses it as
        // it finds it, creating it only when missing (kubernetes-sigs/kind v0.33.0
        // pkg/cluster/internal/providers/docker/provider.go Provision, network.go
        // ensureNetwork). kindling makes it first, labelled for the env, so delete removes it.
        let network = self.docker_network(name);
        let mut vars: Vec<(&str, &str)> =
            vec![("KIND_EXPERIMENTAL_DOCKER_NETWORK", network.as_str())];
        vars.extend(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        run_with(
            &self.binary,
            &[
                "create", "cluster", "--name", name, "--config", &config, "--wait", "120s",
            ],
            &vars,
        )?;
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), ClusterError> {
        if !self.exists(name)? {
            return Ok(());
        }
        run(&self.binary, &["delete", "cluster", "--name", name])?;
        Ok(())
    }

    fn kubeconfig(&self, name: &str) -> Result<String, ClusterError> {
        run(&self.binary, &["get", "kubeconfig", "--name", name])
    }

    fn nodes(&self, name: &str) -> Result<Vec<String>, ClusterError> {
        let out = run(&self.binary, &["get", "nodes", "--name", name])?;
        // `kind get nodes` also lists the load balancer of a cluster with several control
        // planes (`NAME-external-load-balancer`, role `external-load-balancer`; kubernetes-sigs/
        // kind v0.33.0 pkg/cluster/internal/providers/common/namer.go, nodeutils/roles.go). It
        // runs Envoy, not containerd: only the Kubernetes nodes pull images.
        let balancer = format!("{name}-external-load-balancer");
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != balancer)
            .map(str::to_string)
            .collect())
    }

    fn import_images(&self, name: &str, archive: &Path) -> Result<(), ClusterError> {
        // kubernetes-sigs/kind v0.33 pkg/cmd/kind/load/image-archive: into every internal node
        // (not the load balancer), `ctr --namespace=k8s.io images import --all-platforms
        // --digests --snapshotter=… -` (pkg/cluster/nodeutils/util.go LoadImageArchive).
        let archive = archive.to_string_lossy();
        run(
            &self.binary,
            &["load", "image-archive", &archive, "--name", name],
        )?;
        Ok(())
    }

    fn docker_network(&self, name: &str) -> String {
        // The env's own network (`kindling-ENV`, the cluster's name; see `create`).
        name.to_string()
    }

    fn context(&self, name: &str) -> String {
        format!("kind-{name}")
    }
}

pub struct K3dCli {
    pub binary: PathBuf,
    pub work_dir: PathBuf,
}

#[derive(serde::Deserialize)]
struct K3dCluster {
    name: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct K3dNode {
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    runtime_labels: std::collections::BTreeMap<String, String>,
}

impl ClusterProvider for K3dCli {
    fn provider(&self) -> Provider {
        Provider::K3d
    }

    fn exists(&self, name: &str) -> Result<bool, ClusterError> {
        let out = run(&self.binary, &["cluster", "list", "-o", "json"])?;
        let clusters: Vec<K3dCluster> = serde_json::from_str(&out).map_err(|e| {
            ClusterError::Tool(format!("cannot read `k3d cluster list -o json`: {e}"))
        })?;
        Ok(clusters.iter().any(|c| c.name == name))
    }

    fn create(
        &self,
        _name: &str,
        config_yaml: &str,
        // The config carries the proxy variables for k3d's nodes.
        _env: &[(String, String)],
    ) -> Result<(), ClusterError> {
        let config = write_config(&self.work_dir, "k3d", config_yaml)?;
        run(
            &self.binary,
            &[
                "cluster",
                "create",
                "--config",
                &config.display().to_string(),
            ],
        )?;
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), ClusterError> {
        if !self.exists(name)? {
            return Ok(());
        }
        run(&self.binary, &["cluster", "delete", name])?;
        Ok(())
    }

    fn kubeconfig(&self, name: &str) -> Result<String, ClusterError> {
        run(&self.binary, &["kubeconfig", "get", name])
    }

    fn nodes(&self, name: &str) -> Result<Vec<String>, ClusterError> {
        let out = run(&self.binary, &["node", "list", "-o", "json"])?;
        let nodes: Vec<K3dNode> = serde_json::from_str(&out)
            .map_err(|e| ClusterError::Tool(format!("cannot read `k3d node list -o json`: {e}")))?;
        Ok(nodes
            .into_iter()
            .filter(|n| n.runtime_labels.get("k3d.cluster").map(String::as_str) == Some(name))
            // The load balancer runs no containerd; only servers and agents pull images.
            .filter(|n| n.role != "loadbalancer")
            .map(|n| n.name)
            .collect())
    }

    fn import_images(&self, name: &str, archive: &Path) -> Result<(), ClusterError> {
        // k3d-io/k3d v5.9.0 cmd/image/imageImport.go and pkg/client/tools.go: `--mode direct`
        // streams the archive into `ctr image import --all-platforms -` of each server and
        // agent node, with no tools container (whose image an offline machine may lack).
        let archive = archive.to_string_lossy();
        run(
            &self.binary,
            &[
                "image",
                "import",
                &archive,
                "--cluster",
                name,
                "--mode",
                "direct",
            ],
        )?;
        Ok(())
    }

    fn docker_network(&self, name: &str) -> String {
        format!("k3d-{name}")
    }

    fn context(&self, name: &str) -> String {
        format!("k3d-{name}")
    }
}

/// Writes the cluster's standalone kubeconfig into the env's directory (0600: it holds client
/// credentials) for CI jobs and `env kubeconfig`; returns its path.
pub fn write_kubeconfig(
    provider: &dyn ClusterProvider,
    name: &str,
    env_dir: &Path,
) -> Result<PathBuf, ClusterError> {
    let text = provider.kubeconfig(name)?;
    let path = env_dir.join("kubeconfig");
    crate::paths::write_atomic(&path, text.as_bytes(), 0o600).map_err(|source| {
        ClusterError::Io {
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}
