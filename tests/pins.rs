//! The pins table (`src/pins.rs`) against what uses it: `kindling version`, the README's
//! table, the sample stamp's charts and images (and their values against each chart's own
//! values schema), and the upstream fixtures the tests validate against.

mod common;

mod pins {
    use assert_cmd::Command;
    use kindling::pins::{self, Integrity};
    use kindling::stamp::{self, Source};
    use serde_json::{Value, json};

    use super::common::{repo_dir, schemas_dir, upstream_dir};

    fn sample_stamp() -> stamp::Stamp {
        stamp::load(&repo_dir().join("stamps/sample"), None).unwrap()
    }

    fn helm_values(name: &str) -> (stamp::HelmChart, Value) {
        let stamp = sample_stamp();
        let entry = stamp.entries.iter().find(|e| e.name == name).unwrap();
        match &entry.source {
            Source::Helm(chart) => (chart.clone(), Value::Object(chart.values.clone())),
            _ => panic!("{name} is not a Helm entry"),
        }
    }

    /// Errors of `values` against a chart's `values.schema.json`, as `helm install` checks them.
    fn chart_schema_errors(schema_file: &str, values: &Value) -> Vec<String> {
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(schemas_dir().join(schema_file)).unwrap(),
        )
        .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        validator
            .iter_errors(values)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    #[test]
    fn pins_version_command_prints_every_pin() {
        let out = Command::cargo_bin("kindling")
            .unwrap()
            .args(["version", "--output", "json"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["kindling"], env!("CARGO_PKG_VERSION"));
        let rows = doc["pins"].as_array().unwrap();
        let all = pins::all();
        assert_eq!(rows.len(), all.len());
        for (row, pin) in rows.iter().zip(&all) {
            assert_eq!(row["name"], pin.name);
            assert_eq!(row["version"], pin.version);
            assert_eq!(row["artifact"], pin.artifact);
            match pin.integrity {
                Integrity::Sha256(sum) => assert_eq!(row["sha256"], sum),
                Integrity::PlatformSha256(sums) => {
                    for (platform, sum) in sums {
                        assert_eq!(row["sha256ByPlatform"][platform], *sum);
                    }
                }
                Integrity::Digest => assert!(
                    row["digest"].as_str().unwrap().starts_with("sha256:"),
                    "{row}"
                ),
                Integrity::Unpinned(why) => assert_eq!(row["unpinnedBecause"], why),
            }
        }
        let text = Command::cargo_bin("kindling")
            .unwrap()
            .arg("version")
            .output()
            .unwrap();
        let text = String::from_utf8(text.stdout).unwrap();
        for pin in &all {
            assert!(text.contains(pin.artifact), "{} missing:\n{text}", pin.name);
        }
    }

    #[test]
    fn pins_every_download_carries_a_sum_and_every_kind_image_a_digest() {
        for pin in [pins::FLUX, pins::ARGO_CD] {
            let sum = pin
                .sha256()
                .unwrap_or_else(|| panic!("{} has no sum", pin.name));
            assert!(
                sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}",
                pin.name
            );
        }
        for pin in [pins::KIND, pins::K3D] {
            let platforms: Vec<&str> = pin.platform_sha256().iter().map(|(p, _)| *p).collect();
            assert_eq!(
                platforms,
                ["linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"],
                "{}",
                pin.name
            );
            assert!(pin.artifact.ends_with(pin.version), "{}", pin.artifact);
        }
        for images in pins::NODE_IMAGES {
            let image = images.kind.artifact;
            assert!(
                image.starts_with(&format!("kindest/node:{}@sha256:", images.kind.version)),
                "{image}"
            );
            assert!(
                images
                    .kind
                    .version
                    .starts_with(&format!("v{}.", images.kubernetes))
            );
            assert!(
                images
                    .k3s
                    .version
                    .starts_with(&format!("v{}.", images.kubernetes))
            );
            assert_eq!(
                images.k3s.artifact,
                format!("rancher/k3s:{}", images.k3s.version.replace('+', "-"))
            );
        }
    }

    #[test]
    fn pins_readme_table_lists_every_pin() {
        let readme = std::fs::read_to_string(repo_dir().join("README.md")).unwrap();
        // The table has exactly one row per pin: no stale or extra row either.
        let table_start = readme
            .find("| name | version | artifact | integrity |")
            .unwrap();
        let rows = readme[table_start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .count();
        assert_eq!(
            rows,
            pins::all().len(),
            "README's pins table has {rows} rows"
        );
        for pin in pins::all() {
            let row = format!(
                "| {} | {} | `{}` | {} |",
                pin.name,
                pin.version,
                pin.artifact,
                pin.integrity.describe()
            );
            assert!(readme.contains(&row), "README.md lacks the pins row\n{row}");
        }
    }

    #[test]
    fn pins_sample_stamp_uses_the_pinned_charts_and_images() {
        let stamp = sample_stamp();
        let charts: Vec<(String, String, String)> = stamp
            .entries
            .iter()
            .filter_map(|e| match &e.source {
                Source::Helm(c) => Some((c.repo.clone(), c.chart.clone(), c.version.clone())),
                _ => None,
            })
            .collect();
        let pinned_charts: Vec<(String, String, String)> =
            [pins::CERT_MANAGER_CHART, pins::TRAEFIK_CHART]
                .iter()
                .map(|p| {
                    let (repo, chart) = p.artifact.split_once(' ').unwrap();
                    (repo.to_string(), chart.to_string(), p.version.to_string())
                })
                .collect();
        assert_eq!(charts, pinned_charts);

        // Every image the stamp's manifests name is a pinned one, and every pinned image is used.
        let mut images = Vec::new();
        for file in walk(&repo_dir().join("stamps/sample")) {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.lines() {
                if let Some(image) = line.trim().strip_prefix("image: ") {
                    images.push(image.trim().to_string());
                }
            }
        }
        images.sort();
        let mut pinned: Vec<String> =
            [pins::POSTGRES_IMAGE, pins::PODINFO_IMAGE, pins::NGINX_IMAGE]
                .iter()
                .map(|p| p.artifact.to_string())
                .collect();
        pinned.sort();
        assert_eq!(images, pinned);
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
        files
    }

    #[test]
    fn pins_sample_helm_values_pass_each_charts_values_schema() {
        let (chart, values) = helm_values("certs");
        assert_eq!(chart.chart, "cert-manager");
        let errors = chart_schema_errors("cert-manager-chart-values.schema.json", &values);
        assert!(errors.is_empty(), "{errors:#?}");
        // cert-manager v1.21 installs its CRDs with crds.enabled (installCRDs is deprecated).
        assert_eq!(values["crds"]["enabled"], true);

        let (chart, values) = helm_values("ingress");
        assert_eq!(chart.chart, "traefik");
        let errors = chart_schema_errors("traefik-chart-values.schema.json", &values);
        assert!(errors.is_empty(), "{errors:#?}");

        // The ingress add-on's values too, with HostK8s' NodePorts where the chart reads them
        // (traefik-helm-chart v41.3.0 values.yaml `ports.NAME.nodePort`, `service.spec.type`).
        let addon: serde_json::Value =
            serde_yaml_ng::from_str(kindling::addons::Addon::Ingress.values_yaml()[0].1).unwrap();
        let errors = chart_schema_errors("traefik-chart-values.schema.json", &addon);
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(addon["ports"]["web"]["nodePort"], 30080);
        assert_eq!(addon["ports"]["websecure"]["nodePort"], 30443);
        assert_eq!(addon["service"]["spec"]["type"], "NodePort");

        // The vault add-on's charts, each against its own schema (vault-helm v0.34.1,
        // external-secrets helm-chart-2.9.0).
        for (part, schema) in [
            ("vault", "vault-chart-values.schema.json"),
            (
                "external-secrets",
                "external-secrets-chart-values.schema.json",
            ),
        ] {
            let (_, text) = kindling::addons::Addon::Vault
                .values_yaml()
                .into_iter()
                .find(|(name, _)| *name == part)
                .unwrap();
            let values: serde_json::Value = serde_yaml_ng::from_str(text).unwrap();
            let errors = chart_schema_errors(schema, &values);
            assert!(errors.is_empty(), "{part}: {errors:#?}");
        }

        // The metallb add-on's (metallb v0.16.1 charts/metallb/values.schema.json), with
        // frr-k8s off: a laptop cluster has no BGP peer.
        // Helm checks the schema against the chart's defaults with these over them
        // (helm v3 pkg/chartutil/values.go ToRenderValues: CoalesceValues, then
        // ValidateAgainstSchema), and this schema requires `controller` and `speaker`.
        let (_, text) = kindling::addons::Addon::Metallb.values_yaml()[0];
        let ours: serde_json::Value = serde_yaml_ng::from_str(text).unwrap();
        let mut values: serde_json::Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(
                super::common::schemas_dir().join("metallb-chart-values.yaml"),
            )
            .unwrap(),
        )
        .unwrap();
        coalesce(&mut values, &ours);
        let errors = chart_schema_errors("metallb-chart-values.schema.json", &values);
        assert!(errors.is_empty(), "metallb: {errors:#?}");
        assert_eq!(values["frrk8s"]["enabled"], false);
        // Without the defaults the same values fail: the check is not empty.
        assert!(!chart_schema_errors("metallb-chart-values.schema.json", &ours).is_empty());
    }

    /// Helm's coalescing of user values over a chart's defaults: maps merge, the rest replaces.
    fn coalesce(base: &mut serde_json::Value, over: &serde_json::Value) {
        match (base, over) {
            (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
                for (k, v) in o {
                    coalesce(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, o) => *b = o.clone(),
        }
    }

    #[test]
    fn pins_chart_values_schemas_reject_misspelt_keys() {
        // The schemas really close their objects: the spelling chart v40 renamed is refused,
        // and so is a key cert-manager does not know.
        let traefik = json!({"providers": {"kubernetesIngressNginx": {"enabled": true}}});
        assert!(!chart_schema_errors("traefik-chart-values.schema.json", &traefik).is_empty());
        let cert_manager = json!({"crds": {"enable": true}});
        assert!(
            !chart_schema_errors("cert-manager-chart-values.schema.json", &cert_manager).is_empty()
        );
    }

    #[test]
    fn pins_sample_ingress_serves_class_nginx_and_cannot_deadlock_on_upgrade() {
        let (_, values) = helm_values("ingress");
        // The Ingress NGINX provider serves class `nginx` (HostK8s stacks and this stamp) …
        let provider = &values["providers"]["kubernetesIngressNGINX"];
        assert_eq!(provider["enabled"], true);
        assert_eq!(provider["ingressClass"], "nginx");
        // … only when an IngressClass `nginx` names its controller class
        // (traefik v3.7 pkg/provider/kubernetes/ingress-nginx: filterIngressClass).
        let class = values["extraObjects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "IngressClass" && o["metadata"]["name"] == "nginx")
            .expect("an IngressClass nginx");
        assert_eq!(class["spec"]["controller"], provider["controllerClass"]);
        // Only one provider serves Ingresses, so none is routed twice.
        assert_eq!(values["providers"]["kubernetesIngress"]["enabled"], false);
        // … and that one also serves Ingresses without a class.
        assert_eq!(provider["watchIngressWithoutClass"], true);

        // One replica on fixed host ports: a surge pod could never schedule.
        assert_eq!(values["deployment"]["replicas"], 1);
        assert_eq!(values["ports"]["web"]["hostPort"], 80);
        assert_eq!(values["ports"]["websecure"]["hostPort"], 443);
        let rolling = &values["updateStrategy"]["rollingUpdate"];
        assert_eq!(rolling["maxSurge"], 0);
        assert_eq!(rolling["maxUnavailable"], 1);
        assert_eq!(values["nodeSelector"]["ingress-ready"], "true");
        // No LoadBalancer Service claiming 80/443 (k3d's load balancer forwards to the host
        // ports); the chart reads service.spec.type, not service.type.
        assert_eq!(values["service"]["spec"]["type"], "ClusterIP");
        assert!(values["service"].get("type").is_none());

        // Every Ingress of the stamp asks for that class.
        for file in walk(&repo_dir().join("stamps/sample/applications")) {
            let text = std::fs::read_to_string(&file).unwrap();
            let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
            if doc["kind"] == "Ingress" {
                assert_eq!(
                    doc["spec"]["ingressClassName"],
                    "nginx",
                    "{}",
                    file.display()
                );
            }
        }
        // The health check follows the fixed Deployment name.
        let stamp = sample_stamp();
        let ingress = stamp.entries.iter().find(|e| e.name == "ingress").unwrap();
        assert_eq!(values["fullnameOverride"], "traefik");
        assert!(
            ingress
                .health_checks
                .iter()
                .any(|h| h.kind == "Deployment" && h.name == "traefik")
        );
    }

    #[test]
    fn pins_fixture_record_matches_the_files() {
        let record = std::fs::read_to_string(upstream_dir().join("README.md")).unwrap();
        let mut files = 0;
        let listed = std::fs::read_dir(schemas_dir())
            .unwrap()
            .chain(std::fs::read_dir(upstream_dir().join("manifests")).unwrap());
        for entry in listed {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let sum = kindling::cluster::tools::sha256_hex(&std::fs::read(&path).unwrap());
            let row = record
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}` |")))
                .unwrap_or_else(|| {
                    panic!("{name} is not recorded in tests/fixtures/upstream/README.md")
                });
            assert!(
                row.contains(&format!("`{sum}`")),
                "{name}: the record's sha256 is not {sum}"
            );
            files += 1;
        }
        assert!(files >= 15);
    }

    #[test]
    fn pins_fixture_crds_serve_the_api_versions_kindling_renders() {
        // The CRDs the tests validate against carry the versions the pinned releases serve.
        let served = |file: &str| -> Vec<String> {
            let crd: Value = serde_yaml_ng::from_str(
                &std::fs::read_to_string(schemas_dir().join(file)).unwrap(),
            )
            .unwrap();
            crd["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| v["served"] == true)
                .map(|v| v["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            served("flux-kustomize.toolkit.fluxcd.io_kustomizations.yaml"),
            ["v1"]
        );
        assert_eq!(
            served("flux-helm.toolkit.fluxcd.io_helmreleases.yaml"),
            ["v2"]
        );
        assert_eq!(
            served("flux-source.toolkit.fluxcd.io_gitrepositories.yaml"),
            ["v1"]
        );
        assert_eq!(served("argocd-application-crd.yaml"), ["v1alpha1"]);
        assert_eq!(served("cert-manager.io_certificates.yaml"), ["v1"]);
        let gitea: Value = serde_json::from_str(
            &std::fs::read_to_string(schemas_dir().join("gitea-swagger.v1.json")).unwrap(),
        )
        .unwrap();
        let gitea_version = pins::GITEA.version;
        assert_eq!(gitea["info"]["version"], gitea_version);
    }

    /// The toolchain the README asks for is the one Cargo.toml declares, and that is the
    /// newest `rust-version` among the resolved dependencies (an older toolchain cannot build
    /// them; clippy's `incompatible_msrv` holds kindling's own code to it, and the test
    /// workflow builds on it).
    #[test]
    fn pins_rust_version_is_the_newest_a_dependency_needs_and_the_readme_says_so() {
        let manifest = std::fs::read_to_string(repo_dir().join("Cargo.toml")).unwrap();
        let declared = manifest
            .lines()
            .find_map(|l| l.strip_prefix("rust-version = "))
            .expect("Cargo.toml declares a rust-version")
            .trim_matches('"')
            .to_string();
        let metadata = std::process::Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--offline", "--locked"])
            .current_dir(repo_dir())
            .output()
            .unwrap();
        assert!(
            metadata.status.success(),
            "{}",
            String::from_utf8_lossy(&metadata.stderr)
        );
        let metadata: Value = serde_json::from_slice(&metadata.stdout).unwrap();
        let resolved: Vec<&str> = metadata["resolve"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        let version = |v: &str| -> (u64, u64) {
            let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap());
            (parts.next().unwrap(), parts.next().unwrap_or(0))
        };
        let (newest, needed_by) = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| resolved.contains(&p["id"].as_str().unwrap()) && p["name"] != "kindling")
            .filter_map(|p| Some((version(p["rust_version"].as_str()?), p["name"].as_str()?)))
            .max()
            .unwrap();
        assert_eq!(
            version(&declared),
            newest,
            "Cargo.toml's rust-version {declared}; {needed_by} needs {newest:?}"
        );
        let readme = std::fs::read_to_string(repo_dir().join("README.md")).unwrap();
        assert!(
            readme.contains(&format!("a Rust toolchain ({declared}+")),
            "the README names another toolchain than {declared}"
        );
    }
}
