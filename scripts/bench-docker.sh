#!/usr/bin/env bash
# The Docker side of one env (network, volume, two containers; then removal), ROUNDS times,
# through kindling's code path vs the same steps as `docker` CLI calls. Goal: kindling <= 0.7x.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
image=kindling-test/busybox:bench

if ! docker image inspect "$image" >/dev/null 2>&1; then
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin" "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/"
  for a in sh echo cat ls sleep httpd nc wget mkdir true false; do ln -s busybox "$rootfs/bin/$a"; done
  tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
  rm -rf "$rootfs"
fi

cargo build --release --quiet --example bench_docker_env
kindling_s=$(target/release/examples/bench_docker_env "$image" "$rounds")

start=$(date +%s.%N)
for round in $(seq 1 "$rounds"); do
  env="clibench$$x$round"
  docker network create --label "dev.kindling.env=$env" "kindling-$env" >/dev/null
  docker volume create --label "dev.kindling.env=$env" "kindling-$env-data" >/dev/null
  for name in gitea registry; do
    docker run -d --name "kindling-$env-$name" --label "dev.kindling.env=$env" \
      --network "kindling-$env" -v "kindling-$env-data:/data" "$image" sleep 300 >/dev/null
    until [ "$(docker inspect -f '{{.State.Running}}' "kindling-$env-$name")" = true ]; do sleep 0.05; done
  done
  docker rm -f -v "kindling-$env-gitea" "kindling-$env-registry" >/dev/null
  docker volume rm "kindling-$env-data" >/dev/null
  docker network rm "kindling-$env" >/dev/null
done
cli_s=$(echo "$(date +%s.%N) - $start" | bc)

ratio=$(echo "scale=2; $kindling_s / $cli_s" | bc)
echo "rounds: $rounds"
echo "kindling (bollard): ${kindling_s}s"
echo "docker CLI:         ${cli_s}s"
echo "ratio kindling/CLI: $ratio (goal <= 0.7)"
