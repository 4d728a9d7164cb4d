//! The fake cluster's PersistentVolume controller: Available volumes, and claims bound to the
//! smallest volume that fits, as upstream kube-controller-manager binds them (kubernetes/kubernetes at
//! 4ed16993, the 1.37 line, pkg/controller/volume/persistentvolume: pv_controller.go
//! `syncVolume` sets an unclaimed volume Available; index.go `findBestMatchForClaim` looks only
//! at volumes whose access modes hold all the claim's; util/util.go `FindMatchingVolume` then
//! takes an Available volume with no claimRef, the claim's class, the same volumeMode
//! (Filesystem by default), labels matching the claim's selector and at least the requested
//! size, the smallest of them; `bindVolumeToClaim` / `bindClaimToVolume` write the claimRef,
//! `pv.kubernetes.io/bound-by-controller` and `pv.kubernetes.io/bind-completed`, and both
//! phases Bound). A class with `volumeBindingMode: WaitForFirstConsumer` is left to the
//! scheduler, which the fake does not have: its claims stay Pending. `syncVolume` also sets
//! a volume whose claimRef names a claim that is gone (or another claim of that name, by UID)
//! `Released` (the Retain policy; this fake does not model Delete or Recycle), and one without
//! a claimRef `Available` again.

use serde_json::{Value, json};

use super::kube_api::Stored;

/// Bytes of a resource quantity (`5Gi`, `500Mi`, `1G`, `1024`); `None` when unreadable.
fn bytes(quantity: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    quantity.parse().ok()
}

fn waits_for_first_consumer(objects: &[Stored], class: &str) -> bool {
    objects.iter().any(|s| {
        s.plural == "storageclasses"
            && s.name == class
            && s.object["volumeBindingMode"] == "WaitForFirstConsumer"
    })
}

fn fits(claim: &Value, volume: &Value) -> bool {
    let spec = &volume["spec"];
    let wanted = &claim["spec"];
    let modes = |v: &Value| -> Vec<String> {
        v["accessModes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let volume_modes = modes(spec);
    let mode_of = |v: &Value| v["volumeMode"].as_str().unwrap_or("Filesystem").to_string();
    let selector_matches = wanted["selector"]["matchLabels"]
        .as_object()
        .is_none_or(|labels| {
            labels
                .iter()
                .all(|(k, v)| volume["metadata"]["labels"][k] == *v)
        });
    let size = |v: &Value| v.as_str().and_then(bytes);
    volume["status"]["phase"] == "Available"
        && spec["claimRef"].is_null()
        && modes(wanted).iter().all(|m| volume_modes.contains(m))
        && mode_of(spec) == mode_of(wanted)
        && spec["storageClassName"].as_str().unwrap_or("")
            == wanted["storageClassName"].as_str().unwrap_or("")
        && selector_matches
        && size(&spec["capacity"]["storage"]) >= size(&wanted["resources"]["requests"]["storage"])
}

/// One pass of the controller over the stored objects.
pub fn bind_volumes(objects: &mut [Stored]) {
    let claims: Vec<(String, String, Value, Value)> = objects
        .iter()
        .filter(|s| s.plural == "persistentvolumeclaims")
        .map(|s| {
            (
                s.namespace.clone().unwrap_or_default(),
                s.name.clone(),
                s.object["metadata"]["uid"].clone(),
                s.object["spec"]["volumeName"].clone(),
            )
        })
        .collect();
    for s in objects
        .iter_mut()
        .filter(|s| s.plural == "persistentvolumes")
    {
        let claim_ref = &s.object["spec"]["claimRef"];
        let phase = if claim_ref.is_null() {
            "Available"
        } else {
            let claim = claims.iter().find(|(ns, name, _, _)| {
                claim_ref["namespace"] == ns.as_str() && claim_ref["name"] == name.as_str()
            });
            match claim {
                None => "Released",
                Some((_, _, uid, _)) if !claim_ref["uid"].is_null() && claim_ref["uid"] != *uid => {
                    "Released"
                }
                Some((_, _, _, volume)) if *volume == s.name.as_str() => "Bound",
                // Pre-bound by its author: the claim binds to it below.
                Some(_) => "Available",
            }
        };
        s.object["status"]["phase"] = json!(phase);
    }
    let claims: Vec<usize> = (0..objects.len())
        .filter(|&i| {
            objects[i].plural == "persistentvolumeclaims"
                && objects[i].object["status"]["phase"] != "Bound"
        })
        .collect();
    for c in claims {
        let claim = objects[c].object.clone();
        let class = claim["spec"]["storageClassName"].as_str().unwrap_or("");
        let best = (0..objects.len())
            .filter(|&v| {
                objects[v].plural == "persistentvolumes" && fits(&claim, &objects[v].object)
            })
            .min_by(|&a, &b| {
                let size = |i: usize| {
                    objects[i].object["spec"]["capacity"]["storage"]
                        .as_str()
                        .and_then(bytes)
                        .unwrap_or(f64::MAX)
                };
                size(a).total_cmp(&size(b))
            });
        let Some(v) = best.filter(|_| !waits_for_first_consumer(objects, class)) else {
            objects[c].object["status"]["phase"] = json!("Pending");
            continue;
        };
        let volume_name = objects[v].name.clone();
        let volume = &mut objects[v].object;
        volume["spec"]["claimRef"] = json!({
            "kind": "PersistentVolumeClaim", "apiVersion": "v1",
            "namespace": claim["metadata"]["namespace"], "name": claim["metadata"]["name"],
            "uid": claim["metadata"]["uid"],
        });
        volume["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
        volume["status"]["phase"] = json!("Bound");
        let capacity = volume["spec"]["capacity"].clone();
        let modes = volume["spec"]["accessModes"].clone();
        let claim = &mut objects[c].object;
        claim["spec"]["volumeName"] = json!(volume_name);
        claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
        claim["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
        claim["status"] = json!({"phase": "Bound", "capacity": capacity, "accessModes": modes});
    }
}
