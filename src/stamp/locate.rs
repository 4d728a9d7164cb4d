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
        return Err(StampError::io(
            as_path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such stamp directory or file",
            ),
        ));
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
    let mut names = Vec::new();
    for d in STAMP_DIRS {
        let Ok(entries) = std::fs::read_dir(source_root.join(d)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let marked = ["stamp.yaml", "stack.yaml", "kustomization.yaml"]
                .iter()
                .any(|m| path.join(m).is_file());
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && marked && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    names
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
    for d in STAMP_DIRS {
        let Ok(entries) = std::fs::read_dir(source_root.join(d)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if out.iter().any(|s: &StampListing| s.name == name) {
                continue;
            }
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
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
