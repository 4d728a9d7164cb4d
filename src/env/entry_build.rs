//! An entry's objects built from a directory as the engine builds them, for `env apply` (from
//! the working tree) and `env diff` (from what Git holds).
//!
//! The build is kustomize's: `kustomize build DIR` where the directory has a kustomization,
//! as Flux builds it (kindling runs no kubectl: it talks to the cluster through its API); a
//! directory of plain manifests is read file by file (kustomize-controller generates a
//! kustomization of every manifest below it).
//! As Flux's `targetNamespace` does, the entry's namespace replaces every namespaced object's.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::EnvError;

/// The objects of an entry's directory, in `namespace` when the entry sets one.
pub fn build(dir: &Path, namespace: Option<&str>) -> Result<Vec<Value>, EnvError> {
    let mut objects = build_dir(dir)?;
    if let Some(namespace) = namespace {
        for o in &mut objects {
            let kind = o["kind"].as_str().unwrap_or_default();
            if kind != "Namespace" && !crate::stamp::is_cluster_scoped(kind) {
                o["metadata"]["namespace"] = Value::String(namespace.to_string());
            }
        }
    }
    Ok(objects)
}

/// The objects of an entry's directory, as the engine would build them.
fn build_dir(dir: &Path) -> Result<Vec<Value>, EnvError> {
    let text = if crate::stamp::manifests::kustomization_file(dir).is_some() {
        kustomize(dir)?
    } else {
        let mut text = String::new();
        for file in crate::stamp::manifests::yaml_files_below(dir)? {
            text.push_str(&crate::stamp::manifests::read_text(&file)?);
            text.push_str("\n---\n");
        }
        text
    };
    let mut objects = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).map_err(|e| {
            EnvError::BadInput(format!("{}: the build is not YAML: {e}", dir.display()))
        })?;
        if value.is_object() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// `kustomize build DIR`.
fn kustomize(dir: &Path) -> Result<String, EnvError> {
    match std::process::Command::new("kustomize")
        .arg("build")
        .arg(dir)
        .output()
    {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(EnvError::BadInput(format!(
            "{}: kustomize build failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) => Err(EnvError::Preflight(format!(
            "{}: env apply builds a kustomization with `kustomize build`, which does not run here ({e})\nhelp: install kustomize (kubernetes-sigs/kustomize), or let the engine apply it: `kindling env sync`",
            dir.display()
        ))),
    }
}
