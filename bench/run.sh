#!/usr/bin/env bash
# Side-by-side benchmark against nginx + geoip2 and HAProxy, using the shared harness.
#   bash bench/run.sh                 # full run (~5 min): 5 rounds x 5 s at 32 and 256 connections
#   DUR=2 ROUNDS=1 bash bench/run.sh  # smoke test
# Needs: apt-get install -y nginx libnginx-mod-http-geoip2 haproxy wrk curl python3
# Only 127.0.0.1 is ever targeted; every load run is bounded by the harness.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
HARNESS=${HARNESS:-../shared/bench/bench.sh}
[ -x "$HARNESS" ] || [ -f "$HARNESS" ] || { echo "harness not found at $HARNESS" >&2; exit 1; }
cargo build --release --locked
rm -f /tmp/locgate-bench-events.jsonl
PROXY_CMD="$PWD/target/release/locgate run -c $PWD/bench/locgate-bench.toml" bash "$HARNESS"
