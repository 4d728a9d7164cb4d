//! Offline bundles (issue #20, part 2) against the real Docker engine and the real registry
//! image: images built here are pushed to a plain "upstream" registry, `bundle save` copies
//! them byte for byte into an OCI image layout, the upstream goes away, and `bundle load`
//! seeds the shared cache's storage and the Docker engine from the archive alone.

mod common;

mod bundle {
    use std::path::Path;
    use std::process::Output;

    use serde_json::Value;

    use super::common::env_harness::ok;
    use super::common::{
        TEST_IMAGE, TEST_REGISTRY_IMAGE, docker, docker_cli, ensure_test_image,
        ensure_test_registry_image, unique,
    };

    fn kindling(data: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"));
        cmd.args(args)
            .env("CI", "true")
            .env("KINDLING_DATA_DIR", data.join("data"))
            .env("KINDLING_CACHE_DIR", data.join("cache"))
            .env("KINDLING_REGISTRY_IMAGE", TEST_REGISTRY_IMAGE);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn run(args: &[&str]) -> String {
        let out = docker_cli(args);
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    use super::common::{put_manifest, start_test_registry as registry};

    fn get_manifest(port: u16, repo: &str, reference: &str, accept: &str) -> Vec<u8> {
        let mut response = ureq::get(&format!(
            "http://127.0.0.1:{port}/v2/{repo}/manifests/{reference}"
        ))
        .header("Accept", accept)
        .call()
        .unwrap();
        response.body_mut().read_to_vec().unwrap()
    }

    /// Save copies the images (a single manifest and an index of two platforms) with their
    /// digests; with the upstream gone, load puts them into the cache's volume, where a
    /// registry serves them by tag and by the very same digests, and into the Docker engine
    /// under their names. A damaged archive is refused naming the blob.
    #[tokio::test(flavor = "multi_thread")]
    async fn bundle_save_and_load_round_trip_keeps_every_digest() {
        if docker().await.is_none() {
            return;
        }
        ensure_test_image();
        ensure_test_registry_image();
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique("kb");
        let upstream = format!("{prefix}-upstream");
        let port = registry(&upstream, None);
        // An image built here, pushed upstream as Docker pushes it (one manifest).
        let pushed = format!("127.0.0.1:{port}/mirror/tool:1");
        run(&["tag", TEST_IMAGE, &pushed]);
        run(&["push", &pushed]);
        let schema2 = "application/vnd.docker.distribution.manifest.v2+json";
        let single = get_manifest(port, "mirror/tool", "1", schema2);
        let single_digest = kindling::bundle::distribution::sha256_digest(&single);
        // The same image under a second platform, and an index naming both.
        let multi_accept = "application/vnd.docker.distribution.manifest.list.v2+json";
        let amd = format!("127.0.0.1:{port}/mirror/multi:amd");
        run(&["tag", TEST_IMAGE, &amd]);
        run(&["push", &amd]);
        let _ = docker_cli(&["rmi", &amd]);
        assert_eq!(get_manifest(port, "mirror/multi", "amd", schema2), single);
        let mut other = single.clone();
        other.push(b'\n');
        let other_digest = kindling::bundle::distribution::sha256_digest(&other);
        put_manifest(port, "mirror/multi", "other", schema2, &other);
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": multi_accept,
            "manifests": [
                {"mediaType": schema2, "digest": single_digest, "size": single.len(), "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": schema2, "digest": other_digest, "size": other.len(), "platform": {"os": "linux", "architecture": "s390x"}},
            ],
        }))
        .unwrap();
        let index_digest = kindling::bundle::distribution::sha256_digest(&index);
        put_manifest(port, "mirror/multi", "2", multi_accept, &index);

        let list = dir.path().join("images.txt");
        std::fs::write(
            &list,
            format!(
                "# copied from the upstream, named as Docker Hub images\ndocker.io/kindlingtest/tool:1@{single_digest} from {pushed}\ndocker.io/kindlingtest/multi:2 from 127.0.0.1:{port}/mirror/multi:2\n{pushed}\n"
            ),
        )
        .unwrap();
        let file = dir.path().join("workshop.tar");
        let extra = [("KINDLING_CACHE_PREFIX", prefix.as_str())];
        let saved = ok(&kindling(
            dir.path(),
            &[
                "bundle",
                "save",
                file.to_str().unwrap(),
                "--images",
                list.to_str().unwrap(),
                "--no-pins",
                "--platform",
                "linux/amd64",
                "--platform",
                "linux/s390x",
                "--output",
                "json",
            ],
            &extra,
        ));
        // The document docs/json-output.md shows.
        let documented = super::common::documented_shapes()
            .into_iter()
            .find(|(heading, _)| heading == "kindling bundle save / kindling bundle load")
            .expect("the bundle section of docs/json-output.md")
            .1;
        super::common::follows(&saved, &documented, "bundle save").unwrap();
        let images = saved["bundle"]["record"]["images"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(images.len(), 3, "{saved}");
        assert_eq!(images[0]["digest"], single_digest);
        assert_eq!(images[1]["digest"], index_digest);

        // Standard OCI image layout: oci-layout, index.json naming each image, blobs by digest.
        let unpacked = dir.path().join("unpacked");
        std::fs::create_dir_all(&unpacked).unwrap();
        assert!(
            std::process::Command::new("tar")
                .args([
                    "-xf",
                    file.to_str().unwrap(),
                    "-C",
                    unpacked.to_str().unwrap()
                ])
                .status()
                .unwrap()
                .success()
        );
        let layout: Value =
            serde_json::from_slice(&std::fs::read(unpacked.join("oci-layout")).unwrap()).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        let oci_index: Value =
            serde_json::from_slice(&std::fs::read(unpacked.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            oci_index["manifests"][1]["annotations"]["org.opencontainers.image.ref.name"],
            "docker.io/kindlingtest/multi:2"
        );
        for entry in std::fs::read_dir(unpacked.join("blobs/sha256")).unwrap() {
            let entry = entry.unwrap();
            let bytes = std::fs::read(entry.path()).unwrap();
            assert_eq!(
                kindling::bundle::distribution::sha256_digest(&bytes),
                format!("sha256:{}", entry.file_name().to_string_lossy())
            );
        }

        // Offline from here: the upstream and the local copies are gone.
        run(&["rm", "-f", &upstream]);
        let _ = docker_cli(&["rmi", &pushed]);
        let loaded = ok(&kindling(
            dir.path(),
            &["bundle", "load", file.to_str().unwrap(), "--output", "json"],
            &extra,
        ));
        let cache = format!("{prefix}-docker-io");
        assert_eq!(
            loaded["loaded"]["seeded"][&cache],
            serde_json::json!([
                format!("docker.io/kindlingtest/tool:1@{single_digest}"),
                "docker.io/kindlingtest/multi:2".to_string()
            ]),
            "{loaded}"
        );
        assert_eq!(loaded["loaded"]["engineOnly"], serde_json::json!([pushed]));
        // The Docker engine has them under their names.
        for name in ["kindlingtest/tool:1", pushed.as_str()] {
            assert!(
                docker_cli(&["image", "inspect", name]).status.success(),
                "{name}"
            );
        }
        // `docker load` records no digests: a create runs the digest-pinned image under the
        // name the load gave it, as long as that name still holds the bundle's image.
        let engine = docker().await.unwrap();
        let pinned_ref = format!("docker.io/kindlingtest/tool:1@{single_digest}");
        assert!(
            !docker_cli(&["image", "inspect", &pinned_ref])
                .status
                .success()
        );
        let data = dir.path().join("data");
        assert_eq!(
            kindling::bundle::offline_image(&engine, &data, &pinned_ref).await,
            "docker.io/kindlingtest/tool:1"
        );
        run(&["tag", TEST_REGISTRY_IMAGE, "docker.io/kindlingtest/tool:1"]);
        assert_eq!(
            kindling::bundle::offline_image(&engine, &data, &pinned_ref).await,
            pinned_ref,
            "another image under the name is not the pinned one"
        );
        // The cache's storage serves them by tag and by their original digests.
        let reader = format!("{prefix}-reader");
        let volume = format!("{cache}-data");
        let rport = registry(&reader, Some(&volume));
        assert_eq!(
            get_manifest(rport, "kindlingtest/tool", "1", schema2),
            single
        );
        assert_eq!(
            get_manifest(rport, "kindlingtest/multi", "2", multi_accept),
            index
        );
        assert_eq!(
            get_manifest(rport, "kindlingtest/multi", &index_digest, multi_accept),
            index
        );
        assert_eq!(
            get_manifest(rport, "kindlingtest/multi", &other_digest, schema2),
            other
        );
        let pulled = format!("127.0.0.1:{rport}/kindlingtest/multi@{index_digest}");
        run(&["pull", &pulled]);
        let _ = docker_cli(&["rmi", &pulled]);
        run(&["rm", "-f", &reader]);

        // What was loaded is recorded, for doctor.
        let record: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("data/bundle-loaded.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(record["record"]["images"].as_array().unwrap().len(), 3);
        // doctor names the bundle, and what an offline create would still fetch: this one
        // holds none of the pinned images.
        let doctor = kindling(dir.path(), &["doctor", "--output", "json"], &extra);
        let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
        let bundle: Vec<&Value> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["check"] == "bundle")
            .collect();
        assert_eq!(bundle.len(), 2, "{report}");
        assert_eq!(bundle[0]["status"], "ok");
        assert!(
            bundle[0]["detail"]
                .as_str()
                .unwrap()
                .contains("workshop.tar")
        );
        assert_eq!(bundle[1]["status"], "warn");
        let lacks = bundle[1]["detail"].as_str().unwrap();
        assert!(
            lacks.contains("kind: docker.io/kindest/node:")
                && lacks.contains("k3d: docker.io/rancher/k3s:"),
            "{lacks}"
        );

        // A damaged archive is refused before anything is loaded.
        let mut bytes = std::fs::read(&file).unwrap();
        let hex = single_digest.trim_start_matches("sha256:");
        // The blob's tar header (its name at a 512-byte boundary); its content follows.
        let name = format!("blobs/sha256/{hex}");
        let header = (0..bytes.len())
            .step_by(512)
            .find(|&at| bytes[at..].starts_with(name.as_bytes()))
            .unwrap();
        let content = header + 512;
        bytes[content + 10] ^= 0xff;
        let damaged = dir.path().join("damaged.tar");
        std::fs::write(&damaged, &bytes).unwrap();
        let out = kindling(
            dir.path(),
            &[
                "bundle",
                "load",
                damaged.to_str().unwrap(),
                "--output",
                "json",
            ],
            &extra,
        );
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("does not match its content"), "{text}");

        let _ = docker_cli(&["rmi", "kindlingtest/tool:1", "kindlingtest/multi:2"]);
        let _ = docker_cli(&["volume", "rm", "-f", &volume]);
    }

    /// `--env` takes the images the env's nodes hold, as their containerd lists them: the
    /// fake kind node gets a `crictl` that prints what cri-tools' `crictl images -o json`
    /// prints (the CRI ListImagesResponse: `images[].repoTags`, `repoDigests`;
    /// kubernetes-sigs/cri-tools cmd/crictl/image.go). The tag is pinned to the digest it was
    /// pulled by; kind's preloaded control-plane images stay out (the node image has them).
    #[tokio::test(flavor = "multi_thread")]
    async fn bundle_save_takes_the_images_an_env_holds() {
        if docker().await.is_none() {
            return;
        }
        let h = super::common::env_harness::Harness::new();
        let env = unique("held");
        ok(&h.create(&env, &[]));
        let prefix = unique("kh");
        let upstream = format!("{prefix}-upstream");
        let port = registry(&upstream, None);
        let pushed = format!("127.0.0.1:{port}/charts/app:1");
        run(&["tag", TEST_IMAGE, &pushed]);
        run(&["push", &pushed]);
        let schema2 = "application/vnd.docker.distribution.manifest.v2+json";
        let digest = kindling::bundle::distribution::sha256_digest(&get_manifest(
            port,
            "charts/app",
            "1",
            schema2,
        ));
        let listing = format!(
            r#"{{"images":[{{"id":"sha256:1","repoTags":["{pushed}"],"repoDigests":["127.0.0.1:{port}/charts/app@{digest}"],"size":"1","uid":null,"username":"","spec":null,"pinned":false}},{{"id":"sha256:2","repoTags":["registry.k8s.io/pause:3.10"],"repoDigests":[],"size":"1","uid":null,"username":"","spec":null,"pinned":true}}]}}"#
        );
        let node = format!("kindling-{env}-control-plane");
        let script = format!("#!/bin/sh\ncat <<'EOF'\n{listing}\nEOF\n");
        let install = std::process::Command::new("docker")
            .args([
                "exec",
                "-i",
                &node,
                "sh",
                "-c",
                "cat > /bin/crictl && chmod +x /bin/crictl",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(script.as_bytes())?;
                child.wait()
            })
            .unwrap();
        assert!(install.success());
        let file = h.path("held.tar");
        let saved = ok(&h.run(
            &[
                "bundle",
                "save",
                file.to_str().unwrap(),
                "--env",
                &env,
                "--no-pins",
                // The sample stamp's charts live on the internet.
                "--no-charts",
                "--output",
                "json",
            ],
            &[],
        ));
        let references: Vec<&str> = saved["bundle"]["record"]["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["reference"].as_str().unwrap())
            .collect();
        assert_eq!(references, [format!("{pushed}@{digest}")], "{saved}");
        // Nothing to save is said, not written.
        let empty = h.run(
            &["bundle", "save", file.to_str().unwrap(), "--no-pins"],
            &[],
        );
        assert!(!empty.status.success());
        assert!(String::from_utf8_lossy(&empty.stderr).contains("nothing to save"));
        run(&["rm", "-f", &upstream]);
        let _ = docker_cli(&["rmi", &pushed]);
        super::common::env_harness::delete_clean(&h, &env);
    }

    /// `bundle save --stamp` keeps the stamp's chart, fetched through its repository's
    /// index.yaml, as the OCI artifact `helm push` makes (helm/helm v3
    /// pkg/registry/constants.go: config `application/vnd.cncf.helm.config.v1+json`, the package
    /// byte for byte as the one `…chart.content.v1.tar+gzip` layer), named in index.json. A
    /// package whose digest is not the one the index records is refused. `bundle load` of a
    /// bundle without images needs no Docker engine, and keeps the package for `env create`.
    /// An add-on's downloaded manifest travels in the bundle: `bundle save --stamp` of a HostK8s
    /// stack carries gateway-api's (its release publishes no sum), `bundle load` on another
    /// data dir puts it in the cache and records its sum as a first download would, and the
    /// add-on is then had with no network and no `--manifests-dir`.
    #[test]
    fn bundle_carries_the_addon_manifest_a_hostk8s_stack_needs() {
        use kindling::addons::Addon;
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        super::common::copy_tree(
            &super::common::hostk8s_dir().join("software"),
            &source.join("software"),
        );
        let manifest = Addon::GatewayApi.parts()[0].manifest().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gatewayclasses.gateway.networking.k8s.io}\n";
        std::fs::write(manifests.join(manifest.file_name()), text).unwrap();
        let file = dir.path().join("addons.tar");
        let no_docker = ("DOCKER_HOST", "unix:///nonexistent/docker.sock");
        let saved = ok(&kindling(
            &dir.path().join("a"),
            &[
                "bundle",
                "save",
                file.to_str().unwrap(),
                "--no-pins",
                "--no-charts",
                "--stamp",
                "sample",
                "--source",
                source.to_str().unwrap(),
                "--output",
                "json",
            ],
            &[
                no_docker,
                ("KINDLING_MANIFESTS_DIR", manifests.to_str().unwrap()),
                ("KINDLING_TRUST_MANIFESTS", "1"),
            ],
        ));
        let carried = &saved["bundle"]["record"]["manifests"];
        assert_eq!(carried[0]["file"], manifest.file_name(), "{saved}");
        let sum = kindling::cluster::tools::sha256_hex(text.as_bytes());
        assert_eq!(carried[0]["sha256"], sum.as_str());

        let other = dir.path().join("b");
        ok(&kindling(
            &other,
            &["bundle", "load", file.to_str().unwrap(), "--output", "json"],
            &[no_docker],
        ));
        let cached = other.join("cache/manifests").join(manifest.file_name());
        assert_eq!(std::fs::read_to_string(&cached).unwrap(), text);
        let record = other
            .join("data/manifest-sums")
            .join(format!("{}.sha256", manifest.file_name()));
        assert_eq!(std::fs::read_to_string(&record).unwrap().trim(), sum);
        // Offline, from the cache the load filled, checked against the recorded sum.
        let dirs = kindling::engine::manifests::ManifestDirs {
            cache: other.join("cache"),
            records: other.join("data/manifest-sums"),
        };
        kindling::addons::fetch_manifests(&[Addon::GatewayApi], &other.join("data"), &dirs, None)
            .unwrap();
        let kept = Addon::GatewayApi.parts()[0]
            .manifest_dir(&other.join("data"))
            .join("install.yaml");
        assert_eq!(std::fs::read_to_string(kept).unwrap(), text);
    }

    #[test]
    fn bundle_save_keeps_a_stamps_chart_and_load_stores_it() {
        let dir = tempfile::tempdir().unwrap();
        let packaged = super::common::packaged_chart("demo");
        let index = super::common::chart_index("demo", &packaged);
        let (base, _) = super::common::http::serve_files(vec![
            ("/charts/index.yaml".into(), index.clone().into_bytes()),
            ("/charts/demo-0.1.0.tgz".into(), packaged.clone()),
        ]);
        let source = dir.path().join("source");
        super::common::chart_stamp(&source, "offline", &format!("{base}/charts"), "demo");
        let file = dir.path().join("charts.tar");
        // No Docker engine at all: only the chart is asked for.
        let no_docker = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
        let save = |file: &Path| {
            kindling(
                dir.path(),
                &[
                    "bundle",
                    "save",
                    file.to_str().unwrap(),
                    "--no-pins",
                    "--stamp",
                    "offline",
                    "--source",
                    source.to_str().unwrap(),
                    "--output",
                    "json",
                ],
                &no_docker,
            )
        };
        let saved = ok(&save(&file));
        let archive = kindling::bundle::distribution::sha256_digest(&packaged);
        let charts = &saved["bundle"]["record"]["charts"];
        assert_eq!(charts[0]["chart"], "demo", "{saved}");
        assert_eq!(charts[0]["version"], "0.1.0");
        assert_eq!(charts[0]["archive"], archive.as_str());

        // The layout as another tool reads it.
        let unpacked = dir.path().join("unpacked");
        std::fs::create_dir_all(&unpacked).unwrap();
        let untar = std::process::Command::new("tar")
            .args([
                "xf",
                file.to_str().unwrap(),
                "-C",
                unpacked.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(untar.success());
        let blob = |digest: &str| {
            std::fs::read(
                unpacked
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            )
            .unwrap()
        };
        let index_json: Value =
            serde_json::from_slice(&std::fs::read(unpacked.join("index.json")).unwrap()).unwrap();
        let entry = index_json["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["artifactType"] == "application/vnd.cncf.helm.config.v1+json")
            .expect("the chart is named in index.json");
        let name = entry["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap();
        assert!(name.ends_with("/charts/demo:0.1.0"), "{name}");
        let manifest: Value =
            serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.cncf.helm.config.v1+json"
        );
        let config: Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        assert_eq!(config["name"], "demo");
        assert_eq!(config["version"], "0.1.0");
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
        );
        assert_eq!(manifest["layers"][0]["digest"], archive.as_str());
        assert_eq!(blob(&archive), packaged);

        // Load, with no Docker engine: the package is kept as the bundle holds it.
        let loaded = ok(&kindling(
            dir.path(),
            &["bundle", "load", file.to_str().unwrap(), "--output", "json"],
            &no_docker,
        ));
        assert_eq!(loaded["loaded"]["charts"][0]["chart"], "demo", "{loaded}");
        let stored = dir
            .path()
            .join("data/charts")
            .join(format!("{}.tgz", archive.replace(':', "-")));
        assert_eq!(std::fs::read(&stored).unwrap(), packaged);

        // A second bundle adds to what the first gave: both charts stay loaded.
        let other = super::common::packaged_chart("other");
        let (other_base, _) = super::common::http::serve_files(vec![
            (
                "/charts/index.yaml".into(),
                super::common::chart_index("other", &other).into_bytes(),
            ),
            ("/charts/other-0.1.0.tgz".into(), other),
        ]);
        // Credentials in the repository URL are used, never written into the bundle.
        let with_credentials = other_base.replace("http://", "http://user:s3cret@");
        super::common::chart_stamp(
            &source,
            "second",
            &format!("{with_credentials}/charts"),
            "other",
        );
        let second = dir.path().join("second.tar");
        let saved = ok(&kindling(
            dir.path(),
            &[
                "bundle",
                "save",
                second.to_str().unwrap(),
                "--no-pins",
                "--stamp",
                "second",
                "--source",
                source.to_str().unwrap(),
                "--output",
                "json",
            ],
            &no_docker,
        ));
        assert!(!saved.to_string().contains("s3cret"), "{saved}");
        let archive_text = String::from_utf8_lossy(&std::fs::read(&second).unwrap()).into_owned();
        assert!(!archive_text.contains("s3cret"));
        let loaded = ok(&kindling(
            dir.path(),
            &[
                "bundle",
                "load",
                second.to_str().unwrap(),
                "--output",
                "json",
            ],
            &no_docker,
        ));
        let names: Vec<&str> = loaded["loaded"]["charts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["chart"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["other", "demo"], "{loaded}");

        // A package that is not the one the index records is refused, and nothing written.
        let forged = super::common::packaged_chart("demo");
        let forged = [forged.as_slice(), b"x"].concat();
        let (other, _) = super::common::http::serve_files(vec![
            ("/charts/index.yaml".into(), index.into_bytes()),
            ("/charts/demo-0.1.0.tgz".into(), forged),
        ]);
        super::common::chart_stamp(&source, "offline", &format!("{other}/charts"), "demo");
        let refused_file = dir.path().join("refused.tar");
        let refused = save(&refused_file);
        assert!(!refused.status.success());
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            said.contains("arrived with digest") && said.contains("the index records"),
            "{said}"
        );
        assert!(!refused_file.exists());
    }

    /// A packaged chart is unpacked only into its own directory: an entry that climbs out
    /// (`..`), a link, or a second top directory refuses the package.
    #[test]
    fn bundle_chart_unpack_refuses_what_leaves_the_chart() {
        let package = |entries: &[(&str, tar::EntryType, &[u8])]| -> Vec<u8> {
            let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            ));
            for (path, kind, body) in entries {
                let mut header = tar::Header::new_gnu();
                // Written raw: the tar crate's own setters refuse `..`.
                let name = &mut header.as_gnu_mut().unwrap().name;
                name[..path.len()].copy_from_slice(path.as_bytes());
                header.set_entry_type(*kind);
                header.set_size(body.len() as u64);
                header.set_mode(0o644);
                if *kind == tar::EntryType::Symlink {
                    header.set_link_name("/etc/passwd").unwrap();
                }
                header.set_cksum();
                builder.append(&header, *body).unwrap();
            }
            builder.into_inner().unwrap().finish().unwrap()
        };
        let chart: &[u8] = b"apiVersion: v2\nname: demo\nversion: 0.1.0\n";
        let files = kindling::bundle::charts::unpack(&package(&[
            ("demo/Chart.yaml", tar::EntryType::Regular, chart),
            ("demo/templates/a.yaml", tar::EntryType::Regular, b"a: 1\n"),
        ]))
        .unwrap();
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["Chart.yaml", "templates/a.yaml"]);
        for (bad, says) in [
            (
                package(&[
                    ("demo/Chart.yaml", tar::EntryType::Regular, chart),
                    ("demo/../../evil", tar::EntryType::Regular, b"x"),
                ]),
                "outside the chart",
            ),
            (
                package(&[
                    ("demo/Chart.yaml", tar::EntryType::Regular, chart),
                    ("demo/link", tar::EntryType::Symlink, b""),
                ]),
                "not a plain file",
            ),
            (
                package(&[
                    ("demo/Chart.yaml", tar::EntryType::Regular, chart),
                    ("other/Chart.yaml", tar::EntryType::Regular, chart),
                ]),
                "more than one chart directory",
            ),
            (
                package(&[
                    ("demo/Chart.yaml", tar::EntryType::Regular, chart),
                    ("demo/.git/config", tar::EntryType::Regular, b"x"),
                ]),
                "which Git cannot store",
            ),
        ] {
            let err = kindling::bundle::charts::unpack(&bad).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    /// The images a node's containerd was given by the fake provider's image loading: the
    /// `RepoTags` of every archive under /var/lib/fake-ctr (see the fake kind and k3d).
    fn imported_into(node: &str) -> Vec<String> {
        let out = docker_cli(&[
            "exec",
            node,
            "sh",
            "-c",
            "for f in /var/lib/fake-ctr/*.tar; do tar -xOf \"$f\" manifest.json; echo; done",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .flat_map(|m| m.as_array().cloned().unwrap_or_default())
            .flat_map(|e| e["RepoTags"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect()
    }

    /// An image of a registry no shared cache serves (here a registry on this machine; Argo
    /// CD's redis from public.ecr.aws in real life) reaches the nodes from a loaded bundle:
    /// `env create` hands it to the provider's image loading (`kind load image-archive`, `k3d
    /// image import --mode direct`), on kind and on k3d. Without a loaded bundle the step is
    /// skipped and names why.
    #[tokio::test(flavor = "multi_thread")]
    async fn bundle_images_no_cache_serves_are_imported_into_the_nodes() {
        if docker().await.is_none() {
            return;
        }
        ensure_test_image();
        ensure_test_registry_image();
        let prefix = unique("kn");
        let upstream = format!("{prefix}-upstream");
        let port = registry(&upstream, None);
        let image = format!("127.0.0.1:{port}/offline/app:1");
        run(&["tag", TEST_IMAGE, &image]);
        run(&["push", &image]);
        for provider in ["kind", "k3d"] {
            let h = super::common::env_harness::Harness::new();
            let profile = h.path(&format!("{provider}-profile.yaml"));
            std::fs::write(
                &profile,
                format!("apiVersion: kindling.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: nodes}}\nspec:\n  provider: {provider}\n  kubernetesVersion: \"1.37\"\n  ingress: {{http: 18080, https: 18443}}\n  registry: false\n  imageCaches: false\n"),
            )
            .unwrap();
            let create = |env: &str| {
                ok(&h
                    .create_command(env, &profile, &["--wait", "--timeout", "60s"], &[])
                    .output()
                    .unwrap())
            };
            let step = |report: &Value| {
                report["env"]["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["name"] == "images")
                    .cloned()
                    .unwrap()
            };
            let node_of = |env: &str| match provider {
                "kind" => format!("kindling-{env}-control-plane"),
                _ => format!("k3d-kindling-{env}-server-0"),
            };
            // Made before any bundle: nothing to give, said.
            let early = unique("early");
            let report = create(&early);
            assert_eq!(step(&report)["status"], "skipped", "{report}");
            assert!(
                step(&report)["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("no bundle loaded"),
                "{report}"
            );

            let list = h.path("images.txt");
            std::fs::write(&list, format!("{image}\n")).unwrap();
            let file = h.path("nodes.tar");
            let file = file.to_str().unwrap();
            ok(&h.run(
                &[
                    "bundle",
                    "save",
                    file,
                    "--no-pins",
                    "--images",
                    list.to_str().unwrap(),
                    "--output",
                    "json",
                ],
                &[],
            ));
            // The engine gets it from the bundle alone (the first round pushed it from here).
            let _ = docker_cli(&["rmi", &image]);
            ok(&h.run(&["bundle", "load", file, "--output", "json"], &[]));
            // The nodes too: the import is cut from the bundle, not taken from the engine
            // (whose IDs and `docker save` differ between its image stores).
            run(&["rmi", &image]);
            let env = unique("nodes");
            let report = create(&env);
            assert_eq!(step(&report)["status"], "done", "{report}");
            let imported = imported_into(&node_of(&env));
            assert!(imported.contains(&image), "{provider}: {imported:?}");
            super::common::env_harness::delete_clean(&h, &env);
            // The env made before the load gets it at its next restart.
            assert!(imported_into(&node_of(&early)).is_empty());
            ok(&h.run(&["env", "restart", &early, "--output", "json"], &[]));
            let imported = imported_into(&node_of(&early));
            assert!(
                imported.contains(&image),
                "{provider} restart: {imported:?}"
            );
            super::common::env_harness::delete_clean(&h, &early);
        }
        run(&["rm", "-f", &upstream]);
        let _ = docker_cli(&["rmi", &image]);
    }
}
