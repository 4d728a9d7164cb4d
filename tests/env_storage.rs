//! A stamp's storage (issue #19 part 1) against the real Docker engine: the fake kind's node
//! containers bind-mount the host directories for real, so data written through a node's
//! mount path is on the host, outlives `env delete`, and is there again after the next create.

mod common;

mod env {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::common::env_harness::*;
    use super::common::{docker, docker_cli, unique};

    const STORAGE: &str = "  storage:\n    - {name: db, path: /mnt/pv/sample/db, size: 1Gi, accessModes: [ReadWriteOnce], storageClass: sample-db, owner: \"26:26\", permissions: \"700\"}\n";

    /// Adds `storage` to the copy of the sample stamp (its `spec` is the file's last part),
    /// and a claim of its class to the database component.
    fn with_storage(h: &Harness, stamp: &str, storage: &str) {
        let file = h.path("source/stamps").join(stamp).join("stamp.yaml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str(storage);
        std::fs::write(&file, text).unwrap();
        let component = h
            .path("source/stamps")
            .join(stamp)
            .join("components/database");
        std::fs::write(
            component.join("claim.yaml"),
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data-claim, namespace: database}\nspec:\n  storageClassName: sample-db\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 512Mi}}\n",
        )
        .unwrap();
        let kustomization = component.join("kustomization.yaml");
        let text = std::fs::read_to_string(&kustomization).unwrap();
        std::fs::write(
            &kustomization,
            text.replace(
                "  - statefulset.yaml\n",
                "  - statefulset.yaml\n  - claim.yaml\n",
            ),
        )
        .unwrap();
    }

    fn in_node(node: &str, script: &str) -> std::process::Output {
        docker_cli(&["exec", node, "sh", "-c", script])
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn env_storage_is_mounted_owned_offered_and_outlives_the_cluster() {
        if docker().await.is_none() {
            return;
        }
        let h = Harness::new();
        with_storage(&h, "sample", STORAGE);
        let env = unique("stor");
        let node = format!("kindling-{env}-control-plane");
        let host = h.path("data/storage").join(&env).join("pv/sample/db");

        // --dry-run shows the mount and the objects, and makes nothing.
        let plan = ok(&h.create_text(
            &env,
            &h.path("profile.yaml"),
            &["--dry-run", "--output", "json"],
            &[],
        ));
        assert_eq!(
            plan["plan"]["cluster"]["storage"],
            serde_json::json!([{"hostPath": host, "nodePath": "/mnt/pv/sample/db"}])
        );
        let kinds: Vec<_> = plan["plan"]["storage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["StorageClass", "PersistentVolume"]);
        assert!(!host.exists(), "a dry run makes no directory");

        let report = ok(&h.create(&env, &[]));
        assert!(
            report_steps(&report, "done").contains(&"storage"),
            "{report}"
        );
        // The owner and mode of the contract, set from inside the node through the mount.
        let meta = std::fs::metadata(&host).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (26, 26));
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        let class = h.api.object("StorageClass", "sample-db").unwrap();
        assert_eq!(class["provisioner"], "kubernetes.io/no-provisioner");
        let pv = h.api.object("PersistentVolume", "sample-db").unwrap();
        assert_eq!(pv["spec"]["hostPath"]["path"], "/mnt/pv/sample/db");
        assert_eq!(pv["spec"]["storageClassName"], "sample-db");
        assert_eq!(
            h.state(&env)["storage"],
            serde_json::json!(["/mnt/pv/sample/db"])
        );

        // A claim of the stamp binds to the volume (the fake's PersistentVolume controller
        // binds as kube-controller-manager does), and `env status` says so.
        let status = h.json(&["env", "status", &env]);
        assert_eq!(status["status"]["storage"][0]["phase"], "Bound", "{status}");
        assert_eq!(
            status["status"]["storage"][0]["claim"],
            "database/data-claim"
        );
        assert_eq!(
            status["status"]["storage"][0]["hostPath"],
            serde_json::json!(host)
        );
        let claim = h.api.object("PersistentVolumeClaim", "data-claim").unwrap();
        assert_eq!(claim["spec"]["volumeName"], "sample-db");
        // The entry that made the claim shows it, from its Kustomization's inventory.
        let database = status["status"]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["entry"] == "database")
            .unwrap_or_else(|| panic!("{status}"))
            .clone();
        assert_eq!(
            database["claims"],
            serde_json::json!([{"namespace": "database", "name": "data-claim", "phase": "Bound", "volume": "sample-db"}]),
            "{database}"
        );
        assert_eq!(
            database["workloads"][0]["kind"], "StatefulSet",
            "{database}"
        );

        // Written through the node's mount path, the file is in the host directory.
        let wrote = in_node(&node, "echo kept > /mnt/pv/sample/db/data.txt");
        assert!(wrote.status.success(), "{wrote:?}");
        assert_eq!(
            std::fs::read_to_string(host.join("data.txt")).unwrap(),
            "kept\n"
        );

        let deleted = h.json(&["env", "delete", &env]);
        let kept = h.path("data/storage").join(&env);
        assert_eq!(
            deleted["deleted"][0]["storageKept"],
            serde_json::json!(kept)
        );
        assert!(!super::common::env_harness::container_exists(&node));
        assert!(host.join("data.txt").exists(), "delete keeps the data");
        let text = h.run(&["env", "delete", &env], &[]);
        assert!(
            String::from_utf8_lossy(&text.stdout).contains("--purge"),
            "{text:?}"
        );

        // The next create of the env mounts the same data.
        ok(&h.create(&env, &[]));
        let read = in_node(&node, "cat /mnt/pv/sample/db/data.txt");
        assert_eq!(String::from_utf8_lossy(&read.stdout), "kept\n", "{read:?}");

        // A restart prunes the stack's claim; its volume (Retain) is Released with the old
        // claim's reference, which kindling clears, so the new claim binds it again.
        let first_uid =
            h.api.object("PersistentVolumeClaim", "data-claim").unwrap()["metadata"]["uid"].clone();
        assert!(first_uid.is_string());
        ok(&h.run(&["env", "restart", &env, "--output", "json"], &[]));
        wait_until(
            "the claim bound again",
            std::time::Duration::from_secs(30),
            || {
                let _ = h.run(&["env", "status", &env], &[]);
                h.api
                    .object("PersistentVolumeClaim", "data-claim")
                    .is_some_and(|c| {
                        c["metadata"]["uid"] != first_uid && c["status"]["phase"] == "Bound"
                    })
            },
        );
        let volume = h.api.object("PersistentVolume", "sample-db").unwrap();
        assert_eq!(volume["status"]["phase"], "Bound", "{volume}");
        assert_ne!(volume["spec"]["claimRef"]["uid"], first_uid);

        // Another stamp that needs a mount the nodes lack is refused before anything is
        // removed, naming the path and the way out.
        super::common::copy_tree(
            &h.path("source/stamps/sample"),
            &h.path("source/stamps/other"),
        );
        let other = h.path("source/stamps/other/stamp.yaml");
        let text = std::fs::read_to_string(&other).unwrap();
        std::fs::write(
            &other,
            text.replace("name: sample\n", "name: other\n")
                .replace("/mnt/pv/sample/db", "/mnt/pv/other/db"),
        )
        .unwrap();
        let before = h.api.objects_of("Kustomization").len();
        let refused = h.run(
            &[
                "env", "restart", &env, "--stamp", "other", "--output", "json",
            ],
            &[],
        );
        let error = error_says(&refused, "/mnt/pv/other/db");
        let message = error["error"].as_str().unwrap();
        assert!(
            message.contains(&format!("kindling env delete {env}")),
            "{message}"
        );
        assert_eq!(h.api.objects_of("Kustomization").len(), before);
        assert_eq!(h.state(&env)["stamp"], "sample");

        let purged = h.json(&["env", "delete", &env, "--purge"]);
        assert_eq!(
            purged["deleted"][0]["storageRemoved"],
            serde_json::json!(kept)
        );
        assert!(purged["deleted"][0]["storageKept"].is_null(), "{purged}");
        assert!(!kept.exists(), "--purge removes the data");
    }
}
