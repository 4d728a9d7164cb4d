//! An Argo CD bootstrap directory loaded as a stamp: Applications (and app-of-apps) as a team
//! keeps them, possibly listed by a `kustomization.yaml`.
//!
//! What Argo CD reads (argo-cd v3.5.1 pkg/apis/application/v1alpha1 types.go
//! `ApplicationSource`: `repoURL`, `path`, `targetRevision`, `chart`, `helm.values` /
//! `helm.valuesObject`; `ApplicationDestination.namespace`; the annotation
//! `argocd.argoproj.io/sync-wave`, an integer, default 0, lower waves first) and what kindling
//! does with it:
//! - An Application whose `repoURL` is the repository being pushed (one of its Git remotes,
//!   compared without scheme, user and `.git`) becomes a path entry: kindling's Gitea serves
//!   the path. If its path holds Applications itself (app-of-apps), those become the entries
//!   instead, as Argo CD would apply them.
//! - An Application on a Helm repository (`chart` set) becomes a Helm entry with the same
//!   chart, version and values, fetched from that repository as before.
//! - An Application on another Git repository stays on it: Argo CD reads it from there, and on
//!   Flux a GitRepository on it (at the Application's `targetRevision`) feeds the entry.
//!   Several `sources` are a problem naming them.
//! - Sync waves become dependencies: every entry waits for the entries of the wave before its
//!   own. The destination namespace, the project and the sync options are kept (on Argo CD):
//!   an AppProject the directories define (argo-cd v3.5.1 `AppProject`, `spec.sourceRepos`)
//!   is applied at bootstrap, its `sourceRepos` entry naming this repository gaining the env's
//!   Gitea, so Argo CD still permits the Applications' new `repoURL`. A project the layout does
//!   not define cannot be kept (Argo CD refuses an Application of a missing project): a
//!   warning says the entry runs in `default`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::manifests::{Document, parse_documents, read_text};
use super::{
    Draft, Entry, Graph, HelmChart, PathSource, Problem, Role, Source, Stamp, StampError,
    StampFormat, normalize, repo_relative,
};

const WAVE: &str = "argocd.argoproj.io/sync-wave";
/// App-of-apps deeper than this is a cycle of paths.
const MAX_NESTING: usize = 8;

fn is_application(d: &Document) -> bool {
    d.group() == "argoproj.io" && d.kind() == "Application"
}

fn is_project(d: &Document) -> bool {
    d.group() == "argoproj.io" && d.kind() == "AppProject"
}

/// Loads the Argo CD bootstrap directory `dir`; `Ok(None)` when it holds no Application.
/// `source_root` is the repository root (`--source`); otherwise the Git checkout holding
/// `dir`, else `dir` itself.
pub fn load(dir: &Path, source_root: Option<&Path>) -> Result<Option<Draft>, StampError> {
    let documents = directory_applications(dir)?;
    if documents.is_empty() {
        return Ok(None);
    }
    let root = source_root
        .map(Path::to_path_buf)
        .or_else(|| {
            dir.ancestors()
                .find(|a| a.join(".git").exists())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| dir.to_path_buf());
    let remotes = git_remotes(&root);
    let mut loader = Loader {
        root: &root,
        remotes: &remotes,
        problems: Vec::new(),
        warnings: Vec::new(),
        entries: Vec::new(),
        projects: directory_documents(dir, is_project)?,
        kept: BTreeMap::new(),
        flux_sources: Vec::new(),
    };
    for d in &documents {
        loader.expand(d, 0)?;
    }
    let Loader {
        mut entries,
        problems,
        mut warnings,
        projects,
        kept,
        flux_sources,
        ..
    } = loader;
    // Each kept project must be one the layout defines; otherwise the entry runs in `default`.
    let defined: Vec<String> = projects.iter().map(|p| p.name().to_string()).collect();
    let mut argo = crate::stamp::ArgoKept::default();
    for (entry, (project, options, file)) in kept {
        let project = if project == "default" || defined.contains(&project) {
            project
        } else {
            warnings.push(Problem::new(
                &file,
                Some(&entry),
                "spec.project",
                format!("project '{project}' is not defined in the layout; the entry runs in project default"),
                "put its AppProject in the bootstrap directory or beside the Applications",
            ));
            "default".to_string()
        };
        argo.entries.insert(entry, (project, options));
    }
    argo.projects = projects
        .iter()
        .map(|p| rewrite_source_repos(&p.value, &remotes))
        .collect();
    // Each wave waits for the one before it.
    let waves: Vec<i64> = {
        let mut w: Vec<i64> = entries.iter().map(|(wave, _)| *wave).collect();
        w.sort_unstable();
        w.dedup();
        w
    };
    let by_wave: BTreeMap<i64, Vec<String>> =
        entries.iter().fold(BTreeMap::new(), |mut m, (w, e)| {
            m.entry(*w).or_insert_with(Vec::new).push(e.name.clone());
            m
        });
    for (wave, entry) in &mut entries {
        let position = waves.iter().position(|w| w == wave).unwrap_or(0);
        if position > 0 {
            entry.depends_on = by_wave[&waves[position - 1]].clone();
        }
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "apps".to_string());
    Ok(Some(Draft {
        stamp: Stamp {
            name,
            description: Some(format!("Argo CD Applications in {}", dir.display())),
            format: StampFormat::Argo,
            dir: dir.to_path_buf(),
            file: documents[0].file.clone(),
            repo_root: root,
            ignore: Vec::new(),
            entries: entries.into_iter().map(|(_, e)| e).collect(),
            secrets: Vec::new(),
            storage: Vec::new(),
            graph: Graph::default(),
            warnings,
            argo,
            flux_sources,
            own_objects_namespace: None,
            shared_cluster: false,
        },
        problems,
        dropped: Vec::new(),
    }))
}

/// The Applications of a directory: the files its kustomization.yaml lists, else its YAML
/// files (not below it: a path's subdirectories are other Applications' business).
fn directory_applications(dir: &Path) -> Result<Vec<Document>, StampError> {
    directory_documents(dir, is_application)
}

/// An AppProject with `sourceRepos` naming this repository also naming the env's Gitea
/// (`env-gitea` is filled in when rendered for an env: [`GITEA_SOURCE_REPO`]).
fn rewrite_source_repos(project: &Value, remotes: &[String]) -> Value {
    let mut project = project.clone();
    if let Some(repos) = project["spec"]["sourceRepos"].as_array_mut()
        && repos.iter().any(|r| {
            r.as_str()
                .is_some_and(|r| remotes.contains(&normalize_url(r)))
        })
        && !repos.iter().any(|r| r == GITEA_SOURCE_REPO)
    {
        repos.push(Value::String(GITEA_SOURCE_REPO.to_string()));
    }
    project
}

/// Placeholder for the env's repository URL in a kept AppProject's `sourceRepos`, replaced
/// by the render (which knows the env's Gitea).
pub const GITEA_SOURCE_REPO: &str = "kindling:gitea-repository";

/// The documents of a directory that `keep` selects, read as [`directory_applications`] reads.
fn directory_documents(
    dir: &Path,
    keep: fn(&Document) -> bool,
) -> Result<Vec<Document>, StampError> {
    let files: Vec<PathBuf> = match super::manifests::kustomization_file(dir) {
        Some(k) => super::manifests::kustomization_resources(&k)?
            .into_iter()
            .map(|r| dir.join(r))
            .filter(|p| p.is_file())
            .collect(),
        None => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| StampError::io(dir, e))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            files.sort();
            files
        }
    };
    let mut documents = Vec::new();
    for file in files {
        documents.extend(
            parse_documents(&file, &read_text(&file)?)?
                .into_iter()
                .filter(keep),
        );
    }
    Ok(documents)
}

/// The repository's Git remotes, normalized (`github.com/team/apps`).
fn git_remotes(root: &Path) -> Vec<String> {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "safe.directory=*",
            "config",
            "--get-regexp",
            r"^remote\..*\.url$",
        ])
        .current_dir(root)
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(normalize_url)
        .collect()
}

/// A Git URL without scheme, user, port-less `:` of scp syntax, trailing `/` and `.git`:
/// `https://github.com/team/apps.git` and `git@github.com:team/apps` are the same.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    let rest = if url.contains("://") {
        rest.to_string()
    } else {
        rest.replacen(':', "/", 1)
    };
    rest.trim_end_matches('/')
        .trim_end_matches(".git")
        .to_lowercase()
}

struct Loader<'a> {
    root: &'a Path,
    remotes: &'a [String],
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    entries: Vec<(i64, Entry)>,
    /// The AppProjects of the directories read.
    projects: Vec<Document>,
    /// GitRepositories for Applications on other repositories (for Flux).
    flux_sources: Vec<Value>,
    /// Entry → (project, sync options, the file declaring it).
    kept: BTreeMap<String, (String, Vec<String>, PathBuf)>,
}

impl Loader<'_> {
    fn expand(&mut self, d: &Document, depth: usize) -> Result<(), StampError> {
        let name = d.name().to_string();
        let spec = &d.value["spec"];
        let problem = |field: &str, message: String, help: &str| {
            Problem::new(&d.file, Some(&name), field, message, help)
        };
        if spec["sources"].as_array().is_some_and(|s| !s.is_empty()) {
            self.problems.push(problem(
                "spec.sources",
                "several sources are not translated yet".into(),
                "give the Application one `source`",
            ));
            return Ok(());
        }
        let source = &spec["source"];
        let repo_url = source["repoURL"].as_str().unwrap_or_default();
        let wave = d.value["metadata"]["annotations"][WAVE]
            .as_str()
            .and_then(|w| w.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let project = spec["project"].as_str().unwrap_or("default").to_string();
        let sync_options: Vec<String> = spec["syncPolicy"]["syncOptions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str().map(str::to_string))
            .collect();
        let namespace = spec["destination"]["namespace"]
            .as_str()
            .map(str::to_string);
        let entry = |source: Source| Entry {
            name: name.clone(),
            role: Role::Application,
            source,
            namespace: namespace.clone(),
            depends_on: Vec::new(),
            health_checks: Vec::new(),
            timeout: None,
            wait: true,
            prune: spec["syncPolicy"]["automated"]["prune"] == true,
            interval: None,
            retry_interval: None,
            group: None,
            declared_in: d.file.clone(),
            labels: BTreeMap::new(),
            manual_gate: false,
            applied_directly: false,
        };
        if let Some(chart) = source["chart"].as_str() {
            let values = match (
                &source["helm"]["valuesObject"],
                source["helm"]["values"].as_str(),
            ) {
                (Value::Object(m), _) => m.clone(),
                (_, Some(text)) => {
                    serde_yaml_ng::from_str::<Map<String, Value>>(text).unwrap_or_default()
                }
                _ => Map::new(),
            };
            self.kept.insert(
                name.clone(),
                (project.clone(), sync_options.clone(), d.file.clone()),
            );
            self.entries.push((
                wave,
                entry(Source::Helm(HelmChart {
                    repo: repo_url.to_string(),
                    chart: chart.to_string(),
                    version: source["targetRevision"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    release_name: source["helm"]["releaseName"].as_str().map(str::to_string),
                    values,
                    plain_http: false,
                })),
            ));
            return Ok(());
        }
        if !self.remotes.iter().any(|r| *r == normalize_url(repo_url)) {
            // Another repository stays where it is: Argo CD reads it from there, and on Flux
            // a GitRepository on it (at the Application's revision) feeds the entry.
            let revision = source["targetRevision"].as_str().unwrap_or("HEAD");
            let reference =
                if revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
                    serde_json::json!({"commit": revision})
                } else if revision == "HEAD" || revision.is_empty() {
                    // Flux needs a named reference where Argo CD follows the default branch.
                    self.warnings.push(problem(
                    "spec.source.targetRevision",
                    format!(
                        "'{revision}' on {repo_url}: on Flux the GitRepository follows branch main"
                    ),
                    "name the branch, tag or commit to follow",
                ));
                    serde_json::json!({"branch": "main"})
                } else if revision.starts_with('v')
                    && revision[1..].starts_with(|c: char| c.is_ascii_digit())
                {
                    serde_json::json!({"tag": revision})
                } else {
                    serde_json::json!({"branch": revision})
                };
            let object = serde_json::json!({
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                // In the namespace of the env's Flux objects, which rendering fills in.
                "metadata": {"name": name},
                "spec": {"interval": "10m", "url": repo_url, "ref": reference},
            });
            self.flux_sources.push(object.clone());
            self.kept
                .insert(name.clone(), (project, sync_options, d.file.clone()));
            self.entries.push((
                wave,
                entry(Source::Remote(crate::stamp::RemoteSource {
                    kind: "GitRepository".into(),
                    name: name.clone(),
                    object,
                    path: match source["path"]
                        .as_str()
                        .unwrap_or(".")
                        .trim_start_matches("./")
                    {
                        "." | "" => String::new(),
                        p => p.trim_end_matches('/').to_string(),
                    },
                })),
            ));
            return Ok(());
        }
        let path = source["path"].as_str().unwrap_or(".");
        let host_dir = normalize(&self.root.join(path.trim_start_matches("./")));
        let Some(repo_path) = repo_relative(self.root, &host_dir) else {
            self.problems.push(problem(
                "spec.source.path",
                format!("'{path}' is outside the repository {}", self.root.display()),
                "paths are relative to the repository root",
            ));
            return Ok(());
        };
        // App-of-apps: the Applications it would apply are the entries (and its
        // AppProjects, kept).
        let children = if host_dir.is_dir() {
            self.projects
                .extend(directory_documents(&host_dir, is_project)?);
            directory_applications(&host_dir)?
        } else {
            Vec::new()
        };
        if !children.is_empty() {
            if depth >= MAX_NESTING {
                self.problems.push(problem(
                    "spec.source.path",
                    "app-of-apps nest more than 8 levels deep".into(),
                    "check for an Application whose path leads back to itself",
                ));
                return Ok(());
            }
            for child in &children {
                self.expand(child, depth + 1)?;
            }
            return Ok(());
        }
        self.kept
            .insert(name.clone(), (project, sync_options, d.file.clone()));
        self.entries.push((
            wave,
            entry(Source::Path(PathSource {
                repo_path,
                host_dir,
            })),
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_compare_across_spellings() {
        for url in [
            "https://github.com/Team/apps.git",
            "git@github.com:team/apps",
            "ssh://git@github.com/team/apps/",
        ] {
            assert_eq!(normalize_url(url), "github.com/team/apps", "{url}");
        }
    }
}
