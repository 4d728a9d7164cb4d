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
    pub async fn list_envs(&self) -> Result<BTreeMap<String, EnvObjects>, DockerError> {
        let filters = Self::label_filter(ENV_LABEL);
        let mut envs: BTreeMap<String, EnvObjects> = BTreeMap::new();
        for c in self.containers_with(&filters).await? {
            let env = c.labels.as_ref().and_then(|l| l.get(ENV_LABEL)).cloned();
            if let (Some(env), Some(name)) = (env, container_name(c)) {
                envs.entry(env).or_default().containers.push(name);
            }
        }
        for v in self.volumes_with(&filters).await? {
            if let Some(env) = v.labels.get(ENV_LABEL) {
                envs.entry(env.clone())
                    .or_default()
                    .volumes
                    .push(v.name.clone());
            }
        }
        for n in self.networks_with(&filters).await? {
            if let (Some(env), Some(name)) = (
                n.labels.as_ref().and_then(|l| l.get(ENV_LABEL)).cloned(),
                n.name,
            ) {
                envs.entry(env).or_default().networks.push(name);
            }
        }
        Ok(envs)
    }
}
