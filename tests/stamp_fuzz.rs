//! The stamp loader never panics, whatever the input: arbitrary text, and mutations of a valid
//! stamp. It returns a stamp or an error, nothing else.

mod stamp {
    use proptest::prelude::*;

    const VALID: &str = "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {name: s}\nspec:\n  ignore: ['/*']\n  components:\n    - {name: a, path: m, dependsOn: [b], healthChecks: [{kind: Secret, name: x}]}\n    - {name: b, helm: {repo: 'https://x', chart: c, version: '1', values: {k: [1, 2]}}}\n  applications:\n    - {name: c, path: m, timeout: 5m, dependsOn: [a]}\n  secrets:\n    - {name: s, namespace: n, keys: [{key: p, generate: {length: 9}}]}\n";

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
                Err(e) => prop_assert!(!e.to_string().is_empty()),
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
}
