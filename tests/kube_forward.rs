//! kindling's port-forward (`kindling::kube::forward`, kube-rs's WebSocket port-forward behind
//! a local listener) against the fake API server's pod `portforward` subresource, which
//! answers as the kubelet does (tests/common/fake_pods.rs): bytes both ways, a fresh
//! WebSocket per connection, and a pod with nothing listening or no Running pod ending the
//! connection instead of hanging it.

mod common;

mod kube {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use kindling::kube::forward::{Target, open};
    use serde_json::json;

    use super::common::fake_pods::address_annotation;
    use super::common::kube_api::{FakeApi, Stored};

    /// A TCP server that answers every line with `echo: LINE`, and its address.
    fn echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 256];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut reply = b"echo: ".to_vec();
                        reply.extend_from_slice(&buf[..n]);
                        if stream.write_all(&reply).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    fn pod(api: &FakeApi, name: &str, phase: &str, address: &str) {
        api.update(|objects| {
            objects.push(Stored {
                group_version: "v1".into(),
                plural: "pods".into(),
                namespace: Some("team".into()),
                name: name.into(),
                object: json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}"),
                        "labels": {"app": name},
                        "annotations": {address_annotation(8080): address}},
                    "spec": {"nodeName": "node-1"},
                    "status": {"phase": phase}}),
            });
        });
    }

    fn target(api: &FakeApi, dir: &std::path::Path, app: &str) -> Target {
        let kubeconfig = dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, "team");
        Target {
            kubeconfig,
            context: "team".into(),
            namespace: "team".into(),
            selector: format!("app={app}"),
            port: 8080,
        }
    }

    fn talk(address: &str, line: &str) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(line.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        // The answer, or the end of the connection.
        while !got.ends_with(line.as_bytes()) {
            match stream.read(&mut buf) {
                // Closed, or reset (the forward dropped a connection it had not read).
                Ok(0) => break,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("the forward hung instead of answering or closing: {e}"),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    #[test]
    fn kube_forward_carries_bytes_both_ways_on_a_websocket_per_connection() {
        let api = FakeApi::start(None);
        pod(&api, "echo", "Running", &echo_server());
        let dir = tempfile::tempdir().unwrap();
        let target = target(&api, dir.path(), "echo");
        let address = open(&target).unwrap();
        assert_eq!(open(&target).unwrap(), address, "one listener per target");
        assert_eq!(talk(&address, "one\n"), "echo: one\n");
        assert_eq!(talk(&address, "two\n"), "echo: two\n");
        let forwards: Vec<_> = api
            .requests()
            .into_iter()
            .filter(|r| r.path == "/api/v1/namespaces/team/pods/echo/portforward")
            .collect();
        assert_eq!(forwards.len(), 2, "a WebSocket per connection");
        assert!(forwards.iter().all(|r| r.query.contains("ports=8080")));
    }

    #[test]
    fn kube_forward_ends_the_connection_when_nothing_listens_or_no_pod_runs() {
        let api = FakeApi::start(None);
        // A port nothing listens on: the kubelet's error channel, then the close.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        pod(&api, "deaf", "Running", &closed);
        pod(&api, "pending", "Pending", &echo_server());
        let dir = tempfile::tempdir().unwrap();
        let deaf = open(&target(&api, dir.path(), "deaf")).unwrap();
        assert_eq!(talk(&deaf, "hello\n"), "");
        let pending = open(&target(&api, dir.path(), "pending")).unwrap();
        assert_eq!(talk(&pending, "hello\n"), "");
        // Only the Running pod was asked for a forward.
        assert!(
            !api.requests()
                .iter()
                .any(|r| r.path.contains("/pods/pending/portforward"))
        );
    }
}
