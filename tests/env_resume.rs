//! `env create` resumed: a fault injected at every step, a failed cluster beside finished
//! parts, Ctrl-C between steps, and parts removed behind kindling's back, each followed by a
//! rerun that finishes the job and a delete that leaves nothing
//! (tests/common/env_harness.rs).

mod common;

mod env {

    use std::os::unix::process::CommandExt;
    use std::time::Duration;

    use serde_json::Value;

    use super::common::env_harness::*;

    use super::common::{docker, docker_cli, docker_labelled, unique};

    /// Whether what `step` makes exists for `env` (`None` for preflight, which makes nothing).
    fn side_effect(h: &Harness, env: &str, step: &str) -> Option<bool> {
        let has = |kind: &str, name: &str| h.api.object(kind, name).is_some();
        Some(match step {
            "preflight" => return None,
            "ca" => h
                .path(&format!("data/envs/{env}/ca/intermediate.pem"))
                .exists(),
            "cluster" => container_exists(&format!("kindling-{env}-control-plane")),
            "registry" => container_exists(&format!("kindling-{env}-registry")),
            "gitea" => h.gitea.root.join("kindling/source.git").exists(),
            "push" => h.gitea.head().is_some(),
            // The mirror configuration written into the node (kind's containerd certs.d).
            "connect" => {
                let out = docker_cli(&[
                    "exec",
                    &format!("kindling-{env}-control-plane"),
                    "sh",
                    "-c",
                    "ls /etc/containerd/certs.d",
                ]);
                out.status.success() && !out.stdout.is_empty()
            }
            "engine" => has("Deployment", "kustomize-controller"),
            "secrets" => has("Secret", "database-credentials"),
            "storage" => has("PersistentVolume", "sample-db"),
            "bootstrap" => has("Kustomization", "kindling-sample"),
            "reconcile" => {
                h.api.requests().iter().any(|r| {
                    r.method == "PATCH" && r.body.contains("reconcile.fluxcd.io/requestedAt")
                })
            }
            other => panic!("no side effect known for step {other}"),
        })
    }

    fn fault_then_rerun(steps: &[&str]) {
        for step in steps {
            // A harness (API, Gitea) of its own per fault, so what an earlier fault's env
            // made cannot pass for this one's side effects.
            let h = Harness::new();
            let env = unique("f");
            // The storage step has something to do only for a stamp with storage.
            if *step == "storage" {
                let file = h.path("source/stamps/sample/stamp.yaml");
                let mut text = std::fs::read_to_string(&file).unwrap();
                text.push_str("  storage:\n    - {name: db, path: /mnt/pv/db, size: 1Gi, accessModes: [ReadWriteOnce], storageClass: db}\n");
                std::fs::write(&file, text).unwrap();
            }
            let failed = h.create(&env, &[("KINDLING_FAIL_AT", step)]);
            assert_eq!(
                failed.status.code(),
                Some(1),
                "{step}: {}",
                String::from_utf8_lossy(&failed.stderr)
            );
            let doc: Value = serde_json::from_slice(&failed.stdout).unwrap();
            assert_eq!(doc["ok"], false);
            assert!(
                doc["error"].as_str().unwrap().contains("failed on purpose"),
                "{doc}"
            );
            let state = h.state(&env);
            let done: Vec<&str> = state["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            let name = step.trim_start_matches("before:");
            assert!(
                !done.contains(&name),
                "{step}: {name} must not be recorded: {done:?}"
            );
            // `STEP` fails after the step's side effects, `before:STEP` before any.
            if let Some(happened) = side_effect(&h, &env, name) {
                assert_eq!(
                    happened,
                    !step.starts_with("before:"),
                    "{step}: the side effect of {name}"
                );
            }
            let rerun = ok(&h.create(&env, &[]));
            let skipped = report_steps(&rerun, "skipped");
            // What finished before the fault is not redone (among the steps that can skip).
            for s in ["cluster", "gitea", "registry", "engine"] {
                if done.contains(&s) {
                    assert!(
                        skipped.contains(&s),
                        "{step}: {s} redone; skipped {skipped:?}"
                    );
                }
            }
            assert_eq!(
                h.state(&env)["steps"].as_array().unwrap().len(),
                kindling::env::steps::names().len(),
                "{step}"
            );
            delete_clean(&h, &env);
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_fault_before_side_effects_rerun_completes_and_delete_cleans_up() {
        if docker().await.is_none() {
            return;
        }
        fault_then_rerun(&[
            "before:registry",
            "before:push",
            "before:engine",
            "before:bootstrap",
        ]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_fault_in_the_concurrent_group_keeps_what_finished_beside_it() {
        if docker().await.is_none() {
            return;
        }
        // The cluster fails before kind is asked while Gitea and the registry start beside
        // it: they finish and are recorded, so the rerun skips them and makes only the cluster.
        let h = Harness::new();
        let env = unique("g");
        let failed = h.create(&env, &[("KINDLING_FAIL_AT", "before:cluster")]);
        error_says(&failed, "before doing anything");
        assert_eq!(failed.status.code(), Some(1));
        let kind_calls = std::fs::read_to_string(h.path("bin/kind-calls")).unwrap_or_default();
        assert!(!kind_calls.contains("create cluster"), "{kind_calls}");
        let state = h.state(&env);
        let done = done_steps(&state);
        assert!(
            done.contains(&"gitea") && done.contains(&"registry") && !done.contains(&"cluster"),
            "{done:?}"
        );
        assert!(container_exists(&format!("kindling-{env}-registry")));
        let rerun = ok(&h.create(&env, &[]));
        let ran: Vec<(&str, &str)> = rerun["env"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
            .collect();
        // The cheap idempotent steps run again; what lasts is skipped while it is there.
        for (step, status) in [
            ("cluster", "done"),
            ("gitea", "skipped"),
            ("registry", "skipped"),
            ("ca", "done"),
            ("connect", "done"),
            ("push", "done"),
            ("secrets", "done"),
            ("bootstrap", "done"),
        ] {
            assert!(ran.contains(&(step, status)), "{step} {status}: {ran:?}");
        }
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_fault_early_steps_rerun_completes_and_delete_cleans_up() {
        if docker().await.is_none() {
            return;
        }
        fault_then_rerun(&["preflight", "ca", "cluster", "gitea"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_fault_middle_steps_rerun_completes_and_delete_cleans_up() {
        if docker().await.is_none() {
            return;
        }
        fault_then_rerun(&["registry", "connect", "push", "engine"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_fault_late_steps_rerun_completes_and_delete_cleans_up() {
        if docker().await.is_none() {
            return;
        }
        fault_then_rerun(&["secrets", "storage", "bootstrap", "reconcile"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_failed_cluster_create_is_reported_and_delete_cleans_a_half_made_env() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        std::fs::write(h.path("bin/fail-create"), "").unwrap();
        let env = unique("half");
        let out = h.create(&env, &[]);
        assert_eq!(out.status.code(), Some(1));
        error_says(&out, "node did not become ready");
        // Gitea and the registry finished beside the failed cluster, and are recorded.
        let state = h.state(&env);
        let done = done_steps(&state);
        assert!(
            done.contains(&"registry") && done.contains(&"gitea"),
            "{done:?}"
        );
        assert!(!docker_labelled(&env).is_empty());
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_ctrl_c_stops_between_steps_and_a_rerun_finishes() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        std::fs::write(h.path("bin/slow-create"), "").unwrap();
        let env = unique("int");
        let profile = h.path("profile.yaml");
        let child = h
            .create_command(&env, &profile, &[], &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        // Once kind is creating the cluster (the fake kind logs the call, then takes 3s),
        // interrupt as a terminal does: SIGINT to kindling's whole process group.
        let calls = h.path("bin/kind-calls");
        wait_until("kind was asked", Duration::from_secs(30), || {
            std::fs::read_to_string(&calls).is_ok_and(|c| c.contains("create cluster"))
        });
        let kill = std::process::Command::new("kill")
            .args(["-INT", "--", &format!("-{}", child.id())])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        error_says(&out, "interrupted after step");
        // The step under way finished and was recorded (kind, in a group of its own, was not
        // interrupted mid-create); nothing after it ran.
        let state = h.state(&env);
        let done = done_steps(&state);
        assert!(done.contains(&"cluster"), "{done:?}");
        assert!(!done.contains(&"push"), "{done:?}");
        std::fs::remove_file(h.path("bin/slow-create")).unwrap();
        let rerun = ok(&h.create(&env, &[]));
        let skipped = report_steps(&rerun, "skipped");
        assert!(skipped.contains(&"cluster"), "{skipped:?}");
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_rerun_makes_again_what_disappeared_behind_kindlings_back() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("gone");
        ok(&h.create(&env, &[]));
        // The cluster and the registry container vanish (someone ran kind delete / docker rm).
        let cluster = format!("kindling-{env}");
        let deleted = std::process::Command::new(h.path("bin/kind"))
            .args(["delete", "cluster", "--name", &cluster])
            .status()
            .unwrap();
        assert!(deleted.success());
        assert!(
            docker_cli(&["rm", "-f", &format!("kindling-{env}-registry")])
                .status
                .success()
        );
        let status = h.json(&["env", "status", &env]);
        assert_eq!(status["status"]["cluster"]["state"], "missing");
        assert_eq!(status["status"]["ready"], false);
        let rerun = h.create(&env, &[]);
        let doc = ok(&rerun);
        let done: Vec<&str> = doc["env"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "done")
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        for step in ["cluster", "registry", "engine"] {
            assert!(done.contains(&step), "{step} not redone: {done:?}");
        }
        assert!(String::from_utf8_lossy(&rerun.stderr).contains("is gone; making it again"));
        assert!(container_exists(&format!("kindling-{env}-control-plane")));
        assert!(container_exists(&format!("kindling-{env}-registry")));
        delete_clean(&h, &env);
    }

    /// The harness's guard: a test that panics before its `delete_clean` leaves nothing on
    /// the Docker engine once its harness is dropped (as unwinding drops it).
    #[tokio::test(flavor = "multi_thread")]
    async fn env_harness_removes_what_a_failed_test_left_behind() {
        if docker().await.is_none() {
            return;
        }
        let env = unique("left");
        let left = std::panic::catch_unwind(|| {
            let h = Harness::new();
            ok(&h.create(&env, &[]));
            assert!(container_exists(&format!("kindling-{env}-control-plane")));
            panic!("a test failing half-way");
        });
        assert!(left.is_err());
        assert!(!container_exists(&format!("kindling-{env}-control-plane")));
        assert!(!container_exists(&format!("kindling-{env}-registry")));
        assert_eq!(docker_labelled(&env), Vec::<String>::new());
    }
}
