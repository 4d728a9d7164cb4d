//! An env's record on the host (`$DATA/envs/NAME/state.json`, 0600: it holds the Gitea
//! credentials): what it was created from, which steps finished and how long they took, its
//! ports, URLs and versions. Written atomically after every step, so a crash or Ctrl-C leaves
//! the last finished step recorded and nothing half-written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cluster::Provider;
use crate::stamp::render::Engine;

use super::EnvError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub name: String,
    pub finished_at: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ports {
    pub http: u16,
    pub https: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gitea: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<u16>,
    /// With the ingress add-on: the host ports of HostK8s' Gateway API NodePorts (30081,
    /// 30444), 8081 and 8444 unless taken (`crate::addons::GATEWAY_NODE_PORTS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<crate::cluster::IngressPorts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GiteaState {
    /// How the host reaches Gitea.
    pub url: String,
    /// The clone URL the engine uses from inside the cluster.
    pub cluster_repo_url: String,
    pub user: String,
    pub password: String,
    /// The token kindling pushes with (repository write); stays on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The read-only token the engine clones with (in the cluster's credentials Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_token: Option<String>,
    /// A Gitea kindling did not start (`KINDLING_GITEA_URL`): never removed by delete.
    pub external: bool,
    /// Gitea runs in the cluster (`--provider existing`, `crate::gitea::in_cluster`): `url`
    /// is empty in the record and is a port-forward opened by the command that needs it
    /// (`crate::env::open::gitea_of`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_cluster: bool,
}

impl GiteaState {
    /// What kindling pushes with: its token, or the password where no token was made.
    pub fn push_token(&self) -> String {
        self.token.clone().unwrap_or_else(|| self.password.clone())
    }

    /// What the engine clones with: the read-only token (the Secret holding it is readable in
    /// the cluster, and must not push), else kindling's own.
    pub fn engine_password(&self) -> String {
        self.engine_token
            .clone()
            .or_else(|| self.token.clone())
            .unwrap_or_else(|| self.password.clone())
    }

    /// The clone URL of the user's repository `name` as the host reaches it.
    pub fn host_repository_url(&self, name: &str) -> String {
        format!("{}/{}/{name}.git", self.url, self.user)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterState {
    pub name: String,
    pub context: String,
    pub kubeconfig: PathBuf,
    pub network: String,
    /// The addresses the `metallb` add-on gives LoadBalancer Services, from the network's
    /// subnet (`crate::addons::metallb::pool_range`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_range: Option<String>,
}

impl EnvState {
    /// What the add-on parts made from the cluster need (`crate::addons::ClusterFacts`).
    pub fn cluster_facts(&self) -> crate::addons::ClusterFacts {
        crate::addons::ClusterFacts {
            load_balancer_range: self
                .cluster
                .as_ref()
                .and_then(|c| c.load_balancer_range.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvState {
    pub name: String,
    pub stamp: String,
    pub stamp_dir: PathBuf,
    pub source: PathBuf,
    pub provider: Provider,
    pub engine: Engine,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<PathBuf>,
    /// Created with `--hold` and not approved yet.
    pub hold: bool,
    /// Reconciliation paused by `env suspend`, until `env resume`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    pub created_at: String,
    pub ports: Ports,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterState>,
    /// This data dir asked kind or k3d to make the cluster (recorded before asking): a
    /// rerun after a crash mid-create takes the cluster it finds; without this, a cluster of
    /// that name is someone else's and is never adopted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_requested: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gitea: Option<GiteaState>,
    /// The commit of the last snapshot pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    /// The SHA-256 fingerprints of the network's root CAs the env was made with
    /// (`crate::pki::extra_ca`); their PEM is the env directory's `extra-ca.pem`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_ca: Vec<String>,
    /// The node paths of the storage the nodes were made with (`crate::env::storage`):
    /// mounts are fixed when the cluster is made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<String>,
    /// The cluster add-ons the env was made with (`crate::addons`), entries of its stamp.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addons: Vec<String>,
    /// Stacks added beside the env's stamp with `env up` (HostK8s `make up NAME` on a running
    /// cluster), in the order they came; `env down` takes one away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<AddedStack>,
    /// HostK8s apps deployed with `env deploy` (`make deploy NAME NAMESPACE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<DeployedApp>,
    /// A stack or app taken out of the root whose objects are still being removed
    /// (`crate::env::removal`): the next `env down` / `env remove` finishes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removing: Option<super::removal::Removal>,
    /// Entries `env apply` applied from the working tree; `env sync` hands them back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_directly: Vec<String>,
    /// Entries with `gate: manual` that `env approve ENV ENTRY` let reconcile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_gates: Vec<String>,
    /// The kustomize overlay the env runs (`env create --overlay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<String>,
    /// The idpbuilder package directories (absolute) the env runs (`--package`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PathBuf>,
    /// The cluster kindling did not make (`--provider existing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<crate::cluster::existing::ExistingCluster>,
    /// The engine was on the cluster before the env: used as it is, never upgraded or
    /// removed by kindling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_engine: Option<FoundEngineState>,
    /// The cert-manager the cluster ran before the env's bootstrap (`--provider existing`):
    /// used as it is, in place of the stamp's own install, never upgraded or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_cert_manager: Option<crate::cluster::cert_manager::ClusterCertManager>,
    /// The cluster was asked for a cert-manager of its own (before the env's first bootstrap):
    /// a rerun keeps that answer, and never takes the stamp's own for the cluster's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cert_manager_asked: bool,
    /// Where the env's engine objects live when not in the engine's own namespace: its Flux
    /// objects, or its Argo CD Applications (recorded when the env is made; an env without the
    /// record keeps them in `flux-system` or `argocd`). Recorded as `fluxNamespace` before
    /// envs on Argo CD had one.
    #[serde(
        default,
        rename = "objectsNamespace",
        alias = "fluxNamespace",
        skip_serializing_if = "Option::is_none"
    )]
    pub objects_namespace: Option<String>,
}

/// An engine kindling found rather than installed (`crate::engine::detect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundEngineState {
    pub version: String,
    /// The other kindling env that installed it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_by: Option<String>,
}

/// An app `env deploy` deployed: its name under `software/apps` and its namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedApp {
    pub name: String,
    pub namespace: String,
}

/// A stack `env up` added: what the user called it and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedStack {
    pub name: String,
    pub dir: PathBuf,
}

impl EnvState {
    pub fn path(env_dir: &Path) -> PathBuf {
        env_dir.join("state.json")
    }

    pub fn load(env_dir: &Path) -> Result<Option<EnvState>, EnvError> {
        let path = Self::path(env_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| EnvError::State {
                    path: path.clone(),
                    reason: format!("{e}; delete the env (`kindling env delete`) to start over"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EnvError::State {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Atomic, 0600.
    pub fn save(&self, env_dir: &Path) -> Result<(), EnvError> {
        let path = Self::path(env_dir);
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        crate::paths::write_atomic(&path, &bytes, 0o600).map_err(|e| EnvError::State {
            path,
            reason: crate::paths::write_failure(&e),
        })
    }

    /// The network's root CAs the env was made with, from the env directory's copy (checked
    /// against the fingerprints recorded).
    pub fn extra_ca(
        &self,
        env_dir: &Path,
    ) -> Result<Option<crate::pki::extra_ca::ExtraCa>, EnvError> {
        use crate::pki::extra_ca::ExtraCa;
        if self.extra_ca.is_empty() {
            return Ok(None);
        }
        let path = ExtraCa::env_copy(env_dir);
        let damaged = |reason: String| EnvError::State {
            path: path.clone(),
            reason: format!(
                "{reason}; run `kindling env create {}` again with the same --extra-ca files to restore it",
                self.name
            ),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| damaged(e.to_string()))?;
        let roots = ExtraCa::from_pem(&path, &text).map_err(|e| damaged(e.to_string()))?;
        if roots.fingerprints() != self.extra_ca {
            return Err(damaged(
                "it no longer holds the CAs the env was made with".to_string(),
            ));
        }
        Ok(Some(roots))
    }

    /// The namespace of the env's CA Secret: where its cert-manager reads ClusterIssuers'
    /// Secrets.
    pub fn ca_secret_namespace(&self) -> &str {
        self.cluster_cert_manager
            .as_ref()
            .map(|c| c.resource_namespace.as_str())
            .unwrap_or(crate::pki::CA_SECRET.0)
    }

    /// The namespace of the env's engine objects (`crate::engine::objects_namespace`).
    pub fn engine_objects_namespace(&self) -> &str {
        crate::engine::objects_namespace_in(self.engine, self.objects_namespace.as_deref())
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.steps.iter().any(|s| s.name == step)
    }

    pub fn record(&mut self, step: &str, duration: std::time::Duration) {
        self.steps.retain(|s| s.name != step);
        self.steps.push(StepRecord {
            name: step.to_string(),
            finished_at: now_rfc3339(),
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        });
    }

    /// Forgets a step so the next run does it again (`env restart` re-bootstraps).
    pub fn forget(&mut self, step: &str) {
        self.steps.retain(|s| s.name != step);
    }

    /// The same state with credentials replaced, for JSON output and logs.
    pub fn redacted(&self) -> EnvState {
        let mut copy = self.clone();
        if let Some(g) = &mut copy.gitea {
            g.password = "<redacted>".into();
            g.token = g.token.as_ref().map(|_| "<redacted>".into());
            g.engine_token = g.engine_token.as_ref().map(|_| "<redacted>".into());
        }
        copy
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The names of every env with a state directory (not a directory `env delete` moved aside,
/// `.NAME.deleted-PID`, left by a delete that was killed before it removed it).
pub fn env_names(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("envs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    names
}
