//! The env commands beside create and delete: hold/approve/restart, the env lock, list with
//! orphans, dry runs, watch, and envs side by side (tests/common/env_harness.rs).

mod common;

mod env {

    use std::time::Duration;

    use serde_json::{Value, json};

    use super::common::env_harness::*;
    use super::common::fake_gitea::FakeGitea;
    use super::common::{docker, docker_cli, docker_labelled, unique};

    #[tokio::test(flavor = "multi_thread")]
    async fn env_hold_waits_for_approve_and_restart_rebootstraps() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("hold");
        let profile = h.path("profile.yaml");
        let created = h.json(&[
            "env",
            "create",
            &env,
            "--stamp",
            "sample",
            "--profile",
            profile.to_str().unwrap(),
            "--hold",
        ]);
        assert_eq!(created["env"]["awaitingApproval"], true);
        let status = h.json(&["env", "status", &env]);
        assert_eq!(status["status"]["reconciliation"]["awaitingApproval"], true);
        assert_eq!(status["status"]["ready"], false);
        assert!(
            status["status"]["reconciliation"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["readiness"] == "missing")
        );
        // --wait on a held env times out with exit 3 and says why.
        let waited = h.run(
            &[
                "env",
                "status",
                &env,
                "--wait",
                "--timeout",
                "1s",
                "--output",
                "json",
            ],
            &[],
        );
        assert_eq!(waited.status.code(), Some(3));
        error_says(&waited, "awaiting approval");

        let approved = h.json(&["env", "approve", &env]);
        assert_eq!(approved["approve"]["wasHeld"], true);
        let status = h.json(&["env", "status", &env, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");

        let restarted = h.json(&["env", "restart", &env]);
        assert_eq!(restarted["restart"]["stamp"], "sample");
        let deletes = h
            .api
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE" && r.path.contains("kustomizations/kindling-sample"))
            .count();
        assert_eq!(deletes, 1);
        // Flux pruned the `database` Namespace (the stamp applies it) and with it the
        // bootstrap Secret; the restart waited until the Namespace was gone, not merely
        // Terminating, before it put the Secret back (issue #16, defect 1).
        let status = h.json(&["env", "status", &env, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        let secret = h
            .api
            .object("Secret", "database-credentials")
            .expect("the bootstrap Secret is there after the restart");
        assert!(secret["metadata"]["deletionTimestamp"].is_null());
        let namespace = h.api.object("Namespace", "database").unwrap();
        assert!(namespace["metadata"]["deletionTimestamp"].is_null());
        let root = h.api.object("Kustomization", "kindling-sample").unwrap();
        assert_eq!(root["spec"]["deletionPolicy"], "WaitForTermination");

        // Another stamp on the same cluster: the old root goes, the new one is bootstrapped.
        let other = h.path("source/stamps/other");
        super::common::copy_tree(&h.path("source/stamps/sample"), &other);
        let text = std::fs::read_to_string(other.join("stamp.yaml")).unwrap();
        let text = text
            .replace("  name: sample", "  name: other")
            .replace("!/stamps/sample/", "!/stamps/other/");
        std::fs::write(other.join("stamp.yaml"), text).unwrap();
        let switched = h.json(&["env", "restart", &env, "--stamp", "other"]);
        assert_eq!(switched["restart"]["removedStamp"], "sample");
        assert_eq!(switched["restart"]["stamp"], "other");
        let deletes = h
            .api
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE" && r.path.contains("kustomizations/kindling-sample"))
            .count();
        assert_eq!(deletes, 2);
        assert!(h.api.object("Kustomization", "kindling-other").is_some());
        assert_eq!(h.state(&env)["stamp"], "other");
        let status = h.json(&["env", "status", &env, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["stamp"], "other");
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_lock_contention_and_missing_envs_are_clear() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("lock");
        ok(&h.create(&env, &[]));
        // Another live kindling holds the env.
        let mut holder = h.hold_lock(&env, "env create");
        let out = h.run(&["env", "sync", &env], &[]);
        holder.kill().unwrap();
        let _ = holder.wait();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is busy") && err.contains(&format!("pid {}", holder.id())),
            "{err}"
        );
        // The holder is gone now: the stale lock is taken over.
        ok(&h.run(&["env", "sync", &env, "--output", "json", "--no-wait"], &[]));
        let missing = h.run(&["env", "status", "no-such-env"], &[]);
        assert_eq!(missing.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("there is no env no-such-env"));
        let bad = h.run(&["env", "create", "Bad_Name"], &[]);
        assert_eq!(bad.status.code(), Some(2));
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_lock_sync_waiting_on_a_delete_does_not_bring_the_env_back() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("race");
        ok(&h.create(&env, &[]));
        // A delete holds the env; a sync waits for it.
        let mut holder = h.hold_lock(&env, "env delete");
        let env_dir = h.path("data/envs").join(&env);
        let sync = h
            .command(
                &["env", "sync", &env, "--no-wait"],
                &[("KINDLING_LOCK_WAIT", "20")],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The sync is waiting for the lock: it has not finished, and the lock is still ours.
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(700) {
            assert!(env_dir.join("lock").exists());
            std::thread::sleep(Duration::from_millis(50));
        }
        // The delete finishes as `env delete` does: the env's directory is moved aside, lock
        // included, then removed (a waiter polling for the lock cannot make it again there).
        let aside = env_dir.with_file_name(format!(".{env}.deleted-test"));
        std::fs::rename(&env_dir, &aside).unwrap();
        std::fs::remove_dir_all(&aside).unwrap();
        let out = sync.wait_with_output().unwrap();
        holder.kill().unwrap();
        let _ = holder.wait();
        // The sync read the state only once it held the lock, so it finds no env; a sync that
        // read it before would push and write the state back.
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("there is no env {env}")),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!env_dir.join("state.json").exists());
        // What the stand-in delete left (containers, the cluster) goes as an orphan.
        ok(&h.run(&["env", "delete", &env, "--output", "json"], &[]));
        assert!(docker_labelled(&env).is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_status_wait_rides_out_api_errors_and_a_hanging_api_times_out() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("flaky");
        ok(&h.create(&env, &[]));
        // The API server answers 500 for a while (etcd away): --wait retries, then reports.
        h.api.state.lock().unwrap().fail_gets = 4;
        let out = h.run(
            &[
                "env",
                "status",
                &env,
                "--wait",
                "--timeout",
                "30s",
                "--output",
                "json",
            ],
            &[],
        );
        let status = ok(&out);
        assert_eq!(status["status"]["ready"], true, "{status}");
        assert_eq!(h.api.state.lock().unwrap().fail_gets, 0);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("cannot be read") && said.contains("retrying"),
            "{said}"
        );
        // The API server hangs: --timeout still holds, with exit 3 naming why.
        h.api.state.lock().unwrap().delay = Some(Duration::from_secs(30));
        let started = std::time::Instant::now();
        let out = h.run(
            &[
                "env",
                "status",
                &env,
                "--wait",
                "--timeout",
                "2s",
                "--output",
                "json",
            ],
            &[],
        );
        let took = started.elapsed();
        h.api.state.lock().unwrap().delay = None;
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // One read is given at least 10 s (a slow API server); then --timeout holds.
        assert!(
            took < Duration::from_secs(25),
            "took {took:?} with --timeout 2s"
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            doc["error"]
                .as_str()
                .unwrap_or_default()
                .contains("did not answer"),
            "{doc}"
        );
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_delete_all_removes_this_data_dirs_envs_and_orphans_only() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("all");
        ok(&h.create(&env, &[]));
        // An orphan of this data dir, and an env of another data dir (another CI job's).
        let (orphan, foreign) = (unique("mine"), unique("theirs"));
        for (name, data) in [
            (&orphan, h.data_label()),
            (&foreign, "dev.kindling.data=another-data-dir".to_string()),
        ] {
            let label = format!("dev.kindling.env={name}");
            let volume = format!("kindling-{name}-data");
            let made = docker_cli(&[
                "volume", "create", "--label", &label, "--label", &data, &volume,
            ]);
            assert!(made.status.success());
        }
        let deleted = h.json(&["env", "delete", "--all"]);
        let names: Vec<&str> = deleted["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["env"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&env.as_str()) && names.contains(&orphan.as_str()),
            "{names:?}"
        );
        assert!(!names.contains(&foreign.as_str()), "{names:?}");
        assert!(docker_labelled(&env).is_empty() && docker_labelled(&orphan).is_empty());
        assert!(!container_exists(&format!("kindling-{env}-control-plane")));
        // What another data dir made is untouched, listed as another data dir's, and deleted
        // only by name.
        assert_eq!(docker_labelled(&foreign).len(), 1);
        let list = h.json(&["env", "list"]);
        let listed = list["envs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == foreign.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{foreign} not listed: {list}"));
        assert_eq!(listed["state"], "another data dir's", "{listed}");
        ok(&h.run(&["env", "delete", &foreign, "--output", "json"], &[]));
        assert!(docker_labelled(&foreign).is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_list_shows_orphans_and_delete_removes_them() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let orphan = unique("orphan");
        // Made by this data dir, as its label says (its state lost, say, in a crash).
        let created = docker_cli(&[
            "volume",
            "create",
            "--label",
            &format!("dev.kindling.env={orphan}"),
            "--label",
            &h.data_label(),
            &format!("kindling-{orphan}-data"),
        ]);
        assert!(created.status.success());
        let list = h.json(&["env", "list"]);
        let entry = list["envs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == orphan.as_str())
            .unwrap()
            .clone();
        assert_eq!(entry["state"], "orphaned");
        assert_eq!(
            entry["docker"]["volumes"],
            json!([format!("kindling-{orphan}-data")])
        );
        // A state.json that cannot be read is listed, marked broken, not hidden.
        let broken = h.path("data/envs/mangled");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("state.json"), "{not json").unwrap();
        let listed = h.json(&["env", "list"]);
        let entry = listed["envs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "mangled")
            .cloned()
            .unwrap_or_else(|| panic!("{listed}"));
        assert!(
            entry["state"].as_str().unwrap().starts_with("broken ("),
            "{entry}"
        );
        // The text listing: a header row, and counts that read as English.
        let text = h.run(&["env", "list"], &[]);
        let table = String::from_utf8_lossy(&text.stdout).to_string();
        assert!(table.starts_with("NAME "), "{table}");
        let row = table
            .lines()
            .find(|l| l.starts_with(orphan.as_str()))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(row.ends_with("0 containers, 1 volume, 0 networks"), "{row}");
        let deleted = h.json(&["env", "delete", &orphan]);
        assert_eq!(
            deleted["deleted"][0]["removed"]["volumes"],
            json!([format!("kindling-{orphan}-data")])
        );
        assert!(docker_labelled(&orphan).is_empty());
    }

    /// `-v` shows the underlying calls in every command, not only in `env create`: the
    /// Kubernetes requests of `env status`, the Docker calls of `doctor` and `env delete`, what
    /// `--dry-run` looks at. Without it, none of them; and never the Gitea token.
    #[tokio::test(flavor = "multi_thread")]
    async fn verbose_shows_the_underlying_calls_of_every_command() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("v");
        let created = h.create(&env, &[]);
        ok(&created);
        // This engine's own facts decide whether create warns that the local network can reach
        // its loopback ports (Docker Engine before 28.3.3 on Linux): it warns exactly then.
        let facts = kindling::docker::DockerClient::connect()
            .await
            .unwrap()
            .engine_facts()
            .await
            .unwrap();
        let said = String::from_utf8_lossy(&created.stderr);
        assert_eq!(
            said.contains("reach ports published on 127.0.0.1")
                || said.contains("exposes ports published on 127.0.0.1"),
            facts.loopback_exposure().is_some(),
            "engine {} on {}: {said}",
            facts.version,
            facts.operating_system
        );
        let profile = h.path("profile.yaml");
        let dry_run = [
            "env",
            "create",
            "other",
            "--profile",
            profile.to_str().unwrap(),
            "--dry-run",
        ];
        let commands: [(&[&str], &[&str]); 4] = [
            (&["env", "status", &env], &["· kube: GET /apis/"]),
            (&["doctor"], &["· docker: info", "· df -Pk"]),
            (&dry_run, &["· docker: list containers"]),
            (
                &["env", "delete", &env],
                &["· docker: remove container", "· docker: list containers"],
            ),
        ];
        let token = super::common::fake_gitea::recorded_token();
        for (args, calls) in commands {
            // Quiet first (delete must run last, and once).
            if args.get(1) != Some(&"delete") {
                let quiet = h.run(args, &[]);
                let said = String::from_utf8_lossy(&quiet.stderr);
                assert!(!said.contains(" · "), "{args:?} without -v: {said}");
            }
            let mut verbose = args.to_vec();
            verbose.push("-v");
            let out = h.run(&verbose, &[]);
            let said = String::from_utf8_lossy(&out.stderr);
            for call in calls {
                assert!(
                    said.contains(call),
                    "{args:?} -v does not show {call:?}: {said}"
                );
            }
            assert!(!said.contains(&token), "{args:?} -v shows the token");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_dry_run_touches_nothing_and_text_output_has_no_escape_codes() {
        let h = Harness::new();
        let profile = h.path("profile.yaml");
        let env = unique("dry");
        let out = h.json(&[
            "env",
            "create",
            &env,
            "--stamp",
            "sample",
            "--profile",
            profile.to_str().unwrap(),
            "--dry-run",
        ]);
        let plan = &out["plan"];
        assert_eq!(plan["steps"].as_array().unwrap().len(), 15);
        assert_eq!(plan["cluster"]["name"], format!("kindling-{env}"));
        // `kindling env create` alone: env dev, stamp sample, kind (the default profile, the
        // newest pinned Kubernetes), Flux.
        let bare = h.json(&["env", "create", "--dry-run"]);
        let defaults = &bare["plan"];
        assert_eq!(defaults["env"], "dev");
        assert_eq!(defaults["stamp"], "sample");
        assert_eq!(defaults["provider"], "kind");
        assert_eq!(defaults["engine"], "flux");
        assert_eq!(defaults["cluster"]["name"], "kindling-dev");
        assert_eq!(
            defaults["installManifest"]["version"],
            kindling::pins::FLUX.version
        );
        assert!(
            defaults["clusterConfig"]
                .as_str()
                .unwrap()
                .contains(kindling::pins::NODE_IMAGES[0].kind.artifact),
            "{defaults}"
        );
        assert!(
            plan["clusterConfig"]
                .as_str()
                .unwrap()
                .contains("kind.x-k8s.io/v1alpha4")
        );
        let secret = plan["bootstrap"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "Secret")
            .unwrap();
        assert!(
            secret["data"]
                .as_object()
                .unwrap()
                .values()
                .all(|v| v == "<redacted>")
        );
        assert!(!h.path("data").exists(), "a dry run writes no state");
        assert!(docker_labelled(&env).is_empty());
        // An external Gitea over plain http to another machine is refused (exit 2) unless
        // accepted with --insecure-gitea; the dry run catches it as a create would.
        let remote_http = [("KINDLING_GITEA_URL", "http://gitea.example.invalid:3000")];
        let args = [
            "env",
            "create",
            &env,
            "--profile",
            profile.to_str().unwrap(),
            "--dry-run",
            "--output",
            "json",
        ];
        let refused = h.run(&args, &remote_http);
        assert_eq!(refused.status.code(), Some(2));
        error_says(&refused, "is plain http to another machine");
        let mut insecure = args.to_vec();
        insecure.push("--insecure-gitea");
        ok(&h.run(&insecure, &remote_http));
        let text = h.create_text(&env, &profile, &["--dry-run"], &[]);
        assert!(text.status.success());
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&text.stdout),
            String::from_utf8_lossy(&text.stderr)
        );
        assert!(
            all.contains("nothing was changed") && !all.contains('\u{1b}'),
            "{all}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_watch_syncs_an_edit() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("w");
        ok(&h.create(&env, &[]));
        let before = h.state(&env)["commit"].as_str().unwrap().to_string();
        // The harness's source is no Git repository: watch must still go by what Git would
        // snapshot, .gitignore included.
        std::fs::write(h.path("source/.gitignore"), "*.tmp\n").unwrap();
        let mut watch = h
            .command(
                &["env", "watch", &env, "--debounce-ms", "100"],
                &[("KINDLING_WATCH_MAX_SYNCS", "1")],
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Edit only once watch has taken its first look at the tree (it says so), not after a
        // guessed sleep.
        let (lines, said) = std::sync::mpsc::channel();
        let stderr = watch.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines.send(line);
            }
        });
        let watching = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = watching.saturating_duration_since(std::time::Instant::now());
            let line = said
                .recv_timeout(left)
                .expect("watch never said it is watching");
            if line.contains("watching") {
                break;
            }
        }
        // An ignored file changes nothing: after well over the debounce and a poll, watch has
        // not synced (with one sync allowed it would have exited).
        std::fs::write(
            h.path("source/stamps/sample/applications/api/scratch.tmp"),
            "ignored\n",
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        assert!(
            watch.try_wait().unwrap().is_none(),
            "watch synced an ignored file"
        );
        std::fs::write(
            h.path("source/stamps/sample/applications/api/note.txt"),
            "watched\n",
        )
        .unwrap();
        let edited = std::time::Instant::now();
        let deadline = edited + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = watch.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "watch did not sync");
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest: Vec<String> = said.try_iter().collect();
        assert!(
            status.success(),
            "watch failed: {status}\n{}",
            rest.join("\n")
        );
        assert!(
            rest.iter().any(|l| l.contains("synced")),
            "watch said: {rest:?}"
        );
        if std::env::var_os("KINDLING_BENCH_REPORT").is_some() {
            // Edit → pushed → every entry reconciled at the new commit (watch exits then).
            println!(
                "bench: watch edit to reconciled {:.2}s",
                edited.elapsed().as_secs_f64()
            );
        }
        let after = h.state(&env)["commit"].as_str().unwrap().to_string();
        assert_ne!(before, after);
        assert_eq!(h.gitea.head().as_deref(), Some(after.as_str()));
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_two_envs_side_by_side_get_their_own_ports() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let (a, b) = (unique("a"), unique("b"));
        // Each env has its own Gitea (as with the containers kindling starts) and its own
        // cluster: b's API server is not the harness's.
        let second = FakeGitea::start("kindling", PASSWORD);
        let api_b = h.own_api(&format!("kindling-{b}"), &second);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| h.create(&a, &[]));
            let tb = s.spawn(|| h.create(&b, &[("KINDLING_GITEA_URL", second.url.as_str())]));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        ok(&ra);
        ok(&rb);
        let (pa, pb) = (h.state(&a)["ports"].clone(), h.state(&b)["ports"].clone());
        for key in ["http", "https", "registry"] {
            assert_ne!(pa[key], pb[key], "{key}: {pa} vs {pb}");
        }
        // Each cluster got its own env's objects: the bootstrap secret's generated password
        // (one per env) and the commit pushed to that env's Gitea.
        let password = |api: &super::common::kube_api::FakeApi| {
            api.object("Secret", "database-credentials").unwrap()["data"]["password"].clone()
        };
        assert_ne!(
            password(&h.api),
            password(&api_b),
            "both clusters hold one env's secret"
        );
        for (api, env, gitea) in [(&h.api, &a, &h.gitea), (&api_b, &b, &second)] {
            let commit = h.state(env)["commit"].as_str().unwrap().to_string();
            assert_eq!(gitea.head().as_deref(), Some(commit.as_str()), "{env}");
            let source = api.object("GitRepository", "kindling").unwrap();
            assert!(
                source["status"]["artifact"]["revision"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&commit)),
                "{env}: {source}"
            );
        }
        // Both creates started on a data dir with no root CA: two root-CA creations raced.
        // One root came out of it, and both clusters were handed an intermediate under it.
        let root = std::fs::read_to_string(h.path("data/ca/root.pem")).unwrap();
        let b64 = |v: &Value| {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            String::from_utf8(raw).unwrap()
        };
        for (api, env, report) in [(&h.api, &a, &ra), (&api_b, &b, &rb)] {
            let secret = api.object("Secret", "root-ca-secret").unwrap();
            assert_eq!(b64(&secret["data"]["ca.crt"]), root, "{env}: another root");
            let chain = b64(&secret["data"]["tls.crt"]);
            assert!(chain.ends_with(&root), "{env}: chain not under the root");
            let intermediate = &chain[..chain.len() - root.len()];
            let pem = h.path(&format!("{env}-intermediate.pem"));
            std::fs::write(&pem, intermediate).unwrap();
            let verified = std::process::Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(h.path("data/ca/root.pem"))
                .arg(&pem)
                .output()
                .unwrap();
            assert!(
                verified.status.success(),
                "{env}: intermediate not signed by the root: {}",
                String::from_utf8_lossy(&verified.stderr)
            );
            let ca_step = report_steps(&ok(report), "done")
                .iter()
                .position(|s| *s == "ca");
            assert!(ca_step.is_some(), "{env}: the ca step did not run");
        }
        let list = h.json(&["env", "list"]);
        let names: Vec<&str> = list["envs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&a.as_str()) && names.contains(&b.as_str()),
            "{names:?}"
        );
        delete_clean(&h, &a);
        // b is untouched by a's delete.
        assert!(container_exists(&format!("kindling-{b}-registry")));
        delete_clean(&h, &b);
    }

    /// A cluster whose Flux never gets `ingress` Ready while `stuck` is set (its health
    /// check fails, as kustomize-controller reports it: Ready=False, HealthCheckFailed).
    fn api_with_a_stuck_entry(
        h: &Harness,
        cluster: &str,
        stuck: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> super::common::kube_api::FakeApi {
        let mut flux = flux_controller(Head::Repo(h.gitea.root.join("kindling/source.git")));
        let api = super::common::kube_api::FakeApi::start(Some(Box::new(
            move |objects: &mut Vec<super::common::kube_api::Stored>| {
                flux(objects);
                if !stuck.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                for s in objects.iter_mut() {
                    if s.plural == "kustomizations" && s.name == "ingress" {
                        s.object["status"]["conditions"] = json!([{"type": "Ready", "status": "False",
                            "reason": "HealthCheckFailed", "lastTransitionTime": "2026-11-26T08:00:00Z",
                            "message": "health check failed after 30s: timeout waiting for: [Deployment/traefik/traefik status: 'InProgress']"}]);
                    }
                }
            },
        )));
        with_ready_node(&api);
        std::fs::write(h.path("bin").join(format!("api-{cluster}")), &api.url).unwrap();
        api
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_waits_time_out_with_exit_3_naming_the_blocking_entry() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("stuck");
        let stuck = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let _api = api_with_a_stuck_entry(&h, &format!("kindling-{env}"), stuck.clone());
        let profile = h.path("profile.yaml");
        let blocking = "ingress is Failed (HealthCheckFailed): health check failed after 30s";
        let exit_3 = |out: &std::process::Output, what: &str| {
            assert_eq!(
                out.status.code(),
                Some(3),
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let doc = error_says(
                out,
                "timed out after 2s waiting for the stamp to be reconciled",
            );
            assert_eq!(doc["exitCode"], 3, "{what}: {doc}");
            assert!(
                doc["error"].as_str().unwrap().contains(blocking),
                "{what}: {doc}"
            );
        };
        // env create --wait: every step done, then the wait times out on ingress.
        let created = h
            .create_command(&env, &profile, &["--wait", "--timeout", "2s"], &[])
            .output()
            .unwrap();
        exit_3(&created, "create --wait");
        assert!(done_steps(&h.state(&env)).contains(&"bootstrap"));
        // env status --wait.
        let status = h.run(
            &[
                "env",
                "status",
                &env,
                "--wait",
                "--timeout",
                "2s",
                "--output",
                "json",
            ],
            &[],
        );
        exit_3(&status, "status --wait");
        // env sync (waits by default) after an edit: pushed, then times out.
        let edited = h.path("source/stamps/sample/stuck-edit.txt");
        std::fs::write(&edited, "edit\n").unwrap();
        let synced = h.run(
            &["env", "sync", &env, "--timeout", "2s", "--output", "json"],
            &[],
        );
        exit_3(&synced, "sync");
        let pushed = h.state(&env)["commit"].as_str().unwrap().to_string();
        assert_eq!(h.gitea.head().as_deref(), Some(pushed.as_str()));
        // env sync --no-wait returns once the commit is pushed and reconciliation requested,
        // without following: exit 0 on the same stuck cluster, and no status in the document.
        std::fs::write(&edited, "edit again\n").unwrap();
        let no_wait = ok(&h.run(
            &[
                "env",
                "sync",
                &env,
                "--no-wait",
                "--timeout",
                "2s",
                "--output",
                "json",
            ],
            &[],
        ));
        assert_eq!(no_wait["sync"]["changed"], true, "{no_wait}");
        assert!(no_wait["sync"].get("status").is_none(), "{no_wait}");
        // Unstuck (the fake's controllers act on writes: the sync's reconcile request), the
        // same waits succeed.
        stuck.store(false, std::sync::atomic::Ordering::SeqCst);
        std::fs::remove_file(&edited).unwrap();
        ok(&h.run(
            &["env", "sync", &env, "--timeout", "30s", "--output", "json"],
            &[],
        ));
        ok(&h.run(
            &[
                "env",
                "status",
                &env,
                "--wait",
                "--timeout",
                "30s",
                "--output",
                "json",
            ],
            &[],
        ));
        delete_clean(&h, &env);
    }

    /// Quotes `arg` for sh.
    fn sh_quote(arg: &std::ffi::OsStr) -> String {
        format!("'{}'", arg.to_string_lossy().replace('\'', "'\\''"))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_create_on_a_terminal_shows_spinners_with_elapsed_time() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        // kind takes 3 s, so the cluster step's spinner is drawn with a growing elapsed time.
        std::fs::write(h.path("bin/slow-create"), "").unwrap();
        let env = unique("tty");
        let profile = h.path("profile.yaml");
        let create = h.command(
            &[
                "env",
                "create",
                &env,
                "--stamp",
                "sample",
                "--profile",
                profile.to_str().unwrap(),
            ],
            &[],
        );
        let line = std::iter::once(create.get_program())
            .chain(create.get_args())
            .map(sh_quote)
            .collect::<Vec<_>>()
            .join(" ");
        // `script` gives the command a pseudo-terminal and copies what it drew to stdout;
        // CI is unset, as on a developer's laptop.
        let out = std::process::Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .env_clear()
            .envs(
                create
                    .get_envs()
                    .filter_map(|(k, v)| Some((k, v?)))
                    .filter(|(k, _)| *k != "CI"),
            )
            .env("TERM", "xterm")
            .current_dir(h.path("source"))
            .output()
            .unwrap();
        let drawn = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{drawn}");
        // A spinner frame for the cluster step with its elapsed time in brackets, redrawn
        // (escape codes) as it ran, then a finished line with a check mark and duration.
        let spinning = format!("cluster    kind cluster kindling-{env} [");
        let elapsed_frame = (1..10).any(|n| drawn.contains(&format!("{spinning}{n}s]")));
        assert!(
            elapsed_frame,
            "no spinner with elapsed time for cluster: {drawn}"
        );
        assert!(drawn.contains('\u{1b}'), "no terminal drawing: {drawn}");
        assert!(
            drawn.contains("✓\u{1b}[0m cluster    created, nodes Ready ("),
            "{drawn}"
        );
        // Each finished step is drawn once, whole: no frame of the check mark beside the
        // step's running message.
        assert!(
            !drawn.contains("✓\u{1b}[0m Docker, provider CLI, stamp"),
            "{drawn}"
        );
        // Not the plain timestamped lines of CI and pipes.
        let stamped = drawn.lines().any(|l| {
            let b = l.trim_start_matches('\r').as_bytes();
            b.len() > 9 && b[2] == b':' && b[5] == b':' && b[8] == b' ' && b[0].is_ascii_digit()
        });
        assert!(!stamped, "timestamped lines on a terminal: {drawn}");
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_ports_skip_those_published_by_a_stopped_container_or_recorded_by_another_env() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        // Two ports the host just gave out (bound, then released): free on the host.
        let wanted = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (p0, p1) = (wanted, wanted + 1);
        // p0 is published by a container that is created but not running, so nothing binds
        // it on the host (it will when the container starts).
        let holder = format!("kindling-ports-{}", unique("c"));
        let created = docker_cli(&[
            "create",
            "--name",
            &holder,
            "--label",
            &format!("dev.kindling.env={holder}"),
            "-p",
            &format!("127.0.0.1:{p0}:80"),
            super::common::TEST_IMAGE,
            "sleep",
            "1",
        ]);
        assert!(created.status.success(), "{created:?}");
        // p1 is recorded by another env of this data dir.
        let other = h.path("data/envs/other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(
            other.join("state.json"),
            json!({"name": "other", "stamp": "sample", "stampDir": "/x", "source": "/x",
                "provider": "kind", "engine": "flux", "hold": false,
                "createdAt": "2026-11-29T00:00:00Z", "ports": {"http": p1, "https": p1}})
            .to_string(),
        )
        .unwrap();
        let profile = h.path("ports-profile.yaml");
        std::fs::write(
            &profile,
            format!("apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: ports}}\nspec:\n  provider: kind\n  kubernetesVersion: \"1.37\"\n  ingress: {{http: {p0}, https: {p1}}}\n  registry: false\n  imageCaches: false\n"),
        )
        .unwrap();
        let env = unique("ports");
        let plan = h.json(&[
            "env",
            "create",
            &env,
            "--profile",
            profile.to_str().unwrap(),
            "--dry-run",
        ]);
        let docker_rm = docker_cli(&["rm", "-f", &holder]);
        assert!(docker_rm.status.success());
        let ports = &plan["plan"]["ports"];
        let (http, https) = (
            ports["http"].as_u64().unwrap(),
            ports["https"].as_u64().unwrap(),
        );
        for taken in [p0, p1] {
            assert_ne!(http, u64::from(taken), "{ports}");
            assert_ne!(https, u64::from(taken), "{ports}");
        }
        assert_ne!(http, https, "{ports}");
        assert!(
            !h.path(&format!("data/envs/{env}")).exists(),
            "a dry run wrote the env"
        );
    }

    /// README: `KINDLING_GITEA_USER` with an existing Gitea; the repository is `USER/source`.
    /// The fake Gitea, like Gitea, lets a user make tokens for itself only and creates the
    /// repository under the signed-in user.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_existing_gitea_with_another_user_gets_the_repository_under_that_user() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("alice");
        let alice = FakeGitea::start("alice", PASSWORD);
        let repo = alice.root.join("alice/source.git");
        let api = super::common::kube_api::FakeApi::start(Some(Box::new(flux_controller(
            Head::Repo(repo.clone()),
        ))));
        with_ready_node(&api);
        std::fs::write(h.path(&format!("bin/api-kindling-{env}")), &api.url).unwrap();
        let created = ok(&h.create(
            &env,
            &[
                ("KINDLING_GITEA_URL", alice.url.as_str()),
                ("KINDLING_GITEA_USER", "alice"),
                ("KINDLING_GITEA_CLUSTER_URL", ""),
            ],
        ));
        assert!(
            created["env"]["giteaUrl"]
                .as_str()
                .unwrap()
                .starts_with(&alice.url),
            "{created}"
        );
        let commit = h.state(&env)["commit"].as_str().unwrap().to_string();
        assert_eq!(
            super::common::fake_gitea::git(&repo, &["rev-parse", "main"]),
            commit
        );
        assert!(
            !alice.root.join("kindling").exists(),
            "a repository under kindling/"
        );
        // The engine is pointed at alice's repository.
        let source = api.object("GitRepository", "kindling").unwrap();
        assert_eq!(
            source["spec"]["url"],
            format!("{}/alice/source.git", alice.url),
            "{source}"
        );
        delete_clean(&h, &env);
    }

    /// README: `env create --manifests-dir DIR` serves air-gapped hosts: the flag wins over
    /// KINDLING_MANIFESTS_DIR (here an empty directory, where the create would find nothing).
    #[tokio::test(flavor = "multi_thread")]
    async fn env_create_takes_the_engine_manifest_from_manifests_dir() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("airgap");
        let empty = h.path("no-manifests");
        std::fs::create_dir_all(&empty).unwrap();
        let profile = h.path("profile.yaml");
        let manifests = h.path("manifests");
        // Run from elsewhere, naming the source tree with --source.
        let source = h.path("source");
        let created = h
            .command(
                &[
                    "env",
                    "create",
                    &env,
                    "--stamp",
                    "sample",
                    "--source",
                    source.to_str().unwrap(),
                    "--profile",
                    profile.to_str().unwrap(),
                    "--manifests-dir",
                    manifests.to_str().unwrap(),
                    "--output",
                    "json",
                ],
                &[("KINDLING_MANIFESTS_DIR", empty.to_str().unwrap())],
            )
            .current_dir(&empty)
            .output()
            .unwrap();
        let doc = ok(&created);
        assert!(report_steps(&doc, "done").contains(&"engine"), "{doc}");
        assert!(h.api.object("Deployment", "kustomize-controller").is_some());
        assert_eq!(h.state(&env)["source"], source.to_str().unwrap());
        delete_clean(&h, &env);
    }

    /// kindling never adopts a container it did not make for this (issue #17 item 6): a local
    /// registry container planted under the env's name, one another data dir made (a second CI job on
    /// the same engine), and a planted shared cache are each an error naming the container,
    /// and are left exactly as they were, by the create and by the delete after it.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_never_adopts_containers_it_did_not_make() {
        if docker().await.is_none() {
            return;
        }
        super::common::ensure_test_image();
        let h = Harness::new();
        let plant = |name: &str, labels: &[String]| {
            let mut args = vec!["run", "-d", "--name", name];
            for l in labels {
                args.extend(["--label", l.as_str()]);
            }
            args.extend([super::common::TEST_IMAGE, "sleep", "300"]);
            let out = docker_cli(&args);
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        // The create failed, naming the container it would not adopt; the output, for more.
        let refused = |out: &std::process::Output, name: &str| {
            let said = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "adopted {name}");
            assert!(
                said.contains(&format!(
                    "container {name} exists but is not one kindling made"
                )),
                "{said}"
            );
            said
        };
        let id_of = |name: &str| {
            String::from_utf8_lossy(&docker_cli(&["inspect", "-f", "{{.Id}}", name]).stdout)
                .trim()
                .to_string()
        };
        // An unlabelled local registry, and one made by another data dir, under the env's name.
        for (case, labels) in [
            ("planted", Vec::new()),
            (
                "other-data-dir",
                vec!["dev.kindling.data=0123456789abcdef".to_string()],
            ),
        ] {
            let env = unique("adopt");
            let registry = format!("kindling-{env}-registry");
            let mut labels = labels;
            labels.push(format!("dev.kindling.env={env}"));
            if case == "planted" {
                labels.clear();
            }
            let id = plant(&registry, &labels);
            let out = h.create(&env, &[]);
            let said = refused(&out, &registry);
            if case == "other-data-dir" {
                assert!(said.contains("another kindling data dir"), "{said}");
            }
            let _ = h.run(&["env", "delete", &env], &[]);
            assert_eq!(id_of(&registry), id, "{case}: {registry} was touched");
            let _ = docker_cli(&["rm", "-f", &registry]);
        }
        // A planted shared cache (a test's own cache set, KINDLING_CACHE_PREFIX).
        let prefix = unique("kp");
        let profile = h.caches_profile("kind", &prefix);
        let cache = format!("{prefix}-docker-io");
        let id = plant(&cache, &[]);
        let env = unique("adopt");
        let out = h
            .create_command(
                &env,
                &profile,
                &[],
                &[
                    ("KINDLING_CACHE_PREFIX", prefix.as_str()),
                    (
                        "KINDLING_REGISTRY_IMAGE",
                        super::common::TEST_REGISTRY_IMAGE,
                    ),
                ],
            )
            .output()
            .unwrap();
        refused(&out, &cache);
        let _ = h.run(&["env", "delete", &env], &[]);
        assert_eq!(id_of(&cache), id, "{cache} was touched");
        let _ = docker_cli(&["rm", "-f", &cache]);
    }

    /// Two data dirs (two users, or two CI jobs with their own HOME) creating an env of the
    /// same name: the second does not take over the first's cluster (nor reset its Gitea), and
    /// its delete leaves the first's cluster alone.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_of_the_same_name_from_another_data_dir_is_not_taken_over() {
        if docker().await.is_none() {
            return;
        }
        let first = Harness::new();
        let second = Harness::new();
        let env = unique("twin");
        ok(&first.create(&env, &[]));
        let nodes = || {
            docker_cli(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=io.x-k8s.kind.cluster=kindling-{env}"),
            ])
        };
        let before = String::from_utf8_lossy(&nodes().stdout).to_string();
        assert!(!before.trim().is_empty());
        let out = second.create(&env, &[]);
        assert!(
            !out.status.success(),
            "the second data dir took the cluster over"
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let error = doc["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!(
                "cluster kindling-{env} exists, but this data dir did not make it"
            )),
            "{doc}"
        );
        let calls = std::fs::read_to_string(second.path("bin/kind-calls")).unwrap_or_default();
        assert!(!calls.contains("create cluster"), "{calls}");
        // The second's delete removes its own record, not the first's cluster.
        ok(&second.run(&["env", "delete", &env, "--output", "json"], &[]));
        let calls = std::fs::read_to_string(second.path("bin/kind-calls")).unwrap_or_default();
        assert!(!calls.contains("delete cluster"), "{calls}");
        assert_eq!(String::from_utf8_lossy(&nodes().stdout), before);
        let status = first.json(&["env", "status", &env]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        delete_clean(&first, &env);
    }

    /// The shared image caches across envs: made on their own network and attached to each
    /// env's cluster network; `env delete` detaches them and keeps them (even when the
    /// cluster's network goes, as k3d's does); the next env reuses the same containers;
    /// an env with the network's root CAs (`--extra-ca`) has them made again with the roots
    /// mounted, their volumes kept; `cache status` shows them and `cache prune` removes them,
    /// their volumes and network. The test runs its own set of caches (KINDLING_CACHE_PREFIX), never the machine's.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_shared_caches_outlive_envs_and_cache_prune_removes_them() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let prefix = unique("kc");
        let profile = h.caches_profile("k3d", &prefix);
        // The caches' image is not on the engine: it comes from a registry (a local one, as
        // no other can be reached here), so `env create` has to pull it. The profile has no
        // local registry, whose step would otherwise have pulled the same image.
        let source = format!("kindling-{prefix}-source");
        let started = docker_cli(&[
            "run",
            "-d",
            "--name",
            &source,
            "--label",
            &h.data_label(),
            "-p",
            "127.0.0.1::5000",
            super::common::TEST_REGISTRY_IMAGE,
        ]);
        assert!(started.status.success(), "{started:?}");
        let port = String::from_utf8_lossy(&docker_cli(&["port", &source, "5000"]).stdout)
            .trim()
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        let image = format!("127.0.0.1:{port}/kt/cache-registry:{prefix}");
        assert!(
            docker_cli(&["tag", super::common::TEST_REGISTRY_IMAGE, &image])
                .status
                .success()
        );
        let pushed = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            docker_cli(&["push", &image]).status.success()
        });
        assert!(pushed, "could not push {image}");
        assert!(docker_cli(&["rmi", &image]).status.success());
        let extra = [
            ("KINDLING_CACHE_PREFIX", prefix.as_str()),
            ("KINDLING_REGISTRY_IMAGE", image.as_str()),
        ];
        let caches: Vec<String> = ["docker-io", "ghcr-io", "quay-io", "registry-k8s-io"]
            .iter()
            .map(|h| format!("{prefix}-{h}"))
            .collect();
        let home = format!("{prefix}-net");
        let inspect = |name: &str, format: &str| {
            let out = docker_cli(&["inspect", "-f", format, name]);
            assert!(out.status.success(), "{name}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let networks_of = |name: &str| {
            inspect(
                name,
                "{{range $n, $_ := .NetworkSettings.Networks}}{{$n}} {{end}}",
            )
        };
        let create = |env: &str| {
            let out = h
                .create_command(env, &profile, &["--wait", "--timeout", "60s"], &extra)
                .output()
                .unwrap();
            ok(&out)
        };
        let a = unique("ca");
        create(&a);
        let ids: Vec<String> = caches.iter().map(|c| inspect(c, "{{.Id}}")).collect();
        for cache in &caches {
            assert_eq!(inspect(cache, "{{.Config.Image}}"), image, "{cache}");
            assert_eq!(
                inspect(cache, "{{.HostConfig.NetworkMode}}"),
                home,
                "{cache}"
            );
            let attached = networks_of(cache);
            assert!(
                attached.contains(&format!("k3d-kindling-{a} ")),
                "{cache}: {attached}"
            );
        }
        let status = ok(&h.run(&["cache", "status", "--output", "json"], &extra));
        let listed: Vec<&str> = status["caches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        // (Their state is not asserted: offline, as here, a registry in proxy mode exits at
        // start because it cannot reach its upstream, and Docker restarts it.)
        assert_eq!(listed, caches, "{status}");
        // Delete: the cluster network goes; the caches stay, detached from it.
        delete_clean(&h, &a);
        for cache in &caches {
            assert!(container_exists(cache), "{cache}");
            assert!(
                !networks_of(cache).contains(&a),
                "{cache}: {}",
                networks_of(cache)
            );
        }
        // The next env reuses the very same containers and attaches them to its network.
        let b = unique("cb");
        create(&b);
        for (cache, id) in caches.iter().zip(&ids) {
            assert_eq!(&inspect(cache, "{{.Id}}"), id, "{cache} was made again");
            assert!(
                networks_of(cache).contains(&format!("k3d-kindling-{b} ")),
                "{cache}"
            );
        }
        delete_clean(&h, &b);
        // An env on a network whose proxy re-signs TLS: the caches fetch for it, so they are
        // made again with its roots (their volumes, and so their images, kept).
        let roots = h.path("corp-root.pem");
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let root_pem = params.self_signed(&key).unwrap().pem();
        std::fs::write(&roots, &root_pem).unwrap();
        let c = unique("cc");
        ok(&h
            .create_command(
                &c,
                &profile,
                &[
                    "--wait",
                    "--timeout",
                    "60s",
                    "--extra-ca",
                    roots.to_str().unwrap(),
                ],
                &extra,
            )
            .output()
            .unwrap());
        for (cache, id) in caches.iter().zip(&ids) {
            assert_ne!(&inspect(cache, "{{.Id}}"), id, "{cache} was not made again");
            let mounts = inspect(
                cache,
                "{{range .Mounts}}{{.Destination}}={{.Source}} {{end}}",
            );
            assert!(
                mounts.contains(&format!("{}=", kindling::pki::extra_ca::CONTAINER_PATH))
                    && mounts.contains("/var/lib/registry="),
                "{cache}: {mounts}"
            );
            let label = inspect(
                cache,
                &format!(
                    "{{{{index .Config.Labels \"{}\"}}}}",
                    kindling::registry::CACHE_OUTBOUND_LABEL
                ),
            );
            assert_ne!(label, "none", "{cache}");
        }
        // The copy they mount outlives the env that asked for it.
        let with_roots: Vec<String> = caches.iter().map(|c| inspect(c, "{{.Id}}")).collect();
        delete_clean(&h, &c);
        let kept = std::fs::read_dir(h.path("data/cache-trust"))
            .unwrap()
            .count();
        assert_eq!(kept, 1);
        // An env without roots takes the caches as they are (what they trust does it no harm).
        let d = unique("cd");
        create(&d);
        for (cache, id) in caches.iter().zip(&with_roots) {
            assert_eq!(&inspect(cache, "{{.Id}}"), id, "{cache} was made again");
        }
        delete_clean(&h, &d);
        let pruned = ok(&h.run(&["cache", "prune", "--output", "json"], &extra));
        let mut removed: Vec<&str> = pruned["removed"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        removed.sort_unstable();
        assert_eq!(removed, caches, "{pruned}");
        assert_eq!(
            pruned["removed"]["volumes"].as_array().unwrap().len(),
            4,
            "{pruned}"
        );
        assert_eq!(pruned["removed"]["networks"], json!([home]), "{pruned}");
        for cache in &caches {
            assert!(!container_exists(cache), "{cache}");
        }
        let empty = ok(&h.run(&["cache", "status", "--output", "json"], &extra));
        assert_eq!(empty["caches"], json!([]));
        let _ = docker_cli(&["rmi", &image]);
    }

    /// A kind cluster with three control planes and a worker: kind lists its Envoy load
    /// balancer among the nodes; only the Kubernetes nodes get registry mirrors, and every
    /// host the KEP-1755 ConfigMap advertises has a mirror on every one of them.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_ha_kind_cluster_mirrors_every_node_but_the_load_balancer() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("ha");
        let cluster = format!("kindling-{env}");
        let api = h.own_api(&cluster, &h.gitea);
        // Four Ready nodes, as the cluster's API would list them.
        api.update(|objects| {
            for n in ["control-plane2", "control-plane3", "worker"] {
                objects.push(super::common::kube_api::Stored {
                    group_version: "v1".into(),
                    plural: "nodes".into(),
                    namespace: None,
                    name: n.into(),
                    object: json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n},
                        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}}),
                });
            }
        });
        let registry_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let profile = h.path("ha-profile.yaml");
        std::fs::write(
            &profile,
            format!("apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: ha}}\nspec:\n  provider: kind\n  kubernetesVersion: \"1.37\"\n  controlPlanes: 3\n  workers: 1\n  ingress: {{http: 18080, https: 18443}}\n  registry: true\n  registryPort: {registry_port}\n  imageCaches: false\n"),
        )
        .unwrap();
        ok(&h
            .create_command(&env, &profile, &["--wait", "--timeout", "60s"], &[])
            .output()
            .unwrap());
        let listed = std::process::Command::new(h.path("bin/kind"))
            .args(["get", "nodes", "--name", &cluster])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).to_string();
        assert!(
            listed.contains(&format!("{cluster}-external-load-balancer")),
            "{listed}"
        );
        let hosting = api.object("ConfigMap", "local-registry-hosting").unwrap();
        let hosting: Value =
            serde_yaml_ng::from_str(hosting["data"]["localRegistryHosting.v1"].as_str().unwrap())
                .unwrap();
        let advertised: Vec<String> =
            ["host", "hostFromContainerRuntime", "hostFromClusterNetwork"]
                .iter()
                .filter_map(|k| hosting[*k].as_str().map(str::to_string))
                .collect();
        assert_eq!(
            advertised,
            [format!("localhost:{registry_port}")],
            "{hosting}"
        );
        for node in [
            "control-plane",
            "control-plane2",
            "control-plane3",
            "worker",
        ] {
            for host in &advertised {
                let toml = docker_cli(&[
                    "exec",
                    &format!("{cluster}-{node}"),
                    "cat",
                    &format!("/etc/containerd/certs.d/{host}/hosts.toml"),
                ]);
                assert!(toml.status.success(), "{node} has no mirror for {host}");
                assert!(
                    String::from_utf8_lossy(&toml.stdout)
                        .contains(&format!("[host.\"http://kindling-{env}-registry:5000\"]")),
                    "{node}: {}",
                    String::from_utf8_lossy(&toml.stdout)
                );
            }
        }
        let balancer = docker_cli(&[
            "exec",
            &format!("{cluster}-external-load-balancer"),
            "ls",
            "/etc/containerd",
        ]);
        assert!(!balancer.status.success(), "the load balancer got a mirror");
        delete_clean(&h, &env);
    }

    /// An env name k3d would refuse (cluster `kindling-NAME` over 32 characters) is refused
    /// before anything is made, in a dry run too, not after Gitea and the registry started.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_name_too_long_for_the_provider_is_refused_before_anything_is_made() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        // 26 characters whatever the length of the process id in `unique`'s name.
        let base = unique("long");
        let env = format!(
            "{base}-{}",
            "x".repeat(25usize.saturating_sub(base.len()).max(1))
        );
        assert!(env.len() > 23 && env.len() <= 32, "{env}");
        let profile = h.path("profile.yaml");
        for dry in [true, false] {
            let mut args = vec![
                "env",
                "create",
                &env,
                "--stamp",
                "sample",
                "--provider",
                "k3d",
                "--profile",
                profile.to_str().unwrap(),
                "--output",
                "json",
            ];
            if dry {
                args.push("--dry-run");
            }
            let out = h.run(&args, &[]);
            assert_eq!(out.status.code(), Some(2), "dry run {dry}");
            let doc = error_says(&out, "too long for k3d");
            assert!(
                doc["error"]
                    .as_str()
                    .unwrap()
                    .contains("at most 23 characters"),
                "{doc}"
            );
        }
        // kind takes it.
        let plan = h.json(&[
            "env",
            "create",
            &env,
            "--profile",
            profile.to_str().unwrap(),
            "--dry-run",
        ]);
        assert_eq!(plan["plan"]["cluster"]["name"], format!("kindling-{env}"));
        assert!(!h.path(&format!("data/envs/{env}")).exists());
        assert!(!h.path("bin/k3d-calls").exists(), "k3d was called");
        assert!(!container_exists(&format!("kindling-{env}-registry")));
    }

    /// `env delete` of an env that does not exist, or whose create failed before its cluster
    /// step, answers at once: no kind or k3d is looked up or downloaded (here there is no
    /// kind on PATH and no download could succeed). `env list` with Docker down says so and
    /// exits 1 instead of answering "no envs".
    #[tokio::test(flavor = "multi_thread")]
    async fn env_delete_without_a_cluster_needs_no_provider_and_list_needs_docker() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("pre");
        let failed = h.create(&env, &[("KINDLING_FAIL_AT", "preflight")]);
        assert_eq!(failed.status.code(), Some(1));
        assert!(h.path(&format!("data/envs/{env}/state.json")).exists());
        // No kind or k3d anywhere now, and any download would fail.
        std::fs::remove_file(h.path("bin/kind")).unwrap();
        std::fs::remove_file(h.path("bin/k3d")).unwrap();
        let empty_cache = h.path("empty-cache");
        let offline = [
            ("HTTPS_PROXY", "http://127.0.0.1:9"),
            ("https_proxy", "http://127.0.0.1:9"),
            ("KINDLING_CACHE_DIR", empty_cache.to_str().unwrap()),
        ];
        for name in [env.as_str(), "never-made"] {
            let out = h.run(&["env", "delete", name, "--output", "json"], &offline);
            let doc = ok(&out);
            assert!(doc["deleted"][0]["cluster"].is_null(), "{doc}");
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(!said.contains("download"), "{said}");
        }
        assert!(!h.path(&format!("data/envs/{env}")).exists());
        assert!(
            !h.path("empty-cache/tools").exists(),
            "a provider CLI was fetched"
        );
        // Gone from the list (other tests' envs show as another data dir's).
        let list = h.json(&["env", "list"]);
        let mine: Vec<&Value> = list["envs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["state"] != "another data dir's")
            .collect();
        assert!(mine.is_empty(), "{list}");
        // Docker down: an error naming it, not an empty list.
        let down = h.run(
            &["env", "list", "--output", "json"],
            &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        );
        assert_eq!(down.status.code(), Some(1));
        error_says(&down, "the Docker engine does not answer");
    }

    /// `env delete --all` asks on a terminal; `--yes` (or no terminal) does not.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_delete_all_asks_on_a_terminal() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("ask");
        ok(&h.create(&env, &[]));
        let delete_all = h.command(&["env", "delete", "--all"], &[]);
        let line = std::iter::once(delete_all.get_program())
            .chain(delete_all.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let on_a_terminal = |answer: &str| {
            use std::io::Write;
            let mut child = std::process::Command::new("script")
                .args(["-q", "-e", "-c", &line, "/dev/null"])
                .envs(delete_all.get_envs().filter_map(|(k, v)| Some((k, v?))))
                .current_dir(h.path("source"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(answer.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        };
        let declined = on_a_terminal("n\n");
        let said = String::from_utf8_lossy(&declined.stdout);
        assert!(
            said.contains(&format!("delete 1 env(s) of this data dir: {env}? [y/N]")),
            "{said}"
        );
        assert!(said.contains("nothing deleted"), "{said}");
        assert!(!declined.status.success());
        assert!(h.path(&format!("data/envs/{env}")).exists());
        assert!(container_exists(&format!("kindling-{env}-registry")));
        let accepted = on_a_terminal("y\n");
        assert!(
            accepted.status.success(),
            "{}",
            String::from_utf8_lossy(&accepted.stdout)
        );
        assert!(!h.path(&format!("data/envs/{env}")).exists());
        delete_clean(&h, &env);
    }

    /// With the engine chosen by the docker CLI's current context (no DOCKER_HOST), kindling
    /// uses it and hands the same engine to kind, so the cluster lands beside Gitea and the
    /// registry.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_create_through_a_docker_context_hands_kind_the_same_engine() {
        use std::sync::atomic::Ordering;
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("ctx");
        let relay = super::common::engine_relay(true);
        let config = h.path("docker-config");
        super::common::docker_context_dir(&config, "kt-desktop", &relay.host);
        ok(&h.create(
            &env,
            &[
                ("DOCKER_CONFIG", config.to_str().unwrap()),
                ("DOCKER_HOST", ""),
                ("DOCKER_CONTEXT", ""),
            ],
        ));
        assert!(relay.connections.load(Ordering::SeqCst) > 0);
        let handed = std::fs::read_to_string(h.path("bin/kind-docker-host")).unwrap();
        assert_eq!(handed.trim(), relay.host);
        delete_clean(&h, &env);
    }

    /// Both providers treat the user's kubeconfig as `kind create cluster` does: the context
    /// is merged and made current; `--no-switch-context` keeps the current one; on delete no
    /// current context is left naming the deleted cluster (k3d would pick another at random).
    /// The fake kind and k3d edit `$KUBECONFIG` as kind v0.33.0 and k3d v5.9.0 do.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_kubeconfig_context_is_switched_like_kind_does_on_both_providers() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let kubeconfig = h.path("user-kubeconfig");
        let current = || {
            let text = std::fs::read_to_string(&kubeconfig).unwrap();
            let v: Value = serde_yaml_ng::from_str(&text).unwrap();
            v["current-context"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let contexts = || {
            let text = std::fs::read_to_string(&kubeconfig).unwrap();
            let v: Value = serde_yaml_ng::from_str(&text).unwrap();
            v["contexts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| c["name"].as_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let profile = h.path("profile.yaml");
        for provider in ["kind", "k3d"] {
            for switch in [true, false] {
                // The user's own context is current before.
                std::fs::write(
                    &kubeconfig,
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: mine\n  cluster: {server: 'https://10.0.0.1:6443'}\nusers:\n- name: me\n  user: {token: t}\ncontexts:\n- name: mine\n  context: {cluster: mine, user: me}\ncurrent-context: mine\n",
                )
                .unwrap();
                let env = unique(&format!("kc{}", &provider[..1]));
                let mut args = vec![
                    "env",
                    "create",
                    &env,
                    "--stamp",
                    "sample",
                    "--provider",
                    provider,
                    "--profile",
                    profile.to_str().unwrap(),
                    "--output",
                    "json",
                ];
                if !switch {
                    args.push("--no-switch-context");
                }
                ok(&h.run(&args, &[]));
                let context = format!("{provider}-kindling-{env}");
                assert!(
                    contexts().contains(&context),
                    "{provider}: {:?}",
                    contexts()
                );
                let expected = if switch {
                    context.clone()
                } else {
                    "mine".to_string()
                };
                assert_eq!(current(), expected, "{provider}, switch {switch}");
                delete_clean(&h, &env);
                assert!(
                    !contexts().contains(&context),
                    "{provider}: {:?}",
                    contexts()
                );
                assert!(contexts().contains(&"mine".to_string()));
                let after = if switch { "" } else { "mine" };
                assert_eq!(
                    current(),
                    after,
                    "{provider}, switch {switch}: after delete"
                );
            }
        }
    }

    /// `env restart` asks for the same consent as create, before it removes anything: without
    /// `--allow-secret-from` the stamp stays as it was; with it, the restart goes through.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_restart_needs_consent_for_host_secrets_before_removing_anything() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let stamp_file = h.path("source/stamps/sample/stamp.yaml");
        let text = std::fs::read_to_string(&stamp_file).unwrap();
        std::fs::write(
            &stamp_file,
            text.replacen(
                "  secrets:\n",
                "  secrets:\n    - name: api-token\n      namespace: sample\n      keys:\n        - {key: token, fromEnv: KINDLING_TEST_RESTART_TOKEN}\n",
                1,
            ),
        )
        .unwrap();
        let env = unique("consent");
        let value = ("KINDLING_TEST_RESTART_TOKEN", "t0k-restart");
        ok(&h.create(
            &env,
            &[
                value,
                ("KINDLING_ALLOW_SECRET_FROM", "KINDLING_TEST_RESTART_TOKEN"),
            ],
        ));
        let before =
            h.api.object("Kustomization", "kindling-sample").unwrap()["metadata"]["uid"].clone();
        let refused = h.run(&["env", "restart", &env, "--output", "json"], &[value]);
        assert_eq!(refused.status.code(), Some(1));
        error_says(&refused, "what you have not allowed");
        // Nothing was removed: the root Kustomization is the same object.
        assert_eq!(
            h.api.object("Kustomization", "kindling-sample").unwrap()["metadata"]["uid"],
            before
        );
        ok(&h.run(
            &[
                "env",
                "restart",
                &env,
                "--allow-secret-from",
                "KINDLING_TEST_RESTART_TOKEN",
                "--output",
                "json",
            ],
            &[value],
        ));
        delete_clean(&h, &env);
    }

    /// A bootstrap secret whose `fromEnv` variable is unset (or whose `fromFile` is missing)
    /// is caught by `--dry-run` and by preflight, before anything is made, not minutes in at
    /// the secrets step.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_missing_host_secret_values_are_caught_before_anything_is_made() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let stamp_file = h.path("source/stamps/sample/stamp.yaml");
        let text = std::fs::read_to_string(&stamp_file).unwrap();
        let text = text.replacen(
            "  secrets:\n",
            "  secrets:\n    - name: api-token\n      namespace: sample\n      keys:\n        - {key: token, fromEnv: KINDLING_TEST_NEVER_SET_TOKEN}\n        - {key: cert, fromFile: no-such-file.pem}\n",
            1,
        );
        std::fs::write(&stamp_file, text).unwrap();
        let profile = h.path("profile.yaml");
        let env = unique("hostval");
        // An environment variable needs the user's consent (a stamp could ask for
        // GITHUB_TOKEN): off a terminal, without `--allow-secret-from`, dry run and create
        // refuse before anything is made, naming it and the flag, never its value.
        for more in [&["--dry-run"][..], &[]] {
            let dry = !more.is_empty();
            let out = h
                .create_command(
                    &env,
                    &profile,
                    more,
                    &[("KINDLING_TEST_NEVER_SET_TOKEN", "TOKEN-VALUE-9c1e")],
                )
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "dry run {dry}");
            let doc = error_says(&out, "what you have not allowed");
            let error = doc["error"].as_str().unwrap();
            assert!(
                error.contains(
                    "sample/api-token key token: environment variable KINDLING_TEST_NEVER_SET_TOKEN"
                ) && error.contains("--allow-secret-from NAME")
                    && !error.contains("TOKEN-VALUE-9c1e"),
                "{doc}"
            );
            // The file in the source tree needs no consent.
            assert!(!error.contains("no-such-file.pem"), "{doc}");
        }
        // On a terminal, create asks; "n" refuses as above, "y" goes on to the next check (the
        // missing file). util-linux script(1) gives it a terminal.
        for (answer, allowed) in [("n", false), ("y", true)] {
            let kindling = h.command(
                &create_args(&env, &profile, &[]),
                &[("KINDLING_TEST_NEVER_SET_TOKEN", "TOKEN-VALUE-9c1e")],
            );
            let quoted: Vec<String> = std::iter::once(kindling.get_program())
                .chain(kindling.get_args())
                .map(|a| format!("'{}'", a.to_string_lossy()))
                .collect();
            let mut script = std::process::Command::new("script");
            script
                .args(["-qec", &quoted.join(" "), "/dev/null"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            for (key, value) in kindling.get_envs() {
                match value {
                    Some(v) => script.env(key, v),
                    None => script.env_remove(key),
                };
            }
            if let Some(dir) = kindling.get_current_dir() {
                script.current_dir(dir);
            }
            let mut child = script.spawn().expect("script(1) from util-linux");
            {
                use std::io::Write as _;
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.contains(
                    "reads environment variable KINDLING_TEST_NEVER_SET_TOKEN into the cluster"
                ) && said.contains("Allow? [y/N]"),
                "{said}"
            );
            assert_eq!(
                said.contains("what you have not allowed"),
                !allowed,
                "{said}"
            );
            assert_eq!(said.contains("no-such-file.pem"), allowed, "{said}");
            assert!(!said.contains("TOKEN-VALUE-9c1e"), "{said}");
        }
        let allow = ["--allow-secret-from", "KINDLING_TEST_NEVER_SET_TOKEN"];
        for dry in [true, false] {
            let mut more = allow.to_vec();
            if dry {
                more.push("--dry-run");
            }
            let out = h
                .create_command(&env, &profile, &more, &[])
                .env_remove("KINDLING_TEST_NEVER_SET_TOKEN")
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "dry run {dry}");
            let doc = error_says(&out, "bootstrap secret sample/api-token, key token");
            assert!(
                doc["error"]
                    .as_str()
                    .unwrap()
                    .contains("KINDLING_TEST_NEVER_SET_TOKEN"),
                "{doc}"
            );
        }
        // Nothing was made: kind never asked, no registry container.
        let calls = std::fs::read_to_string(h.path("bin/kind-calls")).unwrap_or_default();
        assert!(!calls.contains("create cluster"), "{calls}");
        assert!(!container_exists(&format!("kindling-{env}-registry")));
        // With the variable set (and allowed, here through the environment), the file is what
        // is missing next.
        let allowed = (
            "KINDLING_ALLOW_SECRET_FROM",
            "KINDLING_TEST_NEVER_SET_TOKEN",
        );
        let out = h
            .create_command(
                &env,
                &profile,
                &["--dry-run"],
                &[("KINDLING_TEST_NEVER_SET_TOKEN", "t0k"), allowed],
            )
            .output()
            .unwrap();
        error_says(&out, "no-such-file.pem");
        // Both there: the dry run lists what it would read from this host, never the values.
        std::fs::write(h.path("source/no-such-file.pem"), "FILE-CONTENT-7f3a\n").unwrap();
        let out = h
            .create_command(
                &env,
                &profile,
                &["--dry-run"],
                &[
                    ("KINDLING_TEST_NEVER_SET_TOKEN", "TOKEN-VALUE-9c1e"),
                    allowed,
                ],
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            !stdout.contains("TOKEN-VALUE-9c1e") && !stdout.contains("FILE-CONTENT-7f3a"),
            "{stdout}"
        );
        let plan: Value = serde_json::from_str(&stdout).unwrap();
        let read = &plan["plan"]["hostValues"];
        assert_eq!(read[0]["secret"], "sample/api-token");
        assert_eq!(read[0]["key"], "token");
        assert_eq!(read[0]["from"], "env KINDLING_TEST_NEVER_SET_TOKEN");
        assert_eq!(read[1]["key"], "cert");
        assert!(
            read[1]["from"].as_str().unwrap().starts_with("file ")
                && read[1]["from"]
                    .as_str()
                    .unwrap()
                    .ends_with("no-such-file.pem"),
            "{read}"
        );
        let text = h.create_text(
            &env,
            &profile,
            &["--dry-run"],
            &[
                ("KINDLING_TEST_NEVER_SET_TOKEN", "TOKEN-VALUE-9c1e"),
                allowed,
            ],
        );
        let said = String::from_utf8_lossy(&text.stdout);
        assert!(
            said.contains("sample/api-token key token: env KINDLING_TEST_NEVER_SET_TOKEN"),
            "{said}"
        );
        assert!(!said.contains("TOKEN-VALUE-9c1e"), "{said}");
        delete_clean(&h, &env);
    }

    /// `env build` (HostK8s `make build`): DIR/Dockerfile built by the real Docker engine and
    /// pushed to the env's real registry container as `localhost:PORT/NAME:TAG`, the name the
    /// nodes pull through their mirror. `.dockerignore` keeps a file out of the context. A
    /// failing build names the failing instruction; an env without a registry is told so.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_build_pushes_to_the_envs_registry() {
        if docker().await.is_none() {
            return;
        }
        super::common::ensure_test_image();
        let h = Harness::new();
        let env = unique("build");
        ok(&h.create(&env, &[]));
        let port = h.state(&env)["ports"]["registry"].as_u64().unwrap();
        let app = h.path("source/src/web app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(
            app.join("Dockerfile"),
            format!("FROM {}\nCOPY . /ctx/\n", super::common::TEST_IMAGE),
        )
        .unwrap();
        std::fs::write(app.join("hello.txt"), "hello").unwrap();
        std::fs::write(app.join("secret.txt"), "do not ship").unwrap();
        std::fs::write(app.join(".dockerignore"), "secret.txt\n").unwrap();
        let dir = app.to_str().unwrap();
        let built = h.json(&["env", "build", &env, dir, "--tag", "t1"]);
        let image = format!("localhost:{port}/web-app:t1");
        assert_eq!(built["build"]["image"], image.as_str(), "{built}");
        assert_eq!(built["build"]["hostk8sImage"], "localhost:5000/web-app:t1");
        let documented = super::common::documented_shapes()
            .into_iter()
            .find(|(heading, _)| heading == "kindling env build")
            .unwrap()
            .1;
        super::common::follows(&built, &documented, "kindling env build").unwrap();
        // The registry holds it, under the digest the push reported.
        let response = ureq::get(&format!("http://127.0.0.1:{port}/v2/web-app/manifests/t1"))
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
            )
            .call()
            .unwrap();
        let digest = response
            .headers()
            .get("docker-content-digest")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(built["build"]["digest"], digest.as_str(), "{built}");
        let listed = docker_cli(&["run", "--rm", &image, "ls", "/ctx"]);
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(listed.contains("hello.txt"), "{listed}");
        assert!(!listed.contains("secret.txt"), "{listed}");

        // A relative DIR (from the working directory, the source tree here) whose own
        // subdirectory has the same name: `.dockerignore` patterns are from the context root.
        let site = h.path("source/mysite");
        std::fs::create_dir_all(site.join("mysite")).unwrap();
        std::fs::write(
            site.join("Dockerfile"),
            format!("FROM {}\nCOPY . /ctx/\n", super::common::TEST_IMAGE),
        )
        .unwrap();
        std::fs::write(site.join("mysite/secrets.env"), "KEY=1").unwrap();
        std::fs::write(site.join("mysite/settings.py"), "x = 1").unwrap();
        std::fs::write(site.join(".dockerignore"), "mysite/secrets.env\n").unwrap();
        let relative = h.json(&["env", "build", &env, "mysite", "--name", "rel"]);
        let rel_image = relative["build"]["image"].as_str().unwrap().to_string();
        let listed = docker_cli(&["run", "--rm", &rel_image, "ls", "/ctx/mysite"]);
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(listed.contains("settings.py"), "{listed}");
        assert!(!listed.contains("secrets.env"), "{listed}");
        let _ = docker_cli(&["rmi", &rel_image]);

        // A failing instruction is named.
        std::fs::write(
            app.join("Dockerfile"),
            format!("FROM {}\nRUN false\n", super::common::TEST_IMAGE),
        )
        .unwrap();
        let failed = h.run(&["env", "build", &env, dir, "--name", "broken"], &[]);
        assert!(!failed.status.success());
        let said = String::from_utf8_lossy(&failed.stderr);
        assert!(
            said.contains("docker build localhost:") && said.contains("non-zero code"),
            "{said}"
        );
        // Bad names are refused before anything runs.
        let bad = h.run(&["env", "build", &env, dir, "--name", "Web"], &[]);
        assert!(String::from_utf8_lossy(&bad.stderr).contains("not an image repository name"));
        let _ = docker_cli(&["rmi", &image]);
        delete_clean(&h, &env);

        // Without a registry there is nowhere to push.
        let profile = h.caches_profile("kind", &unique("kbn"));
        let bare = unique("noreg");
        ok(&h
            .create_command(&bare, &profile, &["--wait", "--timeout", "60s"], &[])
            .output()
            .unwrap());
        let refused = h.run(&["env", "build", &bare, dir], &[]);
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("has no local registry"),
            "{refused:?}"
        );
        delete_clean(&h, &bare);
    }

    /// `env suspend` / `env resume` (HostK8s `make suspend/resume`). Flux: every object kindling
    /// made gets `spec.suspend: true`, so an edit pushed meanwhile is not applied (the suspended
    /// GitRepository keeps its artifact); Argo CD: automated sync off on the root and every
    /// entry. `env status` says so, `env restart` refuses, `env sync` pushes without asking for
    /// reconciliation. Resume puts everything back and the edit arrives.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_suspend_pauses_reconciliation_until_resume() {
        if docker().await.is_none() {
            return;
        }
        for engine in ["flux", "argo"] {
            let h = Harness::with_engine(engine);
            let env = unique("pause");
            ok(&h
                .create_command(
                    &env,
                    &h.path("profile.yaml"),
                    &["--wait", "--timeout", "60s", "--engine", engine],
                    &[],
                )
                .output()
                .unwrap());
            let suspended = h.json(&["env", "suspend", &env]);
            let documented = super::common::documented_shapes()
                .into_iter()
                .find(|(heading, _)| heading == "kindling env suspend / kindling env resume")
                .unwrap()
                .1;
            super::common::follows(&suspended, &documented, "env suspend").unwrap();
            let patched: Vec<&str> = suspended["suspend"]["patched"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            if engine == "flux" {
                for object in [
                    "Kustomization kindling-sample",
                    "GitRepository kindling",
                    "Kustomization api",
                    "HelmRelease certs",
                    "HelmRepository certs",
                ] {
                    assert!(patched.contains(&object), "{object}: {patched:?}");
                }
                assert_eq!(patched[0], "Kustomization kindling-sample");
                for kind in [
                    "Kustomization",
                    "HelmRelease",
                    "GitRepository",
                    "HelmRepository",
                ] {
                    for o in h.api.objects_of(kind) {
                        assert_eq!(o["spec"]["suspend"], true, "{o}");
                    }
                }
            } else {
                assert_eq!(patched[0], "Application kindling-sample");
                for app in h.api.objects_of("Application") {
                    assert!(app["spec"]["syncPolicy"]["automated"].is_null(), "{app}");
                }
            }
            let status = h.json(&["env", "status", &env]);
            assert_eq!(status["status"]["suspended"], true, "{status}");
            // Every object suspend paused, counted from the cluster.
            assert_eq!(
                status["status"]["suspendedObjects"],
                json!(patched.len()),
                "{status}"
            );
            let refused = h.run(&["env", "restart", &env], &[]);
            assert!(
                String::from_utf8_lossy(&refused.stderr).contains("is suspended"),
                "{refused:?}"
            );
            // A rerun of create would bootstrap and reconcile again: refused too.
            let rerun = h
                .create_command(&env, &h.path("profile.yaml"), &["--engine", engine], &[])
                .output()
                .unwrap();
            assert!(!rerun.status.success());
            assert!(
                String::from_utf8_lossy(&rerun.stdout).contains("is suspended")
                    || String::from_utf8_lossy(&rerun.stderr).contains("is suspended"),
                "{rerun:?}"
            );

            // An edit pushed while suspended is not applied.
            let marker = format!("suspended edit {}", unique("m"));
            let index = h.path("source/stamps/sample/applications/website/index.html");
            let html = std::fs::read_to_string(&index).unwrap();
            std::fs::write(&index, html.replace("</body>", &format!("{marker}</body>"))).unwrap();
            let synced = h.json(&["env", "sync", &env, "--no-wait"]);
            assert_eq!(synced["sync"]["changed"], true, "{synced}");
            assert_eq!(synced["sync"]["requested"], json!([]), "{synced}");
            let applied = || {
                h.api.objects_of("ConfigMap").iter().any(|c| {
                    c["data"]["index.html"]
                        .as_str()
                        .is_some_and(|t| t.contains(&marker))
                })
            };
            std::thread::sleep(Duration::from_millis(1500));
            assert!(!applied(), "{engine}: applied while suspended");

            let resumed = h.json(&["env", "resume", &env]);
            assert_eq!(resumed["resume"]["suspended"], false);
            let status = h.json(&["env", "status", &env]);
            assert_eq!(status["status"]["suspendedObjects"], 0, "{status}");
            wait_until(
                "the edit is applied after resume",
                Duration::from_secs(30),
                applied,
            );
            if engine == "flux" {
                // false, or gone where the root applied the entry again from Git.
                for kind in ["Kustomization", "HelmRelease", "GitRepository"] {
                    for o in h.api.objects_of(kind) {
                        assert_ne!(o["spec"]["suspend"], true, "{o}");
                    }
                }
            } else {
                for app in h.api.objects_of("Application") {
                    assert!(app["spec"]["syncPolicy"]["automated"].is_object(), "{app}");
                }
            }
            let status = h.json(&["env", "status", &env]);
            assert!(status["status"]["suspended"].is_null(), "{status}");
            delete_clean(&h, &env);
        }
    }

    /// `env status` names the pods that cannot run and why, as `make status` users look for
    /// them: a container in CrashLoopBackOff or ImagePullBackOff (the kubelet's waiting
    /// reasons in the pod's containerStatuses), a pod the scheduler cannot place (condition
    /// PodScheduled False, reason Unschedulable); a pod still being created is no failure.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_status_names_failing_pods_and_why() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("pods");
        ok(&h.create(&env, &[]));
        let pod = |name: &str, status: Value| super::common::kube_api::Stored {
            group_version: "v1".into(),
            plural: "pods".into(),
            namespace: Some("api".into()),
            name: name.into(),
            object: json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "api"}, "status": status}),
        };
        h.api.update(|objects| {
            objects.push(pod(
                "api-crash",
                json!({"phase": "Running", "containerStatuses": [{"name": "api",
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                        "message": "back-off 5m0s restarting failed container=api"}}}]}),
            ));
            objects.push(pod(
                "api-pull",
                json!({"phase": "Pending", "containerStatuses": [{"name": "api",
                    "state": {"waiting": {"reason": "ImagePullBackOff",
                        "message": "Back-off pulling image \"localhost:5000/x:1\""}}}]}),
            ));
            objects.push(pod(
                "api-pending",
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient memory."}]}),
            ));
            objects.push(pod(
                "api-starting",
                json!({"phase": "Pending", "containerStatuses": [{"name": "api",
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
            ));
        });
        let status = h.json(&["env", "status", &env]);
        let failing = &status["status"]["failingPods"];
        assert_eq!(
            failing,
            &json!([
                {"namespace": "api", "name": "api-crash", "reason": "CrashLoopBackOff",
                 "message": "api: back-off 5m0s restarting failed container=api"},
                {"namespace": "api", "name": "api-pending", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 Insufficient memory."},
                {"namespace": "api", "name": "api-pull", "reason": "ImagePullBackOff",
                 "message": "api: Back-off pulling image \"localhost:5000/x:1\""},
            ]),
            "{status}"
        );
        let text = h.run(&["env", "status", &env], &[]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("pod api/api-crash: CrashLoopBackOff (api: back-off 5m0s"),
            "{text}"
        );
        delete_clean(&h, &env);
    }

    /// `env suspend` on Argo CD while the root's sync is still running: the sync is ended as
    /// `argocd app terminate-op` ends it (phase Terminating; the controller leaves it Failed,
    /// "Operation terminated"), so it cannot go on to re-apply the entries' Applications with
    /// automated sync. Resume then brings the pushed edit.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_suspend_ends_a_running_argo_root_sync() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::with_engine("argo");
        let env = unique("term");
        ok(&h
            .create_command(
                &env,
                &h.path("profile.yaml"),
                &["--wait", "--timeout", "60s", "--engine", "argo"],
                &[],
            )
            .output()
            .unwrap());
        let marker = format!("terminated edit {}", unique("m"));
        let index = h.path("source/stamps/sample/applications/website/index.html");
        let html = std::fs::read_to_string(&index).unwrap();
        std::fs::write(&index, html.replace("</body>", &format!("{marker}</body>"))).unwrap();
        // The api's Deployment takes a while (engine time) to be ready after this commit, so
        // the root's sync, waiting on the api's Application, is still running at suspend.
        let deployment = h.path("source/stamps/sample/applications/api/deployment.yaml");
        let text = std::fs::read_to_string(&deployment).unwrap();
        std::fs::write(
            &deployment,
            text.replacen(
                "metadata:\n",
                &format!(
                    "metadata:\n  annotations:\n    {}: InProgressFor=3000s\n",
                    super::common::fake_cluster::HEALTH_ANNOTATION
                ),
                1,
            ),
        )
        .unwrap();
        ok(&h.run(&["env", "sync", &env, "--no-wait", "--output", "json"], &[]));
        let root_phase = || {
            h.api
                .object("Application", "kindling-sample")
                .map(|a| a["status"]["operationState"].clone())
                .unwrap_or_default()
        };
        wait_until(
            "the root syncs the new commit",
            Duration::from_secs(20),
            || root_phase()["phase"] == "Running",
        );
        let suspended = h.json(&["env", "suspend", &env]);
        let patched = suspended["suspend"]["patched"].to_string();
        assert!(
            patched.contains("Application kindling-sample (running sync terminated)"),
            "{suspended}"
        );
        wait_until("the root's sync ends", Duration::from_secs(20), || {
            root_phase()["phase"] == "Failed"
        });
        assert_eq!(root_phase()["message"], "Operation terminated");
        std::thread::sleep(Duration::from_millis(2500));
        for app in h.api.objects_of("Application") {
            assert!(app["spec"]["syncPolicy"]["automated"].is_null(), "{app}");
        }
        ok(&h.run(&["env", "resume", &env, "--output", "json"], &[]));
        wait_until(
            "the edit arrives after resume",
            Duration::from_secs(40),
            || {
                h.api.objects_of("ConfigMap").iter().any(|c| {
                    c["data"]["index.html"]
                        .as_str()
                        .is_some_and(|t| t.contains(&marker))
                })
            },
        );
        delete_clean(&h, &env);
    }
}
