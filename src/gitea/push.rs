//! Pushing a snapshot of the user's source tree to Gitea over smart HTTP.
//!
//! The snapshot is the working tree as it is — uncommitted edits and untracked files included,
//! `.gitignore` honoured — committed in a throwaway object store with its own index, so the
//! user's repository, index and branches are never touched. Generated files (the rendered
//! engine bundle under `.kindling/`) are added to the snapshot without being written into the
//! user's tree. Credentials travel in git's environment, not on its command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot run git: {0}\nhelp: kindling needs git on PATH to push the source snapshot")]
    GitMissing(std::io::Error),
    #[error(
        "Gitea refused the credentials while {action}\nhelp: the env's Gitea token is wrong or was revoked; `kindling env create` again recreates it"
    )]
    Unauthorized { action: &'static str },
    #[error("git {action} failed: {stderr}")]
    Git {
        action: &'static str,
        stderr: String,
    },
    #[error(
        "the branch {branch} moved each time kindling pushed ({attempts} tries): something else pushes to this env's repository\nhelp: stop the other writer (another `kindling env sync` or `env watch` on this env?) and run the command again"
    )]
    BranchMoving { branch: String, attempts: u32 },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where to push, and as whom.
pub struct PushTarget<'a> {
    /// `http://127.0.0.1:PORT/kindling/source.git`
    pub url: &'a str,
    pub user: &'a str,
    pub token: &'a str,
    pub branch: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "outcome", content = "commit")]
pub enum PushOutcome {
    /// A new commit is on the branch.
    Pushed(String),
    /// The branch already holds exactly this tree; nothing was pushed.
    Unchanged(String),
}

impl PushOutcome {
    pub fn commit(&self) -> &str {
        match self {
            PushOutcome::Pushed(c) | PushOutcome::Unchanged(c) => c,
        }
    }
}

struct Git {
    env: Vec<(String, String)>,
}

impl Git {
    fn run(
        &self,
        action: &'static str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<String, PushError> {
        crate::ui::call(|| format!("git {}", args.join(" ")));
        let mut command = Command::new("git");
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(PushError::GitMissing)?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(bytes).map_err(|e| PushError::Git {
                action,
                stderr: e.to_string(),
            })?;
        }
        let output = child.wait_with_output().map_err(PushError::GitMissing)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            // git asks for a user name when the server answers 401 to the header we sent.
            let refused = ["Authentication failed", "could not read Username", "401"];
            if refused.iter().any(|r| stderr.contains(r)) {
                return Err(PushError::Unauthorized { action });
            }
            return Err(PushError::Git { action, stderr });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

/// Commits `source` (plus `extra_files`, path → content) in a scratch store and pushes it to
/// `target.branch` on top of what is there. Returns the commit the branch now points at.
pub fn push_snapshot(
    source: &Path,
    extra_files: &[(String, Vec<u8>)],
    message: &str,
    target: &PushTarget<'_>,
) -> Result<PushOutcome, PushError> {
    let scratch = tempfile::tempdir().map_err(|source| PushError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let git = scratch_git(source, scratch.path(), target)?;
    let tree = snapshot_tree(&git, extra_files)?;
    // Someone else may push between our fetch and our push (a second kindling, a user in
    // Gitea's web editor). Git then refuses the push as not a fast-forward; fetch again and
    // put the same tree on top of what is there now, a few times.
    for _ in 0..PUSH_ATTEMPTS {
        let parent = fetch_branch(&git, target)?;
        if let Some(parent) = &parent {
            let parent_tree = git.run(
                "reading the branch",
                &["rev-parse", &format!("{parent}^{{tree}}")],
                None,
            )?;
            if parent_tree == tree {
                return Ok(PushOutcome::Unchanged(parent.clone()));
            }
        }
        let mut commit_args = vec!["commit-tree", &tree, "-m", message];
        if let Some(parent) = &parent {
            commit_args.extend(["-p", parent]);
        }
        let commit = git.run("committing the snapshot", &commit_args, None)?;
        let pushed = git.run(
            "pushing the snapshot",
            &[
                "push",
                "--quiet",
                target.url,
                &format!("{commit}:refs/heads/{}", target.branch),
            ],
            None,
        );
        match pushed {
            Ok(_) => return Ok(PushOutcome::Pushed(commit)),
            Err(PushError::Git { stderr, .. }) if branch_moved(&stderr) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PushError::BranchMoving {
        branch: target.branch.to_string(),
        attempts: PUSH_ATTEMPTS,
    })
}

/// How often a push refused because the branch moved is tried again.
const PUSH_ATTEMPTS: u32 = 3;

/// Whether git refused the push because the branch moved since it was fetched: the client's
/// "(fetch first)" / "(non-fast-forward)", or the server losing the race on the ref itself.
fn branch_moved(stderr: &str) -> bool {
    (stderr.contains("[rejected]")
        && (stderr.contains("fetch first") || stderr.contains("non-fast-forward")))
        || (stderr.contains("[remote rejected]")
            && (stderr.contains("failed to update ref") || stderr.contains("cannot lock ref")))
}

/// Git on the user's tree with a scratch object store and index in `scratch`: the user's
/// `.git` is never touched, the token goes in a header (never in a URL or a file), and only
/// this process's environment configures it.
fn scratch_git(source: &Path, scratch: &Path, target: &PushTarget<'_>) -> Result<Git, PushError> {
    let git_dir = scratch.join("objects.git");
    let credentials = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", target.user, target.token));
    let mut config = vec![
        (
            "http.extraHeader".to_string(),
            format!("Authorization: Basic {credentials}"),
        ),
        ("core.autocrlf".to_string(), "false".to_string()),
        // The source tree may belong to another user (a CI checkout); reading it is all we do.
        ("safe.directory".to_string(), "*".to_string()),
    ];
    // The user's own excludes still apply, as they would to `git status`.
    let user_exclude = source.join(".git/info/exclude");
    if user_exclude.is_file() {
        config.push((
            "core.excludesFile".to_string(),
            user_exclude.display().to_string(),
        ));
    }
    let mut env: Vec<(String, String)> = [
        ("GIT_DIR", git_dir.display().to_string()),
        ("GIT_WORK_TREE", source.display().to_string()),
        (
            "GIT_INDEX_FILE",
            scratch.join("index").display().to_string(),
        ),
        ("GIT_CONFIG_NOSYSTEM", "1".to_string()),
        ("GIT_TERMINAL_PROMPT", "0".to_string()),
        ("GIT_AUTHOR_NAME", "kindling".to_string()),
        ("GIT_AUTHOR_EMAIL", "kindling@localhost".to_string()),
        ("GIT_COMMITTER_NAME", "kindling".to_string()),
        ("GIT_COMMITTER_EMAIL", "kindling@localhost".to_string()),
        ("GIT_CONFIG_COUNT", config.len().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (i, (key, value)) in config.into_iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{i}"), key));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), value));
    }
    // `init --bare` refuses a work tree; every later command works on the user's tree.
    let bare = Git {
        env: env
            .iter()
            .filter(|(k, _)| k != "GIT_WORK_TREE" && k != "GIT_DIR")
            .cloned()
            .collect(),
    };
    bare.run(
        "init",
        &["init", "--quiet", "--bare", &git_dir.display().to_string()],
        None,
    )?;
    Ok(Git { env })
}

/// The branch's current commit, or `None` for a new repository (the snapshot becomes its
/// first commit).
fn fetch_branch(git: &Git, target: &PushTarget<'_>) -> Result<Option<String>, PushError> {
    let remote_ref = format!("refs/remotes/gitea/{}", target.branch);
    let fetched = git.run(
        "fetching the branch",
        &[
            "fetch",
            "--quiet",
            "--no-tags",
            target.url,
            &format!("+refs/heads/{}:{remote_ref}", target.branch),
        ],
        None,
    );
    match fetched {
        Ok(_) => Ok(Some(git.run(
            "reading the branch",
            &["rev-parse", &remote_ref],
            None,
        )?)),
        Err(PushError::Git { stderr, .. }) if stderr.contains("couldn't find remote ref") => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The tree of the working tree (what Git would snapshot) plus the generated files.
fn snapshot_tree(git: &Git, extra_files: &[(String, Vec<u8>)]) -> Result<String, PushError> {
    git.run("adding the working tree", &["add", "--all"], None)?;
    for (path, content) in extra_files {
        let blob = git.run(
            "storing a generated file",
            &["hash-object", "-w", "--stdin"],
            Some(content),
        )?;
        git.run(
            "adding a generated file",
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("100644,{blob},{path}"),
            ],
            None,
        )?;
    }
    git.run("writing the tree", &["write-tree"], None)
}
