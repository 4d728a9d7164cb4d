//! The network's root CAs (`crate::pki::extra_ca`) for the engines' HTTPS chart sources, each
//! engine the way it reads them:
//! - Flux: a Secret with `ca.crt` in `flux-system`, named by every rendered HTTPS or OCI
//!   HelmRepository's `certSecretRef`. source-controller adds it to the system roots
//!   (fluxcd/source-controller v1.9 internal/helm/getter/client_opts.go, fluxcd/pkg
//!   runtime/secrets TLSConfigFromSecret with WithSystemCertPool). The Secret must be in the
//!   HelmRepository's namespace (a LocalObjectReference).
//! - Argo CD: `argocd-tls-certs-cm`, one key per repository host (without port) holding the
//!   PEM. repo-server mounts it at /app/config/tls and hands `--ca-file` to Helm for that host
//!   (argoproj/argo-cd v3.5.1 pkg/apis/application/v1alpha1/repository_types.go getCAPath,
//!   util/cert/cert.go GetCertBundlePathForRepository). That file *replaces* the system roots
//!   (util/helm/client.go newTLSConfig), which is what a TLS-intercepting proxy needs: every
//!   certificate it serves is signed by the network's root.
//!
//! Argo CD's repo-server reads the ConfigMap through a volume, which the kubelet refreshes
//! only after a while, so the keys go into the install manifest's own `argocd-tls-certs-cm`
//! before the controllers start (`merge_into`), and into the bootstrap objects again for a
//! stamp with other hosts (`env restart`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Engine;
use crate::pki::extra_ca::{ExtraCa, tls_host};
use crate::stamp::render::Rendered;

/// The Secret the rendered HelmRepositories' `certSecretRef` names.
pub const FLUX_SECRET: &str = "kindling-extra-ca";
/// Argo CD's ConfigMap of repository CA bundles, from its install manifest.
pub const ARGO_TLS_CERTS: &str = "argocd-tls-certs-cm";

/// The objects that hand the engine the roots, for the chart sources of `rendered`. Flux's
/// Secret sits beside the HelmRepositories, in `flux_namespace` (a `certSecretRef` is local).
pub fn objects(
    engine: Engine,
    flux_namespace: &str,
    rendered: &Rendered,
    ca: &ExtraCa,
) -> Vec<Value> {
    match engine {
        Engine::Flux => vec![super::secret_object(
            FLUX_SECRET,
            flux_namespace,
            &[],
            &[("ca.crt", &ca.pem)],
        )],
        Engine::Argo => {
            let data: BTreeMap<String, String> = chart_hosts(rendered)
                .into_iter()
                .map(|host| (host, ca.pem.clone()))
                .collect();
            if data.is_empty() {
                return Vec::new();
            }
            vec![json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": ARGO_TLS_CERTS,
                    "namespace": super::argo::NAMESPACE,
                    "labels": {
                        "app.kubernetes.io/name": ARGO_TLS_CERTS,
                        "app.kubernetes.io/part-of": "argocd",
                    },
                },
                "data": data,
            })]
        }
    }
}

/// The hosts of the HTTPS and OCI chart sources of the rendered Argo CD Applications.
pub fn chart_hosts(rendered: &Rendered) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for document in rendered.files.iter().flat_map(|f| f.documents.iter()) {
        if document["kind"] != "Application" {
            continue;
        }
        let spec = &document["spec"];
        let sources = std::iter::once(&spec["source"])
            .chain(spec["sources"].as_array().into_iter().flatten())
            .filter(|s| s["chart"].is_string());
        for source in sources {
            if let Some(host) = source["repoURL"].as_str().and_then(tls_host)
                && !hosts.contains(&host)
            {
                hosts.push(host);
            }
        }
    }
    hosts
}

/// Puts `extra` into the install manifest's objects: the data of an object the manifest has
/// (Argo CD's empty `argocd-tls-certs-cm`) is merged in, others are added at the end.
pub fn merge_into(objects: &mut Vec<Value>, extra: &[Value]) {
    for object in extra {
        let same = |o: &&mut Value| {
            o["kind"] == object["kind"]
                && o["metadata"]["name"] == object["metadata"]["name"]
                && (o["metadata"]["namespace"].is_null()
                    || o["metadata"]["namespace"] == object["metadata"]["namespace"])
        };
        match objects.iter_mut().find(same) {
            Some(existing) => {
                if !existing["data"].is_object() {
                    existing["data"] = json!({});
                }
                for (key, value) in object["data"].as_object().into_iter().flatten() {
                    existing["data"][key] = value.clone();
                }
            }
            None => objects.push(object.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::render::RenderedFile;

    fn rendered(documents: Vec<Value>) -> Rendered {
        Rendered {
            engine: crate::stamp::render::Engine::Argo,
            bundle_dir: ".kindling".into(),
            files: vec![RenderedFile {
                path: "argo/apps/x.yaml".into(),
                documents,
            }],
            notes: Vec::new(),
            raw_files: Vec::new(),
        }
    }

    #[test]
    fn argo_gets_a_bundle_per_chart_host_and_the_manifest_object_keeps_its_own_keys() {
        let apps = rendered(vec![
            json!({"kind": "Application", "spec": {"source": {"repoURL": "https://charts.corp:8443/stable", "chart": "a"}}}),
            json!({"kind": "Application", "spec": {"sources": [
                {"repoURL": "ghcr.io/org/charts", "chart": "b"},
                {"repoURL": "https://git.corp/repo.git", "path": "x"},
                {"repoURL": "http://plain.corp", "chart": "c"},
            ]}}),
        ]);
        assert_eq!(chart_hosts(&apps), vec!["charts.corp", "ghcr.io"]);
        let ca = ExtraCa {
            pem: "PEM".into(),
            roots: Vec::new(),
        };
        let extra = objects(Engine::Argo, super::super::flux::NAMESPACE, &apps, &ca);
        assert_eq!(extra[0]["data"]["charts.corp"], "PEM");
        let mut manifest = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ARGO_TLS_CERTS}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"}}),
        ];
        merge_into(&mut manifest, &extra);
        assert_eq!(manifest.len(), 2);
        assert_eq!(manifest[0]["data"]["ghcr.io"], "PEM");
        assert!(manifest[1]["data"].is_null());
        // No chart over TLS: nothing to hand Argo CD.
        assert!(
            objects(
                Engine::Argo,
                super::super::flux::NAMESPACE,
                &rendered(Vec::new()),
                &ca
            )
            .is_empty()
        );
        let flux = objects(
            Engine::Flux,
            super::super::flux::NAMESPACE,
            &rendered(Vec::new()),
            &ca,
        );
        assert_eq!(flux[0]["metadata"]["name"], FLUX_SECRET);
        assert_eq!(flux[0]["metadata"]["namespace"], "flux-system");
    }
}
