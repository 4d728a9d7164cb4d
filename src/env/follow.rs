//! Following the engine's status until a condition holds (`--wait` of create, status, sync).

use std::time::{Duration, Instant};

use super::EnvError;
use crate::engine::{self, Engine, EngineStatus};
use crate::kube::KubeClient;
use crate::stamp::Stamp;
use crate::ui::Progress;

/// The least time one read of the engine's status is given.
const MIN_READ: Duration = Duration::from_secs(10);

/// How often `--wait` looks at the engine's objects.
pub(crate) fn poll_interval() -> Duration {
    Duration::from_millis(
        std::env::var("KINDLING_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    )
}

fn blocking_line(status: &EngineStatus) -> String {
    if status.awaiting_approval {
        return ": awaiting approval (`kindling env approve`)".into();
    }
    match status.first_blocking() {
        Some(e) => format!(
            ": {} is {} ({}){}",
            e.name,
            e.readiness.label(),
            e.reason,
            if e.message.is_empty() {
                String::new()
            } else {
                format!(": {}", e.message.lines().next().unwrap_or_default())
            }
        ),
        None => String::new(),
    }
}

/// Follows the engine's status until `until` holds; on timeout the error names the first
/// blocking entry and why. An API error (a restarting API server, etcd away) is retried until
/// the timeout, and a request that hangs does not outlive it.
pub async fn follow(
    kube: &KubeClient,
    engine: Engine,
    stamp: &Stamp,
    timeout: Duration,
    progress: &Progress,
    until: impl Fn(&EngineStatus) -> bool,
) -> Result<EngineStatus, EnvError> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        // One read may take what is left of the timeout, but never less than a slow API
        // server needs to answer (a first read also discovers the API), so a short --timeout
        // still names what blocks rather than "no answer".
        let left = deadline.saturating_duration_since(Instant::now());
        let read = left.max(MIN_READ);
        let line = match tokio::time::timeout(read, engine::status(kube, engine, stamp)).await {
            Ok(Ok(status)) => {
                if until(&status) {
                    return Ok(status);
                }
                let line = blocking_line(&status);
                if line != last {
                    let ready = status
                        .entries
                        .iter()
                        .filter(|e| e.readiness == engine::Readiness::Ready)
                        .count();
                    progress.info(&format!("{ready}/{} Ready{line}", status.entries.len()));
                }
                line
            }
            Ok(Err(e)) => {
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                let why = format!("the engine's status cannot be read ({first})");
                let line = format!(": {why}");
                if line != last {
                    progress.warn(&format!("{why}; retrying"));
                }
                line
            }
            Err(_) => ": the API server did not answer".to_string(),
        };
        last = line;
        if Instant::now() >= deadline {
            return Err(EnvError::TimedOut {
                what: "the stamp to be reconciled".into(),
                seconds: timeout.as_secs(),
                blocking: last,
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(poll_interval().min(left)).await;
    }
}
