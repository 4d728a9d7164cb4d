#!/usr/bin/env bash
# Runs every kindling test. On a fresh Debian machine it first installs what the tests need:
#   - kubectl, for `kubectl kustomize` (the stamp tests build every path entry with it)
#   - openssl, to verify the local CA's chains and name constraints
#   - libnss3-tools (NSS's certutil), for `ca trust` into real browser (NSS) databases
#   - a Docker engine (scripts/docker-engine.sh) and busybox-static, from which the Docker
#     tests build their image locally (no registry is reachable on CI machines), and Debian's
#     docker-registry, from which they build a real registry image (plain and pull-through)
#   - Podman (scripts/podman-engine.sh), a second real engine for the Docker-layer tests
# Everything the tests read is in the repository (upstream files in tests/fixtures/upstream).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: need to install $*; run as root or install them first" >&2
    return 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! kubectl kustomize --help >/dev/null 2>&1; then
  echo "test.sh: installing kubectl (for kustomize)"
  apt_install kubectl || apt_install kubernetes-client
fi

if ! command -v openssl >/dev/null 2>&1; then
  echo "test.sh: installing openssl"
  apt_install openssl
fi

if ! command -v certutil >/dev/null 2>&1; then
  echo "test.sh: installing libnss3-tools (NSS's certutil)"
  apt_install libnss3-tools
fi

if [ ! -x /bin/busybox ] || ! file -L /bin/busybox 2>/dev/null | grep -q static; then
  echo "test.sh: installing busybox-static"
  apt_install busybox-static file
fi

if [ ! -x /usr/bin/docker-registry ]; then
  echo "test.sh: installing docker-registry (for the registry image the tests build)"
  apt_install docker-registry
  # Debian starts it as a service; the tests only need the binary.
  (systemctl stop docker-registry || pkill -f 'docker-registry serve' || true) >/dev/null 2>&1
fi

# The Docker tests need an engine; on CI they fail (not skip) without one.
scripts/docker-engine.sh || [ "${CI:-}" != "true" ]

# Every package of Cargo.lock, for every platform: tests/pins.rs reads the whole resolve with
# `cargo metadata --offline` (a build fetches only this platform's).
cargo fetch --locked >/dev/null

# The closing line sums every test binary's result (the last binaries cargo runs are examples
# with no tests, whose "0 passed" would otherwise be the last word).
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --all-targets "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# The Docker-layer tests (networks, volumes, containers, labels, exec, loopback ports, sweep,
# health) once more against Podman's Docker-compatible API, a second real engine. Skipped
# with a note where Podman cannot be had; on CI it must run.
if [ "$#" -eq 0 ]; then
  if podman_host=$(scripts/podman-engine.sh); then
    set +e
    DOCKER_HOST="$podman_host" cargo test --test docker 2>&1 | sed 's/^/podman: /' | tee -a "$log"
    podman_status=${PIPESTATUS[0]}
    set -e
    [ "$podman_status" -eq 0 ] || status=$podman_status
  elif [ "${CI:-}" = "true" ]; then
    echo "test.sh: Podman is required on CI (scripts/podman-engine.sh failed)" >&2
    status=1
  else
    echo "test.sh: skipped the Podman run (scripts/podman-engine.sh failed)" >&2
  fi
fi
awk '/^(podman: )?test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
