//! The `metallb` add-on's pool: the addresses LoadBalancer Services get, on the cluster's
//! Docker network, where the host (and other containers on that network) reach them.
//!
//! HostK8s (danielscholl-osdu/hostk8s@2add0a5 infra/scripts/setup-metallb.py
//! `detect_docker_subnet`, `create_metallb_ip_pool`) takes the first IPv4 subnet of the kind
//! network and uses `X.Y.200.200-X.Y.200.250` of it, in IPAddressPool `kind-pool` and
//! L2Advertisement `kind-l2` (metallb.io/v1beta1) in namespace `hostk8s`. kindling does the
//! same on any network of /16 or wider; on a narrower one (HostK8s' formula would leave it)
//! it takes 51 addresses below the top of the subnet. Docker hands out addresses from the
//! bottom, so the top stays free for a long time.

use std::net::Ipv4Addr;

use super::{ADDON_LABEL, ClusterFacts, HOSTK8S_NAMESPACE};

/// HostK8s' names for the pool and its advertisement.
pub const POOL: &str = "kind-pool";
pub const ADVERTISEMENT: &str = "kind-l2";

/// The pool's range (`172.18.200.200-172.18.200.250`) for an IPv4 subnet in CIDR form; None
/// when it is not one, or too small to hold a pool (narrower than /25).
pub fn pool_range(subnet: &str) -> Option<String> {
    let (address, prefix) = subnet.split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    if prefix > 25 {
        return None;
    }
    let [a, b, ..] = address.octets();
    if prefix <= 16 {
        return Some(format!("{a}.{b}.200.200-{a}.{b}.200.250"));
    }
    let size = 1u32 << (32 - prefix);
    let network = u32::from(address) & !(size - 1);
    let top = network + size - 1;
    let (first, last) = (top - 55, top - 5);
    Some(format!(
        "{}-{}",
        Ipv4Addr::from(first),
        Ipv4Addr::from(last)
    ))
}

/// The IPAddressPool and L2Advertisement of the env's range.
pub fn pool_manifest(facts: &ClusterFacts) -> Option<String> {
    let range = facts.load_balancer_range.as_deref()?;
    let labels = serde_json::json!({ ADDON_LABEL: "metallb" });
    let pool = serde_json::json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": POOL, "namespace": HOSTK8S_NAMESPACE, "labels": labels},
        "spec": {"addresses": [range]},
    });
    let advertisement = serde_json::json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": ADVERTISEMENT, "namespace": HOSTK8S_NAMESPACE, "labels": labels},
        "spec": {"ipAddressPools": [POOL]},
    });
    let mut text = serde_yaml_ng::to_string(&pool).ok()?;
    text.push_str("---\n");
    text.push_str(&serde_yaml_ng::to_string(&advertisement).ok()?);
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metallb_pool_range_follows_hostk8s_and_fits_narrow_networks() {
        // HostK8s' formula on kind's usual network, and on k3d's.
        assert_eq!(
            pool_range("172.18.0.0/16").as_deref(),
            Some("172.18.200.200-172.18.200.250")
        );
        assert_eq!(
            pool_range("10.89.0.0/12").as_deref(),
            Some("10.89.200.200-10.89.200.250")
        );
        // A /24 keeps the pool inside it, below the broadcast address.
        assert_eq!(
            pool_range("192.168.49.0/24").as_deref(),
            Some("192.168.49.200-192.168.49.250")
        );
        assert_eq!(
            pool_range("172.30.8.0/20").as_deref(),
            Some("172.30.15.200-172.30.15.250")
        );
        assert_eq!(pool_range("192.168.1.0/26"), None);
        assert_eq!(pool_range("fc00:f853:ccd:e793::/64"), None);
    }

    #[test]
    fn metallb_pool_manifest_names_hostk8s_objects() {
        let text = pool_manifest(&ClusterFacts {
            load_balancer_range: Some("172.18.200.200-172.18.200.250".into()),
        })
        .unwrap();
        assert!(text.contains("name: kind-pool"), "{text}");
        assert!(text.contains("- 172.18.200.200-172.18.200.250"), "{text}");
        assert!(text.contains("kind: L2Advertisement"), "{text}");
        assert!(pool_manifest(&ClusterFacts::default()).is_none());
    }
}
