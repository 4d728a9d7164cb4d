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

    let mut flattener = Flattener {
        root: &layout.root,
        vars: &layout.vars,
        problems: &mut problems,
        replaced: HashMap::new(),
        entries: Vec::new(),
    };
    for k in kustomizations {
        flattener.expand(k, None, None, 0)?;
    }
    let Flattener {
        replaced,
        mut entries,
        ..
    } = flattener;
    for entry in &mut entries {
        entry.depends_on = resolve_dependencies(&entry.depends_on, &replaced);
    }
    // Components first, as in kindling's own format, keeping declaration order within each.
    entries.sort_by_key(|e| e.role == Role::Application);

    let secrets = load_secret_contract(dir, &mut problems)?;
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
            graph: Graph::default(),
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FluxKustomization {
    metadata: FluxMetadata,
    spec: FluxKustomizationSpec,
}

#[derive(Deserialize)]
struct FluxMetadata {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FluxKustomizationSpec {
    #[serde(default)]
    path: Option<String>,
    source_ref: FluxSourceRef,
    #[serde(default)]
    depends_on: Vec<FluxDependency>,
    #[serde(default)]
    health_checks: Vec<HealthCheck>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    retry_interval: Option<String>,
    #[serde(default)]
    prune: Option<bool>,
    #[serde(default)]
    wait: Option<bool>,
    #[serde(default)]
    target_namespace: Option<String>,
    #[serde(default)]
    post_build: Option<Value>,
    #[serde(default)]
    patches: Option<Value>,
    #[serde(default)]
    components: Option<Value>,
    #[serde(default)]
    decryption: Option<Value>,
}

#[derive(Deserialize)]
struct FluxSourceRef {
    kind: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct FluxDependency {
    name: String,
}

struct Flattener<'a> {
    root: &'a Path,
    vars: &'a BTreeMap<&'static str, String>,
    problems: &'a mut Vec<Problem>,
    /// A flattened parent's name → the names that stand in for it as a dependency.
    replaced: HashMap<String, Vec<String>>,
    entries: Vec<Entry>,
}

impl Flattener<'_> {
    /// The Flux Kustomization in `doc`, or a problem saying why it cannot be read.
    fn parse(&mut self, doc: &Document) -> Option<FluxKustomization> {
        match serde_json::from_value(doc.value.clone()) {
            Ok(k) => Some(k),
            Err(e) => {
                self.problems.push(Problem::new(
                    &doc.file,
                    Some(doc.name()),
                    "Kustomization",
                    format!("cannot be read: {e}"),
                    "check it against Flux's Kustomization API (kustomize.toolkit.fluxcd.io/v1)",
                ));
                None
            }
        }
    }

    /// Turns one Flux Kustomization into entries: itself, or its children when its path holds
    /// Kustomizations. Returns the names of the entries it produced.
    fn expand(
        &mut self,
        doc: &Document,
        parent: Option<&str>,
        inherited_role: Option<Role>,
        depth: usize,
    ) -> Result<Vec<String>, StampError> {
        let Some(k) = self.parse(doc) else {
            return Ok(Vec::new());
        };
        let name = k.metadata.name.clone();
        self.report_untranslatable(&doc.file, &name, &k.spec);
        if k.spec.source_ref.kind != "GitRepository" {
            self.problems.push(Problem::new(
                &doc.file,
                Some(&name),
                "spec.sourceRef.kind",
                format!(
                    "'{}' ('{}') cannot be served by kindling's Gitea",
                    k.spec.source_ref.kind, k.spec.source_ref.name
                ),
                "point the Kustomization at a GitRepository; kindling pushes the whole source tree to one",
            ));
        }
        let raw_path = k.spec.path.clone().unwrap_or_else(|| ".".to_string());
        let host_dir = normalize(&self.root.join(raw_path.trim_start_matches("./")));
        let Some(repo_path) = repo_relative(self.root, &host_dir) else {
            self.problems.push(Problem::new(
                &doc.file,
                Some(&name),
                "spec.path",
                format!(
                    "'{raw_path}' is outside the repository {}",
                    self.root.display()
                ),
                "paths are relative to the repository root that holds software/",
            ));
            return Ok(Vec::new());
        };
        let role = inherited_role.unwrap_or_else(|| role_of(&k, &repo_path));
        let children = self.nested_kustomizations(&host_dir)?;
        if !children.is_empty() && depth < MAX_NESTING {
            return self.flatten(doc, k, children, role, depth);
        }
        if !children.is_empty() {
            self.problems.push(Problem::new(
                &doc.file,
                Some(&name),
                "spec.path",
                "components nest more than 8 levels deep",
                "check for a component whose path leads back to itself",
            ));
            return Ok(Vec::new());
        }
        self.entries.push(Entry {
            name: name.clone(),
            role,
            source: Source::Path(PathSource {
                repo_path,
                host_dir,
            }),
            namespace: k.spec.target_namespace,
            depends_on: k.spec.depends_on.into_iter().map(|d| d.name).collect(),
            health_checks: k.spec.health_checks,
            timeout: k.spec.timeout,
            wait: k.spec.wait.unwrap_or(false),
            prune: k.spec.prune.unwrap_or(false),
            interval: k.spec.interval,
            retry_interval: k.spec.retry_interval,
            group: parent.map(str::to_string),
            declared_in: doc.file.clone(),
        });
        Ok(vec![name])
    }

    fn flatten(
        &mut self,
        doc: &Document,
        k: FluxKustomization,
        children: Vec<Document>,
        role: Role,
        depth: usize,
    ) -> Result<Vec<String>, StampError> {
        let name = k.metadata.name;
        let first_child = self.entries.len();
        let mut produced = Vec::new();
        for child in &children {
            produced.extend(self.expand(child, Some(&name), Some(role), depth + 1)?);
        }
        let group: Vec<String> = produced.clone();
        let parent_dependencies: Vec<String> =
            k.spec.depends_on.into_iter().map(|d| d.name).collect();
        let mut depended_on = std::collections::HashSet::new();
        for entry in &mut self.entries[first_child..] {
            // A sibling that was itself a component stands for its own children here.
            entry.depends_on = resolve_dependencies(&entry.depends_on, &self.replaced);
            let internal = entry.depends_on.iter().any(|d| group.contains(d));
            for d in &entry.depends_on {
                depended_on.insert(d.clone());
            }
            if !internal {
                entry.depends_on.extend(parent_dependencies.iter().cloned());
            }
        }
        let sinks: Vec<String> = group
            .iter()
            .filter(|n| !depended_on.contains(*n))
            .cloned()
            .collect();
        // The parent's own health checks still have to pass: they move to its last children.
        for entry in &mut self.entries[first_child..] {
            if sinks.contains(&entry.name) {
                entry
                    .health_checks
                    .extend(k.spec.health_checks.iter().cloned());
            }
        }
        if produced.is_empty() {
            self.problems.push(Problem::new(
                &doc.file,
                Some(&name),
                "spec.path",
                "holds Kustomizations but none could be loaded",
                "fix the problems reported for its children",
            ));
        }
        self.replaced.insert(name, sinks);
        Ok(produced)
    }

    /// The Flux Kustomizations a directory holds (a HostK8s component), after placeholder
    /// substitution. Any other object beside them is reported: it would be lost when the
    /// component is flattened.
    fn nested_kustomizations(&mut self, dir: &Path) -> Result<Vec<Document>, StampError> {
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let documents = directory_documents(dir)?;
        if !documents.iter().any(is_flux_kustomization) {
            return Ok(Vec::new());
        }
        let mut nested = Vec::new();
        let mut files: Vec<PathBuf> = documents.iter().map(|d| d.file.clone()).collect();
        files.dedup();
        for file in files {
            for d in read_substituted(&file, self.vars, self.problems)? {
                if is_flux_kustomization(&d) {
                    nested.push(d);
                } else {
                    self.problems.push(Problem::new(
                        &d.file,
                        None,
                        format!("{} '{}'", d.kind(), d.name()),
                        "sits beside Flux Kustomizations in a component; kindling flattens components and cannot keep it",
                        "move it into one of the component's sub-directories",
                    ));
                }
            }
        }
        Ok(nested)
    }

    fn report_untranslatable(&mut self, file: &Path, name: &str, spec: &FluxKustomizationSpec) {
        let fields = [
            ("spec.postBuild", spec.post_build.is_some()),
            ("spec.patches", spec.patches.is_some()),
            ("spec.components", spec.components.is_some()),
            ("spec.decryption", spec.decryption.is_some()),
        ];
        for (field, present) in fields {
            if present {
                self.problems.push(Problem::new(
                    file,
                    Some(name),
                    field,
                    "is not supported by kindling's engine-neutral model",
                    "move the customisation into the kustomization.yaml of the entry's directory",
                ));
            }
        }
    }
}

fn role_of(k: &FluxKustomization, repo_path: &str) -> Role {
    match k.metadata.labels.get("hostk8s.type").map(String::as_str) {
        Some("component") => Role::Component,
        Some("application") => Role::Application,
        _ if repo_path.starts_with("software/components/") => Role::Component,
        _ => Role::Application,
    }
}

/// Replaces dependencies on flattened parents by their stand-ins, transitively, keeping order
/// and dropping duplicates.
fn resolve_dependencies(deps: &[String], replaced: &HashMap<String, Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pending: Vec<String> = deps.iter().rev().cloned().collect();
    let mut steps = 0;
    while let Some(d) = pending.pop() {
        steps += 1;
        match replaced.get(&d) {
            // The bound stops a (pathological) parent that stands in for itself.
            Some(stand_ins) if steps < 10_000 => pending.extend(stand_ins.iter().rev().cloned()),
            _ => {
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
    }
    out
}

#[derive(Deserialize)]
struct SecretContract {
    spec: SecretContractSpec,
}

#[derive(Deserialize)]
struct SecretContractSpec {
    #[serde(default)]
    secrets: Vec<ContractSecret>,
}

#[derive(Deserialize)]
struct ContractSecret {
    name: String,
    namespace: String,
    #[serde(default)]
    data: Vec<ContractKey>,
}

#[derive(Deserialize)]
struct ContractKey {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    generate: Option<String>,
    #[serde(default)]
    length: Option<usize>,
}

/// HostK8s secret contracts (`hostk8s.secrets.yaml`) become bootstrap secrets.
fn load_secret_contract(
    dir: &Path,
    problems: &mut Vec<Problem>,
) -> Result<Vec<BootstrapSecret>, StampError> {
    let file = dir.join("hostk8s.secrets.yaml");
    if !file.is_file() {
        return Ok(Vec::new());
    }
    let text = read_text(&file)?;
    let contract: SecretContract =
        serde_yaml_ng::from_str(&text).map_err(|e| StampError::yaml(&file, &e))?;
    let mut secrets = Vec::new();
    for s in contract.spec.secrets {
        let mut keys = Vec::new();
        for k in s.data {
            let value = match (k.value, k.generate.as_deref()) {
                (Some(v), None) => SecretValue::Literal(v),
                (None, Some("password" | "token" | "hex" | "random")) => SecretValue::Generate {
                    length: k.length.unwrap_or(32),
                },
                (None, Some(other)) => {
                    problems.push(Problem::new(
                        &file,
                        None,
                        format!("spec.secrets[{}].data[{}].generate", s.name, k.key),
                        format!("'{other}' is not a generator kindling knows"),
                        "use generate: password (with an optional length)",
                    ));
                    continue;
                }
                _ => {
                    problems.push(Problem::new(
                        &file,
                        None,
                        format!("spec.secrets[{}].data[{}]", s.name, k.key),
                        "needs exactly one of `value` or `generate`",
                        "give a literal `value` or `generate: password`",
                    ));
                    continue;
                }
            };
            keys.push(SecretKey { key: k.key, value });
        }
        secrets.push(BootstrapSecret {
            name: s.name,
            namespace: s.namespace,
            keys,
        });
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

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
