//! idpbuilder packages on an env (`env create --package DIR`, `env sync`, `env status`).
//!
//! Each directory a package's `cnoe://` URL names gets a Gitea repository of its own on the
//! env's Gitea, pushed as a snapshot like the stamp (`crate::stamp::package` reads and
//! rewrites the package). Then the objects are applied with server-side apply, as idpbuilder
//! creates them: on Argo CD the Applications and ApplicationSets themselves, on Flux what
//! translates. `env sync` pushes every package again and asks the engine to read it.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::EnvError;
use super::state::GiteaState;
use crate::engine::Engine;
use crate::gitea::{Auth, GiteaClient};
use crate::kube::{ApplyOptions, KubeClient};
use crate::stamp::package::{self, Package};

/// The field manager of what packages apply.
const FIELD_MANAGER: &str = "kindling-package";

/// Argo CD's credential template for every repository of kindling's Gitea user: the package
/// repositories are private, like the env's own.
pub const REPOSITORY_CREDENTIALS: &str = "kindling-package-repositories";

/// Where an env's packages go: the engine, the env that labels them, and (Flux) the namespace
/// of the env's Flux objects, whose credentials Secret a package's GitRepository names (a
/// `secretRef` is read from the GitRepository's own namespace: source-controller v1.9.x
/// api/v1/gitrepository_types.go `SecretRef *meta.LocalObjectReference`).
#[derive(Debug, Clone, Copy)]
pub struct PackageTarget<'a> {
    pub engine: Engine,
    pub env: &'a str,
    pub flux_namespace: &'a str,
}

impl<'a> PackageTarget<'a> {
    /// The target of an env that exists.
    pub fn of(state: &'a super::state::EnvState, env: &'a str) -> Self {
        Self {
            engine: state.engine,
            env,
            flux_namespace: state.engine_objects_namespace(),
        }
    }
}

/// Refuses packages on an Argo CD that envs share (the env's Applications in a namespace of
/// its own): a package's Applications live in argocd under the package's names, and its
/// repository credentials template (`REPOSITORY_CREDENTIALS`) is one per Argo CD, so another
/// env's packages would take them over.
pub fn fit_the_engine(
    engine: Engine,
    objects_namespace: Option<&str>,
    dirs: &[PathBuf],
) -> Result<(), EnvError> {
    match objects_namespace {
        Some(own)
            if engine == Engine::Argo
                && own != crate::stamp::render::argo::NAMESPACE
                && !dirs.is_empty() =>
        {
            Err(EnvError::Preflight(format!(
                "--package on an Argo CD that several envs share is not supported: a package's Applications live in argocd under the package's names, which another env's packages would take over (this env's own Applications are in {own})\nhelp: use Flux (--engine flux), whose packages live in the env's namespace, or a cluster of the env's own"
            )))
        }
        _ => Ok(()),
    }
}

/// Reads every package directory, checks them together, and (for Flux) that each translates:
/// all before anything is made.
pub fn load_all(dirs: &[PathBuf], engine: Engine) -> Result<Vec<Package>, EnvError> {
    let mut packages = Vec::new();
    for dir in dirs {
        packages.push(package::load(dir)?);
    }
    package::check_together(&packages)?;
    if engine == Engine::Flux {
        for p in &packages {
            package::for_flux(
                p,
                "check",
                "http://gitea/kindling/source.git",
                "check",
                crate::stamp::render::flux::NAMESPACE,
            )?;
        }
    }
    Ok(packages)
}

/// What a package runs as, for the report and `--dry-run`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackagePlan {
    pub dir: PathBuf,
    /// Gitea repository → local directory.
    pub repositories: Vec<(String, PathBuf)>,
    /// `cnoe://` URL → the URL the engine reads.
    pub rewrites: Vec<(String, String)>,
    /// `KIND NAMESPACE/NAME` of what is applied.
    pub objects: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}

pub fn plans(
    packages: &[Package],
    target: &PackageTarget<'_>,
    cluster_repo_url: &str,
) -> Result<Vec<PackagePlan>, EnvError> {
    packages
        .iter()
        .map(|p| {
            Ok(PackagePlan {
                dir: p.dir.clone(),
                repositories: p
                    .repositories
                    .iter()
                    .map(|r| (r.name.clone(), r.dir.clone()))
                    .collect(),
                rewrites: package::rewrites(p, cluster_repo_url),
                objects: objects(target, p, cluster_repo_url)?
                    .iter()
                    .map(describe)
                    .collect(),
                ignored: p.ignored.clone(),
            })
        })
        .collect()
}

fn describe(o: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match o["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{} {ns}/{}", text(&o["kind"]), text(&o["metadata"]["name"])),
        None => format!("{} {}", text(&o["kind"]), text(&o["metadata"]["name"])),
    }
}

/// The objects a package applies on the target's engine.
pub fn objects(
    target: &PackageTarget<'_>,
    package: &Package,
    cluster_repo_url: &str,
) -> Result<Vec<Value>, EnvError> {
    Ok(match target.engine {
        Engine::Argo => package::for_argo(package, target.env, cluster_repo_url),
        Engine::Flux => package::for_flux(
            package,
            target.env,
            cluster_repo_url,
            crate::stamp::render::CREDENTIALS_SECRET,
            target.flux_namespace,
        )?,
    })
}

/// Argo CD's credential template (argo-cd v3.5.1 util/db/repository_secrets.go: a Secret
/// labelled `argocd.argoproj.io/secret-type: repo-creds` gives its credentials to every
/// repository whose URL starts with its `url`).
fn credential_template(gitea: &GiteaState) -> Value {
    let prefix = package::repository_url(&gitea.cluster_repo_url, "x");
    let prefix = prefix.trim_end_matches("x.git");
    let password = gitea.engine_password();
    crate::engine::secret_object(
        REPOSITORY_CREDENTIALS,
        crate::stamp::render::argo::NAMESPACE,
        &[("argocd.argoproj.io/secret-type", "repo-creds")],
        &[
            ("type", "git"),
            ("url", prefix),
            ("username", &gitea.user),
            ("password", &password),
        ],
    )
}

/// What `push_and_apply` did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackagesApplied {
    /// Repository → the commit it now holds.
    pub pushed: Vec<(String, String)>,
    pub applied: Vec<String>,
}

/// Makes each package's repositories, pushes their directories, and applies the objects.
pub async fn push_and_apply(
    kube: &KubeClient,
    target: &PackageTarget<'_>,
    packages: &[Package],
    gitea: &GiteaState,
    timeout: std::time::Duration,
) -> Result<PackagesApplied, EnvError> {
    let mut done = PackagesApplied::default();
    if packages.is_empty() {
        return Ok(done);
    }
    let repositories: Vec<(String, PathBuf)> = packages
        .iter()
        .flat_map(|p| {
            p.repositories
                .iter()
                .map(|r| (r.name.clone(), r.dir.clone()))
        })
        .collect();
    done.pushed = push_repositories(gitea, repositories).await?;
    let mut objects = Vec::new();
    if target.engine == Engine::Argo {
        objects.push(credential_template(gitea));
    }
    for p in packages {
        objects.extend(self::objects(target, p, &gitea.cluster_repo_url)?);
    }
    let options = ApplyOptions {
        field_manager: FIELD_MANAGER,
        ..ApplyOptions::new(timeout)
    };
    done.applied = kube
        .apply_objects(&objects, &options)
        .await?
        .iter()
        .map(|a| a.label())
        .collect();
    Ok(done)
}

async fn push_repositories(
    gitea: &GiteaState,
    repositories: Vec<(String, PathBuf)>,
) -> Result<Vec<(String, String)>, EnvError> {
    let gitea = gitea.clone();
    tokio::task::spawn_blocking(move || {
        let token = gitea.push_token();
        let client = GiteaClient::new(
            &gitea.url,
            Auth::Basic {
                user: gitea.user.clone(),
                password: token.clone(),
            },
        );
        let mut pushed = Vec::new();
        for (name, dir) in repositories {
            client.ensure_named_repository(
                &name,
                &format!(
                    "idpbuilder package directory {}, pushed by kindling",
                    dir.display()
                ),
            )?;
            let url = gitea.host_repository_url(&name);
            let outcome = crate::gitea::push::push_snapshot(
                &dir,
                &[],
                &format!("kindling: package directory {}", dir.display()),
                &crate::gitea::push::PushTarget {
                    url: &url,
                    user: &gitea.user,
                    token: &token,
                    branch: "main",
                },
            )?;
            pushed.push((name, outcome.commit().to_string()));
        }
        Ok::<_, EnvError>(pushed)
    })
    .await
    .map_err(|e| EnvError::Preflight(format!("pushing the packages stopped: {e}")))?
}

/// The engine reads every package again now: Argo CD's refresh annotation on the package's
/// Applications, Flux's reconcile request on its GitRepositories and Kustomizations/HelmReleases.
pub async fn request_reconcile(
    kube: &KubeClient,
    target: &PackageTarget<'_>,
    packages: &[Package],
    gitea: &GiteaState,
) -> Result<(), EnvError> {
    let stamp_now = crate::env::state::now_rfc3339();
    for p in packages {
        for o in objects(target, p, &gitea.cluster_repo_url)? {
            let kind = o["kind"].as_str().unwrap_or_default();
            let patch = match (target.engine, kind) {
                (Engine::Argo, "Application") => serde_json::json!({"metadata": {"annotations": {
                    crate::engine::argo::REFRESH_ANNOTATION: "normal"}}}),
                (Engine::Flux, "GitRepository" | "Kustomization" | "HelmRelease") => {
                    serde_json::json!({"metadata": {"annotations": {
                        crate::engine::flux::RECONCILE_ANNOTATION: stamp_now}}})
                }
                _ => continue,
            };
            let api_version = o["apiVersion"].as_str().unwrap_or_default();
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            kube.merge_patch(
                api_version,
                kind,
                o["metadata"]["namespace"].as_str(),
                name,
                &patch,
            )
            .await?;
        }
    }
    Ok(())
}

/// Deletes what the packages in `dirs` applied (the engine removes what they made, as it
/// does when their objects go); returns how many objects were deleted. A package directory
/// that cannot be read any more is skipped with its objects left: kindling cannot tell them.
pub async fn remove(
    kube: &KubeClient,
    target: &PackageTarget<'_>,
    dirs: &[PathBuf],
    gitea: &GiteaState,
) -> Result<usize, EnvError> {
    let mut objects = Vec::new();
    for dir in dirs {
        if let Ok(p) = package::load(dir) {
            objects.extend(self::objects(target, &p, &gitea.cluster_repo_url)?);
        }
    }
    Ok(kube.delete_objects(&objects).await?.len())
}

/// One package object's state, for `env status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageObjectStatus {
    pub package: PathBuf,
    /// `KIND NAMESPACE/NAME`
    pub object: String,
    /// Ready/Synced/Healthy as the engine says it, or what it lacks.
    pub state: String,
    /// Applications an ApplicationSet generated, each with its state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generated: Vec<String>,
}

/// What the engine says of each package object.
pub async fn status(
    kube: &KubeClient,
    target: &PackageTarget<'_>,
    dirs: &[PathBuf],
    gitea: &GiteaState,
) -> Result<Vec<PackageObjectStatus>, EnvError> {
    let mut out = Vec::new();
    let applications = match target.engine {
        Engine::Argo => {
            kube.list(
                "argoproj.io/v1alpha1",
                "Application",
                Some(crate::stamp::render::argo::NAMESPACE),
            )
            .await?
        }
        Engine::Flux => Vec::new(),
    };
    for dir in dirs {
        let Ok(p) = package::load(dir) else {
            out.push(PackageObjectStatus {
                package: dir.clone(),
                object: String::new(),
                state: "the package directory cannot be read any more".into(),
                generated: Vec::new(),
            });
            continue;
        };
        for o in objects(target, &p, &gitea.cluster_repo_url)? {
            let kind = o["kind"].as_str().unwrap_or_default();
            if matches!(kind, "GitRepository" | "Namespace" | "Secret") {
                continue;
            }
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            let namespace = o["metadata"]["namespace"].as_str();
            let api_version = o["apiVersion"].as_str().unwrap_or_default();
            let live = kube.get(api_version, kind, namespace, name).await?;
            let mut status = PackageObjectStatus {
                package: p.dir.clone(),
                object: describe(&o),
                state: match &live {
                    None => "not in the cluster".into(),
                    Some(live) => state_of(live),
                },
                generated: Vec::new(),
            };
            if kind == "ApplicationSet"
                && let Some(live) = &live
            {
                let uid = &live["metadata"]["uid"];
                status.generated = applications
                    .iter()
                    .filter(|a| {
                        a["metadata"]["ownerReferences"]
                            .as_array()
                            .is_some_and(|o| o.iter().any(|o| &o["uid"] == uid))
                    })
                    .map(|a| {
                        format!(
                            "{} {}",
                            a["metadata"]["name"].as_str().unwrap_or_default(),
                            state_of(a)
                        )
                    })
                    .collect();
            }
            out.push(status);
        }
    }
    Ok(out)
}

/// Argo CD: `SYNC/HEALTH`; Flux: the Ready condition's status and reason.
fn state_of(live: &Value) -> String {
    if live["kind"] == "Application" {
        return format!(
            "{}/{}",
            live["status"]["sync"]["status"]
                .as_str()
                .unwrap_or("Unknown"),
            live["status"]["health"]["status"]
                .as_str()
                .unwrap_or("Unknown")
        );
    }
    if live["kind"] == "ApplicationSet" {
        return "generating".into();
    }
    match crate::kube::condition(live, "Ready") {
        Some((status, reason)) if status == "True" => format!("Ready ({reason})"),
        Some((status, reason)) => format!("not Ready: {status} ({reason})"),
        None => "reconciling".into(),
    }
}

/// The package directories as the env records them: absolute.
pub fn absolute(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, EnvError> {
    dirs.iter()
        .map(|d| {
            std::fs::canonicalize(d).map_err(|e| {
                EnvError::BadInput(format!(
                    "--package {}: {e}\nhelp: give the directory of an idpbuilder package",
                    d.display()
                ))
            })
        })
        .collect()
}

/// Whether `a` and `b` name the same directories, in any order.
pub fn same_dirs(a: &[PathBuf], b: &[PathBuf]) -> bool {
    fn sorted(v: &[PathBuf]) -> Vec<&Path> {
        let mut v: Vec<&Path> = v.iter().map(PathBuf::as_path).collect();
        v.sort();
        v
    }
    sorted(a) == sorted(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_are_refused_only_on_an_argo_cd_envs_share() {
        let dirs = [PathBuf::from("pkg")];
        let shared = fit_the_engine(Engine::Argo, Some("kindling-dev"), &dirs).unwrap_err();
        assert!(shared.to_string().contains("kindling-dev"), "{shared}");
        assert!(fit_the_engine(Engine::Argo, Some("kindling-dev"), &[]).is_ok());
        assert!(fit_the_engine(Engine::Argo, Some("argocd"), &dirs).is_ok());
        assert!(fit_the_engine(Engine::Argo, None, &dirs).is_ok());
        assert!(fit_the_engine(Engine::Flux, Some("kindling-dev"), &dirs).is_ok());
    }
}
