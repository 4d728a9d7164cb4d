#!/usr/bin/env bash
# kindling's own overhead for `env create --wait` + `env delete`, measured over the fake flow
# the tests use (fake kind CLI, fake Gitea, in-memory Kubernetes API, a real registry
# container): everything but the cluster, Gitea and engine themselves. Runs the env flow test
# binary's round trip and watch tests N times and reports the timings kindling records per step,
# sync, delete, a watched edit until every entry is reconciled at the new commit, and `env stop`
# / `env start` (Gitea in a container, its route repaired).
#   scripts/bench-env.sh [runs]      (default 3)
# The real figures (cold create, warm create with caches, sync, delete) come from the e2e
# suite on a Docker host: scripts/e2e.sh prints "create took", "sync took", "delete took".
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
scripts/docker-engine.sh >/dev/null
cargo build --release --tests >/dev/null 2>&1
for i in $(seq "$runs"); do
  start=$(date +%s.%N)
  # A failing test, or one that no longer reports, is a failed benchmark, not an empty one.
  out=$(KINDLING_BENCH_REPORT=1 CI=true cargo test --release --test env_round_trip --test env_commands --test env_lifecycle -- env_create_status_sync_delete_round_trip env_watch_syncs_an_edit env_stop_and_start_bring_the_env_back_with_the_route_repaired --nocapture --test-threads=1 2>&1) || {
    echo "$out" | tail -40 >&2
    echo "bench-env.sh: the measured tests failed" >&2
    exit 1
  }
  lines=$(echo "$out" | grep -oE 'bench:.*' || true)
  if [ -z "$lines" ]; then
    echo "bench-env.sh: the tests reported no timings (KINDLING_BENCH_REPORT lines)" >&2
    exit 1
  fi
  echo "$lines"
  end=$(date +%s.%N)
  echo "run $i: round trip + watch + stop/start tests $(echo "$end - $start" | bc) s"
done
