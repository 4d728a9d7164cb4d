//! Cluster add-ons (issue #19 part 2): what a HostK8s stack gets from its cluster by default,
//! as entries the engine installs before the stack's own.

mod common;

mod addons {
    use kindling::addons::{self, Addon};
    use kindling::stamp::render::{Engine, RenderOptions, render};
    use kindling::stamp::{self, Source};
    use serde_json::Value;

    use super::common::{SchemaSet, hostk8s_stack, repo_dir};

    /// A data dir holding a stand-in for the Gateway API manifest, as `fetch_manifests`
    /// leaves it.
    fn data_dir() -> tempfile::TempDir {
        let data = tempfile::tempdir().unwrap();
        let dir = Addon::GatewayApi.parts()[0].manifest_dir(data.path());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("install.yaml"), GATEWAY_CRD).unwrap();
        data
    }

    const GATEWAY_CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gatewayclasses.gateway.networking.k8s.io}\nspec:\n  group: gateway.networking.k8s.io\n  names: {kind: GatewayClass, plural: gatewayclasses, singular: gatewayclass, listKind: GatewayClassList}\n  scope: Cluster\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n";

    fn with_defaults(stack: &str, data: &std::path::Path) -> kindling::stamp::Stamp {
        let s = stamp::load(&hostk8s_stack(stack), None).unwrap();
        let chosen = addons::chosen(None, &s);
        addons::with_addons(s, &chosen, &addons::declared_in(None), data).unwrap()
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

    /// A HostK8s stack gets HostK8s' defaults (ingress, metrics-server, the Gateway API CRDs)
    /// as the first entries, and Vault when its components read `vault-backend` (sample-app's
    /// postgres and redis do); every entry that waited for nothing now waits for them all.
    #[test]
    fn addons_hostk8s_stack_gets_hostk8s_defaults_first() {
        let data = data_dir();
        let s = with_defaults("sample-app", data.path());
        let names: Vec<&str> = s.entries.iter().map(|e| e.name.as_str()).collect();
        let addons = [
            "addon-ingress",
            "addon-metrics-server",
            "addon-gateway-api",
            "addon-external-secrets",
            "addon-vault",
            "addon-vault-backend",
        ];
        assert_eq!(&names[..6], addons);
        for (i, e) in s.entries.iter().enumerate() {
            match i {
                0..5 => assert_eq!(s.wave(i), 0, "{}", e.name),
                // The store waits for ESO (its CRD) and Vault.
                5 => assert_eq!(s.wave(i), 1, "{}", e.name),
                _ => assert!(s.wave(i) > 1, "{} is before the add-ons", e.name),
            }
        }
        assert_eq!(
            s.entry("addon-vault-backend").unwrap().depends_on,
            ["addon-external-secrets", "addon-vault"]
        );
        assert_eq!(s.entry("component-redis").unwrap().depends_on, addons);
        // The contract goes through Vault; the root token is a bootstrap secret of its own.
        assert!(
            s.secrets
                .iter()
                .filter(|x| x.name != "vault-token")
                .all(|x| x.through_vault)
        );
        let token = s.secrets.iter().find(|x| x.name == "vault-token").unwrap();
        assert_eq!(
            (token.namespace.as_str(), token.through_vault),
            ("hostk8s", false)
        );
        // The sample stack reads no store: no Vault.
        let sample = with_defaults("sample", data.path());
        assert!(sample.entry("addon-vault").is_none());
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
        let data = data_dir();
        let s = with_defaults("sample", data.path());
        // The Gateway API manifest is pushed as fetched, where its entry reads it from Git.
        let pushed = addons::pushed_files(&s).unwrap();
        assert_eq!(
            pushed.len(),
            1,
            "sample reads no vault-backend: no store manifest"
        );
        assert_eq!(
            pushed,
            [(
                ".kindling/addons/gateway-api/install.yaml".to_string(),
                GATEWAY_CRD.as_bytes().to_vec()
            )]
        );
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
        assert_eq!(
            find(&flux, "Kustomization", "addon-gateway-api")["spec"]["path"],
            "./.kindling/addons/gateway-api"
        );
        let crds = find(&argo, "Application", "addon-gateway-api");
        assert_eq!(
            crds["spec"]["source"]["path"],
            ".kindling/addons/gateway-api"
        );
        assert_eq!(crds["spec"]["source"]["directory"]["recurse"], true);
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
        let data = data_dir();
        let err = addons::with_addons(
            s,
            &[Addon::Ingress],
            &addons::declared_in(None),
            data.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("entry 'addon-ingress'") && err.contains("kindling's add-on"),
            "{err}"
        );
        assert!(err.contains("spec.addons"), "{err}");
    }

    /// A stamp that installs an add-on's chart itself (the sample stamp's Traefik) is refused
    /// with the add-on: two Helm releases `traefik` would share Flux's storage namespace.
    #[test]
    fn addons_chart_the_stamp_installs_itself_is_reported() {
        let sample = stamp::load(&repo_dir().join("stamps/sample"), None).unwrap();
        let data = data_dir();
        let err = addons::with_addons(
            sample,
            &[Addon::Ingress],
            &addons::declared_in(None),
            data.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("entry 'ingress'")
                && err.contains(
                    "installs traefik (release traefik), as kindling's add-on ingress does"
                ),
            "{err}"
        );
        assert!(
            err.contains("leave `ingress` out of the profile's spec.addons"),
            "{err}"
        );
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
        assert!(
            err.contains("ingress, metrics-server, gateway-api"),
            "{err}"
        );
    }
}
