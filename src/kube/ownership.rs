//! What kindling may touch on a cluster it did not make (`--provider existing`): every object
//! it applies carries `dev.kindling.env=ENV`, an object that is there already without that
//! label is someone else's and is not taken over, and the kinds it applied are recorded on the
//! host so that `env delete` can find every labelled object again and nothing else.
//!
//! Two exceptions, both by the engine's design rather than kindling's:
//! - a Namespace that exists already is used as it is (the stamp's objects go into the team's
//!   namespace; the namespace stays theirs, unlabelled);
//! - Argo CD's `argocd-cm`, where kindling owns a few keys by server-side apply (see
//!   `crate::stamp::render::argo`): the ConfigMap stays Argo CD's, and `env delete` gives the
//!   keys back by applying an empty body as the same field manager (server-side apply drops the
//!   fields a manager no longer sends).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::Value;

use crate::ENV_LABEL;

/// The env's claim on a cluster it shares.
#[derive(Debug)]
pub struct Ownership {
    pub env: String,
    /// `apiVersion kind` of everything applied, one per line (`owned-kinds` in the env dir).
    pub kinds_file: PathBuf,
    known: Mutex<BTreeSet<String>>,
}

/// What the apply of one object should do on a shared cluster.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Labelled for the env and applied.
    Apply,
    /// Someone else's namespace, used as it is: not applied.
    UseAsFound,
    /// Keys of an engine's object, applied without the label and never deleted.
    SharedKeys,
}

/// The objects whose keys kindling shares with the engine that owns them: Argo CD's settings
/// and its TLS roots per host (`crate::engine::extra_ca`).
pub fn shares_keys(object: &Value) -> bool {
    object["kind"] == "ConfigMap"
        && matches!(
            object["metadata"]["name"].as_str(),
            Some("argocd-cm" | "argocd-tls-certs-cm")
        )
}

/// The field manager an env applies shared keys with: one per env, so that envs on one Argo
/// CD co-own the keys they both set (the same health check in argocd-cm), and server-side
/// apply removes a key an env gives back only when no other env still applies it
/// (kubernetes/apimachinery v0.36.3 structuredmerge.go: a field left out is removed unless
/// another applier owns it).
pub fn shared_keys_manager(env: &str) -> String {
    format!("{}-keys-{env}", crate::kube::FIELD_MANAGER)
}

/// `object` without the `data` keys the live object has already and `manager` does not own,
/// unless another kindling manager (another env, the install) set them to the same value
/// (then they are co-owned): someone set them, and theirs stay as they are and are never
/// given back on delete. Another env's key of another value (a health check of another
/// kindling version, another network's CA) stays too: forcing ours would make this env its
/// sole owner, and this env's delete would take it from the other. Also the keys it drops.
pub fn without_their_keys(object: &Value, live: &Value, manager: &str) -> (Value, Vec<String>) {
    let owned_by = |wanted: &dyn Fn(&str) -> bool| -> Vec<String> {
        live["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["manager"].as_str().is_some_and(wanted))
            .filter_map(|f| f["fieldsV1"]["f:data"].as_object())
            .flat_map(|d| d.keys().filter_map(|k| k.strip_prefix("f:")))
            .map(str::to_string)
            .collect()
    };
    let mine = owned_by(&|m| m == manager);
    let kindlings = owned_by(&|m| m.starts_with(crate::kube::FIELD_MANAGER));
    let mut object = object.clone();
    let mut dropped = Vec::new();
    // `get_mut`, not indexing: an index inserts a `data: null` the apply would then send.
    if let Some(data) = object.get_mut("data").and_then(Value::as_object_mut) {
        data.retain(|key, value| {
            let live_value = &live["data"][key.as_str()];
            let co_owned = kindlings.contains(key) && live_value == value;
            let theirs = !(live_value.is_null() || mine.contains(key) || co_owned);
            if theirs {
                dropped.push(key.clone());
            }
            !theirs
        });
    }
    (object, dropped)
}

impl Ownership {
    pub fn new(env: &str, kinds_file: PathBuf) -> Ownership {
        let known = read_kinds(&kinds_file).into_iter().collect();
        Ownership {
            env: env.to_string(),
            kinds_file,
            known: Mutex::new(known),
        }
    }

    /// What to do with `object` given what the cluster holds under its name (`live`); an
    /// error names the object someone else made.
    pub fn claim(&self, object: &Value, live: Option<&Value>) -> Result<Claim, String> {
        if shares_keys(object) {
            return Ok(Claim::SharedKeys);
        }
        let Some(live) = live else {
            return Ok(Claim::Apply);
        };
        let owner = live["metadata"]["labels"][ENV_LABEL].as_str();
        if owner == Some(self.env.as_str()) {
            return Ok(Claim::Apply);
        }
        if object["kind"] == "Namespace" {
            return Ok(Claim::UseAsFound);
        }
        let what = describe(object);
        Err(match owner {
            Some(other) => format!(
                "{what} belongs to kindling env {other} on this cluster\nhelp: two envs on one cluster would share this object; use another cluster, or delete env {other} first"
            ),
            None => format!(
                "{what} exists on the cluster and kindling did not make it (it has no {ENV_LABEL} label); kindling does not take over objects on a cluster it shares\nhelp: rename or remove it yourself, or use another cluster"
            ),
        })
    }

    /// `object` with the env's label.
    pub fn labelled(&self, object: &Value) -> Value {
        let mut object = object.clone();
        if let Some(meta) = object["metadata"].as_object_mut() {
            let labels = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(ENV_LABEL.into(), Value::String(self.env.clone()));
            }
        }
        object
    }

    /// Records the object's kind and namespace before it is applied, so a crash after the
    /// apply still leaves it findable, by a list in that namespace (a user whose rights end
    /// at namespaces cannot list across all).
    pub fn record_kind(&self, object: &Value, namespace: Option<&str>) -> std::io::Result<()> {
        let mut kind = format!(
            "{} {}",
            object["apiVersion"].as_str().unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default()
        );
        if let Some(ns) = namespace {
            kind = format!("{kind} {ns}");
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if !known.insert(kind) {
            return Ok(());
        }
        // What another client (of this process or another) recorded since stays recorded.
        known.extend(read_kinds(&self.kinds_file));
        let text: String = known.iter().map(|k| format!("{k}\n")).collect();
        crate::paths::write_atomic(&self.kinds_file, text.as_bytes(), 0o600)
    }
}

/// The engine object that applied `object`: Flux's Kustomization by its owner labels
/// (fluxcd/kustomize-controller v1.9.4 `SetOwnerLabels`), Flux's HelmRelease by the origin
/// labels its post renderer puts on every object a chart installs (fluxcd/helm-controller
/// v1.6.3 internal/postrender/build.go, common_renderer.go `originLabels`), or Argo CD's
/// Application by its tracking annotation (`APP:GROUP/KIND:NS/NAME`, the v3 default;
/// argoproj/argo-cd v3.5.1 util/argo/resource_tracking.go).
pub fn engine_parent(object: &Value) -> Option<(&'static str, &'static str, String, String)> {
    let labels = &object["metadata"]["labels"];
    for (group, api_version, kind) in [
        (
            "kustomize.toolkit.fluxcd.io",
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
        ),
        (
            "helm.toolkit.fluxcd.io",
            "helm.toolkit.fluxcd.io/v2",
            "HelmRelease",
        ),
    ] {
        if let (Some(name), Some(namespace)) = (
            labels[format!("{group}/name")].as_str(),
            labels[format!("{group}/namespace")].as_str(),
        ) {
            return Some((api_version, kind, namespace.to_string(), name.to_string()));
        }
    }
    let instance = object["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"]
        .as_str()?
        .split(':')
        .next()?;
    let (namespace, app) = argo_application_of(instance);
    Some(("argoproj.io/v1alpha1", "Application", namespace, app))
}

/// The namespace and name of the Argo CD Application an instance name (in a tracking id or
/// the `app.kubernetes.io/instance` label) stands for: one outside Argo CD's namespace is
/// `NAMESPACE_NAME` (argo-cd v3.5.1 pkg/apis/application/v1alpha1/types.go `InstanceName`;
/// util/argo/argo.go `ParseInstanceName` splits at the first `_`).
pub fn argo_application_of(instance: &str) -> (String, String) {
    let (namespace, app) = instance
        .split_once('_')
        .unwrap_or((crate::engine::argo::NAMESPACE, instance));
    (namespace.to_string(), app.to_string())
}

/// What kindling applied of one kind: where to list it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordedKind {
    pub api_version: String,
    pub kind: String,
    /// None: cluster-scoped (or recorded before namespaces were), listed across all.
    pub namespace: Option<String>,
}

/// The kinds recorded in `path`, each with its namespace (none when the file is missing).
pub fn read_kinds(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(' '))
        .map(str::to_string)
        .collect()
}

/// The recorded kinds of `path`, read.
pub fn recorded_kinds(path: &std::path::Path) -> Vec<RecordedKind> {
    read_kinds(path)
        .iter()
        .filter_map(|line| {
            let mut words = line.split(' ');
            Some(RecordedKind {
                api_version: words.next()?.to_string(),
                kind: words.next()?.to_string(),
                namespace: words.next().map(str::to_string),
            })
        })
        .collect()
}

fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ours() -> Ownership {
        let dir = tempfile::tempdir().unwrap();
        Ownership::new("dev", dir.keep().join("owned-kinds"))
    }

    #[test]
    fn ownership_refuses_what_someone_else_made_and_uses_their_namespaces() {
        let o = ours();
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "team"}});
        assert_eq!(o.claim(&secret, None), Ok(Claim::Apply));
        let mine = json!({"metadata": {"labels": {ENV_LABEL: "dev"}}});
        assert_eq!(o.claim(&secret, Some(&mine)), Ok(Claim::Apply));
        let theirs = json!({"metadata": {"labels": {}}});
        let err = o.claim(&secret, Some(&theirs)).unwrap_err();
        assert!(err.contains("Secret team/s exists"), "{err}");
        let other = json!({"metadata": {"labels": {ENV_LABEL: "qa"}}});
        assert!(
            o.claim(&secret, Some(&other))
                .unwrap_err()
                .contains("kindling env qa")
        );
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
        assert_eq!(o.claim(&ns, Some(&theirs)), Ok(Claim::UseAsFound));
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "argocd-cm"}});
        assert_eq!(o.claim(&cm, Some(&theirs)), Ok(Claim::SharedKeys));
    }

    #[test]
    fn ownership_leaves_a_shared_key_someone_else_set() {
        let ours = json!({"kind": "ConfigMap", "metadata": {"name": "argocd-cm"},
            "data": {"health": "kindling's", "fresh": "x"}});
        let live = json!({"data": {"health": "the team's", "url": "u"},
            "metadata": {"managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {"f:health": {}}}}]}});
        let mine = shared_keys_manager("dev");
        assert_eq!(mine, "kindling-keys-dev");
        let (kept, dropped) = without_their_keys(&ours, &live, &mine);
        assert_eq!(kept["data"], json!({"fresh": "x"}));
        assert_eq!(dropped, vec!["health"]);
        // A key the env set before is its to set again, whatever it holds now.
        let live = json!({"data": {"health": "an older kindling's"},
            "metadata": {"managedFields": [{"manager": mine, "fieldsV1": {"f:data": {"f:health": {}}}}]}});
        let (kept, dropped) = without_their_keys(&ours, &live, &mine);
        assert_eq!(kept["data"]["health"], "kindling's");
        assert!(dropped.is_empty());
        // One another env set to the same value is co-owned, under each env's own manager.
        let other = shared_keys_manager("qa");
        let live = json!({"data": {"health": "kindling's"},
            "metadata": {"managedFields": [{"manager": other, "fieldsV1": {"f:data": {"f:health": {}}}}]}});
        let (kept, dropped) = without_their_keys(&ours, &live, &mine);
        assert_eq!(kept["data"]["health"], "kindling's");
        assert!(dropped.is_empty());
        // Of another value, it stays the other env's: forcing ours would make this env its
        // sole owner, and this env's delete would take it away.
        let live = json!({"data": {"health": "another kindling version's"},
            "metadata": {"managedFields": [{"manager": other, "fieldsV1": {"f:data": {"f:health": {}}}}]}});
        let (kept, dropped) = without_their_keys(&ours, &live, &mine);
        assert!(kept["data"]["health"].is_null(), "{kept}");
        assert_eq!(dropped, vec!["health"]);
    }

    #[test]
    fn ownership_engine_parent_of_a_chart_object_is_its_helm_release() {
        let chart_object = json!({"metadata": {"labels": {
            "helm.toolkit.fluxcd.io/name": "ingress",
            "helm.toolkit.fluxcd.io/namespace": "flux-system",
            "app.kubernetes.io/instance": "traefik"}}});
        assert_eq!(
            engine_parent(&chart_object),
            Some((
                "helm.toolkit.fluxcd.io/v2",
                "HelmRelease",
                "flux-system".to_string(),
                "ingress".to_string()
            ))
        );
        // A chart's own instance label says nothing of who applied it.
        let plain = json!({"metadata": {"labels": {"app.kubernetes.io/instance": "traefik"}}});
        assert_eq!(engine_parent(&plain), None);
        let tracked = |id: &str| serde_json::json!({"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": id}}});
        assert_eq!(
            engine_parent(&tracked("website:apps/Deployment:website/web")),
            Some((
                "argoproj.io/v1alpha1",
                "Application",
                "argocd".into(),
                "website".into()
            ))
        );
        assert_eq!(
            engine_parent(&tracked("kindling-dev_website:apps/Deployment:website/web")),
            Some((
                "argoproj.io/v1alpha1",
                "Application",
                "kindling-dev".into(),
                "website".into()
            ))
        );
    }

    #[test]
    fn ownership_records_each_kind_once() {
        let o = ours();
        let a = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}});
        o.record_kind(&a, Some("team")).unwrap();
        o.record_kind(&a, Some("team")).unwrap();
        o.record_kind(&json!({"apiVersion": "v1", "kind": "Namespace"}), None)
            .unwrap();
        assert_eq!(
            read_kinds(&o.kinds_file),
            vec!["v1 Namespace", "v1 Secret team"]
        );
        assert_eq!(
            recorded_kinds(&o.kinds_file)[1],
            RecordedKind {
                api_version: "v1".into(),
                kind: "Secret".into(),
                namespace: Some("team".into())
            }
        );
        assert_eq!(
            o.labelled(&a)["metadata"]["labels"][ENV_LABEL],
            json!("dev")
        );
    }
}
