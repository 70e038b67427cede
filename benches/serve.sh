#!/usr/bin/env bash
# Whole-server benchmarks of `atlas serve` (crates/cloud-atlas-web/benches/serve.rs):
# start-up, idle RSS, `session ls --server`, 10,000 sessions on SQLite (per-user and
# full listing, touch with 64 clients), 1,000 SSE subscribers, dashboard bytes.
# Everything runs on 127.0.0.1 and every loop is bounded; about 3 minutes plus the build.
#
#   bash benches/serve.sh
#
# Needs wrk (apt-get install wrk). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null 2>&1 || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
ulimit -n 8192 2>/dev/null || true
cargo build -q --release --bin atlas
export ATLAS_BIN="${CARGO_TARGET_DIR:-target}/release/atlas"
cargo bench -q -p cloud-atlas-web --bench serve
