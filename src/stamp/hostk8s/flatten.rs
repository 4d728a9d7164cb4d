//! A stack's Flux Kustomizations as stamp entries: a Kustomization whose path holds
//! Kustomizations itself (a HostK8s component) is flattened into its children, with the
//! dependencies rewired around it.

// The loader's helpers and types are this part's too.
use super::*;

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

pub(super) struct Flattener<'a> {
    pub(super) root: &'a Path,
    /// The stack's own directory, the root of the paths of its own sources.
    pub(super) stack_dir: &'a Path,
    /// An extension stack's own GitRepositories (`extension::own_sources`), whose paths are
    /// relative to the stack's directory; every other source's are relative to `root`.
    pub(super) own_sources: &'a std::collections::BTreeSet<String>,
    pub(super) vars: &'a BTreeMap<&'static str, String>,
    pub(super) problems: &'a mut Vec<Problem>,
    /// A flattened parent's name → the names that stand in for it as a dependency.
    pub(super) replaced: HashMap<String, Vec<String>>,
    pub(super) entries: Vec<Entry>,
}

impl Flattener<'_> {
    /// Every Kustomization of `kustomizations` as entries, dependencies on flattened parents
    /// replaced by their stand-ins.
    pub(super) fn run(mut self, kustomizations: &[&Document]) -> Result<Vec<Entry>, StampError> {
        for k in kustomizations {
            self.expand(k, None, None, &Default::default(), 0)?;
        }
        let Flattener {
            replaced,
            mut entries,
            ..
        } = self;
        for entry in &mut entries {
            entry.depends_on = resolve_dependencies(&entry.depends_on, &replaced);
        }
        Ok(entries)
    }

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
    pub(super) fn expand(
        &mut self,
        doc: &Document,
        parent: Option<&str>,
        inherited_role: Option<Role>,
        inherited_labels: &BTreeMap<String, String>,
        depth: usize,
    ) -> Result<Vec<String>, StampError> {
        let Some(k) = self.parse(doc) else {
            return Ok(Vec::new());
        };
        let name = k.metadata.name.clone();
        // HostK8s's own labels (`hostk8s.stack`, `hostk8s.type`, …), which its scripts select
        // by (infra/scripts/deploy-stack.py: `kubectl get kustomizations -l
        // hostk8s.stack=NAME`); a component's entries carry the component's.
        let mut labels = inherited_labels.clone();
        labels.extend(
            k.metadata
                .labels
                .iter()
                .filter(|(key, _)| key.starts_with("hostk8s."))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
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
        let base = if self.own_sources.contains(&k.spec.source_ref.name) {
            self.stack_dir
        } else {
            self.root
        };
        let host_dir = normalize(&base.join(raw_path.trim_start_matches("./")));
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
            return self.flatten(doc, k, children, role, &labels, depth);
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
            labels,
            manual_gate: false,
            applied_directly: false,
        });
        Ok(vec![name])
    }

    fn flatten(
        &mut self,
        doc: &Document,
        k: FluxKustomization,
        children: Vec<Document>,
        role: Role,
        labels: &BTreeMap<String, String>,
        depth: usize,
    ) -> Result<Vec<String>, StampError> {
        let name = k.metadata.name;
        let first_child = self.entries.len();
        let mut produced = Vec::new();
        for child in &children {
            produced.extend(self.expand(child, Some(&name), Some(role), labels, depth + 1)?);
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
        let documents = directory_documents(dir, self.root)?;
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
pub(super) fn resolve_dependencies(
    deps: &[String],
    replaced: &HashMap<String, Vec<String>>,
) -> Vec<String> {
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
