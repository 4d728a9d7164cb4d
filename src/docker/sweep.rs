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
        self.labelled_where(label, |_| true).await
    }
    /// Every object labelled `label` that the data dir `data_id` may take as its own: its data
    /// label is `data_id`, or it has none (made before kindling had one, or a provider's node
    /// labelled with the env only). Another data dir's objects are left out.
    pub async fn labelled_ours(
        &self,
        label: &str,
        data_id: &str,
    ) -> Result<EnvObjects, DockerError> {
        self.labelled_where(label, |labels| {
            labels
                .and_then(|l| l.get(DATA_LABEL))
                .is_none_or(|d| d == data_id)
        })
        .await
    }
    /// The objects labelled `label` whose labels `keep` accepts.
    async fn labelled_where(
        &self,
        label: &str,
        keep: impl Fn(Option<&HashMap<String, String>>) -> bool,
    ) -> Result<EnvObjects, DockerError> {
        let filters = Self::label_filter(label);
        Ok(EnvObjects {
            containers: self
                .containers_with(&filters)
                .await?
                .into_iter()
                .filter(|c| keep(c.labels.as_ref()))
                .filter_map(container_name)
                .collect(),
            volumes: self
                .volumes_with(&filters)
                .await?
                .into_iter()
                .filter(|v| keep(Some(&v.labels)))
                .map(|v| v.name)
                .collect(),
            networks: self
                .networks_with(&filters)
                .await?
                .into_iter()
                .filter(|n| keep(n.labels.as_ref()))
                .filter_map(|n| n.name)
                .collect(),
        })
    }
    /// Removes every container, then volume, then network labelled with the env (that order:
    /// volumes and networks in use cannot go first). With `only_ours` (the env is this data
    /// dir's), another data dir's objects of an env of the same name stay; without (an
    /// explicit `env delete NAME` of leftovers this data dir has no record of), every object
    /// labelled with the env goes. Safe to run twice; shared caches carry no env label and stay.
    pub async fn sweep(&self, env: &str, only_ours: bool) -> Result<SweepReport, DockerError> {
        let label = format!("{ENV_LABEL}={env}");
        let found = if only_ours {
            let data_id = super::data_dir_id(&crate::paths::data_dir());
            self.labelled_ours(&label, &data_id).await?
        } else {
            self.labelled(&label).await?
        };
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
