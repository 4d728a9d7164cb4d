//! Helpers shared by the integration tests: where the upstream test data lives, a copy of a tree
//! into a scratch directory, and a validator for rendered objects backed by the real upstream
//! CRD schemas in `tests/fixtures/upstream/schemas/` (each file's source, version and licence in
//! `tests/fixtures/upstream/README.md`).
#![allow(dead_code)] // each test binary uses a different subset

pub mod env_harness;
pub mod fake_appset;
pub mod fake_argo;
pub mod fake_cert_manager;
pub mod fake_cluster;
pub mod fake_cnpg;
pub mod fake_flux;
pub mod fake_gitea;
pub mod fake_jobs;
pub mod fake_metallb;
pub mod fake_oci;
pub mod fake_pods;
pub mod fake_ssa;
pub mod fake_vault;
pub mod fake_volumes;
pub mod http;
pub mod kube_api;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Upstream files the tests read, copied into the repository so a fresh clone tests on its own.
pub fn upstream_dir() -> PathBuf {
    repo_dir().join("tests/fixtures/upstream")
}

/// The upstream CRDs, the k3d config schema and the Gitea OpenAPI spec, at the pinned versions.
pub fn schemas_dir() -> PathBuf {
    upstream_dir().join("schemas")
}

/// The HostK8s fixture repository (`software/…`).
pub fn hostk8s_dir() -> PathBuf {
    upstream_dir().join("hostk8s")
}

pub fn hostk8s_stack(name: &str) -> PathBuf {
    hostk8s_dir().join("software/stacks").join(name)
}

/// Copies a directory tree (files only; read-only sources become writable copies).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::write(&target, std::fs::read(entry.path()).unwrap()).unwrap();
        }
    }
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A HostK8s extension stack `extension/demo` in the HostK8s-shaped repository `root`, laid
/// out as danielscholl-osdu/hostk8s@2add0a5 software/stacks/extension/README.md shows one
/// (its own `repository.yaml` with `extension-stack-system`, paths relative to the stack),
/// behind HostK8s' own `software/stacks/extension/.gitignore`, which ignores it. It also uses
/// HostK8s' shared certs component through `flux-system`.
#[allow(dead_code)]
pub fn write_extension_stack(root: &Path) {
    let ext = root.join("software/stacks/extension");
    // HostK8s' file, as it is at 2add0a5.
    write(
        &ext.join(".gitignore"),
        "# Ignore all files and directories in the extension folder\n*\n\n# But keep specific files\n!.gitignore\n!README.md\n!sample-stack/\n",
    );
    let demo = ext.join("demo");
    write(
        &demo.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - repository.yaml\n  - stack.yaml\n",
    );
    write(
        &demo.join("repository.yaml"),
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: extension-stack-system\n  namespace: flux-system\nspec:\n  interval: 5m\n  url: ${GITOPS_REPO}\n  ref:\n    branch: ${GITOPS_BRANCH}\n  ignore: |\n    # exclude all\n    /*\n    # include this extension stack\n    !/software/stacks/extension/demo/\n",
    );
    write(
        &demo.join("stack.yaml"),
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: demo-certs\n  namespace: flux-system\nspec:\n  interval: 1h\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n  path: ./software/components/certs\n  prune: true\n  wait: true\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: demo-infrastructure\n  namespace: flux-system\nspec:\n  interval: 1h\n  sourceRef:\n    kind: GitRepository\n    name: extension-stack-system\n  path: ./components/settings\n  prune: true\n  wait: true\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: demo-applications\n  namespace: flux-system\nspec:\n  dependsOn:\n    - name: demo-infrastructure\n    - name: demo-certs\n  interval: 1h\n  sourceRef:\n    kind: GitRepository\n    name: extension-stack-system\n  path: ./applications\n  prune: true\n  wait: true\n",
    );
    write(
        &demo.join("components/settings/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [namespace.yaml]\n",
    );
    write(
        &demo.join("components/settings/namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n",
    );
    write(
        &demo.join("applications/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [greeting.yaml]\n",
    );
    write(
        &demo.join("applications/greeting.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo-greeting, namespace: demo}\ndata: {greeting: hello}\n",
    );
}

/// A team's Flux repository as `flux bootstrap` leaves it (fluxcd/flux2 v2.8 bootstrap:
/// `clusters/dev/flux-system/{gotk-components,gotk-sync,kustomization}.yaml`, the
/// `flux-system` GitRepository on the team's remote and the `flux-system` Kustomization on
/// `./clusters/dev`), with infrastructure → apps layering and a base + per-environment
/// overlay, in `root`. `gotk-components.yaml` stands in for Flux's install output.
#[allow(dead_code)]
pub fn write_flux_layout(root: &Path) {
    let cluster = root.join("clusters/dev");
    write(
        &cluster.join("flux-system/gotk-components.yaml"),
        "# stand-in for `flux install --export` output\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n",
    );
    write(
        &cluster.join("flux-system/gotk-sync.yaml"),
        "# This manifest was generated by flux. DO NOT EDIT.\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: flux-system\n  namespace: flux-system\nspec:\n  interval: 1m0s\n  ref:\n    branch: main\n  secretRef:\n    name: flux-system\n  url: ssh://git@github.com/team/fleet\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: flux-system\n  namespace: flux-system\nspec:\n  interval: 10m0s\n  path: ./clusters/dev\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
    );
    write(
        &cluster.join("flux-system/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n",
    );
    write(
        &cluster.join("infrastructure.yaml"),
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: infra-controllers\n  namespace: flux-system\nspec:\n  interval: 1h\n  retryInterval: 1m\n  timeout: 5m\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n  path: ./infrastructure/controllers\n  prune: true\n  wait: true\n",
    );
    write(
        &cluster.join("apps.yaml"),
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\nspec:\n  interval: 10m\n  dependsOn:\n    - name: infra-controllers\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n  path: ./apps/dev\n  prune: true\n  wait: true\n",
    );
    write(
        &root.join("infrastructure/controllers/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [namespace.yaml, settings.yaml]\n",
    );
    write(
        &root.join("infrastructure/controllers/namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: infra}\n",
    );
    write(
        &root.join("infrastructure/controllers/settings.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: infra-settings, namespace: infra}\ndata: {level: base}\n",
    );
    write(
        &root.join("apps/base/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [namespace.yaml, greeting.yaml]\n",
    );
    write(
        &root.join("apps/base/namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n",
    );
    write(
        &root.join("apps/base/greeting.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: greeting, namespace: apps}\ndata: {greeting: base}\n",
    );
    write(
        &root.join("apps/dev/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../base]\npatches:\n  - target: {kind: ConfigMap, name: greeting}\n    patch: |\n      - op: replace\n        path: /data/greeting\n        value: dev\n",
    );
}

/// [`write_flux_layout`] with its app as `apps/web/base` + overlays `local` and `stage` (the
/// entry on `overlays/local`), each with its own namespace `web-OVERLAY` and `images:`
/// setting `image`'s tag to `tag`; the base's Deployment `web` runs `image:base_tag`.
#[allow(dead_code)]
pub fn write_overlay_layout(root: &Path, image: &str, base_tag: &str, tag: &str) {
    write_flux_layout(root);
    let apps = root.join("clusters/dev/apps.yaml");
    let text = std::fs::read_to_string(&apps).unwrap();
    std::fs::write(
        &apps,
        text.replace("path: ./apps/dev", "path: ./apps/web/overlays/local"),
    )
    .unwrap();
    write(
        &root.join("apps/web/base/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml]\n",
    );
    write(
        &root.join("apps/web/base/deployment.yaml"),
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n        - name: web\n          image: {image}:{base_tag}\n"
        ),
    );
    for overlay in ["local", "stage"] {
        write(
            &root.join(format!("apps/web/overlays/{overlay}/namespace.yaml")),
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: web-{overlay}}}\n"),
        );
        write(
            &root.join(format!("apps/web/overlays/{overlay}/kustomization.yaml")),
            &format!(
                "# {overlay}\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: web-{overlay}\nresources:\n  - namespace.yaml\n  - ../../base\nimages:\n  - name: {image}\n    newTag: \"{tag}\"\n"
            ),
        );
    }
}

/// An Argo CD bootstrap directory over the same repository as [`write_flux_layout`]: a Git
/// checkout whose remote is the team's (`git@github.com:team/fleet.git`), `bootstrap/`
/// listing the AppProject `team` (sourceRepos: this repository only) and an app-of-apps `root`
/// whose path `argo/apps` holds the Applications: `infra` (wave -1) and `web` (wave 1,
/// project `team`, sync option `PruneLast=true`) on this repository, and, with `helm`, a
/// `podinfo` Application from a Helm repository (wave 0).
#[allow(dead_code)]
pub fn write_argo_layout(root: &Path, helm: bool) {
    write_flux_layout(root);
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q"]);
    git(&["remote", "add", "origin", "git@github.com:team/fleet.git"]);
    let app = |name: &str, wave: &str, path: &str, namespace: &str, project: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n  annotations:\n    argocd.argoproj.io/sync-wave: \"{wave}\"\nspec:\n  project: {project}\n  source:\n    repoURL: https://github.com/team/fleet.git\n    targetRevision: main\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {namespace}\n  syncPolicy:\n    automated: {{prune: true, selfHeal: true}}\n    syncOptions: [PruneLast=true]\n"
        )
    };
    write(
        &root.join("bootstrap/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [project.yaml, root.yaml]\n",
    );
    // The team's project, permitting only its own repository (as a team's would).
    write(
        &root.join("bootstrap/project.yaml"),
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: team, namespace: argocd}\nspec:\n  sourceRepos: ['https://github.com/team/fleet.git']\n  destinations: [{server: 'https://kubernetes.default.svc', namespace: '*'}]\n  clusterResourceWhitelist: [{group: '*', kind: '*'}]\n",
    );
    write(
        &root.join("bootstrap/root.yaml"),
        &app("root", "0", "argo/apps", "argocd", "default"),
    );
    write(
        &root.join("argo/apps/infra.yaml"),
        &app(
            "infra",
            "-1",
            "infrastructure/controllers",
            "infra",
            "default",
        ),
    );
    write(
        &root.join("argo/apps/web.yaml"),
        &app("web", "1", "apps/dev", "apps", "team"),
    );
    if helm {
        write(
            &root.join("argo/apps/podinfo.yaml"),
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: podinfo\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: https://stefanprodan.github.io/podinfo\n    chart: podinfo\n    targetRevision: 6.7.1\n    helm:\n      valuesObject:\n        replicaCount: 2\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: podinfo\n",
        );
    }
}

/// Validates Kubernetes objects against upstream OpenAPI schemas (CRDs from the shared
/// schemas, plus the few core kinds kindling renders, from `tests/data/schemas/`).
///
/// The API server prunes or (with strict field validation) rejects unknown fields; JSON Schema
/// allows them unless told otherwise. Every object schema that lists `properties` is therefore
/// closed with `additionalProperties: false` unless it says `x-kubernetes-preserve-unknown-fields`,
/// so a misspelt field fails here as it would fail `kubectl apply --validate=strict`.
pub struct SchemaSet {
    schemas: HashMap<(String, String), Value>,
}

impl SchemaSet {
    pub fn load() -> SchemaSet {
        let dir = schemas_dir();
        let mut schemas = HashMap::new();
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("schemas directory {} is missing: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let crd: Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            if crd["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let group = crd["spec"]["group"].as_str().unwrap();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
            for version in crd["spec"]["versions"].as_array().unwrap() {
                let api_version = format!("{group}/{}", version["name"].as_str().unwrap());
                let mut schema = version["schema"]["openAPIV3Schema"].clone();
                close_objects(&mut schema);
                schemas.insert((api_version, kind.to_string()), schema);
            }
        }
        let core = repo_dir().join("tests/data/schemas");
        for entry in std::fs::read_dir(core).unwrap() {
            let path = entry.unwrap().path();
            let mut schema: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let api_version = schema["x-kindling-apiVersion"]
                .as_str()
                .unwrap()
                .to_string();
            let kind = schema["x-kindling-kind"].as_str().unwrap().to_string();
            close_objects(&mut schema);
            schemas.insert((api_version, kind), schema);
        }
        assert!(
            schemas.len() >= 10,
            "expected the upstream CRD schemas in {}",
            dir.display()
        );
        SchemaSet { schemas }
    }

    /// Validates one object; `Err` lists every violation. An object without a schema fails:
    /// an object nothing can check is not "valid".
    pub fn validate(&self, object: &Value) -> Result<(), String> {
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let Some(schema) = self.schemas.get(&(api_version.clone(), kind.clone())) else {
            return Err(format!("no schema for {api_version} {kind}"));
        };
        let validator = jsonschema::draft7::new(schema).map_err(|e| format!("schema: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(object)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{api_version} {kind} '{}': {}",
                object["metadata"]["name"].as_str().unwrap_or("?"),
                errors.join("; ")
            ))
        }
    }
}

fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let preserve = map
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !preserve
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for value in map.values_mut() {
                close_objects(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// The Docker engine for tests, or `None` (test skipped) when there is none and neither
/// `CI=true` nor `KINDLING_REQUIRE_DOCKER=1` demands one.
pub async fn docker() -> Option<kindling::docker::DockerClient> {
    match kindling::docker::DockerClient::connect().await {
        Ok(d) => Some(d),
        Err(e) => {
            let required = std::env::var("CI").as_deref() == Ok("true")
                || std::env::var("KINDLING_REQUIRE_DOCKER").as_deref() == Ok("1");
            assert!(
                !required,
                "a Docker engine is required here (scripts/docker-engine.sh): {e}"
            );
            eprintln!("skipped: no Docker engine ({e})");
            None
        }
    }
}

/// A tiny image built locally from Debian's busybox-static (no registry can be reached):
/// `sh`, `httpd`, `nc`, `sleep`… as busybox applets.
pub const TEST_IMAGE: &str = "kindling-test/busybox:3";

pub fn ensure_test_image() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        if image_present(TEST_IMAGE) {
            return;
        }
        let rootfs = tempfile::tempdir().unwrap();
        let bin = rootfs.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(rootfs.path().join("tmp")).unwrap();
        // A `git` user, as in Gitea's image, for commands that must not run as root.
        std::fs::create_dir_all(rootfs.path().join("etc")).unwrap();
        std::fs::write(
            rootfs.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ngit:x:1000:1000:git:/tmp:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(rootfs.path().join("etc/group"), "root:x:0:\ngit:x:1000:\n").unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("busybox-static is required (scripts/test.sh installs it)");
        for applet in [
            "sh", "echo", "cat", "ls", "sleep", "httpd", "nc", "wget", "mkdir", "true", "false",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        import_rootfs(rootfs.path(), TEST_IMAGE, &[]);
    });
}

fn image_present(image: &str) -> bool {
    std::process::Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `docker import` of a directory as an image, with Dockerfile-style `changes`.
fn import_rootfs(root: &Path, image: &str, changes: &[&str]) {
    let changes: String = changes.iter().map(|c| format!(" --change '{c}'")).collect();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C '{}' -c . | docker import{changes} - {image} >/dev/null",
            root.display()
        ))
        .status()
        .unwrap();
    assert!(status.success(), "docker import of {image} failed");
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A registry image built locally from Debian's `docker-registry` (distribution 2.8) plus
/// busybox, so it answers the same HTTP API and env-var configuration as `registry:2`.
pub const TEST_REGISTRY_IMAGE: &str = "kindling-test/registry:2";

pub fn ensure_test_registry_image() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        if image_present(TEST_REGISTRY_IMAGE) {
            return;
        }
        let rootfs = tempfile::tempdir().unwrap();
        let root = rootfs.path();
        let binary = Path::new("/usr/bin/docker-registry");
        assert!(binary.exists(), "Debian's docker-registry is required (scripts/test.sh installs it)");
        let copy = |from: &Path| {
            let to = root.join(from.strip_prefix("/").unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(from, &to).unwrap();
        };
        copy(binary);
        let ldd = std::process::Command::new("ldd").arg(binary).output().unwrap();
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
            let path = line.split("=>").last().unwrap().split_whitespace().next().unwrap_or("");
            if path.starts_with('/') {
                copy(Path::new(path));
            }
        }
        copy(Path::new("/bin/busybox"));
        for applet in ["sh", "wget", "du", "cat", "ls", "find"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        for dir in ["tmp", "var/lib/registry", "etc/docker/registry"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(
            root.join("etc/docker/registry/config.yml"),
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\nhttp:\n  addr: :5000\n",
        )
        .unwrap();
        import_rootfs(
            root,
            TEST_REGISTRY_IMAGE,
            &[r#"CMD ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]"#, "EXPOSE 5000"],
        );
    });
}

/// The docker CLI, for test setup only (product code talks to the engine through bollard).
pub fn docker_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap()
}

/// Every Docker object (container, volume, network) labelled for `env`, by id.
pub fn docker_labelled(env: &str) -> Vec<String> {
    let filter = format!("label=dev.kindling.env={env}");
    let mut found = Vec::new();
    for args in [
        vec!["ps", "-aq", "--filter", &filter],
        vec!["volume", "ls", "-q", "--filter", &filter],
        vec!["network", "ls", "-q", "--filter", &filter],
    ] {
        let out = docker_cli(&args);
        // A failing CLI must not read as "nothing left behind".
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string),
        );
    }
    found
}

/// An image that stands in for Gitea here (the real one cannot be pulled): the fake Gitea
/// server (examples/fake_gitea_server.rs, recorded REST payloads + real `git http-backend`)
/// on :3000, a `gitea admin user create|change-password` stand-in that keeps the password in
/// /data, `curl` for the health check, and a `git` user, as in Gitea's image.
pub const TEST_GITEA_IMAGE: &str = "kindling-test/gitea:1";

/// The stand-in for `gitea admin user create|delete` (go-gitea/gitea v1.27
/// cmd/admin_user_create.go, cmd/admin_user_delete.go): `--random-password` makes a password
/// and prints "generated random password is '…'", the password the fake server then takes;
/// "user already exists" on a second create; `delete --purge` removes the user. Every
/// call's arguments (its /proc/PID/cmdline) are appended to /data/gitea-argv, for the tests
/// that check no password is ever on a command line.
const FAKE_GITEA_CLI: &str = "#!/bin/sh\n\
echo \"$*\" >> /data/gitea-argv\n\
action=$3; pw=; random=\n\
while [ $# -gt 0 ]; do\n\
  [ \"$1\" = --password ] && pw=$2\n\
  [ \"$1\" = --random-password ] && random=1\n\
  shift\n\
done\n\
case $action in\n\
  create)\n\
    if [ -n \"$random\" ]; then pw=$(tr -d - < /proc/sys/kernel/random/uuid); echo \"generated random password is '$pw'\"; fi\n\
    if [ -s /data/admin-password ]; then echo 'Command error: CreateUser: user already exists [name: kindling]' >&2; exit 1; fi\n\
    printf '%s' \"$pw\" > /data/admin-password; echo \"New user 'kindling' has been successfully created!\" ;;\n\
  change-password) printf '%s' \"$pw\" > /data/admin-password ;;\n\
  delete) rm -f /data/admin-password; rm -rf /data/git/kindling ;;\n\
  *) echo \"fake gitea: unexpected $action\" >&2; exit 1 ;;\n\
esac\n";

/// What the fake Gitea image is made of: the server binary and the CLI stand-in.
fn image_sum(server: &Path) -> String {
    let mut bytes = std::fs::read(server).unwrap();
    bytes.extend_from_slice(FAKE_GITEA_CLI.as_bytes());
    kindling::cluster::tools::sha256_hex(&bytes)
}

pub fn ensure_test_gitea_image() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        // The server binary, built for the profile these tests run in.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let mut cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .args(["build", "--quiet", "--example", "fake_gitea_server", "--target-dir"])
            .arg(profile_dir.parent().unwrap())
            .current_dir(repo_dir());
        if profile_dir.ends_with("release") {
            cargo.arg("--release");
        }
        assert!(cargo.status().unwrap().success(), "building the fake Gitea server");
        let server = profile_dir.join("examples/fake_gitea_server");
        if image_present(TEST_GITEA_IMAGE) {
            // Rebuild when the server changed since the image was made.
            let out = docker_cli(&["image", "inspect", "-f", "{{index .Config.Labels \"server-sum\"}}", TEST_GITEA_IMAGE]);
            if String::from_utf8_lossy(&out.stdout).trim() == image_sum(&server) {
                return;
            }
        }
        let rootfs = tempfile::tempdir().unwrap();
        let root = rootfs.path();
        let copy = |from: &Path, to: &Path| {
            let to = root.join(to.strip_prefix("/").unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(from, &to).unwrap();
        };
        let with_libraries = |binary: &Path, to: &Path| {
            copy(binary, to);
            let ldd = std::process::Command::new("ldd").arg(binary).output().unwrap();
            for line in String::from_utf8_lossy(&ldd.stdout).lines() {
                let path = line.split("=>").last().unwrap().split_whitespace().next().unwrap_or("");
                if path.starts_with('/') {
                    copy(Path::new(path), Path::new(path));
                }
            }
        };
        with_libraries(&server, Path::new("/usr/local/bin/fake-gitea-server"));
        with_libraries(Path::new("/usr/bin/git"), Path::new("/usr/bin/git"));
        with_libraries(
            Path::new("/usr/lib/git-core/git-http-backend"),
            Path::new("/usr/lib/git-core/git-http-backend"),
        );
        for f in std::fs::read_dir(repo_dir().join("tests/data/gitea")).unwrap() {
            let f = f.unwrap().path();
            copy(&f, &Path::new("/srv/tests/data/gitea").join(f.file_name().unwrap()));
        }
        copy(Path::new("/bin/busybox"), Path::new("/bin/busybox"));
        for applet in ["sh", "mkdir", "chown", "wget", "cat", "sleep", "printf", "rm", "tr", "head"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        let script = |path: &str, text: &str| {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script("usr/local/bin/gitea", FAKE_GITEA_CLI);
        script("usr/local/bin/curl", "#!/bin/sh\nfor a; do url=$a; done\nexec wget -q -O /dev/null \"$url\"\n");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\ngit:x:1000:1000:git:/data:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\ngit:x:1000:\n").unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        let sum = image_sum(&server);
        import_rootfs(
            root,
            TEST_GITEA_IMAGE,
            &[
                r#"CMD ["/bin/sh", "-c", "mkdir -p /data/git && chown 1000:1000 /data && exec /usr/local/bin/fake-gitea-server"]"#,
                "ENV PATH=/usr/local/bin:/usr/bin:/bin",
                &format!("LABEL server-sum={sum}"),
                "EXPOSE 3000",
            ],
        );
    });
}

/// A stand-in for another way to reach the same Docker engine (a Docker Desktop or Colima
/// socket, a TCP listener): connections to the returned unix socket (`unix` = true) or
/// 127.0.0.1 port are relayed to the engine the tests use. The counter says how many came.
pub struct EngineRelay {
    pub host: String,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _dir: tempfile::TempDir,
}

pub fn engine_relay(unix: bool) -> EngineRelay {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let engine = kindling::docker::endpoint::resolve().unwrap();
    let target = engine
        .host
        .strip_prefix("unix://")
        .expect("the tests' engine is a unix socket")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    /// Relays both ways; each side's end of data is passed on as a half-close, which hijacked
    /// connections (`docker exec`, attach) wait for.
    fn relay<S: std::io::Read + std::io::Write + Send + 'static>(
        client: S,
        client_clone: S,
        close_client: impl Fn(&S) + Send + 'static,
        target: &str,
    ) {
        let Ok(upstream) = std::os::unix::net::UnixStream::connect(target) else {
            return;
        };
        let Ok(upstream_clone) = upstream.try_clone() else {
            return;
        };
        let (mut c_read, mut u_write) = (client, upstream);
        let (mut u_read, mut c_write) = (upstream_clone, client_clone);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut c_read, &mut u_write);
            let _ = u_write.shutdown(std::net::Shutdown::Write);
        });
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut u_read, &mut c_write);
            close_client(&c_write);
        });
    }
    let host = if unix {
        let path = dir.path().join("engine.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let count = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
                let clone = stream.try_clone().unwrap();
                let close = |s: &std::os::unix::net::UnixStream| {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                };
                relay(stream, clone, close, &target);
            }
        });
        format!("unix://{}", path.display())
    } else {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
                let clone = stream.try_clone().unwrap();
                let close = |s: &std::net::TcpStream| {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                };
                relay(stream, clone, close, &target);
            }
        });
        format!("tcp://127.0.0.1:{port}")
    };
    EngineRelay {
        host,
        connections,
        _dir: dir,
    }
}

/// A docker CLI config dir whose current context `name` points at `host`, laid out as the
/// CLI's context store keeps it (docker/cli v28.5.2 cli/context/store: meta.json below the
/// sha256 of the name).
pub fn docker_context_dir(dir: &Path, name: &str, host: &str) {
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = dir.join("contexts/meta").join(digest);
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("meta.json"),
        serde_json::json!({"Name": name, "Metadata": {"Description": "kindling test"},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"currentContext": name}).to_string(),
    )
    .unwrap();
}

/// Whether the tests run as root (for whom file permissions hardly bind).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The documented JSON skeletons of docs/json-output.md, by heading.
pub fn documented_shapes() -> Vec<(String, Value)> {
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
pub fn follows(real: &Value, documented: &Value, path: &str) -> Result<(), String> {
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
            // A documented item shape must be checked against a real item.
            (Some(_), None) => Err(format!("{path}: documented items, got an empty array")),
            (None, _) => Ok(()),
        },
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => Ok(()),
        (d, r) => Err(format!("{path}: documented {d}, got {r}")),
    }
}

/// A Helm chart `name` 0.1.0 made here and packaged as `helm package` does (`NAME/…` in a
/// gzipped tar, built with the real tar): its one template is a plain ConfigMap
/// `NAME-from-bundle` (the fake engines apply templates without actions as they are).
pub fn packaged_chart(name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join(name);
    write(
        &chart.join("Chart.yaml"),
        &format!("apiVersion: v2\nname: {name}\nversion: 0.1.0\ndescription: made by the tests\n"),
    );
    write(&chart.join("values.yaml"), "{}\n");
    write(
        &chart.join("templates/configmap.yaml"),
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-from-bundle\ndata:\n  from: bundle\n"
        ),
    );
    let out = std::process::Command::new("tar")
        .args(["czf", "-", "-C", &dir.path().display().to_string(), name])
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {out:?}");
    out.stdout
}

/// A Helm chart repository index (helm/helm v3 pkg/repo/index.go) listing `packaged` as
/// `name` 0.1.0 at the relative URL `NAME-0.1.0.tgz`, with its sha256.
pub fn chart_index(name: &str, packaged: &[u8]) -> String {
    use sha2::Digest as _;
    let digest: String = sha2::Sha256::digest(packaged)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "apiVersion: v1\nentries:\n  {name}:\n  - apiVersion: v2\n    name: {name}\n    version: 0.1.0\n    digest: {digest}\n    urls: [{name}-0.1.0.tgz]\n"
    )
}

/// A stamp `name` under `source` whose one component is `chart` 0.1.0 from the plain-http
/// repository `repo`, healthy once the chart's ConfigMap `CHART-from-bundle` is there.
pub fn chart_stamp(source: &Path, name: &str, repo: &str, chart: &str) {
    write(
        &source.join(format!("stamps/{name}/stamp.yaml")),
        &format!(
            "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {{name: {name}}}\nspec:\n  components:\n    - name: {chart}\n      namespace: {chart}\n      helm:\n        repo: {repo}\n        chart: {chart}\n        version: 0.1.0\n        plainHttp: true\n      healthChecks:\n        - {{apiVersion: v1, kind: ConfigMap, name: {chart}-from-bundle, namespace: {chart}}}\n"
        ),
    );
}

/// A plain registry (the test registry image) named `name` on a loopback port, its storage on
/// `volume` if given; returns the port once it answers.
#[allow(dead_code)]
pub fn start_test_registry(name: &str, volume: Option<&str>) -> u16 {
    let run = |args: &[&str]| {
        let out = docker_cli(args);
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut args = vec!["run", "-d", "--name", name, "-p", "127.0.0.1::5000"];
    let mount;
    if let Some(v) = volume {
        mount = format!("{v}:/var/lib/registry");
        args.extend(["-v", &mount]);
    }
    args.push(TEST_REGISTRY_IMAGE);
    run(&args);
    let port: u16 = run(&["port", name, "5000"])
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        ureq::get(&format!("http://127.0.0.1:{port}/v2/"))
            .call()
            .is_ok()
    });
    assert!(up, "{name} did not answer");
    port
}

/// `PUT /v2/REPO/manifests/REFERENCE` (OCI distribution spec).
#[allow(dead_code)]
pub fn put_manifest(port: u16, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let response = ureq::put(&format!(
        "http://127.0.0.1:{port}/v2/{repo}/manifests/{reference}"
    ))
    .header("Content-Type", media_type)
    .send(body)
    .unwrap();
    assert_eq!(response.status().as_u16(), 201);
}

/// A monolithic blob upload (OCI distribution spec: POST an upload, PUT it with the
/// digest); returns the digest.
#[allow(dead_code)]
pub fn put_blob(port: u16, repo: &str, body: &[u8]) -> String {
    let digest = kindling::bundle::distribution::sha256_digest(body);
    let started = ureq::post(&format!("http://127.0.0.1:{port}/v2/{repo}/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let location = started
        .headers()
        .get("Location")
        .and_then(|l| l.to_str().ok())
        .unwrap()
        .to_string();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("http://127.0.0.1:{port}{location}")
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let done = ureq::put(&format!("{location}{separator}digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .send(body)
        .unwrap();
    assert_eq!(done.status().as_u16(), 201);
    digest
}

/// What `flux push artifact` pushes (fluxcd/pkg oci: config
/// `application/vnd.cncf.flux.config.v1+json`, one layer
/// `application/vnd.cncf.flux.content.v1.tar+gzip` of the files), as `REPO:TAG`.
#[allow(dead_code)]
pub fn push_flux_artifact(port: u16, repo: &str, tag: &str, files: &[(&str, &str)]) {
    let mut tarball = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut tarball, flate2::Compression::default());
        let mut archive = tar::Builder::new(gz);
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive
                .append_data(&mut header, path, text.as_bytes())
                .unwrap();
        }
        archive.into_inner().unwrap().finish().unwrap();
    }
    let config = b"{}";
    let config_digest = put_blob(port, repo, config);
    let layer_digest = put_blob(port, repo, &tarball);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.flux.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.cncf.flux.content.v1.tar+gzip", "digest": layer_digest, "size": tarball.len()}],
    });
    put_manifest(
        port,
        repo,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    );
}
