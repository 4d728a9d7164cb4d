//! idpbuilder packages (issue #21 part 2): `env create --package DIR` gives each `cnoe://`
//! directory a Gitea repository of its own, rewrites the URLs and applies the Applications
//! (Argo CD) or their translation (Flux); `env sync` pushes them again. The test packages are
//! written here in idpbuilder's layout (cnoe-io/idpbuilder v0.10.1: top-level Application and
//! ApplicationSet files, `cnoe://` relative to the file).

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, unique};
    use std::path::Path;

    fn write(root: &Path, file: &str, text: &str) {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn config_map(name: &str, value: &str) -> String {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: '{value}'}}\n"
        )
    }

    /// A directory source, a local chart with cnoe:// in its values, and (for Argo CD) two
    /// sources of one directory and an ApplicationSet over `apps/*`.
    fn write_package(root: &Path, argo: bool) {
        let app = |name: &str, source: &str| {
            format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}, namespace: argocd}}\nspec:\n  project: default\n{source}  destination: {{server: 'https://kubernetes.default.svc', namespace: pkgs}}\n  syncPolicy:\n    automated: {{prune: true, selfHeal: true}}\n    syncOptions: [CreateNamespace=true]\n"
            )
        };
        write(
            root,
            "notes.yaml",
            &app(
                "notes",
                "  source: {repoURL: 'cnoe://manifests', targetRevision: HEAD, path: .}\n",
            ),
        );
        write(root, "manifests/cm.yaml", &config_map("pkg-notes", "first"));
        write(
            root,
            "chart.yaml",
            &app(
                "local-chart",
                "  source:\n    repoURL: 'cnoe://chart'\n    targetRevision: HEAD\n    path: .\n    helm:\n      valuesObject: {gitUrl: 'cnoe://chart'}\n",
            ),
        );
        write(
            root,
            "chart/Chart.yaml",
            "apiVersion: v2\nname: pkg-chart\nversion: 0.1.0\n",
        );
        write(
            root,
            "chart/templates/cm.yaml",
            &config_map("pkg-chart", "from-chart"),
        );
        // Not an Application: idpbuilder leaves it alone, and so does kindling.
        write(root, "extra.yaml", &config_map("never-applied", "x"));
        if argo {
            write(
                root,
                "multi.yaml",
                &app(
                    "multi",
                    "  sources:\n    - {repoURL: 'cnoe://multi', targetRevision: HEAD, path: one}\n    - {repoURL: 'cnoe://multi', targetRevision: HEAD, path: two}\n",
                ),
            );
            write(root, "multi/one/cm.yaml", &config_map("multi-one", "1"));
            write(root, "multi/two/cm.yaml", &config_map("multi-two", "2"));
            write(
                root,
                "set.yaml",
                "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: sets, namespace: argocd}\nspec:\n  generators:\n    - git: {repoURL: 'cnoe://sets', revision: HEAD, directories: [{path: 'apps/*'}, {path: apps/skipped, exclude: true}]}\n  template:\n    metadata: {name: 'set-{{path.basename}}'}\n    spec:\n      project: default\n      source: {repoURL: 'cnoe://sets', targetRevision: HEAD, path: '{{path}}'}\n      destination: {server: 'https://kubernetes.default.svc', namespace: pkgs}\n      syncPolicy: {automated: {prune: true}}\n",
            );
            for (dir, name) in [
                ("alpha", "set-alpha"),
                ("beta", "set-beta"),
                ("skipped", "set-skipped"),
            ] {
                write(
                    root,
                    &format!("sets/apps/{dir}/cm.yaml"),
                    &config_map(name, dir),
                );
            }
        }
    }

    fn config_value(h: &Harness, name: &str) -> Option<String> {
        h.api
            .object("ConfigMap", name)
            .and_then(|c| c["data"]["value"].as_str().map(str::to_string))
    }

    fn repository_url(h: &Harness, env: &str, repo: &str) -> String {
        let own = h.state(env)["gitea"]["clusterRepoUrl"]
            .as_str()
            .unwrap()
            .to_string();
        format!("{}/{repo}.git", own.rsplit_once('/').unwrap().0)
    }

    fn packages_run(engine: &str) {
        let h = Harness::with_engine(engine);
        let package = h.path("my-package");
        write_package(&package, engine == "argo");
        let env = unique(&format!("pkg{engine}"));
        let package_arg = package.display().to_string();

        // The plan names every repository and rewrite, and changes nothing.
        let plan = ok(&h
            .create_command(
                &env,
                &h.path("profile.yaml"),
                &["--engine", engine, "--package", &package_arg, "--dry-run"],
                &[],
            )
            .output()
            .unwrap());
        let plan_text = plan.to_string();
        assert!(plan_text.contains("notes-manifests"), "{plan_text}");
        assert!(plan_text.contains("cnoe://chart"), "{plan_text}");
        assert!(
            plan_text.contains("never-applied") || plan_text.contains("extra.yaml"),
            "{plan_text}"
        );
        assert!(!h.path("data/envs").join(&env).join("state.json").exists());

        ok(&h
            .create_command(
                &env,
                &h.path("profile.yaml"),
                &[
                    "--engine",
                    engine,
                    "--package",
                    &package_arg,
                    "--wait",
                    "--timeout",
                    "60s",
                ],
                &[],
            )
            .output()
            .unwrap());
        // One repository per directory, named APP-BASENAME, holding the directory.
        let mut repos = vec!["notes-manifests", "local-chart-chart"];
        if engine == "argo" {
            repos.extend(["multi-multi", "sets-sets"]);
        }
        for repo in &repos {
            let bare = h.gitea.root.join(format!("kindling/{repo}.git"));
            assert!(
                repo_head(&bare).is_some(),
                "{repo}: no repository with a commit at {}",
                bare.display()
            );
        }
        let listed = std::process::Command::new("git")
            .args(["ls-tree", "-r", "--name-only", "main"])
            .current_dir(h.gitea.root.join("kindling/notes-manifests.git"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "cm.yaml");
        assert_eq!(
            h.state(&env)["packages"][0],
            std::fs::canonicalize(&package)
                .unwrap()
                .display()
                .to_string()
        );

        let status_packages = |h: &Harness| -> serde_json::Value {
            h.json(&["env", "status", &env])["status"]["packages"].clone()
        };
        match engine {
            "argo" => {
                let notes = h.api.object("Application", "notes").unwrap();
                assert_eq!(
                    notes["spec"]["source"]["repoURL"],
                    repository_url(&h, &env, "notes-manifests").as_str()
                );
                assert_eq!(
                    notes["metadata"]["labels"]["cnoe.io/package-type"],
                    "custom"
                );
                let chart = h.api.object("Application", "local-chart").unwrap();
                assert_eq!(
                    chart["spec"]["source"]["helm"]["valuesObject"]["gitUrl"],
                    repository_url(&h, &env, "local-chart-chart").as_str()
                );
                let set = h.api.object("ApplicationSet", "sets").unwrap();
                assert_eq!(
                    set["spec"]["generators"][0]["git"]["repoURL"],
                    repository_url(&h, &env, "sets-sets").as_str()
                );
                // The repositories are private: a credential template covers them.
                let creds = h
                    .api
                    .object("Secret", "kindling-package-repositories")
                    .unwrap();
                assert_eq!(
                    creds["metadata"]["labels"]["argocd.argoproj.io/secret-type"],
                    "repo-creds"
                );
                wait_until(
                    "the package's objects",
                    std::time::Duration::from_secs(30),
                    || {
                        let _ = h.run(&["env", "status", &env], &[]);
                        [
                            "pkg-notes",
                            "pkg-chart",
                            "multi-one",
                            "multi-two",
                            "set-alpha",
                            "set-beta",
                        ]
                        .iter()
                        .all(|c| config_value(&h, c).is_some())
                    },
                );
                assert!(
                    config_value(&h, "set-skipped").is_none(),
                    "excluded directory generated"
                );
                let packages = status_packages(&h);
                let set_status = packages
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["object"] == "ApplicationSet argocd/sets")
                    .unwrap_or_else(|| panic!("{packages}"))
                    .clone();
                let generated = set_status["generated"].to_string();
                assert!(
                    generated.contains("set-alpha") && generated.contains("set-beta"),
                    "{set_status}"
                );
            }
            _ => {
                let git = h.api.object("GitRepository", "notes-manifests").unwrap();
                assert_eq!(
                    git["spec"]["url"],
                    repository_url(&h, &env, "notes-manifests").as_str()
                );
                assert_eq!(
                    h.api.object("Kustomization", "notes").unwrap()["spec"]["targetNamespace"],
                    "pkgs"
                );
                assert!(h.api.object("HelmRelease", "local-chart").is_some());
                wait_until(
                    "the package's objects",
                    std::time::Duration::from_secs(30),
                    || {
                        let _ = h.run(&["env", "status", &env], &[]);
                        config_value(&h, "pkg-notes").is_some()
                            && config_value(&h, "pkg-chart").is_some()
                    },
                );
                let packages = status_packages(&h);
                assert!(
                    packages
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["object"] == "Kustomization flux-system/notes"
                            && p["state"].as_str().unwrap().starts_with("Ready")),
                    "{packages}"
                );
            }
        }
        assert!(config_value(&h, "never-applied").is_none());

        // An edit in a package directory reaches the cluster with `env sync`.
        write(
            &package,
            "manifests/cm.yaml",
            &config_map("pkg-notes", "second"),
        );
        if engine == "argo" {
            write(
                &package,
                "sets/apps/gamma/cm.yaml",
                &config_map("set-gamma", "gamma"),
            );
        }
        let synced = ok(&h.run(
            &["env", "sync", &env, "--timeout", "60s", "--output", "json"],
            &[],
        ));
        assert!(
            synced["sync"]["packages"]
                .to_string()
                .contains("notes-manifests"),
            "{synced}"
        );
        wait_until(
            "the edited package",
            std::time::Duration::from_secs(30),
            || {
                let _ = h.run(&["env", "status", &env], &[]);
                config_value(&h, "pkg-notes").as_deref() == Some("second")
                    && (engine != "argo" || config_value(&h, "set-gamma").is_some())
            },
        );
        // `env restart --package` swaps the packages: the old objects go, the new come.
        let second = h.path("second-package");
        write(
            &second,
            "second.yaml",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: second}\nspec:\n  source: {repoURL: 'cnoe://files', path: .}\n  destination: {server: 'https://kubernetes.default.svc', namespace: default}\n  syncPolicy: {automated: {prune: true}}\n",
        );
        write(&second, "files/cm.yaml", &config_map("pkg-second", "2nd"));
        let restarted = ok(&h.run(
            &[
                "env",
                "restart",
                &env,
                "--package",
                &second.display().to_string(),
                "--output",
                "json",
            ],
            &[],
        ));
        assert_eq!(
            restarted["restart"]["packages"][0],
            std::fs::canonicalize(&second)
                .unwrap()
                .display()
                .to_string()
        );
        let (old_kind, new_kind) = match engine {
            "argo" => ("Application", "Application"),
            _ => ("Kustomization", "Kustomization"),
        };
        wait_until(
            "the swapped packages",
            std::time::Duration::from_secs(30),
            || {
                let _ = h.run(&["env", "status", &env], &[]);
                h.api.object(old_kind, "notes").is_none()
                    && h.api.object(new_kind, "second").is_some()
                    && config_value(&h, "pkg-second").is_some()
            },
        );
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_packages_run_on_argo() {
        if docker().await.is_none() {
            return;
        }
        packages_run("argo");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_packages_translate_to_flux() {
        if docker().await.is_none() {
            return;
        }
        packages_run("flux");
    }

    /// What Flux cannot run is refused, by name, before anything is made.
    #[test]
    fn env_packages_flux_refuses_what_does_not_translate() {
        let h = Harness::with_engine("flux");
        let package = h.path("argo-only");
        write_package(&package, true);
        let env = unique("pkgrefused");
        let out = h
            .create_command(
                &env,
                &h.path("profile.yaml"),
                &[
                    "--engine",
                    "flux",
                    "--package",
                    &package.display().to_string(),
                ],
                &[],
            )
            .output()
            .unwrap();
        let error = error_says(&out, "ApplicationSet sets");
        let text = error.to_string();
        assert!(text.contains("Flux has no ApplicationSet"), "{text}");
        assert!(
            text.contains("Application multi") && text.contains("several `sources`"),
            "{text}"
        );
        assert!(text.contains("--engine argo"), "{text}");
        assert!(
            !h.path("data/envs").join(&env).exists(),
            "something was made"
        );
    }
}
