//! The stack's secret contracts in the env's Vault (the `vault` add-on, `crate::addons`), as
//! HostK8s writes them (danielscholl-osdu/hostk8s@2add0a5 infra/scripts/manage-secrets.py:
//! KV v2 at `secret/data/NAMESPACE/NAME`, a secret already there left as it is), so the
//! stack's ExternalSecrets find them through the ClusterSecretStore `vault-backend`.
//!
//! Vault runs in the cluster, installed by the engine; kindling reaches it through the API
//! server's service proxy, with the root token it generated (kept in the env's state, given to
//! Vault through the Secret `hostk8s/vault-token`). Dev mode keeps its data in memory: a Vault
//! pod that restarts (after `env start`, say) comes back empty, and is filled again here.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::EnvError;
use crate::addons::{HOSTK8S_NAMESPACE, VAULT_PORT, VAULT_SERVICE, VAULT_TOKEN_SECRET};
use crate::engine::secrets::{GeneratedValues, HostValues, secret_values};
use crate::kube::KubeClient;
use crate::stamp::Stamp;

/// What [`seed`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Seeded {
    /// `NAMESPACE/NAME` written.
    pub written: Vec<String>,
    /// `NAMESPACE/NAME` already in Vault, left as they are.
    pub kept: Vec<String>,
}

fn service() -> String {
    format!("http:{VAULT_SERVICE}:{VAULT_PORT}")
}

/// Whether the stamp has secrets that go through Vault.
pub fn wanted(stamp: &Stamp) -> bool {
    stamp.secrets.iter().any(|s| s.through_vault)
}

/// Writes the stamp's Vault-bound secrets once Vault answers (within `timeout`).
pub async fn seed(
    kube: &KubeClient,
    stamp: &Stamp,
    env_dir: &Path,
    allowed: &[String],
    timeout: Duration,
) -> Result<Seeded, EnvError> {
    let mut seeded = Seeded::default();
    if !wanted(stamp) {
        return Ok(seeded);
    }
    let mut generated = GeneratedValues::load(env_dir)?;
    let host = HostValues::of_this_host(&stamp.repo_root, allowed);
    let token_id = format!("{HOSTK8S_NAMESPACE}/{VAULT_TOKEN_SECRET}/token");
    let token = generated.0.get(&token_id).cloned().ok_or_else(|| {
        EnvError::Preflight(format!(
            "the env has no Vault token yet ({token_id}); the secrets step makes it\nhelp: rerun `kindling env create`"
        ))
    })?;
    wait_for_vault(kube, timeout).await?;
    let auth = [("X-Vault-Token", token.as_str())];
    for secret in stamp.secrets.iter().filter(|s| s.through_vault) {
        let id = format!("{}/{}", secret.namespace, secret.name);
        let path = format!("v1/secret/data/{id}");
        let (status, body) = kube
            .service_proxy(
                http::Method::GET,
                HOSTK8S_NAMESPACE,
                &service(),
                &path,
                &auth,
                None,
            )
            .await?;
        match status {
            200 => {
                seeded.kept.push(id);
                continue;
            }
            404 => {}
            other => return Err(vault_error(&id, "read", other, &body)),
        }
        let values = secret_values(secret, &mut generated, &host)?;
        let data: serde_json::Map<String, serde_json::Value> =
            values.into_iter().map(|(k, v)| (k, json!(v))).collect();
        let body = serde_json::to_vec(&json!({"data": data})).unwrap_or_default();
        let (status, answer) = kube
            .service_proxy(
                http::Method::POST,
                HOSTK8S_NAMESPACE,
                &service(),
                &path,
                &auth,
                Some(body),
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(vault_error(&id, "write", status, &answer));
        }
        seeded.written.push(id);
    }
    // A value generated just now (a contract key added since) is kept like the others.
    generated.store(env_dir)?;
    Ok(seeded)
}

/// [`seed`] for the commands that bootstrap or restart what the engine runs (`env approve`,
/// `env restart`, `env start`), with a progress line when there is something to write.
pub async fn seed_with_progress(
    kube: &KubeClient,
    stamp: &Stamp,
    settings: &super::Settings,
    env: &str,
    progress: &crate::ui::Progress,
) -> Result<(), EnvError> {
    if !wanted(stamp) {
        return Ok(());
    }
    let t = Instant::now();
    progress.start("vault", "secret contracts into Vault");
    let seeded = seed(
        kube,
        stamp,
        &settings.env_dir(env),
        &settings.allow_secret_from,
        settings.step_timeout,
    )
    .await?;
    progress.done(
        "vault",
        t.elapsed(),
        &format!(
            "{} written, {} already there",
            seeded.written.len(),
            seeded.kept.len()
        ),
    );
    Ok(())
}

/// Vault answers `sys/health` with 200 once it is initialised, unsealed and active (a dev
/// server is all three as soon as it listens; hashicorp/vault http/sys_health.go).
async fn wait_for_vault(kube: &KubeClient, timeout: Duration) -> Result<(), EnvError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match kube
            .service_proxy(
                http::Method::GET,
                HOSTK8S_NAMESPACE,
                &service(),
                "v1/sys/health",
                &[],
                None,
            )
            .await
        {
            Ok((200, _)) => return Ok(()),
            Ok((status, body)) => format!("HTTP {status}: {}", first_line(&body)),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(EnvError::Preflight(format!(
                "Vault ({VAULT_SERVICE} in {HOSTK8S_NAMESPACE}) did not answer within {}s: {last}\nhelp: `kindling env status` shows whether the engine installed addon-vault; rerun the command once it is Ready",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(super::follow::poll_interval()).await;
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Vault's answer, without anything of the request (the token is never shown).
fn vault_error(id: &str, what: &str, status: u16, body: &str) -> EnvError {
    EnvError::Preflight(format!(
        "cannot {what} secret/{id} in Vault: HTTP {status}: {}",
        first_line(body)
    ))
}
