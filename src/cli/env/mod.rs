//! `kindling env …`: parse, call one function of `kindling::env`, print its report as text or
//! as one JSON document.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use kindling::env::CreateOptions;
use kindling::env::Settings;
use kindling::env::create::Outcome;
use kindling::ui::Progress;
use serde_json::json;

use super::{EngineArg, EnvProviderArg, Output};

mod text;

#[derive(Args)]
pub struct EnvName {
    /// Environment name.
    #[arg(default_value = "dev")]
    name: String,
}

#[derive(Args)]
pub struct WaitArgs {
    /// How long to wait for reconciliation (e.g. 90s, 10m); exit 3 when it runs out.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    env: EnvName,
    /// Stamp name (under stamps/) or path to a stamp or HostK8s stack directory.
    #[arg(long, default_value = "sample")]
    stamp: String,
    /// Use this kustomize overlay (`overlays/NAME`) for every entry that offers overlays.
    #[arg(long)]
    overlay: Option<String>,
    /// An idpbuilder package: a directory of Argo CD Application/ApplicationSet files whose
    /// `cnoe://PATH` sources kindling pushes to Gitea repositories of their own (repeatable).
    #[arg(long = "package", value_name = "DIR")]
    packages: Vec<PathBuf>,
    /// Cluster provider (default: the profile's; the default profile is kind). `existing`
    /// uses a cluster you have (`--context`), and makes none.
    #[arg(long, value_enum)]
    provider: Option<EnvProviderArg>,
    #[command(flatten)]
    cluster: ExistingArgs,
    /// GitOps engine reconciling the stamp.
    #[arg(long, value_enum, default_value = "flux")]
    engine: EngineArg,
    /// Cluster profile (default: clusters/<provider>.yaml, else the built-in default).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Source tree holding stamps/ (default: the current directory).
    #[arg(long)]
    source: Option<PathBuf>,
    /// Register everything but leave the engine suspended until `env approve`.
    #[arg(long)]
    hold: bool,
    /// Wait until every entry is Ready.
    #[arg(long)]
    wait: bool,
    /// Merge the cluster's context into your kubeconfig but keep the current one current.
    #[arg(long)]
    no_switch_context: bool,
    #[command(flatten)]
    wait_args: WaitArgs,
    /// Print the plan and touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Read the engine's install manifest from this directory (air-gapped hosts).
    #[arg(long)]
    manifests_dir: Option<PathBuf>,
    /// Use a --manifests-dir copy even when no sha256 is pinned or recorded for it.
    #[arg(long)]
    trust_manifests: bool,
    #[command(flatten)]
    consent: SecretConsent,
    /// Accept a KINDLING_GITEA_URL over plain http to another machine (the token and pushes
    /// cross the network unencrypted).
    #[arg(long)]
    insecure_gitea: bool,
    /// A PEM file of your network's root CA (a TLS-intercepting proxy's): the nodes, Gitea,
    /// the image caches and the engines' chart sources trust it. Repeatable; adds to the
    /// profile's spec.extraCA.
    #[arg(long = "extra-ca", value_name = "FILE")]
    extra_ca: Vec<PathBuf>,
}

/// Which cluster `--provider existing` means.
#[derive(Args)]
pub struct ExistingArgs {
    /// With `--provider existing`: the kubeconfig context of the cluster.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// With `--provider existing`: the kubeconfig holding the context (default: KUBECONFIG's
    /// first file, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

impl ExistingArgs {
    /// The cluster `--provider existing --context` names; `None` for another provider. The
    /// flags are refused where they mean nothing.
    fn resolve(
        &self,
        provider: Option<EnvProviderArg>,
        what: &str,
    ) -> anyhow::Result<Option<kindling::cluster::existing::ExistingCluster>> {
        match (provider, &self.context) {
            (Some(EnvProviderArg::Existing), Some(context)) => Ok(Some(
                kindling::cluster::existing::ExistingCluster::new(
                    context,
                    self.kubeconfig.as_deref(),
                )
                .map_err(anyhow::Error::msg)?,
            )),
            (Some(EnvProviderArg::Existing), None) => anyhow::bail!(
                "--provider existing needs --context NAME: the kubeconfig context of {what}\nhelp: `kubectl config get-contexts` lists yours"
            ),
            (_, Some(_)) => anyhow::bail!(
                "--context is for --provider existing (kind and k3d clusters get the context kindling makes)"
            ),
            (_, None) if self.kubeconfig.is_some() => {
                anyhow::bail!("--kubeconfig is for --provider existing")
            }
            _ => Ok(None),
        }
    }
}

/// What a stamp's bootstrap secrets may read from this host beyond the source tree.
#[derive(Args)]
pub struct SecretConsent {
    /// Let the stamp's bootstrap secrets read this environment variable, or this file outside
    /// the source tree (as the stamp writes its path); repeatable. On a terminal, kindling asks.
    #[arg(long = "allow-secret-from", value_name = "NAME")]
    allow_secret_from: Vec<String>,
}

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Create (or finish creating) an environment.
    Create(CreateArgs),
    /// What is reconciled, what is not, and why.
    Status {
        #[command(flatten)]
        env: EnvName,
        /// Follow until every entry is Ready.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// Push local edits and reconcile now.
    Sync {
        #[command(flatten)]
        env: EnvName,
        /// Return after requesting reconciliation instead of following it.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// Remove the stamp's objects and bootstrap it (or another stamp) again, same cluster.
    Restart {
        #[command(flatten)]
        env: EnvName,
        /// Switch to this stamp.
        #[arg(long)]
        stamp: Option<String>,
        /// Run these idpbuilder packages instead of the env's (repeatable); the old ones'
        /// objects are removed first.
        #[arg(long = "package", value_name = "DIR")]
        packages: Vec<std::path::PathBuf>,
        #[command(flatten)]
        consent: SecretConsent,
    },
    /// Let an environment created with --hold reconcile; with ENTRY, open that entry's
    /// manual gate (`gate: manual`).
    Approve {
        #[command(flatten)]
        env: EnvName,
        /// The gated entry to let reconcile.
        entry: Option<String>,
    },
    /// Stop every container of the environment (nodes, Gitea, registry); the shared caches stay.
    Stop(EnvName),
    /// Start a stopped environment again; it re-points what moved and reconciles.
    Start(EnvName),
    /// Pause reconciliation (HostK8s `make suspend`): Flux objects suspended, Argo CD's
    /// automated sync off. The cluster keeps running.
    Suspend(EnvName),
    /// Resume reconciliation paused by `env suspend` (HostK8s `make resume`).
    Resume(EnvName),
    /// Build DIR/Dockerfile and push it to the environment's registry (HostK8s `make build`);
    /// prints the image reference the cluster pulls it by.
    Build {
        /// `[NAME] DIR`: the environment (default dev) and the directory to build.
        #[arg(num_args = 1..=2, value_names = ["NAME", "DIR"], required = true)]
        args: Vec<String>,
        /// The image's repository name (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "latest")]
        tag: String,
    },
    /// Add a stack to a running environment beside its stamp (HostK8s `make up NAME`), and
    /// follow until its entries are Ready.
    Up {
        /// `[NAME] STACK`: the environment (default dev) and the stack, found as `--stamp` is.
        #[arg(num_args = 1..=2, value_names = ["NAME", "STACK"], required = true)]
        args: Vec<String>,
        /// Return once it is bootstrapped instead of following reconciliation.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// Remove a stack `env up` added (HostK8s `make down NAME`); its storage data is kept.
    Down {
        /// `[NAME] STACK`: the environment (default dev) and the stack.
        #[arg(num_args = 1..=2, value_names = ["NAME", "STACK"], required = true)]
        args: Vec<String>,
    },
    /// Deploy a HostK8s app from software/apps (HostK8s `make deploy APP NAMESPACE`) through
    /// the engine, and follow until it is Ready.
    Deploy {
        /// `[NAME] APP`: the environment (default dev) and the app's directory name.
        #[arg(num_args = 1..=2, value_names = ["NAME", "APP"], required = true)]
        args: Vec<String>,
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// Return once it is pushed instead of following reconciliation.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// Remove an app `env deploy` deployed (HostK8s `make remove APP NAMESPACE`), and the
    /// namespace kindling made for it.
    Remove {
        /// `[NAME] APP`: the environment (default dev) and the app.
        #[arg(num_args = 1..=2, value_names = ["NAME", "APP"], required = true)]
        args: Vec<String>,
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
    },
    /// Promote by image tag: set `images[].newTag` in an overlay's kustomization.yaml, push,
    /// and follow the rollout when the env runs that overlay (the edit is left to commit).
    Promote {
        #[command(flatten)]
        env: EnvName,
        /// `NAME=TAG`: the image (as the kustomization's `images[].name`) and its new tag.
        #[arg(long = "image", value_name = "NAME=TAG", conflicts_with_all = ["from", "to"])]
        images: Vec<String>,
        /// The overlay to edit (default: the env's).
        #[arg(long, conflicts_with_all = ["from", "to"])]
        overlay: Option<String>,
        /// Copy every tag this overlay sets…
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// …into this one.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Push without following the rollout.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// Apply one entry from the working tree now (server-side apply), its engine object paused
    /// until `env sync` hands it back: instant feedback while iterating.
    Apply {
        /// `[NAME] ENTRY`: the environment (default dev) and the entry.
        #[arg(num_args = 1..=2, value_names = ["NAME", "ENTRY"], required = true)]
        args: Vec<String>,
    },
    /// Show the live objects that differ from what Git says (a server-side dry-run apply as
    /// the engine would apply them): created, drifted (with a line diff) and pruned objects.
    Diff {
        /// `[NAME] [ENTRY]`: the environment (default dev) and one entry (default all). A lone
        /// word is the environment when one has that name, otherwise an entry of dev.
        #[arg(num_args = 0..=2, value_names = ["NAME", "ENTRY"])]
        args: Vec<String>,
        /// Exit 1 when anything differs (as `git diff --exit-code`), for CI.
        #[arg(long)]
        exit_code: bool,
    },
    /// Sync on every change of the source tree.
    Watch {
        #[command(flatten)]
        env: EnvName,
        /// Quiet time before a change is synced, in milliseconds.
        #[arg(long, default_value_t = 300)]
        debounce_ms: u64,
        /// Compare the tree every 200 ms instead of using file events (for file systems that
        /// deliver none: some network and VM-shared mounts).
        #[arg(long)]
        poll: bool,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// Delete an environment; nothing is left behind.
    Delete {
        #[command(flatten)]
        env: EnvName,
        /// Delete every environment of this data dir (and its orphaned Docker objects).
        #[arg(long)]
        all: bool,
        /// Do not ask before `--all` deletes (it asks only on a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Remove the env's storage directories too (kept otherwise, for its next create).
        #[arg(long)]
        purge: bool,
    },
    /// Print the path of the environment's kubeconfig.
    Kubeconfig(EnvName),
    /// List environments (and orphaned Docker objects); with `--provider existing --context`,
    /// the envs present on that cluster.
    List {
        #[arg(long, value_enum)]
        provider: Option<EnvProviderArg>,
        #[command(flatten)]
        cluster: ExistingArgs,
    },
}

/// `[NAME] THING`: the environment (default dev) and the one argument a command acts on.
fn env_and<'a>(args: &'a [String], verb: &str, thing: &str) -> anyhow::Result<(&'a str, &'a str)> {
    match args {
        [one] => Ok(("dev", one.as_str())),
        [env, one] => Ok((env.as_str(), one.as_str())),
        _ => anyhow::bail!("env {verb} takes `[NAME] {thing}`"),
    }
}

/// Asks on a terminal, one by one, whether the stamp's secrets may read what they would from
/// this host; what is allowed is added to `settings`. Off a terminal (CI, a pipe) or with
/// `--output json` nothing is asked, and the command refuses what was not allowed by flag.
fn ask_consent(
    missing: Vec<kindling::engine::secrets::HostSource>,
    settings: &mut Settings,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if missing.is_empty() || json || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    let mut err = std::io::stderr();
    for source in missing {
        write!(
            err,
            "the stamp's secret {} (key {}) reads {} into the cluster, where its workloads can read it. Allow? [y/N] ",
            kindling::ui::printable(&source.secret),
            kindling::ui::printable(&source.key),
            kindling::ui::printable(&source.what)
        )?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            settings.allow_secret_from.push(source.name);
        }
    }
    Ok(())
}

/// Asks on a terminal whether to delete `names`: `Some(answer)`, or `None` off a terminal
/// (CI, a pipe), where nothing is asked.
fn confirm_on_a_terminal(names: &[String]) -> anyhow::Result<Option<bool>> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let mut err = std::io::stderr();
    write!(
        err,
        "delete {} env(s) of this data dir: {}? [y/N] ",
        names.len(),
        names.join(", ")
    )?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(Some(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    )))
}

/// `90s`, `10m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 90s, 10m, 1h)"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use s, m or h)")),
    };
    Ok(Duration::from_secs(seconds))
}

fn print_json(value: serde_json::Value) {
    super::print_json(value);
}

pub fn run(command: EnvCommand, output: Output, verbose: u8) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(command, output, verbose))
}

async fn run_async(command: EnvCommand, output: Output, verbose: u8) -> anyhow::Result<()> {
    let mut settings = Settings::from_env();
    let progress = Progress::new(verbose);
    let out = Printer {
        json: output == Output::Json,
    };
    match command {
        EnvCommand::Create(args) => {
            let (options, dry_run) = create_options(args, &mut settings)?;
            // kindling's own downloads (install manifests, kind/k3d) go through the same
            // network as the nodes' pulls: they trust the same roots.
            kindling::net::trust_also(&options.extra_ca)?;
            if !dry_run {
                let missing = kindling::env::consent_needed_for_create(
                    &settings,
                    &options.stamp,
                    &options.source,
                );
                ask_consent(missing, &mut settings, out.json)?;
            }
            match kindling::env::create(&options, &settings, &progress, dry_run).await? {
                Outcome::Plan(plan) if out.json => {
                    print_json(json!({"ok": true, "dryRun": true, "plan": plan}))
                }
                Outcome::Plan(plan) => text::plan(&plan),
                Outcome::Created(report) => {
                    out.print("env", &report, |r| text::created(r, &settings))
                }
            }
        }
        EnvCommand::Status {
            env,
            wait,
            wait_args,
        } => {
            let wait = wait.then_some(wait_args.timeout);
            let report = kindling::env::status(&settings, &env.name, wait, &progress).await?;
            out.print("status", &report, text::status);
        }
        EnvCommand::Sync {
            env,
            no_wait,
            wait_args,
        } => {
            let wait = (!no_wait).then_some(wait_args.timeout);
            let report = kindling::env::sync(&settings, &env.name, wait, &progress).await?;
            out.print("sync", &report, text::synced);
        }
        EnvCommand::Restart {
            env,
            stamp,
            packages,
            consent,
        } => {
            settings.allow_secret_from.extend(consent.allow_secret_from);
            let missing =
                kindling::env::consent_needed_for_restart(&settings, &env.name, stamp.as_deref());
            ask_consent(missing, &mut settings, out.json)?;
            let packages = (!packages.is_empty()).then_some(packages.as_slice());
            let report =
                kindling::env::restart(&settings, &env.name, stamp.as_deref(), packages, &progress)
                    .await?;
            out.print("restart", &report, text::restarted);
        }
        EnvCommand::Approve { env, entry: None } => {
            let report = kindling::env::approve(&settings, &env.name, &progress).await?;
            out.print("approve", &report, text::approved);
        }
        EnvCommand::Approve {
            env,
            entry: Some(entry),
        } => {
            let report =
                kindling::env::approve::approve_gate(&settings, &env.name, &entry, &progress)
                    .await?;
            out.print("approve", &report, text::gate_opened);
        }
        EnvCommand::Stop(env) => {
            let report = kindling::env::stop(&settings, &env.name, &progress).await?;
            out.print("stop", &report, text::stopped);
        }
        EnvCommand::Start(env) => {
            let report = kindling::env::start(&settings, &env.name, &progress).await?;
            out.print("start", &report, text::started);
        }
        EnvCommand::Suspend(env) => {
            let report = kindling::env::suspend(&settings, &env.name, &progress).await?;
            out.print("suspend", &report, text::suspended);
        }
        EnvCommand::Resume(env) => {
            let report = kindling::env::resume(&settings, &env.name, &progress).await?;
            out.print("resume", &report, text::suspended);
        }
        EnvCommand::Up {
            args,
            no_wait,
            wait_args,
        } => {
            let (env, stack) = env_and(&args, "up", "STACK")?;
            let wait = (!no_wait).then_some(wait_args.timeout);
            let report = kindling::env::stacks::up(&settings, env, stack, wait, &progress).await?;
            out.print("up", &report, text::stack_up);
        }
        EnvCommand::Down { args } => {
            let (env, stack) = env_and(&args, "down", "STACK")?;
            let report = kindling::env::stacks::down(&settings, env, stack, &progress).await?;
            out.print("down", &report, text::stack_down);
        }
        EnvCommand::Deploy {
            args,
            namespace,
            no_wait,
            wait_args,
        } => {
            let (env, app) = env_and(&args, "deploy", "APP")?;
            let wait = (!no_wait).then_some(wait_args.timeout);
            let report =
                kindling::env::apps::deploy(&settings, env, app, &namespace, wait, &progress)
                    .await?;
            out.print("deploy", &report, text::deployed);
        }
        EnvCommand::Remove { args, namespace } => {
            let (env, app) = env_and(&args, "remove", "APP")?;
            let report =
                kindling::env::apps::remove(&settings, env, app, &namespace, &progress).await?;
            out.print("remove", &report, text::removed_app);
        }
        EnvCommand::Promote {
            env,
            images,
            overlay,
            from,
            to,
            no_wait,
            wait_args,
        } => {
            let promotion = match (from, to) {
                (Some(from), Some(to)) => kindling::env::promote::Promotion::Copy { from, to },
                _ => {
                    let mut pairs = Vec::new();
                    for image in &images {
                        let Some((name, tag)) = image.rsplit_once('=') else {
                            anyhow::bail!(
                                "--image {image}: write NAME=TAG (ghcr.io/team/web=1.2.0)"
                            );
                        };
                        pairs.push((name.to_string(), tag.to_string()));
                    }
                    if pairs.is_empty() {
                        anyhow::bail!(
                            "env promote needs --image NAME=TAG (repeatable) or --from A --to B"
                        );
                    }
                    kindling::env::promote::Promotion::Tags {
                        images: pairs,
                        overlay,
                    }
                }
            };
            let wait = (!no_wait).then_some(wait_args.timeout);
            let report =
                kindling::env::promote::promote(&settings, &env.name, promotion, wait, &progress)
                    .await?;
            out.print("promote", &report, text::promoted);
        }
        EnvCommand::Apply { args } => {
            let (env, entry) = env_and(&args, "apply", "ENTRY")?;
            let report = kindling::env::apply::apply(&settings, env, entry, &progress).await?;
            out.print("apply", &report, text::applied_directly);
        }
        EnvCommand::Diff { args, exit_code } => {
            let (env, entry) = match args.as_slice() {
                [] => ("dev", None),
                [one] if settings.env_dir(one).exists() => (one.as_str(), None),
                [one] => ("dev", Some(one.as_str())),
                [env, entry] => (env.as_str(), Some(entry.as_str())),
                _ => anyhow::bail!("env diff takes `[NAME] [ENTRY]`"),
            };
            let report = kindling::env::diff::diff(&settings, env, entry, &progress).await?;
            out.print("diff", &report, text::diff);
            if exit_code && report.drifted {
                return Err(
                    crate::cli::AlreadyReported(format!("env {env} differs from Git")).into(),
                );
            }
        }
        EnvCommand::Build { args, name, tag } => {
            let (env, dir) = env_and(&args, "build", "DIR")?;
            let report = kindling::env::build(
                &settings,
                env,
                std::path::Path::new(dir),
                name.as_deref(),
                &tag,
                &progress,
            )
            .await?;
            out.print("build", &report, text::built);
        }
        EnvCommand::Watch {
            env,
            debounce_ms,
            poll,
            wait_args,
        } => {
            let mode = if poll {
                kindling::env::WatchMode::Poll
            } else {
                kindling::env::WatchMode::Events
            };
            let syncs = watch(
                &settings,
                &env.name,
                debounce_ms,
                mode,
                wait_args,
                &progress,
            )
            .await?;
            out.print("syncs", &syncs, |_| {});
        }
        EnvCommand::Delete {
            env,
            all,
            yes,
            purge,
        } => {
            let names: Vec<String> = if all {
                let envs = kindling::env::list(&settings).await?;
                // Only what this data dir made; another's objects go by name only.
                envs.into_iter()
                    .filter(|e| e.state != kindling::env::list::FOREIGN)
                    .map(|e| e.name)
                    .collect()
            } else {
                vec![env.name]
            };
            if all && !yes && !names.is_empty() && confirm_on_a_terminal(&names)? == Some(false) {
                anyhow::bail!("nothing deleted\nhelp: `--yes` deletes without asking");
            }
            let mut reports = Vec::new();
            for name in names {
                let report = kindling::env::delete(&settings, &name, purge, &progress).await?;
                if !out.json {
                    text::deleted(&report);
                }
                reports.push(report);
            }
            out.print("deleted", &reports, |_| {});
        }
        EnvCommand::Kubeconfig(env) => {
            let path = kindling::env::kubeconfig(&settings, &env.name)?;
            out.print("kubeconfig", &path, |p| println!("{}", p.display()));
        }
        EnvCommand::List { provider, cluster } => {
            match cluster.resolve(provider, "the cluster whose envs to list")? {
                Some(existing) => {
                    let envs = kindling::env::list::list_on_cluster(&settings, &existing).await?;
                    out.print("envs", &envs, |e| text::cluster_envs(&existing.context, e));
                }
                None => {
                    let entries = kindling::env::list(&settings).await?;
                    out.print("envs", &entries, |e| text::list(e));
                }
            }
        }
    }
    Ok(())
}

/// One report per command: with `--output json` the document `{"ok": true, KEY: report}` on
/// stdout, else the report's text.
struct Printer {
    json: bool,
}

impl Printer {
    fn print<T: serde::Serialize>(&self, key: &str, report: &T, text: impl FnOnce(&T)) {
        if self.json {
            print_json(json!({"ok": true, key: report}));
        } else {
            text(report);
        }
    }
}

/// The options of `env create` (and whether it is a dry run); `--manifests-dir` goes into the
/// settings.
fn create_options(
    args: CreateArgs,
    settings: &mut Settings,
) -> anyhow::Result<(CreateOptions, bool)> {
    if args.manifests_dir.is_some() {
        settings.manifests_dir = args.manifests_dir;
    }
    settings.trust_manifests |= args.trust_manifests;
    settings
        .allow_secret_from
        .extend(args.consent.allow_secret_from);
    settings.insecure_gitea |= args.insecure_gitea;
    let source = match args.source {
        Some(s) => s,
        None => std::env::current_dir()?,
    };
    let existing = args.cluster.resolve(args.provider, "the cluster to use")?;
    let provider: Option<kindling::cluster::Provider> = args.provider.map(Into::into);
    let mut profile = super::cluster::find_profile(args.profile.as_deref(), provider)?;
    if let Some(p) = provider {
        profile.spec.provider = p;
    }
    let profile_extra_ca = profile.spec.extra_ca.clone();
    let options = CreateOptions {
        name: args.env.name,
        stamp: args.stamp,
        engine: args.engine.into(),
        profile,
        profile_path: args.profile,
        source,
        hold: args.hold,
        wait: args.wait,
        timeout: args.wait_args.timeout,
        switch_context: !args.no_switch_context,
        extra_ca: profile_extra_ca.into_iter().chain(args.extra_ca).collect(),
        overlay: args.overlay,
        packages: args.packages,
        existing,
    };
    Ok((options, args.dry_run))
}

/// `env watch`: `env sync` on every change of the source tree.
async fn watch(
    settings: &Settings,
    name: &str,
    debounce_ms: u64,
    mode: kindling::env::WatchMode,
    wait_args: WaitArgs,
    progress: &Progress,
) -> anyhow::Result<usize> {
    // Tests stop the watch after a number of syncs.
    let max = std::env::var("KINDLING_WATCH_MAX_SYNCS")
        .ok()
        .and_then(|v| v.parse().ok());
    let timeout = Some(wait_args.timeout);
    let syncs = kindling::env::watch(
        settings,
        name,
        Duration::from_millis(debounce_ms),
        mode,
        max,
        progress,
        move || async move {
            kindling::env::sync(settings, name, timeout, progress)
                .await
                .map(|r| r.commit)
        },
    )
    .await?;
    Ok(syncs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_durations_parse_with_units() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    /// README: `--timeout 10m` is the default of every command that waits.
    #[test]
    fn cli_wait_timeout_defaults_to_ten_minutes() {
        use clap::Parser;
        for args in [
            &["kindling", "env", "create", "dev"][..],
            &["kindling", "env", "status", "dev", "--wait"],
            &["kindling", "env", "sync", "dev"],
        ] {
            let cli = crate::cli::Cli::try_parse_from(args).unwrap();
            let crate::cli::Command::Env(command) = cli.command else {
                panic!("{args:?}")
            };
            let timeout = match command {
                EnvCommand::Create(a) => a.wait_args.timeout,
                EnvCommand::Status { wait_args, .. } | EnvCommand::Sync { wait_args, .. } => {
                    wait_args.timeout
                }
                _ => panic!("{args:?}"),
            };
            assert_eq!(timeout, Duration::from_secs(600), "{args:?}");
        }
    }
}
