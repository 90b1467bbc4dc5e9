#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (committed; run again after changing it).

Seeds are small meaningful inputs: real request heads and smuggling classics, PROXY v1/v2
samples, forwarding chains, cookies, login bodies, signed JWTs (HS256 with the fuzz secret of
src/fuzzing.rs; RS256 and ES256 with the test keys of tests/fixtures/identity, signed by
`openssl`), the project's own example configs and employee files, and history records.
Each target's input layout is described at its function in src/fuzzing.rs.
"""
import base64, hashlib, hmac, json, os, shutil, struct, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIX = os.path.join(ROOT, "tests", "fixtures")
HS256_SECRET = b"locgate-fuzz-hs256-secret-0123456789abcdef"  # = FUZZ_HS256_SECRET
NOW = 1_790_000_000  # = fuzz_now() in src/fuzzing.rs


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy(target, name, path):
    with open(os.path.join(ROOT, path), "rb") as f:
        put(target, name, f.read())


# --- h1_head: request heads (and response heads: the same bytes go to both parsers) ----------
heads = {
    "get": "GET / HTTP/1.1\r\nHost: portal.example\r\n\r\n",
    "get10": "GET /index.html HTTP/1.0\r\n\r\n",
    "post_cl": "POST /login HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 27\r\n\r\n",
    "post_chunked": "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    "cl_te": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n",
    "te_cl": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
    "te_te": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
    "te_list": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "te_space": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
    "te_xchunked": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
    "te_http10": "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    "cl_dup_same": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
    "cl_dup_diff": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    "cl_list": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
    "cl_plus": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
    "cl_huge": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
    "obs_fold": "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "bare_lf": "GET / HTTP/1.1\nHost: a\n\n",
    "no_host": "GET / HTTP/1.1\r\n\r\n",
    "two_hosts": "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "expect": "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    "expect_bad": "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n",
    "absolute": "GET http://portal.example/a?b=c HTTP/1.1\r\nHost: portal.example\r\n\r\n",
    "connect": "CONNECT portal.example:443 HTTP/1.1\r\nHost: portal.example:443\r\n\r\n",
    "options": "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "upgrade": "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "close": "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
    "forwarded": "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.1\r\nForwarded: for=\"[2001:db8::1]:443\";proto=https\r\nCookie: SESSION=abc; id_token=x.y.z\r\nAuthorization: Bearer eyJ.eyJ.sig\r\n\r\n",
    "http2_pri": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "http09": "GET /\r\n\r\n",
    "obs_text": "GET / HTTP/1.1\r\nHost: a\r\nX-N: caf\xe9\r\n\r\n",
    "nul": "GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
    "pipelined": "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
    "resp_200": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: SESSION=abc; Path=/; HttpOnly\r\n\r\n",
    "resp_chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "resp_cl_te": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    "resp_204": "HTTP/1.1 204 No Content\r\n\r\n",
    "resp_101": "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    "resp_10": "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
    "resp_noreason": "HTTP/1.1 302\r\nLocation: /x\r\n\r\n",
    "resp_bad_status": "HTTP/1.1 099 Low\r\n\r\n",
}
for k, v in heads.items():
    put("h1_head", k, v.encode("latin-1"))

# --- chunked: first byte = piece size - 1, then the body -------------------------------------
bodies = {
    "simple": b"5\r\nhello\r\n0\r\n\r\n",
    "two": b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n",
    "ext": b"5;name=value;q=\"x\"\r\nhello\r\n0\r\n\r\n",
    "trailers": b"2\r\nhi\r\n0\r\nX-Checksum: 1\r\nX-B: 2\r\n\r\n",
    "pipelined": b"1\r\na\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
    "bare_lf": b"5\nhello\n0\n\n",
    "no_crlf_after_data": b"5\r\nhelloX0\r\n\r\n",
    "huge": b"ffffffffffffffffff\r\n",
    "max16": b"ffffffffffffffff\r\n",
    "zero_padded": b"0000000000000000005\r\nhello\r\n0\r\n\r\n",
    "hex_prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
    "negative": b"-5\r\nhello\r\n0\r\n\r\n",
    "space_size": b"5 \r\nhello\r\n0\r\n\r\n",
    "upper": b"A\r\n0123456789\r\n0\r\n\r\n",
    "ctl_ext": b"5;\x01\r\nhello\r\n0\r\n\r\n",
    "open": b"10\r\nonly part",
    "empty_last": b"0\r\n\r\n",
}
for k, v in bodies.items():
    put("chunked", k + "_whole", b"\xff" + v)
    put("chunked", k + "_3", b"\x02" + v)

# --- proxy_protocol ---------------------------------------------------------------------------
V2 = b"\r\n\r\n\x00\r\nQUIT\n"
def v2(cmd, fam, payload):
    return V2 + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(payload)) + payload
ip4 = bytes([203, 0, 113, 9]) + bytes([10, 0, 0, 1]) + struct.pack(">HH", 51234, 443)
ip6 = bytes.fromhex("20010db8000000000000000000000001") + bytes.fromhex("20010db8000000000000000000000002") + struct.pack(">HH", 51234, 443)
tlv = bytes([0x01]) + struct.pack(">H", 2) + b"h2" + bytes([0x04]) + struct.pack(">H", 4) + b"\x00\x00\x00\x00"
pp = {
    "v1_tcp4": b"PROXY TCP4 203.0.113.9 10.0.0.1 51234 443\r\n",
    "v1_tcp6": b"PROXY TCP6 2001:db8::1 2001:db8::2 51234 443\r\n",
    "v1_unknown": b"PROXY UNKNOWN\r\n",
    "v1_unknown_addrs": b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
    "v1_mapped": b"PROXY TCP6 ::ffff:203.0.113.9 ::ffff:10.0.0.1 1 2\r\n",
    "v1_bad_port": b"PROXY TCP4 203.0.113.9 10.0.0.1 99999 443\r\n",
    "v1_no_crlf": b"PROXY TCP4 203.0.113.9 10.0.0.1 51234 443",
    "v1_lf": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    "v2_ipv4": v2(1, 0x11, ip4),
    "v2_ipv4_tlv": v2(1, 0x11, ip4 + tlv),
    "v2_ipv6": v2(1, 0x21, ip6),
    "v2_local": v2(0, 0x00, b""),
    "v2_udp": v2(1, 0x12, ip4),
    "v2_unix": v2(1, 0x31, b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0")),
    "v2_short": v2(1, 0x11, ip4[:5]),
    "v2_badcmd": v2(7, 0x11, ip4),
}
for k, v in pp.items():
    put("proxy_protocol", k, v)

# --- tls_sni: the first bytes of a TLS connection ------------------------------------------------
import ssl

def client_hello(server_name, alpn=None, tls13=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if not tls13:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()

hellos = {
    "sni": client_hello("portal.example.com"),
    "sni_alpn": client_hello("vpn.example.com", ["h2", "http/1.1"]),
    "tls12": client_hello("sso.example.org", tls13=False),
    "no_sni": client_hello(None),
}
hellos["truncated"] = hellos["sni"][:60]
hellos["record_only"] = hellos["sni"][:5]
hellos["http"] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
hellos["sslv2"] = bytes([0x80, 0x2e, 0x01, 0x00, 0x02])
for k, v in hellos.items():
    put("tls_sni", k, v)

# --- forwarded_chain: selector byte, then lines ("F..." = Forwarded, else X-Forwarded-For) ----
chains = {
    "xff": (2, ["X203.0.113.9, 10.0.0.2"]),
    "xff_spoof": (0, ["X1.1.1.1, 203.0.113.9, 10.0.0.2", "X192.168.1.1"]),
    "xff_port": (2, ["X203.0.113.9:4711"]),
    "xff_v6": (2, ["X[2001:db8::1]:443, fd00::2"]),
    "xff_mapped": (6, ["X::ffff:203.0.113.9"]),
    "xff_unknown": (2, ["X203.0.113.9, unknown, 10.0.0.3"]),
    "xff_garbage": (2, ["X1.2.3.4, not an ip"]),
    "fwd": (1, ['Ffor=203.0.113.9;proto=https;by=10.0.0.1']),
    "fwd_quoted_v6": (1, ['Ffor="[2001:db8::1]:443", for=10.0.0.2']),
    "fwd_obf": (0, ['Ffor=_hidden, for=203.0.113.9']),
    "fwd_escape": (1, ['Ffor="203.0.\\113.9"']),
    "fwd_no_for": (1, ['Fproto=https;host=a']),
    "both": (0, ["X9.9.9.9", 'Ffor=203.0.113.9']),
    "untrusted": (12, ["X1.1.1.1"]),
    "many": (2, ["X" + ", ".join(f"10.0.0.{i}" for i in range(40))]),
}
for k, (sel, lines) in chains.items():
    put("forwarded_chain", k, bytes([sel]) + "\n".join(lines).encode())

# --- cookie: name line, then header lines (each a Cookie and a Set-Cookie line) ---------------
cookies = {
    "simple": "SESSION\nSESSION=abc123",
    "many": "SESSION\nlang=en; SESSION=\"quoted\"; theme=dark",
    "two_lines": "id_token\na=b\nid_token=x.y.z; c=d",
    "dup": "SESSION\nSESSION=first; SESSION=second",
    "empty": "SESSION\nSESSION=; a=b",
    "delete": "SESSION\nSESSION=deleted; Max-Age=0; Path=/",
    "expires": "SESSION\nSESSION=abc; Expires=Thu, 01-Jan-1970 00:00:01 GMT; HttpOnly",
    "future": "SESSION\nSESSION=abc; Expires=Fri, 31 Dec 2099 23:59:59 GMT; Secure",
    "negative": "SESSION\nSESSION=abc; max-age=-1",
    "no_eq": "SESSION\nSESSION; a=b",
    "ows": "SESSION\n  SESSION \t=\t v ;",
}
for k, v in cookies.items():
    put("cookie", k, v)

# --- login_form: request target line, Content-Type line, then the body -------------------------
forms = {
    "urlencoded": "application/x-www-form-urlencoded\nusername=alice%40example.com&password=hunter2",
    "plus": "application/x-www-form-urlencoded; charset=utf-8\nusername=alice+moreno&x=1",
    "dup": "application/x-www-form-urlencoded\nusername=alice&username=bob",
    "encoded_name": "application/x-www-form-urlencoded\nuser%6Eame=carol",
    "bad_pct": "application/x-www-form-urlencoded\nusername=%zz",
    "ctl": "application/x-www-form-urlencoded\nusername=a%0Ab",
    "json": 'application/json\n{"username": "alice@example.com", "password": "x"}',
    "json_nested": 'application/json\n{"a": {"username": "x"}, "username": "bob"}',
    "json_dup": 'application/json\n{"username": "a", "username": "b"}',
    "json_escape": 'application/json\n{"user\\u006eame": "dave\\u0000"}',
    "json_number": 'application/vnd.api+json\n{"username": 42}',
    "json_array": "application/json\n[1,2,3]",
    "multipart": "multipart/form-data; boundary=XyZ\n--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--XyZ--\r\n",
    "multipart_two": "multipart/form-data; boundary=\"a b\"\n--a b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--a b\r\nContent-Disposition: form-data; name=username\r\nContent-Type: text/plain\r\n\r\nbob\r\n--a b--\r\n",
    "multipart_file": "multipart/form-data; boundary=B\n--B\r\nContent-Disposition: form-data; name=\"username\"; filename=\"u.txt\"\r\n\r\ncarol\r\n--B--",
    "text_plain": "text/plain\nusername=dave\r\npassword=x\r\n",
    "none": "\nusername=alice",
}
targets = {
    "": "/login",
    "_case": "/Login",
    "_slashes": "//login/",
    "_dots": "/a/../login",
    "_pct": "/%6Cogin",
    "_param": "/login;jsessionid=1",
    "_absolute": "http://portal.example/login?next=/",
    "_query": "/login?username=eve",
}
for k, v in forms.items():
    put("login_form", k, "/login\n" + v)
for k, t in targets.items():
    put("login_form", "target" + k, t + "\napplication/x-www-form-urlencoded\nusername=alice")
put("login_form", "target_encoded_slash", "/a%2F..%2Flogin\napplication/json\n{}")
put("login_form", "target_query_dup", "/login?username=a&username=b\napplication/json\n{\"username\":\"a\"}")

# --- jwt: the token ----------------------------------------------------------------------------
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def tok(header, claims, sign):
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(sign(signing.encode()))

def hs(data):
    return hmac.new(HS256_SECRET, data, hashlib.sha256).digest()

def openssl_sign(key):
    def sign(data):
        return subprocess.run(["openssl", "dgst", "-sha256", "-sign", os.path.join(FIX, "identity", key)],
                              input=data, capture_output=True, check=True).stdout
    return sign

def der_to_raw(der):
    # ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s, 32 bytes each (JWS ES256)
    i = 2
    out = b""
    for _ in range(2):
        assert der[i] == 2
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\x00")
        out += v.rjust(32, b"\x00")
        i += 2 + n
    return out

good = {"iss": "https://idp.example", "aud": "portal", "email": "alice@example.com",
        "sub": "alice", "preferred_username": "alice", "exp": NOW + 3600, "nbf": NOW - 60}
jwts = {
    "hs256": tok({"alg": "HS256", "typ": "JWT"}, good, hs),
    "hs256_aud_list": tok({"alg": "HS256"}, dict(good, aud=["x", "portal"]), hs),
    "hs256_expired": tok({"alg": "HS256"}, dict(good, exp=NOW - 7200), hs),
    "hs256_noexp": tok({"alg": "HS256"}, {k: v for k, v in good.items() if k != "exp"}, hs),
    "hs256_crit": tok({"alg": "HS256", "crit": ["x"]}, good, hs),
    "hs256_dup": b64(b'{"alg":"HS256"}') + "." + b64(b'{"email":"a","email":"b","exp":1}') + "." + b64(b"x"),
    "rs256": tok({"alg": "RS256", "kid": "rsa-1"}, good, openssl_sign("rsa1.key.pem")),
    "rs256_nokid": tok({"alg": "RS256"}, good, openssl_sign("rsa2.key.pem")),
    "es256": tok({"alg": "ES256", "kid": "ec-1"}, good, lambda d: der_to_raw(openssl_sign("ec1.key.pem")(d))),
    "none": b64(b'{"alg":"none"}') + "." + b64(json.dumps(good).encode()) + ".",
    "confusion": tok({"alg": "HS256", "kid": "rsa-1"}, good,
                     lambda d: hmac.new(open(os.path.join(FIX, "identity", "rsa1.pub.pem"), "rb").read(), d, hashlib.sha256).digest()),
    "unverified": tok({"alg": "RS256"}, {"preferred_username": " bob ", "exp": NOW + 10}, lambda d: b"sig"),
    "control": tok({"alg": "RS256"}, {"preferred_username": "b\u0000ob"}, lambda d: b"sig"),
    "user_number": tok({"alg": "RS256"}, {"preferred_username": 7, "sub": ["a"]}, lambda d: b"sig"),
    "nbf_future": tok({"alg": "HS256"}, dict(good, nbf=NOW + 86400), hs),
    "exp_float": tok({"alg": "HS256"}, dict(good, exp=1e300), hs),
    "two_dots": "a.b",
    "four_parts": "a.b.c.d",
    "bad_b64": "!!!.???.***",
}
for k, v in jwts.items():
    put("jwt", k, v)

# --- config_toml, employees_* : the project's own files ----------------------------------------
for src in ["src/config/default.toml", "deploy/locgate-sso.toml", "bench/locgate-bench.toml"]:
    copy("config_toml", os.path.basename(src), src)
put("config_toml", "minimal", '[[listener]]\nbind = "127.0.0.1:8080"\nupstream = "http://127.0.0.1:9000"\n')
put("config_toml", "bad_line", '[policy]\nmode = "enforce"\nnight_hours = 7\n')
copy("employees_csv", "example.csv", "deploy/employees.csv")
copy("employees_csv", "fixture.csv", "tests/fixtures/employees/employees.example.csv")
put("employees_csv", "bom_quotes", '\ufeffid,country,aliases\n"e1","US","a;""b"""\n')
put("employees_csv", "short_row", "id,country\ne1\n")
copy("employees_toml", "example.toml", "deploy/employees.example.toml")
copy("employees_toml", "fixture.toml", "tests/fixtures/employees/employees.example.toml")
put("employees_toml", "travel", '[[employee]]\nid = "e1"\ncountry = "US"\ntravel = [ { from = 2026-12-20, to = 2026-12-19, countries = ["MX"] } ]\n')

# --- history_record: payloads from the Redis stream ---------------------------------------------
recs = {
    "full": {"e": "ann", "p": {"t": 1790000000123, "c": "DE", "la": 52.52, "lo": 13.405, "a": 20.0},
             "g": "2001:db8:1:2::99", "d": {"d": "2026-11-25", "f": 6}},
    "bare": {"e": "bob", "g": "203.0.113.9"},
    "place_no_loc": {"e": "e1042", "p": {"t": 0, "c": "US", "a": 500}},
    "bad_lat": {"e": "a", "p": {"t": 0, "la": 95.0, "lo": 0.0, "a": 1}},
    "bad_day": {"e": "a", "d": {"d": "2026-13-01", "f": 1}},
    "flags": {"e": "a", "d": {"d": "2026-11-01", "f": 9}},
    "big_t": {"e": "a", "p": {"t": 99999999999999999, "a": 1}},
}
for k, v in recs.items():
    put("history_record", k, json.dumps(v))
put("history_record", "garbage", "garbage")

# --- data_tables: byte 0 picks the parser (0 ASN categories, 1 AS list, 2 network kinds, 3 CIDR)
def table(name, pick, path):
    with open(os.path.join(ROOT, path), "rb") as f:
        put("data_tables", name, bytes([pick]) + f.read())


table("asn_categories", 0, "data/asn-categories.csv")
table("x4bnet_vpn", 1, "data/x4bnet-vpn-asn.txt")
table("network_kinds", 2, "data/network-kinds.csv")
put("data_tables", "cidr_list", b"\x03# office\n203.0.113.0/24\n2001:db8::/32\n198.51.100.7\n")

# --- vpn_reports: byte 0 picks the parser (0 OpenVPN status 3, 1 wg dump, 2 ocserv log, 3 address)
put("vpn_reports", "openvpn_status", b"\x00TITLE\tOpenVPN 2.6.3\nHEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher\nCLIENT_LIST\talice\t127.2.0.7:37741\t10.88.0.2\t\t1923\t1976\t2026-12-02 13:02:03\t1796216523\tUNDEF\t0\t0\tAES-256-GCM\nGLOBAL_STATS\tdco_enabled\t0\n")
put("vpn_reports", "wg_dump", b"\x010JK39BhNSX8qqoImC5KDwCJf8Vc2oAoqrfwUPILnLXw=\tP85nsb91L/FYky4K6+y5JR55fEJH/AeIHWdnMlRjuyk=\t51820\toff\naJfiozIVdk2xedpmzU1wen0S9NLE6i3sK6++iVZ8UUk=\t(none)\t127.0.0.1:51821\t10.77.0.2/32\t1799999990\t212\t92\toff\n")
put("vpn_reports", "ocserv", b"\x02Dec  2 13:01:02 vpn ocserv[1234]: main[alice]:198.51.100.20:40112 user logged in\nmain[alice]:198.51.100.20:40112 user disconnected\n")
put("vpn_reports", "address", b"\x03[AF_INET6]::ffff:192.0.2.9:40000")
# --- scim_request: byte 0 picks the parser (0 User, 1 PatchOp, 2 filter); Okta and Entra shapes
put("scim_request", "okta_user", b'\x00{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local","name":{"givenName":"Test","familyName":"User"},"emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],"displayName":"Test User","externalId":"00ujl29u0le5T6Aj10h7","password":"1mz050nq","active":true,"timezone":"America/Chicago","addresses":[{"type":"home","locality":"Austin","region":"TX","postalCode":"78701","country":"US"}]}')
put("scim_request", "entra_user", b'\x00{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"0a21f0f2","userName":"Test_User_ab6490ee","active":"True","addresses":[{"primary":"True","type":"work","locality":"Berlin","country":"Germany"}],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984"}}')
put("scim_request", "okta_deactivate", b'\x01{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}')
put("scim_request", "entra_patch", b'\x01{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"addresses[type eq \\"work\\"].locality","value":"Munich"},{"op":"Replace","path":"active","value":"False"},{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"7"},{"op":"remove","path":"emails[type eq \\"work\\"]"}]}')
put("scim_request", "filter", b'\x02userName eq "test.user@okta.local"')
put("scim_request", "filter_external", b'\x02externalId eq "00ujl29u0le5T6Aj10h7"')
# --- replay_formats: byte 0 picks the format (0 auto); the IdP exports of tests/fixtures/replay
for name in sorted(os.listdir(os.path.join(ROOT, "tests", "fixtures", "replay"))):
    if name.endswith((".json", ".jsonl", ".csv")):
        with open(os.path.join(ROOT, "tests", "fixtures", "replay", name), "rb") as f:
            put("replay_formats", name, b"\x00" + f.read())
# --- identity_provider: byte 0 picks (0 JWKS, 1 discovery document, 2 Cache-Control)
with open(os.path.join(ROOT, "tests", "fixtures", "identity", "jwks.json"), "rb") as f:
    put("identity_provider", "jwks", b"\x00" + f.read())
put("identity_provider", "discovery", b'\x01{"issuer":"https://idp.example","jwks_uri":"https://idp.example/oauth2/v1/keys","id_token_signing_alg_values_supported":["RS256"]}')
put("identity_provider", "cache_control", b"\x02public, max-age=21600, must-revalidate")
print("seeds written under", CORPUS)
