//! The local registry of an env and the shared pull-through caches: their names and how cluster
//! nodes are told to use them as mirrors (kind: containerd `certs.d/HOST/hosts.toml`; k3d: k3s
//! `registries.yaml`).

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

pub fn cache_container(upstream_host: &str) -> String {
    format!("kindling-cache-{}", upstream_host.replace('.', "-"))
}

/// One registry host the nodes resolve through another endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mirror {
    /// What images are named with (`docker.io`, `localhost:5001`).
    pub host: String,
    /// Where nodes fetch them, by container name on the cluster's Docker network.
    pub endpoint: String,
    /// The real registry, when the mirror is a cache in front of one.
    pub upstream: Option<String>,
}

/// The mirrors of an env: its local registry (reached from the host as `localhost:PORT`, the
/// KEP-1755 convention) and, when enabled, every shared cache.
pub fn mirrors(env: &str, local_registry_port: Option<u16>, caches: bool) -> Vec<Mirror> {
    let mut out = Vec::new();
    if let Some(port) = local_registry_port {
        out.push(Mirror {
            host: format!("localhost:{port}"),
            endpoint: format!("http://{}:{REGISTRY_PORT}", registry_container(env)),
            upstream: None,
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_mirrors_cover_the_local_registry_and_every_cache() {
        let m = mirrors("dev", Some(5001), true);
        assert_eq!(m.len(), 1 + CACHED_UPSTREAMS.len());
        assert_eq!(m[0].host, "localhost:5001");
        assert_eq!(m[0].endpoint, "http://kindling-dev-registry:5000");
        assert_eq!(m[1].endpoint, "http://kindling-cache-docker-io:5000");
        assert!(mirrors("dev", None, false).is_empty());
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
        assert_eq!(
            v["mirrors"]["localhost:5001"]["endpoint"][0],
            "http://kindling-dev-registry:5000"
        );
        assert_eq!(
            v["mirrors"]["quay.io"]["endpoint"][0],
            "http://kindling-cache-quay-io:5000"
        );
    }
}
