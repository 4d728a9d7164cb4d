//! The local registry of an env and the shared pull-through caches: their containers, and how
//! cluster nodes are told to use them as mirrors (kind: containerd `certs.d/HOST/hosts.toml`
//! written into every node; k3d: k3s `registries.yaml` in the cluster config), plus the
//! KEP-1755 `local-registry-hosting` ConfigMap that tells tools where to push.

use serde_json::{Value, json};

use crate::docker::{
    ContainerSpec, DockerClient, DockerError, Ensured, HealthCheck, PublishedPort, SweepReport,
    VolumeMount, cache_labels, env_labels,
};

/// The pinned registry image (CNCF distribution; the same image runs in proxy mode).
pub const REGISTRY_IMAGE: &str = crate::pins::REGISTRY.artifact;

/// Upstream registries kindling caches, shared by every env on the machine.
pub const CACHED_UPSTREAMS: &[(&str, &str)] = &[
    ("docker.io", "https://registry-1.docker.io"),
    ("ghcr.io", "https://ghcr.io"),
    ("quay.io", "https://quay.io"),
    ("registry.k8s.io", "https://registry.k8s.io"),
];

/// Port the registry listens on inside its container (the `registry:2` default).
pub const REGISTRY_PORT: u16 = 5000;

pub fn registry_container(env: &str) -> String {
    format!("kindling-{env}-registry")
}

/// The name every shared cache starts with: `KINDLING_CACHE_PREFIX` (lower-case letters,
/// digits and `-`; anything else is dropped), else `kindling-cache`. Another prefix is another
/// set of caches on the same engine, which `cache status` and `cache prune` keep apart (the
/// tests use their own so they never touch a developer's caches).
pub fn cache_prefix() -> String {
    let wanted: String = std::env::var("KINDLING_CACHE_PREFIX")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    let wanted = wanted.trim_matches('-');
    if wanted.is_empty() {
        "kindling-cache".to_string()
    } else {
        wanted.to_string()
    }
}

pub fn cache_container(upstream_host: &str) -> String {
    format!("{}-{}", cache_prefix(), upstream_host.replace('.', "-"))
}

/// The caches' own network. A cache is created on it, never on an env's network: a container
/// remembers the network it was created on (its network mode), and once that network is gone
/// Docker refuses to start it again ("could not find a network matching network mode",
/// moby/moby daemon/container_operations.go normalizeNetMode). Envs come and go; this network
/// stays while its caches do.
pub fn cache_network() -> String {
    format!("{}-net", cache_prefix())
}

/// The label that says which set of caches (`cache_prefix`) an object belongs to.
pub const CACHE_SET_LABEL: &str = "dev.kindling.cache.set";

pub fn cache_set_labels() -> std::collections::BTreeMap<String, String> {
    let mut labels = cache_labels();
    labels.insert(CACHE_SET_LABEL.to_string(), cache_prefix());
    labels
}

/// One registry host the nodes resolve through another endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    /// What images are named with (`docker.io`, `localhost:5001`).
    pub host: String,
    /// Where nodes fetch them, by container name on the cluster's Docker network.
    pub endpoint: String,
    /// The real registry, when the mirror is a cache in front of one.
    pub upstream: Option<String>,
}

/// The name HostK8s stacks give their images (`localhost:5000/hostk8s-*`): HostK8s's kind
/// config mirrors it to its registry container (danielscholl-osdu/hostk8s
/// infra/kubernetes/kind-custom.yaml: `registry.mirrors."localhost:5000"` →
/// `http://hostk8s-registry:5000`), whatever port that registry publishes on the host.
pub const HOSTK8S_REGISTRY_HOST: &str = "localhost:5000";

/// The mirrors of an env: its local registry (reached from the host as `localhost:PORT`, the
/// KEP-1755 convention, and in the nodes also as HostK8s's `localhost:5000`) and, when enabled,
/// every shared cache.
pub fn mirrors(env: &str, local_registry_port: Option<u16>, caches: bool) -> Vec<Mirror> {
    let mut out = Vec::new();
    if let Some(port) = local_registry_port {
        let endpoint = format!("http://{}:{REGISTRY_PORT}", registry_container(env));
        for host in [
            format!("localhost:{port}"),
            HOSTK8S_REGISTRY_HOST.to_string(),
        ] {
            if !out.iter().any(|m: &Mirror| m.host == host) {
                out.push(Mirror {
                    host,
                    endpoint: endpoint.clone(),
                    upstream: None,
                });
            }
        }
    }
    if caches {
        for (host, upstream) in CACHED_UPSTREAMS {
            out.push(Mirror {
                host: host.to_string(),
                endpoint: format!("http://{}:{REGISTRY_PORT}", cache_container(host)),
                upstream: Some(upstream.to_string()),
            });
        }
    }
    out
}

/// containerd's `hosts.toml` for one mirror, written to `/etc/containerd/certs.d/HOST/` in
/// every kind node. The upstream stays as `server`, so a cache outage falls back to it.
pub fn containerd_hosts_toml(mirror: &Mirror) -> String {
    let mut out = String::new();
    if let Some(upstream) = &mirror.upstream {
        out.push_str(&format!("server = \"{upstream}\"\n\n"));
    }
    out.push_str(&format!(
        "[host.\"{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
        mirror.endpoint
    ));
    out
}

/// k3s `registries.yaml` for all mirrors (k3d passes it through `registries.config`).
pub fn k3s_registries_yaml(mirrors: &[Mirror]) -> String {
    let mut out = String::from("mirrors:\n");
    for m in mirrors {
        out.push_str(&format!(
            "  \"{}\":\n    endpoint:\n      - {}\n",
            m.host, m.endpoint
        ));
    }
    out
}

/// Ready means the registry answers its API (the published port accepts connections before).
fn registry_health() -> HealthCheck {
    HealthCheck {
        command: vec![
            "wget".into(),
            "-q".into(),
            "-O".into(),
            "/dev/null".into(),
            format!("http://localhost:{REGISTRY_PORT}/v2/"),
        ],
        interval_seconds: 1,
        retries: 30,
    }
}

/// The env's own registry: images pushed to `localhost:PORT` on the host are pulled by the
/// nodes from the container on the cluster network.
pub fn local_registry_spec(env: &str, network: &str, host_port: u16, image: &str) -> ContainerSpec {
    ContainerSpec {
        name: registry_container(env),
        image: image.to_string(),
        labels: env_labels(env),
        ports: vec![PublishedPort {
            container_port: REGISTRY_PORT,
            host_port,
        }],
        volumes: vec![VolumeMount {
            volume: format!("{}-data", registry_container(env)),
            path: "/var/lib/registry".to_string(),
        }],
        network: Some(network.to_string()),
        restart: true,
        health: Some(registry_health()),
        ..Default::default()
    }
}

/// How the caches reach their upstreams: the user's proxy and the network's root CAs. The
/// registry fetches through Go's `http.DefaultTransport` (distribution/distribution v3.1.1
/// registry/proxy/proxyregistry.go), which reads HTTP(S)_PROXY/NO_PROXY and trusts every file
/// of /etc/ssl/certs (`crate::pki::extra_ca`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheOutbound {
    /// `NAME=value` proxy variables.
    pub proxy: Vec<String>,
    /// A file holding the roots, which outlives every env (the caches do).
    pub extra_ca: Option<std::path::PathBuf>,
}

/// The label that records a cache container's outbound settings (a digest, never the
/// proxy's credentials).
pub const CACHE_OUTBOUND_LABEL: &str = "dev.kindling.cache.outbound";

impl CacheOutbound {
    pub fn is_empty(&self) -> bool {
        self.proxy.is_empty() && self.extra_ca.is_none()
    }

    /// A digest of the settings, for the label.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        if self.is_empty() {
            return "none".to_string();
        }
        let mut hash = Sha256::new();
        for v in &self.proxy {
            hash.update(v.as_bytes());
            hash.update(b"\n");
        }
        if let Some(ca) = &self.extra_ca {
            hash.update(std::fs::read(ca).unwrap_or_default());
        }
        hash.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The roots as the caches mount them: a file per bundle under the data dir, named by its
/// digest, so that it is never rewritten under a running cache nor removed with an env.
pub fn cache_extra_ca_file(
    data_dir: &std::path::Path,
    ca: &crate::pki::extra_ca::ExtraCa,
) -> std::io::Result<std::path::PathBuf> {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(ca.pem.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = data_dir
        .join("cache-trust")
        .join(format!("extra-ca-{digest}.pem"));
    if std::fs::read_to_string(&path).is_ok_and(|t| t == ca.pem) {
        return Ok(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::paths::write_atomic(&path, ca.pem.as_bytes(), 0o644)?;
    Ok(path)
}

/// A pull-through cache for one upstream, shared by every env (label `dev.kindling.cache`,
/// no env label: `env delete` keeps it). Not published on the host: only nodes use it.
pub fn cache_spec(
    upstream_host: &str,
    remote_url: &str,
    network: &str,
    image: &str,
    outbound: &CacheOutbound,
) -> ContainerSpec {
    let name = cache_container(upstream_host);
    let mut labels = cache_set_labels();
    labels.insert(
        "dev.kindling.cache.upstream".to_string(),
        upstream_host.to_string(),
    );
    let creation_labels = [(CACHE_OUTBOUND_LABEL.to_string(), outbound.digest())].into();
    let mut env = vec![format!("REGISTRY_PROXY_REMOTEURL={remote_url}")];
    env.extend(outbound.proxy.iter().cloned());
    ContainerSpec {
        name: name.clone(),
        image: image.to_string(),
        env,
        labels,
        creation_labels,
        volumes: vec![VolumeMount {
            volume: format!("{name}-data"),
            path: "/var/lib/registry".to_string(),
        }],
        binds: outbound
            .extra_ca
            .iter()
            .map(|path| crate::docker::BindMount {
                source: path.clone(),
                target: crate::pki::extra_ca::CONTAINER_PATH.to_string(),
                read_only: true,
            })
            .collect(),
        network: Some(network.to_string()),
        restart: true,
        health: Some(registry_health()),
        ..Default::default()
    }
}

/// KEP-1755: where developers push images so the cluster can pull them.
pub fn local_registry_hosting_configmap(host_port: u16) -> Value {
    // What kind's own local-registry recipe advertises (kubernetes-sigs/kind v0.33.0
    // site/static/examples/kind-with-registry.sh): `host` only. The nodes pull
    // `localhost:PORT/…` through the hosts.toml / registries.yaml mirror kindling writes; a
    // `hostFromContainerRuntime` of the registry container's name had no mirror, so containerd
    // tried HTTPS there and pods sat in ImagePullBackOff.
    let hosting = format!(
        "host: \"localhost:{host_port}\"\nhelp: \"https://kind.sigs.k8s.io/docs/user/local-registry/\"\n"
    );
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "local-registry-hosting", "namespace": "kube-public"},
        "data": {"localRegistryHosting.v1": hosting},
    })
}

/// Where containerd looks for a registry's mirror configuration in a kind node.
pub fn containerd_hosts_dir(mirror: &Mirror) -> String {
    format!("/etc/containerd/certs.d/{}", mirror.host)
}

/// Writes each mirror's `hosts.toml` into every kind node (containerd reads them on the next
/// pull; no restart needed with `config_path`).
pub async fn configure_kind_nodes(
    docker: &DockerClient,
    nodes: &[String],
    mirrors: &[Mirror],
) -> Result<(), DockerError> {
    for node in nodes {
        for mirror in mirrors {
            let dir = containerd_hosts_dir(mirror);
            let content = containerd_hosts_toml(mirror);
            // The content is ours (hosts and URLs kindling built); quote it for sh anyway.
            let script = format!(
                "mkdir -p '{dir}' && printf '%s' '{}' > '{dir}/hosts.toml'",
                content.replace('\'', "'\\''")
            );
            let out = docker.exec(node, &["sh", "-c", &script]).await?;
            if out.exit_code != 0 {
                return Err(DockerError::ContainerFailed {
                    name: node.clone(),
                    state: format!("writing {dir}/hosts.toml exited {}", out.exit_code),
                    logs: out.stderr,
                });
            }
        }
    }
    Ok(())
}

/// Starts every shared cache (once per machine) on the caches' own network and attaches it to
/// `network`, so the nodes of the env on that network reach it by name. The registry image is
/// pulled first when the engine lacks it (a profile without a local registry pulls it nowhere
/// else). A cache made by an older kindling on an env's network is made again on the caches'
/// network; its volume, and so what it stored, is kept.
pub async fn ensure_caches(
    docker: &DockerClient,
    network: &str,
    image: &str,
    outbound: &CacheOutbound,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<(String, Ensured)>, DockerError> {
    docker.ensure_image(image, progress).await?;
    let home = cache_network();
    docker.ensure_network(&home, &cache_set_labels()).await?;
    let mut out = Vec::new();
    for (host, remote) in CACHED_UPSTREAMS {
        let spec = cache_spec(host, remote, &home, image, outbound);
        docker
            .ensure_volume(&spec.volumes[0].volume, &spec.labels)
            .await?;
        // An env behind a proxy (or with the network's roots) needs caches that go through
        // it: one made without is made again, keeping its volume. One that has settings an
        // env without them does not need is kept: they do that env no harm.
        if !outbound.is_empty()
            && let Some(made_with) = docker
                .container_label(&spec.name, CACHE_OUTBOUND_LABEL)
                .await?
            && made_with != outbound.digest()
        {
            progress(&format!(
                "cache {}: made again to go through this env's proxy and CAs",
                spec.name
            ));
            docker
                .remove_container_if_labelled(&spec.name, &cache_set_labels())
                .await?;
        }
        // One of ours made on another network is made again; a container of that name that
        // is not ours is left alone (and refused just below).
        if docker
            .network_mode(&spec.name)
            .await?
            .is_some_and(|mode| mode != home)
        {
            docker
                .remove_container_if_labelled(&spec.name, &cache_set_labels())
                .await?;
        }
        let ensured = docker.run_container(&spec).await?;
        docker.connect_network(&spec.name, network).await?;
        out.push((spec.name, ensured));
    }
    Ok(out)
}

/// One shared cache, as `kindling cache status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheStatus {
    pub name: String,
    pub upstream: String,
    pub state: String,
    pub repositories: Vec<String>,
    /// Bytes stored, from `du` in the container.
    pub size_bytes: Option<u64>,
}

pub async fn cache_status(docker: &DockerClient) -> Result<Vec<CacheStatus>, DockerError> {
    let found = docker
        .labelled(&format!("{CACHE_SET_LABEL}={}", cache_prefix()))
        .await?;
    let mut out = Vec::new();
    for name in found.containers {
        let mut state = docker.state(&name).await?;
        let upstream = CACHED_UPSTREAMS
            .iter()
            .find(|(h, _)| cache_container(h) == name)
            .map(|(h, _)| h.to_string())
            .unwrap_or_default();
        let (mut repositories, mut size_bytes) = (Vec::new(), None);
        if state == "running" {
            // A registry in proxy mode answers an empty /v2/_catalog; what it stored is in its
            // storage layout: one `_manifests` directory per repository. A cache that stops
            // between the look at its state and the exec (one that cannot reach its upstream
            // restarts) is reported as it is then, not as an error of the whole command.
            match read_store(docker, &name).await {
                Ok((r, s)) => (repositories, size_bytes) = (r, s),
                Err(_) => state = docker.state(&name).await?,
            }
        }
        out.push(CacheStatus {
            name,
            upstream,
            state,
            repositories,
            size_bytes,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What a running cache holds: its repositories and the bytes stored.
async fn read_store(
    docker: &DockerClient,
    name: &str,
) -> Result<(Vec<String>, Option<u64>), DockerError> {
    let listing = docker
        .exec(
            name,
            &[
                "sh",
                "-c",
                &format!("cd {REPOSITORIES_DIR} 2>/dev/null && find . -type d -name _manifests"),
            ],
        )
        .await?;
    let du = docker
        .exec(name, &["du", "-sk", "/var/lib/registry"])
        .await?;
    Ok((
        parse_repository_dirs(&listing.stdout),
        parse_du_kib(&du.stdout),
    ))
}

/// Where distribution's filesystem storage keeps repositories.
const REPOSITORIES_DIR: &str = "/var/lib/registry/docker/registry/v2/repositories";

/// Repository names from `find . -type d -name _manifests` in the repositories directory.
pub fn parse_repository_dirs(listing: &str) -> Vec<String> {
    let mut repositories: Vec<String> = listing
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("./")?
                .strip_suffix("/_manifests")
                .map(str::to_string)
        })
        .collect();
    repositories.sort();
    repositories
}

/// The repositories of a registry's `/v2/_catalog` answer.
pub fn parse_catalog(body: &str) -> Vec<String> {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["repositories"].as_array().cloned())
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `du -sk` prints KiB then the path.
pub fn parse_du_kib(out: &str) -> Option<u64> {
    out.split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

/// Removes every shared cache of this set (`cache_prefix`), its stored images and its network.
pub async fn prune_caches(docker: &DockerClient) -> Result<SweepReport, DockerError> {
    let found = docker
        .labelled(&format!("{CACHE_SET_LABEL}={}", cache_prefix()))
        .await?;
    let mut report = SweepReport::default();
    for c in found.containers {
        if docker.remove_container(&c).await? {
            report.containers.push(c);
        }
    }
    for v in found.volumes {
        if docker.remove_volume(&v).await? {
            report.volumes.push(v);
        }
    }
    for n in found.networks {
        if docker.remove_network(&n).await? {
            report.networks.push(n);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_catalog_and_du_parse() {
        assert_eq!(
            parse_catalog(r#"{"repositories":["kt/busybox","library/nginx"]}"#),
            ["kt/busybox", "library/nginx"]
        );
        assert!(parse_catalog("not json").is_empty());
        assert_eq!(
            parse_repository_dirs("./kt/busybox/_manifests\n./library/nginx/_manifests\n"),
            ["kt/busybox", "library/nginx"]
        );
        assert_eq!(
            parse_du_kib("2048\t/var/lib/registry\n"),
            Some(2 * 1024 * 1024)
        );
    }

    #[test]
    fn registry_local_registry_hosting_follows_kep_1755() {
        let cm = local_registry_hosting_configmap(5001);
        assert_eq!(cm["metadata"]["namespace"], "kube-public");
        let hosting: serde_json::Value =
            serde_yaml_ng::from_str(cm["data"]["localRegistryHosting.v1"].as_str().unwrap())
                .unwrap();
        // As kind's recipe: the host only (every node has a mirror for it), and the help link.
        assert_eq!(
            hosting,
            serde_json::json!({"host": "localhost:5001", "help": "https://kind.sigs.k8s.io/docs/user/local-registry/"})
        );
    }

    #[test]
    fn registry_cache_spec_is_shared_not_env_owned() {
        let spec = cache_spec(
            "docker.io",
            "https://registry-1.docker.io",
            "kind",
            REGISTRY_IMAGE,
            &CacheOutbound::default(),
        );
        assert_eq!(spec.creation_labels[CACHE_OUTBOUND_LABEL], "none");
        // How it reaches out is not whose it is: an existing cache is taken whatever it has.
        assert!(!spec.labels.contains_key(CACHE_OUTBOUND_LABEL));
        assert!(spec.binds.is_empty());
        // Behind a proxy, with the network's roots: both reach the registry's fetches, and
        // the label records them without the proxy's credentials.
        let dir = tempfile::tempdir().unwrap();
        let roots = dir.path().join("roots.pem");
        std::fs::write(&roots, "PEM").unwrap();
        let outbound = CacheOutbound {
            proxy: vec!["HTTPS_PROXY=http://alice:s3cret@proxy.corp:3128".into()],
            extra_ca: Some(roots.clone()),
        };
        let behind = cache_spec(
            "docker.io",
            "https://registry-1.docker.io",
            "kind",
            REGISTRY_IMAGE,
            &outbound,
        );
        assert!(behind.env.contains(&outbound.proxy[0]));
        assert_eq!(behind.binds[0].source, roots);
        assert_eq!(behind.binds[0].target, crate::pki::extra_ca::CONTAINER_PATH);
        let label = &behind.creation_labels[CACHE_OUTBOUND_LABEL];
        assert!(label.len() == 16 && !label.contains("s3cret"), "{label}");
        assert_eq!(
            spec.labels.get("dev.kindling.cache").map(String::as_str),
            Some("true")
        );
        assert!(!spec.labels.contains_key("dev.kindling.env"));
        assert!(
            spec.ports.is_empty(),
            "caches are reached by nodes, not published on the host"
        );
        assert_eq!(
            spec.env,
            ["REGISTRY_PROXY_REMOTEURL=https://registry-1.docker.io"]
        );
        let local = local_registry_spec("dev", "kind", 5001, REGISTRY_IMAGE);
        assert_eq!(local.labels["dev.kindling.env"], "dev");
        assert_eq!(local.ports[0].host_port, 5001);
    }

    #[test]
    fn registry_mirrors_cover_the_local_registry_and_every_cache() {
        let m = mirrors("dev", Some(5001), true);
        assert_eq!(m.len(), 2 + CACHED_UPSTREAMS.len());
        assert_eq!(m[0].host, "localhost:5001");
        assert_eq!(m[0].endpoint, "http://kindling-dev-registry:5000");
        // HostK8s's stacks name their images localhost:5000/…: the same registry.
        assert_eq!(m[1].host, "localhost:5000");
        assert_eq!(m[1].endpoint, "http://kindling-dev-registry:5000");
        assert_eq!(m[2].endpoint, "http://kindling-cache-docker-io:5000");
        assert!(mirrors("dev", None, false).is_empty());
        // A registry on port 5000 is mirrored once.
        assert_eq!(mirrors("dev", Some(5000), false).len(), 1);
    }

    #[test]
    fn registry_hosts_toml_keeps_the_upstream_as_fallback() {
        let m = &mirrors("dev", None, true)[0];
        assert_eq!(
            containerd_hosts_toml(m),
            "server = \"https://registry-1.docker.io\"\n\n[host.\"http://kindling-cache-docker-io:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
    }

    #[test]
    fn registry_k3s_yaml_parses_and_lists_endpoints() {
        let yaml = k3s_registries_yaml(&mirrors("dev", Some(5001), true));
        let v: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        for host in ["localhost:5001", "localhost:5000"] {
            assert_eq!(
                v["mirrors"][host]["endpoint"][0],
                "http://kindling-dev-registry:5000"
            );
        }
        assert_eq!(
            v["mirrors"]["quay.io"]["endpoint"][0],
            "http://kindling-cache-quay-io:5000"
        );
    }
}
