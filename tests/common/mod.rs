//! Shared fixtures for the end-to-end tests: small mmdb files built here, a real upstream HTTP
//! server, a client that connects from a chosen loopback source address, and an event-file reader.
//!
//! Address plan (mapped by the databases this module writes; every address is on loopback but
//! the last, which exists only inside the delay-line test's own network namespaces):
//! * `127.1.0.0/16` -> US, Texas, Austin (30.27, -97.74, radius 20 km)
//! * `127.2.0.0/16` -> KP, Pyongyang (sanctioned)
//! * `127.3.0.0/16` -> US, AS16509 "Amazon.com, Inc." (hosting provider per the ASN table)
//! * `127.4.0.0/16` -> US, Washington, Seattle (47.61, -122.33, radius 20 km)
//! * `127.5.0.0/16` -> MX, Mexico City (19.43, -99.13, radius 20 km)
//! * `127.6.0.0/16` -> DE, Berlin (52.52, 13.40, radius 20 km)
//! * `::1`          -> CA
//! * `127.0.0.1`    -> unmapped (unknown location)
//! * `10.231.0.0/16` -> US, Texas, Austin, like `127.1` (the ends of [`delay_line`]'s wires)

#![allow(dead_code)]

pub mod connect_proxy;
#[cfg(target_os = "linux")]
pub mod delay_line;
pub mod pg_server;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use locgate::config::Config;
use locgate::serve::Running;
use mmdb_writer::{ReservedNetworks, Value, Writer, ipnet::IpNet};
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A client in Austin, Texas (allowed).
pub const US_CLIENT: &str = "127.1.0.9";
/// A client in North Korea (sanctioned).
pub const KP_CLIENT: &str = "127.2.0.5";
/// A client on Amazon's network (hosting provider).
pub const AWS_CLIENT: &str = "127.3.0.4";
/// A client in Seattle, Washington (US, 2,848 km from Austin).
pub const SEATTLE_CLIENT: &str = "127.4.0.9";
/// A client in Mexico City (MX).
pub const MX_CLIENT: &str = "127.5.0.9";
/// A client in Berlin (DE).
pub const DE_CLIENT: &str = "127.6.0.9";
/// Unmapped: unknown location. Also the address a "trusted proxy" connects from.
pub const LOCAL: &str = "127.0.0.1";

/// Longest any single network step may take before the test fails.
pub const STEP: Duration = Duration::from_secs(10);

/// Host header the test clients send.
pub const HOST: &str = "app.example.test";

/// Body the upstream answers ordinary requests with.
pub const UPSTREAM_BODY: &[u8] = b"hello from the upstream\n\x00\xffbinary tail";
/// Status the upstream answers ordinary requests with.
pub const UPSTREAM_STATUS: StatusCode = StatusCode::CREATED;
/// Size of the large bodies.
pub const BIG: usize = 10 * 1024 * 1024;

/// Awaits `fut`, failing the test if it takes longer than [`STEP`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// Polls `probe` every 200 ms until it answers `Ok`, for at most `limit`; then panics with
/// `what` and the probe's last answer (what it saw instead).
#[allow(dead_code)]
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(seen) if std::time::Instant::now() >= deadline => {
                panic!("not within {limit:?}: {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

// ---------------------------------------------------------------------------------------------
// Data files and config
// ---------------------------------------------------------------------------------------------

/// A temporary directory with a city db, an ASN db, and a path for the event file.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub city_db: PathBuf,
    pub asn_db: PathBuf,
    pub events: PathBuf,
}

pub fn names(en: &str) -> Value {
    Value::map([("names", Value::map([("en", Value::from(en))]))])
}

pub fn city_record(
    cc: &str,
    region: Option<&str>,
    city: &str,
    lat: f64,
    lon: f64,
    radius: u16,
) -> Value {
    let mut fields = vec![
        (
            "country",
            Value::map([("iso_code", Value::from(cc)), ("names", names(cc))]),
        ),
        ("city", names(city)),
        (
            "location",
            Value::map([
                ("latitude", Value::from(lat)),
                ("longitude", Value::from(lon)),
                ("accuracy_radius", Value::from(radius)),
            ]),
        ),
    ];
    if let Some(region) = region {
        fields.push(("subdivisions", Value::array([names(region)])));
    }
    Value::map(fields)
}

/// The GeoIP2-City-layout database of the address plan.
pub fn city_db_bytes() -> Vec<u8> {
    let mut w = Writer::builder("locgate-test-City")
        .reserved_networks(ReservedNetworks::Included)
        .build();
    let mut put = |net: &str, v: Value| {
        w.insert_value(net.parse::<IpNet>().expect("network"), v)
            .expect("insert");
    };
    put(
        "127.1.0.0/16",
        city_record("US", Some("Texas"), "Austin", 30.27, -97.74, 20),
    );
    put(
        "127.2.0.0/16",
        city_record("KP", None, "Pyongyang", 39.03, 125.75, 50),
    );
    put(
        "127.3.0.0/16",
        city_record("US", Some("Virginia"), "Ashburn", 39.04, -77.49, 20),
    );
    put(
        "127.4.0.0/16",
        city_record("US", Some("Washington"), "Seattle", 47.61, -122.33, 20),
    );
    put(
        "127.5.0.0/16",
        city_record("MX", Some("Mexico City"), "Mexico City", 19.43, -99.13, 20),
    );
    put(
        "127.6.0.0/16",
        city_record("DE", Some("Berlin"), "Berlin", 52.52, 13.40, 20),
    );
    put(
        "10.231.0.0/16",
        city_record("US", Some("Texas"), "Austin", 30.27, -97.74, 20),
    );
    put(
        "::1/128",
        city_record("CA", Some("Ontario"), "Toronto", 43.65, -79.38, 20),
    );
    w.to_bytes().expect("city db")
}

/// The GeoLite2-ASN-layout database of the address plan.
pub fn asn_db_bytes() -> Vec<u8> {
    let mut w = Writer::builder("locgate-test-ASN")
        .reserved_networks(ReservedNetworks::Included)
        .build();
    w.insert_value(
        "127.3.0.0/16".parse::<IpNet>().expect("network"),
        Value::map([
            ("autonomous_system_number", Value::from(16509_u32)),
            (
                "autonomous_system_organization",
                Value::from("Amazon.com, Inc."),
            ),
        ]),
    )
    .expect("insert");
    w.to_bytes().expect("asn db")
}

/// A TOML basic string holding `p`.
pub fn toml_str(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

/// One `[[listener]]` bound to `127.0.0.1:0`; `extra` holds more `key = value` lines.
pub fn listener(name: &str, upstream: &str, extra: &str) -> String {
    listener_at(name, "127.0.0.1:0", upstream, extra)
}

/// One `[[listener]]` bound to `bind`.
pub fn listener_at(name: &str, bind: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"{name}\"\nbind = \"{bind}\"\nupstream = \"{upstream}\"\n{extra}\n\n"
    )
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let city_db = dir.path().join("city.mmdb");
        let asn_db = dir.path().join("asn.mmdb");
        std::fs::write(&city_db, city_db_bytes()).expect("write city db");
        std::fs::write(&asn_db, asn_db_bytes()).expect("write asn db");
        let events = dir.path().join("events.jsonl");
        Fixture {
            dir,
            city_db,
            asn_db,
            events,
        }
    }

    /// A complete config: `listeners`, the fixture's data (no embedded data) and event file.
    pub fn config_text(&self, listeners: &str) -> String {
        format!(
            "{listeners}[data]\ncity_db = {}\nasn_db = {}\nembedded = false\n\n[events]\njsonl = {}\n",
            toml_str(&self.city_db),
            toml_str(&self.asn_db),
            toml_str(&self.events),
        )
    }

    /// Like [`Self::config_text`], with more top-level tables (`[policy]`, `[employees]`) placed
    /// between the listeners and `[data]`.
    pub fn config_text_with(&self, listeners: &str, sections: &str) -> String {
        self.config_text(&format!("{listeners}{sections}\n"))
    }

    /// Writes the standard employee directory ([`employees_toml`], travel to MX from 20 Dec
    /// to 3 Jan) as `employees.toml`.
    pub fn write_standard_directory(&self) -> PathBuf {
        self.write(
            "employees.toml",
            &employees_toml("2026-12-20", "2027-01-03"),
        )
    }

    /// Writes the standard directory and a config naming it (the fixture's data, no listener)
    /// as `locgate.toml`; returns the config's path, for the one-shot commands.
    pub fn directory_config(&self) -> String {
        self.write_standard_directory();
        let config = self.write(
            "locgate.toml",
            &self.config_text_with("", &employees_section("employees.toml")),
        );
        config.display().to_string()
    }

    /// Writes `text` to `name` in the fixture directory (relative config paths resolve here).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Starts the server on [`Self::config_text_with`].
    pub async fn start_with(&self, listeners: &str, sections: &str) -> Running {
        self.start_text(&self.config_text_with(listeners, sections))
            .await
    }

    /// Parses [`Self::config_text`] and starts the real server in-process.
    pub async fn start(&self, listeners: &str) -> Running {
        self.start_text(&self.config_text(listeners)).await
    }

    /// Parses `text` (relative paths from the fixture directory) and starts the real server
    /// in-process. `[events]` is the last table of [`Self::config_text`], so a test may append
    /// `[events]` keys and `[events.*]` tables to it.
    pub async fn start_text(&self, text: &str) -> Running {
        let config = Config::parse(text, "test.toml", self.dir.path())
            .unwrap_or_else(|e| panic!("config does not parse: {e}\n{text}"));
        within("server start", locgate::serve::start(config))
            .await
            .expect("server starts")
    }

    /// Every event written so far (flushes the writer first).
    /// The events once `pred` holds for one of them (a tunnel's close event, or a re-decision,
    /// is written by another task just after what the test waits on); panics after 15 s (a
    /// bound for a loaded machine, not a timing requirement).
    pub async fn events_until(&self, running: &Running, pred: impl Fn(&Json) -> bool) -> Vec<Json> {
        for _ in 0..300 {
            let events = self.events(running).await;
            if events.iter().any(&pred) {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no matching event in {:#?}", self.events(running).await);
    }

    pub async fn events(&self, running: &Running) -> Vec<Json> {
        let shared = running.shared.clone();
        within(
            "event flush",
            tokio::task::spawn_blocking(move || shared.auditor.flush()),
        )
        .await
        .expect("flush");
        read_events(&self.events)
    }
}

/// Parses a JSON-lines event file; every whole line must be one JSON object. A last line
/// without its newline is one the writer is still appending (the test reads while the gateway
/// writes): it is left for the next read, as `tail -f` would.
pub fn read_events(path: &Path) -> Vec<Json> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
    whole
        .lines()
        .map(|l| {
            let v: Json = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"));
            assert!(v.is_object(), "event line is not an object: {l}");
            v
        })
        .collect()
}

/// The event with `event.id == id`.
pub fn event_with_id<'a>(events: &'a [Json], id: &str) -> &'a Json {
    events
        .iter()
        .find(|e| e["event"]["id"] == id)
        .unwrap_or_else(|| panic!("no event with id {id} in {events:#?}"))
}

/// Events whose `source.ip` is `ip`.
pub fn events_from<'a>(events: &'a [Json], ip: &str) -> Vec<&'a Json> {
    events.iter().filter(|e| e["source"]["ip"] == ip).collect()
}

/// `event.reason` as strings.
pub fn reasons(e: &Json) -> Vec<String> {
    e["event"]["reason"]
        .as_array()
        .unwrap_or_else(|| panic!("event.reason is not a list: {e}"))
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_string())
        .collect()
}

/// The reference id shown on the HTML block page.
pub fn html_reference(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).expect("block page is UTF-8");
    let start = text
        .find("<code>")
        .expect("block page shows a <code> reference")
        + 6;
    let end = start + text[start..].find("</code>").expect("closing </code>");
    let id = text[start..end].trim().to_string();
    assert!(!id.is_empty(), "empty reference on the block page");
    id
}

/// Deterministic, non-repeating-looking test data (xorshift64).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A streaming body of `data` in 64 KiB chunks (sent chunked: no Content-Length).
pub fn chunked(data: Bytes) -> BoxBody<Bytes, Infallible> {
    let chunks: Vec<Bytes> = (0..data.len())
        .step_by(64 * 1024)
        .map(|i| data.slice(i..(i + 64 * 1024).min(data.len())))
        .collect();
    StreamBody::new(futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, Infallible>(Frame::data(c))),
    ))
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// The upstream
// ---------------------------------------------------------------------------------------------

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    /// All values of header `name`, joined with ", ".
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ASCII header"))
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// A request header asking the test upstream to add its value as one more `Set-Cookie` line to
/// an ordinary response (how a test plays an SSO portal that issues a session cookie on login).
pub const SET_COOKIE_ON_REQUEST: &str = "x-test-set-cookie";

/// A real HTTP/1.1 server on 127.0.0.1 that records what it receives.
///
/// Routes: `/slow` never answers (30 s); `/delay` answers normally after 300 ms; `/ws` accepts a WebSocket upgrade and echoes bytes;
/// `/big-response` streams [`BIG`] bytes of `pattern(BIG, 7)`; anything else collects the request
/// body and answers [`UPSTREAM_STATUS`] with custom headers and [`UPSTREAM_BODY`] (plus a
/// `Set-Cookie` line when the request carries [`SET_COOKIE_ON_REQUEST`]).
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accept: tokio::task::JoinHandle<()>,
}

type UpBody = BoxBody<Bytes, Infallible>;

impl Upstream {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("addr")).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("upstream binds");
        let addr = listener.local_addr().expect("upstream addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let seen2 = seen.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| upstream_handle(seen.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream { addr, seen, accept }
    }

    /// `http://127.0.0.1:PORT`, for a listener's `upstream`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The only request received.
    pub fn only(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(
            seen.len(),
            1,
            "upstream saw {} requests: {seen:#?}",
            seen.len()
        );
        seen.into_iter().next().expect("one")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn upstream_handle(
    seen: Arc<Mutex<Vec<Seen>>>,
    mut req: Request<Incoming>,
) -> Result<Response<UpBody>, hyper::Error> {
    let path = req.uri().path().to_string();
    let on_upgrade = (path == "/ws").then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let set_cookie = parts.headers.get(SET_COOKIE_ON_REQUEST).cloned();
    let body = if on_upgrade.is_some() {
        Bytes::new()
    } else {
        body.collect().await?.to_bytes()
    };
    seen.lock().expect("lock").push(Seen {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(String::new, |p| p.to_string()),
        headers: parts.headers,
        body,
    });
    let resp = match path.as_str() {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Response::new(Empty::new().boxed())
        }
        "/delay" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ok_response()
        }
        "/ws" => {
            if let Some(on_upgrade) = on_upgrade {
                tokio::spawn(async move {
                    let Ok(upgraded) = on_upgrade.await else {
                        return;
                    };
                    let (mut r, mut w) = tokio::io::split(TokioIo::new(upgraded));
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("upgrade", "websocket")
                .header("connection", "Upgrade")
                .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
                .body(Empty::new().boxed())
                .expect("101")
        }
        "/big-response" => Response::builder()
            .header("content-type", "application/octet-stream")
            .body(chunked(Bytes::from(pattern(BIG, 7))))
            .expect("big"),
        _ => {
            let mut resp = ok_response();
            if let Some(v) = set_cookie {
                resp.headers_mut().append(http::header::SET_COOKIE, v);
            }
            resp
        }
    };
    Ok(resp)
}

fn ok_response() -> Response<UpBody> {
    Response::builder()
        .status(UPSTREAM_STATUS)
        .header("content-type", "application/x-test")
        .header("x-upstream", "reached")
        .header("x-custom-thing", "a; b=\"c, d\"")
        .header("set-cookie", "session=abc123; HttpOnly")
        .header("cache-control", "private, max-age=7")
        .body(Full::new(Bytes::from_static(UPSTREAM_BODY)).boxed())
        .expect("ok")
}

/// The usual end-to-end setup: a fixture, a recording upstream, and the gateway with one
/// listener named `app` in front of it (`extra` adds listener settings such as the mode).
pub struct App {
    /// Test data and the event file.
    pub fx: Fixture,
    /// The recording upstream.
    pub up: Upstream,
    /// The running gateway.
    pub running: Running,
    /// The `app` listener's address.
    pub proxy: SocketAddr,
}

impl App {
    /// Starts it all.
    pub async fn start(extra: &str) -> App {
        let fx = Fixture::new();
        let up = Upstream::start().await;
        let running = fx.start(&listener("app", &up.url(), extra)).await;
        let proxy = running.addr("app").expect("app listener");
        App {
            fx,
            up,
            running,
            proxy,
        }
    }
}

/// An address nothing listens on (until a test starts an upstream there).
pub fn closed_port() -> SocketAddr {
    // A loopback address no test ever listens on: connecting is refused at once. (Binding port 0
    // and closing it raced with other tests' listeners, which could be handed the same port.)
    "127.255.255.254:9".parse().expect("address")
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// A TCP connection to `dst` whose source address is `src` (port chosen by the OS).
pub async fn connect_from(src: &str, dst: SocketAddr) -> TcpStream {
    let src = ip(src);
    let sock = if src.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .expect("socket");
    sock.bind(SocketAddr::new(src, 0))
        .unwrap_or_else(|e| panic!("cannot bind source {src}: {e}"));
    within("connect", sock.connect(dst))
        .await
        .unwrap_or_else(|e| panic!("cannot connect {src} -> {dst}: {e}"))
}

/// Sends raw bytes from `src` and reads everything the gateway answers until it closes.
pub async fn raw_exchange(src: &str, dst: std::net::SocketAddr, bytes: Vec<u8>) -> String {
    let stream = connect_from(src, dst).await;
    let (mut r, mut w) = stream.into_split();
    // Write in the background: the gateway may answer and close before reading it all.
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&bytes).await;
        let _ = w.flush().await;
        w
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match within("raw read", r.read(&mut buf)).await {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // A reset after the answer was read is fine; the answer is what matters.
            Err(_) => break,
        }
    }
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A request builder with the test Host header.
pub fn request(method: &str, target: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(target)
        .header("host", HOST)
}

/// Sends one HTTP/1.1 request from source `src` over a fresh connection (upgrades enabled).
pub async fn send<B>(src: &str, dst: SocketAddr, req: Request<B>) -> Response<Incoming>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = connect_from(src, dst).await;
    let (mut sender, conn) = within(
        "handshake",
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    within("response headers", sender.send_request(req))
        .await
        .expect("request gets a response")
}

/// Reads a whole response body.
pub async fn read_body(resp: Response<Incoming>) -> (http::response::Parts, Bytes) {
    let (parts, body) = resp.into_parts();
    let bytes = within("response body", body.collect())
        .await
        .expect("body")
        .to_bytes();
    (parts, bytes)
}

/// GET `target` from `src` with extra headers; returns the status, headers and body.
pub async fn get(
    src: &str,
    dst: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> (http::response::Parts, Bytes) {
    let mut b = request("GET", target);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Empty::<Bytes>::new()).expect("request");
    read_body(send(src, dst, req).await).await
}

/// A header of a response as text.
pub fn header<'a>(parts: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).map(|v| v.to_str().expect("ASCII"))
}

/// POST `body` to `target` from `src` with a Content-Length and extra headers.
pub async fn post(
    src: &str,
    dst: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (http::response::Parts, Bytes) {
    let mut b = request("POST", target);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    read_body(send(src, dst, req).await).await
}

/// The one event whose `source.ip` is `ip` (each identity test uses its own source address, so
/// the allow throttle never folds the event it looks for).
/// Whom an event is about: ECS `user.id` for a verified identity, else `user.name` (a name
/// only claimed, or inferred from an address); `null` when nobody.
pub fn user_of(e: &Json) -> Json {
    let user = &e["user"];
    if user["id"].is_null() {
        user["name"].clone()
    } else {
        user["id"].clone()
    }
}

pub fn one_event_from<'a>(events: &'a [Json], ip: &str) -> &'a Json {
    let mine = events_from(events, ip);
    assert_eq!(mine.len(), 1, "events from {ip}: {events:#?}");
    mine[0]
}

// ---------------------------------------------------------------------------------------------
// Identities
// ---------------------------------------------------------------------------------------------

/// The HS256 secret the identity tests share (written to a file by [`Fixture::hs256_secret_file`]).
pub const HS256_SECRET: &str = "locgate-test-only-hs256-secret-0123456789";

/// A committed identity fixture (test-only keys; see tests/fixtures/identity/README.md).
pub fn identity_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/identity")
        .join(name)
}

impl Fixture {
    /// Writes [`HS256_SECRET`] (with a trailing newline, as `echo` would) to `hs256.key`.
    pub fn hs256_secret_file(&self) -> PathBuf {
        self.write("hs256.key", &format!("{HS256_SECRET}\n"))
    }
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// An HS256 token over `claims`, signed with `secret`.
pub fn hs256_token_with(secret: &[u8], claims: &Json) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign HS256")
}

/// A valid HS256 token (shared [`HS256_SECRET`]) naming `sub`, expiring in 10 minutes.
pub fn hs256_token(sub: &str) -> String {
    let now = now_secs();
    hs256_token_with(
        HS256_SECRET.as_bytes(),
        &serde_json::json!({ "sub": sub, "iat": now - 5, "exp": now + 600 }),
    )
}

/// An RS256 token over `claims`, signed with the fixture private key `key_file` and carrying
/// `kid` in its header.
pub fn rs256_token(key_file: &str, kid: &str, claims: &Json) -> String {
    let pem = std::fs::read(identity_fixture(key_file)).expect("fixture key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("RSA key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &key).expect("sign RS256")
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Basic base64(user:password)`.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A UTC calendar date `days` from today, as `YYYY-MM-DD`.
pub fn utc_date(days: i64) -> String {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    today
        .checked_add(jiff::Span::new().days(days))
        .expect("date in range")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

/// The value of the sample `name` (with its labels, if any) in a Prometheus text exposition.
pub fn metric<T: std::str::FromStr>(text: &str, name: &str) -> T {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Kills the child if the test fails before it has exited.
pub struct Guard(pub Option<std::process::Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a finished `locgate` process left behind.
pub struct BinOut {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl BinOut {
    /// Whether `check` ran and printed its verdicts: it exits 0 (allow), 3 (flag) or 4 (block)
    /// by the strictest one; 1 and 2 are errors.
    pub fn judged(&self) -> bool {
        matches!(self.status.code(), Some(0 | 3 | 4))
    }

    /// Standard output as JSON lines.
    pub fn json_lines(&self) -> Vec<Json> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }
}

/// Signs `user` in through an SSO listener whose trusted loopback auth proxy names the client
/// (`X-Forwarded-For`) and the user (`X-Remote-User`); the status it answers.
pub async fn sso_login(sso: SocketAddr, client: &str, user: &str) -> u16 {
    let (parts, _) = get(
        LOCAL,
        sso,
        "/login",
        &[("x-forwarded-for", client), ("x-remote-user", user)],
    )
    .await;
    parts.status.as_u16()
}

/// Runs the real `locgate` binary with `args` to completion (killed after 20 s).
pub fn locgate_bin(args: &[&str]) -> BinOut {
    use std::process::{Command, Stdio};
    const DEADLINE: Duration = Duration::from_secs(20);
    let child = Command::new(env!("CARGO_BIN_EXE_locgate"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn locgate");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("locgate {args:?} did not finish within {DEADLINE:?}");
        }
    };
    BinOut {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The employee directory
// ---------------------------------------------------------------------------------------------

/// The directory the per-employee tests share. Everyone declares Austin, Texas (the
/// `127.1.0.0/16` clients) with a 150 km radius; what differs is what else is fine for them:
/// * `e1042` alice: a trip to MX from `travel_from` to `travel_to` (dates or RFC 3339)
/// * `e2001` bob: nothing else
/// * `e3007` carol: `mode = "exempt"`
/// * `e4001` dave: `allow_countries = ["DE"]`
pub fn employees_toml(travel_from: &str, travel_to: &str) -> String {
    let home = "country = \"US\"\nregion = \"Texas\"\ncity = \"Austin\"\nlat = 30.2672\nlon = -97.7431\nradius_km = 150\n";
    format!(
        "[[employee]]\nid = \"e1042\"\naliases = [\"alice@example.com\", \"alice\"]\n{home}\
         travel = [{{ from = {travel_from}, to = {travel_to}, countries = [\"MX\"] }}]\n\n\
         [[employee]]\nid = \"e2001\"\naliases = [\"bob@example.com\", \"bob\"]\n{home}\n\
         [[employee]]\nid = \"e3007\"\naliases = [\"carol@example.com\", \"carol\"]\n{home}mode = \"exempt\"\n\n\
         [[employee]]\nid = \"e4001\"\naliases = [\"dave@example.com\", \"dave\"]\n{home}allow_countries = [\"DE\"]\n"
    )
}

/// Four people (ann, bob, cat, dan) who all declared Austin, Texas; ann works Chicago time.
pub fn austin_team() -> String {
    ["ann", "bob", "cat", "dan"]
        .iter()
        .map(|id| {
            let zone = match *id {
                "ann" => "time_zone = \"America/Chicago\"\n",
                _ => "",
            };
            format!(
                "[[employee]]\nid = \"{id}\"\ncountry = \"US\"\nregion = \"Texas\"\ncity = \"Austin\"\n\
                 lat = 30.2672\nlon = -97.7431\nradius_km = 150\n{zone}\n"
            )
        })
        .collect()
}

/// `[employees]` naming `file` (relative to the fixture directory), every rule at its default
/// (`flag`).
pub fn employees_section(file: &str) -> String {
    format!("[employees]\nfile = \"{file}\"\n")
}

// ---------------------------------------------------------------------------------------------
// Webhook receiver (alerts: tests/review.rs, tests/bounded.rs)
// ---------------------------------------------------------------------------------------------

/// A webhook receiver that answers 500 to the first `fail` posts, then 200; returns the bodies.
pub async fn flaky_webhook(fail: usize) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b = bodies.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut n = 0;
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read head + body (Content-Length).
            while let Ok(k) = s.read(&mut chunk).await {
                if k == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len {
                        b.lock().expect("lock").push(text[i + 4..].to_string());
                        break;
                    }
                }
            }
            n += 1;
            let status = if n <= fail {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = s
                .write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    (addr, bodies)
}

// ---------------------------------------------------------------------------------------------
// Identity blocks of events
// ---------------------------------------------------------------------------------------------

/// The identity block of an event (`locgate.identity`).
pub fn identity(e: &Json) -> &Json {
    &e["locgate"]["identity"]
}

/// `locgate.identity.problems` as strings (empty when absent).
pub fn problems(e: &Json) -> Vec<String> {
    identity(e)["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A TCP upstream on loopback that echoes every connection's bytes until the client closes.
pub async fn tcp_echo_upstream() -> SocketAddr {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = upstream.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// A test CA and a server certificate it signed.
pub struct TestPki {
    /// The CA certificate (PEM): what clients trust.
    pub ca_pem: String,
    /// The leaf certificate (DER).
    pub cert_der: Vec<u8>,
    /// The leaf's private key (PKCS#8 DER).
    pub key_der: Vec<u8>,
}

/// A fresh CA and a certificate it signed for the DNS `names`.
pub fn ca_signed_leaf(names: &[&str]) -> TestPki {
    use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "locgate test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("leaf params")
        .signed_by(&key, &ca)
        .expect("leaf");
    TestPki {
        ca_pem: ca.pem(),
        cert_der: leaf.der().to_vec(),
        key_der: key.serialize_der(),
    }
}
