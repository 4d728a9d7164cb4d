//! `env build [NAME] DIR`: HostK8s's `make build` for one Dockerfile. The directory is built by
//! the Docker engine (its build API, the output shown as progress) and pushed to the env's own
//! registry as `localhost:PORT/IMAGE:TAG`, the very name the nodes pull through their mirror
//! of that registry (the KEP-1755 `local-registry-hosting` host), so manifests can use it.
//!
//! The build context honours `.dockerignore` as the Docker CLI does it, on the client: the
//! patterns are relative to the context root, `!` re-includes, and the Dockerfile and the
//! `.dockerignore` itself are always sent (docker/cli cli/command/image/build/context.go
//! and moby/patternmatcher). The patterns are matched with gitignore rules anchored at the
//! root, which agree with Docker's for the usual forms (`name`, `dir/`, `*.log`, `**/x`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::open::load_locked;
use super::{EnvError, Settings};
use crate::docker::DockerClient;
use crate::ui::Progress;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    pub env: String,
    /// What manifests name: the nodes pull it through their mirror of the env's registry.
    pub image: String,
    /// The same image by HostK8s's name (`localhost:5000/…`), which the nodes also mirror to
    /// the env's registry: what HostK8s stacks' manifests name.
    pub hostk8s_image: String,
    /// The digest the registry gave it.
    pub digest: String,
    pub image_id: String,
    /// Files sent to the builder (after `.dockerignore`).
    pub context_files: usize,
}

/// The image name for a build directory: its last component as a repository name allows
/// (lower case; letters, digits, `.`, `_`, `-`).
pub fn default_image_name(dir: &Path) -> String {
    let base = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".to_string());
    let name: String = base
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if name.is_empty() {
        "app".to_string()
    } else {
        name
    }
}

/// Whether `text` is a repository name (path components of `[a-z0-9]+([._-][a-z0-9]+)*`
/// joined by `/`, distribution/reference's grammar) or a tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
fn valid_name(text: &str) -> bool {
    !text.is_empty()
        && text.split('/').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

fn valid_tag(text: &str) -> bool {
    (1..=128).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub async fn build(
    settings: &Settings,
    name: &str,
    dir: &Path,
    image: Option<&str>,
    tag: &str,
    progress: &Progress,
) -> Result<BuildReport, EnvError> {
    let (_lock, state) = load_locked(settings, name, "env build")?;
    if !state.provider.makes_the_cluster() {
        return Err(EnvError::BadInput(format!(
            "env {name} runs on an existing cluster, which cannot pull from a registry on this machine\nhelp: push the image to a registry the cluster pulls from (`docker build` and `docker push`), and name it in the stamp"
        )));
    }
    let port = state.ports.registry.ok_or_else(|| {
        EnvError::BadInput(format!(
            "env {name} has no local registry to push to\nhelp: its profile sets `registry: false`; make the env with a profile that keeps the registry"
        ))
    })?;
    let dockerfile = dir.join("Dockerfile");
    if !dockerfile.is_file() {
        return Err(EnvError::BadInput(format!(
            "{} has no Dockerfile\nhelp: `kindling env build [NAME] DIR` builds DIR/Dockerfile",
            dir.display()
        )));
    }
    let repository = image
        .map(str::to_string)
        .unwrap_or_else(|| default_image_name(dir));
    if !valid_name(&repository) {
        return Err(EnvError::BadInput(format!(
            "--name {repository}: not an image repository name\nhelp: lower-case letters, digits and . _ - in /-separated parts, e.g. `team/api`"
        )));
    }
    if !valid_tag(tag) {
        return Err(EnvError::BadInput(format!(
            "--tag {tag}: not an image tag\nhelp: letters, digits and _ . - (up to 128), not starting with . or -"
        )));
    }
    let reference = format!("localhost:{port}/{repository}:{tag}");
    let (archive, files) = context_archive(dir)?;
    progress.detail(&format!(
        "context {} ({files} files, {:.1} MiB)",
        dir.display(),
        archive.len() as f64 / 1_048_576.0
    ));
    let docker = DockerClient::connect().await?;
    let t = std::time::Instant::now();
    progress.start("build", &reference);
    let image_id = docker
        .build_image(archive, "Dockerfile", &reference, &mut |line| {
            progress.detail(line)
        })
        .await?;
    progress.done("build", t.elapsed(), &image_id);
    let t = std::time::Instant::now();
    progress.start("push", &reference);
    let digest = docker
        .push_image(&reference, &mut |line| progress.detail(line))
        .await?;
    progress.done("push", t.elapsed(), &digest);
    Ok(BuildReport {
        env: name.to_string(),
        hostk8s_image: format!(
            "{}/{repository}:{tag}",
            crate::registry::HOSTK8S_REGISTRY_HOST
        ),
        image: reference,
        digest,
        image_id,
        context_files: files,
    })
}

/// The build context as the Docker CLI sends it: a tar of `dir` less what `.dockerignore`
/// excludes (the Dockerfile and `.dockerignore` always kept); how many files it holds.
pub fn context_archive(dir: &Path) -> Result<(Vec<u8>, usize), EnvError> {
    let io = |path: &Path, e: std::io::Error| {
        EnvError::BadInput(format!("build context {}: {e}", path.display()))
    };
    // Absolute: the matcher strips its root from paths that begin with it, and a relative
    // root (`mysite`) would strip it from the context's own `mysite/…` entries.
    let dir = &std::fs::canonicalize(dir).map_err(|e| io(dir, e))?;
    let (ignore, reincludes) = dockerignore(dir)?;
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).map_err(|e| io(&current, e))? {
            let entry = entry.map_err(|e| io(&current, e))?;
            let path = entry.path();
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
            let kind = entry.file_type().map_err(|e| io(&path, e))?;
            let always =
                relative == Path::new("Dockerfile") || relative == Path::new(".dockerignore");
            if kind.is_dir() {
                // Docker walks into an excluded directory when a `!` pattern may re-include
                // something below it (moby/go-archive TarWithOptions).
                if reincludes || !ignore.matched(&relative, true).is_ignore() {
                    stack.push(path);
                }
                continue;
            }
            // Sockets, pipes and devices are not sent (Docker skips them too).
            if !(kind.is_file() || kind.is_symlink()) {
                continue;
            }
            // The file's own match first (a `!` re-include), then its directories'.
            if !always
                && ignore
                    .matched_path_or_any_parents(&relative, false)
                    .is_ignore()
            {
                continue;
            }
            paths.push(relative);
        }
    }
    paths.sort();
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    for relative in &paths {
        tar.append_path_with_name(dir.join(relative), relative)
            .map_err(|e| io(relative, e))?;
    }
    let bytes = tar.into_inner().map_err(|e| io(dir, e))?;
    Ok((bytes, paths.len()))
}

/// `.dockerignore`'s patterns, anchored at the context root; and whether any re-includes.
fn dockerignore(dir: &Path) -> Result<(ignore::gitignore::Gitignore, bool), EnvError> {
    let file = dir.join(".dockerignore");
    let mut builder = ignore::gitignore::GitignoreBuilder::new(dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(EnvError::BadInput(format!("{}: {e}", file.display())));
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negated, pattern) = match line.strip_prefix('!') {
            Some(rest) => ("!", rest.trim()),
            None => ("", line),
        };
        // Docker cleans each pattern (filepath.Clean) and matches it from the root.
        let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
        builder
            .add_line(None, &format!("{negated}/{pattern}"))
            .map_err(|e| EnvError::BadInput(format!("{}: {line}: {e}", file.display())))?;
    }
    let matcher = builder
        .build()
        .map_err(|e| EnvError::BadInput(format!("{}: {e}", file.display())))?;
    let reincludes = matcher.num_whitelists() > 0;
    Ok((matcher, reincludes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_names_are_checked_and_defaulted_from_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("My App_2");
        std::fs::create_dir(&app).unwrap();
        assert_eq!(default_image_name(&app), "my-app_2");
        assert!(valid_name("team/api"));
        assert!(!valid_name("Team/api"));
        assert!(!valid_name("team//api"));
        assert!(!valid_name("-api"));
        assert!(valid_tag("v1.2.3"));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("a:b"));
    }

    /// The names in a context archive, sorted.
    fn names_in(bytes: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(bytes);
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn build_context_honours_dockerignore_but_keeps_the_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        let put = |p: &str| {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, p).unwrap();
        };
        for p in [
            "Dockerfile",
            ".dockerignore",
            "app/main.go",
            "app/debug.log",
            "node_modules/x/index.js",
            "keep/important.log",
            "sub/node_modules/y.js",
            "secret.env",
        ] {
            put(p);
        }
        std::fs::write(
            dir.path().join(".dockerignore"),
            "# comment\nDockerfile\n.dockerignore\nnode_modules\n**/*.log\n!keep/important.log\n./secret.env\n",
        )
        .unwrap();
        let (bytes, count) = context_archive(dir.path()).unwrap();
        let names = names_in(&bytes);
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "app/main.go",
                "keep/important.log",
                // Docker anchors `node_modules` at the root: a nested one is sent.
                "sub/node_modules/y.js",
            ]
        );
        assert_eq!(count, names.len());

        // The allowlist form: everything out, one file back in.
        std::fs::write(dir.path().join(".dockerignore"), "*\n!app/main.go\n").unwrap();
        let (bytes, _) = context_archive(dir.path()).unwrap();
        assert_eq!(
            names_in(&bytes),
            [".dockerignore", "Dockerfile", "app/main.go"]
        );
    }
}
