//! The fast path (issue #21 part 5): `env apply ENV ENTRY` applies one entry from the working
//! tree at once, its engine object paused so the engine does not fight it, and `env sync`
//! hands it back.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, unique};

    fn paused(h: &Harness, engine: &str, entry: &str) -> bool {
        match engine {
            "flux" => h
                .api
                .object("Kustomization", entry)
                .is_some_and(|k| k["spec"]["suspend"] == true),
            _ => h
                .api
                .object("Application", entry)
                .is_some_and(|a| a["spec"]["syncPolicy"]["automated"].is_null()),
        }
    }

    fn entry_flag(status: &serde_json::Value, entry: &str) -> bool {
        status["status"]["reconciliation"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == entry)
            .is_some_and(|e| e["appliedDirectly"] == true)
    }

    /// An application of plain manifests (no kustomization: read file by file, as
    /// kustomize-controller generates one) beside the sample stamp's.
    fn add_notes(h: &Harness) {
        h.add_sample_application(
            "{name: notes, path: applications/notes, namespace: website, dependsOn: [website]}",
            "notes",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata: {text: first}\n",
        );
    }

    fn apply_then_sync(engine: &str) {
        let h = Harness::with_engine(engine);
        add_notes(&h);
        let env = unique(&format!("apply{engine}"));
        ok(&h
            .create_command(
                &env,
                &h.path("profile.yaml"),
                &["--engine", engine, "--wait", "--timeout", "60s"],
                &[],
            )
            .output()
            .unwrap());
        let marker = format!("applied {}", unique("m"));
        let notes = h.path("source/stamps/sample/applications/notes/manifest.yaml");
        let text = std::fs::read_to_string(&notes).unwrap();
        std::fs::write(
            &notes,
            text.replace("text: first", &format!("text: '{marker}'")),
        )
        .unwrap();
        let has_marker = || {
            h.api
                .object("ConfigMap", "notes")
                .is_some_and(|c| c["data"]["text"] == marker.as_str())
        };
        assert!(!has_marker());
        let applied = &h.json(&["env", "apply", &env, "notes"])["apply"];
        // Into the entry's namespace, as Flux's targetNamespace puts it.
        assert_eq!(
            applied["applied"],
            serde_json::json!(["ConfigMap website/notes"]),
            "{applied}"
        );
        // At once, from the working tree, with the entry's engine object paused.
        assert!(has_marker(), "not applied");
        assert!(
            paused(&h, engine, "notes"),
            "{engine}: the engine is still in charge"
        );
        let status = h.json(&["env", "status", &env]);
        assert!(entry_flag(&status, "notes"), "{status}");
        // A while later the engine has not taken it back.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let _ = h.run(&["env", "status", &env], &[]);
        assert!(
            paused(&h, engine, "notes"),
            "{engine}: taken back before sync"
        );
        // A kustomization is built with `kustomize build` (the harness's kustomize is the
        // one kubectl embeds). A broken one is refused before anything changes (the stamp's
        // own checks name the missing file before kustomize runs).
        let kustomization = h.path("source/stamps/sample/applications/website/kustomization.yaml");
        let good = std::fs::read_to_string(&kustomization).unwrap();
        std::fs::write(
            &kustomization,
            good.replace("resources:\n", "resources:\n  - missing.yaml\n"),
        )
        .unwrap();
        let broken = h.run(&["env", "apply", &env, "website", "--output", "json"], &[]);
        error_says(&broken, "missing.yaml");
        assert!(
            !paused(&h, engine, "website"),
            "{engine}: paused by a failed build"
        );
        std::fs::write(&kustomization, &good).unwrap();
        let website = &h.json(&["env", "apply", &env, "website"])["apply"]["applied"];
        assert!(
            website
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "Deployment website/website"),
            "{website}"
        );
        assert!(paused(&h, engine, "website"));
        // A Helm entry is the engine's to install.
        let helm = h.run(&["env", "apply", &env, "ingress", "--output", "json"], &[]);
        error_says(&helm, "is a Helm chart");

        // Sync hands it back: the engine reconciles it again, from Git.
        let synced = ok(&h.run(
            &["env", "sync", &env, "--timeout", "60s", "--output", "json"],
            &[],
        ));
        assert!(!paused(&h, engine, "notes"), "{synced}");
        let status = h.json(&["env", "status", &env]);
        assert!(!entry_flag(&status, "notes"), "{status}");
        assert_eq!(status["status"]["ready"], true, "{status}");
        assert!(h.state(&env)["appliedDirectly"].is_null());
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_apply_takes_an_entry_over_until_sync_on_flux() {
        if docker().await.is_none() {
            return;
        }
        apply_then_sync("flux");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_apply_takes_an_entry_over_until_sync_on_argo() {
        if docker().await.is_none() {
            return;
        }
        apply_then_sync("argo");
    }
}
