//! The env flow against engines that behave as upstream does (tests/common/fake_flux.rs,
//! fake_cert_manager.rs, and the Argo CD controller in env_harness.rs): dependency order,
//! health gating, failures with the engine's own words, and the cert-manager path of the
//! sample stamp down to a certificate chain openssl verifies.

mod common;

mod env {
    use serde_json::Value;

    use super::common::env_harness::*;
    use super::common::{docker, unique};

    /// A stamp of two path entries: `base` (a ConfigMap, and a health check on a Secret that
    /// nobody makes) and `app`, which depends on it.
    fn gated_stamp(h: &Harness) {
        let dir = h.path("source/stamps/gated");
        for (path, text) in [
            (
                "stamp.yaml",
                "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {name: gated}\nspec:\n  ignore: [\"/*\", \"!/stamps/gated/\"]\n  components:\n    - name: base\n      path: components/base\n      timeout: 30s\n      retryInterval: 10m\n      healthChecks:\n        - {kind: Secret, name: made-later, namespace: gated}\n  applications:\n    - name: app\n      path: applications/app\n      dependsOn: [base]\n",
            ),
            (
                "components/base/kustomization.yaml",
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [namespace.yaml, settings.yaml]\n",
            ),
            (
                "components/base/namespace.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: gated}\n",
            ),
            (
                "components/base/settings.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: gated}\ndata: {mode: dev}\n",
            ),
            (
                "applications/app/kustomization.yaml",
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [app.yaml]\n",
            ),
            (
                "applications/app/app.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: gated}\ndata: {ready: \"yes\"}\n",
            ),
        ] {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
    }

    /// `env create` of the gated stamp, waiting at most `timeout`.
    fn create_gated(h: &Harness, env: &str, timeout: &str) -> std::process::Output {
        let profile = h.path("profile.yaml");
        h.run(
            &[
                "env",
                "create",
                env,
                "--stamp",
                "gated",
                "--profile",
                profile.to_str().unwrap(),
                "--wait",
                "--timeout",
                timeout,
                "--output",
                "json",
            ],
            &[],
        )
    }

    fn entry<'a>(status: &'a Value, name: &str) -> &'a Value {
        status["status"]["reconciliation"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
    }

    /// Issue #16, defect 2: Flux ignores `healthChecks` under `wait: true`, so the stamp's
    /// named check used to gate nothing and `app` came up beside a `base` that was not
    /// healthy. Now the check holds `app` back, `env status` names `base` as what blocks,
    /// `--wait` exits 3 with Flux's own message, and once the Secret exists all is Ready.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_flux_named_health_checks_gate_the_dependents() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        gated_stamp(&h);
        let env = unique("gated");
        let created = create_gated(&h, &env, "4s");
        assert_eq!(created.status.code(), Some(3), "{created:?}");
        let error = error_says(&created, "base is Failed (HealthCheckFailed)");
        assert!(
            error["error"].as_str().unwrap().contains(
                "health check failed after 30s: timeout waiting for: [Secret/gated/made-later status: 'NotFound']"
            ),
            "{error:#}"
        );
        // The base's own objects are applied and its Kustomization is Ready: it is the named
        // check (in `base.health`) that holds `app` back.
        let base = h.api.object("Kustomization", "base").unwrap();
        assert_eq!(base["spec"]["wait"], true);
        assert!(base["spec"]["healthChecks"].is_null());
        assert_eq!(base["status"]["conditions"][0]["status"], "True");
        let app = h.api.object("Kustomization", "app").unwrap();
        assert_eq!(app["spec"]["dependsOn"][0]["name"], "base.health");
        assert_eq!(
            app["status"]["conditions"][0]["reason"],
            "DependencyNotReady"
        );
        let status = h.json(&["env", "status", &env]);
        assert_eq!(entry(&status, "base")["readiness"], "failed", "{status:#}");
        assert_eq!(entry(&status, "app")["readiness"], "progressing");
        assert_eq!(entry(&status, "app")["blockedBy"], "base");
        assert!(h.api.object("ConfigMap", "app").is_none());

        // The Secret appears (as a workload would make it): on the next try all is Ready.
        h.api.update(|objects| {
            objects.push(super::common::kube_api::Stored {
                group_version: "v1".into(),
                plural: "secrets".into(),
                namespace: Some("gated".into()),
                name: "made-later".into(),
                object: serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "made-later", "namespace": "gated"}}),
            })
        });
        // The create that stopped at its wait finishes when run again.
        ok(&create_gated(&h, &env, "30s"));
        let status = h.json(&["env", "status", &env, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        assert!(h.api.object("ConfigMap", "app").is_some());

        // An edit that breaks `app` (the fake reads this annotation as a workload that
        // stalled): `env sync` follows the new commit, and its wait ends with Flux's words.
        let app = h.path("source/stamps/gated/applications/app/app.yaml");
        std::fs::write(
            &app,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: gated\n  annotations: {{{}: Failed}}\ndata: {{ready: \"no\"}}\n",
                super::common::fake_cluster::HEALTH_ANNOTATION
            ),
        )
        .unwrap();
        let synced = h.run(
            &["env", "sync", &env, "--timeout", "5s", "--output", "json"],
            &[],
        );
        assert_eq!(synced.status.code(), Some(3), "{synced:?}");
        let error = error_says(&synced, "app is Failed (HealthCheckFailed)");
        assert!(
            error["error"].as_str().unwrap().contains(
                "failed early due to stalled resources: [ConfigMap/gated/app status: 'Failed']"
            ),
            "{error:#}"
        );
        delete_clean(&h, &env);
    }

    /// The sample stamp comes up in dependency order: no entry's Kustomization turns Ready
    /// before every Kustomization it depends on (through `<entry>.health` where the entry has
    /// named checks), and the ClusterIssuer is Ready only once cert-manager's webhook
    /// admitted it and the CA Secret was there. The api's certificate chains to the root
    /// through the env's intermediate, for a `.localhost` name the root's constraints permit.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_flux_sample_comes_up_in_dependency_order_with_a_verifiable_certificate() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("order");
        ok(&h.create(&env, &[]));
        let log = h.flux_log.lock().unwrap().clone();
        let ready_at = |name: &str| {
            log.iter()
                .position(|(object, reason)| {
                    object == &format!("Kustomization/{name}")
                        && reason == "ReconciliationSucceeded"
                })
                .unwrap_or_else(|| panic!("{name} never Ready: {log:#?}"))
        };
        let stamp = kindling::stamp::load(&h.path("source/stamps/sample"), None).unwrap();
        for e in &stamp.entries {
            for dep in &e.depends_on {
                assert!(
                    ready_at(dep) < ready_at(&e.name),
                    "{dep} → {}: {log:#?}",
                    e.name
                );
                assert!(
                    ready_at(&format!("{dep}.health")) < ready_at(&e.name),
                    "{dep}.health → {}: {log:#?}",
                    e.name
                );
            }
        }
        // Entries that wait on their dependencies said so first, in Flux's words.
        assert!(
            log.iter()
                .any(|(object, reason)| object == "Kustomization/api"
                    && reason == "DependencyNotReady"),
            "{log:#?}"
        );
        // cert-manager's webhook admits the ClusterIssuer only once the chart's Deployments
        // are up (the HelmRelease is Ready then), and the issuer is Ready with the CA Secret.
        let installed = log
            .iter()
            .position(|(o, r)| o == "HelmRelease/certs" && r == "InstallSucceeded")
            .unwrap();
        assert!(installed < ready_at("certs-issuer"), "{log:#?}");
        let issuer = h.api.object("ClusterIssuer", "kindling-ca").unwrap();
        assert_eq!(
            issuer["status"]["conditions"][0]["reason"],
            "KeyPairVerified"
        );

        // The certificate cert-manager issued for api.localhost verifies against the root
        // (the one `ca trust` installs) with the intermediate in between.
        let secret = h.api.object("Secret", "api-tls").unwrap();
        let decode = |key: &str| {
            use base64::Engine as _;
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(secret["data"][key].as_str().unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let chain = decode("tls.crt");
        let split = chain.find("-----END CERTIFICATE-----").unwrap() + 25;
        std::fs::write(dir.path().join("leaf.pem"), &chain[..split]).unwrap();
        std::fs::write(
            dir.path().join("intermediate.pem"),
            chain[split..].trim_start(),
        )
        .unwrap();
        std::fs::write(dir.path().join("root.pem"), decode("ca.crt")).unwrap();
        let verify = std::process::Command::new("openssl")
            .args([
                "verify",
                "-x509_strict",
                "-purpose",
                "sslserver",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "intermediate.pem",
                "leaf.pem",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
        // The root in ca.crt is this machine's root CA.
        let root = std::fs::read_to_string(h.path("data/ca/root.pem")).unwrap();
        assert_eq!(decode("ca.crt").trim(), root.trim());
        delete_clean(&h, &env);
    }

    /// Issue #16, defect 3: Argo CD gives Applications a health only through argocd-cm, and
    /// a sync wave of child Applications waits for the one before only when they have one.
    /// kindling applied the root before argocd-cm, so the root's first sync could start with
    /// no customisation and apply every wave at once. Now argocd-cm goes first: the fake Argo
    /// CD (which assesses a child's health only with the customisation, as upstream) saw it
    /// loaded when it started each wave, and waves came up in order.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_argo_health_customisation_is_in_place_before_the_root_syncs() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::with_engine("argo");
        let env = unique("waves");
        let profile = h.path("profile.yaml");
        ok(&h
            .create_command(
                &env,
                &profile,
                &["--engine", "argo", "--wait", "--timeout", "60s"],
                &[],
            )
            .output()
            .unwrap());
        // (The install manifest applies argocd-cm too, without the customisation.)
        let patches: Vec<(String, bool)> = h
            .api
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| {
                let customises = r
                    .body
                    .contains(super::common::fake_argo::APPLICATION_HEALTH_KEY);
                (r.path, customises)
            })
            .collect();
        let customised = patches
            .iter()
            .position(|(p, c)| p.ends_with("/configmaps/argocd-cm") && *c)
            .expect("argocd-cm with the Application health check was applied");
        let root = patches
            .iter()
            .position(|(p, _)| p.ends_with("/applications/kindling-sample"))
            .unwrap();
        assert!(customised < root, "{patches:#?}");
        let log = h.argo_log.lock().unwrap().clone();
        assert_eq!(log.len(), 6, "{log:?}");
        assert!(log.iter().all(|(_, _, customised)| *customised), "{log:?}");
        // Waves in order: every child of wave N was created after all of wave N-1.
        let waves: Vec<i64> = log.iter().map(|(_, w, _)| *w).collect();
        let mut sorted = waves.clone();
        sorted.sort();
        assert_eq!(waves, sorted, "{log:?}");
        let status = h.json(&["env", "status", &env]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");

        // Restart: the root's resources finalizer cascades through the children (each with its
        // own finalizer), the restart waits until all are gone, and the stamp comes back.
        let restarted = h.json(&["env", "restart", &env]);
        assert_eq!(restarted["restart"]["stamp"], "sample");
        let status = h.json(&["env", "status", &env, "--wait", "--timeout", "60s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        let secret = h.api.object("Secret", "database-credentials").unwrap();
        assert!(secret["metadata"]["deletionTimestamp"].is_null());
        // Twelve children created: six before the restart, six after, in wave order each time.
        assert_eq!(h.argo_log.lock().unwrap().len(), 12);
        delete_clean(&h, &env);
    }
}
