//! `env list`: envs from their state, plus labelled Docker objects no state accounts for
//! (orphans, which `env delete NAME` removes).

use serde::Serialize;

use super::state::{EnvState, env_names};
use super::{EnvError, Settings, steps};
use crate::docker::{DockerClient, EnvObjects};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListEntry {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// `complete`, `incomplete (next: STEP)`, `held`, `broken (WHY)` (a state.json that cannot
    /// be read), `orphaned` (Docker objects, no state), or
    /// `another data dir's`: objects another data dir made (another user's or CI
    /// job's), which `env delete --all` leaves alone and only `env delete NAME` removes.
    pub state: String,
    pub docker: EnvObjects,
}

/// The state of objects another data dir made.
pub const FOREIGN: &str = "another data dir's";

/// Envs from their state, plus labelled Docker objects no state accounts for.
pub async fn list(settings: &Settings) -> Result<Vec<ListEntry>, EnvError> {
    // Without the engine nothing can be said of what each env has running: say so (exit 1),
    // never "no envs". Envs on existing clusters alone need no Docker (a laptop without it).
    let docker = match DockerClient::connect().await {
        Ok(docker) => Some(docker),
        Err(_) if only_existing_clusters(settings) => None,
        Err(e) => return Err(e.into()),
    };
    let data_id = crate::docker::data_dir_id(&settings.data_dir);
    let (mut docker_envs, elsewhere) = match &docker {
        Some(docker) => (
            docker.list_envs(&data_id, false).await?,
            docker.list_envs(&data_id, true).await?,
        ),
        None => Default::default(),
    };
    let mut out = Vec::new();
    for name in env_names(&settings.data_dir) {
        let state = match EnvState::load(&settings.env_dir(&name)) {
            Ok(Some(state)) => state,
            Ok(None) => continue,
            // Listed, not hidden: the user sees it and can delete it.
            Err(e) => {
                out.push(ListEntry {
                    state: format!(
                        "broken ({})",
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                    stamp: None,
                    provider: None,
                    engine: None,
                    docker: docker_envs.remove(&name).unwrap_or_default(),
                    name,
                });
                continue;
            }
        };
        let next = steps::unfinished(&state).into_iter().next();
        out.push(ListEntry {
            state: match next {
                Some(step) => format!("incomplete (next: {step})"),
                None if state.hold => "held".into(),
                None => "complete".into(),
            },
            stamp: Some(state.stamp.clone()),
            provider: Some(state.provider.name().into()),
            engine: Some(state.engine.name().into()),
            docker: docker_envs.remove(&name).unwrap_or_default(),
            name,
        });
    }
    for (name, objects) in docker_envs {
        out.push(ListEntry {
            name,
            stamp: None,
            provider: None,
            engine: None,
            state: "orphaned".into(),
            docker: objects,
        });
    }
    for (name, objects) in elsewhere {
        out.push(ListEntry {
            name,
            stamp: None,
            provider: None,
            engine: None,
            state: FOREIGN.into(),
            docker: objects,
        });
    }
    Ok(out)
}

/// Whether every env of the data dir (and there is one) runs on a cluster kindling did not
/// make.
fn only_existing_clusters(settings: &Settings) -> bool {
    let names = env_names(&settings.data_dir);
    !names.is_empty()
        && names.iter().all(|name| {
            EnvState::load(&settings.env_dir(name))
                .ok()
                .flatten()
                .is_some_and(|s| !s.provider.makes_the_cluster())
        })
}

/// An env found on a cluster kindling did not make (`env list --provider existing`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterEnv {
    pub name: String,
    /// Where its objects are: `NAMESPACE` or `KIND NAMESPACE/NAME` (its engine objects).
    pub found: Vec<String>,
    /// This data dir has the env's state (it can sync, status and delete it).
    pub known_here: bool,
}

/// The envs present on the cluster of `existing`: every object carrying the env label among
/// Namespaces and the engines' own objects, by env.
pub async fn list_on_cluster(
    settings: &Settings,
    existing: &crate::cluster::existing::ExistingCluster,
) -> Result<Vec<ClusterEnv>, EnvError> {
    let kube =
        crate::kube::KubeClient::from_kubeconfig(&existing.kubeconfig, Some(&existing.context))
            .await?;
    let mut envs: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (api_version, kind) in [
        ("v1", "Namespace"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
        ("argoproj.io/v1alpha1", "Application"),
    ] {
        for object in kube
            .list_labelled(api_version, kind, crate::ENV_LABEL)
            .await?
        {
            let Some(env) = object["metadata"]["labels"][crate::ENV_LABEL].as_str() else {
                continue;
            };
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let found = match object["metadata"]["namespace"].as_str() {
                Some(ns) => format!("{kind} {ns}/{name}"),
                None => format!("{kind} {name}"),
            };
            envs.entry(env.to_string()).or_default().push(found);
        }
    }
    Ok(envs
        .into_iter()
        .map(|(name, found)| {
            let known_here = EnvState::load(&settings.env_dir(&name))
                .ok()
                .flatten()
                .and_then(|s| s.existing)
                .is_some_and(|e| e.context == existing.context);
            ClusterEnv {
                name,
                found,
                known_here,
            }
        })
        .collect())
}
