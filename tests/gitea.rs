//! The Gitea client against an HTTP mock replaying real Gitea response shapes
//! (tests/data/gitea/, recorded from 1.22, each checked against the pinned 1.27.0 API spec),
//! and every request it sends checked against that OpenAPI spec
//! (tests/fixtures/upstream/schemas/gitea-swagger.v1.json): path, method, required body fields,
//! no unknown fields.

mod common;

mod gitea {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};

    use kindling::gitea::{self, Auth, GiteaClient, GiteaError};
    use serde_json::Value;

    use super::common::{repo_dir, schemas_dir};

    #[derive(Debug, Clone)]
    struct Recorded {
        method: String,
        path: String,
        authorization: String,
        body: String,
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(repo_dir().join("tests/data/gitea").join(name)).unwrap()
    }

    /// Answers requests in order with `(status, body)`, recording each request.
    fn mock(replies: Vec<(u16, String)>) -> (String, Arc<Mutex<Vec<Recorded>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let log = recorded.clone();
        std::thread::spawn(move || {
            for (status, body) in replies {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let path = parts.next().unwrap_or_default().to_string();
                let (mut length, mut authorization) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "authorization" => authorization = value.trim().to_string(),
                        _ => {}
                    }
                }
                let mut body_bytes = vec![0; length];
                reader.read_exact(&mut body_bytes).unwrap();
                log.lock().unwrap().push(Recorded {
                    method,
                    path,
                    authorization,
                    body: String::from_utf8(body_bytes).unwrap(),
                });
                let reason = match status {
                    200 => "OK",
                    201 => "Created",
                    204 => "No Content",
                    400 => "Bad Request",
                    401 => "Unauthorized",
                    409 => "Conflict",
                    500 => "Internal Server Error",
                    502 => "Bad Gateway",
                    _ => "Unprocessable Entity",
                };
                let mut stream = reader.into_inner();
                write!(stream, "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json;charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
            }
        });
        (url, recorded)
    }

    fn spec() -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(schemas_dir().join("gitea-swagger.v1.json")).unwrap(),
        )
        .unwrap()
    }

    fn matches_template(template: &str, path: &str) -> bool {
        let t: Vec<&str> = template.trim_matches('/').split('/').collect();
        let p: Vec<&str> = path.trim_matches('/').split('/').collect();
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
    }

    /// Checks one request against the spec; `Err` says what is wrong.
    fn check_against_spec(spec: &Value, r: &Recorded) -> Result<(), String> {
        let base = spec["basePath"].as_str().unwrap();
        let path = r.path.split('?').next().unwrap();
        let Some(api_path) = path.strip_prefix(base) else {
            return Err(format!("{} is outside {base}", r.path));
        };
        let (template, item) = spec["paths"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(t, _)| matches_template(t, api_path))
            .ok_or_else(|| format!("no path in the spec matches {api_path}"))?;
        let operation = &item[r.method.to_lowercase()];
        if operation.is_null() {
            return Err(format!("{} {template} is not in the spec", r.method));
        }
        let body_param = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["in"] == "body");
        if let Some(param) = body_param {
            let reference = param["schema"]["$ref"]
                .as_str()
                .unwrap()
                .trim_start_matches("#/definitions/");
            let definition = &spec["definitions"][reference];
            let body: Value =
                serde_json::from_str(&r.body).map_err(|e| format!("body is not JSON: {e}"))?;
            for field in definition["required"].as_array().into_iter().flatten() {
                if body.get(field.as_str().unwrap()).is_none() {
                    return Err(format!("{reference}: required field {field} missing"));
                }
            }
            for key in body.as_object().unwrap().keys() {
                if definition["properties"].get(key).is_none() {
                    return Err(format!("{reference} has no field {key}"));
                }
            }
        } else if !r.body.is_empty() {
            return Err(format!("{} {template} takes no body", r.method));
        }
        Ok(())
    }

    fn assert_all_in_spec(recorded: &[Recorded]) {
        let spec = spec();
        for r in recorded {
            check_against_spec(&spec, r).unwrap_or_else(|e| panic!("{} {}: {e}", r.method, r.path));
        }
    }

    fn basic() -> Auth {
        Auth::Basic {
            user: "kindling".into(),
            password: "s3cret".into(),
        }
    }

    #[test]
    fn gitea_recorded_responses_follow_the_api_definitions() {
        let spec = spec();
        for (file, definition) in [
            ("token-created.json", "AccessToken"),
            ("repo-created.json", "Repository"),
            ("repo-exists.json", "APIError"),
            ("token-name-used.json", "APIError"),
            ("unauthorized.json", "APIError"),
            ("invalid-repo-name.json", "APIError"),
        ] {
            let v: Value = serde_json::from_str(&fixture(file)).unwrap();
            let properties = &spec["definitions"][definition]["properties"];
            for key in v.as_object().unwrap().keys() {
                assert!(
                    properties.get(key).is_some(),
                    "{file}: {definition} has no field {key}"
                );
            }
        }
    }

    #[test]
    fn gitea_spec_check_catches_a_wrong_request() {
        let spec = spec();
        let bad_field = Recorded {
            method: "POST".into(),
            path: "/api/v1/user/repos".into(),
            authorization: String::new(),
            body: r#"{"name":"x","privat":true}"#.into(),
        };
        assert_eq!(
            check_against_spec(&spec, &bad_field).unwrap_err(),
            "CreateRepoOption has no field privat"
        );
        let missing = Recorded {
            body: r#"{"private":true}"#.into(),
            ..bad_field.clone()
        };
        assert!(
            check_against_spec(&spec, &missing)
                .unwrap_err()
                .contains("required field \"name\" missing")
        );
        let wrong_method = Recorded {
            method: "PUT".into(),
            body: String::new(),
            ..bad_field
        };
        assert!(
            check_against_spec(&spec, &wrong_method)
                .unwrap_err()
                .contains("is not in the spec")
        );
    }

    #[test]
    fn gitea_token_is_created_with_basic_auth() {
        let (url, recorded) = mock(vec![(201, fixture("token-created.json"))]);
        let token = GiteaClient::new(&url, basic()).create_token().unwrap();
        assert_eq!(token.sha1, "9f5e2cf1b51d2c1bd3b4c2c39cb2d9e8a0f6b7c1");
        let recorded = recorded.lock().unwrap().clone();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].method, "POST");
        assert_eq!(recorded[0].path, "/api/v1/users/kindling/tokens");
        assert_eq!(recorded[0].authorization, "Basic a2luZGxpbmc6czNjcmV0");
        let body: Value = serde_json::from_str(&recorded[0].body).unwrap();
        assert_eq!(body["name"], "kindling");
        assert_all_in_spec(&recorded);
    }

    const ERROR_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n";

    #[test]
    fn gitea_restarting_is_asked_again() {
        // A Gitea behind a proxy while it restarts: an HTML error page, then its own 500, then
        // the answer.
        let (url, recorded) = mock(vec![
            (502, ERROR_PAGE.to_string()),
            (
                500,
                r#"{"message":"database is locked","url":""}"#.to_string(),
            ),
            (201, fixture("token-created.json")),
        ]);
        let token = GiteaClient::new(&url, basic()).create_token().unwrap();
        assert_eq!(token.sha1, "9f5e2cf1b51d2c1bd3b4c2c39cb2d9e8a0f6b7c1");
        assert_eq!(recorded.lock().unwrap().len(), 3);
    }

    #[test]
    fn gitea_error_pages_become_one_clear_line() {
        let (url, recorded) = mock(vec![(502, ERROR_PAGE.to_string()); 4]);
        let err = GiteaClient::new(&url, basic())
            .create_token()
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTP 502"), "{err}");
        assert!(err.contains("an HTML page: 502 Bad Gateway"), "{err}");
        assert!(!err.contains('<'), "{err}");
        // Asked as often as a restart may take, then it stops.
        assert_eq!(recorded.lock().unwrap().len(), 4);
    }

    #[test]
    fn gitea_token_left_by_an_earlier_run_is_replaced() {
        let (url, recorded) = mock(vec![
            (400, fixture("token-name-used.json")),
            (204, String::new()),
            (201, fixture("token-created.json")),
        ]);
        GiteaClient::new(&url, basic()).create_token().unwrap();
        let recorded = recorded.lock().unwrap().clone();
        let calls: Vec<String> = recorded
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(
            calls,
            [
                "POST /api/v1/users/kindling/tokens",
                "DELETE /api/v1/users/kindling/tokens/kindling",
                "POST /api/v1/users/kindling/tokens",
            ]
        );
        assert_all_in_spec(&recorded);
    }

    #[test]
    fn gitea_repository_is_created_private_with_main_and_reused_when_it_exists() {
        let (url, recorded) = mock(vec![(201, fixture("repo-created.json"))]);
        let client = GiteaClient::new(&url, Auth::Token("9f5e".into()));
        let repo = client.ensure_repository().unwrap();
        assert_eq!(repo.full_name, "kindling/source");
        assert_eq!(repo.clone_url, gitea::in_cluster_repo_url("dev"));
        let first = recorded.lock().unwrap().clone();
        assert_eq!(first[0].authorization, "token 9f5e");
        let body: Value = serde_json::from_str(&first[0].body).unwrap();
        assert_eq!(body["private"], true);
        assert_eq!(body["default_branch"], "main");
        assert_all_in_spec(&first);

        let (url, recorded) = mock(vec![
            (409, fixture("repo-exists.json")),
            (200, fixture("repo-created.json")),
        ]);
        let again = GiteaClient::new(&url, Auth::Token("9f5e".into()))
            .ensure_repository()
            .unwrap();
        assert_eq!(again, repo);
        let calls: Vec<String> = recorded
            .lock()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert_eq!(
            calls,
            [
                "POST /api/v1/user/repos",
                "GET /api/v1/repos/kindling/source"
            ]
        );
        assert_all_in_spec(&recorded.lock().unwrap());
    }

    #[test]
    fn gitea_401_and_422_become_clear_errors() {
        let (url, _) = mock(vec![(401, fixture("unauthorized.json"))]);
        let err = GiteaClient::new(&url, basic()).create_token().unwrap_err();
        assert!(matches!(err, GiteaError::Unauthorized { .. }));
        let text = err.to_string();
        assert!(
            text.contains("refused the credentials for creating an access token (HTTP 401)"),
            "{text}"
        );
        assert!(text.contains("password is invalid"), "{text}");
        assert!(text.contains("help:"), "{text}");

        let (url, _) = mock(vec![(422, fixture("invalid-repo-name.json"))]);
        let err = GiteaClient::new(&url, basic())
            .ensure_repository()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Gitea rejected creating the source repository (HTTP 422): [Name]: Invalid repo name"
        );
    }

    #[test]
    fn gitea_unreachable_and_unhealthy_are_reported() {
        let client = GiteaClient::new("http://127.0.0.1:9", basic());
        assert!(matches!(
            client.create_token(),
            Err(GiteaError::Unreachable { .. })
        ));
        let (url, _) = mock(vec![(503, String::from("{}")); 3]);
        let err = GiteaClient::new(&url, basic())
            .wait_healthy(std::time::Duration::from_millis(300))
            .unwrap_err();
        assert!(err.to_string().contains("did not become healthy"), "{err}");
    }

    #[test]
    fn gitea_container_spec_is_locked_down() {
        let spec = gitea::container_spec("dev", "kind", 3001);
        assert_eq!(spec.name, "kindling-dev-gitea");
        assert!(
            spec.env
                .contains(&"GITEA__security__INSTALL_LOCK=true".to_string())
        );
        assert!(
            spec.env
                .contains(&"GITEA__database__DB_TYPE=sqlite3".to_string())
        );
        assert!(
            spec.env
                .contains(&"GITEA__server__ROOT_URL=http://kindling-dev-gitea:3000/".to_string())
        );
        assert!(
            spec.env
                .contains(&"GITEA__service__DISABLE_REGISTRATION=true".to_string())
        );
        // No SSH: neither advertised nor served (pushes go over HTTP with a token).
        for ssh in [
            "GITEA__server__DISABLE_SSH=true",
            "GITEA__server__START_SSH_SERVER=false",
        ] {
            assert!(spec.env.contains(&ssh.to_string()), "{ssh}");
        }
        assert!(spec.ports.iter().all(|p| p.container_port != 22));
        assert_eq!(spec.labels["dev.kindling.env"], "dev");
        assert_eq!(spec.ports[0].host_port, 3001);
        assert_eq!(spec.network.as_deref(), Some("kind"));
        let body = kindling::docker::create_body(&spec);
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        assert_eq!(
            bindings["3000/tcp"].as_ref().unwrap()[0].host_ip.as_deref(),
            Some("127.0.0.1")
        );
        let create = gitea::admin_create_command();
        assert!(create.contains(&"--must-change-password=false".to_string()));
        // Gitea generates the password: none is ever on the command line.
        assert!(create.contains(&"--random-password".to_string()));
        assert!(!create.contains(&"--password".to_string()));
        assert!(gitea::admin_already_exists(
            "Command error: CreateUser: user already exists [name: kindling]"
        ));
    }

    /// The password as `gitea admin user create --random-password` prints it
    /// (go-gitea/gitea v1.27 cmd/admin_user_create.go: "generated random password is '%s'\n").
    #[test]
    fn gitea_generated_admin_password_is_read_from_its_output() {
        assert_eq!(
            gitea::generated_password(
                "2026/11/29 ...\ngenerated random password is 'aB3x'9Zq'\nNew user 'kindling' has been successfully created!\n"
            )
            .as_deref(),
            Some("aB3x'9Zq")
        );
        assert_eq!(gitea::generated_password("New user created\n"), None);
        assert_eq!(
            gitea::generated_password("generated random password is ''\n"),
            None
        );
    }

    #[test]
    fn gitea_is_reached_in_the_cluster_through_a_service_over_the_container_address() {
        let objects = gitea::service_objects("172.18.0.5");
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Namespace", "Service", "EndpointSlice"]);
        let service = &objects[1];
        assert!(
            service["spec"]["selector"].is_null(),
            "endpoints are kindling's, not a selector's"
        );
        let slice = &objects[2];
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            service["metadata"]["name"]
        );
        assert_eq!(slice["endpoints"][0]["addresses"][0], "172.18.0.5");
        assert_eq!(
            slice["ports"][0]["port"],
            service["spec"]["ports"][0]["port"]
        );
        assert_eq!(
            slice["ports"][0]["name"],
            service["spec"]["ports"][0]["name"]
        );
        assert_eq!(
            gitea::service_repo_url(),
            "http://gitea.kindling-system.svc.cluster.local:3000/kindling/source.git"
        );
    }
}
