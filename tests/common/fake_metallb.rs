//! The fake cluster's MetalLB controller, once the `metallb` add-on's chart installed it:
//! every Service of type LoadBalancer without an address gets the lowest free one of the
//! pools, as metallb v0.16.1 assigns them (internal/allocator/allocator.go `allocateFromPool`
//! takes each CIDR of the pool in turn and `getIPFromCIDR` the first address not in use;
//! config.go turns an `a-b` range into the CIDRs that cover it, in order). The controller
//! reads the pools of its own namespace only (cmd/controller `--namespace`), skips Services
//! that name another `spec.loadBalancerClass` (the chart sets none), and writes
//! `status.loadBalancer.ingress[].ip`. Announcing the address (the speaker, L2) is not
//! modelled; kstatus calls a LoadBalancer Service Current once it has a clusterIP, address
//! or not (fluxcd/cli-utils pkg/kstatus/status/core.go `serviceConditions`), so nothing
//! waits on this.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::kube_api::Stored;

/// The chart's controller Deployment (charts/metallb/templates/controller.yaml, fullname
/// `metallb` + `-controller` for release `metallb`).
pub const CONTROLLER: &str = "metallb-controller";

pub fn assign_addresses(objects: &mut [Stored]) {
    let Some(namespace) = objects
        .iter()
        .find(|s| s.object["kind"] == "Deployment" && s.name == CONTROLLER)
        .and_then(|s| s.namespace.clone())
    else {
        return;
    };
    let mut free: Vec<Ipv4Addr> = objects
        .iter()
        .filter(|s| {
            s.object["kind"] == "IPAddressPool" && s.namespace.as_deref() == Some(&namespace)
        })
        .flat_map(|s| {
            s.object["spec"]["addresses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|a| a.as_str().map(addresses))
        .flatten()
        .collect();
    let used: Vec<String> = objects
        .iter()
        .filter(|s| s.object["kind"] == "Service")
        .flat_map(|s| {
            s.object["status"]["loadBalancer"]["ingress"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|i| i["ip"].as_str().map(str::to_string))
        .collect();
    free.retain(|ip| !used.contains(&ip.to_string()));
    free.reverse();
    for s in objects.iter_mut() {
        let o = &mut s.object;
        if o["kind"] != "Service"
            || o["spec"]["type"] != "LoadBalancer"
            || !o["spec"]["loadBalancerClass"].is_null()
            || o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .is_some_and(|i| !i.is_empty())
        {
            continue;
        }
        let Some(ip) = free.pop() else {
            return;
        };
        o["status"]["loadBalancer"] = json!({"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]});
    }
}

/// The addresses of an `a-b` range or a CIDR, lowest first.
fn addresses(spec: &str) -> Vec<Ipv4Addr> {
    let (first, last) = match spec.split_once('-') {
        Some((a, b)) => match (a.trim().parse::<Ipv4Addr>(), b.trim().parse::<Ipv4Addr>()) {
            (Ok(a), Ok(b)) => (u32::from(a), u32::from(b)),
            _ => return Vec::new(),
        },
        None => {
            let Some((ip, prefix)) = spec.split_once('/') else {
                return Vec::new();
            };
            let (Ok(ip), Ok(prefix)) = (ip.parse::<Ipv4Addr>(), prefix.parse::<u32>()) else {
                return Vec::new();
            };
            let size = 1u32 << (32 - prefix.min(32));
            let base = u32::from(ip) & !(size.wrapping_sub(1));
            (base, base + size - 1)
        }
    };
    (first..=last).map(Ipv4Addr::from).collect()
}

/// What the chart installs that the fake needs (its controller, speaker and the two CRDs the
/// add-on's pool uses, from the fixtures: metallb v0.16.1 charts/metallb/charts/crds).
pub fn chart_objects(namespace: &str, values: &Value) -> Vec<Value> {
    let mut objects = vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": CONTROLLER, "namespace": namespace}, "spec": {"replicas": 1}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "metallb-speaker", "namespace": namespace}}),
    ];
    if values["crds"]["enabled"] != false {
        for crd in [
            "metallb.io_ipaddresspools.yaml",
            "metallb.io_l2advertisements.yaml",
        ] {
            let text = std::fs::read_to_string(super::schemas_dir().join(crd)).unwrap();
            objects.push(serde_yaml_ng::from_str(&text).unwrap());
        }
    }
    objects
}
