//! Pushing source snapshots to a real `git http-backend` (smart HTTP) served by a small CGI
//! server in the test, with basic auth as Gitea does it.

mod common;

mod gitea {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use kindling::gitea::push::{
        PushError, PushOutcome, PushTarget, push_snapshot, push_snapshot_capped,
    };

    use super::common::fake_gitea::git;

    const USER: &str = "kindling";
    const TOKEN: &str = "t0ken";

    /// Serves `root` through `git http-backend`, answering 401 without the right credentials.
    fn serve(root: PathBuf) -> String {
        use base64::Engine as _;
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{TOKEN}"))
        );
        super::common::fake_gitea::FakeGitea::serve(root, vec![auth]).url
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        source: PathBuf,
        remote: PathBuf,
        url: String,
    }

    /// A user's repository with a commit, a staged change, an uncommitted edit, an untracked
    /// file and an ignored one; and an empty bare repository behind the HTTP server.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("work");
        std::fs::create_dir_all(source.join("stamps/s")).unwrap();
        git(&source, &["init", "-q", "-b", "trunk"]);
        std::fs::write(source.join(".gitignore"), "*.log\nbuild/\n").unwrap();
        std::fs::write(source.join("stamps/s/app.yaml"), "replicas: 1\n").unwrap();
        std::fs::write(source.join("README"), "committed\n").unwrap();
        git(&source, &["add", "."]);
        git(
            &source,
            &[
                "-c",
                "user.name=u",
                "-c",
                "user.email=u@x",
                "commit",
                "-qm",
                "first",
            ],
        );
        std::fs::write(source.join("README"), "staged\n").unwrap();
        git(&source, &["add", "README"]);
        std::fs::write(source.join("stamps/s/app.yaml"), "replicas: 2\n").unwrap();
        std::fs::write(source.join("untracked.txt"), "new\n").unwrap();
        std::fs::write(source.join("debug.log"), "ignored\n").unwrap();
        std::fs::create_dir_all(source.join("build")).unwrap();
        std::fs::write(source.join("build/out"), "ignored\n").unwrap();
        let root = dir.path().join("srv");
        let remote = root.join("kindling/source.git");
        std::fs::create_dir_all(&remote).unwrap();
        git(&remote, &["init", "-q", "--bare"]);
        git(&remote, &["config", "http.receivepack", "true"]);
        let url = format!("{}/kindling/source.git", serve(root));
        Fixture {
            _dir: dir,
            source,
            remote,
            url,
        }
    }

    fn target<'a>(url: &'a str, token: &'a str) -> PushTarget<'a> {
        PushTarget {
            url,
            user: USER,
            token,
            branch: "main",
        }
    }

    /// Every file below `.git`, with its content: the user's repository, byte for byte.
    fn snapshot_of_git_dir(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut pending = vec![dir.join(".git")];
        while let Some(d) = pending.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    pending.push(p)
                } else {
                    out.insert(p.clone(), std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn gitea_push_snapshot_of_the_working_tree_as_it_is() {
        let f = fixture();
        // `git status` refreshes the index itself, so it runs before the byte-for-byte record.
        let status_before = git(&f.source, &["status", "--porcelain"]);
        let before = snapshot_of_git_dir(&f.source);
        let extra = vec![(
            ".kindling/flux/stamp/api.yaml".to_string(),
            b"kind: Kustomization\n".to_vec(),
        )];
        let outcome = push_snapshot(
            &f.source,
            &extra,
            "kindling snapshot",
            &target(&f.url, TOKEN),
        )
        .unwrap();
        let PushOutcome::Pushed(commit) = &outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(&git(&f.remote, &["rev-parse", "main"]), commit);
        let files = git(&f.remote, &["ls-tree", "-r", "--name-only", "main"]);
        assert_eq!(
            files.lines().collect::<Vec<_>>(),
            [
                ".gitignore",
                ".kindling/flux/stamp/api.yaml",
                "README",
                "stamps/s/app.yaml",
                "untracked.txt"
            ]
        );
        // Uncommitted and staged edits are in; ignored files are not.
        assert_eq!(
            git(&f.remote, &["show", "main:stamps/s/app.yaml"]),
            "replicas: 2"
        );
        assert_eq!(git(&f.remote, &["show", "main:README"]), "staged");
        assert_eq!(
            git(&f.remote, &["show", "main:.kindling/flux/stamp/api.yaml"]),
            "kind: Kustomization"
        );
        // The user's repository, index and branches are untouched, byte for byte.
        let after = snapshot_of_git_dir(&f.source);
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .collect();
        assert!(changed.is_empty(), "the user's .git changed: {changed:?}");
        assert_eq!(git(&f.source, &["status", "--porcelain"]), status_before);
        assert!(
            !f.source.join(".kindling").exists(),
            "generated files must not land in the user's tree"
        );
    }

    /// Every ignore rule Git honours keeps a file out of the snapshot: the user's global
    /// excludes file (`~/.config/git/ignore`, where a `.env` is typically ignored) and the
    /// repository's `.git/info/exclude`. Run in a child test process with its own HOME.
    #[test]
    fn gitea_push_honours_global_and_repository_excludes() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".config/git")).unwrap();
        std::fs::write(home.path().join(".config/git/ignore"), ".env\n").unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "gitea::push_with_excludes_in_this_home",
                "--ignored",
                "--nocapture",
            ])
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("GIT_CONFIG_GLOBAL")
            .env("KINDLING_TEST_CHILD", "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("1 passed"),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The child of the test above, in a process with its own HOME.
    #[test]
    #[ignore = "run by gitea_push_honours_global_and_repository_excludes, with its own HOME"]
    fn push_with_excludes_in_this_home() {
        assert!(
            std::env::var_os("KINDLING_TEST_CHILD").is_some(),
            "run through gitea_push_honours_global_and_repository_excludes"
        );
        let f = fixture();
        std::fs::write(f.source.join(".env"), "GITHUB_TOKEN=ghp_secret\n").unwrap();
        std::fs::write(f.source.join(".git/info/exclude"), "local-only.txt\n").unwrap();
        std::fs::write(f.source.join("local-only.txt"), "mine\n").unwrap();
        // As the user's own git sees it.
        assert_eq!(
            git(&f.source, &["check-ignore", ".env", "local-only.txt"]),
            ".env\nlocal-only.txt"
        );
        push_snapshot(&f.source, &[], "x", &target(&f.url, TOKEN)).unwrap();
        let files = git(&f.remote, &["ls-tree", "-r", "--name-only", "main"]);
        assert!(!files.contains(".env"), "{files}");
        assert!(!files.contains("local-only.txt"), "{files}");
        assert!(files.contains("stamps/s/app.yaml"), "{files}");
    }

    /// A snapshot over the cap is refused before anything is pushed, naming its largest files.
    #[test]
    fn gitea_push_over_the_size_cap_names_the_largest_files() {
        let f = fixture();
        std::fs::write(f.source.join("dump.sql"), vec![b'x'; 3 * 1024 * 1024]).unwrap();
        std::fs::write(
            f.source.join("stamps/s/big.bin"),
            vec![b'y'; 2 * 1024 * 1024],
        )
        .unwrap();
        let err =
            push_snapshot_capped(&f.source, &[], "x", &target(&f.url, TOKEN), 4 << 20).unwrap_err();
        assert!(matches!(err, PushError::TooLarge { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("5 MiB, over the 4 MiB"), "{text}");
        let dump = text.find("dump.sql (3 MiB)").expect(&text);
        let big = text.find("stamps/s/big.bin (2 MiB)").expect(&text);
        assert!(dump < big, "largest first: {text}");
        assert!(text.contains("KINDLING_PUSH_MAX_MB"), "{text}");
        assert!(
            git(&f.remote, &["for-each-ref"]).is_empty(),
            "nothing pushed"
        );
        // Under the cap, it goes.
        push_snapshot_capped(&f.source, &[], "x", &target(&f.url, TOKEN), 8 << 20).unwrap();
    }

    /// A symbolic link that leaves the tree (or is absolute) is refused; one within it is
    /// pushed as a link.
    #[test]
    fn gitea_push_refuses_links_that_leave_the_tree() {
        for target_path in ["../../../../etc/passwd", "/etc/passwd"] {
            let f = fixture();
            let link = f.source.join("stamps/s/secret.yaml");
            std::os::unix::fs::symlink(target_path, &link).unwrap();
            let err = push_snapshot(&f.source, &[], "x", &target(&f.url, TOKEN)).unwrap_err();
            assert!(matches!(err, PushError::LinkLeavesTree { .. }), "{err:?}");
            assert!(err.to_string().contains("secret.yaml"), "{err}");
            assert!(
                git(&f.remote, &["for-each-ref"]).is_empty(),
                "nothing pushed"
            );
        }
        let f = fixture();
        std::os::unix::fs::symlink("app.yaml", f.source.join("stamps/s/alias.yaml")).unwrap();
        push_snapshot(&f.source, &[], "x", &target(&f.url, TOKEN)).unwrap();
        let tree = git(&f.remote, &["ls-tree", "-r", "main", "stamps/s/alias.yaml"]);
        assert!(tree.starts_with("120000"), "{tree}");
    }

    #[test]
    fn gitea_push_again_with_a_change_then_without_one() {
        let f = fixture();
        let first = push_snapshot(&f.source, &[], "one", &target(&f.url, TOKEN)).unwrap();
        std::fs::write(f.source.join("stamps/s/app.yaml"), "replicas: 3\n").unwrap();
        let second = push_snapshot(&f.source, &[], "two", &target(&f.url, TOKEN)).unwrap();
        let PushOutcome::Pushed(second_commit) = &second else {
            panic!("{second:?}")
        };
        assert_eq!(git(&f.remote, &["rev-parse", "main^"]), first.commit());
        assert_eq!(
            git(&f.remote, &["show", "main:stamps/s/app.yaml"]),
            "replicas: 3"
        );
        let third = push_snapshot(&f.source, &[], "three", &target(&f.url, TOKEN)).unwrap();
        assert_eq!(third, PushOutcome::Unchanged(second_commit.clone()));
        assert_eq!(&git(&f.remote, &["rev-parse", "main"]), second_commit);
        assert_eq!(git(&f.remote, &["rev-list", "--count", "main"]), "2");
    }

    #[test]
    fn gitea_push_with_a_wrong_token_is_a_clear_error() {
        let f = fixture();
        let err = push_snapshot(&f.source, &[], "x", &target(&f.url, "wrong")).unwrap_err();
        assert!(matches!(err, PushError::Unauthorized { .. }), "{err:?}");
        assert!(
            err.to_string().contains("Gitea refused the credentials"),
            "{err}"
        );
        assert!(
            git(&f.remote, &["for-each-ref"]).is_empty(),
            "nothing may have been pushed"
        );
    }

    /// Makes the server move `main` (one commit by someone else) after each fetch it
    /// serves, `times` times: a writer racing kindling between its fetch and its push.
    fn another_writer(f: &Fixture, times: u32) {
        let root = f.remote.parent().unwrap().parent().unwrap();
        let count = root.join("moves");
        let script = format!(
            r#"#!/bin/sh
n=$(cat "{count}" 2>/dev/null || echo 0)
[ "$n" -ge {times} ] && exit 0
echo $((n + 1)) > "{count}"
cd "{remote}" || exit 1
export GIT_AUTHOR_NAME=other GIT_AUTHOR_EMAIL=o@x GIT_COMMITTER_NAME=other GIT_COMMITTER_EMAIL=o@x
blob=$(echo "edited in the web editor $n" | git hash-object -w --stdin)
tree=$(printf '100644 blob %s\tweb.txt\n' "$blob" | git mktree)
c=$(echo "web edit $n" | git commit-tree "$tree" -p main)
git update-ref refs/heads/main "$c"
"#,
            count = count.display(),
            remote = f.remote.display(),
        );
        super::common::env_harness::write_executable(&root.join("after-fetch"), &script);
    }

    #[test]
    fn gitea_push_rides_out_a_branch_that_moved_and_names_one_that_keeps_moving() {
        let f = fixture();
        push_snapshot(&f.source, &[], "one", &target(&f.url, TOKEN)).unwrap();
        // Moved once between fetch and push: git refuses (fetch first); the retry puts the
        // snapshot on top of the other commit, nothing of it lost from history.
        another_writer(&f, 1);
        std::fs::write(f.source.join("stamps/s/app.yaml"), "replicas: 4\n").unwrap();
        let outcome = push_snapshot(&f.source, &[], "two", &target(&f.url, TOKEN)).unwrap();
        let PushOutcome::Pushed(commit) = &outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(&git(&f.remote, &["rev-parse", "main"]), commit);
        assert_eq!(
            git(&f.remote, &["log", "-1", "--format=%s", "main^"]),
            "web edit 0"
        );
        assert_eq!(
            git(&f.remote, &["show", "main:stamps/s/app.yaml"]),
            "replicas: 4"
        );
        // Moving on every try: a clear error after a bounded number of tries.
        std::fs::remove_file(f.remote.parent().unwrap().parent().unwrap().join("moves")).unwrap();
        another_writer(&f, 100);
        std::fs::write(f.source.join("stamps/s/app.yaml"), "replicas: 5\n").unwrap();
        let err = push_snapshot(&f.source, &[], "three", &target(&f.url, TOKEN)).unwrap_err();
        assert!(
            matches!(err, PushError::BranchMoving { attempts: 3, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("something else pushes"), "{err}");
        // Nothing half-landed: main is the other writer's.
        let last = git(&f.remote, &["log", "-1", "--format=%s", "main"]);
        assert!(last.starts_with("web edit"), "{last}");
    }
}
