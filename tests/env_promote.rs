//! Overlays and promotion by image tag (issue #21 part 3): `env create --overlay` picks one
//! overlay throughout, `env promote --image NAME=TAG` edits that overlay's kustomization,
//! pushes and follows the rollout, `--from A --to B` copies tags between overlays.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, unique, write_overlay_layout};

    fn image_in(h: &Harness, namespace: &str) -> Option<String> {
        h.api
            .objects_of("Deployment")
            .into_iter()
            .find(|d| d["metadata"]["namespace"] == namespace && d["metadata"]["name"] == "web")
            .and_then(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .map(str::to_string)
            })
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_promote_edits_the_overlay_pushes_and_follows_the_rollout() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        write_overlay_layout(&h.path("source"), "ghcr.io/team/web", "0.9", "1.0");
        let env = unique("promote");
        let cluster_dir = h.path("source/clusters/dev");
        let profile = h.path("profile.yaml");
        let create = |overlay: &str| {
            h.run(
                &[
                    "env",
                    "create",
                    &env,
                    "--stamp",
                    cluster_dir.to_str().unwrap(),
                    "--profile",
                    profile.to_str().unwrap(),
                    "--overlay",
                    overlay,
                    "--wait",
                    "--timeout",
                    "60s",
                    "--output",
                    "json",
                ],
                &[],
            )
        };
        // An overlay no entry offers is named with the ones it does, before anything is made.
        let missing = create("prod");
        let doc = error_says(&missing, "has no overlay 'prod'");
        assert!(
            doc["error"].as_str().unwrap().contains("local, stage"),
            "{doc}"
        );

        ok(&create("stage"));
        assert_eq!(h.state(&env)["overlay"], "stage");
        assert_eq!(
            image_in(&h, "web-stage").as_deref(),
            Some("ghcr.io/team/web:1.0")
        );
        assert!(image_in(&h, "web-local").is_none());

        // Promote in the overlay the env runs: edited (quoted), pushed, rolled out.
        let promoted = &h.json(&[
            "env",
            "promote",
            &env,
            "--image",
            "ghcr.io/team/web=1.10",
            "--timeout",
            "60s",
        ])["promote"];
        assert_eq!(promoted["rolledOut"], true, "{promoted}");
        assert_eq!(promoted["changes"][0]["from"], "1.0");
        assert_eq!(promoted["changes"][0]["to"], "1.10");
        let stage =
            std::fs::read_to_string(h.path("source/apps/web/overlays/stage/kustomization.yaml"))
                .unwrap();
        assert!(stage.contains("    newTag: \"1.10\"\n"), "{stage}");
        assert!(stage.starts_with("# stage\n"), "{stage}");
        assert_eq!(
            image_in(&h, "web-stage").as_deref(),
            Some("ghcr.io/team/web:1.10")
        );

        // Copy stage's tags to local: edited and pushed; the env runs stage, so no rollout.
        let copied =
            &h.json(&["env", "promote", &env, "--from", "stage", "--to", "local"])["promote"];
        assert_eq!(copied["rolledOut"], false, "{copied}");
        let local =
            std::fs::read_to_string(h.path("source/apps/web/overlays/local/kustomization.yaml"))
                .unwrap();
        assert!(local.contains("newTag: \"1.10\""), "{local}");
        // Asking again changes nothing.
        let again =
            &h.json(&["env", "promote", &env, "--from", "stage", "--to", "local"])["promote"];
        assert_eq!(again["changes"], serde_json::json!([]), "{again}");

        // An image no kustomization sets is refused, naming the ones that are set.
        let unknown = h.run(
            &[
                "env",
                "promote",
                &env,
                "--image",
                "ghcr.io/team/api=2",
                "--output",
                "json",
            ],
            &[],
        );
        error_says(&unknown, "ghcr.io/team/web");
        // A rerun of create must ask for the env's overlay.
        error_says(&create("local"), "runs overlay stage");
        delete_clean(&h, &env);
    }
}
