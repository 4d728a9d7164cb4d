//! Bring-your-own GitOps layouts as stamps (issue #21 part 1): a Flux cluster directory as
//! `flux bootstrap` leaves it loads, validates and renders for both engines.

mod common;

mod stamp {
    use kindling::stamp::render::{Engine, RenderOptions, render};
    use kindling::stamp::{self, Source, StampFormat};

    use super::common::{write, write_flux_layout};

    fn repo_path(s: &kindling::stamp::Stamp, entry: &str) -> String {
        match &s.entry(entry).unwrap_or_else(|| panic!("{entry}")).source {
            Source::Path(p) => p.repo_path.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stamp_layouts_flux_cluster_directory_loads_with_its_dependencies() {
        let repo = tempfile::tempdir().unwrap();
        write_flux_layout(repo.path());
        let s = stamp::load(&repo.path().join("clusters/dev"), None).unwrap();
        assert_eq!(s.format, StampFormat::Flux);
        assert_eq!(s.name, "dev");
        // The repository root is the cluster directory less the flux-system Kustomization's
        // path, whatever directory holds the repository.
        assert_eq!(s.repo_root, std::fs::canonicalize(repo.path()).unwrap());
        let names: Vec<&str> = s.entries.iter().map(|e| e.name.as_str()).collect();
        // flux bootstrap's own objects are kindling's to replace, not entries.
        assert_eq!(names, vec!["apps", "infra-controllers"], "{names:?}");
        assert_eq!(
            s.entry("apps").unwrap().depends_on,
            vec!["infra-controllers"]
        );
        assert_eq!(repo_path(&s, "apps"), "apps/dev");
        assert_eq!(
            repo_path(&s, "infra-controllers"),
            "infrastructure/controllers"
        );
        assert!(s.entry("infra-controllers").unwrap().wait);
        // Infrastructure first: the graph orders by dependsOn.
        let ordered: Vec<&str> = s.ordered_entries().map(|e| e.name.as_str()).collect();
        assert_eq!(ordered, vec!["infra-controllers", "apps"]);
        // Both engines render it; Flux gets no second flux-system and no team URL.
        let opts = RenderOptions::standard("http://gitea.test/kindling/source.git".into());
        for engine in [Engine::Flux, Engine::Argo] {
            let rendered = render(&s, engine, &opts).unwrap();
            let text = rendered
                .documents()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            assert!(!text.contains("github.com/team/fleet"), "{text}");
            assert!(text.contains("apps/dev"), "{text}");
        }
    }

    /// An Argo CD app-of-apps: the children are the entries, sync waves order them, this
    /// repository's URL (however spelt) is served from the env's Gitea, a Helm repository
    /// stays where it is.
    #[test]
    fn stamp_layouts_argo_app_of_apps_loads_with_waves_and_helm() {
        let repo = tempfile::tempdir().unwrap();
        super::common::write_argo_layout(repo.path(), true);
        let s = stamp::load(&repo.path().join("bootstrap"), None).unwrap();
        assert_eq!(s.format, StampFormat::Argo);
        let ordered: Vec<&str> = s.ordered_entries().map(|e| e.name.as_str()).collect();
        assert_eq!(ordered, vec!["infra", "podinfo", "web"], "{ordered:?}");
        assert_eq!(s.entry("podinfo").unwrap().depends_on, vec!["infra"]);
        assert_eq!(s.entry("web").unwrap().depends_on, vec!["podinfo"]);
        assert_eq!(repo_path(&s, "web"), "apps/dev");
        assert_eq!(s.entry("web").unwrap().namespace.as_deref(), Some("apps"));
        match &s.entry("podinfo").unwrap().source {
            Source::Helm(h) => {
                assert_eq!(h.repo, "https://stefanprodan.github.io/podinfo");
                assert_eq!((h.chart.as_str(), h.version.as_str()), ("podinfo", "6.7.1"));
                assert_eq!(h.values["replicaCount"], 2);
            }
            other => panic!("{other:?}"),
        }
        // The project and sync options are kept; the layout's AppProject is applied at
        // bootstrap, permitting the env's Gitea as well as the team's remote.
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        let opts = RenderOptions::standard(
            "http://gitea.kindling-system.svc.cluster.local:3000/kindling/source.git".into(),
        );
        let rendered = render(&s, Engine::Argo, &opts).unwrap();
        let web = rendered
            .files
            .iter()
            .flat_map(|f| f.documents.iter())
            .find(|d| d["kind"] == "Application" && d["metadata"]["name"] == "web")
            .unwrap();
        assert_eq!(web["spec"]["project"], "team");
        let options = web["spec"]["syncPolicy"]["syncOptions"].to_string();
        assert!(
            options.contains("PruneLast=true") && options.contains("CreateNamespace=true"),
            "{options}"
        );
        let project = rendered
            .bootstrap_documents()
            .into_iter()
            .find(|d| d["kind"] == "AppProject")
            .unwrap();
        assert_eq!(
            project["spec"]["sourceRepos"],
            serde_json::json!([
                "https://github.com/team/fleet.git",
                "http://gitea.kindling-system.svc.cluster.local:3000/kindling/source.git"
            ])
        );
        // On an Argo CD envs share (the env's Applications in a namespace of its own): one
        // AppProject, the env's, in argocd, listing that namespace; every Application, the
        // layout's too, in that namespace and project (AppProject names are one set per Argo
        // CD, and the env's repository Secret is scoped to its project).
        let mut shared = s.clone();
        shared.own_objects_namespace = Some("kindling-dev".into());
        let rendered = render(&shared, Engine::Argo, &opts).unwrap();
        let projects: Vec<serde_json::Value> = rendered
            .bootstrap_documents()
            .into_iter()
            .filter(|d| d["kind"] == "AppProject")
            .collect();
        assert_eq!(projects.len(), 1, "{projects:?}");
        assert_eq!(projects[0]["metadata"]["name"], "kindling-dev");
        assert_eq!(projects[0]["metadata"]["namespace"], "argocd");
        assert_eq!(
            projects[0]["spec"]["sourceNamespaces"],
            serde_json::json!(["kindling-dev"])
        );
        let apps: Vec<&serde_json::Value> = rendered
            .files
            .iter()
            .flat_map(|f| f.documents.iter())
            .filter(|d| d["kind"] == "Application")
            .collect();
        assert!(apps.len() > 3, "{apps:?}");
        for app in apps {
            assert_eq!(app["metadata"]["namespace"], "kindling-dev", "{app}");
            assert_eq!(app["spec"]["project"], "kindling-dev", "{app}");
        }
        let root = rendered
            .bootstrap_documents()
            .into_iter()
            .find(|d| d["kind"] == "Application")
            .unwrap();
        assert_eq!(root["spec"]["destination"]["namespace"], "kindling-dev");
        // A project the layout does not define cannot be kept: said, and `default` used.
        std::fs::write(
            repo.path().join("bootstrap/kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [root.yaml]\n",
        )
        .unwrap();
        let s = stamp::load(&repo.path().join("bootstrap"), None).unwrap();
        assert!(
            s.warnings.iter().any(|w| w
                .to_string()
                .contains("project 'team' is not defined in the layout")),
            "{:?}",
            s.warnings
        );
    }

    /// An Application on another repository stays there: the same URL on Argo CD, a
    /// GitRepository on it for Flux.
    #[test]
    fn stamp_layouts_argo_application_on_another_repository_stays_there() {
        let repo = tempfile::tempdir().unwrap();
        super::common::write_argo_layout(repo.path(), false);
        write(
            &repo.path().join("argo/apps/other.yaml"),
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: other, namespace: argocd}\nspec:\n  project: default\n  source: {repoURL: 'https://github.com/someone/else', path: deploy, targetRevision: main}\n  destination: {server: 'https://kubernetes.default.svc', namespace: other}\n",
        );
        let s = stamp::load(&repo.path().join("bootstrap"), None).unwrap();
        let opts = RenderOptions::standard("http://gitea.test/kindling/source.git".into());
        let argo = render(&s, Engine::Argo, &opts).unwrap();
        let other = argo
            .documents()
            .find(|d| d["kind"] == "Application" && d["metadata"]["name"] == "other")
            .unwrap();
        assert_eq!(
            other["spec"]["source"]["repoURL"],
            "https://github.com/someone/else"
        );
        assert_eq!(other["spec"]["source"]["targetRevision"], "main");
        assert_eq!(other["spec"]["source"]["path"], "deploy");
        let flux = render(&s, Engine::Flux, &opts).unwrap();
        let git = flux
            .documents()
            .find(|d| d["kind"] == "GitRepository" && d["metadata"]["name"] == "other")
            .unwrap();
        assert_eq!(git["spec"]["url"], "https://github.com/someone/else");
        assert_eq!(git["spec"]["ref"]["branch"], "main");
        let k = flux
            .documents()
            .find(|d| d["kind"] == "Kustomization" && d["metadata"]["name"] == "other")
            .unwrap();
        assert_eq!(k["spec"]["sourceRef"]["name"], "other");
        assert_eq!(k["spec"]["path"], "./deploy");
    }

    /// A cluster directory's own sources keep their URLs: on Flux as they are, with the
    /// Kustomizations on them pointing at them; on Argo CD as an `oci://` or Git source at
    /// the source's reference. A Bucket has no Argo CD equivalent, and a Kustomization field
    /// kindling does not carry over is a problem.
    #[test]
    fn stamp_layouts_flux_cluster_directory_sources_keep_their_urls() {
        let repo = tempfile::tempdir().unwrap();
        write_flux_layout(repo.path());
        write(
            &repo.path().join("clusters/dev/tenants.yaml"),
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: tenants, namespace: flux-system}\nspec:\n  interval: 5m\n  url: https://github.com/team/tenants\n  ref: {tag: v2.0.0}\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: tenants, namespace: flux-system}\nspec:\n  interval: 10m\n  sourceRef: {kind: GitRepository, name: tenants}\n  path: ./deploy\n  prune: true\n  dependsOn: [{name: apps}]\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata: {name: podinfo, namespace: flux-system}\nspec:\n  interval: 10m\n  url: oci://ghcr.io/stefanprodan/manifests/podinfo\n  ref: {tag: latest}\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: podinfo, namespace: flux-system}\nspec:\n  interval: 10m\n  sourceRef: {kind: OCIRepository, name: podinfo}\n  path: ./\n  targetNamespace: podinfo\n",
        );
        let s = stamp::load(&repo.path().join("clusters/dev"), None).unwrap();
        assert_eq!(s.flux_sources.len(), 2);
        assert_eq!(s.entry("tenants").unwrap().depends_on, vec!["apps"]);
        let opts = RenderOptions::standard("http://gitea.test/kindling/source.git".into());
        let flux = render(&s, Engine::Flux, &opts).unwrap();
        let find = |r: &kindling::stamp::render::Rendered, kind: &str, name: &str| {
            r.documents()
                .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no {kind} {name}"))
        };
        assert_eq!(
            find(&flux, "OCIRepository", "podinfo")["spec"]["url"],
            "oci://ghcr.io/stefanprodan/manifests/podinfo"
        );
        let podinfo = find(&flux, "Kustomization", "podinfo");
        assert_eq!(podinfo["spec"]["sourceRef"]["kind"], "OCIRepository");
        assert_eq!(podinfo["spec"]["path"], "./");
        assert_eq!(
            find(&flux, "Kustomization", "tenants")["spec"]["path"],
            "./deploy"
        );
        let argo = render(&s, Engine::Argo, &opts).unwrap();
        let podinfo = find(&argo, "Application", "podinfo");
        assert_eq!(
            podinfo["spec"]["source"]["repoURL"],
            "oci://ghcr.io/stefanprodan/manifests/podinfo"
        );
        assert_eq!(podinfo["spec"]["source"]["targetRevision"], "latest");
        let tenants = find(&argo, "Application", "tenants");
        assert_eq!(
            tenants["spec"]["source"]["repoURL"],
            "https://github.com/team/tenants"
        );
        assert_eq!(tenants["spec"]["source"]["targetRevision"], "v2.0.0");
        assert_eq!(tenants["spec"]["source"]["path"], "deploy");
        assert!(
            argo.notes
                .iter()
                .any(|n| n.contains("ARGOCD_REPO_SERVER_OCI_LAYER_MEDIA_TYPES"))
        );
        // A Bucket has nothing to become on Argo CD.
        write(
            &repo.path().join("clusters/dev/bucket.yaml"),
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: Bucket\nmetadata: {name: b, namespace: flux-system}\nspec: {interval: 5m, bucketName: x, endpoint: minio.local}\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: from-bucket, namespace: flux-system}\nspec: {interval: 10m, sourceRef: {kind: Bucket, name: b}, path: ./}\n",
        );
        let s = stamp::load(&repo.path().join("clusters/dev"), None).unwrap();
        assert!(render(&s, Engine::Flux, &opts).is_ok());
        let err = render(&s, Engine::Argo, &opts).unwrap_err().to_string();
        assert!(
            err.contains("a Bucket source has no Argo CD equivalent"),
            "{err}"
        );
        // A field kindling does not carry over is refused, naming it.
        std::fs::remove_file(repo.path().join("clusters/dev/bucket.yaml")).unwrap();
        write(
            &repo.path().join("clusters/dev/patched.yaml"),
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: patched, namespace: flux-system}\nspec:\n  interval: 10m\n  sourceRef: {kind: OCIRepository, name: podinfo}\n  path: ./\n  postBuild: {substitute: {a: b}}\n",
        );
        let err = stamp::load(&repo.path().join("clusters/dev"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("spec.postBuild"), "{err}");
    }
}
