//! An engine that is on a cluster already (one kindling did not make). It is used as it is when
//! it serves the API versions kindling writes, and kindling never upgrades or removes it.
//!
//! How each is recognised, as its own tools recognise it:
//! - Flux: the CRD `gitrepositories.source.toolkit.fluxcd.io`; its version from the CRD's
//!   `app.kubernetes.io/version` label, which `flux install` and `flux bootstrap` put on every
//!   object (fluxcd/flux2 v2.9.4 pkg/manifestgen/install/templates.go `labelsTmpl`; `flux`
//!   reads it there, cmd/flux/cluster_info.go `getFluxClusterInfo`). The release install.yaml
//!   carries no version label (manifests/install/labels.yaml), so then the image tag of
//!   source-controller tells it, as `flux version` reads it (cmd/flux/version.go).
//! - Argo CD: the CRD `applications.argoproj.io`; no object carries a version label
//!   (argoproj/argo-cd v3.5.1 manifests/install.yaml), so the image tag of the
//!   `argocd-application-controller` StatefulSet tells it.

use serde_json::Value;

use super::Engine;
use crate::ENV_LABEL;
use crate::kube::{KubeClient, KubeError};

/// An engine found on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundEngine {
    pub engine: Engine,
    /// `v2.9.4`, or `unknown` when nothing tells.
    pub version: String,
    /// The kindling env that installed it, when one did (`None`: someone else's).
    pub installed_by: Option<String>,
    /// Why kindling cannot use it, when it cannot.
    pub incompatible: Option<String>,
    /// Why an env's engine objects can live only in the engine's own namespace (then envs
    /// cannot each have one), when that is so. A Flux whose kustomize-controller or
    /// helm-controller runs with `--watch-all-namespaces=false` reads only its own namespace
    /// (fluxcd/pkg runtime/v0.110.1 runtime/controller/watch.go, default true;
    /// kustomize-controller v1.9.4 main.go and helm-controller v1.6.3 main.go watch
    /// `RUNTIME_NAMESPACE` alone then); one with `--default-service-account=SA` applies as
    /// `SA` of each object's namespace (`impersonation_without_account`), which only its own
    /// namespace has.
    pub only_its_namespace: Option<String>,
    /// Argo CD: the namespaces besides `argocd` whose Applications it reconciles, as its
    /// application controller was configured (`--application-namespaces`, or
    /// `application.namespaces` of `argocd-cmd-params-cm`): globs, or regexes in `/…/`.
    pub application_namespaces: Vec<String>,
}

impl FoundEngine {
    /// Whether the engine reads an env's engine objects in `namespace` (its own always).
    pub fn reads_objects_in(&self, namespace: &str) -> bool {
        if namespace == super::namespace(self.engine) {
            return true;
        }
        match self.engine {
            Engine::Flux => self.only_its_namespace.is_none(),
            Engine::Argo => argo_namespace_enabled(&self.application_namespaces, namespace),
        }
    }
}

/// What `argocd-cmd-params-cm` says when kindling installs Argo CD: Applications in every
/// `kindling-*` namespace are reconciled, so each env on it can have a namespace of its own
/// (`crate::engine::install_objects`).
pub const KINDLING_APPLICATION_NAMESPACES: &str = "kindling-*";

/// Whether Argo CD reconciles Applications in `namespace`, as argoproj/argo-cd v3.5.1
/// util/security/application_namespaces.go `IsNamespaceEnabled` matches it
/// (util/glob/list.go `MatchStringInList` with REGEXP): a pattern in `/…/` is a regular
/// expression, matched anywhere in the name (util/regex/regex.go: regexp2 `MatchString`), and
/// every pattern is also a gobwas glob without separators (util/glob/glob.go). Argo CD's
/// regexp2 knows constructs (lookaround, backreferences) Rust's `regex` does not: such a
/// pattern is taken as not matching, so the env keeps its Applications in `argocd` (one env),
/// which is always watched.
pub fn argo_namespace_enabled(patterns: &[String], namespace: &str) -> bool {
    patterns.iter().any(|p| {
        let regex = p.len() > 1
            && p.starts_with('/')
            && p.ends_with('/')
            && regex::Regex::new(&p[1..p.len() - 1]).is_ok_and(|r| r.is_match(namespace));
        regex || glob(p).is_some_and(|g| g.is_match(namespace))
    })
}

/// A gobwas glob (github.com/gobwas/glob v0.2.3, which Argo CD v3.5.1 compiles without
/// separators) as an anchored regular expression, following its lexer and parser
/// (syntax/lexer/lexer.go, syntax/ast/parser.go): `*` and `**` any run of characters, `?`
/// one; a class `[…]`, negated by a leading `!`, holds either one range `lo-hi` or a list in
/// which `-` is itself; `{a,b}` either pattern, nesting, closed by the end of the pattern if
/// not before; `\x` is x, and a trailing `\` nothing. None for a pattern gobwas refuses (a
/// class unclosed, empty, or mixing a range with more), which Argo CD takes as no match.
fn glob(pattern: &str) -> Option<regex::Regex> {
    let escaped = |c: char| regex::escape(&c.to_string());
    let mut out = String::from("^(?s:");
    let mut chars = pattern.chars();
    let mut alternatives = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '\\' => {
                if let Some(next) = chars.next() {
                    out.push_str(&escaped(next));
                }
            }
            '[' => {
                let mut negated = false;
                let mut items: Vec<(char, bool)> = Vec::new();
                loop {
                    match chars.next()? {
                        '!' if items.is_empty() && !negated => negated = true,
                        ']' => break,
                        '\\' => items.push((chars.next()?, true)),
                        c => items.push((c, false)),
                    }
                }
                let class: String = match items.as_slice() {
                    [] => return None,
                    [(lo, _), ('-', false), (hi, _)] if lo <= hi => {
                        format!("{}-{}", escaped(*lo), escaped(*hi))
                    }
                    [_, ('-', false), ..] => return None,
                    list => list.iter().map(|(c, _)| escaped(*c)).collect(),
                };
                out.push('[');
                if negated {
                    out.push('^');
                }
                out.push_str(&class);
                out.push(']');
            }
            '{' => {
                alternatives += 1;
                out.push_str("(?:");
            }
            '}' if alternatives > 0 => {
                alternatives -= 1;
                out.push(')');
            }
            ',' if alternatives > 0 => out.push('|'),
            c => out.push_str(&escaped(c)),
        }
    }
    out.push_str(&")".repeat(alternatives));
    out.push_str(")$");
    regex::Regex::new(&out).ok()
}

/// The CRD by which an engine is known, and the API versions kindling writes of each kind.
fn served_needs(engine: Engine) -> &'static [(&'static str, &'static str)] {
    match engine {
        Engine::Flux => &[
            ("gitrepositories.source.toolkit.fluxcd.io", "v1"),
            ("kustomizations.kustomize.toolkit.fluxcd.io", "v1"),
            ("helmreleases.helm.toolkit.fluxcd.io", "v2"),
        ],
        Engine::Argo => &[("applications.argoproj.io", "v1alpha1")],
    }
}

const CRD_API: &str = "apiextensions.k8s.io/v1";

/// The engine on the cluster, if there is one.
pub async fn find(kube: &KubeClient, engine: Engine) -> Result<Option<FoundEngine>, KubeError> {
    let needs = served_needs(engine);
    let Some(crd) = kube
        .get(CRD_API, "CustomResourceDefinition", None, needs[0].0)
        .await?
    else {
        return Ok(None);
    };
    let installed_by = crd["metadata"]["labels"][ENV_LABEL]
        .as_str()
        .map(str::to_string);
    let mut incompatible = Vec::new();
    for (name, version) in needs {
        let served = match kube
            .get(CRD_API, "CustomResourceDefinition", None, name)
            .await?
        {
            Some(crd) => serves(&crd, version),
            None => false,
        };
        if !served {
            incompatible.push(format!(
                "it does not serve {name} {version} (kindling writes that)"
            ));
        }
    }
    let mut only_its_namespace = None;
    if engine == Engine::Flux {
        let appliers = flux_applier_args(kube).await?;
        if let Some(why) = impersonation_without_account(kube, &appliers).await? {
            incompatible.push(why);
        }
        only_its_namespace = flux_only_in_its_namespace(&appliers);
    }
    let application_namespaces = match engine {
        Engine::Argo => argo_application_namespaces(kube).await?,
        Engine::Flux => Vec::new(),
    };
    let version = match crd["metadata"]["labels"]["app.kubernetes.io/version"].as_str() {
        Some(v) => v.to_string(),
        None => controller_image_tag(kube, engine)
            .await?
            .unwrap_or_else(|| "unknown".into()),
    };
    Ok(Some(FoundEngine {
        engine,
        version,
        installed_by,
        incompatible: (!incompatible.is_empty()).then(|| incompatible.join("; and ")),
        only_its_namespace,
        application_namespaces,
    }))
}

/// The namespaces Argo CD's application controller reconciles Applications in, besides its
/// own, read as argoproj/argo-cd v3.5.1 sets them: the flag `--application-namespaces` (a
/// pflag string slice: comma-separated, repeatable) over the env `ARGOCD_APPLICATION_NAMESPACES`
/// (cmd/argocd-application-controller/commands/argocd_application_controller.go; split on `,`
/// and trimmed, util/env/env.go `StringsFromEnv`), which install.yaml fills from
/// `argocd-cmd-params-cm` key `application.namespaces`. The controller is a StatefulSet (a
/// Deployment in the "dynamic cluster distribution" variant). One kindling may not read
/// leaves the ConfigMap to tell. The value is read when the controller starts: a ConfigMap
/// changed since is not seen here either way.
async fn argo_application_namespaces(kube: &KubeClient) -> Result<Vec<String>, KubeError> {
    let namespace = super::namespace(Engine::Argo);
    let name = "argocd-application-controller";
    let mut workload = None;
    for kind in ["StatefulSet", "Deployment"] {
        match kube.get("apps/v1", kind, Some(namespace), name).await {
            Ok(Some(w)) => {
                workload = Some(w);
                break;
            }
            Ok(None) => {}
            Err(e) if e.is_forbidden() => break,
            Err(e) => return Err(e),
        }
    }
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let from_config_map = |cm: Option<Value>, key: &str| {
        cm.and_then(|cm| cm["data"][key].as_str().map(&split))
            .unwrap_or_default()
    };
    let read_config_map = |cm_name: String| async move {
        match kube.get("v1", "ConfigMap", Some(namespace), &cm_name).await {
            Ok(cm) => Ok(cm),
            Err(e) if e.is_forbidden() => Ok(None),
            Err(e) => Err(e),
        }
    };
    let Some(workload) = workload else {
        let cm = read_config_map("argocd-cmd-params-cm".to_string()).await?;
        return Ok(from_config_map(cm, "application.namespaces"));
    };
    let args = crate::kube::flags::container_args(&workload);
    let flagged = crate::kube::flags::flag_values(&args, "--application-namespaces");
    if !flagged.is_empty() {
        return Ok(flagged.iter().flat_map(|v| split(v)).collect());
    }
    let variable = workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .find(|e| e["name"] == "ARGOCD_APPLICATION_NAMESPACES");
    let Some(variable) = variable else {
        return Ok(Vec::new());
    };
    if let Some(value) = variable["value"].as_str() {
        return Ok(split(value));
    }
    let reference = &variable["valueFrom"]["configMapKeyRef"];
    match (reference["name"].as_str(), reference["key"].as_str()) {
        (Some(cm_name), Some(key)) => {
            let cm = read_config_map(cm_name.to_string()).await?;
            Ok(from_config_map(cm, key))
        }
        _ => Ok(Vec::new()),
    }
}

/// The arguments of the Flux controllers that read an env's objects, in flux-system (where
/// Flux runs): source-controller (its GitRepository and HelmRepositories; it takes
/// `--watch-all-namespaces` too, fluxcd/source-controller v1.9.x main.go `watchOptions`) and
/// the appliers, kustomize-controller and helm-controller. One that is not there, or that
/// kindling may not read, is taken as installed by default.
async fn flux_applier_args(
    kube: &KubeClient,
) -> Result<Vec<(&'static str, Vec<String>)>, KubeError> {
    let mut out = Vec::new();
    for controller in [
        "source-controller",
        "kustomize-controller",
        "helm-controller",
    ] {
        match kube
            .get(
                "apps/v1",
                "Deployment",
                Some(super::namespace(Engine::Flux)),
                controller,
            )
            .await
        {
            Ok(Some(w)) => out.push((controller, crate::kube::flags::container_args(&w))),
            Ok(None) => {}
            Err(e) if e.is_forbidden() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Why Flux takes an env's objects only in flux-system (see
/// `FoundEngine::only_its_namespace`).
fn flux_only_in_its_namespace(appliers: &[(&str, Vec<String>)]) -> Option<String> {
    let namespace = super::namespace(Engine::Flux);
    appliers.iter().find_map(|(controller, args)| {
        if crate::kube::flags::bool_flag(args, "--watch-all-namespaces") == Some(false) {
            return Some(format!(
                "its {controller} reads only {namespace} (--watch-all-namespaces=false)"
            ));
        }
        default_service_account(args).map(|account| {
            format!(
                "its {controller} applies as ServiceAccount {account} of each object's namespace (--default-service-account), which {namespace} has"
            )
        })
    })
}

fn default_service_account(args: &[String]) -> Option<&str> {
    crate::kube::flags::flag(args, "--default-service-account").filter(|a| !a.is_empty())
}

/// A Flux locked down for tenants: kustomize-controller or helm-controller run with
/// `--default-service-account=SA` (fluxcd/kustomize-controller v1.9.4 main.go; helm-controller
/// v1.6.3 main.go), so an object without `spec.serviceAccountName` (kindling's are) is applied
/// impersonating `system:serviceaccount:<its namespace>:SA` (fluxcd/pkg runtime/v0.110.1
/// runtime/client/impersonator.go `setImpersonationConfig`), whose RBAC decides what it may
/// apply; and a finalizer prunes only when that ServiceAccount exists (`CanImpersonate`,
/// kustomization_controller.go finalize), so without it `env delete` would leave the stamp's
/// objects behind. Said when the account is missing in Flux's namespace, where an env's
/// objects then live (`flux_only_in_its_namespace`; its rights cannot be asked for another
/// user without SubjectAccessReview rights, so they are not).
async fn impersonation_without_account(
    kube: &KubeClient,
    appliers: &[(&str, Vec<String>)],
) -> Result<Option<String>, KubeError> {
    let namespace = super::namespace(Engine::Flux);
    for (controller, args) in appliers {
        let Some(account) = default_service_account(args) else {
            continue;
        };
        if kube
            .get("v1", "ServiceAccount", Some(namespace), account)
            .await?
            .is_none()
        {
            return Ok(Some(format!(
                "its {controller} runs with --default-service-account={account} and {namespace} has no ServiceAccount {account}: Flux impersonates system:serviceaccount:{namespace}:{account} for every object kindling writes, and without that ServiceAccount it prunes nothing when they are deleted, so env delete would leave the stamp's objects behind"
            )));
        }
    }
    Ok(None)
}

/// Whether a CRD serves `version`.
fn serves(crd: &Value, version: &str) -> bool {
    crd["spec"]["versions"].as_array().is_some_and(|v| {
        v.iter()
            .any(|v| v["name"] == version && v["served"] == true)
    })
}

/// The tag of the engine's main controller image.
async fn controller_image_tag(
    kube: &KubeClient,
    engine: Engine,
) -> Result<Option<String>, KubeError> {
    let (kind, name) = match engine {
        Engine::Flux => ("Deployment", "source-controller"),
        Engine::Argo => ("StatefulSet", "argocd-application-controller"),
    };
    let workload = kube
        .get("apps/v1", kind, Some(super::namespace(engine)), name)
        .await?;
    Ok(workload.and_then(|w| {
        w["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .and_then(image_tag)
    }))
}

/// `v1.2.3` of `registry/repo:v1.2.3[@sha256:…]`.
fn image_tag(image: &str) -> Option<String> {
    let image = image.split('@').next()?;
    let (repo, tag) = image.rsplit_once(':')?;
    (!tag.contains('/') && !repo.is_empty()).then(|| tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detect_reads_tags_and_served_versions() {
        assert_eq!(
            image_tag("ghcr.io/fluxcd/source-controller:v1.9.1").as_deref(),
            Some("v1.9.1")
        );
        assert_eq!(
            image_tag("quay.io/argoproj/argocd:v3.5.1@sha256:abc").as_deref(),
            Some("v3.5.1")
        );
        assert_eq!(image_tag("localhost:5000/argocd"), None);
        let crd = json!({"spec": {"versions": [{"name": "v1beta2", "served": true},
            {"name": "v1", "served": false}]}});
        assert!(serves(&crd, "v1beta2"));
        assert!(!serves(&crd, "v1"));
    }

    #[test]
    fn argo_namespaces_match_as_argo_cd_matches_them() {
        let patterns = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(argo_namespace_enabled(
            &patterns(&["kindling-*"]),
            "kindling-dev"
        ));
        assert!(argo_namespace_enabled(
            &patterns(&["team-a", "kindling-d?v"]),
            "kindling-dev"
        ));
        assert!(!argo_namespace_enabled(
            &patterns(&["kindling-*"]),
            "team-a"
        ));
        assert!(!argo_namespace_enabled(
            &patterns(&["kindling-d?v"]),
            "kindling-deev"
        ));
        assert!(!argo_namespace_enabled(&patterns(&[]), "kindling-dev"));
        // Regular expressions match anywhere in the name, as regexp2's MatchString does.
        let matches = |p: &str| argo_namespace_enabled(&patterns(&[p]), "kindling-dev");
        assert!(matches("/^kindling-.*/"));
        assert!(matches("/ling-d/"));
        assert!(!matches("/^team-/"));
        // One Rust's regex cannot compile (a lookahead) is taken as not matching.
        assert!(!matches("/^(?!team)/"));
        // Glob classes and alternatives; everything else is itself.
        assert!(matches("kindling-{dev,ci}"));
        assert!(!matches("kindling-{qa,ci}"));
        assert!(matches("kindling-[a-e]ev"));
        assert!(!matches("kindling-[!d]ev"));
        assert!(!matches("kindling.dev"));
        assert!(argo_namespace_enabled(&patterns(&["a.b"]), "a.b"));
        // As gobwas v0.2.3 parses them: an unclosed `{` closes at the end (Argo CD splits
        // the setting on `,` first, so `kindling-{dev,ci}` arrives as two entries), a class is
        // one range or a list, and a trailing `\\` is nothing.
        assert!(matches("kindling-{dev"));
        assert!(!matches("kindling-[a-z0-9]ev"));
        assert!(!matches("kindling-[c-]ev"));
        assert!(!matches("kindling-[]d]ev"));
        assert!(matches("kindling-[\\]d]ev"));
        assert!(!argo_namespace_enabled(&patterns(&["[ab-z]"]), "c"));
        assert!(argo_namespace_enabled(&patterns(&["[ab-z]"]), "-"));
        assert!(!argo_namespace_enabled(&patterns(&["[a\\-z]"]), "b"));
        assert!(matches("kindling-dev\\"));
        assert!(matches("kindling-**"));
        let found = FoundEngine {
            engine: Engine::Argo,
            version: "v3.5.1".into(),
            installed_by: None,
            incompatible: None,
            only_its_namespace: None,
            application_namespaces: patterns(&["kindling-*"]),
        };
        assert!(found.reads_objects_in("argocd"));
        assert!(found.reads_objects_in("kindling-dev"));
        assert!(!found.reads_objects_in("default"));
    }
}
