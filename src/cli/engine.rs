//! `kindling engine manifests`: fetch and verify the pinned install manifests, and copy them
//! for a host without internet (`env create --manifests-dir DIR` there).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use kindling::engine::{Engine, manifests};
use serde_json::json;

use super::{EngineArg, Output};

#[derive(Subcommand)]
pub enum EngineCommand {
    /// Download (or reuse) and verify the pinned Flux and Argo CD install manifests.
    Manifests {
        /// Only this engine's manifest.
        #[arg(long, value_enum)]
        engine: Option<EngineArg>,
        /// Also copy the verified files into DIR, for `--manifests-dir` on an air-gapped host.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Read the manifests from a local copy instead of the cache or the internet.
        #[arg(long)]
        manifests_dir: Option<PathBuf>,
        /// Use a local copy even when no sha256 is pinned or recorded for it.
        #[arg(long)]
        trust_manifests: bool,
    },
}

pub fn run(command: EngineCommand, output: Output) -> anyhow::Result<()> {
    let EngineCommand::Manifests {
        engine,
        out,
        manifests_dir,
        trust_manifests,
    } = command;
    let engines = match engine {
        Some(e) => vec![Engine::from(e)],
        None => vec![Engine::Flux, Engine::Argo],
    };
    // The same sources as `env create`: KINDLING_MANIFESTS_DIR unless --manifests-dir, and
    // KINDLING_MANIFESTS_MODIFIED for copies changed on purpose.
    let mut settings = kindling::env::Settings::from_env();
    if manifests_dir.is_some() {
        settings.manifests_dir = manifests_dir;
    }
    settings.trust_manifests |= trust_manifests;
    let mut rows = Vec::new();
    for engine in engines {
        let pinned = manifests::pinned(engine);
        let fetched = manifests::fetch(
            &pinned,
            &settings.manifest_dirs(),
            settings.local_manifests(),
        )?;
        if let Some(dir) = &out {
            let target = dir.join(pinned.file_name());
            kindling::paths::write_atomic(&target, fetched.text.as_bytes(), 0o644)
                .with_context(|| format!("writing {}", target.display()))?;
        }
        if let Some(note) = &fetched.note {
            eprintln!("note: {note}");
        }
        rows.push(json!({
            "engine": engine.name(),
            "version": pinned.version,
            "url": pinned.url,
            "sha256": fetched.sha256,
            "pinned": pinned.sha256.is_some(),
            "origin": fetched.origin,
            "path": fetched.path,
        }));
    }
    if output == Output::Json {
        super::print_json(json!({ "manifests": rows }));
    } else {
        for r in &rows {
            println!(
                "{:<5} {:<8} sha256 {} ({}) {}",
                r["engine"].as_str().unwrap_or_default(),
                r["version"].as_str().unwrap_or_default(),
                r["sha256"].as_str().unwrap_or_default(),
                r["origin"].as_str().unwrap_or_default(),
                r["path"].as_str().unwrap_or_default()
            );
        }
        if let Some(dir) = &out {
            println!(
                "copied to {}; use `--manifests-dir {}` where there is no internet",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(())
}
