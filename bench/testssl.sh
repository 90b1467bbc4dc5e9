#!/usr/bin/env bash
# Runs testssl.sh (Debian package `testssl.sh`) against a locgate TLS listener on loopback.
# Not part of CI: it takes minutes and needs the package. Usage:
#   bash bench/testssl.sh                 # builds nothing; uses target/release or target/debug
#   BIN=path/to/locgate PORT=18443 bash bench/testssl.sh
# Makes a throwaway CA and server certificate with openssl, starts locgate in front of the
# built-in whoami page, runs testssl, prints its summary, and stops the locgate it started.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18443}
BIN=${BIN:-}
if [[ -z "$BIN" ]]; then
  if [[ -x target/release/locgate ]]; then BIN=target/release/locgate; else BIN=target/debug/locgate; fi
fi
command -v testssl >/dev/null || { echo "install the Debian package testssl.sh" >&2; exit 2; }
WORK=$(mktemp -d)
PID=
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=locgate test CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=localhost" -keyout "$WORK/key.pem" -out "$WORK/req.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$WORK/ext.cnf"
openssl x509 -req -in "$WORK/req.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/leaf.pem" 2>/dev/null
cat "$WORK/leaf.pem" "$WORK/ca.pem" > "$WORK/chain.pem"

cat > "$WORK/locgate.toml" <<TOML
[[listener]]
name = "tls"
bind = "127.0.0.1:$PORT"
upstream = "builtin:whoami"
tls = { cert = "chain.pem", key = "key.pem" }
[events]
jsonl = "events.jsonl"
TOML

"$BIN" run -c "$WORK/locgate.toml" 2>"$WORK/locgate.log" &
PID=$!
for _ in $(seq 50); do
  if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then break; fi
  sleep 0.1
done

timeout 900 testssl --quiet --color 0 --warnings off --sneaky --ip one \
  --protocols --server-defaults --server-preference --vulnerable --headers \
  --jsonfile "$WORK/testssl.json" "https://127.0.0.1:$PORT/" | tee "$WORK/testssl.txt" || true

echo
echo "== summary (severity above INFO/OK) =="
python3 - "$WORK/testssl.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
bad = [r for r in rows if r.get("severity") not in ("OK", "INFO", "DEBUG")]
for r in bad:
    print(f'{r["severity"]:8} {r["id"]:32} {r["finding"]}')
print(f'{len(rows)} findings, {len(bad)} above INFO')
PY
