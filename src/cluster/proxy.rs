//! An HTTP(S) proxy the user's machine goes through (a corporate network): its settings come
//! from the environment, as for every other tool, and go on to what pulls or fetches inside
//! the env (the nodes' containerd, the engines' controllers), with what must never go through
//! it added to `NO_PROXY`: the cluster's own ranges and names, and the env's registry and
//! Gitea on the Docker network.
//!
//! kind does part of this itself (kubernetes-sigs/kind v0.33.0
//! pkg/cluster/internal/providers/common/proxy.go: HTTP_PROXY, HTTPS_PROXY and NO_PROXY, upper
//! or lower case, passed to every node with the service and pod subnets, the Docker network's
//! subnets, the node names and `.svc`, `.svc.cluster`, `.svc.cluster.local` added to
//! NO_PROXY). k3d does nothing of the kind (k3d-io/k3d v5.9.0: only `--env`/`env:` in its
//! config), so kindling writes the variables into the k3d config.

/// The proxy variables found in the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxySettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub no_proxy: Vec<String>,
}

/// What never goes through the proxy, whatever the provider: the host itself and in-cluster
/// service names (kind adds the same suffixes).
const ALWAYS_DIRECT: [&str; 5] = [
    "localhost",
    "127.0.0.1",
    ".svc",
    ".svc.cluster",
    ".svc.cluster.local",
];

/// k3s's default pod and service ranges (k3s `--cluster-cidr` 10.42.0.0/16, `--service-cidr`
/// 10.43.0.0/16), which kind's own list has for kind but nothing adds for k3d.
pub const K3S_RANGES: [&str; 2] = ["10.42.0.0/16", "10.43.0.0/16"];

impl ProxySettings {
    /// Upper case first, then lower case, as kind reads them.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ProxySettings {
        let var = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .or_else(|| lookup(&name.to_lowercase()).filter(|v| !v.is_empty()))
        };
        ProxySettings {
            http: var("HTTP_PROXY"),
            https: var("HTTPS_PROXY"),
            no_proxy: var("NO_PROXY")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn from_env() -> ProxySettings {
        ProxySettings::from_lookup(|k| std::env::var(k).ok())
    }

    /// Whether a proxy is configured at all (NO_PROXY alone changes nothing).
    pub fn is_set(&self) -> bool {
        self.http.is_some() || self.https.is_some()
    }

    /// NO_PROXY with `direct` (and the always-direct names) added, in order, without repeats.
    pub fn no_proxy_with(&self, direct: &[String]) -> String {
        let mut all: Vec<String> = Vec::new();
        let extra = ALWAYS_DIRECT.iter().map(|s| s.to_string());
        for item in self
            .no_proxy
            .iter()
            .cloned()
            .chain(extra)
            .chain(direct.iter().cloned())
        {
            if !all.contains(&item) {
                all.push(item);
            }
        }
        all.join(",")
    }

    /// The variables to pass on, both spellings (tools read one or the other), with `direct`
    /// added to NO_PROXY; none without a proxy.
    pub fn variables(&self, direct: &[String]) -> Vec<(String, String)> {
        if !self.is_set() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let no_proxy = self.no_proxy_with(direct);
        for (name, value) in [
            ("HTTP_PROXY", self.http.as_deref()),
            ("HTTPS_PROXY", self.https.as_deref()),
            ("NO_PROXY", Some(no_proxy.as_str())),
        ] {
            if let Some(value) = value {
                out.push((name.to_string(), value.to_string()));
                out.push((name.to_lowercase(), value.to_string()));
            }
        }
        out
    }

    /// The settings as `doctor` shows them: a proxy URL's credentials are left out.
    pub fn redacted(&self) -> ProxySettings {
        let hide = |url: &Option<String>| url.as_deref().map(without_credentials);
        ProxySettings {
            http: hide(&self.http),
            https: hide(&self.https),
            no_proxy: self.no_proxy.clone(),
        }
    }
}

fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***@{}", &url[..scheme + 3], &url[at + 1..])
        }
        (None, Some(at)) => format!("***@{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// kind's default pod and service subnets (kubernetes-sigs/kind v0.33.0
/// pkg/apis/config/v1alpha4/default.go), which kindling's kind configs keep.
pub const KIND_RANGES: [&str; 2] = ["10.244.0.0/16", "10.96.0.0/16"];

/// What a pod must reach directly: the cluster's ranges (the API server is reached at a
/// service address) and the env's own services.
pub fn pod_direct_names(provider: super::Provider, env: &str) -> Vec<String> {
    let ranges = match provider {
        super::Provider::Kind => KIND_RANGES,
        super::Provider::K3d => K3S_RANGES,
        // Ranges kindling did not choose and cannot read from the API in general: the
        // cluster's own NO_PROXY is the user's to set.
        super::Provider::Existing => [""; 2],
    };
    let mut direct: Vec<String> = ranges
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| r.to_string())
        .collect();
    direct.extend(env_direct_names(env));
    direct
}

/// What must reach the env's own services directly: its registry and Gitea containers by name
/// on the Docker network (the nodes pull from one, the engine clones from the other), and the
/// shared image caches the nodes' containerd mirrors point at. containerd sends a mirror's
/// requests through HTTP(S)_PROXY like any other (Go's ProxyFromEnvironment), and a proxy
/// cannot resolve a container's name.
pub fn env_direct_names(env: &str) -> Vec<String> {
    let mut names = vec![
        crate::registry::registry_container(env),
        crate::gitea::container_name(env),
    ];
    names.extend(
        crate::registry::CACHED_UPSTREAMS
            .iter()
            .map(|(host, _)| crate::registry::cache_container(host)),
    );
    names
}

/// The host of a URL without its scheme (`user@host:port/path` → `host`; `[::1]:80` → `::1`).
pub fn url_host(rest: &str) -> &str {
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    }
}

/// Whether a URL names this machine (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback_url(url: &str) -> bool {
    let host = url_host(url.split_once("://").map_or(url, |(_, r)| r));
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn proxy_settings_read_upper_then_lower_case_and_split_no_proxy() {
        let p = ProxySettings::from_lookup(lookup(&[
            ("https_proxy", "http://proxy.corp:3128"),
            ("HTTP_PROXY", "http://proxy.corp:3128"),
            ("no_proxy", "corp.example, 10.0.0.0/8,"),
        ]));
        assert_eq!(p.https.as_deref(), Some("http://proxy.corp:3128"));
        assert_eq!(p.no_proxy, ["corp.example", "10.0.0.0/8"]);
        assert!(p.is_set());
        assert!(!ProxySettings::from_lookup(lookup(&[("NO_PROXY", "x")])).is_set());
    }

    #[test]
    fn proxy_variables_carry_both_spellings_and_the_direct_names() {
        let p = ProxySettings::from_lookup(lookup(&[
            ("HTTPS_PROXY", "http://proxy.corp:3128"),
            ("NO_PROXY", "corp.example,localhost"),
        ]));
        let vars = p.variables(&env_direct_names("dev"));
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTPS_PROXY"), Some("http://proxy.corp:3128"));
        assert_eq!(get("https_proxy"), Some("http://proxy.corp:3128"));
        assert_eq!(get("HTTP_PROXY"), None);
        assert_eq!(
            get("NO_PROXY"),
            Some(
                "corp.example,localhost,127.0.0.1,.svc,.svc.cluster,.svc.cluster.local,kindling-dev-registry,kindling-dev-gitea,kindling-cache-docker-io,kindling-cache-ghcr-io,kindling-cache-quay-io,kindling-cache-registry-k8s-io"
            )
        );
        assert_eq!(get("no_proxy"), get("NO_PROXY"));
        assert!(ProxySettings::default().variables(&[]).is_empty());
    }

    #[test]
    fn proxy_credentials_never_show() {
        let p = ProxySettings::from_lookup(lookup(&[(
            "HTTPS_PROXY",
            "http://alice:s3cret@proxy.corp:3128",
        )]));
        let shown = serde_json::to_string(&p.redacted()).unwrap();
        assert!(
            !shown.contains("s3cret") && !shown.contains("alice"),
            "{shown}"
        );
        assert!(shown.contains("proxy.corp:3128"));
    }
}

#[cfg(test)]
mod loopback_tests {
    use super::is_loopback_url;

    #[test]
    fn proxy_loopback_urls_are_this_machine_only() {
        for url in [
            "http://127.0.0.1:3001",
            "http://localhost:3000/kindling/source.git",
            "http://user:pw@127.0.0.2:80",
            "http://[::1]:3000",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "https://gitea.corp:3000",
            "http://10.0.0.1",
            "http://localhost.evil.example",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
