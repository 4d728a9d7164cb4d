//! Command-line interface: the whole command tree of DESIGN.md, output modes and exit codes.

mod bundle;
mod ca;
mod cache;
mod cluster;
mod doctor;
mod engine;
mod env;
mod stamp;
mod version;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes every command uses (DESIGN.md): 0 ok, 1 failure, 2 usage or bad input,
/// 3 timed out waiting for reconciliation.
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "kindling",
    version,
    about = "A complete local Kubernetes GitOps environment in one command, and gone again in one",
    long_about = "kindling creates a kind or k3d cluster, a local Gitea holding the desired state, \
Flux or Argo CD reconciling it, a local CA trusted by cert-manager and a chosen stamp \
(infrastructure components + applications, in dependency order), and removes all of it again."
)]
pub struct Cli {
    /// Output format: human-readable text or one JSON document on stdout.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Show the underlying calls (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create, inspect, sync and delete environments.
    #[command(subcommand)]
    Env(env::EnvCommand),
    /// List, validate, render and graph stamps.
    Stamp(StampArgs),
    /// Cluster profiles and the configs rendered for kind and k3d.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// The machine's local certificate authority.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// The GitOps engines' pinned install manifests.
    #[command(subcommand)]
    Engine(engine::EngineCommand),
    /// The shared pull-through image caches.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Offline and workshop bundles: everything a create fetches, in one archive.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Check this machine for what kindling needs, and say how to fix what is missing.
    Doctor,
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// This build and every upstream release it pins (versions, URLs, sums, digests).
    Version,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ProviderArg {
    Kind,
    K3d,
}

impl From<ProviderArg> for kindling::cluster::Provider {
    fn from(p: ProviderArg) -> Self {
        match p {
            ProviderArg::Kind => kindling::cluster::Provider::Kind,
            ProviderArg::K3d => kindling::cluster::Provider::K3d,
        }
    }
}

/// The providers of an env: kind and k3d, or a cluster that exists already.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum EnvProviderArg {
    Kind,
    K3d,
    Existing,
}

impl From<EnvProviderArg> for kindling::cluster::Provider {
    fn from(p: EnvProviderArg) -> Self {
        match p {
            EnvProviderArg::Kind => kindling::cluster::Provider::Kind,
            EnvProviderArg::K3d => kindling::cluster::Provider::K3d,
            EnvProviderArg::Existing => kindling::cluster::Provider::Existing,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum EngineArg {
    Flux,
    Argo,
}

impl From<EngineArg> for kindling::stamp::render::Engine {
    fn from(e: EngineArg) -> Self {
        match e {
            EngineArg::Flux => kindling::stamp::render::Engine::Flux,
            EngineArg::Argo => kindling::stamp::render::Engine::Argo,
        }
    }
}

#[derive(Args)]
struct StampArgs {
    /// Source tree holding stamps/ (default: the current directory).
    #[arg(long, global = true)]
    source: Option<PathBuf>,
    #[command(subcommand)]
    command: stamp::StampCommand,
}

/// Prints a command's JSON document (`--output json`): one value on stdout, with the same
/// top-level `ok` every document has (`true` here unless the command set it, as `doctor`
/// does; failures go through `report_error`).
pub fn print_json(value: serde_json::Value) {
    let value = match value {
        serde_json::Value::Object(map) if !map.contains_key("ok") => {
            let mut with_ok = serde_json::Map::new();
            with_ok.insert("ok".into(), serde_json::Value::Bool(true));
            with_ok.extend(map);
            serde_json::Value::Object(with_ok)
        }
        other => other,
    };
    println!("{value:#}");
}

/// A failure whose JSON document the command already printed: the exit code still says
/// failure, but stdout keeps exactly one document.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AlreadyReported(pub String);

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let output = cli.output;
    if cli.verbose > 0 {
        kindling::ui::show_calls();
    }
    match cli.command {
        Command::Stamp(args) => {
            let source = match args.source {
                Some(s) => s,
                None => std::env::current_dir()?,
            };
            stamp::run(args.command, &source, output)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            if output == Output::Json {
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut command, "kindling", &mut script);
                let doc = serde_json::json!({
                    "shell": shell.to_string(),
                    "script": String::from_utf8_lossy(&script),
                });
                print_json(doc);
            } else {
                clap_complete::generate(shell, &mut command, "kindling", &mut std::io::stdout());
            }
            Ok(())
        }
        Command::Env(command) => {
            kindling::paths::check_owner(&kindling::paths::data_dir())?;
            env::run(command, output, cli.verbose)
        }
        Command::Cluster(command) => cluster::run(command, output),
        Command::Ca(command) => {
            kindling::paths::check_owner(&kindling::paths::data_dir())?;
            ca::run(command, output)
        }
        // Both keep what only this user should vouch for in the data dir: the caches' owner
        // label (its hash) and the recorded sums of unpinned manifests.
        Command::Cache(command) => {
            kindling::paths::check_owner(&kindling::paths::data_dir())?;
            cache::run(command, output)
        }
        Command::Engine(command) => {
            kindling::paths::check_owner(&kindling::paths::data_dir())?;
            engine::run(command, output)
        }
        Command::Bundle(command) => {
            kindling::paths::check_owner(&kindling::paths::data_dir())?;
            bundle::run(command, output, cli.verbose)
        }
        Command::Doctor => doctor::run(output),
        Command::Version => version::run(output),
    }
}

pub fn exit_code(err: &anyhow::Error) -> u8 {
    use kindling::cluster::ClusterError;
    use kindling::stamp::StampError;
    if let Some(e) = err.downcast_ref::<kindling::env::EnvError>() {
        return e.exit_code();
    }
    match (
        err.downcast_ref::<StampError>(),
        err.downcast_ref::<ClusterError>(),
    ) {
        (Some(StampError::Write { .. }), _) => EXIT_FAILURE,
        (Some(_), _) => EXIT_BAD_INPUT,
        (
            _,
            Some(
                ClusterError::InvalidProfile { .. }
                | ClusterError::ProfileSyntax { .. }
                | ClusterError::ProfileUnreadable { .. },
            ),
        ) => EXIT_BAD_INPUT,
        _ => EXIT_FAILURE,
    }
}

/// A command line clap refused (or `--help` / `--version`, which clap reports the same way).
/// With `--output json` a refused line is also one JSON document on stdout, exit 2, like every
/// other error; help and version are printed as they are.
pub fn report_usage(usage: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(
        usage.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if informational || !json_requested(std::env::args()) {
        let _ = usage.print();
        return std::process::ExitCode::from(u8::try_from(usage.exit_code()).unwrap_or(2));
    }
    let message = usage.render().to_string();
    let message = message.trim_end().trim_start_matches("error: ");
    eprintln!("error: {message}");
    let doc = serde_json::json!({
        "ok": false,
        "exitCode": EXIT_BAD_INPUT,
        "error": message,
        "problems": [],
    });
    println!("{doc:#}");
    std::process::ExitCode::from(EXIT_BAD_INPUT)
}

/// Whether the raw arguments ask for JSON (`--output json` or `--output=json`), read without
/// clap, which has just refused them.
fn json_requested(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    args.iter()
        .any(|a| a == "--output=json" || a == "-ojson" || a == "-o=json")
        || args
            .windows(2)
            .any(|w| (w[0] == "--output" || w[0] == "-o") && w[1] == "json")
}

/// Errors go to stderr as text; with `--output json` stdout also gets one JSON document, so
/// a CI job parsing stdout always has something to parse.
pub fn report_error(err: &anyhow::Error, output: Output) {
    // The error and its causes, each said once: many errors already put their cause in their
    // own message ("PATH: No such file (os error 2)"), which `{:#}` would repeat.
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
    }
    eprintln!("error: {message}");
    if output == Output::Json && err.downcast_ref::<AlreadyReported>().is_none() {
        let problems = err
            .downcast_ref::<kindling::stamp::StampError>()
            .map(|e| e.problems().to_vec())
            .unwrap_or_default();
        let doc = serde_json::json!({
            "ok": false,
            "exitCode": exit_code(err),
            "error": message,
            "problems": problems,
        });
        println!("{doc:#}");
    }
}
