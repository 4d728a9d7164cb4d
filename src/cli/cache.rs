//! `kindling cache status | prune`: the shared pull-through image caches.

use clap::Subcommand;
use kindling::docker::DockerClient;
use kindling::registry;
use serde_json::json;

use super::Output;

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Size and images of the shared image caches.
    Status,
    /// Remove the shared image caches and what they stored.
    Prune,
}

pub fn run(command: CacheCommand, output: Output) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let docker = DockerClient::connect().await?;
        match command {
            CacheCommand::Status => {
                let caches = registry::cache_status(&docker).await?;
                if output == Output::Json {
                    super::print_json(json!({ "caches": caches }));
                } else if caches.is_empty() {
                    println!("no image caches yet; `kindling env create` starts them");
                } else {
                    for c in caches {
                        let size = c
                            .size_bytes
                            .map(|b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
                            .unwrap_or_else(|| "-".into());
                        println!(
                            "{:<34} {:<16} {:<8} {:>10}  {} images",
                            c.name,
                            c.upstream,
                            c.state,
                            size,
                            c.repositories.len()
                        );
                        for r in c.repositories {
                            println!("    {r}");
                        }
                    }
                }
            }
            CacheCommand::Prune => {
                let removed = registry::prune_caches(&docker).await?;
                if output == Output::Json {
                    super::print_json(json!({ "removed": removed }));
                } else {
                    println!(
                        "removed {} caches and {} volumes",
                        removed.containers.len(),
                        removed.volumes.len()
                    );
                }
            }
        }
        Ok(())
    })
}
