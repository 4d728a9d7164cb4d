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
//! - A Kustomization on another source (another GitRepository, an OCIRepository, a Bucket) is
//!   not served by kindling's Gitea yet: a problem naming it.

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
    // Sources the directory declares besides the bootstrap one are other repositories.
    let mut remote: BTreeSet<String> = BTreeSet::new();
    for d in &documents {
        if is_flux_kustomization(d) {
            continue;
        }
        if d.group() == FLUX_SOURCE_GROUP {
            remote.insert(d.name().to_string());
        }
        problems.push(Problem::new(
            &d.file,
            None,
            format!("{} '{}'", d.kind(), d.name()),
            "is not a Flux Kustomization; kindling takes the cluster directory's Kustomizations as its entries",
            "move the object into the directory of a Kustomization that applies it",
        ));
    }
    let kustomizations: Vec<&Document> = documents
        .iter()
        .filter(|d| is_flux_kustomization(d))
        .collect();
    for k in &kustomizations {
        let source = k
            .value
            .pointer("/spec/sourceRef/name")
            .and_then(Value::as_str);
        if let Some(source) = source.filter(|s| *s != BOOTSTRAP_NAME && remote.contains(*s)) {
            problems.push(Problem::new(
                &k.file,
                Some(k.name()),
                "spec.sourceRef",
                format!("reads source '{source}', another repository than the one kindling pushes"),
                "point it at the flux-system GitRepository (the repository this directory is in)",
            ));
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
        },
        problems,
        dropped: Vec::new(),
    }))
}
