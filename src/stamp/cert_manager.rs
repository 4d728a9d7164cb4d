//! A stamp on a cluster that runs cert-manager already (`crate::cluster::cert_manager`): its
//! own install of cert-manager is left out, since Helm refuses a second release over the first
//! one's CRDs, and two controllers would fight over every Certificate.

use super::{Entry, Source, Stamp, StampError};

/// The chart kindling knows as cert-manager's (charts.jetstack.io and its OCI mirror).
const CHART: &str = "cert-manager";

/// The stamp's entries that install cert-manager.
pub fn installs(stamp: &Stamp) -> Vec<&Entry> {
    stamp
        .entries
        .iter()
        .filter(|e| matches!(&e.source, Source::Helm(h) if h.chart == CHART))
        .collect()
}

/// Whether the stamp counts on cert-manager: it installs one, declares cert-manager's objects
/// (an issuer of the env's CA, Certificates), or checks the env's CA Secret `ca_secret_name`.
/// (Objects a chart or a templated file makes are not read here.)
pub fn counted_on(stamp: &Stamp, ca_secret_name: &str) -> bool {
    !installs(stamp).is_empty()
        || super::manifests::declares_group(stamp, "cert-manager.io/")
        || stamp
            .entries
            .iter()
            .flat_map(|e| &e.health_checks)
            .any(|c| c.kind == "Secret" && c.name == ca_secret_name)
}

/// `stamp` for a cluster whose cert-manager reads ClusterIssuers' Secrets from
/// `resource_namespace`:
/// - the entries that install cert-manager are gone, and an entry that waited for one waits
///   for what that one waited for;
/// - a health check of the env's CA Secret (`ca_secret`, namespace and name, where kindling
///   puts it on a cluster it made) looks for it in `resource_namespace`, where it goes now.
pub fn with_the_clusters(
    mut stamp: Stamp,
    resource_namespace: &str,
    ca_secret: (&str, &str),
) -> Result<Stamp, StampError> {
    let dropped: Vec<Entry> = installs(&stamp).into_iter().cloned().collect();
    if !dropped.is_empty() {
        stamp
            .entries
            .retain(|e| !dropped.iter().any(|d| d.name == e.name));
        for entry in &mut stamp.entries {
            entry.depends_on = waits_for(&entry.depends_on, &dropped);
        }
    }
    let (ca_namespace, ca_name) = ca_secret;
    for check in stamp.entries.iter_mut().flat_map(|e| &mut e.health_checks) {
        if check.kind == "Secret"
            && check.name == ca_name
            && check.namespace.as_deref() == Some(ca_namespace)
        {
            check.namespace = Some(resource_namespace.to_string());
        }
    }
    super::rebuild_graph(&mut stamp)?;
    Ok(stamp)
}

/// `depends_on` with each dropped entry replaced by what it depended on, transitively.
fn waits_for(depends_on: &[String], dropped: &[Entry]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = depends_on.to_vec();
    let mut seen = std::collections::HashSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        match dropped.iter().find(|d| d.name == name) {
            Some(d) => todo.extend(d.depends_on.iter().cloned()),
            None => out.push(name),
        }
    }
    // The declared order, then what came through a dropped entry.
    out.sort_by_key(|n| depends_on.iter().position(|d| d == n).unwrap_or(usize::MAX));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_manager_install_of_the_sample_is_left_to_the_clusters() {
        let sample = crate::stamp::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stamps/sample"),
            None,
        )
        .unwrap();
        assert_eq!(installs(&sample).len(), 1);
        let stamp =
            with_the_clusters(sample, "platform", ("cert-manager", "root-ca-secret")).unwrap();
        assert!(installs(&stamp).is_empty());
        assert!(stamp.entry("certs").is_none());
        let issuer = stamp.entry("certs-issuer").unwrap();
        assert!(issuer.depends_on.is_empty(), "{:?}", issuer.depends_on);
        assert_eq!(
            issuer.health_checks[0].namespace.as_deref(),
            Some("platform")
        );
        // Every other entry is still there.
        assert!(stamp.entry("ingress").is_some());
    }

    #[test]
    fn cert_manager_dependents_wait_for_what_the_dropped_install_waited_for() {
        let mut certs = installs_nothing("certs");
        certs.depends_on = vec!["namespaces".into(), "crds".into()];
        assert_eq!(
            waits_for(&["db".into(), "certs".into()], &[certs]),
            vec!["db".to_string(), "crds".into(), "namespaces".into()]
        );
        assert!(waits_for(&["certs".into()], &[installs_nothing("certs")]).is_empty());
    }

    fn installs_nothing(name: &str) -> Entry {
        let sample = crate::stamp::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stamps/sample"),
            None,
        )
        .unwrap();
        let mut e = sample.entries[0].clone();
        e.name = name.to_string();
        e.depends_on = Vec::new();
        e
    }
}
