//! The label sweep: every object labelled for an env (what `env delete` removes), and the envs
//! Docker knows of (for `env list` and orphans).

// One type's methods, split by what they work on: the parent module's names are theirs.
use super::*;

/// What a sweep removed, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.volumes.is_empty() && self.networks.is_empty()
    }
}

/// Labelled Docker objects of one env, as found (for `env list` and orphan detection).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EnvObjects {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
}

impl DockerClient {
    /// Every container, volume and network labelled `label` (`key=value`).
    pub async fn labelled(&self, label: &str) -> Result<EnvObjects, DockerError> {
        let filters = Self::label_filter(label);
        Ok(EnvObjects {
            containers: self
                .containers_with(&filters)
                .await?
                .into_iter()
                .filter_map(container_name)
                .collect(),
            volumes: self
                .volumes_with(&filters)
                .await?
                .into_iter()
                .map(|v| v.name)
                .collect(),
            networks: self
                .networks_with(&filters)
                .await?
                .into_iter()
                .filter_map(|n| n.name)
                .collect(),
        })
    }
    /// Removes every container, then volume, then network labelled with the env (that order:
    /// volumes and networks in use cannot go first). Safe to run twice; shared caches carry no
    /// env label and stay.
    pub async fn sweep(&self, env: &str) -> Result<SweepReport, DockerError> {
        let found = self.labelled(&format!("{ENV_LABEL}={env}")).await?;
        // Within each kind, removals are independent: run them concurrently.
        async fn removed<F: std::future::Future<Output = Result<bool, DockerError>>>(
            names: Vec<String>,
            remove: impl Fn(String) -> F,
        ) -> Result<Vec<String>, DockerError> {
            let results = futures_util::future::join_all(names.iter().cloned().map(remove)).await;
            let mut out = Vec::new();
            for (name, result) in names.into_iter().zip(results) {
                if result? {
                    out.push(name);
                }
            }
            Ok(out)
        }
        // Containers first (volumes and networks in use cannot go); then volumes and networks,
        // which do not depend on each other.
        let containers = removed(found.containers, |c| async move {
            self.remove_container(&c).await
        })
        .await?;
        let (volumes, networks) = tokio::join!(
            removed(
                found.volumes,
                |v| async move { self.remove_volume(&v).await }
            ),
            removed(
                found.networks,
                |n| async move { self.remove_network(&n).await }
            ),
        );
        Ok(SweepReport {
            containers,
            volumes: volumes?,
            networks: networks?,
        })
    }
    /// Env names found on labelled Docker objects, with what each has.
    /// The envs Docker holds objects of, as the data directory `data_id` (`data_dir_id`) sees
    /// them: objects another data directory labelled are not its to list or delete. Objects
    /// without a data label (made by kindling before it had one, or by a provider that labels
    /// its nodes with the env only) count as this one's.
    /// Labelled objects by env: this data dir's (`foreign` false: its id, or no data label),
    /// or those another data dir made (`foreign` true).
    pub async fn list_envs(
        &self,
        data_id: &str,
        foreign: bool,
    ) -> Result<BTreeMap<String, EnvObjects>, DockerError> {
        let filters = Self::label_filter(ENV_LABEL);
        let ours = |labels: Option<&HashMap<String, String>>| -> Option<String> {
            let labels = labels?;
            let elsewhere = labels.get(DATA_LABEL).is_some_and(|d| d != data_id);
            (elsewhere == foreign)
                .then(|| labels.get(ENV_LABEL).cloned())
                .flatten()
        };
        let mut envs: BTreeMap<String, EnvObjects> = BTreeMap::new();
        for c in self.containers_with(&filters).await? {
            let env = ours(c.labels.as_ref());
            if let (Some(env), Some(name)) = (env, container_name(c)) {
                envs.entry(env).or_default().containers.push(name);
            }
        }
        for v in self.volumes_with(&filters).await? {
            if let Some(env) = ours(Some(&v.labels)) {
                envs.entry(env).or_default().volumes.push(v.name.clone());
            }
        }
        for n in self.networks_with(&filters).await? {
            if let (Some(env), Some(name)) = (ours(n.labels.as_ref()), n.name) {
                envs.entry(env).or_default().networks.push(name);
            }
        }
        Ok(envs)
    }
}
