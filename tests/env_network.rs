//! Envs on a corporate network (issue #20, part 3): a TLS-intercepting proxy re-signs every
//! HTTPS connection with the network's root CA. `--extra-ca` (or the profile's
//! `spec.extraCA`) hands that root to the nodes, Gitea and the engines' chart sources. The
//! nodes and Gitea are real containers here (the fake kind and k3d start them as upstream
//! would, with the config's mounts); the engines are the fakes, fetching charts through the
//! harness's `Internet`, which intercepts like such a proxy.

mod common;

mod env {
    use super::common::docker_cli;
    use super::common::env_harness::*;
    use super::common::{docker, unique};
    use serde_json::Value;

    /// A network's root CA, as an IT department hands it out (PEM).
    fn corporate_root(dir: &std::path::Path) -> (std::path::PathBuf, String) {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Corp TLS Inspection Root");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let path = dir.join("corp-root.pem");
        std::fs::write(&path, &pem).unwrap();
        (path, pem)
    }

    fn file_in(container: &str, path: &str) -> String {
        let out = docker_cli(&["exec", container, "cat", path]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn body(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    fn decoded(secret: &Value, key: &str) -> String {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][key].as_str().unwrap_or_default())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }

    /// Behind an intercepting proxy, Flux cannot fetch the sample stamp's charts: the create
    /// fails with the handshake error on the chart. With `--extra-ca` the same create is
    /// Ready: the node has the root at the path containerd reads, the HelmRepositories name the
    /// Secret that holds it. A rerun without the flag is refused, as the node keeps its mount.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_extra_ca_lets_flux_fetch_charts_through_an_intercepting_proxy() {
        if docker().await.is_none() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (root_file, root_pem) = corporate_root(dir.path());

        // Without the root: the chart fetch fails as Go's TLS does.
        let h = Harness::new();
        h.internet.intercept_with(&root_pem);
        let env = unique("noca");
        let out = h
            .create_command(
                &env,
                &h.path("profile.yaml"),
                &["--wait", "--timeout", "20s"],
                &[],
            )
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("certificate signed by unknown authority"),
            "{text}"
        );
        delete_clean(&h, &env);

        // With it: Ready, and every part that fetches has the root.
        let h = Harness::build_with("flux", false, true);
        h.internet.intercept_with(&root_pem);
        let env = unique("ca");
        let gitea = format!("kindling-{env}-gitea");
        *h.docker_gitea.as_ref().unwrap().lock().unwrap() = gitea.clone();
        let root_arg = root_file.to_str().unwrap();
        ok(&h
            .create_command(
                &env,
                &h.path("profile.yaml"),
                &["--wait", "--timeout", "60s", "--extra-ca", root_arg],
                &[],
            )
            .output()
            .unwrap());
        let node = format!("kindling-{env}-control-plane");
        for container in [&node, &gitea] {
            let found = file_in(container, kindling::pki::extra_ca::CONTAINER_PATH);
            assert_eq!(body(&found), body(&root_pem), "{container}");
        }
        let mounts = docker_cli(&["inspect", "-f", "{{json .Mounts}}", &node]);
        let mounts: Value = serde_json::from_slice(&mounts.stdout).unwrap();
        assert!(
            mounts.as_array().unwrap().iter().any(|m| m["Destination"]
                == kindling::pki::extra_ca::CONTAINER_PATH
                && m["RW"] == false),
            "{mounts}"
        );
        let secrets = h.api.objects_of("Secret");
        let secret = secrets
            .iter()
            .find(|s| s["metadata"]["name"] == "kindling-extra-ca")
            .expect("the Secret the HelmRepositories name");
        assert_eq!(secret["metadata"]["namespace"], "flux-system");
        assert_eq!(body(&decoded(secret, "ca.crt")), body(&root_pem));
        let repositories = h.api.objects_of("HelmRepository");
        assert!(!repositories.is_empty());
        for r in &repositories {
            assert_eq!(
                r["spec"]["certSecretRef"]["name"], "kindling-extra-ca",
                "{r}"
            );
        }
        let state = h.state(&env);
        assert_eq!(
            state["extraCa"].as_array().map(Vec::len),
            Some(1),
            "{state}"
        );
        let copy = h.path("data/envs").join(&env).join("extra-ca.pem");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o644
        );

        // A rerun must ask for the same roots: the node mounted these when it was made.
        let again = h
            .create_command(&env, &h.path("profile.yaml"), &[], &[])
            .output()
            .unwrap();
        error_says(&again, "--extra-ca");
        delete_clean(&h, &env);
    }

    /// Argo CD on k3d with the root from the profile: the k3d server node mounts it,
    /// argocd-tls-certs-cm holds it for each chart host, and the stamp is Ready through the
    /// intercepting proxy.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_extra_ca_from_the_profile_reaches_k3d_and_argo_cd() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::with_engine("argo");
        let (_, root_pem) = corporate_root(&h.path(""));
        h.internet.intercept_with(&root_pem);
        let env = unique("argoca");
        // Relative to the profile, as kind's extraMounts are to its config.
        let profile = h.path("k3d-profile.yaml");
        std::fs::write(
            &profile,
            "apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {name: corp}\nspec:\n  provider: k3d\n  kubernetesVersion: \"1.37\"\n  ingress: {http: 18080, https: 18443}\n  registry: false\n  imageCaches: false\n  extraCA: [corp-root.pem]\n",
        )
        .unwrap();
        let out = h
            .create_command(
                &env,
                &profile,
                &["--engine", "argo", "--wait", "--timeout", "60s"],
                &[],
            )
            .output()
            .unwrap();
        ok(&out);
        let server = format!("k3d-kindling-{env}-server-0");
        let found = file_in(&server, kindling::pki::extra_ca::CONTAINER_PATH);
        assert_eq!(body(&found), body(&root_pem));
        let config_maps = h.api.objects_of("ConfigMap");
        let certs = config_maps
            .iter()
            .find(|c| c["metadata"]["name"] == "argocd-tls-certs-cm")
            .expect("argocd-tls-certs-cm");
        for host in ["charts.jetstack.io", "traefik.github.io"] {
            assert_eq!(
                body(certs["data"][host].as_str().unwrap_or_default()),
                body(&root_pem),
                "{host}: {certs}"
            );
        }
        delete_clean(&h, &env);
    }

    /// Behind a proxy, kindling's own calls to what runs on this machine stay direct: its
    /// Gitea API calls (ureq reads HTTP_PROXY) and its git push (curl does too). The proxy
    /// here is a closed port: anything sent through it fails the create.
    #[tokio::test(flavor = "multi_thread")]
    async fn env_create_behind_a_proxy_keeps_its_own_calls_to_this_machine_direct() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let proxy = format!("http://127.0.0.1:{closed}");
        let env = unique("proxied");
        let out = h.create(
            &env,
            &[
                ("HTTP_PROXY", proxy.as_str()),
                ("HTTPS_PROXY", proxy.as_str()),
                ("NO_PROXY", "corp.example"),
            ],
        );
        let report = ok(&out);
        assert_eq!(report["ok"], true);
        delete_clean(&h, &env);
    }

    /// Every outside address refused to kindling itself: a proxy that is not there, for every
    /// scheme (ureq, git and the kube client reach loopback directly).
    const OFFLINE: [(&str, &str); 3] = [
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("ALL_PROXY", "http://127.0.0.1:9"),
    ];

    /// Offline (issue #20, part 2): a stamp's chart saved into a bundle while online is what
    /// the engine installs once the network is gone. Without the bundle the same create fails
    /// on the chart fetch, as Go reports an unreachable network; with it loaded, the create is
    /// Ready, the chart's own template is applied, the chart's home is never asked, and the
    /// engine reads the chart from the env's Git (Flux: a HelmRelease whose source is the
    /// GitRepository and no HelmRepository; Argo CD: a Git source whose path holds the chart).
    #[tokio::test(flavor = "multi_thread")]
    async fn env_create_after_a_bundle_load_needs_no_network() {
        if docker().await.is_none() {
            return;
        }
        for engine in ["flux", "argo"] {
            let h = Harness::with_engine(engine);
            let packaged = super::common::packaged_chart("demo");
            let (base, hits) = super::common::http::serve_files(vec![
                (
                    "/charts/index.yaml".into(),
                    super::common::chart_index("demo", &packaged).into_bytes(),
                ),
                ("/charts/demo-0.1.0.tgz".into(), packaged),
            ]);
            super::common::chart_stamp(
                &h.path("source"),
                "offline",
                &format!("{base}/charts"),
                "demo",
            );
            let file = h.path("offline.tar");
            let file = file.to_str().unwrap();
            ok(&h.run(
                &[
                    "bundle",
                    "save",
                    file,
                    "--no-pins",
                    "--stamp",
                    "offline",
                    "--output",
                    "json",
                ],
                &[],
            ));

            h.internet.cut();
            let profile = h.path("profile.yaml");
            let create = |env: &str, timeout: &str| {
                h.command(
                    &[
                        "env",
                        "create",
                        env,
                        "--stamp",
                        "offline",
                        "--profile",
                        profile.to_str().unwrap(),
                        "--engine",
                        engine,
                        "--wait",
                        "--timeout",
                        timeout,
                        "--output",
                        "json",
                    ],
                    &OFFLINE,
                )
                .output()
                .unwrap()
            };
            let env = unique("nobundle");
            let out = create(&env, "10s");
            assert_eq!(out.status.code(), Some(3), "{engine}: {out:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("connect: network is unreachable"),
                "{engine}: {text}"
            );
            delete_clean(&h, &env);

            ok(&h.run(&["bundle", "load", file, "--output", "json"], &OFFLINE));
            let asked = hits.load(std::sync::atomic::Ordering::SeqCst);
            let env = unique("offline");
            ok(&create(&env, "60s"));
            assert_eq!(
                hits.load(std::sync::atomic::Ordering::SeqCst),
                asked,
                "{engine}: the chart's home was asked"
            );
            let from_chart = h
                .api
                .objects_of("ConfigMap")
                .into_iter()
                .find(|c| c["metadata"]["name"] == "demo-from-bundle");
            assert_eq!(
                from_chart
                    .as_ref()
                    .map(|c| c["metadata"]["namespace"].clone()),
                Some(Value::from("demo")),
                "{engine}"
            );
            if engine == "flux" {
                assert!(h.api.objects_of("HelmRepository").is_empty());
                let release = &h.api.objects_of("HelmRelease")[0];
                let chart = &release["spec"]["chart"]["spec"];
                assert_eq!(chart["sourceRef"]["kind"], "GitRepository", "{release}");
                assert_eq!(chart["chart"], "./.kindling/charts/demo", "{release}");
            } else {
                let app = h
                    .api
                    .objects_of("Application")
                    .into_iter()
                    .find(|a| a["metadata"]["name"] == "demo")
                    .expect("the demo Application");
                let source = &app["spec"]["source"];
                assert_eq!(source["path"], ".kindling/charts/demo", "{app}");
                assert!(source["chart"].is_null(), "{app}");
            }
            // doctor: the bundle holds the env's chart; once the stamp asks for another
            // version, it names that one as lacking.
            let bundle_findings = || {
                let report = h.run(&["doctor", "--output", "json"], &[]);
                let report: Value = serde_json::from_slice(&report.stdout).unwrap();
                report["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["check"] == "bundle")
                    .map(|f| f["detail"].as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let findings = bundle_findings();
            assert!(findings.contains("charts: demo 0.1.0"), "{findings}");
            assert!(!findings.contains("chart demo"), "{findings}");
            let stamp_file = h.path("source/stamps/offline/stamp.yaml");
            let text = std::fs::read_to_string(&stamp_file).unwrap();
            std::fs::write(
                &stamp_file,
                text.replace("version: 0.1.0", "version: 0.2.0"),
            )
            .unwrap();
            let findings = bundle_findings();
            assert!(
                findings.contains(&format!("env {env}: chart demo 0.2.0")),
                "{findings}"
            );
            delete_clean(&h, &env);
        }
    }
}
