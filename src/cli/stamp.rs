//! `kindling stamp list | validate | render | graph`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use kindling::stamp::render::{Engine, RenderOptions, render};
use kindling::stamp::{self, Role, Source, Stamp};
use serde_json::json;

use super::{EngineArg, Output};

#[derive(Subcommand)]
pub enum StampCommand {
    /// List the stamps of the source tree.
    List,
    /// Load a stamp and report every problem with it.
    Validate {
        /// Stamp name (under stamps/ or software/stacks/) or path.
        stamp: String,
        /// Warn about what this engine will not do of what the stamp asks (as `env create`,
        /// Flux by default).
        #[arg(long, value_enum, default_value = "flux")]
        engine: EngineArg,
    },
    /// Render the objects Flux or Argo CD would reconcile.
    Render {
        stamp: String,
        #[arg(long, value_enum)]
        engine: EngineArg,
        /// Write the files below this directory instead of printing them (what an earlier
        /// render there wrote and this one does not is removed).
        #[arg(long)]
        out: Option<PathBuf>,
        /// With --out: write into a non-empty directory that no render made.
        #[arg(long, requires = "out")]
        force: bool,
        /// Git URL the engine clones (default: the env's Gitea).
        #[arg(long)]
        repo_url: Option<String>,
        #[arg(long, default_value = "main")]
        branch: String,
        /// Secret holding the Git credentials (Flux `secretRef`).
        #[arg(long)]
        credentials_secret: Option<String>,
    },
    /// Show the dependency graph: waves, order and edges.
    Graph {
        stamp: String,
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
}

pub fn run(command: StampCommand, source: &Path, output: Output) -> anyhow::Result<()> {
    match command {
        StampCommand::List => list(source, output),
        StampCommand::Validate { stamp, engine } => {
            validate(&load(&stamp, source)?, engine.into(), output)
        }
        StampCommand::Render {
            stamp,
            engine,
            out,
            force,
            repo_url,
            branch,
            credentials_secret,
        } => {
            let stamp = load(&stamp, source)?;
            let mut opts =
                RenderOptions::standard(repo_url.unwrap_or_else(kindling::gitea::service_repo_url));
            opts.branch = branch;
            if credentials_secret.is_some() {
                opts.credentials_secret = credentials_secret;
            }
            let out = out.as_deref().map(|dir| (dir, force));
            render_command(&stamp, engine.into(), &opts, out, output)
        }
        StampCommand::Graph { stamp, format } => graph(&load(&stamp, source)?, format, output),
    }
}

fn load(arg: &str, source: &Path) -> Result<Stamp, stamp::StampError> {
    let dir = stamp::locate_stamp(arg, source)?;
    // A stamp given by path is its own source tree unless --source said otherwise; a stamp
    // found by name lives in the source tree.
    stamp::load(&dir, None)
}

fn list(source: &Path, output: Output) -> anyhow::Result<()> {
    if !source.is_dir() {
        return Err(kindling::env::EnvError::BadInput(format!(
            "source tree {} is not a directory\nhelp: pass the directory holding stamps/ (or software/stacks/) with --source",
            source.display()
        ))
        .into());
    }
    let stamps = stamp::list_stamps(source);
    if output == Output::Json {
        super::print_json(json!({ "stamps": stamps }));
        return Ok(());
    }
    if stamps.is_empty() {
        println!("no stamps under {}/stamps", source.display());
        return Ok(());
    }
    println!(
        "{:<20} {:<9} {:>10} {:>12}  DESCRIPTION",
        "NAME", "FORMAT", "COMPONENTS", "APPLICATIONS"
    );
    for s in stamps {
        let format = s
            .format
            .map(|f| {
                serde_json::to_value(f)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_else(|| "invalid".to_string());
        let description = match &s.error {
            Some(e) => format!("error: {}", e.lines().next().unwrap_or("")),
            None => s.description.clone().unwrap_or_default(),
        };
        println!(
            "{:<20} {:<9} {:>10} {:>12}  {}",
            kindling::ui::printable(&s.name),
            format,
            s.components,
            s.applications,
            kindling::ui::printable(&description)
        );
    }
    Ok(())
}

fn count(stamp: &Stamp, role: Role) -> usize {
    stamp.entries.iter().filter(|e| e.role == role).count()
}

fn validate(stamp: &Stamp, engine: Engine, output: Output) -> anyhow::Result<()> {
    let components = count(stamp, Role::Component);
    let applications = count(stamp, Role::Application);
    let waves = if stamp.entries.is_empty() {
        0
    } else {
        stamp.graph.max_wave() + 1
    };
    // The stamp's own (what loads but may not do what its author expects), then the engines'.
    let warnings: Vec<String> = stamp
        .warnings
        .iter()
        .map(ToString::to_string)
        .chain(kindling::stamp::render::engine_warnings(stamp, engine))
        .collect();
    if output == Output::Json {
        super::print_json(json!({
            "stamp": stamp.name,
            "valid": true,
            "warnings": warnings,
            "format": stamp.format,
            "file": stamp.file,
            "components": components,
            "applications": applications,
            "waves": waves,
            "secrets": stamp.secrets.len(),
            "storage": stamp.storage,
        }));
    } else {
        println!(
            "stamp '{}' is valid: {components} component{}, {applications} application{}, {waves} wave{}, {} bootstrap secret{}",
            stamp.name,
            plural(components),
            plural(applications),
            plural(waves),
            stamp.secrets.len(),
            plural(stamp.secrets.len()),
        );
        for d in &stamp.storage {
            println!(
                "  storage {}: {} {} at {} (class {}, owner {}:{}, mode {:o})",
                d.name,
                d.size,
                d.access_modes.join(","),
                d.path,
                d.storage_class,
                d.owner.0,
                d.owner.1,
                d.permissions
            );
        }
        for w in &warnings {
            eprintln!("warning: {}", kindling::ui::printable(w));
        }
    }
    Ok(())
}

/// What loads but may not do what the stamp's author expects, on stderr (as `note:` lines are).
fn print_warnings(stamp: &Stamp) {
    for warning in &stamp.warnings {
        eprintln!("warning: {}", kindling::ui::printable(&warning.to_string()));
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn render_command(
    stamp: &Stamp,
    engine: Engine,
    opts: &RenderOptions,
    out: Option<(&Path, bool)>,
    output: Output,
) -> anyhow::Result<()> {
    let rendered = render(stamp, engine, opts)?;
    print_warnings(stamp);
    // What the engine will not honour, unless the render's notes already say it.
    for warning in kindling::stamp::render::engine_warnings(stamp, engine) {
        if !rendered.notes.contains(&warning) {
            eprintln!("warning: {warning}");
        }
    }
    for note in &rendered.notes {
        eprintln!("note: {note}");
    }
    if let Some((dir, force)) = out {
        rendered.write_into(dir, force)?;
        if output == Output::Json {
            let files: Vec<String> = rendered.files.iter().map(|f| f.path.clone()).collect();
            super::print_json(
                json!({ "engine": engine, "out": dir, "files": files, "notes": rendered.notes }),
            );
        } else {
            println!("wrote {} files to {}", rendered.files.len(), dir.display());
        }
        return Ok(());
    }
    if output == Output::Json {
        let files: Vec<_> = rendered
            .files
            .iter()
            .map(|f| json!({ "path": format!("{}/{}", rendered.bundle_dir, f.path), "documents": f.documents }))
            .collect();
        super::print_json(
            json!({ "engine": engine, "stamp": stamp.name, "files": files, "notes": rendered.notes }),
        );
    } else {
        print!("{}", rendered.to_yaml_stream());
    }
    Ok(())
}

fn describe_source(source: &Source) -> String {
    match source {
        Source::Path(p) => p.repo_path.clone(),
        Source::Helm(h) => format!("helm {} {} ({})", h.chart, h.version, h.repo),
        Source::Remote(r) => format!(
            "{} {} ./{} ({})",
            r.kind,
            r.name,
            r.path,
            r.object["spec"]["url"].as_str().unwrap_or_default()
        ),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Component => "component",
        Role::Application => "application",
    }
}

fn graph(stamp: &Stamp, format: GraphFormat, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        let entries: Vec<_> = stamp
            .graph
            .order()
            .iter()
            .map(|&i| {
                let e = &stamp.entries[i];
                let source = match &e.source {
                    Source::Path(p) => json!({ "path": p.repo_path }),
                    Source::Helm(h) => json!({ "helm": { "repo": h.repo, "chart": h.chart, "version": h.version } }),
                    Source::Remote(r) => json!({ "remote": { "kind": r.kind, "name": r.name, "url": r.object["spec"]["url"], "path": r.path } }),
                };
                json!({
                    "name": e.name,
                    "role": role_name(e.role),
                    "wave": stamp.wave(i),
                    "dependsOn": e.depends_on,
                    "group": e.group,
                    "source": source,
                })
            })
            .collect();
        super::print_json(json!({ "stamp": stamp.name, "entries": entries }));
        return Ok(());
    }
    let text = match format {
        GraphFormat::Text => graph_text(stamp),
        GraphFormat::Dot => graph_dot(stamp),
    };
    print!("{text}");
    Ok(())
}

fn graph_text(stamp: &Stamp) -> String {
    kindling::ui::printable(&graph_lines(stamp))
}

fn graph_lines(stamp: &Stamp) -> String {
    let mut out = String::new();
    let waves = if stamp.entries.is_empty() {
        0
    } else {
        stamp.graph.max_wave() + 1
    };
    let _ = writeln!(
        out,
        "stamp {}: {} entries in {} wave{} (each wave waits for the one before)",
        stamp.name,
        stamp.entries.len(),
        waves,
        plural(waves)
    );
    let width = stamp
        .entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0);
    for wave in 0..waves {
        let _ = writeln!(out, "wave {wave}");
        for &i in stamp
            .graph
            .order()
            .iter()
            .filter(|&&i| stamp.wave(i) == wave)
        {
            let e = &stamp.entries[i];
            let _ = write!(
                out,
                "  {:<width$}  {:<11}  {}",
                e.name,
                role_name(e.role),
                describe_source(&e.source)
            );
            if !e.depends_on.is_empty() {
                let _ = write!(out, "  <- {}", e.depends_on.join(", "));
            }
            out.push('\n');
        }
    }
    out
}

fn graph_dot(stamp: &Stamp) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", stamp.name);
    let _ = writeln!(out, "  rankdir=LR;");
    for &i in stamp.graph.order() {
        let e = &stamp.entries[i];
        let shape = match e.role {
            Role::Component => "box",
            Role::Application => "ellipse",
        };
        let _ = writeln!(
            out,
            "  \"{}\" [shape={shape}, label=\"{}\\nwave {}\"];",
            e.name,
            e.name,
            stamp.wave(i)
        );
    }
    for &i in stamp.graph.order() {
        let e = &stamp.entries[i];
        for d in &e.depends_on {
            let _ = writeln!(out, "  \"{d}\" -> \"{}\";", e.name);
        }
    }
    out.push_str("}\n");
    out
}
