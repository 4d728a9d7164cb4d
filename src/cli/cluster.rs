//! `kindling cluster config`: the config kindling would hand to kind or k3d.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use kindling::cluster::{self, ClusterProfile, Provider};

use super::{Output, ProviderArg};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Print the config kindling would hand to kind or k3d.
    Config {
        /// Cluster profile (default: clusters/<provider>.yaml, else the built-in default).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Override the profile's provider.
        #[arg(long, value_enum)]
        provider: Option<ProviderArg>,
        /// Environment name (the cluster is kindling-NAME).
        #[arg(long, default_value = "dev")]
        name: String,
    },
}

pub fn run(command: ClusterCommand, output: Output) -> anyhow::Result<()> {
    let ClusterCommand::Config {
        profile,
        provider,
        name,
    } = command;
    let provider: Option<Provider> = provider.map(Into::into);
    let mut profile = find_profile(profile.as_deref(), provider)?;
    if let Some(p) = provider {
        profile.spec.provider = p;
    }
    let mut resolved = cluster::resolve(
        &profile,
        &name,
        profile.spec.ingress,
        Some(kindling::env::ports::DEFAULT_REGISTRY_PORT),
    )?;
    // What `env create` hands the provider, the user's proxy included.
    resolved.proxy = cluster::proxy::ProxySettings::from_env();
    // And the network's roots, checked as a create checks them, at the env's copy.
    if kindling::pki::extra_ca::ExtraCa::load(&profile.spec.extra_ca)?.is_some() {
        let env_dir = kindling::paths::env_dir(&kindling::paths::data_dir(), &name);
        resolved.extra_ca = Some(kindling::pki::extra_ca::ExtraCa::env_copy(&env_dir));
    }
    if output == Output::Json {
        let config = match resolved.provider {
            Provider::Kind => cluster::render_kind(&resolved),
            Provider::K3d => cluster::render_k3d(&resolved, &name),
            Provider::Existing => serde_json::Value::Null,
        };
        super::print_json(serde_json::json!({ "cluster": resolved, "config": config }));
    } else {
        print!("{}", cluster::render_config(&resolved, &name));
    }
    Ok(())
}

/// The named profile, else `clusters/<provider>.yaml` of the current directory, else the
/// built-in default for the provider (kind when none is named).
pub fn find_profile(
    path: Option<&Path>,
    provider: Option<Provider>,
) -> anyhow::Result<ClusterProfile> {
    if let Some(path) = path {
        return Ok(cluster::load_profile(path)?);
    }
    let provider = provider.unwrap_or(Provider::Kind);
    let shipped = Path::new("clusters").join(format!("{}.yaml", provider.name()));
    if shipped.is_file() {
        return Ok(cluster::load_profile(&shipped)?);
    }
    Ok(cluster::default_profile(provider))
}
