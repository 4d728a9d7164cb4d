//! Gitea for the env: the external one (`KINDLING_GITEA_URL`), or a container (volume, image,
//! admin user, token, repository), each part checked before it is made.

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step, join_error, running};
use crate::cluster::Provider;
use crate::env::state::GiteaState;
use crate::env::{EnvError, Settings};
use crate::gitea::{self, Auth, GiteaClient};

pub struct Gitea;

impl Step for Gitea {
    fn name(&self) -> &'static str {
        "gitea"
    }

    fn line(&self, _ctx: &Ctx<'_>) -> String {
        "source repository".into()
    }

    fn skip<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let recorded = ctx.state().gitea.clone();
            let exists = match recorded {
                Some(g) if g.external => true,
                // Applied again every run: cheap, and it puts back what was removed.
                Some(g) if g.in_cluster => false,
                Some(_) => running(ctx, &gitea::container_name(ctx.env())).await,
                None => false,
            };
            ctx.made_and_present(self.name(), exists)
                .then(|| "running".to_string())
        })
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let settings = ctx.settings;
            let env = ctx.env();
            let (port, previous) = {
                let state = ctx.state();
                (state.ports.gitea, state.gitea.clone())
            };
            let provider = ctx.resolved.provider;
            let (url, user, password, external) = match &settings.external_gitea {
                Some(g) => {
                    ctx.progress.detail(&format!("gitea: external {}", g.url));
                    (g.url.clone(), g.user.clone(), g.password.clone(), true)
                }
                None if provider == Provider::Existing => {
                    let (url, password) = in_cluster(ctx, previous.as_ref()).await?;
                    (url, gitea::ADMIN_USER.to_string(), password, false)
                }
                None => {
                    let network = ctx.env_network().await?;
                    let port =
                        port.ok_or_else(|| EnvError::Preflight("no Gitea port allocated".into()))?;
                    ctx.progress.detail(&format!(
                        "gitea: container {} ({}) on network {network}, 127.0.0.1:{port}",
                        gitea::container_name(env),
                        settings.gitea_image,
                    ));
                    let docker = ctx.docker()?;
                    let mut spec = gitea::container_spec(env, network, port);
                    spec.image = settings.gitea_image.clone();
                    // Gitea fetches from the internet for migrations and mirrors: through a
                    // TLS-intercepting proxy it needs the network's root CAs (Go reads every
                    // file of /etc/ssl/certs, `crate::pki::extra_ca`).
                    if let Some(path) = &ctx.resolved.extra_ca {
                        spec.binds.push(crate::docker::BindMount {
                            source: path.clone(),
                            target: crate::pki::extra_ca::CONTAINER_PATH.to_string(),
                            read_only: true,
                        });
                    }
                    for v in &spec.volumes {
                        docker.ensure_volume(&v.volume, &spec.labels).await?;
                    }
                    docker.ensure_image(&spec.image, &mut |_| {}).await?;
                    docker.run_container(&spec).await?;
                    docker.wait_ready(&spec.name, settings.step_timeout).await?;
                    // A rerun keeps the password Gitea already has (the volume outlives the
                    // container); a new admin gets one Gitea generates.
                    let known = previous
                        .as_ref()
                        .filter(|p| !p.external)
                        .map(|p| p.password.clone());
                    let (_, password) =
                        gitea::ensure_admin(docker, &spec.name, known.as_deref()).await?;
                    (
                        format!("http://127.0.0.1:{port}"),
                        gitea::ADMIN_USER.to_string(),
                        password,
                        false,
                    )
                }
            };
            let client = GiteaClient::new(
                &url,
                Auth::Basic {
                    user: user.clone(),
                    password: password.clone(),
                },
            );
            let timeout = settings.step_timeout;
            let (token, engine_token) = tokio::task::spawn_blocking(move || {
                client.wait_healthy(timeout)?;
                let token = client.create_token()?;
                let engine_token = client.create_engine_token()?;
                client.ensure_repository()?;
                Ok::<_, EnvError>((token, engine_token))
            })
            .await
            .map_err(join_error)??;
            let in_cluster = !external && provider == Provider::Existing;
            ctx.state().gitea = Some(GiteaState {
                // A port-forward lives as long as the command that opened it.
                url: if in_cluster {
                    String::new()
                } else {
                    url.clone()
                },
                cluster_repo_url: in_cluster_url(settings, env, provider),
                user,
                password,
                token: Some(token.sha1),
                engine_token: Some(engine_token.sha1),
                external,
                in_cluster,
            });
            Ok(url)
        })
    }
}

/// The repository URL as the engine in the cluster reaches it.
pub fn in_cluster_url(settings: &Settings, env: &str, provider: Provider) -> String {
    match &settings.external_gitea {
        Some(g) => g
            .cluster_url
            .clone()
            .unwrap_or_else(|| format!("{}/{}/{}.git", g.url, g.user, gitea::REPOSITORY)),
        None if provider == Provider::Existing => gitea::in_cluster::repo_url(env),
        None => gitea::service_repo_url(),
    }
}

/// Gitea in the cluster (`--provider existing`): its objects applied, its pod Ready, and the
/// URL of a port-forward to it. The admin password is generated once and kept.
async fn in_cluster(
    ctx: &Ctx<'_>,
    previous: Option<&GiteaState>,
) -> Result<(String, String), EnvError> {
    let env = ctx.env();
    let password = match previous.filter(|p| p.in_cluster) {
        Some(p) => p.password.clone(),
        // Gitea's admin password: letters and digits only (it passes through a shell
        // variable in the init script), 32 of them.
        None => crate::stamp::generator::SecretGenerator::new(
            crate::stamp::generator::GeneratorKind::Token,
            Some(32),
        )
        .generate()
        .map_err(|e| EnvError::Preflight(e.to_string()))?,
    };
    let namespace = gitea::in_cluster::namespace(env);
    let image = gitea::in_cluster::image(&ctx.settings.gitea_image);
    ctx.progress.detail(&format!(
        "gitea: Deployment {namespace}/{} ({image}), data on a PersistentVolumeClaim",
        gitea::in_cluster::NAME
    ));
    let kube = ctx.kube().await?;
    kube.apply_objects(
        &gitea::in_cluster::objects(env, &image, &password),
        &crate::kube::ApplyOptions::new(ctx.settings.step_timeout),
    )
    .await?;
    kube.wait_workloads_ready(&namespace, ctx.settings.step_timeout)
        .await?;
    let url = forward_url(&ctx.cluster_state()?, env)?;
    Ok((url, password))
}

/// `http://127.0.0.1:PORT`, a port-forward (opened once per process) to the env's Gitea pod.
pub fn forward_url(
    cluster: &crate::env::state::ClusterState,
    env: &str,
) -> Result<String, EnvError> {
    let address = crate::kube::forward::open(&crate::kube::forward::Target {
        kubeconfig: cluster.kubeconfig.clone(),
        context: cluster.context.clone(),
        namespace: gitea::in_cluster::namespace(env),
        selector: gitea::in_cluster::selector(env),
        port: gitea::HTTP_PORT,
    })?;
    Ok(format!("http://{address}"))
}
