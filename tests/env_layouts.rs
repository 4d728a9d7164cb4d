//! A team's own GitOps repository through the whole fake flow (issue #21 part 1): a Flux
//! cluster directory as `flux bootstrap` leaves it, pushed to the env's Gitea and reconciled
//! by either engine, infrastructure before apps, the overlay's patch applied.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, unique, write_flux_layout};

    fn run_flux_layout(engine: &str) {
        let h = Harness::with_engine(engine);
        write_flux_layout(&h.path("source"));
        let env = unique(&format!("layout{engine}"));
        let cluster_dir = h.path("source/clusters/dev");
        let profile = h.path("profile.yaml");
        let created = ok(&h.run(
            &[
                "env",
                "create",
                &env,
                "--stamp",
                cluster_dir.to_str().unwrap(),
                "--profile",
                profile.to_str().unwrap(),
                "--engine",
                engine,
                "--wait",
                "--timeout",
                "60s",
                "--output",
                "json",
            ],
            &[],
        ));
        let entries = created["env"]["status"]["entries"].as_array().unwrap();
        let names: Vec<&str> = entries
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["infra-controllers", "apps"], "{created}");
        for e in entries {
            assert_eq!(e["readiness"], "ready", "{e}");
        }
        // The overlay's patch over its base, and the infrastructure before it.
        let greeting = h.api.object("ConfigMap", "greeting").expect("the app");
        assert_eq!(greeting["data"]["greeting"], "dev", "{greeting}");
        assert!(h.api.object("ConfigMap", "infra-settings").is_some());
        // The team's remote is nowhere in what the engine was given.
        for kind in ["GitRepository", "Kustomization", "Application"] {
            for o in h.api.objects_of(kind) {
                assert!(!o.to_string().contains("github.com/team/fleet"), "{o}");
            }
        }
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_flux_cluster_directory_runs_on_flux() {
        if docker().await.is_none() {
            return;
        }
        run_flux_layout("flux");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_flux_cluster_directory_runs_on_argo() {
        if docker().await.is_none() {
            return;
        }
        run_flux_layout("argo");
    }
}
