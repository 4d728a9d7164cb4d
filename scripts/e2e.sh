#!/usr/bin/env bash
# The end-to-end suite (tests/e2e.rs) on a Docker host with internet: a real kind or k3d
# cluster, Gitea, Flux or Argo CD, cert-manager and the sample stamp, then sync, restart and
# delete. Usage:
#   scripts/e2e.sh                 # kind + flux, then k3d + argo
#   scripts/e2e.sh kind flux       # one combination
#   KINDLING_E2E_OFFLINE=1 scripts/e2e.sh kind argo   # also an offline create from a bundle
#   KINDLING_E2E_ADDONS=1 scripts/e2e.sh kind flux    # also HostK8s' sample with every add-on
# Needs: Docker (privileged containers), curl, internet. kind/k3d are downloaded (pinned) if
# they are not on PATH. Takes 5-15 minutes per combination.
set -euo pipefail
cd "$(dirname "$0")/.."

docker info >/dev/null 2>&1 || { echo "e2e.sh: no Docker engine answers" >&2; exit 1; }
command -v curl >/dev/null || { echo "e2e.sh: curl is required" >&2; exit 1; }

# kind's known issue: too few inotify watches make node pods fail ("too many open files").
if [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; then
  ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} sysctl -q fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512 || true
fi

if [ $# -ge 2 ]; then
  combos=("$1 $2")
else
  combos=("kind flux" "k3d argo")
fi

cargo build --release --tests
status=0
for combo in "${combos[@]}"; do
  set -- $combo
  echo "== e2e: $1 + $2"
  if ! KINDLING_E2E=1 KINDLING_E2E_PROVIDER=$1 KINDLING_E2E_ENGINE=$2 \
       cargo test --release --test e2e -- --nocapture --test-threads=1; then
    status=1
    echo "== e2e: $1 + $2 FAILED; environments left for inspection: kindling env list" >&2
  fi
done
exit $status
