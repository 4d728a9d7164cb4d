//! Kustomize overlays: `base/` plus `overlays/NAME/` per environment, each with its own
//! namespace, host and image tags. `env create --overlay NAME` picks one throughout a stamp;
//! `env promote` edits an overlay's `images[].newTag`, as teams promote by hand.
//!
//! kustomize (kubernetes-sigs/kustomize v5.8.1 api/types/image.go `Image`: `name`,
//! `newName`, `newTag`, `digest`) reads `newTag` as a string; a bare `1.2` or `20` in YAML is a
//! number, which kustomize refuses, so a tag is always written quoted.

use std::path::{Path, PathBuf};

use super::{Problem, Source, Stamp, StampError};

/// The directory of an entry's overlays: `…/overlays` beside or above its path.
fn overlays_of(host_dir: &Path) -> Option<(PathBuf, Option<String>)> {
    // An entry on `app/overlays/NAME`: its siblings are the choice.
    if let Some(parent) = host_dir.parent()
        && parent.file_name().is_some_and(|n| n == "overlays")
    {
        let current = host_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        return Some((parent.to_path_buf(), current));
    }
    // An entry on `app/` with `app/overlays/`.
    let below = host_dir.join("overlays");
    below.is_dir().then_some((below, None))
}

/// The overlays a directory offers, sorted.
fn names(overlays: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(overlays)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The stamp with every entry that offers overlays on `overlay`: an error names each entry
/// that offers others but not this one.
pub fn select(mut stamp: Stamp, overlay: &str) -> Result<Stamp, StampError> {
    let mut problems = Vec::new();
    let mut offered = false;
    let repo_root = stamp.repo_root.clone();
    for entry in &mut stamp.entries {
        let Source::Path(p) = &mut entry.source else {
            continue;
        };
        let Some((overlays, _)) = overlays_of(&p.host_dir) else {
            continue;
        };
        offered = true;
        let chosen = overlays.join(overlay);
        if !chosen.is_dir() {
            problems.push(Problem::new(
                &entry.declared_in,
                Some(&entry.name),
                "overlay",
                format!(
                    "has no overlay '{overlay}' (it offers {})",
                    names(&overlays).join(", ")
                ),
                "pick one of those with --overlay, or add the overlay",
            ));
            continue;
        }
        let Some(repo_path) = super::repo_relative(&repo_root, &chosen) else {
            continue;
        };
        p.host_dir = chosen;
        p.repo_path = repo_path;
    }
    if !offered {
        problems.push(Problem::new(
            &stamp.file,
            None,
            "overlay",
            format!(
                "no entry of stamp {} has overlays to pick '{overlay}' from",
                stamp.name
            ),
            "leave out --overlay, or point an entry at a directory with overlays/",
        ));
    }
    if !problems.is_empty() {
        return Err(StampError::Invalid {
            stamp: stamp.name.clone(),
            problems,
        });
    }
    Ok(stamp)
}

/// The kustomization files of `overlay` among the stamp's entries (the entries' current
/// overlay when `overlay` is None), each with the entry's name.
pub fn kustomizations(stamp: &Stamp, overlay: Option<&str>) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for entry in &stamp.entries {
        let Source::Path(p) = &entry.source else {
            continue;
        };
        let dir = match (overlays_of(&p.host_dir), overlay) {
            (Some((overlays, _)), Some(o)) => overlays.join(o),
            (_, None) => p.host_dir.clone(),
            (None, Some(_)) => continue,
        };
        if let Some(file) = super::manifests::kustomization_file(&dir) {
            found.push((entry.name.clone(), file));
        }
    }
    found
}

/// The `newTag` of image `name` in a kustomization, if it sets one.
pub fn image_tag(text: &str, name: &str) -> Option<String> {
    let doc: serde_json::Value = serde_yaml_ng::from_str(text).ok()?;
    doc["images"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == name)
        .and_then(|i| match &i["newTag"] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

/// The names of the images a kustomization's `images:` lists.
pub fn image_names(text: &str) -> Vec<String> {
    let Ok(doc) = serde_yaml_ng::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    doc["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect()
}

/// `text` with `newTag: "TAG"` on the `images:` item named `name`, the rest of the file as it
/// was (comments, order, spacing): the line is replaced, or added after the item's `name:`,
/// or the item is added. `None` when the file has no block `images:` list kindling can edit
/// by line (a flow-style list), which the caller reports.
pub fn with_image_tag(text: &str, name: &str, tag: &str) -> Option<String> {
    let quoted = format!("\"{}\"", tag.replace('\\', "\\\\").replace('"', "\\\""));
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let images = lines
        .iter()
        .position(|l| indent(l) == 0 && l.starts_with("images:"));
    if images.is_some_and(|i| lines[i].trim_end() != "images:") {
        return None;
    }
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let Some(start) = images else {
        // No images yet: a block at the end.
        let mut text = text.trim_end().to_string();
        text.push_str(&format!(
            "\nimages:\n  - name: {name}\n    newTag: {quoted}\n"
        ));
        return Some(text);
    };
    // The list's lines: up to the next top-level key.
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && indent(l) == 0 && !l.trim_start().starts_with('-'))
        .map(|p| start + 1 + p)
        .unwrap_or(lines.len());
    // Items: each starts at a `- ` line.
    let items: Vec<usize> = (start + 1..end)
        .filter(|&i| lines[i].trim_start().starts_with("- "))
        .collect();
    if items.is_empty() && (start + 1..end).any(|i| !lines[i].trim().is_empty()) {
        return None;
    }
    for (n, &first) in items.iter().enumerate() {
        let last = items.get(n + 1).copied().unwrap_or(end);
        let is_ours = (first..last).any(|i| {
            let l = lines[i].trim_start().trim_start_matches("- ").trim();
            l.strip_prefix("name:")
                .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == name)
        });
        if !is_ours {
            continue;
        }
        let key_indent = indent(lines[first]) + 2;
        if let Some(i) = (first..last).find(|&i| {
            lines[i]
                .trim_start()
                .trim_start_matches("- ")
                .starts_with("newTag:")
        }) {
            let prefix_len = lines[i].find("newTag:").unwrap_or(0);
            out[i] = format!("{}newTag: {quoted}", &lines[i][..prefix_len]);
        } else {
            let name_line = (first..last)
                .find(|&i| {
                    lines[i]
                        .trim_start()
                        .trim_start_matches("- ")
                        .starts_with("name:")
                })
                .unwrap_or(first);
            out.insert(
                name_line + 1,
                format!("{}newTag: {quoted}", " ".repeat(key_indent)),
            );
        }
        return Some(join(&out, text));
    }
    // No item of that name: one more at the list's end.
    let item_indent = items.first().map(|&i| indent(lines[i])).unwrap_or(2);
    let at = items
        .last()
        .map(|_| {
            (start + 1..end)
                .rev()
                .find(|&i| !lines[i].trim().is_empty())
                .map(|i| i + 1)
                .unwrap_or(end)
        })
        .unwrap_or(start + 1);
    out.insert(at, format!("{}- name: {name}", " ".repeat(item_indent)));
    out.insert(
        at + 1,
        format!("{}newTag: {quoted}", " ".repeat(item_indent + 2)),
    );
    Some(join(&out, text))
}

fn join(lines: &[String], original: &str) -> String {
    let mut text = lines.join("\n");
    if original.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# stage\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n  - name: ghcr.io/team/web\n    newTag: \"1.0\"\n  - name: ghcr.io/team/api\nnamespace: stage\n";

    #[test]
    fn a_tag_is_replaced_in_place_and_quoted() {
        let edited = with_image_tag(FILE, "ghcr.io/team/web", "1.10").unwrap();
        assert_eq!(
            image_tag(&edited, "ghcr.io/team/web").as_deref(),
            Some("1.10")
        );
        assert!(edited.contains("    newTag: \"1.10\"\n"), "{edited}");
        assert!(edited.starts_with("# stage\n"));
        assert!(edited.ends_with("namespace: stage\n"), "{edited}");
        // A numeric-looking tag stays a string: kustomize refuses numbers.
        let doc: serde_json::Value = serde_yaml_ng::from_str(&edited).unwrap();
        assert!(doc["images"][0]["newTag"].is_string());
    }

    #[test]
    fn a_missing_tag_or_item_or_list_is_added() {
        let edited = with_image_tag(FILE, "ghcr.io/team/api", "2").unwrap();
        assert_eq!(image_tag(&edited, "ghcr.io/team/api").as_deref(), Some("2"));
        assert_eq!(
            image_tag(&edited, "ghcr.io/team/web").as_deref(),
            Some("1.0")
        );
        let edited = with_image_tag(FILE, "ghcr.io/team/worker", "3").unwrap();
        assert_eq!(
            image_tag(&edited, "ghcr.io/team/worker").as_deref(),
            Some("3")
        );
        let doc: serde_json::Value = serde_yaml_ng::from_str(&edited).unwrap();
        assert_eq!(doc["namespace"], "stage", "{edited}");
        let bare = "resources: [../../base]\n";
        let edited = with_image_tag(bare, "web", "4").unwrap();
        assert_eq!(image_tag(&edited, "web").as_deref(), Some("4"));
        // A flow-style list is not edited by line.
        assert!(with_image_tag("images: [{name: web, newTag: '1'}]\n", "web", "2").is_none());
    }
}
