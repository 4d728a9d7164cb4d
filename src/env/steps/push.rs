//! The stamp rendered for the env's engine and pushed, with the source tree, to Gitea.

use std::path::Path;

use futures_util::future::LocalBoxFuture;

use super::{Ctx, Step, join_error};
use crate::engine::Engine;
use crate::env::EnvError;
use crate::env::state::{GiteaState, now_rfc3339};
use crate::gitea;
use crate::stamp::render::{RenderOptions, Rendered};
use crate::stamp::{self, Stamp};

pub struct Push;

impl Step for Push {
    fn name(&self) -> &'static str {
        "push"
    }

    fn line(&self, ctx: &Ctx<'_>) -> String {
        format!("{} → Gitea", ctx.stamp.repo_root.display())
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let gitea = ctx.gitea_state()?;
            let extra_ca = ctx.resolved.extra_ca.is_some();
            let mut facts = ctx.state().cluster_facts();
            if facts.load_balancer_range.is_none() {
                let mut state = ctx.state().clone();
                super::cluster::fill_cluster_facts(&mut state).await;
                facts = state.cluster_facts();
                if let (Some(range), Some(cluster)) =
                    (&facts.load_balancer_range, ctx.state().cluster.as_mut())
                {
                    cluster.load_balancer_range = Some(range.clone());
                }
            }
            let rendered = render(
                ctx.stamp,
                ctx.opts.engine,
                &gitea,
                extra_ca,
                &ctx.settings.data_dir,
                Some(&facts),
            )?;
            for note in &rendered.notes {
                ctx.progress.detail(note);
            }
            let commit = push(ctx.stamp, &rendered, &gitea).await?;
            let _ = ctx.rendered.set(rendered);
            ctx.state().commit = Some(commit.clone());
            Ok(format!("commit {}", short(&commit)))
        })
    }
}

/// A commit as the progress lines show it.
pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// How the stamp is rendered for an env whose Gitea is `gitea` (and which trusts the
/// network's root CAs when `extra_ca`); the charts a loaded bundle under `data_dir` holds
/// are served from the pushed tree.
pub fn render_options(
    stamp: &Stamp,
    gitea: &GiteaState,
    extra_ca: bool,
    data_dir: &Path,
    cluster: Option<&crate::addons::ClusterFacts>,
) -> Result<RenderOptions, EnvError> {
    let mut options = RenderOptions::standard(gitea.cluster_repo_url.clone());
    options.chart_ca_secret = extra_ca.then(|| crate::engine::extra_ca::FLUX_SECRET.to_string());
    for entry in &stamp.entries {
        let stamp::Source::Helm(chart) = &entry.source else {
            continue;
        };
        // A HostK8s app's chart is in the env's repository; a bundled chart, in the bundle.
        let files = match stamp::app::chart_files(&stamp.repo_root, chart)? {
            Some(files) => Some(files),
            None => crate::bundle::charts::local_chart(data_dir, chart)?,
        };
        if let Some(files) = files {
            options.local_charts.insert(entry.name.clone(), files);
        }
    }
    options.extra_files = crate::addons::pushed_files(stamp)?;
    options.extra_files.extend(stamp::extension_files(stamp)?);
    // What is made from the cluster (the metallb pool): known once it exists; a plan
    // before that shows the rest.
    if let Some(facts) = cluster {
        options
            .extra_files
            .extend(crate::addons::cluster_files(stamp, facts).map_err(|why| {
                EnvError::Preflight(format!(
                    "{why}\nhelp: check `docker network inspect` of the env's network; without an IPv4 subnet of /25 or wider, leave `metallb` out of the profile's spec.addons"
                ))
            })?);
    }
    Ok(options)
}

/// The stamp rendered for `engine` and the env's Gitea.
pub fn render(
    stamp: &Stamp,
    engine: Engine,
    gitea: &GiteaState,
    extra_ca: bool,
    data_dir: &Path,
    cluster: Option<&crate::addons::ClusterFacts>,
) -> Result<Rendered, EnvError> {
    Ok(stamp::render::render(
        stamp,
        engine,
        &render_options(stamp, gitea, extra_ca, data_dir, cluster)?,
    )?)
}

/// The stamp rendered for the env `state` records (its engine, its Gitea, its network
/// roots), as `env sync`, `restart`, `approve` and `resume` push or apply it.
pub fn render_for_env(
    stamp: &Stamp,
    state: &crate::env::state::EnvState,
    gitea: &GiteaState,
    data_dir: &Path,
) -> Result<Rendered, EnvError> {
    render(
        stamp,
        state.engine,
        gitea,
        !state.extra_ca.is_empty(),
        data_dir,
        Some(&state.cluster_facts()),
    )
}

/// Runs `work` (blocking git) against the env's repository, branch `main`, as kindling.
async fn on_env_repository<T: Send + 'static>(
    gitea: &GiteaState,
    work: impl FnOnce(&gitea::push::PushTarget<'_>) -> Result<T, gitea::push::PushError>
    + Send
    + 'static,
) -> Result<T, EnvError> {
    let user = gitea.user.clone();
    let token = gitea.push_token();
    let url = gitea.host_repository_url(gitea::REPOSITORY);
    let done = tokio::task::spawn_blocking(move || {
        work(&gitea::push::PushTarget {
            url: &url,
            user: &user,
            token: &token,
            branch: "main",
        })
    })
    .await
    .map_err(join_error)??;
    Ok(done)
}

/// Checks the env's branch out into `dest`: what Git says now. `None`: nothing pushed yet.
pub async fn check_out(gitea: &GiteaState, dest: &Path) -> Result<Option<String>, EnvError> {
    let dest = dest.to_path_buf();
    on_env_repository(gitea, move |target| gitea::push::check_out(&dest, target)).await
}

/// Pushes the source snapshot with the rendered bundle; returns the commit.
pub async fn push(
    stamp: &Stamp,
    rendered: &Rendered,
    gitea: &GiteaState,
) -> Result<String, EnvError> {
    let files = rendered.bundle_files();
    let source = stamp.repo_root.clone();
    let message = format!("kindling: stamp {} at {}", stamp.name, now_rfc3339());
    let outcome = on_env_repository(gitea, move |target| {
        gitea::push::push_snapshot(&source, &files, &message, target)
    })
    .await?;
    Ok(outcome.commit().to_string())
}
