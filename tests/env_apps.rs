//! HostK8s apps (issue #19: `make deploy/remove` of `software/apps` maps to a kindling
//! command): `env deploy` and `env remove` with HostK8s' own apps (the fixture's copies of
//! danielscholl-osdu/hostk8s@2add0a5 software/apps), deployed by the engine from the env's Git.

mod common;

mod env {
    use super::common::env_harness::*;
    use super::common::{docker, unique};

    fn entry<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        report["status"]["entries"]
            .as_array()
            .unwrap_or_else(|| panic!("no entries: {report}"))
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no entry {name}: {report}"))
    }

    fn deploy_and_remove(engine: &str) {
        let h = Harness::build(engine, true);
        let env = unique(&format!("apps{engine}"));
        let created = h.create_command(
            &env,
            &h.path("profile.yaml"),
            &["--engine", engine, "--wait", "--timeout", "60s"],
            &[],
        );
        let mut created = created;
        ok(&created.output().unwrap());

        // A kustomization app into a namespace that does not exist yet.
        let simple = &h.json(&[
            "env",
            "deploy",
            &env,
            "simple",
            "--namespace",
            "feature",
            "--timeout",
            "60s",
        ])["deploy"];
        assert_eq!(simple["kind"], "kustomization", "{simple}");
        assert_eq!(simple["entry"], "app-simple-feature");
        assert_eq!(simple["namespaceCreated"], true);
        assert_eq!(entry(simple, "app-simple-feature")["readiness"], "ready");
        let namespace = h.api.object("Namespace", "feature").unwrap();
        assert_eq!(
            namespace["metadata"]["labels"]["hostk8s.created"], "true",
            "{namespace}"
        );
        let deployments: Vec<serde_json::Value> = h
            .api
            .objects_of("Deployment")
            .into_iter()
            .filter(|d| d["metadata"]["labels"]["hostk8s.app"] == "simple")
            .collect();
        assert!(!deployments.is_empty());
        assert!(
            deployments
                .iter()
                .all(|d| d["metadata"]["namespace"] == "feature"),
            "{deployments:?}"
        );

        // A Helm app: its chart is read from the env's Git, released under the app's name.
        let advanced = &h.json(&["env", "deploy", &env, "advanced", "--timeout", "60s"])["deploy"];
        assert_eq!(advanced["kind"], "helm", "{advanced}");
        assert_eq!(advanced["namespaceCreated"], false);
        assert_eq!(
            entry(advanced, "app-advanced-default")["readiness"],
            "ready"
        );
        let pushed = super::common::fake_gitea::git(
            &h.gitea.root.join("kindling/source.git"),
            &[
                "show",
                "main:.kindling/charts/app-advanced-default/Chart.yaml",
            ],
        );
        assert!(pushed.contains("name: advanced"), "{pushed}");
        if engine == "flux" {
            let release = h.api.object("HelmRelease", "app-advanced-default").unwrap();
            assert_eq!(release["spec"]["releaseName"], "advanced", "{release}");
            assert_eq!(release["spec"]["targetNamespace"], "default");
            assert_eq!(
                release["spec"]["chart"]["spec"]["sourceRef"]["kind"], "GitRepository",
                "{release}"
            );
        }

        // A second release of a Helm app would share the first one's record: refused.
        let twice = h.run(
            &[
                "env", "deploy", &env, "advanced", "-n", "other", "--output", "json",
            ],
            &[],
        );
        error_says(&twice, "deployed in namespace default already");

        // A namespace kindling made that something else moved into stays.
        h.json(&[
            "env",
            "deploy",
            &env,
            "simple",
            "-n",
            "scratch",
            "--no-wait",
        ]);
        h.api.update(|objects| {
            objects.push(super::common::kube_api::Stored {
                group_version: "v1".into(),
                plural: "configmaps".into(),
                namespace: Some("scratch".into()),
                name: "someone-elses".into(),
                object: serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "someone-elses", "namespace": "scratch"}}),
            })
        });
        let kept = &h.json(&["env", "remove", &env, "simple", "-n", "scratch"])["remove"];
        assert_eq!(kept["namespaceRemoved"], false, "{kept}");
        assert!(h.api.object("Namespace", "scratch").is_some());

        // An app that is not there names the ones that are.
        let missing = h.run(&["env", "deploy", &env, "nope", "--output", "json"], &[]);
        error_says(&missing, "advanced, basic, simple");

        let state = h.state(&env);
        assert_eq!(state["apps"].as_array().unwrap().len(), 2, "{state}");

        // Removing takes the app's objects and the namespace kindling made, not `default`.
        let removed =
            &h.json(&["env", "remove", &env, "simple", "--namespace", "feature"])["remove"];
        assert_eq!(removed["wasDeployed"], true, "{removed}");
        assert_eq!(removed["namespaceRemoved"], true, "{removed}");
        wait_until(
            "the app's namespace and objects gone",
            std::time::Duration::from_secs(30),
            || {
                // The fake's controllers act when the API is asked something.
                let _ = h.run(&["env", "status", &env], &[]);
                h.api.object("Namespace", "feature").is_none()
                    && !h
                        .api
                        .objects_of("Deployment")
                        .iter()
                        .any(|d| d["metadata"]["namespace"] == "feature")
            },
        );
        let removed = &h.json(&["env", "remove", &env, "advanced"])["remove"];
        assert_eq!(removed["namespaceRemoved"], false, "{removed}");
        assert!(h.api.object("Namespace", "default").is_some());
        let again = &h.json(&["env", "remove", &env, "advanced"])["remove"];
        assert_eq!(again["wasDeployed"], false, "{again}");
        let status = h.json(&["env", "status", &env]);
        let names: Vec<&str> = status["status"]["reconciliation"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with("app-advanced")),
            "{names:?}"
        );
        assert!(names.contains(&"app-sample"), "{names:?}");
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_deploy_and_remove_hostk8s_apps_on_flux() {
        if docker().await.is_none() {
            return;
        }
        deploy_and_remove("flux");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_deploy_and_remove_hostk8s_apps_on_argo() {
        if docker().await.is_none() {
            return;
        }
        deploy_and_remove("argo");
    }
}
