//! Server-side apply as the API server merges it, for the fake API server.
//!
//! Upstream: kubernetes/apimachinery v0.36.3 pkg/util/managedfields/internal/structuredmerge.go
//! `structuredMergeManager.Apply` (github.com/kubernetes/apimachinery, which the API server's
//! patch handler calls, with sigs.k8s.io/structured-merge-diff `Updater.Apply`): the applied
//! configuration is merged into the live object; a field the
//! same manager applied before and leaves out now is removed, unless another applier still
//! owns it; what other managers (or plain updates) set stays. Ownership is recorded per
//! manager in `metadata.managedFields` as `FieldsV1` (`f:` keys), operation `Apply`.
//! With `force`, a field applied with another value is taken from its previous applier.
//!
//! One simplification: a list is owned whole (as `listType: atomic` lists are), where the
//! real server merges associative lists (containers by name) item by item.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

type FieldPath = Vec<String>;

/// Fields no manager owns: the object's identity.
fn is_identity(path: &[String]) -> bool {
    matches!(
        path.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["apiVersion"] | ["kind"] | ["metadata", "name"] | ["metadata", "namespace"]
    ) || path.first().is_some_and(|p| p == "status")
        || path.len() >= 2 && path[0] == "metadata" && path[1] == "managedFields"
}

/// The leaf fields of an applied configuration.
fn leaf_paths(value: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(k.clone());
                leaf_paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() && !is_identity(prefix) {
                out.insert(prefix.clone());
            }
        }
    }
}

fn fields_v1(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = json!({});
    for path in paths {
        let mut at = &mut root;
        for key in path {
            at = at
                .as_object_mut()
                .unwrap()
                .entry(format!("f:{key}"))
                .or_insert_with(|| json!({}));
        }
    }
    root
}

fn paths_of_fields_v1(fields: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Some(map) = fields.as_object() else {
        return;
    };
    if map.is_empty() && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
    for (k, v) in map {
        if let Some(key) = k.strip_prefix("f:") {
            prefix.push(key.to_string());
            paths_of_fields_v1(v, prefix, out);
            prefix.pop();
        }
    }
}

/// What each applier owns, from `metadata.managedFields`.
fn appliers(object: &Value) -> Vec<(String, BTreeSet<FieldPath>)> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["operation"] == "Apply")
        .map(|e| {
            let mut owned = BTreeSet::new();
            paths_of_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut owned);
            (e["manager"].as_str().unwrap_or_default().to_string(), owned)
        })
        .collect()
}

fn at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.as_object()?.get(k))
}

fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut v = value;
    for k in parents {
        match v.as_object_mut().and_then(|m| m.get_mut(k)) {
            Some(next) => v = next,
            None => return,
        }
    }
    if let Some(m) = v.as_object_mut() {
        m.remove(last);
    }
}

fn merge_applied(target: &mut Value, applied: &Value) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) if !a.is_empty() => {
            for (k, v) in a {
                merge_applied(t.entry(k.clone()).or_insert(Value::Object(Map::new())), v);
            }
        }
        (t, a) => *t = a.clone(),
    }
}

/// The object after `manager` applies `applied` (forced) to `live` (`None`: a create).
pub fn apply(live: Option<&Value>, applied: &Value, manager: &str) -> Value {
    let mut new_paths = BTreeSet::new();
    leaf_paths(applied, &mut Vec::new(), &mut new_paths);
    let Some(live) = live else {
        let mut object = applied.clone();
        object["metadata"]["managedFields"] = json!([entry(applied, manager, &new_paths)]);
        return object;
    };
    let owners = appliers(live);
    let previous = owners
        .iter()
        .find(|(m, _)| m == manager)
        .map(|(_, p)| p.clone())
        .unwrap_or_default();
    let mut object = live.clone();
    for gone in previous.difference(&new_paths) {
        let still_owned = owners
            .iter()
            .any(|(m, owned)| m != manager && owned.contains(gone));
        if !still_owned {
            remove(&mut object, gone);
        }
    }
    merge_applied(&mut object, applied);
    // Forced: a field applied with another value than it had is this manager's alone now.
    let mut entries: Vec<Value> = live["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !(e["manager"] == manager && e["operation"] == "Apply"))
        .map(|mut e| {
            if e["operation"] == "Apply" {
                let mut owned = BTreeSet::new();
                paths_of_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut owned);
                owned.retain(|p| !new_paths.contains(p) || at(live, p) == at(applied, p));
                e["fieldsV1"] = fields_v1(&owned);
            }
            e
        })
        .collect();
    entries.push(entry(applied, manager, &new_paths));
    object["metadata"]["managedFields"] = Value::Array(entries);
    object
}

fn entry(applied: &Value, manager: &str, paths: &BTreeSet<FieldPath>) -> Value {
    json!({"manager": manager, "operation": "Apply",
           "apiVersion": applied["apiVersion"], "fieldsType": "FieldsV1",
           "fieldsV1": fields_v1(paths)})
}
