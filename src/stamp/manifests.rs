//! Reading the Kubernetes objects a stamp entry's directory holds, the way the engines would
//! see them: through `kustomization.yaml` resources when there is one, else every YAML file
//! below the directory (Flux's behaviour for a plain directory).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::StampError;

/// One YAML document and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub file: PathBuf,
    pub value: Value,
}

impl Document {
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }

    /// The API group, without the version (`helm.toolkit.fluxcd.io`; empty for core).
    pub fn group(&self) -> &str {
        match self.api_version().rsplit_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }
}

/// Parses every document of a multi-document YAML text. Empty documents (comments only, or
/// a leading `---`) are skipped; a syntax error carries its line and column.
pub fn parse_documents(file: &Path, text: &str) -> Result<Vec<Document>, StampError> {
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(document)
            .map_err(|e| StampError::yaml_in(file, &e, text))?;
        if !value.is_null() {
            documents.push(Document {
                file: file.to_path_buf(),
                value,
            });
        }
    }
    Ok(documents)
}

/// The largest file kindling reads from a source tree; stamps and manifests are kilobytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The deepest nesting of `[`/`{` a stamp file may have; real manifests stay under a few
/// dozen, and the YAML parser's own limit costs quadratic time to reach.
pub const MAX_NESTING: usize = 64;

/// A text file of the source tree: regular files only (a FIFO would block the read forever,
/// a device such as /dev/zero never end), at most `MAX_FILE_BYTES`, and nested no deeper than
/// `MAX_NESTING` (checked in one linear pass before the YAML parser sees it).
pub fn read_text(file: &Path) -> Result<String, StampError> {
    use std::io::Read;
    let refuse = |why: String| {
        StampError::io(
            file,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, why),
        )
    };
    let meta = std::fs::metadata(file).map_err(|e| StampError::io(file, e))?;
    if !meta.is_file() {
        return Err(refuse(
            "not a regular file (a FIFO, device or socket); kindling reads only regular files"
                .into(),
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| StampError::io(file, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(refuse(format!(
            "larger than {} MiB; a stamp or manifest file this big is not one",
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| refuse(format!("not UTF-8 text ({e})")))?;
    if let Some(line) = nested_too_deep(&text, MAX_NESTING) {
        return Err(StampError::Parse {
            file: file.to_path_buf(),
            line,
            column: 1,
            message: format!(
                "nested deeper than {MAX_NESTING} levels of [ and {{; no stamp or manifest needs that"
            ),
        });
    }
    Ok(text)
}

/// The line where `[`/`{` nesting (outside quotes and comments) first goes beyond `max`.
pub fn nested_too_deep(text: &str, max: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (n, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') if previous.is_whitespace() => break,
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > max {
                        return Some(n + 1);
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            previous = c;
        }
    }
    None
}

pub fn read_documents(file: &Path) -> Result<Vec<Document>, StampError> {
    parse_documents(file, &read_text(file)?)
}

/// The kustomization file of a directory, if it has one (kustomize accepts three names).
pub fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// The objects a directory yields, following `resources` of its kustomization file
/// (recursively into directories) or, without one, every `.yaml`/`.yml` file below it.
/// Remote resources (URLs) are skipped: they are not part of the stamp's Git content.
/// What the engine would apply from `dir`, read only inside the source tree `root`: a
/// directory, kustomization resource or manifest that resolves (through `..` or a symlink)
/// outside it is refused before it is read. The engine could not read it either: it sees only
/// what was pushed.
pub fn directory_documents(dir: &Path, root: &Path) -> Result<Vec<Document>, StampError> {
    let root = root.canonicalize().map_err(|e| StampError::io(root, e))?;
    let mut out = Vec::new();
    collect(dir, &root, &mut out, 0)?;
    Ok(out)
}

/// Refuses `path` when it resolves outside `root` (already canonical).
pub fn within(path: &Path, root: &Path) -> Result<(), StampError> {
    let real = path.canonicalize().map_err(|e| StampError::io(path, e))?;
    if real.starts_with(root) {
        return Ok(());
    }
    Err(StampError::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "leaves the source tree {} (it is {}); kindling reads and pushes only what is inside it",
                root.display(),
                real.display()
            ),
        ),
    ))
}

/// Kustomize itself refuses deep recursion; so do we, rather than loop on a cycle of
/// directories that include each other.
const MAX_DEPTH: usize = 16;

fn collect(
    dir: &Path,
    root: &Path,
    out: &mut Vec<Document>,
    depth: usize,
) -> Result<(), StampError> {
    if depth > MAX_DEPTH {
        return Err(StampError::io(
            dir,
            std::io::Error::other("kustomization resources nest too deeply (a cycle?)"),
        ));
    }
    within(dir, root)?;
    let Some(kfile) = kustomization_file(dir) else {
        for file in yaml_files_below(dir)? {
            within(&file, root)?;
            out.extend(read_documents(&file)?);
        }
        return Ok(());
    };
    within(&kfile, root)?;
    for resource in kustomization_resources(&kfile)? {
        let path = dir.join(&resource);
        if path.is_dir() {
            collect(&path, root, out, depth + 1)?;
        } else if path.is_file() {
            within(&path, root)?;
            out.extend(read_documents(&path)?);
        } else if !resource.contains("://") && !resource.starts_with("github.com/") {
            return Err(StampError::io(
                &kfile,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("resource '{resource}' does not exist"),
                ),
            ));
        }
    }
    Ok(())
}

/// The `resources` list of a kustomization file.
pub fn kustomization_resources(kfile: &Path) -> Result<Vec<String>, StampError> {
    let kustomization = read_documents(kfile)?;
    Ok(kustomization
        .first()
        .and_then(|d| d.value.get("resources"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// Every `.yaml`/`.yml` file below `dir`, sorted for stable output.
pub fn yaml_files_below(dir: &Path) -> Result<Vec<PathBuf>, StampError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| StampError::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StampError::io(&d, e))?;
            let path = entry.path();
            // Symlinked directories are not followed: a link to a parent would never end.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                pending.push(path);
            } else if path.is_dir() {
                continue;
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Every YAML document of the stamp's path entries (unreadable or templated files are
/// skipped: this is for hints about the stamp, not validation).
fn stamp_documents(stamp: &super::Stamp) -> Vec<Document> {
    stamp
        .entries
        .iter()
        .filter_map(|entry| match &entry.source {
            super::Source::Path(p) => yaml_files_below(&p.host_dir).ok(),
            _ => None,
        })
        .flatten()
        .filter_map(|file| read_documents(&file).ok())
        .flatten()
        .collect()
}

/// Whether the stamp's path entries declare any object of API group `group_prefix`
/// (`cert-manager.io/`).
pub fn declares_group(stamp: &super::Stamp, group_prefix: &str) -> bool {
    stamp_documents(stamp).iter().any(|d| {
        d.value["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with(group_prefix))
    })
}

/// The names of the objects of `kind` in API group `group_prefix` (`cert-manager.io/`) the
/// stamp's path entries declare, each with its file.
pub fn declared(
    stamp: &super::Stamp,
    group_prefix: &str,
    kind: &str,
) -> Vec<(String, std::path::PathBuf)> {
    stamp_documents(stamp)
        .into_iter()
        .filter(|d| {
            d.value["kind"] == kind
                && d.value["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with(group_prefix))
        })
        .filter_map(|d| Some((d.value["metadata"]["name"].as_str()?.to_string(), d.file)))
        .collect()
}

/// The fields of kustomize's `Kustomization` (TypeMeta inline) and of its `ObjectMeta`
/// (kubernetes-sigs/kustomize v5.8.1 api/types/kustomization.go, objectmeta.go).
const KUSTOMIZATION_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "openapi",
    "namePrefix",
    "nameSuffix",
    "namespace",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "patchesStrategicMerge",
    "patchesJson6902",
    "patches",
    "images",
    "imageTags",
    "replacements",
    "replicas",
    "vars",
    "sortOptions",
    "resources",
    "components",
    "crds",
    "bases",
    "configMapGenerator",
    "secretGenerator",
    "helmGlobals",
    "helmCharts",
    "helmChartInflationGenerator",
    "generatorOptions",
    "configurations",
    "generators",
    "transformers",
    "validators",
    "buildMetadata",
];
const KUSTOMIZATION_METADATA_FIELDS: &[&str] = &["name", "namespace", "labels", "annotations"];

/// Fields of the stamp's entries' kustomization files that kustomize does not know, as
/// `(file, field)`: kustomize decodes a kustomization strictly ("invalid Kustomization: json:
/// unknown field", api/types/kustomization.go `Unmarshal`), so `kustomize build` (Argo CD's
/// repo-server) refuses the file, while Flux's kustomize-controller first rewrites the entry's
/// own kustomization after a lenient read and so drops them (fluxcd/pkg kustomize
/// kustomize_generator.go `GenerateManifest`). A key mis-indented under `metadata` (HostK8s'
/// `labels:` followed by its keys at the same level) is the usual cause.
pub fn kustomization_unknown_fields(stamp: &super::Stamp) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for entry in &stamp.entries {
        let super::Source::Path(p) = &entry.source else {
            continue;
        };
        let Some(file) = kustomization_file(&p.host_dir) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(value) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
            continue;
        };
        let Some(map) = value.as_mapping() else {
            continue;
        };
        for (key, v) in map {
            let key = key.as_str().unwrap_or_default();
            if !KUSTOMIZATION_FIELDS.contains(&key) {
                found.push((file.clone(), key.to_string()));
            } else if key == "metadata"
                && let Some(meta) = v.as_mapping()
            {
                for k in meta.keys().filter_map(|k| k.as_str()) {
                    if !KUSTOMIZATION_METADATA_FIELDS.contains(&k) {
                        found.push((file.clone(), format!("metadata.{k}")));
                    }
                }
            }
        }
    }
    found
}

/// Whether the stamp's manifests hold an ExternalSecret that reads the ClusterSecretStore
/// `store` (a HostK8s component's `vault-backend`).
pub fn reads_cluster_secret_store(stamp: &super::Stamp, store: &str) -> bool {
    stamp_documents(stamp).iter().any(|doc| {
        doc.value["kind"] == "ExternalSecret"
            && doc.value["spec"]["secretStoreRef"]["kind"] == "ClusterSecretStore"
            && doc.value["spec"]["secretStoreRef"]["name"] == store
    })
}

/// Ingress host names the stamp's manifests declare, in order, each once.
pub fn ingress_hosts(stamp: &super::Stamp) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for doc in stamp_documents(stamp) {
        if doc.value["kind"] != "Ingress" {
            continue;
        }
        for rule in doc.value["spec"]["rules"].as_array().into_iter().flatten() {
            if let Some(h) = rule["host"].as_str()
                && !hosts.iter().any(|x| x == h)
            {
                hosts.push(h.to_string());
            }
        }
    }
    hosts
}

/// The cert-manager Certificate of the stamp that writes the Secret `namespace/name`, if any,
/// said as `Certificate NAME in FILE` (a HostK8s stack makes its own self-signed
/// `root-ca-secret`).
pub fn certificate_writing(stamp: &super::Stamp, namespace: &str, name: &str) -> Option<String> {
    stamp_documents(stamp).into_iter().find_map(|doc| {
        let value = &doc.value;
        let ours = value["kind"] == "Certificate"
            && value["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("cert-manager.io/"))
            && value["spec"]["secretName"] == name
            && value["metadata"]["namespace"]
                .as_str()
                .is_none_or(|ns| ns == namespace);
        ours.then(|| {
            format!(
                "Certificate {} in {}",
                value["metadata"]["name"].as_str().unwrap_or("?"),
                doc.file.display()
            )
        })
    })
}
