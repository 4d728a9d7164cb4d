//! The stamp's storage on the host and in the cluster: a directory per storage entry under
//! `DATA/storage/ENV/`, mounted into every node at the entry's path when the cluster is made,
//! settled to the entry's owner and mode from inside a node (as HostK8s does, manage-storage.py
//! `setup_directory_in_cluster`: the node runs as root where the user may not), and offered to
//! the stamp's claims by its StorageClasses and PersistentVolumes.
//!
//! The directories are not the env's state: `env delete` keeps them (and says where), so the
//! next `env create` of the same name mounts the same data; `env delete --purge` removes them.

use std::path::{Path, PathBuf};

use super::EnvError;
use super::state::EnvState;
use crate::cluster::StorageMount;
use crate::docker::DockerClient;
use crate::kube::{ApplyOptions, KubeClient};
use crate::stamp::Stamp;
use crate::stamp::storage::{MANAGED_BY, StorageDir, objects};

/// Where the env's storage lives on the host, whether or not the env exists.
pub fn host_root(data_dir: &Path, env: &str) -> PathBuf {
    data_dir.join("storage").join(env)
}

/// The host directory behind a node path: `/mnt/pv/app/db` is `DATA/storage/ENV/pv/app/db`.
pub fn host_dir(data_dir: &Path, env: &str, node_path: &str) -> PathBuf {
    host_root(data_dir, env).join(node_path.trim_start_matches("/mnt/"))
}

/// Where HostK8s' nodes mount their storage root (danielscholl-osdu/hostk8s@2add0a5
/// infra/kubernetes/kind-custom.yaml: one extraMount at `/mnt/pv`), under which every
/// HostK8s storage contract's paths lie (manage-storage.py `validate_directory`).
pub const HOSTK8S_ROOT: &str = "/mnt/pv";

/// The mounts the stamp's storage needs. A HostK8s stack's env mounts HostK8s' one storage
/// root, as its cluster does, so that the storage of any stack `env up` adds later is
/// already in the nodes; a native stamp's directories are mounted one by one.
pub fn mounts(data_dir: &Path, env: &str, stamp: &Stamp) -> Vec<StorageMount> {
    let mount = |node_path: &str| StorageMount {
        host_path: host_dir(data_dir, env, node_path),
        node_path: node_path.to_string(),
    };
    let mut mounts = Vec::new();
    if stamp.format == crate::stamp::StampFormat::Hostk8s {
        mounts.push(mount(HOSTK8S_ROOT));
    }
    for d in &stamp.storage {
        if !mounts.iter().any(|m| covers(&m.node_path, &d.path)) {
            mounts.push(mount(&d.path));
        }
    }
    mounts
}

/// `node_path` is the mount `mount` or lies inside it.
fn covers(mount: &str, node_path: &str) -> bool {
    node_path == mount
        || node_path
            .strip_prefix(mount)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The node paths the stamp needs that the env's cluster was not made with. A Docker
/// container's mounts are fixed when it is created, so these need a new cluster.
pub fn missing_mounts<'a>(state: &EnvState, stamp: &'a Stamp) -> Vec<&'a str> {
    stamp
        .storage
        .iter()
        .map(|d| d.path.as_str())
        .filter(|p| !state.storage.iter().any(|m| covers(m, p)))
        .collect()
}

/// The error for [`missing_mounts`], naming each path and the way out.
pub fn missing_mounts_error(env: &str, stamp: &str, missing: &[&str]) -> EnvError {
    EnvError::Preflight(format!(
        "stamp {stamp} needs storage mounted at {} that the nodes of env {env} were not made with; a node's mounts are fixed when its cluster is created\nhelp: `kindling env delete {env}` (its storage is kept) and `kindling env create {env} --stamp {stamp}`",
        missing.join(", ")
    ))
}

/// Makes the host directories (before the cluster, so each mount has its source: kind's
/// Docker would make a missing one root-owned, and k3d only warns) with the entries' modes.
/// k3d splits its volume flags on ':' (k3d-io/k3d v5.9.0 pkg/runtimes/util/volumes.go
/// ReadVolumeMount), so a data dir with one cannot be mounted there.
pub fn make_host_dirs(mounts: &[StorageMount], dirs: &[StorageDir]) -> Result<(), EnvError> {
    use std::os::unix::fs::PermissionsExt;
    for m in mounts {
        if m.host_path.display().to_string().contains(':') {
            return Err(EnvError::Preflight(format!(
                "{}: a storage directory's path cannot hold ':' (Docker and k3d read it as a separator)\nhelp: set KINDLING_DATA_DIR to a path without one",
                m.host_path.display()
            )));
        }
        std::fs::create_dir_all(&m.host_path).map_err(|e| EnvError::State {
            path: m.host_path.clone(),
            reason: format!("cannot make the storage directory {}: {e}", m.node_path),
        })?;
    }
    for d in dirs {
        let Some(host_path) = mounts
            .iter()
            .find(|m| covers(&m.node_path, &d.path))
            .map(|m| {
                m.host_path
                    .join(d.path[m.node_path.len()..].trim_start_matches('/'))
            })
        else {
            continue;
        };
        let fail = |e: std::io::Error| EnvError::State {
            path: host_path.clone(),
            reason: format!("cannot make the storage directory of {}: {e}", d.name),
        };
        std::fs::create_dir_all(&host_path).map_err(fail)?;
        // Only a directory this run made is given the entry's mode here; one that holds data
        // keeps what the node set (its owner may be another user, whose mode the host user
        // cannot change).
        let meta = std::fs::metadata(&host_path).map_err(fail)?;
        if is_empty(&host_path) && meta.permissions().mode() & 0o777 != d.permissions {
            let _ = std::fs::set_permissions(
                &host_path,
                std::fs::Permissions::from_mode(d.permissions),
            );
        }
    }
    Ok(())
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

/// Sets each directory's owner and mode from inside one of the env's nodes, which mount them
/// all: `mkdir -p`, `chown`, `chmod`, as HostK8s does in its control plane. HostK8s goes on
/// when `chown` fails (`chown … || true`: a rootless engine or a Docker Desktop file share may
/// refuse it); so does kindling, returning what failed for a warning.
pub async fn settle_in_node(
    docker: &DockerClient,
    state: &EnvState,
    dirs: &[StorageDir],
) -> Result<Vec<String>, EnvError> {
    let mut unsettled = Vec::new();
    if dirs.is_empty() {
        return Ok(unsettled);
    }
    let nodes = super::power::kubelet_nodes(docker, state).await?;
    let Some(node) = nodes.first() else {
        return Err(EnvError::Preflight(format!(
            "env {} has no node to set its storage's owners in\nhelp: `kindling env start {}`",
            state.name, state.name
        )));
    };
    for d in dirs {
        let owner = format!("{}:{}", d.owner.0, d.owner.1);
        let mode = format!("{:o}", d.permissions);
        let script = "mkdir -p \"$1\" && chown \"$2\" \"$1\" && chmod \"$3\" \"$1\"";
        let out = docker
            .exec(
                node,
                &["sh", "-c", script, "storage", &d.path, &owner, &mode],
            )
            .await?;
        if out.exit_code != 0 {
            unsettled.push(format!(
                "storage directory {} ({}) may lack owner {owner} and mode {mode}: {} in node {node}",
                d.name,
                d.path,
                out.stderr.trim()
            ));
        }
    }
    Ok(unsettled)
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct AppliedStorage {
    pub volumes: usize,
    pub classes: usize,
    /// StorageClasses of the stamp's names that the cluster already had and kindling did not
    /// make: left as they are, as HostK8s leaves them (manage-storage.py
    /// `create_storage_class`: "already exists").
    pub foreign_classes: Vec<String>,
}

/// Applies the StorageClasses and PersistentVolumes, before the stamp's entries ask for them.
pub async fn apply(
    kube: &KubeClient,
    dirs: &[StorageDir],
    timeout: std::time::Duration,
) -> Result<AppliedStorage, EnvError> {
    let mut applied = AppliedStorage::default();
    let mut wanted = Vec::new();
    for object in objects(dirs) {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if object["kind"] == "StorageClass" {
            let existing = kube
                .get("storage.k8s.io/v1", "StorageClass", None, name)
                .await?;
            if let Some(existing) = existing
                && existing["metadata"]["labels"][MANAGED_BY] != "kindling"
            {
                applied.foreign_classes.push(name.to_string());
                continue;
            }
            applied.classes += 1;
        } else {
            applied.volumes += 1;
        }
        wanted.push(object);
    }
    kube.apply_objects(&wanted, &ApplyOptions::new(timeout))
        .await?;
    Ok(applied)
}

/// Makes the stamp's volumes that a deleted claim left `Released` (their reclaim policy is
/// Retain; `env restart` prunes the stack's claims) available again, by clearing their
/// `claimRef`, which still names the old claim: the way Kubernetes documents to reuse a
/// retained volume (kube-controller-manager pv_controller.go `syncVolume`: a volume with no
/// claimRef is Available). The data stays.
async fn release_volumes(kube: &KubeClient, dirs: &[StorageDir]) -> Result<(), EnvError> {
    for d in dirs {
        let Some(volume) = kube
            .get("v1", "PersistentVolume", None, &d.volume_name)
            .await?
        else {
            continue;
        };
        if volume["status"]["phase"] == "Released"
            && volume["metadata"]["labels"][MANAGED_BY] == "kindling"
        {
            kube.merge_patch(
                "v1",
                "PersistentVolume",
                None,
                &d.volume_name,
                &serde_json::json!({"spec": {"claimRef": null}}),
            )
            .await?;
        }
    }
    Ok(())
}

/// Everything for a stamp's storage on a running env: the directories' owners, then the
/// objects. Only what the nodes mount is provided; the rest is named by
/// [`missing_mounts_error`] (an error for create and restart, a warning for sync).
pub async fn provide(
    kube: &KubeClient,
    state: &EnvState,
    stamp: &Stamp,
    timeout: std::time::Duration,
    progress: &crate::ui::Progress,
) -> Result<AppliedStorage, EnvError> {
    let mounted: Vec<StorageDir> = stamp
        .storage
        .iter()
        .filter(|d| state.storage.iter().any(|m| covers(m, &d.path)))
        .cloned()
        .collect();
    if mounted.is_empty() {
        return Ok(AppliedStorage::default());
    }
    let docker = DockerClient::connect().await?;
    for warning in settle_in_node(&docker, state, &mounted).await? {
        progress.warn(&warning);
    }
    release_volumes(kube, &mounted).await?;
    let applied = apply(kube, &mounted, timeout).await?;
    for class in &applied.foreign_classes {
        progress.warn(&format!(
            "StorageClass {class} exists and kindling did not make it; the stamp's volumes use it as it is"
        ));
    }
    Ok(applied)
}

/// Removes the env's storage directories. Files a node made under another owner may not be
/// the host user's to remove, so what the nodes can reach is emptied from inside one first
/// (`nodes`: the env's running node containers, if any).
pub async fn purge(
    docker: &DockerClient,
    data_dir: &Path,
    env: &str,
    node: Option<&str>,
    mounted: &[String],
) -> Result<Option<PathBuf>, EnvError> {
    let root = host_root(data_dir, env);
    if !root.exists() {
        return Ok(None);
    }
    if let Some(node) = node {
        for path in mounted {
            // The mount point stays (it is the mount); what is in it goes.
            let script = "find \"$1\" -mindepth 1 -delete";
            let _ = docker
                .exec(node, &["sh", "-c", script, "purge", path])
                .await;
        }
    }
    std::fs::remove_dir_all(&root).map_err(|e| EnvError::State {
        path: root.clone(),
        reason: format!(
            "cannot remove the env's storage: {e}\nhelp: files in it belong to another user (a container's); remove it with `sudo rm -rf {}`",
            root.display()
        ),
    })?;
    Ok(Some(root))
}
