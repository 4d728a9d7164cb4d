//! Whole `kindling env` round trips through the real binary (tests/common/env_harness.rs):
//! kind + Flux, k3d + Argo CD, a Gitea container, a HostK8s stack unchanged, and the JSON
//! documents against docs/json-output.md.

mod common;

mod env {

    use serde_json::{Value, json};

    use super::common::env_harness::*;

    use super::common::{docker, docker_cli, docker_labelled, documented_shapes, follows, unique};

    #[tokio::test(flavor = "multi_thread")]
    async fn env_create_status_sync_delete_round_trip() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("rt");
        let bench = std::env::var_os("KINDLING_BENCH_REPORT").is_some();
        let t = std::time::Instant::now();
        let created = ok(&h.create(&env, &[]));
        if bench {
            let steps: Vec<String> = created["env"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| format!("{}={}ms", s["name"].as_str().unwrap(), s["durationMs"]))
                .collect();
            println!(
                "bench: create --wait {:.2}s ({})",
                t.elapsed().as_secs_f64(),
                steps.join(" ")
            );
        }
        let report = &created["env"];
        let steps = done_steps(report);
        assert_eq!(steps, kindling::env::steps::names());
        // The order the README documents, literally.
        let readme = std::fs::read_to_string(super::common::repo_dir().join("README.md")).unwrap();
        let documented = "preflight → ca → (cluster ‖ gitea ‖ registry) → connect → images → push → engine → secrets → storage → bootstrap → packages → vault → reconcile";
        assert!(
            readme.contains(documented),
            "the README's step line changed"
        );
        let listed: Vec<&str> = documented
            .split(['→', '‖', '(', ')', ' '])
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(steps, listed);
        // Every step done, but the images and packages ones: no bundle is loaded, no package
        // given.
        assert!(
            report["steps"].as_array().unwrap().iter().all(|s| {
                let done = s["status"] == "done" && s["durationMs"].is_u64();
                match s["name"].as_str() {
                    Some("images") => s["status"] == "skipped" && s["detail"] == "no bundle loaded",
                    Some("packages") => s["status"] == "skipped" && s["detail"] == "no packages",
                    _ => done,
                }
            }),
            "{report}"
        );
        assert_eq!(report["context"], format!("kind-kindling-{env}"));
        let https = h.state(&env)["ports"]["https"].as_u64().unwrap();
        assert_eq!(
            report["ingressUrls"],
            json!([
                format!("https://api.localhost:{https}"),
                format!("https://www.localhost:{https}")
            ])
        );
        assert!(
            report["status"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["readiness"] == "ready")
        );
        // Real Docker objects: the registry (labelled, loopback only) and the fake node.
        let registry = format!("kindling-{env}-registry");
        assert!(container_exists(&registry));
        let ports = String::from_utf8_lossy(&docker_cli(&["port", &registry]).stdout).to_string();
        assert!(ports.contains("127.0.0.1:"), "{ports}");
        assert!(!ports.contains("0.0.0.0"), "{ports}");
        assert!(container_exists(&format!("kindling-{env}-control-plane")));
        // The node got its registry mirror config.
        let registry_port = h.state(&env)["ports"]["registry"].as_u64().unwrap();
        let hosts = docker_cli(&[
            "exec",
            &format!("kindling-{env}-control-plane"),
            "cat",
            &format!("/etc/containerd/certs.d/localhost:{registry_port}/hosts.toml"),
        ]);
        assert!(
            hosts.status.success(),
            "{}",
            String::from_utf8_lossy(&hosts.stderr)
        );
        // State: 0600, credentials inside, every step recorded.
        let state_path = h.path("data/envs").join(&env).join("state.json");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&state_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let state = h.state(&env);
        assert_eq!(
            state["steps"].as_array().unwrap().len(),
            kindling::env::steps::names().len()
        );
        // Each step's record carries its duration.
        assert!(
            state["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["durationMs"].is_u64() && s["finishedAt"].is_string()),
            "{state}"
        );
        let commit = state["commit"].as_str().unwrap().to_string();
        assert_eq!(h.gitea.head().as_deref(), Some(commit.as_str()));
        // KEP-1755: the local registry is announced in the cluster.
        let hosting = h.api.object("ConfigMap", "local-registry-hosting").unwrap();
        assert_eq!(hosting["metadata"]["namespace"], "kube-public", "{hosting}");
        assert!(
            hosting["data"]["localRegistryHosting.v1"]
                .as_str()
                .unwrap()
                .contains(&format!("localhost:{registry_port}")),
            "{hosting}"
        );
        // Secrets stay where they belong: the root CA's key is in no cluster object and in no
        // pushed file; the generated database password is in the cluster's Secret only, never
        // in Git or in what create printed.
        let root_key = std::fs::read_to_string(h.path("data/ca/root-key.pem")).unwrap();
        let key_body: String = root_key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let password = {
            use base64::Engine;
            let db = h.api.object("Secret", "database-credentials").unwrap();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(db["data"]["password"].as_str().unwrap())
                .unwrap();
            String::from_utf8(raw).unwrap()
        };
        assert!(password.len() >= 16, "{password}");
        // `git grep` exits 1 when nothing matches (0: found, anything else: it failed).
        let pushed = std::process::Command::new("git")
            .args([
                "grep",
                "-F",
                "-I",
                "-c",
                "-e",
                &password,
                "-e",
                &key_body[..40],
                &commit,
            ])
            .current_dir(h.gitea.root.join("kindling/source.git"))
            .output()
            .unwrap();
        assert_eq!(
            pushed.status.code(),
            Some(1),
            "a secret was pushed: {}{}",
            String::from_utf8_lossy(&pushed.stdout),
            String::from_utf8_lossy(&pushed.stderr)
        );
        let cluster_objects = serde_json::to_string(
            &h.api
                .state
                .lock()
                .unwrap()
                .objects
                .iter()
                .map(|o| o.object.clone())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(
            !cluster_objects.contains(&key_body[..40]),
            "the root key reached the cluster"
        );
        for text in [
            &created.to_string(),
            &String::from_utf8_lossy(&h.create(&env, &[]).stderr).to_string(),
        ] {
            assert!(
                !text.contains(&password),
                "the generated password was printed"
            );
        }
        // The cluster got the CA, the bootstrap secret, the Flux bootstrap objects.
        assert!(h.api.object("Secret", "root-ca-secret").is_some());
        let db = h.api.object("Secret", "database-credentials").unwrap();
        assert_eq!(db["metadata"]["namespace"], "database");
        // The engine clones with a token of its own that can only read: the copy in the
        // cluster cannot push; the push token stays on the host.
        let git = h.api.object("Secret", "kindling-git-credentials").unwrap();
        let engine_token = {
            use base64::Engine as _;
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(git["data"]["password"].as_str().unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(
            engine_token,
            super::common::fake_gitea::token_for("kindling-engine")
        );
        assert_ne!(engine_token, super::common::fake_gitea::recorded_token());
        let remote = |token: &str| {
            format!(
                "{}/kindling/source.git",
                h.gitea
                    .url
                    .replacen("://", &format!("://kindling:{token}@"), 1)
            )
        };
        let scratch = tempfile::tempdir().unwrap();
        let git_in = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(scratch.path())
                .env("GIT_TERMINAL_PROMPT", "0")
                .output()
                .unwrap()
        };
        let fetched = git_in(&["ls-remote", &remote(&engine_token)]);
        assert!(fetched.status.success(), "{fetched:?}");
        assert!(git_in(&["init", "-q"]).status.success());
        assert!(
            git_in(&[
                "-c",
                "user.name=x",
                "-c",
                "user.email=x@x",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "x"
            ])
            .status
            .success()
        );
        let pushed = git_in(&["push", &remote(&engine_token), "HEAD:refs/heads/intruder"]);
        assert!(!pushed.status.success(), "the engine's token could push");
        assert!(
            String::from_utf8_lossy(&pushed.stderr).contains("403"),
            "{}",
            String::from_utf8_lossy(&pushed.stderr)
        );
        let repo = h.api.object("GitRepository", "kindling").unwrap();
        assert_eq!(
            repo["spec"]["url"],
            "http://gitea.kindling.test/kindling/source.git"
        );
        // The token reaches neither stdout nor stderr, even with every underlying call shown.
        let profile = h.path("profile.yaml");
        let rerun = h.run(
            &[
                "env",
                "create",
                &env,
                "--profile",
                profile.to_str().unwrap(),
                "-v",
                "-v",
            ],
            &[],
        );
        ok_status(&rerun);
        // -v shows the underlying calls (here the objects the bootstrap applied).
        let said = String::from_utf8_lossy(&rerun.stderr);
        assert!(said.contains("bootstrap: applied GitRepository"), "{said}");
        // Off a terminal, with CI=true or not, progress is plain lines, each timestamped.
        let off_ci = h.run(
            &[
                "env",
                "create",
                &env,
                "--profile",
                profile.to_str().unwrap(),
            ],
            &[("CI", "")],
        );
        ok_status(&off_ci);
        for out in [&rerun, &off_ci] {
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(
                !said.contains('\u{1b}'),
                "escape codes off a terminal: {said:?}"
            );
            for line in said.lines().filter(|l| !l.is_empty()) {
                let stamp = line.get(..9).unwrap_or_default();
                let timestamped = stamp.len() == 9
                    && stamp.ends_with(' ')
                    && stamp[..8]
                        .split(':')
                        .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()));
                assert!(timestamped, "not a timestamped line: {line:?}");
            }
        }
        let token = super::common::fake_gitea::recorded_token();
        // The admin password the rerun set again through `gitea admin user change-password`.
        let password = h.state(&env)["gitea"]["password"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(password.len() >= 16, "{password}");
        for (stream, text) in [("stdout", &rerun.stdout), ("stderr", &rerun.stderr)] {
            let text = String::from_utf8_lossy(text);
            assert!(
                !text.contains(&token),
                "the Gitea token is on {stream}:\n{text}"
            );
            assert!(
                !text.contains(&password),
                "the Gitea admin password is on {stream}:\n{text}"
            );
        }

        // status: JSON and the text table.
        let status = h.json(&["env", "status", &env]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        assert_eq!(status["status"]["registry"]["state"], "running");
        let text = h.run(&["env", "status", &env], &[]);
        let table = String::from_utf8_lossy(&text.stdout);
        assert!(
            table.contains("ENTRY") && table.contains("certs-issuer") && table.contains("Ready"),
            "{table}"
        );
        assert!(
            !table.contains('\u{1b}') && !String::from_utf8_lossy(&text.stderr).contains('\u{1b}')
        );

        // Edit → sync → the new commit is what every entry applied.
        std::fs::write(
            h.path("source/stamps/sample/applications/website/extra.txt"),
            "edited\n",
        )
        .unwrap();
        let t = std::time::Instant::now();
        let synced = ok(&h.run(
            &["env", "sync", &env, "--output", "json", "--timeout", "30s"],
            &[],
        ));
        if bench {
            println!("bench: sync {:.2}s", t.elapsed().as_secs_f64());
        }
        let new_commit = synced["sync"]["commit"].as_str().unwrap();
        assert_ne!(new_commit, commit);
        assert_eq!(synced["sync"]["changed"], true);
        assert!(
            synced["sync"]["requested"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "GitRepository kindling")
        );
        let entries = synced["sync"]["status"]["entries"].as_array().unwrap();
        assert!(
            entries.iter().all(|e| e["kind"] != "Kustomization"
                || e["revision"] == format!("main@sha1:{new_commit}")),
            "{synced:#}"
        );
        // Nothing changed: same commit, still fine.
        let again = ok(&h.run(&["env", "sync", &env, "--output", "json", "--no-wait"], &[]));
        assert_eq!(again["sync"]["changed"], false);

        // kubeconfig and list.
        let kc = h.run(&["env", "kubeconfig", &env], &[]);
        assert!(
            String::from_utf8_lossy(&kc.stdout)
                .trim()
                .ends_with("kubeconfig")
        );
        let list = h.json(&["env", "list"]);
        let mine = list["envs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == env.as_str())
            .unwrap()
            .clone();
        assert_eq!(mine["state"], "complete");

        let t = std::time::Instant::now();
        delete_clean(&h, &env);
        if bench {
            println!("bench: delete {:.2}s", t.elapsed().as_secs_f64());
        }
        // Twice is fine and says so.
        let twice = h.run(&["env", "delete", &env], &[]);
        assert!(twice.status.success());
        assert!(String::from_utf8_lossy(&twice.stdout).contains("nothing to delete"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_k3d_with_argo_round_trip() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::with_engine("argo");
        let env = unique("argo");
        let profile = h.path("profile.yaml");
        let created = h.json(&[
            "env",
            "create",
            &env,
            "--stamp",
            "sample",
            "--profile",
            profile.to_str().unwrap(),
            "--provider",
            "k3d",
            "--engine",
            "argo",
            "--wait",
            "--timeout",
            "60s",
        ]);
        assert_eq!(created["env"]["context"], format!("k3d-kindling-{env}"));
        assert_eq!(created["env"]["engine"], "argo");
        assert!(
            created["env"]["status"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["readiness"] == "ready" && e["sync"] == "Synced")
        );
        // What each entry runs, from the Applications' status.resources: the api entry's
        // Deployment, Service and its Ingress URL on the env's HTTPS port.
        let status = h.json(&["env", "status", &env]);
        let https = h.state(&env)["ports"]["https"].as_u64().unwrap();
        let api = status["status"]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["entry"] == "api")
            .unwrap_or_else(|| panic!("{status}"))
            .clone();
        assert_eq!(api["workloads"][0]["kind"], "Deployment", "{api}");
        assert_eq!(api["workloads"][0]["name"], "api", "{api}");
        assert_eq!(api["services"], serde_json::json!(["sample/api"]), "{api}");
        assert_eq!(
            api["urls"],
            serde_json::json!([format!("https://api.localhost:{https}/")]),
            "{api}"
        );
        let secret = h.api.object("Secret", "kindling-repository").unwrap();
        assert_eq!(
            secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"],
            "repository"
        );
        assert_eq!(secret["metadata"]["namespace"], "argocd");
        let cm = h.api.object("ConfigMap", "argocd-cm").unwrap();
        assert!(
            cm["data"]
                .as_object()
                .is_some_and(|d| d.keys().any(|k| k.contains("health"))),
            "{cm}"
        );
        // The registry joined the k3d cluster's network.
        let networks = docker_cli(&[
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks}}",
            &format!("kindling-{env}-registry"),
        ]);
        assert!(String::from_utf8_lossy(&networks.stdout).contains(&format!("k3d-kindling-{env}")));
        std::fs::write(
            h.path("source/stamps/sample/applications/api/extra.txt"),
            "edited\n",
        )
        .unwrap();
        let synced = ok(&h.run(
            &["env", "sync", &env, "--output", "json", "--timeout", "30s"],
            &[],
        ));
        let commit = synced["sync"]["commit"].as_str().unwrap();
        assert_eq!(synced["sync"]["status"]["source"]["revision"], commit);
        // The refresh was asked for (Argo CD removes the annotation once it has refreshed).
        assert!(
            h.api.requests().iter().any(|r| r.method == "PATCH"
                && r.path.ends_with("/applications/api")
                && r.body.contains("argocd.argoproj.io/refresh")),
            "no refresh request for api"
        );
        // The node carries the env label (k3d runtime label) but is the provider's to remove:
        // kindling's own sweep must not take it first.
        let deleted = h.json(&["env", "delete", &env]);
        let removed = deleted["deleted"][0]["removed"]["containers"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            !removed
                .iter()
                .any(|c| c.as_str().unwrap().contains("server-0")),
            "{removed:?}"
        );
        assert_eq!(
            deleted["deleted"][0]["cluster"],
            format!("k3d kindling-{env}")
        );
        assert!(
            docker_labelled(&env).is_empty(),
            "{:?}",
            docker_labelled(&env)
        );
        assert!(
            !docker_cli(&["network", "inspect", &format!("k3d-kindling-{env}")])
                .status
                .success()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_with_a_gitea_container_round_trip() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::build_with("flux", false, true);
        let env = unique("gt");
        let container = format!("kindling-{env}-gitea");
        *h.docker_gitea.as_ref().unwrap().lock().unwrap() = container.clone();
        // Docker's exec events carry each exec's command line: watch them during the create.
        let mut events = std::process::Command::new("docker")
            .args([
                "events",
                "--filter",
                &format!("container={container}"),
                "--format",
                "{{.Action}}",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = h.create(&env, &[]);
        let created = ok(&out);
        let gitea_port = h.state(&env)["ports"]["gitea"].as_u64().unwrap();
        assert_eq!(
            created["env"]["giteaUrl"],
            format!("http://127.0.0.1:{gitea_port}")
        );
        // The container: labelled, published on loopback only, data in a labelled volume, on
        // the cluster's network; the admin password is kept 0600 in the state, never printed.
        let labels = docker_cli(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"dev.kindling.env\"}}",
            &container,
        ]);
        assert_eq!(String::from_utf8_lossy(&labels.stdout).trim(), env);
        let ports = String::from_utf8_lossy(&docker_cli(&["port", &container]).stdout).to_string();
        assert_eq!(ports.trim(), format!("3000/tcp -> 127.0.0.1:{gitea_port}"));
        assert!(
            docker_cli(&["volume", "inspect", &format!("kindling-{env}-gitea-data")])
                .status
                .success()
        );
        let password = h.state(&env)["gitea"]["password"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(password.len() >= 24);
        // Never on a command line: not in Docker's exec events, not in any `gitea` process's
        // arguments (its /proc/PID/cmdline, as the image's stand-in records them).
        std::thread::sleep(std::time::Duration::from_millis(500));
        events.kill().unwrap();
        let events =
            String::from_utf8_lossy(&events.wait_with_output().unwrap().stdout).to_string();
        assert!(
            events.contains("exec_create: gitea admin user create"),
            "{events}"
        );
        assert!(
            !events.contains(&password),
            "the password is in Docker's exec events"
        );
        let argv = docker_cli(&["exec", &container, "cat", "/data/gitea-argv"]);
        let argv = String::from_utf8_lossy(&argv.stdout).to_string();
        assert!(argv.contains("--random-password"), "{argv}");
        assert!(
            !argv.contains(&password),
            "the password was on a command line: {argv}"
        );
        for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let text = String::from_utf8_lossy(text);
            assert!(
                !text.contains(&password),
                "the admin password is on {stream}"
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let state_path = h.path("data/envs").join(&env).join("state.json");
        assert_eq!(
            std::fs::metadata(&state_path).unwrap().permissions().mode() & 0o777,
            0o600,
            "the state holding the password is not 0600"
        );
        // The engine reaches it through the Service over the container's address on the env's
        // own network, which the cluster's nodes are on too; not on the shared `kind` one.
        let networks = String::from_utf8_lossy(
            &docker_cli(&[
                "inspect",
                "-f",
                "{{range $n, $_ := .NetworkSettings.Networks}}{{$n}} {{end}}",
                &container,
            ])
            .stdout,
        )
        .to_string();
        assert_eq!(networks.trim(), format!("kindling-{env}"), "{networks}");
        let node_networks = String::from_utf8_lossy(
            &docker_cli(&[
                "inspect",
                "-f",
                "{{range $n, $_ := .NetworkSettings.Networks}}{{$n}} {{end}}",
                &format!("kindling-{env}-control-plane"),
            ])
            .stdout,
        )
        .to_string();
        assert_eq!(node_networks.trim(), format!("kindling-{env}"));
        let ip = String::from_utf8_lossy(
            &docker_cli(&[
                "inspect",
                "-f",
                &format!("{{{{(index .NetworkSettings.Networks \"kindling-{env}\").IPAddress}}}}"),
                &container,
            ])
            .stdout,
        )
        .trim()
        .to_string();
        let slice = h.api.object("EndpointSlice", "gitea-docker").unwrap();
        assert_eq!(slice["endpoints"][0]["addresses"][0], ip.as_str());
        let repo = h.api.object("GitRepository", "kindling").unwrap();
        assert_eq!(
            repo["spec"]["url"],
            "http://gitea.kindling-system.svc.cluster.local:3000/kindling/source.git"
        );
        // Sync pushes into the container's repository.
        std::fs::write(h.path("source/stamps/sample/applications/api/c.txt"), "c\n").unwrap();
        let synced = ok(&h.run(
            &["env", "sync", &env, "--output", "json", "--timeout", "30s"],
            &[],
        ));
        assert!(
            synced["sync"]["status"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["readiness"] == "ready")
        );
        // A rerun keeps the running Gitea (and its password); after a restart of the container
        // the stored password still works.
        let rerun = ok(&h.create(&env, &[]));
        let gitea_step = rerun["env"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "gitea")
            .unwrap()
            .clone();
        assert_eq!(gitea_step["status"], "skipped");
        assert!(docker_cli(&["stop", &container]).status.success());
        ok(&h.create(&env, &[]));
        assert_eq!(h.state(&env)["gitea"]["password"], password.as_str());
        // Gitea comes back on another address (as after a Docker restart): `env status`
        // re-points the in-cluster route and says so; a second look finds nothing to do.
        let network = h.state(&env)["cluster"]["network"]
            .as_str()
            .unwrap()
            .to_string();
        let address = || container_address(&container, &network);
        let before = address();
        let routed = |api: &super::common::kube_api::FakeApi| {
            api.object("EndpointSlice", "gitea-docker").unwrap()["endpoints"][0]["addresses"][0]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(routed(&h.api), before);
        // Docker may hand the freed address straight back; a placeholder takes it first.
        assert!(
            docker_cli(&["network", "disconnect", &network, &container])
                .status
                .success()
        );
        let placeholder = format!("kindling-{env}-placeholder");
        let held = docker_cli(&[
            "run",
            "-d",
            "--name",
            &placeholder,
            "--label",
            &h.data_label(),
            "--network",
            &network,
            super::common::TEST_IMAGE,
            "sleep",
            "600",
        ]);
        assert!(held.status.success(), "{held:?}");
        assert!(
            docker_cli(&["network", "connect", &network, &container])
                .status
                .success()
        );
        let moved = address();
        assert_ne!(moved, before, "Docker gave the same address back");
        let status = h.json(&["env", "status", &env]);
        let repaired = status["status"]["routeRepaired"]
            .as_str()
            .unwrap_or_default();
        assert!(
            repaired.contains(&format!("from {before} to {moved}")),
            "{status}"
        );
        assert_eq!(routed(&h.api), moved);
        let again = h.json(&["env", "status", &env]);
        assert!(again["status"].get("routeRepaired").is_none(), "{again}");
        assert!(docker_cli(&["rm", "-f", &placeholder]).status.success());
        delete_clean(&h, &env);
        assert!(
            !docker_cli(&["volume", "inspect", &format!("kindling-{env}-gitea-data")])
                .status
                .success()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_runs_a_hostk8s_stack_unchanged() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::build("flux", true);
        let env = unique("hk");
        // `sample` is found under software/stacks/ of the source tree.
        let created = ok(&h.create(&env, &[]));
        let entries: Vec<&str> = created["env"]["status"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        // HostK8s' default add-ons first (the profile names none), then the stack.
        assert_eq!(
            entries,
            [
                "addon-ingress",
                "addon-metrics-server",
                "addon-gateway-api",
                "component-certs-manager",
                "component-certs-ca",
                "component-certs-issuer",
                "app-sample"
            ]
        );
        assert_eq!(
            h.state(&env)["addons"],
            serde_json::json!(["ingress", "metrics-server", "gateway-api"])
        );
        // HostK8s' Gateway API NodePorts get host ports (8081/8444 unless taken), mapped on the
        // node as HostK8s' kind config maps them.
        let gateway = &h.state(&env)["ports"]["gateway"];
        let (http, https) = (
            gateway["http"].as_u64().unwrap(),
            gateway["https"].as_u64().unwrap(),
        );
        assert!(http >= 8081 && https >= 8444, "{gateway}");
        let config =
            std::fs::read_to_string(h.path("data/envs").join(&env).join("kind-config.yaml"))
                .unwrap();
        let config: serde_json::Value = serde_yaml_ng::from_str(&config).unwrap();
        let mappings = config["nodes"][0]["extraPortMappings"].as_array().unwrap();
        for (node, host) in [(30081, http), (30444, https)] {
            assert!(
                mappings.iter().any(|m| m["containerPort"] == node
                    && m["hostPort"] == host
                    && m["listenAddress"] == "127.0.0.1"),
                "{mappings:?}"
            );
        }
        // The Gateway API CRDs, pushed with the stack and applied by the engine.
        assert!(
            h.api
                .object(
                    "CustomResourceDefinition",
                    "gatewayclasses.gateway.networking.k8s.io"
                )
                .is_some()
        );
        let ingress = h.api.object("HelmRelease", "addon-ingress").unwrap();
        assert_eq!(ingress["spec"]["chart"]["spec"]["chart"], "traefik");
        assert_eq!(ingress["spec"]["values"]["ports"]["web"]["nodePort"], 30080);
        // The stack's first entry waits for them.
        let certs = h
            .api
            .object("Kustomization", "component-certs-manager")
            .unwrap();
        assert_eq!(
            certs["spec"]["dependsOn"],
            serde_json::json!([
                {"name": "addon-ingress"},
                {"name": "addon-metrics-server"},
                {"name": "addon-gateway-api"}
            ])
        );
        // The pushed snapshot holds the stack as it was, plus the rendered bundle.
        let listing = super::common::fake_gitea::git(
            &h.gitea.root.join("kindling/source.git"),
            &["ls-tree", "-r", "--name-only", "main"],
        );
        assert!(
            listing.contains("software/stacks/sample/stack.yaml"),
            "{listing}"
        );
        assert!(
            listing.contains(".kindling/flux/stamp/app-sample.yaml"),
            "{listing}"
        );
        let root = h.api.object("Kustomization", "kindling-sample").unwrap();
        assert_eq!(root["spec"]["path"], "./.kindling/flux/stamp");
        // The stack makes its own root-ca-secret with cert-manager: kindling leaves it alone
        // rather than fight cert-manager over it, and says so.
        // The Secret there is the one cert-manager issued for the stack's Certificate.
        let ca = h.api.object("Secret", "root-ca-secret").unwrap();
        assert_eq!(
            ca["metadata"]["annotations"]["cert-manager.io/certificate-name"],
            "root-ca"
        );
        assert!(ca["metadata"]["labels"]["app.kubernetes.io/managed-by"].is_null());
        let rerun = h.run(
            &[
                "env",
                "create",
                &env,
                "--stamp",
                "sample",
                "--profile",
                h.path("profile.yaml").to_str().unwrap(),
            ],
            &[],
        );
        assert!(rerun.status.success());
        let said = String::from_utf8_lossy(&rerun.stderr);
        assert!(
            said.contains(
                "the stamp makes cert-manager/root-ca-secret itself (Certificate root-ca in"
            ),
            "{said}"
        );
        delete_clean(&h, &env);
    }

    #[test]
    fn env_json_shape_check_can_fail() {
        let documented = json!({"steps": [{"name": "x"}], "ok": true});
        assert!(
            follows(
                &json!({"steps": [{"name": "a"}], "ok": true}),
                &documented,
                "$"
            )
            .is_ok()
        );
        assert!(follows(&json!({"steps": [], "ok": true}), &documented, "$").is_err());
        assert!(follows(&json!({"steps": [{}], "ok": true}), &documented, "$").is_err());
        assert!(follows(&json!({"steps": [{"name": "a"}]}), &documented, "$").is_err());
        assert!(
            follows(
                &json!({"steps": [{"name": 1}], "ok": true}),
                &documented,
                "$"
            )
            .is_err()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_json_documents_follow_docs_json_output() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("doc");
        let profile = h.path("profile.yaml");
        let mut real: Vec<(&str, Value)> = Vec::new();
        real.push((
            "kindling env create --dry-run",
            h.json(&[
                "env",
                "create",
                &env,
                "--stamp",
                "sample",
                "--profile",
                profile.to_str().unwrap(),
                "--dry-run",
            ]),
        ));
        real.push(("kindling env create", ok(&h.create(&env, &[]))));
        real.push(("kindling env status", h.json(&["env", "status", &env])));
        h.json(&["env", "stop", &env]);
        real.push((
            "kindling env stop / kindling env start",
            h.json(&["env", "start", &env]),
        ));
        std::fs::write(
            h.path("source/stamps/sample/applications/api/doc.txt"),
            "x\n",
        )
        .unwrap();
        real.push((
            "kindling env sync",
            ok(&h.run(&["env", "sync", &env, "--output", "json", "--no-wait"], &[])),
        ));
        real.push(("kindling env list", h.json(&["env", "list"])));
        real.push(("kindling env delete", h.json(&["env", "delete", &env])));
        // The env commands' documents (the others are checked where those commands are).
        let documented: Vec<(String, Value)> = documented_shapes()
            .into_iter()
            // Checked where those commands are tested (env_commands.rs): `env build` needs a
            // Dockerfile, `env suspend` leaves the env paused.
            .filter(|(heading, _)| {
                heading.starts_with("kindling env")
                    && heading != "kindling env build"
                    && heading != "kindling env suspend / kindling env resume"
            })
            .collect();
        assert_eq!(
            documented.len(),
            7,
            "{:?}",
            documented.iter().map(|d| &d.0).collect::<Vec<_>>()
        );
        for (heading, doc) in &documented {
            let (_, value) = real
                .iter()
                .find(|(h, _)| h == heading)
                .unwrap_or_else(|| panic!("no run for {heading}"));
            follows(value, doc, heading).unwrap_or_else(|e| panic!("{e}\n{value:#}"));
        }
        // And the failure document.
        let failed = h.run(&["env", "status", "no-such-env", "--output", "json"], &[]);
        let doc: Value = serde_json::from_slice(&failed.stdout).unwrap();
        follows(
            &doc,
            &json!({"ok": false, "exitCode": 1, "error": "", "problems": []}),
            "error",
        )
        .unwrap();
    }
}
