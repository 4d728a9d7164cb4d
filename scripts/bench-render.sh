#!/usr/bin/env bash
# Load + validate + render of a synthetic 500-entry stamp (Flux and Argo CD). Goal: < 100 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench stamp_render -- --noplot "$@"
