//! The stamp loader never panics, whatever the input: arbitrary text, and mutations of a valid
//! stamp. It returns a stamp or an error, nothing else.

mod stamp {
    use kindling::stamp::StampError;
    use proptest::prelude::*;

    const VALID: &str = "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {name: s}\nspec:\n  ignore: ['/*']\n  components:\n    - {name: a, path: m, dependsOn: [b], healthChecks: [{kind: Secret, name: x}]}\n    - {name: b, helm: {repo: 'https://x', chart: c, version: '1.0.0', values: {k: [1, 2]}}}\n  applications:\n    - {name: c, path: m, timeout: 5m, dependsOn: [a]}\n  secrets:\n    - {name: s, namespace: n, keys: [{key: p, generate: {length: 9}}]}\n";

    fn load(text: &str) -> Result<kindling::stamp::Stamp, kindling::stamp::StampError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("stamps/s/m")).unwrap();
        std::fs::write(dir.path().join("stamps/s/stamp.yaml"), text).unwrap();
        kindling::stamp::load(&dir.path().join("stamps/s"), None)
    }

    #[test]
    fn stamp_fuzz_baseline_is_valid() {
        load(VALID).unwrap();
    }

    /// The case another random run found (a `&` line cut into the stamp gives a mapping key
    /// that is empty or not a string): the problem still names a field.
    #[test]
    fn stamp_key_that_is_empty_or_not_a_string_is_named() {
        for key in ["\"\"", "~", "7"] {
            let text = format!("{VALID}{key}: 1\n");
            match load(&text) {
                Err(StampError::Invalid { problems, .. }) => {
                    let p = problems
                        .iter()
                        .find(|p| p.message.starts_with("unknown field"))
                        .unwrap_or_else(|| panic!("{problems:?}"));
                    assert!(!p.field.is_empty(), "{p:?}");
                    assert!(!p.message.contains("``"), "{p:?}");
                }
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    /// The case a random run found (`metadata: {name}`, the name cut away): the error names
    /// the stamp by its directory, never by an empty name.
    #[test]
    fn stamp_without_a_name_is_named_by_its_directory() {
        let mut text = VALID.to_string();
        text.replace_range(61..64, "");
        assert!(text.contains("metadata: {name}"), "{text}");
        match load(&text) {
            Err(StampError::Invalid { stamp, problems }) => {
                assert_eq!(stamp, "s");
                assert!(!problems.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn stamp_loader_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
            let _ = load(&text);
        }

        #[test]
        fn stamp_loader_never_panics_on_mutated_stamps(
            cut in 0usize..VALID.len(),
            insert in "[-:{}\\[\\], a-z0-9'\"\\n#&*!|>]{0,12}",
            drop in 0usize..20,
        ) {
            let mut text = VALID.to_string();
            let cut = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            let end = (cut + drop).min(text.len());
            let end = (end..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
            text.replace_range(cut..end, &insert);
            match load(&text) {
                Ok(s) => prop_assert!(s.entries.len() <= 3),
                // A YAML error points into the stamp file, at a line it has.
                Err(StampError::Parse { file, line, message, .. }) => {
                    prop_assert!(file.ends_with("stamps/s/stamp.yaml"), "{}", file.display());
                    prop_assert!(line <= text.lines().count() + 1, "line {line} of {text:?}");
                    prop_assert!(!message.is_empty());
                }
                // Semantic problems each name their file, field and a fix.
                Err(StampError::Invalid { stamp, problems }) => {
                    prop_assert!(!stamp.is_empty());
                    prop_assert!(!problems.is_empty());
                    for p in &problems {
                        prop_assert!(p.file.ancestors().any(|a| a.ends_with("stamps/s")), "{p:?}");
                        prop_assert!(!p.field.is_empty() && !p.message.is_empty(), "{p:?}");
                        prop_assert!(!p.help.is_empty(), "no help for {p:?}");
                    }
                }
                Err(other) => prop_assert!(false, "unexpected error for a stamp file: {other}"),
            }
        }

        #[test]
        fn stamp_hostk8s_loader_never_panics_on_arbitrary_stacks(text in "[-:{}\\[\\], a-zA-Z0-9./${}\\n]{0,300}") {
            let dir = tempfile::tempdir().unwrap();
            let stack = dir.path().join("software/stacks/x");
            std::fs::create_dir_all(&stack).unwrap();
            let header = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n";
            std::fs::write(stack.join("stack.yaml"), format!("{header}{text}")).unwrap();
            let _ = kindling::stamp::load(&stack, None);
        }
    }

    /// One node of a generated entry directory: a file of arbitrary bytes, a FIFO, or a
    /// symlink (to a parent, to a sibling, outside the tree, to /dev/zero, or dangling).
    #[derive(Debug, Clone)]
    enum Node {
        File(String, Vec<u8>),
        Fifo(String),
        Link(String, u8),
        Dir(String, Vec<Node>),
    }

    fn node() -> impl Strategy<Value = Node> {
        let name = "[a-z]{1,6}(\\.yaml)?";
        let leaf = prop_oneof![
            (name, proptest::collection::vec(any::<u8>(), 0..200))
                .prop_map(|(n, b)| Node::File(n, b)),
            name.prop_map(Node::Fifo),
            (name, 0u8..5).prop_map(|(n, t)| Node::Link(n, t)),
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            ("[a-z]{1,6}", proptest::collection::vec(inner, 0..4))
                .prop_map(|(n, c)| Node::Dir(n, c))
        })
    }

    fn build(dir: &std::path::Path, nodes: &[Node], outside: &std::path::Path) {
        for n in nodes {
            match n {
                Node::File(name, bytes) => {
                    let _ = std::fs::write(dir.join(name), bytes);
                }
                Node::Fifo(name) => {
                    let _ = std::process::Command::new("mkfifo")
                        .arg(dir.join(name))
                        .status();
                }
                Node::Link(name, target) => {
                    let to = match target {
                        0 => std::path::PathBuf::from(".."),
                        1 => std::path::PathBuf::from("."),
                        2 => outside.to_path_buf(),
                        3 => std::path::PathBuf::from("/dev/zero"),
                        _ => std::path::PathBuf::from("nowhere/at/all"),
                    };
                    let _ = std::os::unix::fs::symlink(to, dir.join(name));
                }
                Node::Dir(name, children) => {
                    let d = dir.join(name);
                    if std::fs::create_dir_all(&d).is_ok() {
                        build(&d, children, outside);
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Arbitrary entry directories (files, FIFOs, symlinks) never make the loader panic
        /// or hang: each load ends, a stamp or an error, within a time bound.
        #[test]
        fn stamp_loader_ends_on_arbitrary_trees(nodes in proptest::collection::vec(node(), 0..6)) {
            let dir = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            let entry = dir.path().join("stamps/s/m");
            std::fs::create_dir_all(&entry).unwrap();
            build(&entry, &nodes, outside.path());
            std::fs::write(dir.path().join("stamps/s/stamp.yaml"), VALID).unwrap();
            let stamp_dir = dir.path().join("stamps/s");
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = kindling::stamp::load(&stamp_dir, None);
                let _ = done.send(());
            });
            prop_assert!(
                finished.recv_timeout(std::time::Duration::from_secs(20)).is_ok(),
                "the loader did not finish on {:?}",
                nodes
            );
        }
    }
}
