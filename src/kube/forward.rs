//! A port on this machine forwarded to a pod through the API server, as `kubectl port-forward`
//! does, with kube-rs's port-forward (a WebSocket to the pod's `portforward` subresource,
//! kube-client 5.0.0 src/api/portforward.rs). It is how kindling reaches the Gitea it runs
//! *in* a cluster it did not make: a remote cluster cannot reach a container on this laptop,
//! and this laptop cannot reach a ClusterIP.
//!
//! The listener runs on a thread of its own with its own runtime, so the blocking Gitea and Git
//! clients can use it from anywhere, and lives as long as the process. Every connection gets a
//! WebSocket of its own (one port stream is taken once per forwarder) to a Running pod the
//! selector finds at that moment, so a Gitea pod that was rescheduled is found again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::{KubeClient, KubeError};

/// Where a forward goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub kubeconfig: PathBuf,
    pub context: String,
    pub namespace: String,
    /// A label selector of the pods (`key=value,…`).
    pub selector: String,
    pub port: u16,
}

/// The forwards this process opened, by target: `127.0.0.1:PORT`.
static OPEN: Mutex<Option<HashMap<Target, String>>> = Mutex::new(None);

/// How long the listener may take to come up (the kubeconfig read and a bind).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `127.0.0.1:PORT`, forwarded to `target`; the same address for the same target within one
/// process.
pub fn open(target: &Target) -> Result<String, KubeError> {
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(address) = open.get_or_insert_with(HashMap::new).get(target) {
        return Ok(address.clone());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = target.clone();
    std::thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(serve(owned, tx));
        })
        .map_err(|e| config_error(target, format!("cannot start the port-forward: {e}")))?;
    let address = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(address)) => address,
        Ok(Err(reason)) => return Err(config_error(target, reason)),
        Err(_) => {
            return Err(config_error(
                target,
                "the port-forward did not start in time".into(),
            ));
        }
    };
    open.get_or_insert_with(HashMap::new)
        .insert(target.clone(), address.clone());
    Ok(address)
}

fn config_error(target: &Target, reason: String) -> KubeError {
    KubeError::Config {
        path: target.kubeconfig.display().to_string(),
        reason: format!(
            "port-forward to {}/{} port {}: {reason}",
            target.namespace, target.selector, target.port
        ),
    }
}

async fn serve(target: Target, started: std::sync::mpsc::Sender<Result<String, String>>) {
    let kube = match KubeClient::from_kubeconfig(&target.kubeconfig, Some(&target.context)).await {
        Ok(kube) => kube,
        Err(e) => {
            let _ = started.send(Err(e.to_string()));
            return;
        }
    };
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(e) => {
            let _ = started.send(Err(format!("cannot listen on 127.0.0.1: {e}")));
            return;
        }
    };
    let address = match listener.local_addr() {
        Ok(address) => address.to_string(),
        Err(e) => {
            let _ = started.send(Err(e.to_string()));
            return;
        }
    };
    let _ = started.send(Ok(address));
    while let Ok((socket, _)) = listener.accept().await {
        let kube = kube.clone();
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(e) = forward_one(&kube, &target, socket).await {
                crate::ui::call(|| format!("port-forward: {e}"));
            }
        });
    }
    // A listener that stopped accepting is forgotten: the next `open` starts another.
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(map) = open.as_mut() {
        map.remove(&target);
    }
}

/// One connection, through a WebSocket of its own, to a Running pod of the target.
async fn forward_one(
    kube: &KubeClient,
    target: &Target,
    mut socket: tokio::net::TcpStream,
) -> Result<(), String> {
    let pods: ::kube::Api<Pod> = ::kube::Api::namespaced(kube.raw().clone(), &target.namespace);
    let list = pods
        .list(&::kube::api::ListParams::default().labels(&target.selector))
        .await
        .map_err(|e| format!("listing the pods {}: {e}", target.selector))?;
    let pod = running_pod(&list.items).ok_or_else(|| {
        format!(
            "no Running pod labelled {} in namespace {}",
            target.selector, target.namespace
        )
    })?;
    let mut forwarder = pods
        .portforward(&pod, &[target.port])
        .await
        .map_err(|e| format!("port-forward to pod {pod}: {e}"))?;
    let mut upstream = forwarder
        .take_stream(target.port)
        .ok_or_else(|| format!("pod {pod} gave no stream for port {}", target.port))?;
    // Either side closing ends the connection; an error on the way is the client's to see.
    let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
    drop(upstream);
    forwarder.abort();
    Ok(())
}

/// The name of the first pod that runs and is not being deleted.
fn running_pod(pods: &[Pod]) -> Option<String> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|phase| phase == "Running")
        })
        .and_then(|p| p.metadata.name.clone())
}

/// The selector of the pods a Deployment's template labels (`key=value,…`, sorted).
pub fn selector_of(labels: &[(&str, &str)]) -> String {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(",")
}
