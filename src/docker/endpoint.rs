//! Which Docker engine kindling talks to: the one the `docker` CLI would use, so that kindling,
//! kind (which runs the CLI) and k3d (which builds its client with the CLI's own code) all
//! reach the same engine. Docker Desktop, Colima, OrbStack, Rancher Desktop and remote engines
//! are reached through a CLI context or `DOCKER_HOST`, not the default socket.
//!
//! Order, as docker/cli v28.5.2 `cli/command/cli.go` resolveContextName has it (without the
//! command-line flags, which kindling does not take): `DOCKER_HOST`, then `DOCKER_CONTEXT`,
//! then `currentContext` in `$DOCKER_CONFIG/config.json` (default `~/.docker`), then the
//! default socket. A context is read from the CLI's store (`cli/context/store`):
//! `contexts/meta/<sha256 of the name>/meta.json` (`Endpoints.docker.Host`,
//! `SkipTLSVerify`), TLS files in `contexts/tls/<sha256>/docker/{ca,cert,key}.pem`. A context
//! or endpoint that cannot be used is an error, never a silent fall back to the default socket.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::DockerError;

pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Where the engine is and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// `unix:///…`, `tcp://host:port`.
    pub host: String,
    /// The directory with `ca.pem`, `cert.pem` and `key.pem` when TLS is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_dir: Option<PathBuf>,
    /// `DOCKER_HOST`, `DOCKER_CONTEXT=NAME`, `context NAME (config.json)`, or `default`.
    pub source: String,
}

impl Endpoint {
    /// The environment that points the docker CLI, kind and k3d at this same engine.
    pub fn child_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("DOCKER_HOST".to_string(), self.host.clone())];
        if let Some(dir) = &self.tls_dir {
            env.push(("DOCKER_TLS_VERIFY".to_string(), "1".to_string()));
            env.push(("DOCKER_CERT_PATH".to_string(), dir.display().to_string()));
        }
        env
    }
}

/// The endpoint for this process's environment.
pub fn resolve() -> Result<Endpoint, DockerError> {
    resolve_from(
        |k| std::env::var(k).ok().filter(|v| !v.is_empty()),
        directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()),
    )
}

/// `resolve` with the environment and home directory given (tests).
pub fn resolve_from(
    var: impl Fn(&str) -> Option<String>,
    home: Option<PathBuf>,
) -> Result<Endpoint, DockerError> {
    let config_dir = var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".docker")));
    if let Some(host) = var("DOCKER_HOST") {
        // docker/cli cli/flags/options.go: DOCKER_TLS_VERIFY turns TLS on, with the files in
        // DOCKER_CERT_PATH (default: the config dir).
        let tls_dir = var("DOCKER_TLS_VERIFY").map(|_| {
            var("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .or_else(|| config_dir.clone())
                .unwrap_or_default()
        });
        return checked(Endpoint {
            host,
            tls_dir,
            source: "DOCKER_HOST".into(),
        });
    }
    let (context, source) = match var("DOCKER_CONTEXT") {
        Some(name) => {
            let source = format!("DOCKER_CONTEXT={name}");
            (Some(name), source)
        }
        None => match config_dir.as_deref().and_then(current_context) {
            Some(name) => {
                let source = format!("context {name} (currentContext in config.json)");
                (Some(name), source)
            }
            None => (None, "default".into()),
        },
    };
    match context.filter(|c| c != "default") {
        None => Ok(Endpoint {
            host: DEFAULT_HOST.into(),
            tls_dir: None,
            source: "default".into(),
        }),
        Some(name) => {
            let dir = config_dir.ok_or_else(|| {
                DockerError::Endpoint(format!(
                    "docker context {name} ({source}) cannot be read: no home directory and no DOCKER_CONFIG"
                ))
            })?;
            checked(read_context(&dir, &name, source)?)
        }
    }
}

fn current_context(config_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config_dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    config["currentContext"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

fn digest(name: &str) -> String {
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_context(config_dir: &Path, name: &str, source: String) -> Result<Endpoint, DockerError> {
    let id = digest(name);
    let meta_path = config_dir
        .join("contexts")
        .join("meta")
        .join(&id)
        .join("meta.json");
    let text = std::fs::read_to_string(&meta_path).map_err(|e| {
        DockerError::Endpoint(format!(
            "docker context {name} ({source}) is not in {}: {e}\nhelp: `docker context ls` lists the contexts; unset DOCKER_CONTEXT or `docker context use default`",
            meta_path.display()
        ))
    })?;
    let meta: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| DockerError::Endpoint(format!("{}: {e}", meta_path.display())))?;
    let endpoint = &meta["Endpoints"]["docker"];
    let host = endpoint["Host"].as_str().unwrap_or_default().to_string();
    if host.is_empty() {
        return Err(DockerError::Endpoint(format!(
            "docker context {name} ({source}) names no Docker host in {}",
            meta_path.display()
        )));
    }
    if endpoint["SkipTLSVerify"] == true {
        return Err(DockerError::Endpoint(format!(
            "docker context {name} ({source}) skips TLS verification, which kindling does not do\nhelp: give the context its CA (`docker context update {name} --docker \"host={host},ca=…,cert=…,key=…\"`)"
        )));
    }
    let tls = config_dir
        .join("contexts")
        .join("tls")
        .join(&id)
        .join("docker");
    Ok(Endpoint {
        host,
        tls_dir: tls.is_dir().then_some(tls),
        source,
    })
}

/// Refuses what kindling cannot connect to, saying how to get there instead.
fn checked(endpoint: Endpoint) -> Result<Endpoint, DockerError> {
    let host = endpoint.host.as_str();
    let scheme = host.split("://").next().unwrap_or_default();
    match scheme {
        "unix" | "tcp" | "http" | "https" if host.contains("://") => {}
        "ssh" => {
            return Err(DockerError::Endpoint(format!(
                "the Docker endpoint {host} ({}) is reached over ssh, which kindling does not speak\nhelp: forward the engine's socket and point DOCKER_HOST at it: `ssh -nNT -L /tmp/remote-docker.sock:/var/run/docker.sock HOST &` then `DOCKER_HOST=unix:///tmp/remote-docker.sock KINDLING_DOCKER_SSH=HOST` (kindling then reaches the env's ports through an SSH tunnel to HOST)",
                endpoint.source
            )));
        }
        _ => {
            return Err(DockerError::Endpoint(format!(
                "the Docker endpoint {host:?} ({}) is not a unix://, tcp://, http:// or https:// address",
                endpoint.source
            )));
        }
    }
    if let Some(dir) = &endpoint.tls_dir {
        let missing: Vec<&str> = ["ca.pem", "cert.pem", "key.pem"]
            .into_iter()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(DockerError::Endpoint(format!(
                "TLS to the Docker endpoint {host} ({}) needs {} in {}\nhelp: kindling talks TLS to Docker with a client certificate, as `docker --tlsverify` does",
                endpoint.source,
                missing.join(", "),
                dir.display()
            )));
        }
    }
    Ok(endpoint)
}

/// The bollard client for an endpoint.
pub fn client(endpoint: &Endpoint) -> Result<bollard::Docker, DockerError> {
    let unreachable = |e: bollard::errors::Error| {
        DockerError::Unreachable(format!("{} ({}): {e}", endpoint.host, endpoint.source))
    };
    let timeout = 120;
    let version = bollard::API_DEFAULT_VERSION;
    let host = endpoint.host.as_str();
    if host.starts_with("unix://") {
        return bollard::Docker::connect_with_unix(host, timeout, version).map_err(unreachable);
    }
    match &endpoint.tls_dir {
        Some(dir) => bollard::Docker::connect_with_ssl(
            host,
            &dir.join("key.pem"),
            &dir.join("cert.pem"),
            &dir.join("ca.pem"),
            timeout,
            version,
        )
        .map_err(unreachable),
        None => bollard::Docker::connect_with_http(host, timeout, version).map_err(unreachable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn context(config: &Path, name: &str, meta: serde_json::Value) {
        let dir = config.join("contexts/meta").join(digest(name));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    }

    #[test]
    fn docker_endpoint_follows_the_cli_order() {
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join(".docker");
        std::fs::create_dir_all(&config).unwrap();
        let h = || Some(home.path().to_path_buf());
        // Nothing set: the default socket.
        let e = resolve_from(vars(&[]), h()).unwrap();
        assert_eq!(
            (e.host.as_str(), e.source.as_str()),
            (DEFAULT_HOST, "default")
        );
        // The current context of config.json (the digest is sha256 of the name, as
        // docker/cli's store computes it: go-digest FromString(name).Encoded()).
        assert_eq!(
            digest("colima"),
            "f24fd3749c1368328e2b149bec149cb6795619f244c5b584e844961215dadd16"
        );
        context(
            &config,
            "colima",
            serde_json::json!({"Name": "colima", "Metadata": {}, "Endpoints": {"docker": {"Host": "unix:///home/u/.colima/default/docker.sock", "SkipTLSVerify": false}}}),
        );
        std::fs::write(
            config.join("config.json"),
            r#"{"currentContext": "colima"}"#,
        )
        .unwrap();
        let e = resolve_from(vars(&[]), h()).unwrap();
        assert_eq!(e.host, "unix:///home/u/.colima/default/docker.sock");
        assert_eq!(e.source, "context colima (currentContext in config.json)");
        // DOCKER_CONTEXT over config.json; "default" is the default socket.
        let e = resolve_from(vars(&[("DOCKER_CONTEXT", "default")]), h()).unwrap();
        assert_eq!(e.host, DEFAULT_HOST);
        let err = resolve_from(vars(&[("DOCKER_CONTEXT", "gone")]), h()).unwrap_err();
        assert!(
            err.to_string()
                .contains("docker context gone (DOCKER_CONTEXT=gone) is not in"),
            "{err}"
        );
        // DOCKER_HOST over everything.
        let e = resolve_from(
            vars(&[
                ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
                ("DOCKER_CONTEXT", "gone"),
            ]),
            h(),
        )
        .unwrap();
        assert_eq!(
            (e.host.as_str(), e.source.as_str()),
            ("tcp://127.0.0.1:2375", "DOCKER_HOST")
        );
        assert_eq!(
            e.child_env(),
            [(
                "DOCKER_HOST".to_string(),
                "tcp://127.0.0.1:2375".to_string()
            )]
        );
        // TLS from DOCKER_TLS_VERIFY: all three files are needed.
        let certs = home.path().join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::write(certs.join("ca.pem"), "x").unwrap();
        let tls = [
            ("DOCKER_HOST", "tcp://10.0.0.5:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
        ];
        let err = resolve_from(vars(&tls), h()).unwrap_err();
        assert!(
            err.to_string().contains("needs cert.pem, key.pem in"),
            "{err}"
        );
        std::fs::write(certs.join("cert.pem"), "x").unwrap();
        std::fs::write(certs.join("key.pem"), "x").unwrap();
        let e = resolve_from(vars(&tls), h()).unwrap();
        assert_eq!(e.tls_dir.as_deref(), Some(certs.as_path()));
        assert!(
            e.child_env()
                .contains(&("DOCKER_CERT_PATH".to_string(), certs.display().to_string()))
        );
        // ssh:// and nonsense are refused with the way out.
        let err = resolve_from(vars(&[("DOCKER_HOST", "ssh://me@box")]), h()).unwrap_err();
        assert!(err.to_string().contains("ssh -nNT -L"), "{err}");
        assert!(resolve_from(vars(&[("DOCKER_HOST", "box:2375")]), h()).is_err());
        // A context that skips TLS verification is refused.
        context(
            &config,
            "lax",
            serde_json::json!({"Name": "lax", "Endpoints": {"docker": {"Host": "tcp://10.0.0.5:2376", "SkipTLSVerify": true}}}),
        );
        let err = resolve_from(vars(&[("DOCKER_CONTEXT", "lax")]), h()).unwrap_err();
        assert!(err.to_string().contains("skips TLS verification"), "{err}");
    }
}
