#!/usr/bin/env bash
# Makes Podman's Docker-compatible API answer on a socket of its own, for running kindling's
# Docker-layer tests against Podman as a second real engine. Installs Debian's podman when it
# is missing (as root). Prints the socket's DOCKER_HOST value on stdout; progress on stderr.
#
# Podman 4.3 containers start in sandboxes that refuse a raised RLIMIT_NOFILE ("error setting
# rlimit type 7") unless containers.conf sets `default_ulimits = []`; the service gets one
# through CONTAINERS_CONF.
set -euo pipefail

dir=${PODMAN_TEST_DIR:-/tmp/kindling-podman}
socket="$dir/podman.sock"
mkdir -p "$dir"
conf="$dir/containers.conf"
printf '[containers]\ndefault_ulimits = []\n' >"$conf"

answers() { DOCKER_HOST="unix://$socket" docker version >/dev/null 2>&1; }

# A service an earlier run started is stopped and started afresh: a long-lived one (or two
# on one storage) was seen to fail container starts with "write child: broken pipe".
if [ -f "$dir/service.pid" ]; then
  kill "$(cat "$dir/service.pid")" 2>/dev/null || true
  for _ in $(seq 1 20); do answers || break; sleep 0.5; done
  rm -f "$dir/service.pid" "$socket"
fi
if answers; then
  echo "podman-engine.sh: a service this script did not start answers on $socket; using it" >&2
  echo "unix://$socket"
  exit 0
fi
if ! command -v podman >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "podman-engine.sh: podman is not installed and this is not root" >&2
    exit 1
  fi
  echo "podman-engine.sh: installing podman (Debian)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null
fi
echo "podman-engine.sh: starting podman system service on $socket ($(podman --version))" >&2
CONTAINERS_CONF="$conf" nohup podman system service --time=0 "unix://$socket" >"$dir/service.log" 2>&1 &
echo $! >"$dir/service.pid"
for _ in $(seq 1 30); do
  if answers; then
    echo "unix://$socket"
    exit 0
  fi
  sleep 1
done
echo "podman-engine.sh: the service did not answer within 30s; its log:" >&2
tail -20 "$dir/service.log" >&2
exit 1
