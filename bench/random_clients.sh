#!/usr/bin/env bash
# Many distinct clients: does the cost per request stay flat and memory bounded when every
# request comes from a new address? (issue 12, item 7)
#
# Release locgate with worker_threads = 1 behind a "trusted balancer" (wrk on 127.0.0.1, which
# is in trusted_proxies, so X-Forwarded-For names the client) in front of the same fast upstream
# bench/run.sh uses (nginx `return 200` on 127.0.0.1:18080). Two runs, each on a fresh process:
#   fixed  : every request X-Forwarded-For: 8.8.8.8
#   random : a random public IPv4 address per request (wrk Lua script)
# Every SAMPLE seconds: req/s (from the upstream's request counter, nginx stub_status) and
# locgate's RSS, into a table. At the end: the random run's throughput against the fixed one
# (target >= 0.8x) and its largest RSS (target < 64 MB).
#
#   bash bench/random_clients.sh                              # 60 s fixed, 10 min random
#   DUR_FIXED=60 DUR_RANDOM=60 SAMPLE=10 bash bench/random_clients.sh   # short run
# Knobs: DUR_FIXED=60 DUR_RANDOM=600 SAMPLE=10 CONNS=64 BIN=target/release/locgate
# Needs nginx and wrk (see BENCHMARKS.md). Targets 127.0.0.1 only; bounded by the durations
# and `timeout`; every process it starts is stopped on exit and its files removed. Events go to
# /dev/null: a random run writes one allow per new address (tens of GB in 10 minutes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CONF=${CONF:-../shared/bench/conf}
DUR_FIXED=${DUR_FIXED:-60}; DUR_RANDOM=${DUR_RANDOM:-600}; SAMPLE=${SAMPLE:-10}; CONNS=${CONNS:-64}
BIN=${BIN:-$ROOT/target/release/locgate}
[ -x "$BIN" ] || cargo build --release --locked --bin locgate
for c in nginx wrk taskset setsid timeout curl python3; do
  command -v "$c" >/dev/null || { echo "missing $c" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/locgate-random.XXXXXX)
PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() { stop_all; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
start() { setsid taskset -c "$1" "${@:2}" >/dev/null 2>&1 </dev/null & PIDS+=($!); }

mkdir -p "$WORK/upstream/tmp"
sed -e "s#@BASE@#$ROOT/$CONF/..#g" -e "s#@RUN@#$WORK#g" "$CONF/upstream-nginx.conf" >"$WORK/upstream-nginx.conf"
sed -e 's#^jsonl = .*#jsonl = "/dev/null"#' "$ROOT/bench/locgate-bench.toml" >"$WORK/locgate.toml"
cat >"$WORK/fixed.lua" <<'LUA'
wrk.headers["X-Forwarded-For"] = "8.8.8.8"
LUA
cat >"$WORK/random.lua" <<'LUA'
-- A random public IPv4 address per request (first octet 1..223, loopback skipped).
math.randomseed(os.time())
local r = math.random
request = function()
  local a = r(1, 223)
  if a == 127 or a == 10 then a = 11 end
  local ip = a .. "." .. r(0, 255) .. "." .. r(0, 255) .. "." .. r(1, 254)
  return wrk.format("GET", "/", { ["X-Forwarded-For"] = ip })
end
LUA

start 1 nginx -p "$WORK/upstream/" -c "$WORK/upstream-nginx.conf" -e "$WORK/upstream/err.log"
upstream_requests() { curl -s -m 2 http://127.0.0.1:18090/ | awk 'NR==3 {print $3}'; }

# run NAME DURATION: one fresh locgate, wrk for DURATION s, a table row every SAMPLE s; writes
# "mean_rps max_rss_mb" to $WORK/NAME.result (mean over the samples after the first: warm-up).
run() {
  local name=$1 dur=$2
  start 0 "$BIN" run -c "$WORK/locgate.toml"
  local lg=${PIDS[-1]} pid=""
  for _ in $(seq 100); do
    curl -s -o /dev/null -m 1 -H 'X-Forwarded-For: 8.8.8.8' http://127.0.0.1:18083/ && break; sleep 0.1
  done
  pid=$(pgrep -s "$lg" -f "$BIN run" | head -1)
  [ -n "$pid" ] || { echo "locgate did not start" >&2; exit 1; }
  timeout $((dur + 15)) taskset -c 1 wrk -t1 -c"$CONNS" -d"${dur}"s -s "$WORK/$name.lua" \
    http://127.0.0.1:18083/ >"$WORK/$name.wrk" 2>&1 &
  local wrk=$! t=0 before after rss
  before=$(upstream_requests)
  printf '%-7s %6s %10s %8s\n' run t_s req_s rss_mb
  : >"$WORK/$name.samples"
  while [ "$t" -lt "$dur" ]; do
    sleep "$SAMPLE"; t=$((t + SAMPLE))
    after=$(upstream_requests)
    rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
    printf '%-7s %6d %10d %8s\n' "$name" "$t" $(((after - before) / SAMPLE)) "$rss"
    echo "$t $(((after - before) / SAMPLE)) $rss" >>"$WORK/$name.samples"
    before=$after
  done
  wait "$wrk" || true
  grep -E "Non-2xx|Socket errors" "$WORK/$name.wrk" || true
  kill -TERM -- "-$lg" 2>/dev/null || true
  wait "$lg" 2>/dev/null || true
  awk 'NR > 1 { s += $2; n++ } { if ($3 > m) m = $3 } END { printf "%d %.1f\n", (n ? s / n : 0), m }' \
    "$WORK/$name.samples" >"$WORK/$name.result"
}

run fixed "$DUR_FIXED"
run random "$DUR_RANDOM"
read -r fixed_rps fixed_rss <"$WORK/fixed.result"
read -r random_rps random_rss <"$WORK/random.result"
python3 - "$fixed_rps" "$random_rps" "$fixed_rss" "$random_rss" <<'PY'
import sys
f, r, fm, rm = (float(x) for x in sys.argv[1:])
ratio = r / f if f else 0.0
print(f"\nfixed  {f:8.0f} req/s  max RSS {fm:5.1f} MB")
print(f"random {r:8.0f} req/s  max RSS {rm:5.1f} MB")
print(f"random/fixed = {ratio:.2f} (target >= 0.80): {'PASS' if ratio >= 0.8 else 'FAIL'}")
print(f"random max RSS {rm:.1f} MB (target < 64 MB): {'PASS' if rm < 64 else 'FAIL'}")
PY
