//! Rendering the sample stamp and the HostK8s fixtures for Flux and Argo CD, checked against
//! the real upstream CRD schemas and for the behaviour each engine needs.

mod common;

mod stamp {
    use serde_json::{Value, json};

    use super::common::{SchemaSet, hostk8s_stack, repo_dir};
    use kindling::stamp::render::{Engine, RenderOptions, Rendered, render};
    use kindling::stamp::{self, Stamp};

    fn sample() -> Stamp {
        stamp::load(&repo_dir().join("stamps/sample"), None).unwrap()
    }

    fn options() -> RenderOptions {
        RenderOptions {
            repo_url: "http://kindling-ci-gitea:3000/kindling/source.git".into(),
            branch: "trunk".into(),
            credentials_secret: Some("git-creds".into()),
            bundle_dir: ".kindling".into(),
            chart_ca_secret: None,
            local_charts: Default::default(),
            extra_files: Vec::new(),
        }
    }

    /// A chart the loaded bundle holds is pushed under `.kindling/charts/ENTRY/` and read from
    /// Git: Flux's HelmRelease takes the GitRepository as its source and the chart's path
    /// (helm-controller v1.6.3 api/v2/reference_types.go: sourceRef kinds HelmRepository,
    /// GitRepository, Bucket), with no HelmRepository; Argo CD's Application a Git path with
    /// the entry's Helm settings. The GitRepository re-includes `.kindling/` after
    /// source-controller's default exclusions even when the stamp sets no ignore of its own.
    /// Both render against the upstream schemas; the other chart stays remote.
    #[test]
    fn stamp_render_local_charts_are_read_from_git() {
        let mut stamp = sample();
        stamp.ignore.clear();
        let mut opts = options();
        let files = vec![
            (
                "Chart.yaml".to_string(),
                b"apiVersion: v2\nname: cert-manager\nversion: v1.21.1\n".to_vec(),
            ),
            ("templates/a.png".to_string(), b"png".to_vec()),
        ];
        opts.local_charts.insert("certs".into(), files);
        let schemas = SchemaSet::load();

        let flux = render(&stamp, Engine::Flux, &opts).unwrap();
        let paths: Vec<&str> = flux.raw_files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".kindling/charts/certs/Chart.yaml",
                ".kindling/charts/certs/templates/a.png"
            ]
        );
        assert!(
            flux.bundle_files()
                .iter()
                .any(|(p, _)| p == ".kindling/charts/certs/Chart.yaml")
        );
        let of = |kind: &str, name: &str| {
            flux.documents()
                .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
                .cloned()
        };
        assert!(of("HelmRepository", "certs").is_none());
        assert!(of("HelmRepository", "ingress").is_some());
        let release = of("HelmRelease", "certs").unwrap();
        let chart = &release["spec"]["chart"]["spec"];
        assert_eq!(chart["chart"], "./.kindling/charts/certs");
        assert_eq!(
            chart["sourceRef"],
            json!({"kind": "GitRepository", "name": "kindling", "namespace": "flux-system"})
        );
        schemas.validate(&release).unwrap();
        let git = flux
            .documents()
            .find(|d| d["kind"] == "GitRepository")
            .unwrap();
        assert_eq!(git["spec"]["ignore"], "!/.kindling/\n", "{git}");
        assert!(
            flux.notes
                .iter()
                .any(|n| n.contains("certs: chart cert-manager v1.21.1 from the loaded bundle"))
        );
        // Without local charts (and no stamp patterns), source-controller's defaults stand.
        let remote = render(&stamp, Engine::Flux, &options()).unwrap();
        let git = remote
            .documents()
            .find(|d| d["kind"] == "GitRepository")
            .unwrap();
        assert!(git["spec"]["ignore"].is_null(), "{git}");

        let argo = render(&stamp, Engine::Argo, &opts).unwrap();
        let app = argo
            .documents()
            .find(|d| d["kind"] == "Application" && d["metadata"]["name"] == "certs")
            .cloned()
            .unwrap();
        let source = &app["spec"]["source"];
        assert_eq!(source["path"], ".kindling/charts/certs", "{app}");
        assert_eq!(source["repoURL"], options().repo_url);
        assert!(source["chart"].is_null());
        assert_eq!(source["helm"]["releaseName"], "cert-manager");
        schemas.validate(&app).unwrap();
    }

    /// With the network's root CAs, every HTTPS HelmRepository names their Secret; without,
    /// none does (source-controller would fail on a Secret that is not there).
    #[test]
    fn stamp_render_flux_https_chart_sources_name_the_extra_ca_secret() {
        let stamp = sample();
        let mut opts = options();
        let plain = render(&stamp, Engine::Flux, &opts).unwrap();
        opts.chart_ca_secret = Some("kindling-extra-ca".into());
        let with_ca = render(&stamp, Engine::Flux, &opts).unwrap();
        let repositories = |r: &Rendered| -> Vec<Value> {
            r.documents()
                .filter(|d| d["kind"] == "HelmRepository")
                .cloned()
                .collect()
        };
        assert!(!repositories(&plain).is_empty());
        for repository in repositories(&plain) {
            assert!(
                repository["spec"]["certSecretRef"].is_null(),
                "{repository}"
            );
        }
        for repository in repositories(&with_ca) {
            assert!(
                repository["spec"]["url"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://")
            );
            assert_eq!(
                repository["spec"]["certSecretRef"],
                serde_json::json!({"name": "kindling-extra-ca"}),
                "{repository}"
            );
        }
    }

    fn find<'a>(rendered: &'a Rendered, kind: &str, name: &str) -> &'a Value {
        rendered
            .documents()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} '{name}' rendered"))
    }

    fn all_stamps() -> Vec<Stamp> {
        vec![
            sample(),
            stamp::load(&hostk8s_stack("sample"), None).unwrap(),
            stamp::load(&hostk8s_stack("sample-app"), None).unwrap(),
        ]
    }

    #[test]
    fn stamp_render_every_object_matches_the_upstream_crd_schemas() {
        let schemas = SchemaSet::load();
        let mut checked = 0;
        let mut failures = Vec::new();
        for s in all_stamps() {
            for engine in [Engine::Flux, Engine::Argo] {
                let rendered = render(&s, engine, &options()).unwrap();
                for file in &rendered.files {
                    for doc in &file.documents {
                        // Generated kustomize overlays are checked by kustomize itself.
                        if doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1" {
                            continue;
                        }
                        checked += 1;
                        if let Err(e) = schemas.validate(doc) {
                            failures.push(format!(
                                "{} {} {}: {e}",
                                s.name,
                                engine.name(),
                                file.path
                            ));
                        }
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(checked > 40, "only {checked} objects were checked");
    }

    #[test]
    fn stamp_schema_check_rejects_a_misspelt_field() {
        // The check above must be able to fail: a field Flux does not know is an error.
        let schemas = SchemaSet::load();
        let rendered = render(&sample(), Engine::Flux, &options()).unwrap();
        let mut k = find(&rendered, "Kustomization", "api").clone();
        assert!(schemas.validate(&k).is_ok());
        k["spec"]["dependOn"] = json!([{"name": "x"}]);
        let err = schemas.validate(&k).unwrap_err();
        assert!(err.contains("dependOn"), "{err}");
        let mut unknown = k.clone();
        unknown["kind"] = json!("Kustomisation");
        assert!(
            schemas
                .validate(&unknown)
                .unwrap_err()
                .contains("no schema")
        );
    }

    #[test]
    fn stamp_render_flux_points_everything_at_one_git_repository() {
        let rendered = render(&sample(), Engine::Flux, &options()).unwrap();
        let repo = find(&rendered, "GitRepository", "kindling");
        assert_eq!(
            repo["spec"]["url"],
            "http://kindling-ci-gitea:3000/kindling/source.git"
        );
        assert_eq!(repo["spec"]["ref"]["branch"], "trunk");
        assert_eq!(repo["spec"]["secretRef"]["name"], "git-creds");
        assert_eq!(repo["spec"]["interval"], "1m");
        assert_eq!(
            repo["spec"]["ignore"],
            "/*\n!/stamps/sample/\n!/.kindling/\n"
        );
        let root = find(&rendered, "Kustomization", "kindling-sample");
        assert_eq!(root["spec"]["path"], "./.kindling/flux/stamp");
        for doc in rendered
            .documents()
            .filter(|d| d["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1")
        {
            assert_eq!(
                doc["spec"]["sourceRef"],
                json!({"kind": "GitRepository", "name": "kindling"})
            );
            assert_eq!(doc["metadata"]["namespace"], "flux-system");
        }
    }

    /// An env that keeps its Flux objects in a namespace of its own (a shared cluster): every
    /// Flux object is rendered there, and every reference between them names it or none
    /// (which Flux resolves to the referring object's own: kustomize-controller v1.9.4
    /// `checkDependencies`/`getSource`, helm-controller v1.6.3 `HelmChartTemplate.GetNamespace`).
    #[test]
    fn stamp_render_flux_objects_follow_the_envs_own_namespace() {
        let mut own = sample();
        own.own_objects_namespace = Some("kindling-dev".into());
        assert_eq!(own.flux_namespace(), "kindling-dev");
        let rendered = render(&own, Engine::Flux, &options()).unwrap();
        let mut flux_objects = 0;
        for doc in rendered.documents() {
            if doc["apiVersion"]
                .as_str()
                .is_some_and(|v| v.contains("toolkit.fluxcd.io"))
            {
                flux_objects += 1;
                assert_eq!(doc["metadata"]["namespace"], "kindling-dev", "{doc}");
            }
        }
        assert!(flux_objects > 10, "{flux_objects}");
        let yaml = rendered.to_yaml_stream();
        assert!(!yaml.contains("flux-system"), "{yaml}");
        let release = find(&rendered, "HelmRelease", "ingress");
        assert_eq!(
            release["spec"]["chart"]["spec"]["sourceRef"]["namespace"],
            "kindling-dev"
        );
        // A stamp on its own keeps Flux's namespace, byte for byte.
        let plain = render(&sample(), Engine::Flux, &options()).unwrap();
        assert_eq!(
            plain.to_yaml_stream(),
            yaml.replace("kindling-dev", "flux-system")
        );
        // A Flux cluster directory's own sources in Flux's namespace (as `flux create source
        // --export` writes them) follow, so the entries that name them without a namespace
        // find them; one the directory put elsewhere stays there.
        let source = |namespace: &str| {
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                "metadata": {"name": format!("from-{namespace}"), "namespace": namespace},
                "spec": {"interval": "10m", "url": "oci://ghcr.io/team/manifests"}})
        };
        own.flux_sources = vec![source("flux-system"), source("apps")];
        let rendered = render(&own, Engine::Flux, &options()).unwrap();
        let namespace_of =
            |name: &str| find(&rendered, "OCIRepository", name)["metadata"]["namespace"].clone();
        assert_eq!(namespace_of("from-flux-system"), "kindling-dev");
        assert_eq!(namespace_of("from-apps"), "apps");
    }

    #[test]
    fn stamp_render_flux_kustomizations_carry_dependencies_health_checks_and_timeouts() {
        let rendered = render(&sample(), Engine::Flux, &options()).unwrap();
        let api = find(&rendered, "Kustomization", "api");
        assert_eq!(api["spec"]["path"], "./stamps/sample/applications/api");
        // Each dependency is waited for through its health checks, which gate after its own
        // objects are healthy (Flux ignores healthChecks under wait: true, so they live in
        // `<entry>.health`).
        assert_eq!(
            api["spec"]["dependsOn"],
            json!([{"name": "certs-issuer.health"}, {"name": "ingress.health"}, {"name": "database.health"}])
        );
        assert_eq!(api["spec"]["wait"], true);
        assert_eq!(api["spec"]["prune"], true);
        assert!(api["spec"]["healthChecks"].is_null());
        assert_eq!(api["spec"]["deletionPolicy"], "WaitForTermination");
        let checks = find(&rendered, "Kustomization", "api.health");
        assert_eq!(checks["spec"]["wait"], false);
        assert_eq!(checks["spec"]["dependsOn"], json!([{"name": "api"}]));
        assert_eq!(checks["spec"]["path"], "./.kindling/flux/empty");
        assert_eq!(
            checks["spec"]["healthChecks"][0],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "namespace": "sample"})
        );
        let database = find(&rendered, "Kustomization", "database");
        assert_eq!(database["spec"]["timeout"], "10m");
        assert_eq!(
            find(&rendered, "Kustomization", "database.health")["spec"]["timeout"],
            "10m"
        );
        let issuer = find(&rendered, "Kustomization", "certs-issuer.health");
        assert_eq!(issuer["spec"]["healthChecks"][0]["apiVersion"], "v1");
        // The empty directory they point at.
        let empty = rendered
            .files
            .iter()
            .find(|f| f.path == "flux/empty/kustomization.yaml")
            .unwrap();
        assert_eq!(empty.documents[0]["resources"], json!([]));
    }

    /// A named check without a namespace looks in the entry's namespace (Flux would look in
    /// none and never find a namespaced object); an entry that does not prune keeps Flux's
    /// default deletion policy, which then deletes nothing.
    #[test]
    fn stamp_render_flux_health_checks_default_to_the_entry_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let stamp_dir = dir.path().join("stamps/small");
        std::fs::create_dir_all(stamp_dir.join("web")).unwrap();
        std::fs::write(
            stamp_dir.join("web/deployment.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: shop}\n",
        )
        .unwrap();
        std::fs::write(
            stamp_dir.join("stamp.yaml"),
            "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {name: small}\nspec:\n  applications:\n    - name: web\n      path: web\n      namespace: shop\n      healthChecks:\n        - {kind: Deployment, name: web}\n        - {kind: ClusterIssuer, name: ca, apiVersion: cert-manager.io/v1}\n",
        )
        .unwrap();
        let small = stamp::load(&stamp_dir, None).unwrap();
        let rendered = render(&small, Engine::Flux, &options()).unwrap();
        let checks = &find(&rendered, "Kustomization", "web.health")["spec"]["healthChecks"];
        assert_eq!(checks[0]["namespace"], "shop");
        assert!(checks[1]["namespace"].is_null(), "cluster-scoped: {checks}");
        assert_eq!(
            find(&rendered, "Kustomization", "web")["spec"]["deletionPolicy"],
            "WaitForTermination"
        );
        // A HostK8s entry that does not prune: no deletion policy, so Flux deletes nothing.
        let stack = stamp::load(&hostk8s_stack("sample"), None).unwrap();
        let rendered = render(&stack, Engine::Flux, &options()).unwrap();
        for entry in stack.entries.iter().filter(|e| !e.prune) {
            let k = find(&rendered, "Kustomization", &entry.name);
            assert!(k["spec"]["deletionPolicy"].is_null(), "{k}");
        }
    }

    #[test]
    fn stamp_render_flux_helm_entries_get_a_repository_a_release_and_a_waiting_kustomization() {
        let rendered = render(&sample(), Engine::Flux, &options()).unwrap();
        let repo = find(&rendered, "HelmRepository", "certs");
        assert_eq!(repo["spec"]["url"], "https://charts.jetstack.io");
        let release = find(&rendered, "HelmRelease", "certs");
        assert_eq!(release["spec"]["chart"]["spec"]["chart"], "cert-manager");
        assert_eq!(release["spec"]["chart"]["spec"]["version"], "v1.21.1");
        assert_eq!(release["spec"]["releaseName"], "cert-manager");
        assert_eq!(release["spec"]["targetNamespace"], "cert-manager");
        assert_eq!(
            release["spec"]["values"],
            json!({"crds": {"enabled": true}})
        );
        let wrapper = find(&rendered, "Kustomization", "certs");
        assert_eq!(wrapper["spec"]["path"], "./.kindling/flux/helm/certs");
        assert_eq!(wrapper["spec"]["wait"], true);
        let file = rendered
            .files
            .iter()
            .find(|f| f.path == "flux/helm/certs/release.yaml")
            .unwrap();
        assert_eq!(file.documents.len(), 2);
    }

    #[test]
    fn stamp_render_flux_helm_release_depends_only_on_helm_releases() {
        let dir = tempfile::tempdir().unwrap();
        super::common::write(
            &dir.path().join("stamps/h/stamp.yaml"),
            "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {name: h}\nspec:\n  components:\n    - {name: plain, path: plain, namespace: team}\n    - {name: a, helm: {repo: 'oci://ghcr.io/x', chart: a, version: 1.0.0}}\n    - {name: b, dependsOn: [a, plain], helm: {repo: 'https://x', chart: b, version: 1.0.0}}\n",
        );
        std::fs::create_dir_all(dir.path().join("stamps/h/plain")).unwrap();
        let s = stamp::load(&dir.path().join("stamps/h"), None).unwrap();
        let rendered = render(&s, Engine::Flux, &options()).unwrap();
        let b = find(&rendered, "HelmRelease", "b");
        assert_eq!(
            b["spec"]["dependsOn"],
            json!([{"name": "a", "namespace": "flux-system"}])
        );
        // A path entry's namespace is its Kustomization's targetNamespace.
        assert_eq!(
            find(&rendered, "Kustomization", "plain")["spec"]["targetNamespace"],
            "team"
        );
        let bk = find(&rendered, "Kustomization", "b");
        assert_eq!(
            bk["spec"]["dependsOn"],
            json!([{"name": "a"}, {"name": "plain"}])
        );
        assert_eq!(
            find(&rendered, "HelmRepository", "a")["spec"]["type"],
            "oci"
        );
        let argo = render(&s, Engine::Argo, &options()).unwrap();
        assert_eq!(
            find(&argo, "Application", "a")["spec"]["source"]["repoURL"],
            "ghcr.io/x"
        );
    }

    #[test]
    fn stamp_render_argo_waves_follow_the_dependency_depth() {
        let rendered = render(&sample(), Engine::Argo, &options()).unwrap();
        let wave = |name: &str| {
            find(&rendered, "Application", name)["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(wave("certs"), "0");
        assert_eq!(wave("ingress"), "0");
        assert_eq!(wave("database"), "0");
        assert_eq!(wave("certs-issuer"), "1");
        assert_eq!(wave("api"), "2");
        assert_eq!(wave("website"), "2");
    }

    #[test]
    fn stamp_render_argo_root_app_of_apps_and_health_customisation() {
        let rendered = render(&sample(), Engine::Argo, &options()).unwrap();
        let root = find(&rendered, "Application", "kindling-sample");
        assert_eq!(root["spec"]["source"]["path"], ".kindling/argo/apps");
        assert_eq!(root["spec"]["source"]["targetRevision"], "trunk");
        assert_eq!(root["spec"]["destination"]["namespace"], "argocd");
        let cm = find(&rendered, "ConfigMap", "argocd-cm");
        let lua = cm["data"]["resource.customizations.health.argoproj.io_Application"]
            .as_str()
            .unwrap();
        assert!(lua.contains("obj.status.health.status"));
        // Every child sits in the directory the root application reads.
        let children: Vec<&str> = rendered
            .files
            .iter()
            .filter(|f| f.path.starts_with("argo/apps/"))
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(children.len(), 6, "{children:?}");
    }

    #[test]
    fn stamp_render_argo_children_sync_automatically_and_create_namespaces() {
        let rendered = render(&sample(), Engine::Argo, &options()).unwrap();
        let api = find(&rendered, "Application", "api");
        assert_eq!(
            api["spec"]["syncPolicy"]["automated"],
            json!({"prune": true, "selfHeal": true})
        );
        let options = api["spec"]["syncPolicy"]["syncOptions"].as_array().unwrap();
        assert!(options.contains(&json!("CreateNamespace=true")));
        assert_eq!(
            api["spec"]["source"]["path"],
            "stamps/sample/applications/api"
        );
        let certs = find(&rendered, "Application", "certs");
        assert_eq!(certs["spec"]["source"]["chart"], "cert-manager");
        assert_eq!(certs["spec"]["source"]["targetRevision"], "v1.21.1");
        assert_eq!(
            certs["spec"]["source"]["helm"]["valuesObject"],
            json!({"crds": {"enabled": true}})
        );
        assert_eq!(certs["spec"]["destination"]["namespace"], "cert-manager");
    }

    #[test]
    fn stamp_render_hostk8s_flux_keeps_the_stack_semantics() {
        let s = stamp::load(&hostk8s_stack("sample-app"), None).unwrap();
        let rendered = render(&s, Engine::Flux, &options()).unwrap();
        let db = find(&rendered, "Kustomization", "sample-app-db");
        assert_eq!(db["spec"]["path"], "./software/stacks/sample-app/db");
        assert_eq!(db["spec"]["timeout"], "10m");
        assert_eq!(db["spec"]["interval"], "10m");
        assert_eq!(db["spec"]["retryInterval"], "1m");
        assert_eq!(
            db["spec"]["dependsOn"],
            json!([{"name": "component-redis"}, {"name": "component-postgres"}])
        );
        assert_eq!(
            db["spec"]["healthChecks"],
            json!([{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "name": "voting-db", "namespace": "postgres"}])
        );
        // The stack's own GitRepositories are replaced by kindling's, pointed at its Gitea.
        assert_eq!(
            rendered
                .documents()
                .filter(|d| d["kind"] == "GitRepository")
                .count(),
            1
        );
    }

    #[test]
    fn stamp_render_hostk8s_helm_release_becomes_an_argo_helm_source() {
        let s = stamp::load(&hostk8s_stack("sample"), None).unwrap();
        let rendered = render(&s, Engine::Argo, &options()).unwrap();
        let manager = find(&rendered, "Application", "component-certs-manager");
        let sources = manager["spec"]["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0]["repoURL"], "https://charts.jetstack.io");
        assert_eq!(sources[0]["chart"], "cert-manager");
        assert_eq!(sources[0]["targetRevision"], "1.13.x");
        assert_eq!(sources[0]["helm"]["releaseName"], "cert-manager");
        assert_eq!(sources[0]["helm"]["valuesObject"]["installCRDs"], true);
        assert_eq!(
            sources[1]["path"],
            ".kindling/argo/overlays/component-certs-manager"
        );
        assert_eq!(manager["spec"]["destination"]["namespace"], "cert-manager");
        // No Flux object reaches Argo CD.
        assert!(
            rendered
                .documents()
                .all(|d| !d["apiVersion"].as_str().unwrap().contains("fluxcd"))
        );
    }

    #[test]
    fn stamp_render_argo_says_what_it_could_not_translate() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        super::common::write(
            &root.join("software/stacks/x/stack.yaml"),
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: comp, namespace: flux-system}\nspec:\n  interval: 1h\n  sourceRef: {kind: GitRepository, name: flux-system}\n  path: ./software/components/comp\n",
        );
        super::common::write(
            &root.join("software/components/comp/release.yaml"),
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: r, namespace: flux-system}\nspec:\n  chart: {spec: {chart: c, sourceRef: {kind: HelmRepository, name: missing}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata: {name: p, namespace: flux-system}\nspec: {}\n",
        );
        super::common::write(
            &root.join("software/stacks/x/stack.yaml"),
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: comp, namespace: flux-system}\nspec:\n  interval: 1h\n  sourceRef: {kind: GitRepository, name: flux-system}\n  path: ./software/components/comp\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: vf, namespace: flux-system}\nspec:\n  interval: 1h\n  sourceRef: {kind: GitRepository, name: flux-system}\n  path: ./software/components/vf\n",
        );
        super::common::write(
            &root.join("software/components/vf/release.yaml"),
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata: {name: charts, namespace: flux-system}\nspec: {url: 'https://charts.example.test'}\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: withvalues, namespace: flux-system}\nspec:\n  chart: {spec: {chart: c, sourceRef: {kind: HelmRepository, name: charts}}}\n  valuesFrom: [{kind: ConfigMap, name: overrides}]\n",
        );
        let s = stamp::load(&root.join("software/stacks/x"), None).unwrap();
        let rendered = render(&s, Engine::Argo, &options()).unwrap();
        let notes = rendered.notes.join("\n");
        assert!(
            notes.contains("HelmRelease 'withvalues': valuesFrom (values read from ConfigMaps/Secrets at run time) cannot be translated; inline the values"),
            "{notes}"
        );
        assert!(
            notes.contains("HelmRepository 'missing', which is not in the entry's directory"),
            "{notes}"
        );
        assert!(notes.contains("ImagePolicy 'p'"), "{notes}");
        assert!(
            notes.contains("nothing in 'software/components/comp' can be deployed"),
            "{notes}"
        );
    }

    #[test]
    fn stamp_render_writes_files_below_out_dir() {
        let dir = tempfile::tempdir().unwrap();
        let rendered = render(&sample(), Engine::Flux, &options()).unwrap();
        rendered.write_to(dir.path()).unwrap();
        let api = std::fs::read_to_string(dir.path().join("flux/stamp/api.yaml")).unwrap();
        let parsed: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&api)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(&parsed[0], find(&rendered, "Kustomization", "api"));
        assert_eq!(&parsed[1], find(&rendered, "Kustomization", "api.health"));
        let leftovers: Vec<_> = walk(dir.path())
            .into_iter()
            .filter(|p| p.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    fn walk(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
        out
    }
}
