//! Drift (issue #21 part 4): `env diff [ENV] [ENTRY]` shows the live objects that differ from
//! what Git says, through a server-side dry-run apply as the engine's field manager, and
//! `env status` marks the drifted entries. The fake API server merges applies and answers
//! `dryRun=All` as the real one does (tests/common/fake_ssa.rs); the fake Flux applies again
//! at every reconciliation, as kustomize-controller does, so `env sync` puts Git's back.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, unique};
    use serde_json::Value;

    /// A plain-manifest entry of two ConfigMaps, reconciled daily and depending on nothing:
    /// Flux applies again at every interval, and after a dependency was briefly in progress
    /// (kustomize-controller marks Ready Unknown while it reconciles), and the test wants the
    /// drift to last until `env sync`. (A Secret cannot be in Git: `stamp validate`
    /// refuses it; the masking of Secret values is a unit test of src/env/diff.rs.)
    fn add_notes(h: &Harness) {
        h.add_sample_application(
            "{name: notes, path: applications/notes, namespace: default, interval: 24h}",
            "notes",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata: {text: first, keep: same}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes-more}\ndata: {more: text}\n",
        );
    }

    fn entry<'a>(report: &'a Value, name: &str) -> &'a Value {
        report["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["entry"] == name)
            .unwrap_or_else(|| panic!("no entry {name}: {report}"))
    }

    fn status_entry(status: &Value, name: &str) -> Value {
        status["status"]["reconciliation"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no entry {name}: {status}"))
    }

    fn edit(h: &Harness, kind: &str, name: &str, change: impl FnOnce(&mut Value)) {
        let mut change = Some(change);
        h.api.update(|objects| {
            let o = objects
                .iter_mut()
                .find(|s| s.object["kind"] == kind && s.name == name)
                .unwrap_or_else(|| panic!("no {kind} {name}"));
            (change.take().unwrap())(&mut o.object);
        });
    }

    fn drift_then_sync(engine: &str) {
        let h = Harness::with_engine(engine);
        add_notes(&h);
        let env = unique(&format!("diff{engine}"));
        ok(&h
            .create_command(
                &env,
                &h.path("profile.yaml"),
                &["--engine", engine, "--wait", "--timeout", "60s"],
                &[],
            )
            .output()
            .unwrap());

        // Fresh from Git: nothing differs. The kustomization (website) is built with
        // kustomize, the plain directory file by file; a Helm entry is the engine's.
        let clean = &h.json(&["env", "diff", &env])["diff"];
        assert_eq!(clean["drifted"], false, "{clean}");
        assert!(
            entry(clean, "website")["unchanged"].as_u64().unwrap() >= 4,
            "{clean}"
        );
        assert_eq!(entry(clean, "notes")["unchanged"], 2, "{clean}");
        assert!(
            entry(clean, "ingress")["notCompared"]
                .as_str()
                .unwrap()
                .contains("Helm chart"),
            "{clean}"
        );
        let status = h.json(&["env", "status", &env]);
        assert!(
            status_entry(&status, "notes")["drifted"].is_null(),
            "{status}"
        );

        // Edited by hand (as `kubectl edit` would), one object deleted.
        edit(&h, "ConfigMap", "notes", |o| {
            o["data"]["text"] = "edited by hand".into();
            o["metadata"]["labels"]["hand"] = "made".into();
        });
        h.api.update(|objects| {
            objects.retain(|s| !(s.object["kind"] == "ConfigMap" && s.name == "notes-more"))
        });

        let drifted = &h.json(&["env", "diff", &env, "notes"])["diff"];
        assert_eq!(drifted["drifted"], true, "{drifted}");
        let notes = entry(drifted, "notes");
        let changes = notes["changes"].as_array().unwrap();
        let config_map = changes
            .iter()
            .find(|c| c["object"] == "ConfigMap default/notes")
            .unwrap_or_else(|| panic!("{notes}"));
        assert_eq!(config_map["action"], "drifted");
        let lines: Vec<&str> = config_map["diff"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert!(lines.contains(&"-   text: edited by hand"), "{lines:?}");
        assert!(lines.contains(&"+   text: first"), "{lines:?}");
        // A label someone else set is theirs: the engine's apply keeps it (server-side apply),
        // so it is no drift and shows on both sides or not at all.
        assert!(
            !lines
                .iter()
                .any(|l| l.starts_with('-') && l.contains("hand: made")),
            "{lines:?}"
        );
        // The deleted ConfigMap: Git has it, the cluster does not.
        assert!(
            changes
                .iter()
                .any(|c| c["object"] == "ConfigMap default/notes-more" && c["action"] == "created"),
            "{notes}"
        );
        // Only the named entry was compared.
        assert_eq!(drifted["entries"].as_array().unwrap().len(), 1);

        // Text output and CI's exit code.
        let text = h.run(&["env", "diff", &env, "notes", "--exit-code"], &[]);
        assert_eq!(text.status.code(), Some(1), "{text:?}");
        let shown = String::from_utf8_lossy(&text.stdout);
        assert!(shown.contains("ConfigMap default/notes drifted"), "{shown}");
        // One word: an env when there is one of that name, otherwise an entry of dev.
        let lone = h.run(&["env", "diff", &env, "--output", "json"], &[]);
        assert_eq!(ok(&lone)["diff"]["env"], env.as_str());

        // Status marks the drifted entries and names the way back.
        let status = h.json(&["env", "status", &env]);
        let notes_status = status_entry(&status, "notes");
        let marks: Vec<&str> = notes_status["drifted"]
            .as_array()
            .unwrap_or_else(|| panic!("{status}"))
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert!(
            marks.contains(&"ConfigMap default/notes (drifted)"),
            "{marks:?}"
        );
        assert!(
            notes_status["message"]
                .as_str()
                .unwrap()
                .contains(&format!("kindling env diff {env} notes")),
            "{notes_status}"
        );
        assert!(
            marks.contains(&"ConfigMap default/notes-more (created)"),
            "{marks:?}"
        );
        assert!(
            status_entry(&status, "website")["drifted"].is_null(),
            "{status}"
        );

        if engine == "flux" {
            // Flux applies again at every reconciliation (kustomize-controller), so a sync
            // puts Git's back and nothing differs any more.
            ok(&h.run(
                &["env", "sync", &env, "--timeout", "60s", "--output", "json"],
                &[],
            ));
            let after = h.run(
                &["env", "diff", &env, "--exit-code", "--output", "json"],
                &[],
            );
            let after = ok(&after);
            assert_eq!(after["diff"]["drifted"], false, "{after}");
            assert_eq!(
                h.api.object("ConfigMap", "notes").unwrap()["data"]["text"],
                "first"
            );
            let status = h.json(&["env", "status", &env]);
            assert!(
                status_entry(&status, "notes")["drifted"].is_null(),
                "{status}"
            );
        }
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_diff_shows_drift_and_sync_puts_git_back_on_flux() {
        if docker().await.is_none() {
            return;
        }
        drift_then_sync("flux");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_diff_shows_drift_on_argo() {
        if docker().await.is_none() {
            return;
        }
        drift_then_sync("argo");
    }
}
