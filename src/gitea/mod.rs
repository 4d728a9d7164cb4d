//! The env's local Gitea: the container kindling runs, the admin user (created through
//! `gitea admin` inside the container), an access token and the source repository (through
//! the REST API), and the push of a source snapshot ([`push`]).
//!
//! Clone URLs from both sides: the engine in the cluster clones
//! `http://kindling-ENV-gitea:3000/kindling/source.git` (container name on the cluster's Docker
//! network, which is also Gitea's ROOT_URL, so links Gitea shows work there); kindling on the
//! host pushes to `http://127.0.0.1:PORT/kindling/source.git`. Gitea serves both, because it
//! does not care which host name a request used.

pub mod in_cluster;
pub mod push;

use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::docker::{ContainerSpec, HealthCheck, PublishedPort, VolumeMount, env_labels};

/// The pinned Gitea: the release whose API spec the client is checked against.
pub const IMAGE: &str = crate::pins::GITEA.artifact;
pub const HTTP_PORT: u16 = 3000;
pub const ADMIN_USER: &str = "kindling";
pub const REPOSITORY: &str = "source";
/// The token's name in Gitea; recreated when lost (Gitea shows a token only once).
pub const TOKEN_NAME: &str = "kindling";
/// The read-only token the GitOps engine clones with, in the cluster.
pub const ENGINE_TOKEN_NAME: &str = "kindling-engine";

pub fn container_name(env: &str) -> String {
    format!("kindling-{env}-gitea")
}

/// The repository URL as the cluster (the GitOps engine) reaches it.
pub fn in_cluster_repo_url(env: &str) -> String {
    format!(
        "http://{}:{HTTP_PORT}/{ADMIN_USER}/{REPOSITORY}.git",
        container_name(env)
    )
}

/// Where Gitea is known inside the cluster: a Service without selector whose EndpointSlice
/// points at the container's address on the cluster's Docker network. Pods cannot count on
/// resolving Docker container names (k3s's CoreDNS does not forward to Docker's resolver),
/// but they can reach the nodes' network, and every cluster resolves its own Services.
pub const SERVICE_NAMESPACE: &str = "kindling-system";
pub const SERVICE_NAME: &str = "gitea";

/// The repository URL as the engine (inside the cluster) reaches it, through the Service.
pub fn service_repo_url() -> String {
    format!(
        "http://{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc.cluster.local:{HTTP_PORT}/{ADMIN_USER}/{REPOSITORY}.git"
    )
}

/// The Namespace, Service and EndpointSlice that make the Gitea container at `ip` reachable
/// as [`service_repo_url`].
/// The EndpointSlice that routes the Service to the Gitea container.
pub fn slice_name() -> String {
    format!("{SERVICE_NAME}-docker")
}

pub fn service_objects(ip: &str) -> Vec<serde_json::Value> {
    let labels = serde_json::json!({"app.kubernetes.io/managed-by": "kindling"});
    vec![
        serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": SERVICE_NAMESPACE, "labels": labels},
        }),
        serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE, "labels": labels},
            "spec": {"ports": [{"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"}]},
        }),
        serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "name": slice_name(),
                "namespace": SERVICE_NAMESPACE,
                "labels": {
                    "kubernetes.io/service-name": SERVICE_NAME,
                    "endpointslice.kubernetes.io/managed-by": "kindling",
                    "app.kubernetes.io/managed-by": "kindling",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}],
        }),
    ]
}

/// The repository URL as the host reaches it.
pub fn host_repo_url(host_port: u16) -> String {
    format!("http://127.0.0.1:{host_port}/{ADMIN_USER}/{REPOSITORY}.git")
}

/// The Gitea container of an env: sqlite, installer locked, registration off, no SSH, data
/// in a labelled volume, HTTP published on loopback only.
pub fn container_spec(env: &str, network: &str, host_port: u16) -> ContainerSpec {
    let name = container_name(env);
    let setting = |k: &str, v: &str| format!("GITEA__{k}={v}");
    ContainerSpec {
        name: name.clone(),
        image: IMAGE.to_string(),
        command: None,
        env: vec![
            setting("database__DB_TYPE", "sqlite3"),
            setting("security__INSTALL_LOCK", "true"),
            setting("service__DISABLE_REGISTRATION", "true"),
            setting("server__HTTP_PORT", &HTTP_PORT.to_string()),
            setting("server__DOMAIN", &name),
            setting("server__ROOT_URL", &format!("http://{name}:{HTTP_PORT}/")),
            setting("server__DISABLE_SSH", "true"),
            setting("server__START_SSH_SERVER", "false"),
            setting("repository__DEFAULT_BRANCH", "main"),
            setting("log__LEVEL", "Warn"),
        ],
        labels: env_labels(env),
        ports: vec![PublishedPort {
            container_port: HTTP_PORT,
            host_port,
        }],
        volumes: vec![VolumeMount {
            volume: format!("kindling-{env}-gitea-data"),
            path: "/data".to_string(),
        }],
        binds: Vec::new(),
        creation_labels: Default::default(),
        network: Some(network.to_string()),
        network_aliases: Vec::new(),
        restart: true,
        health: Some(HealthCheck {
            command: vec![
                "curl".into(),
                "-fsS".into(),
                format!("http://localhost:{HTTP_PORT}/api/healthz"),
            ],
            interval_seconds: 2,
            retries: 60,
        }),
    }
}

/// The command (run as user `git` in the container) that creates the admin user. Gitea picks
/// the password itself and prints it (`--random-password`): no password is ever on a command
/// line, where `ps`, /proc/PID/cmdline and Docker's exec events would show it
/// (go-gitea/gitea v1.27 cmd/admin_user_create.go: "generated random password is '%s'").
pub fn admin_create_command() -> Vec<String> {
    [
        "gitea",
        "admin",
        "user",
        "create",
        "--admin",
        "--username",
        ADMIN_USER,
        "--email",
        "kindling@localhost",
        "--random-password",
        "--random-password-length",
        "32",
        "--must-change-password=false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The password `gitea admin user create --random-password` printed.
pub fn generated_password(output: &str) -> Option<String> {
    const SAID: &str = "generated random password is '";
    output.lines().find_map(|line| {
        let rest = &line[line.find(SAID)? + SAID.len()..];
        let password = &rest[..rest.rfind('\'')?];
        (!password.is_empty()).then(|| password.to_string())
    })
}

/// Removes the admin user and what it owns (the source repository, which the next push makes
/// again): the way to a known password when kindling has lost the one Gitea generated
/// (go-gitea/gitea v1.27 cmd/admin_user_delete.go, `--purge`).
pub fn admin_delete_command() -> Vec<String> {
    [
        "gitea",
        "admin",
        "user",
        "delete",
        "--username",
        ADMIN_USER,
        "--purge",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What `gitea admin user create` prints when the user is there already (a rerun).
pub fn admin_already_exists(output: &str) -> bool {
    output.contains("user already exists")
}

/// The user Gitea runs as in its image; `gitea admin` must run as it.
const GITEA_OS_USER: &str = "git";

/// The admin user inside the Gitea container, and its password. A rerun finds the user there
/// and keeps `known` (the password in the env's state; Gitea's volume outlives the container).
/// When the user is there but its password was never recorded (a create stopped between the
/// two), the user is removed and made again, so the stored credentials always work. The
/// password is never on a command line and never in an error.
pub async fn ensure_admin(
    docker: &crate::docker::DockerClient,
    container: &str,
    known: Option<&str>,
) -> Result<(crate::docker::Ensured, String), GiteaError> {
    let failed = |e: String| GiteaError::Admin {
        container: container.to_string(),
        reason: e,
    };
    let run = |argv: Vec<String>| async move {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        docker
            .exec_as(container, Some(GITEA_OS_USER), &argv)
            .await
            .map_err(|e| e.to_string())
    };
    let create = || async {
        let out = run(admin_create_command()).await.map_err(failed)?;
        let said = format!("{}{}", out.stdout, out.stderr);
        let generated = generated_password(&out.stdout);
        let shown = |text: &str| match &generated {
            Some(p) => redact(text, p),
            None => text.trim().to_string(),
        };
        match (out.exit_code, generated.clone()) {
            (0, Some(password)) => Ok(Ok(password)),
            (0, None) => Err(failed(
                "gitea printed no generated password (is the image a Gitea with `--random-password`?)".into(),
            )),
            _ if admin_already_exists(&said) => Ok(Err(())),
            _ => Err(failed(shown(&said))),
        }
    };
    match create().await? {
        Ok(password) => Ok((crate::docker::Ensured::Created, password)),
        Err(()) => match known {
            Some(password) => Ok((crate::docker::Ensured::Existed, password.to_string())),
            None => {
                let out = run(admin_delete_command()).await.map_err(failed)?;
                if out.exit_code != 0 {
                    return Err(failed(
                        format!("{}{}", out.stdout, out.stderr).trim().to_string(),
                    ));
                }
                match create().await? {
                    Ok(password) => Ok((crate::docker::Ensured::Created, password)),
                    Err(()) => Err(failed(
                        "the admin user is still there after deleting it".into(),
                    )),
                }
            }
        },
    }
}

/// Output of a command that was given the password never shows it in an error.
fn redact(text: &str, password: &str) -> String {
    text.replace(password, "********").trim().to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum GiteaError {
    #[error("cannot create Gitea's admin user in {container}: {reason}")]
    Admin { container: String, reason: String },
    #[error("Gitea at {url} is not reachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Gitea refused the credentials for {action} (HTTP 401){}\nhelp: the stored admin password or token does not match this Gitea; `kindling env delete` and create again, or restore the env's state", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Unauthorized {
        action: String,
        message: Option<String>,
    },
    #[error("Gitea rejected {action} (HTTP {status}): {message}")]
    Rejected {
        action: String,
        status: u16,
        message: String,
    },
    #[error("Gitea at {url} did not become healthy within {seconds}s: {last}")]
    NotHealthy {
        url: String,
        seconds: u64,
        last: String,
    },
}

/// How often a call meets a Gitea that is restarting before it fails, and the pause that grows
/// between tries.
const CALL_ATTEMPTS: u32 = 4;
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What an error body says, in one line: Gitea's JSON `message`; the title of an HTML error
/// page (a proxy's, or Gitea's own 500 page); else the first line, cut short.
fn error_message(body: &str) -> String {
    if let Some(message) = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
    {
        return message;
    }
    let lower = body.to_ascii_lowercase();
    if let (Some(start), Some(end)) = (lower.find("<title>"), lower.find("</title>"))
        && start + 7 <= end
    {
        return format!("an HTML page: {}", body[start + 7..end].trim());
    }
    let first = body.trim().lines().next().unwrap_or_default();
    let cut: String = first.chars().take(200).collect();
    if cut.len() < first.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// A Gitea API client for one instance, authenticated as the admin.
pub struct GiteaClient {
    base_url: String,
    agent: ureq::Agent,
    auth: Auth,
}

#[derive(Clone)]
pub enum Auth {
    Basic { user: String, password: String },
    Token(String),
}

impl Auth {
    fn header(&self) -> String {
        match self {
            Auth::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            Auth::Token(token) => format!("token {token}"),
        }
    }
}

#[derive(Debug, Serialize)]
struct CreateAccessTokenOption<'a> {
    name: &'a str,
    scopes: Vec<&'a str>,
}

#[derive(Debug, Deserialize)]
pub struct AccessToken {
    pub id: i64,
    pub name: String,
    pub sha1: String,
}

#[derive(Debug, Serialize)]
struct CreateRepoOption<'a> {
    name: &'a str,
    private: bool,
    default_branch: &'a str,
    auto_init: bool,
    description: &'a str,
}

#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Repository {
    pub id: i64,
    pub name: String,
    pub full_name: String,
    pub clone_url: String,
    pub default_branch: String,
}

struct Response {
    status: u16,
    body: String,
}

impl GiteaClient {
    /// `base_url` is Gitea's root as the host reaches it (`http://127.0.0.1:3001`).
    pub fn new(base_url: &str, auth: Auth) -> GiteaClient {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)));
        // ureq takes HTTP(S)_PROXY from the environment; a Gitea on this machine is never
        // reached through a corporate proxy, whatever NO_PROXY says.
        if crate::cluster::proxy::is_loopback_url(base_url) {
            config = config.proxy(None);
        }
        let agent: ureq::Agent = config.build().into();
        GiteaClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            agent,
            auth,
        }
    }

    /// One API call. A Gitea that is restarting (5xx, or no answer) is asked again a few
    /// times before the call fails: every call kindling makes is safe to repeat (a token whose
    /// name is taken is replaced, an existing repository reused).
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        action: &str,
    ) -> Result<Response, GiteaError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.call_once(method, path, body.clone(), action);
            let transient = match &result {
                Ok(r) => r.status >= 500,
                Err(GiteaError::Unreachable { .. }) => true,
                Err(_) => false,
            };
            if !transient || attempt >= CALL_ATTEMPTS {
                return result;
            }
            std::thread::sleep(RETRY_PAUSE * attempt);
        }
    }

    fn call_once(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        action: &str,
    ) -> Result<Response, GiteaError> {
        let url = format!("{}{path}", self.base_url);
        let unreachable = |e: ureq::Error| GiteaError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        };
        crate::ui::call(|| format!("gitea: {method} {url}"));
        let auth = self.auth.header();
        let mut response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            (_, Some(body)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
            (_, None) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        }
        .map_err(unreachable)?;
        let status = response.status().as_u16();
        let mut text = String::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(1 << 20)
            .read_to_string(&mut text);
        if status == 401 {
            return Err(GiteaError::Unauthorized {
                action: action.to_string(),
                message: Some(error_message(&text)).filter(|m| !m.is_empty()),
            });
        }
        Ok(Response { status, body: text })
    }

    fn rejected(action: &str, r: &Response) -> GiteaError {
        GiteaError::Rejected {
            action: action.to_string(),
            status: r.status,
            message: error_message(&r.body),
        }
    }

    fn parse<T: for<'de> Deserialize<'de>>(action: &str, r: &Response) -> Result<T, GiteaError> {
        serde_json::from_str(&r.body).map_err(|e| GiteaError::Rejected {
            action: action.to_string(),
            status: r.status,
            message: format!("unexpected response ({e})"),
        })
    }

    /// Who the calls act as, and so who owns the source repository (`POST /user/repos` makes
    /// it under the signed-in user).
    fn owner(&self) -> &str {
        match &self.auth {
            Auth::Basic { user, .. } => user,
            Auth::Token(_) => ADMIN_USER,
        }
    }

    /// Waits for `/api/healthz` to answer 200, bounded: a Gitea that accepts connections
    /// and never answers is given up on at `timeout` too, not after a request's own 30 s.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<(), GiteaError> {
        let deadline = std::time::Instant::now() + timeout;
        let url = format!("{}/api/healthz", self.base_url);
        loop {
            let left = deadline
                .saturating_duration_since(std::time::Instant::now())
                .max(Duration::from_millis(200));
            let request = self
                .agent
                .get(&url)
                .config()
                .timeout_global(Some(left))
                .build();
            let last = match request.call() {
                Ok(r) if r.status().as_u16() == 200 => return Ok(()),
                Ok(r) => format!("HTTP {}", r.status().as_u16()),
                Err(e) => e.to_string(),
            };
            if std::time::Instant::now() >= deadline {
                return Err(GiteaError::NotHealthy {
                    url,
                    seconds: timeout.as_secs(),
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Creates the token kindling pushes with, from the host (it never enters a cluster):
    /// repository write, and reading the user.
    pub fn create_token(&self) -> Result<AccessToken, GiteaError> {
        self.create_named_token(TOKEN_NAME, &["write:repository", "read:user"])
    }

    /// Creates the token the GitOps engine clones with: repository read only, so the copy in
    /// the cluster (readable by whoever reads its Secret) cannot push (go-gitea/gitea v1.27
    /// services/context/permission.go CheckTokenScopes: a push needs write:repository).
    pub fn create_engine_token(&self) -> Result<AccessToken, GiteaError> {
        self.create_named_token(ENGINE_TOKEN_NAME, &["read:repository"])
    }

    /// Creates an access token of the signed-in user. Gitea shows a token only when it is
    /// created, so a token of the same name left by an earlier run is deleted and made anew.
    fn create_named_token(&self, name: &str, scopes: &[&str]) -> Result<AccessToken, GiteaError> {
        let action = "creating an access token";
        // For the user kindling signs in as: Gitea lets a user make tokens for itself only
        // (go-gitea/gitea v1.27.0 routers/api/v1/api.go, reqSelfOrAdmin on
        // /users/{username}/tokens), and an existing Gitea's user is rarely `kindling`.
        let path = format!("/api/v1/users/{}/tokens", self.owner());
        let body = serde_json::to_value(CreateAccessTokenOption {
            name,
            scopes: scopes.to_vec(),
        })
        .unwrap_or_default();
        let r = self.call("POST", &path, Some(body.clone()), action)?;
        if r.status == 201 {
            return Self::parse(action, &r);
        }
        let used = r.body.contains("has been used already");
        if (r.status == 400 || r.status == 422) && used {
            let d = self.call(
                "DELETE",
                &format!("{path}/{name}"),
                None,
                "deleting the old access token",
            )?;
            if d.status != 204 && d.status != 404 {
                return Err(Self::rejected("deleting the old access token", &d));
            }
            let r = self.call("POST", &path, Some(body), action)?;
            if r.status == 201 {
                return Self::parse(action, &r);
            }
            return Err(Self::rejected(action, &r));
        }
        Err(Self::rejected(action, &r))
    }

    /// Creates the private source repository, or returns it when it exists.
    pub fn ensure_repository(&self) -> Result<Repository, GiteaError> {
        self.ensure_named_repository(
            REPOSITORY,
            "Source snapshots pushed by kindling; the GitOps engine reconciles from here",
        )
    }

    /// Creates the private repository `name` of the signed-in user (an idpbuilder package's
    /// directory), or returns it when it exists.
    pub fn ensure_named_repository(
        &self,
        name: &str,
        description: &str,
    ) -> Result<Repository, GiteaError> {
        let what = if name == REPOSITORY {
            "the source repository".to_string()
        } else {
            format!("repository {name}")
        };
        let creating = format!("creating {what}");
        let action = creating.as_str();
        let body = serde_json::to_value(CreateRepoOption {
            name,
            private: true,
            default_branch: "main",
            auto_init: false,
            description,
        })
        .unwrap_or_default();
        let r = self.call("POST", "/api/v1/user/repos", Some(body), action)?;
        match r.status {
            201 => Self::parse(action, &r),
            409 => {
                let reading = format!("reading {what}");
                let action = reading.as_str();
                let r = self.call(
                    "GET",
                    &format!("/api/v1/repos/{}/{name}", self.owner()),
                    None,
                    action,
                )?;
                if r.status == 200 {
                    Self::parse(action, &r)
                } else {
                    Err(Self::rejected(action, &r))
                }
            }
            _ => Err(Self::rejected(action, &r)),
        }
    }
}
