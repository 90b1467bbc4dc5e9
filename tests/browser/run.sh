#!/usr/bin/env bash
# Headless-Chromium test of the review page. Needs /usr/bin/chromium (Debian package
# `chromium`) and node; installs playwright-core from the npm registry (no browser download:
# the system chromium is used). Builds the binary, seeds events through the proxy with the
# embedded data, then runs review.mjs. Bounded: every step has a timeout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
[ -x /usr/bin/chromium ] || { echo "chromium not installed: skipping browser tests"; exit 0; }
[ -d node_modules/playwright-core ] || timeout 120 npm ci --no-audit --no-fund --loglevel=error
(cd "$root" && timeout 600 cargo build --locked --quiet --bin locgate)
bin="$root/target/debug/locgate"

work="$(mktemp -d)"
pid=""; pid2=""; idp=""
cleanup() { for p in $pid $pid2 $idp; do kill "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
pp="$(port)"; ap="$(port)"
token="browser-test-token-$(date +%s%N)"
cp "$root/tests/fixtures/employees/employees.example.toml" "$work/employees.toml"
cat > "$work/locgate.toml" <<TOML
[[listener]]
name = "sso"
bind = "127.0.0.1:$pp"
upstream = "builtin:whoami"
mode = "enforce"
trusted_proxies = ["127.0.0.1/32"]
identity_proxies = ["127.0.0.1/32"]
identity = [ { header = "X-Remote-User" } ]

[events]
jsonl = "events.jsonl"
sqlite = "events.db"

[admin]
bind = "127.0.0.1:$ap"
token = "$token"

[employees]
file = "employees.toml"
TOML
"$bin" run -c "$work/locgate.toml" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$ap/healthz" && break; sleep 0.1; done
seed() { curl -s -o /dev/null -m 5 "http://127.0.0.1:$pp/login" -H "X-Forwarded-For: $1" -H "X-Remote-User: $2"; }
seed 175.45.176.1 alice            # North Korea: block
seed 175.45.176.9 alice
seed 52.94.76.1 alice@example.com  # AWS: hosting provider
seed 52.94.76.1 bob@example.com
seed 185.220.101.1 alice           # elsewhere
seed 8.8.8.8 alice
sleep 0.5
# Screenshots go to docs/ only when asked (UPDATE_SCREENSHOTS=1), so a test run leaves the
# work tree clean.
shots="$work"; [ "${UPDATE_SCREENSHOTS:-}" = 1 ] && shots="$root/docs"
timeout 120 node review.mjs "http://127.0.0.1:$ap" "$token" "$shots/review-employee.png"

# The console signing in through a company identity provider (oidc-idp.mjs issues real RS256
# ID tokens on loopback): a second gateway with [admin.oidc], its store holding a laptop farm
# (three of the team on one address), driven by oidc.mjs.
kill "$pid" 2>/dev/null; pid=""
ip2="$(port)"; pp2="$(port)"; ap2="$(port)"
printf 'test-client-secret-%s\n' "$(date +%s%N)" > "$work/oidc-secret"
node oidc-idp.mjs "$ip2" locgate-console "$(cat "$work/oidc-secret")" >"$work/idp.log" 2>&1 &
idp=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$ip2/jwks" && break; sleep 0.1; done
for who in ann bob cat; do
  printf '[[employee]]\nid = "%s"\ncountry = "US"\nregion = "Texas"\ncity = "Austin"\nlat = 30.2672\nlon = -97.7431\nradius_km = 150\n\n' "$who"
done > "$work/team.toml"
mkdir -p "$work/oidc"
cat > "$work/oidc/locgate.toml" <<TOML
[[listener]]
name = "sso"
bind = "127.0.0.1:$pp2"
upstream = "builtin:whoami"
mode = "enforce"
trusted_proxies = ["127.0.0.1/32"]
identity_proxies = ["127.0.0.1/32"]
identity = [ { header = "X-Remote-User" } ]

[events]
jsonl = "events.jsonl"
sqlite = "events.db"
instance = "gw-browser"

[admin]
bind = "127.0.0.1:$ap2"
token = "$token"

[admin.oidc]
issuer = "http://127.0.0.1:$ip2"
client_id = "locgate-console"
client_secret_file = "../oidc-secret"
redirect_url = "http://127.0.0.1:$ap2/oidc/callback"
scopes = ["openid", "email", "groups"]
admin_groups = ["sec-admins"]
reviewer_groups = ["sec-analysts"]
viewer_groups = ["helpdesk"]

[employees]
file = "../team.toml"
TOML
"$bin" run -c "$work/oidc/locgate.toml" 2>"$work/oidc/log" &
pid2=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$ap2/healthz" && break; sleep 0.1; done
for who in ann bob cat; do
  curl -s -o /dev/null -m 5 "http://127.0.0.1:$pp2/login" -H "X-Forwarded-For: 8.8.8.8" -H "X-Remote-User: $who"
done
curl -s -o /dev/null -m 5 "http://127.0.0.1:$pp2/login" -H "X-Forwarded-For: 175.45.176.1" -H "X-Remote-User: ann"
# The console's case sweep runs every 3 s.
for _ in $(seq 50); do
  curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$ap2/api/cases" | grep -q '"egress"' && break
  sleep 0.2
done
timeout 120 node oidc.mjs "http://127.0.0.1:$ap2" "$shots" || { echo "--- locgate log"; tail -20 "$work/oidc/log"; exit 1; }
