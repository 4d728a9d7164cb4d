#!/usr/bin/env bash
# Makes sure a Docker engine answers. When none does, installs Debian's docker.io (apt) and
# starts dockerd in the background, then waits (bounded) until `docker info` answers.
# Does nothing when an engine already answers. Prints what it did.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "docker-engine.sh: a Docker engine already answers"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "docker-engine.sh: no Docker engine and not root; install and start Docker yourself" >&2
    exit 1
  fi
  echo "docker-engine.sh: installing docker.io (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

log=${DOCKERD_LOG:-/tmp/kindling-dockerd.log}
echo "docker-engine.sh: starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker-engine.sh: dockerd answers ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
echo "docker-engine.sh: dockerd did not answer within 60s; last log lines:" >&2
tail -20 "$log" >&2
exit 1
