//! Loading HostK8s stacks unchanged: the real fixtures, and HostK8s-style edge cases.

mod common;

mod stamp {
    use super::common::{copy_tree, hostk8s_dir, hostk8s_stack, write};
    use kindling::stamp::{
        self, GeneratorKind, Role, SecretGenerator, SecretValue, Source, StampError, StampFormat,
    };

    fn names(s: &kindling::stamp::Stamp) -> Vec<&str> {
        s.entries.iter().map(|e| e.name.as_str()).collect()
    }

    fn deps<'a>(s: &'a kindling::stamp::Stamp, name: &str) -> Vec<&'a str> {
        s.entry(name)
            .unwrap()
            .depends_on
            .iter()
            .map(String::as_str)
            .collect()
    }

    /// The rendered objects of a HostK8s stack carry its own labels, which HostK8s's scripts
    /// select by (infra/scripts/deploy-stack.py: `kubectl get kustomizations -l
    /// hostk8s.stack=NAME`, `-l hostk8s.type=component`): a flattened component's entries take
    /// the component's. On Flux the Kustomizations, on Argo CD the Applications.
    #[test]
    fn stamp_hostk8s_objects_carry_the_stacks_labels() {
        let stamp = stamp::load(&hostk8s_stack("sample"), None).unwrap();
        let opts = kindling::stamp::render::RenderOptions::standard("http://git/x.git".into());
        for (engine, kind) in [
            (kindling::stamp::render::Engine::Flux, "Kustomization"),
            (kindling::stamp::render::Engine::Argo, "Application"),
        ] {
            let rendered = kindling::stamp::render::render(&stamp, engine, &opts).unwrap();
            for (entry, kind_label) in [
                ("component-certs-manager", "component"),
                ("component-certs-issuer", "component"),
                ("app-sample", "application"),
            ] {
                let object = rendered
                    .documents()
                    .find(|d| d["kind"] == kind && d["metadata"]["name"] == entry)
                    .unwrap_or_else(|| panic!("{kind} {entry}"));
                let labels = &object["metadata"]["labels"];
                assert_eq!(labels["hostk8s.stack"], "sample", "{object}");
                assert_eq!(labels["hostk8s.type"], kind_label, "{object}");
                assert_eq!(labels["dev.kindling.stamp"], "sample");
            }
        }
        // A kindling stamp's entries carry kindling's labels only.
        let native = stamp::load(&super::common::repo_dir().join("stamps/sample"), None).unwrap();
        assert!(native.entries.iter().all(|e| e.labels.is_empty()));
    }

    /// An extension stack (software/stacks/extension/NAME, its own repository cloned there):
    /// the paths of its own source are relative to its directory, those of HostK8s' shared
    /// components to the HostK8s repository; its files are pushed although HostK8s' ignore
    /// file excludes them, and only the files its own Git would take when it is a checkout.
    #[test]
    fn stamp_hostk8s_extension_stack_paths_and_pushed_files() {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(
            &hostk8s_dir().join("software"),
            &dir.path().join("software"),
        );
        super::common::write_extension_stack(dir.path());
        let found = stamp::locate_stamp("extension/demo", dir.path()).unwrap();
        let s = stamp::load(&found, None).unwrap();
        assert_eq!(s.name, "demo");
        let path_of = |name: &str| match &s.entry(name).unwrap().source {
            Source::Path(p) => p.repo_path.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            path_of("demo-infrastructure"),
            "software/stacks/extension/demo/components/settings"
        );
        assert_eq!(
            path_of("demo-applications"),
            "software/stacks/extension/demo/applications"
        );
        // HostK8s' shared certs component, flattened as in any stack.
        assert!(
            names(&s).contains(&"component-certs-manager"),
            "{:?}",
            names(&s)
        );
        let pushed: Vec<String> = stamp::extension_files(&s)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        for file in [
            "software/stacks/extension/demo/stack.yaml",
            "software/stacks/extension/demo/applications/greeting.yaml",
            "software/stacks/extension/demo/components/settings/namespace.yaml",
        ] {
            assert!(pushed.contains(&file.to_string()), "{pushed:?}");
        }
        // A checkout: its own ignore file counts, its .git does not travel.
        let demo = dir.path().join("software/stacks/extension/demo");
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(&demo)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        };
        git(&["init", "-q"]);
        write(&demo.join(".gitignore"), "local.env\n");
        write(&demo.join("local.env"), "TOKEN=secret\n");
        let pushed: Vec<String> = stamp::extension_files(&s)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert!(pushed.contains(&"software/stacks/extension/demo/stack.yaml".to_string()));
        assert!(
            !pushed.iter().any(|p| p.ends_with("local.env")),
            "{pushed:?}"
        );
        assert!(!pushed.iter().any(|p| p.contains("/.git/")), "{pushed:?}");
        // Outside `extension/`, a stack's paths are the HostK8s repository's as before.
        let sample = stamp::load(&hostk8s_stack("sample"), None).unwrap();
        assert!(stamp::extension_files(&sample).unwrap().is_empty());
    }

    #[test]
    fn stamp_hostk8s_sample_flattens_the_certs_component() {
        let s = stamp::load(&hostk8s_stack("sample"), None).unwrap();
        assert_eq!(s.format, StampFormat::Hostk8s);
        assert_eq!(s.name, "sample");
        assert_eq!(
            names(&s),
            [
                "component-certs-manager",
                "component-certs-ca",
                "component-certs-issuer",
                "app-sample"
            ]
        );
        // The children keep their own chain; the application now waits for the last child.
        assert_eq!(deps(&s, "component-certs-manager"), Vec::<&str>::new());
        assert_eq!(deps(&s, "component-certs-ca"), ["component-certs-manager"]);
        assert_eq!(deps(&s, "component-certs-issuer"), ["component-certs-ca"]);
        assert_eq!(deps(&s, "app-sample"), ["component-certs-issuer"]);
        let ca = s.entry("component-certs-ca").unwrap();
        assert_eq!(ca.group.as_deref(), Some("component-certs"));
        assert_eq!(ca.role, Role::Component);
        assert_eq!(ca.health_checks[0].name, "root-ca-secret");
        assert_eq!(
            ca.health_checks[0].namespace.as_deref(),
            Some("cert-manager")
        );
        let app = s.entry("app-sample").unwrap();
        assert_eq!(app.role, Role::Application);
        match &app.source {
            Source::Path(p) => assert_eq!(p.repo_path, "software/stacks/sample/app"),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.repo_root, std::fs::canonicalize(hostk8s_dir()).unwrap());
        assert_eq!(
            s.wave(
                s.entries
                    .iter()
                    .position(|e| e.name == "app-sample")
                    .unwrap()
            ),
            3
        );
    }

    #[test]
    fn stamp_hostk8s_sample_app_loads_dependencies_health_checks_and_secret_contract() {
        let s = stamp::load(&hostk8s_stack("sample-app"), None).unwrap();
        assert_eq!(
            names(&s),
            [
                "component-redis",
                "component-postgres",
                "sample-app-db",
                "sample-app"
            ]
        );
        assert_eq!(
            deps(&s, "sample-app-db"),
            ["component-redis", "component-postgres"]
        );
        let db = s.entry("sample-app-db").unwrap();
        assert_eq!(
            db.health_checks[0].api_version.as_deref(),
            Some("postgresql.cnpg.io/v1")
        );
        assert_eq!(db.timeout.as_deref(), Some("10m"));
        assert!(db.wait && db.prune);
        // hostk8s.secrets.yaml → bootstrap secrets: literal values and generated passwords.
        assert_eq!(s.secrets.len(), 3);
        let pg = &s.secrets[0];
        assert_eq!(
            (pg.name.as_str(), pg.namespace.as_str()),
            ("postgres-credentials", "postgres")
        );
        assert_eq!(pg.keys[0].value, SecretValue::Literal("postgres".into()));
        let redis = &s.secrets[1];
        assert_eq!(redis.keys[1].key, "password");
        assert_eq!(
            redis.keys[1].value,
            SecretValue::Generate(SecretGenerator::new(GeneratorKind::Password, Some(12)))
        );
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        // hostk8s.storage.yaml → storage, with HostK8s' PersistentVolume name and labels
        // (manage-storage.py create_persistent_volume).
        assert_eq!(s.storage.len(), 1);
        let db = &s.storage[0];
        assert_eq!(db.path, "/mnt/pv/sample-app/voting-db");
        assert_eq!(db.storage_class, "sample-app-voting-db");
        assert_eq!((db.owner, db.permissions), ((26, 26), 0o777));
        assert_eq!(db.volume_name, "hostk8s-sample-app-voting-db-pv");
        assert_eq!(db.volume_labels["hostk8s.stack"], "sample-app");
    }

    fn with_storage(name: &str, directories: &str) -> tempfile::TempDir {
        let dir = scratch(&flux_kustomization("a", "./a", ""));
        manifest_dir(dir.path(), "a");
        write(
            &dir.path().join("software/stacks/edge/hostk8s.storage.yaml"),
            &format!(
                "apiVersion: hostk8s.io/v1\nkind: StorageContract\nmetadata: {{name: {name}}}\nspec:\n  directories:\n{directories}"
            ),
        );
        dir
    }

    /// The StorageClass is one per class name, the PersistentVolume one per directory, and
    /// both keep the data (Retain), as HostK8s makes them; a directory without owner and
    /// permissions gets HostK8s' 1000:1000 and 755.
    #[test]
    fn stamp_hostk8s_storage_contract_makes_one_class_per_name_and_a_volume_per_directory() {
        let dir = with_storage(
            "edge",
            "    - {name: one, path: /mnt/pv/edge/one, size: 1Gi, accessModes: [ReadWriteOnce], storageClass: shared}\n    - {name: two, path: /mnt/pv/edge/two/, size: 500Mi, accessModes: [ReadWriteMany], storageClass: shared, owner: \"999:999\", permissions: \"700\"}\n",
        );
        let s = stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap();
        assert_eq!(
            (s.storage[0].owner, s.storage[0].permissions),
            ((1000, 1000), 0o755)
        );
        assert_eq!(
            (s.storage[1].owner, s.storage[1].permissions),
            ((999, 999), 0o700)
        );
        assert_eq!(s.storage[1].path, "/mnt/pv/edge/two", "trailing / dropped");
        let objects = kindling::stamp::storage::objects(&s.storage);
        let kinds: Vec<_> = objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "StorageClass/shared",
                "PersistentVolume/hostk8s-edge-one-pv",
                "PersistentVolume/hostk8s-edge-two-pv"
            ]
        );
        assert_eq!(objects[0]["provisioner"], "kubernetes.io/no-provisioner");
        assert_eq!(objects[0]["reclaimPolicy"], "Retain");
        let pv = &objects[2]["spec"];
        assert_eq!(pv["hostPath"]["path"], "/mnt/pv/edge/two");
        assert_eq!(pv["hostPath"]["type"], "DirectoryOrCreate");
        assert_eq!(pv["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["capacity"]["storage"], "500Mi");
        assert_eq!(pv["storageClassName"], "shared");
    }

    /// What HostK8s refuses (manage-storage.py validate_contract/validate_directory) is
    /// reported at once, each with the contract's file, field and fix.
    #[test]
    fn stamp_hostk8s_storage_contract_problems_name_the_field_and_fix() {
        let dir = with_storage(
            "other",
            concat!(
                "    - {name: one, path: /var/lib/x, size: 1Gi, accessModes: [ReadWriteOnce], storageClass: c}\n",
                "    - {name: one, path: /mnt/pv/a/../b, size: lots, accessModes: [WriteSometimes], storageClass: c, owner: postgres, permissions: \"789\"}\n",
                "    - {name: three, path: /mnt/pv/a, size: 1Gi, accessModes: [ReadWriteOnce], storageClass: c}\n",
                "    - {name: four, path: /mnt/pv/a/inner, size: 1Gi, accessModes: [], storageClass: c}\n",
                "    - {name: five, path: '/mnt/pv/c:d', size: 1e3, accessModes: [ReadWriteOnce], storageClass: c, permissions: 644}\n",
            ),
        );
        let text =
            problems(stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap_err());
        for wanted in [
            "hostk8s.storage.yaml: metadata.name: 'other' is not the stack's name",
            "write metadata.name: edge",
            "spec.directories[0].path: '/var/lib/x' is not under /mnt/pv/",
            "spec.directories[1].name: 'one' is declared twice",
            "spec.directories[1].path: '/mnt/pv/a/../b' has empty, '.' or '..' parts",
            "spec.directories[1].size: 'lots' is not a Kubernetes quantity",
            "spec.directories[1].accessModes: 'WriteSometimes' is not a PersistentVolume access mode",
            "spec.directories[1].owner: 'postgres' is not UID:GID",
            "spec.directories[1].permissions: '789' is not a 3-digit octal mode",
            "spec.directories[3].path: '/mnt/pv/a/inner' overlaps '/mnt/pv/a'",
            "spec.directories[3].accessModes: is empty",
            "spec.directories[4].path: '/mnt/pv/c:d' holds ':' or ','",
            "spec.directories[4].permissions: '644 (a number; quote it)' is not a 3-digit octal mode",
        ] {
            assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
        }
        // An exponent is a quantity Kubernetes takes (1e3 bytes).
        assert!(!text.contains("directories[4].size"), "{text}");
    }

    #[test]
    fn stamp_hostk8s_ignore_patterns_come_from_the_git_repositories() {
        let s = stamp::load(&hostk8s_stack("sample"), None).unwrap();
        // From source-stack.yaml (with ${SOFTWARE_STACK_PATH} filled) and source-component.yaml.
        assert!(
            s.ignore.contains(&"!/software/stacks/sample/".to_string()),
            "{:?}",
            s.ignore
        );
        assert!(
            s.ignore.contains(&"!/software/components/".to_string()),
            "{:?}",
            s.ignore
        );
    }

    /// A scratch HostK8s repository with a stack made of the given `stack.yaml`.
    fn scratch(stack_yaml: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("software/stacks/edge/stack.yaml"),
            stack_yaml,
        );
        write(
            &dir.path().join("software/stacks/edge/kustomization.yaml"),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [stack.yaml]\n",
        );
        dir
    }

    fn flux_kustomization(name: &str, path: &str, extra: &str) -> String {
        format!(
            "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: {name}, namespace: flux-system}}\nspec:\n  interval: 1h\n  sourceRef: {{kind: GitRepository, name: flux-system}}\n  path: {path}\n  prune: true\n  wait: true\n{extra}"
        )
    }

    fn manifest_dir(root: &std::path::Path, path: &str) {
        write(
            &root.join(path).join("cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n",
        );
    }

    #[test]
    fn stamp_hostk8s_nested_components_flatten_two_levels_and_keep_parent_dependencies() {
        // outer (depends on base) holds inner + leaf; inner holds deep-a -> deep-b.
        let stack = flux_kustomization("base", "./software/components/base", "")
            + &flux_kustomization(
                "outer",
                "./software/components/outer",
                "  dependsOn: [{name: base}]\n  healthChecks: [{kind: Deployment, name: d, namespace: n}]\n",
            )
            + &flux_kustomization(
                "app",
                "./software/stacks/edge/app",
                "  dependsOn: [{name: outer}]\n",
            );
        let dir = scratch(&stack);
        let root = dir.path();
        manifest_dir(root, "software/components/base");
        manifest_dir(root, "software/stacks/edge/app");
        write(
            &root.join("software/components/outer/component.yaml"),
            &(flux_kustomization("inner", "./software/components/outer/inner", "")
                + &flux_kustomization(
                    "leaf",
                    "./software/components/outer/leaf",
                    "  dependsOn: [{name: inner}]\n",
                )),
        );
        manifest_dir(root, "software/components/outer/leaf");
        write(
            &root.join("software/components/outer/inner/component.yaml"),
            &(flux_kustomization("deep-a", "./software/components/outer/inner/a", "")
                + &flux_kustomization(
                    "deep-b",
                    "./software/components/outer/inner/b",
                    "  dependsOn: [{name: deep-a}]\n",
                )),
        );
        for component in [
            "software/components/outer",
            "software/components/outer/inner",
        ] {
            write(
                &root.join(component).join("kustomization.yaml"),
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [component.yaml]\n",
            );
        }
        manifest_dir(root, "software/components/outer/inner/a");
        manifest_dir(root, "software/components/outer/inner/b");

        let s = stamp::load(&root.join("software/stacks/edge"), None).unwrap();
        assert_eq!(names(&s), ["base", "deep-a", "deep-b", "leaf", "app"]);
        assert_eq!(deps(&s, "deep-a"), ["base"]);
        // leaf depended on `inner`, which now stands for its last child.
        assert_eq!(deps(&s, "leaf"), ["deep-b"]);
        assert_eq!(deps(&s, "app"), ["leaf"]);
        // The parent's health check moves to the children nothing else in the group waits for.
        assert_eq!(s.entry("leaf").unwrap().health_checks.len(), 1);
        assert!(s.entry("deep-a").unwrap().health_checks.is_empty());
        assert_eq!(s.entry("deep-b").unwrap().group.as_deref(), Some("inner"));
    }

    fn problems(err: StampError) -> String {
        match err {
            StampError::Invalid { problems, .. } => problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            other => panic!("expected problems, got {other}"),
        }
    }

    #[test]
    fn stamp_hostk8s_unknown_placeholder_is_reported_with_the_known_ones() {
        let dir = scratch(&flux_kustomization(
            "a",
            "./software/stacks/${MY_STACK}/a",
            "",
        ));
        let err = stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap_err();
        let text = problems(err);
        assert!(
            text.contains("${MY_STACK}: is not a placeholder kindling fills in"),
            "{text}"
        );
        assert!(text.contains("SOFTWARE_STACK_PATH"), "{text}");
    }

    #[test]
    fn stamp_hostk8s_placeholders_fill_stack_paths() {
        let dir = scratch(&flux_kustomization(
            "a",
            "./software/stacks/${SOFTWARE_STACK}/a",
            "",
        ));
        manifest_dir(dir.path(), "software/stacks/edge/a");
        let s = stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap();
        match &s.entries[0].source {
            Source::Path(p) => assert_eq!(p.repo_path, "software/stacks/edge/a"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stamp_hostk8s_non_git_sources_and_unsupported_fields_are_reported() {
        let stack = flux_kustomization("a", "./a", "  postBuild: {substitute: {X: y}}\n").replace(
            "sourceRef: {kind: GitRepository, name: flux-system}",
            "sourceRef: {kind: OCIRepository, name: oci}",
        );
        let dir = scratch(&stack);
        manifest_dir(dir.path(), "a");
        let text =
            problems(stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap_err());
        assert!(
            text.contains("spec.sourceRef.kind: 'OCIRepository' ('oci') cannot be served"),
            "{text}"
        );
        assert!(text.contains("spec.postBuild: is not supported"), "{text}");
    }

    #[test]
    fn stamp_hostk8s_missing_path_and_cycle_are_reported_together() {
        let stack =
            flux_kustomization("a", "./software/components/a", "  dependsOn: [{name: b}]\n")
                + &flux_kustomization("b", "./software/components/b", "  dependsOn: [{name: a}]\n");
        let dir = scratch(&stack);
        manifest_dir(dir.path(), "software/components/a");
        let text =
            problems(stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap_err());
        assert!(text.contains("entry 'b': path: directory"), "{text}");
        assert!(text.contains("dependency cycle: a -> b -> a"), "{text}");
    }

    fn with_contract(data: &str) -> tempfile::TempDir {
        let dir = scratch(&flux_kustomization("a", "./a", ""));
        manifest_dir(dir.path(), "a");
        write(
            &dir.path().join("software/stacks/edge/hostk8s.secrets.yaml"),
            &format!(
                "apiVersion: hostk8s.io/v1\nkind: SecretContract\nmetadata: {{name: x}}\nspec:\n  secrets:\n    - name: s\n      namespace: n\n      data:\n{data}"
            ),
        );
        dir
    }

    fn generators(s: &kindling::stamp::Stamp) -> Vec<(&str, SecretGenerator)> {
        s.secrets[0]
            .keys
            .iter()
            .map(|k| match &k.value {
                SecretValue::Generate(g) => (k.key.as_str(), *g),
                other => panic!("{}: {other:?}", k.key),
            })
            .collect()
    }

    /// Each type HostK8s documents (docs/secret-contracts.md @2add0a5) and each of kindling's,
    /// with HostK8s' lengths: 32 by default, ignored for uuid, hex in whole bytes.
    #[test]
    fn stamp_hostk8s_secret_generator_types_follow_hostk8s() {
        let dir = with_contract(
            "        - {key: p, generate: password, length: 12}\n        - {key: t, generate: token}\n        - {key: h, generate: hex, length: 64}\n        - {key: u, generate: uuid, length: 12}\n        - {key: f, generate: fernet}\n        - {key: b, generate: base64, length: 16}\n",
        );
        let s = stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap();
        let g = |kind, length| SecretGenerator::new(kind, length);
        assert_eq!(
            generators(&s),
            [
                ("p", g(GeneratorKind::Password, Some(12))),
                ("t", g(GeneratorKind::Token, None)),
                ("h", g(GeneratorKind::Hex, Some(64))),
                ("u", g(GeneratorKind::Uuid, None)),
                ("f", g(GeneratorKind::Fernet, None)),
                ("b", g(GeneratorKind::Base64, Some(16))),
            ]
        );
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        // What each makes: the format HostK8s (or the consumer of the key) expects.
        let made: Vec<String> = generators(&s)
            .iter()
            .map(|(_, g)| g.generate().unwrap())
            .collect();
        assert_eq!(made[0].len(), 12);
        assert_eq!(made[1].len(), 32);
        assert!(made[1].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(made[2].len(), 64);
        assert!(
            made[2]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
        assert_eq!(made[3].len(), 36);
        assert_eq!(&made[3][14..15], "4");
        assert_eq!(made[4].len(), 44);
        assert_eq!(made[5].len(), 24);
    }

    /// HostK8s makes a token of a type it does not know (manage-secrets.py @2add0a5,
    /// `generate_value`), silently; kindling does the same and says so.
    #[test]
    fn stamp_hostk8s_secret_generator_unknown_type_makes_a_token_with_a_warning() {
        let dir = with_contract(
            "        - {key: k, generate: dice, length: 20}\n        - {key: r, generate: random}\n",
        );
        let s = stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap();
        assert_eq!(
            generators(&s),
            [
                ("k", SecretGenerator::new(GeneratorKind::Token, Some(20))),
                ("r", SecretGenerator::new(GeneratorKind::Token, None)),
            ]
        );
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        let w = &s.warnings[0];
        assert!(
            w.file
                .ends_with("software/stacks/edge/hostk8s.secrets.yaml")
        );
        assert_eq!(w.field, "spec.secrets[s].data[k].generate");
        assert!(
            w.message
                .contains("'dice' is not a generator HostK8s or kindling knows")
                && w.message
                    .contains("a token (A-Za-z0-9, 20 characters) is generated instead"),
            "{}",
            w.message
        );
        assert!(
            w.help
                .contains("password, token, hex, uuid, fernet, base64"),
            "{}",
            w.help
        );
        assert!(
            s.warnings[1].message.contains("32 characters"),
            "{}",
            s.warnings[1]
        );
    }

    #[test]
    fn stamp_hostk8s_secret_generator_odd_hex_length_is_whole_bytes_with_a_warning() {
        let dir = with_contract("        - {key: h, generate: hex, length: 33}\n");
        let s = stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap();
        assert_eq!(
            generators(&s),
            [("h", SecretGenerator::new(GeneratorKind::Hex, Some(32)))]
        );
        assert_eq!(s.warnings[0].field, "spec.secrets[s].data[h].length");
        assert!(
            s.warnings[0].message.contains("has 32 characters"),
            "{}",
            s.warnings[0]
        );
    }

    /// HostK8s documents 8 as the shortest password; lengths that make nothing are errors.
    #[test]
    fn stamp_hostk8s_secret_generator_bad_lengths_are_reported() {
        let dir = with_contract(
            "        - {key: p, generate: password, length: 7}\n        - {key: h, generate: hex, length: 1}\n        - {key: t, generate: token, length: 0}\n",
        );
        let text =
            problems(stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap_err());
        for key in ["p", "h", "t"] {
            assert!(
                text.contains(&format!("keys[{key}].generate.length")),
                "{key}: {text}"
            );
        }
        assert!(text.contains("7 is out of range"), "{text}");
        assert!(text.contains("0 is out of range"), "{text}");
    }

    #[test]
    fn stamp_hostk8s_fixture_copy_loads_the_same_as_the_original() {
        // Loading must not depend on where the repository sits.
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&hostk8s_dir(), dir.path());
        let original = stamp::load(&hostk8s_stack("sample-app"), None).unwrap();
        let copy = stamp::load(&dir.path().join("software/stacks/sample-app"), None).unwrap();
        assert_eq!(names(&original), names(&copy));
        assert_eq!(original.graph, copy.graph);
    }
}
