//! What the kubeconfig's user may do, asked of the API server before anything changes: one
//! SelfSubjectAccessReview per right (kubernetes/api v0.36 authorization/v1/types.go; the
//! server answers `status.allowed` and, when RBAC says why not, `status.reason`,
//! kubernetes/kubernetes pkg/registry/authorization/selfsubjectaccessreview/rest.go).

use serde_json::{Value, json};

use super::{KubeClient, KubeError};

/// One right kindling needs, and what for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Right {
    pub verb: &'static str,
    /// The API group (`""` for the core group).
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    /// `None`: cluster-wide (or every namespace).
    pub namespace: Option<String>,
    pub why: &'static str,
}

impl Right {
    /// `create customresourcedefinitions.apiextensions.k8s.io`, as `kubectl auth can-i` takes it.
    pub fn describe(&self) -> String {
        let resource = match (self.group, self.subresource) {
            ("", "") => self.resource.to_string(),
            ("", sub) => format!("{}/{sub}", self.resource),
            (group, "") => format!("{}.{group}", self.resource),
            (group, sub) => format!("{}.{group}/{sub}", self.resource),
        };
        match &self.namespace {
            Some(ns) => format!("{} {resource} -n {ns}", self.verb),
            None => format!("{} {resource} (cluster-wide)", self.verb),
        }
    }

    fn review(&self) -> Value {
        let mut attributes = json!({
            "verb": self.verb, "group": self.group, "resource": self.resource,
        });
        if !self.subresource.is_empty() {
            attributes["subresource"] = json!(self.subresource);
        }
        if let Some(ns) = &self.namespace {
            attributes["namespace"] = json!(ns);
        }
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        })
    }
}

/// A right the user lacks, with the server's reason when it gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub right: Right,
    pub reason: String,
}

impl KubeClient {
    /// The rights of `rights` the user lacks.
    pub async fn missing_rights(&self, rights: &[Right]) -> Result<Vec<Missing>, KubeError> {
        let resource = ::kube::discovery::ApiResource {
            group: "authorization.k8s.io".into(),
            version: "v1".into(),
            api_version: "authorization.k8s.io/v1".into(),
            kind: "SelfSubjectAccessReview".into(),
            plural: "selfsubjectaccessreviews".into(),
        };
        let api: ::kube::Api<::kube::api::DynamicObject> =
            ::kube::Api::all_with(self.client.clone(), &resource);
        let mut missing = Vec::new();
        for right in rights {
            let review: ::kube::api::DynamicObject = serde_json::from_value(right.review())
                .map_err(|e| KubeError::Malformed {
                    index: 0,
                    reason: e.to_string(),
                })?;
            let answer = api
                .create(&Default::default(), &review)
                .await
                .map_err(|source| KubeError::Api {
                    action: format!("asking the API server whether you may {}", right.describe()),
                    source,
                })?;
            let status = &answer.data["status"];
            if status["allowed"] != true {
                missing.push(Missing {
                    right: right.clone(),
                    reason: status["reason"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rights_read_as_kubectl_auth_can_i_takes_them() {
        let crd = Right {
            verb: "create",
            group: "apiextensions.k8s.io",
            resource: "customresourcedefinitions",
            subresource: "",
            namespace: None,
            why: "",
        };
        assert_eq!(
            crd.describe(),
            "create customresourcedefinitions.apiextensions.k8s.io (cluster-wide)"
        );
        let forward = Right {
            verb: "create",
            group: "",
            resource: "pods",
            subresource: "portforward",
            namespace: Some("kindling-dev".into()),
            why: "",
        };
        assert_eq!(
            forward.describe(),
            "create pods/portforward -n kindling-dev"
        );
        assert_eq!(
            forward.review()["spec"]["resourceAttributes"],
            json!({"verb": "create", "group": "", "resource": "pods",
                "subresource": "portforward", "namespace": "kindling-dev"})
        );
    }
}
