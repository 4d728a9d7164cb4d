//! A Flux cluster directory as `flux bootstrap` leaves it (`clusters/NAME/`), loaded as a
//! stamp: the team's own GitOps repository, unchanged. It shares the reading of Flux
//! Kustomizations with HostK8s stacks (which are sets of them too).
//!
//! What `flux bootstrap` writes (fluxcd/flux2 v2.8 pkg/manifestgen/sync and install:
//! `flux-system/gotk-components.yaml`, `flux-system/gotk-sync.yaml` with the GitRepository
//! and Kustomization named `flux-system`, whose `path` is the cluster directory in the
//! repository, and `flux-system/kustomization.yaml` listing both), and what kindling does:
//! - `gotk-components.yaml` is Flux itself: kindling installs Flux at its pin and applies
//!   none of it.
//! - The `flux-system` GitRepository points at the team's remote repository: kindling's Gitea
//!   takes its place (its `ignore` patterns are kept), and the `flux-system` Kustomization is
//!   kindling's root.
//! - Every other Flux Kustomization in the directory (and below it, as Flux's generated
//!   kustomization takes the directory's files) becomes an entry, with its `dependsOn`,
//!   `healthChecks`, `wait` and `prune`; paths are relative to the repository root, which is
//!   the cluster directory less the `flux-system` Kustomization's `path`.
//! - The other Flux sources the directory declares (an OCIRepository, another GitRepository,
//!   a Bucket, a HelmRepository) keep their remote URLs: applied as they are on Flux, beside
//!   the entries. A Kustomization on one of them becomes an entry on that source (rendered
//!   for Argo CD as an `oci://` or Git source); kindling cannot see inside it, so it is
//!   neither flattened nor validated beyond its fields.

use std::collections::BTreeSet;

use super::*;

/// The names `flux bootstrap` gives its own objects.
const BOOTSTRAP_NAME: &str = "flux-system";

/// Loads the Flux cluster directory `dir`; `Ok(None)` when it is not one (no
/// `flux-system/gotk-sync.yaml`).
pub fn load(dir: &Path) -> Result<Option<Draft>, StampError> {
    let sync_file = dir.join(BOOTSTRAP_NAME).join("gotk-sync.yaml");
    if !sync_file.is_file() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let sync = parse_documents(&sync_file, &read_text(&sync_file)?)?;
    let root_path = sync
        .iter()
        .find(|d| is_flux_kustomization(d) && d.name() == BOOTSTRAP_NAME)
        .and_then(|d| d.value.pointer("/spec/path").and_then(Value::as_str))
        .map(|p| p.trim_start_matches("./").trim_end_matches('/').to_string());
    let root = match &root_path {
        Some(path) => {
            let depth = path
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .count();
            dir.ancestors().nth(depth).unwrap_or(dir).to_path_buf()
        }
        None => {
            problems.push(Problem::new(
                &sync_file,
                Some(BOOTSTRAP_NAME),
                "spec.path",
                "the flux-system Kustomization has no path, so where the cluster directory sits in the repository is unknown",
                "keep gotk-sync.yaml as `flux bootstrap` wrote it (path: ./clusters/NAME)",
            ));
            dir.to_path_buf()
        }
    };
    // The bootstrap source's ignore patterns decide what the engine sees of the repository.
    let mut ignore = Vec::new();
    for d in &sync {
        if d.group() == FLUX_SOURCE_GROUP && d.kind() == "GitRepository" {
            add_ignore_lines(d, &mut ignore);
        }
    }
    let mut documents = Vec::new();
    for file in super::super::manifests::yaml_files_below(dir)? {
        if file.starts_with(dir.join(BOOTSTRAP_NAME)) {
            continue;
        }
        documents.extend(parse_documents(&file, &read_text(&file)?)?);
    }
    // Sources the directory declares besides the bootstrap one: other repositories and
    // artifacts, kept as they are.
    let mut remote: BTreeMap<String, Value> = BTreeMap::new();
    let mut flux_sources = Vec::new();
    for d in &documents {
        if is_flux_kustomization(d) {
            continue;
        }
        if d.group() == FLUX_SOURCE_GROUP
            && matches!(
                d.kind(),
                "GitRepository" | "OCIRepository" | "Bucket" | "HelmRepository"
            )
        {
            if d.kind() != "HelmRepository" {
                remote.insert(d.name().to_string(), d.value.clone());
            }
            flux_sources.push(d.value.clone());
            continue;
        }
        problems.push(Problem::new(
            &d.file,
            None,
            format!("{} '{}'", d.kind(), d.name()),
            "is not a Flux Kustomization; kindling takes the cluster directory's Kustomizations as its entries",
            "move the object into the directory of a Kustomization that applies it",
        ));
    }
    let (on_remote, kustomizations): (Vec<&Document>, Vec<&Document>) = documents
        .iter()
        .filter(|d| is_flux_kustomization(d))
        .partition(|k| {
            k.value
                .pointer("/spec/sourceRef/name")
                .and_then(Value::as_str)
                .is_some_and(|s| s != BOOTSTRAP_NAME && remote.contains_key(s))
        });
    let mut remote_entries = Vec::new();
    for k in on_remote {
        match remote_entry(k, &remote) {
            Ok(entry) => remote_entries.push(entry),
            Err(problem) => problems.push(problem),
        }
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cluster".to_string());
    let no_vars = BTreeMap::new();
    let no_sources = BTreeSet::new();
    let entries = Flattener {
        root: &root,
        stack_dir: dir,
        own_sources: &no_sources,
        vars: &no_vars,
        problems: &mut problems,
        replaced: HashMap::new(),
        entries: Vec::new(),
    }
    .run(&kustomizations)?;
    let mut entries = entries;
    entries.extend(remote_entries);
    Ok(Some(Draft {
        stamp: Stamp {
            name,
            description: Some(format!(
                "Flux cluster directory {}",
                root_path.as_deref().unwrap_or(".")
            )),
            format: StampFormat::Flux,
            dir: dir.to_path_buf(),
            file: sync_file,
            repo_root: root,
            ignore,
            entries,
            secrets: Vec::new(),
            storage: Vec::new(),
            graph: Graph::default(),
            warnings: Vec::new(),
            argo: Default::default(),
            flux_sources,
            own_objects_namespace: None,
            shared_cluster: false,
        },
        problems,
        dropped: Vec::new(),
    }))
}

/// A Kustomization on one of the directory's own sources, as an entry on that source.
fn remote_entry(k: &Document, remote: &BTreeMap<String, Value>) -> Result<Entry, Problem> {
    let spec = &k.value["spec"];
    let source_name = spec["sourceRef"]["name"].as_str().unwrap_or_default();
    let object = &remote[source_name];
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    if spec["sourceRef"]["kind"]
        .as_str()
        .is_some_and(|k| k != kind)
    {
        return Err(Problem::new(
            &k.file,
            Some(k.name()),
            "spec.sourceRef.kind",
            format!(
                "names {source_name} as a {}, but it is a {kind}",
                spec["sourceRef"]["kind"].as_str().unwrap_or_default()
            ),
            "give the kind the source has",
        ));
    }
    // kindling renders the Kustomization itself; what it does not carry over is refused.
    for field in [
        "postBuild",
        "patches",
        "components",
        "images",
        "namePrefix",
        "nameSuffix",
        "commonMetadata",
        "decryption",
        "kubeConfig",
    ] {
        if !spec[field].is_null() {
            return Err(Problem::new(
                &k.file,
                Some(k.name()),
                format!("spec.{field}"),
                format!("is not carried over for a Kustomization on {kind} {source_name}"),
                "move it into the source's own kustomization.yaml",
            ));
        }
    }
    let text = |v: &Value| v.as_str().map(str::to_string);
    let health_checks = serde_json::from_value(spec["healthChecks"].clone()).unwrap_or_default();
    Ok(Entry {
        name: k.name().to_string(),
        role: Role::Application,
        source: Source::Remote(crate::stamp::RemoteSource {
            kind,
            name: source_name.to_string(),
            object: object.clone(),
            path: match spec["path"]
                .as_str()
                .unwrap_or(".")
                .trim_start_matches("./")
            {
                "." | "" => String::new(),
                p => p.trim_end_matches('/').to_string(),
            },
        }),
        namespace: text(&spec["targetNamespace"]),
        depends_on: spec["dependsOn"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| text(&d["name"]))
            .collect(),
        health_checks,
        timeout: text(&spec["timeout"]),
        wait: spec["wait"] == true,
        prune: spec["prune"] == true,
        interval: text(&spec["interval"]),
        retry_interval: text(&spec["retryInterval"]),
        group: None,
        declared_in: k.file.clone(),
        labels: BTreeMap::new(),
        manual_gate: false,
        applied_directly: false,
    })
}
