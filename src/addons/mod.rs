//! Cluster add-ons: what HostK8s stacks take for granted from their cluster (an ingress
//! controller serving class `nginx`, metrics-server, the Gateway API CRDs), installed by the
//! env's GitOps engine from pinned charts and manifests as entries of their own, before the
//! stamp's entries.
//!
//! A profile lists them (`spec.addons`); without the field a HostK8s stack gets what HostK8s
//! installs by default (danielscholl-osdu/hostk8s@2add0a5 infra/scripts/cluster-up.py: ingress
//! and metrics-server unless disabled, the Gateway API CRDs always) and a kindling stamp gets
//! none (it brings its own).
//! The add-ons become ordinary stamp entries (`addon-NAME`), so rendering, status, suspend,
//! bundles and offline charts treat them as they treat the stamp's own; every entry of the
//! stamp that depends on nothing depends on them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::pins::Pin;

pub mod metallb;
use crate::stamp::{
    Entry, HelmChart, PathSource, Problem, Role, Source, Stamp, StampError, StampFormat,
};

/// The label the add-ons' engine objects carry, with the add-on's name.
pub const ADDON_LABEL: &str = "kindling.dev/addon";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Addon {
    /// Traefik, serving Ingresses of class `nginx` through its NGINX provider (ingress-nginx,
    /// which HostK8s installs, was retired upstream in March 2026; the sample stamp made the
    /// same choice), on the node's ports 80/443 and on HostK8s' NodePorts 30080/30443.
    Ingress,
    /// metrics-server, for `kubectl top` and HorizontalPodAutoscalers.
    MetricsServer,
    /// The Gateway API CRDs, standard channel (HostK8s setup-gateway-api.py installs them
    /// always; its Istio stack needs them).
    GatewayApi,
    /// Secrets through Vault, as HostK8s gives them (setup-vault.py, manage-secrets.py): Vault
    /// in dev mode, the External Secrets Operator, and the ClusterSecretStore `vault-backend`
    /// its components' ExternalSecrets read; the stack's secret contracts are written into
    /// Vault (`crate::env::vault`) instead of being made Secrets by kindling.
    Vault,
    /// LoadBalancer addresses on the cluster's Docker network, opt-in (HostK8s
    /// setup-metallb.py with METALLB_ENABLED): MetalLB in layer-2 mode with a pool from the
    /// network's subnet, as HostK8s picks it (`metallb::pool_range`).
    Metallb,
}

pub const ALL: &[Addon] = &[
    Addon::Ingress,
    Addon::MetricsServer,
    Addon::GatewayApi,
    Addon::Vault,
    Addon::Metallb,
];

/// What HostK8s installs unless told otherwise (infra/scripts/cluster-up.py: ingress and
/// metrics-server unless disabled, the Gateway API CRDs always; Vault only with
/// VAULT_ENABLED, which kindling turns on for a stack that reads `vault-backend`).
pub const HOSTK8S_DEFAULTS: &[Addon] = &[Addon::Ingress, Addon::MetricsServer, Addon::GatewayApi];

/// Where an add-on's manifest lands in the pushed tree: the engine reads it from Git.
const PUSHED_DIR: &str = ".kindling/addons";

/// The namespace of HostK8s' own services (setup-ingress.py, setup-vault.py `hostk8s`).
pub const HOSTK8S_NAMESPACE: &str = "hostk8s";

/// The Secret that holds Vault's root token, which the ClusterSecretStore authenticates with
/// (setup-vault.py `vault-token`, key `token`) and the dev server starts with.
pub const VAULT_TOKEN_SECRET: &str = "vault-token";

/// The ClusterSecretStore HostK8s components name.
pub const VAULT_STORE: &str = "vault-backend";

/// HostK8s' Gateway API NodePorts and the host ports its kind config maps to them
/// (infra/kubernetes/kind-custom.yaml: 30081 → 8081, 30444 → 8444, used by its Istio stack's
/// gateway); with the ingress add-on kindling maps them as well, to the next free host ports
/// when those are taken.
pub const GATEWAY_NODE_PORTS: [(u16, u16); 2] = [(30081, 8081), (30444, 8444)];

/// Vault's Service (the chart's fullname for release `vault`) and port.
pub const VAULT_SERVICE: &str = "vault";
pub const VAULT_PORT: u16 = 8200;

/// One entry an add-on brings.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    /// The entry is `addon-NAME`.
    pub name: &'static str,
    pub namespace: &'static str,
    pub source: PartSource,
    /// Other parts of the same add-on this one waits for (entry names).
    pub depends_on: &'static [&'static str],
}

#[derive(Debug, Clone, Copy)]
pub enum PartSource {
    /// A pinned chart (`HELM-REPO CHART` pin), its release name and values (YAML).
    Chart {
        pin: Pin,
        release: &'static str,
        values: &'static str,
    },
    /// A pinned manifest kindling downloads and pushes.
    Download(Pin),
    /// Manifests kindling writes itself and pushes.
    Generated(fn() -> String),
    /// Manifests made from the env's cluster once it exists (`ClusterFacts`), pushed with
    /// every snapshot; nothing is kept under the data dir.
    FromCluster(fn(&ClusterFacts) -> Option<String>),
}

/// What the env's cluster is, for the parts made from it.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    /// The addresses LoadBalancer Services get (`metallb::pool_range`).
    pub load_balancer_range: Option<String>,
}

impl Part {
    pub fn entry_name(&self) -> String {
        format!("addon-{}", self.name)
    }

    /// The install manifest of a part that is one.
    pub fn manifest(&self) -> Option<crate::engine::manifests::PinnedManifest> {
        match self.source {
            PartSource::Download(pin) => Some(crate::engine::manifests::PinnedManifest {
                name: self.name,
                version: pin.version.to_string(),
                url: pin.artifact.to_string(),
                sha256: pin.sha256().map(str::to_string),
            }),
            _ => None,
        }
    }

    /// Where a pushed part's manifest is kept for the env's pushes (`DATA/addons/NAME-VERSION/`).
    pub fn manifest_dir(&self, data_dir: &Path) -> PathBuf {
        let version = match self.source {
            PartSource::Download(pin) => pin.version,
            _ => env!("CARGO_PKG_VERSION"),
        };
        data_dir
            .join("addons")
            .join(format!("{}-{version}", self.name))
    }

    fn entry(&self, addon: Addon, declared_in: &Path, data_dir: &Path) -> Entry {
        let source = match self.source {
            PartSource::Chart {
                pin,
                release,
                values,
            } => {
                let (repo, chart) = pin.artifact.split_once(' ').unwrap_or((pin.artifact, ""));
                Source::Helm(HelmChart {
                    repo: repo.to_string(),
                    chart: chart.to_string(),
                    version: pin.version.to_string(),
                    release_name: Some(release.to_string()),
                    // Embedded and tested: they always parse (`addons_values_parse`).
                    values: serde_yaml_ng::from_str::<Map<String, Value>>(values)
                        .unwrap_or_default(),
                    plain_http: false,
                })
            }
            PartSource::Download(_) | PartSource::Generated(_) | PartSource::FromCluster(_) => {
                Source::Path(PathSource {
                    repo_path: format!("{PUSHED_DIR}/{}", self.name),
                    host_dir: self.manifest_dir(data_dir),
                })
            }
        };
        Entry {
            name: self.entry_name(),
            role: Role::Component,
            source,
            namespace: Some(self.namespace.to_string()),
            depends_on: self.depends_on.iter().map(|d| d.to_string()).collect(),
            health_checks: Vec::new(),
            timeout: Some("5m".to_string()),
            wait: true,
            prune: true,
            interval: None,
            retry_interval: None,
            group: None,
            declared_in: declared_in.to_path_buf(),
            labels: BTreeMap::from([(ADDON_LABEL.to_string(), addon.name().to_string())]),
            manual_gate: false,
            applied_directly: false,
        }
    }
}

impl Addon {
    pub fn name(self) -> &'static str {
        match self {
            Addon::Ingress => "ingress",
            Addon::MetricsServer => "metrics-server",
            Addon::GatewayApi => "gateway-api",
            Addon::Vault => "vault",
            Addon::Metallb => "metallb",
        }
    }

    pub fn from_name(name: &str) -> Option<Addon> {
        ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The entries it brings, each pinned. The namespaces are HostK8s' (setup-ingress.py and
    /// setup-vault.py `hostk8s`, setup-metrics.py `kube-system`), so what a stack's docs say
    /// about them holds.
    pub fn parts(self) -> &'static [Part] {
        match self {
            Addon::Ingress => &[Part {
                name: "ingress",
                namespace: HOSTK8S_NAMESPACE,
                source: PartSource::Chart {
                    pin: crate::pins::TRAEFIK_CHART,
                    release: "traefik",
                    values: include_str!("ingress-values.yaml"),
                },
                depends_on: &[],
            }],
            Addon::MetricsServer => &[Part {
                name: "metrics-server",
                namespace: "kube-system",
                source: PartSource::Chart {
                    pin: crate::pins::METRICS_SERVER_CHART,
                    release: "metrics-server",
                    values: include_str!("metrics-server-values.yaml"),
                },
                depends_on: &[],
            }],
            Addon::GatewayApi => &[Part {
                name: "gateway-api",
                namespace: "kube-system",
                source: PartSource::Download(crate::pins::GATEWAY_API),
                depends_on: &[],
            }],
            Addon::Vault => &[
                Part {
                    name: "external-secrets",
                    namespace: HOSTK8S_NAMESPACE,
                    source: PartSource::Chart {
                        pin: crate::pins::EXTERNAL_SECRETS_CHART,
                        release: "external-secrets",
                        values: include_str!("external-secrets-values.yaml"),
                    },
                    depends_on: &[],
                },
                Part {
                    name: "vault",
                    namespace: HOSTK8S_NAMESPACE,
                    source: PartSource::Chart {
                        pin: crate::pins::VAULT_CHART,
                        release: "vault",
                        values: include_str!("vault-values.yaml"),
                    },
                    depends_on: &[],
                },
                Part {
                    name: "vault-backend",
                    namespace: HOSTK8S_NAMESPACE,
                    source: PartSource::Generated(vault_backend),
                    depends_on: &["addon-external-secrets", "addon-vault"],
                },
            ],
            // HostK8s installs the chart into `hostk8s`, release `metallb`
            // (setup-metallb.py), then its pool and advertisement.
            Addon::Metallb => &[
                Part {
                    name: "metallb",
                    namespace: HOSTK8S_NAMESPACE,
                    source: PartSource::Chart {
                        pin: crate::pins::METALLB_CHART,
                        release: "metallb",
                        values: include_str!("metallb-values.yaml"),
                    },
                    depends_on: &[],
                },
                Part {
                    name: "metallb-pool",
                    namespace: HOSTK8S_NAMESPACE,
                    source: PartSource::FromCluster(metallb::pool_manifest),
                    depends_on: &["addon-metallb"],
                },
            ],
        }
    }

    /// The chart values of its parts (each checked against the chart's values schema by the
    /// pins tests where the chart has one), by part name.
    pub fn values_yaml(self) -> Vec<(&'static str, &'static str)> {
        self.parts()
            .iter()
            .filter_map(|p| match p.source {
                PartSource::Chart { values, .. } => Some((p.name, values)),
                _ => None,
            })
            .collect()
    }
}

/// The ClusterSecretStore HostK8s' components read, as setup-vault.py makes it: Vault's KV v2
/// engine at `secret`, reached through its Service, with the root token from `vault-token`.
fn vault_backend() -> String {
    let store = serde_json::json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ClusterSecretStore",
        "metadata": {"name": VAULT_STORE, "labels": {ADDON_LABEL: "vault"}},
        "spec": {"provider": {"vault": {
            "server": format!("http://{VAULT_SERVICE}.{HOSTK8S_NAMESPACE}.svc.cluster.local:{VAULT_PORT}"),
            "path": "secret",
            "version": "v2",
            "auth": {"tokenSecretRef": {
                "name": VAULT_TOKEN_SECRET,
                "key": "token",
                "namespace": HOSTK8S_NAMESPACE,
            }},
        }}},
    });
    serde_yaml_ng::to_string(&store).unwrap_or_default()
}

/// The add-ons an env gets: the profile's list when it has one, else HostK8s' defaults for a
/// HostK8s stack and none for a kindling stamp.
pub fn chosen(profile: Option<&[String]>, stamp: &Stamp) -> Vec<Addon> {
    match profile {
        Some(names) => names.iter().filter_map(|n| Addon::from_name(n)).collect(),
        None if stamp.format == StampFormat::Hostk8s => {
            let mut addons = HOSTK8S_DEFAULTS.to_vec();
            if crate::stamp::manifests::reads_cluster_secret_store(stamp, VAULT_STORE) {
                addons.push(Addon::Vault);
            }
            addons
        }
        None => Vec::new(),
    }
}

/// The profile's names that are no add-on, each with the known ones.
pub fn unknown_names(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| Addon::from_name(n).is_none())
        .cloned()
        .collect()
}

pub fn known_names() -> String {
    ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

/// The stamp with the add-ons' entries first, and every entry that depended on nothing
/// depending on them. A stamp entry of an add-on's name, or a Helm entry of the stamp with an
/// add-on's chart or release name, is an error naming the entry and the add-on.
pub fn with_addons(
    mut stamp: Stamp,
    addons: &[Addon],
    declared_in: &Path,
    data_dir: &Path,
) -> Result<Stamp, StampError> {
    if addons.is_empty() {
        return Ok(stamp);
    }
    let mut problems = Vec::new();
    // A chart the stamp installs itself (the sample stamp's Traefik) would be a second Helm
    // release of the same name: Flux keeps every release of the env in one storage namespace.
    for addon in addons {
        for part in addon.parts() {
            let PartSource::Chart { pin, release, .. } = part.source else {
                continue;
            };
            let chart = pin
                .artifact
                .split_once(' ')
                .map(|(_, c)| c)
                .unwrap_or_default();
            for entry in &stamp.entries {
                let Source::Helm(h) = &entry.source else {
                    continue;
                };
                let theirs = h.release_name.clone().unwrap_or(entry.name.clone());
                if h.chart == chart || theirs == release {
                    problems.push(Problem::new(
                        &entry.declared_in,
                        Some(&entry.name),
                        "helm",
                        format!(
                            "installs {} (release {theirs}), as kindling's add-on {} does ({chart}, release {release})",
                            h.chart,
                            addon.name()
                        ),
                        format!(
                            "leave `{}` out of the profile's spec.addons (the stamp brings its own), or remove the entry",
                            addon.name()
                        ),
                    ));
                }
            }
        }
    }
    let entries: Vec<Entry> = addons
        .iter()
        .flat_map(|a| a.parts().iter().map(move |p| (*a, p)))
        .map(|(a, p)| p.entry(a, declared_in, data_dir))
        .collect();
    for added in &entries {
        if let Some(clash) = stamp.entry(&added.name) {
            problems.push(Problem::new(
                &clash.declared_in,
                Some(&clash.name),
                "name",
                format!("is the name of kindling's add-on {}", added.name),
                "rename the entry, or leave the add-on out of the profile's spec.addons",
            ));
        }
    }
    if !problems.is_empty() {
        return Err(StampError::Invalid {
            stamp: stamp.name.clone(),
            problems,
        });
    }
    let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    for e in &mut stamp.entries {
        if e.depends_on.is_empty() {
            e.depends_on = names.clone();
        }
    }
    let mut all = entries;
    all.append(&mut stamp.entries);
    stamp.entries = all;
    crate::stamp::rebuild_graph(&mut stamp)?;
    if addons.contains(&Addon::Vault) {
        // The stack's contracts go into Vault, where its ExternalSecrets read them, as
        // manage-secrets.py writes them; the root token is generated once per env and kept
        // in its state like any generated value, and only the cluster ever sees it.
        if stamp.format == StampFormat::Hostk8s {
            for secret in &mut stamp.secrets {
                secret.through_vault = true;
            }
        }
        stamp.secrets.push(crate::stamp::BootstrapSecret {
            name: VAULT_TOKEN_SECRET.to_string(),
            namespace: HOSTK8S_NAMESPACE.to_string(),
            keys: vec![crate::stamp::SecretKey {
                key: "token".to_string(),
                value: crate::stamp::SecretValue::Generate(crate::stamp::SecretGenerator::new(
                    crate::stamp::GeneratorKind::Token,
                    Some(32),
                )),
            }],
            through_vault: false,
        });
    }
    Ok(stamp)
}

/// Fetches (or finds in the cache, or in the local copies) each downloaded part's pinned
/// manifest, verified as the engines' are (`crate::engine::manifests`), writes each generated
/// part's, and keeps them where the env's pushes read them. Returns notes to show (a sum
/// recorded at first download).
pub fn fetch_manifests(
    addons: &[Addon],
    data_dir: &Path,
    dirs: &crate::engine::manifests::ManifestDirs,
    local: Option<crate::engine::manifests::LocalCopies<'_>>,
) -> Result<Vec<String>, crate::engine::EngineError> {
    let mut notes = Vec::new();
    for part in addons.iter().flat_map(|a| a.parts()) {
        let text = match part.source {
            PartSource::Chart { .. } | PartSource::FromCluster(_) => continue,
            PartSource::Generated(make) => make(),
            PartSource::Download(_) => {
                let Some(manifest) = part.manifest() else {
                    continue;
                };
                let fetched = crate::engine::manifests::fetch(&manifest, dirs, local)?;
                notes.extend(fetched.note);
                fetched.text
            }
        };
        let dir = part.manifest_dir(data_dir);
        let io = |e: std::io::Error| crate::engine::EngineError::Io {
            path: dir.clone(),
            source: e,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        crate::paths::write_atomic(&dir.join(MANIFEST_FILE), text.as_bytes(), 0o644).map_err(io)?;
    }
    Ok(notes)
}

/// The name the fetched manifest has in the pushed tree.
const MANIFEST_FILE: &str = "install.yaml";

/// The files the stamp's manifest add-ons push (path in the tree → content), read from where
/// [`fetch_manifests`] kept them.
pub fn pushed_files(stamp: &Stamp) -> Result<Vec<(String, Vec<u8>)>, StampError> {
    let mut files = Vec::new();
    for entry in &stamp.entries {
        let Source::Path(path) = &entry.source else {
            continue;
        };
        if !entry.labels.contains_key(ADDON_LABEL) {
            continue;
        }
        if part_of(&entry.name).is_some_and(|p| matches!(p.source, PartSource::FromCluster(_))) {
            continue;
        }
        let file = path.host_dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&file).map_err(|e| StampError::io(&file, e))?;
        files.push((format!("{}/{MANIFEST_FILE}", path.repo_path), bytes));
    }
    Ok(files)
}

/// The add-on part an entry stands for.
fn part_of(entry: &str) -> Option<&'static Part> {
    ALL.iter()
        .flat_map(|a| a.parts())
        .find(|p| p.entry_name() == entry)
}

/// The stamp's parts made from the env's cluster (`PartSource::FromCluster`), as (path in
/// the pushed tree, content); an error names a part whose facts the env lacks.
pub fn cluster_files(
    stamp: &Stamp,
    facts: &ClusterFacts,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    for entry in &stamp.entries {
        let Some(part) = part_of(&entry.name) else {
            continue;
        };
        let PartSource::FromCluster(make) = part.source else {
            continue;
        };
        let text = make(facts).ok_or_else(|| {
            format!(
                "add-on part {} needs the cluster network's IPv4 subnet, /25 or wider, and Docker reported none for this env's network",
                part.name
            )
        })?;
        files.push((
            format!("{PUSHED_DIR}/{}/{MANIFEST_FILE}", part.name),
            text.into_bytes(),
        ));
    }
    Ok(files)
}

/// The downloaded manifests of the stamp's add-ons as a bundle carries them (file name as in
/// the cache → content), read from where [`fetch_manifests`] kept them.
pub fn bundled_manifests(stamp: &Stamp) -> Result<Vec<(String, Vec<u8>)>, StampError> {
    let mut files = Vec::new();
    for part in ALL.iter().flat_map(|a| a.parts()) {
        let Some(manifest) = part.manifest() else {
            continue;
        };
        let Some(entry) = stamp.entry(&part.entry_name()) else {
            continue;
        };
        let Source::Path(path) = &entry.source else {
            continue;
        };
        let file = path.host_dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&file).map_err(|e| StampError::io(&file, e))?;
        files.push((manifest.file_name(), bytes));
    }
    Ok(files)
}

/// The downloaded part whose manifest a bundle names `file`.
pub fn manifest_of_file(file: &str) -> Option<crate::engine::manifests::PinnedManifest> {
    ALL.iter()
        .flat_map(|a| a.parts())
        .filter_map(Part::manifest)
        .find(|m| m.file_name() == file)
}

/// Where add-on entries say they were declared: the profile, or kindling itself.
pub fn declared_in(profile: Option<&Path>) -> PathBuf {
    profile
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("(kindling add-ons)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addons_values_parse() {
        for a in ALL {
            for (part, values) in a.values_yaml() {
                let parsed: Result<Map<String, Value>, _> = serde_yaml_ng::from_str(values);
                assert!(parsed.is_ok(), "{part}: {parsed:?}");
            }
        }
    }

    #[test]
    fn addons_names_round_trip_and_unknown_ones_are_listed() {
        for a in ALL {
            assert_eq!(Addon::from_name(a.name()), Some(*a));
        }
        assert_eq!(
            unknown_names(&["ingress".into(), "nginx".into()]),
            ["nginx"]
        );
    }
}
