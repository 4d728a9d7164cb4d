//! Pushing source snapshots to a real `git http-backend` (smart HTTP) served by a small CGI
//! server in the test, with basic auth as Gitea does it.

mod common;

mod gitea {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use kindling::gitea::push::{PushError, PushOutcome, PushTarget, push_snapshot};

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
