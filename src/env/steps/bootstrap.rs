//! The engine pointed at Gitea: credentials, the source, and the stamp's root object
//! (suspended with `--hold`).

use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use super::{Ctx, Step};
use crate::engine::{self, Engine, GitCredentials};
use crate::env::EnvError;
use crate::env::state::GiteaState;
use crate::kube::ApplyOptions;
use crate::pki::extra_ca::ExtraCa;
use crate::stamp::Stamp;
use crate::stamp::render::Rendered;

pub struct Bootstrap;

impl Step for Bootstrap {
    fn name(&self) -> &'static str {
        "bootstrap"
    }

    fn line(&self, ctx: &Ctx<'_>) -> String {
        let repo = ctx
            .state()
            .gitea
            .as_ref()
            .map(|g| g.cluster_repo_url.clone());
        format!("{} on {}", ctx.opts.engine.name(), repo.unwrap_or_default())
    }

    fn run<'a>(&'a self, ctx: &'a Ctx<'_>) -> LocalBoxFuture<'a, Result<String, EnvError>> {
        Box::pin(async move {
            let hold = ctx.state().hold;
            let extra_ca = ctx.state().extra_ca(&ctx.env_dir)?;
            let objects = objects(
                ctx.opts.engine,
                ctx.stamp,
                ctx.rendered()?,
                &ctx.gitea_state()?,
                hold,
                extra_ca.as_ref(),
            );
            let kube = ctx.kube().await?;
            if !ctx.resolved.provider.makes_the_cluster() {
                prepare_shared_cluster(
                    kube,
                    ctx.opts.engine,
                    ctx.stamp,
                    ctx.rendered()?,
                    ctx.settings.step_timeout,
                )
                .await?;
            }
            let applied = kube
                .apply_objects(&objects, &ApplyOptions::new(ctx.settings.step_timeout))
                .await?;
            for a in applied {
                ctx.progress
                    .detail(&format!("bootstrap: applied {}", a.label()));
            }
            Ok(if hold {
                "registered, awaiting approval (`kindling env approve`)".to_string()
            } else {
                format!("root {}", crate::stamp::render::flux::root_name(ctx.stamp))
            })
        })
    }
}

/// Before the engine applies a stamp on a cluster kindling did not make:
/// - the engine objects the root will apply (an entry's Kustomization or Application, its
///   sources) must not be someone else's already: the engine would take them over and prune
///   them with the env. One the env's own root applied before (a rerun) is the env's: Flux
///   marks what a Kustomization applied with `kustomize.toolkit.fluxcd.io/name`/`namespace`,
///   Argo CD with the tracking annotation `APP:…`;
/// - (the objects the stamp's own directories declare are checked earlier, before anything is
///   pushed: `stamp_objects_taken`);
/// - the stamp's namespaces are made by kindling, labelled for the env: a namespace the engine
///   or Helm makes (`install.createNamespace`) outlives the stamp's removal (helm uninstall
///   leaves it), and one that was there already is used as found and left.
pub async fn prepare_shared_cluster(
    kube: &crate::kube::KubeClient,
    engine: Engine,
    stamp: &Stamp,
    rendered: &Rendered,
    timeout: std::time::Duration,
) -> Result<(), EnvError> {
    let (root_kind, root) = match engine {
        Engine::Flux => (
            "Kustomization",
            crate::stamp::render::flux::root_name(stamp),
        ),
        Engine::Argo => ("Application", crate::stamp::render::argo::root_name(stamp)),
    };
    for file in rendered
        .files
        .iter()
        .filter(|f| !f.path.ends_with("bootstrap.yaml"))
    {
        for object in &file.documents {
            let Some((api_version, kind, name)) = identity(object) else {
                continue;
            };
            if !api_version.contains("fluxcd.io") && !api_version.starts_with("argoproj.io") {
                continue;
            }
            let objects_namespace = engine::objects_namespace(engine, stamp);
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(objects_namespace);
            let Some(live) = kube.get(api_version, kind, Some(namespace), name).await? else {
                continue;
            };
            let labels = &live["metadata"]["labels"];
            let by_root = match engine {
                Engine::Flux => {
                    labels["kustomize.toolkit.fluxcd.io/name"] == root.as_str()
                        && labels["kustomize.toolkit.fluxcd.io/namespace"] == objects_namespace
                }
                Engine::Argo => {
                    let instance = engine::argo::instance_name(objects_namespace, &root);
                    live["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(&format!("{instance}:")))
                }
            };
            // An entry's own objects (a chart's HelmRepository) are applied by the entry's
            // Kustomization or Application, which the root applied.
            if !by_root && !kube.belongs_to_the_env(&live).await? {
                return Err(EnvError::Preflight(format!(
                    "{kind} {namespace}/{name} exists on the cluster and is not the env's (its {root_kind} {root} did not make it); the engine would take it over and remove it with the env\nhelp: rename the stamp's entry, or remove that object yourself, or use another cluster"
                )));
            }
        }
    }
    kube.apply_objects(&stamp_namespaces(stamp), &ApplyOptions::new(timeout))
        .await?;
    Ok(())
}

/// Refuses when an object one of the stamp's directories declares (built as the engine builds
/// it, `crate::env::entry_build`) is on the cluster and is not the env's: the engine would
/// take it over (Flux adds it to its inventory, Argo CD tracks it) and delete it with the env.
/// Asked before anything is pushed (create's preflight, `env sync`, the commands that bring a
/// stack up): once pushed, the engine reads it on its own. Charts are not rendered here: on a
/// shared cluster kindling's HelmReleases refuse to take objects over
/// (`disableTakeOwnership`). Returns the entries that could not be built, and so not checked.
pub(crate) async fn stamp_objects_taken(
    kube: &crate::kube::KubeClient,
    stamp: &Stamp,
) -> Result<Vec<String>, EnvError> {
    let mut unchecked = Vec::new();
    for entry in &stamp.entries {
        let crate::stamp::Source::Path(path) = &entry.source else {
            continue;
        };
        let objects =
            match crate::env::entry_build::build(&path.host_dir, entry.namespace.as_deref()) {
                Ok(objects) => objects,
                Err(e) => {
                    unchecked.push(format!(
                        "entry {}: its objects were not checked against the cluster's: {}",
                        entry.name,
                        e.to_string().lines().next().unwrap_or_default()
                    ));
                    continue;
                }
            };
        for object in objects {
            let Some((api_version, kind, name)) = identity(&object) else {
                continue;
            };
            let namespace = object["metadata"]["namespace"].as_str();
            // Where a namespaced object without one goes is the engine's choice (Flux refuses
            // it, Argo CD puts it in the Application's namespace): said, not guessed.
            if namespace.is_none() && !crate::stamp::is_cluster_scoped(kind) {
                unchecked.push(format!(
                    "entry {}: {kind} {name} names no namespace, so it was not checked against the cluster's",
                    entry.name
                ));
                continue;
            }
            let Some(live) = kube.get(api_version, kind, namespace, name).await? else {
                continue;
            };
            if !kube.belongs_to_the_env(&live).await? {
                return Err(EnvError::Preflight(format!(
                    "{kind} {}{name} exists on the cluster and is not the env's, and entry {} of stamp {} declares it ({}); the engine would take it over and delete it with the env; nothing was changed\nhelp: rename it in the stamp, or use a cluster (or namespace) where it is free",
                    namespace.map(|n| format!("{n}/")).unwrap_or_default(),
                    entry.name,
                    stamp.name,
                    path.host_dir.display()
                )));
            }
        }
    }
    Ok(unchecked)
}

/// An object's apiVersion, kind and name, when it has all three.
fn identity(object: &Value) -> Option<(&str, &str, &str)> {
    Some((
        object["apiVersion"].as_str()?,
        object["kind"].as_str()?,
        object["metadata"]["name"].as_str()?,
    ))
}

/// A Namespace for every namespace the stamp's entries name.
fn stamp_namespaces(stamp: &Stamp) -> Vec<Value> {
    let names: std::collections::BTreeSet<&str> = stamp
        .entries
        .iter()
        .filter_map(|e| e.namespace.as_deref())
        .collect();
    names
        .into_iter()
        .map(|n| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
        .collect()
}

/// The engine's bootstrap objects for an env whose Gitea is `gitea`.
pub fn objects(
    engine: Engine,
    stamp: &Stamp,
    rendered: &Rendered,
    gitea: &GiteaState,
    hold: bool,
    extra_ca: Option<&ExtraCa>,
) -> Vec<Value> {
    let credentials = GitCredentials {
        url: gitea.cluster_repo_url.clone(),
        username: gitea.user.clone(),
        password: gitea.engine_password(),
    };
    // The roots first: Flux's HelmRepositories name the Secret from their first reconcile.
    let mut objects: Vec<Value> = extra_ca
        .map(|ca| engine::extra_ca::objects(engine, stamp.flux_namespace(), rendered, ca))
        .unwrap_or_default();
    objects.extend(engine::bootstrap_objects(
        engine,
        stamp,
        &rendered.bootstrap_documents(),
        &credentials,
        hold,
    ));
    objects
}
