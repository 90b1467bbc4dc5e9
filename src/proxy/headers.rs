//! Header hygiene for the proxy hop.
//!
//! Everything here runs on every proxied request or response, on headers that
//! are hostile: they may be non-UTF-8, huge or malformed, and nothing in this
//! module panics or trusts them. Three jobs:
//!
//! * **Hop-by-hop removal** ([`strip_hop_by_hop`], RFC 9110 §7.6.1): fields
//!   that describe one connection must not leak to the next one, or a client
//!   could steer our upstream connection (`Transfer-Encoding`, `TE`,
//!   `Upgrade`, keep-alive parameters) or leak proxy credentials to the app.
//! * **Forwarding headers** ([`add_forwarding_headers`]): tell the upstream who
//!   connected to us, in both `X-Forwarded-*` (de-facto) and `Forwarded`
//!   (RFC 7239) form. A peer that is not a trusted proxy cannot plant any of
//!   these: whatever it sent is replaced by what *we* observed.
//! * **Protected names, by normalised name** ([`strip_protected`]): headers
//!   that locgate itself sets for the upstream (`X-Locgate-*`), identity
//!   headers from anyone but an identity proxy, and any `_` spelling of those
//!   or of the forwarding headers are removed from client input, so the
//!   upstream can rely on them. A name is compared after reading `_` as `-`
//!   (names are already lower case): WSGI/CGI-style upstreams (`HTTP_X_REMOTE_USER`)
//!   map `X_Remote_User` onto the same variable as `X-Remote-User`.
//!
//! Recommended order on a request: [`strip_hop_by_hop`] → [`strip_protected`] →
//! [`add_forwarding_headers`] → add locgate's own headers. Adding our own
//! headers last means no `Connection: x-locgate-…` trick can remove them.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use http::header::{
    AUTHORIZATION, CONNECTION, FORWARDED, HOST, HeaderMap, HeaderName, HeaderValue,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
    WWW_AUTHENTICATE,
};

use crate::client_addr::{X_FORWARDED_FOR, normalize};

/// `X-Forwarded-Proto`: scheme the client used to reach the first proxy.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: `Host` the client sent to the first proxy.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`: nginx-style single client address.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `Keep-Alive` (RFC 2068 §19.7.1): connection parameters, hop-by-hop.
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection` (RFC 9112 appendix C.2.2): non-standard `Connection`
/// sent by old clients.
pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// `HTTP2-Settings` (RFC 7540 §3.2.1): only meaningful for an h2c upgrade of
/// this very connection.
pub const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Hop-by-hop fields removed by [`strip_hop_by_hop`] even when `Connection`
/// does not name them, because peers often forget to. RFC 9110 §7.6.1 asks
/// intermediaries to remove `Proxy-Connection`, `Keep-Alive`, `TE`,
/// `Transfer-Encoding` and `Upgrade` regardless; `Trailer`,
/// `Proxy-Authenticate` and `Proxy-Authorization` complete RFC 2616 §13.5.1's
/// list (the same set Go's `httputil.ReverseProxy` strips). `Trailer` goes
/// because hyper re-frames the body and we do not promise to relay trailers.
/// `HTTP2-Settings` is only for an h2c upgrade of one connection.
///
/// `Proxy-Authenticate` and `Proxy-Authorization` are included. RFC 9110
/// §11.7 says both apply only to the adjacent client/proxy. locgate is a
/// gateway and does no proxy authentication, so forwarding a client's
/// `Proxy-Authorization` would leak credentials meant for the client's own
/// forward proxy to the upstream application. A `Proxy-Authenticate`
/// challenge from the upstream could then never be satisfied, and passing it
/// on would make browsers show a proxy-login prompt for the site, which is a
/// credential-phishing vector. So both are stripped in both directions.
pub const HOP_BY_HOP: [HeaderName; 10] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    HTTP2_SETTINGS,
];

/// Headers through which a client could claim an identity (address, scheme,
/// host) that upstream software might believe. For an untrusted peer,
/// [`add_forwarding_headers`] deletes all of them before adding its own: the
/// standard set plus the vendor variants that common frameworks read.
pub const CLIENT_IDENTITY_HEADERS: [HeaderName; 13] = [
    X_FORWARDED_FOR,
    FORWARDED,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_REAL_IP,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("fastly-client-ip"),
];

/// Fields that [`strip_hop_by_hop`] will not delete just because a
/// `Connection` header names them. RFC 9110 §7.6.1 forbids senders from
/// listing end-to-end fields there; a hostile client does it anyway to drop
/// `Host` or `Content-Length` (breaking routing or framing) or to erase the
/// forwarding chain a non-compliant front proxy added (the "hop-by-hop
/// header abuse" attack). Only names we depend on are protected.
pub const PROTECTED_FROM_CONNECTION: [&str; 7] = [
    "host",
    "content-length",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

/// Iterate the non-empty, whitespace-trimmed tokens of a comma-separated
/// list value (RFC 9110 §5.6.1), borrowing from the header bytes.
fn list_tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(a), Some(b)) => s.get(a..=b).unwrap_or_default(),
        _ => &[],
    }
}

/// Does any `Connection` line carry `token` (case-insensitive)?
fn connection_has(headers: &HeaderMap, token: &[u8]) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| list_tokens(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(token)))
}

/// Remove hop-by-hop headers from a request or response (RFC 9110 §7.6.1):
/// `Connection` and every field it names, plus [`HOP_BY_HOP`] (`Keep-Alive`,
/// `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`,
/// `Trailer`, `Transfer-Encoding`, `Upgrade`, `HTTP2-Settings`).
///
/// Why: these describe a single connection; forwarding them lets a client
/// influence our upstream connection's framing or protocol. `TE` includes
/// `TE: trailers` (only meaningful for HTTP/2 gRPC, which this HTTP/1 proxy
/// does not speak). Names in `Connection` that refer to fields we depend on
/// (`Host`, `Content-Length`, forwarding headers) are *not* removed; see
/// [`PROTECTED_FROM_CONNECTION`]. Unparsable names in `Connection` are ignored.
///
/// When `keep_upgrade` is true (a WebSocket / HTTP upgrade being passed
/// through, RFC 6455 §4.1, RFC 9110 §7.8), `Upgrade` is kept and, if an
/// `Upgrade` header is present, `Connection` is replaced by exactly
/// `Connection: upgrade`; other `Connection` options are still honoured and
/// removed. Without an `Upgrade` header there is nothing to upgrade, so no
/// `Connection` is added.
///
/// Allocation-free unless more than one `Connection` line is present.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if !has_any(headers, &HOP_BY_HOP) {
        return;
    }
    if let Some(first) = headers.get(CONNECTION).cloned() {
        // `HeaderValue` clones share the underlying buffer; an empty Vec does
        // not allocate, so the usual single-line case costs nothing here.
        let more: Vec<HeaderValue> = headers
            .get_all(CONNECTION)
            .iter()
            .skip(1)
            .cloned()
            .collect();
        for line in std::iter::once(&first).chain(more.iter()) {
            for token in list_tokens(line.as_bytes()) {
                if keep_upgrade && token.eq_ignore_ascii_case(b"upgrade") {
                    continue;
                }
                if PROTECTED_FROM_CONNECTION
                    .iter()
                    .any(|p| token.eq_ignore_ascii_case(p.as_bytes()))
                {
                    continue;
                }
                // `&str` lookups lower-case on the stack and return None for
                // invalid names, so hostile tokens cannot panic or allocate.
                if let Ok(name) = std::str::from_utf8(token) {
                    headers.remove(name);
                }
            }
        }
    }
    for name in HOP_BY_HOP {
        if keep_upgrade && name == UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade && headers.contains_key(UPGRADE) {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True when the request asks for a protocol upgrade (RFC 9110 §7.8,
/// RFC 6455 §4.1): some `Connection` line contains the `upgrade` token
/// (case-insensitive) and a non-empty `Upgrade` header is present.
///
/// Both are required: an `Upgrade` header without the `Connection` option
/// must be ignored (it may have been injected past a proxy that did not
/// understand it). Callers must also ignore upgrades on HTTP/1.0 requests
/// (RFC 9110 §7.8), which this header-only check cannot see.
#[must_use]
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    let has_upgrade = headers
        .get_all(UPGRADE)
        .iter()
        .any(|v| !trim_ows(v.as_bytes()).is_empty());
    has_upgrade && connection_has(headers, b"upgrade")
}

/// Remove headers in `names` (e.g. X-Locgate-Verdict/Country/Reasons) that a
/// client must not be able to set, so the upstream can trust that any such
/// header it sees was added by locgate. All lines of each name are removed.
pub fn strip_named(headers: &mut HeaderMap, names: &[HeaderName]) {
    if !has_any(headers, names) {
        return;
    }
    for name in names {
        headers.remove(name);
    }
}

/// Prefix of every name locgate sets for the upstream (`X-Locgate-Verdict`, `-Country`,
/// `-Reasons`); the whole prefix is reserved, so an annotation added later is protected too.
pub const ANNOTATION_PREFIX: &str = "x-locgate-";

/// Removes every request field whose name is protected once `_` is read as `-`:
///
/// * `X-Locgate-*` (any spelling), always: only locgate sets them;
/// * the `identity` header names (the listener's `header` sources), exactly spelled, when
///   `strip_identity` (the peer is not an identity proxy);
/// * any `_` spelling of an identity header or of [`CLIENT_IDENTITY_HEADERS`]
///   (`X_Remote_User`, `x_forwarded_for`), from everyone: no proxy sets those, and an upstream
///   that maps `_` to `-` would read them as the real header.
///
/// The exact spellings of the forwarding headers are [`add_forwarding_headers`]'s job (kept
/// from a trusted forwarder). Cost on the usual request: one pass over the field names, a few
/// byte compares each, no allocation; names are collected only when something is removed.
pub fn strip_protected(headers: &mut HeaderMap, identity: &[HeaderName], strip_identity: bool) {
    let protected = |name: &HeaderName| is_protected(name, identity, strip_identity);
    if !headers.keys().any(protected) {
        return;
    }
    let doomed: Vec<HeaderName> = headers.keys().filter(|n| protected(n)).cloned().collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// [`strip_protected`]'s test for one name. The usual name has no `_`: one word-wise scan
/// finds that, and only exact comparisons follow (a 10-byte prefix, the identity names).
fn is_protected(name: &HeaderName, identity: &[HeaderName], strip_identity: bool) -> bool {
    let s = name.as_str().as_bytes();
    if !has_underscore(s) {
        return s.starts_with(ANNOTATION_PREFIX.as_bytes())
            || (strip_identity && identity.contains(name));
    }
    s.get(..ANNOTATION_PREFIX.len())
        .is_some_and(|head| folds_to(head, ANNOTATION_PREFIX))
        || identity
            .iter()
            .chain(CLIENT_IDENTITY_HEADERS.iter())
            .any(|p| folds_to(s, p.as_str()))
}

/// Whether `s` holds a `_`, eight bytes at a time (a byte-wise loop over every field name of
/// every request measured about twice the cost of the rest of the hygiene together). The last
/// word overlaps the one before it instead of a byte-wise tail.
fn has_underscore(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const UNDERSCORES: u64 = u64::from_ne_bytes([b'_'; 8]);
    // The classic "has a zero byte" test on `word ^ "________"`: exact, no false positives.
    let any = |at: usize| {
        let word = s
            .get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_ne_bytes);
        let x = word ^ UNDERSCORES;
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    };
    let n = s.len();
    if n < 8 {
        return s.contains(&b'_');
    }
    let mut at = 0;
    while at + 8 <= n {
        if any(at) {
            return true;
        }
        at += 8;
    }
    at != n && any(n - 8)
}

/// Whether the lower-case name `s` equals `protected` once each `_` is read as `-`.
fn folds_to(s: &[u8], protected: &str) -> bool {
    let p = protected.as_bytes();
    s.len() == p.len()
        && s.iter()
            .zip(p)
            .all(|(&a, &b)| a == b || (a == b'_' && b == b'-'))
}

/// Whether an exchange used an authentication that binds the *connection* (RFC 4559
/// `Negotiate`, NTLM): the request's `Authorization` or the response's `WWW-Authenticate`
/// names one. An origin such as IIS then treats the TCP connection as logged in, so such a
/// connection must never carry another client's requests.
pub fn binds_connection(request: &HeaderMap, response: &HeaderMap) -> bool {
    let bound = |v: &HeaderValue| {
        let v = trim_ows(v.as_bytes());
        [&b"ntlm"[..], b"negotiate"].iter().any(|scheme| {
            v.len() >= scheme.len()
                && v[..scheme.len()].eq_ignore_ascii_case(scheme)
                && v.get(scheme.len()).is_none_or(|b| *b == b' ' || *b == b',')
        })
    };
    request.get_all(AUTHORIZATION).iter().any(bound)
        || response.get_all(WWW_AUTHENTICATE).iter().any(bound)
}

/// Whether any of `names` is present. Most messages carry none of the names this module
/// removes, and one pass over a message's few field names (standard names compare as small
/// integers) costs less than a hashed lookup per name; this runs several times per request.
fn has_any(headers: &HeaderMap, names: &[HeaderName]) -> bool {
    !names.is_empty() && headers.keys().any(|k| names.contains(k))
}

/// Append this hop to the forwarding headers of a request about to go
/// upstream.
///
/// `peer` is the socket peer *we* saw and `peer_trusted` whether it is a
/// trusted proxy. What we append is always our own observation (the peer),
/// never the resolved client: the upstream then sees a complete chain whose
/// right-most entry it can attribute to locgate.
///
/// * Untrusted peer: every header in [`CLIENT_IDENTITY_HEADERS`]
///   (`X-Forwarded-For`, `Forwarded`, `X-Forwarded-Proto`,
///   `X-Forwarded-Host`, `X-Real-IP`, and vendor variants) is deleted first,
///   so a client cannot plant a chain the upstream might believe.
/// * Trusted peer: existing values are kept and appended to.
///
/// Then:
/// * `X-Forwarded-For`: existing lines joined into one (`a, b, peer`),
///   because many consumers read only one line. IPv6 is written bare
///   (`2001:db8::1`), as nginx does; IPv4-mapped addresses as IPv4.
/// * `Forwarded` (RFC 7239 §4): one element
///   `for=<node>[;host=<host>][;proto=<proto>]` appended the same way. IPv6
///   nodes are quoted and bracketed (`for="[2001:db8::1]"`, §6); `host` is
///   the received `Host` (§5.3), quoted when it is not a token (`:port`,
///   IPv6 literal), and omitted if it contains anything outside
///   `A-Z a-z 0-9 - . _ ~ : [ ]` (we never relay odd bytes into a
///   structured header); `proto` (§5.4) is omitted unless it is a valid URI
///   scheme. No port is sent: many parsers mishandle `for="ip:port"` and
///   `X-Forwarded-For` never carries one. If an existing (trusted) value has
///   an unterminated quoted-string, it is discarded rather than extended, since
///   a left-to-right parser would swallow our element into that quote.
/// * `X-Forwarded-Proto`: set to `proto` unless a trusted peer already set it
///   (a TLS-terminating front proxy knows the original scheme; overwriting
///   it with ours causes redirect loops).
/// * `X-Forwarded-Host`: set from `Host` when absent, by the same rule, with
///   the same sanity check as `host=`.
/// * `X-Real-IP` is not set: we only know the peer here, and for a trusted
///   peer that is a proxy, not the client. Untrusted peers' values are
///   removed; trusted peers' values pass through.
pub fn add_forwarding_headers(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    peer_trusted: bool,
    proto: &'static str,
) {
    if !peer_trusted {
        strip_named(headers, &CLIENT_IDENTITY_HEADERS);
    }
    let ip = normalize(peer.ip());
    let ip_text = IpText::new(ip);
    let ip_bytes = ip_text.as_bytes();
    let proto_ok = is_scheme(proto);
    // Cloning a HeaderValue shares its buffer; no copy of the Host bytes.
    let host = headers
        .get(HOST)
        .filter(|h| is_sane_host(h.as_bytes()))
        .cloned();

    // X-Forwarded-For: "<existing>, <ip>"
    append_element(headers, X_FORWARDED_FOR, |_| true, &[ip_bytes]);

    // Forwarded: "<existing>, for=<node>[;host=<host>][;proto=<proto>]"
    let v6 = ip.is_ipv6();
    let (host_pre, host_val, host_post): (&[u8], &[u8], &[u8]) = match &host {
        None => (b"", b"", b""),
        Some(h) if h.as_bytes().iter().all(|&b| is_tchar(b)) => (b";host=", h.as_bytes(), b""),
        // Sane hosts contain neither '"' nor '\', so no escaping is needed.
        Some(h) => (b";host=\"", h.as_bytes(), b"\""),
    };
    let (proto_pre, proto_val): (&[u8], &[u8]) = if proto_ok {
        (b";proto=", proto.as_bytes())
    } else {
        (b"", b"")
    };
    append_element(
        headers,
        FORWARDED,
        quotes_balanced,
        &[
            if v6 { b"for=\"[" } else { b"for=" },
            ip_bytes,
            if v6 { b"]\"" } else { b"" },
            host_pre,
            host_val,
            host_post,
            proto_pre,
            proto_val,
        ],
    );

    if proto_ok && !headers.contains_key(X_FORWARDED_PROTO) {
        // Validated above, so `from_static` cannot panic; it also avoids a copy.
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if let Some(h) = host {
        if !headers.contains_key(X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST, h);
        }
    }
}

/// Textual IP address on the stack (longest form, IPv4-embedded IPv6, is 45
/// bytes), so the final header can be sized exactly before allocating.
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    fn new(ip: IpAddr) -> Self {
        let mut t = IpText {
            buf: [0; 48],
            len: 0,
        };
        // Cannot fail: 48 bytes always fit an address. On the impossible
        // overflow the text is just truncated, never a panic.
        let _ = write!(t, "{ip}");
        t
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Replace `name` with its existing lines joined by ", " (trimmed, empty
/// elements at line ends dropped) followed by one new element made of
/// `parts`. If any existing line fails `keep_line`, the existing value is
/// discarded because it cannot be safely extended.
///
/// The buffer is sized exactly, so `HeaderValue::try_from(Vec)` takes it over
/// without a copy or a second allocation: one allocation per header.
fn append_element(
    headers: &mut HeaderMap,
    name: HeaderName,
    keep_line: fn(&[u8]) -> bool,
    parts: &[&[u8]],
) {
    let lines = headers.get_all(&name);
    let keep = lines.iter().all(|v| keep_line(v.as_bytes()));
    let existing = || {
        lines
            .iter()
            .filter(move |_| keep)
            .map(|v| trim_list_end(v.as_bytes()))
            .filter(|v| !v.is_empty())
    };
    let new_len: usize = parts.iter().map(|p| p.len()).sum();
    let len = existing().map(|v| v.len() + 2).sum::<usize>() + new_len;
    let mut out = Vec::with_capacity(len);
    for v in existing() {
        out.extend_from_slice(v);
        out.extend_from_slice(b", ");
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    // `TryFrom<Vec<u8>>` takes ownership of the buffer without copying. The
    // bytes come from valid header values plus ASCII, so this cannot fail in
    // practice; if it ever did, the header is removed rather than left stale
    // (fail closed).
    match HeaderValue::try_from(out) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

/// Trim OWS and trailing empty list elements (`"a, b , ,"` → `"a, b"`).
fn trim_list_end(s: &[u8]) -> &[u8] {
    let s = trim_ows(s);
    let end = s
        .iter()
        .rposition(|&b| !matches!(b, b',' | b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    s.get(..end).unwrap_or_default()
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 3986 §3.1 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn is_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// Conservative `Host` check before relaying it: reg-name / IP-literal /
/// port characters only, bounded length.
fn is_sane_host(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= 300
        && b.iter().all(|&c| {
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b':' | b'[' | b']')
        })
}

/// Does `v` parse left-to-right without an unterminated quoted-string
/// (RFC 9110 §5.6.4, backslash escapes honoured)?
fn quotes_balanced(v: &[u8]) -> bool {
    let mut in_quote = false;
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        if in_quote {
            match b {
                b'\\' => i += 1,
                b'"' => in_quote = false,
                _ => {}
            }
        } else if b == b'"' {
            in_quote = true;
        }
        i += 1;
    }
    !in_quote
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_addr::{AddrSource, TrustedProxies, resolve};

    fn hv(b: &[u8]) -> HeaderValue {
        HeaderValue::from_bytes(b).expect("test value")
    }

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("test name"),
                hv(v),
            );
        }
        h
    }

    fn one(h: &HeaderMap, name: &str) -> String {
        let all: Vec<_> = h.get_all(name).iter().collect();
        assert_eq!(all.len(), 1, "{name}: {all:?}");
        String::from_utf8_lossy(all[0].as_bytes()).into_owned()
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().expect("test sock")
    }

    // ---- strip_protected (names compared with `_` read as `-`) ----

    #[test]
    fn underscore_spellings_of_protected_names_are_removed_from_everyone() {
        let identity = [HeaderName::from_static("x-remote-user")];
        let mut h = map(&[
            ("x_remote_user", b"carol"),
            ("X_Locgate_Verdict", b"allow"),
            ("x-locgate-country", b"US"),
            ("x-locgate_reasons", b""),
            ("x_forwarded_for", b"127.2.0.1"),
            ("true_client_ip", b"127.2.0.1"),
            ("x-remote-user", b"carol"),
            ("x-forwarded-for", b"10.0.0.1"),
            ("x_custom_app", b"kept"),
            ("accept", b"*/*"),
        ]);
        // From an identity proxy: its exact X-Remote-User and the forwarding chain stay.
        strip_protected(&mut h, &identity, false);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["accept", "x-forwarded-for", "x-remote-user", "x_custom_app"]
        );
        // From anyone else the exact identity name goes too.
        strip_protected(&mut h, &identity, true);
        assert!(!h.contains_key("x-remote-user"));
        assert!(h.contains_key("x-forwarded-for") && h.contains_key("x_custom_app"));
    }

    #[test]
    fn has_underscore_finds_one_at_every_position_of_every_length() {
        for len in 0..40 {
            assert!(!has_underscore(&vec![b'a'; len]), "{len}");
            for at in 0..len {
                let mut name = vec![b'a'; len];
                name[at] = b'_';
                assert!(has_underscore(&name), "{len} {at}");
            }
        }
        // Bytes next to `_` (0x5e, 0x60) and a word of `^` are not taken for it.
        assert!(!has_underscore(b"^^^^^^^^``````````"));
    }

    #[test]
    fn a_clean_request_is_left_alone() {
        let mut h = map(&[("host", b"a"), ("x-app-id", b"1"), ("x_app", b"2")]);
        let before = h.clone();
        strip_protected(&mut h, &[HeaderName::from_static("x-remote-user")], true);
        assert_eq!(h, before);
    }

    // ---- strip_hop_by_hop (RFC 9110 §7.6.1) ----

    #[test]
    fn strips_fixed_hop_by_hop_set() {
        let mut h = map(&[
            ("connection", b"keep-alive"),
            ("keep-alive", b"timeout=5"),
            ("proxy-connection", b"keep-alive"),
            ("proxy-authorization", b"Basic Zm9vOmJhcg=="),
            ("proxy-authenticate", b"Basic realm=x"),
            ("te", b"trailers"),
            ("trailer", b"x-checksum"),
            ("transfer-encoding", b"chunked"),
            ("upgrade", b"websocket"),
            ("http2-settings", b"AAMAAABkAARAAAAAAAIAAAAA"),
            ("content-type", b"text/plain"),
            ("authorization", b"Bearer t"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type", "authorization"]);
    }

    #[test]
    fn connection_named_fields_removed() {
        // Connection: close, X-Secret removes X-Secret (RFC 9110 §7.6.1).
        let mut h = map(&[
            ("connection", b"close, X-Secret"),
            ("x-secret", b"s3cr3t"),
            ("x-other", b"keep"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-secret").is_none());
        assert!(h.get("connection").is_none());
        assert_eq!(one(&h, "x-other"), "keep");
    }

    #[test]
    fn connection_multiple_lines_case_and_whitespace() {
        let mut h = map(&[
            ("connection", b" X-A ,, "),
            ("connection", b"x-b,\tX-C\t"),
            ("x-a", b"1"),
            ("x-b", b"2"),
            ("x-b", b"2b"),
            ("x-c", b"3"),
            ("x-d", b"4"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-d"]);
    }

    #[test]
    fn connection_hostile_tokens_do_not_panic() {
        let mut h = map(&[
            ("connection", b"\xff\xfe, x y, , \x80abc, (), ,,,, a\"b"),
            ("x-keep", b"1"),
        ]);
        let long = "x".repeat(5000);
        h.append(CONNECTION, hv(long.as_bytes()));
        h.insert(
            HeaderName::from_bytes(long.as_bytes()).expect("long name"),
            hv(b"v"),
        );
        strip_hop_by_hop(&mut h, false);
        assert_eq!(one(&h, "x-keep"), "1");
        // The long name was listed, so it is gone too.
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn connection_cannot_remove_protected_fields() {
        let mut h = map(&[
            (
                "connection",
                b"Host, content-length, X-Forwarded-For, forwarded, x-real-ip, cookie",
            ),
            ("host", b"example.com"),
            ("content-length", b"5"),
            ("x-forwarded-for", b"198.51.100.1"),
            ("forwarded", b"for=198.51.100.1"),
            ("x-real-ip", b"198.51.100.1"),
            ("cookie", b"a=b"),
        ]);
        strip_hop_by_hop(&mut h, false);
        for name in [
            "host",
            "content-length",
            "x-forwarded-for",
            "forwarded",
            "x-real-ip",
        ] {
            assert!(h.contains_key(name), "{name} was removed");
        }
        assert!(!h.contains_key("cookie"));
    }

    #[test]
    fn keep_upgrade_websocket_passthrough() {
        // RFC 6455 §4.1 handshake through the proxy.
        let mut h = map(&[
            ("connection", b"keep-alive, Upgrade, X-Drop"),
            ("upgrade", b"websocket"),
            ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            ("x-drop", b"1"),
            ("keep-alive", b"timeout=5"),
        ]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(one(&h, "upgrade"), "websocket");
        assert_eq!(one(&h, "connection"), "upgrade");
        assert!(h.contains_key("sec-websocket-key"));
        assert!(!h.contains_key("x-drop"));
        assert!(!h.contains_key("keep-alive"));
    }

    #[test]
    fn keep_upgrade_without_upgrade_header_adds_nothing() {
        let mut h = map(&[("connection", b"close")]);
        strip_hop_by_hop(&mut h, true);
        assert!(h.is_empty());
    }

    #[test]
    fn no_keep_upgrade_removes_upgrade() {
        let mut h = map(&[("connection", b"upgrade"), ("upgrade", b"h2c")]);
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty());
    }

    #[test]
    fn strip_on_empty_map_is_noop() {
        let mut h = HeaderMap::new();
        strip_hop_by_hop(&mut h, false);
        strip_hop_by_hop(&mut h, true);
        assert!(h.is_empty());
    }

    // ---- is_upgrade_request (RFC 9110 §7.8, RFC 6455 §4.1) ----

    #[test]
    fn upgrade_detection() {
        assert!(is_upgrade_request(&map(&[
            ("connection", b"Upgrade"),
            ("upgrade", b"websocket")
        ])));
        assert!(is_upgrade_request(&map(&[
            ("connection", b"keep-alive"),
            ("connection", b"keep-alive,  UPGRADE "),
            ("upgrade", b"websocket"),
        ])));
        // Upgrade without the Connection option must be ignored.
        assert!(!is_upgrade_request(&map(&[("upgrade", b"websocket")])));
        assert!(!is_upgrade_request(&map(&[("connection", b"upgrade")])));
        assert!(!is_upgrade_request(&map(&[
            ("connection", b"upgrade"),
            ("upgrade", b"  ")
        ])));
        // Substring is not a token match.
        assert!(!is_upgrade_request(&map(&[
            ("connection", b"upgrade-insecure"),
            ("upgrade", b"websocket")
        ])));
        assert!(!is_upgrade_request(&map(&[
            ("connection", b"\xffupgrade"),
            ("upgrade", b"websocket")
        ])));
    }

    // ---- strip_named ----

    #[test]
    fn strip_named_removes_all_lines() {
        let verdict = HeaderName::from_static("x-locgate-verdict");
        let country = HeaderName::from_static("x-locgate-country");
        let mut h = map(&[
            ("X-Locgate-Verdict", b"allow"),
            ("x-locgate-verdict", b"allow"),
            ("x-locgate-country", b"\xff"),
            ("x-app", b"1"),
        ]);
        strip_named(&mut h, &[verdict, country]);
        assert_eq!(h.len(), 1);
        strip_named(&mut h, &[]);
        assert_eq!(h.len(), 1);
    }

    // ---- add_forwarding_headers ----

    #[test]
    fn untrusted_peer_chain_is_replaced() {
        // Spoofing attempt: direct client plants a whole chain.
        let mut h = map(&[
            ("host", b"app.example.com"),
            ("x-forwarded-for", b"10.0.0.1, 1.1.1.1"),
            ("x-forwarded-for", b"2.2.2.2"),
            ("forwarded", b"for=10.0.0.1;proto=https"),
            ("x-forwarded-proto", b"https"),
            ("x-forwarded-host", b"admin.internal"),
            ("x-real-ip", b"10.0.0.1"),
            ("true-client-ip", b"10.0.0.1"),
            ("cf-connecting-ip", b"10.0.0.1"),
        ]);
        add_forwarding_headers(&mut h, sock("203.0.113.7:5555"), false, "http");
        assert_eq!(one(&h, "x-forwarded-for"), "203.0.113.7");
        assert_eq!(
            one(&h, "forwarded"),
            "for=203.0.113.7;host=app.example.com;proto=http"
        );
        assert_eq!(one(&h, "x-forwarded-proto"), "http");
        assert_eq!(one(&h, "x-forwarded-host"), "app.example.com");
        for gone in ["x-real-ip", "true-client-ip", "cf-connecting-ip"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn trusted_peer_chain_is_appended() {
        let mut h = map(&[
            ("host", b"app.example.com:8443"),
            ("x-forwarded-for", b"198.51.100.9 , "),
            ("x-forwarded-for", b"10.0.0.3"),
            ("forwarded", b"for=198.51.100.9;proto=https"),
            ("forwarded", b"for=\"[fd00::3]\""),
            ("x-forwarded-proto", b"https"),
            ("x-forwarded-host", b"public.example.com"),
            ("x-real-ip", b"198.51.100.9"),
        ]);
        add_forwarding_headers(&mut h, sock("10.0.0.2:40000"), true, "http");
        assert_eq!(
            one(&h, "x-forwarded-for"),
            "198.51.100.9, 10.0.0.3, 10.0.0.2"
        );
        assert_eq!(
            one(&h, "forwarded"),
            "for=198.51.100.9;proto=https, for=\"[fd00::3]\", for=10.0.0.2;host=\"app.example.com:8443\";proto=http"
        );
        // The front proxy's view of the original scheme/host is preserved.
        assert_eq!(one(&h, "x-forwarded-proto"), "https");
        assert_eq!(one(&h, "x-forwarded-host"), "public.example.com");
        assert_eq!(one(&h, "x-real-ip"), "198.51.100.9");
    }

    #[test]
    fn trusted_peer_without_existing_headers() {
        let mut h = map(&[("host", b"a.example")]);
        add_forwarding_headers(&mut h, sock("10.0.0.2:1"), true, "https");
        assert_eq!(one(&h, "x-forwarded-for"), "10.0.0.2");
        assert_eq!(one(&h, "x-forwarded-proto"), "https");
        assert_eq!(one(&h, "x-forwarded-host"), "a.example");
    }

    #[test]
    fn ipv6_and_mapped_peers() {
        // RFC 7239 §6: IPv6 node is bracketed and must be quoted.
        let mut h = HeaderMap::new();
        add_forwarding_headers(&mut h, sock("[2001:db8::1]:443"), false, "https");
        assert_eq!(one(&h, "x-forwarded-for"), "2001:db8::1");
        assert_eq!(one(&h, "forwarded"), "for=\"[2001:db8::1]\";proto=https");
        assert!(!h.contains_key("x-forwarded-host"));
        let mut h = HeaderMap::new();
        add_forwarding_headers(&mut h, sock("[::ffff:192.0.2.5]:443"), false, "http");
        assert_eq!(one(&h, "x-forwarded-for"), "192.0.2.5");
        assert_eq!(one(&h, "forwarded"), "for=192.0.2.5;proto=http");
    }

    #[test]
    fn host_param_quoting_and_sanity() {
        let mut h = map(&[("host", b"[2001:db8::1]:8080")]);
        add_forwarding_headers(&mut h, sock("192.0.2.1:1"), false, "http");
        assert_eq!(
            one(&h, "forwarded"),
            "for=192.0.2.1;host=\"[2001:db8::1]:8080\";proto=http"
        );
        // Hostile Host values are not relayed into structured headers.
        for bad in [
            &b"evil\"; for=1.1.1.1"[..],
            b"a b",
            b"caf\xe9",
            b"a,b",
            b"a\\b",
        ] {
            let mut h = map(&[("host", bad)]);
            add_forwarding_headers(&mut h, sock("192.0.2.1:1"), false, "http");
            assert_eq!(one(&h, "forwarded"), "for=192.0.2.1;proto=http");
            assert!(!h.contains_key("x-forwarded-host"));
            assert!(h.contains_key("host"), "Host itself is left alone");
        }
    }

    #[test]
    fn invalid_proto_is_omitted() {
        let mut h = HeaderMap::new();
        add_forwarding_headers(&mut h, sock("192.0.2.1:1"), false, "ht tp\r\n");
        assert_eq!(one(&h, "forwarded"), "for=192.0.2.1");
        assert!(!h.contains_key("x-forwarded-proto"));
        let mut h = HeaderMap::new();
        add_forwarding_headers(&mut h, sock("192.0.2.1:1"), false, "");
        assert!(!h.contains_key("x-forwarded-proto"));
    }

    #[test]
    fn trusted_malformed_forwarded_is_not_extended() {
        // An open quote would swallow our element in a left-to-right parser.
        let mut h = map(&[
            ("forwarded", b"for=\"1.1.1.1"),
            ("forwarded", b"for=10.0.0.3"),
        ]);
        add_forwarding_headers(&mut h, sock("10.0.0.2:1"), true, "http");
        assert_eq!(one(&h, "forwarded"), "for=10.0.0.2;proto=http");
        // Escaped quotes are fine and kept.
        let mut h = map(&[("forwarded", b"for=192.0.2.1;x=\"a\\\"b\"")]);
        add_forwarding_headers(&mut h, sock("10.0.0.2:1"), true, "http");
        assert_eq!(
            one(&h, "forwarded"),
            "for=192.0.2.1;x=\"a\\\"b\", for=10.0.0.2;proto=http"
        );
    }

    #[test]
    fn trusted_non_utf8_chain_preserved_verbatim() {
        let mut h = map(&[("x-forwarded-for", b"\xff\xfe")]);
        add_forwarding_headers(&mut h, sock("10.0.0.2:1"), true, "http");
        let v = h.get("x-forwarded-for").expect("xff");
        assert_eq!(v.as_bytes(), b"\xff\xfe, 10.0.0.2");
    }

    #[test]
    fn quotes_balanced_cases() {
        assert!(quotes_balanced(b""));
        assert!(quotes_balanced(b"for=\"[::1]\", for=a"));
        assert!(quotes_balanced(b"x=\"a\\\\\""));
        assert!(!quotes_balanced(b"x=\"a\\\""));
        assert!(!quotes_balanced(b"x=\""));
    }

    // ---- round trip: what we emit, the next locgate resolves ----

    #[test]
    fn round_trip_through_two_locgates() {
        // client 198.51.100.9 -> locgate A (10.0.0.2, trusts nothing) -> locgate B (trusts 10/8).
        let mut h = map(&[
            ("x-forwarded-for", b"6.6.6.6"),
            ("forwarded", b"for=6.6.6.6"),
        ]);
        add_forwarding_headers(&mut h, sock("198.51.100.9:1234"), false, "https");
        let trusted = TrustedProxies::new(["10.0.0.0/8".parse().expect("net")]);
        let c = resolve(sock("10.0.0.2:5555"), &trusted, &h);
        assert_eq!(
            (c.ip, c.source),
            ("198.51.100.9".parse().expect("ip"), AddrSource::Forwarded)
        );
        h.remove(FORWARDED);
        let c = resolve(sock("10.0.0.2:5555"), &trusted, &h);
        assert_eq!(
            (c.ip, c.source),
            (
                "198.51.100.9".parse().expect("ip"),
                AddrSource::XForwardedFor
            )
        );
    }

    #[test]
    fn full_request_pipeline_order() {
        // Client tries to drop the chain and forge locgate's own header.
        let verdict = HeaderName::from_static("x-locgate-verdict");
        let mut h = map(&[
            ("host", b"app"),
            (
                "connection",
                b"x-forwarded-for, x-locgate-verdict, keep-alive",
            ),
            ("x-locgate-verdict", b"allow"),
            ("x-forwarded-for", b"10.0.0.1"),
            ("transfer-encoding", b"chunked"),
        ]);
        strip_hop_by_hop(&mut h, false);
        strip_named(&mut h, std::slice::from_ref(&verdict));
        add_forwarding_headers(&mut h, sock("203.0.113.7:1"), false, "http");
        assert!(!h.contains_key(&verdict));
        assert!(!h.contains_key("transfer-encoding"));
        assert_eq!(one(&h, "x-forwarded-for"), "203.0.113.7");
    }

    #[test]
    fn ntlm_and_negotiate_bind_the_connection_and_other_schemes_do_not() {
        let map = |name: HeaderName, v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(v));
            h
        };
        let none = HeaderMap::new();
        assert!(binds_connection(
            &map(AUTHORIZATION, "NTLM TlRMTVNTUAAB"),
            &none
        ));
        assert!(binds_connection(
            &map(AUTHORIZATION, "negotiate YIIF"),
            &none
        ));
        assert!(binds_connection(&none, &map(WWW_AUTHENTICATE, "Negotiate")));
        assert!(binds_connection(
            &none,
            &map(WWW_AUTHENTICATE, "NTLM, Basic realm=\"x\"")
        ));
        assert!(!binds_connection(&map(AUTHORIZATION, "Bearer ntlm"), &none));
        assert!(!binds_connection(&map(AUTHORIZATION, "NTLMv9 x"), &none));
        assert!(!binds_connection(
            &none,
            &map(WWW_AUTHENTICATE, "Basic realm=\"ntlm\"")
        ));
        assert!(!binds_connection(&none, &none));
    }
}
