//! The host ports of a new env: the profile's, else the next free ones (not bound on the host,
//! not published by any container, not recorded by another env). The caller holds the
//! machine-wide allocation lock.

use super::state::{EnvState, Ports, env_names};
use super::{EnvError, Settings};
use crate::cluster::ClusterProfile;
use crate::docker::{allocate_port, port_is_free};

pub const DEFAULT_GITEA_PORT: u16 = 3000;
pub const DEFAULT_REGISTRY_PORT: u16 = 5001;

/// The ports of a new env; `docker_ports` are those any container publishes. `gateway`: the
/// env gets host ports for HostK8s' Gateway API NodePorts too (the ingress add-on).
pub fn allocate(
    profile: &ClusterProfile,
    settings: &Settings,
    env: &str,
    docker_ports: &[u16],
    gateway: bool,
) -> Result<Ports, EnvError> {
    let mut taken = ports_of_other_envs(settings, env);
    taken.extend_from_slice(docker_ports);
    let http = allocate_one(profile.spec.ingress.http, &mut taken)?;
    let https = allocate_one(profile.spec.ingress.https, &mut taken)?;
    let gitea = match settings.external_gitea {
        Some(_) => None,
        None => Some(allocate_one(DEFAULT_GITEA_PORT, &mut taken)?),
    };
    let registry = match profile.spec.registry {
        true => Some(allocate_one(
            profile.spec.registry_port.unwrap_or(DEFAULT_REGISTRY_PORT),
            &mut taken,
        )?),
        false => None,
    };
    let gateway = match gateway {
        true => {
            let [(_, http), (_, https)] = crate::addons::GATEWAY_NODE_PORTS;
            Some(crate::cluster::IngressPorts {
                http: allocate_one(http, &mut taken)?,
                https: allocate_one(https, &mut taken)?,
            })
        }
        false => None,
    };
    Ok(Ports {
        http,
        https,
        gitea,
        registry,
        gateway,
    })
}

/// Ports of the other envs on this host, so side-by-side envs never pick the same ones.
fn ports_of_other_envs(settings: &Settings, except: &str) -> Vec<u16> {
    let mut taken = Vec::new();
    for name in env_names(&settings.data_dir) {
        if name == except {
            continue;
        }
        if let Ok(Some(s)) = EnvState::load(&settings.env_dir(&name)) {
            taken.extend([s.ports.http, s.ports.https]);
            taken.extend(s.ports.gitea);
            taken.extend(s.ports.registry);
            taken.extend(s.ports.gateway.iter().flat_map(|g| [g.http, g.https]));
        }
    }
    taken
}

fn allocate_one(wanted: u16, taken: &mut Vec<u16>) -> Result<u16, EnvError> {
    let port = allocate_port(wanted, |p| !taken.contains(&p) && port_is_free(p)).ok_or_else(
        || {
            EnvError::Preflight(format!(
                "no free port on 127.0.0.1 from {wanted} on\nhelp: free some ports or set other ones in the cluster profile"
            ))
        },
    )?;
    taken.push(port);
    Ok(port)
}
