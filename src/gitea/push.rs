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
    #[error(
        "the snapshot of {} is {} MiB, over the {} MiB kindling pushes; the largest files:\n{}\nhelp: add them to .gitignore (or the stamp's ignore patterns), or raise the cap with KINDLING_PUSH_MAX_MB",
        tree.display(),
        total / (1024 * 1024),
        cap / (1024 * 1024),
        largest.iter().map(|(p, s)| format!("  {} ({} MiB)", p, s / (1024 * 1024))).collect::<Vec<_>>().join("\n")
    )]
    TooLarge {
        tree: PathBuf,
        total: u64,
        cap: u64,
        largest: Vec<(String, u64)>,
    },
    #[error(
        "{}: a symbolic link to {target}, which leaves the source tree (or is absolute); in the engine's checkout it would name something else, in the engine's own container\nhelp: make it a relative link within the tree, copy what it points at into the tree, or add the link to .gitignore",
        link.display()
    )]
    LinkLeavesTree { link: PathBuf, target: String },
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
            if refused_credentials(&stderr) {
                return Err(PushError::Unauthorized { action });
            }
            return Err(PushError::Git { action, stderr });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

/// Whether git's stderr says the server refused the credentials: git asks for a user name when
/// the server answers 401 to the header sent, or prints curl's "The requested URL returned
/// error: 401". A bare "401" is not enough: it is in any URL on a port like 40123 (a CI run of
/// the moving-branch test met exactly that and called a refused push "unauthorized").
fn refused_credentials(stderr: &str) -> bool {
    [
        "Authentication failed",
        "could not read Username",
        "returned error: 401",
    ]
    .iter()
    .any(|r| stderr.contains(r))
}

/// Commits `source` (plus `extra_files`, path → content) in a scratch store and pushes it to
/// `target.branch` on top of what is there. Returns the commit the branch now points at.
pub fn push_snapshot(
    source: &Path,
    extra_files: &[(String, Vec<u8>)],
    message: &str,
    target: &PushTarget<'_>,
) -> Result<PushOutcome, PushError> {
    let cap_mb = std::env::var("KINDLING_PUSH_MAX_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_MAX_MB);
    push_snapshot_capped(
        source,
        extra_files,
        message,
        target,
        cap_mb.saturating_mul(1024 * 1024),
    )
}

/// [`push_snapshot`] with the snapshot's size cap given, in bytes.
pub fn push_snapshot_capped(
    source: &Path,
    extra_files: &[(String, Vec<u8>)],
    message: &str,
    target: &PushTarget<'_>,
    cap: u64,
) -> Result<PushOutcome, PushError> {
    let scratch = tempfile::tempdir().map_err(|source| PushError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let git = scratch_git(source, scratch.path(), target)?;
    let tree = snapshot_tree(&git, extra_files)?;
    check_snapshot(&git, source, cap)?;
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

/// Checks the branch's head out into `dest` (an empty directory), with a scratch object store
/// that goes away afterwards: what Git says now, as the engine reads it. Returns the commit,
/// or `None` when nothing was pushed yet.
pub fn check_out(dest: &Path, target: &PushTarget<'_>) -> Result<Option<String>, PushError> {
    let scratch = tempfile::tempdir().map_err(|source| PushError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let git = scratch_git(dest, scratch.path(), target)?;
    let Some(commit) = fetch_branch(&git, target)? else {
        return Ok(None);
    };
    git.run("reading the branch", &["read-tree", &commit], None)?;
    git.run(
        "checking the branch out",
        &["checkout-index", "--all", "--force"],
        None,
    )?;
    Ok(Some(commit))
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
    let config = vec![
        (
            "http.extraHeader".to_string(),
            format!("Authorization: Basic {credentials}"),
        ),
        ("core.autocrlf".to_string(), "false".to_string()),
        // The source tree may belong to another user (a CI checkout); reading it is all we do.
        ("safe.directory".to_string(), "*".to_string()),
    ];
    // Every ignore rule Git honours applies, as it would to `git status`: the tree's
    // .gitignore files, the repository's info/exclude (copied into the scratch store below),
    // and the user's global core.excludesFile (~/.config/git/ignore by default), which the
    // user's own git config names and nothing here overrides.
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
    // Behind a corporate proxy, loopback (the local Gitea) stays direct whatever the user's
    // NO_PROXY and curl's own defaults say (git's HTTP transport is curl, which reads both
    // spellings).
    let direct = crate::cluster::proxy::ProxySettings::from_env().no_proxy_with(&["::1".into()]);
    env.push(("NO_PROXY".to_string(), direct.clone()));
    env.push(("no_proxy".to_string(), direct));
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
    // The repository's own excludes, where git looks for them: in the (scratch) git dir.
    let user_exclude = source.join(".git/info/exclude");
    if let Ok(excludes) = std::fs::read(&user_exclude) {
        let info = git_dir.join("info");
        std::fs::create_dir_all(&info)
            .and_then(|()| std::fs::write(info.join("exclude"), excludes))
            .map_err(|e| PushError::Io {
                path: info.join("exclude"),
                source: e,
            })?;
    }
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

/// The default cap on a snapshot's size (`KINDLING_PUSH_MAX_MB`): a stamp is manifests, not
/// build output; a few hundred MiB means something big was not ignored.
const DEFAULT_MAX_MB: u64 = 200;

/// What the snapshot holds, checked before it leaves the machine: not too large (naming the
/// largest files when it is), and no symbolic link that points out of the source tree.
fn check_snapshot(git: &Git, source: &Path, cap: u64) -> Result<(), PushError> {
    let listed = git.run("listing the snapshot", &["ls-files", "--stage", "-z"], None)?;
    let root = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    let mut sizes: Vec<(String, u64)> = Vec::new();
    // `MODE OBJECT STAGE\tPATH`, NUL-separated (git ls-files --stage -z).
    for entry in listed.split('\0').filter(|e| !e.is_empty()) {
        let Some((meta, path)) = entry.split_once('\t') else {
            continue;
        };
        let on_disk = source.join(path);
        if meta.starts_with("120000") {
            let Ok(target) = std::fs::read_link(&on_disk) else {
                continue;
            };
            let resolved =
                crate::stamp::normalize(&on_disk.parent().unwrap_or(source).join(&target));
            let inside = resolved.starts_with(source)
                || std::fs::canonicalize(&resolved).is_ok_and(|r| r.starts_with(&root));
            if target.is_absolute() || !inside {
                return Err(PushError::LinkLeavesTree {
                    link: on_disk,
                    target: target.display().to_string(),
                });
            }
            continue;
        }
        if let Ok(meta) = std::fs::symlink_metadata(&on_disk) {
            sizes.push((path.to_string(), meta.len()));
        }
    }
    let total: u64 = sizes.iter().map(|(_, s)| s).sum();
    if total > cap {
        sizes.sort_by_key(|s| std::cmp::Reverse(s.1));
        sizes.truncate(5);
        return Err(PushError::TooLarge {
            tree: source.to_path_buf(),
            total,
            cap,
            largest: sizes,
        });
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitea_push_a_port_with_401_in_it_is_no_refused_credential() {
        let rejected = "To http://127.0.0.1:40123/kindling/source.git\n ! [rejected]        main -> main (fetch first)";
        assert!(!refused_credentials(rejected));
        assert!(refused_credentials(
            "fatal: Authentication failed for 'http://127.0.0.1:3000/kindling/source.git/'"
        ));
        assert!(refused_credentials(
            "fatal: unable to access '…': The requested URL returned error: 401"
        ));
    }
}
