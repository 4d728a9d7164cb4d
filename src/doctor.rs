//! `kindling doctor`: what this machine has of what kindling needs, each finding with its fix.
//! Each check is a small probe; assembling and judging findings is plain data.

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use crate::cluster::tools::{PinnedTool, ToolSource, platform, resolve_tool};
pub use crate::docker::EngineFacts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn finding(check: &str, status: Status, detail: String, fix: Option<String>) -> Finding {
    Finding {
        check: check.to_string(),
        status,
        detail,
        fix,
    }
}

/// Which kind/k3d binary kindling would use, without downloading anything.
pub fn check_tool(
    tool: &PinnedTool,
    data_dir: &Path,
    search_path: Option<&std::ffi::OsStr>,
) -> Finding {
    let check = tool.name.as_str();
    let cached = crate::cluster::tools::cached_path(tool, data_dir);
    let on_path = which::which_in(
        &tool.name,
        search_path,
        std::env::current_dir().unwrap_or_default(),
    )
    .ok();
    // One on PATH older than the pin is passed over for the pinned release (cluster::tools).
    let on_path = on_path.map(|p| {
        let version = crate::cluster::tools::reported_version(&p);
        (p, version)
    });
    let recent = |v: &Option<String>| {
        v.as_deref()
            .is_some_and(|v| crate::cluster::tools::at_least(v, &tool.version))
    };
    match (on_path, cached.is_file()) {
        (Some((path, version)), _) if recent(&version) => finding(
            check,
            Status::Ok,
            format!(
                "{} {} (on PATH)",
                path.display(),
                version.unwrap_or_default()
            ),
            None,
        ),
        (Some((path, version)), _) => finding(
            check,
            Status::Warn,
            format!(
                "{} on PATH is {}; kindling uses the pinned {} instead",
                path.display(),
                version.unwrap_or_else(|| "of no version it will say".into()),
                tool.version
            ),
            Some(format!(
                "install {} {} or later, or let kindling download the pinned release",
                tool.name, tool.version
            )),
        ),
        (None, true) => {
            // Verify the cached binary now rather than promise one that fails its checksum later.
            match resolve_tool(tool, data_dir, search_path) {
                Ok(r) if r.source == ToolSource::Cached => finding(
                    check,
                    Status::Ok,
                    format!("{} (pinned {}, verified)", r.path.display(), tool.version),
                    None,
                ),
                _ => finding(
                    check,
                    Status::Warn,
                    format!("cached {} fails its checksum", cached.display()),
                    Some(format!(
                        "delete {} and kindling downloads it again",
                        cached.display()
                    )),
                ),
            }
        }
        (None, false) if tool.checksums.iter().any(|(p, _)| *p == platform()) => finding(
            check,
            Status::Ok,
            format!(
                "not installed; kindling downloads the pinned {} {} on first use",
                tool.name, tool.version
            ),
            None,
        ),
        (None, false) => finding(
            check,
            Status::Warn,
            format!(
                "not installed, and no pinned {} binary for {}",
                tool.name,
                platform()
            ),
            Some(format!(
                "install {} and put it on PATH (needed only for that provider)",
                tool.name
            )),
        ),
    }
}

/// The machine root CA: present, trusted, expiring.
pub fn check_ca(data_dir: &Path, now: OffsetDateTime) -> Vec<Finding> {
    let root = crate::pki::LocalNames::configured()
        .and_then(|names| crate::pki::load_root(data_dir, &names));
    match root {
        Ok(None) => vec![finding(
            "ca",
            Status::Ok,
            "no root CA yet; env create makes one".to_string(),
            None,
        )],
        Err(e) => vec![finding(
            "ca",
            Status::Fail,
            e.to_string(),
            Some("see the help line above".into()),
        )],
        Ok(Some(root)) => {
            let Ok(info) = root.info() else {
                return vec![finding(
                    "ca",
                    Status::Fail,
                    "root certificate unreadable".into(),
                    None,
                )];
            };
            let mut out = Vec::new();
            let trusted = crate::pki::trust::TrustStore::detect().is_trusted(&info.short_id());
            out.push(match trusted {
                Some(true) => finding(
                    "ca",
                    Status::Ok,
                    format!("{} (trusted)", root.cert_path.display()),
                    None,
                ),
                Some(false) => finding(
                    "ca",
                    Status::Warn,
                    format!(
                        "{} is not in the system trust store",
                        root.cert_path.display()
                    ),
                    Some(
                        "run `kindling ca trust` so browsers and curl accept https://*.localhost"
                            .into(),
                    ),
                ),
                None => finding(
                    "ca",
                    Status::Ok,
                    format!(
                        "{} (trust unknown on this system)",
                        root.cert_path.display()
                    ),
                    None,
                ),
            });
            for w in crate::pki::expiry_warnings(now, &[("the root CA", &info)]) {
                out.push(finding(
                    "ca expiry",
                    Status::Warn,
                    w,
                    Some("move the CA files away to create a new one, then `kindling ca trust` again".into()),
                ));
            }
            out
        }
    }
}

/// Whether the default host ports are free on loopback.
pub fn check_ports(ports: &[u16]) -> Vec<Finding> {
    ports
        .iter()
        .map(|&port| match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => finding("port", Status::Ok, format!("127.0.0.1:{port} is free"), None),
            Err(e) => finding(
                "port",
                Status::Warn,
                format!("127.0.0.1:{port} is taken ({e})"),
                Some("kindling picks the next free port and prints it; stop the other listener to keep the default".into()),
            ),
        })
        .collect()
}

/// kind's known-issues page: too few inotify watches/instances make pods crash with
/// "too many open files".
pub fn judge_inotify(
    max_user_watches: Option<u64>,
    max_user_instances: Option<u64>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, value, wanted) in [
        ("fs.inotify.max_user_watches", max_user_watches, 524_288),
        ("fs.inotify.max_user_instances", max_user_instances, 512),
    ] {
        out.push(match value {
            Some(v) if v >= wanted => finding("inotify", Status::Ok, format!("{name} = {v}"), None),
            Some(v) => finding(
                "inotify",
                Status::Warn,
                format!("{name} = {v}, below {wanted}"),
                Some(format!(
                    "sudo sysctl {name}={wanted} (and add it to /etc/sysctl.conf)"
                )),
            ),
            None => finding(
                "inotify",
                Status::Ok,
                format!("{name} not readable here"),
                None,
            ),
        });
    }
    out
}

pub fn check_inotify() -> Vec<Finding> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    judge_inotify(
        read("/proc/sys/fs/inotify/max_user_watches"),
        read("/proc/sys/fs/inotify/max_user_instances"),
    )
}

/// How this machine reaches the ports an env publishes on the engine's machine
/// (`docker::remote`): here, or through an SSH tunnel.
pub fn check_docker_reach(endpoint: &crate::docker::endpoint::Endpoint) -> Finding {
    let reach = crate::docker::remote::Reach::of(endpoint);
    let tunnel = matches!(reach, crate::docker::remote::Reach::Tunnel { .. });
    let ssh = which::which("ssh").is_ok();
    match (tunnel, ssh) {
        (true, false) => finding(
            "docker reach",
            Status::Fail,
            reach.describe(),
            Some("install an OpenSSH client (the tunnel runs `ssh -N -L …`), or run kindling on the engine's machine".into()),
        ),
        _ => finding("docker reach", Status::Ok, reach.describe(), None),
    }
}

/// Which Docker engine kindling (and kind and k3d) will talk to, and why that one
/// (`docker::endpoint`). The full engine check — version, CPUs, memory — goes through the
/// Docker client.
pub fn check_docker_endpoint(
    resolved: Result<crate::docker::endpoint::Endpoint, crate::docker::DockerError>,
) -> Finding {
    match resolved {
        Err(e) => {
            let text = e.to_string();
            let (detail, fix) = match text.split_once("\nhelp: ") {
                Some((d, f)) => (d.to_string(), Some(f.to_string())),
                None => (text, None),
            };
            finding("docker endpoint", Status::Fail, detail, fix)
        }
        Ok(e) => {
            let socket = e.host.strip_prefix("unix://").map(Path::new);
            match socket {
                Some(path) if !path.exists() => finding(
                    "docker endpoint",
                    Status::Fail,
                    format!("{} (from {}) does not exist", e.host, e.source),
                    Some("start Docker (Docker Desktop, Colima, `sudo systemctl start docker`), or point DOCKER_HOST or a docker context at a running engine".into()),
                ),
                _ => finding(
                    "docker endpoint",
                    Status::Ok,
                    format!(
                        "{} (from {}){}",
                        e.host,
                        e.source,
                        if e.tls_dir.is_some() { ", TLS" } else { "" }
                    ),
                    None,
                ),
            }
        }
    }
}

/// The offline bundle loaded last (`kindling bundle load`), and which pinned images of each
/// provider it lacks, with the engines whose install manifests it brought.
pub fn check_bundle(
    data_dir: &Path,
    cache_dir: &Path,
    settings_images: (&str, &str),
) -> Vec<Finding> {
    let Some(loaded) = crate::bundle::loaded(data_dir) else {
        return Vec::new();
    };
    let manifests: Vec<String> = loaded
        .manifests
        .iter()
        .filter_map(|f| std::fs::read_to_string(cache_dir.join("manifests").join(f)).ok())
        .collect();
    let mut lacking = Vec::new();
    for provider in [
        crate::cluster::Provider::Kind,
        crate::cluster::Provider::K3d,
    ] {
        let kubernetes = crate::cluster::NODE_IMAGES[0].kubernetes;
        let texts = if manifests.is_empty() {
            vec![String::new()]
        } else {
            manifests.clone()
        };
        for text in &texts {
            if let Ok(wanted) = crate::bundle::pinned_images(
                provider,
                kubernetes,
                settings_images.0,
                settings_images.1,
                text,
            ) {
                for missing in crate::bundle::missing_from(&loaded, &wanted) {
                    let line = format!("{}: {missing}", provider.name());
                    if !lacking.contains(&line) {
                        lacking.push(line);
                    }
                }
            }
        }
    }
    lacking.extend(charts_lacking(data_dir, &loaded));
    judge_bundle(&loaded, &lacking)
}

/// The Helm charts of the envs' stamps that the loaded bundle does not hold (an offline
/// create or restart would fetch them).
fn charts_lacking(data_dir: &Path, loaded: &crate::bundle::LoadReport) -> Vec<String> {
    let mut lacking = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir.join("envs")) else {
        return lacking;
    };
    let mut dirs: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let Ok(Some(state)) = crate::env::state::EnvState::load(&dir) else {
            continue;
        };
        let Ok(stamp) = crate::env::open::stamp_of(data_dir, &state) else {
            continue;
        };
        for entry in &stamp.entries {
            if let crate::stamp::Source::Helm(chart) = &entry.source
                && !chart.in_tree()
                && !loaded.charts.iter().any(|c| c.is(chart))
            {
                lacking.push(format!(
                    "env {}: chart {} {} ({})",
                    state.name,
                    chart.chart,
                    chart.version,
                    crate::bundle::charts::shown(&chart.repo)
                ));
            }
        }
    }
    lacking
}

pub fn judge_bundle(loaded: &crate::bundle::LoadReport, lacking: &[String]) -> Vec<Finding> {
    let mut findings = vec![finding(
        "bundle",
        Status::Ok,
        format!(
            "{} loaded {}: {} images ({} caches seeded), charts: {}, tools: {}, manifests: {}",
            loaded.file.display(),
            loaded.loaded_at,
            loaded.record.images.len(),
            loaded.seeded.len(),
            if loaded.charts.is_empty() {
                "none".to_string()
            } else {
                loaded
                    .charts
                    .iter()
                    .map(|c| format!("{} {}", c.chart, c.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            if loaded.tools.is_empty() {
                "none".to_string()
            } else {
                loaded.tools.join(", ")
            },
            if loaded.manifests.is_empty() {
                "none".to_string()
            } else {
                loaded.manifests.join(", ")
            },
        ),
        None,
    )];
    if !lacking.is_empty() {
        findings.push(finding(
            "bundle",
            Status::Warn,
            format!("it lacks what an offline create would fetch: {}", lacking.join(", ")),
            Some("on a machine with internet, `kindling bundle save FILE --provider P --engine E --stamp S` (with --images for the charts' images; `--env NAME` takes all three from an env), then `kindling bundle load FILE` here".into()),
        ));
    }
    findings
}

pub fn check_proxy() -> Vec<Finding> {
    judge_proxy(&crate::cluster::proxy::ProxySettings::from_env())
}

/// What was found of a proxy, and what goes on to the env (credentials never shown).
pub fn judge_proxy(proxy: &crate::cluster::proxy::ProxySettings) -> Vec<Finding> {
    if !proxy.is_set() {
        return Vec::new();
    }
    let shown = proxy.redacted();
    let found = [("HTTP_PROXY", &shown.http), ("HTTPS_PROXY", &shown.https)]
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={v}")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut findings = vec![finding(
        "proxy",
        Status::Ok,
        format!(
            "{found}: passed on to the nodes (kind does it itself, k3d through its config) and the engine's controllers, with NO_PROXY extended by the cluster's ranges, .svc names and the env's registry and Gitea"
        ),
        None,
    )];
    let loopback = ["localhost", "127.0.0.1"]
        .iter()
        .all(|h| proxy.no_proxy.iter().any(|n| n == h));
    if !loopback {
        findings.push(finding(
            "proxy",
            Status::Warn,
            "NO_PROXY lacks localhost/127.0.0.1 (kindling keeps its own calls to this machine direct; your browser and curl may send https://*.localhost to the proxy)".into(),
            Some("add localhost,127.0.0.1,.localhost to NO_PROXY".into()),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proxy is shown without its credentials, with what goes on to the env, and a
    /// NO_PROXY without loopback is a warning.
    #[test]
    fn doctor_proxy_shows_what_is_passed_on_without_credentials() {
        use crate::cluster::proxy::ProxySettings;
        assert!(judge_proxy(&ProxySettings::default()).is_empty());
        let proxy = ProxySettings::from_lookup(|k| match k {
            "HTTPS_PROXY" => Some("http://alice:s3cret@proxy.corp:3128".into()),
            "NO_PROXY" => Some("localhost,127.0.0.1".into()),
            _ => None,
        });
        let f = judge_proxy(&proxy);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Ok);
        assert!(
            !f[0].detail.contains("s3cret") && f[0].detail.contains("proxy.corp:3128"),
            "{f:?}"
        );
        assert!(f[0].detail.contains("passed on to the nodes"));
        let proxy =
            ProxySettings::from_lookup(|k| (k == "HTTP_PROXY").then(|| "http://p:1".into()));
        assert_eq!(judge_proxy(&proxy)[1].status, Status::Warn);
    }

    #[test]
    fn doctor_inotify_limits_below_kind_recommendation_warn_with_the_sysctl() {
        let f = judge_inotify(Some(8192), Some(1024));
        assert_eq!(f[0].status, Status::Warn);
        assert_eq!(
            f[0].fix.as_deref(),
            Some("sudo sysctl fs.inotify.max_user_watches=524288 (and add it to /etc/sysctl.conf)")
        );
        assert_eq!(f[1].status, Status::Ok);
    }

    #[test]
    fn doctor_docker_endpoint_says_which_and_why() {
        use crate::docker::endpoint::Endpoint;
        let missing = check_docker_endpoint(Ok(Endpoint {
            host: "unix:///nonexistent/docker.sock".into(),
            tls_dir: None,
            source: "default".into(),
        }));
        assert_eq!(missing.status, Status::Fail);
        assert!(
            missing
                .fix
                .unwrap()
                .contains("DOCKER_HOST or a docker context")
        );
        let tcp = check_docker_endpoint(Ok(Endpoint {
            host: "tcp://127.0.0.1:2375".into(),
            tls_dir: None,
            source: "DOCKER_HOST".into(),
        }));
        assert_eq!(tcp.status, Status::Ok);
        assert_eq!(tcp.detail, "tcp://127.0.0.1:2375 (from DOCKER_HOST)");
        let err = check_docker_endpoint(Err(crate::docker::DockerError::Endpoint(
            "docker context gone is not in X\nhelp: unset it".into(),
        )));
        assert_eq!(err.status, Status::Fail);
        assert_eq!(err.fix.as_deref(), Some("unset it"));
    }

    #[test]
    fn doctor_busy_port_warns() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let f = check_ports(&[port]);
        assert_eq!(f[0].status, Status::Warn);
        assert!(f[0].detail.contains(&format!("127.0.0.1:{port} is taken")));
    }
}

/// A kind/k3d cluster with Flux or Argo CD and the sample stamp wants about 2 CPUs, 4 GiB and
/// a few GB of images; cgroup v1 hosts need a recent kind node image.
pub fn judge_engine(facts: &EngineFacts, free_disk_kib: Option<u64>) -> Vec<Finding> {
    const GIB: i64 = 1 << 30;
    let mut out = vec![finding(
        "docker",
        Status::Ok,
        format!("engine {} answers", facts.version),
        None,
    )];
    if let Some(exposure) = facts.loopback_exposure() {
        out.push(finding(
            "network",
            Status::Warn,
            exposure,
            Some("upgrade Docker Engine to 28.3.3 or later (docs.docker.com/engine/install), or keep the machine off shared networks while envs run".into()),
        ));
    }
    out.push(if facts.cpus >= 2 {
        finding(
            "resources",
            Status::Ok,
            format!("{} CPUs", facts.cpus),
            None,
        )
    } else {
        finding(
            "resources",
            Status::Warn,
            format!(
                "{} CPU available to Docker; a cluster with an engine wants 2+",
                facts.cpus
            ),
            Some("give Docker more CPUs (Docker Desktop: Settings → Resources)".into()),
        )
    });
    out.push(if facts.memory_bytes >= 4 * GIB {
        finding(
            "resources",
            Status::Ok,
            format!("{:.1} GiB memory", facts.memory_bytes as f64 / GIB as f64),
            None,
        )
    } else {
        finding(
            "resources",
            Status::Warn,
            format!(
                "{:.1} GiB memory for Docker; the sample stamp wants about 4 GiB",
                facts.memory_bytes as f64 / GIB as f64
            ),
            Some("give Docker more memory, or use a smaller stamp".into()),
        )
    });
    out.push(match facts.cgroup_version.as_str() {
        "2" => finding("cgroups", Status::Ok, "cgroup v2".into(), None),
        "1" => finding(
            "cgroups",
            Status::Warn,
            "cgroup v1: kind and k3s support it, but it is deprecated and some node images misbehave".into(),
            Some("boot with systemd.unified_cgroup_hierarchy=1 to use cgroup v2".into()),
        ),
        other => finding("cgroups", Status::Ok, format!("cgroup version {other:?} not reported"), None),
    });
    if let Some(kib) = free_disk_kib {
        let gib = kib as f64 / (1024.0 * 1024.0);
        out.push(if gib >= 10.0 {
            finding("disk", Status::Ok, format!("{gib:.0} GiB free under {}", facts.root_dir), None)
        } else {
            finding(
                "disk",
                Status::Warn,
                format!("only {gib:.1} GiB free under {}; node and engine images take several GB", facts.root_dir),
                Some("free disk space, or `docker system prune` (kindling's image caches survive `kindling cache prune` only if you keep them)".into()),
            )
        });
    }
    out
}

/// Free space (KiB) of the file system holding `path`, from `df -Pk`.
pub fn free_disk_kib(path: &Path) -> Option<u64> {
    crate::ui::call(|| format!("df -Pk {}", path.display()));
    let out = std::process::Command::new("df")
        .args(["-Pk"])
        .arg(path)
        .output()
        .ok()?;
    parse_df_available(&String::from_utf8_lossy(&out.stdout))
}

/// The "Available" column of `df -Pk` output's data line.
pub fn parse_df_available(text: &str) -> Option<u64> {
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod engine_tests {
    use super::*;

    #[test]
    fn doctor_judges_engine_resources_cgroups_and_disk() {
        let small = EngineFacts {
            version: "20.10".into(),
            cpus: 1,
            memory_bytes: 2 << 30,
            cgroup_version: "1".into(),
            root_dir: "/var/lib/docker".into(),
            os_type: "linux".into(),
            operating_system: "Debian GNU/Linux 12 (bookworm)".into(),
            podman: false,
        };
        let findings = judge_engine(&small, Some(5 * 1024 * 1024));
        let warned: Vec<&str> = findings
            .iter()
            .filter(|f| f.status == Status::Warn)
            .map(|f| f.check.as_str())
            .collect();
        assert_eq!(
            warned,
            ["network", "resources", "resources", "cgroups", "disk"]
        );
        assert!(
            findings
                .iter()
                .filter(|f| f.status == Status::Warn)
                .all(|f| f.fix.is_some())
        );
        let big = EngineFacts {
            version: "29.1.2".into(),
            cpus: 8,
            memory_bytes: 16 << 30,
            cgroup_version: "2".into(),
            ..small.clone()
        };
        assert!(
            judge_engine(&big, Some(100 * 1024 * 1024))
                .iter()
                .all(|f| f.status == Status::Ok)
        );
        assert_eq!(
            parse_df_available(
                "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 263174212 201452 249524756 1% /\n"
            ),
            Some(249_524_756)
        );
        assert_eq!(parse_df_available(""), None);
    }

    /// Docker Engine on Linux before 28.0 (moby/moby#45610), and up to 28.3.2 with firewalld
    /// (CVE-2025-54388), lets the local network reach loopback-published ports; Docker Desktop
    /// and Podman do not work that way.
    #[test]
    fn doctor_warns_of_engines_that_expose_loopback_ports_to_the_network() {
        let engine = |version: &str, os: &str, podman: bool| EngineFacts {
            version: version.into(),
            cpus: 8,
            memory_bytes: 16 << 30,
            cgroup_version: "2".into(),
            root_dir: "/var/lib/docker".into(),
            os_type: "linux".into(),
            operating_system: os.into(),
            podman,
        };
        for (version, os, podman, exposed) in [
            (
                "20.10.24+dfsg1",
                "Debian GNU/Linux 12 (bookworm)",
                false,
                true,
            ),
            ("27.5.1", "Ubuntu 24.04.1 LTS", false, true),
            ("28.0.0", "Ubuntu 24.04.1 LTS", false, true),
            ("28.3.3", "Ubuntu 24.04.1 LTS", false, false),
            ("29.1.2", "Fedora Linux 43", false, false),
            ("27.5.1", "Docker Desktop", false, false),
            ("4.3.1", "debian", true, false),
        ] {
            let facts = engine(version, os, podman);
            assert_eq!(
                facts.loopback_exposure().is_some(),
                exposed,
                "{version} on {os}"
            );
            let network = judge_engine(&facts, None)
                .into_iter()
                .any(|f| f.check == "network" && f.status == Status::Warn);
            assert_eq!(network, exposed, "{version} on {os}");
        }
    }
}
