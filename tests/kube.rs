//! The apply layer against an HTTP mock of the Kubernetes API serving discovery documents and
//! objects in the API's real shapes (tests/data/kube/, and the real Flux CRD from
//! tests/fixtures/upstream/schemas): apply order, the server-side-apply request shape, a custom resource
//! retried once its CRD is Established, NotFound ignored on delete, node readiness.

mod common;

mod kube {
    use std::collections::BTreeMap;
    use std::io::{BufReader, Write};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use kindling::kube::{KubeClient, KubeError};
    use serde_json::{Value, json};

    use super::common::{repo_dir, schemas_dir};

    #[derive(Debug, Clone)]
    struct Request {
        method: String,
        path: String,
        query: String,
        content_type: String,
        body: String,
    }

    #[derive(Default)]
    struct State {
        requests: Vec<Request>,
        crd_gets: usize,
        applied: BTreeMap<String, Value>,
        nodes: Value,
    }

    fn data(name: &str) -> String {
        std::fs::read_to_string(repo_dir().join("tests/data/kube").join(name)).unwrap()
    }

    /// The CRD reports Established from its second read on: the first read sees it pending,
    /// as a real API server does right after the CRD is created.
    fn route(state: &mut State, r: &Request) -> (u16, String) {
        let not_found = (404, data("status-not-found.json"));
        let established = state.crd_gets >= 2;
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v1") => (200, data("api-v1.json")),
            ("GET", "/apis/apiextensions.k8s.io/v1") => {
                (200, data("apis-apiextensions.k8s.io-v1.json"))
            }
            ("GET", "/apis/rbac.authorization.k8s.io/v1") => {
                (200, data("apis-rbac.authorization.k8s.io-v1.json"))
            }
            ("GET", "/apis/source.toolkit.fluxcd.io/v1") if established => {
                (200, data("apis-source.toolkit.fluxcd.io-v1.json"))
            }
            ("GET", "/api/v1/nodes") => (200, state.nodes.to_string()),
            ("GET", path)
                if path.starts_with("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/") =>
            {
                state.crd_gets += 1;
                let Some(mut crd) = state.applied.get(path).cloned() else {
                    return not_found;
                };
                let status = if state.crd_gets >= 2 { "True" } else { "False" };
                crd["status"] = json!({"conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                    {"type": "Established", "status": status, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
                ]});
                (200, crd.to_string())
            }
            ("PATCH", path) => {
                let mut object: Value = serde_json::from_str(&r.body).unwrap();
                object["metadata"]["uid"] = json!("7f9c0e3a-1c1e-4d7b-9a53-0d2f1a3b4c5d");
                object["metadata"]["resourceVersion"] = json!("1");
                state.applied.insert(path.to_string(), object.clone());
                (200, object.to_string())
            }
            ("DELETE", path) => match state.applied.remove(path) {
                Some(object) => (200, object.to_string()),
                None => not_found,
            },
            _ => not_found,
        }
    }

    fn mock(state: Arc<Mutex<State>>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let Some(http) = super::common::http::read_request(&mut reader) else {
                    continue;
                };
                let request = Request {
                    content_type: http.header("content-type"),
                    body: String::from_utf8(http.body).unwrap(),
                    method: http.method,
                    path: http.path,
                    query: http.query,
                };
                let (status, response) = {
                    let mut s = state.lock().unwrap();
                    s.requests.push(request.clone());
                    route(&mut s, &request)
                };
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{response}",
                    response.len()
                );
            }
        });
        url
    }

    async fn client(url: &str) -> KubeClient {
        let config = ::kube::Config::new(url.parse().unwrap());
        KubeClient::new(::kube::Client::try_from(config).unwrap())
    }

    /// A bundle like an engine install: the real Flux GitRepository CRD, a Namespace, a
    /// ClusterRole, a ConfigMap and a GitRepository — deliberately out of order.
    fn bundle() -> String {
        let crd = std::fs::read_to_string(
            schemas_dir().join("flux-source.toolkit.fluxcd.io_gitrepositories.yaml"),
        )
        .unwrap();
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: kindling, namespace: flux-system}}\nspec: {{interval: 1m, url: 'http://kindling-dev-gitea:3000/kindling/source.git'}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: flux-system}}\ndata: {{a: b}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: kindling-reader}}\nrules: []\n---\n{crd}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: flux-system}}\n"
        )
    }

    fn patches(state: &Arc<Mutex<State>>) -> Vec<Request> {
        state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.method == "PATCH")
            .cloned()
            .collect()
    }

    #[tokio::test]
    async fn kube_apply_orders_the_bundle_and_uses_server_side_apply() {
        let state = Arc::new(Mutex::new(State::default()));
        let url = mock(state.clone());
        let applied = client(&url)
            .await
            .apply_bundle(&bundle(), Duration::from_secs(10))
            .await
            .unwrap();
        let kinds: Vec<&str> = applied.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "CustomResourceDefinition",
                "Namespace",
                "ClusterRole",
                "GitRepository",
                "ConfigMap"
            ]
        );
        let paths: Vec<String> = patches(&state).iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            paths,
            [
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gitrepositories.source.toolkit.fluxcd.io",
                "/api/v1/namespaces/flux-system",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/kindling-reader",
                "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/kindling",
                "/api/v1/namespaces/flux-system/configmaps/settings",
            ]
        );
        for r in patches(&state) {
            assert_eq!(r.content_type, "application/apply-patch+yaml", "{}", r.path);
            let query: BTreeMap<&str, &str> = r
                .query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            assert_eq!(query.get("fieldManager"), Some(&"kindling"), "{}", r.query);
            assert_eq!(query.get("force"), Some(&"true"), "{}", r.query);
            let sent: Value = serde_json::from_str(&r.body).unwrap();
            assert!(
                sent["apiVersion"].is_string() && sent["kind"].is_string(),
                "SSA bodies are full objects"
            );
        }
    }

    #[tokio::test]
    async fn kube_custom_resource_waits_for_its_crd_to_be_established() {
        let state = Arc::new(Mutex::new(State::default()));
        let url = mock(state.clone());
        client(&url)
            .await
            .apply_bundle(&bundle(), Duration::from_secs(10))
            .await
            .unwrap();
        let requests = state.lock().unwrap().requests.clone();
        let position = |pred: &dyn Fn(&Request) -> bool| requests.iter().position(pred).unwrap();
        let discovery_404 =
            position(&|r| r.method == "GET" && r.path == "/apis/source.toolkit.fluxcd.io/v1");
        let crd_reads: Vec<usize> = requests
            .iter()
            .enumerate()
            .filter(|(_, r)| r.method == "GET" && r.path.contains("customresourcedefinitions/"))
            .map(|(i, _)| i)
            .collect();
        let cr_patch =
            position(&|r| r.method == "PATCH" && r.path.contains("gitrepositories/kindling"));
        // Discovery did not know the kind at first; the CRD was read until Established (twice:
        // pending, then True); only then was the custom resource applied.
        assert!(discovery_404 < crd_reads[0]);
        assert_eq!(crd_reads.len(), 2, "{requests:#?}");
        assert!(crd_reads[1] < cr_patch);
    }

    #[tokio::test]
    async fn kube_unknown_kind_without_its_crd_is_a_clear_error() {
        let state = Arc::new(Mutex::new(State::default()));
        let url = mock(state.clone());
        let yaml = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: x, namespace: flux-system}\n";
        let err = client(&url)
            .await
            .apply_bundle(yaml, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, KubeError::UnknownKind { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the cluster has no kind GitRepository (source.toolkit.fluxcd.io/v1); install the CRD that defines it first"
        );
        assert!(patches(&state).is_empty());
    }

    #[tokio::test]
    async fn kube_delete_goes_in_reverse_and_ignores_not_found() {
        let state = Arc::new(Mutex::new(State::default()));
        let url = mock(state.clone());
        let c = client(&url).await;
        // Apply only part of the bundle; the rest is "already gone".
        let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: flux-system}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: flux-system}\n";
        c.apply_bundle(yaml, Duration::from_secs(1)).await.unwrap();
        let whole = format!(
            "{yaml}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: gone}}\n"
        );
        let deleted = c.delete_bundle(&whole).await.unwrap();
        let kinds: Vec<&str> = deleted.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(kinds, ["ConfigMap", "Namespace"]);
        let deletes: Vec<String> = state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.path.clone())
            .collect();
        assert_eq!(
            deletes,
            [
                "/api/v1/namespaces/flux-system/configmaps/settings",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/gone",
                "/api/v1/namespaces/flux-system",
            ]
        );
        // Twice is fine.
        assert!(c.delete_bundle(&whole).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn kube_nodes_ready_wait_names_the_blocking_node() {
        let state = Arc::new(Mutex::new(State::default()));
        state.lock().unwrap().nodes = serde_json::from_str(&data("node-list.json")).unwrap();
        let url = mock(state.clone());
        let c = client(&url).await;
        let err = c
            .wait_nodes_ready(1, Duration::from_millis(600))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("timed out after 0s waiting for the cluster's nodes to be Ready: node kindling-dev-control-plane is not Ready: KubeletNotReady"), "{err}");
        assert!(err.contains("cni plugin not initialized"), "{err}");
        state.lock().unwrap().nodes["items"][0]["status"]["conditions"][1]["status"] =
            json!("True");
        c.wait_nodes_ready(1, Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test]
    async fn kube_cluster_wait_ready_goes_through_the_kubeconfig_context() {
        let state = Arc::new(Mutex::new(State::default()));
        let mut nodes: Value = serde_json::from_str(&data("node-list.json")).unwrap();
        nodes["items"][0]["status"]["conditions"][1]["status"] = json!("True");
        state.lock().unwrap().nodes = nodes;
        let url = mock(state.clone());
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {{server: 'http://127.0.0.1:9'}}\n- name: kind-kindling-dev\n  cluster: {{server: '{url}'}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: other\n  context: {{cluster: other, user: u}}\n- name: kind-kindling-dev\n  context: {{cluster: kind-kindling-dev, user: u}}\ncurrent-context: other\n"
        )).unwrap();
        let profile = kindling::cluster::default_profile(kindling::cluster::Provider::Kind);
        let cluster =
            kindling::cluster::resolve(&profile, "dev", profile.spec.ingress, None).unwrap();
        kindling::cluster::wait_ready(
            &kubeconfig,
            "kind-kindling-dev",
            &cluster,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(
            state
                .lock()
                .unwrap()
                .requests
                .iter()
                .any(|r| r.path == "/api/v1/nodes")
        );
        // The current context points nowhere: only the named one may be used.
        let err =
            kindling::cluster::wait_ready(&kubeconfig, "missing", &cluster, Duration::from_secs(1))
                .await
                .unwrap_err();
        assert!(err.to_string().contains("kubeconfig"), "{err}");
    }

    #[tokio::test]
    async fn kube_nodes_wait_keeps_trying_an_unreachable_api_until_the_deadline() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = client(&format!("http://127.0.0.1:{port}")).await;
        let err = c
            .wait_nodes_ready(1, Duration::from_millis(500))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the API server is not reachable through the context"),
            "{err}"
        );
    }

    #[test]
    fn kube_malformed_bundles_are_rejected_before_anything_is_sent() {
        let err = kindling::kube::parse_bundle("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "object 0 of the bundle is not a Kubernetes object: metadata.name is missing"
        );
        assert_eq!(
            kindling::kube::parse_bundle("---\n# only a comment\n---\n")
                .unwrap()
                .len(),
            0
        );
    }

    /// The fake PersistentVolume controller binds as kube-controller-manager does: the
    /// smallest Available volume of the claim's class whose access modes hold the claim's and
    /// whose size is enough; a claim nothing fits, or of a WaitForFirstConsumer class, stays
    /// Pending.
    #[test]
    fn kube_fake_volume_controller_binds_the_smallest_fitting_volume() {
        use super::common::fake_volumes::bind_volumes;
        use super::common::kube_api::Stored;
        let pv = |name: &str, class: &str, size: &str, modes: Value| Stored {
            group_version: "v1".into(),
            plural: "persistentvolumes".into(),
            namespace: None,
            name: name.into(),
            object: json!({"metadata": {"name": name}, "spec": {"storageClassName": class, "capacity": {"storage": size}, "accessModes": modes}}),
        };
        let pvc = |name: &str, class: &str, size: &str| Stored {
            group_version: "v1".into(),
            plural: "persistentvolumeclaims".into(),
            namespace: Some("app".into()),
            name: name.into(),
            object: json!({"metadata": {"name": name, "namespace": "app", "uid": format!("uid-{name}")}, "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}),
        };
        let mut objects = vec![
            pv("big", "fast", "10Gi", json!(["ReadWriteOnce"])),
            pv(
                "small",
                "fast",
                "1Gi",
                json!(["ReadWriteOnce", "ReadOnlyMany"]),
            ),
            pv("too-small", "fast", "100Mi", json!(["ReadWriteOnce"])),
            pv("other-class", "slow", "1Gi", json!(["ReadWriteOnce"])),
            pv("read-only", "fast", "2Gi", json!(["ReadOnlyMany"])),
            pvc("db", "fast", "512Mi"),
            pvc("huge", "fast", "100Gi"),
            pvc("lazy", "later", "1Gi"),
            pv("lazy-pv", "later", "1Gi", json!(["ReadWriteOnce"])),
            Stored {
                group_version: "storage.k8s.io/v1".into(),
                plural: "storageclasses".into(),
                namespace: None,
                name: "later".into(),
                object: json!({"metadata": {"name": "later"}, "volumeBindingMode": "WaitForFirstConsumer"}),
            },
        ];
        bind_volumes(&mut objects);
        let get = |name: &str| &objects.iter().find(|s| s.name == name).unwrap().object;
        assert_eq!(get("db")["spec"]["volumeName"], "small");
        assert_eq!(get("db")["status"]["phase"], "Bound");
        assert_eq!(get("db")["status"]["capacity"]["storage"], "1Gi");
        assert_eq!(get("small")["spec"]["claimRef"]["name"], "db");
        assert_eq!(get("small")["spec"]["claimRef"]["uid"], "uid-db");
        assert_eq!(get("small")["status"]["phase"], "Bound");
        assert_eq!(get("big")["status"]["phase"], "Available");
        assert_eq!(get("huge")["status"]["phase"], "Pending");
        assert_eq!(get("lazy")["status"]["phase"], "Pending");
        assert_eq!(get("lazy-pv")["status"]["phase"], "Available");
    }
}
