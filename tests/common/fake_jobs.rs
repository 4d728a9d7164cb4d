//! The fake cluster's Job controller: a Job starts when it is created and, its pods standing
//! in for themselves, finishes at once, with the status the upstream job controller writes
//! (kubernetes/kubernetes, the 1.37 line, pkg/controller/job/job_controller.go):
//! `status.startTime` when it starts; on success `newSuccessCondition` first sets
//! `SuccessCriteriaMet` and, once the pods are gone, `Complete` (`delayTerminalCondition`
//! holds: the JobManagedBy and JobPodReplacementPolicy gates are on), with `status.succeeded`;
//! on failure past `spec.backoffLimit` `newFailureCondition` sets `FailureTarget` and then
//! `Failed`, reason `BackoffLimitExceeded` (k8s.io/api batch/v1 `JobReasonBackoffLimitExceeded`).
//! A Job a test marks `test.kindling.dev/health: Failed` fails.

use serde_json::json;

use super::fake_cluster::HEALTH_ANNOTATION;
use super::kube_api::Stored;

pub fn run_jobs(objects: &mut [Stored]) {
    for s in objects.iter_mut() {
        let o = &mut s.object;
        if o["kind"] != "Job" || !o["status"]["startTime"].is_null() {
            continue;
        }
        let fails = o["metadata"]["annotations"][HEALTH_ANNOTATION] == "Failed";
        let completions = o["spec"]["completions"].as_i64().unwrap_or(1);
        o["status"] = if fails {
            json!({
                "startTime": "2026-11-29T08:00:00Z",
                "failed": o["spec"]["backoffLimit"].as_i64().unwrap_or(6) + 1,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit"},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit"},
                ],
            })
        } else {
            json!({
                "startTime": "2026-11-29T08:00:00Z",
                "completionTime": "2026-11-29T08:00:01Z",
                "succeeded": completions,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods"},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods"},
                ],
            })
        };
    }
}
