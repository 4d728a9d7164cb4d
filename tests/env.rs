//! Whole `kindling env` flows through the real binary, against the real Docker engine (the
//! local registry container, a node container the fake kind CLI starts, the label sweep), a
//! fake Gitea (recorded REST payloads + real `git http-backend`), and the in-memory Kubernetes
//! API with a controller that plays Flux: it serves the pushed commit as the GitRepository's
//! artifact and marks every entry Ready at it once the root Kustomization is not suspended.

mod common;

mod env {
    use std::path::{Path, PathBuf};
    use std::process::Output;
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::common::fake_gitea::FakeGitea;
    use super::common::kube_api::{FakeApi, Stored, builtin_controllers};
    use super::common::{
        TEST_IMAGE, TEST_REGISTRY_IMAGE, copy_tree, docker, docker_cli, docker_labelled,
        ensure_test_image, ensure_test_registry_image, hostk8s_dir, repo_dir, schemas_dir, unique,
    };

    const PASSWORD: &str = "fake-gitea-admin-password";

    /// The entry names of the stamp in `source` (what the controllers create objects for).
    fn entry_names(stamp_dir: &Path) -> Vec<String> {
        kindling::stamp::load(stamp_dir, None)
            .unwrap()
            .entries
            .iter()
            .map(|e| e.name.clone())
            .collect()
    }

    /// The commit `main` of a bare repository points at.
    fn repo_head(repo: &Path) -> Option<String> {
        std::process::Command::new("git")
            .args(["rev-parse", "--verify", "-q", "refs/heads/main"])
            .current_dir(repo)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    }

    /// What Flux would do, at once: the source at the repository's head, every entry applied
    /// and Ready at it while the root Kustomization is there and not suspended.
    /// Where the controllers read the pushed head from: a bare repository on the host (the
    /// fake Gitea server) or inside the Gitea container of the env named in the cell.
    #[derive(Clone)]
    enum Head {
        Repo(PathBuf),
        Container(std::sync::Arc<std::sync::Mutex<String>>),
    }

    impl Head {
        fn read(&self) -> Option<String> {
            match self {
                Head::Repo(repo) => repo_head(repo),
                Head::Container(name) => {
                    let name = name.lock().unwrap().clone();
                    let out = docker_cli(&[
                        "exec",
                        &name,
                        "git",
                        "--git-dir=/data/git/kindling/source.git",
                        "rev-parse",
                        "--verify",
                        "-q",
                        "refs/heads/main",
                    ]);
                    out.status
                        .success()
                        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
                }
            }
        }
    }

    fn flux_controller(repo: Head, entries: Vec<String>) -> impl FnMut(&mut Vec<Stored>) + Send {
        move |objects: &mut Vec<Stored>| {
            builtin_controllers(objects);
            let head = repo.read();
            let Some(head) = head else { return };
            let revision = format!("main@sha1:{head}");
            let ready = |revision: &str| {
                json!([{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                    "message": format!("Applied revision: {revision}"), "lastTransitionTime": "2026-11-26T08:00:00Z"}])
            };
            let mut root_active = false;
            for s in objects.iter_mut() {
                if s.object["kind"] == "GitRepository" {
                    s.object["status"] = json!({"artifact": {"revision": revision, "digest": "sha256:0", "lastUpdateTime": "2026-11-26T08:00:00Z", "path": "x", "url": "http://x"},
                        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "stored artifact", "lastTransitionTime": "2026-11-26T08:00:00Z"}]});
                }
                if s.object["kind"] == "Kustomization" && s.name.starts_with("kindling-") {
                    root_active = s.object["spec"]["suspend"] != true;
                    s.object["status"] =
                        json!({"lastAppliedRevision": revision, "conditions": ready(&revision)});
                }
            }
            if root_active {
                for entry in &entries {
                    let object = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                        "metadata": {"name": entry, "namespace": "flux-system", "generation": 1},
                        "spec": {"interval": "10m", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "kindling"}},
                        "status": {"observedGeneration": 1, "lastAppliedRevision": revision, "conditions": ready(&revision)}});
                    match objects
                        .iter_mut()
                        .find(|s| s.plural == "kustomizations" && s.name == *entry)
                    {
                        Some(s) => {
                            s.object["status"] = object["status"].clone();
                        }
                        None => objects.push(Stored {
                            group_version: "kustomize.toolkit.fluxcd.io/v1".into(),
                            plural: "kustomizations".into(),
                            namespace: Some("flux-system".into()),
                            name: entry.to_string(),
                            object,
                        }),
                    }
                }
            } else if !objects
                .iter()
                .any(|s| s.plural == "kustomizations" && s.name.starts_with("kindling-"))
            {
                // The root is gone: Flux prunes what it applied.
                objects.retain(|s| s.plural != "kustomizations" || s.name.starts_with("kindling-"));
            }
        }
    }

    /// What Argo CD would do, at once: with the root Application automated, every child
    /// Application exists, Synced and Healthy at the repository's head; without the root,
    /// the children are gone (the resources finalizer).
    fn argo_controller(repo: Head, entries: Vec<String>) -> impl FnMut(&mut Vec<Stored>) + Send {
        move |objects: &mut Vec<Stored>| {
            builtin_controllers(objects);
            let head = repo.read();
            let Some(head) = head else { return };
            let status = json!({"sync": {"status": "Synced", "revision": head}, "health": {"status": "Healthy"}});
            let root = objects
                .iter_mut()
                .find(|s| s.plural == "applications" && s.name.starts_with("kindling-"));
            let automated = match root {
                Some(root) => {
                    let automated = root.object["spec"]["syncPolicy"]["automated"].is_object();
                    if automated {
                        root.object["status"] = status.clone();
                    }
                    automated
                }
                None => {
                    objects.retain(|s| s.plural != "applications");
                    return;
                }
            };
            if !automated {
                return;
            }
            for entry in &entries {
                match objects.iter_mut().find(|s| s.plural == "applications" && s.name == *entry) {
                    Some(s) => s.object["status"] = status.clone(),
                    None => objects.push(Stored {
                        group_version: "argoproj.io/v1alpha1".into(),
                        plural: "applications".into(),
                        namespace: Some("argocd".into()),
                        name: entry.to_string(),
                        object: json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                            "metadata": {"name": entry, "namespace": "argocd"},
                            "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc"}},
                            "status": status}),
                    }),
                }
            }
        }
    }

    /// A fake provider CLI `name` in `bin`, with a kubeconfig template (`NAME` replaced by the
    /// cluster) whose context `<context>-NAME` points at the fake API.
    fn install_fake_cli(bin: &Path, name: &str, context: &str, api_url: &str, script: &str) {
        std::fs::create_dir_all(bin).unwrap();
        let c = format!("{context}-NAME");
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {c}\n  cluster:\n    server: {api_url}\ncontexts:\n- name: {c}\n  context:\n    cluster: {c}\n    user: {c}\ncurrent-context: {c}\nusers:\n- name: {c}\n  user:\n    token: fake\n"
        );
        std::fs::write(bin.join(format!("{name}-kubeconfig.template")), kubeconfig).unwrap();
        let path = bin.join(name);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn fake_k3d(bin: &Path, api_url: &str) {
        let script = format!(
            r#"#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/k3d-calls"
touch "$here/k3d-clusters"
case "$1 $2" in
  "cluster list")
    printf '['; sep=''; while read -r c; do printf '%s{{"name":"%s","nodes":[]}}' "$sep" "$c"; sep=','; done < "$here/k3d-clusters"; printf ']\n' ;;
  "cluster create")
    name=$(sed -n 's/^  name: //p' "$4" | head -1)
    docker network create "k3d-$name" >/dev/null 2>&1
    label=$(sed -n 's/^    - label: \(dev.kindling.env=.*\)$/\1/p' "$4" | head -1)
    docker run -d --name "k3d-$name-server-0" --label k3d.cluster="$name" --label "$label" --network "k3d-$name" {TEST_IMAGE} sleep 1000000 >/dev/null || exit 1
    echo "$name" >> "$here/k3d-clusters" ;;
  "cluster delete")
    docker rm -f "k3d-$3-server-0" >/dev/null 2>&1
    docker network rm "k3d-$3" >/dev/null 2>&1
    grep -vx "$3" "$here/k3d-clusters" > "$here/k3d-clusters.$$"; mv "$here/k3d-clusters.$$" "$here/k3d-clusters" ;;
  "kubeconfig get") sed "s/NAME/$3/g" "$here/k3d-kubeconfig.template" ;;
  "node list")
    printf '['; sep=''; while read -r c; do printf '%s{{"name":"k3d-%s-server-0","role":"server","runtimeLabels":{{"k3d.cluster":"%s"}}}}' "$sep" "$c" "$c"; sep=','; done < "$here/k3d-clusters"; printf ']\n' ;;
  *) echo "fake k3d: unexpected $*" >&2; exit 2 ;;
esac
"#
        );
        install_fake_cli(bin, "k3d", "k3d", api_url, &script);
    }

    /// The `kind` network every fake kind cluster joins, made once: fake kind CLIs starting
    /// side by side would each create it, and Docker allows two networks of one name.
    fn ensure_kind_network() {
        static MADE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        MADE.get_or_init(|| {
            let ids = docker_cli(&["network", "ls", "-q", "--filter", "name=^kind$"]);
            let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            match ids.len() {
                0 => assert!(docker_cli(&["network", "create", "kind"]).status.success()),
                1 => {}
                // Left by an earlier run that raced: keep one.
                _ => {
                    for id in &ids[1..] {
                        docker_cli(&["network", "rm", id]);
                    }
                }
            }
        });
    }

    struct Harness {
        /// With a Gitea container (the test image) instead of the external fake: the env whose
        /// container the controllers read from.
        docker_gitea: Option<std::sync::Arc<std::sync::Mutex<String>>>,
        dir: tempfile::TempDir,
        api: FakeApi,
        gitea: FakeGitea,
    }

    fn fake_kind(bin: &Path, api_url: &str) {
        let script = format!(
            r#"#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/kind-calls"
touch "$here/clusters"
case "$1 $2" in
  "get clusters") cat "$here/clusters" ;;
  "create cluster")
    name=$4
    if [ -e "$here/fail-create" ]; then echo "ERROR: failed to create cluster: node did not become ready" >&2; exit 1; fi
    if [ -e "$here/slow-create" ]; then sleep 3; fi
    docker network inspect kind >/dev/null 2>&1 || docker network create kind >/dev/null 2>&1
    docker run -d --name "$name-control-plane" --label io.x-k8s.kind.cluster="$name" --network kind {TEST_IMAGE} sleep 1000000 >/dev/null || exit 1
    echo "$name" >> "$here/clusters" ;;
  "delete cluster")
    name=$4
    docker rm -f "$name-control-plane" >/dev/null 2>&1
    grep -vx "$name" "$here/clusters" > "$here/clusters.$$"; mv "$here/clusters.$$" "$here/clusters" ;;
  "get kubeconfig") sed "s/NAME/$4/g" "$here/kind-kubeconfig.template" ;;
  "get nodes") echo "$4-control-plane" ;;
  *) echo "fake kind: unexpected $*" >&2; exit 2 ;;
esac
"#
        );
        install_fake_cli(bin, "kind", "kind", api_url, &script);
    }

    /// A Flux-shaped install manifest (real CRDs + a controller Deployment) under the pinned
    /// file name, for `--manifests-dir`.
    fn manifests_dir(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let crd = |f: &str| std::fs::read_to_string(schemas_dir().join(f)).unwrap();
        let text = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: flux-system}}\n---\n{}\n---\n{}\n---\n{}\n---\n{}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: kustomize-controller, namespace: flux-system}}\nspec: {{}}\n",
            crd("flux-source.toolkit.fluxcd.io_gitrepositories.yaml"),
            crd("flux-source.toolkit.fluxcd.io_helmrepositories.yaml"),
            crd("flux-kustomize.toolkit.fluxcd.io_kustomizations.yaml"),
            crd("flux-helm.toolkit.fluxcd.io_helmreleases.yaml"),
        );
        let name = kindling::engine::manifests::pinned(kindling::engine::Engine::Flux).file_name();
        std::fs::write(dir.join(name), text).unwrap();
        // Argo CD's manifest names no namespace; kindling puts it into `argocd`.
        let argo = format!(
            "{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: argocd-cm}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: argocd-server}}\nspec: {{}}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: argocd-application-controller}}\nspec: {{replicas: 1}}\n",
            crd("argocd-application-crd.yaml")
        );
        let name = kindling::engine::manifests::pinned(kindling::engine::Engine::Argo).file_name();
        std::fs::write(dir.join(name), argo).unwrap();
    }

    impl Harness {
        fn new() -> Harness {
            Harness::with_engine("flux")
        }

        fn with_engine(engine: &str) -> Harness {
            Harness::build(engine, false)
        }

        /// With `hostk8s`, the source is a copy of the HostK8s fixture repository
        /// (`software/stacks/sample`), run unchanged; otherwise kindling's sample stamp.
        fn build(engine: &str, hostk8s: bool) -> Harness {
            Harness::build_with(engine, hostk8s, false)
        }

        fn build_with(engine: &str, hostk8s: bool, docker_gitea: bool) -> Harness {
            ensure_kind_network();
            ensure_test_image();
            ensure_test_registry_image();
            let dir = tempfile::tempdir().unwrap();
            let source = dir.path().join("source");
            let stamp_dir = if hostk8s {
                copy_tree(&hostk8s_dir().join("software"), &source.join("software"));
                source.join("software/stacks/sample")
            } else {
                copy_tree(
                    &repo_dir().join("stamps/sample"),
                    &source.join("stamps/sample"),
                );
                source.join("stamps/sample")
            };
            let entries = entry_names(&stamp_dir);
            let gitea = FakeGitea::start("kindling", PASSWORD);
            let cell = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let repo = if docker_gitea {
                super::common::ensure_test_gitea_image();
                Head::Container(cell.clone())
            } else {
                Head::Repo(gitea.root.join("kindling/source.git"))
            };
            let api = match engine {
                "argo" => FakeApi::start(Some(Box::new(argo_controller(repo, entries)))),
                _ => FakeApi::start(Some(Box::new(flux_controller(repo, entries)))),
            };
            api.update(|objects| {
                objects.push(Stored {
                    group_version: "v1".into(),
                    plural: "nodes".into(),
                    namespace: None,
                    name: "node".into(),
                    object: json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "kindling-control-plane"},
                        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}]}}),
                });
            });
            fake_kind(&dir.path().join("bin"), &api.url);
            fake_k3d(&dir.path().join("bin"), &api.url);
            manifests_dir(&dir.path().join("manifests"));
            // Each harness starts its registry ports elsewhere: tests run side by side.
            let registry_port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            std::fs::write(
                dir.path().join("profile.yaml"),
                format!("apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: test}}\nspec:\n  provider: kind\n  kubernetesVersion: \"1.37\"\n  ingress: {{http: 18080, https: 18443}}\n  registry: true\n  registryPort: {registry_port}\n  imageCaches: false\n"),
            )
            .unwrap();
            Harness {
                docker_gitea: docker_gitea.then_some(cell),
                dir,
                api,
                gitea,
            }
        }

        fn path(&self, p: &str) -> PathBuf {
            self.dir.path().join(p)
        }

        fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Command {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"));
            let path = format!(
                "{}:{}",
                self.path("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            );
            cmd.args(args)
                .current_dir(self.path("source"))
                .env("PATH", path)
                .env("CI", "true")
                .env("KINDLING_DATA_DIR", self.path("data"))
                .env("KINDLING_CACHE_DIR", self.path("cache"))
                .env("KINDLING_REGISTRY_IMAGE", TEST_REGISTRY_IMAGE)
                .env("KINDLING_MANIFESTS_DIR", self.path("manifests"))
                // The fake API's stand-in manifests are not the pinned releases.
                .env("KINDLING_MANIFESTS_MODIFIED", "1")
                .env("KINDLING_STEP_TIMEOUT", "30")
                .env("KINDLING_POLL_MS", "100")
                .env("KINDLING_LOCK_WAIT", "0")
                .env_remove("KINDLING_FAIL_AT");
            if self.docker_gitea.is_some() {
                cmd.env("KINDLING_GITEA_IMAGE", super::common::TEST_GITEA_IMAGE)
                    .env_remove("KINDLING_GITEA_URL");
            } else {
                cmd.env("KINDLING_GITEA_URL", &self.gitea.url)
                    .env("KINDLING_GITEA_PASSWORD", PASSWORD)
                    .env(
                        "KINDLING_GITEA_CLUSTER_URL",
                        "http://gitea.kindling.test/kindling/source.git",
                    );
            }
            for (k, v) in extra {
                cmd.env(k, v);
            }
            cmd
        }

        /// Runs with `--output json`; must succeed with one JSON document.
        fn json(&self, args: &[&str]) -> Value {
            let mut all = args.to_vec();
            all.extend(["--output", "json"]);
            ok(&self.run(&all, &[]))
        }

        fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
            self.command(args, extra).output().unwrap()
        }

        fn create(&self, env: &str, extra: &[(&str, &str)]) -> Output {
            let profile = self.path("profile.yaml");
            self.run(
                &[
                    "env",
                    "create",
                    env,
                    "--stamp",
                    "sample",
                    "--profile",
                    profile.to_str().unwrap(),
                    "--wait",
                    "--timeout",
                    "60s",
                    "--output",
                    "json",
                ],
                extra,
            )
        }

        fn state(&self, env: &str) -> Value {
            let text = std::fs::read_to_string(
                self.path("data").join("envs").join(env).join("state.json"),
            )
            .unwrap();
            serde_json::from_str(&text).unwrap()
        }
    }

    /// The names of the steps a state records as done.
    fn done_steps(state: &Value) -> Vec<&str> {
        state["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect()
    }

    /// The failure document of `out` names `what` in its error.
    fn error_says(out: &Output, what: &str) -> Value {
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert_eq!(doc["ok"], false, "{doc}");
        let error = doc["error"].as_str().unwrap_or_default();
        assert!(error.contains(what), "{doc}");
        doc
    }

    fn ok(out: &Output) -> Value {
        assert!(
            out.status.success(),
            "exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn container_exists(name: &str) -> bool {
        docker_cli(&["container", "inspect", name]).status.success()
    }

    fn delete_clean(h: &Harness, env: &str) {
        let out = h.json(&["env", "delete", env]);
        assert_eq!(out["deleted"][0]["env"], env);
        assert!(
            docker_labelled(env).is_empty(),
            "left behind: {:?}",
            docker_labelled(env)
        );
        assert!(!container_exists(&format!("kindling-{env}-control-plane")));
        assert!(!h.path("data/envs").join(env).exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_create_status_sync_delete_round_trip() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("rt");
        let bench = std::env::var_os("KINDLING_BENCH_REPORT").is_some();
        let t = std::time::Instant::now();
        let created = ok(&h.create(&env, &[]));
        if bench {
            let steps: Vec<String> = created["env"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| format!("{}={}ms", s["name"].as_str().unwrap(), s["durationMs"]))
                .collect();
            println!(
                "bench: create --wait {:.2}s ({})",
                t.elapsed().as_secs_f64(),
                steps.join(" ")
            );
        }
        let report = &created["env"];
        let steps = done_steps(report);
        assert_eq!(steps, kindling::env::create::STEPS);
        assert!(
            report["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["status"] == "done" && s["durationMs"].is_u64())
        );
        assert_eq!(report["context"], format!("kind-kindling-{env}"));
        let https = h.state(&env)["ports"]["https"].as_u64().unwrap();
        assert_eq!(
            report["ingressUrls"],
            json!([
                format!("https://api.localhost:{https}"),
                format!("https://www.localhost:{https}")
            ])
        );
        assert!(
            report["status"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["readiness"] == "ready")
        );
        // Real Docker objects: the registry (labelled, loopback only) and the fake node.
        let registry = format!("kindling-{env}-registry");
        assert!(container_exists(&registry));
        let ports = String::from_utf8_lossy(&docker_cli(&["port", &registry]).stdout).to_string();
        assert!(ports.contains("127.0.0.1:"), "{ports}");
        assert!(!ports.contains("0.0.0.0"), "{ports}");
        assert!(container_exists(&format!("kindling-{env}-control-plane")));
        // The node got its registry mirror config.
        let registry_port = h.state(&env)["ports"]["registry"].as_u64().unwrap();
        let hosts = docker_cli(&[
            "exec",
            &format!("kindling-{env}-control-plane"),
            "cat",
            &format!("/etc/containerd/certs.d/localhost:{registry_port}/hosts.toml"),
        ]);
        assert!(
            hosts.status.success(),
            "{}",
            String::from_utf8_lossy(&hosts.stderr)
        );
        // State: 0600, credentials inside, every step recorded.
        let state_path = h.path("data/envs").join(&env).join("state.json");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&state_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let state = h.state(&env);
        assert_eq!(state["steps"].as_array().unwrap().len(), 11);
        let commit = state["commit"].as_str().unwrap().to_string();
        assert_eq!(h.gitea.head().as_deref(), Some(commit.as_str()));
        // The cluster got the CA, the bootstrap secret, the Flux bootstrap objects.
        assert!(h.api.object("Secret", "root-ca-secret").is_some());
        let db = h.api.object("Secret", "database-credentials").unwrap();
        assert_eq!(db["metadata"]["namespace"], "database");
        let repo = h.api.object("GitRepository", "kindling").unwrap();
        assert_eq!(
            repo["spec"]["url"],
            "http://gitea.kindling.test/kindling/source.git"
        );
        // The token never reaches stdout.
        assert!(
            !String::from_utf8_lossy(&h.create(&env, &[]).stdout)
                .contains(&super::common::fake_gitea::recorded_token())
        );

        // status: JSON and the text table.
        let status = h.json(&["env", "status", &env]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");
        assert_eq!(status["status"]["registry"]["state"], "running");
        let text = h.run(&["env", "status", &env], &[]);
        let table = String::from_utf8_lossy(&text.stdout);
        assert!(
            table.contains("ENTRY") && table.contains("certs-issuer") && table.contains("Ready"),
            "{table}"
        );
        assert!(
            !table.contains('\u{1b}') && !String::from_utf8_lossy(&text.stderr).contains('\u{1b}')
        );

        // Edit → sync → the new commit is what every entry applied.
        std::fs::write(
            h.path("source/stamps/sample/applications/website/extra.txt"),
            "edited\n",
        )
        .unwrap();
        let t = std::time::Instant::now();
        let synced = ok(&h.run(
            &["env", "sync", &env, "--output", "json", "--timeout", "30s"],
            &[],
        ));
        if bench {
            println!("bench: sync {:.2}s", t.elapsed().as_secs_f64());
        }
        let new_commit = synced["sync"]["commit"].as_str().unwrap();
        assert_ne!(new_commit, commit);
        assert_eq!(synced["sync"]["changed"], true);
        assert!(
            synced["sync"]["requested"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "GitRepository kindling")
        );
        let entries = synced["sync"]["status"]["entries"].as_array().unwrap();
        assert!(
            entries
                .iter()
                .all(|e| e["revision"] == format!("main@sha1:{new_commit}")),
            "{entries:#?}"
        );
        // Nothing changed: same commit, still fine.
        let again = ok(&h.run(&["env", "sync", &env, "--output", "json", "--no-wait"], &[]));
        assert_eq!(again["sync"]["changed"], false);

        // kubeconfig and list.
        let kc = h.run(&["env", "kubeconfig", &env], &[]);
        assert!(
            String::from_utf8_lossy(&kc.stdout)
                .trim()
                .ends_with("kubeconfig")
        );
        let list = h.json(&["env", "list"]);
        let mine = list["envs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == env.as_str())
            .unwrap()
            .clone();
        assert_eq!(mine["state"], "complete");

        let t = std::time::Instant::now();
        delete_clean(&h, &env);
        if bench {
            println!("bench: delete {:.2}s", t.elapsed().as_secs_f64());
        }
        // Twice is fine and says so.
        let twice = h.run(&["env", "delete", &env], &[]);
        assert!(twice.status.success());
        assert!(String::from_utf8_lossy(&twice.stdout).contains("nothing to delete"));
    }

    fn fault_then_rerun(steps: &[&str]) {
        let h = Harness::new();
        for step in steps {
            let env = unique("f");
            let failed = h.create(&env, &[("KINDLING_FAIL_AT", step)]);
            assert_eq!(
                failed.status.code(),
                Some(1),
                "{step}: {}",
                String::from_utf8_lossy(&failed.stderr)
            );
            let doc: Value = serde_json::from_slice(&failed.stdout).unwrap();
            assert_eq!(doc["ok"], false);
            assert!(
                doc["error"].as_str().unwrap().contains("failed on purpose"),
                "{doc}"
            );
            let state = h.state(&env);
            let done: Vec<&str> = state["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            assert!(
                !done.contains(step),
                "{step} must not be recorded: {done:?}"
            );
            let rerun = ok(&h.create(&env, &[]));
            let skipped: Vec<&str> = rerun["env"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["status"] == "skipped")
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            // What finished before the fault is not redone (among the steps that can skip).
            for s in ["cluster", "gitea", "registry", "engine"] {
                if done.contains(&s) {
                    assert!(
                        skipped.contains(&s),
                        "{step}: {s} redone; skipped {skipped:?}"
                    );
                }
            }
            assert_eq!(
                h.state(&env)["steps"].as_array().unwrap().len(),
                11,
                "{step}"
            );
            delete_clean(&h, &env);
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_fault_early_steps_rerun_completes_and_delete_cleans_up() {
        if docker().await.is_none() {
            return;
        }
        fault_then_rerun(&["preflight", "ca", "cluster", "gitea"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_fault_middle_steps_rerun_completes_and_delete_cleans_up() {
        if docker().await.is_none() {
            return;
        }
        fault_then_rerun(&["registry", "connect", "push", "engine"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_fault_late_steps_rerun_completes_and_delete_cleans_up() {
        if docker().await.is_none() {
            return;
        }
        fault_then_rerun(&["secrets", "bootstrap", "reconcile"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_failed_cluster_create_is_reported_and_delete_cleans_a_half_made_env() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        std::fs::write(h.path("bin/fail-create"), "").unwrap();
        let env = unique("half");
        let out = h.create(&env, &[]);
        assert_eq!(out.status.code(), Some(1));
        error_says(&out, "node did not become ready");
        // Gitea and the registry finished beside the failed cluster, and are recorded.
        let state = h.state(&env);
        let done = done_steps(&state);
        assert!(
            done.contains(&"registry") && done.contains(&"gitea"),
            "{done:?}"
        );
        assert!(!docker_labelled(&env).is_empty());
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_two_envs_side_by_side_get_their_own_ports() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let (a, b) = (unique("a"), unique("b"));
        // Each env has its own Gitea (as with the containers kindling starts).
        let second = FakeGitea::start("kindling", PASSWORD);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| h.create(&a, &[]));
            let tb = s.spawn(|| h.create(&b, &[("KINDLING_GITEA_URL", second.url.as_str())]));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        ok(&ra);
        ok(&rb);
        let (pa, pb) = (h.state(&a)["ports"].clone(), h.state(&b)["ports"].clone());
        for key in ["http", "https", "registry"] {
            assert_ne!(pa[key], pb[key], "{key}: {pa} vs {pb}");
        }
        let list = h.json(&["env", "list"]);
        let names: Vec<&str> = list["envs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&a.as_str()) && names.contains(&b.as_str()),
            "{names:?}"
        );
        delete_clean(&h, &a);
        // b is untouched by a's delete.
        assert!(container_exists(&format!("kindling-{b}-registry")));
        delete_clean(&h, &b);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_hold_waits_for_approve_and_restart_rebootstraps() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("hold");
        let profile = h.path("profile.yaml");
        let created = h.json(&[
            "env",
            "create",
            &env,
            "--stamp",
            "sample",
            "--profile",
            profile.to_str().unwrap(),
            "--hold",
        ]);
        assert_eq!(created["env"]["awaitingApproval"], true);
        let status = h.json(&["env", "status", &env]);
        assert_eq!(status["status"]["reconciliation"]["awaitingApproval"], true);
        assert_eq!(status["status"]["ready"], false);
        assert!(
            status["status"]["reconciliation"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["readiness"] == "missing")
        );
        // --wait on a held env times out with exit 3 and says why.
        let waited = h.run(
            &[
                "env",
                "status",
                &env,
                "--wait",
                "--timeout",
                "1s",
                "--output",
                "json",
            ],
            &[],
        );
        assert_eq!(waited.status.code(), Some(3));
        error_says(&waited, "awaiting approval");

        let approved = h.json(&["env", "approve", &env]);
        assert_eq!(approved["approve"]["wasHeld"], true);
        let status = h.json(&["env", "status", &env, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true, "{status:#}");

        let restarted = h.json(&["env", "restart", &env]);
        assert_eq!(restarted["restart"]["stamp"], "sample");
        let deletes = h
            .api
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE" && r.path.contains("kustomizations/kindling-sample"))
            .count();
        assert_eq!(deletes, 1);
        let status = h.json(&["env", "status", &env, "--wait", "--timeout", "30s"]);
        assert_eq!(status["status"]["ready"], true);
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_lock_contention_and_missing_envs_are_clear() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("lock");
        ok(&h.create(&env, &[]));
        // Another live kindling holds the env.
        let mut holder = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let lock = h.path("data/envs").join(&env).join("lock");
        std::fs::write(&lock, format!("{} env create\n", holder.id())).unwrap();
        let out = h.run(&["env", "sync", &env], &[]);
        holder.kill().unwrap();
        let _ = holder.wait();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is busy") && err.contains(&format!("pid {}", holder.id())),
            "{err}"
        );
        // The holder is gone now: the stale lock is taken over.
        ok(&h.run(&["env", "sync", &env, "--output", "json", "--no-wait"], &[]));
        let missing = h.run(&["env", "status", "no-such-env"], &[]);
        assert_eq!(missing.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("there is no env no-such-env"));
        let bad = h.run(&["env", "create", "Bad_Name"], &[]);
        assert_eq!(bad.status.code(), Some(2));
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_list_shows_orphans_and_delete_removes_them() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let orphan = unique("orphan");
        let created = docker_cli(&[
            "volume",
            "create",
            "--label",
            &format!("dev.kindling.env={orphan}"),
            &format!("kindling-{orphan}-data"),
        ]);
        assert!(created.status.success());
        let list = h.json(&["env", "list"]);
        let entry = list["envs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == orphan.as_str())
            .unwrap()
            .clone();
        assert_eq!(entry["state"], "orphaned");
        assert_eq!(
            entry["docker"]["volumes"],
            json!([format!("kindling-{orphan}-data")])
        );
        let deleted = h.json(&["env", "delete", &orphan]);
        assert_eq!(
            deleted["deleted"][0]["removed"]["volumes"],
            json!([format!("kindling-{orphan}-data")])
        );
        assert!(docker_labelled(&orphan).is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_dry_run_touches_nothing_and_text_output_has_no_escape_codes() {
        let h = Harness::new();
        let profile = h.path("profile.yaml");
        let env = unique("dry");
        let out = h.json(&[
            "env",
            "create",
            &env,
            "--stamp",
            "sample",
            "--profile",
            profile.to_str().unwrap(),
            "--dry-run",
        ]);
        let plan = &out["plan"];
        assert_eq!(plan["steps"].as_array().unwrap().len(), 11);
        assert_eq!(plan["cluster"]["name"], format!("kindling-{env}"));
        assert!(
            plan["clusterConfig"]
                .as_str()
                .unwrap()
                .contains("kind.x-k8s.io/v1alpha4")
        );
        let secret = plan["bootstrap"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "Secret")
            .unwrap();
        assert!(
            secret["data"]
                .as_object()
                .unwrap()
                .values()
                .all(|v| v == "<redacted>")
        );
        assert!(!h.path("data").exists(), "a dry run writes no state");
        assert!(docker_labelled(&env).is_empty());
        let text = h.run(
            &[
                "env",
                "create",
                &env,
                "--stamp",
                "sample",
                "--profile",
                profile.to_str().unwrap(),
                "--dry-run",
            ],
            &[],
        );
        assert!(text.status.success());
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&text.stdout),
            String::from_utf8_lossy(&text.stderr)
        );
        assert!(
            all.contains("nothing was changed") && !all.contains('\u{1b}'),
            "{all}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_watch_syncs_an_edit() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("w");
        ok(&h.create(&env, &[]));
        let before = h.state(&env)["commit"].as_str().unwrap().to_string();
        let mut watch = h
            .command(
                &["env", "watch", &env, "--debounce-ms", "100"],
                &[("KINDLING_WATCH_MAX_SYNCS", "1")],
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(800));
        std::fs::write(
            h.path("source/stamps/sample/applications/api/note.txt"),
            "watched\n",
        )
        .unwrap();
        let edited = std::time::Instant::now();
        let deadline = edited + Duration::from_secs(60);
        while watch.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "watch did not sync");
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::env::var_os("KINDLING_BENCH_REPORT").is_some() {
            // Edit → pushed → every entry reconciled at the new commit (watch exits then).
            println!(
                "bench: watch edit to reconciled {:.2}s",
                edited.elapsed().as_secs_f64()
            );
        }
        let after = h.state(&env)["commit"].as_str().unwrap().to_string();
        assert_ne!(before, after);
        assert_eq!(h.gitea.head().as_deref(), Some(after.as_str()));
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_k3d_with_argo_round_trip() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::with_engine("argo");
        let env = unique("argo");
        let profile = h.path("profile.yaml");
        let created = h.json(&[
            "env",
            "create",
            &env,
            "--stamp",
            "sample",
            "--profile",
            profile.to_str().unwrap(),
            "--provider",
            "k3d",
            "--engine",
            "argo",
            "--wait",
            "--timeout",
            "60s",
        ]);
        assert_eq!(created["env"]["context"], format!("k3d-kindling-{env}"));
        assert_eq!(created["env"]["engine"], "argo");
        assert!(
            created["env"]["status"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["readiness"] == "ready" && e["sync"] == "Synced")
        );
        let secret = h.api.object("Secret", "kindling-repository").unwrap();
        assert_eq!(
            secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"],
            "repository"
        );
        assert_eq!(secret["metadata"]["namespace"], "argocd");
        let cm = h.api.object("ConfigMap", "argocd-cm").unwrap();
        assert!(
            cm["data"]
                .as_object()
                .is_some_and(|d| d.keys().any(|k| k.contains("health"))),
            "{cm}"
        );
        // The registry joined the k3d cluster's network.
        let networks = docker_cli(&[
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks}}",
            &format!("kindling-{env}-registry"),
        ]);
        assert!(String::from_utf8_lossy(&networks.stdout).contains(&format!("k3d-kindling-{env}")));
        std::fs::write(
            h.path("source/stamps/sample/applications/api/extra.txt"),
            "edited\n",
        )
        .unwrap();
        let synced = ok(&h.run(
            &["env", "sync", &env, "--output", "json", "--timeout", "30s"],
            &[],
        ));
        let commit = synced["sync"]["commit"].as_str().unwrap();
        assert_eq!(synced["sync"]["status"]["source"]["revision"], commit);
        let refreshed = h.api.object("Application", "api").unwrap();
        assert_eq!(
            refreshed["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
            "normal"
        );
        // The node carries the env label (k3d runtime label) but is the provider's to remove:
        // kindling's own sweep must not take it first.
        let deleted = h.json(&["env", "delete", &env]);
        let removed = deleted["deleted"][0]["removed"]["containers"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            !removed
                .iter()
                .any(|c| c.as_str().unwrap().contains("server-0")),
            "{removed:?}"
        );
        assert_eq!(
            deleted["deleted"][0]["cluster"],
            format!("k3d kindling-{env}")
        );
        assert!(
            docker_labelled(&env).is_empty(),
            "{:?}",
            docker_labelled(&env)
        );
        assert!(
            !docker_cli(&["network", "inspect", &format!("k3d-kindling-{env}")])
                .status
                .success()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_ctrl_c_stops_between_steps_and_a_rerun_finishes() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        std::fs::write(h.path("bin/slow-create"), "").unwrap();
        let env = unique("int");
        let profile = h.path("profile.yaml");
        let child = h
            .command(
                &[
                    "env",
                    "create",
                    &env,
                    "--stamp",
                    "sample",
                    "--profile",
                    profile.to_str().unwrap(),
                    "--output",
                    "json",
                ],
                &[],
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The cluster step is under way (the fake kind sleeps 3s): interrupt it.
        std::thread::sleep(Duration::from_millis(1500));
        let kill = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        error_says(&out, "interrupted after step");
        // The step under way finished and was recorded; nothing after it ran.
        let state = h.state(&env);
        let done = done_steps(&state);
        assert!(done.contains(&"cluster"), "{done:?}");
        assert!(!done.contains(&"push"), "{done:?}");
        std::fs::remove_file(h.path("bin/slow-create")).unwrap();
        let rerun = ok(&h.create(&env, &[]));
        let skipped: Vec<&str> = rerun["env"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "skipped")
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert!(skipped.contains(&"cluster"), "{skipped:?}");
        delete_clean(&h, &env);
    }

    /// The documented JSON skeletons of docs/json-output.md, by heading.
    fn documented_shapes() -> Vec<(String, Value)> {
        let text = std::fs::read_to_string(repo_dir().join("docs/json-output.md")).unwrap();
        let mut out = Vec::new();
        let mut heading = String::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(h) = line.strip_prefix("## ") {
                heading = h.trim().to_string();
            } else if line.trim() == "```json" && !heading.is_empty() {
                let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
                out.push((
                    heading.clone(),
                    serde_json::from_str(&block.join("\n"))
                        .unwrap_or_else(|e| panic!("{heading}: {e}")),
                ));
            }
        }
        out
    }

    /// Every key of `documented` is in `real`, with the same JSON type, recursively (arrays:
    /// the first element).
    fn follows(real: &Value, documented: &Value, path: &str) -> Result<(), String> {
        match (documented, real) {
            (Value::Object(d), Value::Object(r)) => {
                for (k, v) in d {
                    let inner = r.get(k).ok_or_else(|| format!("{path}.{k} is missing"))?;
                    follows(inner, v, &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            (Value::Array(d), Value::Array(r)) => match (d.first(), r.first()) {
                (Some(d), Some(r)) => follows(r, d, &format!("{path}[0]")),
                _ => Ok(()),
            },
            (Value::String(_), Value::String(_))
            | (Value::Number(_), Value::Number(_))
            | (Value::Bool(_), Value::Bool(_)) => Ok(()),
            (d, r) => Err(format!("{path}: documented {d}, got {r}")),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_json_documents_follow_docs_json_output() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("doc");
        let profile = h.path("profile.yaml");
        let mut real: Vec<(&str, Value)> = Vec::new();
        real.push((
            "kindling env create --dry-run",
            h.json(&[
                "env",
                "create",
                &env,
                "--stamp",
                "sample",
                "--profile",
                profile.to_str().unwrap(),
                "--dry-run",
            ]),
        ));
        real.push(("kindling env create", ok(&h.create(&env, &[]))));
        real.push(("kindling env status", h.json(&["env", "status", &env])));
        std::fs::write(
            h.path("source/stamps/sample/applications/api/doc.txt"),
            "x\n",
        )
        .unwrap();
        real.push((
            "kindling env sync",
            ok(&h.run(&["env", "sync", &env, "--output", "json", "--no-wait"], &[])),
        ));
        real.push(("kindling env list", h.json(&["env", "list"])));
        real.push(("kindling env delete", h.json(&["env", "delete", &env])));
        let documented = documented_shapes();
        assert_eq!(
            documented.len(),
            6,
            "{:?}",
            documented.iter().map(|d| &d.0).collect::<Vec<_>>()
        );
        for (heading, doc) in &documented {
            let (_, value) = real
                .iter()
                .find(|(h, _)| h == heading)
                .unwrap_or_else(|| panic!("no run for {heading}"));
            follows(value, doc, heading).unwrap_or_else(|e| panic!("{e}\n{value:#}"));
        }
        // And the failure document.
        let failed = h.run(&["env", "status", "no-such-env", "--output", "json"], &[]);
        let doc: Value = serde_json::from_slice(&failed.stdout).unwrap();
        follows(
            &doc,
            &json!({"ok": false, "exitCode": 1, "error": "", "problems": []}),
            "error",
        )
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_runs_a_hostk8s_stack_unchanged() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::build("flux", true);
        let env = unique("hk");
        // `sample` is found under software/stacks/ of the source tree.
        let created = ok(&h.create(&env, &[]));
        let entries: Vec<&str> = created["env"]["status"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            entries,
            [
                "component-certs-manager",
                "component-certs-ca",
                "component-certs-issuer",
                "app-sample"
            ]
        );
        // The pushed snapshot holds the stack as it was, plus the rendered bundle.
        let listing = super::common::fake_gitea::git(
            &h.gitea.root.join("kindling/source.git"),
            &["ls-tree", "-r", "--name-only", "main"],
        );
        assert!(
            listing.contains("software/stacks/sample/stack.yaml"),
            "{listing}"
        );
        assert!(
            listing.contains(".kindling/flux/stamp/app-sample.yaml"),
            "{listing}"
        );
        let root = h.api.object("Kustomization", "kindling-sample").unwrap();
        assert_eq!(root["spec"]["path"], "./.kindling/flux/stamp");
        // The stack makes its own root-ca-secret with cert-manager: kindling leaves it alone
        // rather than fight cert-manager over it, and says so.
        assert!(h.api.object("Secret", "root-ca-secret").is_none());
        let rerun = h.run(
            &[
                "env",
                "create",
                &env,
                "--stamp",
                "sample",
                "--profile",
                h.path("profile.yaml").to_str().unwrap(),
            ],
            &[],
        );
        assert!(rerun.status.success());
        let said = String::from_utf8_lossy(&rerun.stderr);
        assert!(
            said.contains(
                "the stamp makes cert-manager/root-ca-secret itself (Certificate root-ca in"
            ),
            "{said}"
        );
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_rerun_makes_again_what_disappeared_behind_kindlings_back() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        let env = unique("gone");
        ok(&h.create(&env, &[]));
        // The cluster and the registry container vanish (someone ran kind delete / docker rm).
        let cluster = format!("kindling-{env}");
        let deleted = std::process::Command::new(h.path("bin/kind"))
            .args(["delete", "cluster", "--name", &cluster])
            .status()
            .unwrap();
        assert!(deleted.success());
        assert!(
            docker_cli(&["rm", "-f", &format!("kindling-{env}-registry")])
                .status
                .success()
        );
        let status = h.json(&["env", "status", &env]);
        assert_eq!(status["status"]["cluster"]["state"], "missing");
        assert_eq!(status["status"]["ready"], false);
        let rerun = h.create(&env, &[]);
        let doc = ok(&rerun);
        let done: Vec<&str> = doc["env"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "done")
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        for step in ["cluster", "registry", "engine"] {
            assert!(done.contains(&step), "{step} not redone: {done:?}");
        }
        assert!(String::from_utf8_lossy(&rerun.stderr).contains("is gone; making it again"));
        assert!(container_exists(&format!("kindling-{env}-control-plane")));
        assert!(container_exists(&format!("kindling-{env}-registry")));
        delete_clean(&h, &env);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_with_a_gitea_container_round_trip() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::build_with("flux", false, true);
        let env = unique("gt");
        let container = format!("kindling-{env}-gitea");
        *h.docker_gitea.as_ref().unwrap().lock().unwrap() = container.clone();
        let created = ok(&h.create(&env, &[]));
        let gitea_port = h.state(&env)["ports"]["gitea"].as_u64().unwrap();
        assert_eq!(
            created["env"]["giteaUrl"],
            format!("http://127.0.0.1:{gitea_port}")
        );
        // The container: labelled, published on loopback only, data in a labelled volume, on
        // the cluster's network; the admin password is kept 0600 in the state, never printed.
        let labels = docker_cli(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"dev.kindling.env\"}}",
            &container,
        ]);
        assert_eq!(String::from_utf8_lossy(&labels.stdout).trim(), env);
        let ports = String::from_utf8_lossy(&docker_cli(&["port", &container]).stdout).to_string();
        assert_eq!(ports.trim(), format!("3000/tcp -> 127.0.0.1:{gitea_port}"));
        assert!(
            docker_cli(&["volume", "inspect", &format!("kindling-{env}-gitea-data")])
                .status
                .success()
        );
        let password = h.state(&env)["gitea"]["password"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(password.len() >= 24);
        assert!(!String::from_utf8_lossy(&created.to_string().into_bytes()).contains(&password));
        // The engine reaches it through the Service over the container's address on `kind`.
        let ip = String::from_utf8_lossy(
            &docker_cli(&[
                "inspect",
                "-f",
                "{{(index .NetworkSettings.Networks \"kind\").IPAddress}}",
                &container,
            ])
            .stdout,
        )
        .trim()
        .to_string();
        let slice = h.api.object("EndpointSlice", "gitea-docker").unwrap();
        assert_eq!(slice["endpoints"][0]["addresses"][0], ip.as_str());
        let repo = h.api.object("GitRepository", "kindling").unwrap();
        assert_eq!(
            repo["spec"]["url"],
            "http://gitea.kindling-system.svc.cluster.local:3000/kindling/source.git"
        );
        // Sync pushes into the container's repository.
        std::fs::write(h.path("source/stamps/sample/applications/api/c.txt"), "c\n").unwrap();
        let synced = ok(&h.run(
            &["env", "sync", &env, "--output", "json", "--timeout", "30s"],
            &[],
        ));
        assert!(
            synced["sync"]["status"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["readiness"] == "ready")
        );
        // A rerun keeps the running Gitea (and its password); after a restart of the container
        // the stored password still works.
        let rerun = ok(&h.create(&env, &[]));
        let gitea_step = rerun["env"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "gitea")
            .unwrap()
            .clone();
        assert_eq!(gitea_step["status"], "skipped");
        assert!(docker_cli(&["stop", &container]).status.success());
        ok(&h.create(&env, &[]));
        assert_eq!(h.state(&env)["gitea"]["password"], password.as_str());
        delete_clean(&h, &env);
        assert!(
            !docker_cli(&["volume", "inspect", &format!("kindling-{env}-gitea-data")])
                .status
                .success()
        );
    }
}
