//! A Docker engine on another machine (issue #22 part 3): the env's ports stay on that
//! machine's 127.0.0.1 and are reached through an SSH tunnel kindling runs
//! (`src/docker/remote.rs`). The engine here is this machine's, named remote with
//! `KINDLING_DOCKER_SSH`; the fake `ssh` records what kindling asks of it and stays up as a
//! tunnel does (tests/common/env_harness.rs `fake_ssh`).

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::unique;
    use serde_json::Value;

    const REMOTE: (&str, &str) = ("KINDLING_DOCKER_SSH", "tester@build-box");

    fn tunnel(h: &Harness, env: &str) -> Option<Value> {
        let path = h.path("data/envs").join(env).join("tunnel.json");
        std::fs::read(path)
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    fn alive(pid: u64) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
    }

    #[test]
    fn env_on_a_remote_engine_reaches_its_ports_through_an_ssh_tunnel() {
        let h = Harness::new();
        let env = unique("remote");
        ok(&h
            .create_command(&env, &h.path("profile.yaml"), &[], &[REMOTE])
            .output()
            .unwrap());
        let state = h.state(&env);
        let t = tunnel(&h, &env).expect("a tunnel is recorded");
        let pid = t["pid"].as_u64().unwrap();
        assert!(alive(pid), "the tunnel is not running");
        assert_eq!(t["destination"], "tester@build-box");
        let calls = std::fs::read_to_string(h.path("bin/ssh-calls")).unwrap();
        let last = calls.lines().last().unwrap();
        let api_port: u64 = h.api.url.rsplit_once(':').unwrap().1.parse().unwrap();
        // The harness's Gitea is an external one (no port of the env's); the registry, the
        // ingress and the API server are the env's.
        for port in [
            state["ports"]["registry"].as_u64().unwrap(),
            state["ports"]["http"].as_u64().unwrap(),
            state["ports"]["https"].as_u64().unwrap(),
            api_port,
        ] {
            assert!(
                last.contains(&format!("-L 127.0.0.1:{port}:127.0.0.1:{port}")),
                "port {port} is not forwarded: {last}"
            );
        }
        assert!(last.ends_with(" tester@build-box"), "{last}");
        assert!(last.contains("ExitOnForwardFailure=yes"));
        // A tunnel that went (a laptop's sleep, a dropped link) is opened again by the next
        // command that needs the env.
        std::process::Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap();
        wait_until(
            "the tunnel to end",
            std::time::Duration::from_secs(5),
            || !alive(pid),
        );
        ok(&h.run(&["env", "status", &env, "--output", "json"], &[REMOTE]));
        let again = tunnel(&h, &env).unwrap()["pid"].as_u64().unwrap();
        assert_ne!(again, pid);
        assert!(alive(again));
        // doctor says how the ports are reached.
        let doctor = h.run(&["doctor", "--output", "json"], &[REMOTE]);
        let text = String::from_utf8_lossy(&doctor.stdout);
        assert!(
            text.contains("docker reach")
                && text.contains("ssh -N -L 127.0.0.1:PORT:127.0.0.1:PORT tester@build-box"),
            "{text}"
        );
        // Delete ends it.
        ok(&h.run(&["env", "delete", &env, "--output", "json"], &[REMOTE]));
        assert!(!alive(again), "the tunnel outlived the env");
        assert!(tunnel(&h, &env).is_none());
    }

    #[test]
    fn env_on_a_local_engine_runs_no_tunnel() {
        let h = Harness::new();
        let env = unique("local");
        ok(&h
            .create_command(&env, &h.path("profile.yaml"), &[], &[])
            .output()
            .unwrap());
        assert!(tunnel(&h, &env).is_none());
        assert!(!h.path("bin/ssh-calls").exists());
        delete_clean(&h, &env);
    }
}
