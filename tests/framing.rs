//! Message framing end to end (issue 12, "Cannot be fooled"): the upstream never receives a byte
//! locgate did not parse. A raw TCP upstream records the exact bytes of every connection and
//! whether the gateway closed it; clients write raw bytes, split where the attack needs it.
//!
//! Covered: login bodies whatever their framing (a chunked login names its sender like its
//! `Content-Length` twin; one that stalls, is malformed or too large is refused and never
//! forwarded), chunked request bodies re-encoded canonically and validated before the head
//! when buffered, a malformed chunk mid-body (upstream connection cut, never ended, never
//! reused), an exact head limit, and leftover upstream bytes that must never answer a later
//! request.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// A raw upstream
// ---------------------------------------------------------------------------------------------

/// One TCP connection the raw upstream accepted.
#[derive(Debug, Clone, Default)]
struct ConnLog {
    /// Every byte received, in order.
    bytes: Vec<u8>,
    /// The gateway closed (or reset) the connection.
    closed: bool,
}

impl ConnLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// How the raw upstream answers a request for `path`: the exact bytes it writes.
type Answer = fn(&str) -> Vec<u8>;

/// A keep-alive HTTP/1.1 upstream on raw TCP that records each connection's bytes. It answers
/// every complete request (a `Content-Length` body, or a chunked one ending in `0\r\n\r\n`)
/// with `answer(path)`, and with `later` (if any) 100 ms after it, unasked.
struct RawUpstream {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<ConnLog>>>,
}

/// `200 OK` whose body is the request's path: each answer says which request it answers.
fn echo_path(path: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
        path.len()
    )
    .into_bytes()
}

impl RawUpstream {
    async fn start(answer: Answer, later: Option<&'static [u8]>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<ConnLog>>> = Arc::default();
        let all = conns.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let index = {
                    let mut c = all.lock().unwrap();
                    c.push(ConnLog::default());
                    c.len() - 1
                };
                tokio::spawn(serve_raw(s, all.clone(), index, answer, later));
            }
        });
        RawUpstream { addr, conns }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn conns(&self) -> Vec<ConnLog> {
        self.conns.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) until `pred` holds for the connections.
    async fn until(&self, what: &str, pred: impl Fn(&[ConnLog]) -> bool) -> Vec<ConnLog> {
        for _ in 0..500 {
            let c = self.conns();
            if pred(&c) {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}: upstream connections {:#?}", self.conns());
    }
}

async fn serve_raw(
    mut s: TcpStream,
    all: Arc<Mutex<Vec<ConnLog>>>,
    index: usize,
    answer: Answer,
    later: Option<&'static [u8]>,
) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        all.lock().unwrap()[index]
            .bytes
            .extend_from_slice(&chunk[..n]);
        pending.extend_from_slice(&chunk[..n]);
        while let Some((len, path)) = complete_request(&pending) {
            pending.drain(..len);
            if s.write_all(&answer(&path)).await.is_err() {
                break;
            }
            if let Some(extra) = later {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = s.write_all(extra).await;
            }
        }
    }
    all.lock().unwrap()[index].closed = true;
}

/// The length and path of the complete request at the start of `buf`, if it is all there.
fn complete_request(buf: &[u8]) -> Option<(usize, String)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    if head.contains("\r\ntransfer-encoding: chunked\r\n") {
        let body = &buf[end..];
        let last = if body.starts_with(b"0\r\n\r\n") {
            0
        } else {
            body.windows(7).position(|w| w == b"\r\n0\r\n\r\n")? + 2
        };
        return Some((end + last + 5, path));
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |n| n.trim().parse().unwrap());
    (buf.len() >= end + length).then_some((end + length, path))
}

/// The data of a chunked body in locgate's canonical framing (sizes in lower-case hex without
/// leading zeros, no extensions, no trailers, nothing after the end); panics on anything else.
fn canonical_data(body: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("size line");
        let line = std::str::from_utf8(&rest[..line_end]).expect("ASCII size line");
        let canonical = line == "0"
            || (!line.starts_with('0')
                && line
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(canonical, "size line {line:?} in {body:?}");
        let size = usize::from_str_radix(line, 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            assert_eq!(rest, b"\r\n", "no trailers, nothing after the end");
            return data;
        }
        data.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n");
        rest = &rest[size + 2..];
    }
}

/// The body of the first request a connection carried (after its head).
fn body_after_head(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    &bytes[end..]
}

// ---------------------------------------------------------------------------------------------
// A raw client
// ---------------------------------------------------------------------------------------------

/// Reads one response (status line and a `Content-Length` body) from a kept-alive connection.
async fn read_response(s: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = within("response head", s.read(&mut byte)).await.unwrap();
        assert!(
            n > 0,
            "closed in a head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let length: usize = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length: ").map(str::to_owned))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    within("response body", s.read_exact(&mut body))
        .await
        .unwrap();
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Reads what the gateway sends until it closes.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = within("answer", s.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

const FORM_HEAD: &str = "POST /login HTTP/1.1\r\nHost: app.example.test\r\n\
                         Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n";

/// A gateway in front of `upstream` with a login form (`max_body` 64) and the standard
/// directory; `extra` adds listener settings.
async fn login_gateway(
    fx: &Fixture,
    upstream: &str,
    extra: &str,
) -> (locgate::serve::Running, SocketAddr) {
    fx.write_standard_directory();
    let running = fx
        .start_with(
            &listener(
                "sso",
                upstream,
                &format!(
                    "mode = \"enforce\"\nidentity = [{{ form = {{ path = \"/login\", \
                     field = \"username\", max_body = 64 }} }}]\n{extra}"
                ),
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let proxy = running.addr("sso").unwrap();
    (running, proxy)
}

// ---------------------------------------------------------------------------------------------
// Login bodies, whatever their framing
// ---------------------------------------------------------------------------------------------

/// Attack: send the login form chunked (with an extension and a trailer) so locgate cannot read
/// the name and the sign-in goes through anonymous. It is decoded instead, and bob signing in
/// from Berlin is named and flagged exactly like his `Content-Length` twin; the upstream gets
/// the same form data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_login_body_is_read_and_flagged_like_its_content_length_twin() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let (running, proxy) = login_gateway(&fx, &up.url(), "").await;
    let form = "username=bob&password=pw";
    let plain = format!("{FORM_HEAD}Content-Length: {}\r\n\r\n{form}", form.len());
    let chunked = format!(
        "{FORM_HEAD}Transfer-Encoding: chunked\r\n\r\n9;lang=en\r\nusername=\r\n00F\r\nbob&password=pw\r\n\
         0\r\nX-Trailer: t\r\n\r\n"
    );
    for (src, raw) in [("127.6.0.21", plain), ("127.6.0.22", chunked)] {
        let answer = raw_exchange(src, proxy, raw.into_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 201 "), "{src}: {answer:?}");
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen.iter().all(|s| &s.body[..] == form.as_bytes()),
        "{seen:#?}"
    );
    assert_eq!(
        seen[1].header("transfer-encoding").as_deref(),
        Some("chunked")
    );
    assert_eq!(seen[1].header("x-trailer"), None);

    let events = fx.events(&running).await;
    let twin = one_event_from(&events, "127.6.0.21");
    let e = one_event_from(&events, "127.6.0.22");
    assert_eq!(user_of(e), "e2001", "{e:#}");
    assert_eq!(e["locgate"]["identity"]["source"], "form", "{e:#}");
    assert!(problems(e).is_empty(), "{e:#}");
    assert_eq!(e["event"]["action"], "flag", "{e:#}");
    assert_eq!(user_of(e), user_of(twin));
    assert_eq!(e["event"]["action"], twin["event"]["action"]);
    assert_eq!(reasons(e), reasons(twin));
    assert!(!reasons(e).is_empty(), "{e:#}");
    running.shutdown().await;
}

/// Attack: start the login body, then pause longer than the body timeout (or break its
/// framing, or send too much) so locgate gives up on the form and forwards it anyway, unread.
/// Each is refused with its status, recorded with the identity unreadable, and the upstream
/// receives nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_login_body_is_refused_recorded_and_never_forwarded() {
    let fx = Fixture::new();
    let up = RawUpstream::start(echo_path, None).await;
    let (running, proxy) = login_gateway(&fx, &up.url(), "body_read_timeout = \"1s\"").await;
    let over = "x".repeat(60);
    let cases = [
        // Stalled: part of the body, then silence past the 1 s body timeout.
        (
            "127.6.0.31",
            format!("{FORM_HEAD}Content-Length: 30\r\n\r\nusername=da"),
            "HTTP/1.1 408 ",
            408,
            "form: login form body: client paused for more than 1s",
        ),
        (
            "127.6.0.32",
            format!("{FORM_HEAD}Transfer-Encoding: chunked\r\n\r\nb\r\nusername=da\r\n"),
            "HTTP/1.1 408 ",
            408,
            "form: login form body: client paused for more than 1s",
        ),
        // Malformed framing after a good chunk.
        (
            "127.6.0.33",
            format!(
                "{FORM_HEAD}Transfer-Encoding: chunked\r\n\r\nb\r\nusername=da\r\nzz\r\nve\r\n0\r\n\r\n"
            ),
            "HTTP/1.1 400 ",
            400,
            "form: malformed chunked request body: chunk size missing",
        ),
        // Over max_body once decoded (64 bytes), in small chunks.
        (
            "127.6.0.34",
            format!(
                "{FORM_HEAD}Transfer-Encoding: chunked\r\n\r\nd\r\nusername=dave\r\n3c\r\n{over}\r\n0\r\n\r\n"
            ),
            "HTTP/1.1 413 ",
            413,
            "form: login form body larger than 64 bytes",
        ),
    ];
    for (src, raw, status, _, _) in &cases {
        let mut s = connect_from(src, proxy).await;
        s.write_all(raw.as_bytes()).await.unwrap();
        let answer = read_to_close(&mut s).await;
        assert!(answer.starts_with(status), "{src}: {answer:?}");
    }
    assert!(
        up.conns().is_empty(),
        "the upstream received {:#?}",
        up.conns()
    );

    let events = fx.events(&running).await;
    for (src, _, _, code, problem) in &cases {
        let e = one_event_from(&events, src);
        assert_eq!(e["http"]["response"]["status_code"], *code, "{e:#}");
        assert_eq!(problems(e), [problem.to_string()], "{e:#}");
        assert!(e["user"].is_null(), "{e:#}");
    }
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Chunked request bodies
// ---------------------------------------------------------------------------------------------

/// Attack: chunk framing the upstream may read differently (leading zeros, upper-case hex,
/// whitespace and quoted extensions, a trailer). The upstream receives locgate's canonical
/// framing with the same data, and none of the client's framing quirks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_reaches_the_upstream_in_canonical_framing() {
    let fx = Fixture::new();
    let up = RawUpstream::start(echo_path, None).await;
    let running = fx.start(&listener("app", &up.url(), "")).await;
    let proxy = running.addr("app").unwrap();
    let raw = format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         005;name=val\r\nhello\r\n00000A \t; a=\"b c\" ;z\r\n0123456789\r\n1B\r\n{}\r\n0;last\r\nX-Trailer: t\r\n\r\n",
        "y".repeat(27)
    );
    let answer = raw_exchange(US_CLIENT, proxy, raw.into_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    assert!(answer.ends_with("/upload"), "{answer:?}");
    let conns = up.conns();
    assert_eq!(conns.len(), 1, "{conns:#?}");
    let text = conns[0].text();
    assert!(
        text.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{text:?}"
    );
    assert!(
        !text.contains("name=val") && !text.contains("X-Trailer"),
        "{text:?}"
    );
    let data = canonical_data(body_after_head(&conns[0].bytes));
    assert_eq!(
        data,
        format!("hello0123456789{}", "y".repeat(27)).into_bytes()
    );
    running.shutdown().await;
}

/// Attack: a good first chunk, then a malformed one, hoping the upstream runs the request (or
/// reads the rest as a second request) while the client is told 400. Sent in one piece, nothing
/// reaches the upstream; sent in two, the upstream got the head and the good chunk but never a
/// terminating chunk, and its connection is closed, not reused for the next request. A
/// `Content-Length` body whose client stops early is cut off the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_body_never_reaches_the_upstream_as_a_complete_request() {
    let fx = Fixture::new();
    let up = RawUpstream::start(echo_path, None).await;
    let running = fx.start(&listener("app", &up.url(), "")).await;
    let proxy = running.addr("app").unwrap();
    let head =
        format!("POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n");

    // All buffered: validated before the head goes out.
    let whole = format!("{head}5\r\nhello\r\nzz\r\nbad\r\n0\r\n\r\n");
    let answer = raw_exchange("127.1.0.41", proxy, whole.into_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    assert!(up.conns().is_empty(), "{:#?}", up.conns());

    // Mid-body: the good chunk has gone out before the bad one arrives.
    let mut s = connect_from("127.1.0.42", proxy).await;
    s.write_all(format!("{head}5\r\nhello\r\n").as_bytes())
        .await
        .unwrap();
    up.until("head and first chunk", |c| {
        c.len() == 1 && c[0].bytes.ends_with(b"5\r\nhello\r\n")
    })
    .await;
    s.write_all(b"zz\r\nbad\r\n0\r\n\r\n").await.unwrap();
    let answer = read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    let conns = up
        .until("the upstream connection closed", |c| c[0].closed)
        .await;
    assert!(
        !conns[0].text().contains("0\r\n\r\n"),
        "{:?}",
        conns[0].text()
    );
    assert!(!conns[0].text().contains("bad"), "{:?}", conns[0].text());

    // A Content-Length body whose client goes away halfway.
    let mut s = connect_from("127.1.0.43", proxy).await;
    s.write_all(
        format!("POST /cl HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 10\r\n\r\nhello").as_bytes(),
    )
    .await
    .unwrap();
    up.until("the partial body", |c| {
        c.len() == 2 && c[1].bytes.ends_with(b"hello")
    })
    .await;
    drop(s);
    up.until("the second upstream connection closed", |c| c[1].closed)
        .await;

    // The next request gets its own, fresh upstream connection and the right answer.
    let answer = raw_exchange(
        "127.1.0.44",
        proxy,
        format!("GET /next HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").into_bytes(),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("/next"),
        "{answer:?}"
    );
    let conns = up.conns();
    assert_eq!(conns.len(), 3, "{conns:#?}");
    assert!(conns[2].text().starts_with("GET /next "), "{conns:#?}");

    let events = fx.events(&running).await;
    for (src, status) in [
        ("127.1.0.41", 400),
        ("127.1.0.42", 400),
        ("127.1.0.43", 499),
    ] {
        let e = one_event_from(&events, src);
        assert_eq!(e["http"]["response"]["status_code"], status, "{src}: {e:#}");
    }
    running.shutdown().await;
}

/// Attack: hide a second request where locgate and the upstream may split differently: behind
/// a last chunk without its final CRLF (the next request line read as a trailer), in a trailer
/// with a bad name, or behind bare-LF line ends (httparse ends the head at `\n\n`, a CRLF
/// search much later). Each is refused with 400 before anything reaches the upstream, and the
/// hidden `GET /next` is never forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_hidden_in_trailers_or_behind_bare_lf_is_refused() {
    let fx = Fixture::new();
    let up = RawUpstream::start(echo_path, None).await;
    let running = fx.start(&listener("app", &up.url(), "")).await;
    let proxy = running.addr("app").unwrap();
    let chunked = format!("POST /a HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n");
    let next = format!("GET /next HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    for (src, raw) in [
        ("127.1.0.61", format!("{chunked}5\r\nhello\r\n0\r\n{next}")),
        (
            "127.1.0.62",
            format!("{chunked}5\r\nhello\r\n0\r\nBad Name: x\r\n\r\n{next}"),
        ),
        (
            "127.1.0.63",
            format!("{chunked}5\r\nhello\r\n0\r\nX: a\r\n folded\r\n\r\n{next}"),
        ),
        (
            "127.1.0.64",
            format!("GET /a HTTP/1.1\nHost: {HOST}\n\n{next}"),
        ),
    ] {
        let answer = raw_exchange(src, proxy, raw.into_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{src}: {answer:?}");
        assert!(!answer.contains("/next"), "{src}: {answer:?}");
    }
    assert!(up.conns().is_empty(), "{:#?}", up.conns());
    let events = fx.events(&running).await;
    for src in ["127.1.0.61", "127.1.0.62", "127.1.0.63", "127.1.0.64"] {
        let e = one_event_from(&events, src);
        assert_eq!(e["http"]["response"]["status_code"], 400, "{e:#}");
    }
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Head limit
// ---------------------------------------------------------------------------------------------

/// A request head of exactly `len` bytes (request line through the final CRLFCRLF).
fn head_of(len: usize) -> Vec<u8> {
    let start = format!("GET /h HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\nX-Pad: ");
    let pad = len - start.len() - 4;
    format!("{start}{}\r\n\r\n", "p".repeat(pad)).into_bytes()
}

/// Attack: a head up to twice `max_header_bytes` slipped past the limit (the end of the head
/// was found before the size was checked). Exactly the limit passes, one byte more is 431,
/// whether the head arrives in one write or byte by byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_of_exactly_the_limit_passes_and_one_byte_more_is_431() {
    let fx = Fixture::new();
    let up = RawUpstream::start(echo_path, None).await;
    let running = fx
        .start(&listener("app", &up.url(), "max_header_bytes = 1024"))
        .await;
    let proxy = running.addr("app").unwrap();
    for bytewise in [false, true] {
        for (len, status) in [(1024, "HTTP/1.1 200 "), (1025, "HTTP/1.1 431 ")] {
            let head = head_of(len);
            assert_eq!(head.len(), len);
            let s = connect_from(US_CLIENT, proxy).await;
            s.set_nodelay(true).unwrap();
            let (mut r, mut w) = s.into_split();
            let writer = tokio::spawn(async move {
                if bytewise {
                    for b in head {
                        if w.write_all(&[b]).await.is_err() {
                            break;
                        }
                    }
                } else {
                    let _ = w.write_all(&head).await;
                }
                w
            });
            let mut answer = Vec::new();
            let _ = within("answer", r.read_to_end(&mut answer)).await;
            let answer = String::from_utf8_lossy(&answer);
            assert!(
                answer.starts_with(status),
                "{len} bytes, bytewise {bytewise}: {answer:?}"
            );
            writer.abort();
        }
    }
    let sent: usize = up
        .conns()
        .iter()
        .map(|c| c.text().matches("GET /h ").count())
        .sum();
    assert_eq!(sent, 2, "only the heads within the limit went upstream");
    running.shutdown().await;
}

/// A response head of exactly `len` bytes (status line through the final CRLFCRLF) with an empty
/// body.
fn response_head_of(len: usize) -> Vec<u8> {
    let start = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-pad: ";
    format!("{start}{}\r\n\r\n", "p".repeat(len - start.len() - 4)).into_bytes()
}

/// The same exact limit toward the upstream: a response head of `max_header_bytes` is relayed,
/// one byte more is refused (502), never cut and passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_head_over_the_limit_is_refused() {
    fn padded(path: &str) -> Vec<u8> {
        response_head_of(if path == "/exact" { 1024 } else { 1025 })
    }
    let fx = Fixture::new();
    let up = RawUpstream::start(padded, None).await;
    let running = fx
        .start(&listener("app", &up.url(), "max_header_bytes = 1024"))
        .await;
    let proxy = running.addr("app").unwrap();
    for (path, status) in [("/exact", "HTTP/1.1 200 "), ("/over", "HTTP/1.1 502 ")] {
        let answer = raw_exchange(
            US_CLIENT,
            proxy,
            format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
        )
        .await;
        assert!(answer.starts_with(status), "{path}: {answer:?}");
    }
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Upstream leftovers
// ---------------------------------------------------------------------------------------------

/// A second, unasked response glued to every answer.
fn echo_path_and_a_lie(path: &str) -> Vec<u8> {
    let mut out = echo_path(path);
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nLIES");
    out
}

/// Attack: an upstream (or whatever controls its bytes) sends more than its response, right
/// behind it or a moment later; on a reused connection those bytes would become the answer to
/// the client's next request. The connection is closed instead, and the next request gets its
/// own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_leftovers_never_answer_the_next_request() {
    const LATER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nLIES";
    for (answer, later) in [
        (echo_path_and_a_lie as Answer, None),
        (echo_path as Answer, Some(LATER)),
    ] {
        let fx = Fixture::new();
        let up = RawUpstream::start(answer, later).await;
        let running = fx.start(&listener("app", &up.url(), "")).await;
        let proxy = running.addr("app").unwrap();
        let mut s = connect_from(US_CLIENT, proxy).await;
        for path in ["/first", "/second", "/third"] {
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let (status, body) = read_response(&mut s).await;
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
            assert_eq!(body, path, "later: {}", later.is_some());
            // Time for a late lie to arrive before the next request.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let conns = up.conns();
        assert_eq!(
            conns.len(),
            3,
            "one upstream connection per request: {conns:#?}"
        );
        running.shutdown().await;
    }
}

/// Attack: a response whose framing is ambiguous or impossible (a 204 announcing a body, a
/// HEAD response with both lengths) so that locgate and the client disagree about where it
/// ends. It is refused (502), never passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_impossible_framing_is_refused() {
    fn lying(path: &str) -> Vec<u8> {
        match path {
            "/no-content" => b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\nhello".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"
                .to_vec(),
        }
    }
    let fx = Fixture::new();
    let up = RawUpstream::start(lying, None).await;
    let running = fx.start(&listener("app", &up.url(), "")).await;
    let proxy = running.addr("app").unwrap();
    for (method, path) in [("GET", "/no-content"), ("HEAD", "/both")] {
        let answer = raw_exchange(
            US_CLIENT,
            proxy,
            format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 502 "),
            "{method} {path}: {answer:?}"
        );
    }
    running.shutdown().await;
}
