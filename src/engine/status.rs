//! One status model for both engines (pure): per stamp entry whether it is ready and, if not,
//! why, at which revision, and which dependency holds it back.

use serde::Serialize;

use crate::stamp::Stamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Readiness {
    Ready,
    /// Reconciling, waiting for a dependency, or not yet judged.
    Progressing,
    Failed,
    Suspended,
    /// The engine has not created the entry's object (yet).
    Missing,
}

impl Readiness {
    pub fn label(self) -> &'static str {
        match self {
            Readiness::Ready => "Ready",
            Readiness::Progressing => "Progressing",
            Readiness::Failed => "Failed",
            Readiness::Suspended => "Suspended",
            Readiness::Missing => "Missing",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryStatus {
    pub name: String,
    /// The engine object that carries the entry (`Kustomization`, `Application`).
    pub kind: String,
    pub readiness: Readiness,
    pub reason: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub suspended: bool,
    /// The first dependency (in dependency order) that is not Ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// Argo CD's sync and health status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Behind a manual gate (`gate: manual`): the gate itself or what depends on it, left
    /// until `env approve ENV ENTRY`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_approval: bool,
    /// Applied from the working tree by `env apply`; the engine takes it back at `env sync`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub applied_directly: bool,
    /// Live objects that differ from Git (`KIND NS/NAME (drifted|created|pruned)`), as
    /// `env diff` finds them; checked for Ready entries the engine is in charge of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drifted: Vec<String>,
}

impl EntryStatus {
    pub fn missing(name: &str, kind: &str) -> EntryStatus {
        EntryStatus {
            name: name.to_string(),
            kind: kind.to_string(),
            readiness: Readiness::Missing,
            reason: "NotCreated".to_string(),
            message: "the engine has not created it yet".to_string(),
            revision: None,
            suspended: false,
            blocked_by: None,
            sync: None,
            health: None,
            awaiting_approval: false,
            applied_directly: false,
            drifted: Vec::new(),
        }
    }
}

/// The Git source as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    pub kind: String,
    pub name: String,
    pub readiness: Readiness,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineStatus {
    pub engine: String,
    /// `--hold`: the root is registered but does not reconcile until `env approve`.
    pub awaiting_approval: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStatus>,
    /// In dependency order.
    pub entries: Vec<EntryStatus>,
    /// Entries with `gate: manual` not approved yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<String>,
}

impl EngineStatus {
    /// Everything that may reconcile has: every entry Ready but those behind a manual gate,
    /// which wait for `env approve ENV ENTRY` (`gates` names them).
    pub fn all_ready(&self) -> bool {
        !self.awaiting_approval
            && self.entries.iter().all(|e| {
                e.awaiting_approval || e.applied_directly || e.readiness == Readiness::Ready
            })
    }

    /// Marks the entries behind `stamp`'s manual gates: the gates and, transitively, what
    /// depends on them.
    pub fn mark_gates(&mut self, stamp: &crate::stamp::Stamp) {
        self.gates = stamp
            .entries
            .iter()
            .filter(|e| e.manual_gate)
            .map(|e| e.name.clone())
            .collect();
        let mut held: Vec<String> = self.gates.clone();
        loop {
            let more: Vec<String> = stamp
                .entries
                .iter()
                .filter(|e| !held.contains(&e.name))
                .filter(|e| e.depends_on.iter().any(|d| held.contains(d)))
                .map(|e| e.name.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            held.extend(more);
        }
        for e in &mut self.entries {
            if stamp.entry(&e.name).is_some_and(|s| s.applied_directly) {
                e.applied_directly = true;
                e.message = format!(
                    "applied directly from the working tree; `kindling env sync` hands {} back to the engine",
                    e.name
                );
            }
            if !held.contains(&e.name) {
                continue;
            }
            e.awaiting_approval = true;
            if self.gates.contains(&e.name) && e.readiness != Readiness::Ready {
                e.reason = "AwaitingApproval".to_string();
                e.message = format!(
                    "gate: manual; `kindling env approve ENV {}` lets it reconcile",
                    e.name
                );
            }
        }
    }

    /// The first entry, in dependency order, that is not Ready and not merely waiting for a
    /// dependency: where to look first.
    pub fn first_blocking(&self) -> Option<&EntryStatus> {
        self.entries
            .iter()
            .find(|e| e.readiness != Readiness::Ready && e.blocked_by.is_none())
    }

    /// Whether every entry reports having applied `commit` (the pushed snapshot): the entries'
    /// revisions name it (`main@sha1:<commit>` for Flux, the bare sha for Argo CD). Helm
    /// entries report a chart version instead and are judged by readiness alone.
    pub fn reconciled_at(&self, commit: &str) -> bool {
        self.all_ready()
            && self
                .source
                .as_ref()
                .is_none_or(|s| s.revision.as_deref().is_some_and(|r| r.contains(commit)))
            && self
                .entries
                .iter()
                .filter(|e| !e.awaiting_approval)
                .all(|e| match &e.revision {
                    Some(r) if looks_like_git_revision(r) => r.contains(commit),
                    _ => true,
                })
    }
}

/// A Git commit (`main@sha1:<40 hex>`, or Argo CD's bare 40 hex), not an OCI artifact's
/// `<tag>@sha256:<64 hex>` or a chart version: only those follow the pushed commit.
fn looks_like_git_revision(revision: &str) -> bool {
    let sha = revision.rsplit(':').next().unwrap_or(revision);
    sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Fills `blocked_by` of every entry that is not Ready from the stamp's dependency graph and
/// puts the entries in dependency order.
pub fn link_dependencies(stamp: &Stamp, entries: Vec<EntryStatus>) -> Vec<EntryStatus> {
    let mut ordered: Vec<EntryStatus> = Vec::with_capacity(entries.len());
    for entry in stamp.ordered_entries() {
        let Some(found) = entries.iter().find(|e| e.name == entry.name) else {
            continue;
        };
        let mut status = found.clone();
        if status.readiness != Readiness::Ready {
            status.blocked_by = entry
                .depends_on
                .iter()
                .find(|d| {
                    ordered
                        .iter()
                        .find(|o| &o.name == *d)
                        .is_none_or(|o| o.readiness != Readiness::Ready)
                })
                .cloned();
        }
        ordered.push(status);
    }
    ordered
}

/// The `status.conditions[type]` entry as (status, reason, message).
pub fn condition_of(object: &serde_json::Value, kind: &str) -> Option<(String, String, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
}

/// Shortens a revision for the table: `main@sha1:3f0e6a3c…` → `main@3f0e6a3c`.
fn short_revision(revision: &str) -> String {
    match revision.split_once("@sha1:") {
        Some((branch, sha)) => format!("{branch}@{}", &sha[..sha.len().min(8)]),
        None if revision.len() == 40 => revision[..8].to_string(),
        None => revision.to_string(),
    }
}

/// The per-entry table of `env status` (plain text, no escape codes): entries in dependency
/// order, the first blocking entry marked with `>`, waiting entries naming what they wait for.
pub fn render_table(status: &EngineStatus) -> String {
    let first = status.first_blocking().map(|e| e.name.clone());
    let mut rows = vec![[
        String::new(),
        "ENTRY".to_string(),
        "STATUS".to_string(),
        "REASON".to_string(),
        "REVISION".to_string(),
        "MESSAGE".to_string(),
    ]];
    for e in &status.entries {
        let marker = if Some(&e.name) == first.as_ref() {
            ">"
        } else {
            ""
        };
        let message = match &e.blocked_by {
            Some(dep) => format!("waiting for {dep}"),
            None => e.message.lines().next().unwrap_or_default().to_string(),
        };
        rows.push([
            marker.to_string(),
            e.name.clone(),
            e.readiness.label().to_string(),
            e.reason.clone(),
            e.revision
                .as_deref()
                .map(short_revision)
                .unwrap_or_default(),
            message,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    if status.awaiting_approval {
        out.push_str("awaiting approval: run `kindling env approve` to start reconciling\n");
    }
    if let Some(source) = &status.source {
        out.push_str(&format!(
            "source {} {}: {} {}\n",
            source.kind,
            source.name,
            source.readiness.label(),
            source
                .revision
                .as_deref()
                .map(short_revision)
                .unwrap_or_default()
        ));
    }
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c < 5 {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, readiness: Readiness, blocked_by: Option<&str>) -> EntryStatus {
        EntryStatus {
            name: name.into(),
            kind: "Kustomization".into(),
            readiness,
            reason: "R".into(),
            message: "first line\nsecond".into(),
            revision: Some("main@sha1:3f0e6a3c7d2b1e4f5a6b7c8d9e0f1a2b3c4d5e6f".into()),
            suspended: false,
            blocked_by: blocked_by.map(str::to_string),
            sync: None,
            health: None,
            awaiting_approval: false,
            applied_directly: false,
            drifted: Vec::new(),
        }
    }

    #[test]
    fn status_table_marks_the_first_blocking_entry_and_waiting_ones() {
        let status = EngineStatus {
            engine: "flux".into(),
            awaiting_approval: false,
            source: None,
            entries: vec![
                entry("certs", Readiness::Ready, None),
                entry("ingress", Readiness::Failed, None),
                entry("api", Readiness::Progressing, Some("ingress")),
            ],
            gates: Vec::new(),
        };
        let table = render_table(&status);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("   ENTRY"), "{table}");
        assert!(lines[1].starts_with("   certs    Ready"), "{table}");
        assert!(lines[1].contains("main@3f0e6a3c"), "{table}");
        assert!(lines[2].starts_with(">  ingress  Failed"), "{table}");
        assert!(lines[2].ends_with("first line"), "{table}");
        assert!(lines[3].ends_with("waiting for ingress"), "{table}");
        assert!(!table.contains('\u{1b}'));
    }
}
