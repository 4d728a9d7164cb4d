//! `kindling env …`: parse, call one function of `kindling::env`, print its report as text or
//! as one JSON document.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use kindling::env::create::{CreateOptions, Outcome};
use kindling::env::{Settings, ops};
use kindling::ui::Progress;
use serde_json::json;

use super::{EngineArg, Output, ProviderArg};

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

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Create (or finish creating) an environment.
    Create {
        #[command(flatten)]
        env: EnvName,
        /// Stamp name (under stamps/) or path to a stamp or HostK8s stack directory.
        #[arg(long, default_value = "sample")]
        stamp: String,
        /// Cluster provider (default: the profile's; the default profile is kind).
        #[arg(long, value_enum)]
        provider: Option<ProviderArg>,
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
        #[command(flatten)]
        wait_args: WaitArgs,
        /// Print the plan and touch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Read the engine's install manifest from this directory (air-gapped hosts).
        #[arg(long)]
        manifests_dir: Option<PathBuf>,
    },
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
    },
    /// Let an environment created with --hold reconcile.
    Approve(EnvName),
    /// Sync on every change of the source tree.
    Watch {
        #[command(flatten)]
        env: EnvName,
        /// Quiet time before a change is synced, in milliseconds.
        #[arg(long, default_value_t = 300)]
        debounce_ms: u64,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// Delete an environment; nothing is left behind.
    Delete {
        #[command(flatten)]
        env: EnvName,
        /// Delete every environment (and orphaned Docker objects).
        #[arg(long)]
        all: bool,
    },
    /// Print the path of the environment's kubeconfig.
    Kubeconfig(EnvName),
    /// List environments (and orphaned Docker objects).
    List,
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
    println!("{value:#}");
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
    let json = output == Output::Json;
    match command {
        EnvCommand::Create {
            env,
            stamp,
            provider,
            engine,
            profile,
            source,
            hold,
            wait,
            wait_args,
            dry_run,
            manifests_dir,
        } => {
            if manifests_dir.is_some() {
                settings.manifests_dir = manifests_dir;
            }
            let source = match source {
                Some(s) => s,
                None => std::env::current_dir()?,
            };
            let provider: Option<kindling::cluster::Provider> = provider.map(Into::into);
            let mut loaded = super::cluster::find_profile(profile.as_deref(), provider)?;
            if let Some(p) = provider {
                loaded.spec.provider = p;
            }
            let options = CreateOptions {
                name: env.name.clone(),
                stamp,
                engine: engine.into(),
                profile: loaded,
                profile_path: profile,
                source,
                hold,
                wait,
                timeout: wait_args.timeout,
            };
            match kindling::env::create::create(&options, &settings, &progress, dry_run).await? {
                Outcome::Plan(plan) => {
                    if json {
                        print_json(json!({"ok": true, "dryRun": true, "plan": plan}));
                    } else {
                        println!(
                            "plan for env {} (nothing was changed):\n  stamp {}, {} + {}\n  cluster {} (context {}), ingress 127.0.0.1:{}/{}\n  steps: {}\n\n# {} config\n{}\n# bootstrap objects (credentials redacted)",
                            plan.env,
                            plan.stamp,
                            plan.provider.name(),
                            plan.engine.name(),
                            plan.cluster.name,
                            plan.context,
                            plan.ports.http,
                            plan.ports.https,
                            plan.steps.join(" → "),
                            plan.provider.name(),
                            plan.cluster_config
                        );
                        for o in &plan.bootstrap {
                            println!(
                                "---\n{}",
                                serde_yaml_ng::to_string(o).unwrap_or_default().trim_end()
                            );
                        }
                    }
                }
                Outcome::Created(report) => {
                    if json {
                        print_json(json!({"ok": true, "env": report}));
                    } else {
                        let state = if report.awaiting_approval {
                            "is registered and awaiting approval (`kindling env approve`)"
                        } else if report.status.is_some() {
                            "is ready"
                        } else {
                            "is created; the engine is reconciling"
                        };
                        println!(
                            "\nenv {} {state} (stamp {}, {} + {})",
                            report.env,
                            report.stamp,
                            report.provider.name(),
                            report.engine.name()
                        );
                        println!(
                            "  Gitea:      {}/{}/{} (user {}; password in {})",
                            report.gitea_url,
                            kindling::gitea::ADMIN_USER,
                            kindling::gitea::REPOSITORY,
                            kindling::gitea::ADMIN_USER,
                            kindling::env::state::EnvState::path(&settings.env_dir(&report.env))
                                .display()
                        );
                        for url in &report.ingress_urls {
                            println!("  ingress:    {url}");
                        }
                        println!("  context:    {}", report.context);
                        println!("  kubeconfig: {}", report.kubeconfig.display());
                        println!("next:");
                        for n in &report.next {
                            println!("  {n}");
                        }
                    }
                }
            }
        }
        EnvCommand::Status {
            env,
            wait,
            wait_args,
        } => {
            let report = ops::status(
                &settings,
                &env.name,
                wait.then_some(wait_args.timeout),
                &progress,
            )
            .await?;
            if json {
                print_json(json!({"ok": true, "status": report}));
            } else {
                println!(
                    "env {}: stamp {}, {} + {}",
                    report.env, report.stamp, report.provider, report.engine
                );
                println!(
                    "  cluster  {:<28} {}",
                    report.cluster.name, report.cluster.state
                );
                println!(
                    "  gitea    {:<28} {} {}",
                    report.gitea.name,
                    report.gitea.state,
                    report.gitea.url.as_deref().unwrap_or_default()
                );
                if let Some(r) = &report.registry {
                    println!(
                        "  registry {:<28} {} {}",
                        r.name,
                        r.state,
                        r.url.as_deref().unwrap_or_default()
                    );
                }
                if let Some(c) = &report.commit {
                    println!("  commit   {c}");
                }
                for url in &report.urls {
                    println!("  url      {url}");
                }
                if !report.unfinished_steps.is_empty() {
                    println!(
                        "  unfinished create steps: {} (rerun `kindling env create {} --stamp {}`)",
                        report.unfinished_steps.join(", "),
                        report.env,
                        report.stamp
                    );
                }
                if let Some(e) = &report.error {
                    println!("  engine: {e}");
                }
                if let Some(s) = &report.reconciliation {
                    println!();
                    print!("{}", kindling::engine::status::render_table(s));
                }
            }
        }
        EnvCommand::Sync {
            env,
            no_wait,
            wait_args,
        } => {
            let report = ops::sync(
                &settings,
                &env.name,
                (!no_wait).then_some(wait_args.timeout),
                &progress,
            )
            .await?;
            if json {
                print_json(json!({"ok": true, "sync": report}));
            } else {
                println!(
                    "env {} at {}{} ({:.1}s)",
                    report.env,
                    report.commit,
                    if report.changed { "" } else { " (no change)" },
                    report.duration_ms as f64 / 1000.0
                );
            }
        }
        EnvCommand::Restart { env, stamp } => {
            let report = ops::restart(&settings, &env.name, stamp.as_deref(), &progress).await?;
            if json {
                print_json(json!({"ok": true, "restart": report}));
            } else {
                println!(
                    "env {}: stamp {} removed, stamp {} bootstrapped at {}",
                    report.env, report.removed_stamp, report.stamp, report.commit
                );
            }
        }
        EnvCommand::Approve(env) => {
            let report = ops::approve(&settings, &env.name, &progress).await?;
            if json {
                print_json(json!({"ok": true, "approve": report}));
            } else if report.was_held {
                println!("env {} approved: the engine is reconciling", report.env);
            } else {
                println!("env {} was not held; reconciliation requested", report.env);
            }
        }
        EnvCommand::Watch {
            env,
            debounce_ms,
            wait_args,
        } => {
            let max = std::env::var("KINDLING_WATCH_MAX_SYNCS")
                .ok()
                .and_then(|v| v.parse().ok());
            let syncs = ops::watch(
                &settings,
                &env.name,
                Duration::from_millis(debounce_ms),
                wait_args.timeout,
                max,
                &progress,
            )
            .await?;
            if json {
                print_json(json!({"ok": true, "syncs": syncs}));
            }
        }
        EnvCommand::Delete { env, all } => {
            let names = if all {
                ops::list(&settings)
                    .await?
                    .into_iter()
                    .map(|e| e.name)
                    .collect()
            } else {
                vec![env.name]
            };
            let mut reports = Vec::new();
            for name in names {
                let report = ops::delete(&settings, &name, &progress).await?;
                if !json {
                    if report.nothing() {
                        println!("env {name}: nothing to delete");
                    } else {
                        println!(
                            "env {name} deleted: {}{} containers, {} volumes, {} networks{}",
                            report
                                .cluster
                                .as_deref()
                                .map(|c| format!("cluster {c}, "))
                                .unwrap_or_default(),
                            report.removed.containers.len(),
                            report.removed.volumes.len(),
                            report.removed.networks.len(),
                            if report.state_removed { ", state" } else { "" }
                        );
                    }
                }
                reports.push(report);
            }
            if json {
                print_json(json!({"ok": true, "deleted": reports}));
            }
        }
        EnvCommand::Kubeconfig(env) => {
            let path = ops::kubeconfig(&settings, &env.name)?;
            if json {
                print_json(json!({"ok": true, "kubeconfig": path}));
            } else {
                println!("{}", path.display());
            }
        }
        EnvCommand::List => {
            let entries = ops::list(&settings).await?;
            if json {
                print_json(json!({"ok": true, "envs": entries}));
            } else if entries.is_empty() {
                println!("no envs; `kindling env create dev --stamp sample` makes one");
            } else {
                for e in entries {
                    println!(
                        "{:<16} {:<28} {:<10} {:<6} {:<5} {} containers, {} volumes, {} networks",
                        e.name,
                        e.state,
                        e.stamp.as_deref().unwrap_or("-"),
                        e.provider.as_deref().unwrap_or("-"),
                        e.engine.as_deref().unwrap_or("-"),
                        e.docker.containers.len(),
                        e.docker.volumes.len(),
                        e.docker.networks.len()
                    );
                    if e.state == "orphaned" {
                        println!("    delete with: kindling env delete {}", e.name);
                    }
                }
            }
        }
    }
    Ok(())
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
}
