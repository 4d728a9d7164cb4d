//! `env diff [ENV] [ENTRY]`: the live objects that differ from what Git says.
//!
//! As `flux diff kustomization` does it (fluxcd/flux2 v2.9.4 internal/build/diff.go, fluxcd/pkg
//! ssa v0.77.0 manager_diff.go `Diff`): the entry's directory is built from the branch head
//! in the env's Gitea, each object is applied with `dryRun=All` as the engine's own field
//! manager (forced, as the engine applies), and the answer is compared with the live object:
//! - no resourceVersion in the answer: the object would be **created**;
//! - labels, annotations, or anything outside `metadata` and `status` differ: **drifted**,
//!   with a line diff of live against merged (managedFields and status left out; a Secret's
//!   values masked as `***`, `*** (before)`, `*** (after)`, as ssa sanitize.go masks them);
//! - in the engine's inventory but no longer built from Git while the engine prunes:
//!   **pruned** at the next reconciliation.
//!
//! The engine's own marks go on each object first, so that they are no difference: Flux's
//! `kustomize.toolkit.fluxcd.io/name`/`namespace` labels, Argo CD's annotation tracking id
//! (argo-cd v3.5.1 util/argo/resource_tracking.go). The field manager is the engine's:
//! `kustomize-controller` (flux2 internal/build/build.go `controllerName`), or Argo CD's
//! server-side diff manager `argocd-controller` (argo-cd v3.5.1 common/common.go
//! `ArgoCDSSAManager`).
//!
//! Helm entries are the engine's to render; kindling does not template charts, so they are
//! listed as not compared, with where their drift shows.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::open::{gitea_of, live_kube_of, load, stamp_of};
use super::steps::push;
use super::{EnvError, Settings};
use crate::engine::Engine;
use crate::kube::KubeClient;
use crate::stamp::{Entry, Source, Stamp};
use crate::ui::Progress;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    pub env: String,
    /// The commit the objects were built from: the branch head in the env's Gitea.
    pub commit: String,
    pub entries: Vec<EntryDiff>,
    /// Whether anything differs (the exit status of `env diff` says the same).
    pub drifted: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryDiff {
    pub entry: String,
    /// Objects compared that are as Git says.
    pub unchanged: usize,
    pub changes: Vec<ObjectChange>,
    /// Why the entry was not compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    /// `KIND NAMESPACE/NAME`
    pub object: String,
    pub action: Action,
    /// Live against merged, `-`/`+`/` ` prefixed, for drifted objects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Created,
    Drifted,
    Pruned,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Drifted => "drifted",
            Action::Pruned => "pruned",
        }
    }
}

pub async fn diff(
    settings: &Settings,
    name: &str,
    entry_name: Option<&str>,
    progress: &Progress,
) -> Result<DiffReport, EnvError> {
    let state = load(settings, name)?;
    if !state.is_done("engine") {
        return Err(EnvError::Preflight(format!(
            "env {name} has no engine yet: `kindling env create {name}` finishes it"
        )));
    }
    let stamp = stamp_of(&settings.data_dir, &state)?;
    let entries: Vec<&Entry> = match entry_name {
        Some(wanted) => vec![super::open::entry_of(&stamp, name, wanted)?],
        None => stamp.ordered_entries().collect(),
    };
    let (kube, _) = live_kube_of(&state, progress).await?;
    let gitea = gitea_of(&state)?;
    let checkout = scratch_dir()?;
    let Some(commit) = push::check_out(&gitea, checkout.path()).await? else {
        return Err(EnvError::Preflight(format!(
            "nothing is pushed to env {name}'s Gitea yet: `kindling env sync {name}` pushes the stamp"
        )));
    };
    let mut report = DiffReport {
        env: name.to_string(),
        commit,
        entries: Vec::new(),
        drifted: false,
    };
    for entry in entries {
        let found = entry_diff(&kube, state.engine, &stamp, entry, checkout.path()).await?;
        report.drifted |= !found.changes.is_empty();
        report.entries.push(found);
    }
    Ok(report)
}

/// What `env status` marks: for each named entry, the objects that differ from Git (entries
/// with none left out), and the entries that could not be compared, with why.
#[derive(Debug, Default)]
pub struct DriftMarks {
    pub drifted: Vec<(String, Vec<String>)>,
    pub unchecked: Vec<String>,
}

pub async fn drift_marks(
    kube: &KubeClient,
    engine: Engine,
    stamp: &Stamp,
    gitea: &super::state::GiteaState,
    entries: &[String],
) -> Result<DriftMarks, EnvError> {
    let mut marks = DriftMarks::default();
    // Only path entries are built from Git; the others are never marked, so a status of
    // Helm entries alone fetches nothing.
    let compared: Vec<&Entry> = entries
        .iter()
        .filter_map(|name| stamp.entry(name))
        .filter(|e| matches!(e.source, Source::Path(_)))
        .collect();
    if compared.is_empty() {
        return Ok(marks);
    }
    let checkout = scratch_dir()?;
    if push::check_out(gitea, checkout.path()).await?.is_none() {
        return Ok(marks);
    }
    for entry in compared {
        let name = &entry.name;
        match entry_diff(kube, engine, stamp, entry, checkout.path()).await {
            Ok(found) if !found.changes.is_empty() => marks.drifted.push((
                name.clone(),
                found
                    .changes
                    .iter()
                    .map(|c| format!("{} ({})", c.object, c.action.label()))
                    .collect(),
            )),
            Ok(_) => {}
            Err(e) => marks.unchecked.push(format!("{name}: {e}")),
        }
    }
    Ok(marks)
}

async fn entry_diff(
    kube: &KubeClient,
    engine: Engine,
    stamp: &Stamp,
    entry: &Entry,
    checkout: &Path,
) -> Result<EntryDiff, EnvError> {
    let mut found = EntryDiff {
        entry: entry.name.clone(),
        unchanged: 0,
        changes: Vec::new(),
        not_compared: None,
    };
    let path = match &entry.source {
        Source::Path(path) => path,
        Source::Helm(_) => {
            found.not_compared = Some(match engine {
                Engine::Flux => "a Helm chart: helm-controller renders it; its drift shows with the HelmRelease's spec.driftDetection".into(),
                Engine::Argo => "a Helm chart: Argo CD renders it; its drift shows as the Application's OutOfSync resources".into(),
            });
            return Ok(found);
        }
        Source::Remote(r) => {
            found.not_compared = Some(format!(
                "built from {} {} ({}), which kindling does not read",
                r.kind,
                r.name,
                r.object["spec"]["url"].as_str().unwrap_or_default()
            ));
            return Ok(found);
        }
    };
    let Ok(relative) = path.host_dir.strip_prefix(&stamp.repo_root) else {
        found.not_compared = Some(format!(
            "{} is outside the repository kindling pushes",
            path.host_dir.display()
        ));
        return Ok(found);
    };
    let dir = checkout.join(relative);
    if !dir.is_dir() {
        found.not_compared = Some(format!(
            "{} is not in Git: the engine cannot build the entry",
            relative.display()
        ));
        return Ok(found);
    }
    let mut objects = super::entry_build::build(&dir, entry.namespace.as_deref())?;
    let manager = match engine {
        Engine::Flux => "kustomize-controller",
        Engine::Argo => "argocd-controller",
    };
    let objects_namespace = crate::engine::objects_namespace(engine, stamp);
    let mut built = BTreeSet::new();
    for object in &mut objects {
        mark_as_the_engine_does(object, engine, objects_namespace, &entry.name);
        let kind = text(&object["kind"]);
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_string);
        let name = text(&object["metadata"]["name"]);
        built.insert((
            namespace.clone().unwrap_or_default(),
            name.clone(),
            kind.clone(),
        ));
        let label = object_label(&kind, namespace.as_deref(), &name);
        // The live object first, then the dry run, as ssa `Diff` does.
        let api_version = text(&object["apiVersion"]);
        let live = kube
            .get(&api_version, &kind, namespace.as_deref(), &name)
            .await?;
        let Some(merged) = kube.dry_run_apply(object, manager).await? else {
            // The kind is not served yet (its CRD comes with the entry): a create.
            found
                .changes
                .push(change(label, Action::Created, Vec::new()));
            continue;
        };
        let created = merged["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .is_empty();
        let Some(live) = live.filter(|_| !created) else {
            found
                .changes
                .push(change(label, Action::Created, Vec::new()));
            continue;
        };
        if has_drifted(&live, &merged) {
            let (live, merged) = printable(live, merged);
            found
                .changes
                .push(change(label, Action::Drifted, line_diff(&live, &merged)));
        } else {
            found.unchanged += 1;
        }
    }
    if prunes(kube, engine, objects_namespace, &entry.name).await? {
        for (namespace, name, kind) in
            super::entry_objects::refs(kube, engine, objects_namespace, &entry.name).await?
        {
            if !built.contains(&(namespace.clone(), name.clone(), kind.clone())) {
                let ns = (!namespace.is_empty()).then_some(namespace.as_str());
                found.changes.push(change(
                    object_label(&kind, ns, &name),
                    Action::Pruned,
                    Vec::new(),
                ));
            }
        }
    }
    Ok(found)
}

/// Where the branch head is checked out, gone afterwards.
fn scratch_dir() -> Result<tempfile::TempDir, EnvError> {
    tempfile::tempdir().map_err(|e| EnvError::State {
        path: std::env::temp_dir(),
        reason: format!("cannot make a scratch directory for the checkout: {e}"),
    })
}

fn change(object: String, action: Action, diff: Vec<String>) -> ObjectChange {
    ObjectChange {
        object,
        action,
        diff,
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn object_label(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The marks the engine puts on what it applies.
fn mark_as_the_engine_does(
    object: &mut Value,
    engine: Engine,
    objects_namespace: &str,
    entry: &str,
) {
    match engine {
        Engine::Flux => {
            let labels = &mut object["metadata"]["labels"];
            labels["kustomize.toolkit.fluxcd.io/name"] = Value::String(entry.to_string());
            labels["kustomize.toolkit.fluxcd.io/namespace"] =
                Value::String(objects_namespace.to_string());
        }
        Engine::Argo => {
            let api_version = text(&object["apiVersion"]);
            let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            let instance = crate::engine::argo::instance_name(objects_namespace, entry);
            let id = format!(
                "{instance}:{group}/{}:{}/{}",
                text(&object["kind"]),
                text(&object["metadata"]["namespace"]),
                text(&object["metadata"]["name"])
            );
            object["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = Value::String(id);
        }
    }
}

/// Whether the engine deletes what leaves Git: a Flux Kustomization's `spec.prune`, an Argo
/// CD Application's `syncPolicy.automated.prune`.
async fn prunes(
    kube: &KubeClient,
    engine: Engine,
    objects_namespace: &str,
    entry: &str,
) -> Result<bool, EnvError> {
    let object =
        super::entry_objects::engine_object(kube, engine, objects_namespace, entry).await?;
    Ok(object.is_some_and(|o| match engine {
        Engine::Flux => o["spec"]["prune"] == true,
        Engine::Argo => o["spec"]["syncPolicy"]["automated"]["prune"] == true,
    }))
}

/// fluxcd/pkg ssa `hasDrifted`: labels, annotations, or the object less `metadata` and
/// `status`.
fn has_drifted(live: &Value, merged: &Value) -> bool {
    let labels = |o: &Value| o["metadata"]["labels"].clone();
    let annotations = |o: &Value| o["metadata"]["annotations"].clone();
    let body = |o: &Value| {
        let mut o = o.clone();
        if let Some(m) = o.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        o
    };
    labels(live) != labels(merged)
        || annotations(live) != annotations(merged)
        || body(live) != body(merged)
}

/// Both sides as YAML for the line diff: status and the server's bookkeeping (managedFields,
/// resourceVersion, generation, uid, creationTimestamp) left out, keys in one order, a
/// Secret's values masked.
fn printable(mut live: Value, mut merged: Value) -> (String, String) {
    for o in [&mut live, &mut merged] {
        if let Some(m) = o["metadata"].as_object_mut() {
            for server_field in [
                "managedFields",
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
            ] {
                m.remove(server_field);
            }
        }
        if let Some(m) = o.as_object_mut() {
            m.remove("status");
        }
    }
    if live["kind"] == "Secret" {
        mask_secret_values(&mut live, &mut merged);
    }
    let yaml = |v: &Value| serde_yaml_ng::to_string(&sorted(v)).unwrap_or_default();
    (yaml(&live), yaml(&merged))
}

/// The same value with every object's keys in order: the live object and the dry run list
/// them in different orders.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// fluxcd/pkg ssa v0.77.0 sanitize.go `SanitizeUnstructuredData`, for `data` and
/// `stringData` alike; the last-applied annotation (which holds them too) goes.
fn mask_secret_values(live: &mut Value, merged: &mut Value) {
    for field in ["data", "stringData"] {
        let before = live[field].as_object().cloned().unwrap_or_default();
        let after = merged[field].as_object().cloned().unwrap_or_default();
        for (k, v) in &before {
            let mask = match after.get(k) {
                Some(w) if w != v => "*** (before)",
                _ => "***",
            };
            live[field][k] = Value::String(mask.into());
        }
        for (k, w) in &after {
            let mask = match before.get(k) {
                Some(v) if v != w => "*** (after)",
                _ => "***",
            };
            merged[field][k] = Value::String(mask.into());
        }
    }
    for o in [live, merged] {
        if let Some(a) = o["metadata"]["annotations"].as_object_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
}

/// A line diff of `before` against `after` (longest common subsequence), each changed line
/// with up to three lines of context around it.
pub fn line_diff(before: &str, after: &str) -> Vec<String> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut common = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if a[i] == b[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            lines.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || common[i + 1][j] >= common[i][j + 1]) {
            // What goes before what comes, as diff(1) prints a change.
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= CONTEXT);
    let mut out = Vec::new();
    let mut skipped = false;
    for (k, (mark, line)) in lines.iter().enumerate() {
        if near(k) {
            if skipped && !out.is_empty() {
                out.push("...".to_string());
            }
            skipped = false;
            out.push(format!("{mark} {line}"));
        } else {
            skipped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_diff_marks_the_changed_lines_with_context() {
        let before = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
        let after = "a\nb\nc\nd\nE\nf\ng\nh\ni\n";
        assert_eq!(
            line_diff(before, after),
            vec!["  b", "  c", "  d", "- e", "+ E", "  f", "  g", "  h"]
        );
        assert!(line_diff("same\n", "same\n").is_empty());
    }

    #[test]
    fn secret_values_never_print() {
        let live = serde_json::json!({"kind": "Secret", "metadata": {"name": "s", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"k\":\"c2VjcmV0\"}}"}},
            "data": {"k": "c2VjcmV0", "same": "eA=="}});
        let merged = serde_json::json!({"kind": "Secret", "metadata": {"name": "s"},
            "data": {"k": "b3RoZXI=", "same": "eA=="}});
        let (before, after) = printable(live, merged);
        for text in [&before, &after] {
            assert!(
                !text.contains("c2VjcmV0") && !text.contains("b3RoZXI="),
                "{text}"
            );
        }
        assert!(before.contains("k: '*** (before)'"), "{before}");
        assert!(after.contains("k: '*** (after)'"), "{after}");
        assert!(after.contains("same: '***'"), "{after}");
    }

    #[test]
    fn drift_is_labels_annotations_or_the_body() {
        let live = serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "7"},
            "data": {"a": "1"}, "status": {"x": 1}});
        let mut same = live.clone();
        same["status"] = serde_json::json!({"x": 2});
        same["metadata"]["managedFields"] = serde_json::json!([]);
        assert!(!has_drifted(&live, &same));
        let mut body = live.clone();
        body["data"]["a"] = "2".into();
        assert!(has_drifted(&live, &body));
        let mut label = live.clone();
        label["metadata"]["labels"]["l"] = "v".into();
        assert!(has_drifted(&live, &label));
    }
}
