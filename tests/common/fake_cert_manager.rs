//! cert-manager's controller as the env flow tests meet it: a CA ClusterIssuer becomes Ready
//! when its Secret holds a usable key pair, and a Certificate is issued from it for real
//! (openssl signs the leaf with the env's intermediate), so its chain can be verified.
//!
//! Read from upstream cert-manager (github.com/cert-manager/cert-manager) at v1.21.1,
//! kindling's pin: pkg/issuer/ca/setup.go (issuer readiness),
//! pkg/controller/certificaterequests/ca/ca.go and pkg/util/pki/parse_certificate_chain.go
//! (the signed chain and ca.crt), pkg/controller/certificates/readiness (Certificate Ready). Only what kindling's stamps use: CA ClusterIssuers, Certificates with
//! dnsNames. The webhook's admission is played where objects are applied (fake_flux).

use base64::Engine as _;
use serde_json::{Value, json};

use super::kube_api::Stored;

/// The namespace the binary reads ClusterIssuers' Secrets from without
/// `--cluster-resource-namespace` (internal/apis/config/controller/v1alpha1/defaults.go).
const BINARY_DEFAULT_RESOURCE_NAMESPACE: &str = "kube-system";

fn condition(status: &str, reason: &str, message: &str) -> Value {
    json!([{"type": "Ready", "status": status, "reason": reason, "message": message,
        "lastTransitionTime": "2026-11-29T08:00:00Z"}])
}

fn secret_data<'a>(objects: &'a [Stored], ns: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|s| s.plural == "secrets" && s.namespace.as_deref() == Some(ns) && s.name == name)
        .map(|s| &s.object["data"])
}

fn decoded(data: &Value, key: &str) -> Option<String> {
    let b = base64::engine::general_purpose::STANDARD
        .decode(data[key].as_str()?)
        .ok()?;
    String::from_utf8(b).ok()
}

/// Where the running cert-manager controller (its Deployment, from the chart, available, in
/// whatever namespace) reads ClusterIssuers' Secrets: its `--cluster-resource-namespace`
/// (deploy/charts/cert-manager/templates/deployment.yaml passes `$(POD_NAMESPACE)`, the
/// Deployment's own, unless `clusterResourceNamespace` is set), else the binary's default.
/// None while no controller runs.
fn running_controller(objects: &[Stored]) -> Option<String> {
    let controller = objects.iter().find(|s| {
        let labels = &s.object["metadata"]["labels"];
        s.plural == "deployments"
            && labels["app.kubernetes.io/component"] == "controller"
            && labels["app.kubernetes.io/name"] == "cert-manager"
            && s.object["status"]["availableReplicas"].as_i64() > Some(0)
    })?;
    let own = controller.namespace.clone().unwrap_or_default();
    let flag = controller.object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["args"].as_array().cloned().unwrap_or_default())
        .find_map(|a| {
            a.as_str()?
                .strip_prefix("--cluster-resource-namespace=")
                .map(str::to_string)
        });
    Some(match flag.as_deref() {
        Some("$(POD_NAMESPACE)") => own,
        Some(ns) => ns.to_string(),
        None => BINARY_DEFAULT_RESOURCE_NAMESPACE.to_string(),
    })
}

pub fn reconcile(objects: &mut Vec<Stored>) {
    let Some(resource_namespace) = running_controller(objects) else {
        return;
    };
    // pkg/issuer/ca/setup.go: the key pair is read from the Secret; missing → Ready False
    // "ErrGetKeyPair"; present and a CA → Ready True "KeyPairVerified", "Signing CA verified".
    let issuers: Vec<(usize, Option<String>)> = objects
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.object["kind"] == "ClusterIssuer" && s.object["apiVersion"] == "cert-manager.io/v1"
        })
        .map(|(i, s)| {
            (
                i,
                s.object["spec"]["ca"]["secretName"]
                    .as_str()
                    .map(str::to_string),
            )
        })
        .collect();
    for (i, secret) in issuers {
        let Some(secret) = secret else {
            // pkg/issuer/selfsigned/setup.go: always Ready, reason "IsReady", no message.
            if objects[i].object["spec"]["selfSigned"].is_object() {
                objects[i].object["status"]["conditions"] = condition("True", "IsReady", "");
            }
            // pkg/issuer/acme/setup.go: the account registers with the ACME server (the
            // clusters these fakes stand for are online, as the e2e host is): Ready True,
            // "ACMEAccountRegistered".
            if objects[i].object["spec"]["acme"].is_object() {
                objects[i].object["status"]["conditions"] = condition(
                    "True",
                    "ACMEAccountRegistered",
                    "The ACME account was registered with the ACME server",
                );
            }
            continue;
        };
        let status = match secret_data(objects, &resource_namespace, &secret) {
            None => condition(
                "False",
                "ErrGetKeyPair",
                &format!("Error getting keypair for CA issuer: secrets \"{secret}\" not found"),
            ),
            Some(data)
                if decoded(data, "tls.crt").is_none() || decoded(data, "tls.key").is_none() =>
            {
                condition(
                    "False",
                    "ErrGetKeyPair",
                    "Error getting keypair for CA issuer: error decoding certificate PEM block",
                )
            }
            Some(_) => condition("True", "KeyPairVerified", "Signing CA verified"),
        };
        objects[i].object["status"]["conditions"] = status;
    }
    let certificates: Vec<usize> = (0..objects.len())
        .filter(|&i| {
            objects[i].object["kind"] == "Certificate"
                && objects[i].object["apiVersion"] == "cert-manager.io/v1"
        })
        .collect();
    for i in certificates {
        let cert = objects[i].object.clone();
        let ns = objects[i].namespace.clone().unwrap_or_default();
        let secret_name = cert["spec"]["secretName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if cert["status"]["conditions"][0]["status"] == "True"
            && secret_data(objects, &ns, &secret_name).is_some()
        {
            continue;
        }
        let issuer = cert["spec"]["issuerRef"]["name"]
            .as_str()
            .unwrap_or_default();
        let issuer_object = objects
            .iter()
            .find(|s| s.object["kind"] == "ClusterIssuer" && s.name == issuer)
            .map(|s| s.object.clone());
        let ready_issuer = issuer_object
            .as_ref()
            .filter(|o| o["status"]["conditions"][0]["status"] == "True");
        let self_signed = ready_issuer.is_some_and(|o| o["spec"]["selfSigned"].is_object());
        let ca = ready_issuer
            .and_then(|o| o["spec"]["ca"]["secretName"].as_str())
            .and_then(|s| secret_data(objects, &resource_namespace, s))
            .and_then(|d| Some((decoded(d, "tls.crt")?, decoded(d, "tls.key")?)));
        let signer = match (self_signed, ca) {
            (true, _) => Some(Signer::SelfSigned),
            (false, Some((chain, key))) => Some(Signer::Ca { chain, key }),
            _ => None,
        };
        let Some(signer) = signer else {
            // The request waits for its issuer: Ready False, reason Issuing / DoesNotExist.
            objects[i].object["status"]["conditions"] = condition(
                "False",
                "DoesNotExist",
                "Issuing certificate as Secret does not exist",
            );
            continue;
        };
        let names: Vec<String> = cert["spec"]["dnsNames"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let request = Request {
            names,
            common_name: cert["spec"]["commonName"].as_str().map(str::to_string),
            is_ca: cert["spec"]["isCA"] == true,
        };
        match issue(&request, &signer) {
            Ok((leaf, key)) => {
                // parse_certificate_chain.go: tls.crt is the leaf and its intermediates, the
                // self-signed root left out; ca.crt is the top of the chain (the root; a
                // self-signed certificate is its own).
                let (intermediates, root) = match &signer {
                    Signer::Ca { chain, .. } => split_root(chain),
                    Signer::SelfSigned => (String::new(), leaf.clone()),
                };
                let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
                let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": secret_name, "namespace": ns,
                        "annotations": {"cert-manager.io/certificate-name": cert["metadata"]["name"], "cert-manager.io/issuer-name": issuer}},
                    "data": {"tls.crt": b64(&format!("{leaf}{intermediates}")), "tls.key": b64(&key), "ca.crt": b64(&root)}});
                objects.retain(|s| {
                    !(s.plural == "secrets"
                        && s.namespace.as_deref() == Some(ns.as_str())
                        && s.name == secret_name)
                });
                objects.push(Stored {
                    group_version: "v1".into(),
                    plural: "secrets".into(),
                    namespace: Some(ns.clone()),
                    name: secret_name.clone(),
                    object: secret,
                });
                objects[i].object["status"]["conditions"] = condition(
                    "True",
                    "Ready",
                    "Certificate is up to date and has not expired",
                );
            }
            Err(e) => {
                objects[i].object["status"]["conditions"] = condition("False", "Failed", &e);
            }
        }
    }
}

/// The CA Secret's chain (intermediate first, root last, as kindling writes it) split into
/// what goes into tls.crt and ca.crt; a chain of one is its own top.
fn split_root(chain: &str) -> (String, String) {
    let start = chain.rfind("-----BEGIN CERTIFICATE-----").unwrap_or(0);
    if start == 0 {
        return (chain.to_string(), chain.to_string());
    }
    (chain[..start].to_string(), chain[start..].to_string())
}

enum Signer {
    SelfSigned,
    Ca { chain: String, key: String },
}

struct Request {
    names: Vec<String>,
    common_name: Option<String>,
    is_ca: bool,
}

/// A certificate for `request`, signed by the first certificate of the CA chain with its key,
/// or by its own key.
fn issue(request: &Request, signer: &Signer) -> Result<(String, String), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let p = |f: &str| dir.path().join(f).display().to_string();
    let mut ext = Vec::new();
    if !request.names.is_empty() {
        let san: Vec<String> = request.names.iter().map(|n| format!("DNS:{n}")).collect();
        // pkg/util/pki/csr.go: with an empty subject the SAN extension is critical
        // (RFC 5280 4.2.1.6).
        let critical = if request.common_name.is_none() {
            "critical,"
        } else {
            ""
        };
        ext.push(format!("subjectAltName={critical}{}", san.join(",")));
    }
    if request.is_ca {
        ext.push("basicConstraints=critical,CA:TRUE".into());
        ext.push("keyUsage=critical,keyCertSign,cRLSign,digitalSignature".into());
    } else {
        ext.push("basicConstraints=CA:FALSE".into());
        ext.push("keyUsage=critical,digitalSignature".into());
        ext.push("extendedKeyUsage=serverAuth".into());
        ext.push("authorityKeyIdentifier=keyid".into());
    }
    std::fs::write(p("ext"), ext.join("\n") + "\n").map_err(|e| e.to_string())?;
    let subject = match &request.common_name {
        Some(cn) => format!("/CN={cn}"),
        None => "/".to_string(),
    };
    let run = |args: &[&str]| -> Result<(), String> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p("leaf.key"),
        "-subj",
        &subject,
        "-out",
        &p("leaf.csr"),
    ])?;
    // The signer's key (and certificate): the leaf's own, or the CA's.
    let signing: Vec<String> = match signer {
        Signer::SelfSigned => vec!["-key".into(), p("leaf.key")],
        Signer::Ca { chain, key } => {
            let first_end = chain
                .find("-----END CERTIFICATE-----")
                .map(|i| i + "-----END CERTIFICATE-----".len())
                .ok_or("the CA Secret holds no certificate")?;
            std::fs::write(p("ca.crt"), format!("{}\n", &chain[..first_end]))
                .map_err(|e| e.to_string())?;
            std::fs::write(p("ca.key"), key).map_err(|e| e.to_string())?;
            [
                "-CA",
                &p("ca.crt"),
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
            ]
            .map(String::from)
            .to_vec()
        }
    };
    let mut args: Vec<String> = ["x509", "-req", "-in", &p("leaf.csr")]
        .map(String::from)
        .to_vec();
    args.extend(signing);
    args.extend(["-days", "30", "-extfile", &p("ext"), "-out", &p("leaf.crt")].map(String::from));
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let read = |f: &str| std::fs::read_to_string(p(f)).map_err(|e| e.to_string());
    Ok((read("leaf.crt")?, read("leaf.key")?))
}
