//! A team's own GitOps repository through the whole fake flow (issue #21 part 1): a Flux
//! cluster directory as `flux bootstrap` leaves it, and an Argo CD app-of-apps over the same
//! repository, pushed to the env's Gitea and reconciled by either engine, infrastructure
//! before apps, the overlay's patch applied.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, unique, write_argo_layout, write_flux_layout};

    /// Creates an env of the layout in `dir` (written by `write`) on `engine` and checks that
    /// `expected` entries come up Ready in that order, the overlay's patch applied after the
    /// infrastructure, and the team's remote nowhere in what the engine was given.
    fn run_layout(
        engine: &str,
        write: fn(&std::path::Path),
        dir: &str,
        expected: &[&str],
        check: fn(&Harness),
    ) {
        let h = Harness::with_engine(engine);
        write(&h.path("source"));
        let env = unique(&format!("layout{engine}"));
        let cluster_dir = h.path("source").join(dir);
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
        assert_eq!(names, expected, "{created}");
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
        check(&h);
        delete_clean(&h, &env);
    }

    const FLUX_ENTRIES: &[&str] = &["infra-controllers", "apps"];
    const ARGO_ENTRIES: &[&str] = &["infra", "web"];

    fn argo_layout(root: &std::path::Path) {
        write_argo_layout(root, false);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_flux_cluster_directory_runs_on_flux() {
        if docker().await.is_none() {
            return;
        }
        run_layout(
            "flux",
            write_flux_layout,
            "clusters/dev",
            FLUX_ENTRIES,
            |_| {},
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_flux_cluster_directory_runs_on_argo() {
        if docker().await.is_none() {
            return;
        }
        run_layout(
            "argo",
            write_flux_layout,
            "clusters/dev",
            FLUX_ENTRIES,
            |_| {},
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_argo_app_of_apps_runs_on_argo() {
        if docker().await.is_none() {
            return;
        }
        // The team's project and sync options are kept; its AppProject permits the env's
        // Gitea too (the fake Argo CD refuses a repository its project does not permit).
        run_layout("argo", argo_layout, "bootstrap", ARGO_ENTRIES, |h| {
            let web = h.api.object("Application", "web").unwrap();
            assert_eq!(web["spec"]["project"], "team");
            let options = web["spec"]["syncPolicy"]["syncOptions"].to_string();
            assert!(options.contains("PruneLast=true"), "{options}");
            let project = h.api.object("AppProject", "team").unwrap();
            assert_eq!(
                project["spec"]["sourceRepos"].as_array().unwrap().len(),
                2,
                "{project}"
            );
        });
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_argo_app_of_apps_runs_on_flux() {
        if docker().await.is_none() {
            return;
        }
        run_layout("flux", argo_layout, "bootstrap", ARGO_ENTRIES, |_| {});
    }
}
