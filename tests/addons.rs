//! Cluster add-ons (issue #19 part 2): what a HostK8s stack gets from its cluster by default,
//! as entries the engine installs before the stack's own.

mod common;

mod addons {
    use kindling::addons::{self, Addon};
    use kindling::stamp::render::{Engine, RenderOptions, render};
    use kindling::stamp::{self, Source};
    use serde_json::Value;

    use super::common::{SchemaSet, hostk8s_stack, repo_dir};

    fn with_defaults(stack: &str) -> kindling::stamp::Stamp {
        let s = stamp::load(&hostk8s_stack(stack), None).unwrap();
        let chosen = addons::chosen(None, &s);
        addons::with_addons(s, &chosen, &addons::declared_in(None)).unwrap()
    }

    fn rendered(s: &kindling::stamp::Stamp, engine: Engine) -> Vec<Value> {
        let opts = RenderOptions::standard("http://git/x.git".into());
        render(s, engine, &opts)
            .unwrap()
            .files
            .into_iter()
            .flat_map(|f| f.documents)
            .collect()
    }

    fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    /// A HostK8s stack gets HostK8s' defaults (ingress, metrics-server) as the first entries;
    /// every entry that waited for nothing now waits for them, so they are wave 0 alone.
    #[test]
    fn addons_hostk8s_stack_gets_ingress_and_metrics_server_first() {
        let s = with_defaults("sample-app");
        let names: Vec<&str> = s.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(&names[..2], ["addon-ingress", "addon-metrics-server"]);
        for (i, e) in s.entries.iter().enumerate() {
            if i < 2 {
                assert_eq!(s.wave(i), 0, "{}", e.name);
            } else {
                assert!(s.wave(i) > 0, "{} is in wave 0", e.name);
            }
        }
        assert_eq!(
            s.entry("component-redis").unwrap().depends_on,
            ["addon-ingress", "addon-metrics-server"]
        );
        // Entries that had dependencies keep them only.
        assert_eq!(
            s.entry("sample-app-db").unwrap().depends_on,
            ["component-redis", "component-postgres"]
        );
        let Source::Helm(chart) = &s.entries[1].source else {
            panic!("metrics-server is a chart")
        };
        assert_eq!(
            (
                chart.repo.as_str(),
                chart.chart.as_str(),
                chart.version.as_str()
            ),
            (
                "https://kubernetes-sigs.github.io/metrics-server",
                "metrics-server",
                kindling::pins::METRICS_SERVER_CHART.version
            )
        );
        assert_eq!(chart.values["args"][0], "--kubelet-insecure-tls");
    }

    /// Flux: a HelmRelease per add-on in HostK8s' namespace, labelled with the add-on; Argo CD:
    /// an Application in wave 0. Every object matches the upstream CRD schemas.
    #[test]
    fn addons_render_for_both_engines_and_match_the_crd_schemas() {
        let s = with_defaults("sample");
        let schemas = SchemaSet::load();
        let flux = rendered(&s, Engine::Flux);
        let release = find(&flux, "HelmRelease", "addon-ingress");
        assert_eq!(release["spec"]["chart"]["spec"]["version"], "41.3.0");
        assert_eq!(release["spec"]["targetNamespace"], "hostk8s");
        assert_eq!(
            release["spec"]["values"]["service"]["spec"]["type"],
            "NodePort"
        );
        let k = find(&flux, "Kustomization", "addon-metrics-server");
        assert_eq!(
            k["metadata"]["labels"]["kindling.dev/addon"],
            "metrics-server"
        );
        let argo = rendered(&s, Engine::Argo);
        let app = find(&argo, "Application", "addon-metrics-server");
        assert_eq!(
            app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"],
            "0"
        );
        assert_eq!(app["spec"]["destination"]["namespace"], "kube-system");
        assert_eq!(app["spec"]["source"]["chart"], "metrics-server");
        for doc in flux.iter().chain(&argo) {
            if doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1" {
                continue;
            }
            if let Err(e) = schemas.validate(doc) {
                panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]);
            }
        }
    }

    /// A kindling stamp brings its own ingress: it gets no add-on unless its profile names one,
    /// and a profile's `addons: []` turns a HostK8s stack's off.
    #[test]
    fn addons_come_from_the_profile_when_it_names_them() {
        let sample = stamp::load(&repo_dir().join("stamps/sample"), None).unwrap();
        assert!(addons::chosen(None, &sample).is_empty());
        assert_eq!(
            addons::chosen(Some(&["metrics-server".to_string()]), &sample),
            [Addon::MetricsServer]
        );
        let stack = stamp::load(&hostk8s_stack("sample"), None).unwrap();
        assert!(addons::chosen(Some(&[]), &stack).is_empty());
    }

    /// A stamp entry of an add-on's name is refused with its file and the fix.
    #[test]
    fn addons_name_clash_with_a_stamp_entry_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        super::common::write(
            &dir.path().join("stamps/x/stamp.yaml"),
            "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {name: x}\nspec:\n  components:\n    - {name: addon-ingress, path: m}\n",
        );
        super::common::write(
            &dir.path().join("stamps/x/m/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n",
        );
        let s = stamp::load(&dir.path().join("stamps/x"), None).unwrap();
        let err = addons::with_addons(s, &[Addon::Ingress], &addons::declared_in(None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("entry 'addon-ingress'") && err.contains("kindling's add-on"),
            "{err}"
        );
        assert!(err.contains("spec.addons"), "{err}");
    }

    /// A profile that names an add-on kindling does not know is invalid, naming the known ones.
    #[test]
    fn addons_unknown_name_in_a_profile_is_a_profile_problem() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(
            &file,
            "apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {name: p}\nspec:\n  provider: kind\n  kubernetesVersion: \"1.37\"\n  addons: [ingress, ingress-nginx]\n",
        )
        .unwrap();
        let err = kindling::cluster::load_profile(&file)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spec.addons: 'ingress-nginx' is not an add-on kindling knows"),
            "{err}"
        );
        assert!(err.contains("ingress, metrics-server"), "{err}");
    }
}
