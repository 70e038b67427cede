#!/usr/bin/env bash
# Build every fuzz target once, then run each for SECONDS (default 20) on the stable
# toolchain without a sanitizer (`-s none`: the code forbids `unsafe`).
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# Seeds come from fuzz/corpus/<target>/ (read only); what libFuzzer discovers goes to a
# scratch folder, so a run never edits the committed corpus. A crash fails the run and
# leaves its input in fuzz/artifacts/<target>/ (turn it into a regression test in the
# normal suite). Prints one line per target: executions, seconds, corpus size.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
start=$(date +%s)
cargo fuzz build -s none
echo "fuzz build: $(( $(date +%s) - start ))s"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    log="$scratch/$t.log"
    if cargo fuzz run -s none "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    found=$(ls "$scratch/$t" | wc -l)
    echo "fuzz $t: $status, $runs executions in ${secs}s, $found new corpus inputs"
    if [ "$status" != ok ]; then
        tail -n 40 "$log"
    fi
done
echo "fuzz total: $(( $(date +%s) - start ))s"
exit "$failed"
