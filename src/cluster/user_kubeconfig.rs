//! The user's kubeconfig, where kind and k3d merge their cluster's context. Both providers are
//! made to treat it the way `kind create cluster` does: merge the context and switch to it
//! (`--no-switch-context` keeps the current one), and on delete leave no current-context that
//! names the deleted cluster. kindling changes nothing else in the file.

use std::path::{Path, PathBuf};

/// The file a provider merges into, as kind picks it (kubernetes-sigs/kind v0.33.0
/// pkg/cluster/internal/kubeconfig/internal/kubeconfig/paths.go pathForMerge): of the
/// `KUBECONFIG` list, the only one, else the first that exists, else the last; without
/// `KUBECONFIG`, `~/.kube/config`. (k3d merges into the same file through client-go's loading
/// rules.)
pub fn merge_path(kubeconfig_env: Option<&str>, home: Option<&Path>) -> Option<PathBuf> {
    let listed: Vec<PathBuf> = kubeconfig_env
        .map(|v| {
            std::env::split_paths(v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    match listed.as_slice() {
        [] => home.map(|h| h.join(".kube").join("config")),
        [only] => Some(only.clone()),
        many => many.iter().find(|p| p.is_file()).or(many.last()).cloned(),
    }
}

/// This process's merge path.
pub fn default_merge_path() -> Option<PathBuf> {
    let home = directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf());
    merge_path(std::env::var("KUBECONFIG").ok().as_deref(), home.as_deref())
}

/// The file's `current-context`, if it has one.
pub fn current_context(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).ok()?;
    config
        .get("current-context")?
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// Sets (or, with `None`, removes) the file's `current-context`, leaving the rest as it is;
/// written atomically with the file's own permissions (0600 for a new one).
pub fn set_current_context(path: &Path, context: Option<&str>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path)?;
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let Some(map) = config.as_mapping_mut() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a kubeconfig mapping",
        ));
    };
    let key = serde_yaml_ng::Value::from("current-context");
    match context {
        Some(c) => {
            map.insert(key, serde_yaml_ng::Value::from(c));
        }
        None => {
            map.remove(&key);
        }
    }
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    let out = serde_yaml_ng::to_string(&config)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    crate::paths::write_atomic(path, out.as_bytes(), mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_user_kubeconfig_merge_path_is_the_one_kind_picks() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        assert_eq!(
            merge_path(None, Some(home)),
            Some(home.join(".kube/config"))
        );
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let list = std::env::join_paths([&a, &b]).unwrap();
        let list = list.to_str().unwrap();
        // None exists: the last; one exists: the first that does.
        assert_eq!(merge_path(Some(list), Some(home)), Some(b.clone()));
        std::fs::write(&b, "").unwrap();
        assert_eq!(merge_path(Some(list), Some(home)), Some(b.clone()));
        std::fs::write(&a, "").unwrap();
        assert_eq!(merge_path(Some(list), Some(home)), Some(a.clone()));
        assert_eq!(merge_path(Some(a.to_str().unwrap()), None), Some(a));
    }

    #[test]
    fn cluster_user_kubeconfig_current_context_is_set_and_removed_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters: []\ncontexts:\n- name: mine\n  context: {cluster: c, user: u}\ncurrent-context: kind-kindling-dev\nusers: []\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(current_context(&path).as_deref(), Some("kind-kindling-dev"));
        set_current_context(&path, Some("mine")).unwrap();
        assert_eq!(current_context(&path).as_deref(), Some("mine"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("- name: mine"), "{text}");
        set_current_context(&path, None).unwrap();
        assert_eq!(current_context(&path), None);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
