//! The Docker layer against a real engine (scripts/docker-engine.sh starts one on CI). Images
//! are built locally from busybox-static; nothing is pulled.

mod common;

mod docker {
    use std::io::{Read, Write};
    use std::time::Duration;

    use kindling::docker::{
        ContainerSpec, DockerError, Ensured, PublishedPort, VolumeMount, allocate_port, env_labels,
        port_is_free,
    };

    use super::common::{TEST_IMAGE, docker, ensure_test_image, unique};

    fn spec(env: &str, name: &str, command: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: name.to_string(),
            image: TEST_IMAGE.to_string(),
            command: Some(command.iter().map(|s| s.to_string()).collect()),
            labels: env_labels(env),
            ..Default::default()
        }
    }

    fn http_get(port: u16, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[tokio::test]
    async fn docker_network_volume_container_lifecycle_with_labels_and_sweep() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let env = unique("life");
        let labels = env_labels(&env);
        let network = format!("kindling-{env}");
        assert_eq!(
            d.ensure_network(&network, &labels).await.unwrap(),
            Ensured::Created
        );
        assert_eq!(
            d.ensure_network(&network, &labels).await.unwrap(),
            Ensured::Existed
        );
        let volume = format!("kindling-{env}-data");
        assert_eq!(
            d.ensure_volume(&volume, &labels).await.unwrap(),
            Ensured::Created
        );
        assert_eq!(
            d.ensure_volume(&volume, &labels).await.unwrap(),
            Ensured::Existed
        );
        let mut c = spec(&env, &format!("kindling-{env}-app"), &["sleep", "300"]);
        c.network = Some(network.clone());
        c.volumes = vec![VolumeMount {
            volume: volume.clone(),
            path: "/data".into(),
        }];
        c.restart = true;
        assert_eq!(d.run_container(&c).await.unwrap(), Ensured::Created);
        assert_eq!(d.run_container(&c).await.unwrap(), Ensured::Existed);
        d.wait_ready(&c.name, Duration::from_secs(20))
            .await
            .unwrap();
        // The volume is mounted and writable.
        let out = d
            .exec(&c.name, &["sh", "-c", "echo kept > /data/f && cat /data/f"])
            .await
            .unwrap();
        assert_eq!(out.stdout, "kept\n");

        // Stop keeps the container (and its volume data); run_container starts it again.
        assert!(
            d.stop_container(&c.name, Duration::from_secs(1))
                .await
                .unwrap()
        );
        assert_eq!(d.state(&c.name).await.unwrap(), "exited");
        assert!(
            !d.stop_container(&c.name, Duration::from_secs(1))
                .await
                .unwrap()
        );
        assert_eq!(d.run_container(&c).await.unwrap(), Ensured::Existed);
        d.wait_ready(&c.name, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(
            d.exec(&c.name, &["cat", "/data/f"]).await.unwrap().stdout,
            "kept\n"
        );

        let found = d
            .labelled(&format!("dev.kindling.env={env}"))
            .await
            .unwrap();
        assert_eq!(found.containers, [c.name.clone()]);
        assert_eq!(found.volumes, std::slice::from_ref(&volume));
        assert_eq!(found.networks, std::slice::from_ref(&network));
        let ours = kindling::docker::data_dir_id(&kindling::paths::data_dir());
        let envs = d.list_envs(&ours, false).await.unwrap();
        assert_eq!(envs[&env].containers, [c.name.clone()]);
        // Another data directory does not see them as its own, but as another's.
        let theirs = d.list_envs("another-data-dir", false).await.unwrap();
        assert!(!theirs.contains_key(&env), "{theirs:?}");
        let elsewhere = d.list_envs("another-data-dir", true).await.unwrap();
        assert_eq!(elsewhere[&env].containers, [c.name.clone()]);

        let report = d.sweep(&env, false).await.unwrap();
        assert_eq!(report.containers, [c.name.clone()]);
        assert_eq!(report.volumes, [volume]);
        assert_eq!(report.networks, [network]);
        let left = d
            .labelled(&format!("dev.kindling.env={env}"))
            .await
            .unwrap();
        assert!(
            left.containers.is_empty() && left.volumes.is_empty() && left.networks.is_empty(),
            "{left:?}"
        );
        // Twice is fine and removes nothing.
        assert!(d.sweep(&env, false).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn docker_published_ports_bind_loopback_and_answer() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let env = unique("port");
        let port =
            allocate_port(20000 + (std::process::id() % 20000) as u16, port_is_free).unwrap();
        let mut c = spec(
            &env,
            &format!("kindling-{env}-web"),
            &[
                "sh",
                "-c",
                "mkdir -p /www && echo hello-kindling > /www/index.html && httpd -f -p 8080 -h /www",
            ],
        );
        c.ports = vec![PublishedPort {
            container_port: 8080,
            host_port: port,
        }];
        d.run_container(&c).await.unwrap();
        d.wait_ready(&c.name, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(
            d.published_ports(&c.name).await.unwrap(),
            [(8080, "127.0.0.1".to_string(), port)]
        );
        let mut body = String::new();
        for _ in 0..50 {
            body = std::panic::catch_unwind(|| http_get(port, "/index.html")).unwrap_or_default();
            if body.contains("hello-kindling") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(body.contains("hello-kindling"), "{body}");
        d.sweep(&env, false).await.unwrap();
    }

    #[tokio::test]
    async fn docker_two_envs_side_by_side_get_different_ports() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let wanted =
            allocate_port(21000 + (std::process::id() % 20000) as u16, port_is_free).unwrap();
        let mut taken = Vec::new();
        let mut envs = Vec::new();
        for _ in 0..2 {
            let env = unique("side");
            // As env create allocates: free on loopback and published by no container, as the
            // engine itself reports (not a list this test keeps).
            let published = d.host_ports_in_use().await.unwrap();
            let port =
                allocate_port(wanted, |p| port_is_free(p) && !published.contains(&p)).unwrap();
            let mut c = spec(
                &env,
                &format!("kindling-{env}-web"),
                &["httpd", "-f", "-p", "80", "-h", "/bin"],
            );
            c.ports = vec![PublishedPort {
                container_port: 80,
                host_port: port,
            }];
            d.run_container(&c).await.unwrap();
            d.wait_ready(&c.name, Duration::from_secs(20))
                .await
                .unwrap();
            taken.push(port);
            envs.push(env);
        }
        assert_eq!(taken[0], wanted);
        let published = d.host_ports_in_use().await.unwrap();
        assert!(
            published.contains(&taken[0]) && published.contains(&taken[1]),
            "the engine reports {published:?}, expected both {taken:?}"
        );
        assert_ne!(taken[0], taken[1]);
        // With the first env's port bound, a fresh allocation skips it by probing alone.
        assert_ne!(allocate_port(wanted, port_is_free), Some(wanted));
        for env in envs {
            d.sweep(&env, false).await.unwrap();
        }
    }

    #[tokio::test]
    async fn docker_exec_captures_output_and_exit_code() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let env = unique("exec");
        let c = spec(&env, &format!("kindling-{env}-sh"), &["sleep", "300"]);
        d.run_container(&c).await.unwrap();
        d.wait_ready(&c.name, Duration::from_secs(20))
            .await
            .unwrap();
        let out = d
            .exec(&c.name, &["sh", "-c", "echo out; echo err >&2; exit 3"])
            .await
            .unwrap();
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(d.exec(&c.name, &["true"]).await.unwrap().exit_code, 0);
        d.sweep(&env, false).await.unwrap();
    }

    #[tokio::test]
    async fn docker_container_that_exits_at_once_fails_with_its_last_log_lines() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let env = unique("fail");
        let c = spec(
            &env,
            &format!("kindling-{env}-broken"),
            &[
                "sh",
                "-c",
                "echo starting; echo 'fatal: config is missing' >&2; exit 2",
            ],
        );
        d.run_container(&c).await.unwrap();
        let err = d
            .wait_ready(&c.name, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DockerError::ContainerFailed { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("exit code 2"), "{text}");
        assert!(text.contains("fatal: config is missing"), "{text}");
        assert!(text.contains("starting"), "{text}");
        d.sweep(&env, false).await.unwrap();
    }

    #[tokio::test]
    async fn docker_health_check_gates_readiness() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let env = unique("health");
        let mut c = spec(
            &env,
            &format!("kindling-{env}-slow"),
            &["sh", "-c", "sleep 2; echo ok > /tmp/ready; sleep 300"],
        );
        c.health = Some(kindling::docker::HealthCheck {
            command: vec!["cat".into(), "/tmp/ready".into()],
            interval_seconds: 1,
            retries: 30,
        });
        d.run_container(&c).await.unwrap();
        d.wait_ready(&c.name, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(
            d.exec(&c.name, &["cat", "/tmp/ready"])
                .await
                .unwrap()
                .stdout
                .contains("ok")
        );
        d.sweep(&env, false).await.unwrap();
    }

    /// A stand-in for Gitea's CLI (go-gitea/gitea v1.27 cmd/admin_user_create.go and
    /// admin_user_delete.go): refuses root like the real one, records calls, prints the
    /// password `--random-password` generates, says "user already exists" on a second
    /// create, and `delete` removes the user.
    const FAKE_GITEA: &str = r#"#!/bin/sh
[ "$(id -u)" = 0 ] && { echo "Gitea is not supposed to be run as root" >&2; exit 1; }
echo "$*" >> /tmp/gitea-calls
case "$3" in
  create) n=$(cat /tmp/made 2>/dev/null); echo "generated random password is 'gen-pw-$n'"; if [ -e /tmp/admin ]; then echo "Command error: CreateUser: user already exists [name: kindling]" >&2; exit 1; fi; touch /tmp/admin; echo "x$n" > /tmp/made; echo "New user 'kindling' has been successfully created!";;
  delete) rm -f /tmp/admin;;
esac
"#;

    #[tokio::test]
    async fn docker_gitea_admin_is_created_as_git_with_a_generated_password() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let env = unique("giteaadm");
        let script = FAKE_GITEA.replace('\'', "'\\''");
        let c = spec(
            &env,
            &format!("kindling-{env}-gitea"),
            &[
                "sh",
                "-c",
                &format!(
                    "printf '%s' '{script}' > /bin/gitea && chmod 755 /bin/gitea && chmod 1777 /tmp && sleep 300"
                ),
            ],
        );
        d.run_container(&c).await.unwrap();
        d.wait_ready(&c.name, Duration::from_secs(20))
            .await
            .unwrap();
        for _ in 0..50 {
            if d.exec(&c.name, &["cat", "/bin/gitea"])
                .await
                .unwrap()
                .exit_code
                == 0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A new admin gets the password Gitea generated.
        let (first, password) = kindling::gitea::ensure_admin(&d, &c.name, None)
            .await
            .unwrap();
        assert_eq!(first, Ensured::Created);
        assert_eq!(password, "gen-pw-");
        // A rerun keeps the password it recorded.
        let (again, kept) = kindling::gitea::ensure_admin(&d, &c.name, Some("gen-pw-"))
            .await
            .unwrap();
        assert_eq!((again, kept.as_str()), (Ensured::Existed, "gen-pw-"));
        // The user is there but its password was never recorded: made again.
        let (remade, fresh) = kindling::gitea::ensure_admin(&d, &c.name, None)
            .await
            .unwrap();
        assert_eq!((remade, fresh.as_str()), (Ensured::Created, "gen-pw-x"));
        let calls = d
            .exec(&c.name, &["cat", "/tmp/gitea-calls"])
            .await
            .unwrap()
            .stdout;
        let calls: Vec<&str> = calls.lines().collect();
        assert_eq!(calls.len(), 5, "{calls:?}");
        assert!(
            calls[0].starts_with("admin user create --admin --username kindling")
                && calls[0].contains("--random-password"),
            "{calls:?}"
        );
        assert_eq!(calls[3], "admin user delete --username kindling --purge");
        // No password on any command line.
        assert!(calls.iter().all(|c| !c.contains("gen-pw")), "{calls:?}");
        d.sweep(&env, false).await.unwrap();
    }

    #[tokio::test]
    async fn docker_gitea_admin_failure_never_shows_the_password() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let env = unique("giteabad");
        // A gitea that generates a password, prints it, then fails (as the real one does when
        // the database is locked): the error shows its output, never the password.
        let c = spec(
            &env,
            &format!("kindling-{env}-gitea"),
            &[
                "sh",
                "-c",
                "printf '#!/bin/sh\\necho \"generated random password is '\"'\"'hunter2-secret'\"'\"'\"\\necho \"database is locked\" >&2; exit 1\\n' > /bin/gitea && chmod 755 /bin/gitea && sleep 300",
            ],
        );
        d.run_container(&c).await.unwrap();
        d.wait_ready(&c.name, Duration::from_secs(20))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let err = kindling::gitea::ensure_admin(&d, &c.name, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot create Gitea's admin user"), "{err}");
        assert!(err.contains("database is locked"), "{err}");
        assert!(!err.contains("hunter2-secret"), "{err}");
        assert!(err.contains("********"), "{err}");
        d.sweep(&env, false).await.unwrap();
    }

    #[tokio::test]
    async fn docker_ensure_image_keeps_a_present_image_and_names_a_missing_one() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let mut lines = Vec::new();
        assert_eq!(
            d.ensure_image(TEST_IMAGE, &mut |l| lines.push(l.to_string()))
                .await
                .unwrap(),
            Ensured::Existed
        );
        assert!(lines.is_empty());
        // Nothing listens on port 1: the pull fails at once, naming the image.
        let err = d
            .ensure_image("127.0.0.1:1/kindling/missing:1", &mut |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("pull 127.0.0.1:1/kindling/missing:1"), "{err}");
    }

    #[tokio::test]
    async fn docker_container_address_on_a_network_and_disconnect() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let env = unique("ip");
        let first = format!("kindling-{env}-a");
        let second = format!("kindling-{env}-b");
        d.ensure_network(&first, &env_labels(&env)).await.unwrap();
        d.ensure_network(&second, &env_labels(&env)).await.unwrap();
        let mut c = spec(&env, &format!("kindling-{env}-sh"), &["sleep", "300"]);
        c.network = Some(first.clone());
        d.run_container(&c).await.unwrap();
        assert_eq!(d.container_ip(&c.name, &second).await.unwrap(), None);
        d.connect_network(&c.name, &second).await.unwrap();
        let ip = d.container_ip(&c.name, &second).await.unwrap().unwrap();
        assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
        assert_ne!(Some(ip), d.container_ip(&c.name, &first).await.unwrap());
        d.disconnect_network(&c.name, &second).await.unwrap();
        assert_eq!(d.container_ip(&c.name, &second).await.unwrap(), None);
        // Not attached (any more) is fine.
        d.disconnect_network(&c.name, &second).await.unwrap();
        d.sweep(&env, false).await.unwrap();
    }

    /// kindling reaches the engine the docker CLI would: through DOCKER_HOST (a unix socket
    /// or tcp://) and through the CLI's current context, never falling back to the default
    /// socket; `doctor` names the endpoint and where it came from; a context that does not
    /// exist is an error.
    #[tokio::test(flavor = "multi_thread")]
    async fn docker_endpoint_from_docker_host_or_a_context_reaches_that_engine() {
        use std::sync::atomic::Ordering;
        if docker().await.is_none() {
            return;
        }
        let kindling = |envs: &[(&str, &str)], args: &[&str]| {
            let data = tempfile::tempdir().unwrap();
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"));
            c.args(args)
                .env("KINDLING_DATA_DIR", data.path())
                .env_remove("DOCKER_HOST")
                .env_remove("DOCKER_CONTEXT")
                .env("DOCKER_CONFIG", data.path().join("no-docker-config"));
            for (k, v) in envs {
                c.env(k, v);
            }
            c.output().unwrap()
        };
        let endpoint_of = |out: &std::process::Output| -> serde_json::Value {
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["check"] == "docker endpoint")
                .unwrap()
                .clone()
        };
        for unix in [true, false] {
            let relay = super::common::engine_relay(unix);
            let host = relay.host.as_str();
            let listed = kindling(
                &[("DOCKER_HOST", host)],
                &["env", "list", "--output", "json"],
            );
            assert!(
                listed.status.success(),
                "{host}: {}",
                String::from_utf8_lossy(&listed.stderr)
            );
            assert!(
                relay.connections.load(Ordering::SeqCst) > 0,
                "{host} was not used"
            );
            let doctor = kindling(&[("DOCKER_HOST", host)], &["doctor", "--output", "json"]);
            let finding = endpoint_of(&doctor);
            assert_eq!(
                finding["detail"],
                format!("{host} (from DOCKER_HOST)"),
                "{finding}"
            );
        }
        // The CLI's current context (config.json), as Docker Desktop and Colima set it.
        let relay = super::common::engine_relay(true);
        let config = tempfile::tempdir().unwrap();
        super::common::docker_context_dir(config.path(), "kt-colima", &relay.host);
        let config_dir = config.path().to_str().unwrap();
        let listed = kindling(
            &[("DOCKER_CONFIG", config_dir)],
            &["env", "list", "--output", "json"],
        );
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        assert!(
            relay.connections.load(Ordering::SeqCst) > 0,
            "the context was not used"
        );
        let doctor = kindling(
            &[("DOCKER_CONFIG", config_dir)],
            &["doctor", "--output", "json"],
        );
        assert_eq!(
            endpoint_of(&doctor)["detail"],
            format!(
                "{} (from context kt-colima (currentContext in config.json))",
                relay.host
            )
        );
        // A context that is not there: an error naming it, not the default socket.
        let missing = kindling(
            &[("DOCKER_CONFIG", config_dir), ("DOCKER_CONTEXT", "nowhere")],
            &["env", "list", "--output", "json"],
        );
        assert_eq!(missing.status.code(), Some(1));
        let doc: serde_json::Value = serde_json::from_slice(&missing.stdout).unwrap();
        assert!(
            doc["error"]
                .as_str()
                .unwrap()
                .contains("docker context nowhere (DOCKER_CONTEXT=nowhere) is not in"),
            "{doc}"
        );
    }
}
