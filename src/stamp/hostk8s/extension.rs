//! HostK8s extension stacks: `software/stacks/extension/NAME/`, a stack kept in a repository
//! of its own and cloned there (danielscholl-osdu/hostk8s@2add0a5:
//! software/stacks/extension/README.md; deploy-stack.py takes a stack whose name starts with
//! `extension/` as one).
//!
//! What HostK8s documents, and what kindling does with it:
//! - The stack declares its own GitRepository (`repository.yaml`, conventionally
//!   `extension-stack-system`, the name deploy-stack.py's bootstrap points at), with
//!   `${GITOPS_REPO}`/`${GITOPS_BRANCH}` for its own repository. The paths of the
//!   Kustomizations that use it (`./components/x`, `./applications`) are relative to that
//!   repository, which is the stack's directory here. kindling's Gitea serves them: the
//!   GitRepository is not applied, and the paths become paths of the pushed tree.
//! - Kustomizations on HostK8s' shared `flux-system` source keep their paths in the HostK8s
//!   repository (`./software/components/...`).
//! - HostK8s' own `.gitignore` in `software/stacks/extension/` ignores every extension
//!   stack (they are other repositories). kindling pushes the stack's files anyway, as the
//!   stack's own Git would have them: when the stack is a Git checkout, what its Git tracks
//!   or would add; otherwise every file. Symbolic links are left out (the push refuses
//!   links that leave the tree; these are read here, so none is followed).
//!
//! At HostK8s' head the bootstrap of an extension stack points at `extension-stack-system`
//! but nothing applies the stack's `repository.yaml` (removed in hostk8s 163dd28), so an
//! extension stack does not deploy there; kindling follows the documented behaviour.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::super::manifests::Document;
use super::FLUX_SOURCE_GROUP;
use crate::stamp::{Source, Stamp, StampError};

/// Where HostK8s keeps extension stacks, under `software/stacks/`.
const EXTENSION_PREFIX: &str = "extension/";

/// The name deploy-stack.py's bootstrap gives an extension stack's source.
const EXTENSION_SOURCE: &str = "extension-stack-system";

/// The GitRepositories an extension stack declares itself (and the conventional name, which
/// HostK8s' bootstrap assumes even where the stack does not declare it). Empty for any other
/// stack: its paths are all relative to the HostK8s repository.
pub fn own_sources(documents: &[Document], stack_path: &str) -> BTreeSet<String> {
    if !stack_path.starts_with(EXTENSION_PREFIX) {
        return BTreeSet::new();
    }
    documents
        .iter()
        .filter(|d| d.group() == FLUX_SOURCE_GROUP && d.kind() == "GitRepository")
        .map(|d| d.name().to_string())
        .chain([EXTENSION_SOURCE.to_string()])
        .collect()
}

/// The extension stacks' files, as (path in the pushed tree, content): pushed whatever the
/// HostK8s repository's ignore files say, since they are the stacks' own repositories.
pub fn pushed_files(stamp: &Stamp) -> Result<Vec<(String, Vec<u8>)>, StampError> {
    let mut dirs: BTreeSet<(String, PathBuf)> = BTreeSet::new();
    for entry in &stamp.entries {
        let Source::Path(p) = &entry.source else {
            continue;
        };
        let parts: Vec<&str> = p.repo_path.split('/').collect();
        if let ["software", "stacks", "extension", name, ..] = parts.as_slice() {
            let repo_path = format!("software/stacks/extension/{name}");
            let host = stamp.repo_root.join(&repo_path);
            dirs.insert((repo_path, host));
        }
    }
    let mut files = Vec::new();
    for (repo_path, host) in dirs {
        for relative in stack_files(&host)? {
            let path = host.join(&relative);
            let bytes = std::fs::read(&path).map_err(|e| StampError::io(&path, e))?;
            files.push((format!("{repo_path}/{relative}"), bytes));
        }
    }
    Ok(files)
}

/// The files of one extension stack, relative to it, `/`-separated: its Git's view when it
/// is a checkout (tracked, and untracked but not ignored, as `git add --all` would take),
/// else every regular file but a `.git`.
fn stack_files(dir: &Path) -> Result<Vec<String>, StampError> {
    if dir.join(".git").exists() {
        let out = std::process::Command::new("git")
            .args([
                "-c",
                "safe.directory=*",
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(dir)
            .output()
            .map_err(|e| StampError::io(dir, e))?;
        if out.status.success() {
            return Ok(out
                .stdout
                .split(|b| *b == 0)
                .filter(|f| !f.is_empty())
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .filter(|f| is_plain_file(&dir.join(f)))
                .collect());
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    Ok(files)
}

/// A regular file, not a link: a link's target may lie outside the stack (a kubeconfig, a
/// key), and what it names in the engine's checkout is something else anyway.
fn is_plain_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) -> Result<(), StampError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StampError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StampError::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| StampError::io(&path, e))?;
        if kind.is_dir() {
            if entry.file_name() != ".git" {
                walk(root, &path, files)?;
            }
        } else if kind.is_file()
            && let Ok(relative) = path.strip_prefix(root)
        {
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}
