//! Per-entry gates (issue #21 part 5): an entry with `gate: manual` is not reconciled, nor
//! what depends on it, until `env approve ENV ENTRY`; `env create --wait` returns once
//! everything else is Ready and names the gate.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, unique};

    fn readiness(status: &serde_json::Value, entry: &str) -> (String, bool) {
        let e = status["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == entry)
            .unwrap_or_else(|| panic!("{entry}: {status}"));
        (
            e["readiness"].as_str().unwrap().to_string(),
            e["awaitingApproval"] == true,
        )
    }

    fn gate_database(h: &Harness) {
        let file = h.path("source/stamps/sample/stamp.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let gated = text.replacen(
            "    - name: database\n      path: components/database\n",
            "    - name: database\n      path: components/database\n      gate: manual\n",
            1,
        );
        assert_ne!(gated, text, "the sample stamp's database entry moved");
        std::fs::write(&file, gated).unwrap();
    }

    fn gates_hold_until_approved(engine: &str) {
        let h = Harness::with_engine(engine);
        gate_database(&h);
        let env = unique(&format!("gate{engine}"));
        let created = ok(&h
            .create_command(
                &env,
                &h.path("profile.yaml"),
                &["--engine", engine, "--wait", "--timeout", "60s"],
                &[],
            )
            .output()
            .unwrap());
        let status = &created["env"]["status"];
        assert_eq!(status["gates"], serde_json::json!(["database"]), "{status}");
        // The gate and what depends on it wait; the rest is Ready.
        let (_, held) = readiness(status, "database");
        assert!(held, "{status}");
        let (_, held) = readiness(status, "api");
        assert!(held, "{status}");
        assert_eq!(readiness(status, "website"), ("ready".to_string(), false));
        assert!(
            h.api.object("StatefulSet", "postgres").is_none(),
            "the gated entry was applied"
        );
        let text = h.run(&["env", "status", &env], &[]);
        assert!(
            String::from_utf8_lossy(&text.stdout)
                .contains(&format!("`kindling env approve {env} database`")),
            "{text:?}"
        );

        // An entry without a gate is refused with the gated ones named.
        let wrong = h.run(
            &["env", "approve", &env, "website", "--output", "json"],
            &[],
        );
        error_says(&wrong, "gated entries: database");

        let opened = &h.json(&["env", "approve", &env, "database"])["approve"];
        assert_eq!(opened["opened"], true, "{opened}");
        let done = h.json(&["env", "status", &env, "--wait", "--timeout", "60s"]);
        let status = &done["status"]["reconciliation"];
        assert_eq!(done["status"]["ready"], true, "{done}");
        assert!(status["gates"].is_null(), "{status}");
        assert_eq!(readiness(status, "api"), ("ready".to_string(), false));
        assert!(h.api.object("StatefulSet", "postgres").is_some());
        // Open stays open: a sync does not close it again, and approving twice is a no-op.
        ok(&h.run(&["env", "sync", &env, "--output", "json"], &[]));
        let again = &h.json(&["env", "approve", &env, "database"])["approve"];
        assert_eq!(again["opened"], false, "{again}");
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_gate_holds_an_entry_until_approved_on_flux() {
        if docker().await.is_none() {
            return;
        }
        gates_hold_until_approved("flux");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_gate_holds_an_entry_until_approved_on_argo() {
        if docker().await.is_none() {
            return;
        }
        gates_hold_until_approved("argo");
    }

    /// The sample stamp's database with a migration Job its health check names: what depends
    /// on the database waits for the Job to complete. `fail` makes the Job fail.
    fn job_gate(h: &Harness, fail: bool) {
        let component = h.path("source/stamps/sample/components/database");
        let annotations = if fail {
            "\n  annotations: {test.kindling.dev/health: Failed}"
        } else {
            ""
        };
        std::fs::write(
            component.join("migrate.yaml"),
            format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: db-migrate\n  namespace: database{annotations}\nspec:\n  backoffLimit: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: postgres:17\n          command: [\"true\"]\n"),
        )
        .unwrap();
        let kustomization = component.join("kustomization.yaml");
        let text = std::fs::read_to_string(&kustomization).unwrap();
        std::fs::write(
            &kustomization,
            text.replace("resources:\n", "resources:\n  - migrate.yaml\n"),
        )
        .unwrap();
        let file = h.path("source/stamps/sample/stamp.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let checked = text.replacen(
            "        - {kind: StatefulSet, name: postgres, namespace: database}\n",
            "        - {kind: StatefulSet, name: postgres, namespace: database}\n        - {kind: Job, name: db-migrate, namespace: database}\n",
            1,
        );
        assert_ne!(
            checked, text,
            "the sample stamp's database health checks moved"
        );
        std::fs::write(&file, checked).unwrap();
    }

    /// A health check that is a Job gates what depends on the entry: a completed Job lets it
    /// through, a failed one stops it, and the status names the Job's entry.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_job_health_check_gates_what_depends_on_it() {
        if docker().await.is_none() {
            return;
        }
        for fail in [false, true] {
            let h = Harness::new();
            job_gate(&h, fail);
            let env = unique("jobgate");
            // A failing Job never lets the wait end: a short one for that case.
            let timeout = if fail { "10s" } else { "60s" };
            let out = h
                .create_command(
                    &env,
                    &h.path("profile.yaml"),
                    &["--wait", "--timeout", timeout],
                    &[],
                )
                .output()
                .unwrap();
            if !fail {
                let created = ok(&out);
                let job = h.api.object("Job", "db-migrate").expect("the Job");
                let complete = job["status"]["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["type"] == "Complete")
                    .unwrap_or_else(|| panic!("{job}"));
                assert_eq!(complete["status"], "True", "{job}");
                assert_eq!(
                    readiness(&created["env"]["status"], "api"),
                    ("ready".to_string(), false)
                );
            } else {
                assert!(!out.status.success(), "{out:?}");
                let status = h.json(&["env", "status", &env]);
                let entries = status["status"]["reconciliation"]["entries"]
                    .as_array()
                    .unwrap();
                let database = entries.iter().find(|e| e["name"] == "database").unwrap();
                assert_ne!(database["readiness"], "ready", "{database}");
                let api = entries.iter().find(|e| e["name"] == "api").unwrap();
                assert_ne!(api["readiness"], "ready", "{api}");
                assert_eq!(api["blockedBy"], "database", "{api}");
                assert!(
                    h.api.object("Deployment", "api").is_none(),
                    "api started anyway"
                );
            }
            delete_clean(&h, &env);
        }
    }
}
