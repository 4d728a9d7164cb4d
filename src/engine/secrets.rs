//! The stamp's bootstrap secrets (`spec.secrets`): resolved on the host at create time from
//! literals, generated values, host files or environment variables, applied as Secrets, never
//! written to Git or logs. Generated values are kept in the env's state directory (0600) so a
//! rerun applies the same ones and the workloads that read them keep working.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::EngineError;
use crate::stamp::{BootstrapSecret, SecretValue};

/// Generated values by `namespace/secret/key`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GeneratedValues(pub BTreeMap<String, String>);

impl GeneratedValues {
    pub fn path(env_dir: &Path) -> PathBuf {
        env_dir.join("secrets.json")
    }

    /// The stored values; none when the env has none yet.
    pub fn load(env_dir: &Path) -> Result<GeneratedValues, EngineError> {
        let path = Self::path(env_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| EngineError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GeneratedValues::default()),
            Err(source) => Err(EngineError::Io { path, source }),
        }
    }

    /// Written 0600, atomically.
    pub fn store(&self, env_dir: &Path) -> Result<(), EngineError> {
        let path = Self::path(env_dir);
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        crate::paths::write_atomic(&path, &bytes, 0o600)
            .map_err(|source| EngineError::Io { path, source })
    }
}

/// Where host values come from; the process environment and file system in production.
pub struct HostValues<'a> {
    /// Relative `fromFile` paths are read relative to this directory (the source root).
    pub base_dir: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// What the user allowed beyond the source tree (`--allow-secret-from`): environment
    /// variable names and file paths as the stamp writes them.
    pub allowed: &'a [String],
}

/// The process environment, as [`HostValues::env`] reads it in production.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl<'a> HostValues<'a> {
    /// This host's environment and files, relative paths from `base_dir`.
    pub fn of_this_host(base_dir: &'a Path, allowed: &'a [String]) -> HostValues<'a> {
        HostValues {
            base_dir,
            env: &process_env,
            allowed,
        }
    }
}

/// A value a stamp's bootstrap secret reads from this host that needs the user's consent:
/// every environment variable, and every file outside the source tree. A stamp from someone
/// else could otherwise copy `GITHUB_TOKEN` or `~/.ssh/id_ed25519` into a Secret its own
/// workloads read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSource {
    /// `NAMESPACE/NAME`
    pub secret: String,
    pub key: String,
    /// What `--allow-secret-from` takes: the variable's name, or the path as the stamp wrote it.
    pub name: String,
    /// `environment variable GITHUB_TOKEN`, `file /home/u/.ssh/id_ed25519 (outside the source tree)`
    pub what: String,
}

/// Where a `fromFile` path is read: `~` expanded, relative paths under `base_dir`.
fn file_path(path: &Path, base_dir: &Path) -> PathBuf {
    let home = directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf());
    let path = expand_home(path, home.as_deref());
    if path.is_absolute() {
        path
    } else {
        base_dir.join(path)
    }
}

/// Whether `path` (resolved, links followed where it exists) lies inside `base_dir`.
fn inside(path: &Path, base_dir: &Path) -> bool {
    let base = std::fs::canonicalize(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| crate::stamp::normalize(path));
    resolved.starts_with(&base)
}

/// The host values of `secrets` that need consent and do not have it.
pub fn without_consent(
    secrets: &[BootstrapSecret],
    base_dir: &Path,
    allowed: &[String],
) -> Vec<HostSource> {
    let mut out = Vec::new();
    for secret in secrets {
        for key in &secret.keys {
            let (name, what) = match &key.value {
                SecretValue::FromEnv(var) => (var.clone(), format!("environment variable {var}")),
                SecretValue::FromFile(path) => {
                    let resolved = file_path(path, base_dir);
                    if inside(&resolved, base_dir) {
                        continue;
                    }
                    (
                        path.display().to_string(),
                        format!("file {} (outside the source tree)", resolved.display()),
                    )
                }
                SecretValue::Literal(_) | SecretValue::Generate { .. } => continue,
            };
            if !allowed.contains(&name) {
                out.push(HostSource {
                    secret: format!("{}/{}", secret.namespace, secret.name),
                    key: key.key.clone(),
                    name,
                    what,
                });
            }
        }
    }
    out
}

fn expand_home(path: &Path, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

/// The Namespaces and Secrets of the stamp's bootstrap secrets; new generated values are added
/// to `generated` (the caller stores them before applying).
pub fn resolve(
    secrets: &[BootstrapSecret],
    generated: &mut GeneratedValues,
    host: &HostValues<'_>,
) -> Result<Vec<Value>, EngineError> {
    let mut namespaces: Vec<&str> = Vec::new();
    let mut objects = Vec::new();
    for secret in secrets {
        if !namespaces.contains(&secret.namespace.as_str()) {
            namespaces.push(&secret.namespace);
        }
        let values = secret_values(secret, generated, host)?;
        let values: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        objects.push(super::secret_object(
            &secret.name,
            &secret.namespace,
            &[],
            &values,
        ));
    }
    let mut all: Vec<Value> = namespaces
        .into_iter()
        .map(super::namespace_object)
        .collect();
    all.extend(objects);
    Ok(all)
}

/// The values of one bootstrap secret, key by key; new generated values are added to
/// `generated`.
pub fn secret_values(
    secret: &BootstrapSecret,
    generated: &mut GeneratedValues,
    host: &HostValues<'_>,
) -> Result<Vec<(String, String)>, EngineError> {
    let mut values: Vec<(String, String)> = Vec::new();
    for key in &secret.keys {
        let failed = |reason: String, help: &str| EngineError::Secret {
            secret: format!("{}/{}", secret.namespace, secret.name),
            key: key.key.clone(),
            reason,
            help: help.to_string(),
        };
        let value = match &key.value {
            SecretValue::Literal(v) => v.clone(),
            SecretValue::Generate(generator) => {
                let id = format!("{}/{}/{}", secret.namespace, secret.name, key.key);
                match generated.0.get(&id) {
                    // Kept unless the stamp now asks for another length or format.
                    Some(v) if generator.fits(v) => v.clone(),
                    _ => {
                        let v = generator
                            .generate()
                            .map_err(|e| failed(e.to_string(), "check the OS random source"))?;
                        generated.0.insert(id, v.clone());
                        v
                    }
                }
            }
            SecretValue::FromFile(written) => {
                let path = file_path(written, host.base_dir);
                let name = written.display().to_string();
                if !inside(&path, host.base_dir) && !host.allowed.contains(&name) {
                    return Err(failed(
                        format!(
                            "reads {} from outside the source tree, which you have not allowed",
                            path.display()
                        ),
                        &format!(
                            "if this stamp is yours and it should, allow it with `--allow-secret-from {name}` (or KINDLING_ALLOW_SECRET_FROM)"
                        ),
                    ));
                }
                std::fs::read_to_string(&path).map_err(|e| {
                    failed(
                        format!("cannot read {}: {e}", path.display()),
                        "create the file (it stays on this host, outside Git) or change fromFile in stamp.yaml",
                    )
                })?
            }
            SecretValue::FromEnv(var) if !host.allowed.contains(var) => {
                return Err(failed(
                    format!(
                        "reads environment variable {var} from this host, which you have not allowed"
                    ),
                    &format!(
                        "if this stamp is yours and it should, allow it with `--allow-secret-from {var}` (or KINDLING_ALLOW_SECRET_FROM)"
                    ),
                ));
            }
            SecretValue::FromEnv(var) => (host.env)(var).ok_or_else(|| {
                failed(
                    format!("environment variable {var} is not set"),
                    &format!("export {var}=… before running kindling"),
                )
            })?,
        };
        values.push((key.key.clone(), value));
    }
    Ok(values)
}

/// What [`apply`] did.
#[derive(Debug)]
pub struct AppliedSecrets {
    /// Secrets applied.
    pub count: usize,
    /// Set when the stamp makes the CA Secret itself (`Certificate NAME in FILE`): kindling
    /// then leaves it to cert-manager instead of fighting over it.
    pub ca_left_to: Option<String>,
}

/// Whether every value the stamp's bootstrap secrets take from this host is there (each
/// `fromEnv` set, each `fromFile` readable): checked by `--dry-run` and by preflight, so a
/// create never stops at its secrets step for a missing variable. Nothing is kept or shown.
pub fn check_host_values(
    stamp: &crate::stamp::Stamp,
    allowed: &[String],
) -> Result<(), EngineError> {
    let missing = without_consent(&stamp.secrets, &stamp.repo_root, allowed);
    if !missing.is_empty() {
        return Err(EngineError::Consent(missing));
    }
    let host = HostValues::of_this_host(&stamp.repo_root, allowed);
    resolve(&stamp.secrets, &mut GeneratedValues::default(), &host).map(|_| ())
}

/// Applies the env's CA Secret (`cert-manager/root-ca-secret`) and the stamp's bootstrap
/// secrets. Generated values are stored in `env_dir` before anything is applied: a value the
/// cluster has seen is never regenerated.
pub async fn apply(
    kube: &crate::kube::KubeClient,
    stamp: &crate::stamp::Stamp,
    env_dir: &Path,
    ca_secret: Option<&Value>,
    timeout: std::time::Duration,
    allowed: &[String],
) -> Result<AppliedSecrets, EngineError> {
    let mut generated = GeneratedValues::load(env_dir)?;
    let host = HostValues::of_this_host(&stamp.repo_root, allowed);
    let mut objects = Vec::new();
    let mut ca_left_to = None;
    if let Some(ca_secret) = ca_secret {
        let ca_namespace = ca_secret["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let ca_name = ca_secret["metadata"]["name"].as_str().unwrap_or_default();
        ca_left_to = crate::stamp::manifests::certificate_writing(stamp, ca_namespace, ca_name);
        if ca_left_to.is_none() {
            objects = super::ca_objects(ca_secret);
        }
    }
    // A secret that goes through Vault (`crate::env::vault`) gets its values now, kept with
    // the env's others, and no Secret: its ExternalSecret makes that.
    let (vaulted, plain): (Vec<BootstrapSecret>, Vec<BootstrapSecret>) =
        stamp.secrets.iter().cloned().partition(|s| s.through_vault);
    objects.extend(resolve(&plain, &mut generated, &host)?);
    for secret in &vaulted {
        secret_values(secret, &mut generated, &host)?;
    }
    generated.store(env_dir)?;
    kube.apply_objects(&objects, &crate::kube::ApplyOptions::new(timeout))
        .await?;
    Ok(AppliedSecrets {
        count: objects.iter().filter(|o| o["kind"] == "Secret").count(),
        ca_left_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::SecretKey;
    use base64::Engine as _;

    /// README: `fromFile: ~/path` reads from the user's home; `~user/…` and other paths are
    /// taken as written (relative ones from the source root, by the caller).
    #[test]
    fn engine_secrets_from_file_expands_a_leading_tilde_to_home() {
        let home = Path::new("/home/dev");
        assert_eq!(
            expand_home(Path::new("~/tokens/api.txt"), Some(home)),
            Path::new("/home/dev/tokens/api.txt")
        );
        assert_eq!(
            expand_home(Path::new("~"), Some(home)),
            Path::new("/home/dev")
        );
        for kept in ["~other/x", "secrets/~/x", "/abs/x"] {
            assert_eq!(expand_home(Path::new(kept), Some(home)), Path::new(kept));
        }
        assert_eq!(
            expand_home(Path::new("~/x"), None),
            Path::new("~/x"),
            "no home: as written"
        );
    }

    fn secret(keys: Vec<SecretKey>) -> BootstrapSecret {
        BootstrapSecret {
            name: "database-credentials".into(),
            namespace: "database".into(),
            keys,
            through_vault: false,
        }
    }

    fn decoded(objects: &[Value], key: &str) -> String {
        let s = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(s["data"][key].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn engine_secrets_generated_values_are_stable_and_sources_resolve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token.txt"), "from-file").unwrap();
        let env = |v: &str| (v == "DB_ADMIN").then(|| "from-env".to_string());
        let allowed = ["DB_ADMIN".to_string()];
        let host = HostValues {
            base_dir: dir.path(),
            env: &env,
            allowed: &allowed,
        };
        let keys = vec![
            SecretKey {
                key: "username".into(),
                value: SecretValue::Literal("app".into()),
            },
            SecretKey {
                key: "password".into(),
                value: SecretValue::Generate(crate::stamp::SecretGenerator::new(
                    crate::stamp::GeneratorKind::Unambiguous,
                    Some(24),
                )),
            },
            SecretKey {
                key: "token".into(),
                value: SecretValue::FromFile("token.txt".into()),
            },
            SecretKey {
                key: "admin".into(),
                value: SecretValue::FromEnv("DB_ADMIN".into()),
            },
        ];
        let mut generated = GeneratedValues::default();
        let first = resolve(&[secret(keys.clone())], &mut generated, &host).unwrap();
        assert_eq!(first[0]["kind"], "Namespace");
        assert_eq!(first[0]["metadata"]["name"], "database");
        assert_eq!(decoded(&first, "username"), "app");
        assert_eq!(decoded(&first, "token"), "from-file");
        assert_eq!(decoded(&first, "admin"), "from-env");
        let password = decoded(&first, "password");
        assert_eq!(password.len(), 24);
        generated.store(dir.path()).unwrap();
        let mut reloaded = GeneratedValues::load(dir.path()).unwrap();
        let second = resolve(&[secret(keys)], &mut reloaded, &host).unwrap();
        assert_eq!(
            decoded(&second, "password"),
            password,
            "stable across reruns"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(GeneratedValues::path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn engine_secrets_missing_host_values_name_the_secret_key_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let env = |_: &str| None;
        let allowed = ["DB_ADMIN".to_string()];
        let host = HostValues {
            base_dir: dir.path(),
            env: &env,
            allowed: &allowed,
        };
        let err = resolve(
            &[secret(vec![SecretKey {
                key: "admin".into(),
                value: SecretValue::FromEnv("DB_ADMIN".into()),
            }])],
            &mut GeneratedValues::default(),
            &host,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("database/database-credentials"), "{err}");
        assert!(err.contains("key admin"), "{err}");
        assert!(err.contains("export DB_ADMIN="), "{err}");
        let err = resolve(
            &[secret(vec![SecretKey {
                key: "t".into(),
                value: SecretValue::FromFile("absent.txt".into()),
            }])],
            &mut GeneratedValues::default(),
            &host,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("absent.txt"), "{err}");
    }

    /// Every environment variable, and every file outside the source tree, needs the user's
    /// consent; a file in the tree does not. Without it, nothing is read.
    #[test]
    fn engine_secrets_host_values_beyond_the_tree_need_consent() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("in-tree.txt"), "fine").unwrap();
        let outside = dir.path().join("id_ed25519");
        std::fs::write(&outside, "PRIVATE KEY").unwrap();
        // A link in the tree to the outside file is outside too.
        std::os::unix::fs::symlink(&outside, tree.join("linked.txt")).unwrap();
        let keys = vec![
            SecretKey {
                key: "a".into(),
                value: SecretValue::FromFile("in-tree.txt".into()),
            },
            SecretKey {
                key: "b".into(),
                value: SecretValue::FromFile(outside.clone()),
            },
            SecretKey {
                key: "c".into(),
                value: SecretValue::FromFile("linked.txt".into()),
            },
            SecretKey {
                key: "d".into(),
                value: SecretValue::FromEnv("GITHUB_TOKEN".into()),
            },
        ];
        let secrets = [secret(keys)];
        let missing = without_consent(&secrets, &tree, &[]);
        let names: Vec<&str> = missing.iter().map(|m| m.name.as_str()).collect();
        let outside_name = outside.display().to_string();
        assert_eq!(names, [outside_name.as_str(), "linked.txt", "GITHUB_TOKEN"]);
        let env = |v: &str| (v == "GITHUB_TOKEN").then(|| "ghp_x".to_string());
        let none: [String; 0] = [];
        let host = HostValues {
            base_dir: &tree,
            env: &env,
            allowed: &none,
        };
        let err = resolve(&secrets, &mut GeneratedValues::default(), &host)
            .unwrap_err()
            .to_string();
        assert!(err.contains("which you have not allowed"), "{err}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
        let all = [
            outside_name.clone(),
            "linked.txt".to_string(),
            "GITHUB_TOKEN".to_string(),
        ];
        assert!(without_consent(&secrets, &tree, &all).is_empty());
        let host = HostValues {
            base_dir: &tree,
            env: &env,
            allowed: &all,
        };
        let objects = resolve(&secrets, &mut GeneratedValues::default(), &host).unwrap();
        assert_eq!(decoded(&objects, "b"), "PRIVATE KEY");
        assert_eq!(decoded(&objects, "d"), "ghp_x");
        // The whole list at once, with the flag that allows each.
        let text = EngineError::Consent(missing).to_string();
        assert!(text.contains("environment variable GITHUB_TOKEN"), "{text}");
        assert!(text.contains("(outside the source tree)"), "{text}");
        assert!(
            text.contains(&format!(
                "KINDLING_ALLOW_SECRET_FROM=NAME,NAME ({outside_name},linked.txt,GITHUB_TOKEN)"
            )),
            "{text}"
        );
    }

    /// A stored value is kept while it fits what the stamp asks for, and made again once the
    /// stamp asks for another generator (HostK8s `hex` used to get alphanumerics).
    #[test]
    fn engine_secrets_a_stored_value_is_kept_while_it_fits_its_secret_generator() {
        use crate::stamp::{GeneratorKind, SecretGenerator};
        let dir = tempfile::tempdir().unwrap();
        let env = |_: &str| None;
        let host = HostValues {
            base_dir: dir.path(),
            env: &env,
            allowed: &[],
        };
        let key = |kind, length| {
            secret(vec![SecretKey {
                key: "k".into(),
                value: SecretValue::Generate(SecretGenerator::new(kind, length)),
            }])
        };
        let id = "database/database-credentials/k";
        let old = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefgh".to_string();
        let mut generated = GeneratedValues(BTreeMap::from([(id.to_string(), old.clone())]));
        // The untyped generator's value fits the default, token and password: kept.
        for kind in [
            GeneratorKind::Unambiguous,
            GeneratorKind::Token,
            GeneratorKind::Password,
        ] {
            let objects = resolve(&[key(kind, None)], &mut generated, &host).unwrap();
            assert_eq!(decoded(&objects, "k"), old, "{kind:?}");
        }
        // hex (and a uuid) it does not fit: made again, and the new value is stored.
        let objects = resolve(&[key(GeneratorKind::Hex, None)], &mut generated, &host).unwrap();
        let hex = decoded(&objects, "k");
        assert_ne!(hex, old);
        assert!(
            SecretGenerator::new(GeneratorKind::Hex, None).fits(&hex),
            "{hex}"
        );
        assert_eq!(generated.0[id], hex);
        let again = resolve(&[key(GeneratorKind::Hex, None)], &mut generated, &host).unwrap();
        assert_eq!(
            decoded(&again, "k"),
            hex,
            "a fitting value is never made again"
        );
        let objects = resolve(&[key(GeneratorKind::Uuid, None)], &mut generated, &host).unwrap();
        assert_eq!(decoded(&objects, "k").len(), 36);
        // Another length: made again.
        let objects = resolve(
            &[key(GeneratorKind::Token, Some(40))],
            &mut generated,
            &host,
        )
        .unwrap();
        assert_eq!(decoded(&objects, "k").len(), 40);
    }
}
