//! Loading HostK8s stacks unchanged: the real fixtures, and HostK8s-style edge cases.

mod common;

mod stamp {
    use super::common::{copy_tree, hostk8s_dir, hostk8s_stack, write};
    use kindling::stamp::{self, Role, SecretValue, Source, StampError, StampFormat};

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
        assert_eq!(redis.keys[1].value, SecretValue::Generate { length: 12 });
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

    #[test]
    fn stamp_hostk8s_secret_contract_with_unknown_generator_is_reported() {
        let dir = scratch(&flux_kustomization("a", "./a", ""));
        manifest_dir(dir.path(), "a");
        write(
            &dir.path().join("software/stacks/edge/hostk8s.secrets.yaml"),
            "apiVersion: hostk8s.io/v1\nkind: SecretContract\nmetadata: {name: x}\nspec:\n  secrets:\n    - name: s\n      namespace: n\n      data:\n        - {key: k, generate: dice}\n",
        );
        let text =
            problems(stamp::load(&dir.path().join("software/stacks/edge"), None).unwrap_err());
        assert!(
            text.contains("'dice' is not a generator kindling knows"),
            "{text}"
        );
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
