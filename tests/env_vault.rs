//! HostK8s' sample-app stack, unchanged, through the whole fake flow to Ready (issue #19, "Done
//! when"): its add-ons (Vault, ESO and the store `vault-backend` among them), its secret
//! contract written into Vault through the API server's service proxy and turned into Secrets by
//! the fake ESO, its storage contract's PersistentVolume bound to the claim the fake
//! CloudNativePG makes, and its `localhost:5000` images pulled through the nodes' mirror of the
//! env's registry.

mod common;

mod env {
    use base64::Engine as _;

    use super::common::env_harness::*;
    use super::common::{docker, unique};

    fn decoded(secret: &serde_json::Value, key: &str) -> String {
        let text = secret["data"][key].as_str().unwrap_or_default();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap(),
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_hostk8s_sample_app_runs_to_ready_with_vault_storage_and_its_registry() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::build("flux", true);
        let env = unique("vault");
        let profile = h.path("profile.yaml");
        let args = [
            "env",
            "create",
            &env,
            "--stamp",
            "sample-app",
            "--profile",
            profile.to_str().unwrap(),
            "--output",
            "json",
        ];
        // A run that fails once the values are in Vault; the rerun finishes the job and
        // finds them there.
        let failed = h.run(&args, &[("KINDLING_FAIL_AT", "vault")]);
        assert!(!failed.status.success());
        assert!(
            h.api
                .state
                .lock()
                .unwrap()
                .vault
                .kv
                .contains_key("postgres/pgadmin4-credentials")
        );
        let mut waiting = args.to_vec();
        waiting.extend(["--wait", "--timeout", "60s"]);
        let created = ok(&h.run(&waiting, &[]));
        assert!(
            report_steps(&created, "done").contains(&"vault"),
            "{created}"
        );
        // Every entry, the add-ons' and the stack's, Ready.
        let entries = created["env"]["status"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 10, "{created}");
        for e in entries {
            assert_eq!(e["readiness"], "ready", "{e}");
        }
        // The storage contract's volume, bound to the database's claim; the env's add-ons and
        // engine release in its status.
        let status = h.json(&["env", "status", &env]);
        assert_eq!(
            status["status"]["addons"],
            serde_json::json!(["ingress", "metrics-server", "gateway-api", "vault"])
        );
        assert_eq!(
            status["status"]["engineVersion"],
            kindling::pins::FLUX.version
        );
        // Where the add-ons are reached: the ingress on the env's ports, HostK8s' Gateway API
        // NodePort on its own.
        let ports = &h.state(&env)["ports"];
        let urls = status["status"]["addonUrls"].as_array().unwrap();
        let url_of = |what: &str| {
            urls.iter()
                .find(|u| u["what"] == what)
                .and_then(|u| u["url"].as_str())
                .map(str::to_string)
        };
        assert_eq!(
            url_of("ingress (HTTP)"),
            Some(format!("http://localhost:{}", ports["http"])),
            "{status}"
        );
        assert_eq!(
            url_of("Gateway API NodePort (HTTP)"),
            Some(format!("http://localhost:{}", ports["gateway"]["http"])),
            "{status}"
        );
        // What a Flux HelmRelease installed is listed under its entry, found by Helm's marks.
        let metrics = status["status"]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["entry"] == "addon-metrics-server")
            .unwrap_or_else(|| panic!("{status}"));
        assert_eq!(
            metrics["workloads"][0]["name"], "metrics-server",
            "{metrics}"
        );
        assert_eq!(metrics["workloads"][0]["namespace"], "kube-system");
        let storage = &status["status"]["storage"][0];
        assert_eq!(
            storage["volume"], "hostk8s-sample-app-voting-db-pv",
            "{status}"
        );
        assert_eq!(storage["phase"], "Bound", "{status}");
        assert_eq!(storage["claim"], "postgres/voting-db-1", "{status}");
        // Its images are HostK8s' `localhost:5000/…`; the node pulls that name through its
        // mirror of the env's registry (containerd's certs.d, as HostK8s' kind config does).
        let images: Vec<String> = h
            .api
            .objects_of("Deployment")
            .iter()
            .filter(|d| d["metadata"]["namespace"] == "sample-app")
            .flat_map(|d| {
                d["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|c| c["image"].as_str().map(str::to_string))
            .collect();
        assert!(!images.is_empty());
        assert!(
            images.iter().all(|i| i.starts_with("localhost:5000/")),
            "{images:?}"
        );
        let hosts = super::common::docker_cli(&[
            "exec",
            &format!("kindling-{env}-control-plane"),
            "cat",
            "/etc/containerd/certs.d/localhost:5000/hosts.toml",
        ]);
        assert!(
            String::from_utf8_lossy(&hosts.stdout)
                .contains(&format!("http://kindling-{env}-registry:5000")),
            "{hosts:?}"
        );
        let state = h.state(&env);
        assert_eq!(
            state["addons"],
            serde_json::json!(["ingress", "metrics-server", "gateway-api", "vault"])
        );
        // The root token: generated, kept in the env's state, given to the cluster as the
        // Secret the dev server and the store read; never in Git.
        let generated: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(h.path("data/envs").join(&env).join("secrets.json")).unwrap(),
        )
        .unwrap();
        let token = generated["hostk8s/vault-token/token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(token.len(), 32);
        let token_secret = h.api.object("Secret", "vault-token").unwrap();
        assert_eq!(decoded(&token_secret, "token"), token);
        // `git grep` exits 1 when nothing matches, 0 when something does.
        let grep = std::process::Command::new("git")
            .args(["grep", "-l", &token, "main"])
            .current_dir(h.gitea.root.join("kindling/source.git"))
            .output()
            .unwrap();
        assert_eq!(grep.status.code(), Some(1), "the token is in Git: {grep:?}");
        let pushed = super::common::fake_gitea::git(
            &h.gitea.root.join("kindling/source.git"),
            &["show", "main:.kindling/addons/vault-backend/install.yaml"],
        );
        assert!(pushed.contains("kind: ClusterSecretStore"), "{pushed}");
        // The contract went into Vault at NAMESPACE/NAME, as manage-secrets.py writes it, and
        // kindling made no Secret of it itself.
        let password = generated["postgres/pgadmin4-credentials/password"]
            .as_str()
            .unwrap()
            .to_string();
        let vault = h.api.state.lock().unwrap().vault.clone();
        let (stored, _) = &vault.kv["postgres/pgadmin4-credentials"];
        assert_eq!(stored["password"], password.as_str());
        assert_eq!(stored["email"], "admin@hostk8s.com");
        // The stack's ExternalSecret, applied by the engine, gets its Secret from Vault.
        wait_until(
            "the ESO Secret pgadmin4-credentials",
            std::time::Duration::from_secs(60),
            || {
                let _ = h.run(&["env", "status", &env], &[]);
                h.api
                    .object("Secret", "pgadmin4-credentials")
                    .is_some_and(|s| {
                        s["metadata"]["labels"]["reconcile.external-secrets.io/managed"] == "true"
                    })
            },
        );
        let secret = h.api.object("Secret", "pgadmin4-credentials").unwrap();
        assert_eq!(decoded(&secret, "password"), password);
        assert!(secret["metadata"]["labels"]["app.kubernetes.io/managed-by"].is_null());
        let store = h.api.object("ClusterSecretStore", "vault-backend").unwrap();
        assert_eq!(
            store["status"]["conditions"][0]["reason"], "Valid",
            "{store}"
        );
        // A rerun finds the values in Vault and leaves them.
        let rerun = ok(&h.run(&args, &[]));
        assert!(report_steps(&rerun, "done").contains(&"vault"), "{rerun}");
        let after = h.api.state.lock().unwrap().vault.clone();
        assert_eq!(
            after.kv["postgres/pgadmin4-credentials"].1, 1,
            "written once"
        );
        delete_clean(&h, &env);
    }
}
