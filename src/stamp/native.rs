//! kindling's own stamp format: `stamps/NAME/stamp.yaml`, `kind: Stamp`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::manifests::read_text;
use super::storage::{self, StorageDirFile};
use super::{
    BootstrapSecret, Draft, Entry, GeneratorKind, Graph, HealthCheck, HelmChart, PathSource,
    Problem, Role, SecretGenerator, SecretKey, SecretValue, Source, Stamp, StampError, StampFormat,
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
    #[serde(default)]
    storage: Vec<StorageDirFile>,
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
    /// How often the engine reconciles the entry, putting back what was changed by hand
    /// (Flux `interval`; Argo CD reconciles every Application on its controller's own
    /// timer).
    #[serde(default)]
    interval: Option<String>,
    /// How soon the engine tries again after a failure (Flux `retryInterval`).
    #[serde(default)]
    retry_interval: Option<String>,
    #[serde(default)]
    wait: Option<bool>,
    /// `manual`: reconciliation stops before this entry until `env approve ENV ENTRY`.
    #[serde(default)]
    gate: Option<String>,
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
    #[serde(default)]
    plain_http: bool,
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
    /// A [`GeneratorKind`] name; read as text so an unknown one is reported with the known ones.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    length: Option<usize>,
}

/// Every schema problem of a stamp.yaml, each part checked on its own: unknown fields (all of
/// them), missing required fields and wrong types, per entry and per secret.
mod schema {
    use std::path::Path;

    use serde::de::DeserializeOwned;
    use serde_yaml_ng::{Mapping, Value};

    use super::{EntryFile, HelmFile, Metadata, Problem, SecretFile, StorageDirFile};

    // The fields of each part, as the structs above declare them (camelCase).
    const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
    const REQUIRED_TOP: &[&str] = &["apiVersion", "kind", "metadata"];
    const SPEC: &[&str] = &["ignore", "components", "applications", "secrets", "storage"];
    const ENTRY: &[&str] = &[
        "name",
        "path",
        "helm",
        "namespace",
        "dependsOn",
        "healthChecks",
        "timeout",
        "interval",
        "retryInterval",
        "wait",
    ];
    const HELM: &[&str] = &[
        "repo",
        "chart",
        "version",
        "releaseName",
        "values",
        "plainHttp",
    ];

    struct Check<'a> {
        file: &'a Path,
        problems: Vec<Problem>,
    }

    impl Check<'_> {
        fn problem(&mut self, entry: Option<&str>, field: &str, message: String, help: String) {
            self.problems
                .push(Problem::new(self.file, entry, field, message, help));
        }

        /// The mapping at `at`, with its unknown keys reported and left out.
        fn mapping(
            &mut self,
            value: &Value,
            known: &[&str],
            entry: Option<&str>,
            at: &str,
        ) -> Option<Mapping> {
            let Some(map) = value.as_mapping() else {
                self.problem(
                    entry,
                    at,
                    format!("must be a mapping, not {}", kind_of(value)),
                    format!("give {at} as `key: value` lines"),
                );
                return None;
            };
            let mut kept = Mapping::new();
            for (key, v) in map {
                let name = key.as_str().unwrap_or_default();
                if known.contains(&name) {
                    kept.insert(key.clone(), v.clone());
                    continue;
                }
                // An empty or non-string key (`"": x`, `~: x`, a stray `&anchor` line) still
                // gets a name the error can show.
                let name = match key.as_str() {
                    Some(s) if !s.is_empty() => s.to_string(),
                    Some(_) => "\"\"".to_string(),
                    None => format!("({} key)", kind_of(key)),
                };
                let field = if at.is_empty() {
                    name.clone()
                } else {
                    format!("{at}.{name}")
                };
                self.problem(
                    entry,
                    &field,
                    format!("unknown field `{name}`"),
                    format!("known fields here: {}", known.join(", ")),
                );
            }
            Some(kept)
        }

        /// `value` as a `T`; a problem at `at` when it is not one.
        fn part<T: DeserializeOwned>(&mut self, value: Value, entry: Option<&str>, at: &str) {
            if let Err(e) = serde_yaml_ng::from_value::<T>(value) {
                self.problem(
                    entry,
                    at,
                    e.to_string(),
                    "see the stamp format in the README".to_string(),
                );
            }
        }
    }

    fn kind_of(value: &Value) -> &'static str {
        match value {
            Value::Null => "empty",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
            Value::Tagged(_) => "a tagged value",
        }
    }

    pub(super) fn problems(file: &Path, value: &Value) -> Vec<Problem> {
        let mut check = Check {
            file,
            problems: Vec::new(),
        };
        let Some(top) = check.mapping(value, TOP, None, "") else {
            return check.problems;
        };
        for required in REQUIRED_TOP {
            if !top.contains_key(*required) {
                check.problem(
                    None,
                    required,
                    format!("missing field `{required}`"),
                    "a stamp starts with apiVersion, kind and metadata".to_string(),
                );
            }
        }
        for scalar in ["apiVersion", "kind"] {
            if let Some(v) = top.get(scalar) {
                check.part::<String>(v.clone(), None, scalar);
            }
        }
        if let Some(metadata) = top.get("metadata") {
            check.part::<Metadata>(metadata.clone(), None, "metadata");
        }
        let Some(spec) = top.get("spec") else {
            return check.problems;
        };
        if spec.is_null() {
            return check.problems;
        }
        let Some(spec) = check.mapping(spec, SPEC, None, "spec") else {
            return check.problems;
        };
        if let Some(ignore) = spec.get("ignore") {
            check.part::<Vec<String>>(ignore.clone(), None, "spec.ignore");
        }
        for list in ["components", "applications"] {
            let Some(items) = spec.get(list) else {
                continue;
            };
            let at = format!("spec.{list}");
            let Some(items) = items.as_sequence() else {
                check.part::<Vec<EntryFile>>(items.clone(), None, &at);
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let at = format!("{at}[{i}]");
                let name = item.get("name").and_then(Value::as_str).map(str::to_string);
                let entry = name.as_deref();
                let Some(mut kept) = check.mapping(item, ENTRY, entry, &at) else {
                    continue;
                };
                if let Some(helm) = kept.get("helm").cloned() {
                    let helm_at = format!("{at}.helm");
                    if let Some(helm) = check.mapping(&helm, HELM, entry, &helm_at) {
                        check.part::<HelmFile>(Value::Mapping(helm), entry, &helm_at);
                    }
                    // Checked above; the entry's other fields are checked without it.
                    kept.remove("helm");
                }
                // Each field on its own (beside the name, the one field an entry requires),
                // so that every wrong field is named.
                let name_value = kept.get("name").cloned();
                match &name_value {
                    None => check.problem(
                        None,
                        &at,
                        "missing field `name`".to_string(),
                        "every entry has a name".to_string(),
                    ),
                    Some(v) => check.part::<String>(v.clone(), entry, &format!("{at}.name")),
                }
                for (key, v) in &kept {
                    let Some(field) = key.as_str().filter(|k| *k != "name") else {
                        continue;
                    };
                    let mut alone = Mapping::new();
                    alone.insert("name".into(), "x".into());
                    alone.insert(key.clone(), v.clone());
                    check.part::<EntryFile>(Value::Mapping(alone), entry, &format!("{at}.{field}"));
                }
            }
        }
        if let Some(secrets) = spec.get("secrets") {
            match secrets.as_sequence() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let name = item.get("name").and_then(Value::as_str);
                        check.part::<SecretFile>(item.clone(), name, &format!("spec.secrets[{i}]"));
                    }
                }
                None => check.part::<Vec<SecretFile>>(secrets.clone(), None, "spec.secrets"),
            }
        }
        if let Some(storage) = spec.get("storage") {
            match storage.as_sequence() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("spec.storage[{i}]");
                        check.part::<StorageDirFile>(item.clone(), None, &at);
                    }
                }
                None => check.part::<Vec<StorageDirFile>>(storage.clone(), None, "spec.storage"),
            }
        }
        check.problems
    }
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
    let parsed: StampFile = match serde_yaml_ng::from_str(&text) {
        Ok(parsed) => parsed,
        Err(e) => {
            // serde stops at the first mistake; when the YAML itself is well formed, each
            // part is checked on its own so that every schema problem is reported at once.
            let value = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text);
            let problems = value
                .as_ref()
                .map(|v| schema::problems(file, v))
                .unwrap_or_default();
            if problems.is_empty() {
                return Err(StampError::yaml_in(file, &e, &text));
            }
            let stamp = value
                .ok()
                .and_then(|v| v.get("metadata")?.get("name")?.as_str().map(str::to_string))
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| dir.file_name().unwrap_or_default().to_string_lossy().into());
            return Err(StampError::Invalid { stamp, problems });
        }
    };
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
    let storage = storage::check(
        file,
        "spec.storage",
        parsed.spec.storage,
        storage::Naming::Native {
            stamp: &parsed.metadata.name,
        },
        &mut problems,
    );
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
            storage,
            graph: Graph::default(),
            warnings: Vec::new(),
            argo: Default::default(),
            flux_sources: Vec::new(),
            own_objects_namespace: None,
            shared_cluster: false,
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
            plain_http: h.plain_http,
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
    let manual_gate = match e.gate.as_deref() {
        None => false,
        Some("manual") => true,
        Some(other) => {
            problems.push(Problem::new(
                file,
                Some(&e.name),
                "gate",
                format!("'{other}' is not a gate"),
                "write `gate: manual` (reconciliation waits for `kindling env approve ENV ENTRY`), or leave it out",
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
        interval: e.interval,
        retry_interval: e.retry_interval,
        group: None,
        declared_in: file.to_path_buf(),
        labels: Default::default(),
        manual_gate,
        applied_directly: false,
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
            let generator = generator(file, &s.name, &k.key, g, problems);
            sources.push(SecretValue::Generate(generator));
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
                "give exactly one of `value`, `generate: {type: T, length: N}`, `fromFile: PATH` or `fromEnv: VAR`",
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
        through_vault: false,
    }
}

/// The generator `generate: {type, length}` asks for; without `type`, the one kindling has
/// always used (so values stored for existing envs still fit). An unknown type is a problem
/// listing the known ones (the key keeps the default, so no follow-on problem appears).
fn generator(
    file: &Path,
    secret: &str,
    key: &str,
    g: Generate,
    problems: &mut Vec<Problem>,
) -> SecretGenerator {
    let kind = match g.kind.as_deref() {
        None => GeneratorKind::Unambiguous,
        Some(name) => GeneratorKind::from_name(name).unwrap_or_else(|| {
            problems.push(Problem::new(
                file,
                None,
                format!("spec.secrets[{secret}].keys[{key}].generate.type"),
                format!("'{name}' is not a generator kindling knows"),
                format!(
                    "known types: {} (without `type`: unambiguous)",
                    GeneratorKind::known_names()
                ),
            ));
            GeneratorKind::Unambiguous
        }),
    };
    SecretGenerator::new(kind, g.length)
}
