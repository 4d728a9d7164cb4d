//! Finding stamps: by name under `stamps/` (kindling) or `software/stacks/` (HostK8s) of the
//! source tree, or by path.

use std::path::{Path, PathBuf};

use super::{StampError, StampFormat};

/// Where stamps live in a source tree, in lookup order.
const STAMP_DIRS: &[&str] = &["stamps", "software/stacks"];

/// Resolves a `STAMP` argument: an existing path (directory or stamp file) is used as is; a
/// bare name is looked up in the source tree.
pub fn locate_stamp(arg: &str, source_root: &Path) -> Result<PathBuf, StampError> {
    let as_path = Path::new(arg);
    let looks_like_path =
        arg.contains('/') || arg.contains(std::path::MAIN_SEPARATOR) || arg == ".";
    if looks_like_path || as_path.is_file() {
        if as_path.exists() {
            return Ok(as_path.to_path_buf());
        }
        // `foundation/postgres`: a nested stack name, when the source tree has it.
        let nested = !as_path.is_absolute()
            && !arg.starts_with('.')
            && STAMP_DIRS
                .iter()
                .any(|d| source_root.join(d).join(arg).is_dir());
        if !nested {
            return Err(StampError::io(
                as_path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such stamp directory or file",
                ),
            ));
        }
    }
    // A name may be nested, as HostK8s names its stacks (`foundation/postgres` under
    // `software/stacks/`); it never leaves the stamp directories.
    if Path::new(arg)
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(StampError::NotFound {
            name: arg.to_string(),
            searched: "(a stamp name is a path below stamps/ or software/stacks/)".to_string(),
            known: stamp_names(source_root).join(", "),
        });
    }
    let candidates: Vec<PathBuf> = STAMP_DIRS
        .iter()
        .map(|d| source_root.join(d).join(arg))
        .collect();
    for candidate in &candidates {
        // A stamps directory kindling may not read is said as such, not as "not found".
        if super::present(candidate)? && candidate.is_dir() {
            return Ok(candidate.clone());
        }
    }
    let known = stamp_names(source_root);
    Err(StampError::NotFound {
        name: arg.to_string(),
        searched: STAMP_DIRS
            .iter()
            .map(|d| source_root.join(d).display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        known: if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        },
    })
}

/// The names of what looks like a stamp or stack under the source tree (a directory holding
/// `stamp.yaml`, `stack.yaml` or `kustomization.yaml`), from the directory listing alone: the
/// hint for a mistyped name must not read, let alone parse, any of them.
pub fn stamp_names(source_root: &Path) -> Vec<String> {
    let mut names: Vec<String> = stamp_dirs(source_root)
        .into_iter()
        .filter(|(_, path)| is_marked(path))
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names
}

/// A directory that holds a stamp or a stack (its definition file, or a kustomization).
fn is_marked(dir: &Path) -> bool {
    // The files the loaders recognise a stamp or stack by (kustomize's three names).
    [
        "stamp.yaml",
        "stack.yaml",
        "kustomization.yaml",
        "kustomization.yml",
        "Kustomization",
    ]
    .iter()
    .any(|m| dir.join(m).is_file())
}

/// How deep a stamp may be nested below a stamp directory (`foundation/postgres` is 2).
const NESTING: usize = 3;

/// Every candidate stamp directory, by name, first name first: the subdirectories of the
/// stamp directories, and below a directory that is no stamp itself (HostK8s's `foundation/`,
/// `extension/`) its subdirectories, named `foundation/postgres` as HostK8s names them.
pub fn stamp_dirs(source_root: &Path) -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<(String, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if !path.is_dir() {
                continue;
            }
            let name = format!(
                "{prefix}{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            if is_marked(&path) || depth + 1 >= NESTING {
                if !out.iter().any(|(n, _)| *n == name) {
                    out.push((name, path));
                }
            } else {
                walk(&path, &format!("{name}/"), depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    for d in STAMP_DIRS {
        walk(&source_root.join(d), "", 0, &mut out);
    }
    out
}

/// One stamp found in a source tree, loaded or not.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StampListing {
    pub name: String,
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<StampFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub components: usize,
    pub applications: usize,
    /// Why the stamp does not load, if it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every stamp under the source tree's stamp directories, sorted by name. A stamp that fails
/// to load is listed with its error rather than hidden.
pub fn list_stamps(source_root: &Path) -> Vec<StampListing> {
    let mut out = Vec::new();
    for (name, path) in stamp_dirs(source_root) {
        let listing = match super::load(&path, None) {
            Ok(stamp) => StampListing {
                name,
                path,
                format: Some(stamp.format),
                description: stamp.description.clone(),
                components: stamp
                    .entries
                    .iter()
                    .filter(|e| e.role == super::Role::Component)
                    .count(),
                applications: stamp
                    .entries
                    .iter()
                    .filter(|e| e.role == super::Role::Application)
                    .count(),
                error: None,
            },
            // Directories beside stacks that are not stamps (HostK8s keeps a few) are skipped.
            Err(StampError::UnknownFormat { .. }) => continue,
            Err(e) => StampListing {
                name,
                path,
                format: None,
                description: None,
                components: 0,
                applications: 0,
                error: Some(e.to_string()),
            },
        };
        out.push(listing);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
