//! Validation: everything a stamp must satisfy before kindling renders or pushes it. Every
//! problem is collected (not just the first), each naming its file, entry and field and the fix.

use std::collections::{HashMap, HashSet};

use super::graph::{Cycle, Graph};
use super::manifests::{directory_documents, kustomization_file, read_documents};
use super::{Draft, Entry, Problem, SecretValue, Source, Stamp, StampError};

/// Object names kindling's own bootstrap objects use.
const RESERVED_NAMES: &[&str] = &["flux-system", "kindling"];

pub(crate) fn finish(draft: Draft) -> Result<Stamp, StampError> {
    let Draft {
        mut stamp,
        mut problems,
        dropped,
    } = draft;
    let file = stamp.file.clone();
    if !is_dns_label(&stamp.name) {
        problems.push(Problem::new(
            &file,
            None,
            "metadata.name",
            format!("'{}' is not a valid name", stamp.name),
            "use lower-case letters, digits and '-', at most 63 characters (it names Kubernetes objects)",
        ));
    }
    check_names(&stamp, &mut problems);
    for entry in &stamp.entries {
        check_entry(entry, &stamp.repo_root, &mut problems)?;
        // A stamp pins its charts exactly; a HostK8s stack keeps what its HelmReleases say
        // (Flux resolves ranges there).
        if stamp.format == super::StampFormat::Kindling
            && let Source::Helm(h) = &entry.source
        {
            check_helm_pin(entry, h, &mut problems);
        }
    }
    check_secrets(&stamp, &mut problems);
    let graph = check_graph(&stamp, &dropped, &mut problems);
    if !problems.is_empty() {
        // A stamp whose name is missing is named by its directory, as an unreadable one is.
        let name = match stamp.name.is_empty() {
            true => stamp
                .dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            false => stamp.name,
        };
        return Err(StampError::Invalid {
            stamp: name,
            problems,
        });
    }
    stamp.graph = graph.unwrap_or_default();
    Ok(stamp)
}

/// Orders the entries again after kindling added its own (`crate::addons`).
pub(crate) fn rebuild_graph(stamp: &mut Stamp) -> Result<(), StampError> {
    let mut problems = Vec::new();
    let graph = check_graph(stamp, &[], &mut problems);
    if !problems.is_empty() {
        return Err(StampError::Invalid {
            stamp: stamp.name.clone(),
            problems,
        });
    }
    stamp.graph = graph.unwrap_or_default();
    Ok(())
}

fn check_names(stamp: &Stamp, problems: &mut Vec<Problem>) {
    let mut seen: HashSet<&str> = HashSet::new();
    for e in &stamp.entries {
        if !seen.insert(&e.name) {
            problems.push(Problem::new(
                &e.declared_in,
                Some(&e.name),
                "name",
                "is used by more than one entry",
                "give every component and application a unique name",
            ));
        }
        if !is_dns_label(&e.name) {
            problems.push(Problem::new(
                &e.declared_in,
                Some(&e.name),
                "name",
                "is not a valid name",
                "use lower-case letters, digits and '-', at most 63 characters (it names the Flux Kustomization or Argo CD Application)",
            ));
        }
        if RESERVED_NAMES.contains(&e.name.as_str()) || e.name.starts_with("kindling-") {
            problems.push(Problem::new(
                &e.declared_in,
                Some(&e.name),
                "name",
                "is reserved for kindling's own bootstrap objects",
                "rename the entry (names 'flux-system', 'kindling' and 'kindling-*' are taken)",
            ));
        }
    }
}

/// Each health check names a kind (with an apiVersion kindling cannot fill in), an object
/// name and a namespace that Kubernetes accepts.
fn check_health_checks(e: &Entry, problems: &mut Vec<Problem>) {
    let at = |field: &str, message: String, help: &str| {
        Problem::new(&e.declared_in, Some(&e.name), field, message, help)
    };
    for (i, h) in e.health_checks.iter().enumerate() {
        let field = format!("healthChecks[{i}]");
        if !is_kind(&h.kind) {
            problems.push(at(
                &format!("{field}.kind"),
                format!("'{}' is not a Kubernetes kind", h.kind),
                "kinds are UpperCamelCase, like Deployment or HelmRelease",
            ));
        } else if h.resolved_api_version().is_none() {
            problems.push(at(
                &format!("{field}.apiVersion"),
                format!("is required for kind '{}'", h.kind),
                "add apiVersion: GROUP/VERSION (kindling fills it in only for well-known kinds)",
            ));
        }
        if !is_dns_subdomain(&h.name) {
            problems.push(at(
                &format!("{field}.name"),
                format!("'{}' is not a valid object name", h.name),
                "use lower-case letters, digits, '-' and '.'",
            ));
        }
        if let Some(ns) = &h.namespace
            && !is_dns_label(ns)
        {
            problems.push(at(
                &format!("{field}.namespace"),
                format!("'{ns}' is not a valid namespace"),
                "use lower-case letters, digits and '-'",
            ));
        }
    }
}

fn check_entry(
    e: &Entry,
    root: &std::path::Path,
    problems: &mut Vec<Problem>,
) -> Result<(), StampError> {
    let at = |field: &str, message: String, help: &str| {
        Problem::new(&e.declared_in, Some(&e.name), field, message, help)
    };
    if let Some(ns) = &e.namespace
        && !is_dns_label(ns)
    {
        problems.push(at(
            "namespace",
            format!("'{ns}' is not a valid namespace"),
            "use lower-case letters, digits and '-', at most 63 characters",
        ));
    }
    for (field, value) in [
        ("timeout", &e.timeout),
        ("interval", &e.interval),
        ("retryInterval", &e.retry_interval),
    ] {
        if let Some(t) = value
            && !is_go_duration(t)
        {
            problems.push(at(
                field,
                format!("'{t}' is not a duration"),
                "write it like 30s, 5m or 1h30m",
            ));
        }
    }
    check_health_checks(e, problems);
    match &e.source {
        Source::Path(p) => {
            if !p.host_dir.is_dir() {
                problems.push(at(
                    "path",
                    format!("directory '{}' does not exist", p.host_dir.display()),
                    "create it, or fix the path (it is relative to the stamp's directory)",
                ));
                return Ok(());
            }
            check_no_plain_secrets(e, &p.host_dir, root, problems)?;
        }
        Source::Remote(r) => {
            // source-controller v1.9 api/v1: a Bucket is `endpoint` + `bucketName`, the
            // others a `url`.
            let needed: &[&str] = if r.kind == "Bucket" {
                &["endpoint", "bucketName"]
            } else {
                &["url"]
            };
            for field in needed {
                if r.object["spec"][field].as_str().is_none_or(str::is_empty) {
                    problems.push(at(
                        "spec.sourceRef",
                        format!("{} '{}' has no spec.{field}", r.kind, r.name),
                        "complete the source as Flux needs it",
                    ));
                }
            }
        }
        Source::Helm(h) => {
            if !(h.repo.starts_with("https://")
                || h.repo.starts_with("http://")
                || h.repo.starts_with("oci://"))
            {
                problems.push(at(
                    "helm.repo",
                    format!("'{}' is not a chart repository URL", h.repo),
                    "use an https:// chart repository or an oci:// registry",
                ));
            }
            if h.chart.trim().is_empty() {
                problems.push(at("helm.chart", "is empty".into(), "name the chart"));
            }
            if h.version.trim().is_empty() {
                problems.push(at(
                    "helm.version",
                    "is empty".into(),
                    "pin a chart version so every env gets the same thing",
                ));
            }
        }
    }
    Ok(())
}

/// Secrets never go to Git: a plain `Secret` (or a kustomize secretGenerator) in an entry's
/// manifests is an error pointing at `spec.secrets`.
fn check_no_plain_secrets(
    e: &Entry,
    dir: &std::path::Path,
    root: &std::path::Path,
    problems: &mut Vec<Problem>,
) -> Result<(), StampError> {
    for d in directory_documents(dir, root)? {
        if d.kind() == "Secret" && d.api_version() == "v1" {
            problems.push(Problem::new(
                &d.file,
                Some(&e.name),
                format!("Secret '{}'", d.name()),
                "is a plain Secret in Git",
                "declare it under spec.secrets (generate, fromFile or fromEnv): kindling creates it at env create and it never enters Git",
            ));
        }
    }
    if let Some(k) = kustomization_file(dir) {
        let has_generator = read_documents(&k)?
            .first()
            .is_some_and(|d| d.value.get("secretGenerator").is_some());
        if has_generator {
            problems.push(Problem::new(
                &k,
                Some(&e.name),
                "secretGenerator",
                "generates Secrets from files in Git",
                "declare the secret under spec.secrets instead",
            ));
        }
    }
    Ok(())
}

fn check_secrets(stamp: &Stamp, problems: &mut Vec<Problem>) {
    let mut seen = HashSet::new();
    for s in &stamp.secrets {
        let field = format!("spec.secrets[{}]", s.name);
        if !is_dns_subdomain(&s.name) {
            problems.push(Problem::new(
                &stamp.file,
                None,
                format!("{field}.name"),
                format!("'{}' is not a valid Secret name", s.name),
                "use lower-case letters, digits, '-' and '.'",
            ));
        }
        if !is_dns_label(&s.namespace) {
            problems.push(Problem::new(
                &stamp.file,
                None,
                format!("{field}.namespace"),
                format!("'{}' is not a valid namespace", s.namespace),
                "use lower-case letters, digits and '-'",
            ));
        }
        if !seen.insert((&s.namespace, &s.name)) {
            problems.push(Problem::new(
                &stamp.file,
                None,
                field.clone(),
                format!("is declared twice in namespace '{}'", s.namespace),
                "merge the two declarations",
            ));
        }
        if s.keys.is_empty() {
            problems.push(Problem::new(
                &stamp.file,
                None,
                format!("{field}.keys"),
                "is empty",
                "a Secret needs at least one key",
            ));
        }
        for k in &s.keys {
            let valid_key = !k.key.is_empty()
                && k.key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid_key {
                problems.push(Problem::new(
                    &stamp.file,
                    None,
                    format!("{field}.keys[{}]", k.key),
                    "is not a valid Secret key",
                    "use letters, digits, '-', '_' and '.'",
                ));
            }
            if let SecretValue::Generate(generator) = &k.value
                && let Some(p) = generator.length_problem()
            {
                problems.push(Problem::new(
                    &stamp.file,
                    None,
                    format!("{field}.keys[{}].generate.length", k.key),
                    p.message,
                    p.help,
                ));
            }
        }
    }
}

fn check_graph(stamp: &Stamp, dropped: &[String], problems: &mut Vec<Problem>) -> Option<Graph> {
    let index: HashMap<&str, usize> = stamp
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    let known = || {
        let mut names: Vec<&str> = stamp.entries.iter().map(|e| e.name.as_str()).collect();
        names.sort();
        names.join(", ")
    };
    let mut deps = Vec::with_capacity(stamp.entries.len());
    for e in &stamp.entries {
        let mut ds = Vec::new();
        for d in &e.depends_on {
            match index.get(d.as_str()) {
                Some(&i) => ds.push(i),
                None if dropped.contains(d) => {}
                None => problems.push(Problem::new(
                    &e.declared_in,
                    Some(&e.name),
                    "dependsOn",
                    format!("depends on '{d}', which does not exist"),
                    format!("known entries: {}", known()),
                )),
            }
        }
        deps.push(ds);
    }
    match Graph::build(&deps) {
        Ok(g) => Some(g),
        Err(Cycle(cycle)) => {
            let path: Vec<&str> = cycle
                .iter()
                .map(|&i| stamp.entries[i].name.as_str())
                .collect();
            let first = &stamp.entries[cycle[0]];
            problems.push(Problem::new(
                &first.declared_in,
                Some(&first.name),
                "dependsOn",
                format!("dependency cycle: {}", path.join(" -> ")),
                "remove one of these dependencies so the entries can be reconciled in order",
            ));
            None
        }
    }
}

/// What `helm install` (and Flux's helm-controller or Argo CD after it) would refuse, or
/// resolve differently in every env, caught before anything is made.
fn check_helm_pin(e: &Entry, h: &super::HelmChart, problems: &mut Vec<Problem>) {
    let at = |field: &str, message: String, help: &str| {
        Problem::new(&e.declared_in, Some(&e.name), field, message, help)
    };
    if !h.version.trim().is_empty() && !is_exact_version(&h.version) {
        problems.push(at(
            "helm.version",
            format!("{:?} is not an exact chart version", h.version),
            "pin one release, e.g. 1.21.1 or v1.21.1: `latest`, `*` and ranges resolve differently over time",
        ));
    }
    if !h.chart.trim().is_empty() && !is_chart_name(&h.chart) {
        problems.push(at(
            "helm.chart",
            format!("{:?} is not a chart name", h.chart),
            "the chart's name alone (letters, digits, '-', '_', '.'); the repository goes in helm.repo",
        ));
    }
    if let Some(release) = &h.release_name
        && !(is_dns_label(release) && release.len() <= 53)
    {
        problems.push(at(
            "helm.releaseName",
            format!("{release:?} is not a release name Helm accepts"),
            "lower-case letters, digits and '-', at most 53 characters",
        ));
    }
    if h.repo.starts_with("http://") && !h.plain_http {
        problems.push(at(
            "helm.repo",
            format!(
                "{:?} is plain http: the chart (and what it deploys) could be swapped by anyone on the way",
                h.repo
            ),
            "use the repository's https:// URL, or accept plain http for this entry with `plainHttp: true` under helm",
        ));
    }
    if let Some(why) = url_problem(&h.repo) {
        problems.push(at(
            "helm.repo",
            format!("{:?} is not a well-formed repository URL: {why}", h.repo),
            "use https://host/path for a chart repository or oci://host/path for a registry",
        ));
    }
}

/// `1.2.3`, `v1.2.3`, with an optional `-pre` and `+build` (SemVer 2.0).
pub fn is_exact_version(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (core, rest) = match v.find(['-', '+']) {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, ""),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
}

fn is_chart_name(c: &str) -> bool {
    c.len() <= 250
        && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Why `repo` is no usable http(s):// or oci:// URL (the scheme is checked elsewhere).
fn url_problem(repo: &str) -> Option<&'static str> {
    let rest = ["https://", "http://", "oci://"]
        .iter()
        .find_map(|s| repo.strip_prefix(s))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Some("no host");
    }
    if repo.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("it contains spaces or control characters");
    }
    let name = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let name = name.split(':').next().unwrap_or_default();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']'))
    {
        return Some("the host is not a host name");
    }
    None
}

/// RFC 1123 label: what Kubernetes requires of namespaces and of most object names.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_kind(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A Go `time.ParseDuration` string without sign: `1h30m`, `90s`, `1.5h`, `500ms`.
pub fn is_go_duration(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || number.starts_with('.') || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(*u));
        let Some(unit) = unit else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamp_helm_pins_are_exact_versions_chart_names_and_urls() {
        for good in ["1.21.1", "v1.21.1", "41.3.0", "1.0.0-rc.1", "1.0.0+build.5"] {
            assert!(is_exact_version(good), "{good}");
        }
        for bad in [
            "latest",
            "*",
            "1",
            "1.2",
            "~1.2.3",
            "^1.2.3",
            ">=1.0.0",
            "1.x.0",
            "1.2.3 || 2.0.0",
            "1.2.3\u{1b}[31m",
        ] {
            assert!(!is_exact_version(bad), "{bad}");
        }
        assert!(is_chart_name("cert-manager") && is_chart_name("kube_state.metrics"));
        assert!(!is_chart_name("charts/podinfo") && !is_chart_name("-x") && !is_chart_name(""));
        assert_eq!(url_problem("https://charts.jetstack.io"), None);
        assert_eq!(url_problem("oci://ghcr.io/stefanprodan/charts"), None);
        assert_eq!(url_problem("https://user@host:8443/path"), None);
        assert_eq!(url_problem("oci:///charts"), Some("no host"));
        assert!(url_problem("https://ho st/x").is_some());
        assert!(url_problem("https://h!st/x").is_some());
    }

    use super::*;

    #[test]
    fn stamp_names_follow_rfc1123() {
        assert!(is_dns_label("api-2"));
        assert!(!is_dns_label("Api"));
        assert!(!is_dns_label("-api"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("root-ca.secret"));
        assert!(!is_dns_subdomain("root_ca"));
    }

    #[test]
    fn stamp_timeouts_are_go_durations() {
        for ok in ["5m", "1h30m", "90s", "1.5h", "500ms"] {
            assert!(is_go_duration(ok), "{ok}");
        }
        for bad in ["", "5", "m", "5 m", "-5m", "5min", ".5s", "1..2s"] {
            assert!(!is_go_duration(bad), "{bad}");
        }
    }
}
