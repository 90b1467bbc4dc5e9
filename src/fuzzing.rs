//! Entry points for the fuzz targets in `fuzz/` (issue 12, "Fuzzing"). Not an API.
//!
//! Many parsers of outside input are crate-private; each function here is one thin door to the
//! real parser, the same code the request path runs, so the fuzz crate (a separate workspace that
//! sees only the public API) can reach it. A function takes the fuzzer's bytes, shapes them into
//! the parser's arguments, calls it, and asserts invariants that are cheap to check (an
//! assertion failure is a finding, like a panic). None of them copies or re-implements parser
//! logic; the few lines of serialising in [`h1_head`] exist only to check a round trip.
//!
//! Every function must be total on arbitrary bytes: the fuzzer reports any panic as a crash.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, FORWARDED, HeaderMap, HeaderValue, SET_COOKIE};
use http::{HeaderName, Method, Version};
use jiff::Timestamp;

use crate::client_addr::{self, AddrSource, ChainHeader, TrustedProxies, X_FORWARDED_FOR};
use crate::config::Config;
use crate::edge::{proxy_proto, sni};
use crate::employees::Directory;
use crate::history::shared_record::SharedRecord;
use crate::identity::{
    Extraction, Extractors, Identity, IdentitySource, MAX_USER_LEN, SourceConfig, Who,
    cookie_value, cookie_values, login_path, set_cookie_value,
};
use crate::proxy::h1::chunked::ChunkedParser;
use crate::proxy::h1::head::{self, Framing, HeadError, RequestHead};

/// Splits `data` at the first `\n`: a short "selector" line (a name, a content type) and the
/// rest. Without a newline the whole input is the first part.
fn first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The header values the fuzzer's lines make, skipping lines `http` refuses as a value (as a
/// real client's bytes would be refused by the head parser before reaching these parsers).
fn values(lines: &[u8]) -> impl Iterator<Item = HeaderValue> + '_ {
    lines
        .split(|b| *b == b'\n')
        .filter_map(|l| HeaderValue::from_bytes(l).ok())
}

/// Every identity a source hands on obeys the shared user-name rule.
fn assert_clean_identities<'a>(found: impl IntoIterator<Item = &'a Identity>) {
    for id in found {
        assert!(!id.user.is_empty(), "empty user name accepted");
        assert!(
            id.user.len() <= MAX_USER_LEN,
            "over-long user name accepted"
        );
        assert_eq!(id.user, id.user.trim(), "untrimmed user name");
        assert!(
            !id.user.chars().any(char::is_control),
            "control character in user name"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 heads and chunked bodies (proxy/h1)

/// The request head parser (`head::parse_request`) and the response head parser with its
/// framing rule (`head::parse_response`, `head::response_framing`), on the same bytes.
///
/// Invariants: the head length is within the input; a parsed request head written back in wire
/// form parses to the same head (method, target, version, fields, framing, keep-alive, expect);
/// the framing agrees with the fields (chunked never with Content-Length, a length is never 0).
pub fn h1_head(data: &[u8]) {
    let buf = Bytes::copy_from_slice(data);
    if let Ok((req, len)) = head::parse_request(&buf) {
        assert!(len <= buf.len(), "head longer than its input");
        check_framing(&req);
        let again = Bytes::from(wire_form(&req));
        match head::parse_request(&again) {
            Ok((back, back_len)) => {
                assert_eq!(back_len, again.len(), "re-serialised head length");
                assert_eq!(back.method, req.method);
                assert_eq!(back.target, req.target);
                assert_eq!(back.version, req.version);
                assert_eq!(back.headers, req.headers);
                assert_eq!(back.framing, req.framing);
                assert_eq!(back.keep_alive, req.keep_alive);
                assert_eq!(back.expect_continue, req.expect_continue);
            }
            Err(e) => panic!("a parsed head does not parse again: {e:?}"),
        }
    }
    if let Ok((resp, len)) = head::parse_response(&buf) {
        assert!(len <= buf.len(), "head longer than its input");
        for method in [Method::GET, Method::HEAD, Method::POST] {
            match head::response_framing(&resp, &method) {
                Ok(Framing::Chunked) => {
                    assert!(!resp.headers.contains_key(http::header::CONTENT_LENGTH));
                }
                Ok(_) | Err(HeadError::Invalid(_)) => {}
                Err(e) => panic!("response framing gave {e:?}"),
            }
        }
    }
}

fn check_framing(req: &RequestHead) {
    match req.framing {
        Framing::Chunked => {
            assert!(!req.headers.contains_key(http::header::CONTENT_LENGTH));
            assert_eq!(req.version, Version::HTTP_11, "chunked in HTTP/1.0");
        }
        Framing::Length(n) => assert!(n > 0, "Length(0) instead of None"),
        Framing::UntilClose => panic!("a request delimited by close"),
        Framing::None => {}
    }
}

/// A request head in wire form, for the round trip only (the engine's own writer is private to
/// `proxy/h1` and rewrites the head for the upstream, which is not what the round trip checks).
fn wire_form(req: &RequestHead) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(&req.target);
    out.extend_from_slice(match req.version {
        Version::HTTP_10 => b" HTTP/1.0\r\n",
        _ => b" HTTP/1.1\r\n",
    });
    for (name, value) in &req.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if req.expect_continue {
        out.extend_from_slice(b"expect: 100-continue\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// What one run of the chunked parser over some split of the input concluded.
#[derive(Debug, PartialEq, Eq)]
enum ChunkedEnd {
    /// The body ended after this many bytes; its decoded data.
    Done(usize, Vec<u8>),
    /// All input consumed, body not finished; the data decoded so far.
    Open(Vec<u8>),
    /// Refused, with the parser's reason (data handed out before is not compared: it was not
    /// yet known to be followed by valid framing).
    Refused(&'static str),
}

/// Feeds `data` to a fresh parser in pieces of at most `step` bytes, collecting the decoded
/// body (`feed_with`, the decoding mode; `feed` is `feed_with` that drops the data).
fn chunked_in_steps(data: &[u8], step: usize) -> ChunkedEnd {
    let mut parser = ChunkedParser::new();
    let mut at = 0;
    let mut decoded = Vec::new();
    for piece in data.chunks(step.max(1)) {
        match parser.feed_with(piece, |d| decoded.extend_from_slice(d)) {
            Err(e) => return ChunkedEnd::Refused(e.0),
            Ok(n) => {
                assert!(n <= piece.len(), "consumed more than it was given");
                at += n;
                if parser.is_done() {
                    return ChunkedEnd::Done(at, decoded);
                }
                assert_eq!(n, piece.len(), "stopped early without finishing the body");
            }
        }
    }
    ChunkedEnd::Open(decoded)
}

/// The chunked body parser (`h1/chunked.rs`). The first byte picks a piece size; the rest is
/// the body. Invariants: the parser reaches the same end (where the body ends, or the same
/// refusal, or still open) and decodes the same data whether the bytes come all at once, one
/// at a time, or in pieces: a request smuggled past a read boundary would show up here; the
/// decoded body is never longer than its framing.
pub fn chunked(data: &[u8]) {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let whole = chunked_in_steps(body, body.len());
    if let ChunkedEnd::Done(_, decoded) | ChunkedEnd::Open(decoded) = &whole {
        assert!(decoded.len() <= body.len(), "decoded more than was sent");
    }
    assert_eq!(whole, chunked_in_steps(body, 1), "byte at a time differs");
    assert_eq!(
        whole,
        chunked_in_steps(body, usize::from(step) + 1),
        "pieces differ"
    );
}

// ---------------------------------------------------------------------------------------------
// The connection edge and the client address

/// PROXY protocol v1 and v2 (`edge/proxy_proto.rs`, on `ppp`), read the way a connection is:
/// `read_header` on a stream holding the input, then both parsers on the whole input.
///
/// Invariants: the reader never reads past the header (what follows it, a TLS ClientHello or
/// an HTTP request, belongs to the next layer): an accepted v1 header is at most 107 bytes and
/// ends at its first CRLF; an accepted v2 header is 16 bytes plus its stated length.
pub fn proxy_protocol(data: &[u8]) {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok()
    });
    let Some(runtime) = runtime else {
        panic!("no tokio runtime for the PROXY reader");
    };
    let mut stream = data;
    let read = runtime.block_on(proxy_proto::read_header(
        &mut stream,
        std::time::Duration::from_secs(5),
    ));
    if read.is_ok() {
        let header = &data[..data.len() - stream.len()];
        if header.starts_with(b"PROXY ") {
            assert!(header.len() <= 107, "v1 header of {} bytes", header.len());
            let first_crlf = header.windows(2).position(|w| w == b"\r\n");
            assert_eq!(first_crlf, Some(header.len() - 2), "v1 read past its CRLF");
        } else {
            assert!(header.len() >= 16, "v2 header shorter than its fixed part");
            let stated = usize::from(u16::from_be_bytes([header[14], header[15]]));
            assert_eq!(header.len(), 16 + stated, "v2 read past its length");
        }
    }
    let _ = proxy_proto::parse_v1(data);
    let _ = proxy_proto::parse_v2(data);
}

/// The SNI of a TLS ClientHello read without terminating TLS (`edge/sni.rs`), as pass-through
/// listeners do with the first bytes a client sends.
/// Invariant: once a prefix of the bytes gives an answer, more bytes give the same answer (the
/// listener stops reading at the first answer, so a later change would route by a name the
/// complete hello does not carry).
pub fn tls_sni(data: &[u8]) {
    let whole = sni::peek(data);
    if let sni::Peek::Done(Some(name)) = &whole {
        assert!(!name.is_empty(), "empty server name");
    }
    for cut in [data.len() / 2, data.len().saturating_sub(1)] {
        if let answer @ sni::Peek::Done(_) = sni::peek(&data[..cut]) {
            assert_eq!(answer, whole, "the answer changed after {cut} bytes");
        }
    }
}

fn trusted_proxies() -> &'static TrustedProxies {
    static TRUSTED: OnceLock<TrustedProxies> = OnceLock::new();
    TRUSTED.get_or_init(|| {
        let nets = ["10.0.0.0/8", "192.168.0.0/16", "127.0.0.0/8", "fd00::/8"];
        TrustedProxies::new(nets.iter().filter_map(|n| n.parse().ok()))
    })
}

/// The forwarding chain walk (`client_addr`: `Forwarded` per RFC 7239 and `X-Forwarded-For`).
///
/// Input: a first byte (bits 0-1: which header is pinned; bits 2-3: the socket peer: trusted
/// IPv4, trusted IPv4-mapped IPv6, trusted IPv6, untrusted), then lines; a line starting with
/// `F` is a `Forwarded` field line, any other an `X-Forwarded-For` line (first byte dropped).
///
/// Invariants: an untrusted peer's headers are never read; the answer is always normalised
/// (no IPv4-mapped IPv6); it names the header it came from, and that header is present.
pub fn forwarded_chain(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let which = match selector & 3 {
        0 => ChainHeader::Auto,
        1 => ChainHeader::Forwarded,
        _ => ChainHeader::XForwardedFor,
    };
    let peer = match (selector >> 2) & 3 {
        0 => SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 443)),
        1 => SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped(), 443)),
        2 => SocketAddr::from((Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1), 443)),
        _ => SocketAddr::from((Ipv4Addr::new(203, 0, 113, 9), 443)),
    };
    let mut headers = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n') {
        let Some((&kind, value)) = line.split_first() else {
            continue;
        };
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        let name = if kind == b'F' {
            FORWARDED
        } else {
            X_FORWARDED_FOR
        };
        headers.append(name, value);
    }
    let trusted = trusted_proxies();
    let got = client_addr::resolve_with(peer, trusted, &headers, which);
    assert_eq!(
        got.ip,
        client_addr::normalize(got.ip),
        "answer not normalised"
    );
    let peer_ip = client_addr::normalize(peer.ip());
    match got.source {
        AddrSource::Peer => assert_eq!(got.ip, peer_ip, "peer answer is not the peer"),
        AddrSource::Forwarded => {
            assert!(trusted.contains(peer_ip) && headers.contains_key(FORWARDED))
        }
        AddrSource::XForwardedFor => {
            assert!(trusted.contains(peer_ip) && headers.contains_key(X_FORWARDED_FOR));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Identity: cookies, login forms, JWTs

/// The `Cookie` and `Set-Cookie` readers (`identity/cookie.rs`). Input: the cookie name, then
/// header lines (each used as a `Cookie` line and as a `Set-Cookie` line).
///
/// Invariants: a value found is never empty and never contains `;` (it would have ended the
/// pair) and comes from a Cookie line; `cookie_value` answers a value only when every value
/// `cookie_values` reads agrees with it, nothing only when there is none, and "differing" only
/// when two differ.
pub fn cookie(data: &[u8]) {
    let (name, lines) = first_line(data);
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let mut request = HeaderMap::new();
    let mut response = HeaderMap::new();
    for v in values(lines) {
        request.append(COOKIE, v.clone());
        response.append(SET_COOKIE, v);
    }
    let all: Vec<&str> = cookie_values(&request, name).collect();
    for v in &all {
        assert!(!v.is_empty() && !v.contains(';'), "cookie value {v:?}");
        assert!(
            request
                .get_all(COOKIE)
                .iter()
                .any(|line| std::str::from_utf8(line.as_bytes()).is_ok_and(|l| l.contains(v))),
            "cookie value not from a Cookie line"
        );
    }
    match cookie_value(&request, name) {
        Ok(Some(v)) => assert!(all.iter().all(|w| *w == v), "{v:?} chosen from {all:?}"),
        Ok(None) => assert!(all.is_empty(), "no value chosen from {all:?}"),
        Err(_) => assert!(all.iter().any(|w| *w != all[0]), "differing in {all:?}"),
    }
    if let Some(v) = set_cookie_value(&response, name) {
        assert!(!v.is_empty() && !v.contains(';'), "set-cookie value {v:?}");
    }
}

/// Loads identity sources from config text, as a listener's `identity = [..]` list.
fn extractors(toml_list: &str, base_dir: &Path) -> Extractors {
    #[derive(serde::Deserialize)]
    struct Listener {
        identity: Vec<SourceConfig>,
    }
    let sources = toml::from_str::<Listener>(toml_list)
        .map(|l| l.identity)
        .unwrap_or_else(|e| panic!("fuzz identity config does not parse: {e}"));
    Extractors::from_config(&sources, base_dir)
        .unwrap_or_else(|e| panic!("fuzz identity config refused: {e}"))
}

/// The HS256 secret of the fuzz JWT source (also in `fuzz/make-seeds.py`, which signs seeds).
pub const FUZZ_HS256_SECRET: &str = "locgate-fuzz-hs256-secret-0123456789abcdef";

/// The fuzzer's clock: fixed, so a run is reproducible (seeds expire after it).
fn fuzz_now() -> Timestamp {
    Timestamp::from_second(1_790_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A login POST as the proxy reads it: which form a request target is (`form_rule`, with the
/// login-path normaliser `identity/login_path.rs`), then `Who::read_login_form` (body as
/// urlencoded, JSON, multipart or plain text by its Content-Type, plus the target's query;
/// `identity/form.rs`, `json.rs`, `multipart.rs`). One form: field `username` at `/login`.
/// Input: line 1 the request target, line 2 the Content-Type, the rest the body.
///
/// Invariants: a normalised path is `/`-rooted, has no empty, `.` or `..` segment and no
/// trailing slash, and normalises to itself; a name found obeys the user-name rule and is an
/// unverified form identity; a login that names nobody is trouble, never a silent anonymous
/// request (fail closed).
pub fn login_form(data: &[u8]) {
    static FORMS: OnceLock<Extractors> = OnceLock::new();
    let forms = FORMS.get_or_init(|| {
        extractors(
            r#"identity = [ { form = { path = "/login", field = "username" } } ]"#,
            Path::new("."),
        )
    });
    let (target, rest) = first_line(data);
    let (content_type, body) = first_line(rest);
    if let Some(path) = login_path::normalise(target) {
        assert!(path.starts_with('/'), "normalised path {path:?}");
        assert!(
            path == "/" || path[1..].split('/').all(|s| !matches!(s, "" | "." | "..")),
            "normalised path {path:?} keeps an empty, . or .. segment"
        );
        assert_eq!(
            login_path::normalise(path.as_bytes()).as_deref(),
            Some(path.as_str()),
            "normalising is not idempotent"
        );
    }
    let Some(rule) = forms.form_rule(&Method::POST, target) else {
        return;
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    let mut who = Who::default();
    who.read_login_form(rule, &headers, target, body);
    if let Some(id) = &who.identity {
        assert_clean_identities([id]);
        assert_eq!(id.source, IdentitySource::Form);
        assert!(!id.verified, "a login form is never verified");
    } else {
        assert!(
            who.trouble.is_some(),
            "a login naming nobody is not trouble"
        );
    }
}

/// The JWT source (`identity/jwt.rs`: shape, JOSE header, key choice, signature, claims).
/// Three sources see every input: `Authorization: Bearer` checked against the test JWKS
/// (RS256 / ES256 keys of `tests/fixtures/identity`), a custom header checked with an HS256
/// secret ([`FUZZ_HS256_SECRET`], issuer and audience required), and a cookie read unverified.
/// The input is the token.
/// Invariant: a name it finds obeys the user-name rule; only a checked source verifies.
pub fn jwt(data: &[u8]) {
    if let Some(found) = jwt_extraction(data) {
        let all = || found.identity.iter().chain(&found.others);
        assert_clean_identities(all());
        assert!(
            all().all(|id| id.source == IdentitySource::Jwt),
            "{found:?}"
        );
    }
}

/// What the three JWT sources of [`jwt`] make of `token` (`None`: not a header value).
fn jwt_extraction(token: &[u8]) -> Option<Extraction> {
    static JWT: OnceLock<Extractors> = OnceLock::new();
    let sources = JWT.get_or_init(|| {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/identity");
        extractors(
            &format!(
                r#"identity = [
                  {{ jwt = {{ header = "authorization", claim = "sub", jwks = "jwks.json" }} }},
                  {{ jwt = {{ header = "x-id-token", claim = "email", hs256_secret = "{FUZZ_HS256_SECRET}",
                             issuer = "https://idp.example", audience = "portal" }} }},
                  {{ jwt = {{ cookie = "id_token", claim = "preferred_username", verify = false }} }},
                ]"#
            ),
            &fixtures,
        )
    });
    let bare = HeaderValue::from_bytes(token).ok()?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(&[b"Bearer ", token].concat()) {
        headers.insert(AUTHORIZATION, v);
    }
    headers.insert(HeaderName::from_static("x-id-token"), bare);
    if let Ok(v) = HeaderValue::from_bytes(&[b"id_token=", token].concat()) {
        headers.insert(COOKIE, v);
    }
    Some(sources.from_headers(&headers, false, fuzz_now()))
}

// ---------------------------------------------------------------------------------------------
// Files an operator writes, and the shared history's wire records

/// Paths the config fuzzer must not open: device and kernel files can block or never end
/// (`/dev/stdin`, `/dev/zero`), which is an operator's choice, not a parser bug.
fn names_special_files(text: &str) -> bool {
    ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p))
}

/// The config parser (`config::Config::parse`, every section's check). Relative paths resolve
/// against a directory that does not exist, so file references fail the same way every run.
/// The error's text (file:line: field: message) is rendered too: locating a span in arbitrary
/// text is where an off-by-one would panic.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_special_files(text) {
        return;
    }
    if let Err(e) = Config::parse(text, "fuzz.toml", Path::new("/nonexistent/locgate-fuzz")) {
        let shown = e.to_string();
        assert!(
            shown.starts_with("fuzz.toml"),
            "error without its file: {shown}"
        );
    }
}

/// Checks what a parsed directory promises: every employee is found by its id.
fn check_directory(dir: &Directory) {
    assert_eq!(dir.iter().count(), dir.len());
    for e in dir.iter() {
        assert!(
            dir.get(&e.id).is_some(),
            "employee {:?} not found by id",
            e.id
        );
    }
}

/// The employee directory in CSV form (`employees/csv_file.rs`).
pub fn employees_csv(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Directory::parse_csv(text, "fuzz.csv", 50.0) {
        Ok(dir) => check_directory(&dir),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The employee directory in TOML form (`employees/toml_file.rs`).
pub fn employees_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Directory::parse_toml(text, "fuzz.toml", 50.0) {
        Ok(dir) => check_directory(&dir),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The operator's data tables and lists (`intel/asn_table.rs`, `intel/network_kind.rs`,
/// `intel/cidr_list.rs`): byte 0 picks the parser (ASN categories CSV, `AS123 # name` list,
/// network kinds CSV, CIDR list), the rest is the file. A mistake names a line of the file; a
/// table that loads answers lookups.
pub fn data_tables(data: &[u8]) {
    use crate::intel::{AsnTable, Category, NetworkKinds, cidr_list};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let lines = text.lines().count();
    let line_ok = |l: usize| assert!(l >= 1 && l <= lines.max(1), "line {l} of {lines}");
    let probes: [std::net::IpAddr; 3] = [
        Ipv4Addr::new(192, 0, 2, 1).into(),
        Ipv6Addr::new(0x2a01, 0x598, 0, 0, 0, 0, 0, 1).into(),
        Ipv4Addr::UNSPECIFIED.into(),
    ];
    match pick % 4 {
        0 | 1 => {
            let table = if pick % 4 == 0 {
                AsnTable::parse(text)
            } else {
                AsnTable::from_list(text, Category::HostingProvider)
            };
            match table {
                Ok(t) => {
                    let _ = (t.get(0), t.get(u32::MAX), t.len());
                    let merged = AsnTable::default().overlay(t.clone()).overlay(t);
                    let _ = merged.get(9009);
                }
                Err((l, _)) => line_ok(l),
            }
        }
        2 => match NetworkKinds::parse(text) {
            Ok(t) => {
                for ip in probes {
                    let _ = t.get(ip, Some(14593));
                }
                let _ = NetworkKinds::default().overlay(t.clone()).overlay(t);
            }
            Err((l, _)) => line_ok(l),
        },
        _ => match cidr_list::parse_list(text) {
            Ok(nets) => {
                let mut lists = crate::intel::CidrLists::default();
                lists.add(&nets, crate::intel::ListCategory::Trusted);
                lists.propagate();
                for ip in probes {
                    let _ = lists.lookup(ip);
                }
            }
            Err((l, _)) => line_ok(l),
        },
    }
}

/// SCIM request bodies (`scim/`): byte 0 picks the parser (0 a User body for create and
/// replace, mapped to a directory record as the store would; 1 a PatchOp applied to a fixed
/// user; 2 a list filter); the rest is the body or filter text. An accepted user always has a
/// trimmed, non-empty `userName` and a boolean `active`, and maps to an employee named by it.
pub fn scim_request(data: &[u8]) {
    use crate::scim::{filter, mapping, patch, resource};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let check = |user: &serde_json::Map<String, serde_json::Value>| {
        let name = user.get("userName").and_then(|v| v.as_str()).unwrap_or("");
        assert!(!name.is_empty() && name == name.trim(), "userName {name:?}");
        assert!(
            user.get("active").is_some_and(|v| v.is_boolean()),
            "active not a boolean"
        );
        assert!(!user.contains_key("password"), "password kept");
        let mapped = mapping::map_user(user, 100.0);
        if let Some(e) = &mapped.employee {
            assert_eq!(e.id, name, "employee not named by userName");
            assert!(mapped.active && !mapped.unplaceable);
        }
    };
    match which % 3 {
        0 => {
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            if let Ok(user) = resource::normalize_user(body) {
                check(&user);
                // Normalising is idempotent: what the store keeps reads back the same.
                let again = resource::normalize_user(serde_json::Value::Object(user.clone()));
                assert_eq!(
                    again.as_ref().ok(),
                    Some(&user),
                    "normalising is not idempotent"
                );
            }
        }
        1 => {
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            let Ok(ops) = patch::parse(&body) else { return };
            let Ok(mut user) = resource::normalize_user(serde_json::json!({
                "userName": "ann@example.com",
                "emails": [{"type": "work", "value": "ann@example.com", "primary": true}],
                "addresses": [{"type": "home", "locality": "Austin", "region": "TX", "country": "US"}]
            })) else {
                panic!("the fixed user is valid");
            };
            if patch::apply(&mut user, &ops).is_ok()
                && let Ok(user) = resource::normalize_user(serde_json::Value::Object(user))
            {
                check(&user);
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(f) = filter::parse(&text) {
                let _ = f.matches("ann@example.com", Some("00u1"));
            }
        }
    }
}

/// A shared-history record as read from the Redis stream (`history/shared_record.rs`): other
/// instances' entries are untrusted input. Invariant: a record that decodes encodes to a
/// payload that decodes to the same record, numbers to within a few ULP: `serde_json` without
/// its `float_roundtrip` feature parses some decimals one ULP off (found by this target:
/// `"a": 50000000000000000000000000000002.5`), which is nanometres, not a different place.
pub fn history_record(data: &[u8]) {
    if let Ok(rec) = SharedRecord::decode(data) {
        match SharedRecord::decode(rec.encode().as_bytes()) {
            Ok(again) => assert!(
                same_record(&rec, &again),
                "record does not survive a round trip: {rec:?} became {again:?}"
            ),
            Err(e) => panic!("an encoded record does not decode: {e}"),
        }
    }
}

/// A database file as an operator (or `locgate update`) hands it over: opened and probed, then,
/// when accepted, looked up at addresses across both families through the request path's
/// decoder. Whatever the bytes, an accepted file yields only valid coordinates and accuracies.
pub fn mmdb(data: &[u8]) {
    use crate::intel::{DbBytes, MmdbFile, Observation};
    let Ok(file) = MmdbFile::from_bytes("fuzz", DbBytes::Owned(data.to_vec())) else {
        return;
    };
    let probes = [
        std::net::IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)),
        std::net::IpAddr::V4(Ipv4Addr::new(81, 2, 69, 142)),
        std::net::IpAddr::V4(Ipv4Addr::new(255, 255, 255, 255)),
        std::net::IpAddr::V6(Ipv6Addr::new(0x2001, 0x218, 0, 0, 0, 0, 0, 1)),
        std::net::IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ];
    for ip in probes {
        let mut obs = Observation::empty(ip);
        if let Err(e) = file.fill(ip, &mut obs) {
            file.note_failure(ip, &e);
            continue;
        }
        if let Some(loc) = obs.location {
            assert!((-90.0..=90.0).contains(&loc.lat), "latitude {}", loc.lat);
            assert!((-180.0..=180.0).contains(&loc.lon), "longitude {}", loc.lon);
        }
        if let Some(acc) = obs.accuracy_km {
            assert!(acc.is_finite() && acc >= 0.0, "accuracy {acc}");
        }
        if let Some(c) = obs.anonymizer_detail.and_then(|d| d.confidence) {
            assert!(c <= 100, "confidence {c}");
        }
    }
}

fn same_record(a: &SharedRecord, b: &SharedRecord) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() <= x.abs().max(y.abs()) * 4.0 * f64::EPSILON;
    let same_place = match (&a.place, &b.place) {
        (None, None) => true,
        (Some(p), Some(q)) => {
            p.at == q.at
                && p.country == q.country
                && close(p.accuracy_km, q.accuracy_km)
                && match (p.location, q.location) {
                    (None, None) => true,
                    (Some(l), Some(m)) => close(l.lat, m.lat) && close(l.lon, m.lon),
                    _ => false,
                }
        }
        _ => false,
    };
    a.employee == b.employee && a.egress == b.egress && a.day == b.day && same_place
}

/// What VPN servers report (`vpn/`): byte 0 picks the parser: OpenVPN's `status 3`, `wg show
/// dump`, a gateway log line against the documented ocserv patterns, or an address as servers
/// print it. Never a panic; a dump's error never repeats an interface line's private key.
pub fn vpn_reports(data: &[u8]) {
    use crate::config::OpenVpnUser;
    use crate::vpn::{log_source, openvpn, parse_address, wireguard};
    static PATTERNS: std::sync::OnceLock<(regex::Regex, regex::Regex)> = std::sync::OnceLock::new();
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match pick % 4 {
        0 => {
            for user in [OpenVpnUser::Username, OpenVpnUser::CommonName] {
                if let Ok(sessions) = openvpn::parse_status(&text, user) {
                    for s in sessions {
                        assert!(s.user.as_deref().is_none_or(|u| !u.is_empty()));
                    }
                }
            }
        }
        1 => {
            if let Err(e) = wireguard::parse_dump(&text, 1_800_000_000) {
                for line in text.lines() {
                    let fields: Vec<&str> = line.split('\t').collect();
                    let private = match fields.len() {
                        4 => fields[0],
                        5 => fields[1],
                        _ => continue,
                    };
                    assert!(
                        !crate::employees::is_wireguard_key(private) || !e.contains(private),
                        "an error repeats a private key: {e}"
                    );
                }
            }
        }
        2 => {
            let (start, end) = PATTERNS.get_or_init(|| {
                let p = |s: &str| regex::Regex::new(s).expect("a constant pattern");
                (
                    p(r"main\[(?P<user>[^\]]+)\]:(?P<ip>[0-9a-fA-F.:]+):(?P<port>\d+) user logged in"),
                    p(r"main\[(?P<user>[^\]]+)\]:(?P<ip>[0-9a-fA-F.:]+):(?P<port>\d+) user disconnected"),
                )
            });
            for line in text.lines() {
                if let Some(log_source::LogLine::Start(r)) =
                    log_source::read_line(line, start, Some(end))
                {
                    assert!(r.user.as_deref().is_some_and(|u| !u.is_empty()));
                }
            }
        }
        _ => {
            if let Some(a) = parse_address(&text) {
                // What comes out reads back as itself.
                assert_eq!(parse_address(&a.to_string()), Some(a));
            }
        }
    }
}

/// Sign-in exports for `replay` (`replay/formats.rs`): byte 0 picks the format (auto, or one
/// named shape, or a mapping); the rest is the file. Never a panic; the sign-ins come out sorted;
/// the whole input and each of its lines read as JSON the same as with `serde_json::Value`.
pub fn replay_formats(data: &[u8]) {
    use crate::replay::{Format, Mapping, parse};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let names: Vec<&str> = Format::names().collect();
    let format = match names.get(usize::from(pick) % (names.len() + 1)) {
        Some(name) => match Format::named(name) {
            Ok(f) => f,
            Err(e) => panic!("a listed format is refused: {e}"),
        },
        None => match Mapping::parse("time=t,ip=a.b,user=u,outcome=o") {
            Ok(m) => Format::Mapped(m),
            Err(e) => panic!("a constant mapping is refused: {e}"),
        },
    };
    let parsed = parse(&text, &format);
    assert!(parsed.rows.windows(2).all(|w| w[0].time <= w[1].time));
    // The records are read into a borrowing value (replay/value.rs): it must read every input,
    // and every line of JSON lines, exactly as `serde_json::Value` does.
    for piece in std::iter::once(&*text).chain(text.lines()) {
        if let Some(diff) = crate::replay::differs_from_serde_json(piece) {
            panic!("replay's JSON value differs from serde_json on {piece:?}: {diff}");
        }
    }
}

/// What an identity provider answers (`identity/jwks.rs`, `identity/remote_keys.rs`): byte 0
/// picks a key set, a discovery document or a `Cache-Control` value. Never a panic; a key set
/// read is never empty (an empty one is an error), and a discovered `jwks_uri` is fetchable.
pub fn identity_provider(data: &[u8]) {
    use crate::identity::{jwks, remote_keys};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 3 {
        0 => {
            if let Ok(keys) = jwks::parse(rest, "fuzz") {
                assert!(!keys.is_empty());
            }
        }
        1 => {
            if let Ok(url) = remote_keys::parse_discovery(rest, "https://idp.example") {
                assert!(matches!(url.scheme(), "https" | "http"));
            }
        }
        _ => {
            let _ = remote_keys::max_age(&String::from_utf8_lossy(rest));
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every committed seed (and regression reproducer) of `fuzz/corpus/<target>/` replayed
    //! through its entry point by the ordinary test run, so a parser change that makes one panic
    //! or break an invariant fails `cargo nextest run` even where nobody fuzzes.

    use std::path::Path;

    fn replay(target: &str, entry: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut seen = 0;
        for file in std::fs::read_dir(&dir).expect("seed directory") {
            let path = file.expect("seed entry").path();
            let data = std::fs::read(&path).expect("seed file");
            entry(&data);
            seen += 1;
        }
        assert!(seen > 0, "no seeds in {}", dir.display());
    }

    #[test]
    fn seeds_replay_through_every_fuzz_entry_point() {
        replay("h1_head", super::h1_head);
        replay("chunked", super::chunked);
        replay("proxy_protocol", super::proxy_protocol);
        replay("tls_sni", super::tls_sni);
        replay("forwarded_chain", super::forwarded_chain);
        replay("cookie", super::cookie);
        replay("login_form", super::login_form);
        replay("jwt", super::jwt);
        replay("config_toml", super::config_toml);
        replay("employees_csv", super::employees_csv);
        replay("employees_toml", super::employees_toml);
        replay("history_record", super::history_record);
        replay("mmdb", super::mmdb);
        replay("data_tables", super::data_tables);
        replay("vpn_reports", super::vpn_reports);
        replay("replay_formats", super::replay_formats);
        replay("identity_provider", super::identity_provider);
        replay("scim_request", super::scim_request);
    }

    /// The ClientHello seeds are real hellos (Python's ssl module), so the fuzzer starts inside
    /// the extension walk.
    #[test]
    fn tls_seeds_carry_their_names() {
        let seed = |name: &str| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus/tls_sni")
                .join(name);
            crate::edge::sni::peek(&std::fs::read(path).expect("seed"))
        };
        use crate::edge::sni::Peek;
        assert_eq!(seed("sni"), Peek::Done(Some("portal.example.com".into())));
        assert_eq!(seed("tls12"), Peek::Done(Some("sso.example.org".into())));
        assert_eq!(seed("no_sni"), Peek::Done(None));
        assert_eq!(seed("truncated"), Peek::NeedMore);
    }

    /// The JWT seeds reach the signature and claim checks: the signed ones verify (so the
    /// fuzzer starts from tokens that get past the signature), the forged ones do not.
    #[test]
    fn jwt_seeds_are_what_their_names_say() {
        let seed = |name: &str| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus/jwt")
                .join(name);
            let data = std::fs::read(path).expect("seed");
            super::jwt_extraction(&data).expect("a header value")
        };
        for (name, user) in [
            ("rs256", "alice"),
            ("es256", "alice"),
            ("hs256", "alice@example.com"),
        ] {
            let id = seed(name).identity.expect(name);
            assert_eq!((id.user.as_str(), id.verified), (user, true), "{name}");
        }
        for name in ["none", "confusion", "hs256_expired", "hs256_crit"] {
            let found = seed(name);
            assert!(found.identity.is_none_or(|id| !id.verified), "{name}");
            assert!(!found.problems.is_empty(), "{name}");
        }
    }
}
