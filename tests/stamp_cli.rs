//! The `kindling stamp …` commands as a user runs them: text and JSON output, exit codes, and
//! the bad-stamp corpus in tests/data/bad-stamps/ (one file per mistake, each declaring with
//! `# expect:` lines the message it must produce).

mod common;

mod stamp {
    use assert_cmd::Command;
    use predicates::prelude::*;
    use serde_json::Value;

    use super::common::{hostk8s_stack, repo_dir};

    fn kindling() -> Command {
        let mut cmd = Command::cargo_bin("kindling").unwrap();
        cmd.current_dir(repo_dir());
        cmd
    }

    fn json(args: &[&str]) -> Value {
        let out = kindling()
            .args(args)
            .args(["--output", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    #[test]
    fn stamp_cli_list_shows_the_sample_stamp() {
        kindling()
            .args(["stamp", "list"])
            .assert()
            .success()
            .stdout(predicate::str::contains("sample").and(predicate::str::contains("kindling")));
        let listed = json(&["stamp", "list"]);
        let sample = &listed["stamps"][0];
        assert_eq!(sample["name"], "sample");
        assert_eq!(sample["components"], 4);
        assert_eq!(sample["applications"], 2);
    }

    #[test]
    fn stamp_cli_list_includes_hostk8s_stacks_of_a_source_tree() {
        let hostk8s = super::common::hostk8s_dir();
        let listed = json(&["stamp", "list", "--source", hostk8s.to_str().unwrap()]);
        let names: Vec<&str> = listed["stamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["sample", "sample-app"]);
        assert_eq!(listed["stamps"][0]["format"], "hostk8s");
    }

    /// HostK8s nests stacks (`software/stacks/foundation/postgres`) and names them by their
    /// path there (`make up foundation/postgres`): `stamp list` shows them so, and a nested
    /// name finds them. A name that climbs out of the stamp directories is refused.
    #[test]
    fn stamp_cli_nested_stacks_are_listed_and_found_by_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let hostk8s = super::common::hostk8s_dir();
        super::common::copy_tree(&hostk8s.join("software"), &dir.path().join("software"));
        super::common::copy_tree(
            &hostk8s.join("software/stacks/sample"),
            &dir.path().join("software/stacks/foundation/demo"),
        );
        let source = dir.path().to_str().unwrap();
        let listed = json(&["stamp", "list", "--source", source]);
        let names: Vec<&str> = listed["stamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["foundation/demo", "sample", "sample-app"],
            "{listed}"
        );
        // Run from elsewhere: the name is no path from the working directory.
        let other = tempfile::tempdir().unwrap();
        let found = kindling()
            .current_dir(other.path())
            .args([
                "stamp",
                "validate",
                "foundation/demo",
                "--source",
                source,
                "--output",
                "json",
            ])
            .output()
            .unwrap();
        assert!(found.status.success(), "{found:?}");
        let found: Value = serde_json::from_slice(&found.stdout).unwrap();
        assert_eq!(found["format"], "hostk8s", "{found}");
        let climbing = kindling()
            .current_dir(other.path())
            .args([
                "stamp",
                "validate",
                // It exists (software/stacks/sample): only the check refuses it.
                "foundation/../sample",
                "--source",
                source,
            ])
            .output()
            .unwrap();
        assert!(!climbing.status.success());
    }

    /// README: a stamp name is looked up in `stamps/` first, then `software/stacks/`.
    #[test]
    fn stamp_cli_name_found_in_both_places_is_the_one_in_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let hostk8s = super::common::hostk8s_dir();
        super::common::copy_tree(&hostk8s.join("software"), &dir.path().join("software"));
        super::common::copy_tree(
            &repo_dir().join("stamps/sample"),
            &dir.path().join("stamps/sample"),
        );
        let source = dir.path().to_str().unwrap();
        let both = json(&["stamp", "validate", "sample", "--source", source]);
        assert_eq!(both["format"], "kindling", "{both}");
        std::fs::remove_dir_all(dir.path().join("stamps")).unwrap();
        let stack = json(&["stamp", "validate", "sample", "--source", source]);
        assert_eq!(stack["format"], "hostk8s", "{stack}");
    }

    /// README: "`cargo test stamp` runs every stamp test". cargo's filter matches the test's
    /// path, so every stamp test must sit below a `stamp` module: the library's `stamp`
    /// module (src/stamp/) and `mod stamp` in each tests/stamp_*.rs, holding all its tests.
    #[test]
    fn stamp_every_stamp_test_is_under_a_stamp_module() {
        let lib = std::fs::read_to_string(repo_dir().join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("\npub mod stamp;"),
            "src/lib.rs: no `pub mod stamp;`"
        );
        let mut files = 0;
        for entry in std::fs::read_dir(repo_dir().join("tests")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !(name.starts_with("stamp_") && name.ends_with(".rs")) {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            let module = text
                .find("\nmod stamp {")
                .unwrap_or_else(|| panic!("{name}: no `mod stamp {{`"));
            // Every test attribute comes after it, inside it (it is the file's last item).
            for marker in ["#[test]", "#[tokio::test", "proptest!"] {
                if let Some(first) = text.find(marker) {
                    assert!(first > module, "{name}: a test before `mod stamp`");
                }
            }
            // rustfmt puts the module's closing brace alone at column 0: nothing follows it.
            let close = text[module..]
                .find("\n}\n")
                .unwrap_or_else(|| panic!("{name}: `mod stamp` never closes"));
            assert!(
                text[module + close + 3..].trim().is_empty(),
                "{name}: items after `mod stamp`"
            );
        }
        assert!(files >= 5, "found {files} stamp test files");
    }

    #[test]
    fn stamp_cli_validate_sample_text_and_json() {
        kindling()
            .args(["stamp", "validate", "sample"])
            .assert()
            .success()
            .stdout("stamp 'sample' is valid: 4 components, 2 applications, 3 waves, 1 bootstrap secret\n");
        let v = json(&["stamp", "validate", "sample"]);
        assert_eq!(v["valid"], true);
        assert_eq!(v["waves"], 3);
        assert_eq!(v["format"], "kindling");
    }

    #[test]
    fn stamp_cli_validate_hostk8s_stack_by_path() {
        let stack = hostk8s_stack("sample-app");
        kindling()
            .args(["stamp", "validate", stack.to_str().unwrap()])
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "2 components, 2 applications, 3 waves, 3 bootstrap secrets",
            ));
    }

    /// A stamp of its own, one bootstrap secret with `keys` (YAML flow items, one a line).
    fn stamp_with_keys(keys: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let keys: String = keys.iter().map(|k| format!("        - {k}\n")).collect();
        super::common::write(
            &dir.path().join("stamp.yaml"),
            &format!(
                "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {{name: s}}\nspec:\n  secrets:\n    - name: db\n      namespace: db\n      keys:\n{keys}"
            ),
        );
        dir
    }

    #[test]
    fn stamp_cli_secret_generator_types_of_a_native_stamp_validate() {
        let dir = stamp_with_keys(&[
            "{key: a, generate: {length: 24}}",
            "{key: b, generate: {}}",
            "{key: c, generate: {type: password, length: 16}}",
            "{key: d, generate: {type: token}}",
            "{key: e, generate: {type: hex, length: 9}}",
            "{key: f, generate: {type: uuid}}",
            "{key: g, generate: {type: fernet}}",
            "{key: h, generate: {type: base64, length: 64}}",
            "{key: i, generate: {type: unambiguous}}",
        ]);
        let v = json(&["stamp", "validate", dir.path().to_str().unwrap()]);
        assert_eq!(v["valid"], true);
        assert_eq!(v["warnings"], serde_json::json!([]));
    }

    #[test]
    fn stamp_cli_secret_generator_unknown_type_in_a_native_stamp_is_an_error_listing_the_known_types()
     {
        let dir = stamp_with_keys(&["{key: k, generate: {type: random, length: 24}}"]);
        let out = kindling()
            .args(["stamp", "validate", "--output", "json"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let problems = v["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(p["file"].as_str().unwrap().ends_with("stamp.yaml"), "{p}");
        assert_eq!(p["field"], "spec.secrets[db].keys[k].generate.type");
        assert_eq!(p["message"], "'random' is not a generator kindling knows");
        assert_eq!(
            p["help"],
            "known types: unambiguous, password, token, hex, uuid, fernet, base64 (without `type`: unambiguous)"
        );
        // A misspelt field is a schema mistake naming the fields `generate` knows.
        let dir = stamp_with_keys(&["{key: k, generate: {kind: hex}}"]);
        kindling()
            .args(["stamp", "validate"])
            .arg(dir.path())
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "unknown field `kind`, expected `type` or `length`",
            ));
    }

    /// A HostK8s contract's unknown type loads (HostK8s makes a token of it), with a warning on
    /// stderr naming the file and field, and in the JSON document.
    #[test]
    fn stamp_cli_secret_generator_unknown_type_in_a_hostk8s_contract_warns() {
        let dir = tempfile::tempdir().unwrap();
        super::common::copy_tree(&super::common::hostk8s_dir(), dir.path());
        let stack = dir.path().join("software/stacks/sample-app");
        super::common::write(
            &stack.join("hostk8s.secrets.yaml"),
            "apiVersion: hostk8s.io/v1\nkind: SecretContract\nmetadata: {name: sample-app}\nspec:\n  secrets:\n    - name: app\n      namespace: app\n      data:\n        - {key: fernet-key, generate: fernet}\n        - {key: seed, generate: dice}\n",
        );
        let out = kindling()
            .args(["stamp", "validate"])
            .arg(&stack)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        // One about the contract (`fernet` is kindling's own and made as asked); the stack's
        // health checks bring the engines' warnings too.
        assert_eq!(
            stderr.matches("hostk8s.secrets.yaml").count(),
            1,
            "{stderr}"
        );
        assert!(
            stderr.contains("warning: ")
                && stderr.contains("hostk8s.secrets.yaml: spec.secrets[app].data[seed].generate: 'dice' is not a generator HostK8s or kindling knows: a token (A-Za-z0-9, 32 characters) is generated instead, as HostK8s does"),
            "{stderr}"
        );
        assert!(stderr.contains("help: known types: "), "{stderr}");
        let v = json(&["stamp", "validate", stack.to_str().unwrap()]);
        let about_secrets: Vec<&str> = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .filter(|w| w.contains("hostk8s.secrets.yaml"))
            .collect();
        assert_eq!(about_secrets.len(), 1, "{v}");
        assert!(
            about_secrets[0].contains("spec.secrets[app].data[seed].generate: 'dice'"),
            "{}",
            about_secrets[0]
        );
    }

    #[test]
    fn stamp_cli_unknown_stamp_names_the_known_ones() {
        kindling()
            .args(["stamp", "validate", "nope"])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("stamp 'nope' not found")
                    .and(predicate::str::contains("known stamps: sample")),
            );
    }

    #[test]
    fn stamp_cli_render_flux_prints_yaml_documents_with_their_files() {
        let out = kindling()
            .args(["stamp", "render", "sample", "--engine", "flux"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("# Source: .kindling/flux/stamp/api.yaml"));
        let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let kinds: Vec<String> = documents
            .iter()
            .map(|v| v["kind"].as_str().unwrap().to_string())
            .collect();
        // The root, one per entry, and one `<entry>.health` per entry that waits and names
        // health checks (all six of the sample's).
        let flux: Vec<&str> = documents
            .iter()
            .filter(|v| v["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1")
            .map(|v| v["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(flux.len(), 13, "{flux:?}");
        assert!(flux.contains(&"api.health"), "{flux:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "HelmRelease").count(), 2);
        assert_eq!(kinds.iter().filter(|k| *k == "GitRepository").count(), 1);
    }

    #[test]
    fn stamp_cli_render_argo_json_and_repo_url_input() {
        let v = json(&[
            "stamp",
            "render",
            "sample",
            "--engine",
            "argo",
            "--repo-url",
            "http://git.example/x.git",
            "--branch",
            "dev",
        ]);
        assert_eq!(v["engine"], "argo");
        // argocd-cm first: Applications have health before the root's first sync.
        assert_eq!(
            v["files"][0]["documents"][0]["metadata"]["name"],
            "argocd-cm"
        );
        let root = &v["files"][0]["documents"][1];
        assert_eq!(root["metadata"]["name"], "kindling-sample");
        assert_eq!(
            root["spec"]["source"]["repoURL"],
            "http://git.example/x.git"
        );
        assert_eq!(root["spec"]["source"]["targetRevision"], "dev");
    }

    #[test]
    fn stamp_cli_render_out_writes_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        kindling()
            .args(["stamp", "render", "sample", "--engine", "argo", "--out"])
            .arg(dir.path())
            .assert()
            .success()
            .stdout(predicate::str::contains("wrote 7 files"));
        assert!(dir.path().join("argo/apps/website.yaml").is_file());
        assert!(dir.path().join("argo/bootstrap.yaml").is_file());
    }

    #[test]
    fn stamp_cli_render_hostk8s_for_argo_prints_translation_notes() {
        let stack = hostk8s_stack("sample");
        kindling()
            .args([
                "stamp",
                "render",
                stack.to_str().unwrap(),
                "--engine",
                "argo",
            ])
            .assert()
            .success()
            .stdout(predicate::str::contains("chart: cert-manager"))
            .stderr(predicate::str::contains(
                "note: argo: healthChecks of component-certs-manager, component-certs-ca, app-sample are not sent to Argo CD",
            ));
    }

    /// The Argo CD render says what it does with health checks once, not once per entry.
    #[test]
    fn stamp_cli_render_for_argo_says_each_note_once() {
        let out = kindling()
            .args(["stamp", "render", "sample", "--engine", "argo"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(said.matches("healthChecks").count(), 1, "{said}");
        assert!(
            said.contains("healthChecks of certs, certs-issuer, ingress, database, api, website"),
            "{said}"
        );
    }

    /// `stamp validate` warns where an engine will not do what the stamp asks, for the engine
    /// it is asked about (Flux, as `env create`, by default): Flux ignores a HostK8s stack's
    /// healthChecks under `wait: true`; Argo CD is sent none. `stamp render` says the same.
    #[test]
    fn stamp_cli_validate_warns_what_an_engine_cannot_honour() {
        let stack = hostk8s_stack("sample");
        let warnings = |args: &[&str]| -> Vec<String> {
            let out = kindling().args(args).output().unwrap();
            assert!(out.status.success(), "{out:?}");
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            report["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap().to_string())
                .collect()
        };
        let stack = stack.to_str().unwrap();
        let flux = warnings(&["stamp", "validate", stack, "--output", "json"]);
        assert!(
            flux.iter().any(|w| w.starts_with(
                "flux: healthChecks of component-certs-manager, component-certs-ca, app-sample gate nothing"
            )),
            "{flux:?}"
        );
        assert!(!flux.iter().any(|w| w.starts_with("argo: ")), "{flux:?}");
        let argo = warnings(&[
            "stamp", "validate", stack, "--engine", "argo", "--output", "json",
        ]);
        assert!(argo.iter().any(|w| w.starts_with("argo: ")), "{argo:?}");
        assert!(!argo.iter().any(|w| w.starts_with("flux: ")), "{argo:?}");
        // HostK8s' sample-app has keys mis-indented under its kustomizations' metadata:
        // kustomize (Argo CD) refuses those files, Flux drops the keys.
        let app = hostk8s_stack("sample-app");
        let app = app.to_str().unwrap();
        let flux = warnings(&["stamp", "validate", app, "--output", "json"]);
        let argo = warnings(&[
            "stamp", "validate", app, "--engine", "argo", "--output", "json",
        ]);
        let about = |ws: &[String], prefix: &str, what: &str| {
            ws.iter()
                .filter(|w| w.starts_with(prefix) && w.contains(what))
                .count()
        };
        assert_eq!(
            about(
                &argo,
                "argo: ",
                "is not a kustomization field; Argo CD's kustomize build refuses"
            ),
            4,
            "{argo:?}"
        );
        assert!(
            argo.iter()
                .any(|w| w.contains("sample-app/db/kustomization.yaml: metadata.hostk8s.app")),
            "{argo:?}"
        );
        assert_eq!(about(&flux, "flux: ", "Flux drops it"), 4, "{flux:?}");
        // A kindling stamp's checks are honoured by Flux: nothing to say.
        let out = kindling()
            .args(["stamp", "validate", "sample"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!said.contains("warning:"), "{said}");
        // The render says it too.
        let out = kindling()
            .args(["stamp", "render", stack, "--engine", "flux"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("warning: flux: healthChecks of component-certs-manager"),
            "{said}"
        );
    }

    #[test]
    fn stamp_cli_graph_text_dot_and_json() {
        kindling()
            .args(["stamp", "graph", "sample"])
            .assert()
            .success()
            .stdout(
                predicate::str::starts_with(
                    "stamp sample: 6 entries in 3 waves (each wave waits for the one before)\nwave 0\n",
                )
                .and(predicate::str::contains("wave 2\n  api"))
                .and(predicate::str::contains("<- certs-issuer, ingress, database"))
                .and(predicate::str::contains(
                    "certs         component    helm cert-manager v1.21.1 (https://charts.jetstack.io)",
                ))
                .and(predicate::str::contains(
                    "database      component    stamps/sample/components/database",
                )),
            );
        kindling()
            .args(["stamp", "graph", "sample", "--format", "dot"])
            .assert()
            .success()
            .stdout(
                predicate::str::starts_with("digraph \"sample\" {")
                    .and(predicate::str::contains("\"certs\" -> \"certs-issuer\";")),
            );
        let g = json(&["stamp", "graph", "sample"]);
        let entries = g["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 6);
        let api = entries.iter().find(|e| e["name"] == "api").unwrap();
        assert_eq!(api["wave"], 2);
        assert_eq!(api["source"]["path"], "stamps/sample/applications/api");
        // JSON order is a valid topological order.
        let position = |n: &str| entries.iter().position(|e| e["name"] == n).unwrap();
        assert!(position("certs") < position("certs-issuer"));
        assert!(position("certs-issuer") < position("api"));
    }

    #[test]
    fn stamp_cli_bad_stamp_corpus_reports_each_mistake() {
        let dir = repo_dir().join("tests/data/bad-stamps");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let expected: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# expect: "))
                .collect();
            assert!(
                !expected.is_empty(),
                "{} has no `# expect:` line",
                path.display()
            );
            let out = kindling()
                .args(["stamp", "validate"])
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
            assert!(
                stderr.starts_with("error: "),
                "{}: {stderr}",
                path.display()
            );
            for e in expected {
                assert!(
                    stderr.contains(e),
                    "{}: expected {e:?} in:\n{stderr}",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} bad stamps");
    }

    #[test]
    fn stamp_cli_invalid_stamp_json_lists_problems_on_stdout() {
        let path = repo_dir().join("tests/data/bad-stamps/unknown-dependency.yaml");
        let out = kindling()
            .args(["stamp", "validate", "--output", "json"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["exitCode"], 2);
        let problem = &v["problems"][0];
        assert_eq!(problem["entry"], "api");
        assert_eq!(problem["field"], "dependsOn");
        assert!(
            problem["file"]
                .as_str()
                .unwrap()
                .ends_with("unknown-dependency.yaml")
        );
    }

    #[test]
    fn stamp_cli_env_create_with_an_unknown_stamp_is_bad_input() {
        let data = tempfile::tempdir().unwrap();
        kindling()
            .env("KINDLING_DATA_DIR", data.path())
            .args(["env", "create", "--stamp", "no-such-stamp", "--dry-run"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("no-such-stamp"));
        assert!(!data.path().join("envs").exists(), "nothing written");
    }

    #[test]
    fn stamp_cli_usage_errors_exit_2_and_completions_work() {
        kindling()
            .args(["stamp", "render", "sample", "--engine", "nope"])
            .assert()
            .code(2);
        kindling()
            .args(["completions", "bash"])
            .assert()
            .success()
            .stdout(predicate::str::contains("kindling"));
    }

    /// Runs the binary on `args`, killed after `seconds`: `None` when it had to be killed.
    fn bounded(args: &[&str], dir: &std::path::Path, seconds: u64) -> Option<std::process::Output> {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(child.wait_with_output().unwrap())
    }

    /// Repository content cannot hang kindling or exhaust its memory: a FIFO, a symlink to
    /// /dev/zero, a symlink loop and a 200,000-level nested YAML each end in a clear error
    /// at once, and a mistyped stamp name lists the stamps without parsing any of them.
    /// "No stamp.yaml" only when there is none: a stamp kindling may not read says "Permission
    /// denied", a stamp.yaml in a link loop says so, each naming the path (exit 2).
    #[test]
    fn stamp_cli_unreadable_stamp_is_not_reported_missing() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(root.join("stamps/locked")).unwrap();
        std::fs::create_dir_all(root.join("stamps/looped")).unwrap();
        std::os::unix::fs::symlink("stamp.yaml", root.join("stamps/looped/stamp.yaml")).unwrap();
        let looped = root.join("stamps/looped/stamp.yaml");
        let said = |out: std::process::Output| {
            assert_eq!(out.status.code(), Some(2));
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        let looped_said = said(
            std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
                .args(["stamp", "validate", "looped"])
                .current_dir(root)
                .output()
                .unwrap(),
        );
        assert!(
            looped_said.contains(&format!("{}: cannot read", looped.display()))
                && !looped_said.contains("not a stamp"),
            "{looped_said}"
        );
        // Permissions bind root too little to test as root: run as nobody then.
        std::fs::set_permissions(root.join("stamps"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::set_permissions(
            root.join("stamps/locked"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let as_user = |args: &[&str]| {
            let bin = env!("CARGO_BIN_EXE_kindling");
            let mut command = if super::common::is_root() {
                let mut c = std::process::Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
                c
            } else {
                std::process::Command::new(bin)
            };
            command
                .args(args)
                .current_dir(root)
                .env("HOME", root)
                .output()
                .unwrap()
        };
        let locked = root.join("stamps/locked").display().to_string();
        for args in [
            &["stamp", "validate", "locked"][..],
            &["stamp", "validate", "stamps/locked"],
        ] {
            let text = said(as_user(args));
            assert!(
                text.contains(&format!("{locked}: cannot read: Permission denied"))
                    && !text.contains("not a stamp"),
                "{args:?}: {text}"
            );
        }
        // The stamps directory itself unreadable: not "stamp not found".
        std::fs::set_permissions(root.join("stamps"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        let text = said(as_user(&["stamp", "validate", "locked"]));
        assert!(
            text.contains("Permission denied") && !text.contains("not found"),
            "{text}"
        );
        std::fs::set_permissions(root.join("stamps"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }

    #[test]
    fn stamp_hostile_files_end_in_clear_errors_within_a_time_bound() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let stamp = |name: &str, extra: &str| {
            super::common::write(
                &root.join(format!("stamps/{name}/stamp.yaml")),
                &format!(
                    "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {{name: {name}}}\nspec:\n  components:\n    - {{name: app, path: app}}\n{extra}"
                ),
            );
            std::fs::create_dir_all(root.join(format!("stamps/{name}/app"))).unwrap();
        };
        // A FIFO among the manifests (opening it for reading would wait for a writer forever).
        stamp("fifo", "");
        let fifo = root.join("stamps/fifo/app/pipe.yaml");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // A manifest that is a symlink to /dev/zero (endless).
        stamp("zero", "");
        std::os::unix::fs::symlink("/dev/zero", root.join("stamps/zero/app/zero.yaml")).unwrap();
        // A symlink loop in the entry directory, beside a real manifest.
        stamp("loop", "");
        super::common::write(
            &root.join("stamps/loop/app/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
        );
        std::os::unix::fs::symlink("..", root.join("stamps/loop/app/up")).unwrap();
        // 200,000 levels of nesting in stamp.yaml itself.
        let bomb = format!("x: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        stamp("deep", &bomb);
        for (name, says) in [
            ("fifo", "not a regular file"),
            ("zero", "leaves the source tree"),
            ("deep", "nested deeper than 64 levels"),
        ] {
            let out = bounded(&["stamp", "validate", name], root, 20)
                .unwrap_or_else(|| panic!("{name}: still running after 20 s"));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
            assert!(stderr.contains(says), "{name}: {stderr}");
        }
        let looped =
            bounded(&["stamp", "validate", "loop"], root, 20).expect("loop: still running");
        assert!(
            looped.status.success(),
            "{}",
            String::from_utf8_lossy(&looped.stderr)
        );
        // The hint for a mistyped name: the names, none of them parsed (the bomb would take
        // minutes), in one listing.
        let hint = bounded(&["stamp", "validate", "fiffo"], root, 20).expect("hint: still running");
        let stderr = String::from_utf8_lossy(&hint.stderr);
        assert!(
            stderr.contains("known stamps: deep, fifo, loop, zero"),
            "{stderr}"
        );
    }

    /// Text from a repository reaches the terminal escaped: an ESC sequence in a stamp's
    /// description (it could clear the screen or retitle the terminal) is shown, not run.
    #[test]
    fn stamp_list_and_graph_escape_control_characters() {
        let dir = tempfile::tempdir().unwrap();
        super::common::write(
            &dir.path().join("stamps/esc/stamp.yaml"),
            "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {name: esc, description: \"clear\\e[2Jscreen\"}\nspec:\n  components:\n    - {name: app, path: \"app\\e[31m\"}\n",
        );
        std::fs::create_dir_all(dir.path().join("stamps/esc/app\u{1b}[31m")).unwrap();
        let source = dir.path().to_str().unwrap();
        for args in [
            &["stamp", "list", "--source", source][..],
            &["stamp", "graph", "esc", "--source", source],
        ] {
            let out = kindling().args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(!text.contains('\u{1b}'), "{args:?}: {text:?}");
            assert!(text.contains("\\u{1b}["), "{args:?}: {text}");
        }
    }

    /// `stamp render --out DIR` leaves exactly this render in DIR: files an earlier render
    /// wrote and this one does not are removed; a non-empty DIR no render made is refused
    /// without --force (and then its other files are left alone).
    #[test]
    fn stamp_render_out_holds_exactly_this_render() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let render = |engine: &str, extra: &[&str]| {
            let mut args = vec!["stamp", "render", "sample", "--engine", engine, "--out"];
            args.push(out.to_str().unwrap());
            args.extend(extra);
            kindling().args(&args).output().unwrap()
        };
        let listed = || -> Vec<String> {
            let mut files = Vec::new();
            let mut pending = vec![out.clone()];
            while let Some(d) = pending.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        pending.push(p);
                    } else {
                        files.push(p.strip_prefix(&out).unwrap().display().to_string());
                    }
                }
            }
            files.sort();
            files
        };
        assert!(render("flux", &[]).status.success());
        let flux = listed();
        assert!(flux.iter().any(|f| f.starts_with("flux/")), "{flux:?}");
        // Argo CD into the same directory: no Flux file is left over.
        assert!(render("argo", &[]).status.success());
        let argo = listed();
        assert!(argo.iter().any(|f| f.starts_with("argo/")), "{argo:?}");
        assert!(
            !argo
                .iter()
                .any(|f| flux.contains(f) && f != ".kindling-rendered"),
            "stale: {argo:?}"
        );
        // A directory of someone else's files: refused, then allowed with --force.
        let theirs = dir.path().join("theirs");
        std::fs::create_dir_all(&theirs).unwrap();
        std::fs::write(theirs.join("keep.txt"), "mine").unwrap();
        let render_into_theirs = |extra: &[&str]| {
            kindling()
                .args(["stamp", "render", "sample", "--engine", "flux", "--out"])
                .arg(&theirs)
                .args(extra)
                .output()
                .unwrap()
        };
        let refused = render_into_theirs(&[]);
        assert_eq!(refused.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
        let forced = render_into_theirs(&["--force"]);
        assert!(forced.status.success());
        assert_eq!(
            std::fs::read_to_string(theirs.join("keep.txt")).unwrap(),
            "mine"
        );
    }

    /// Paths that leave the source tree are refused before they are read: a symlinked entry
    /// directory, a symlinked manifest, a symlinked stamp.yaml and a kustomization resource
    /// `../../../../etc/ssl`. The engine sees only what is pushed; so does the validator.
    #[test]
    fn stamp_paths_that_leave_the_source_tree_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        super::common::write(
            &outside.path().join("cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: outside}\n",
        );
        let root = dir.path().join("repo");
        let stamp = |name: &str| {
            super::common::write(
                &root.join(format!("stamps/{name}/stamp.yaml")),
                &format!(
                    "apiVersion: kindling.dev/v1alpha1\nkind: Stamp\nmetadata: {{name: {name}}}\nspec:\n  components:\n    - {{name: app, path: app}}\n"
                ),
            );
        };
        stamp("linkdir");
        std::os::unix::fs::symlink(outside.path(), root.join("stamps/linkdir/app")).unwrap();
        stamp("linkfile");
        std::fs::create_dir_all(root.join("stamps/linkfile/app")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("cm.yaml"),
            root.join("stamps/linkfile/app/cm.yaml"),
        )
        .unwrap();
        stamp("dotdot");
        super::common::write(
            &root.join("stamps/dotdot/app/kustomization.yaml"),
            "resources: [../../../../../../../../etc/ssl]\n",
        );
        std::fs::create_dir_all(root.join("stamps/linkstamp")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("cm.yaml"),
            root.join("stamps/linkstamp/stamp.yaml"),
        )
        .unwrap();
        for name in ["linkdir", "linkfile", "dotdot", "linkstamp"] {
            let out = kindling()
                .args([
                    "stamp",
                    "validate",
                    name,
                    "--source",
                    root.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
            assert!(
                stderr.contains("leaves the source tree"),
                "{name}: {stderr}"
            );
        }
    }
}
