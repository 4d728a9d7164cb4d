//! Several stacks on one env (issue #19, "the rest of the HostK8s loop"): `env up NAME STACK`
//! adds a HostK8s stack beside the env's stamp and `env down NAME STACK` takes it away, as
//! HostK8s' `make up NAME` / `make down NAME` do on one cluster, with the data kept.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, unique};

    /// A stack of the test's own beside the fixture's: it declares `component-certs` exactly
    /// as `sample` does (one shared object) and an application of its own.
    fn write_extra_stack(h: &Harness) {
        let dir = h.path("source/software/stacks/extra");
        std::fs::create_dir_all(dir.join("app")).unwrap();
        let sample =
            std::fs::read_to_string(h.path("source/software/stacks/sample/stack.yaml")).unwrap();
        let certs = sample.split("\n---\n").nth(1).unwrap();
        assert!(certs.contains("name: component-certs"), "{certs}");
        std::fs::write(
            dir.join("stack.yaml"),
            format!(
                "---\n{certs}\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app-extra\n  namespace: flux-system\n  labels: {{hostk8s.stack: extra, hostk8s.type: application}}\nspec:\n  dependsOn: [{{name: component-certs}}]\n  interval: 1h\n  sourceRef: {{kind: GitRepository, name: flux-system-extra}}\n  path: ./software/stacks/extra/app\n  prune: true\n  wait: true\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [stack.yaml]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("app/kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [namespace.yaml, settings.yaml]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("app/namespace.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: extra}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("app/settings.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra-settings, namespace: extra}\ndata: {greeting: hello}\n",
        )
        .unwrap();
    }

    /// A stack whose `app-sample` is not `sample`'s: in the engine both would be one object.
    fn write_clashing_stack(h: &Harness) {
        let dir = h.path("source/software/stacks/clash");
        std::fs::create_dir_all(dir.join("app")).unwrap();
        std::fs::write(
            dir.join("stack.yaml"),
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app-sample\n  namespace: flux-system\nspec:\n  interval: 1h\n  sourceRef: {kind: GitRepository, name: flux-system-clash}\n  path: ./software/stacks/clash/app\n  prune: true\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("app/settings.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: clash, namespace: default}\n",
        )
        .unwrap();
    }

    fn names(list: &serde_json::Value) -> Vec<String> {
        list.as_array()
            .unwrap_or_else(|| panic!("not a list: {list}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    fn readiness(status: &serde_json::Value, entry: &str) -> Option<String> {
        status["status"]["reconciliation"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == entry)
            .map(|e| e["readiness"].as_str().unwrap().to_string())
    }

    /// HostK8s' two fixture stacks on one Flux env: sample-app comes up beside sample with
    /// the Vault add-on it needs and its storage under HostK8s' `/mnt/pv` mount, goes down
    /// keeping its data, and comes up again onto that data.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_up_and_down_run_a_second_hostk8s_stack_beside_the_first() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::build("flux", true);
        write_clashing_stack(&h);
        let env = unique("stacks");
        // A plan of it fetches and checks the gateway-api add-on's manifest, as the create
        // would, and keeps no add-on copy in the data dir.
        let plan = ok(&h.create_text(
            &env,
            &h.path("profile.yaml"),
            &["--dry-run", "--output", "json"],
            &[],
        ));
        assert_eq!(plan["dryRun"], true, "{plan}");
        assert!(
            !h.path("data/addons").exists(),
            "a dry run kept add-on copies"
        );
        ok(&h.create(&env, &[]));
        assert!(h.path("data/addons").exists());
        let state = h.state(&env);
        // HostK8s' node mount, whatever the stamp's own contract (sample has none).
        assert_eq!(state["storage"], serde_json::json!(["/mnt/pv"]), "{state}");
        assert!(!names(&state["addons"]).contains(&"vault".to_string()));

        let up = h.run(
            &[
                "env",
                "up",
                &env,
                "sample-app",
                "--timeout",
                "20s",
                "--output",
                "json",
            ],
            &[],
        );
        if !up.status.success() {
            for kind in [
                "Cluster",
                "PersistentVolumeClaim",
                "PersistentVolume",
                "Kustomization",
                "ExternalSecret",
                "Secret",
            ] {
                for o in h.api.objects_of(kind) {
                    eprintln!(
                        "DEBUG {kind} {} {} {}",
                        o["metadata"]["namespace"], o["metadata"]["name"], o["status"]
                    );
                }
            }
            panic!("{}", String::from_utf8_lossy(&up.stdout));
        }
        let up = &ok(&up)["up"];
        assert_eq!(up["stack"], "sample-app", "{up}");
        let entries = names(&up["entries"]);
        assert!(entries.contains(&"sample-app".to_string()), "{up}");
        assert!(entries.contains(&"sample-app-db".to_string()), "{up}");
        for e in up["status"]["entries"].as_array().unwrap() {
            if entries.contains(&e["name"].as_str().unwrap().to_string()) {
                assert_eq!(e["readiness"], "ready", "{e}");
            }
        }
        let state = h.state(&env);
        assert_eq!(state["stacks"][0]["name"], "sample-app", "{state}");
        assert!(
            names(&state["addons"]).contains(&"vault".to_string()),
            "{state}"
        );
        // Its contract went into Vault, and its volume is bound to the database's claim.
        assert!(
            h.api
                .state
                .lock()
                .unwrap()
                .vault
                .kv
                .contains_key("postgres/pgadmin4-credentials")
        );
        let volume = h
            .api
            .object("PersistentVolume", "hostk8s-sample-app-voting-db-pv")
            .expect("the stack's volume");
        assert_eq!(volume["status"]["phase"], "Bound", "{volume}");
        // Both stacks in the env's status.
        let status = h.json(&["env", "status", &env]);
        assert_eq!(readiness(&status, "app-sample").as_deref(), Some("ready"));
        assert_eq!(readiness(&status, "sample-app").as_deref(), Some("ready"));
        assert_eq!(
            status["status"]["stacks"],
            serde_json::json!(["sample-app"])
        );

        // Data written where the node sees the volume is on the host.
        let host = h
            .path("data/storage")
            .join(&env)
            .join("pv/sample-app/voting-db");
        let data_path = volume["spec"]["hostPath"]["path"].as_str().unwrap();
        assert!(host.is_dir(), "{}", host.display());
        let written = super::common::docker_cli(&[
            "exec",
            &format!("kindling-{env}-control-plane"),
            "sh",
            "-c",
            &format!("echo kept > {data_path}/marker"),
        ]);
        assert!(written.status.success(), "{written:?}");

        // A stack whose entry would be the same engine object as sample's, unlike it, is
        // refused before anything changes.
        let clash = h.run(&["env", "up", &env, "clash", "--output", "json"], &[]);
        let doc = error_says(&clash, "app-sample");
        assert!(
            doc["error"].as_str().unwrap().contains("clash/stack.yaml"),
            "{doc}"
        );
        assert_eq!(h.state(&env)["stacks"].as_array().unwrap().len(), 1);

        // The env's own stamp is not a stack `env up` added.
        let own = h.run(&["env", "down", &env, "sample", "--output", "json"], &[]);
        error_says(&own, "env delete");

        // A down that stops after the root changed (a crash, a timeout) is finished by the
        // next one: kindling's volume is not left behind.
        let stopped = h.run(
            &["env", "down", &env, "sample-app", "--output", "json"],
            &[("KINDLING_FAIL_AT", "before:remove")],
        );
        error_says(&stopped, "failed on purpose");
        let state = h.state(&env);
        assert!(state["stacks"].is_null(), "{state}");
        assert_eq!(state["removing"]["what"], "stack sample-app", "{state}");
        assert!(
            h.api
                .object("PersistentVolume", "hostk8s-sample-app-voting-db-pv")
                .is_some()
        );
        let down = &h.json(&["env", "down", &env, "sample-app"])["down"];
        assert_eq!(down["wasUp"], true, "{down}");
        let removed = names(&down["removed"]);
        assert!(removed.contains(&"sample-app".to_string()), "{down}");
        assert!(!removed.contains(&"app-sample".to_string()), "{down}");
        assert_eq!(
            names(&down["storageKept"]),
            vec![host.display().to_string()],
            "{down}"
        );
        assert!(h.api.object("Kustomization", "sample-app").is_none());
        assert!(
            h.api
                .object("PersistentVolume", "hostk8s-sample-app-voting-db-pv")
                .is_none()
        );
        assert!(
            host.join("marker").is_file(),
            "the data went with the stack"
        );
        let status = h.json(&["env", "status", &env]);
        assert_eq!(readiness(&status, "app-sample").as_deref(), Some("ready"));
        assert_eq!(readiness(&status, "sample-app"), None, "{status}");
        assert!(h.state(&env)["stacks"].is_null());
        assert!(h.state(&env)["removing"].is_null());
        // Twice is safe.
        let again = &h.json(&["env", "down", &env, "sample-app"])["down"];
        assert_eq!(again["wasUp"], false, "{again}");

        // Up again: the volume comes back onto the same data.
        h.json(&["env", "up", &env, "sample-app", "--timeout", "60s"]);
        let volume = h
            .api
            .object("PersistentVolume", "hostk8s-sample-app-voting-db-pv")
            .unwrap();
        assert_eq!(volume["status"]["phase"], "Bound", "{volume}");
        assert!(host.join("marker").is_file());
        delete_clean(&h, &env);
    }

    /// On Argo CD: a stack sharing a component with the env's stamp comes up with one
    /// Application for the shared entry, and going down removes only its own, whose objects
    /// the resources finalizer takes with it.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_down_on_argo_keeps_what_another_stack_shares() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::build("argo", true);
        write_extra_stack(&h);
        let env = unique("stacksargo");
        let created = h.create_command(
            &env,
            &h.path("profile.yaml"),
            &["--engine", "argo", "--wait", "--timeout", "60s"],
            &[],
        );
        let mut created = created;
        ok(&created.output().unwrap());
        // Named by a path relative to the working directory: the env records where it is, so
        // every later command finds it from anywhere.
        let up = h
            .command(
                &[
                    "env",
                    "up",
                    &env,
                    "software/stacks/extra",
                    "--timeout",
                    "60s",
                    "--output",
                    "json",
                ],
                &[],
            )
            .current_dir(h.path("source"))
            .output()
            .unwrap();
        let up = &ok(&up)["up"];
        assert_eq!(up["stack"], "extra", "{up}");
        let recorded = h.state(&env)["stacks"][0]["dir"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(std::path::Path::new(&recorded).is_absolute(), "{recorded}");
        let shared = names(&up["shared"]);
        assert!(!shared.is_empty(), "{up}");
        assert!(names(&up["entries"]).contains(&"app-extra".to_string()));
        assert!(h.api.object("ConfigMap", "extra-settings").is_some());

        let down = &h.json(&["env", "down", &env, "extra"])["down"];
        assert_eq!(names(&down["removed"]), vec!["app-extra"], "{down}");
        assert_eq!(names(&down["keptShared"]), shared, "{down}");
        wait_until(
            "the stack's ConfigMap pruned",
            std::time::Duration::from_secs(30),
            || h.api.object("ConfigMap", "extra-settings").is_none(),
        );
        let status = h.json(&["env", "status", &env]);
        for name in &shared {
            assert_eq!(
                readiness(&status, name).as_deref(),
                Some("ready"),
                "{status}"
            );
        }
        assert_eq!(readiness(&status, "app-extra"), None);
        delete_clean(&h, &env);
    }

    /// A HostK8s extension stack, added with `env up extension/NAME`: its files reach the
    /// engine although HostK8s' ignore file excludes them, its own paths resolve in its
    /// directory, and it shares HostK8s' certs component with the env's sample stack.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_up_runs_a_hostk8s_extension_stack() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::build("flux", true);
        super::common::write_extension_stack(&h.path("source"));
        let env = unique("stacksext");
        ok(&h.create(&env, &[]));
        let up = &h.json(&["env", "up", &env, "extension/demo", "--timeout", "60s"])["up"];
        assert_eq!(up["stack"], "extension/demo", "{up}");
        assert!(
            names(&up["shared"]).contains(&"component-certs-manager".to_string()),
            "{up}"
        );
        let greeting = h
            .api
            .object("ConfigMap", "demo-greeting")
            .expect("the extension stack's application, from its own directory");
        assert_eq!(greeting["data"]["greeting"], "hello");
        let status = h.json(&["env", "status", &env]);
        assert_eq!(
            readiness(&status, "demo-applications").as_deref(),
            Some("ready")
        );
        assert_eq!(
            status["status"]["stacks"],
            serde_json::json!(["extension/demo"])
        );
        delete_clean(&h, &env);
    }
}
