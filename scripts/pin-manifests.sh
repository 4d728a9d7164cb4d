#!/usr/bin/env bash
# Prints the sha256 of each pinned install manifest, downloaded fresh, to fill in the `sha256`
# fields of src/engine/manifests.rs on a host with internet. kindling never needs this to run:
# without a pinned sum it records the sum at first download and enforces it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
flux=$(sed -n 's/^pub const FLUX_VERSION: &str = "\(.*\)";/\1/p' src/engine/manifests.rs)
argo=$(sed -n 's/^pub const ARGO_VERSION: &str = "\(.*\)";/\1/p' src/engine/manifests.rs)
for pair in \
  "flux $flux https://github.com/fluxcd/flux2/releases/download/$flux/install.yaml" \
  "argo $argo https://raw.githubusercontent.com/argoproj/argo-cd/$argo/manifests/install.yaml"; do
  set -- $pair
  sum=$(curl -fsSL --retry 3 "$3" | sha256sum | cut -d' ' -f1)
  echo "$1 $2 $sum"
done
