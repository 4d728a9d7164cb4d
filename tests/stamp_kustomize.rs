//! Every `path` entry of the sample stamp builds with real kustomize (`kubectl kustomize`),
//! and the overlays kindling generates to run HostK8s Flux components on Argo CD build and
//! leave no Flux object behind.

mod common;

mod stamp {
    use std::path::Path;
    use std::process::Command;

    use super::common::{copy_tree, hostk8s_dir, repo_dir};
    use kindling::stamp::render::{Engine, RenderOptions, render};
    use kindling::stamp::{self, Source};

    /// kubectl is part of the test toolchain (scripts/test.sh installs it); a missing one is a
    /// failure, not a skip, or this check would silently never run.
    fn kustomize(dir: &Path) -> String {
        let out = Command::new("kubectl")
            .args(["kustomize"])
            .arg(dir)
            .output()
            .expect("kubectl is required for the kustomize tests (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn kinds(yaml: &str) -> Vec<String> {
        serde_yaml_ng::Deserializer::from_str(yaml)
            .map(|d| {
                let v: serde_json::Value = serde::Deserialize::deserialize(d).unwrap();
                v["kind"].as_str().unwrap_or_default().to_string()
            })
            .collect()
    }

    #[test]
    fn stamp_sample_path_entries_build_with_kustomize() {
        let s = stamp::load(&repo_dir().join("stamps/sample"), None).unwrap();
        let mut built = 0;
        for entry in &s.entries {
            if let Source::Path(p) = &entry.source {
                let out = kustomize(&p.host_dir);
                assert!(!kinds(&out).is_empty(), "{} built nothing", entry.name);
                assert!(
                    !kinds(&out).contains(&"Secret".to_string()),
                    "{} renders a Secret",
                    entry.name
                );
                built += 1;
            }
        }
        assert_eq!(built, 4);
    }

    #[test]
    fn stamp_hostk8s_argo_overlays_build_without_flux_objects() {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&hostk8s_dir(), dir.path());
        let mut overlays = 0;
        for stack in ["sample", "sample-app"] {
            let s = stamp::load(&dir.path().join("software/stacks").join(stack), None).unwrap();
            let opts = RenderOptions::standard(kindling::gitea::service_repo_url());
            let rendered = render(&s, Engine::Argo, &opts).unwrap();
            rendered
                .write_to(&dir.path().join(&opts.bundle_dir))
                .unwrap();
            for file in rendered
                .files
                .iter()
                .filter(|f| f.path.starts_with("argo/overlays/"))
            {
                let overlay = dir.path().join(".kindling").join(&file.path);
                let out = kustomize(overlay.parent().unwrap());
                let kinds = kinds(&out);
                assert!(
                    !kinds
                        .iter()
                        .any(|k| k == "HelmRelease" || k == "HelmRepository"),
                    "{}: {kinds:?}",
                    file.path
                );
                assert!(!kinds.is_empty(), "{} built nothing", file.path);
                overlays += 1;
            }
        }
        // certs/manager (Namespace), postgres (Namespace, ExternalSecret, pgAdmin, Ingress).
        assert_eq!(overlays, 2);
    }
}
