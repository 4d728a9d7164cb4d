//! HostK8s apps (`software/apps/NAME`), as `make deploy NAME [NAMESPACE]` takes them, turned
//! into entries of the env's stamp so the engine deploys them from the env's Git.
//!
//! HostK8s (danielscholl-osdu/hostk8s@2add0a5 infra/scripts/deploy-app.py and
//! hostk8s_common.py `get_app_deployment_type`) finds the app in `software/apps/NAME` and
//! tells its kind by the first file present: `Chart.yaml` (a Helm chart: `helm upgrade
//! --install NAME DIR -n NS`, with `custom_values.yaml` and then `values/development.yaml`
//! as `-f` when present), `kustomization.yaml` (`kubectl apply -k DIR -n NS`), `app.yaml`
//! (`kubectl apply -f app.yaml -n NS`). The namespace defaults to `default`.
//!
//! Here the engine applies the same: a Helm entry whose chart is read from the env's Git,
//! or a path entry whose target namespace is NS. One difference: Flux's `targetNamespace`
//! moves every namespaced object into NS, where `kubectl apply -n` refuses objects that name
//! another namespace (HostK8s' `basic` app names `default`, docs/tutorials/apps.md).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::stamp::{Entry, HelmChart, PathSource, Problem, Role, Source, StampError};

/// The scheme of a chart kept in the env's own repository (`file://software/apps/NAME`).
pub const IN_TREE: &str = "file://";

/// The label the engine objects of an app's entry carry, as HostK8s labels the app's own
/// objects (`commonLabels: hostk8s.app: NAME`).
pub const APP_LABEL: &str = "hostk8s.app";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    Helm,
    Kustomization,
    Manifest,
}

/// An app found under `software/apps`.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub name: String,
    pub kind: AppKind,
    pub dir: PathBuf,
}

/// The apps directory of a HostK8s repository.
pub fn apps_dir(source: &Path) -> PathBuf {
    source.join("software/apps")
}

/// The app `name` of the repository at `source`, with HostK8s' precedence of kinds; an
/// error naming the apps there when there is none of that name.
pub fn find(source: &Path, name: &str) -> Result<App, StampError> {
    let dir = apps_dir(source).join(name);
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    let kind = [
        ("Chart.yaml", AppKind::Helm),
        ("kustomization.yaml", AppKind::Kustomization),
        ("kustomization.yml", AppKind::Kustomization),
        ("Kustomization", AppKind::Kustomization),
        ("app.yaml", AppKind::Manifest),
    ]
    .into_iter()
    .find(|(file, _)| valid && dir.join(file).is_file())
    .map(|(_, kind)| kind);
    match kind {
        Some(kind) => Ok(App {
            name: name.to_string(),
            kind,
            dir,
        }),
        None => Err(StampError::Invalid {
            stamp: name.to_string(),
            problems: vec![Problem::new(
                apps_dir(source),
                None,
                "app",
                format!(
                    "no app '{name}' (a directory with Chart.yaml, kustomization.yaml or app.yaml); apps here: {}",
                    match list(source).as_slice() {
                        [] => "none".to_string(),
                        apps => apps.join(", "),
                    }
                ),
                "name one of them, or add software/apps/NAME with one of those files",
            )],
        }),
    }
}

/// The apps of the repository at `source`, sorted.
pub fn list(source: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(apps_dir(source))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| find(source, n).is_ok())
        .collect();
    names.sort();
    names
}

/// The entry that deploys `app` into `namespace`, named `app-NAME-NAMESPACE` (one app may be
/// deployed into several namespaces, as with HostK8s).
pub fn entry(source: &Path, app: &App, namespace: &str) -> Result<Entry, StampError> {
    let repo_path = format!("software/apps/{}", app.name);
    let (source_of, declared_in) = match app.kind {
        AppKind::Helm => {
            let chart_file = app.dir.join("Chart.yaml");
            let chart: Value =
                serde_yaml_ng::from_str(&crate::stamp::manifests::read_text(&chart_file)?)
                    .map_err(|e| StampError::Invalid {
                        stamp: app.name.clone(),
                        problems: vec![Problem::new(
                            &chart_file,
                            None,
                            "Chart.yaml",
                            format!("cannot be read: {e}"),
                            "fix the chart's Chart.yaml",
                        )],
                    })?;
            let field = |k: &str| chart[k].as_str().unwrap_or_default().to_string();
            (
                Source::Helm(HelmChart {
                    repo: format!("{IN_TREE}{repo_path}"),
                    chart: Some(field("name"))
                        .filter(|n| !n.is_empty())
                        .unwrap_or(app.name.clone()),
                    version: field("version"),
                    release_name: Some(app.name.clone()),
                    values: values(&app.dir)?,
                    plain_http: false,
                }),
                chart_file,
            )
        }
        AppKind::Kustomization | AppKind::Manifest => (
            Source::Path(PathSource {
                repo_path: repo_path.clone(),
                host_dir: source.join(&repo_path),
            }),
            app.dir.clone(),
        ),
    };
    Ok(Entry {
        name: entry_name(&app.name, namespace),
        role: Role::Application,
        source: source_of,
        namespace: Some(namespace.to_string()),
        depends_on: Vec::new(),
        health_checks: Vec::new(),
        timeout: None,
        wait: true,
        prune: true,
        interval: None,
        retry_interval: None,
        group: None,
        declared_in,
        labels: [(APP_LABEL.to_string(), app.name.clone())].into(),
        manual_gate: false,
        applied_directly: false,
    })
}

pub fn entry_name(app: &str, namespace: &str) -> String {
    format!("app-{app}-{namespace}")
}

/// The values deploy-app.py passes with `-f`, in its order, merged as Helm merges them (a
/// later file's keys win, maps merged key by key).
fn values(dir: &Path) -> Result<Map<String, Value>, StampError> {
    let mut merged = Map::new();
    for file in ["custom_values.yaml", "values/development.yaml"] {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let text = crate::stamp::manifests::read_text(&path)?;
        let value: Value = serde_yaml_ng::from_str(&text).map_err(|e| StampError::Invalid {
            stamp: dir.display().to_string(),
            problems: vec![Problem::new(
                &path,
                None,
                "values",
                format!("cannot be read: {e}"),
                "fix the YAML",
            )],
        })?;
        if let Value::Object(map) = value {
            merge(&mut merged, map);
        }
    }
    Ok(merged)
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// An in-tree chart's files (relative path → bytes), as the engine reads them from Git.
pub fn chart_files(
    repo_root: &Path,
    chart: &HelmChart,
) -> Result<Option<crate::bundle::charts::ChartFiles>, StampError> {
    let Some(repo_path) = chart.repo.strip_prefix(IN_TREE) else {
        return Ok(None);
    };
    let dir = repo_root.join(repo_path);
    let mut files = Vec::new();
    collect(&dir, &dir, &mut files)?;
    files.sort();
    Ok(Some(files))
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) -> Result<(), StampError> {
    for entry in std::fs::read_dir(dir).map_err(|e| StampError::io(dir, e))? {
        let entry = entry.map_err(|e| StampError::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| StampError::io(&path, e))?;
        if kind.is_dir() && entry.file_name() != ".git" {
            collect(root, &path, files)?;
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| StampError::io(&path, e))?;
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            files.push((relative, bytes));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_values_files_win_key_by_key() {
        let mut a: Map<String, Value> =
            serde_json::from_str(r#"{"app": {"title": "a", "vote1": "x"}, "replicas": 1}"#)
                .unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"app": {"title": "b"}, "replicas": 2}"#).unwrap();
        merge(&mut a, b);
        assert_eq!(
            Value::Object(a),
            serde_json::json!({"app": {"title": "b", "vote1": "x"}, "replicas": 2})
        );
    }
}
