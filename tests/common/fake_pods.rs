//! Pods the fakes run, and the port-forward to them, for a cluster kindling did not make.
//! Upstream: github.com/kubernetes/cri-streaming v0.36.2 (the kubelet's streaming server),
//! github.com/kubernetes/kubernetes (the API server's pod subresources) and
//! github.com/project-mirrors/gitea-helm-chart (a mirror of gitea.com/gitea/helm-gitea, Gitea's chart), as each item below names:
//! - `run_gitea_pods` plays the Deployment controller, scheduler and kubelet for the Gitea that
//!   kindling runs in an existing cluster: a Running pod with the template's labels, listening
//!   at a fake Gitea's address, whose admin password is the one in the env's `gitea-admin`
//!   Secret (what the init container's `gitea admin user create/change-password` sets, as
//!   gitea.com/gitea/helm-gitea templates/gitea/init.yaml `configure_gitea.sh` does);
//! - `port_forward` answers the pod's `portforward` subresource over WebSocket as the kubelet
//!   does (kubernetes/cri-streaming v0.36.2 pkg/streaming/portforward/websocket.go, the same
//!   as kubernetes/kubelet v0.35.0 pkg/cri/streaming/portforward/websocket.go): protocols ``,
//!   `v4.channel.k8s.io` and `v4.base64.channel.k8s.io` only (kubernetes/apimachinery v0.35.7
//!   pkg/util/httpstream/wsstream/conn.go), every binary message prefixed by its channel byte,
//!   channels 2i (data) and 2i+1 (error) for the i-th port of `ports=`, each first sending the
//!   port as a little-endian u16; when nothing listens there, the error channel says
//!   `error forwarding port P to pod NAME, uid UID: …` and the connection closes. The API
//!   server refuses a pod with no node (400 "pod NAME does not have a host assigned",
//!   kubernetes/kubernetes pkg/registry/core/pod/strategy.go `PortForwardLocation`), and asks
//!   for `create` on pods/portforward (pkg/registry/core/pod/rest/subresources.go,
//!   AuthorizePodWebsocketUpgradeCreatePermission, on by default since 1.35).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::kube_api::Stored;

/// The annotation by which a fake pod says where its port listens.
pub fn address_annotation(port: u16) -> String {
    format!("fake.kindling.test/port-{port}")
}

pub use super::fake_gitea::AdminPassword;
use super::fake_gitea::FakeGitea;

/// The Giteas of one cluster: every env's namespace runs a Gitea of its own (its own
/// repositories, its own admin password), as each env applies its own Deployment. The first
/// is made up front (the harness's `gitea`, for the tests to read); the others when an env's
/// namespace first needs one.
#[derive(Clone)]
pub struct InClusterGiteas(Arc<Mutex<Giteas>>);

struct Giteas {
    /// namespace → (address, root, admin password).
    by_namespace: Vec<(String, String, std::path::PathBuf, AdminPassword)>,
    /// The first Gitea, until a namespace takes it.
    first: Option<(String, std::path::PathBuf, AdminPassword)>,
    /// The Giteas made later (their servers and directories live as long as the pool).
    made: Vec<FakeGitea>,
}

impl InClusterGiteas {
    pub fn new(first: &FakeGitea, admin: AdminPassword) -> Self {
        InClusterGiteas(Arc::new(Mutex::new(Giteas {
            by_namespace: Vec::new(),
            first: Some((address_of(first), first.root.clone(), admin)),
            made: Vec::new(),
        })))
    }

    /// The address and admin password of `namespace`'s Gitea.
    fn for_namespace(&self, namespace: &str) -> (String, AdminPassword) {
        let mut g = self.0.lock().unwrap();
        if let Some((_, address, _, admin)) = g.by_namespace.iter().find(|e| e.0 == namespace) {
            return (address.clone(), admin.clone());
        }
        let (address, root, admin) = match g.first.take() {
            Some(first) => first,
            None => {
                let (gitea, admin) = FakeGitea::in_pod("kindling");
                let made = (address_of(&gitea), gitea.root.clone(), admin);
                g.made.push(gitea);
                made
            }
        };
        g.by_namespace
            .push((namespace.to_string(), address.clone(), root, admin.clone()));
        (address, admin)
    }

    /// The user directory (`kindling/`) of the Gitea whose in-cluster URL is `url`
    /// (`http://gitea.NAMESPACE.svc.cluster.local:3000/…`, kindling's `gitea::in_cluster`).
    pub fn user_dir_of(&self, url: &str) -> Option<std::path::PathBuf> {
        let namespace = url.split("://gitea.").nth(1)?.split('.').next()?;
        let g = self.0.lock().unwrap();
        g.by_namespace
            .iter()
            .find(|e| e.0 == namespace)
            .map(|e| e.2.join("kindling"))
    }

    /// The env repository (`kindling/source.git`) of the Gitea `url` names.
    pub fn repository_of(&self, url: &str) -> Option<std::path::PathBuf> {
        Some(self.user_dir_of(url)?.join("source.git"))
    }

    /// Every Gitea's user directory (where a pushed commit may be).
    pub fn user_dirs(&self) -> Vec<std::path::PathBuf> {
        let g = self.0.lock().unwrap();
        g.by_namespace
            .iter()
            .map(|e| e.2.join("kindling"))
            .chain(g.first.iter().map(|f| f.1.join("kindling")))
            .collect()
    }
}

fn address_of(gitea: &FakeGitea) -> String {
    gitea.url.trim_start_matches("http://").to_string()
}

/// The Deployments labelled `app.kubernetes.io/name: gitea` in a `kindling-*` namespace get a
/// Running pod at their namespace's Gitea, once their admin Secret is there.
pub fn run_gitea_pods(objects: &mut Vec<Stored>, giteas: &InClusterGiteas) {
    let deployments: Vec<(String, Value)> = objects
        .iter()
        .filter(|s| {
            s.plural == "deployments" && s.object["metadata"]["deletionTimestamp"].is_null()
        })
        .filter(|s| {
            s.namespace
                .as_deref()
                .is_some_and(|n| n.starts_with("kindling-"))
        })
        .filter(|s| {
            s.object["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "gitea"
        })
        .map(|s| (s.namespace.clone().unwrap_or_default(), s.object.clone()))
        .collect();
    for (namespace, deployment) in deployments {
        let Some(password) = secret_password(objects, &namespace) else {
            continue;
        };
        let (address, admin) = giteas.for_namespace(&namespace);
        // The init container runs before the pod does, every time it starts.
        *admin.lock().unwrap() = Some(password);
        let name = format!("gitea-{}", namespace.len());
        if objects.iter().any(|s| {
            s.plural == "pods" && s.namespace.as_deref() == Some(&namespace) && s.name == name
        }) {
            continue;
        }
        let labels = deployment["spec"]["template"]["metadata"]["labels"].clone();
        objects.push(Stored {
            group_version: "v1".into(),
            plural: "pods".into(),
            namespace: Some(namespace.clone()),
            name: name.clone(),
            object: json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": labels,
                    "uid": format!("uid-pod-{name}"),
                    "annotations": {address_annotation(3000): address.as_str()}},
                "spec": {"nodeName": "kindling-control-plane"},
                "status": {"phase": "Running"}}),
        });
    }
    // A pod goes with its Deployment (the ReplicaSet's garbage collection).
    let gone: Vec<(Option<String>, String)> = objects
        .iter()
        .filter(|s| s.plural == "pods" && s.name.starts_with("gitea-"))
        .filter(|p| {
            !objects.iter().any(|d| {
                d.plural == "deployments" && d.namespace == p.namespace && d.name == "gitea"
            })
        })
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect();
    objects
        .retain(|s| !(s.plural == "pods" && gone.contains(&(s.namespace.clone(), s.name.clone()))));
}

/// The password of the namespace's `gitea-admin` Secret: `stringData` as applied, or `data`.
fn secret_password(objects: &[Stored], namespace: &str) -> Option<String> {
    use base64::Engine as _;
    let secret = objects.iter().find(|s| {
        s.plural == "secrets"
            && s.namespace.as_deref() == Some(namespace)
            && s.name == "gitea-admin"
    })?;
    if let Some(p) = secret.object["stringData"]["password"].as_str() {
        return Some(p.to_string());
    }
    let encoded = secret.object["data"]["password"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The outcome of a port-forward request before any WebSocket: an HTTP error, or the pod's
/// name, uid and the address of each asked port.
pub enum Forward {
    Refuse(u16, String),
    To {
        pod: String,
        uid: String,
        ports: Vec<(u16, Option<String>)>,
        protocol: String,
    },
}

/// Checks a port-forward request against the stored pod, as the API server and kubelet do.
pub fn check(
    objects: &[Stored],
    namespace: &str,
    pod: &str,
    query: &str,
    protocols: &str,
    denied: &[String],
) -> Forward {
    let status = |code: u16, reason: &str, message: String| {
        Forward::Refuse(
            code,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code})
            .to_string(),
        )
    };
    if denied.iter().any(|d| d == "create pods/portforward") {
        return status(
            403,
            "Forbidden",
            format!(
                "pods \"{pod}\" is forbidden: User \"team\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"{namespace}\""
            ),
        );
    }
    let Some(stored) = objects
        .iter()
        .find(|s| s.plural == "pods" && s.namespace.as_deref() == Some(namespace) && s.name == pod)
    else {
        return status(404, "NotFound", format!("pods \"{pod}\" not found"));
    };
    if stored.object["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        return status(
            400,
            "BadRequest",
            format!("pod {pod} does not have a host assigned"),
        );
    }
    let ports: Vec<u16> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "ports" || *k == "port")
        .flat_map(|(_, v)| {
            v.replace("%2C", ",")
                .split(',')
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|p| p.parse().ok())
        .filter(|p| *p > 0)
        .collect();
    if ports.is_empty() {
        return status(
            400,
            "BadRequest",
            "query parameter \"port\" is required".into(),
        );
    }
    let offered: Vec<&str> = protocols.split(',').map(str::trim).collect();
    let protocol = if protocols.trim().is_empty() {
        String::new()
    } else if let Some(p) = offered.iter().find(|p| **p == "v4.channel.k8s.io") {
        p.to_string()
    } else {
        return status(
            400,
            "BadRequest",
            format!(
                "requested protocol(s) are not supported: {offered:?}; supports [v4.channel.k8s.io v4.base64.channel.k8s.io]"
            ),
        );
    };
    Forward::To {
        pod: pod.to_string(),
        uid: stored.object["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        ports: ports
            .into_iter()
            .map(|p| {
                let address = stored.object["metadata"]["annotations"][address_annotation(p)]
                    .as_str()
                    .map(str::to_string);
                (p, address)
            })
            .collect(),
        protocol,
    }
}

/// Completes the WebSocket handshake on `stream` and forwards the (single) port, as the
/// kubelet's `v4.channel.k8s.io` port-forward does.
pub fn serve(mut stream: TcpStream, key: &str, forward: Forward, namespace: &str) {
    let Forward::To {
        pod,
        uid,
        ports,
        protocol,
    } = forward
    else {
        return;
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let protocol_header = match protocol.is_empty() {
        true => String::new(),
        false => format!("Sec-WebSocket-Protocol: {protocol}\r\n"),
    };
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{protocol_header}\r\n"
    );
    if stream.write_all(reply.as_bytes()).is_err() {
        return;
    }
    let Ok(reading) = stream.try_clone() else {
        return;
    };
    let writer = Arc::new(Mutex::new(tungstenite::WebSocket::from_raw_socket(
        stream,
        tungstenite::protocol::Role::Server,
        None,
    )));
    let send = |ch: u8, bytes: &[u8]| {
        let mut frame = vec![ch];
        frame.extend_from_slice(bytes);
        writer
            .lock()
            .unwrap()
            .send(tungstenite::Message::Binary(frame.into()))
            .is_ok()
    };
    // One port is all kindling asks for; the kubelet serves each port of the list alike.
    let (port, address) = ports[0].clone();
    for ch in [0u8, 1] {
        if !send(ch, &port.to_le_bytes()) {
            return;
        }
    }
    let target = address.and_then(|a| TcpStream::connect(a).ok());
    let Some(target) = target else {
        let _ = send(
            1,
            format!(
                "error forwarding port {port} to pod {pod}, uid {uid}: failed to connect to localhost:{port} inside namespace {namespace:?}, IPv4: connection refused IPv6 connection refused "
            )
            .as_bytes(),
        );
        let _ = writer.lock().unwrap().close(None);
        let _ = writer.lock().unwrap().flush();
        return;
    };
    // Pod → client: data channel frames, then a close when the pod side ends.
    let mut from_pod = target.try_clone().unwrap();
    let out = writer.clone();
    let pump = std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from_pod.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut frame = vec![0u8];
                    frame.extend_from_slice(&buf[..n]);
                    if out
                        .lock()
                        .unwrap()
                        .send(tungstenite::Message::Binary(frame.into()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = out.lock().unwrap().close(None);
        let _ = out.lock().unwrap().flush();
    });
    // Client → pod: the data channel's frames, their channel byte stripped.
    let mut reader =
        tungstenite::WebSocket::from_raw_socket(reading, tungstenite::protocol::Role::Server, None);
    let mut to_pod = target;
    while let Ok(message) = reader.read() {
        let data = match message {
            tungstenite::Message::Binary(bytes) => bytes,
            tungstenite::Message::Close(_) => break,
            _ => continue,
        };
        // Channel 0 carries the data; a frame of the channel byte alone carries nothing.
        if data.len() > 1 && data[0] == 0 && to_pod.write_all(&data[1..]).is_err() {
            break;
        }
    }
    let _ = to_pod.shutdown(std::net::Shutdown::Write);
    let _ = pump.join();
}
