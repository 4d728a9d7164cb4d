//! A team's own GitOps repository through the whole fake flow (issue #21 part 1): a Flux
//! cluster directory as `flux bootstrap` leaves it, and an Argo CD app-of-apps over the same
//! repository, pushed to the env's Gitea and reconciled by either engine, infrastructure
//! before apps, the overlay's patch applied.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, unique, write_argo_layout, write_flux_layout};

    /// `env create ENV --stamp source/DIR --engine ENGINE --wait`, its JSON report.
    fn create_layout(h: &Harness, env: &str, dir: &str, engine: &str) -> serde_json::Value {
        let stamp = h.path("source").join(dir);
        let profile = h.path("profile.yaml");
        ok(&h.run(
            &[
                "env",
                "create",
                env,
                "--stamp",
                stamp.to_str().unwrap(),
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
        ))
    }

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
        let created = create_layout(&h, &env, dir, engine);
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

    /// A cluster directory's own OCIRepository (as `flux push artifact` fills one): the source
    /// keeps its URL, the Kustomization on it is an entry that waits for `apps`, and Flux
    /// builds it from the artifact it pulls; a new artifact at the tag reaches the cluster.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_flux_layout_with_its_own_oci_source() {
        if docker().await.is_none() {
            return;
        }
        super::common::ensure_test_registry_image();
        let h = Harness::with_engine("flux");
        write_flux_layout(&h.path("source"));
        let registry = unique("oci");
        let port = super::common::start_test_registry(&registry, None);
        let artifact = |value: &str| {
            super::common::push_flux_artifact(
                port,
                "manifests/demo",
                "v1",
                &[(
                    "demo.yaml",
                    &format!(
                        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: oci-demo}}\ndata: {{value: '{value}'}}\n"
                    ),
                )],
            )
        };
        artifact("first");
        let url = format!("oci://127.0.0.1:{port}/manifests/demo");
        super::common::write(
            &h.path("source/clusters/dev/demo.yaml"),
            &format!(
                "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata: {{name: demo, namespace: flux-system}}\nspec:\n  interval: 1m\n  url: {url}\n  insecure: true\n  ref: {{tag: v1}}\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: demo, namespace: flux-system}}\nspec:\n  interval: 10m\n  sourceRef: {{kind: OCIRepository, name: demo}}\n  path: ./\n  prune: true\n  wait: true\n  targetNamespace: apps\n  dependsOn: [{{name: apps}}]\n"
            ),
        );
        let env = unique("ocilayout");
        let created = create_layout(&h, &env, "clusters/dev", "flux");
        let entries = created["env"]["status"]["entries"].as_array().unwrap();
        let demo = entries
            .iter()
            .find(|e| e["name"] == "demo")
            .unwrap_or_else(|| panic!("{created}"));
        assert_eq!(demo["readiness"], "ready", "{demo}");
        let value = || {
            h.api
                .object("ConfigMap", "oci-demo")
                .and_then(|c| c["data"]["value"].as_str().map(str::to_string))
        };
        assert_eq!(value().as_deref(), Some("first"));
        // The source is the layout's, URL and all; the entry reads it.
        let source = h.api.object("OCIRepository", "demo").unwrap();
        assert_eq!(source["spec"]["url"], url.as_str());
        let kustomization = h.api.object("Kustomization", "demo").unwrap();
        assert_eq!(kustomization["spec"]["sourceRef"]["kind"], "OCIRepository");
        assert_eq!(kustomization["spec"]["dependsOn"][0]["name"], "apps");
        // A new artifact at the tag is pulled and applied.
        artifact("second");
        ok(&h.run(
            &["env", "sync", &env, "--timeout", "60s", "--output", "json"],
            &[],
        ));
        wait_until(
            "the new artifact",
            std::time::Duration::from_secs(30),
            || {
                let _ = h.run(&["env", "status", &env], &[]);
                value().as_deref() == Some("second")
            },
        );
        // `env diff` cannot look inside it, and says so.
        let diff = h.json(&["env", "diff", &env, "demo"]);
        assert!(
            diff["diff"]["entries"][0]["notCompared"]
                .as_str()
                .unwrap()
                .contains("OCIRepository demo"),
            "{diff}"
        );
        delete_clean(&h, &env);
        let _ = super::common::docker_cli(&["rm", "-f", &registry]);
    }
}
