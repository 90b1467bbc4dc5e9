#!/usr/bin/env bash
# HTTPS side by side: locgate against nginx, both terminating TLS 1.3 on THE SAME certificate
# (ECDSA P-256, made here with openssl), each with one worker pinned to cpu0 alone; the upstream
# (nginx `return 200`, plain HTTP) and the load generator share cpu1, as in ../shared/bench/bench.sh.
# Both proxies do the plain harness's job: look up the X-Forwarded-For address (public addresses
# from ../shared/bench/conf/ips.txt, believed because the peer 127.0.0.1 is a trusted proxy) and
# answer 403 for KP. The socket peer is always 127.0.0.1, so looking it up instead would measure
# one cached miss, not the job; the header keeps the work identical to the plain harness, so the
# difference to its figures is the cost of TLS.
#
#   bash bench/https.sh                      # 3 rounds x 5 s of each test, ~3 min
#   DUR=2 ROUNDS=1 bash bench/https.sh       # smoke test, ~1 min
#   BIN=/path/to/locgate BENCH_WORK=/tmp/x HS_CPUS=0,1 bash bench/https.sh
#
# Tests, nginx and locgate alternating (the one that goes first changes every round):
#   keepalive N  wrk -t1 -cN (CONNS="32 256"), the 1,024 rotating addresses: req/s, p99, proxy CPU
#                us per request.
#   handshake    HS_PROCS `openssl s_time -new -tls1_3` processes, each a different address: every
#                connection is a new TCP connection, a FULL TLS 1.3 handshake and one request
#                (`Connection: close`). s_time makes a new SSL object without a session for each
#                connection, so it never offers resumption; wrk (SSL_clear keeps the session) and
#                h2load both resume, and locgate accepts (rustls issues tickets, no key turns that
#                off), so neither can measure full handshakes. VERIFY=1 captures the
#                ClientHello/ServerHello of a 1 s run with tcpdump: no pre_shared_key, one
#                handshake per connection, TLS 1.3 / cipher / X25519 as negotiated. Counted over
#                a DUR-second window after a 1 s ramp: handshakes = requests the upstream served
#                (stub_status), CPU of the proxy and of the s_time processes in that window.
#                The client's half of a handshake (X25519 + ECDSA verify) costs more than the
#                server's (X25519 + ECDSA sign), so on one core the load generator saturates
#                first: then handshakes/s is ITS limit (column lg% near 100) and the comparison
#                is the proxy's CPU per handshake, with cap/s = 1e6 / that (what one core of the
#                proxy would do). HS_CPUS=0,1 gives s_time cpu0 too (it then competes with the
#                proxy, so only CPU per handshake stays comparable).
# CPU time is utime+stime of the proxy's process group from /proc/PID/stat, as in
# bench/cpu_per_request.sh. frgn% is other processes' CPU on cpu0 during the run: over ~5 the
# run was disturbed, run again.
#
# Knobs (env): DUR=5 ROUNDS=3 CONNS="32 256" HS_PROCS=16 WARMUP=1 VERIFY=1 WAIT_IDLE=5
#              PROXY_CPU=0 LOADGEN_CPU=1 UPSTREAM_CPU=1 HS_CPUS=$LOADGEN_CPU
#              BIN=target/release/locgate MMDB=data/country.mmdb BENCH_WORK=/tmp/locgate-https-bench
# Needs: apt-get install -y nginx libnginx-mod-http-geoip2 wrk openssl curl python3
#        (+ tcpdump for VERIFY=1). Targets 127.0.0.1 only; every load run is bounded (-d, -time and
#        `timeout`); writes only under $BENCH_WORK; stops every process it started, by PID, also
#        on Ctrl-C. locgate cannot be limited to TLS 1.3 (it also accepts 1.2) nor told not to
#        issue session tickets (no such keys): the clients here only offer TLS 1.3 and never
#        resume, which the verification shows.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CONF=${CONF:-$ROOT/../shared/bench/conf}          # ips.txt (1,024 public non-KP addresses)
WORK=${BENCH_WORK:-/tmp/locgate-https-bench}
RUN=$WORK/run
RES=$RUN/results
BIN=${BIN:-$ROOT/target/release/locgate}
MMDB=${MMDB:-$ROOT/data/country.mmdb}             # nginx's database: the one locgate embeds
GEOIP2_SO=/usr/lib/nginx/modules/ngx_http_geoip2_module.so
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}; CONNS=${CONNS:-"32 256"}; WARMUP=${WARMUP:-1}
HS_PROCS=${HS_PROCS:-16}; VERIFY=${VERIFY:-1}; WAIT_IDLE=${WAIT_IDLE:-5}
PROXY_CPU=${PROXY_CPU:-0}; LOADGEN_CPU=${LOADGEN_CPU:-1}; UPSTREAM_CPU=${UPSTREAM_CPU:-1}
HS_CPUS=${HS_CPUS:-$LOADGEN_CPU}
UP_PORT=18280 UP_STUB=18290 NGX_PORT=18281 LG_PORT=18283   # not the plain harness's
OK_IP=8.8.8.8 KP_IP=175.45.176.1
HZ=$(getconf CLK_TCK)

exec 9>&2
log() { printf '[https] %s\n' "$*" >&9; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- preflight
for c in nginx wrk openssl curl python3 taskset timeout setsid; do
  command -v "$c" >/dev/null || die "missing $c (apt-get install -y nginx libnginx-mod-http-geoip2 wrk openssl curl python3)"
done
[ -f "$GEOIP2_SO" ] || die "missing $GEOIP2_SO (apt-get install -y libnginx-mod-http-geoip2)"
[ -f "$CONF/ips.txt" ] || die "missing $CONF/ips.txt (the shared harness's address list)"
[ -f "$MMDB" ] || die "missing $MMDB"
[ -x "$BIN" ] || cargo build --release --locked
[ -x "$BIN" ] || die "no locgate binary at $BIN"
if [ "$VERIFY" = 1 ] && ! command -v tcpdump >/dev/null; then
  log "WARNING: tcpdump missing (apt-get install -y tcpdump): full handshakes not verified"; VERIFY=0
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $UP_PORT $UP_STUB $NGX_PORT $LG_PORT; do
  port_busy "$p" && die "127.0.0.1:$p already in use by something this script did not start"
done

# ---------------------------------------------------------------- start / stop (by PID)
mkdir -p "$RUN"
STARTED=()
HS_PIDS=()   # a running s_time batch (timeout processes; TERM reaches their openssl)
cleanup() {
  local rc=$? e pid
  set +e
  for pid in "${HS_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for e in "${STARTED[@]}"; do pid=${e##*:}; kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; done
  for e in "${STARTED[@]}"; do
    pid=${e##*:}
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
  [ "${#STARTED[@]}" -gt 0 ] && log "stopped: ${STARTED[*]}"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start() {  # name cpu cmd...   own session, so pid == process group id
  local name=$1 cpu=$2; shift 2
  setsid taskset -c "$cpu" "$@" >"$RUN/$name/stdout.log" 2>"$RUN/$name/stderr.log" </dev/null &
  STARTED+=("$name:$!")
  eval "PID_${name}=$!"
  log "started $name pid=$! on cpu $cpu"
}
stop_one() {  # name (a helper such as tcpdump): SIGINT so it flushes, then wait
  local name=$1 pid e keep=()
  pid=$(eval "echo \$PID_$name")
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  for e in "${STARTED[@]}"; do [ "$e" = "$name:$pid" ] || keep+=("$e"); done
  STARTED=("${keep[@]}")
}
wait_port() {  # port seconds name
  for _ in $(seq $(( $2 * 10 ))); do port_busy "$1" && return 0; sleep 0.1; done
  die "$3 did not listen on 127.0.0.1:$1 within $2 s (see $RUN/$3/*.log)"
}

# ---------------------------------------------------------------- certificate + configs
rm -rf "$RES" "$RUN"/{tls,upstream,nginx,locgate,tcpdump}
mkdir -p "$RES" "$RUN"/{tls,upstream/tmp,nginx/tmp,locgate,tcpdump}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext extendedKeyUsage=serverAuth \
  -keyout "$RUN/tls/key.pem" -out "$RUN/tls/cert.pem" 2>"$RUN/tls/openssl.log" || die "openssl req failed"

TEMPS='client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;'
cat >"$RUN/upstream.conf" <<EOF
# upstream stand-in, as ../shared/bench/conf/upstream-nginx.conf (plain HTTP)
worker_processes 1; daemon off; master_process on; pid upstream.pid;
error_log upstream-error.log warn; worker_rlimit_nofile 16384;
events { worker_connections 8192; multi_accept on; }
http {
    access_log off; server_tokens off; keepalive_requests 1000000; keepalive_timeout 120s;
    $TEMPS
    server { listen 127.0.0.1:$UP_PORT backlog=4096; default_type text/plain; location / { return 200 "ok\n"; } }
    server { listen 127.0.0.1:$UP_STUB; location / { stub_status; } }
}
EOF
cat >"$RUN/nginx.conf" <<EOF
# nginx + geoip2 as ../shared/bench/conf/nginx-geoip2.conf (:18081), terminating TLS 1.3 only,
# no session cache and no session tickets: every connection is a full handshake.
load_module $GEOIP2_SO;
worker_processes 1; daemon off; master_process on; pid nginx.pid;
error_log nginx-error.log warn; worker_rlimit_nofile 16384;
events { worker_connections 8192; multi_accept on; }
http {
    access_log off; server_tokens off; keepalive_requests 1000000; keepalive_timeout 120s;
    $TEMPS
    geoip2 $MMDB { \$geo_country_hdr source=\$http_x_forwarded_for country_code; }
    map \$geo_country_hdr \$blocked_hdr { KP 1; default 0; }
    upstream backend {
        server 127.0.0.1:$UP_PORT;
        keepalive 1024; keepalive_requests 1000000; keepalive_timeout 120s;
    }
    server {
        listen 127.0.0.1:$NGX_PORT ssl backlog=4096;
        ssl_certificate $RUN/tls/cert.pem;
        ssl_certificate_key $RUN/tls/key.pem;
        ssl_protocols TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        if (\$blocked_hdr) { return 403; }
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;   # locgate sends it too
        }
    }
}
EOF
cat >"$RUN/locgate-https.toml" <<EOF
# bench/locgate-bench.toml with TLS: same job as the nginx above, one worker thread.
[[listener]]
name = "bench-https"
bind = "127.0.0.1:$LG_PORT"
upstream = "http://127.0.0.1:$UP_PORT"
mode = "enforce"
trusted_proxies = ["127.0.0.1/32"]
tls = { cert = "$RUN/tls/cert.pem", key = "$RUN/tls/key.pem" }

[policy]
sanctioned_countries = ["KP"]
block_anonymizers = []
flag_anonymizers = []
unknown_location = "allow"

[events]
jsonl = "$RUN/locgate/events.jsonl"

[runtime]
worker_threads = 1
EOF
cat >"$RUN/ips.lua" <<'EOF'
-- ../shared/bench/conf/ips.lua, plus `Connection: close` when CLOSE=1 (one request per connection)
local reqs, i = {}, 0
init = function(args)
  local close = os.getenv("CLOSE") == "1"
  for line in io.lines(os.getenv("IPS_FILE")) do
    if #line > 0 then
      local h = { ["X-Forwarded-For"] = line }
      if close then h["Connection"] = "close" end
      reqs[#reqs + 1] = wrk.format("GET", "/", h)
    end
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
EOF

start upstream "$UPSTREAM_CPU" nginx -p "$RUN/upstream/" -c "$RUN/upstream.conf" -e "$RUN/upstream/error.log"
start nginx "$PROXY_CPU" nginx -p "$RUN/nginx/" -c "$RUN/nginx.conf" -e "$RUN/nginx/error.log"
start locgate "$PROXY_CPU" "$BIN" run -c "$RUN/locgate-https.toml"
wait_port $UP_PORT 10 upstream; wait_port $NGX_PORT 10 nginx; wait_port $LG_PORT 30 locgate

declare -A PORT=([nginx]=$NGX_PORT [locgate]=$LG_PORT)
TARGETS=(nginx locgate)

# ---------------------------------------------------------------- sanity + what each side negotiates
# s_time -www sends "GET <arg> HTTP/1.0\r\n\r\n"; the argument carries the headers, and the
# trailing " HTTP/1.0" ends up in a padding header: a valid HTTP/1.1 request with Connection: close.
hs_req() { printf '/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Forwarded-For: %s\r\nX-Pad: x' "$1"; }
mapfile -t IPS < <(grep -v '^$' "$CONF/ips.txt")
code() { curl -sk -o /dev/null -m 3 -w '%{http_code}' --tlsv1.3 -H "X-Forwarded-For: $2" "https://127.0.0.1:$1/" || true; }
for t in "${TARGETS[@]}"; do
  ok=$(code "${PORT[$t]}" $OK_IP); kp=$(code "${PORT[$t]}" $KP_IP)
  [ "$ok" = 200 ] && [ "$kp" = 403 ] || die "sanity $t: $OK_IP->$ok $KP_IP->$kp (want 200/403)"
  log "sanity $t: $OK_IP->$ok $KP_IP->$kp OK"
done
{
  for t in "${TARGETS[@]}"; do
    echo "== $t (127.0.0.1:${PORT[$t]})"
    timeout 5 openssl s_client -connect "127.0.0.1:${PORT[$t]}" -servername localhost -tls1_3 </dev/null 2>&1 \
      | grep -E '^(New|Reused),|^Protocol *:|^ *Cipher *:|Peer signature type|Peer signing digest|Server Temp Key|Server public key' | sort -u | sed 's/^ */  /' || true
    tls12=$(timeout 5 openssl s_client -connect "127.0.0.1:${PORT[$t]}" -servername localhost -tls1_2 </dev/null 2>&1 \
      | grep -E '^(New|Reused),|^ *Protocol *:' | head -1 | sed 's/^ *//' || true)
    echo "  TLS 1.2 offered alone: ${tls12:-refused}"
    sleep 1 | timeout 5 openssl s_client -connect "127.0.0.1:${PORT[$t]}" -servername localhost -tls1_3 \
      -sess_out "$RES/session_$t.pem" >/dev/null 2>&1 || true
    again=$(timeout 5 openssl s_client -connect "127.0.0.1:${PORT[$t]}" -servername localhost -tls1_3 \
      -sess_in "$RES/session_$t.pem" </dev/null 2>&1 | grep -E '^(New|Reused),' | cut -d, -f1 || true)
    echo "  a client that offers the ticket of its previous connection gets: ${again:-no answer}"
    resp=$(hs_req "$OK_IP" | { printf 'GET '; cat; printf ' HTTP/1.0\r\n\r\n'; } \
      | timeout 5 openssl s_client -quiet -connect "127.0.0.1:${PORT[$t]}" -tls1_3 2>/dev/null | head -1 | tr -d '\r' || true)
    echo "  the handshake test's request (as s_time -www sends it) gets: ${resp:-nothing}"
  done
} >"$RES/tls-facts.txt" 2>&1
sed 's/^/[https] /' "$RES/tls-facts.txt" >&9

# ---------------------------------------------------------------- measurement helpers
grp_ticks() {  # name -> utime+stime of its process group (all threads), in ticks
  local pg=$(eval "echo \$PID_$1") s=0 p
  for p in $(ps -e -o pid=,pgid= | awk -v g="$pg" '$2==g{print $1}'); do
    s=$(( s + $(awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$p/stat" 2>/dev/null || echo 0) ))
  done
  echo "$s"
}
cpu_line() { awk -v c="cpu$PROXY_CPU" '$1==c{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }   # busy total
accepts() { curl -s -m 2 "http://127.0.0.1:$1/" | awk 'NR==3{print $1}'; }
busy_pct() {
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat); sleep "$1"
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," ");split(b,y," ");printf "%.0f", 100*(y[1]-x[1])/((y[2]-x[2])>0?(y[2]-x[2]):1)}'
}
wait_quiet() {  # our servers idle between runs: load now is foreign; wait up to WAIT_IDLE s
  local end=$(( $(date +%s) + WAIT_IDLE )) b
  while :; do
    b=$(busy_pct 0.5); [ "$b" -le 10 ] && return 0
    [ "$(date +%s)" -ge "$end" ] && { log "box ${b}% busy with foreign work; measuring anyway"; return 0; }
    sleep 1
  done
}
run_wrk() {  # target conns duration outfile   (wrk's user+sys seconds -> outfile.cpu)
  local t=$1 c=$2 d=$3 f=$4 TIMEFORMAT='%3U %3S'
  { time IPS_FILE=$CONF/ips.txt timeout $(( d + 15 )) taskset -c "$LOADGEN_CPU" \
      wrk -t1 -c"$c" -d"${d}s" --timeout 5s --latency -s "$RUN/ips.lua" "https://127.0.0.1:${PORT[$t]}/" \
      >"$f" 2>&1 || true; } 2>"$f.cpu"
}
up_requests() { curl -s -m 2 "http://127.0.0.1:$UP_STUB/" | awk 'NR==3{print $3}'; }
pids_ticks() { local s=0 p; for p in "$@"; do s=$(( s + $(awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$p/stat" 2>/dev/null || echo 0) )); done; echo "$s"; }
run_hs() {  # target window_seconds outfile [keep] -> key=value lines; s_time output in outfile.N
  local t=$1 d=$2 f=$3 keep=${4:-} i ops=() r0 r1 p0 p1 c0 c1 b0 b1 n0 n1 w0 w1
  HS_PIDS=()
  for i in $(seq "$HS_PROCS"); do
    timeout $(( d + 20 )) taskset -c "$HS_CPUS" openssl s_time -connect "127.0.0.1:${PORT[$t]}" -new -tls1_3 \
      -time $(( d + 4 )) -www "$(hs_req "${IPS[$(( (i - 1) % ${#IPS[@]} ))]}")" >"$f.$i" 2>&1 &
    HS_PIDS+=($!)
  done
  sleep 1   # ramp: every process connected
  for i in "${HS_PIDS[@]}"; do ops+=($(pgrep -P "$i" || true)); done
  r0=$(up_requests); p0=$(grp_ticks "$t"); read -r b0 n0 < <(cpu_line); w0=$(date +%s.%N); c0=$(pids_ticks "${ops[@]}")
  sleep "$d"
  c1=$(pids_ticks "${ops[@]}"); r1=$(up_requests); p1=$(grp_ticks "$t"); read -r b1 n1 < <(cpu_line); w1=$(date +%s.%N)
  [ -n "$keep" ] || for i in "${HS_PIDS[@]}"; do kill -TERM "$i" 2>/dev/null || true; done   # window over
  wait "${HS_PIDS[@]}" 2>/dev/null || true
  HS_PIDS=()
  { echo "requests=$(( r1 - r0 - 1 ))"; echo "window=$(awk -v a="$w0" -v b="$w1" 'BEGIN{print b-a}')"
    echo "proxy_ticks=$(( p1 - p0 ))"; echo "client_ticks=$(( c1 - c0 ))"; echo "clients=${#ops[@]}"
    echo "cpu_busy=$(( b1 - b0 ))"; echo "cpu_total=$(( n1 - n0 ))"
    echo "connections=$(cat "$f".[0-9]* | awk '/connections in [0-9.]+ real/{n+=$1} END{print n+0}')"
  } >"$f"
}

# ---------------------------------------------------------------- full handshakes, verified
if [ "$VERIFY" = 1 ]; then
  # Only TLS handshake records whose first message is a ClientHello (1) or ServerHello (2).
  off='((tcp[12]&0xf0)>>2)'
  for t in "${TARGETS[@]}"; do
    mkdir -p "$RUN/tcpdump_$t"
    start "tcpdump_$t" "$UPSTREAM_CPU" tcpdump -i lo -n -s 600 -U -w "$RES/hs_$t.pcap" \
      "tcp port ${PORT[$t]} and tcp[$off]=0x16 and (tcp[$off+5]=1 or tcp[$off+5]=2)"
    sleep 1
    a0=$(up_requests)
    run_hs "$t" 1 "$RES/verify_$t.txt" keep   # s_time runs to its end and prints its count
    a1=$(up_requests)
    sleep 1; stop_one "tcpdump_$t"
    python3 - "$RES/hs_$t.pcap" "$RES/verify_$t.txt" "$t" $(( a1 - a0 - 1 )) \
      "$(grep -h 'dropped by kernel' "$RUN/tcpdump_$t/stderr.log" | awk '{print $1}')" <<'PY' | tee -a "$RES/verify.txt" | sed 's/^/[https] /' >&9
import re, struct, sys
pcap, hsout, name, upreq, drops = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] or "?"
data = open(pcap, "rb").read()
link = struct.unpack("<I", data[20:24])[0]
l2 = {1: 14, 113: 16, 276: 20, 0: 4}.get(link, 14)
ch = ch_psk = sh = sh_psk = 0
seen = {}
pos = 24
while pos + 16 <= len(data):
    _, _, incl, _ = struct.unpack("<IIII", data[pos:pos + 16]); pkt = data[pos + 16:pos + 16 + incl]; pos += 16 + incl
    ip = pkt[l2:]
    if not ip or ip[0] >> 4 != 4:
        continue
    tcp = ip[(ip[0] & 15) * 4:]
    p = tcp[(tcp[12] >> 4) * 4:]
    if len(p) < 44 or p[0] != 0x16:
        continue
    kind = p[5]
    q = 9 + 2 + 32                       # record hdr, handshake hdr, version, random
    q += 1 + p[q]                        # session id
    if kind == 1:
        q += 2 + struct.unpack(">H", p[q:q + 2])[0]   # cipher suites
        q += 1 + p[q]                                 # compression methods
    else:
        suite = struct.unpack(">H", p[q:q + 2])[0]; q += 3
    end = q + 2 + struct.unpack(">H", p[q:q + 2])[0]; q += 2
    exts = {}
    while q + 4 <= min(end, len(p)):
        et, el = struct.unpack(">HH", p[q:q + 4]); exts[et] = p[q + 4:q + 4 + el]; q += 4 + el
    if kind == 1:
        ch += 1; ch_psk += 41 in exts
    else:
        sh += 1; sh_psk += 41 in exts
        ver = struct.unpack(">H", exts[43])[0] if 43 in exts else 0
        grp = struct.unpack(">H", exts[51][:2])[0] if 51 in exts else 0
        k = ({0x0304: "TLS1.3", 0x0303: "TLS1.2"}.get(ver, hex(ver)),
             {0x1301: "AES_128_GCM_SHA256", 0x1302: "AES_256_GCM_SHA384", 0x1303: "CHACHA20_POLY1305_SHA256"}.get(suite, hex(suite)),
             {0x1d: "X25519", 0x17: "P-256"}.get(grp, hex(grp)))
        seen[k] = seen.get(k, 0) + 1
conns = int(re.search(r"connections=(\d+)", open(hsout).read()).group(1))
print(f"{name}: handshake test, ~3 s: {conns} connections (s_time), {upreq} requests at the upstream, "
      f"{ch} ClientHellos ({ch_psk} offering a session), {sh} ServerHellos ({sh_psk} resuming); tcpdump dropped {drops}")
print(f"{name}:   negotiated: " + ", ".join(f"{n} x {'/'.join(k)}" for k, n in sorted(seen.items())))
# every captured handshake full; (nearly) every connection captured (tcpdump may drop a few on a
# busy box); every connection's request reached the upstream
if ch_psk or sh_psk or ch < 0.95 * conns or sh < 0.95 * conns or abs(upreq - conns) > 2 + conns // 100:
    print(f"{name}:   WARNING: not one full handshake and one forwarded request per connection")
else:
    print(f"{name}:   OK: every connection a full TLS 1.3 handshake, none resumed, each request forwarded")
PY
  done
fi

# ---------------------------------------------------------------- measure, alternating
for t in "${TARGETS[@]}"; do run_wrk "$t" 32 "$WARMUP" "$RES/warmup_$t.txt"; done
TESTS=(); for c in $CONNS; do TESTS+=("ka:$c"); done; TESTS+=("hs:$HS_PROCS")
printf 'test\ttarget\tround\tconns\tticks\tcpu_busy\tcpu_total\tup_accepts\tdur\tfile\n' >"$RES/index.tsv"
log "measuring: ${TARGETS[*]} x {${TESTS[*]}} x $ROUNDS rounds x ${DUR}s = ~$(( ROUNDS * 2 * ( (${#TESTS[@]} - 1) * (DUR + 2) + DUR + 4 ) ))s"
for r in $(seq "$ROUNDS"); do
  for tc in "${TESTS[@]}"; do
    test=${tc%%:*} c=${tc##*:}
    for k in 0 1; do
      t=${TARGETS[$(( (k + r - 1) % 2 ))]}
      f="$RES/r${r}_${test}${c}_$t.txt"
      wait_quiet
      ub=$(accepts $UP_STUB); tb=$(grp_ticks "$t"); read -r bb cb < <(cpu_line)
      if [ "$test" = ka ]; then run_wrk "$t" "$c" "$DUR" "$f"; else run_hs "$t" "$DUR" "$f"; fi
      ta=$(grp_ticks "$t"); read -r ba ca < <(cpu_line); ua=$(accepts $UP_STUB)
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$test" "$t" "$r" "$c" $(( ta - tb )) $(( ba - bb )) \
        $(( ca - cb )) $(( ua - ub - 1 )) "$DUR" "$f" >>"$RES/index.tsv"
      if [ "$test" = ka ]; then log "round $r keepalive c=$c $t: $(awk '/Requests\/sec/{print $2" req/s"}' "$f")"
      else log "round $r handshake $t: $(awk -F= '/^requests=/{n=$2}/^window=/{w=$2}END{printf "%.0f new connections/s", n/w}' "$f")"; fi
    done
  done
done

# ---------------------------------------------------------------- report
python3 - "$RES/index.tsv" "$HZ" "$HS_CPUS" "$LOADGEN_CPU" "$HS_PROCS" <<'PY' | tee "$RUN/report.txt"
import csv, re, statistics as st, sys
idx, hz, hs_cpus, lg_cpu, procs = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
rows = {}
for r in csv.DictReader(open(idx), delimiter="\t"):
    w = open(r["file"]).read()
    if r["test"] == "ka":
        n = re.search(r"(\d+) requests in", w); rps = re.search(r"Requests/sec:\s+([\d.]+)", w)
        p99 = re.search(r"\s99%\s+(\S+)", w)
        if not (n and rps and p99):
            print(f"unparsable wrk output: {r['file']}", file=sys.stderr); continue
        n = int(n.group(1)); dur = float(r["dur"]); rps = float(rps.group(1)); lat = ms(p99.group(1))
        u, s = map(float, open(r["file"] + ".cpu").read().split()[-2:])
        ticks, lg = int(r["ticks"]), (u + s) / dur * 100
        busy, total = int(r["cpu_busy"]), int(r["cpu_total"])
        errs = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", "".join(re.findall(r"Socket errors:.*", w))))
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", w)
        errs += int(non2xx.group(1)) if non2xx else 0
    else:   # s_time batch: counted over the window only
        kv = dict(l.split("=", 1) for l in w.split())
        n, dur = int(kv["requests"]), float(kv["window"])
        if n <= 0:
            print(f"no handshakes counted: {r['file']}", file=sys.stderr); continue
        rps = n / dur; lat = procs * dur / n * 1e3       # mean time per connection (Little's law)
        ticks, lg = int(kv["proxy_ticks"]), int(kv["client_ticks"]) / hz / dur * 100
        busy, total = int(kv["cpu_busy"]), int(kv["cpu_total"])
        errs = 0
    frgn = max(0, busy - ticks) / max(1, total) * 100
    rows.setdefault((r["test"], r["conns"], r["target"]), []).append(dict(
        rps=rps, lat=lat, us=ticks / hz * 1e6 / max(1, n), pxcpu=ticks / hz / dur * 100, lgcpu=lg,
        frgn=frgn, err=errs, upacc=int(r["up_accepts"] or 0)))
med = lambda k, v: st.median(x[k] for x in v)
print()
print("HTTPS, TLS 1.3, ECDSA P-256 (same certificate), one worker on cpu0 each; medians over rounds")
print(f"{'test':<14}{'target':<9}{'req/s':>9}{'p99':>11}{'us/req':>8}{'vs nginx':>10}{'us vs ngx':>10}"
      f"{'px%':>6}{'lg%':>6}{'frgn%':>7}{'errs':>6}{'upconn':>8}{'cap/s':>8}")
for (test, conns, target) in sorted(rows, key=lambda k: (k[0] != "ka", int(k[1]), k[2] != "nginx")):
    v = rows[(test, conns, target)]; base = rows.get((test, conns, "nginx"))
    label = f"keepalive {conns}" if test == "ka" else f"handshake x{conns}"
    rr = med("rps", v) / med("rps", base) if base else float("nan")
    ur = med("us", v) / med("us", base) if base else float("nan")
    cap = f"{1e6 / med('us', v):8.0f}" if test == "hs" else f"{'':>8}"
    lat = f"{med('lat', v):.2f}ms" + ("+" if test == "hs" else " ")
    print(f"{label:<14}{target:<9}{med('rps', v):9.0f}{lat:>11}{med('us', v):8.1f}{rr:9.2f}x{ur:9.2f}x"
          f"{med('pxcpu', v):6.0f}{med('lgcpu', v):6.0f}{med('frgn', v):7.1f}{sum(x['err'] for x in v):6d}"
          f"{max(x['upacc'] for x in v):8d}{cap}")
print()
print("keepalive N: wrk -t1 -cN, kept-alive connections. handshake xN: N `openssl s_time -new` processes;")
print("  req/s = new connections (full TLS 1.3 handshake + one request) per second, counted at the upstream.")
print("us/req = proxy CPU (utime+stime, /proc/PID/stat) per request, for handshake per connection;")
print("  cap/s = 1e6 / us/req: new connections per second one core of that proxy would take.")
print(f"px% / lg% = CPU of the proxy / of the load generator (% of one core; wrk on cpu {lg_cpu}, s_time on")
print(f"  cpus {hs_cpus}): lg% near 100 x cpus means the load generator, not the proxy, set req/s.")
print("frgn% = other processes on the proxy's core; upconn = new upstream connections (max per run);")
print("+ for handshake: mean time per connection (connect, handshake, request), not p99: s_time has no percentiles.")
PY
log "report saved to $RUN/report.txt; raw output in $RES; checks in $RES/verify.txt and $RES/tls-facts.txt"
