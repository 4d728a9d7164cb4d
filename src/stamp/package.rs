//! idpbuilder packages (`env create --package DIR`): directories of Argo CD Application and
//! ApplicationSet files whose `repoURL: cnoe://RELATIVE/PATH` means "this local directory".
//!
//! As cnoe-io/idpbuilder v0.10.1 reads them, so that packages written for it run unchanged:
//! - pkg/controllers/localbuild/controller.go `reconcileCustomPkgDir`: the top level of the
//!   directory only, regular files named `.yaml` or `.yml` (pkg/util `IsYamlFile`); the first
//!   document of each; `argoproj.io` Application or ApplicationSet (`isSupportedArgoCDTypes`),
//!   anything else ignored (kindling says so).
//! - pkg/controllers/custompackage/controller.go `getCNOEAbsPath`: the path after `cnoe://`
//!   is relative to the directory of the file naming it (`cnoe://` alone is that directory);
//!   it must be a directory ("path not a directory").
//! - `localRepoName`: one repository per directory, named `APP-BASENAME` (the Application's or
//!   ApplicationSet's name and the directory's last component); idpbuilder's Gitea repository
//!   is that name in its project namespace, kindling's is that name under its own user.
//! - `reconcileArgoCDApp`: `spec.source.repoURL` and each `spec.sources[].repoURL`; every
//!   string starting with `cnoe://` in `helm.valuesObject`, however deep (`reconcileHelmValueObject`).
//!   `reconcileArgoCDAppSet`: `generators[].git.repoURL`, one level of
//!   `generators[].matrix.generators[].git.repoURL`, and the template's sources as above.
//! - pkg/util `SetPackageLabels`: `cnoe.io/package-name` and `cnoe.io/package-type: custom`.
//!
//! Where idpbuilder silently breaks, kindling refuses with the file and field: two
//! directories of one Application with the same last component (idpbuilder's repository
//! names collide), a missing name, a YAML file that does not parse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::manifests::{parse_documents, read_text};
use super::{Problem, StampError};

fn problem(
    file: &Path,
    field: &str,
    message: impl Into<String>,
    help: impl Into<String>,
) -> Problem {
    Problem::new(file, None, field, message, help)
}

fn invalid(dir: &Path, problems: Vec<Problem>) -> StampError {
    StampError::InvalidPackage {
        dir: dir.to_path_buf(),
        problems,
    }
}

/// idpbuilder api/v1alpha1/custom_package_types.go `CNOEURIScheme`.
pub const CNOE_SCHEME: &str = "cnoe://";

/// One package directory, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    pub dir: PathBuf,
    /// The Applications and ApplicationSets, as written.
    pub objects: Vec<PackageObject>,
    /// Each directory a `cnoe://` URL names, with its repository.
    pub repositories: Vec<LocalRepository>,
    /// Files read and left alone, each with why.
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PackageObject {
    pub file: PathBuf,
    pub object: Value,
}

impl PackageObject {
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalRepository {
    /// The Gitea repository's name: `APP-BASENAME`.
    pub name: String,
    pub dir: PathBuf,
}

/// Reads a package directory as idpbuilder does.
pub fn load(dir: &Path) -> Result<Package, StampError> {
    let dir = std::fs::canonicalize(dir).map_err(|e| {
        invalid(
            dir,
            vec![problem(
                dir,
                "(directory)",
                format!("cannot read the package directory: {e}"),
                "give a directory of Argo CD Application or ApplicationSet files",
            )],
        )
    })?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| {
            invalid(
                &dir,
                vec![problem(
                    &dir,
                    "(directory)",
                    format!("cannot read the package directory: {e}"),
                    "give a directory of Argo CD Application or ApplicationSet files",
                )],
            )
        })?
        .flatten()
        // Regular files only (a symbolic link is skipped, as `file.Type().IsRegular()` does).
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut package = Package {
        dir: dir.clone(),
        objects: Vec::new(),
        repositories: Vec::new(),
        ignored: Vec::new(),
    };
    let mut problems = Vec::new();
    for file in files {
        let text = read_text(&file)?;
        let documents = parse_documents(&file, &text)?;
        let Some(first) = documents.into_iter().next() else {
            package
                .ignored
                .push(format!("{}: holds no object", file.display()));
            continue;
        };
        if first.group() != "argoproj.io"
            || !matches!(first.kind(), "Application" | "ApplicationSet")
        {
            package.ignored.push(format!(
                "{}: {} is not an Argo CD Application or ApplicationSet (idpbuilder ignores it too)",
                file.display(),
                first.kind()
            ));
            continue;
        }
        let object = first.value.clone();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            problems.push(problem(
                &file,
                "metadata.name",
                format!("{} has no name", first.kind()),
                "name it: the name also names the Gitea repositories of its cnoe:// directories",
            ));
            continue;
        }
        let mut named: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (field, url) in cnoe_urls(&object) {
            match local_directory(&file, &url) {
                Ok(local) => {
                    let base = local
                        .file_name()
                        .map(|b| b.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let repo = format!("{name}-{base}");
                    if !valid_repository_name(&repo) {
                        problems.push(problem(
                            &file,
                            &field,
                            format!("{url} gives the repository name '{repo}'"),
                            "Gitea repository names take letters, digits, '-', '_' and '.'; rename the directory or the object",
                        ));
                        continue;
                    }
                    match named.get(&repo) {
                        Some(other) if other != &local => problems.push(problem(
                            &file,
                            &field,
                            format!(
                                "{} and {} both name repository '{repo}' (APP-BASENAME, as idpbuilder names them)",
                                other.display(),
                                local.display()
                            ),
                            "give the directories different last names",
                        )),
                        _ => {
                            named.insert(repo, local);
                        }
                    }
                }
                Err(why) => problems.push(problem(
                    &file,
                    &field,
                    format!("{url}: {why}"),
                    "cnoe://PATH is relative to the directory of the file that names it",
                )),
            }
        }
        for (name, dir) in named {
            let repo = LocalRepository { name, dir };
            if !package.repositories.contains(&repo) {
                package.repositories.push(repo);
            }
        }
        package.objects.push(PackageObject { file, object });
    }
    if package.objects.is_empty() && problems.is_empty() {
        problems.push(problem(
            &dir,
            "(directory)",
            "holds no Argo CD Application or ApplicationSet file at its top level",
            "idpbuilder packages are .yaml/.yml files of kind Application or ApplicationSet",
        ));
    }
    if !problems.is_empty() {
        return Err(invalid(&package.dir, problems));
    }
    Ok(package)
}

/// Checks that no two packages give one repository name to different directories, and that
/// no two objects share a kind, namespace and name.
pub fn check_together(packages: &[Package]) -> Result<(), StampError> {
    let mut problems = Vec::new();
    let mut repos: BTreeMap<&str, &Path> = BTreeMap::new();
    let mut objects: BTreeMap<(String, String, String), &Path> = BTreeMap::new();
    for package in packages {
        for repo in &package.repositories {
            match repos.get(repo.name.as_str()) {
                Some(dir) if *dir != repo.dir => problems.push(problem(
                    &package.dir,
                    "(directory)",
                    format!(
                        "repository '{}' is named for {} and for {}",
                        repo.name,
                        dir.display(),
                        repo.dir.display()
                    ),
                    "rename one of the objects or directories",
                )),
                _ => {
                    repos.insert(&repo.name, &repo.dir);
                }
            }
        }
        for o in &package.objects {
            let key = (
                o.kind().to_string(),
                namespace_of(&o.object).to_string(),
                o.name().to_string(),
            );
            if let Some(first) = objects.insert(key, &o.file) {
                problems.push(problem(
                    &o.file,
                    "metadata.name",
                    format!(
                        "{} {} is declared in {} too",
                        o.kind(),
                        o.name(),
                        first.display()
                    ),
                    "give each Application and ApplicationSet its own name",
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid(
            packages.first().map_or(Path::new("."), |p| p.dir.as_path()),
            problems,
        ))
    }
}

/// The namespace an object goes to: its own, else Argo CD's (idpbuilder leaves it empty,
/// and Argo CD only reads Applications in its own namespace by default).
pub fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(super::render::argo::NAMESPACE)
}

fn valid_repository_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && !name.ends_with(".git")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `getCNOEAbsPath`: the directory `url` names, from the file naming it.
fn local_directory(file: &Path, url: &str) -> Result<PathBuf, String> {
    let relative = url.trim_start_matches(CNOE_SCHEME);
    let base = file.parent().unwrap_or(Path::new("."));
    let joined = base.join(relative.trim_start_matches('/'));
    let dir = std::fs::canonicalize(&joined).map_err(|e| format!("{}: {e}", joined.display()))?;
    if !dir.is_dir() {
        return Err(format!("path not a directory: {}", dir.display()));
    }
    Ok(dir)
}

/// Every `cnoe://` URL of an object, with the field that holds it.
fn cnoe_urls(object: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    visit_urls_ref(object, &mut |field, url| {
        if url.starts_with(CNOE_SCHEME) {
            found.push((field.to_string(), url.to_string()));
        }
    });
    found
}

/// Calls `f` on each URL field idpbuilder rewrites; `f` returns the replacement, if any.
fn visit_urls(object: &mut Value, f: &mut dyn FnMut(&str, &str) -> Option<String>) {
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let spec_path: &[&str] = if kind == "ApplicationSet" {
        &["spec", "template", "spec"]
    } else {
        &["spec"]
    };
    let prefix = spec_path.join(".");
    let mut spec = &mut *object;
    for k in spec_path {
        spec = &mut spec[*k];
    }
    visit_source(&mut spec["source"], &format!("{prefix}.source"), f);
    if let Some(sources) = spec["sources"].as_array_mut() {
        for (i, s) in sources.iter_mut().enumerate() {
            visit_source(s, &format!("{prefix}.sources[{i}]"), f);
        }
    }
    if kind == "ApplicationSet"
        && let Some(generators) = object["spec"]["generators"].as_array_mut()
    {
        for (i, g) in generators.iter_mut().enumerate() {
            visit_string(
                &mut g["git"]["repoURL"],
                &format!("spec.generators[{i}].git.repoURL"),
                f,
            );
            if let Some(inner) = g["matrix"]["generators"].as_array_mut() {
                for (j, m) in inner.iter_mut().enumerate() {
                    visit_string(
                        &mut m["git"]["repoURL"],
                        &format!("spec.generators[{i}].matrix.generators[{j}].git.repoURL"),
                        f,
                    );
                }
            }
        }
    }
}

fn visit_source(source: &mut Value, field: &str, f: &mut dyn FnMut(&str, &str) -> Option<String>) {
    if !source.is_object() {
        return;
    }
    visit_string(&mut source["repoURL"], &format!("{field}.repoURL"), f);
    visit_values(
        &mut source["helm"]["valuesObject"],
        &format!("{field}.helm.valuesObject"),
        f,
    );
}

fn visit_values(value: &mut Value, field: &str, f: &mut dyn FnMut(&str, &str) -> Option<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                visit_values(v, &format!("{field}.{k}"), f);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                visit_values(v, &format!("{field}[{i}]"), f);
            }
        }
        Value::String(_) => visit_string(value, field, f),
        _ => {}
    }
}

fn visit_string(value: &mut Value, field: &str, f: &mut dyn FnMut(&str, &str) -> Option<String>) {
    if let Some(url) = value.as_str().map(str::to_string)
        && let Some(new) = f(field, &url)
    {
        *value = Value::String(new);
    }
}

/// Reads `object` (immutably) through the same walk.
fn visit_urls_ref(object: &Value, f: &mut dyn FnMut(&str, &str)) {
    let mut copy = object.clone();
    visit_urls(&mut copy, &mut |field, url| {
        f(field, url);
        None
    });
}

/// The Gitea repository URL of `repository` as the engine reaches it, from the env's own
/// repository URL (same Gitea, same user).
pub fn repository_url(cluster_repo_url: &str, repository: &str) -> String {
    match cluster_repo_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{repository}.git"),
        None => format!("{repository}.git"),
    }
}

/// The labels kindling and idpbuilder put on what a package applies.
fn label(object: &mut Value, env: &str, package: &Package) {
    let name = object["metadata"]["name"].clone();
    let labels = &mut object["metadata"]["labels"];
    labels["cnoe.io/package-name"] = name;
    labels["cnoe.io/package-type"] = json!("custom");
    labels[PACKAGE_LABEL] = json!(package_label(package));
    labels[crate::ENV_LABEL] = json!(env);
}

/// The label that names the package an object came from.
pub const PACKAGE_LABEL: &str = "dev.kindling.package";

/// A package's label value: its directory's name (a label value: at most 63 characters).
pub fn package_label(package: &Package) -> String {
    let base: String = package
        .dir
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = base.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    trimmed
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The URL `url` of `object` (in `file`) becomes, for the engine.
fn rewritten(file: &Path, object: &Value, url: &str, cluster_repo_url: &str) -> Option<String> {
    if !url.starts_with(CNOE_SCHEME) {
        return None;
    }
    let dir = local_directory(file, url).ok()?;
    let base = dir.file_name()?.to_string_lossy().into_owned();
    let name = object["metadata"]["name"].as_str()?;
    Some(repository_url(cluster_repo_url, &format!("{name}-{base}")))
}

/// The objects for Argo CD: each as written, its `cnoe://` URLs pointing at kindling's Gitea,
/// in its namespace (Argo CD's when it names none), labelled.
pub fn for_argo(package: &Package, env: &str, cluster_repo_url: &str) -> Vec<Value> {
    package
        .objects
        .iter()
        .map(|o| {
            let mut object = o.object.clone();
            let original = o.object.clone();
            visit_urls(&mut object, &mut |_, url| {
                rewritten(&o.file, &original, url, cluster_repo_url)
            });
            object["metadata"]["namespace"] = json!(namespace_of(&original));
            label(&mut object, env, package);
            object
        })
        .collect()
}

/// The objects for Flux, where an Application translates: one Git source on a `cnoe://`
/// directory, to the cluster kindling runs in, becomes a GitRepository on the directory's
/// repository and a Kustomization of its path (or, where the path holds a Chart.yaml, a
/// HelmRelease of that chart, as Argo CD reads such a path as a Helm source). What does not
/// translate is a problem naming it.
pub fn for_flux(
    package: &Package,
    env: &str,
    cluster_repo_url: &str,
    credentials_secret: &str,
    namespace: &str,
) -> Result<Vec<Value>, StampError> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for o in &package.objects {
        match flux_objects(o, cluster_repo_url, credentials_secret, namespace) {
            Ok(objects) => out.extend(objects.into_iter().map(|mut object| {
                label(&mut object, env, package);
                object
            })),
            Err(why) => problems.push(problem(
                &o.file,
                &format!("{} {}", o.kind(), o.name()),
                why,
                "run this package with `--engine argo`, or write it as a kindling stamp",
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(invalid(&package.dir, problems))
    }
}

fn flux_objects(
    o: &PackageObject,
    cluster_repo_url: &str,
    credentials_secret: &str,
    namespace: &str,
) -> Result<Vec<Value>, String> {
    if o.kind() == "ApplicationSet" {
        return Err("Flux has no ApplicationSet: its generators do not translate".into());
    }
    let spec = &o.object["spec"];
    if spec["sources"].is_array() {
        return Err("several `sources`: a Flux Kustomization has one source".into());
    }
    let source = &spec["source"];
    let url = source["repoURL"].as_str().unwrap_or_default();
    if !url.starts_with(CNOE_SCHEME) {
        return Err(format!(
            "spec.source.repoURL {url}: only cnoe:// directories translate to Flux"
        ));
    }
    if source["chart"].is_string() {
        return Err("spec.source.chart: a chart from a Helm repository does not translate".into());
    }
    for unsupported in ["kustomize", "directory", "plugin"] {
        if !source[unsupported].is_null() {
            return Err(format!(
                "spec.source.{unsupported}: Argo CD's {unsupported} options do not translate"
            ));
        }
    }
    let destination = &spec["destination"];
    let in_cluster = destination["server"]
        .as_str()
        .is_none_or(|s| s == "https://kubernetes.default.svc")
        && destination["name"]
            .as_str()
            .is_none_or(|n| n == "in-cluster");
    if !in_cluster {
        return Err("spec.destination: only the cluster kindling runs in".into());
    }
    let dir = local_directory(&o.file, url)?;
    let repo_url = rewritten(&o.file, &o.object, url, cluster_repo_url).unwrap_or_default();
    let repo_name = repo_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".git")
        .to_string();
    let name = o.name();
    // `path: .` (or none) is the repository's root, `./` to Flux.
    let path = match source["path"]
        .as_str()
        .unwrap_or(".")
        .trim_start_matches("./")
    {
        "." | "" => "",
        p => p.trim_end_matches('/'),
    };
    let target_namespace = destination["namespace"].as_str();
    let automated = &spec["syncPolicy"]["automated"];
    let create_namespace = spec["syncPolicy"]["syncOptions"]
        .as_array()
        .is_some_and(|o| o.iter().any(|s| s == "CreateNamespace=true"));
    let mut objects = vec![json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": repo_name, "namespace": namespace},
        "spec": {"interval": "1m", "url": repo_url, "ref": {"branch": "main"},
                 "secretRef": {"name": credentials_secret}},
    })];
    if create_namespace && let Some(ns) = target_namespace {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    let chart_dir = dir.join(path);
    if chart_dir.join("Chart.yaml").is_file() {
        let mut release = json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "interval": "10m",
                "releaseName": source["helm"]["releaseName"].as_str().unwrap_or(name),
                "chart": {"spec": {"chart": format!("./{path}"),
                    "sourceRef": {"kind": "GitRepository", "name": repo_name}}},
            },
        });
        if let Some(ns) = target_namespace {
            release["spec"]["targetNamespace"] = json!(ns);
            release["spec"]["storageNamespace"] = json!(ns);
        }
        let values = helm_values(&o.file, &o.object, source, cluster_repo_url)?;
        if !values.is_null() {
            release["spec"]["values"] = values;
        }
        objects.push(release);
    } else {
        let mut kustomization = json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "interval": "10m",
                "path": format!("./{path}"),
                "prune": automated["prune"] == true,
                "sourceRef": {"kind": "GitRepository", "name": repo_name},
            },
        });
        if let Some(ns) = target_namespace {
            kustomization["spec"]["targetNamespace"] = json!(ns);
        }
        objects.push(kustomization);
    }
    Ok(objects)
}

/// `helm.valuesObject` (its cnoe:// strings rewritten) or `helm.values` (a YAML string).
fn helm_values(
    file: &Path,
    object: &Value,
    source: &Value,
    cluster_repo_url: &str,
) -> Result<Value, String> {
    let mut values = source["helm"]["valuesObject"].clone();
    if values.is_null()
        && let Some(text) = source["helm"]["values"].as_str()
    {
        values = serde_yaml_ng::from_str(text)
            .map_err(|e| format!("spec.source.helm.values is not YAML: {e}"))?;
    }
    visit_values(&mut values, "values", &mut |_, url| {
        rewritten(file, object, url, cluster_repo_url)
    });
    if !source["helm"]["valueFiles"].is_null() {
        return Err("spec.source.helm.valueFiles: value files do not translate".into());
    }
    Ok(values)
}

/// Each `cnoe://` URL of the package's objects with where it now points, for `--dry-run` and
/// the create report.
pub fn rewrites(package: &Package, cluster_repo_url: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for o in &package.objects {
        visit_urls_ref(&o.object, &mut |_, url| {
            if let Some(new) = rewritten(&o.file, &o.object, url, cluster_repo_url) {
                let pair = (url.to_string(), new);
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://gitea.kindling-system.svc.cluster.local:3000/kindling/source.git";

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn package() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        write(
            p,
            "app.yaml",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: my-app, namespace: argocd}\nspec:\n  project: default\n  source: {repoURL: 'cnoe://manifests', targetRevision: HEAD, path: .}\n  destination: {server: 'https://kubernetes.default.svc', namespace: demo}\n  syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}\n",
        );
        write(
            p,
            "manifests/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo}\n",
        );
        write(
            p,
            "two.yml",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: two}\nspec:\n  sources:\n    - {repoURL: 'cnoe://shared', path: one}\n    - {repoURL: 'cnoe://shared', path: two, helm: {valuesObject: {repo: 'cnoe://shared', nested: [{url: 'cnoe://shared'}]}}}\n  destination: {server: 'https://kubernetes.default.svc', namespace: demo}\n",
        );
        write(
            p,
            "shared/one/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n",
        );
        write(
            p,
            "shared/two/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n",
        );
        write(
            p,
            "set.yaml",
            "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: guestbooks, namespace: argocd}\nspec:\n  generators:\n    - git: {repoURL: 'cnoe://sets', revision: HEAD, directories: [{path: 'apps/*'}]}\n  template:\n    metadata: {name: '{{path.basename}}'}\n    spec:\n      project: default\n      source: {repoURL: 'cnoe://sets', targetRevision: HEAD, path: '{{path}}'}\n      destination: {server: 'https://kubernetes.default.svc', namespace: '{{path.basename}}'}\n",
        );
        write(
            p,
            "sets/apps/a/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        );
        write(
            p,
            "configmap.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: not-an-app}\n",
        );
        write(p, "README.md", "not yaml at all: [");
        write(
            p,
            "nested/deeper.yaml",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: never-read}\n",
        );
        dir
    }

    #[test]
    fn package_reads_the_top_level_yaml_and_names_repositories_as_idpbuilder() {
        let dir = package();
        let p = load(dir.path()).unwrap();
        let names: Vec<&str> = p.objects.iter().map(|o| o.name()).collect();
        assert_eq!(names, ["my-app", "guestbooks", "two"]);
        let repos: Vec<&str> = p.repositories.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(repos, ["my-app-manifests", "guestbooks-sets", "two-shared"]);
        assert_eq!(p.ignored.len(), 1, "{:?}", p.ignored);
        assert!(p.ignored[0].contains("ConfigMap"));
    }

    #[test]
    fn package_urls_are_rewritten_for_argo_everywhere_idpbuilder_rewrites_them() {
        let dir = package();
        let p = load(dir.path()).unwrap();
        let objects = for_argo(&p, "dev", BASE);
        let text = serde_json::to_string(&objects).unwrap();
        assert!(!text.contains("cnoe://"), "{text}");
        let url = |r: &str| {
            format!("http://gitea.kindling-system.svc.cluster.local:3000/kindling/{r}.git")
        };
        let two = objects
            .iter()
            .find(|o| o["metadata"]["name"] == "two")
            .unwrap();
        assert_eq!(
            two["spec"]["sources"][1]["helm"]["valuesObject"]["nested"][0]["url"],
            url("two-shared").as_str()
        );
        assert_eq!(two["metadata"]["namespace"], "argocd");
        assert_eq!(two["metadata"]["labels"]["cnoe.io/package-type"], "custom");
        let set = objects
            .iter()
            .find(|o| o["kind"] == "ApplicationSet")
            .unwrap();
        assert_eq!(
            set["spec"]["generators"][0]["git"]["repoURL"],
            url("guestbooks-sets").as_str()
        );
        assert_eq!(
            set["spec"]["template"]["spec"]["source"]["repoURL"],
            url("guestbooks-sets").as_str()
        );
        // The template is left for the ApplicationSet controller.
        assert_eq!(
            set["spec"]["template"]["metadata"]["name"],
            "{{path.basename}}"
        );
    }

    #[test]
    fn package_on_flux_translates_a_directory_and_refuses_the_rest_by_name() {
        let dir = package();
        let p = load(dir.path()).unwrap();
        let err = for_flux(&p, "dev", BASE, "kindling-git", "flux-system")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ApplicationSet guestbooks: Flux has no ApplicationSet"),
            "{err}"
        );
        assert!(err.contains("Application two: several `sources`"), "{err}");
        std::fs::remove_file(dir.path().join("two.yml")).unwrap();
        std::fs::remove_file(dir.path().join("set.yaml")).unwrap();
        let p = load(dir.path()).unwrap();
        // The objects go to the namespace of the env's Flux objects, where the credentials
        // Secret their `secretRef` names lives.
        let objects = for_flux(&p, "dev", BASE, "kindling-git", "kindling-dev").unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["GitRepository", "Namespace", "Kustomization"]);
        assert_eq!(objects[0]["metadata"]["namespace"], "kindling-dev");
        assert_eq!(objects[2]["metadata"]["namespace"], "kindling-dev");
        assert_eq!(
            objects[0]["spec"]["url"],
            "http://gitea.kindling-system.svc.cluster.local:3000/kindling/my-app-manifests.git"
        );
        assert_eq!(objects[2]["spec"]["targetNamespace"], "demo");
        assert_eq!(objects[2]["spec"]["prune"], true);
        assert_eq!(objects[2]["spec"]["path"], "./");
    }

    #[test]
    fn package_problems_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "app.yaml",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  source: {repoURL: 'cnoe://missing'}\n",
        );
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("app.yaml") && err.contains("spec.source.repoURL: cnoe://missing"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "app.yaml",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  sources:\n    - {repoURL: 'cnoe://x/m'}\n    - {repoURL: 'cnoe://y/m'}\n",
        );
        write(dir.path(), "x/m/cm.yaml", "a: b\n");
        write(dir.path(), "y/m/cm.yaml", "a: b\n");
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("both name repository 'a-m'"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = load(empty.path()).unwrap_err().to_string();
        assert!(err.contains("holds no Argo CD Application"), "{err}");
    }
}
