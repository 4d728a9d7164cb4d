//! The fake cluster's CloudNativePG operator, for HostK8s' postgres component (its
//! `cnpg-operator` HelmRelease of the cloudnative-pg chart) and the `postgresql.cnpg.io/v1`
//! Clusters its stacks declare.
//!
//! Modelled on upstream cloudnative-pg/cloudnative-pg v1.30.0: an instance is `CLUSTER-N` from 1
//! (pkg/specs/pods.go `GetInstanceName`) and its PGDATA PersistentVolumeClaim has the
//! instance's name (pkg/reconciler/persistentvolumeclaim/calculator.go), with the Cluster's
//! `spec.storage` (`size`, `storageClass`, and `pvcTemplate` under them), labelled
//! `cnpg.io/cluster`; the Cluster is `Cluster in healthy state` (api/v1/cluster_types.go
//! `PhaseHealthy`) with condition `Ready` (`ConditionClusterReady`) True once its instances run,
//! and `Ready` False, `ClusterIsNotReady`, "Cluster Is Not Ready" before (api/v1
//! cluster_funcs.go). An instance here runs once its claim is Bound: the fake has no
//! pods, so an unbound claim is what holds a Cluster back.

use serde_json::{Value, json};

use super::kube_api::Stored;

/// Whether the operator runs: the chart's Deployment (release `cnpg-operator` →
/// `cnpg-operator-cloudnative-pg`, the chart's fullname rule) exists somewhere.
fn operator_installed(objects: &[Stored]) -> bool {
    objects
        .iter()
        .any(|s| s.plural == "deployments" && s.name.ends_with("cloudnative-pg"))
}

pub fn reconcile_clusters(objects: &mut Vec<Stored>) {
    if !operator_installed(objects) {
        return;
    }
    let clusters: Vec<(String, Value)> = objects
        .iter()
        .filter(|s| s.plural == "clusters" && s.group_version == "postgresql.cnpg.io/v1")
        .map(|s| (s.namespace.clone().unwrap_or_default(), s.object.clone()))
        .collect();
    for (namespace, cluster) in clusters {
        let name = cluster["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let instances = cluster["spec"]["instances"].as_u64().unwrap_or(1);
        let storage = &cluster["spec"]["storage"];
        let mut bound = 0;
        for n in 1..=instances {
            let claim = format!("{name}-{n}");
            let existing = objects.iter().find(|s| {
                s.plural == "persistentvolumeclaims"
                    && s.namespace.as_deref() == Some(namespace.as_str())
                    && s.name == claim
            });
            match existing {
                Some(s) if s.object["status"]["phase"] == "Bound" => bound += 1,
                Some(_) => {}
                None => {
                    let mut spec = storage["pvcTemplate"].clone();
                    if !spec.is_object() {
                        spec = json!({"accessModes": ["ReadWriteOnce"]});
                    }
                    if let Some(size) = storage["size"].as_str() {
                        spec["resources"]["requests"]["storage"] = json!(size);
                    }
                    if let Some(class) = storage["storageClass"].as_str() {
                        spec["storageClassName"] = json!(class);
                    }
                    objects.push(Stored {
                        group_version: "v1".into(),
                        plural: "persistentvolumeclaims".into(),
                        namespace: Some(namespace.clone()),
                        name: claim.clone(),
                        object: json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "metadata": {"name": claim, "namespace": namespace,
                                "uid": format!("uid-pvc-{namespace}-{claim}"),
                                "labels": {"cnpg.io/cluster": name, "cnpg.io/instanceName": claim}},
                            "spec": spec}),
                    });
                }
            }
        }
        let status = if bound == instances {
            json!({"phase": "Cluster in healthy state", "instances": instances, "readyInstances": instances,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady", "message": "Cluster is Ready"}]})
        } else {
            json!({"phase": "Setting up primary", "instances": instances, "readyInstances": bound,
                   "conditions": [{"type": "Ready", "status": "False", "reason": "ClusterIsNotReady", "message": "Cluster Is Not Ready"}]})
        };
        if let Some(s) = objects.iter_mut().find(|s| {
            s.plural == "clusters"
                && s.namespace.as_deref() == Some(namespace.as_str())
                && s.name == name
        }) {
            s.object["status"] = status;
        }
    }
}
