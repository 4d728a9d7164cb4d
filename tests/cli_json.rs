//! README: "Every command takes `--output json` (one JSON document on stdout; errors too)".
//! One harmless invocation of every subcommand, and the ways a command line goes wrong, each
//! checked for exactly one JSON document on stdout that agrees with the exit code.

mod common;

mod cli {
    use serde_json::Value;

    use super::common::repo_dir;

    /// Every JSON value on stdout, in order.
    fn documents(stdout: &[u8]) -> Vec<Value> {
        serde_json::Deserializer::from_slice(stdout)
            .into_iter::<Value>()
            .map(|d| {
                d.unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(stdout)))
            })
            .collect()
    }

    #[test]
    fn cli_every_command_prints_one_json_document_errors_too() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cache = dir.path().join("cache");
        // Commands that only read, plan or fail before doing anything (`cache prune` is left
        // out: the caches are shared by everything on this Docker engine).
        let cases: &[(&[&str], Option<u8>)] = &[
            (&["version"], Some(0)),
            (&["doctor"], None),
            (&["completions", "bash"], Some(0)),
            (&["ca", "show"], Some(0)),
            (&["ca", "export"], Some(0)),
            (&["ca", "trust", "--dry-run"], Some(0)),
            (&["ca", "untrust", "--dry-run"], Some(0)),
            (&["cache", "status"], None),
            (&["stamp", "list"], Some(0)),
            (&["stamp", "validate", "sample"], Some(0)),
            (&["stamp", "render", "sample", "--engine", "argo"], Some(0)),
            (&["stamp", "graph", "sample"], Some(0)),
            (&["stamp", "validate", "no-such-stamp"], Some(2)),
            (&["cluster", "config"], Some(0)),
            (
                &[
                    "engine",
                    "manifests",
                    "--engine",
                    "flux",
                    "--manifests-dir",
                    "/nonexistent",
                ],
                Some(1),
            ),
            (&["env", "list"], None),
            (&["env", "create", "dev", "--dry-run"], None),
            (&["env", "status", "nope"], Some(1)),
            (&["env", "sync", "nope"], Some(1)),
            (&["env", "watch", "nope"], Some(1)),
            (&["env", "approve", "nope"], Some(1)),
            (&["env", "restart", "nope"], Some(1)),
            (&["env", "kubeconfig", "nope"], Some(1)),
            // Command lines clap refuses are errors like any other: exit 2, one document.
            (&["stamp", "render", "sample", "--engine", "nope"], Some(2)),
            (&["no-such-command"], Some(2)),
            (&["env", "create", "--timeout", "soon"], Some(2)),
        ];
        for (args, expected) in cases {
            for flag in [
                &["--output", "json"][..],
                &["--output=json"],
                &["-o", "json"],
            ] {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
                    .args(*args)
                    .args(flag)
                    .current_dir(repo_dir())
                    .env("KINDLING_DATA_DIR", &data)
                    .env("KINDLING_CACHE_DIR", &cache)
                    .env("CI", "true")
                    .output()
                    .unwrap();
                let docs = documents(&out.stdout);
                assert_eq!(docs.len(), 1, "{args:?}: {} documents", docs.len());
                let code = out.status.code().unwrap();
                if let Some(expected) = expected {
                    assert_eq!(
                        code,
                        i32::from(*expected),
                        "{args:?}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let doc = &docs[0];
                if code == 0 {
                    // Every document has the same top-level `ok` (doctor's follows its findings).
                    assert!(doc["ok"].is_boolean(), "{args:?}: {doc}");
                    if args[0] != "doctor" {
                        assert_eq!(doc["ok"], true, "{args:?}: {doc}");
                    }
                } else {
                    assert_eq!(doc["ok"], false, "{args:?}: {doc}");
                    assert_eq!(doc["exitCode"], code, "{args:?}: {doc}");
                    assert!(
                        doc["error"].as_str().is_some_and(|e| !e.is_empty()),
                        "{args:?}: {doc}"
                    );
                }
            }
        }
    }

    /// `kindling … | head -1`: the reader goes away; kindling ends quietly (it panicked with
    /// exit 101 on the next print).
    #[test]
    fn cli_a_closed_stdout_ends_quietly() {
        // Bash completions are larger than a pipe's buffer (64 KiB on Linux), so the writer is
        // still writing when the reader hangs up.
        {
            let args = ["completions", "bash"];
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
                .args(args)
                .current_dir(repo_dir())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // Read one byte, then hang up, as `head -c1` does.
            {
                use std::io::Read;
                let mut stdout = child.stdout.take().unwrap();
                let mut first = [0u8; 1];
                stdout.read_exact(&mut first).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        }
    }

    /// Small things that read as careless: each error names what it is about, once, with
    /// the exit code of bad input where the input is bad.
    #[test]
    fn cli_errors_name_the_path_once_with_the_right_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
                .args(args)
                .current_dir(repo_dir())
                .env("KINDLING_DATA_DIR", dir.path().join("data"))
                .output()
                .unwrap()
        };
        let missing_source = run(&["stamp", "list", "--source", "/nonexistent-source"]);
        assert_eq!(missing_source.status.code(), Some(2));
        let said = String::from_utf8_lossy(&missing_source.stderr);
        assert!(
            said.contains("source tree /nonexistent-source is not a directory"),
            "{said}"
        );
        let missing_profile = run(&[
            "env",
            "create",
            "x",
            "--profile",
            "/nonexistent.yaml",
            "--dry-run",
        ]);
        assert_eq!(missing_profile.status.code(), Some(2));
        let said = String::from_utf8_lossy(&missing_profile.stderr);
        assert!(
            said.contains("/nonexistent.yaml: cannot read the cluster profile"),
            "{said}"
        );
        assert_eq!(said.matches("(os error 2)").count(), 1, "{said}");
        let into_a_dir = run(&["ca", "export", "--out", dir.path().to_str().unwrap()]);
        assert_eq!(into_a_dir.status.code(), Some(1));
        let said = String::from_utf8_lossy(&into_a_dir.stderr);
        assert!(
            said.contains(&format!("cannot write {}", dir.path().display())),
            "{said}"
        );
    }
}
