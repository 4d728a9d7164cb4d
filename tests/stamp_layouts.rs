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

    #[test]
    fn stamp_layouts_argo_application_on_another_repository_is_a_problem() {
        let repo = tempfile::tempdir().unwrap();
        super::common::write_argo_layout(repo.path(), false);
        write(
            &repo.path().join("argo/apps/other.yaml"),
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: other, namespace: argocd}\nspec:\n  project: default\n  source: {repoURL: 'https://github.com/someone/else', path: deploy, targetRevision: main}\n  destination: {server: 'https://kubernetes.default.svc', namespace: other}\n",
        );
        let text = stamp::load(&repo.path().join("bootstrap"), None)
            .unwrap_err()
            .to_string();
        assert!(text.contains("other.yaml"), "{text}");
        assert!(text.contains("github.com/someone/else"), "{text}");
    }

    #[test]
    fn stamp_layouts_flux_kustomization_on_another_repository_is_a_problem() {
        let repo = tempfile::tempdir().unwrap();
        write_flux_layout(repo.path());
        write(
            &repo.path().join("clusters/dev/tenants.yaml"),
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: tenants, namespace: flux-system}\nspec:\n  interval: 5m\n  url: https://github.com/team/tenants\n  ref: {branch: main}\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: tenants, namespace: flux-system}\nspec:\n  interval: 10m\n  sourceRef: {kind: GitRepository, name: tenants}\n  path: ./\n  prune: true\n",
        );
        let err = stamp::load(&repo.path().join("clusters/dev"), None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("tenants.yaml"), "{text}");
        assert!(text.contains("another repository"), "{text}");
    }
}
