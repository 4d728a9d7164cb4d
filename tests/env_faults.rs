//! `env create` against the faults a laptop or CI runner really meets: kindling killed with
//! `kill -9` mid-step, Ctrl-C (SIGINT to the process group) during the reconcile wait, two
//! kindling processes racing on one env, a Gitea that accepts connections and never answers,
//! and a data dir that is full or read-only. Each ends in a completed rerun or a clear error
//! within the timeout (tests/common/env_harness.rs).

mod common;

mod env {

    use std::os::unix::process::CommandExt;
    use std::process::{Child, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::common::env_harness::*;
    use super::common::kube_api::{FakeApi, builtin_controllers};
    use super::common::{docker, unique};

    /// `env create` of the sample stamp, started in a process group of its own (as a shell
    /// starts a foreground job), with `--wait` and a long timeout.
    fn spawn_create(h: &Harness, env: &str, extra: &[(&str, &str)]) -> Child {
        h.create_command(
            env,
            &h.path("profile.yaml"),
            &["--wait", "--timeout", "10m"],
            extra,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
    }

    fn stderr(out: &std::process::Output) -> String {
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_kill_9_mid_step_then_a_rerun_finishes_the_job() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        std::fs::write(h.path("bin/slow-create"), "").unwrap();
        let env = unique("k9");
        let node = format!("kindling-{env}-control-plane");
        let mut child = spawn_create(&h, &env, &[]);
        // kind has made the node and is in its long kubeadm phase: kill kindling outright
        // (no handler runs, the lock file stays behind naming a dead pid).
        wait_until("kind made the node", Duration::from_secs(60), || {
            container_exists(&node)
        });
        child.kill().unwrap();
        let killed = child.wait_with_output().unwrap();
        assert_eq!(killed.status.code(), None, "{}", stderr(&killed));
        assert!(h.path(&format!("data/envs/{env}/lock")).exists());
        // What kindling wrote before it died is whole: state.json parses.
        let before = h.state(&env);
        assert!(!done_steps(&before).contains(&"cluster"), "{before}");
        // The rerun starts at once, while the orphaned kind (in its own process group, so
        // the kill did not reach it) is still finishing: it takes over the stale lock, finds
        // the cluster, waits for its kubeconfig, and finishes every step.
        let rerun = h.create(&env, &[]);
        let doc = ok(&rerun);
        let cluster = doc["env"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "cluster")
            .unwrap()
            .clone();
        assert_eq!(cluster["status"], "done", "{cluster}");
        assert_eq!(cluster["detail"], "found, nodes Ready", "{cluster}");
        let creates = std::fs::read_to_string(h.path("bin/kind-calls"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("create cluster") && l.contains(&env))
            .count();
        assert_eq!(creates, 1, "kind was asked to create the cluster again");
        assert_eq!(
            h.state(&env)["steps"].as_array().unwrap().len(),
            kindling::env::steps::names().len()
        );
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_ctrl_c_during_the_reconcile_wait_stops_at_once_and_a_rerun_finishes() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("wait");
        // This env's cluster has an API whose Flux reconciles nothing until `reconciling`
        // is set; its built-in controllers (Deployments available, CRDs established) run.
        let reconciling = Arc::new(AtomicBool::new(false));
        let api = {
            let gate = reconciling.clone();
            let mut flux = flux_controller(Head::Repo(h.gitea.root.join("kindling/source.git")));
            let api = FakeApi::start(Some(Box::new(move |objects: &mut Vec<_>| {
                if gate.load(Ordering::SeqCst) {
                    flux(objects)
                } else {
                    builtin_controllers(objects)
                }
            })));
            with_ready_node(&api);
            std::fs::write(h.path(&format!("bin/api-kindling-{env}")), &api.url).unwrap();
            api
        };
        let child = spawn_create(&h, &env, &[]);
        // The reconcile step has asked Flux to reconcile now, and is following.
        wait_until("the reconcile request", Duration::from_secs(60), || {
            api.requests()
                .iter()
                .any(|r| r.method == "PATCH" && r.body.contains("reconcile.fluxcd.io/requestedAt"))
        });
        let interrupted_at = Instant::now();
        let kill = std::process::Command::new("kill")
            .args(["-INT", "--", &format!("-{}", child.id())])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        // It stopped at once, not at the end of the 10 min --timeout.
        assert!(
            interrupted_at.elapsed() < Duration::from_secs(30),
            "{:?}",
            interrupted_at.elapsed()
        );
        assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
        let doc = error_says(&out, "interrupted while waiting for reconciliation");
        assert!(
            doc["error"]
                .as_str()
                .unwrap()
                .contains(&format!("kindling env status {env} --wait")),
            "{doc}"
        );
        let done = done_steps(&h.state(&env))
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        assert!(done.contains(&"bootstrap".to_string()), "{done:?}");
        assert!(!done.contains(&"reconcile".to_string()), "{done:?}");
        // Flux gets going; the same command finishes the job and follows to Ready.
        reconciling.store(true, Ordering::SeqCst);
        let rerun = ok(&h.create(&env, &[]));
        // What made things is not made again (the rest re-applies, as every run does).
        for step in ["cluster", "gitea", "registry", "engine"] {
            assert!(
                report_steps(&rerun, "skipped").contains(&step),
                "{step}: {rerun}"
            );
        }
        assert!(
            report_steps(&rerun, "done").contains(&"reconcile"),
            "{rerun}"
        );
        let entries = rerun["env"]["status"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 6, "{rerun}");
        assert!(entries.iter().all(|e| e["readiness"] == "ready"), "{rerun}");
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_two_kindlings_creating_one_env_make_it_once() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("race");
        let wait = [("KINDLING_LOCK_WAIT", "120")];
        let (first, second) = (spawn_create(&h, &env, &wait), spawn_create(&h, &env, &wait));
        let outs = [
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        ];
        let docs: Vec<Value> = outs.iter().map(ok).collect();
        // One of them made everything; the other waited for the lock, then found it made.
        let made: Vec<&Value> = docs
            .iter()
            .filter(|d| report_steps(d, "done").contains(&"cluster"))
            .collect();
        assert_eq!(made.len(), 1, "{docs:?}");
        let found = docs
            .iter()
            .find(|d| !report_steps(d, "done").contains(&"cluster"))
            .unwrap();
        for step in ["cluster", "gitea", "registry", "engine"] {
            assert!(
                report_steps(found, "skipped").contains(&step),
                "{step}: {found}"
            );
        }
        let creates = std::fs::read_to_string(h.path("bin/kind-calls"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("create cluster"))
            .count();
        assert_eq!(creates, 1);
        assert_eq!(h.gitea.head().as_deref(), h.state(&env)["commit"].as_str());
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_gitea_that_never_answers_fails_within_the_step_timeout() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("hang");
        // Accepts every connection and never says a word (a Gitea stuck in a migration, a
        // proxy that swallows requests). The streams stay open until the test ends.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                held.push(stream);
            }
        });
        let started = Instant::now();
        let out = h.create(
            &env,
            &[
                ("KINDLING_GITEA_URL", url.as_str()),
                ("KINDLING_STEP_TIMEOUT", "2"),
            ],
        );
        // Bounded by KINDLING_STEP_TIMEOUT, not by a request's own 30 s timeout.
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        error_says(
            &out,
            &format!("Gitea at {url}/api/healthz did not become healthy within 2s"),
        );
        // The steps beside it finished and were kept for the rerun.
        let done = done_steps(&h.state(&env))
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        assert!(done.contains(&"cluster".to_string()), "{done:?}");
        assert!(!done.contains(&"gitea".to_string()), "{done:?}");
        delete_clean(&h, &env);
    }

    /// Runs `script` (sh) in a mount namespace of its own, where it may mount a small tmpfs;
    /// `None` where this host allows no such namespace (not root and no user namespaces).
    fn in_own_mounts(
        script: &str,
        envs: &[(&str, &std::ffi::OsStr)],
    ) -> Option<std::process::Output> {
        for prefix in [
            &["--mount"][..],
            &["--user", "--map-root-user", "--mount"][..],
        ] {
            let probe = std::process::Command::new("unshare")
                .args(prefix)
                .args(["sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"])
                .output();
            if !probe.is_ok_and(|p| p.status.success()) {
                continue;
            }
            let out = std::process::Command::new("unshare")
                .args(prefix)
                .args(["sh", "-ec", script])
                .envs(envs.iter().map(|(k, v)| (*k, *v)))
                .output()
                .unwrap();
            return Some(out);
        }
        None
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_full_or_read_only_data_dir_is_a_clear_error_and_state_stays_readable() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("disk");
        ok(&h.create(&env, &[]));
        let before = h.state(&env);
        // The env's data dir, copied onto a 1 MiB tmpfs, which is then filled up; later
        // mounted read-only. Every kindling run inside sees only that data dir.
        let sync = h.command(&["env", "sync", &env, "--output", "json"], &[]);
        let mut envs: Vec<(String, std::ffi::OsString)> = sync
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_os_string())))
            .filter(|(k, _)| k != "KINDLING_DATA_DIR")
            .collect();
        let out_dir = h.path("out");
        std::fs::create_dir_all(&out_dir).unwrap();
        let tmpfs = h.path("tmpfs");
        std::fs::create_dir_all(&tmpfs).unwrap();
        envs.push(("KINDLING_DATA_DIR".into(), tmpfs.clone().into()));
        envs.push(("DATA".into(), h.path("data").into()));
        envs.push(("OUT".into(), out_dir.clone().into()));
        envs.push(("BIN".into(), sync.get_program().to_os_string()));
        envs.push(("ENV".into(), env.clone().into()));
        let script = format!(
            r#"cd "{source}"
mount -t tmpfs -o size=1m tmpfs "$KINDLING_DATA_DIR"
cp -a "$DATA/." "$KINDLING_DATA_DIR/"
dd if=/dev/zero of="$KINDLING_DATA_DIR/filler" bs=4k 2>/dev/null || true
echo edit >> stamps/sample/README-disk.md
"$BIN" env sync "$ENV" --output json > "$OUT/full-sync.json" 2> "$OUT/full-sync.err" || echo $? > "$OUT/full-sync.rc"
"$BIN" env status "$ENV" --output json > "$OUT/full-status.json" 2> "$OUT/full-status.err" || echo $? > "$OUT/full-status.rc"
cp "$KINDLING_DATA_DIR/envs/$ENV/state.json" "$OUT/full-state.json"
rm "$KINDLING_DATA_DIR/filler"
free=$(df -k --output=avail "$KINDLING_DATA_DIR" | tail -1)
dd if=/dev/zero of="$KINDLING_DATA_DIR/filler" bs=1k count=$((free - 4)) 2>/dev/null
"$BIN" env sync "$ENV" --output json > "$OUT/nearly-sync.json" 2> "$OUT/nearly-sync.err" || echo $? > "$OUT/nearly-sync.rc"
rm "$KINDLING_DATA_DIR/filler"
"$BIN" env status "$ENV" --output json > "$OUT/nearly-status.json" 2> "$OUT/nearly-status.err" || echo $? > "$OUT/nearly-status.rc"
cp "$KINDLING_DATA_DIR/envs/$ENV/state.json" "$OUT/nearly-state.json"
mount -o remount,ro "$KINDLING_DATA_DIR"
"$BIN" env sync "$ENV" --output json > "$OUT/ro-sync.json" 2> "$OUT/ro-sync.err" || echo $? > "$OUT/ro-sync.rc"
"$BIN" env status "$ENV" --output json > "$OUT/ro-status.json" 2> "$OUT/ro-status.err" || echo $? > "$OUT/ro-status.rc"
cp "$KINDLING_DATA_DIR/envs/$ENV/state.json" "$OUT/ro-state.json"
"#,
            source = h.path("source").display()
        );
        let envs: Vec<(&str, &std::ffi::OsStr)> = envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_os_str()))
            .collect();
        let Some(ran) = in_own_mounts(&script, &envs) else {
            eprintln!("skipped: this host allows no private mount namespace (unshare)");
            return;
        };
        assert!(
            ran.status.success(),
            "{}",
            String::from_utf8_lossy(&ran.stderr)
        );
        let read = |f: &str| std::fs::read_to_string(out_dir.join(f)).unwrap_or_default();
        for (case, cause) in [
            ("full", "No space left on device"),
            ("nearly", "No space left on device"),
            ("ro", "Read-only file system"),
        ] {
            // The sync fails, names the file it could not write and why, in one JSON document.
            assert_eq!(
                read(&format!("{case}-sync.rc")).trim(),
                "1",
                "{case}: {}",
                read(&format!("{case}-sync.err"))
            );
            let doc: Value = serde_json::from_str(&read(&format!("{case}-sync.json"))).unwrap();
            let error = doc["error"].as_str().unwrap_or_default();
            assert!(error.contains(cause), "{case}: {doc}");
            assert!(
                error.contains("what was written before is unchanged"),
                "{case}: {doc}"
            );
            assert!(
                error.contains(h.path("tmpfs").to_str().unwrap()),
                "{case}: {doc}"
            );
            // The state is whole and still the one before, and status reads it.
            let state: Value = serde_json::from_str(&read(&format!("{case}-state.json"))).unwrap();
            assert_eq!(state["commit"], before["commit"], "{case}");
            assert_eq!(
                read(&format!("{case}-status.rc")),
                "",
                "{case}: {}",
                read(&format!("{case}-status.err"))
            );
            let status: Value =
                serde_json::from_str(&read(&format!("{case}-status.json"))).unwrap();
            assert_eq!(status["ok"], true, "{case}: {status}");
        }
        std::fs::remove_file(h.path("source/stamps/sample/README-disk.md")).unwrap();
        delete_clean(&h, &env);
    }
}
