//! Storage a stamp asks of its cluster: host directories that the nodes mount, each offered to
//! the stamp's claims as a PersistentVolume of a StorageClass that no provisioner serves.
//!
//! The model is HostK8s' storage contract (danielscholl-osdu/hostk8s@2add0a5,
//! docs/storage-contracts.md and infra/scripts/manage-storage.py): a HostK8s stack's
//! `hostk8s.storage.yaml` `spec.directories[]` and a native stamp's `spec.storage[]` hold the
//! same fields. Unlike HostK8s, whose nodes mount one Docker volume at `/mnt/pv`, each
//! directory is its own mount of a host directory kindling keeps apart from the cluster, so
//! the data outlives it and a user can read it with ordinary tools.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Problem;
use super::validate::is_dns_subdomain;

/// What HostK8s gives a directory without `owner` and `permissions` (manage-storage.py
/// `validate_directory`).
const DEFAULT_OWNER: (u32, u32) = (1000, 1000);
const DEFAULT_PERMISSIONS: u32 = 0o755;

/// HostK8s' rule for contract paths (manage-storage.py: "path must start with '/mnt/pv/'").
pub const HOSTK8S_PREFIX: &str = "/mnt/pv/";
/// A native stamp may mount anywhere under `/mnt/`, never over the node's own directories
/// (containerd's, the kubelet's).
pub const NATIVE_PREFIX: &str = "/mnt/";

/// PersistentVolume access modes (k8s.io/api core/v1 types.go PersistentVolumeAccessMode).
const ACCESS_MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// One directory of storage, as the stamp declares it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageDir {
    pub name: String,
    /// Where the nodes see the directory, and the PersistentVolume's `hostPath`.
    pub path: String,
    pub size: String,
    pub access_modes: Vec<String>,
    pub storage_class: String,
    pub owner: (u32, u32),
    pub permissions: u32,
    /// The PersistentVolume's name and labels: HostK8s' own for a HostK8s stack
    /// (`hostk8s-STACK-NAME-pv`, `hostk8s.stack`, `hostk8s.storage.name`), so that what a
    /// HostK8s user looks them up by still finds them.
    pub volume_name: String,
    pub volume_labels: std::collections::BTreeMap<String, String>,
}

/// A directory as written in the stamp (both formats).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct StorageDirFile {
    name: String,
    path: String,
    size: String,
    access_modes: Vec<String>,
    storage_class: String,
    #[serde(default)]
    owner: Option<String>,
    /// Octal text (`"700"`); a YAML number (`700`) means the same digits.
    #[serde(default)]
    permissions: Option<serde_yaml_ng::Value>,
}

/// How the PersistentVolumes of a stamp are named.
pub(super) enum Naming<'a> {
    /// HostK8s: `hostk8s-{stack with / as -}-{name}-pv` (manage-storage.py
    /// `create_persistent_volume`).
    Hostk8s { stack: &'a str },
    /// kindling: `{stamp}-{name}`.
    Native { stamp: &'a str },
}

/// Checks the directories declared under `field` (`spec.directories`, `spec.storage`) of
/// `file`; what is wrong goes to `problems`, naming the directory, field and fix.
pub(super) fn check(
    file: &Path,
    field: &str,
    declared: Vec<StorageDirFile>,
    naming: Naming<'_>,
    problems: &mut Vec<Problem>,
) -> Vec<StorageDir> {
    let prefix = match naming {
        Naming::Hostk8s { .. } => HOSTK8S_PREFIX,
        Naming::Native { .. } => NATIVE_PREFIX,
    };
    let mut names = BTreeSet::new();
    let mut paths: Vec<String> = Vec::new();
    let mut dirs = Vec::new();
    for (i, d) in declared.into_iter().enumerate() {
        let at = format!("{field}[{i}]");
        // This directory's problems, so that a directory with any is left out.
        let mut found = Vec::new();
        let mut problem = |what: &str, message: String, help: &str| {
            found.push(Problem::new(
                file,
                None,
                format!("{at}.{what}"),
                message,
                help,
            ))
        };
        if !is_dns_subdomain(&d.name) || d.name.contains('.') {
            problem(
                "name",
                format!("'{}' is not a valid directory name", d.name),
                "lowercase letters, digits and '-', starting and ending with a letter or digit (it names a PersistentVolume)",
            );
        } else if !names.insert(d.name.clone()) {
            problem(
                "name",
                format!("'{}' is declared twice", d.name),
                "give each directory its own name",
            );
        }
        match normal_path(&d.path, prefix) {
            Err(why) => problem(
                "path",
                format!("'{}' {why}", d.path),
                &format!("a path under {prefix}, such as {prefix}my-stack/data"),
            ),
            Ok(path) => {
                if let Some(other) = paths
                    .iter()
                    .find(|p| p == &&path || within(p, &path) || within(&path, p))
                {
                    problem(
                        "path",
                        format!("'{path}' overlaps '{other}' of another directory"),
                        "give each directory a path of its own, none inside another",
                    );
                }
                paths.push(path);
            }
        }
        if !is_quantity(&d.size) {
            problem(
                "size",
                format!("'{}' is not a Kubernetes quantity", d.size),
                "write a size such as 5Gi or 500Mi",
            );
        }
        if d.access_modes.is_empty() {
            problem(
                "accessModes",
                "is empty".into(),
                "write accessModes: [ReadWriteOnce]",
            );
        }
        for mode in &d.access_modes {
            if !ACCESS_MODES.contains(&mode.as_str()) {
                problem(
                    "accessModes",
                    format!("'{mode}' is not a PersistentVolume access mode"),
                    &format!("one of {}", ACCESS_MODES.join(", ")),
                );
            }
        }
        if !is_dns_subdomain(&d.storage_class) {
            problem(
                "storageClass",
                format!("'{}' is not a valid StorageClass name", d.storage_class),
                "lowercase letters, digits, '-' and '.'",
            );
        }
        let owner = match d.owner.as_deref().map(parse_owner) {
            None => DEFAULT_OWNER,
            Some(Some(owner)) => owner,
            Some(None) => {
                problem(
                    "owner",
                    format!("'{}' is not UID:GID", d.owner.unwrap_or_default()),
                    "write numbers, such as \"999:999\" (quoted, or YAML reads it as a number)",
                );
                DEFAULT_OWNER
            }
        };
        let permissions = match d.permissions.as_ref().map(parse_permissions) {
            None => DEFAULT_PERMISSIONS,
            Some(Ok(mode)) => mode,
            Some(Err(text)) => {
                problem(
                    "permissions",
                    format!("'{text}' is not a 3-digit octal mode"),
                    "write a mode such as \"755\" or \"700\"",
                );
                DEFAULT_PERMISSIONS
            }
        };
        if !found.is_empty() {
            problems.append(&mut found);
            continue;
        }
        let (volume_name, volume_labels) = match naming {
            Naming::Hostk8s { stack } => {
                let stack = stack.replace('/', "-");
                (
                    format!("hostk8s-{stack}-{}-pv", d.name),
                    [
                        ("hostk8s.stack".to_string(), stack),
                        ("hostk8s.storage.name".to_string(), d.name.clone()),
                    ]
                    .into(),
                )
            }
            Naming::Native { stamp } => (format!("{stamp}-{}", d.name), Default::default()),
        };
        dirs.push(StorageDir {
            path: normal_path(&d.path, prefix).unwrap_or_default(),
            name: d.name,
            size: d.size,
            access_modes: d.access_modes,
            storage_class: d.storage_class,
            owner,
            permissions,
            volume_name,
            volume_labels,
        });
    }
    dirs
}

/// `path` without a trailing `/`, when it is absolute, under `prefix`, and has no `.`, `..`
/// or empty parts.
fn normal_path(path: &str, prefix: &str) -> Result<String, &'static str> {
    let trimmed = path.trim_end_matches('/');
    if !trimmed.starts_with(prefix) || trimmed.len() <= prefix.len() {
        return Err(if prefix == HOSTK8S_PREFIX {
            "is not under /mnt/pv/, where HostK8s keeps contract storage"
        } else {
            "is not under /mnt/, where a node has nothing of its own"
        });
    }
    if trimmed[1..]
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("has empty, '.' or '..' parts");
    }
    // Docker's and k3d's volume flags are SRC:DEST[:MODE].
    if trimmed.contains(':') || trimmed.contains(',') {
        return Err("holds ':' or ',', which node mount flags cannot carry");
    }
    Ok(trimmed.to_string())
}

/// One path is the other or lies inside it: two directories that would share data.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    a == b || within(a, b) || within(b, a)
}

fn within(outer: &str, inner: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// A Kubernetes resource quantity: a number and a binary, decimal or exponent suffix
/// (k8s.io/apimachinery pkg/api/resource/quantity.go: `<number><suffix>`, suffixes
/// Ki…Ei, n u m "" k M G T P E, or e/E and a signed integer).
fn is_quantity(text: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    let digits = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(digits);
    let number_ok =
        !number.is_empty() && number.chars().filter(|c| *c == '.').count() <= 1 && number != ".";
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()));
    number_ok && (SUFFIXES.contains(&suffix) || exponent)
}

fn parse_owner(text: &str) -> Option<(u32, u32)> {
    let (uid, gid) = text.split_once(':')?;
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// manage-storage.py: "permissions must be 3-digit octal" (a string: HostK8s calls
/// `.isdigit()` on it); `chmod` refuses 8 and 9. A YAML number is refused too: `0o644` and
/// `0644` reach the parser as other numbers than the digits written.
fn parse_permissions(value: &serde_yaml_ng::Value) -> Result<u32, String> {
    let text = match value {
        serde_yaml_ng::Value::String(s) => s.clone(),
        serde_yaml_ng::Value::Number(n) => return Err(format!("{n} (a number; quote it)")),
        other => format!("{other:?}"),
    };
    if text.len() == 3 && text.chars().all(|c| ('0'..='7').contains(&c)) {
        u32::from_str_radix(&text, 8).map_err(|_| text)
    } else {
        Err(text)
    }
}

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The cluster objects that offer the storage: one StorageClass per class name (no
/// provisioner: the volumes exist beforehand) and one PersistentVolume per directory, as
/// HostK8s makes them (manage-storage.py `create_storage_class`, `create_persistent_volume`).
pub fn objects(dirs: &[StorageDir]) -> Vec<Value> {
    let mut classes = BTreeSet::new();
    let mut objects = Vec::new();
    for d in dirs {
        if classes.insert(d.storage_class.clone()) {
            objects.push(json!({
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": d.storage_class, "labels": {MANAGED_BY: "kindling"}},
                "provisioner": "kubernetes.io/no-provisioner",
                "reclaimPolicy": "Retain",
                // The volumes are there before any claim: bind at once.
                "volumeBindingMode": "Immediate",
                "allowVolumeExpansion": false,
            }));
        }
    }
    for d in dirs {
        let mut labels = d.volume_labels.clone();
        labels.insert(MANAGED_BY.into(), "kindling".into());
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": d.volume_name, "labels": labels},
            "spec": {
                "capacity": {"storage": d.size},
                "accessModes": d.access_modes,
                // Deleting a claim must never delete the data.
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": d.storage_class,
                "hostPath": {"path": d.path, "type": "DirectoryOrCreate"},
            },
        }));
    }
    objects
}
