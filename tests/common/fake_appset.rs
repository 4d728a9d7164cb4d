//! Argo CD's ApplicationSet controller, as far as idpbuilder packages use it (argo-cd v3.5.1):
//! - applicationset/generators/list.go: each element's fields are the parameters;
//! - applicationset/generators/git.go `generateParamsForGitDirectories`: every directory of
//!   the repository at the generator's revision, kept when a `directories[].path` pattern
//!   matches (Go `path.Match`: `*` is any run of characters but `/`) and no `exclude: true`
//!   one does (`filterApps`); parameters `path`, `path.basename`, `path.basenameNormalized`,
//!   `path[N]` (with `goTemplate`, `.path.path`, `.path.basename`, `.path.segments`);
//! - applicationset/utils/utils.go `Render.replace`: fasttemplate between `{{` and `}}`, the
//!   tag trimmed, an unknown tag left as written;
//! - controllers/applicationset_controller.go `createOrUpdateInCluster`: each generated
//!   Application in the set's namespace with the set as its controller owner; one no longer
//!   generated is deleted (the default `sync` policy). When the set itself is gone, the
//!   garbage collector deletes what it owned (kube-controller-manager, by ownerReferences).
//!
//! Not modelled: the git files generator, cluster/matrix/merge generators and Go template
//! functions; a set using them generates nothing here.

use serde_json::{Map, Value, json};

use super::fake_cluster::{Workspace, package_repository};
use super::kube_api::Stored;

const NAMESPACE: &str = "argocd";

pub fn reconcile(objects: &mut Vec<Stored>, ws: &mut Workspace) {
    let sets: Vec<Value> = objects
        .iter()
        .filter(|s| s.plural == "applicationsets")
        .map(|s| s.object.clone())
        .collect();
    for set in &sets {
        if !set["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let Some(params) = parameters(set, ws) else {
            continue;
        };
        let uid = set["metadata"]["uid"].clone();
        let set_name = set["metadata"]["name"].as_str().unwrap_or_default();
        let mut wanted = Vec::new();
        for p in &params {
            let mut template = set["spec"]["template"].clone();
            render(&mut template, p);
            let name = template["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if name.is_empty() || name.contains("{{") {
                continue;
            }
            let mut app = json!({
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Application",
                "metadata": template["metadata"].clone(),
                "spec": template["spec"].clone(),
            });
            app["metadata"]["namespace"] = json!(NAMESPACE);
            app["metadata"]["ownerReferences"] = json!([{"apiVersion": "argoproj.io/v1alpha1",
                "kind": "ApplicationSet", "name": set_name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true}]);
            wanted.push(name.clone());
            match objects
                .iter_mut()
                .find(|s| s.plural == "applications" && s.name == name)
            {
                Some(s) => {
                    s.object["spec"] = app["spec"].clone();
                    s.object["metadata"]["ownerReferences"] =
                        app["metadata"]["ownerReferences"].clone();
                }
                None => {
                    app["metadata"]["uid"] = json!(format!("uid-appset-{set_name}-{name}"));
                    app["metadata"]["generation"] = json!(1);
                    objects.push(Stored {
                        group_version: "argoproj.io/v1alpha1".into(),
                        plural: "applications".into(),
                        namespace: Some(NAMESPACE.into()),
                        name,
                        object: app,
                    });
                }
            }
        }
        for s in objects.iter_mut().filter(|s| s.plural == "applications") {
            if owned_by(&s.object, &uid)
                && !wanted.contains(&s.name)
                && s.object["metadata"]["deletionTimestamp"].is_null()
            {
                s.object["metadata"]["deletionTimestamp"] = json!("2026-11-29T08:00:00Z");
            }
        }
    }
    // The garbage collector: what a vanished set owned goes.
    let live: Vec<Value> = sets.iter().map(|s| s["metadata"]["uid"].clone()).collect();
    for s in objects.iter_mut().filter(|s| s.plural == "applications") {
        let owner = s.object["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["kind"] == "ApplicationSet"))
            .map(|o| o["uid"].clone());
        if let Some(owner) = owner
            && !live.contains(&owner)
            && s.object["metadata"]["deletionTimestamp"].is_null()
        {
            s.object["metadata"]["deletionTimestamp"] = json!("2026-11-29T08:00:00Z");
        }
    }
}

fn owned_by(app: &Value, uid: &Value) -> bool {
    app["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|o| o.iter().any(|o| &o["uid"] == uid))
}

/// Every generator's parameter sets; `None` when one cannot be read yet (its repository has
/// no commit), so nothing is deleted meanwhile.
fn parameters(set: &Value, ws: &mut Workspace) -> Option<Vec<Map<String, Value>>> {
    let go = set["spec"]["goTemplate"] == true;
    let mut all = Vec::new();
    for generator in set["spec"]["generators"].as_array().into_iter().flatten() {
        if let Some(elements) = generator["list"]["elements"].as_array() {
            for e in elements {
                let mut p = Map::new();
                for (k, v) in e.as_object().into_iter().flatten() {
                    p.insert(if go { format!(".{k}") } else { k.clone() }, v.clone());
                }
                all.push(p);
            }
        } else if let Some(directories) = generator["git"]["directories"].as_array() {
            let url = generator["git"]["repoURL"].as_str().unwrap_or_default();
            let head = match package_repository(url) {
                Some(repo) => ws.repository_head(url, &repo)?,
                None => ws.head()?,
            };
            let root = ws.tree(&head);
            let mut paths = Vec::new();
            list_directories(&root, &root, &mut paths);
            paths.sort();
            for path in paths {
                let matches = |d: &Value| {
                    d["path"]
                        .as_str()
                        .is_some_and(|pattern| path_match(pattern, &path))
                };
                let included = directories
                    .iter()
                    .any(|d| d["exclude"] != true && matches(d));
                let excluded = directories
                    .iter()
                    .any(|d| d["exclude"] == true && matches(d));
                if included && !excluded {
                    all.push(path_parameters(&path, go));
                }
            }
        }
    }
    Some(all)
}

fn path_parameters(path: &str, go: bool) -> Map<String, Value> {
    let base = path.rsplit('/').next().unwrap_or(path).to_string();
    let normalized: String = base
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut p = Map::new();
    if go {
        p.insert(".path.path".into(), json!(path));
        p.insert(".path.basename".into(), json!(base));
        p.insert(".path.basenameNormalized".into(), json!(normalized));
    } else {
        p.insert("path".into(), json!(path));
        p.insert("path.basename".into(), json!(base));
        p.insert("path.basenameNormalized".into(), json!(normalized));
        for (i, segment) in path.split('/').enumerate() {
            if !segment.is_empty() {
                p.insert(format!("path[{i}]"), json!(segment));
            }
        }
    }
    p
}

fn list_directories(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() && entry.file_name() != ".git" {
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            list_directories(root, &path, out);
        }
    }
}

/// Go `path.Match` for the patterns generators use: `*` (no `/`), `?`, literal characters.
fn path_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| go(&p[1..], &n[i..])),
            Some('?') => n.first().is_some_and(|c| *c != '/') && go(&p[1..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

/// `Render.replace` on every string of the template.
fn render(value: &mut Value, params: &Map<String, Value>) {
    match value {
        Value::String(s) => *s = replace(s, params),
        Value::Array(items) => items.iter_mut().for_each(|v| render(v, params)),
        Value::Object(map) => map.values_mut().for_each(|v| render(v, params)),
        _ => {}
    }
}

fn replace(text: &str, params: &Map<String, Value>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let tag = &rest[start + 2..start + 2 + end];
        match params.get(tag.trim()).and_then(Value::as_str) {
            Some(v) => out.push_str(v),
            None => out.push_str(&format!("{{{{{tag}}}}}")),
        }
        rest = &rest[start + 2 + end + 2..];
    }
    out.push_str(rest);
    out
}
