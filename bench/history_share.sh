#!/usr/bin/env bash
# How fast a sighting made on one instance counts on another: two locgate instances sharing one
# Redis (all on 127.0.0.1), N employees each signing in once through A; for each, the time until
# B's /metrics shows it applied. Also reports what the stream holds afterwards.
#   bash bench/history_share.sh              # N=50
#   N=200 BIN=target/debug/locgate bash bench/history_share.sh
# Needs redis-server, redis-cli and curl. Every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
N=${N:-50}
BIN=${BIN:-$ROOT/target/release/locgate}
[ -x "$BIN" ] || cargo build --release --locked
WORK=$(mktemp -d /tmp/locgate-share.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(free_port); AP=$(free_port); AA=$(free_port); BP=$(free_port); BA=$(free_port)
TOKEN=bench-token-0123456789abcdef
redis-server --bind 127.0.0.1 --port "$RP" --save "" --appendonly no --dir "$WORK" >/dev/null &
PIDS+=($!)
for i in $(seq 1 "$N"); do
  printf '[[employee]]\nid = "e%04d"\ncountry = "US"\nlat = 30.2672\nlon = -97.7431\nradius_km = 150\n\n' "$i"
done >"$WORK/employees.toml"
for inst in A:$AP:$AA B:$BP:$BA; do
  IFS=: read -r name port admin <<<"$inst"
  cat >"$WORK/$name.toml" <<CONF
[[listener]]
name = "sso"
bind = "127.0.0.1:$port"
upstream = "builtin:whoami"
mode = "monitor"
trusted_proxies = ["127.0.0.1/32"]
identity_proxies = ["127.0.0.1/32"]
identity = [{ header = "X-Remote-User" }]

[employees]
file = "$WORK/employees.toml"

[history]
redis = "redis://127.0.0.1:$RP"

[admin]
bind = "127.0.0.1:$admin"
token = "$TOKEN"

[events]
jsonl = "$WORK/$name.jsonl"
CONF
  "$BIN" run -c "$WORK/$name.toml" 2>"$WORK/$name.log" &
  PIDS+=($!)
done
metric() { curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1==m {print $2}'; }
for _ in $(seq 100); do
  [ "$(metric "$AA" locgate_history_caught_up)" = 1 ] && [ "$(metric "$BA" locgate_history_caught_up)" = 1 ] && break
  sleep 0.05
done
ms=()
for i in $(seq 1 "$N"); do
  before=$(metric "$BA" locgate_history_applied_total)
  t0=$(date +%s%N)
  curl -s -o /dev/null -H "X-Remote-User: $(printf 'e%04d' "$i")" -H "X-Forwarded-For: 203.0.113.$((i % 250 + 1))" "http://127.0.0.1:$AP/"
  while [ "$(metric "$BA" locgate_history_applied_total)" = "$before" ]; do :; done
  ms+=($(( ($(date +%s%N) - t0) / 1000 )))
done
printf '%s\n' "${ms[@]}" | sort -n | awk '{a[NR]=$1} END {printf "A sign-in -> applied on B (%d sightings, includes curl and metric polling): median %.1f ms, p90 %.1f ms, max %.1f ms\n", NR, a[int(NR*0.5)+1]/1000, a[int(NR*0.9)]/1000, a[NR]/1000}'
echo "stream entries: $(redis-cli -p "$RP" XLEN locgate:history), memory used by Redis: $(redis-cli -p "$RP" INFO memory | awk -F: '/^used_memory_human/ {print $2}' | tr -d '\r')"
echo "A published: $(metric "$AA" locgate_history_published_total), B applied: $(metric "$BA" locgate_history_applied_total)"
