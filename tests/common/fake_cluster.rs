//! What the fake controllers share: the pushed commit's tree (as source-controller or Argo
//! CD's repo-server unpacks it), kustomize builds of it, server-side apply into the fake API's
//! objects with the API server's admission, and kstatus health as Flux and the tests judge
//! it. The controllers (fake_flux.rs, fake_argo.rs) decide when and what; this does it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::env_harness::Head;
use super::kube_api::Stored;

/// One second of engine time in the fakes: a `5m` timeout lasts 3 s, the 30 s dependency
/// requeue 300 ms.
pub const SECOND: Duration = Duration::from_millis(10);

/// A test can make an object's health what it needs: `InProgress`, `Failed`, or
/// `InProgressFor=<duration>` (engine time, from when it was applied). Not an upstream field:
/// it stands for a workload that is slow or broken.
pub const HEALTH_ANNOTATION: &str = "test.kindling.dev/health";

pub fn scaled(engine: Duration) -> Duration {
    SECOND.mul_f64(engine.as_secs_f64())
}

/// Parses a Go duration as Flux writes them (`5m`, `30s`, `1m30s`, `1h`).
pub fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('h', _) => 3600.0,
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * unit;
        number.clear();
    }
    number.is_empty().then(|| Duration::from_secs_f64(total))
}

/// Who applies, which decides how applied objects are marked and how a refusal reads.
#[derive(Clone, Copy)]
pub enum Owner<'a> {
    /// A Kustomization, by name and namespace (kustomize-controller v1.9.4 labels what it
    /// applies with both: kustomization_controller.go `SetOwnerLabels(objects, obj.GetName(),
    /// obj.GetNamespace())`).
    Flux(&'a str, &'a str),
    /// A HelmRelease's chart, by the release's name and namespace: helm-controller's post
    /// renderer labels every object it installs `helm.toolkit.fluxcd.io/name` and
    /// `/namespace` (fluxcd/helm-controller v1.6.3 internal/postrender/build.go
    /// `NewOriginLabels(v2.GroupVersion.Group, rel.Namespace, rel.Name)`,
    /// common_renderer.go `originLabels`), not with kustomize-controller's labels.
    Helm(&'a str, &'a str),
    /// The Namespace Helm's `install.createNamespace` makes before the release, outside it:
    /// not post-rendered, so without origin labels (helm v3 pkg/action/install.go labels it
    /// `name: <namespace>` only).
    HelmNamespace,
    /// An Application, by name.
    Argo(&'a str),
}

/// The internet as the cluster reaches it. On a corporate network a TLS-intercepting proxy
/// re-signs every HTTPS connection with the network's own root CA ([`Internet::intercept_with`]);
/// a client that does not trust that root fails the handshake as Go does (crypto/tls
/// handshake_client.go wraps crypto/x509 UnknownAuthorityError: "tls: failed to verify
/// certificate: x509: certificate signed by unknown authority"). With no network at all
/// ([`Internet::cut`]) every name fails to resolve, as Go's resolver reports it (net/dnsclient
/// DNSError: "lookup HOST on SERVER: no such host", wrapped by net.Dial's OpError as "dial tcp:
/// …"). Not an upstream component: it stands for the network between the controllers and the
/// chart repositories.
#[derive(Clone, Default)]
pub struct Internet(std::sync::Arc<std::sync::Mutex<Network>>);

#[derive(Default)]
struct Network {
    intercepting_root: Option<String>,
    cut: bool,
}

impl Internet {
    pub fn intercept_with(&self, root_pem: &str) {
        self.0.lock().unwrap().intercepting_root = Some(root_pem.to_string());
    }

    /// No outside address can be reached any more.
    pub fn cut(&self) {
        self.0.lock().unwrap().cut = true;
    }

    /// A connection to `url` from a client trusting the system roots and `trusted` (PEM
    /// text); plain http needs no trust.
    pub fn connect(&self, url: &str, trusted: Option<&str>) -> Result<(), String> {
        let network = self.0.lock().unwrap();
        if network.cut {
            let authority = url
                .split_once("://")
                .map_or(url, |(_, rest)| rest)
                .split('/')
                .next()
                .unwrap_or_default();
            let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
            // An address is dialled (net.OpError "connect: network is unreachable"); a name
            // is looked up first, at the cluster's DNS Service (10.96.0.10 in kind).
            return Err(if host.parse::<std::net::IpAddr>().is_ok() {
                format!("dial tcp {authority}: connect: network is unreachable")
            } else {
                format!("dial tcp: lookup {host} on 10.96.0.10:53: no such host")
            });
        }
        let Some(root) = network.intercepting_root.clone() else {
            return Ok(());
        };
        if url.starts_with("http://") {
            return Ok(());
        }
        let body = |pem: &str| -> String {
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>()
        };
        if trusted.is_some_and(|t| body(t).contains(&body(&root))) {
            return Ok(());
        }
        Err(
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
                .to_string(),
        )
    }
}

/// The repository a Git URL names when it is a package's on kindling's Gitea
/// (`…/kindling/NAME.git`, NAME not the env's own `source`): `None` for the env's repository
/// and for any other host.
pub fn package_repository(url: &str) -> Option<String> {
    let (_, tail) = url.rsplit_once(&format!("/{}/", kindling::gitea::ADMIN_USER))?;
    let name = tail.strip_suffix(".git")?;
    (name != kindling::gitea::REPOSITORY && !name.contains('/')).then(|| name.to_string())
}

/// A chart read from the pushed commit.
pub struct LocalChart {
    pub name: String,
    pub version: String,
    /// What its templates render to.
    pub objects: Vec<Value>,
}

/// The pushed repository as the controllers read it.
pub struct Workspace {
    head: Head,
    cached_head: Option<(Instant, Option<String>)>,
    snapshots: tempfile::TempDir,
    builds: HashMap<(String, String), Result<Vec<Value>, String>>,
    /// When each object the fakes applied was applied (for `InProgressFor`).
    applied_at: HashMap<String, Instant>,
    /// What the controllers' fetches from the internet go through.
    pub internet: Internet,
}

impl Workspace {
    pub fn new(head: Head) -> Workspace {
        Workspace {
            head,
            cached_head: None,
            snapshots: tempfile::tempdir().unwrap(),
            builds: HashMap::new(),
            applied_at: HashMap::new(),
            internet: Internet::default(),
        }
    }

    pub fn head(&mut self) -> Option<String> {
        // A `git rev-parse` (or `docker exec`) per request would dominate the fake's time.
        if let Some((at, head)) = &self.cached_head
            && at.elapsed() < Duration::from_millis(100)
        {
            return head.clone();
        }
        let head = self.head.read();
        self.cached_head = Some((Instant::now(), head.clone()));
        head
    }

    /// Where the tree stored under `key` lives (an OCI artifact's, `fake_oci`), whether it
    /// is there yet or not.
    pub fn tree_dir(&self, key: &str) -> PathBuf {
        self.snapshots.path().join(key)
    }

    /// The tree of `commit`, extracted once.
    pub fn tree(&mut self, commit: &str) -> PathBuf {
        let root = self.snapshots.path().join(commit);
        if !root.exists() {
            self.head.extract(commit, &root);
        }
        root
    }

    /// The head of a package's repository (one of kindling's Gitea user's, not the env's).
    /// The head of the env repository `url` names when each env has a Gitea of its own
    /// (`Head::read_for_url`).
    pub fn head_for_url(&self, url: &str) -> Option<Option<String>> {
        self.head.read_for_url(url)
    }

    pub fn repository_head(&self, url: &str, name: &str) -> Option<String> {
        self.head.read_repository(url, name)
    }

    /// The manifests at `path` of the pushed commit, built as Argo CD's repo-server builds
    /// them: `kustomize build` of the directory's kustomization.yaml as it is (kustomize
    /// decodes it strictly: kubernetes-sigs/kustomize v5.8.1 api/types/kustomization.go
    /// `Unmarshal`, "invalid Kustomization: json: unknown field"), or every YAML file under it
    /// when there is none.
    pub fn build(&mut self, head: &str, path: &str) -> Result<Vec<Value>, String> {
        self.build_with(head, path, false)
    }

    /// The same as kustomize-controller builds them: its generator (fluxcd/pkg kustomize
    /// kustomize_generator.go `GenerateManifest`, "generate a kustomization.yaml" when there is
    /// none) first reads the directory's kustomization.yaml with sigs.k8s.io/yaml's lenient
    /// `yaml.Unmarshal` into kustomize's `Kustomization` and writes it back, so fields kustomize
    /// does not know are dropped there rather than refused (nested kustomizations are still
    /// read strictly by kustomize).
    pub fn build_as_flux(&mut self, head: &str, path: &str) -> Result<Vec<Value>, String> {
        self.build_with(head, path, true)
    }

    fn build_with(&mut self, head: &str, path: &str, flux: bool) -> Result<Vec<Value>, String> {
        let key = (
            head.to_string(),
            format!("{path}{}", if flux { "#flux" } else { "" }),
        );
        if let Some(done) = self.builds.get(&key) {
            return done.clone();
        }
        let root = self.snapshots.path().join(head);
        if !root.exists() {
            self.head.extract(head, &root);
        }
        let dir = root.join(path.trim_start_matches("./"));
        let result = if !dir.is_dir() {
            Err(format!(
                "kustomization path not found: stat {}: no such file or directory",
                dir.display()
            ))
        } else if dir.join("kustomization.yaml").is_file()
            || dir.join("kustomization.yml").is_file()
        {
            if flux {
                rewrite_as_flux_generator(&dir)?;
            }
            let out = std::process::Command::new("kubectl")
                .args(["kustomize", &dir.display().to_string()])
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(documents(&String::from_utf8_lossy(&out.stdout)))
            } else {
                Err(format!(
                    "kustomize build failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        } else {
            let mut files = Vec::new();
            yaml_files(&dir, &mut files);
            files.sort();
            Ok(files
                .iter()
                .flat_map(|f| documents(&std::fs::read_to_string(f).unwrap_or_default()))
                .collect())
        };
        self.builds.insert(key, result.clone());
        result
    }

    /// A chart directory of the pushed commit, as the engines load a chart from Git:
    /// source-controller's local chart builder reads PATH/Chart.yaml first and fails the build
    /// with "invalid chart reference" when it is not there (fluxcd/source-controller v1.9
    /// internal/helm/chart/builder_local.go Build, metadata.go LoadChartMetadata, errors.go
    /// ErrChartReference); argo-cd v3.5.1 util/app/discovery/discovery.go takes a path holding
    /// a Chart.yaml as a Helm source. Helm renders the templates; this fake takes a template
    /// without template actions as it is, and leaves one with actions to the recorded table
    /// ([`chart_workloads`]), as for a chart from a repository.
    pub fn local_chart(&mut self, head: &str, path: &str) -> Result<LocalChart, String> {
        let root = self.snapshots.path().join(head);
        if !root.exists() {
            self.head.extract(head, &root);
        }
        let dir = root.join(path.trim_start_matches("./"));
        let chart_file = dir.join("Chart.yaml");
        let text = std::fs::read_to_string(&chart_file).map_err(|_| {
            format!(
                "invalid chart reference: open {}: no such file or directory",
                chart_file.display()
            )
        })?;
        let metadata: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("invalid chart reference: cannot load 'Chart.yaml': {e}"))?;
        let mut templates = Vec::new();
        yaml_files(&dir.join("templates"), &mut templates);
        templates.sort();
        let mut objects = Vec::new();
        for file in templates {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if !text.contains("{{") {
                objects.extend(documents(&text));
            }
        }
        Ok(LocalChart {
            name: metadata["name"].as_str().unwrap_or_default().to_string(),
            version: metadata["version"].as_str().unwrap_or_default().to_string(),
            objects,
        })
    }

    /// Server-side apply of the built objects, Namespaces first, marked as their owner marks
    /// them, refused as the API server refuses them (the error in the owner's words).
    pub fn apply(
        &mut self,
        objects: &mut Vec<Stored>,
        owner: Owner<'_>,
        mut built: Vec<Value>,
        target: Option<String>,
    ) -> Result<Vec<ObjectRef>, String> {
        built.sort_by_key(|o| o["kind"] != "Namespace");
        let mut inventory = Vec::new();
        for mut o in built {
            let kind = o["kind"].as_str().unwrap_or_default().to_string();
            let gv = o["apiVersion"].as_str().unwrap_or_default().to_string();
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ns = if kindling::stamp::is_cluster_scoped(&kind) {
                None
            } else {
                target
                    .clone()
                    .or_else(|| o["metadata"]["namespace"].as_str().map(str::to_string))
                    .or(Some("default".into()))
            };
            if let Some(ns) = &ns {
                o["metadata"]["namespace"] = json!(ns);
            }
            let plural = plural_of(&kind);
            match owner {
                Owner::Flux(by, by_ns) => {
                    o["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] = json!(by);
                    o["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/namespace"] = json!(by_ns);
                }
                Owner::Helm(release, release_ns) => {
                    o["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] = json!(release);
                    o["metadata"]["labels"]["helm.toolkit.fluxcd.io/namespace"] = json!(release_ns);
                }
                Owner::HelmNamespace => {
                    o["metadata"]["labels"]["name"] = json!(name);
                }
                // argoproj/argo-cd v3.5.1 util/argo/resource_tracking.go: annotation tracking
                // (the v3 default), `<app>:<group>/<kind>:<namespace>/<name>`.
                Owner::Argo(app) => {
                    let group = gv.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                    o["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] =
                        json!(format!(
                            "{app}:{group}/{kind}:{}/{name}",
                            ns.as_deref().unwrap_or("")
                        ));
                }
            }
            if let Some((reason, refused)) = admission(objects, &o, ns.as_deref()) {
                if let Owner::Argo(_) = owner {
                    // gitops-engine pkg/sync/sync_context.go: "one or more objects failed to
                    // apply, reason: <API message>".
                    return Err(format!(
                        "one or more objects failed to apply, reason: {refused}"
                    ));
                }
                // fluxcd/pkg ssa v0.76.1 apply errors: "<Kind>/<ns>/<name> dry-run failed
                // (<reason>): <API message>", and kustomize-controller adds "\n" and the
                // change log (KC:975), so the message ends in a newline.
                return Err(format!(
                    "{kind}/{}/{name} dry-run failed ({reason}): {refused}\n",
                    ns.as_deref().unwrap_or("")
                ));
            }
            let key = ObjectRef::of(&o).key();
            // Both engines apply server-side, forced, as their own field manager
            // (kustomize-controller; Argo CD's `ServerSideApply=true`, which kindling sets):
            // what other managers set stays, such as a reconcile request annotation or the
            // binder's fields, and what the engine applied before and no longer does goes
            // (fake_ssa).
            let manager = match owner {
                Owner::Flux(..) => "kustomize-controller",
                Owner::Helm(..) | Owner::HelmNamespace => "helm-controller",
                Owner::Argo(_) => "argocd-controller",
            };
            match objects.iter_mut().find(|s| {
                s.group_version == gv && s.plural == plural && s.namespace == ns && s.name == name
            }) {
                Some(s) => {
                    let status = s.object["status"].clone();
                    let generation = s.object["metadata"]["generation"].as_i64().unwrap_or(1);
                    let merged = super::fake_ssa::apply(Some(&s.object), &o, manager);
                    let spec_changed = s.object["spec"] != merged["spec"];
                    s.object = merged;
                    s.object["status"] = status;
                    s.object["metadata"]["generation"] =
                        json!(generation + i64::from(spec_changed));
                }
                None => {
                    let mut o = super::fake_ssa::apply(None, &o, manager);
                    o["metadata"]["generation"] = json!(1);
                    // Every object the API server creates gets a UID of its own.
                    static UIDS: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(1);
                    let n = UIDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    o["metadata"]["uid"] = json!(format!("uid-applied-{n}"));
                    objects.push(Stored {
                        group_version: gv.clone(),
                        plural: plural.clone(),
                        namespace: ns.clone(),
                        name: name.clone(),
                        object: o,
                    });
                    self.applied_at.insert(key, Instant::now());
                }
            }
            inventory.push(ObjectRef {
                api_version: gv,
                kind,
                namespace: ns,
                name,
            });
        }
        Ok(inventory)
    }

    /// kstatus as Flux's health checks use it (fluxcd/cli-utils kstatus): workloads by their
    /// rollout, objects with a Ready condition by it, the rest Current once they exist.
    pub fn health(&self, objects: &[Stored], target: &ObjectRef) -> Health {
        let Some(s) = objects.iter().find(|s| target.names(s)) else {
            return Health::NotFound;
        };
        let o = &s.object;
        if let Some(wish) = o["metadata"]["annotations"][HEALTH_ANNOTATION].as_str() {
            match wish.split_once('=') {
                Some(("InProgressFor", d)) => {
                    let since = self
                        .applied_at
                        .get(&ObjectRef::of(o).key())
                        .map(|t| t.elapsed())
                        .unwrap_or_default();
                    if since < scaled(go_duration(d).unwrap_or_default()) {
                        return Health::InProgress;
                    }
                }
                _ if wish == "Failed" => return Health::Failed,
                _ if wish == "InProgress" => return Health::InProgress,
                _ => {}
            }
        }
        if !o["metadata"]["deletionTimestamp"].is_null() {
            return Health::InProgress;
        }
        match o["kind"].as_str().unwrap_or_default() {
            "Deployment" => {
                let available = o["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Available" && c["status"] == "True")
                });
                if available {
                    Health::Current
                } else {
                    Health::InProgress
                }
            }
            // kstatus (fluxcd/cli-utils pkg/kstatus/status/core.go `jobConditions`): Current
            // once Complete, Failed once Failed, in progress before (and while it runs).
            "Job" => {
                let has = |kind: &str| {
                    o["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter().any(|c| c["type"] == kind && c["status"] == "True")
                    })
                };
                if has("Complete") {
                    Health::Current
                } else if has("Failed") {
                    Health::Failed
                } else {
                    Health::InProgress
                }
            }
            "StatefulSet" => {
                if o["status"]["readyReplicas"].as_i64()
                    >= o["spec"]["replicas"].as_i64().or(Some(1))
                {
                    Health::Current
                } else {
                    Health::InProgress
                }
            }
            _ => match o["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            {
                Some(c) if c["status"] == "True" => Health::Current,
                // kstatus: a Stalled condition is Failed; a Ready=False alone is still InProgress.
                Some(_)
                    if o["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Stalled" && c["status"] == "True")
                    }) =>
                {
                    Health::Failed
                }
                Some(_) => Health::InProgress,
                // Custom resources that Flux or cert-manager judge by conditions but that have
                // none yet are still reconciling; everything else exists and that is enough.
                None if matches!(
                    o["kind"].as_str(),
                    Some(
                        "HelmRelease"
                            | "Kustomization"
                            | "Certificate"
                            | "ClusterIssuer"
                            | "Issuer"
                    )
                ) =>
                {
                    Health::InProgress
                }
                None => Health::Current,
            },
        }
    }
}

/// An object as Flux's inventory names it: group/version, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn of(object: &Value) -> ObjectRef {
        ObjectRef {
            api_version: object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind: object["kind"].as_str().unwrap_or_default().to_string(),
            namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// Whether `s` is this object (any version of the group when none is named, as a health
    /// check without apiVersion).
    pub fn names(&self, s: &Stored) -> bool {
        (self.api_version.is_empty() || s.group_version == self.api_version)
            && s.plural == plural_of(&self.kind)
            && s.namespace == self.namespace
            && s.name == self.name
    }

    fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.api_version,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }
}

/// The plural the API serves a kind under (the kinds the fakes meet).
pub fn plural_of(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with("ss") || lower.ends_with("ch") || lower.ends_with('x') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Current,
    InProgress,
    Failed,
    NotFound,
}

impl Health {
    pub fn label(self) -> &'static str {
        match self {
            Health::Current => "Current",
            Health::InProgress => "InProgress",
            Health::Failed => "Failed",
            Health::NotFound => "NotFound",
        }
    }
}

/// A delete request from a controller: the object gets its deletionTimestamp and the fake
/// API's garbage collection (and namespace controller) does the rest.
pub fn mark_deleted(objects: &mut [Stored], target: &ObjectRef) {
    if let Some(s) = objects.iter_mut().find(|s| target.names(s))
        && s.object["metadata"]["deletionTimestamp"].is_null()
    {
        s.object["metadata"]["deletionTimestamp"] = json!("2026-11-29T00:00:00Z");
        if s.object["kind"] == "Namespace" {
            s.object["status"]["phase"] = json!("Terminating");
        }
    }
}

/// What the API server's admission says to a create or update (None = allowed): the
/// NamespaceLifecycle plugin, and cert-manager's validating webhook (failurePolicy Fail in
/// cert-manager/cert-manager v1.21.1 deploy/charts/cert-manager/templates/webhook-validating-webhook.yaml)
/// while its Deployment is not available.
fn admission(
    objects: &[Stored],
    object: &Value,
    ns: Option<&str>,
) -> Option<(&'static str, String)> {
    let exists = |gv: &str, plural: &str, ns: Option<&str>, name: &str| {
        objects.iter().find(|s| {
            s.group_version == gv
                && s.plural == plural
                && s.namespace.as_deref() == ns
                && s.name == name
        })
    };
    let is_new = exists(
        object["apiVersion"].as_str().unwrap_or(""),
        &plural_of(object["kind"].as_str().unwrap_or("")),
        ns,
        object["metadata"]["name"].as_str().unwrap_or(""),
    )
    .is_none();
    if let Some(ns) = ns
        && is_new
        && !["default", "kube-system", "kube-public", "kube-node-lease"].contains(&ns)
    {
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        let plural = plural_of(object["kind"].as_str().unwrap_or(""));
        match exists("v1", "namespaces", None, ns) {
            None => return Some(("NotFound", format!("namespaces \"{ns}\" not found"))),
            Some(n) if !n.object["metadata"]["deletionTimestamp"].is_null() => {
                return Some((
                    "Forbidden",
                    format!(
                        "{plural} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"
                    ),
                ));
            }
            _ => {}
        }
    }
    if object["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("cert-manager.io/"))
    {
        // Wherever cert-manager runs: the chart's webhook Deployment, by its labels.
        let webhook_ready = objects.iter().any(|s| {
            s.plural == "deployments"
                && s.object["metadata"]["labels"]["app.kubernetes.io/component"] == "webhook"
                && s.object["metadata"]["labels"]["app.kubernetes.io/name"] == "webhook"
                && s.object["status"]["availableReplicas"].as_i64() > Some(0)
        });
        if !webhook_ready {
            return Some(("InternalError", "Internal error occurred: failed calling webhook \"webhook.cert-manager.io\": failed to call webhook: Post \"https://cert-manager-webhook.cert-manager.svc:443/validate?timeout=30s\": dial tcp 10.96.0.10:443: connect: connection refused".to_string()));
        }
    }
    None
}

/// What a chart release creates that health checks look at, per chart kindling's stamps use:
/// cert-manager v1.21.1 (deploy/charts/cert-manager/templates/_helpers.tpl: `cert-manager`,
/// `cert-manager-webhook`, `cert-manager-cainjector` for release `cert-manager`), Traefik
/// 41.3.0 (templates/deployment.yaml named by `fullnameOverride`, plus `extraObjects`),
/// metrics-server 3.13.1 (kubernetes-sigs/metrics-server tag metrics-server-helm-chart-3.13.1,
/// charts/metrics-server/templates/_helpers.tpl: the release name when it holds the chart's,
/// so `metrics-server`), vault 0.34.1 (hashicorp/vault-helm v0.34.1 templates: StatefulSet and
/// Service `vault`, port 8200, for release `vault`), external-secrets 2.9.0
/// (external-secrets/external-secrets helm-chart-2.9.0: Deployment `external-secrets` for
/// release `external-secrets`, and with `installCRDs` the CRDs, here the upstream
/// ExternalSecret and ClusterSecretStore ones from the test fixtures). Unknown charts bring
/// nothing the fake knows of.
pub fn chart_workloads(chart: &str, namespace: &str, values: &Value) -> Vec<Value> {
    let deployment = |name: &str| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace}, "spec": {"replicas": 1}});
    match chart {
        "cert-manager" => {
            // templates/deployment.yaml, webhook-deployment.yaml, cainjector-deployment.yaml:
            // the chart's labels (`app.kubernetes.io/name` cert-manager, webhook, cainjector;
            // `component` controller, webhook, cainjector; `version` the app's), and the
            // controller's `--cluster-resource-namespace`: the chart's
            // `clusterResourceNamespace`, else `$(POD_NAMESPACE)`.
            let resource_namespace = values["clusterResourceNamespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or("$(POD_NAMESPACE)");
            let mut objects: Vec<Value> = [
                ("cert-manager", "cert-manager", "controller"),
                ("cert-manager-webhook", "webhook", "webhook"),
                ("cert-manager-cainjector", "cainjector", "cainjector"),
            ]
            .iter()
            .map(|(name, label, component)| {
                let mut d = deployment(name);
                d["metadata"]["labels"] = json!({"app": label, "app.kubernetes.io/name": label,
                    "app.kubernetes.io/instance": "cert-manager",
                    "app.kubernetes.io/component": component,
                    "app.kubernetes.io/version": "v1.21.1"});
                d["spec"]["template"]["spec"]["containers"] = json!([{
                "name": format!("cert-manager-{component}"),
                "image": format!("quay.io/jetstack/cert-manager-{component}:v1.21.1"),
                "args": if *component == "controller" {
                    json!([format!("--cluster-resource-namespace={resource_namespace}")])
                } else {
                    json!([])
                }}]);
                d
            })
            .collect();
            // cert-manager v1.21.1 deploy/charts/cert-manager/templates/crd-*.yaml: the CRDs
            // come with the release when `crds.enabled` (or the older `installCRDs`) is true;
            // here the upstream Certificate, Issuer and ClusterIssuer ones from the fixtures.
            if values["crds"]["enabled"] == true || values["installCRDs"] == true {
                for crd in [
                    "cert-manager.io_certificates.yaml",
                    "cert-manager.io_issuers.yaml",
                    "cert-manager.io_clusterissuers.yaml",
                ] {
                    let text = std::fs::read_to_string(super::schemas_dir().join(crd)).unwrap();
                    objects.push(serde_yaml_ng::from_str(&text).unwrap());
                }
            }
            objects
        }
        "traefik" => {
            let name = values["fullnameOverride"].as_str().unwrap_or("traefik");
            let mut objects = vec![deployment(name)];
            objects.extend(
                values["extraObjects"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
            objects
        }
        "metrics-server" => vec![deployment("metrics-server")],
        // HostK8s' `advanced` app (danielscholl-osdu/hostk8s@2add0a5 software/apps/advanced:
        // templates/{frontend,backend}-{deployment,service}.yaml name themselves by
        // `.Values.frontend.name` / `.Values.backend.name`, values.yaml `advanced-front` and
        // `advanced-back`; the Ingress, `advanced.fullname`, is left out here).
        "advanced" => {
            let named = |part: &str, default: &str| {
                values[part]["name"].as_str().unwrap_or(default).to_string()
            };
            let mut objects = Vec::new();
            for name in [
                named("frontend", "advanced-front"),
                named("backend", "advanced-back"),
            ] {
                objects.push(deployment(&name));
                objects.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}}));
            }
            objects
        }
        // cloudnative-pg (cloudnative-pg/charts, templates/_helpers.tpl fullname: the release
        // name and the chart's; this takes HostK8s' release `cnpg-operator`, the only one
        // the tests install, so `cnpg-operator-cloudnative-pg`, unless fullnameOverride).
        "cloudnative-pg" => vec![deployment(
            values["fullnameOverride"]
                .as_str()
                .unwrap_or("cnpg-operator-cloudnative-pg"),
        )],
        "vault" => vec![
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "vault", "namespace": namespace}, "spec": {"replicas": 1}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "vault", "namespace": namespace}, "spec": {"ports": [{"name": "http", "port": 8200}]}}),
        ],
        "metallb" => super::fake_metallb::chart_objects(namespace, values),
        "external-secrets" => {
            let mut objects = vec![deployment("external-secrets")];
            if values["installCRDs"] != false {
                for crd in [
                    "external-secrets.io_externalsecrets.yaml",
                    "external-secrets.io_clustersecretstores.yaml",
                ] {
                    let text = std::fs::read_to_string(super::schemas_dir().join(crd)).unwrap();
                    objects.push(serde_yaml_ng::from_str(&text).unwrap());
                }
            }
            objects
        }
        _ => Vec::new(),
    }
}

/// The fields of kustomize's `Kustomization` and of its `ObjectMeta` (kubernetes-sigs/kustomize
/// v5.8.1 api/types/kustomization.go, objectmeta.go, TypeMeta inline). Read from upstream for
/// the fake on its own, not taken from kindling's list (src/stamp/manifests.rs): a fake that
/// shared kindling's belief could not catch a wrong one.
const KUSTOMIZATION_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "openapi",
    "namePrefix",
    "nameSuffix",
    "namespace",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "patchesStrategicMerge",
    "patchesJson6902",
    "patches",
    "images",
    "imageTags",
    "replacements",
    "replicas",
    "vars",
    "sortOptions",
    "resources",
    "components",
    "crds",
    "bases",
    "configMapGenerator",
    "secretGenerator",
    "helmGlobals",
    "helmCharts",
    "helmChartInflationGenerator",
    "generatorOptions",
    "configurations",
    "generators",
    "transformers",
    "validators",
    "buildMetadata",
];
const OBJECT_META_FIELDS: &[&str] = &["name", "namespace", "labels", "annotations"];

/// kustomize-controller's generator writing the directory's kustomization back after a lenient
/// read: what kustomize would refuse as unknown is gone.
fn rewrite_as_flux_generator(dir: &Path) -> Result<(), String> {
    let file = ["kustomization.yaml", "kustomization.yml"]
        .iter()
        .map(|n| dir.join(n))
        .find(|f| f.is_file())
        .ok_or("no kustomization file")?;
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let mut value: Value = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    if let Some(map) = value.as_object_mut() {
        map.retain(|k, _| KUSTOMIZATION_FIELDS.contains(&k.as_str()));
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| OBJECT_META_FIELDS.contains(&k.as_str()));
        }
    }
    let written = serde_yaml_ng::to_string(&value).map_err(|e| e.to_string())?;
    std::fs::write(&file, written).map_err(|e| e.to_string())
}

pub fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .filter_map(|d| Value::deserialize(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}
