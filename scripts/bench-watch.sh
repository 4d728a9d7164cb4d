#!/usr/bin/env bash
# env watch on a generated 50,000-file tree: idle CPU over 10 s (goal: < 1% of a core) and
# edit -> sync-started latency beyond the debounce (goal: < 100 ms); --poll's idle CPU beside.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench watch "$@"
