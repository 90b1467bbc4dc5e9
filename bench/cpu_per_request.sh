#!/usr/bin/env bash
# CPU time per request of nginx + geoip2 and of locgate, measured in alternation under the same
# load (the figure least disturbed by noise): /proc/PID/stat utime+stime / requests served.
#   bash bench/cpu_per_request.sh            # 2 rounds x 4 s at 32 and 256 connections
#   ROUNDS=3 DUR=5 CONNS="32" bash bench/cpu_per_request.sh
# Needs nginx, libnginx-mod-http-geoip2, wrk (see BENCHMARKS.md). Targets 127.0.0.1 only; every
# process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CONF=${CONF:-../shared/bench/conf}
ROUNDS=${ROUNDS:-2}; DUR=${DUR:-4}; CONNS=${CONNS:-"32 256"}
BIN=${BIN:-$ROOT/target/release/locgate}
[ -x "$BIN" ] || cargo build --release --locked
WORK=$(mktemp -d /tmp/locgate-cpu.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/upstream/tmp" "$WORK/nginx/tmp"
for f in upstream-nginx.conf nginx-geoip2.conf; do
  sed -e "s#@BASE@#$ROOT/$CONF/..#g" -e "s#@RUN@#$WORK#g" \
      -e "s#[^ ]*/mmdb/package/geo-whois-asn-country.mmdb#$ROOT/data/country.mmdb#g" "$CONF/$f" >"$WORK/$f"
done
start() { setsid taskset -c "$1" "${@:2}" >/dev/null 2>&1 </dev/null & PIDS+=($!); }
start 1 nginx -p "$WORK/upstream/" -c "$WORK/upstream-nginx.conf" -e "$WORK/upstream/err.log"
start 0 nginx -p "$WORK/nginx/" -c "$WORK/nginx-geoip2.conf" -e "$WORK/nginx/err.log"
start 0 "$BIN" run -c "$ROOT/bench/locgate-bench.toml"
sleep 1.5
worker=$(pgrep -f "nginx: worker" | while read -r p; do grep -q "$WORK/nginx-geoip2.conf" "/proc/$(awk '{print $4}' "/proc/$p/stat")/cmdline" 2>/dev/null && echo "$p"; done | head -1)
locgate=$(pgrep -f "$BIN run -c $ROOT/bench/locgate-bench.toml" | head -1)
[ -n "$worker" ] && [ -n "$locgate" ] || { echo "could not find the nginx worker or locgate" >&2; exit 1; }
measure() {  # pid port conns
  local t0 t1 out
  t0=$(awk '{print $14+$15}' "/proc/$1/stat")
  out=$(IPS_FILE=$ROOT/$CONF/ips.txt timeout $((DUR + 10)) taskset -c 1 wrk -t1 -c"$3" -d"${DUR}"s --latency \
        -s "$ROOT/$CONF/ips.lua" "http://127.0.0.1:$2/" 2>&1)
  t1=$(awk '{print $14+$15}' "/proc/$1/stat")
  python3 - "$t0" "$t1" "$(getconf CLK_TCK)" <<PY
import re, sys
t0, t1, hz = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
out = """$out"""
n = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p99 = re.search(r"99%\s+(\S+)", out).group(1)
print(f"{rps:9.0f} req/s  {(t1 - t0) / hz * 1e6 / n:6.2f} CPU us/req  p99 {p99}")
PY
}
echo "conns  proxy    result"
for c in $CONNS; do
  for _ in $(seq "$ROUNDS"); do
    printf '%5s  nginx    ' "$c"; measure "$worker" 18081 "$c"
    printf '%5s  locgate  ' "$c"; measure "$locgate" 18083 "$c"
  done
done
