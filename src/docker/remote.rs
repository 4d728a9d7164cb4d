//! A Docker engine on another machine (a bigger box for a stamp a laptop cannot hold). kindling
//! publishes every port of an env on 127.0.0.1 *of the engine's machine* (Gitea, the registry,
//! the ingress, and the API server kind and k3d publish there), so from this machine they are
//! reached through an SSH tunnel to it: `ssh -L 127.0.0.1:P:127.0.0.1:P` for each port P, the
//! same number on both sides, so the kubeconfig kind and k3d write (`https://127.0.0.1:P`) and
//! every URL kindling prints work here unchanged. Nothing is ever published on the remote
//! machine's network.
//!
//! Which machine: `KINDLING_DOCKER_SSH=[USER@]HOST` names it (the way to say it for a socket
//! forwarded by hand, `DOCKER_HOST=unix:///tmp/remote.sock`); otherwise a `tcp://HOST`
//! endpoint that is not this machine's loopback is taken to be HOST, reached with the user's
//! own ssh configuration. The tunnel is one `ssh -N` process per env, started when the env's
//! ports are known and again by any command that finds it gone; `env delete` and `env stop`
//! end it. Its pid and ports are in the env directory (`tunnel.json`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::endpoint::Endpoint;

/// Where the engine's published ports are, seen from this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Reach {
    /// The engine runs here: its 127.0.0.1 is ours.
    Local,
    /// Through an SSH tunnel to `destination`, chosen as `why` says.
    Tunnel { destination: String, why: String },
}

impl Reach {
    /// Where an env's ports are for this process's environment and `endpoint`.
    pub fn of(endpoint: &Endpoint) -> Reach {
        Reach::from_vars(endpoint, |k| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        })
    }

    pub fn from_vars(endpoint: &Endpoint, var: impl Fn(&str) -> Option<String>) -> Reach {
        if let Some(destination) = var("KINDLING_DOCKER_SSH") {
            return Reach::Tunnel {
                destination,
                why: "KINDLING_DOCKER_SSH".into(),
            };
        }
        let Some(host) = remote_host(&endpoint.host) else {
            return Reach::Local;
        };
        Reach::Tunnel {
            destination: host.clone(),
            why: format!(
                "the engine ({}, from {}) is on {host}",
                endpoint.host, endpoint.source
            ),
        }
    }

    /// What `doctor` says of it.
    pub fn describe(&self) -> String {
        match self {
            Reach::Local => {
                "the engine runs on this machine: the env's ports are on 127.0.0.1".into()
            }
            Reach::Tunnel { destination, why } => format!(
                "{why}: the env's ports (API server, Gitea, registry, ingress) stay on its 127.0.0.1 and are reached here through `ssh -N -L 127.0.0.1:PORT:127.0.0.1:PORT {destination}`, one per env; the kubeconfig's https://127.0.0.1:PORT works through it"
            ),
        }
    }
}

/// The host of a `tcp://`/`http(s)://` endpoint that is not this machine's loopback.
fn remote_host(endpoint: &str) -> Option<String> {
    let (scheme, rest) = endpoint.split_once("://")?;
    if !matches!(scheme, "tcp" | "http" | "https") {
        return None;
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!host.is_empty() && !loopback).then(|| host.to_string())
}

/// The tunnel of an env, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnel {
    pub pid: u32,
    pub destination: String,
    pub ports: Vec<u16>,
}

fn record(env_dir: &Path) -> PathBuf {
    env_dir.join("tunnel.json")
}

/// The `ssh` arguments of a tunnel forwarding `ports` to `destination`'s loopback.
pub fn ssh_args(destination: &str, ports: &[u16]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-N",
        "-T",
        // A forward that cannot be made (the port is taken here) fails the tunnel, not
        // silently one port of it.
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ServerAliveInterval=30",
        // Never a prompt: the tunnel runs in the background.
        "-o",
        "BatchMode=yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for port in ports {
        args.push("-L".into());
        args.push(format!("127.0.0.1:{port}:127.0.0.1:{port}"));
    }
    args.push(destination.to_string());
    args
}

/// Whether process `pid` is alive (and not a zombie).
fn alive(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // `pid (comm) STATE …`: the state follows the last ')'.
    match status.rsplit_once(')') {
        Some((_, rest)) => !rest.trim_start().starts_with('Z'),
        // No procfs (macOS): ask kill(0) through the shell's `kill -0`.
        None => Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

/// Starts the env's tunnel unless one for the same ports runs; returns what changed, if
/// anything (for a progress line).
pub fn ensure(env_dir: &Path, destination: &str, ports: &[u16]) -> Result<Option<String>, String> {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let current: Option<Tunnel> = std::fs::read(record(env_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(t) = &current
        && t.destination == destination
        && t.ports == ports
        && alive(t.pid)
    {
        return Ok(None);
    }
    if let Some(t) = &current {
        stop_pid(t.pid);
    }
    let args = ssh_args(destination, &ports);
    crate::ui::call(|| format!("ssh {}", args.join(" ")));
    let mut command = Command::new("ssh");
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own process group: it outlives this command (the user's kubectl goes through it),
    // and a Ctrl-C at the terminal does not end it.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().map_err(|e| {
        format!("cannot start `ssh` for the tunnel to {destination}: {e}\nhelp: install an OpenSSH client, or run kindling on the engine's machine")
    })?;
    let pid = child.id();
    // Not waited for: it runs until stopped. A tunnel that fails at once (no route, refused
    // key, a port taken here) is seen on the next look.
    std::thread::sleep(std::time::Duration::from_millis(300));
    if matches!(child.try_wait(), Ok(Some(_))) || !alive(pid) {
        return Err(format!(
            "the SSH tunnel to {destination} ended at once (`ssh {}`)\nhelp: check that `ssh {destination} true` works without a prompt (BatchMode), and that these ports are free here: {}",
            args.join(" "),
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let tunnel = Tunnel {
        pid,
        destination: destination.to_string(),
        ports: ports.clone(),
    };
    let text = serde_json::to_vec(&tunnel).unwrap_or_default();
    crate::paths::write_atomic(&record(env_dir), &text, 0o600)
        .map_err(|e| format!("cannot record the tunnel in {}: {e}", env_dir.display()))?;
    Ok(Some(format!(
        "SSH tunnel to {destination} for ports {}",
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Ends the env's tunnel, if it has one; whether one was running.
pub fn stop(env_dir: &Path) -> bool {
    let current: Option<Tunnel> = std::fs::read(record(env_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let _ = std::fs::remove_file(record(env_dir));
    match current {
        Some(t) if alive(t.pid) => {
            stop_pid(t.pid);
            true
        }
        _ => false,
    }
}

/// Ends the tunnel `pid`, if that process is still kindling's tunnel (after a reboot the
/// number may be another program's: the tunnel's command line names its forwards), and waits
/// a little for it to go, so a new tunnel finds its ports free.
fn stop_pid(pid: u32) {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let is_tunnel = cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == b"ExitOnForwardFailure=yes");
    // Without procfs (macOS) the pid is trusted: kindling started it and recorded it.
    let procfs = Path::new("/proc/self").exists();
    if procfs && !is_tunnel {
        return;
    }
    let _ = Command::new("kill")
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
    for _ in 0..20 {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The port of a kubeconfig's `server: https://127.0.0.1:PORT`.
pub fn api_server_port(kubeconfig: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(kubeconfig).ok()?;
    text.lines().find_map(|l| {
        let url = l.trim().strip_prefix("server:")?.trim();
        let rest = url.split_once("://")?.1;
        rest.split('/').next()?.rsplit_once(':')?.1.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(host: &str) -> Endpoint {
        Endpoint {
            host: host.into(),
            tls_dir: None,
            source: "DOCKER_HOST".into(),
        }
    }

    #[test]
    fn remote_reach_tunnels_to_a_tcp_host_that_is_not_loopback() {
        let none = |_: &str| None;
        assert_eq!(
            Reach::from_vars(&endpoint("unix:///var/run/docker.sock"), none),
            Reach::Local
        );
        assert_eq!(
            Reach::from_vars(&endpoint("tcp://127.0.0.1:2375"), none),
            Reach::Local
        );
        assert_eq!(
            Reach::from_vars(&endpoint("tcp://localhost:2375"), none),
            Reach::Local
        );
        match Reach::from_vars(&endpoint("tcp://build-box.lan:2376"), none) {
            Reach::Tunnel { destination, why } => {
                assert_eq!(destination, "build-box.lan");
                assert!(why.contains("is on build-box.lan"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let named = |k: &str| (k == "KINDLING_DOCKER_SSH").then(|| "me@box".to_string());
        assert_eq!(
            Reach::from_vars(&endpoint("unix:///tmp/remote.sock"), named),
            Reach::Tunnel {
                destination: "me@box".into(),
                why: "KINDLING_DOCKER_SSH".into()
            }
        );
    }

    #[test]
    fn remote_tunnel_forwards_each_port_to_the_same_number() {
        let args = ssh_args("me@box", &[6443, 3000]);
        let joined = args.join(" ");
        assert!(
            joined.contains("-L 127.0.0.1:6443:127.0.0.1:6443 -L 127.0.0.1:3000:127.0.0.1:3000"),
            "{joined}"
        );
        assert!(joined.contains("ExitOnForwardFailure=yes"));
        assert!(joined.contains("BatchMode=yes"));
        assert_eq!(args.last().unwrap(), "me@box");
    }

    /// After a reboot the recorded pid may be another program's: it is left alone.
    #[test]
    fn remote_stop_kills_only_the_tunnel_it_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut other = Command::new("sleep").arg("30").spawn().unwrap();
        let record = Tunnel {
            pid: other.id(),
            destination: "me@box".into(),
            ports: vec![1],
        };
        std::fs::write(
            dir.path().join("tunnel.json"),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        stop(dir.path());
        assert!(other.try_wait().unwrap().is_none(), "killed a stranger");
        assert!(!dir.path().join("tunnel.json").exists());
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn remote_reads_the_api_server_port_of_a_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nclusters:\n- cluster:\n    server: https://127.0.0.1:40123\n  name: kind-x\n",
        )
        .unwrap();
        assert_eq!(api_server_port(&path), Some(40123));
    }
}
