//! `kindling bundle save | load`: offline and workshop bundles (`kindling::bundle`).

use std::path::PathBuf;

use clap::Subcommand;
use kindling::bundle::{self, WantedImage};
use kindling::cluster::Provider;
use kindling::engine::manifests;

use super::{EngineArg, Output, ProviderArg};

#[derive(Subcommand)]
pub enum BundleCommand {
    /// Write one archive (an OCI image layout) with what an env fetches from the internet: the
    /// pinned node, Gitea, registry and engine images, the engine's install manifest, the kind
    /// and k3d binaries, and the images you list (those the stamp's charts render).
    Save {
        /// The archive to write (replaced whole, never left half-written).
        file: PathBuf,
        /// Images to add, one per line: `REFERENCE` or `REFERENCE from SOURCE` (a mirror
        /// to copy it from). The images charts use are only known once rendered: `kubectl get
        /// pods -A -o jsonpath='{..image}'` on a running env lists them.
        #[arg(long)]
        images: Option<PathBuf>,
        /// Leave out the pinned images, tools and manifests: only the listed images and those
        /// of `--env`.
        #[arg(long)]
        no_pins: bool,
        /// `os/arch` whose layers to keep (repeatable; default: this machine's).
        #[arg(long = "platform", value_name = "OS/ARCH")]
        platforms: Vec<String>,
        /// The machines that will load the bundle, whose kind and k3d binaries to add
        /// (repeatable: `linux-amd64`, `linux-arm64`, `darwin-amd64`, `darwin-arm64`;
        /// default: this machine's).
        #[arg(long = "tool-platform", value_name = "OS-ARCH")]
        tool_platforms: Vec<String>,
        /// The provider the bundle is for (default: the env's, else the profile's, else kind).
        #[arg(long, value_enum)]
        provider: Option<ProviderArg>,
        /// The engine the bundle is for (default: the env's, else flux).
        #[arg(long, value_enum)]
        engine: Option<EngineArg>,
        /// Cluster profile (its Kubernetes version picks the node image).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// A PEM file of your network's root CA (a TLS-intercepting proxy's), trusted for the
        /// copies besides Mozilla's roots (repeatable; KINDLING_EXTRA_CA adds more).
        #[arg(long = "extra-ca", value_name = "FILE")]
        extra_ca: Vec<PathBuf>,
        /// Take provider, engine and profile from this env, the images its nodes hold (what
        /// its charts and manifests pulled: `crictl images` in each node) and its stamp's Helm
        /// charts.
        #[arg(long)]
        env: Option<String>,
        /// Add this stamp's Helm charts (a name under the source tree's stamps/, or a path).
        #[arg(long)]
        stamp: Option<String>,
        /// Leave out the stamp's Helm charts (of `--stamp`, or of the env's stamp).
        #[arg(long)]
        no_charts: bool,
        /// The source tree a stamp name is looked up in.
        #[arg(long, default_value = ".")]
        source: PathBuf,
    },
    /// Seed the shared image caches, the Docker engine, the tool cache and the manifest cache
    /// from a bundle, so that `env create` needs no network.
    Load { file: PathBuf },
}

pub fn run(command: BundleCommand, output: Output, verbose: u8) -> anyhow::Result<()> {
    let settings = kindling::env::Settings::from_env();
    let progress = kindling::ui::Progress::new(verbose);
    match command {
        BundleCommand::Save {
            file,
            images,
            no_pins,
            platforms,
            tool_platforms,
            provider,
            engine,
            profile,
            env,
            stamp,
            no_charts,
            source,
            extra_ca,
        } => {
            kindling::net::trust_also(&extra_ca)?;
            let mut wanted: Vec<WantedImage> = Vec::new();
            let mut tools = Vec::new();
            let mut install = Vec::new();
            let state = match &env {
                Some(name) => Some(
                    kindling::env::state::EnvState::load(&settings.env_dir(name))?
                        .ok_or_else(|| kindling::env::EnvError::NotFound(name.clone()))?,
                ),
                None => None,
            };
            if !no_pins {
                let profile = profile.or_else(|| state.as_ref().and_then(|s| s.profile.clone()));
                let provider_choice: Option<Provider> = provider
                    .map(Into::into)
                    .or(state.as_ref().map(|s| s.provider));
                let mut profile =
                    super::cluster::find_profile(profile.as_deref(), provider_choice)?;
                if let Some(p) = provider_choice {
                    profile.spec.provider = p;
                }
                let engine: kindling::engine::Engine = engine
                    .map(Into::into)
                    .or(state.as_ref().map(|s| s.engine))
                    .unwrap_or(kindling::engine::Engine::Flux);
                let pinned = manifests::pinned(engine);
                let fetched = manifests::fetch(
                    &pinned,
                    &settings.manifest_dirs(),
                    settings.local_manifests(),
                )?;
                wanted = bundle::pinned_images(
                    profile.spec.provider,
                    &profile.spec.kubernetes_version,
                    &settings.gitea_image,
                    &settings.registry_image,
                    &fetched.text,
                )?;
                install.push((pinned.file_name(), fetched.text.into_bytes()));
                let tool_platforms = if tool_platforms.is_empty() {
                    vec![kindling::cluster::tools::platform()]
                } else {
                    tool_platforms
                };
                for platform in &tool_platforms {
                    for tool in [
                        kindling::cluster::tools::kind_tool(),
                        kindling::cluster::tools::k3d_tool(),
                    ] {
                        progress.detail(&format!(
                            "tool {} {} for {platform}",
                            tool.name, tool.version
                        ));
                        let bytes = kindling::cluster::tools::pinned_binary(
                            &tool,
                            &settings.data_dir,
                            platform,
                        )?;
                        tools.push((tool, platform.clone(), bytes));
                    }
                }
            }
            if let Some(state) = &state {
                for image in held_by_nodes(state, &progress)? {
                    if !wanted.iter().any(|w| w.reference == image.reference) {
                        wanted.push(image);
                    }
                }
            }
            if let Some(list) = &images {
                for image in bundle::read_list(list)? {
                    if !wanted.iter().any(|w| w.reference == image.reference) {
                        wanted.push(image);
                    }
                }
            }
            // The stamp named, else the env's: its charts, and its add-ons' manifests.
            let stamp = match (&stamp, &state) {
                // A HostK8s stack's default add-ons are charts its env needs too.
                (Some(arg), _) => {
                    let stamp = kindling::env::open::load_stamp(arg, &source)?;
                    let addons = kindling::addons::chosen(None, &stamp);
                    let declared_in = kindling::addons::declared_in(None);
                    kindling::addons::fetch_manifests(
                        &addons,
                        &settings.data_dir,
                        &settings.manifest_dirs(),
                        settings.local_manifests(),
                    )?;
                    Some(kindling::addons::with_addons(
                        stamp,
                        &addons,
                        &declared_in,
                        &settings.data_dir,
                    )?)
                }
                (None, Some(state)) => {
                    Some(kindling::env::open::stamp_of(&settings.data_dir, state)?)
                }
                (None, None) => None,
            };
            // The add-ons' downloaded manifests (gateway-api), which an offline create needs too.
            if let Some(s) = &stamp {
                install.extend(kindling::addons::bundled_manifests(s)?);
            }
            let charts: Vec<kindling::stamp::HelmChart> = stamp
                .iter()
                .filter(|_| !no_charts)
                .flat_map(|s| &s.entries)
                .filter_map(|e| match &e.source {
                    // An app's chart travels in the env's repository, not in the bundle.
                    kindling::stamp::Source::Helm(chart) if !chart.in_tree() => Some(chart.clone()),
                    _ => None,
                })
                .collect();
            if wanted.is_empty() && charts.is_empty() && install.is_empty() {
                anyhow::bail!(
                    "nothing to save: --no-pins leaves out the pinned images\nhelp: name images with --images FILE, a stamp with charts with --stamp, or an env with --env NAME"
                );
            }
            let platforms = if platforms.is_empty() {
                vec![bundle::host_platform()]
            } else {
                platforms
            };
            let report = bundle::save(
                &file,
                &wanted,
                &platforms,
                &tools,
                &install,
                &charts,
                &mut |line| progress.detail(line),
            )?;
            if output == Output::Json {
                super::print_json(serde_json::json!({ "bundle": report }));
            } else {
                println!(
                    "wrote {} ({:.1} MiB): {} images for {}, {} charts, {} tools, {} manifests",
                    report.file.display(),
                    report.bytes as f64 / 1_048_576.0,
                    report.record.images.len(),
                    report.record.platforms.join(", "),
                    report.record.charts.len(),
                    report.record.tools.len(),
                    report.record.manifests.len()
                );
            }
        }
        BundleCommand::Load { file } => {
            kindling::paths::private_dirs(&settings.data_dir)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(async {
                bundle::load(
                    &file,
                    &settings.data_dir,
                    &settings.cache_dir,
                    &settings.registry_image,
                    &mut |line| progress.detail(line),
                )
                .await
                .map_err(anyhow::Error::from)
            })?;
            if output == Output::Json {
                super::print_json(serde_json::json!({ "loaded": report }));
            } else {
                println!(
                    "loaded {}: {} caches seeded, {} images in the Docker engine only, {} charts, tools: {}, manifests: {}",
                    report.file.display(),
                    report.seeded.len(),
                    report.engine_only.len(),
                    report.charts.len(),
                    if report.tools.is_empty() {
                        "none".to_string()
                    } else {
                        report.tools.join(", ")
                    },
                    if report.manifests.is_empty() {
                        "none".to_string()
                    } else {
                        report.manifests.join(", ")
                    }
                );
            }
        }
    }
    Ok(())
}

/// The images the nodes of the env hold (`bundle::node_images` of each node's `crictl images`);
/// a node without crictl (kind's load balancer has none) is passed over with a line.
fn held_by_nodes(
    state: &kindling::env::state::EnvState,
    progress: &kindling::ui::Progress,
) -> anyhow::Result<Vec<WantedImage>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let docker = kindling::docker::DockerClient::connect().await?;
        let mut wanted: Vec<WantedImage> = Vec::new();
        for (node, listing) in kindling::env::power::node_image_listings(&docker, state).await? {
            let listed = match listing {
                Ok(listed) => listed,
                Err(why) => {
                    progress.warn(&format!(
                        "node {node}: `crictl images` failed ({why}); its images are left out"
                    ));
                    continue;
                }
            };
            for image in bundle::node_images(&listed, state.provider) {
                if !wanted.iter().any(|w| w.reference == image.reference) {
                    progress.detail(&format!("node {node}: {}", image.reference));
                    wanted.push(image);
                }
            }
        }
        Ok(wanted)
    })
}
