//! The fake Gitea of tests/common/fake_gitea.rs as a server process, for the test image
//! `kindling-test/gitea` (built by tests/env.rs): it listens on :3000 like Gitea, keeps its
//! repositories under /data/git, and accepts the admin password that the image's `gitea admin`
//! stand-in wrote to /data/admin-password, or the recorded token. Test support only.

use std::path::PathBuf;
use std::sync::Arc;

#[allow(dead_code)]
#[path = "../tests/common/fake_gitea.rs"]
mod fake_gitea;
#[allow(dead_code)]
#[path = "../tests/common/http.rs"]
mod http;

/// Where the recorded Gitea payloads are (`tests/data/gitea/` below it).
fn repo_dir() -> PathBuf {
    PathBuf::from(std::env::var("FAKE_GITEA_DATA").unwrap_or_else(|_| "/srv".into()))
}

fn main() {
    let root =
        PathBuf::from(std::env::var("FAKE_GITEA_ROOT").unwrap_or_else(|_| "/data/git".into()));
    let password_file = root.parent().unwrap_or(&root).join("admin-password");
    std::fs::create_dir_all(&root).expect("repository root");
    let token = fake_gitea::basic("kindling", &fake_gitea::recorded_token());
    let authorize: fake_gitea::Authorize = Arc::new(move |header: &str| {
        if header == token {
            return true;
        }
        std::fs::read_to_string(&password_file)
            .map(|p| header == fake_gitea::basic("kindling", p.trim()))
            .unwrap_or(false)
    });
    let listener = std::net::TcpListener::bind("0.0.0.0:3000").expect("port 3000");
    fake_gitea::run(listener, root, authorize);
}
