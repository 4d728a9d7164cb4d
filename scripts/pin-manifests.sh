#!/usr/bin/env bash
# On a machine with internet: downloads every file the pins table (src/pins.rs, printed by
# `kindling version`) pins by sha256 — the engines' install manifests and the kind/k3d binaries
# for every platform — and prints the sum it saw beside the pinned one. Exits 1 if any differs,
# so a wrong or moved pin is caught before a user meets it. The e2e workflow runs it.
# Moving a pin: change src/pins.rs, run this, paste the sums it prints, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "pin-manifests.sh: curl is required" >&2; exit 1; }
command -v python3 >/dev/null || { echo "pin-manifests.sh: python3 is required" >&2; exit 1; }
failed="${TMPDIR:-/tmp}/kindling-pins.failed"
rm -f "$failed"
cargo run --quiet -- version --output json > "${TMPDIR:-/tmp}/kindling-pins.json"
python3 - "${TMPDIR:-/tmp}/kindling-pins.json" <<'PY' | while read -r name url pinned; do
import json, sys
for pin in json.load(open(sys.argv[1]))["pins"]:
    if "sha256" in pin:
        print(pin["name"], pin["artifact"], pin["sha256"])
    for platform, sum_ in pin.get("sha256ByPlatform", {}).items():
        print(f'{pin["name"]}-{platform}', f'{pin["artifact"]}/{pin["name"]}-{platform}', sum_)
PY
  if ! seen=$(set -o pipefail; curl -fsSL --retry 3 "$url" | sha256sum | cut -d' ' -f1); then
    echo "FAILED   $name: cannot download $url"
    echo 1 > "$failed"
  elif [ "$seen" = "$pinned" ]; then
    echo "ok       $name $seen"
  else
    echo "MISMATCH $name $url"
    echo "         pinned $pinned"
    echo "         seen   $seen"
    echo 1 > "$failed"
  fi
done
if [ -f "$failed" ]; then
  rm -f "$failed"
  exit 1
fi
