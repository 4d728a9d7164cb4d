//! An env's life beyond create and delete (issue #20): `env stop` and `env start` against the
//! real Docker engine, with the fake kind's node containers and Gitea in a container.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{TEST_IMAGE, docker, docker_cli, unique};

    fn container_state(name: &str) -> String {
        let out = docker_cli(&["inspect", "-f", "{{.State.Status}}", name]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stop takes every container of the env down (node, Gitea, registry) and `env status`
    /// says so, naming `env start`. Start brings them back; Gitea comes back on another
    /// address (a placeholder took its old one), and the start re-points the in-cluster route
    /// before it asks the engine to reconcile: the env is Ready with no other step.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_stop_and_start_bring_the_env_back_with_the_route_repaired() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::build_with("flux", false, true);
        let env = unique("stop");
        let gitea = format!("kindling-{env}-gitea");
        *h.docker_gitea.as_ref().unwrap().lock().unwrap() = gitea.clone();
        ok(&h.create(&env, &[]));
        let node = format!("kindling-{env}-control-plane");
        let registry = format!("kindling-{env}-registry");
        for c in [&node, &gitea, &registry] {
            assert_eq!(container_state(c), "running", "{c}");
        }
        // kind's restart policy on its nodes: back after a reboot, not after `docker stop`.
        let policy = docker_cli(&["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", &node]);
        assert_eq!(String::from_utf8_lossy(&policy.stdout).trim(), "on-failure");

        let bench = std::env::var_os("KINDLING_BENCH_REPORT").is_some();
        let t = std::time::Instant::now();
        let stopped = h.json(&["env", "stop", &env]);
        if bench {
            println!("bench: stop {:.2}s", t.elapsed().as_secs_f64());
        }
        let listed: Vec<&str> = stopped["stop"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(
            listed,
            [node.as_str(), gitea.as_str(), registry.as_str()],
            "{stopped}"
        );
        for c in [&node, &gitea, &registry] {
            assert_eq!(container_state(c), "exited", "{c}");
        }
        let status = h.json(&["env", "status", &env]);
        let error = status["status"]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("is stopped") && error.contains(&format!("kindling env start {env}")),
            "{status}"
        );
        assert_eq!(status["status"]["ready"], false);
        assert_eq!(status["status"]["stopped"].as_array().unwrap().len(), 3);
        // Stopping twice is fine and stops nothing more.
        let again = h.json(&["env", "stop", &env]);
        assert!(again["stop"]["containers"].as_array().unwrap().is_empty());

        // While Gitea is down, another container takes its address on the env's network.
        let network = h.state(&env)["cluster"]["network"]
            .as_str()
            .unwrap()
            .to_string();
        let address = || container_address(&gitea, &network);
        let routed = || {
            h.api.object("EndpointSlice", "gitea-docker").unwrap()["endpoints"][0]["addresses"][0]
                .as_str()
                .unwrap()
                .to_string()
        };
        let before = routed();
        // Docker hands out the lowest free address: three placeholders take the three that
        // stopping freed (node, Gitea, registry), so Gitea cannot get its own back.
        let placeholders: Vec<String> = (0..3)
            .map(|i| format!("kindling-{env}-placeholder-{i}"))
            .collect();
        for p in &placeholders {
            let held = docker_cli(&[
                "run",
                "-d",
                "--name",
                p,
                "--label",
                &h.data_label(),
                "--network",
                &network,
                TEST_IMAGE,
                "sleep",
                "600",
            ]);
            assert!(held.status.success(), "{held:?}");
        }

        let t = std::time::Instant::now();
        let started = h.json(&["env", "start", &env]);
        if bench {
            println!("bench: start {:.2}s", t.elapsed().as_secs_f64());
        }
        assert_eq!(
            started["start"]["containers"].as_array().unwrap().len(),
            3,
            "{started}"
        );
        for c in [&node, &gitea, &registry] {
            assert_eq!(container_state(c), "running", "{c}");
        }
        let moved = address();
        assert_ne!(moved, before);
        let repaired = started["start"]["routeRepaired"]
            .as_str()
            .unwrap_or_default();
        assert!(
            repaired.contains(&format!("from {before} to {moved}")),
            "{started}"
        );
        assert_eq!(routed(), moved);
        // The engine was asked to reconcile after the start.
        assert!(
            h.api
                .requests()
                .iter()
                .rev()
                .take_while(|r| !(r.method == "GET" && r.path.contains("/nodes")))
                .any(|r| r.method == "PATCH" && r.body.contains("reconcile.fluxcd.io/requestedAt")),
            "no reconcile request after the nodes were Ready"
        );
        let status = h.json(&["env", "status", &env, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        for p in &placeholders {
            assert!(docker_cli(&["rm", "-f", p]).status.success());
        }
        delete_clean(&h, &env);
    }
}
