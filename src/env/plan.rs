//! What `env create --dry-run` prints: everything the flow would name and create, nothing
//! touched, credentials redacted.

use serde::Serialize;
use serde_json::{Value, json};

use super::ports::DEFAULT_GITEA_PORT;
use super::state::{GiteaState, Ports};
use super::steps::{bootstrap, gitea::in_cluster_url, push};
use super::{CreateOptions, EnvError, Settings};
use crate::cluster::{self, Provider, ResolvedCluster};
use crate::engine::{self, Engine};
use crate::stamp::Stamp;
use crate::{gitea, registry};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub env: String,
    pub stamp: String,
    pub provider: Provider,
    pub engine: Engine,
    pub steps: Vec<&'static str>,
    pub cluster: ResolvedCluster,
    pub context: String,
    pub cluster_config: String,
    pub ports: Ports,
    pub gitea: Value,
    pub registry: Option<String>,
    pub install_manifest: Value,
    /// Bootstrap objects with credentials shown as `<redacted>`.
    pub bootstrap: Vec<Value>,
    /// What the bootstrap secrets would read from this host (environment variables, files):
    /// where from, never the value. A stamp you did not write can ask for your tokens.
    pub host_values: Vec<HostValue>,
    /// The network's root CAs the nodes, Gitea, caches and chart sources will trust.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_ca: Vec<crate::pki::extra_ca::ExtraRoot>,
    /// The StorageClasses and PersistentVolumes of the stamp's storage (the host directories
    /// are `cluster.storage`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<Value>,
    /// The idpbuilder packages: their repositories, rewritten URLs and objects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<super::packages::PackagePlan>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostValue {
    /// `NAMESPACE/SECRET`
    pub secret: String,
    pub key: String,
    /// `env NAME` or `file PATH`.
    pub from: String,
}

fn host_values(stamp: &Stamp) -> Vec<HostValue> {
    use crate::stamp::SecretValue;
    stamp
        .secrets
        .iter()
        .flat_map(|s| {
            s.keys.iter().filter_map(move |k| {
                let from = match &k.value {
                    SecretValue::FromEnv(name) => format!("env {name}"),
                    SecretValue::FromFile(path) => format!("file {}", path.display()),
                    SecretValue::Literal(_) | SecretValue::Generate(_) => return None,
                };
                Some(HostValue {
                    secret: format!("{}/{}", s.namespace, s.name),
                    key: k.key.clone(),
                    from,
                })
            })
        })
        .collect()
}

pub fn plan(
    opts: &CreateOptions,
    settings: &Settings,
    stamp: &Stamp,
    resolved: &ResolvedCluster,
    ports: Ports,
    steps: Vec<&'static str>,
) -> Result<Plan, EnvError> {
    let env = opts.name.as_str();
    let provider = resolved.provider;
    let gitea = GiteaState {
        url: match &settings.external_gitea {
            Some(g) => g.url.clone(),
            None if provider == Provider::Existing => format!(
                "port-forward to {}/{}",
                gitea::in_cluster::namespace(env),
                gitea::in_cluster::NAME
            ),
            None => format!(
                "http://127.0.0.1:{}",
                ports.gitea.unwrap_or(DEFAULT_GITEA_PORT)
            ),
        },
        cluster_repo_url: in_cluster_url(settings, env, provider),
        user: gitea::ADMIN_USER.into(),
        password: "<redacted>".into(),
        token: None,
        engine_token: None,
        external: settings.external_gitea.is_some(),
        in_cluster: settings.external_gitea.is_none() && provider == Provider::Existing,
    };
    crate::engine::secrets::check_host_values(stamp, &settings.allow_secret_from)?;
    let extra_ca = crate::pki::extra_ca::ExtraCa::load(&opts.extra_ca)?;
    let rendered = push::render(
        stamp,
        opts.engine,
        &gitea,
        extra_ca.is_some(),
        &settings.data_dir,
        None,
    )?;
    let bootstrap = redact_secrets(&bootstrap::objects(
        opts.engine,
        stamp,
        &rendered,
        &gitea,
        opts.hold,
        extra_ca.as_ref(),
    ));
    let pinned = engine::manifests::pinned(opts.engine);
    let context = match resolved.provider {
        Provider::Kind => format!("kind-{}", resolved.name),
        Provider::K3d => format!("k3d-{}", resolved.name),
        Provider::Existing => opts
            .existing
            .as_ref()
            .map(|e| e.context.clone())
            .unwrap_or_default(),
    };
    Ok(Plan {
        env: env.to_string(),
        stamp: stamp.name.clone(),
        provider: resolved.provider,
        engine: opts.engine,
        steps,
        cluster: resolved.clone(),
        context,
        cluster_config: cluster::render_config(resolved, env),
        gitea: json!({
            "container": if gitea.external { Value::Null } else { json!(gitea::container_name(env)) },
            "url": gitea.url,
            "clusterRepoUrl": gitea.cluster_repo_url,
            "image": if gitea.external { Value::Null } else { json!(settings.gitea_image) },
        }),
        registry: ports
            .registry
            .map(|p| format!("{} on localhost:{p}", registry::registry_container(env))),
        ports,
        install_manifest: json!({"version": pinned.version, "url": pinned.url, "sha256": pinned.sha256}),
        bootstrap,
        host_values: host_values(stamp),
        extra_ca: extra_ca.map(|c| c.roots).unwrap_or_default(),
        storage: crate::stamp::storage::objects(&stamp.storage),
        packages: super::packages::plans(
            &super::packages::load_all(&super::packages::absolute(&opts.packages)?, opts.engine)?,
            &super::packages::PackageTarget {
                engine: opts.engine,
                env,
                flux_namespace: stamp.flux_namespace(),
            },
            &gitea.cluster_repo_url,
        )?,
        notes: rendered.notes,
    })
}

fn redact_secrets(objects: &[Value]) -> Vec<Value> {
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if o["kind"] == "Secret"
                && let Some(data) = o["data"].as_object_mut()
            {
                for v in data.values_mut() {
                    *v = json!("<redacted>");
                }
            }
            o
        })
        .collect()
}
