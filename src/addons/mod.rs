//! Cluster add-ons: what HostK8s stacks take for granted from their cluster (an ingress
//! controller serving class `nginx`, metrics-server), installed by the env's GitOps engine from
//! pinned charts as entries of their own, before the stamp's entries.
//!
//! A profile lists them (`spec.addons`); without the field a HostK8s stack gets what HostK8s
//! installs by default (danielscholl-osdu/hostk8s@2add0a5 infra/scripts/cluster-up.py: ingress
//! and metrics-server unless disabled) and a kindling stamp gets none (it brings its own).
//! The add-ons become ordinary stamp entries (`addon-NAME`), so rendering, status, suspend,
//! bundles and offline charts treat them as they treat the stamp's own; every entry of the
//! stamp that depends on nothing depends on them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::pins::Pin;
use crate::stamp::{Entry, HelmChart, Problem, Role, Source, Stamp, StampError, StampFormat};

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
}

pub const ALL: &[Addon] = &[Addon::Ingress, Addon::MetricsServer];

impl Addon {
    pub fn name(self) -> &'static str {
        match self {
            Addon::Ingress => "ingress",
            Addon::MetricsServer => "metrics-server",
        }
    }

    pub fn from_name(name: &str) -> Option<Addon> {
        ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The stamp entry's name.
    pub fn entry_name(self) -> String {
        format!("addon-{}", self.name())
    }

    pub fn pin(self) -> Pin {
        match self {
            Addon::Ingress => crate::pins::TRAEFIK_CHART,
            Addon::MetricsServer => crate::pins::METRICS_SERVER_CHART,
        }
    }

    /// The namespace HostK8s installs it in (setup-ingress.py `hostk8s`, setup-metrics.py
    /// `kube-system`), so what a stack's docs say about it holds.
    pub fn namespace(self) -> &'static str {
        match self {
            Addon::Ingress => "hostk8s",
            Addon::MetricsServer => "kube-system",
        }
    }

    fn release_name(self) -> &'static str {
        match self {
            Addon::Ingress => "traefik",
            Addon::MetricsServer => "metrics-server",
        }
    }

    /// The chart's values, kept as YAML beside this file (each checked against the chart's
    /// values schema by the pins tests where the chart has one).
    pub fn values_yaml(self) -> &'static str {
        match self {
            Addon::Ingress => include_str!("ingress-values.yaml"),
            Addon::MetricsServer => include_str!("metrics-server-values.yaml"),
        }
    }

    fn values(self) -> Map<String, Value> {
        // Embedded and tested: they always parse (`addons_values_parse`).
        serde_yaml_ng::from_str(self.values_yaml()).unwrap_or_default()
    }

    /// The `https://REPO CHART` of the pin.
    fn chart(self) -> HelmChart {
        let pin = self.pin();
        let (repo, chart) = pin.artifact.split_once(' ').unwrap_or((pin.artifact, ""));
        HelmChart {
            repo: repo.to_string(),
            chart: chart.to_string(),
            version: pin.version.to_string(),
            release_name: Some(self.release_name().to_string()),
            values: self.values(),
            plain_http: false,
        }
    }

    fn entry(self, declared_in: &Path) -> Entry {
        Entry {
            name: self.entry_name(),
            role: Role::Component,
            source: Source::Helm(self.chart()),
            namespace: Some(self.namespace().to_string()),
            depends_on: Vec::new(),
            health_checks: Vec::new(),
            timeout: Some("5m".to_string()),
            wait: true,
            prune: true,
            interval: None,
            retry_interval: None,
            group: None,
            declared_in: declared_in.to_path_buf(),
            labels: BTreeMap::from([(ADDON_LABEL.to_string(), self.name().to_string())]),
        }
    }
}

/// The add-ons an env gets: the profile's list when it has one, else HostK8s' defaults for a
/// HostK8s stack and none for a kindling stamp.
pub fn chosen(profile: Option<&[String]>, stamp: &Stamp) -> Vec<Addon> {
    match profile {
        Some(names) => names.iter().filter_map(|n| Addon::from_name(n)).collect(),
        None if stamp.format == StampFormat::Hostk8s => vec![Addon::Ingress, Addon::MetricsServer],
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
/// depending on them. A stamp entry of an add-on's name, or one the stamp already provides
/// under the same release in the same namespace, is an error naming both.
pub fn with_addons(
    mut stamp: Stamp,
    addons: &[Addon],
    declared_in: &Path,
) -> Result<Stamp, StampError> {
    if addons.is_empty() {
        return Ok(stamp);
    }
    let mut problems = Vec::new();
    let entries: Vec<Entry> = addons.iter().map(|a| a.entry(declared_in)).collect();
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
    Ok(stamp)
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
            let parsed: Result<Map<String, Value>, _> = serde_yaml_ng::from_str(a.values_yaml());
            assert!(parsed.is_ok(), "{}: {parsed:?}", a.name());
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
