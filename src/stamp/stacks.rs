//! Several stacks on one env, as HostK8s runs them (`make up NAME` beside a running stack):
//! the env's stamp and the stacks added to it with `env up` make one stamp, pushed as one
//! snapshot and bootstrapped under one root.
//!
//! HostK8s (danielscholl-osdu/hostk8s@2add0a5 infra/scripts/deploy-stack.py) applies each
//! stack's Flux Kustomizations into `flux-system` as they are, so two stacks that declare
//! the same component (`component-certs`) share one object, and the later apply wins. Here a
//! name two stacks both declare must mean the same thing: it is then one shared entry, kept
//! until the last stack that declares it goes down; anything else is an error naming both
//! files, before anything is pushed.

use std::collections::BTreeMap;

use super::{Entry, Problem, Stamp, StampError};

/// `main` with the entries, secrets and storage of `stacks`; the name, root and format stay
/// `main`'s. Every stack must live in `main`'s repository (one snapshot holds them all).
pub fn with_stacks(mut main: Stamp, stacks: Vec<Stamp>) -> Result<Stamp, StampError> {
    if stacks.is_empty() {
        return Ok(main);
    }
    let mut problems = Vec::new();
    for stack in stacks {
        let canonical = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or(p.to_path_buf());
        if canonical(&stack.repo_root) != canonical(&main.repo_root) {
            problems.push(Problem::new(
                &stack.file,
                None,
                "repository",
                format!(
                    "stack {} lives in {}, not in the env's repository {}",
                    stack.name,
                    stack.repo_root.display(),
                    main.repo_root.display()
                ),
                "add stacks of the repository the env was created from, or create another env for this one",
            ));
            continue;
        }
        for entry in stack.entries {
            match main.entries.iter_mut().find(|e| e.name == entry.name) {
                None => main.entries.push(entry),
                Some(ours) if same_entry(ours, &entry) => {
                    // One object in the engine: both stacks' labels cannot both be on it, and
                    // HostK8s leaves whichever stack applied last; the first stays here, so
                    // `env up` of a second stack never relabels what the first runs.
                    for d in entry.depends_on {
                        if !ours.depends_on.contains(&d) {
                            ours.depends_on.push(d);
                        }
                    }
                }
                Some(ours) => problems.push(Problem::new(
                    &entry.declared_in,
                    Some(&entry.name),
                    "name",
                    format!(
                        "of stack {} is also declared by {} (of the env's stamp or another stack) with other settings; in the engine both would be one object",
                        stack.name,
                        ours.declared_in.display()
                    ),
                    "give one of them another name, or make both declarations the same",
                )),
            }
        }
        for secret in stack.secrets {
            match main
                .secrets
                .iter()
                .find(|s| s.name == secret.name && s.namespace == secret.namespace)
            {
                None => main.secrets.push(secret),
                Some(ours) if *ours == secret => {}
                Some(_) => problems.push(Problem::new(
                    &stack.file,
                    None,
                    "secrets",
                    format!(
                        "Secret {}/{} is declared by another stack of the env with other keys",
                        secret.namespace, secret.name
                    ),
                    "declare the Secret in one stack only, or the same way in both",
                )),
            }
        }
        for dir in stack.storage {
            if main.storage.contains(&dir) {
                continue;
            }
            if let Some(other) = main.storage.iter().find(|d| {
                super::storage::overlaps(&d.path, &dir.path) || d.volume_name == dir.volume_name
            }) {
                problems.push(Problem::new(
                    &stack.file,
                    None,
                    "storage",
                    format!(
                        "directory {} ({}) collides with {} ({}) of another stack of the env",
                        dir.name, dir.path, other.name, other.path
                    ),
                    "give each stack's storage a path of its own",
                ));
                continue;
            }
            main.storage.push(dir);
        }
        main.ignore = merged_ignore(&main.ignore, &stack.ignore);
        main.warnings.extend(stack.warnings);
    }
    if !problems.is_empty() {
        return Err(StampError::Invalid {
            stamp: main.name.clone(),
            problems,
        });
    }
    // Components before applications, as every loader orders them.
    main.entries
        .sort_by_key(|e| e.role == super::Role::Application);
    super::rebuild_graph(&mut main)?;
    Ok(main)
}

/// Two declarations of one entry that make the same engine object, whatever file and stack
/// label they came with.
fn same_entry(a: &Entry, b: &Entry) -> bool {
    let plain = |e: &Entry| Entry {
        // The same repository path, whichever spelling of the host directory found it.
        source: match &e.source {
            super::Source::Path(p) => super::Source::Path(super::PathSource {
                repo_path: p.repo_path.clone(),
                host_dir: Default::default(),
            }),
            other => other.clone(),
        },
        declared_in: Default::default(),
        // A component's entries are grouped under the Kustomization that named it, which
        // each stack may name its own way (`component-certs`, `demo-certs`).
        group: None,
        labels: BTreeMap::new(),
        depends_on: Vec::new(),
        ..e.clone()
    };
    plain(a) == plain(b)
}

/// Each stack's selective-sync patterns exclude everything and re-include its own directory
/// (`/*`, `!/software/stacks/NAME/`). Patterns are read in order and the last match wins, so
/// one stack's lines after another's would exclude the first stack again: every exclusion
/// goes first, then every re-inclusion.
fn merged_ignore(a: &[String], b: &[String]) -> Vec<String> {
    // No patterns serve the whole repository: merged with that, nothing may be hidden.
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let mut excludes = Vec::new();
    let mut includes = Vec::new();
    for line in a.iter().chain(b) {
        let list = if line.trim_start().starts_with('!') {
            &mut includes
        } else {
            &mut excludes
        };
        if !list.contains(line) {
            list.push(line.clone());
        }
    }
    excludes.extend(includes);
    excludes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_patterns_of_two_stacks_include_both() {
        let a = vec!["/*".to_string(), "!/software/stacks/a/".to_string()];
        let b = vec!["/*".to_string(), "!/software/stacks/b/".to_string()];
        assert_eq!(
            merged_ignore(&a, &b),
            vec!["/*", "!/software/stacks/a/", "!/software/stacks/b/"]
        );
        // A side with no patterns serves everything, and so does the merge.
        assert!(merged_ignore(&a, &[]).is_empty());
        assert!(merged_ignore(&[], &b).is_empty());
    }
}
