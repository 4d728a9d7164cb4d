//! Loading an unchanged HostK8s stack (`software/stacks/NAME/`) into the stamp model.
//!
//! A stack is a set of Flux Kustomizations (`stack.yaml`, listed by the stack's
//! `kustomization.yaml`) with `dependsOn` and `healthChecks`. A Kustomization whose path holds
//! Kustomizations itself (a HostK8s component such as `certs`: manager → ca → issuer) is
//! flattened: its children become entries, the roots among them inherit the parent's
//! dependencies, and whatever depended on the parent depends on the children nobody else in the
//! group depends on. `${VAR}` placeholders are filled in as HostK8s' Makefile does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::manifests::{
    Document, directory_documents, kustomization_file, kustomization_resources, parse_documents,
    read_text,
};
use super::{
    BootstrapSecret, Draft, Entry, Graph, HealthCheck, PathSource, Problem, Role, SecretKey,
    SecretValue, Source, Stamp, StampError, StampFormat, normalize, repo_relative,
};

pub mod app;
pub(crate) mod extension;
mod flatten;
pub(crate) mod flux_cluster;
mod secrets;
mod storage;

use flatten::Flattener;
use secrets::load_secret_contract;
use storage::load_storage_contract;

const FLUX_KUSTOMIZE_GROUP: &str = "kustomize.toolkit.fluxcd.io";
const FLUX_SOURCE_GROUP: &str = "source.toolkit.fluxcd.io";
/// Nested components deeper than this are certainly a cycle of paths.
const MAX_NESTING: usize = 8;

/// Loads the stack in `dir` (or the stack file `file`); `Ok(None)` when it is not a HostK8s
/// stack at all.
pub fn load(dir: &Path, file: Option<&Path>) -> Result<Option<Draft>, StampError> {
    let Some(stack_files) = stack_files(dir, file)? else {
        return Ok(None);
    };
    let layout = Layout::of(dir);
    let mut problems = Vec::new();
    let mut documents = Vec::new();
    for f in &stack_files {
        documents.extend(read_substituted(f, &layout.vars, &mut problems)?);
    }
    let kustomizations: Vec<&Document> = documents
        .iter()
        .filter(|d| is_flux_kustomization(d))
        .collect();
    if kustomizations.is_empty() {
        return Ok(None);
    }
    let ignore = ignore_patterns(&documents, &layout, &mut problems)?;

    let own_sources = extension::own_sources(&documents, &layout.stack_path);
    let mut entries = Flattener {
        root: &layout.root,
        stack_dir: dir,
        own_sources: &own_sources,
        vars: &layout.vars,
        problems: &mut problems,
        replaced: HashMap::new(),
        entries: Vec::new(),
    }
    .run(&kustomizations)?;
    // Components first, as in kindling's own format, keeping declaration order within each.
    entries.sort_by_key(|e| e.role == Role::Application);

    let mut warnings = Vec::new();
    let secrets = load_secret_contract(dir, &mut problems, &mut warnings)?;
    let storage = load_storage_contract(dir, &layout.stack_path, &mut problems)?;
    let stamp_file = stack_files[0].clone();
    Ok(Some(Draft {
        stamp: Stamp {
            name: layout.name.clone(),
            description: Some(format!(
                "HostK8s stack software/stacks/{}",
                layout.stack_path
            )),
            format: StampFormat::Hostk8s,
            dir: dir.to_path_buf(),
            file: stamp_file,
            repo_root: layout.root,
            ignore,
            entries,
            secrets,
            storage,
            graph: Graph::default(),
            warnings,
            argo: Default::default(),
            flux_sources: Vec::new(),
            own_objects_namespace: None,
            shared_cluster: false,
        },
        problems,
        dropped: Vec::new(),
    }))
}

/// The `ignore` patterns of the stack's GitRepositories (and of the shared ones beside the
/// stacks); anything else in a stack file that is not a Flux Kustomization is a problem.
fn ignore_patterns(
    documents: &[Document],
    layout: &Layout,
    problems: &mut Vec<Problem>,
) -> Result<Vec<String>, StampError> {
    let mut ignore = Vec::new();
    for d in documents {
        if is_flux_kustomization(d) {
            continue;
        }
        if d.group() == FLUX_SOURCE_GROUP && d.kind() == "GitRepository" {
            add_ignore_lines(d, &mut ignore);
        } else {
            problems.push(Problem::new(
                &d.file,
                None,
                format!("{} '{}'", d.kind(), d.name()),
                "is not a Flux Kustomization; a stack file should hold only those",
                "move this object into a component or application directory",
            ));
        }
    }
    // HostK8s keeps the GitRepositories of the stack and of the shared components beside the
    // stacks; their ignore patterns decide what the engine sees of the repository.
    for shared in ["source-stack.yaml", "source-component.yaml"] {
        let path = layout.root.join("software/stacks").join(shared);
        if path.is_file() {
            for d in read_substituted(&path, &layout.vars, problems)? {
                if d.kind() == "GitRepository" {
                    add_ignore_lines(&d, &mut ignore);
                }
            }
        }
    }
    Ok(ignore)
}

/// Where the stack sits in its repository, and the values of HostK8s' placeholders.
struct Layout {
    name: String,
    root: PathBuf,
    stack_path: String,
    vars: BTreeMap<&'static str, String>,
}

impl Layout {
    fn of(dir: &Path) -> Layout {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "stack".to_string());
        // HostK8s paths are relative to the repository that holds `software/stacks/`.
        let (root, stack_path) = dir
            .ancestors()
            .find_map(|a| {
                let rest = dir.strip_prefix(a.join("software/stacks")).ok()?;
                Some((a.to_path_buf(), rest.to_string_lossy().into_owned()))
            })
            .unwrap_or_else(|| (dir.to_path_buf(), name.clone()));
        let vars = BTreeMap::from([
            ("SOFTWARE_STACK", name.clone()),
            ("SOFTWARE_STACK_PATH", stack_path.clone()),
            // The repositories are replaced by kindling's own GitRepository when rendering;
            // these values only keep the placeholders from being reported as unknown.
            ("GITOPS_REPO", "kindling://source".to_string()),
            ("GITOPS_BRANCH", "main".to_string()),
            ("COMPONENTS_REPO", "kindling://source".to_string()),
            ("COMPONENTS_BRANCH", "main".to_string()),
        ]);
        Layout {
            name,
            root,
            stack_path,
            vars,
        }
    }
}

/// The files that declare the stack: the given file, else the files the stack's
/// kustomization.yaml lists, else `stack.yaml`, else a `stamp.yaml` of Flux objects.
fn stack_files(dir: &Path, file: Option<&Path>) -> Result<Option<Vec<PathBuf>>, StampError> {
    if let Some(f) = file {
        return Ok(Some(vec![f.to_path_buf()]));
    }
    if let Some(k) = kustomization_file(dir) {
        let files: Vec<PathBuf> = kustomization_resources(&k)?
            .into_iter()
            .map(|r| dir.join(r))
            .filter(|p| p.is_file())
            .collect();
        if !files.is_empty() {
            return Ok(Some(files));
        }
    }
    for name in ["stack.yaml", "stamp.yaml"] {
        if dir.join(name).is_file() {
            return Ok(Some(vec![dir.join(name)]));
        }
    }
    Ok(None)
}

fn read_substituted(
    file: &Path,
    vars: &BTreeMap<&'static str, String>,
    problems: &mut Vec<Problem>,
) -> Result<Vec<Document>, StampError> {
    let text = read_text(file)?;
    let text = substitute(&text, vars, file, problems);
    parse_documents(file, &text)
}

/// Fills `${VAR}`, `${VAR:=default}` and `${VAR:-default}` like Flux's post-build
/// substitution. Unknown variables without a default are reported and left in place.
pub(crate) fn substitute(
    text: &str,
    vars: &BTreeMap<&'static str, String>,
    file: &Path,
    problems: &mut Vec<Problem>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = &after[..end];
        let (name, default) = match expr.find(":=").or_else(|| expr.find(":-")) {
            Some(i) => (&expr[..i], Some(&expr[i + 2..])),
            None => (expr, None),
        };
        match (vars.get(name), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                problems.push(Problem::new(
                    file,
                    None,
                    format!("${{{name}}}"),
                    "is not a placeholder kindling fills in",
                    format!(
                        "use one of {} or give a default: ${{{name}:=value}}",
                        vars.keys().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
                out.push_str(&rest[start..start + 2 + end + 1]);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn is_flux_kustomization(d: &Document) -> bool {
    d.group() == FLUX_KUSTOMIZE_GROUP && d.kind() == "Kustomization"
}

fn add_ignore_lines(d: &Document, ignore: &mut Vec<String>) {
    let Some(text) = d.value.pointer("/spec/ignore").and_then(Value::as_str) else {
        return;
    };
    for line in text.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with('#') && !ignore.iter().any(|l| l == line) {
            ignore.push(line.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flatten::resolve_dependencies;

    fn vars() -> BTreeMap<&'static str, String> {
        BTreeMap::from([("SOFTWARE_STACK", "sample".to_string())])
    }

    #[test]
    fn hostk8s_substitute_fills_known_placeholders_and_defaults() {
        let mut problems = Vec::new();
        let out = substitute(
            "name: bootstrap-${SOFTWARE_STACK}\nbranch: ${BRANCH:=main} ${X:-y}",
            &vars(),
            Path::new("f.yaml"),
            &mut problems,
        );
        assert_eq!(out, "name: bootstrap-sample\nbranch: main y");
        assert!(problems.is_empty());
    }

    #[test]
    fn hostk8s_substitute_reports_unknown_placeholder() {
        let mut problems = Vec::new();
        let out = substitute("a: ${NOPE} ${", &vars(), Path::new("f.yaml"), &mut problems);
        assert_eq!(out, "a: ${NOPE} ${");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "${NOPE}");
        assert!(problems[0].help.contains("SOFTWARE_STACK"));
    }

    #[test]
    fn hostk8s_dependencies_on_flattened_parents_resolve_transitively() {
        let replaced = HashMap::from([
            (
                "outer".to_string(),
                vec!["inner".to_string(), "leaf-a".to_string()],
            ),
            ("inner".to_string(), vec!["leaf-b".to_string()]),
        ]);
        let deps = vec!["x".to_string(), "outer".to_string(), "leaf-b".to_string()];
        assert_eq!(
            resolve_dependencies(&deps, &replaced),
            ["x", "leaf-b", "leaf-a"]
        );
    }
}
