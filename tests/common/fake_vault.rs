//! The fake cluster's Vault and External Secrets Operator, for the `vault` add-on.
//!
//! Vault: a dev server's KV v2 engine at `secret/`, as upstream hashicorp/vault 2.0.4 (the vault-helm
//! v0.34.1 appVersion) documents its HTTP API (developer.hashicorp.com/vault/api-docs,
//! secret/kv/kv-v2 and system/health; `GET /v1/sys/health` 200 once active; `GET /v1/secret/data/PATH` → `{"data": {"data":
//! {...}, "metadata": {...}}}` or 404 `{"errors": []}`; `POST /v1/secret/data/PATH` with
//! `{"data": {...}}` writes a new version; a request without the root token in
//! `X-Vault-Token` is 403 `{"errors": ["permission denied"]}`). It "runs" once the chart's
//! StatefulSet `vault` in `hostk8s` is ready, with the root token from the Secret
//! `hostk8s/vault-token` its `-dev-root-token-id` reads (src/addons/vault-values.yaml), and is
//! reached through the API server's service proxy.
//!
//! ESO: external-secrets/external-secrets v2.9.0
//! pkg/controllers/externalsecret/externalsecret_controller.go (apis/externalsecrets/v1
//! externalsecret_types.go and secretstore_types.go for the reasons),
//! for the Vault provider with KV v2: a ClusterSecretStore is Ready (reason `Valid`) when its
//! Vault answers to its token; an ExternalSecret's `data[].remoteRef {key, property}` and
//! `dataFrom[].extract.key` read `secret/data/KEY`; `target.template.data` (engineVersion v2,
//! Go templates) is rendered for `{{ .KEY }}` and `{{ .KEY | urlquery }}` only (anything else
//! fails the ExternalSecret, naming it); the Secret `target.name` (the ExternalSecret's name by
//! default) is written and the ExternalSecret is Ready, reason `SecretSynced`, message
//! "secret synced"; a key Vault lacks makes it Ready=False, reason `SecretSyncedError`, message
//! "could not get secret data from provider".

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::kube_api::Stored;

const NAMESPACE: &str = "hostk8s";

/// Vault's stored secrets, by path below `secret/`.
#[derive(Debug, Default, Clone)]
pub struct Vault {
    pub kv: BTreeMap<String, (Map<String, Value>, u64)>,
}

fn find<'a>(objects: &'a [Stored], plural: &str, ns: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|s| s.plural == plural && s.namespace.as_deref() == Some(ns) && s.name == name)
        .map(|s| &s.object)
}

fn secret_value(secret: &Value, key: &str) -> Option<String> {
    if let Some(v) = secret["stringData"][key].as_str() {
        return Some(v.to_string());
    }
    let encoded = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

impl Vault {
    /// The root token of a running Vault; `None` while it is not running.
    pub fn running_token(objects: &[Stored]) -> Option<String> {
        let ready = find(objects, "statefulsets", NAMESPACE, "vault")
            .is_some_and(|s| s["status"]["readyReplicas"].as_i64().unwrap_or(0) >= 1);
        let secret = find(objects, "secrets", NAMESPACE, "vault-token")?;
        ready.then(|| secret_value(secret, "token")).flatten()
    }

    /// One HTTP call through the service proxy: (status, body).
    pub fn handle(
        &mut self,
        objects: &[Stored],
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> (u16, String) {
        let Some(root) = Self::running_token(objects) else {
            // What the API server's proxy says of a Service without a ready endpoint.
            return (
                503,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "ServiceUnavailable", "code": 503,
                       "message": "no endpoints available for service \"http:vault:8200\""})
                .to_string(),
            );
        };
        if path == "v1/sys/health" {
            return (
                200,
                json!({"initialized": true, "sealed": false, "standby": false}).to_string(),
            );
        }
        if token != root {
            return (403, json!({"errors": ["permission denied"]}).to_string());
        }
        let Some(key) = path.strip_prefix("v1/secret/data/") else {
            return (404, json!({"errors": []}).to_string());
        };
        match method {
            "GET" => match self.kv.get(key) {
                Some((data, version)) => (
                    200,
                    json!({"data": {"data": data, "metadata": {"version": version}}}).to_string(),
                ),
                None => (404, json!({"errors": []}).to_string()),
            },
            "POST" | "PUT" => {
                let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                let Some(data) = parsed["data"].as_object() else {
                    return (400, json!({"errors": ["no data provided"]}).to_string());
                };
                let version = self.kv.get(key).map(|(_, v)| v + 1).unwrap_or(1);
                self.kv.insert(key.to_string(), (data.clone(), version));
                (200, json!({"data": {"version": version}}).to_string())
            }
            _ => (405, json!({"errors": []}).to_string()),
        }
    }
}

fn condition(status: &str, reason: &str, message: &str) -> Value {
    json!({"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message}]})
}

/// Go template rendering, for what HostK8s' templates use: `{{ .KEY }}` and
/// `{{ .KEY | urlquery }}` (text/template's `urlquery`: QueryEscape).
fn render(template: &str, values: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("unclosed action in {template:?}"))?;
        let action = rest[start + 2..start + end].trim();
        let mut parts = action.split('|').map(str::trim);
        let key = parts
            .next()
            .and_then(|k| k.strip_prefix('.'))
            .ok_or_else(|| format!("unsupported template action {action:?}"))?;
        let mut value = values
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("map has no entry for key {key:?}"))?
            .to_string();
        for function in parts {
            value = match function {
                "urlquery" => query_escape(&value),
                other => return Err(format!("function {other:?} not supported by the fake")),
            };
        }
        out.push_str(&value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Go's url.QueryEscape: unreserved bytes kept, space as `+`, the rest `%XX`.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// One pass of the ESO controllers (only once its Deployment exists).
pub fn sync_external_secrets(objects: &mut Vec<Stored>, vault: &Vault) {
    if find(objects, "deployments", NAMESPACE, "external-secrets").is_none() {
        return;
    }
    let token = Vault::running_token(objects);
    // ClusterSecretStores: the Vault provider validates by reaching Vault with its token.
    for s in objects
        .iter_mut()
        .filter(|s| s.plural == "clustersecretstores")
    {
        let auth = &s.object["spec"]["provider"]["vault"]["auth"]["tokenSecretRef"];
        let valid = token.is_some() && auth["name"] == "vault-token";
        s.object["status"] = if valid {
            condition("True", "Valid", "store validated")
        } else {
            condition("False", "ValidationFailed", "unable to validate store")
        };
    }
    let stores: Vec<(String, bool)> = objects
        .iter()
        .filter(|s| s.plural == "clustersecretstores")
        .map(|s| {
            let ready = s.object["status"]["conditions"][0]["status"] == "True";
            (s.name.clone(), ready)
        })
        .collect();
    let mut secrets = Vec::new();
    for s in objects.iter_mut().filter(|s| s.plural == "externalsecrets") {
        let es = &s.object;
        let store = es["spec"]["secretStoreRef"]["name"]
            .as_str()
            .unwrap_or_default();
        if !stores.iter().any(|(name, ready)| name == store && *ready) {
            s.object["status"] = condition(
                "False",
                "SecretSyncedError",
                &format!(
                    "could not get ClusterSecretStore \"{store}\", ClusterSecretStore.external-secrets.io \"{store}\" not found or not ready"
                ),
            );
            continue;
        }
        let mut values = Map::new();
        let mut missing = false;
        for d in es["spec"]["data"].as_array().into_iter().flatten() {
            let key = d["remoteRef"]["key"].as_str().unwrap_or_default();
            let property = d["remoteRef"]["property"].as_str();
            let found = vault.kv.get(key).and_then(|(data, _)| match property {
                Some(p) => data.get(p).cloned(),
                None => Some(Value::String(Value::Object(data.clone()).to_string())),
            });
            match (found, d["secretKey"].as_str()) {
                (Some(v), Some(name)) => {
                    values.insert(name.to_string(), v);
                }
                _ => missing = true,
            }
        }
        for d in es["spec"]["dataFrom"].as_array().into_iter().flatten() {
            let key = d["extract"]["key"].as_str().unwrap_or_default();
            match vault.kv.get(key) {
                Some((data, _)) => values.extend(data.clone()),
                None => missing = true,
            }
        }
        if missing {
            s.object["status"] = condition(
                "False",
                "SecretSyncedError",
                "could not get secret data from provider",
            );
            continue;
        }
        let template = &es["spec"]["target"]["template"]["data"];
        let data: Result<Map<String, Value>, String> = match template.as_object() {
            Some(t) => t
                .iter()
                .map(|(k, v)| {
                    render(v.as_str().unwrap_or_default(), &values).map(|r| (k.clone(), json!(r)))
                })
                .collect(),
            None => Ok(values),
        };
        let data = match data {
            Ok(d) => d,
            Err(e) => {
                s.object["status"] = condition(
                    "False",
                    "SecretSyncedError",
                    &format!("could not apply template: {e}"),
                );
                continue;
            }
        };
        let namespace = s.namespace.clone().unwrap_or_default();
        let target = es["spec"]["target"]["name"]
            .as_str()
            .unwrap_or(&s.name)
            .to_string();
        let encoded: Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                let text = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                (
                    k.clone(),
                    json!(base64::engine::general_purpose::STANDARD.encode(text)),
                )
            })
            .collect();
        secrets.push(Stored {
            group_version: "v1".into(),
            plural: "secrets".into(),
            namespace: Some(namespace.clone()),
            name: target.clone(),
            object: json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": target, "namespace": namespace,
                    "labels": {"reconcile.external-secrets.io/managed": "true"}},
                "type": "Opaque", "data": encoded}),
        });
        s.object["status"] = condition("True", "SecretSynced", "secret synced");
        s.object["status"]["binding"] = json!({"name": target});
    }
    for secret in secrets {
        match objects.iter_mut().find(|s| {
            s.plural == "secrets" && s.namespace == secret.namespace && s.name == secret.name
        }) {
            Some(existing) => existing.object = secret.object,
            None => objects.push(secret),
        }
    }
}
