//! A cert-manager the cluster ran before the env (`--provider existing`). kindling uses it as it
//! is: the stamp's own install of cert-manager is left out (`crate::stamp::cert_manager`), and
//! the env's CA Secret goes where that cert-manager reads ClusterIssuers' Secrets. kindling
//! never upgrades or removes it.
//!
//! Read from cert-manager/cert-manager v1.21.1:
//! - deploy/charts/cert-manager/templates/deployment.yaml: the controller Deployment carries
//!   `app.kubernetes.io/component: controller` and `app.kubernetes.io/version`, and is passed
//!   `--cluster-resource-namespace=$(POD_NAMESPACE)` (its own namespace) unless the chart's
//!   `clusterResourceNamespace` names another;
//! - cmd/controller/app/options/options.go: `--namespace` limits cert-manager to one namespace
//!   and disables ClusterIssuers;
//! - internal/apis/config/controller/v1alpha1/defaults.go: without the flag the binary reads
//!   ClusterIssuers' Secrets from `kube-system`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kube::KubeClient;
use crate::kube::flags::flag;

/// The CRD that says cert-manager is installed.
const CERTIFICATES_CRD: &str = "certificates.cert-manager.io";

/// The controller's namespace when its flag is absent (defaults.go).
const BINARY_DEFAULT_RESOURCE_NAMESPACE: &str = "kube-system";

/// The cluster's own cert-manager, as the env found it before its bootstrap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCertManager {
    pub version: String,
    /// Where its controller runs.
    pub namespace: String,
    /// Where it reads the Secrets of ClusterIssuers (`--cluster-resource-namespace`): the
    /// env's CA Secret goes there.
    pub resource_namespace: String,
}

/// The cluster's cert-manager, if it runs one the env can use. `Err` says why one that is
/// there cannot be used, or that kindling could not tell, before anything changes. A user who
/// may not read CRDs cannot tell either, and is taken as having none: the stamp's install is
/// then refused by Helm over the CRDs if there are some (`disableTakeOwnership`), and the
/// rights check names what is missing.
pub async fn find(kube: &KubeClient, context: &str) -> Result<Option<ClusterCertManager>, String> {
    let crd = match kube
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            CERTIFICATES_CRD,
        )
        .await
    {
        Ok(Some(crd)) => crd,
        Ok(None) => return Ok(None),
        Err(e) if e.is_forbidden() => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot tell whether the cluster of context {context} runs cert-manager: {e}; nothing was changed\nhelp: run the create again once the API server answers"
            ));
        }
    };
    let controllers = kube
        .list_labelled(
            "apps/v1",
            "Deployment",
            "app.kubernetes.io/component=controller",
        )
        .await
        .map_err(|e| {
            format!(
                "the cluster of context {context} has cert-manager's CRDs, and kindling cannot list its controller Deployment to learn where it reads ClusterIssuers' Secrets: {e}; nothing was changed\nhelp: ask for `list deployments` across namespaces, or use a cluster without cert-manager"
            )
        })?;
    let Some(controller) = controllers.iter().find(|d| is_cert_manager(d)) else {
        return Err(format!(
            "the cluster of context {context} has cert-manager's CRDs ({CERTIFICATES_CRD}, version {}) but no cert-manager controller Deployment runs (CRDs left behind by an uninstall? cert-manager's chart keeps them, so a deleted kindling env's cert-manager leaves them too); a cert-manager the stamp installed would be refused by Helm over them; nothing was changed\nhelp: if no Certificate or Issuer on the cluster is in use (`kubectl get certificates,issuers,clusterissuers -A`), remove cert-manager's CRDs; else ask the cluster's admin to run cert-manager there again (kindling then uses it), or use another cluster",
            label(&crd, "app.kubernetes.io/version").unwrap_or("unknown")
        ));
    };
    let namespace = controller["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // One another env's stamp installed (its HelmRelease's origin labels lead to that env's
    // root) goes with that env: this env would be left without one. A user who may not read
    // that env's objects still sees where the labels point: an env's own namespace.
    let installed_by = match kube.kindling_env_of(controller).await {
        Ok(env) => env,
        Err(e) if e.is_forbidden() => {
            crate::kube::ownership::engine_parent(controller).and_then(|(_, _, ns, _)| {
                ns.strip_prefix(crate::gitea::in_cluster::NAMESPACE_PREFIX)
                    .map(str::to_string)
            })
        }
        Err(e) => {
            return Err(format!(
                "cannot tell who installed the cert-manager on the cluster of context {context} (namespace {namespace}): {e}; nothing was changed\nhelp: run the create again once the API server answers"
            ));
        }
    };
    // The env's own stamp's is not the cluster's (a question asked again after the env's
    // bootstrap installed one).
    if installed_by
        .as_deref()
        .is_some_and(|env| kube.is_owned_by(env))
    {
        return Ok(None);
    }
    if let Some(other) = installed_by {
        return Err(format!(
            "the cert-manager on the cluster of context {context} (namespace {namespace}) was installed by kindling env {other}'s stamp: it goes when env {other} is deleted, and a second install of it would be refused over its objects; nothing was changed\nhelp: have the cluster run a cert-manager of its own (kindling then uses it for every env), use a stamp without cert-manager, or delete env {other} first"
        ));
    }
    let args = crate::kube::flags::container_args(controller);
    if let Some(watched) = flag(&args, "--namespace").filter(|n| !n.is_empty()) {
        return Err(format!(
            "the cert-manager of the cluster of context {context} (in namespace {namespace}) watches only namespace {watched} (`--namespace`), which disables ClusterIssuers, and the env's CA is handed over as one; nothing was changed\nhelp: use a cluster whose cert-manager serves every namespace, or one without cert-manager"
        ));
    }
    let resource_namespace = match flag(&args, "--cluster-resource-namespace") {
        Some("$(POD_NAMESPACE)") => namespace.clone(),
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => BINARY_DEFAULT_RESOURCE_NAMESPACE.to_string(),
    };
    let version = label(controller, "app.kubernetes.io/version")
        .or_else(|| label(&crd, "app.kubernetes.io/version"))
        .map(str::to_string)
        .or_else(|| image_tag(controller))
        .unwrap_or_else(|| "(version unknown)".to_string());
    Ok(Some(ClusterCertManager {
        version,
        namespace,
        resource_namespace,
    }))
}

/// What of the stamp's the cluster's cert-manager already has under the same names: a
/// ClusterIssuer the stamp declares (its engine would take it over), or the CA Secret where
/// the env's would go, not made by this env. Asked before the env's bootstrap only.
pub async fn clashes(
    kube: &KubeClient,
    stamp: &crate::stamp::Stamp,
    found: &ClusterCertManager,
    ca_secret_name: &str,
    env: &str,
    context: &str,
) -> Result<(), String> {
    let mut taken = Vec::new();
    for (name, file) in
        crate::stamp::manifests::declared(stamp, "cert-manager.io/", "ClusterIssuer")
    {
        if let Ok(Some(_)) = kube
            .get("cert-manager.io/v1", "ClusterIssuer", None, &name)
            .await
        {
            taken.push(format!(
                "ClusterIssuer {name} (declared in {})",
                file.display()
            ));
        }
    }
    // A stamp that counts on no cert-manager gets no CA Secret (`hands_over_the_ca`).
    if crate::stamp::cert_manager::counted_on(stamp, ca_secret_name)
        && let Ok(Some(secret)) = kube
            .get(
                "v1",
                "Secret",
                Some(&found.resource_namespace),
                ca_secret_name,
            )
            .await
        && secret["metadata"]["labels"][crate::ENV_LABEL] != env
    {
        taken.push(format!(
            "Secret {}/{ca_secret_name} (where the env's CA would go)",
            found.resource_namespace
        ));
    }
    match taken.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "the cluster of context {context} runs cert-manager {} already, and kindling would use it, but it has {} under the names of the env's; they are not this env's and kindling does not take them over; nothing was changed\nhelp: rename the stamp's ClusterIssuer (the CA Secret's name is kindling's), or use a cluster where those names are free",
            found.version,
            taken.join(" and ")
        )),
    }
}

/// A cert-manager controller Deployment: the chart's name label, or an image of
/// `cert-manager-controller` (a `nameOverride` changes the label, not the image).
fn is_cert_manager(deployment: &Value) -> bool {
    label(deployment, "app.kubernetes.io/name") == Some("cert-manager")
        || containers(deployment).any(|c| {
            c["image"]
                .as_str()
                .is_some_and(|i| i.contains("cert-manager-controller"))
        })
}

fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["labels"][key].as_str()
}

fn containers(deployment: &Value) -> impl Iterator<Item = &Value> {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
}

fn image_tag(deployment: &Value) -> Option<String> {
    containers(deployment).find_map(|c| {
        // `repo:tag@sha256:…`: the digest goes first, then the tag is what follows the last ':'.
        let image = c["image"].as_str()?.split('@').next()?;
        let tag = image.rsplit_once(':')?.1;
        (!tag.contains('/')).then(|| tag.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn controller(args: &[&str]) -> Value {
        json!({"metadata": {"name": "cert-manager", "namespace": "platform",
            "labels": {"app.kubernetes.io/name": "cert-manager"}},
            "spec": {"template": {"spec": {"containers": [{"name": "cert-manager-controller",
                "image": "quay.io/jetstack/cert-manager-controller:v1.21.1", "args": args}]}}}})
    }

    #[test]
    fn cert_manager_controller_is_known_by_label_or_image() {
        assert!(is_cert_manager(&controller(&[])));
        let mut renamed = controller(&[]);
        renamed["metadata"]["labels"]["app.kubernetes.io/name"] = json!("certs");
        assert!(is_cert_manager(&renamed));
        renamed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.29");
        assert!(!is_cert_manager(&renamed));
        assert_eq!(image_tag(&controller(&[])).as_deref(), Some("v1.21.1"));
        let mut pinned = controller(&[]);
        pinned["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("quay.io/jetstack/cert-manager-controller:v1.21.1@sha256:abc");
        assert_eq!(image_tag(&pinned).as_deref(), Some("v1.21.1"));
    }
}
