//! The full loop on a real Docker host with internet, run only with `KINDLING_E2E=1`
//! (`scripts/e2e.sh`, `.github/workflows/e2e.yml`). The provider and engine come from
//! `KINDLING_E2E_PROVIDER` (kind|k3d) and `KINDLING_E2E_ENGINE` (flux|argo):
//!
//! create sample --wait → https://api.localhost:PORT verifies against the root CA → edit the
//! website's index.html in a temp copy, `env sync`, the new page is served → `env restart`
//! → Ready again → `env stop` / `env start` → served again → (with
//! `KINDLING_E2E_RESTART_DOCKER=1`) the Docker daemon restarted → Ready and served again →
//! `env delete` → no labelled Docker object and no kubeconfig context left.
//!
//! These machines cannot run it (no privileged containers, no registry); `scripts/test.sh`
//! compiles it and it returns at once without `KINDLING_E2E=1`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{
    copy_tree, docker_labelled, repo_dir, write, write_flux_layout, write_overlay_layout,
};

fn enabled() -> bool {
    std::env::var("KINDLING_E2E").as_deref() == Ok("1")
}

struct E2e {
    source: PathBuf,
    data: PathBuf,
    env: String,
    provider: String,
    engine: String,
    _dir: tempfile::TempDir,
}

impl E2e {
    /// A run named `e2e-WHAT-PROVIDER-ENGINE` in `dir`: its source tree at `dir/source` (the
    /// caller fills it), its data dir at `dir/data`; the provider and engine from
    /// `KINDLING_E2E_PROVIDER` / `KINDLING_E2E_ENGINE`.
    fn in_dir(what: &str, default_engine: &str, dir: tempfile::TempDir) -> E2e {
        let provider = std::env::var("KINDLING_E2E_PROVIDER").unwrap_or_else(|_| "kind".into());
        let engine = std::env::var("KINDLING_E2E_ENGINE").unwrap_or_else(|_| default_engine.into());
        E2e {
            env: format!("e2e-{what}-{provider}-{engine}"),
            data: dir.path().join("data"),
            source: dir.path().join("source"),
            provider,
            engine,
            _dir: dir,
        }
    }

    fn kindling(&self, args: &[&str]) -> Output {
        self.kindling_with(args, &[])
    }

    fn kindling_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        eprintln!("+ kindling {}", args.join(" "));
        let out = Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args(args)
            .current_dir(&self.source)
            .env("KINDLING_DATA_DIR", &self.data)
            .env("CI", "true")
            .envs(extra.iter().copied())
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        self.json_with(args, &[])
    }

    fn json_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.kindling_with(&all, extra);
        assert!(
            out.status.success(),
            "kindling {args:?} failed: exit {:?}",
            out.status.code()
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn port(&self, which: &str) -> u64 {
        let state: Value = serde_json::from_slice(
            &std::fs::read(self.data.join("envs").join(&self.env).join("state.json")).unwrap(),
        )
        .unwrap();
        state["ports"][which].as_u64().unwrap()
    }

    /// The uid of a namespaced object, through the env's kubeconfig (kubectl is on the e2e
    /// hosts).
    fn uid(&self, kind: &str, namespace: &str, name: &str) -> String {
        let kubeconfig = self.data.join("envs").join(&self.env).join("kubeconfig");
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "get",
                kind,
                name,
                "-n",
                namespace,
                "-o",
                "jsonpath={.metadata.uid}",
            ])
            .output()
            .expect("kubectl is needed by the e2e suite");
        assert!(
            out.status.success(),
            "kubectl get {kind} {namespace}/{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `env create` of the sample stamp with this run's provider and engine, waiting.
    fn create_args(&self) -> Vec<&str> {
        vec![
            "env",
            "create",
            &self.env,
            "--stamp",
            "sample",
            "--provider",
            &self.provider,
            "--engine",
            &self.engine,
            "--wait",
            "--timeout",
            "15m",
        ]
    }

    /// `kubectl get ARGS -o json` through the env's kubeconfig.
    fn kubectl_json(&self, args: &[&str]) -> Value {
        let kubeconfig = self.data.join("envs").join(&self.env).join("kubeconfig");
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("get")
            .args(args)
            .args(["-o", "json"])
            .output()
            .expect("kubectl is needed by the e2e suite");
        assert!(
            out.status.success(),
            "kubectl get {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `kubectl ARGS` through the env's kubeconfig (a hand edit, as a user makes one).
    fn kubectl(&self, args: &[&str]) {
        let kubeconfig = self.data.join("envs").join(&self.env).join("kubeconfig");
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .expect("kubectl is needed by the e2e suite");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Polls `done` every 5 s until it holds or `within` passes.
    fn until(&self, what: &str, within: Duration, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < within, "{what}: not within {within:?}");
            std::thread::sleep(Duration::from_secs(5));
        }
    }

    /// Status line and Location of GET http://HOST:PORT/ (no redirect followed).
    fn http_redirect(&self, host: &str) -> Option<(u16, String)> {
        let port = self.port("http");
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "/dev/null"])
            .args(["-w", "%{http_code} %{redirect_url}", "--resolve"])
            .arg(format!("{host}:{port}:127.0.0.1"))
            .arg(format!("http://{host}:{port}/"))
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (code, location) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        Some((code.parse().ok()?, location.to_string()))
    }

    /// GET https://HOST:PORT/ verified against kindling's root CA (curl, `--resolve` so that
    /// it does not depend on the resolver's handling of `.localhost`).
    fn get(&self, host: &str) -> Option<String> {
        let port = self.port("https");
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "10", "--cacert"])
            .arg(self.data.join("ca/root.pem"))
            .arg("--resolve")
            .arg(format!("{host}:{port}:127.0.0.1"))
            .arg(format!("https://{host}:{port}/"))
            .output()
            .ok()?;
        if out.status.success() {
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            eprintln!(
                "curl {host}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
    }

    fn wait_served(&self, host: &str, contains: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(body) = self.get(host)
                && body.contains(contains)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "https://{host} did not serve {contains:?} in {timeout:?}"
            );
            std::thread::sleep(Duration::from_secs(3));
        }
    }
}

fn kubeconfig_contexts() -> String {
    let out = Command::new("kubectl")
        .args(["config", "get-contexts", "-o", "name"])
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        // Without kubectl, read the file the providers merge into.
        Err(_) => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".kube/config"))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default(),
    }
}

#[test]
fn e2e_sample_stamp_full_loop() {
    if !enabled() {
        eprintln!("skipped: set KINDLING_E2E=1 on a Docker host with internet (scripts/e2e.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // With KINDLING_E2E_DATA the data dir and the source copy beside it outlive a failed run,
    // for `kindling env status` and kubectl afterwards.
    let kept = std::env::var_os("KINDLING_E2E_DATA").map(PathBuf::from);
    let source = match &kept {
        Some(data) => data.with_file_name("kindling-e2e-source"),
        None => dir.path().join("source"),
    };
    let _ = std::fs::remove_dir_all(&source);
    copy_tree(&repo_dir().join("stamps"), &source.join("stamps"));
    copy_tree(&repo_dir().join("clusters"), &source.join("clusters"));
    let provider = std::env::var("KINDLING_E2E_PROVIDER").unwrap_or_else(|_| "kind".into());
    let engine = std::env::var("KINDLING_E2E_ENGINE").unwrap_or_else(|_| "flux".into());
    let data = kept.unwrap_or_else(|| dir.path().join("data"));
    let e2e = E2e {
        env: format!("e2e-{provider}-{engine}"),
        data,
        source,
        provider,
        engine,
        _dir: dir,
    };
    let env = e2e.env.clone();

    let started = Instant::now();
    let created = e2e.json(&e2e.create_args());
    eprintln!("create took {:.0}s", started.elapsed().as_secs_f64());
    assert_eq!(
        created["env"]["status"]["entries"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    let context = created["env"]["context"].as_str().unwrap().to_string();
    assert!(kubeconfig_contexts().contains(&context));
    // TLS through the ingress, issued by cert-manager from kindling's CA, verified by curl.
    e2e.wait_served("api.localhost", "podinfo", Duration::from_secs(300));
    e2e.wait_served("www.localhost", "<html", Duration::from_secs(300));
    // Traefik's Ingress NGINX provider honours the website's nginx ssl-redirect annotation.
    let (code, location) = e2e.http_redirect("www.localhost").unwrap();
    assert!(
        (301..=308).contains(&code) && location.starts_with("https://www.localhost"),
        "http://www.localhost answered {code} {location:?}, expected a redirect to https"
    );

    // Edit → sync → served.
    let marker = format!("kindling e2e {}", std::process::id());
    let index = e2e
        .source
        .join("stamps/sample/applications/website/index.html");
    let html = std::fs::read_to_string(&index).unwrap();
    std::fs::write(
        &index,
        html.replacen("<body>", &format!("<body><p>{marker}</p>"), 1),
    )
    .unwrap();
    let started = Instant::now();
    let synced = e2e.json(&["env", "sync", &env, "--timeout", "5m"]);
    eprintln!("sync took {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(synced["sync"]["changed"], true);
    e2e.wait_served("www.localhost", &marker, Duration::from_secs(180));

    // Restart: the stamp's objects go away and come back, same cluster. The api Deployment
    // made again has a new uid; the old one was really removed.
    let uid_before = e2e.uid("deployment", "sample", "api");
    let restarted = e2e.json(&["env", "restart", &env]);
    assert_eq!(restarted["restart"]["removedStamp"], "sample");
    let status = e2e.json(&["env", "status", &env, "--wait", "--timeout", "15m"]);
    assert_eq!(status["status"]["ready"], true);
    e2e.wait_served("www.localhost", &marker, Duration::from_secs(300));
    let uid_after = e2e.uid("deployment", "sample", "api");
    assert_ne!(
        uid_before, uid_after,
        "restart did not remove and recreate the api"
    );

    // Stop and start: every container of the env goes down and comes back; the env heals
    // itself (nodes Ready, Gitea's route, the engine reconciling) and serves again.
    let started = Instant::now();
    let stopped = e2e.json(&["env", "stop", &env]);
    eprintln!("stop took {:.1}s", started.elapsed().as_secs_f64());
    assert!(!stopped["stop"]["containers"].as_array().unwrap().is_empty());
    let status = e2e.json(&["env", "status", &env]);
    assert!(
        status["status"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("kindling env start")),
        "{status}"
    );
    let started = Instant::now();
    e2e.json(&["env", "start", &env]);
    eprintln!("start took {:.1}s", started.elapsed().as_secs_f64());
    let status = e2e.json(&["env", "status", &env, "--wait", "--timeout", "10m"]);
    assert_eq!(status["status"]["ready"], true);
    e2e.wait_served("www.localhost", &marker, Duration::from_secs(300));

    // A reboot stand-in where the workflow allows it: the Docker daemon restarts, the
    // containers' restart policies bring the env back, and the next command repairs what moved.
    if std::env::var("KINDLING_E2E_RESTART_DOCKER").as_deref() == Ok("1") {
        let restarted = Command::new("sudo")
            .args(["systemctl", "restart", "docker"])
            .status()
            .unwrap();
        assert!(restarted.success(), "could not restart the Docker daemon");
        let status = e2e.json(&["env", "status", &env, "--wait", "--timeout", "10m"]);
        assert_eq!(status["status"]["ready"], true);
        e2e.wait_served("www.localhost", &marker, Duration::from_secs(300));
    }

    // Delete: nothing left.
    let started = Instant::now();
    e2e.json(&["env", "delete", &env]);
    eprintln!("delete took {:.1}s", started.elapsed().as_secs_f64());
    assert!(
        docker_labelled(&env).is_empty(),
        "left behind: {:?}",
        docker_labelled(&env)
    );
    assert!(
        !kubeconfig_contexts().contains(&context),
        "context {context} left behind"
    );
    let again = e2e.kindling(&["env", "delete", &env]);
    assert!(again.status.success());
}

/// Issue #20, part 2, on a real host: a bundle of a Docker Hub image, loaded into a cache set
/// of its own, is served by the pinned registry image in proxy mode with its upstream
/// unreachable, by tag and with the digest Docker Hub gave it (distribution v3.1.1 reads local
/// storage when the remote fails; the Debian 2.8 registry of the unit tests panics at start
/// without its upstream, so only this host can show it).
#[test]
fn e2e_bundle_seeds_a_cache_that_serves_offline() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = common::unique("e2eb");
    let list = dir.path().join("images.txt");
    std::fs::write(&list, "docker.io/library/busybox:1.37\n").unwrap();
    let file = dir.path().join("bundle.tar");
    let run = |args: &[&str]| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args(args)
            .args(["--output", "json"])
            .env("KINDLING_DATA_DIR", dir.path().join("data"))
            .env("KINDLING_CACHE_PREFIX", &prefix)
            .env("CI", "true")
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "kindling {args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let saved = run(&[
        "bundle",
        "save",
        file.to_str().unwrap(),
        "--images",
        list.to_str().unwrap(),
        "--no-pins",
    ]);
    let digest = saved["bundle"]["record"]["images"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    run(&["bundle", "load", file.to_str().unwrap()]);
    let volume = format!("{prefix}-docker-io-data");
    let name = format!("{prefix}-offline");
    let mount = format!("{volume}:/var/lib/registry");
    let started = common::docker_cli(&[
        "run",
        "-d",
        "--name",
        &name,
        "-e",
        "REGISTRY_PROXY_REMOTEURL=https://unreachable.invalid",
        "-v",
        &mount,
        "-p",
        "127.0.0.1::5000",
        kindling::registry::REGISTRY_IMAGE,
    ]);
    assert!(started.status.success(), "{started:?}");
    let port = String::from_utf8_lossy(&common::docker_cli(&["port", &name, "5000"]).stdout)
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next().map(str::to_string))
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v2/library/busybox/manifests/1.37");
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";
    let mut served = None;
    for _ in 0..60 {
        if let Ok(mut r) = ureq::get(&url).header("Accept", accept).call() {
            served = Some(r.body_mut().read_to_vec().unwrap());
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let served = served.expect("the cache served nothing offline");
    assert_eq!(
        kindling::bundle::distribution::sha256_digest(&served),
        digest
    );
    let _ = common::docker_cli(&["rm", "-f", &name]);
    let _ = common::docker_cli(&["volume", "rm", "-f", &volume]);
}

/// Offline (issue #20): an env is made online, a bundle taken from it (`--env`: its provider's
/// and engine's pinned images, tools and manifest, the images its nodes hold, its stamp's
/// charts), the env deleted and the bundle loaded; then the same env is made again with every
/// outside address behind a proxy that is not there. kindling passes that proxy on to kind or
/// k3d, the nodes' containerd, the shared caches and the engine's controllers, so nothing
/// configured by kindling reaches the internet: the nodes pull from the seeded caches (which
/// serve their storage when the upstream fails) or were given the images by the images step,
/// the engine reads the charts from the env's Git. Runs with KINDLING_E2E_OFFLINE=1.
#[test]
fn e2e_offline_create_after_a_bundle_load() {
    if !enabled() || std::env::var("KINDLING_E2E_OFFLINE").as_deref() != Ok("1") {
        eprintln!("skipped: set KINDLING_E2E=1 and KINDLING_E2E_OFFLINE=1 (scripts/e2e.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("offline.tar");
    let file = file.to_str().unwrap().to_string();
    let e2e = E2e::in_dir("offline", "argo", dir);
    copy_tree(&repo_dir().join("stamps"), &e2e.source.join("stamps"));
    copy_tree(&repo_dir().join("clusters"), &e2e.source.join("clusters"));
    let env = e2e.env.clone();
    let create = e2e.create_args();
    e2e.json(&create);
    let saved = e2e.json(&["bundle", "save", &file, "--env", &env]);
    let record = &saved["bundle"]["record"];
    assert_eq!(
        record["charts"].as_array().map(Vec::len),
        Some(2),
        "{record}"
    );
    assert!(record["images"].as_array().is_some_and(|i| i.len() > 5));
    e2e.json(&["env", "delete", &env]);
    e2e.json(&["bundle", "load", &file]);

    let offline = [
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
    ];
    let created = e2e.json_with(&create, &offline);
    let entries = created["env"]["status"]["entries"].as_array().unwrap();
    assert!(
        entries.iter().all(|e| e["readiness"] == "ready"),
        "{created}"
    );
    // Both charts came from the env's Git, none from its home.
    if e2e.engine == "flux" {
        let releases = e2e.kubectl_json(&["helmreleases", "-n", "flux-system"]);
        for r in releases["items"].as_array().unwrap() {
            let chart = &r["spec"]["chart"]["spec"];
            assert_eq!(chart["sourceRef"]["kind"], "GitRepository", "{r}");
            assert!(
                chart["chart"]
                    .as_str()
                    .unwrap()
                    .starts_with("./.kindling/charts/")
            );
        }
        let repositories = e2e.kubectl_json(&["helmrepositories", "-A"]);
        assert_eq!(repositories["items"].as_array().map(Vec::len), Some(0));
    } else {
        let apps = e2e.kubectl_json(&["applications", "-n", "argocd"]);
        let from_git = apps["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| {
                a["spec"]["source"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(".kindling/charts/"))
            })
            .count();
        assert_eq!(from_git, 2, "{apps}");
    }
    e2e.wait_served("api.localhost", "podinfo", Duration::from_secs(300));
    e2e.json(&["env", "delete", &env]);
}

/// HostK8s' `sample` stack, unchanged, with every add-on on a real cluster (issue #19): the
/// stack and the add-ons Ready; the Gateway API CRDs served; the IngressClass `nginx` the
/// ingress add-on serves; metrics-server's APIService Available; and the ClusterSecretStore
/// `vault-backend` validated by the real External Secrets Operator against the real dev-mode
/// Vault with the root token kindling generated (the token reaches Vault only through the
/// Secret `hostk8s/vault-token` and `-dev-root-token-id`).
#[test]
fn e2e_hostk8s_stack_with_every_addon() {
    if !enabled() || std::env::var("KINDLING_E2E_ADDONS").as_deref() != Ok("1") {
        eprintln!("skipped: set KINDLING_E2E=1 and KINDLING_E2E_ADDONS=1 (scripts/e2e.sh)");
        return;
    }
    let e2e = E2e::in_dir("addons", "flux", tempfile::tempdir().unwrap());
    copy_tree(
        &repo_dir().join("tests/fixtures/upstream/hostk8s/software"),
        &e2e.source.join("software"),
    );
    let profile = e2e.source.join("addons.yaml");
    std::fs::write(
        &profile,
        format!("apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: addons}}\nspec:\n  provider: {}\n  kubernetesVersion: \"1.37\"\n  ingress: {{http: 8080, https: 8443}}\n  registry: true\n  imageCaches: true\n  addons: [ingress, metrics-server, gateway-api, vault, metallb]\n", e2e.provider),
    )
    .unwrap();
    let env = e2e.env.clone();
    let created = e2e.json(&[
        "env",
        "create",
        &env,
        "--stamp",
        "sample",
        "--profile",
        profile.to_str().unwrap(),
        "--engine",
        &e2e.engine,
        "--wait",
        "--timeout",
        "20m",
    ]);
    let entries = created["env"]["status"]["entries"].as_array().unwrap();
    assert!(
        entries.iter().all(|e| e["readiness"] == "ready"),
        "{created}"
    );
    for name in [
        "addon-ingress",
        "addon-metrics-server",
        "addon-gateway-api",
        "addon-external-secrets",
        "addon-vault",
        "addon-vault-backend",
        "addon-metallb",
        "addon-metallb-pool",
    ] {
        assert!(
            entries.iter().any(|e| e["name"] == name),
            "{name}: {created}"
        );
    }
    e2e.kubectl_json(&["crd", "httproutes.gateway.networking.k8s.io"]);
    let class = e2e.kubectl_json(&["ingressclass", "nginx"]);
    assert_eq!(class["spec"]["controller"], "k8s.io/ingress-nginx");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let metrics = e2e.kubectl_json(&["apiservice", "v1beta1.metrics.k8s.io"]);
        let available = metrics["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Available" && c["status"] == "True");
        let store = e2e.kubectl_json(&["clustersecretstore", "vault-backend"]);
        let valid = store["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if available && valid {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics {metrics}\nstore {store}"
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    // HostK8s' `simple` app through the engine into a namespace kindling makes, then away
    // with that namespace (`make deploy simple feature` / `make remove simple feature`).
    let deployed = e2e.json(&[
        "env",
        "deploy",
        &env,
        "simple",
        "--namespace",
        "feature",
        "--timeout",
        "10m",
    ]);
    assert_eq!(deployed["deploy"]["namespaceCreated"], true, "{deployed}");
    let deployment = e2e.kubectl_json(&["deployment", "-n", "feature", "-l", "hostk8s.app=simple"]);
    assert!(
        !deployment["items"].as_array().unwrap().is_empty(),
        "{deployment}"
    );
    // A LoadBalancer Service gets an address of the metallb pool the env recorded.
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(e2e.data.join("envs").join(&env).join("state.json")).unwrap(),
    )
    .unwrap();
    let range = state["cluster"]["loadBalancerRange"]
        .as_str()
        .unwrap_or_else(|| panic!("{state}"))
        .to_string();
    let kubeconfig = e2e.data.join("envs").join(&env).join("kubeconfig");
    let created_service = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "-n",
            "feature",
            "expose",
            "deployment",
            // The app's Deployment (software/apps/simple/deployment.yaml).
            "sample-app",
        ])
        .args([
            "--name",
            "simple-lb",
            "--type",
            "LoadBalancer",
            "--port",
            "80",
        ])
        .output()
        .unwrap();
    assert!(created_service.status.success(), "{created_service:?}");
    let first = range.split('-').next().unwrap().to_string();
    let prefix = first.rsplit_once('.').unwrap().0.to_string();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let service = e2e.kubectl_json(&["service", "-n", "feature", "simple-lb"]);
        if let Some(ip) = service["status"]["loadBalancer"]["ingress"][0]["ip"].as_str() {
            assert!(ip.starts_with(&prefix), "{ip} is not in {range}");
            break;
        }
        assert!(Instant::now() < deadline, "no address: {service}");
        std::thread::sleep(Duration::from_secs(5));
    }
    let removed = e2e.json(&["env", "remove", &env, "simple", "--namespace", "feature"]);
    assert_eq!(removed["remove"]["namespaceRemoved"], true, "{removed}");
    e2e.json(&["env", "delete", &env, "--purge"]);
}

/// A team's own Flux repository (a cluster directory as `flux bootstrap` leaves it, its app as
/// base + overlays) on a real cluster with the leg's engine: created on overlay `stage`, then
/// promoted by image tag, the new tag rolled out by the real controllers.
#[test]
fn e2e_bring_your_own_flux_layout_and_promote() {
    if !enabled() {
        eprintln!("skipped: set KINDLING_E2E=1 (scripts/e2e.sh)");
        return;
    }
    let e2e = E2e::in_dir("layout", "flux", tempfile::tempdir().unwrap());
    // registry.k8s.io/pause: small, public, and both tags exist.
    write_overlay_layout(&e2e.source, "registry.k8s.io/pause", "3.9", "3.9");
    // On Flux, the cluster directory's own OCIRepository (podinfo's public manifests, pushed
    // with `flux push artifact`) keeps its URL, and a Kustomization on it is an entry.
    if e2e.engine == "flux" {
        write(
            &e2e.source.join("clusters/dev/podinfo.yaml"),
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata: {name: podinfo, namespace: flux-system}\nspec:\n  interval: 10m\n  url: oci://ghcr.io/stefanprodan/manifests/podinfo\n  ref: {tag: latest}\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: podinfo, namespace: flux-system}\nspec:\n  interval: 10m\n  sourceRef: {kind: OCIRepository, name: podinfo}\n  path: ./\n  prune: true\n  wait: true\n  targetNamespace: web-stage\n  dependsOn: [{name: apps}]\n",
        );
    }
    let profile = e2e.source.join("layout.yaml");
    std::fs::write(
        &profile,
        format!("apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: layout}}\nspec:\n  provider: {}\n  kubernetesVersion: \"1.37\"\n  ingress: {{http: 8080, https: 8443}}\n  registry: false\n  imageCaches: true\n", e2e.provider),
    )
    .unwrap();
    let env = e2e.env.clone();
    let created = e2e.json(&[
        "env",
        "create",
        &env,
        "--stamp",
        "clusters/dev",
        "--overlay",
        "stage",
        "--profile",
        profile.to_str().unwrap(),
        "--engine",
        &e2e.engine,
        "--wait",
        "--timeout",
        "15m",
    ]);
    let entries = created["env"]["status"]["entries"].as_array().unwrap();
    assert!(
        entries.iter().all(|e| e["readiness"] == "ready"),
        "{created}"
    );
    if e2e.engine == "flux" {
        let podinfo = e2e.kubectl_json(&["deployment", "-n", "web-stage", "podinfo"]);
        assert!(
            podinfo["status"]["readyReplicas"].as_i64().unwrap_or(0) > 0,
            "{podinfo}"
        );
    }
    let promoted = e2e.json(&[
        "env",
        "promote",
        &env,
        "--image",
        "registry.k8s.io/pause=3.10",
        "--timeout",
        "10m",
    ]);
    assert_eq!(promoted["promote"]["rolledOut"], true, "{promoted}");
    let web = e2e.kubectl_json(&["deployment", "-n", "web-stage", "web"]);
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"], "registry.k8s.io/pause:3.10",
        "{web}"
    );

    // Drift (issue #21 part 4): a hand edit of a field Git sets shows in `env diff` and
    // `env status`, and the engine puts Git's back: Flux on `env sync` (or at its interval),
    // Argo CD by itself (selfHeal).
    let image = |e2e: &E2e| {
        e2e.kubectl_json(&["deployment", "-n", "web-stage", "web"])["spec"]["template"]["spec"]
            ["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    e2e.kubectl(&[
        "-n",
        "web-stage",
        "set",
        "image",
        "deployment/web",
        "web=registry.k8s.io/pause:3.9",
    ]);
    if e2e.engine == "flux" {
        let diff = e2e.kindling(&["env", "diff", &env, "apps", "--exit-code"]);
        assert_eq!(diff.status.code(), Some(1), "the hand edit is no drift");
        let shown = String::from_utf8_lossy(&diff.stdout);
        assert!(
            shown.contains("Deployment web-stage/web drifted"),
            "{shown}"
        );
        assert!(shown.contains("registry.k8s.io/pause:3.10"), "{shown}");
        let status = e2e.json(&["env", "status", &env]);
        let apps = status["status"]["reconciliation"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "apps")
            .cloned()
            .unwrap();
        assert!(
            apps["drifted"]
                .to_string()
                .contains("Deployment web-stage/web"),
            "{apps}"
        );
        e2e.json(&["env", "sync", &env, "--timeout", "10m"]);
    }
    e2e.until(
        "the engine reverts the hand edit",
        Duration::from_secs(300),
        || image(&e2e) == "registry.k8s.io/pause:3.10",
    );
    let clean = e2e.kindling(&["env", "diff", &env, "apps", "--exit-code"]);
    assert!(
        clean.status.success(),
        "drift left after the engine reverted it"
    );

    // A bad commit: the API server refuses it, `env status` shows the engine's reason, and
    // reverting it with `env sync` recovers.
    let deployment = e2e.source.join("apps/web/base/deployment.yaml");
    let good = std::fs::read_to_string(&deployment).unwrap();
    std::fs::write(&deployment, good.replace("replicas: 1", "replicas: -1")).unwrap();
    e2e.json(&["env", "sync", &env, "--no-wait"]);
    e2e.until(
        "the bad commit in env status",
        Duration::from_secs(600),
        || {
            let status = e2e.json(&["env", "status", &env]);
            status["status"]["reconciliation"]["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| {
                    e["name"] == "apps"
                        && e["readiness"] != "ready"
                        && e["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("replicas"))
                })
        },
    );
    std::fs::write(&deployment, &good).unwrap();
    let recovered = e2e.json(&["env", "sync", &env, "--timeout", "10m"]);
    assert!(
        recovered["sync"]["status"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["readiness"] == "ready"),
        "{recovered}"
    );
    e2e.json(&["env", "delete", &env]);
}

/// An idpbuilder package on a real engine (issue #21 part 2): its `cnoe://` directories pushed
/// to Gitea repositories of their own, the Application (Argo CD: and an ApplicationSet over a
/// git directory generator; Flux: the translation) reconciled, and an edit synced.
#[test]
fn e2e_idpbuilder_package() {
    if !enabled() {
        eprintln!("skipped: set KINDLING_E2E=1 (scripts/e2e.sh)");
        return;
    }
    let e2e = E2e::in_dir("package", "argo", tempfile::tempdir().unwrap());
    write_flux_layout(&e2e.source);
    let package = e2e.source.join("../my-package");
    let config_map = |name: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: '{value}'}}\n"
        )
    };
    write(
        &package.join("notes.yaml"),
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: notes, namespace: argocd}\nspec:\n  project: default\n  source: {repoURL: 'cnoe://manifests', targetRevision: HEAD, path: .}\n  destination: {server: 'https://kubernetes.default.svc', namespace: pkgs}\n  syncPolicy:\n    automated: {prune: true, selfHeal: true}\n    syncOptions: [CreateNamespace=true]\n",
    );
    write(
        &package.join("manifests/cm.yaml"),
        &config_map("pkg-notes", "first"),
    );
    if e2e.engine == "argo" {
        write(
            &package.join("set.yaml"),
            "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: sets, namespace: argocd}\nspec:\n  generators:\n    - git: {repoURL: 'cnoe://sets', revision: HEAD, directories: [{path: 'apps/*'}]}\n  template:\n    metadata: {name: 'set-{{path.basename}}'}\n    spec:\n      project: default\n      source: {repoURL: 'cnoe://sets', targetRevision: HEAD, path: '{{path}}'}\n      destination: {server: 'https://kubernetes.default.svc', namespace: pkgs}\n      syncPolicy: {automated: {prune: true}}\n",
        );
        write(
            &package.join("sets/apps/alpha/cm.yaml"),
            &config_map("set-alpha", "alpha"),
        );
    }
    let profile = e2e.source.join("package.yaml");
    std::fs::write(
        &profile,
        format!("apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: package}}\nspec:\n  provider: {}\n  kubernetesVersion: \"1.37\"\n  ingress: {{http: 8080, https: 8443}}\n  registry: false\n  imageCaches: true\n", e2e.provider),
    )
    .unwrap();
    let env = e2e.env.clone();
    e2e.json(&[
        "env",
        "create",
        &env,
        "--stamp",
        "clusters/dev",
        "--profile",
        profile.to_str().unwrap(),
        "--engine",
        &e2e.engine,
        "--package",
        package.to_str().unwrap(),
        "--wait",
        "--timeout",
        "15m",
    ]);
    let value = |e2e: &E2e, name: &str| -> Option<String> {
        let kubeconfig = e2e.data.join("envs").join(&e2e.env).join("kubeconfig");
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "get",
                "configmap",
                name,
                "-n",
                "pkgs",
                "-o",
                "jsonpath={.data.value}",
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    e2e.until("the package reconciled", Duration::from_secs(600), || {
        value(&e2e, "pkg-notes").as_deref() == Some("first")
            && (e2e.engine != "argo" || value(&e2e, "set-alpha").is_some())
    });
    write(
        &package.join("manifests/cm.yaml"),
        &config_map("pkg-notes", "second"),
    );
    e2e.json(&["env", "sync", &env, "--timeout", "10m"]);
    e2e.until("the edit reconciled", Duration::from_secs(600), || {
        value(&e2e, "pkg-notes").as_deref() == Some("second")
    });
    let status = e2e.json(&["env", "status", &env]);
    assert!(
        status["status"]["packages"].to_string().contains("notes"),
        "{status}"
    );
    e2e.json(&["env", "delete", &env]);
}

/// Issue #22: a cluster kindling did not make. The test makes a kind cluster itself (with the
/// pinned kind kindling resolves), plants a team's namespace in it, and hands it to kindling
/// with `--provider existing --context`: Gitea runs in the cluster behind a port-forward, the
/// engine is installed (it is absent), the sample stamp reconciles, a sync pushes, and the
/// delete leaves the cluster and the team's objects and nothing labelled for the env. Then,
/// with cert-manager installed on the cluster from its release manifest, a second env uses it
/// instead of the stamp's, and a third env of another stamp shares the cluster and its Flux
/// with it (each env's Flux objects in its own namespace); deleting the third leaves the
/// second Ready, and the second's delete leaves the cluster's cert-manager.
#[test]
fn e2e_existing_cluster() {
    existing_cluster_case("flux");
}

/// The same on Argo CD, which kindling installs with `application.namespaces: kindling-*`:
/// each env's Applications in its own namespace under a project of its own.
#[test]
fn e2e_existing_cluster_on_argo_cd() {
    existing_cluster_case("argo");
}

fn existing_cluster_case(engine: &str) {
    if !enabled() {
        eprintln!("skipped: set KINDLING_E2E=1 (scripts/e2e.sh)");
        return;
    }
    // Each job of the workflow runs the case of its engine (a kind cluster and an engine
    // install each); without KINDLING_E2E_ENGINE, the Flux one.
    let wanted = std::env::var("KINDLING_E2E_ENGINE").unwrap_or_else(|_| "flux".into());
    if wanted != engine {
        eprintln!("skipped: the {engine} case runs with KINDLING_E2E_ENGINE={engine}");
        return;
    }
    let e2e = E2e::in_dir("existing", engine, tempfile::tempdir().unwrap());
    copy_tree(
        &repo_dir().join("stamps/sample"),
        &e2e.source.join("stamps/sample"),
    );
    let data = e2e.data.to_string_lossy().into_owned();
    let settings = kindling::env::Settings::from_vars(|k| match k {
        "KINDLING_DATA_DIR" => Some(data.clone()),
        _ => std::env::var(k).ok(),
    });
    let kind = kindling::env::provider_tool(kindling::cluster::Provider::Kind, &settings)
        .expect("the pinned kind")
        .path;
    let cluster = format!("team-{}", e2e.engine);
    let kubeconfig = e2e.source.join("../team-kubeconfig");
    let run = |args: &[&str]| {
        eprintln!("+ kind {}", args.join(" "));
        let status = Command::new(&kind)
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .status()
            .unwrap();
        assert!(status.success(), "kind {args:?}");
    };
    run(&["create", "cluster", "--name", &cluster, "--wait", "180s"]);
    let context = format!("kind-{cluster}");
    let kubectl = |args: &[&str]| -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--context")
            .arg(&context)
            .args(args)
            .output()
            .expect("kubectl is needed by the e2e suite")
    };
    // The team's own objects, there before kindling.
    assert!(kubectl(&["create", "namespace", "team-a"]).status.success());
    assert!(
        kubectl(&[
            "-n",
            "team-a",
            "create",
            "configmap",
            "keep-me",
            "--from-literal=a=1"
        ])
        .status
        .success()
    );
    let env = e2e.env.clone();
    let kubeconfig_arg = kubeconfig.to_string_lossy().into_owned();
    let create_on_the_cluster = |env: &str, stamp: &str| {
        e2e.json(&[
            "env",
            "create",
            env,
            "--stamp",
            stamp,
            "--provider",
            "existing",
            "--context",
            &context,
            "--kubeconfig",
            &kubeconfig_arg,
            "--engine",
            &e2e.engine,
            "--wait",
            "--timeout",
            "15m",
        ])
    };
    let created = create_on_the_cluster(&env, "sample");
    assert_eq!(created["env"]["provider"], "existing", "{created}");
    let status = e2e.json(&["env", "status", &env]);
    assert_eq!(status["status"]["ready"], true, "{status}");
    assert_eq!(status["status"]["gitea"]["state"], "running", "{status}");
    assert_eq!(status["status"]["engineOrigin"], "installed");
    // A sync pushes through a port-forward again.
    write(
        &e2e.source
            .join("stamps/sample/applications/website/extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: existing-extra}\ndata: {a: b}\n",
    );
    let kustomization = e2e
        .source
        .join("stamps/sample/applications/website/kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization).unwrap();
    std::fs::write(
        &kustomization,
        text.replacen("resources:\n", "resources:\n  - extra.yaml\n", 1),
    )
    .unwrap();
    e2e.json(&["env", "sync", &env, "--timeout", "10m"]);
    e2e.until("the synced ConfigMap", Duration::from_secs(300), || {
        kubectl(&["get", "configmap", "-A", "-o", "name"])
            .stdout
            .windows(b"existing-extra".len())
            .any(|w| w == b"existing-extra")
    });
    let listed = e2e.json(&[
        "env",
        "list",
        "--provider",
        "existing",
        "--context",
        &context,
        "--kubeconfig",
        &kubeconfig_arg,
    ]);
    assert!(listed.to_string().contains(&env), "{listed}");
    e2e.json(&["env", "delete", &env]);
    // Nothing labelled for the env is left (namespaces may take a while to terminate).
    let selector = format!("dev.kindling.env={env}");
    e2e.until(
        "every object labelled for the env gone",
        Duration::from_secs(300),
        || {
            let out = kubectl(&[
                "get",
                "namespaces,deployments,services,secrets,persistentvolumeclaims,customresourcedefinitions,clusterroles,clusterrolebindings",
                "-A",
                "-l",
                &selector,
                "-o",
                "name",
            ]);
            out.status.success() && out.stdout.iter().all(u8::is_ascii_whitespace)
        },
    );
    // The cluster and the team's objects stay.
    assert!(kubectl(&["get", "nodes"]).status.success());
    let kept = kubectl(&["-n", "team-a", "get", "configmap", "keep-me", "-o", "name"]);
    assert!(kept.status.success(), "the team's ConfigMap went");
    // The cluster's own cert-manager, from its pinned release's static manifest (rendered from
    // the same chart, into `cert-manager`): the next env uses it instead of installing one.
    assert!(
        kubectl(&[
            "apply",
            "--server-side",
            "-f",
            "https://github.com/cert-manager/cert-manager/releases/download/v1.21.1/cert-manager.yaml",
        ])
        .status
        .success()
    );
    assert!(
        kubectl(&[
            "-n",
            "cert-manager",
            "wait",
            "--for=condition=Available",
            "deployment",
            "--all",
            "--timeout=300s",
        ])
        .status
        .success()
    );
    let second = format!("{env}-cm");
    create_on_the_cluster(&second, "sample");
    let status = e2e.json(&["env", "status", &second]);
    assert_eq!(status["status"]["ready"], true, "{status}");
    assert_eq!(
        status["status"]["certManager"]["resourceNamespace"], "cert-manager",
        "{status}"
    );
    // A third env, of a stamp of its own namespace, on the same cluster and Flux.
    write(
        &e2e.source.join("stamps/team-b/stamp.yaml"),
        "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata:\n  name: team-b\nspec:\n  ignore: [\"/*\", \"!/stamps/team-b/\"]\n  applications:\n    - name: notes\n      path: applications/notes\n",
    );
    write(
        &e2e.source
            .join("stamps/team-b/applications/notes/notes.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes, namespace: team-b}\ndata: {team: b}\n",
    );
    let third = format!("{env}-b");
    create_on_the_cluster(&third, "team-b");
    let own = format!("kindling-{third}");
    let root_kind = match engine {
        "argo" => "applications.argoproj.io",
        _ => "kustomizations.kustomize.toolkit.fluxcd.io",
    };
    assert!(
        kubectl(&["-n", &own, "get", root_kind, "kindling-team-b"])
            .status
            .success(),
        "the third env's root is not in its own namespace"
    );
    assert!(
        kubectl(&["-n", "team-b", "get", "configmap", "notes"])
            .status
            .success()
    );
    for env in [&second, &third] {
        let status = e2e.json(&["env", "status", env]);
        assert_eq!(status["status"]["ready"], true, "{status}");
    }
    e2e.json(&["env", "delete", &third]);
    e2e.until(
        "the third env's notes gone",
        Duration::from_secs(300),
        || {
            !kubectl(&["-n", "team-b", "get", "configmap", "notes"])
                .status
                .success()
        },
    );
    let status = e2e.json(&["env", "status", &second]);
    assert_eq!(status["status"]["ready"], true, "{status}");
    e2e.json(&["env", "delete", &second]);
    let controller = kubectl(&["-n", "cert-manager", "get", "deployment", "cert-manager"]);
    assert!(
        controller.status.success(),
        "the cluster's cert-manager went"
    );
    run(&["delete", "cluster", "--name", &cluster]);
}
