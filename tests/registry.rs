//! A real pull-through cache: kindling's cache container (registry in proxy mode) in front of a
//! plain "upstream" registry; an image pushed upstream is pulled through the cache, and still
//! served by the cache after the upstream is gone.

mod common;

mod registry {
    use std::time::Duration;

    use kindling::docker::{ContainerSpec, PublishedPort, allocate_port, env_labels, port_is_free};
    use kindling::registry::{cache_spec, cache_status, local_registry_spec};

    use super::common::{
        TEST_IMAGE, TEST_REGISTRY_IMAGE, docker, docker_cli, ensure_test_image,
        ensure_test_registry_image, unique,
    };

    fn ok(out: std::process::Output, what: &str) {
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The host port Docker bound for a container's port 5000.
    fn bound_port(container: &str) -> u16 {
        let out = docker_cli(&["port", container, "5000"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{container}: no bound port"))
    }

    /// Waits until the registry on `port` answers its API (not just accepts connections).
    async fn wait_http(port: u16) {
        for _ in 0..100 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut answer = String::new();
                if s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_ok()
                    && s.read_to_string(&mut answer).is_ok()
                    && answer.starts_with("HTTP/1.0 200")
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no registry answers on 127.0.0.1:{port}");
    }

    #[tokio::test]
    async fn registry_cache_serves_images_after_the_upstream_is_gone() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        ensure_test_registry_image();
        let env = unique("cache");
        let network = format!("kindling-{env}");
        d.ensure_network(&network, &env_labels(&env)).await.unwrap();

        // The "upstream": a plain registry, published so the test can push to it. Docker picks
        // the host ports (0): binding them is its job, so two tests never race for one.
        let upstream = ContainerSpec {
            name: format!("kindling-{env}-upstream"),
            image: TEST_REGISTRY_IMAGE.to_string(),
            labels: env_labels(&env),
            ports: vec![PublishedPort {
                container_port: 5000,
                host_port: 0,
            }],
            network: Some(network.clone()),
            ..Default::default()
        };
        d.run_container(&upstream).await.unwrap();
        d.wait_ready(&upstream.name, Duration::from_secs(20))
            .await
            .unwrap();
        let upstream_port = bound_port(&upstream.name);

        // The cache exactly as kindling runs it, for a test upstream; published here only so the
        // test's Docker daemon can pull through it (nodes reach it by name).
        let mut cache = cache_spec(
            &format!("{env}.test"),
            &format!("http://{}:5000", upstream.name),
            &network,
            TEST_REGISTRY_IMAGE,
            &kindling::registry::CacheOutbound::default(),
        );
        cache.ports = vec![PublishedPort {
            container_port: 5000,
            host_port: 0,
        }];
        cache.labels.insert("dev.kindling.env".into(), env.clone());
        d.run_container(&cache).await.unwrap();
        d.wait_ready(&cache.name, Duration::from_secs(20))
            .await
            .unwrap();
        let cache_port = bound_port(&cache.name);
        wait_http(upstream_port).await;
        wait_http(cache_port).await;

        let pushed = format!("127.0.0.1:{upstream_port}/kt/busybox:1");
        ok(docker_cli(&["tag", TEST_IMAGE, &pushed]), "tag");
        ok(docker_cli(&["push", &pushed]), "push to the upstream");

        let through_cache = format!("127.0.0.1:{cache_port}/kt/busybox:1");
        ok(
            docker_cli(&["pull", &through_cache]),
            "pull through the cache",
        );
        ok(docker_cli(&["rmi", &through_cache]), "rmi");

        // The upstream is gone: the cache still serves what it has seen.
        d.remove_container(&upstream.name).await.unwrap();
        ok(
            docker_cli(&["pull", &through_cache]),
            "pull through the cache with the upstream gone",
        );
        let run = docker_cli(&["run", "--rm", &through_cache, "echo", "served-from-cache"]);
        ok(run.clone(), "run the cached image");
        assert_eq!(
            String::from_utf8_lossy(&run.stdout).trim(),
            "served-from-cache"
        );

        // `cache status` sees the cache, its repository and its size.
        let status = cache_status(&d).await.unwrap();
        let ours = status
            .iter()
            .find(|c| c.name == cache.name)
            .expect("cache status lists the cache");
        assert_eq!(ours.state, "running");
        assert_eq!(ours.repositories, ["kt/busybox"]);
        assert!(ours.size_bytes.unwrap() > 100_000, "{ours:?}");

        let _ = docker_cli(&["rmi", &through_cache, &pushed]);
        d.sweep(&env, false).await.unwrap();
        let _ = docker_cli(&["volume", "rm", "-f", &format!("{}-data", cache.name)]);
    }

    #[tokio::test]
    async fn registry_local_registry_accepts_pushes_from_the_host() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        ensure_test_registry_image();
        let env = unique("reg");
        let network = format!("kindling-{env}");
        d.ensure_network(&network, &env_labels(&env)).await.unwrap();
        let port =
            allocate_port(31000 + (std::process::id() % 10000) as u16, port_is_free).unwrap();
        let spec = local_registry_spec(&env, &network, port, TEST_REGISTRY_IMAGE);
        d.ensure_volume(&spec.volumes[0].volume, &spec.labels)
            .await
            .unwrap();
        d.run_container(&spec).await.unwrap();
        d.wait_ready(&spec.name, Duration::from_secs(20))
            .await
            .unwrap();
        wait_http(port).await;
        assert_eq!(
            d.published_ports(&spec.name).await.unwrap(),
            [(5000, "127.0.0.1".to_string(), port)]
        );
        let image = format!("localhost:{port}/app:dev");
        ok(docker_cli(&["tag", TEST_IMAGE, &image]), "tag");
        ok(docker_cli(&["push", &image]), "push to the env's registry");
        let catalog = d
            .exec(
                &spec.name,
                &["wget", "-qO-", "http://localhost:5000/v2/_catalog"],
            )
            .await
            .unwrap();
        assert_eq!(kindling::registry::parse_catalog(&catalog.stdout), ["app"]);
        // Pulling a missing image reports progress lines and then has it.
        ok(docker_cli(&["rmi", &image]), "rmi");
        let mut progress = Vec::new();
        assert_eq!(
            d.ensure_image(&image, &mut |l| progress.push(l.to_string()))
                .await
                .unwrap(),
            kindling::docker::Ensured::Created
        );
        assert!(d.image_exists(&image).await);
        assert!(
            progress
                .iter()
                .any(|l| l.contains("Pull complete") || l.contains("Downloaded newer image")),
            "{progress:?}"
        );
        let _ = docker_cli(&["rmi", &image]);
        let report = d.sweep(&env, false).await.unwrap();
        assert_eq!(report.containers, std::slice::from_ref(&spec.name));
        assert!(report.volumes.contains(&spec.volumes[0].volume));
    }

    #[tokio::test]
    async fn registry_kind_nodes_get_a_hosts_toml_per_mirror() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        let env = unique("node");
        // A stand-in for a kind node: any container with a shell.
        let node = ContainerSpec {
            name: format!("kindling-{env}-control-plane"),
            image: TEST_IMAGE.to_string(),
            command: Some(vec!["sleep".into(), "300".into()]),
            labels: env_labels(&env),
            ..Default::default()
        };
        d.run_container(&node).await.unwrap();
        d.wait_ready(&node.name, Duration::from_secs(20))
            .await
            .unwrap();
        let mirrors = kindling::registry::mirrors(&env, Some(5001), true);
        kindling::registry::configure_kind_nodes(&d, std::slice::from_ref(&node.name), &mirrors)
            .await
            .unwrap();
        // What each node must hold, written out here rather than asked of the code under test:
        // containerd's hosts.toml (containerd/containerd docs/hosts.md: `server` is the
        // upstream a failing mirror falls back to; each `[host."…"]` a mirror with the
        // capabilities it is used for).
        let cache = |host: &str, upstream: &str| {
            (
                format!("/etc/containerd/certs.d/{host}/hosts.toml"),
                format!(
                    "server = \"{upstream}\"\n\n[host.\"http://kindling-cache-{}:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
                    host.replace('.', "-")
                ),
            )
        };
        let local = |host: &str| {
            (
                format!("/etc/containerd/certs.d/{host}/hosts.toml"),
                format!(
                    "[host.\"http://kindling-{env}-registry:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
                ),
            )
        };
        let expected = [
            local("localhost:5001"),
            // HostK8s's image name for its registry (its kind config's mirror).
            local("localhost:5000"),
            cache("docker.io", "https://registry-1.docker.io"),
            cache("ghcr.io", "https://ghcr.io"),
            cache("quay.io", "https://quay.io"),
            cache("registry.k8s.io", "https://registry.k8s.io"),
        ];
        assert_eq!(mirrors.len(), expected.len());
        for (path, content) in &expected {
            let written = d.exec(&node.name, &["cat", path]).await.unwrap();
            assert_eq!(written.exit_code, 0, "{path}: {}", written.stderr);
            assert_eq!(&written.stdout, content, "{path}");
        }
        let local = d
            .exec(
                &node.name,
                &["cat", "/etc/containerd/certs.d/localhost:5001/hosts.toml"],
            )
            .await
            .unwrap();
        assert!(
            local
                .stdout
                .contains(&format!("[host.\"http://kindling-{env}-registry:5000\"]")),
            "{}",
            local.stdout
        );
        d.sweep(&env, false).await.unwrap();
    }

    /// A shared cache must run the pinned registry image: one running another image is
    /// refused, while the same image under the name `docker load` gave it (an offline machine
    /// after `bundle load`, where the digest-pinned name does not resolve) is the same cache.
    #[tokio::test]
    async fn registry_cache_is_taken_by_its_image_not_only_its_name() {
        let Some(d) = docker().await else { return };
        ensure_test_image();
        ensure_test_registry_image();
        let env = unique("pin");
        let network = format!("kindling-{env}");
        d.ensure_network(&network, &env_labels(&env)).await.unwrap();
        let mut cache = cache_spec(
            &format!("{env}.test"),
            "http://upstream.invalid:5000",
            &network,
            TEST_REGISTRY_IMAGE,
            &kindling::registry::CacheOutbound::default(),
        );
        cache.labels.insert("dev.kindling.env".into(), env.clone());
        d.run_container(&cache).await.unwrap();
        let alias = format!("kindling-test/registry-{env}:alias");
        ok(docker_cli(&["tag", TEST_REGISTRY_IMAGE, &alias]), "tag");
        let mut same = cache.clone();
        same.image = alias.clone();
        assert_eq!(
            d.run_container(&same).await.unwrap(),
            kindling::docker::Ensured::Existed
        );
        let mut other = cache.clone();
        other.image = TEST_IMAGE.to_string();
        let refused = d.run_container(&other).await.unwrap_err().to_string();
        assert!(refused.contains("not the pinned"), "{refused}");
        let _ = docker_cli(&["rmi", &alias]);
        // A cache outlives env sweeps by design: removed here by name.
        let _ = docker_cli(&["rm", "-f", &cache.name]);
        let _ = docker_cli(&["volume", "rm", "-f", &format!("{}-data", cache.name)]);
        d.sweep(&env, false).await.unwrap();
    }
}
