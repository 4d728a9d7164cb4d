//! Pushing source snapshots to a real `git http-backend` (smart HTTP) served by a small CGI
//! server in the test, with basic auth as Gitea does it.

mod gitea {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use kindling::gitea::push::{PushError, PushOutcome, PushTarget, push_snapshot};

    const USER: &str = "kindling";
    const TOKEN: &str = "t0ken";

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Serves `root` through `git http-backend`, answering 401 without the right credentials.
    fn serve(root: PathBuf) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let root = root.clone();
                std::thread::spawn(move || handle(stream, &root));
            }
        });
        url
    }

    fn handle(stream: std::net::TcpStream, root: &Path) {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let mut body = Vec::new();
        if let Some(length) = headers.get("content-length") {
            body.resize(length.parse().unwrap(), 0);
            reader.read_exact(&mut body).unwrap();
        } else if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        let mut stream = reader.into_inner();
        let expected = format!("Basic {}", base64_encode(&format!("{USER}:{TOKEN}")));
        if headers.get("authorization") != Some(&expected) {
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"Gitea\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut cgi = Command::new("git")
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", &method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env(
                "CONTENT_TYPE",
                headers.get("content-type").cloned().unwrap_or_default(),
            )
            .env("CONTENT_LENGTH", body.len().to_string())
            .env(
                "HTTP_CONTENT_ENCODING",
                headers.get("content-encoding").cloned().unwrap_or_default(),
            )
            .env("REMOTE_USER", USER)
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        cgi.stdin.take().unwrap().write_all(&body).unwrap();
        let output = cgi.wait_with_output().unwrap();
        let split = output
            .stdout
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| {
                output
                    .stdout
                    .windows(2)
                    .position(|w| w == b"\n\n")
                    .map(|i| (i, 2))
            })
            .unwrap();
        let head = String::from_utf8_lossy(&output.stdout[..split.0]).to_string();
        let content = &output.stdout[split.0 + split.1..];
        let mut status = "200 OK".to_string();
        let mut response = String::new();
        for line in head.lines() {
            match line.split_once(':') {
                Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
                Some(_) => response.push_str(&format!("{line}\r\n")),
                None => {}
            }
        }
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
            content.len()
        );
        let _ = stream.write_all(content);
    }

    fn base64_encode(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
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
}
