//! Whether a cluster's nodes are Ready, read from a Kubernetes `NodeList` (`GET /api/v1/nodes`).
//! Pure, so the waiting loop (with the API client) only has to fetch and ask.

use serde_json::Value;

/// Why the cluster is not ready yet, naming what blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// Fewer nodes registered than the profile asked for.
    MissingNodes { registered: usize, expected: usize },
    /// A node whose Ready condition is not True.
    Node {
        name: String,
        reason: String,
        message: String,
    },
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::MissingNodes {
                registered,
                expected,
            } => {
                write!(f, "{registered} of {expected} nodes have registered")
            }
            NotReady::Node {
                name,
                reason,
                message,
            } => write!(f, "node {name} is not Ready: {reason}: {message}"),
        }
    }
}

/// `Ok` when at least `expected` nodes exist and every one has condition Ready=True.
pub fn nodes_ready(node_list: &Value, expected: usize) -> Result<(), NotReady> {
    let items = node_list["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if items.len() < expected {
        return Err(NotReady::MissingNodes {
            registered: items.len(),
            expected,
        });
    }
    for node in items {
        let name = node["metadata"]["name"].as_str().unwrap_or("?").to_string();
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
        match ready {
            Some(c) if c["status"] == "True" => {}
            Some(c) => {
                return Err(NotReady::Node {
                    name,
                    reason: c["reason"].as_str().unwrap_or("Unknown").to_string(),
                    message: c["message"].as_str().unwrap_or("").to_string(),
                });
            }
            None => {
                return Err(NotReady::Node {
                    name,
                    reason: "NoReadyCondition".to_string(),
                    message: "the kubelet has not reported yet".to_string(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"metadata": {"name": name}, "status": {"conditions": [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": status, "reason": reason, "message": message}
        ]}})
    }

    #[test]
    fn cluster_nodes_ready_when_all_report_ready() {
        let list = json!({"kind": "NodeList", "items": [node("cp", "True", "KubeletReady", "ok"), node("w", "True", "KubeletReady", "ok")]});
        assert_eq!(nodes_ready(&list, 2), Ok(()));
    }

    #[test]
    fn cluster_nodes_not_ready_names_the_blocking_node_and_condition() {
        let list = json!({"items": [
            node("cp", "True", "KubeletReady", "ok"),
            node("w", "False", "KubeletNotReady", "container runtime network not ready: cni plugin not initialized")
        ]});
        let err = nodes_ready(&list, 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node w is not Ready: KubeletNotReady: container runtime network not ready: cni plugin not initialized"
        );
    }

    #[test]
    fn cluster_nodes_missing_or_silent_are_not_ready() {
        let list = json!({"items": [node("cp", "True", "KubeletReady", "ok")]});
        assert_eq!(
            nodes_ready(&list, 3).unwrap_err().to_string(),
            "1 of 3 nodes have registered"
        );
        let silent = json!({"items": [{"metadata": {"name": "cp"}, "status": {}}]});
        assert!(
            matches!(nodes_ready(&silent, 1), Err(NotReady::Node { reason, .. }) if reason == "NoReadyCondition")
        );
    }
}
