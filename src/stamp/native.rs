//! kindling's own stamp format: `stamps/NAME/stamp.yaml`, `kind: Stamp`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::manifests::read_text;
use super::{
    BootstrapSecret, Draft, Entry, Graph, HealthCheck, HelmChart, PathSource, Problem, Role,
    SecretKey, SecretValue, Source, Stamp, StampError, StampFormat,
};
use super::{normalize, repo_relative};

pub const API_VERSION: &str = "kindling.dev/v1alpha1";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StampFile {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    components: Vec<EntryFile>,
    #[serde(default)]
    applications: Vec<EntryFile>,
    #[serde(default)]
    secrets: Vec<SecretFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EntryFile {
    name: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    helm: Option<HelmFile>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    health_checks: Vec<HealthCheck>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    wait: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HelmFile {
    repo: String,
    chart: String,
    version: String,
    #[serde(default)]
    release_name: Option<String>,
    #[serde(default)]
    values: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretFile {
    name: String,
    namespace: String,
    keys: Vec<SecretKeyFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretKeyFile {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    generate: Option<Generate>,
    #[serde(default)]
    from_file: Option<PathBuf>,
    #[serde(default)]
    from_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Generate {
    length: usize,
}

/// Whether `file` declares a kindling stamp (as opposed to, say, a HostK8s `stamp.yaml` of
/// Flux objects, which DESIGN.md also allows).
pub fn is_native_stamp(file: &Path) -> Result<bool, StampError> {
    let text = read_text(file)?;
    let first = serde_yaml_ng::Deserializer::from_str(&text).next();
    let Some(document) = first else {
        return Ok(false);
    };
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        kind: Option<String>,
    }
    // A syntax error in a file named stamp.yaml is reported by the native loader, with its
    // line and column, rather than as "not a stamp".
    match Head::deserialize(document) {
        Ok(head) => Ok(head.kind.as_deref() != Some("Kustomization")),
        Err(_) => Ok(true),
    }
}

pub fn load(file: &Path, dir: &Path, source_root: Option<&Path>) -> Result<Draft, StampError> {
    let text = read_text(file)?;
    let parsed: StampFile =
        serde_yaml_ng::from_str(&text).map_err(|e| StampError::yaml_in(file, &e, &text))?;
    let mut problems = Vec::new();
    if parsed.api_version != API_VERSION {
        problems.push(Problem::new(
            file,
            None,
            "apiVersion",
            format!("'{}' is not supported", parsed.api_version),
            format!("use apiVersion: {API_VERSION}"),
        ));
    }
    if parsed.kind != "Stamp" {
        problems.push(Problem::new(
            file,
            None,
            "kind",
            format!("'{}' is not a stamp", parsed.kind),
            "use kind: Stamp",
        ));
    }
    let repo_root = repo_root_for(dir, source_root);
    let mut entries = Vec::new();
    let mut dropped = Vec::new();
    let declared = parsed
        .spec
        .components
        .into_iter()
        .map(|e| (Role::Component, e))
        .chain(
            parsed
                .spec
                .applications
                .into_iter()
                .map(|e| (Role::Application, e)),
        );
    for (role, e) in declared {
        match convert_entry(file, dir, &repo_root, role, e, &mut problems) {
            Ok(entry) => entries.push(entry),
            Err(name) => dropped.push(name),
        }
    }
    let secrets = parsed
        .spec
        .secrets
        .into_iter()
        .map(|s| convert_secret(file, s, &mut problems))
        .collect();
    Ok(Draft {
        stamp: Stamp {
            name: parsed.metadata.name,
            description: parsed.metadata.description,
            format: StampFormat::Kindling,
            dir: dir.to_path_buf(),
            file: file.to_path_buf(),
            repo_root,
            ignore: parsed.spec.ignore,
            entries,
            secrets,
            graph: Graph::default(),
        },
        problems,
        dropped,
    })
}

/// `stamps/NAME` lives in a repository whose root is two levels up; a stamp elsewhere is its
/// own repository unless `--source` says otherwise.
fn repo_root_for(dir: &Path, source_root: Option<&Path>) -> PathBuf {
    if let Some(root) = source_root {
        return root.to_path_buf();
    }
    let parent = dir.parent();
    match parent {
        Some(p) if p.file_name().is_some_and(|n| n == "stamps") => {
            p.parent().unwrap_or(Path::new(".")).to_path_buf()
        }
        _ => dir.to_path_buf(),
    }
}

fn convert_entry(
    file: &Path,
    dir: &Path,
    repo_root: &Path,
    role: Role,
    e: EntryFile,
    problems: &mut Vec<Problem>,
) -> Result<Entry, String> {
    let source = match (e.path, e.helm) {
        (Some(path), None) => {
            let host_dir = normalize(&dir.join(&path));
            let Some(repo_path) = repo_relative(repo_root, &host_dir) else {
                problems.push(Problem::new(
                    file,
                    Some(&e.name),
                    "path",
                    format!(
                        "'{path}' is outside the repository root {}",
                        repo_root.display()
                    ),
                    "keep entry paths inside the source tree kindling pushes (or pass --source)",
                ));
                return Err(e.name);
            };
            Source::Path(PathSource {
                repo_path,
                host_dir,
            })
        }
        (None, Some(h)) => Source::Helm(HelmChart {
            repo: h.repo,
            chart: h.chart,
            version: h.version,
            release_name: h.release_name,
            values: h.values,
        }),
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                file,
                Some(&e.name),
                "path/helm",
                "has both `path` and `helm`",
                "an entry is either a directory of manifests (`path`) or a Helm chart (`helm`); split it into two entries",
            ));
            return Err(e.name);
        }
        (None, None) => {
            problems.push(Problem::new(
                file,
                Some(&e.name),
                "path/helm",
                "has neither `path` nor `helm`",
                "add `path: <directory relative to the stamp>` or `helm: {repo, chart, version}`",
            ));
            return Err(e.name);
        }
    };
    // Helm releases need a namespace to live in; the entry's name is the natural default.
    let namespace = match (&source, e.namespace) {
        (Source::Helm(_), None) => Some(e.name.clone()),
        (_, ns) => ns,
    };
    Ok(Entry {
        name: e.name,
        role,
        source,
        namespace,
        depends_on: e.depends_on,
        health_checks: e.health_checks,
        timeout: e.timeout,
        wait: e.wait.unwrap_or(true),
        prune: true,
        interval: None,
        retry_interval: None,
        group: None,
        declared_in: file.to_path_buf(),
    })
}

fn convert_secret(file: &Path, s: SecretFile, problems: &mut Vec<Problem>) -> BootstrapSecret {
    let mut keys = Vec::new();
    for k in s.keys {
        let mut sources = Vec::new();
        if let Some(v) = k.value {
            sources.push(SecretValue::Literal(v));
        }
        if let Some(g) = k.generate {
            sources.push(SecretValue::Generate { length: g.length });
        }
        if let Some(f) = k.from_file {
            sources.push(SecretValue::FromFile(f));
        }
        if let Some(v) = k.from_env {
            sources.push(SecretValue::FromEnv(v));
        }
        if sources.len() != 1 {
            // Reported here; the key itself is kept so no follow-on "no keys" problem appears.
            problems.push(Problem::new(
                file,
                None,
                format!("spec.secrets[{}].keys[{}]", s.name, k.key),
                format!("has {} value sources", sources.len()),
                "give exactly one of `value`, `generate: {length: N}`, `fromFile: PATH` or `fromEnv: VAR`",
            ));
            if sources.is_empty() {
                continue;
            }
        }
        keys.push(SecretKey {
            key: k.key,
            value: sources.remove(0),
        });
    }
    BootstrapSecret {
        name: s.name,
        namespace: s.namespace,
        keys,
    }
}
