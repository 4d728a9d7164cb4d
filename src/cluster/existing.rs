//! A cluster kindling did not make (`--provider existing --context NAME [--kubeconfig FILE]`):
//! an EKS, GKE or AKS namespace, a colleague's cluster, a vcluster. kindling makes no Docker
//! cluster, registry or cache for it; it checks the API answers and that the context's user
//! may do what the create will do, and names every missing right before anything changes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::kube::KubeClient;
use crate::kube::access::{Missing, Right};
use crate::stamp::render::Engine;

/// Which cluster, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingCluster {
    pub context: String,
    /// The user's kubeconfig (read where it is, never copied: its credentials stay the user's
    /// and refresh as they do).
    pub kubeconfig: PathBuf,
}

impl ExistingCluster {
    /// `--kubeconfig`, else the first file of `KUBECONFIG`, else `~/.kube/config`, made
    /// absolute so later commands find it from anywhere.
    pub fn new(context: &str, kubeconfig: Option<&Path>) -> Result<ExistingCluster, String> {
        let path = match kubeconfig {
            Some(p) => p.to_path_buf(),
            None => super::user_kubeconfig::default_merge_path().ok_or_else(|| {
                "no kubeconfig: KUBECONFIG is unset and there is no home directory\nhelp: pass --kubeconfig FILE".to_string()
            })?,
        };
        let path = std::path::absolute(&path).unwrap_or(path);
        if !path.is_file() {
            return Err(format!(
                "kubeconfig {} does not exist\nhelp: pass --kubeconfig FILE, or set KUBECONFIG",
                path.display()
            ));
        }
        let contexts = contexts_of(&path)?;
        if !contexts.iter().any(|c| c == context) {
            return Err(format!(
                "kubeconfig {} has no context {context} (it has: {})\nhelp: `kubectl config get-contexts` lists them; pass one with --context",
                path.display(),
                if contexts.is_empty() {
                    "none".to_string()
                } else {
                    contexts.join(", ")
                }
            ));
        }
        Ok(ExistingCluster {
            context: context.to_string(),
            kubeconfig: path,
        })
    }
}

/// The context names of a kubeconfig.
fn contexts_of(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("kubeconfig {} is not YAML: {e}", path.display()))?;
    Ok(config
        .get("contexts")
        .and_then(|c| c.as_sequence())
        .map(|list| {
            list.iter()
                .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// What the create will find on the cluster, which decides the rights it needs.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The engine is there already (kindling will not install it).
    pub engine: bool,
    /// Where the env's CA Secret goes (the cluster's own cert-manager's resource namespace,
    /// or the one the stamp's cert-manager will run in); None: it is not handed over
    /// (`crate::env::open::hands_over_the_ca`).
    pub ca_namespace: Option<String>,
    /// Where the env's engine objects go (`crate::engine::objects_namespace`); empty: the
    /// engine's own namespace.
    pub engine_objects_namespace: String,
}

/// The rights `env create` needs on an existing cluster for env `env` with `engine`.
pub fn rights(env: &str, engine: Engine, found: Found) -> Vec<Right> {
    let own = crate::gitea::in_cluster::namespace(env);
    let engine_ns = crate::engine::namespace(engine).to_string();
    let mut rights = vec![Right {
        verb: "create",
        group: "",
        resource: "namespaces",
        subresource: "",
        namespace: None,
        why: "the env's namespace and the stamp's",
    }];
    for (group, resource) in [
        ("apps", "deployments"),
        ("", "services"),
        ("", "secrets"),
        ("", "persistentvolumeclaims"),
    ] {
        rights.push(Right {
            verb: "create",
            group,
            resource,
            subresource: "",
            namespace: Some(own.clone()),
            why: "Gitea in the env's namespace",
        });
    }
    rights.push(Right {
        verb: "list",
        group: "",
        resource: "pods",
        subresource: "",
        namespace: Some(own.clone()),
        why: "finding the Gitea pod",
    });
    // A port-forward is a GET upgraded to a WebSocket, but since Kubernetes 1.35 the API
    // server also asks for `create` on pods/portforward (kubernetes/kubernetes
    // pkg/registry/core/pod/rest/subresources.go, AuthorizePodWebsocketUpgradeCreatePermission).
    rights.push(Right {
        verb: "create",
        group: "",
        resource: "pods",
        subresource: "portforward",
        namespace: Some(own),
        why: "reaching Gitea from this machine",
    });
    if let Some(ca_namespace) = &found.ca_namespace {
        rights.push(Right {
            verb: "create",
            group: "",
            resource: "secrets",
            subresource: "",
            namespace: Some(ca_namespace.clone()),
            why: "the env's CA, handed to cert-manager",
        });
    }
    let (group, resource) = match engine {
        Engine::Flux => ("kustomize.toolkit.fluxcd.io", "kustomizations"),
        Engine::Argo => ("argoproj.io", "applications"),
    };
    let objects_ns = match found.engine_objects_namespace.as_str() {
        "" => engine_ns.clone(),
        ns => ns.to_string(),
    };
    if found.engine {
        // Argo CD reads repository Secrets and AppProjects only in its own namespace
        // (argoproj/argo-cd v3.5.1 util/db/secrets.go, controller/appcontroller.go
        // `getAppProj`): an env whose Applications have a namespace of their own has its
        // project and credentials there.
        let credentials_ns = match engine {
            Engine::Flux => objects_ns.clone(),
            Engine::Argo => engine_ns.clone(),
        };
        if engine == Engine::Argo && objects_ns != engine_ns {
            rights.push(Right {
                verb: "create",
                group: "argoproj.io",
                resource: "appprojects",
                subresource: "",
                namespace: Some(engine_ns.clone()),
                why: "the env's Argo CD project",
            });
        }
        rights.push(Right {
            verb: "create",
            group,
            resource,
            subresource: "",
            namespace: Some(objects_ns),
            why: "the stamp's engine objects",
        });
        rights.push(Right {
            verb: "create",
            group: "",
            resource: "secrets",
            subresource: "",
            namespace: Some(credentials_ns),
            why: "the engine's Git credentials",
        });
    } else {
        for (group, resource) in [
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ] {
            rights.push(Right {
                verb: "create",
                group,
                resource,
                subresource: "",
                namespace: None,
                why: "installing the engine",
            });
        }
        rights.push(Right {
            verb: "create",
            group: "apps",
            resource: "deployments",
            subresource: "",
            namespace: Some(engine_ns),
            why: "installing the engine",
        });
    }
    // A server-side apply reads and patches (a create is a patch of what is not there yet),
    // kindling's ownership check reads first, and `env delete` lists what it labelled where
    // it applied it (`crate::env::leave`) and deletes it: each object kindling makes needs
    // all five, in its namespace.
    rights
        .into_iter()
        .flat_map(|r| {
            let verbs: &[&'static str] = match (r.verb, r.subresource) {
                ("create", "") => &["get", "list", "create", "patch", "delete"],
                _ => &[r.verb],
            };
            verbs
                .iter()
                .map(|verb| Right { verb, ..r.clone() })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The error for rights the user lacks: every one of them, what it is for, and the fix.
pub fn missing_rights_error(context: &str, missing: &[Missing]) -> String {
    let lines: Vec<String> = missing
        .iter()
        .map(|m| {
            let reason = match m.reason.is_empty() {
                true => String::new(),
                false => format!(" ({})", m.reason),
            };
            format!("  - {}: for {}{reason}", m.right.describe(), m.right.why)
        })
        .collect();
    format!(
        "the user of context {context} lacks rights kindling needs; nothing was changed:\n{}\nhelp: ask the cluster's admin for them (`kubectl auth can-i VERB RESOURCE -n NAMESPACE` checks one), or use a context with more rights",
        lines.join("\n")
    )
}

/// Checks the API answers and the user has every right the create needs.
pub async fn check(
    kube: &KubeClient,
    cluster: &ExistingCluster,
    env: &str,
    engine: Engine,
    found: Found,
) -> Result<(), String> {
    let missing = kube
        .missing_rights(&rights(env, engine, found))
        .await
        .map_err(|e| {
            format!(
                "the API server of context {} ({}) did not answer: {e}\nhelp: check the context with `kubectl --context {} get --raw /version`",
                cluster.context,
                cluster.kubeconfig.display(),
                cluster.context
            )
        })?;
    match missing.is_empty() {
        true => Ok(()),
        false => Err(missing_rights_error(&cluster.context, &missing)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_needs_install_rights_only_when_the_engine_is_absent() {
        let absent = rights("dev", Engine::Flux, Found::default());
        assert!(
            absent
                .iter()
                .any(|r| r.resource == "customresourcedefinitions")
        );
        let present = rights(
            "dev",
            Engine::Flux,
            Found {
                engine: true,
                ca_namespace: Some("cert-manager".into()),
                engine_objects_namespace: "kindling-dev".into(),
            },
        );
        // The CA's Secret is asked for only where it is handed over.
        let secrets_in = |rights: &[Right], ns: &str| {
            rights
                .iter()
                .any(|r| r.resource == "secrets" && r.namespace.as_deref() == Some(ns))
        };
        assert!(secrets_in(&present, "cert-manager"));
        assert!(!secrets_in(&absent, "cert-manager"));
        assert!(
            !present
                .iter()
                .any(|r| r.resource == "customresourcedefinitions")
        );
        // The env's Flux objects go to its own namespace, and nothing is asked of Flux's.
        assert!(
            present.iter().any(|r| r.resource == "kustomizations"
                && r.namespace.as_deref() == Some("kindling-dev"))
        );
        assert!(
            !present
                .iter()
                .any(|r| r.namespace.as_deref() == Some("flux-system"))
        );
        assert!(
            present.iter().any(|r| r.subresource == "portforward"
                && r.namespace.as_deref() == Some("kindling-dev"))
        );
        // Argo CD: Applications in the env's namespace, its project and credentials in argocd.
        let argo = rights(
            "dev",
            Engine::Argo,
            Found {
                engine: true,
                ca_namespace: None,
                engine_objects_namespace: "kindling-dev".into(),
            },
        );
        let asks = |resource: &str, ns: &str| {
            argo.iter()
                .any(|r| r.resource == resource && r.namespace.as_deref() == Some(ns))
        };
        assert!(asks("applications", "kindling-dev"));
        assert!(asks("appprojects", "argocd"));
        assert!(asks("secrets", "argocd"));
        assert!(!asks("applications", "argocd"));
    }

    #[test]
    fn existing_refuses_a_context_the_kubeconfig_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncontexts:\n- name: team\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        assert_eq!(
            ExistingCluster::new("team", Some(&path)).unwrap().context,
            "team"
        );
        let err = ExistingCluster::new("prod", Some(&path)).unwrap_err();
        assert!(err.contains("has no context prod (it has: team)"), "{err}");
        let err = ExistingCluster::new("team", Some(&dir.path().join("nope"))).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }
}
