//! Cluster profiles and provider configs (golden files, k3d's JSON schema, kind's v1alpha4
//! field names, loopback-only ports), the provider adapters against fake kind/k3d CLIs, and the
//! pinned tool download against a local HTTP server.

mod common;

mod cluster {
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};

    use kindling::cluster::provider::{ClusterProvider, K3dCli, KindCli};
    use kindling::cluster::tools::{
        PinnedTool, ToolSource, cached_path, resolve_pinned, resolve_tool, sha256_hex,
    };
    use kindling::cluster::{
        ClusterError, IngressPorts, PortMapping, Provider, default_profile, load_profile,
        render_k3d, render_kind, resolve,
    };
    use proptest::prelude::*;
    use serde_json::Value;

    use super::common::{repo_dir, schemas_dir};

    const PROFILES: &[&str] = &["kind", "k3d", "multi-node"];

    fn profile(name: &str) -> kindling::cluster::ClusterProfile {
        load_profile(&repo_dir().join("clusters").join(format!("{name}.yaml"))).unwrap()
    }

    fn render(name: &str, provider: Provider) -> Value {
        let mut p = profile(name);
        p.spec.provider = provider;
        let c = resolve(&p, "dev", p.spec.ingress, Some(5001)).unwrap();
        match provider {
            Provider::Kind => render_kind(&c),
            Provider::K3d => render_k3d(&c, "dev"),
            Provider::Existing => panic!("an existing cluster has no config"),
        }
    }

    /// README: `clusters/kind.yaml` is the default; the built-in default (used when the source
    /// tree has no `clusters/`) is the same profile, and likewise for k3d.
    #[test]
    fn cluster_built_in_defaults_are_the_shipped_profiles() {
        for provider in [Provider::Kind, Provider::K3d] {
            assert!(
                default_profile(provider) == profile(provider.name()),
                "clusters/{}.yaml and the built-in default differ",
                provider.name()
            );
        }
    }

    #[test]
    fn cluster_render_matches_golden_files() {
        // UPDATE_GOLDEN=1 rewrites them and fails, so the run that rewrote them never counts as
        // a pass: review the diff, then run again without it.
        let updating = std::env::var_os("UPDATE_GOLDEN").is_some();
        let mut mismatches = Vec::new();
        for name in PROFILES {
            for provider in [Provider::Kind, Provider::K3d] {
                let rendered = serde_yaml_ng::to_string(&render(name, provider)).unwrap();
                let golden = repo_dir().join(format!(
                    "tests/data/cluster/{name}.{}.yaml",
                    provider.name()
                ));
                let expected = std::fs::read_to_string(&golden).unwrap_or_default();
                if updating && rendered != expected {
                    std::fs::write(&golden, &rendered).unwrap();
                }
                if rendered != expected {
                    mismatches.push(format!("{}:\n{rendered}", golden.display()));
                }
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
        assert!(
            !updating,
            "UPDATE_GOLDEN is set: golden files were rewritten where they differed; review and rerun without it"
        );
    }

    /// What k3d's own JSON schema (k3d-io/k3d v5.9.0 pkg/config/v1alpha5/schema.json) finds
    /// wrong with a config.
    fn k3d_schema_errors(config: &Value) -> Vec<String> {
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(schemas_dir().join("k3d-config.v1alpha5.schema.json"))
                .unwrap(),
        )
        .unwrap();
        let validator = jsonschema::draft7::new(&schema).unwrap();
        validator
            .iter_errors(config)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect()
    }

    #[test]
    fn cluster_k3d_configs_match_the_k3d_json_schema() {
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(schemas_dir().join("k3d-config.v1alpha5.schema.json"))
                .unwrap(),
        )
        .unwrap();
        let validator = jsonschema::draft7::new(&schema).unwrap();
        for name in PROFILES {
            let config = render(name, Provider::K3d);
            let errors: Vec<String> = validator
                .iter_errors(&config)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{name}: {errors:?}");
        }
        // The check can fail: a field k3d does not know is rejected.
        let mut bad = render("k3d", Provider::K3d);
        bad["options"]["k3s"]["extraArg"] = Value::Array(vec![]);
        assert!(!validator.is_valid(&bad));
    }

    /// Field names of kind's `Cluster` (kind.x-k8s.io/v1alpha4), from kind's documented API
    /// (pkg/apis/config/v1alpha4/types.go): struct → its yaml field names.
    fn kind_fields() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
        BTreeMap::from([
            (
                "Cluster",
                BTreeSet::from([
                    "kind",
                    "apiVersion",
                    "name",
                    "nodes",
                    "networking",
                    "featureGates",
                    "runtimeConfig",
                    "kubeadmConfigPatches",
                    "kubeadmConfigPatchesJSON6902",
                    "containerdConfigPatches",
                    "containerdConfigPatchesJSON6902",
                ]),
            ),
            (
                "Node",
                BTreeSet::from([
                    "role",
                    "image",
                    "labels",
                    "extraMounts",
                    "extraPortMappings",
                    "gpus",
                    "kubeadmConfigPatches",
                    "kubeadmConfigPatchesJSON6902",
                ]),
            ),
            (
                "Networking",
                BTreeSet::from([
                    "ipFamily",
                    "apiServerPort",
                    "apiServerAddress",
                    "podSubnet",
                    "serviceSubnet",
                    "disableDefaultCNI",
                    "kubeProxyMode",
                    "dnsSearch",
                ]),
            ),
            (
                "PortMapping",
                BTreeSet::from(["containerPort", "hostPort", "listenAddress", "protocol"]),
            ),
            (
                "Mount",
                BTreeSet::from([
                    "containerPath",
                    "hostPath",
                    "readOnly",
                    "selinuxRelabel",
                    "propagation",
                ]),
            ),
        ])
    }

    fn check_kind_fields(config: &Value) -> Vec<String> {
        let fields = kind_fields();
        let mut wrong = Vec::new();
        let mut check = |what: &str, v: &Value| {
            for key in v.as_object().unwrap().keys() {
                if !fields[what].contains(key.as_str()) {
                    wrong.push(format!("{what}.{key}"));
                }
            }
        };
        check("Cluster", config);
        check("Networking", &config["networking"]);
        for node in config["nodes"].as_array().unwrap() {
            check("Node", node);
            for m in node["extraPortMappings"].as_array().into_iter().flatten() {
                check("PortMapping", m);
            }
            for m in node["extraMounts"].as_array().into_iter().flatten() {
                check("Mount", m);
            }
        }
        wrong
    }

    #[test]
    fn cluster_kind_configs_use_only_kind_v1alpha4_fields() {
        for name in PROFILES {
            let config = render(name, Provider::Kind);
            assert_eq!(config["apiVersion"], "kind.x-k8s.io/v1alpha4");
            assert_eq!(config["kind"], "Cluster");
            assert_eq!(check_kind_fields(&config), Vec::<String>::new(), "{name}");
            for node in config["nodes"].as_array().unwrap() {
                assert!(["control-plane", "worker"].contains(&node["role"].as_str().unwrap()));
            }
        }
        let mut bad = render("kind", Provider::Kind);
        bad["nodes"][0]["extraPortMapping"] = Value::Null;
        assert_eq!(check_kind_fields(&bad), ["Node.extraPortMapping"]);
    }

    /// The network's root CAs reach every node read-only at the path Go reads (kind's Mount,
    /// k3d's volumes for servers and agents, checked against k3d's schema); without them the
    /// configs have no mounts at all.
    #[test]
    fn cluster_extra_ca_is_mounted_into_every_node_of_both_providers() {
        let roots = std::path::PathBuf::from("/data/envs/dev/extra-ca.pem");
        let target = kindling::pki::extra_ca::CONTAINER_PATH;
        let profile = load_profile(&repo_dir().join("clusters/multi-node.yaml")).unwrap();
        let mut c = resolve(&profile, "dev", IngressPorts::default(), Some(5001)).unwrap();
        assert!(
            render_kind(&c)["nodes"][0]["extraMounts"].is_null(),
            "no roots, no mounts"
        );
        c.extra_ca = Some(roots.clone());
        let config = render_kind(&c);
        assert_eq!(check_kind_fields(&config), Vec::<String>::new());
        let nodes = config["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3);
        for node in nodes {
            assert_eq!(
                node["extraMounts"],
                serde_json::json!([{"hostPath": roots, "containerPath": target, "readOnly": true}]),
                "{node}"
            );
        }
        let profile = default_profile(Provider::K3d);
        let mut c = resolve(&profile, "dev", IngressPorts::default(), Some(5001)).unwrap();
        assert!(render_k3d(&c, "dev")["volumes"].is_null());
        c.extra_ca = Some(roots.clone());
        let config = render_k3d(&c, "dev");
        assert_eq!(
            config["volumes"],
            serde_json::json!([{
                "volume": format!("{}:{target}:ro", roots.display()),
                "nodeFilters": ["server:*", "agent:*"],
            }])
        );
        let errors = k3d_schema_errors(&config);
        assert!(errors.is_empty(), "{errors:?}");
    }

    /// The stamp's storage reaches every node read-write at the stamp's path (after the
    /// roots), in both providers' configs; k3d's schema accepts it.
    #[test]
    fn cluster_storage_is_mounted_read_write_into_every_node_of_both_providers() {
        let storage = vec![kindling::cluster::StorageMount {
            host_path: "/data/storage/dev/pv/app/db".into(),
            node_path: "/mnt/pv/app/db".into(),
        }];
        let roots = std::path::PathBuf::from("/data/envs/dev/extra-ca.pem");
        let profile = load_profile(&repo_dir().join("clusters/multi-node.yaml")).unwrap();
        let mut c = resolve(&profile, "dev", IngressPorts::default(), Some(5001)).unwrap();
        c.storage = storage.clone();
        c.extra_ca = Some(roots.clone());
        let config = render_kind(&c);
        assert_eq!(check_kind_fields(&config), Vec::<String>::new());
        for node in config["nodes"].as_array().unwrap() {
            assert_eq!(
                node["extraMounts"][1],
                serde_json::json!({"hostPath": "/data/storage/dev/pv/app/db", "containerPath": "/mnt/pv/app/db", "readOnly": false}),
                "{node}"
            );
        }
        let mut c = resolve(
            &default_profile(Provider::K3d),
            "dev",
            IngressPorts::default(),
            None,
        )
        .unwrap();
        c.storage = storage;
        let config = render_k3d(&c, "dev");
        assert_eq!(
            config["volumes"],
            serde_json::json!([{
                "volume": "/data/storage/dev/pv/app/db:/mnt/pv/app/db",
                "nodeFilters": ["server:*", "agent:*"],
            }])
        );
        let errors = k3d_schema_errors(&config);
        assert!(errors.is_empty(), "{errors:?}");
    }

    /// A profile names its CA files relative to itself; a missing one is a profile problem.
    #[test]
    fn cluster_profile_extra_ca_is_relative_to_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("corp.pem"), "x").unwrap();
        let profile = dir.path().join("p.yaml");
        std::fs::write(
            &profile,
            "apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {name: p}\nspec:\n  provider: kind\n  kubernetesVersion: \"1.37\"\n  extraCA: [corp.pem]\n",
        )
        .unwrap();
        let loaded = load_profile(&profile).unwrap();
        assert_eq!(loaded.spec.extra_ca, vec![dir.path().join("corp.pem")]);
        std::fs::write(
            &profile,
            "apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {name: p}\nspec:\n  provider: kind\n  kubernetesVersion: \"1.37\"\n  extraCA: [gone.pem]\n",
        )
        .unwrap();
        let e = load_profile(&profile).unwrap_err().to_string();
        assert!(e.contains("spec.extraCA") && e.contains("gone.pem"), "{e}");
    }

    #[test]
    fn cluster_kind_ingress_lands_on_the_labelled_control_plane() {
        let config = render("multi-node", Provider::Kind);
        let nodes = config["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0]["labels"]["ingress-ready"], "true");
        assert_eq!(nodes[0]["extraPortMappings"][1]["containerPort"], 443);
        assert_eq!(nodes[0]["extraPortMappings"][1]["hostPort"], 8443);
        assert_eq!(nodes[0]["extraPortMappings"][2]["hostPort"], 30080);
        assert!(nodes[1].get("extraPortMappings").is_none());
        assert_eq!(config["networking"]["apiServerAddress"], "127.0.0.1");
        assert!(
            nodes[0]["image"]
                .as_str()
                .unwrap()
                .starts_with("kindest/node:v1.36.4@sha256:")
        );
    }

    #[test]
    fn cluster_k3d_disables_traefik_and_wires_the_mirrors() {
        let config = render("k3d", Provider::K3d);
        assert_eq!(
            config["options"]["k3s"]["extraArgs"][0]["arg"],
            "--disable=traefik"
        );
        assert_eq!(config["kubeAPI"]["hostIP"], "127.0.0.1");
        let registries: Value =
            serde_yaml_ng::from_str(config["registries"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(
            registries["mirrors"]["docker.io"]["endpoint"][0],
            "http://kindling-cache-docker-io:5000"
        );
        assert_eq!(
            config["options"]["runtime"]["labels"][0]["label"],
            "dev.kindling.env=dev"
        );
    }

    /// Every host port a config publishes, as (listen address, port).
    fn host_bindings(config: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if config["kind"] == "Cluster" {
            out.push((
                config["networking"]["apiServerAddress"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                "api".to_string(),
            ));
            for node in config["nodes"].as_array().unwrap() {
                for m in node["extraPortMappings"].as_array().into_iter().flatten() {
                    out.push((
                        m["listenAddress"].as_str().unwrap_or("0.0.0.0").to_string(),
                        m["hostPort"].to_string(),
                    ));
                }
            }
        } else {
            out.push((
                config["kubeAPI"]["hostIP"]
                    .as_str()
                    .unwrap_or("0.0.0.0")
                    .to_string(),
                "api".to_string(),
            ));
            for p in config["ports"].as_array().unwrap() {
                let spec = p["port"].as_str().unwrap();
                let parts: Vec<&str> = spec.split(':').collect();
                // k3d's short form HOSTPORT:CONTAINERPORT binds every interface.
                let address = if parts.len() == 3 {
                    parts[0]
                } else {
                    "0.0.0.0"
                };
                out.push((address.to_string(), parts[parts.len() - 2].to_string()));
            }
        }
        out
    }

    proptest! {
        #[test]
        fn cluster_every_host_port_binds_loopback(
            provider in prop_oneof![Just(Provider::Kind), Just(Provider::K3d)],
            control_planes in 1u8..=3,
            workers in 0u8..5,
            http in 1024u16..60000,
            extra in proptest::collection::vec((1u16..65535, 1024u16..65535), 0..4),
        ) {
            let mut p = default_profile(provider);
            p.spec.control_planes = control_planes;
            p.spec.workers = workers;
            p.spec.extra_port_mappings = extra.iter().map(|&(c, h)| PortMapping { container_port: c, host_port: h }).collect();
            let c = resolve(&p, "x", IngressPorts { http, https: http.wrapping_add(1).max(1024) }, Some(5001)).unwrap();
            let config = match provider { Provider::Kind => render_kind(&c), Provider::K3d => render_k3d(&c, "x"), Provider::Existing => unreachable!() };
            let bindings = host_bindings(&config);
            prop_assert_eq!(bindings.len(), 1 + 2 + extra.len());
            for (address, port) in bindings {
                prop_assert_eq!(address, "127.0.0.1", "port {} binds another address", port);
            }
        }
    }

    #[test]
    fn cluster_profile_errors_name_the_file_field_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(
            &file,
            "apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {name: bad}\nspec:\n  provider: kind\n  kubernetesVersion: '1.12'\n  ingress: {http: 80, https: 8443}\n  extraPortMappings: [{containerPort: 1, hostPort: 8443}, {containerPort: 0, hostPort: 30081}]\n",
        )
        .unwrap();
        let err = load_profile(&file).unwrap_err();
        assert!(matches!(err, ClusterError::InvalidProfile { .. }));
        let text = err.to_string();
        assert!(text.contains("bad.yaml is invalid"), "{text}");
        assert!(
            text.contains("spec.kubernetesVersion: '1.12' has no pinned node image"),
            "{text}"
        );
        assert!(
            text.contains("help: use one of 1.37, 1.36, 1.35, 1.34"),
            "{text}"
        );
        assert!(text.contains("host port 80 needs root"), "{text}");
        assert!(text.contains("host port 8443 is used twice"), "{text}");
        assert!(
            text.contains("spec.extraPortMappings: mapping 2 has containerPort 0"),
            "{text}"
        );
        std::fs::write(&file, "apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {name: x}\nspec:\n  provider: kind\n  kubernetesVersion: '1.37'\n  worker: 2\n").unwrap();
        let text = load_profile(&file).unwrap_err().to_string();
        assert!(
            text.contains("bad.yaml:7:3: spec: unknown field `worker`"),
            "{text}"
        );
    }

    /// A fake provider CLI: records every call in `calls`, keeps the clusters it "created" in
    /// `clusters`, and fails `create` when `fail` exists (stderr like the real thing).
    fn fake_cli(dir: &Path, name: &str) -> PathBuf {
        let script = dir.join(name);
        let body = r#"#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls"
touch "$here/clusters"
case "$*" in
  "get clusters") cat "$here/clusters" ;;
  "cluster list -o json")
    printf '['; sep=''; while read -r c; do printf '%s{"name":"%s","nodes":[]}' "$sep" "$c"; sep=','; done < "$here/clusters"; printf ']\n' ;;
  "create cluster --name "*|"cluster create --config "*)
    if [ -e "$here/fail" ]; then
      echo "Creating cluster ..." >&2
      echo "ERROR: failed to create cluster: could not find a log line that matches \"Reached target .*Multi-User System.*\"" >&2
      exit 1
    fi
    if [ "$1" = "create" ]; then n="$4"; cfg="$6"; else cfg="$4"; n=$(sed -n 's/^  name: //p' "$cfg" | head -1); fi
    if grep -qx "$n" "$here/clusters"; then echo "ERROR: node(s) already exist for a cluster with the name \"$n\"" >&2; exit 1; fi
    cp "$cfg" "$here/config-seen.yaml"
    echo "${KIND_EXPERIMENTAL_DOCKER_NETWORK:-}" > "$here/network-seen"
    echo "${HTTPS_PROXY:-} ${NO_PROXY:-}" > "$here/proxy-seen"
    echo "$n" >> "$here/clusters" ;;
  "delete cluster --name "*|"cluster delete "*)
    n=$(echo "$*" | awk '{print $NF}'); grep -vx "$n" "$here/clusters" > "$here/clusters.new"; mv "$here/clusters.new" "$here/clusters" ;;
  "get kubeconfig --name "*|"kubeconfig get "*)
    printf 'apiVersion: v1\nkind: Config\ncurrent-context: fake-%s\n' "$(echo "$*" | awk '{print $NF}')" ;;
  "get nodes --name "*) echo "$4-control-plane"; echo "$4-worker" ;;
  "node list -o json")
    echo '[{"name":"k3d-kindling-dev-server-0","role":"server","runtimeLabels":{"k3d.cluster":"kindling-dev"}},{"name":"k3d-kindling-dev-serverlb","role":"loadbalancer","runtimeLabels":{"k3d.cluster":"kindling-dev"}},{"name":"k3d-other-server-0","role":"server","runtimeLabels":{"k3d.cluster":"other"}}]' ;;
  # Builtins only: doctor's test runs this with nothing else on PATH.
  version) v="${0%/*}/version"; if [ -f "$v" ]; then IFS= read -r line < "$v"; echo "$line"; else echo "kindling-fake-tool v9.9.9 go1.26.1 linux/amd64"; fi ;;
  *) echo "fake $0: unexpected arguments: $*" >&2; exit 2 ;;
esac
"#;
        std::fs::write(&script, body).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn lifecycle(provider: &dyn ClusterProvider, dir: &Path, config: &str) {
        assert!(!provider.exists("kindling-dev").unwrap());
        provider.create("kindling-dev", config, &[]).unwrap();
        assert!(provider.exists("kindling-dev").unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.join("config-seen.yaml")).unwrap(),
            config
        );
        assert!(
            provider
                .kubeconfig("kindling-dev")
                .unwrap()
                .contains("kind: Config")
        );
        // A second create of the same cluster is refused by the provider, with its stderr.
        let err = provider
            .create("kindling-dev", config, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exist"), "{err}");
        provider.delete("kindling-dev").unwrap();
        assert!(!provider.exists("kindling-dev").unwrap());
        // Deleting twice is fine.
        provider.delete("kindling-dev").unwrap();
    }

    #[test]
    fn cluster_kind_adapter_create_exists_kubeconfig_delete() {
        let dir = tempfile::tempdir().unwrap();
        let kind = KindCli {
            binary: fake_cli(dir.path(), "kind"),
            work_dir: dir.path().join("env"),
        };
        let config = serde_yaml_ng::to_string(&render("kind", Provider::Kind)).unwrap();
        lifecycle(&kind, dir.path(), &config);
        let log = calls(dir.path());
        let config_path = dir.path().join("env/kind-config.yaml");
        assert!(
            log.contains(&format!(
                "create cluster --name kindling-dev --config {} --wait 120s",
                config_path.display()
            )),
            "{log:?}"
        );
        assert!(
            log.contains(&"delete cluster --name kindling-dev".to_string()),
            "{log:?}"
        );
        assert_eq!(
            log.iter().filter(|c| c.starts_with("delete")).count(),
            1,
            "second delete must not call kind: {log:?}"
        );
        // Each cluster on a network of its own, named for it, and kind told so.
        assert_eq!(kind.docker_network("kindling-dev"), "kindling-dev");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("network-seen"))
                .unwrap()
                .trim(),
            "kindling-dev"
        );
        assert_eq!(kind.context("kindling-dev"), "kind-kindling-dev");
        assert_eq!(
            kind.nodes("kindling-dev").unwrap(),
            ["kindling-dev-control-plane", "kindling-dev-worker"]
        );
    }

    /// The user's proxy reaches the nodes: kind gets the variables in its own environment
    /// (kind passes them on, adding its subnets; kubernetes-sigs/kind v0.33.0
    /// pkg/cluster/internal/providers/common/proxy.go) with the env's registry and Gitea
    /// kept direct; k3d, which passes nothing on, gets them in its config for every node.
    #[test]
    fn cluster_proxy_settings_reach_the_nodes_of_both_providers() {
        let dir = tempfile::tempdir().unwrap();
        let kind = KindCli {
            binary: fake_cli(dir.path(), "kind"),
            work_dir: dir.path().to_path_buf(),
        };
        let proxy = kindling::cluster::proxy::ProxySettings::from_lookup(|k| match k {
            "HTTPS_PROXY" => Some("http://proxy.corp:3128".into()),
            "no_proxy" => Some("corp.example".into()),
            _ => None,
        });
        let profile = default_profile(Provider::Kind);
        let mut c = resolve(&profile, "dev", IngressPorts::default(), Some(5001)).unwrap();
        c.proxy = proxy.clone();
        let vars = kindling::cluster::node_proxy_variables(&c, "dev");
        kind.create("kindling-dev", "kind: Cluster\n", &vars)
            .unwrap();
        let seen = std::fs::read_to_string(dir.path().join("proxy-seen")).unwrap();
        assert!(
            seen.starts_with("http://proxy.corp:3128 corp.example,"),
            "{seen}"
        );
        assert!(
            seen.contains("kindling-dev-registry") && seen.contains("kindling-dev-gitea"),
            "{seen}"
        );
        // k3d: the config carries them for servers and agents, with k3s's own ranges direct.
        let profile = default_profile(Provider::K3d);
        let mut c = resolve(&profile, "dev", IngressPorts::default(), Some(5001)).unwrap();
        assert!(render_k3d(&c, "dev")["env"].is_null(), "no proxy, no env");
        c.proxy = proxy;
        let config = render_k3d(&c, "dev");
        let env = config["env"].as_array().unwrap();
        let var = |name: &str| {
            env.iter()
                .find(|e| {
                    e["envVar"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{name}="))
                })
                .unwrap_or_else(|| panic!("no {name}: {env:?}"))
                .clone()
        };
        assert_eq!(
            var("HTTPS_PROXY")["envVar"],
            "HTTPS_PROXY=http://proxy.corp:3128"
        );
        assert_eq!(
            var("https_proxy")["nodeFilters"],
            serde_json::json!(["server:*", "agent:*"])
        );
        let no_proxy = var("NO_PROXY")["envVar"].as_str().unwrap().to_string();
        for direct in [
            "corp.example",
            "10.42.0.0/16",
            "10.43.0.0/16",
            ".svc.cluster.local",
            "kindling-dev-registry",
            // The caches the nodes' mirrors name (containerd proxies mirror requests too).
            "kindling-cache-docker-io",
            "kindling-cache-registry-k8s-io",
        ] {
            assert!(no_proxy.contains(direct), "{direct}: {no_proxy}");
        }
        // k3d's own schema takes the field.
        let errors = k3d_schema_errors(&config);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn cluster_k3d_adapter_create_exists_kubeconfig_delete() {
        let dir = tempfile::tempdir().unwrap();
        let k3d = K3dCli {
            binary: fake_cli(dir.path(), "k3d"),
            work_dir: dir.path().join("env"),
        };
        let config = serde_yaml_ng::to_string(&render("k3d", Provider::K3d)).unwrap();
        lifecycle(&k3d, dir.path(), &config);
        let log = calls(dir.path());
        assert!(
            log.contains(&"cluster delete kindling-dev".to_string()),
            "{log:?}"
        );
        assert_eq!(k3d.docker_network("kindling-dev"), "k3d-kindling-dev");
        assert_eq!(
            k3d.nodes("kindling-dev").unwrap(),
            ["k3d-kindling-dev-server-0"]
        );
    }

    #[test]
    fn cluster_standalone_kubeconfig_is_written_private_to_the_env_dir() {
        let dir = tempfile::tempdir().unwrap();
        let kind = KindCli {
            binary: fake_cli(dir.path(), "kind"),
            work_dir: dir.path().join("env"),
        };
        let path = kindling::cluster::provider::write_kubeconfig(
            &kind,
            "kindling-dev",
            &dir.path().join("env"),
        )
        .unwrap();
        assert_eq!(path, dir.path().join("env/kubeconfig"));
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("current-context: fake-kindling-dev")
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn cluster_create_failure_carries_the_command_and_stderr_tail() {
        let dir = tempfile::tempdir().unwrap();
        let kind = KindCli {
            binary: fake_cli(dir.path(), "kind"),
            work_dir: dir.path().join("env"),
        };
        std::fs::write(dir.path().join("fail"), "").unwrap();
        let err = kind
            .create("kindling-dev", "kind: Cluster\n", &[])
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("create cluster --name kindling-dev"),
            "{text}"
        );
        assert!(text.contains("failed (exit 1)"), "{text}");
        assert!(text.contains("Multi-User System"), "{text}");
    }

    /// Serves `body` for every request until `requests` have been answered.
    fn serve(body: Vec<u8>, requests: usize) -> (String, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let header = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(header.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
            }
        });
        (url, handle)
    }

    fn fake_tool(base_url: &str, sum: &str) -> PinnedTool {
        PinnedTool {
            name: "kindling-fake-tool".into(),
            version: "v9.9.9".into(),
            base_url: base_url.into(),
            checksums: vec![("linux-amd64".into(), sum.into())],
        }
    }

    #[test]
    fn cluster_tool_download_verifies_caches_and_reuses_offline() {
        let dir = tempfile::tempdir().unwrap();
        let binary = b"#!/bin/sh\necho fake tool\n".to_vec();
        let (url, server) = serve(binary.clone(), 1);
        let tool = fake_tool(&url, &sha256_hex(&binary));
        let got = resolve_pinned(&tool, dir.path(), "linux-amd64").unwrap();
        assert_eq!(got.source, ToolSource::Downloaded);
        assert_eq!(std::fs::read(&got.path).unwrap(), binary);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&got.path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        server.join().unwrap();
        // The server is gone: the cached, verified binary is used.
        let again = resolve_pinned(&tool, dir.path(), "linux-amd64").unwrap();
        assert_eq!(again.source, ToolSource::Cached);
        assert_eq!(again.path, cached_path(&tool, dir.path()));
    }

    #[test]
    fn cluster_tool_checksum_mismatch_is_a_hard_error_naming_both_sums() {
        let dir = tempfile::tempdir().unwrap();
        let (url, server) = serve(b"tampered".to_vec(), 1);
        let expected = "0".repeat(64);
        let err = resolve_pinned(&fake_tool(&url, &expected), dir.path(), "linux-amd64")
            .unwrap_err()
            .to_string();
        server.join().unwrap();
        assert!(
            err.contains(&format!("expected sha256 {expected}")),
            "{err}"
        );
        assert!(
            err.contains(&format!("got      sha256 {}", sha256_hex(b"tampered"))),
            "{err}"
        );
        assert!(
            !cached_path(&fake_tool(&url, &expected), dir.path()).exists(),
            "a bad download must not be kept"
        );
    }

    #[test]
    fn cluster_tool_unknown_platform_and_path_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_pinned(
            &fake_tool("http://127.0.0.1:9", "x"),
            dir.path(),
            "plan9-mips",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("pins no kindling-fake-tool v9.9.9 binary for plan9-mips"),
            "{err}"
        );
        // A tool on the search path wins over any download.
        let bin = dir.path().join("bin-on-path");
        std::fs::create_dir_all(&bin).unwrap();
        fake_cli(&bin, "kindling-fake-tool");
        let found = resolve_tool(
            &fake_tool("http://127.0.0.1:9", "x"),
            dir.path(),
            Some(bin.as_os_str()),
        )
        .unwrap();
        assert_eq!(found.source, ToolSource::Path);
        assert_eq!(found.path, bin.join("kindling-fake-tool"));
        assert_eq!(found.version.as_deref(), Some("v9.9.9"));
    }

    /// kind or k3d on PATH older than the pinned release (or that will not say its version)
    /// is passed over for the pinned one, with a note; when that download fails too, the
    /// error says both.
    #[test]
    fn cluster_tool_on_path_older_than_the_pin_gives_way_to_the_pinned_release() {
        use kindling::cluster::tools::{at_least, parse_version};
        assert_eq!(
            parse_version("kind v0.33.0 go1.26.1 linux/amd64").as_deref(),
            Some("v0.33.0")
        );
        assert_eq!(
            parse_version("k3d version v5.9.0\nk3s version v1.37.1-k3s1 (default)").as_deref(),
            Some("v5.9.0")
        );
        assert_eq!(parse_version("kind version unknown"), None);
        assert!(at_least("v0.33.0", "v0.33.0") && at_least("v0.34.1", "v0.33.0"));
        assert!(at_least("v1.0.0", "v0.33.0") && at_least("v0.33.1", "v0.33.0"));
        assert!(!at_least("v0.32.9", "v0.33.0") && !at_least("v0.33.0-alpha.1", "v0.33.0"));

        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin-on-path");
        std::fs::create_dir_all(&bin).unwrap();
        fake_cli(&bin, "kindling-fake-tool");
        let binary = b"#!/bin/sh\necho pinned tool\n".to_vec();
        for (reported, says) in [
            (
                "kindling-fake-tool v9.9.8 go1.26.1 linux/amd64",
                "v9.9.8 on PATH",
            ),
            ("something else entirely", "does not say its version"),
        ] {
            std::fs::write(bin.join("version"), reported).unwrap();
            let data = tempfile::tempdir().unwrap();
            let (url, _server) = serve(binary.clone(), 1);
            let tool = PinnedTool {
                checksums: vec![(kindling::cluster::tools::platform(), sha256_hex(&binary))],
                ..fake_tool(&url, "x")
            };
            let got = resolve_tool(&tool, data.path(), Some(bin.as_os_str())).unwrap();
            assert_eq!(got.source, ToolSource::Downloaded, "{reported}");
            let note = got.note.unwrap_or_default();
            assert!(
                note.contains(says) && note.contains("using the pinned v9.9.9"),
                "{note}"
            );
            // No download possible: the error says why PATH's was passed over, and the fix.
            let offline = PinnedTool {
                checksums: vec![(kindling::cluster::tools::platform(), sha256_hex(&binary))],
                ..fake_tool("http://127.0.0.1:9", "x")
            };
            let err = resolve_tool(
                &offline,
                tempfile::tempdir().unwrap().path(),
                Some(bin.as_os_str()),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(says) && err.contains("install kindling-fake-tool v9.9.9 or later"),
                "{err}"
            );
        }
    }

    #[test]
    fn cluster_cli_config_prints_kind_and_k3d_configs() {
        let out = assert_cmd::Command::cargo_bin("kindling")
            .unwrap()
            .current_dir(repo_dir())
            .args(["cluster", "config", "--provider", "k3d", "--name", "ci"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let config: Value =
            serde_yaml_ng::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
        assert_eq!(config["metadata"]["name"], "kindling-ci");
        let out = assert_cmd::Command::cargo_bin("kindling")
            .unwrap()
            .current_dir(repo_dir())
            .args([
                "cluster",
                "config",
                "--profile",
                "clusters/multi-node.yaml",
                "--output",
                "json",
            ])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["config"]["nodes"].as_array().unwrap().len(), 3);
        assert_eq!(v["cluster"]["name"], "kindling-dev");
    }

    #[test]
    fn cluster_doctor_reports_which_kind_binary_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        fake_cli(&bin, "kind");
        let doctor = || {
            assert_cmd::Command::cargo_bin("kindling")
                .unwrap()
                .env("KINDLING_DATA_DIR", dir.path().join("data"))
                .env("PATH", &bin)
                .args(["doctor", "--output", "json"])
                .output()
                .unwrap()
        };
        let out = doctor();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let findings = v["findings"].as_array().unwrap();
        let kind = findings.iter().find(|f| f["check"] == "kind").unwrap();
        assert_eq!(
            kind["detail"],
            format!("{} v9.9.9 (on PATH)", bin.join("kind").display())
        );
        // One older than the pinned release: kindling will not use it, and doctor says so.
        std::fs::write(bin.join("version"), "kind v0.20.0 go1.21.0 linux/amd64").unwrap();
        let v2: Value = serde_json::from_slice(&doctor().stdout).unwrap();
        let kind = v2["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "kind")
            .unwrap()
            .clone();
        assert_eq!(kind["status"], "warn", "{kind}");
        assert!(
            kind["detail"]
                .as_str()
                .unwrap()
                .contains("is v0.20.0; kindling uses the pinned v0.33.0 instead"),
            "{kind}"
        );
        std::fs::remove_file(bin.join("version")).unwrap();
        let k3d = findings.iter().find(|f| f["check"] == "k3d").unwrap();
        assert!(
            k3d["detail"]
                .as_str()
                .unwrap()
                .contains("pinned k3d v5.9.0"),
            "{k3d}"
        );
        // Exit code follows the findings: 1 exactly when one failed.
        let failed = findings.iter().any(|f| f["status"] == "fail");
        assert_eq!(out.status.code(), Some(if failed { 1 } else { 0 }));
    }
}
