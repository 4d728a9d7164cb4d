//! A stand-in for Gitea over HTTP: the REST calls kindling makes (health, token, repository),
//! answered with the payloads in tests/data/gitea/ (recorded from Gitea 1.22; tests/gitea.rs
//! checks their fields against the pinned Gitea's API definitions, go-gitea/gitea 1.27.0
//! `templates/swagger/v1_json.tmpl`), and Git smart HTTP
//! served by the real `git http-backend` CGI over the repositories below `root`, with basic
//! auth as Gitea does it.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use super::repo_dir;

/// The admin password of a Gitea in a pod, once its init container has set it.
pub type AdminPassword = Arc<std::sync::Mutex<Option<String>>>;

/// Decides whether an `Authorization` header may use the API and push.
pub type Authorize = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub struct FakeGitea {
    pub url: String,
    pub root: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// The tokens the fakes have issued (sha1 → scopes), as Gitea keeps them; a token is
/// deterministic per name, so the same name has the same token in every fake.
static ISSUED: std::sync::Mutex<Vec<(String, Vec<String>)>> = std::sync::Mutex::new(Vec::new());

/// The token a fake issues for `name`: the recorded payload's for `kindling` (the push token),
/// a stable value derived from the name for any other.
pub fn token_for(name: &str) -> String {
    if name == "kindling" {
        return recorded_token();
    }
    use sha2::Digest as _;
    let sum = sha2::Sha256::digest(format!("fake-gitea-token:{name}").as_bytes());
    sum.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

/// The scopes of an issued token, or `None` when `secret` is no token the fakes issued.
fn token_scopes(secret: &str) -> Option<Vec<String>> {
    ISSUED
        .lock()
        .unwrap()
        .iter()
        .find(|(t, _)| t == secret)
        .map(|(_, s)| s.clone())
}

/// The token the recorded "token created" payload carries.
pub fn recorded_token() -> String {
    let text =
        std::fs::read_to_string(repo_dir().join("tests/data/gitea/token-created.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["sha1"].as_str().unwrap().to_string()
}

pub fn basic(user: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl FakeGitea {
    /// Serves a fresh directory; `user`:`password` (and `user`:the recorded token) may push.
    pub fn start(user: &str, password: &str) -> FakeGitea {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut gitea = FakeGitea::serve(
            root,
            vec![basic(user, password), basic(user, &recorded_token())],
        );
        gitea._dir = Some(dir);
        gitea
    }

    /// A Gitea as the pod kindling runs in an existing cluster serves it: no admin until the
    /// pod's init container has made one with the password the fake kubelet puts in `admin`
    /// (`super::fake_pods::run_gitea_pods`); then the admin and its tokens may push.
    pub fn in_pod(user: &str) -> (FakeGitea, AdminPassword) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let admin: AdminPassword = Default::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (user, cell) = (user.to_string(), admin.clone());
        let authorize: Authorize = Arc::new(move |header: &str| {
            let password = cell.lock().unwrap().clone();
            password.is_some_and(|p| {
                header == basic(&user, &p) || header == basic(&user, &recorded_token())
            })
        });
        let served = root.clone();
        std::thread::spawn(move || run(listener, served, authorize));
        (
            FakeGitea {
                url,
                root,
                _dir: Some(dir),
            },
            admin,
        )
    }

    /// Serves `root` accepting exactly the `Authorization` headers in `accepted`.
    pub fn serve(root: PathBuf, accepted: Vec<String>) -> FakeGitea {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let authorize: Authorize =
            Arc::new(move |header: &str| accepted.iter().any(|a| a == header));
        let served = root.clone();
        std::thread::spawn(move || run(listener, served, authorize));
        FakeGitea {
            url,
            root,
            _dir: None,
        }
    }

    /// The commit `main` of kindling/source points at, if any.
    pub fn head(&self) -> Option<String> {
        let repo = self.root.join("kindling/source.git");
        let out = Command::new("git")
            .args(["rev-parse", "--verify", "-q", "refs/heads/main"])
            .current_dir(&repo)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// Answers every connection of `listener` (forever).
pub fn run(listener: std::net::TcpListener, root: PathBuf, authorize: Authorize) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        let root = root.clone();
        let authorize = authorize.clone();
        std::thread::spawn(move || handle(stream, &root, &*authorize));
    }
}

fn respond(stream: &mut std::net::TcpStream, status: &str, body: &str) {
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

fn recorded(name: &str) -> String {
    std::fs::read_to_string(repo_dir().join("tests/data/gitea").join(name)).unwrap()
}

fn handle(
    stream: std::net::TcpStream,
    root: &Path,
    authorize: &(dyn Fn(&str) -> bool + Send + Sync),
) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream);
    let Some(request) = super::http::read_request(&mut reader) else {
        return;
    };
    let mut stream = reader.into_inner();
    let (method, path, query, headers, body) = (
        request.method.as_str(),
        request.path.as_str(),
        request.query.as_str(),
        &request.headers,
        &request.body,
    );
    if path == "/api/healthz" {
        return respond(&mut stream, "200 OK", r#"{"status":"pass"}"#);
    }
    // Basic auth with a password, or with an access token as the password; a token's scopes
    // then limit it (go-gitea/gitea v1.27 services/context/permission.go CheckTokenScopes:
    // Git over HTTP needs write:repository to push, read or write to fetch, else 403).
    // Who signed in, and with what (every API call kindling makes uses basic auth).
    let (doer, secret) = headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(u, s)| (u.to_string(), s.to_string()))
        })
        .unwrap_or_default();
    let scopes = token_scopes(&secret);
    let authorized = scopes.is_some() || headers.get("authorization").is_some_and(|a| authorize(a));
    if let Some(scopes) = &scopes {
        let pushing = path.ends_with("/git-receive-pack") || query.contains("git-receive-pack");
        let fetching = path.ends_with("/git-upload-pack") || query.contains("git-upload-pack");
        let has = |s: &str| scopes.iter().any(|x| x == s);
        let allowed = if pushing {
            has("write:repository")
        } else if fetching {
            has("write:repository") || has("read:repository")
        } else {
            true
        };
        if !allowed {
            let _ = write!(
                stream,
                "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
    }
    if !authorized {
        let _ = write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"Gitea\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    // As in go-gitea/gitea v1.27.0 routers/api/v1/api.go: `/users/{username}/tokens` is for
    // that user only (reqSelfOrAdmin; the fake's users are no site admins), `POST /user/repos`
    // creates the repository under the signed-in user, and `/repos/{owner}/{repo}` reads it
    // there.
    match (method, path) {
        ("POST", p) if p.starts_with("/api/v1/users/") && p.ends_with("/tokens") => {
            let user = p
                .trim_start_matches("/api/v1/users/")
                .trim_end_matches("/tokens");
            if user != doer {
                return respond(
                    &mut stream,
                    "403 Forbidden",
                    r#"{"message":"doer should be the site admin or be same as the contextUser","url":""}"#,
                );
            }
            // The token of the name asked for, with the scopes asked for (the recorded
            // payload's shape).
            let asked: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let name = asked["name"].as_str().unwrap_or("kindling").to_string();
            let scopes: Vec<String> = asked["scopes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let token = token_for(&name);
            {
                let mut issued = ISSUED.lock().unwrap();
                issued.retain(|(t, _)| *t != token);
                issued.push((token.clone(), scopes.clone()));
            }
            let mut payload: serde_json::Value =
                serde_json::from_str(&recorded("token-created.json")).unwrap();
            payload["name"] = name.into();
            payload["sha1"] = token.clone().into();
            payload["token_last_eight"] = token[token.len() - 8..].to_string().into();
            payload["scopes"] = scopes.into();
            return respond(&mut stream, "201 Created", &payload.to_string());
        }
        ("POST", "/api/v1/user/repos") => {
            // CreateRepoOption.name: kindling's `source`, or a package's repository.
            let asked: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let name = asked["name"].as_str().unwrap_or("source");
            let repo = root.join(&doer).join(format!("{name}.git"));
            if repo.exists() {
                return respond(&mut stream, "409 Conflict", &recorded("repo-exists.json"));
            }
            std::fs::create_dir_all(&repo).unwrap();
            git(&repo, &["init", "-q", "--bare", "-b", "main"]);
            git(&repo, &["config", "http.receivepack", "true"]);
            return respond(&mut stream, "201 Created", &recorded("repo-created.json"));
        }
        ("GET", p) if p.starts_with("/api/v1/repos/") && p.matches('/').count() == 5 => {
            let (owner, name) = p
                .trim_start_matches("/api/v1/repos/")
                .split_once('/')
                .unwrap_or_default();
            if root.join(owner).join(format!("{name}.git")).exists() {
                return respond(&mut stream, "200 OK", &recorded("repo-created.json"));
            }
            return respond(
                &mut stream,
                "404 Not Found",
                r#"{"errors":null,"message":"The target couldn't be found.","url":""}"#,
            );
        }
        _ => {}
    }
    let mut cgi = Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env(
            "CONTENT_TYPE",
            headers.get("content-type").cloned().unwrap_or_default(),
        )
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            headers.get("content-encoding").cloned().unwrap_or_default(),
        )
        .env("REMOTE_USER", "kindling")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cgi.stdin.take().unwrap().write_all(body).unwrap();
    let output = cgi.wait_with_output().unwrap();
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            output
                .stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        })
        .unwrap_or((output.stdout.len(), 0));
    let head = String::from_utf8_lossy(&output.stdout[..split.0]).to_string();
    let content = &output.stdout[split.0 + split.1..];
    let mut status = "200 OK".to_string();
    let mut response = String::new();
    for line in head.lines() {
        match line.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            Some(_) => response.push_str(&format!("{line}\r\n")),
            None => {}
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    );
    let _ = stream.write_all(content);
    // A test's stand-in for another writer: `ROOT/after-fetch`, if there, runs once a fetch
    // has been served, so the branch moves between a client's fetch and its push.
    let hook = root.join("after-fetch");
    if method == "POST" && path.ends_with("/git-upload-pack") && hook.exists() {
        let _ = Command::new(&hook).current_dir(root).status();
    }
}
