//! The order a bundle is applied in (pure): CustomResourceDefinitions first (their kinds do not
//! exist before), then Namespaces (namespaced objects need them), then other cluster-scoped
//! objects, then namespaced ones; within a phase, the bundle's own order. Deletion is the reverse.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    CustomResourceDefinitions,
    Namespaces,
    ClusterScoped,
    Namespaced,
}

/// Which phase an object belongs to. `namespaced` is what discovery says of its kind (`None`
/// when discovery does not know the kind yet: a custom resource whose CRD is in the bundle,
/// placed by whether the object names a namespace).
pub fn phase_of(object: &Value, namespaced: Option<bool>) -> Phase {
    let kind = object["kind"].as_str().unwrap_or_default();
    let group = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or("");
    if kind == "CustomResourceDefinition" && group == "apiextensions.k8s.io" {
        return Phase::CustomResourceDefinitions;
    }
    if kind == "Namespace" && group.is_empty() {
        return Phase::Namespaces;
    }
    let namespaced = namespaced.unwrap_or_else(|| object["metadata"]["namespace"].is_string());
    if namespaced {
        Phase::Namespaced
    } else {
        Phase::ClusterScoped
    }
}

/// Indices of `objects` in apply order (stable within a phase); `namespaced(i)` is what
/// discovery says of object `i`'s kind.
pub fn apply_order(objects: &[Value], namespaced: impl Fn(usize) -> Option<bool>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..objects.len()).collect();
    order.sort_by_key(|&i| phase_of(&objects[i], namespaced(i)));
    order
}

/// Indices in delete order: the apply order reversed, so objects go before their namespace and
/// custom resources before their definition.
pub fn delete_order(objects: &[Value], namespaced: impl Fn(usize) -> Option<bool>) -> Vec<usize> {
    let mut order = apply_order(objects, namespaced);
    order.reverse();
    order
}

/// The CRD that defines an object's kind, by its name `<plural>.<group>`, if the bundle has it.
pub fn defining_crd<'a>(objects: &'a [Value], object: &Value) -> Option<&'a Value> {
    let api_version = object["apiVersion"].as_str()?;
    let (group, _) = api_version.rsplit_once('/')?;
    let kind = object["kind"].as_str()?;
    objects.iter().find(|crd| {
        crd["kind"] == "CustomResourceDefinition"
            && crd["spec"]["group"] == group
            && crd["spec"]["names"]["kind"] == kind
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects() -> Vec<Value> {
        vec![
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "r", "namespace": "flux-system"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "c"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "gitrepositories.source.toolkit.fluxcd.io"},
                   "spec": {"group": "source.toolkit.fluxcd.io", "names": {"kind": "GitRepository"}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "flux-system"}}),
        ]
    }

    #[test]
    fn kube_apply_order_is_crds_namespaces_cluster_then_namespaced() {
        let objects = objects();
        let known = |i: usize| match objects[i]["kind"].as_str() {
            Some("ClusterRole") => Some(false),
            Some("Deployment") => Some(true),
            _ => None,
        };
        assert_eq!(apply_order(&objects, known), [3, 2, 1, 0, 4]);
        assert_eq!(delete_order(&objects, known), [4, 0, 1, 2, 3]);
    }

    #[test]
    fn kube_defining_crd_is_found_by_group_and_kind() {
        let objects = objects();
        assert_eq!(
            defining_crd(&objects, &objects[0]).unwrap()["metadata"]["name"],
            "gitrepositories.source.toolkit.fluxcd.io"
        );
        assert!(defining_crd(&objects, &objects[4]).is_none());
    }
}
