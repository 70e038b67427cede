#!/usr/bin/env bash
# Cold start of the `atlas` binary: `atlas --help` timed with hyperfine against a
# baseline process (/bin/true) in the same run, so the ratio is comparable across
# machines. `atlas --help` parses arguments only: no config, no runtime, no network.
#
#   bash benches/cli_startup.sh            # release build (what users run)
#   PROFILE=dev bash benches/cli_startup.sh
#   COLD=1 bash benches/cli_startup.sh     # drop the page cache before every run (root, Linux)
#
# Needs hyperfine (`apt-get install hyperfine` or `cargo install hyperfine`).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${PROFILE:-release}"
RUNS="${RUNS:-200}"
BASELINE="${BASELINE:-/bin/true}"

if ! command -v hyperfine >/dev/null 2>&1; then
  echo "error: hyperfine is not installed; install it with 'apt-get install hyperfine' or 'cargo install hyperfine'" >&2
  exit 1
fi

cargo build -q --profile "$PROFILE" --bin atlas
dir="$PROFILE"
[ "$PROFILE" = dev ] && dir=debug
atlas="${CARGO_TARGET_DIR:-target}/$dir/atlas"
[ -x "$atlas" ] || { echo "error: $atlas was not built" >&2; exit 1; }

prepare=()
if [ "${COLD:-0}" = 1 ]; then
  prepare=(--prepare 'sync; echo 3 > /proc/sys/vm/drop_caches')
fi

json="$(mktemp)"
trap 'rm -f "$json"' EXIT
hyperfine --shell=none --warmup 10 --runs "$RUNS" ${prepare[@]+"${prepare[@]}"} \
  --export-json "$json" \
  --command-name baseline "$BASELINE" \
  --command-name "atlas --help" "$atlas --help"

# Means in seconds, in command order (baseline first).
read -r base cli < <(awk -F': ' '/"mean"/ { gsub(/,/, "", $2); printf "%s ", $2 } END { print "" }' "$json")
awk -v b="$base" -v c="$cli" 'BEGIN {
  printf "\natlas --help: %.2f ms, baseline: %.2f ms, ratio: %.1fx (%.2f ms over the baseline)\n",
    c * 1000, b * 1000, c / b, (c - b) * 1000
}'
