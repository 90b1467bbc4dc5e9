//! The edge end to end (issue 4): TLS termination (HTTP/1.1 and HTTP/2, SNI, mTLS, reload),
//! PROXY protocol in and out, TCP pass-through with SNI routing, UDP flows, connection caps,
//! slow clients, draining. Loopback only; certificates come from a CA the tests make (rcgen).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use locgate::serve::Running;
use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

// ---------------------------------------------------------------------------------------------
// A test PKI
// ---------------------------------------------------------------------------------------------

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// A leaf for `names` (server) or with common name `cn` (client).
    fn leaf(&self, names: &[&str], cn: &str) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn client_config(
    ca: &CertificateDer<'static>,
    client: Option<&Leaf>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some(l) => b
            .with_client_auth_cert(
                vec![l.cert_der.clone()],
                PrivateKeyDer::try_from(l.key_der.clone()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn tls_connect(
    src: &str,
    dst: SocketAddr,
    sni: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<Tls> {
    let tcp = connect_from(src, dst).await;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    within(
        "tls handshake",
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
}

fn leaf_names(tls: &Tls) -> String {
    let (_, conn) = tls.get_ref();
    let der = conn.peer_certificates().unwrap()[0].clone();
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
    format!(
        "{:?}",
        cert.subject_alternative_name().unwrap().unwrap().value
    )
}

async fn h1_get(tls: Tls, target: &str) -> Result<(http::response::Parts, Bytes), hyper::Error> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = request("GET", target).body(Empty::<Bytes>::new()).unwrap();
    let resp = within("h1 response", sender.send_request(req)).await?;
    let (parts, body) = resp.into_parts();
    Ok((parts, within("body", body.collect()).await?.to_bytes()))
}

async fn h2_get(tls: Tls, target: &str) -> (http::response::Parts, Bytes) {
    h2_request(tls, "GET", target, &[], Empty::new().boxed()).await
}

/// One request over a fresh HTTP/2 connection; the response with its whole body.
async fn h2_request(
    tls: Tls,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>,
) -> (http::response::Parts, Bytes) {
    let resp = h2_send(tls, method, target, headers, body)
        .await
        .expect("h2 response");
    let (parts, body) = resp.into_parts();
    (
        parts,
        within("body", body.collect()).await.unwrap().to_bytes(),
    )
}

/// Sends one request over a fresh HTTP/2 connection (any body, even one that fails midway).
async fn h2_send<B>(
    tls: Tls,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: B,
) -> Result<http::Response<hyper::body::Incoming>, hyper::Error>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("https://{HOST}{target}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    within("h2 response", sender.send_request(req.body(body).unwrap())).await
}

/// A request body that sends `first`, then fails (the client resets the stream). The failure
/// waits a moment, so the request has reached the gateway: a stream reset together with its
/// HEADERS frame is dropped by the HTTP/2 layer before any handler sees it.
fn sent_then_abandoned(
    first: Bytes,
) -> std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<hyper::body::Frame<Bytes>, std::io::Error>> + Send>,
> {
    Box::pin(futures_util::stream::unfold(
        Some(first),
        |left| async move {
            match left {
                Some(first) => Some((Ok(hyper::body::Frame::data(first)), None)),
                None => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Some((Err(std::io::Error::other("client gave up")), None))
                }
            }
        },
    ))
}

/// A TLS listener config block: default cert for HOST, a second one for other.example.test.
struct TlsSetup {
    pki: Pki,
    cert: PathBuf,
    key: PathBuf,
    extra: String,
}

/// Starts one TLS listener, `tls`, in front of `upstream` with `extra` settings (lines, before
/// the certificate settings); returns the gateway and the listener's address.
async fn start_tls(
    fx: &Fixture,
    t: &TlsSetup,
    upstream: &str,
    extra: &str,
) -> (Running, SocketAddr) {
    let settings = match extra {
        "" => t.extra.clone(),
        _ => format!("{extra}\n{}", t.extra),
    };
    let running = fx.start(&listener("tls", upstream, &settings)).await;
    let proxy = running.addr("tls").expect("tls listener");
    (running, proxy)
}

fn tls_setup(fx: &Fixture, client_cert: &str) -> TlsSetup {
    let pki = Pki::new("locgate test CA");
    let dir = fx.dir.path();
    let main = pki.leaf(&[HOST], "app");
    let other = pki.leaf(&["other.example.test"], "other");
    let cert = write(dir, "app.pem", &main.cert_pem);
    let key = write(dir, "app.key", &main.key_pem);
    let oc = write(dir, "other.pem", &other.cert_pem);
    let ok = write(dir, "other.key", &other.key_pem);
    let ca = write(dir, "ca.pem", &pki.ca_pem());
    let client = if client_cert.is_empty() {
        String::new()
    } else {
        format!(
            ", client_ca = {}, client_cert = \"{client_cert}\"",
            toml_str(&ca)
        )
    };
    let extra = format!(
        "tls = {{ cert = {}, key = {}, sni = [{{ cert = {}, key = {} }}], handshake_timeout = \"1s\"{client} }}",
        toml_str(&cert),
        toml_str(&key),
        toml_str(&oc),
        toml_str(&ok)
    );
    TlsSetup {
        pki,
        cert,
        key,
        extra,
    }
}

// ---------------------------------------------------------------------------------------------
// TLS termination
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http1_and_http2_and_the_upstream_sees_https() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "");
    let (running, proxy) = start_tls(&fx, &t, &up.url(), "mode = \"enforce\"").await;
    let ca = t.pki.ca_der();

    let s = tls_connect(
        US_CLIENT,
        proxy,
        HOST,
        client_config(&ca, None, &[b"http/1.1"]),
    )
    .await
    .expect("handshake");
    let (parts, body) = h1_get(s, "/one").await.expect("h1 over TLS");
    assert_eq!(parts.status, UPSTREAM_STATUS);
    assert_eq!(&body[..], UPSTREAM_BODY);

    let s = tls_connect(US_CLIENT, proxy, HOST, client_config(&ca, None, &[b"h2"]))
        .await
        .expect("handshake");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (parts, body) = h2_get(s, "/two?x=1").await;
    assert_eq!(parts.version, http::Version::HTTP_2);
    assert_eq!(parts.status, UPSTREAM_STATUS);
    assert_eq!(&body[..], UPSTREAM_BODY);
    assert!(parts.headers.get("connection").is_none());

    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.header("x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(s.header("host").as_deref(), Some(HOST));
        assert_eq!(s.header("x-forwarded-for").as_deref(), Some(US_CLIENT));
    }
    assert_eq!(seen[1].target, "/two?x=1");

    // Blocked over h2 too: 403, never upstream.
    let s = tls_connect(KP_CLIENT, proxy, HOST, client_config(&ca, None, &[b"h2"]))
        .await
        .unwrap();
    let (parts, _) = h2_get(s, "/blocked").await;
    assert_eq!(parts.status, StatusCode::FORBIDDEN);
    assert_eq!(up.seen().len(), 2);

    let events = fx.events(&running).await;
    let kp = events_from(&events, KP_CLIENT);
    assert_eq!(kp.len(), 1);
    assert_eq!(kp[0]["tls"]["client"]["server_name"], HOST);
    assert_eq!(kp[0]["network"]["transport"], "tcp");
    assert!(kp[0]["tls"]["version"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_forms_over_http2_identify_pass_byte_exact_and_learn_the_session() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "");
    let running = fx
        .start_with(
            &listener(
                "tls",
                &up.url(),
                &format!(
                    "mode = \"enforce\"\nidentity = [{{ form = {{ path = \"/login\", \
                     field = \"username\", max_body = 1024 }} }}]\n\
                     session = {{ cookie = \"SESSION\", ttl = \"1h\" }}\n{}",
                    t.extra
                ),
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let proxy = running.addr("tls").unwrap();
    let ca = t.pki.ca_der();
    let h2 = |src: &'static str| {
        let cfg = client_config(&ca, None, &[b"h2"]);
        async move {
            let s = tls_connect(src, proxy, HOST, cfg).await.expect("handshake");
            assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            s
        }
    };
    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
    let full = |b: &[u8]| Full::new(Bytes::copy_from_slice(b)).boxed();
    let form = b"username=bob%40example.com&password=p%40ss+w0rd%21&remember=on".to_vec();
    let set = "SESSION=0123456789abcdef0123456789abcdef; Path=/; HttpOnly";
    let json_body = "{\"password\":\"s3cr\u{e9}t \\\"quoted\\\"\",\"username\":\"carol\"}"
        .as_bytes()
        .to_vec();
    let mut at_limit = b"username=dave&pad=".to_vec();
    at_limit.resize(1024, b'x');
    let mut over = b"username=alice&pad=".to_vec();
    over.resize(1025, b'y');
    let too_large = StatusCode::PAYLOAD_TOO_LARGE;
    let json = ("content-type", "application/json; charset=utf-8");
    let logins = [
        // A urlencoded login; the portal answers with a session cookie.
        (
            "127.1.0.132",
            "/login?next=%2Fhome",
            vec![FORM, (SET_COOKIE_ON_REQUEST, set)],
            full(&form),
            UPSTREAM_STATUS,
        ),
        // A JSON login (non-ASCII in the password, field order reversed).
        (
            "127.1.0.133",
            "/login",
            vec![json],
            full(&json_body),
            UPSTREAM_STATUS,
        ),
        // HTTP/2 needs no content-length: a streamed body of exactly max_body bytes is read.
        (
            "127.1.0.135",
            "/login",
            vec![FORM],
            chunked(Bytes::from(at_limit.clone())),
            UPSTREAM_STATUS,
        ),
        // One byte over the limit, announced (content-length) or streamed: 413, never upstream.
        ("127.1.0.134", "/login", vec![FORM], full(&over), too_large),
        (
            "127.1.0.136",
            "/login",
            vec![FORM],
            chunked(Bytes::from(over.clone())),
            too_large,
        ),
    ];
    for (src, target, headers, body, want) in logins {
        let (parts, answer) = h2_request(h2(src).await, "POST", target, &headers, body).await;
        assert_eq!(parts.version, http::Version::HTTP_2);
        assert_eq!(parts.status, want, "{src}");
        if want == too_large {
            assert_eq!(&answer[..], b"login form body too large\n");
        }
    }

    // A client that resets the stream halfway through its login body: never upstream (a partial
    // body cannot be forwarded).
    let half = sent_then_abandoned(Bytes::from_static(b"username=er"));
    let sent = h2_send(
        h2("127.1.0.138").await,
        "POST",
        "/login",
        &[FORM],
        http_body_util::StreamBody::new(half),
    )
    .await;
    assert!(sent.is_err(), "the client's own request failed: {sent:?}");

    // The session cookie learned at bob's login names him on a later request (another address).
    let (parts, _) = h2_request(
        h2("127.1.0.137").await,
        "GET",
        "/mail",
        &[
            ("cookie", "theme=dark"),
            ("cookie", "SESSION=0123456789abcdef0123456789abcdef"),
        ],
        Empty::new().boxed(),
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    // Every body byte-exact, with the length the upstream needs (none was sent chunked).
    let seen = up.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        ["/login?next=%2Fhome", "/login", "/login", "/mail"]
    );
    for (s, body) in seen.iter().zip([&form, &json_body, &at_limit]) {
        assert_eq!(&s.body[..], &body[..], "{s:#?}");
        let length = body.len().to_string();
        assert_eq!(s.header("content-length").as_deref(), Some(length.as_str()));
        assert_eq!(s.header("transfer-encoding"), None);
    }

    let events = fx.events(&running).await;
    for (src, user, presented) in [
        ("127.1.0.132", "e2001", "bob@example.com"),
        ("127.1.0.133", "e3007", "carol"),
        ("127.1.0.135", "e4001", "dave"),
    ] {
        let e = one_event_from(&events, src);
        assert_eq!(user_of(e), user, "{e:#}");
        let id = &e["locgate"]["identity"];
        assert_eq!(id["source"], "form", "{e:#}");
        assert_eq!(id["verified"], false, "{e:#}");
        assert_eq!(id["presented"], presented, "{e:#}");
        assert!(id["problems"].as_array().is_none_or(Vec::is_empty), "{e:#}");
        assert_eq!(e["url"]["path"], "/login");
        assert!(!e.to_string().contains("w0rd"), "no password in events");
    }
    for src in ["127.1.0.134", "127.1.0.136"] {
        let e = one_event_from(&events, src);
        assert_eq!(e["http"]["response"]["status_code"], 413, "{e:#}");
        assert_eq!(
            e["locgate"]["error"],
            "login form body larger than 1024 bytes"
        );
        assert!(e["user"].is_null(), "{e:#}");
    }
    // The stream's exchange runs in its own task, so the reset is recorded once, whichever of
    // hyper and the body read notices it first: a 400 with nobody named.
    let e = one_event_from(&events, "127.1.0.138");
    assert_eq!(e["http"]["response"]["status_code"], 400, "{e:#}");
    assert_eq!(
        e["locgate"]["error"],
        "login form body: client stopped sending it"
    );
    assert!(e["user"].is_null(), "{e:#}");
    let e = one_event_from(&events, "127.1.0.137");
    assert_eq!(user_of(e), "e2001", "{e:#}");
    assert_eq!(e["locgate"]["identity"]["source"], "session", "{e:#}");
    assert_eq!(e["locgate"]["identity"]["verified"], false, "{e:#}");
    running.shutdown().await;
}

/// A request body that sends `first`, pauses for `pause`, then sends `rest`.
fn sent_with_a_pause(
    first: Bytes,
    pause: Duration,
    rest: Bytes,
) -> std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<hyper::body::Frame<Bytes>, std::io::Error>> + Send>,
> {
    Box::pin(futures_util::stream::unfold(0, move |step| {
        let (first, rest) = (first.clone(), rest.clone());
        async move {
            match step {
                0 => Some((Ok(hyper::body::Frame::data(first)), 1)),
                1 => {
                    tokio::time::sleep(pause).await;
                    Some((Ok(hyper::body::Frame::data(rest)), 2))
                }
                _ => None,
            }
        }
    }))
}

/// Attack (HTTP/2): start a login body and pause past the body timeout, or stream more than
/// the limit, so the form is given up on and the request forwarded unread. Refused (408, 413)
/// with the identity recorded unreadable; the upstream receives nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_http2_login_body_is_refused_recorded_and_never_forwarded() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "");
    let running = fx
        .start_with(
            &listener(
                "tls",
                &up.url(),
                &format!(
                    "mode = \"enforce\"\nbody_read_timeout = \"1s\"\nidentity = [{{ form = {{ \
                     path = \"/login\", field = \"username\", max_body = 64 }} }}]\n{}",
                    t.extra
                ),
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let proxy = running.addr("tls").unwrap();
    let ca = t.pki.ca_der();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let stalled = sent_with_a_pause(
        Bytes::from_static(b"username=da"),
        Duration::from_secs(3),
        Bytes::from_static(b"ve&password=pw"),
    );
    let over = sent_with_a_pause(
        Bytes::from_static(b"username=dave&pad="),
        Duration::from_millis(50),
        Bytes::from(vec![b'x'; 100]),
    );
    for (src, body, status) in [
        ("127.6.0.51", stalled, StatusCode::REQUEST_TIMEOUT),
        ("127.6.0.52", over, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let s = tls_connect(src, proxy, HOST, client_config(&ca, None, &[b"h2"]))
            .await
            .expect("handshake");
        let resp = h2_send(
            s,
            "POST",
            "/login",
            &form,
            http_body_util::StreamBody::new(body),
        )
        .await
        .expect("an answer");
        assert_eq!(resp.status(), status, "{src}");
    }
    assert!(up.seen().is_empty(), "{:#?}", up.seen());
    let events = fx.events(&running).await;
    for (src, code, problem) in [
        (
            "127.6.0.51",
            408,
            "form: login form body: client paused for more than 1s",
        ),
        (
            "127.6.0.52",
            413,
            "form: login form body larger than 64 bytes",
        ),
    ] {
        let e = one_event_from(&events, src);
        assert_eq!(e["http"]["response"]["status_code"], code, "{e:#}");
        assert_eq!(
            e["locgate"]["identity"]["problems"],
            serde_json::json!([problem]),
            "{e:#}"
        );
        assert!(e["user"].is_null(), "{e:#}");
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_reload_swaps_it_without_dropping_connections() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "");
    let (_running, proxy) = start_tls(&fx, &t, &up.url(), "").await;
    let cfg = client_config(&t.pki.ca_der(), None, &[b"http/1.1"]);

    let other = tls_connect(US_CLIENT, proxy, "other.example.test", cfg.clone())
        .await
        .unwrap();
    assert!(leaf_names(&other).contains("other.example.test"));
    let main = tls_connect(US_CLIENT, proxy, HOST, cfg.clone())
        .await
        .unwrap();
    assert!(leaf_names(&main).contains(HOST));

    // Replace the default certificate: it now also names reloaded.example.test.
    let fresh = t.pki.leaf(&[HOST, "reloaded.example.test"], "app2");
    std::fs::write(&t.cert, &fresh.cert_pem).unwrap();
    std::fs::write(&t.key, &fresh.key_pem).unwrap();
    let results = locgate::edge::reload_tls();
    assert!(
        results.iter().any(|(n, r)| n == "tls" && r.is_ok()),
        "{results:?}"
    );
    // The connection made before the reload still works.
    let (parts, _) = h1_get(main, "/old").await.expect("old connection served");
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let again = tls_connect(US_CLIENT, proxy, HOST, cfg.clone())
        .await
        .unwrap();
    assert!(leaf_names(&again).contains("reloaded.example.test"));

    // A broken file: reload fails, names the file, the old certificate stays.
    std::fs::write(&t.key, "not a key").unwrap();
    let results = locgate::edge::reload_tls();
    let failed = results.iter().find(|(n, _)| n == "tls").unwrap();
    let msg = failed.1.as_ref().unwrap_err();
    assert!(msg.contains("app.key"), "{msg}");
    let still = tls_connect(US_CLIENT, proxy, HOST, cfg).await.unwrap();
    assert!(leaf_names(&still).contains("reloaded.example.test"));
    drop(other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_or_key_names_the_file_and_does_not_start() {
    let fx = Fixture::new();
    let t = tls_setup(&fx, "");
    std::fs::write(
        &t.key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let text = fx.config_text(&listener("tls", "builtin:whoami", &t.extra));
    let config = locgate::config::Config::parse(&text, "test.toml", fx.dir.path()).expect("parses");
    let err = match locgate::serve::start(config).await {
        Ok(_) => panic!("started with a bad key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("app.key") && err.contains("tls"), "{err}");

    // A certificate file without certificates.
    let t = tls_setup(&fx, "");
    std::fs::write(&t.cert, "hello").unwrap();
    let text = fx.config_text(&listener("tls", "builtin:whoami", &t.extra));
    let config = locgate::config::Config::parse(&text, "test.toml", fx.dir.path()).expect("parses");
    let err = locgate::serve::start(config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("app.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_required_identity_comes_from_the_client_certificate() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "required");
    let (running, proxy) = start_tls(&fx, &t, &up.url(), "").await;
    let ca = t.pki.ca_der();

    // Without a certificate: refused (TLS 1.3 reports it on the first read).
    let refused = match tls_connect(US_CLIENT, proxy, HOST, client_config(&ca, None, &[])).await {
        Err(_) => true,
        Ok(s) => h1_get(s, "/nocert").await.is_err(),
    };
    assert!(refused, "served without a client certificate");

    // From another CA: refused.
    let rogue = Pki::new("rogue").leaf(&[], "mallory@example.com");
    let refused = match tls_connect(
        US_CLIENT,
        proxy,
        HOST,
        client_config(&ca, Some(&rogue), &[]),
    )
    .await
    {
        Err(_) => true,
        Ok(s) => h1_get(s, "/rogue").await.is_err(),
    };
    assert!(refused, "served with a certificate from another CA");
    assert!(up.seen().is_empty());

    // A good one, over HTTP/1.1 and HTTP/2.
    let alice = t.pki.leaf(&[], "alice@example.com");
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let s = tls_connect(
            US_CLIENT,
            proxy,
            HOST,
            client_config(&ca, Some(&alice), &[alpn]),
        )
        .await
        .expect("handshake with a good certificate");
        let status = if alpn == b"h2" {
            h2_get(s, "/me").await.0.status
        } else {
            h1_get(s, "/me").await.unwrap().0.status
        };
        assert_eq!(status, UPSTREAM_STATUS);
    }
    assert_eq!(up.seen().len(), 2);
    let events = fx.events(&running).await;
    let ok: Vec<_> = events_from(&events, US_CLIENT)
        .into_iter()
        .filter(|e| user_of(e) == "alice@example.com")
        .collect();
    assert!(!ok.is_empty(), "{events:#?}");
    assert_eq!(ok[0]["locgate"]["identity"]["source"], "client_cert");
    assert_eq!(ok[0]["locgate"]["identity"]["verified"], true);
    assert!(
        ok[0]["tls"]["client"]["subject"]
            .as_str()
            .unwrap()
            .contains("alice@example.com")
    );
    let refusals = events
        .iter()
        .filter(|e| {
            e["locgate"]["error"]
                .as_str()
                .is_some_and(|s| s.contains("TLS handshake"))
        })
        .count();
    assert!(refusals >= 1, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_handshake_is_closed_after_the_timeout() {
    let fx = Fixture::new();
    let t = tls_setup(&fx, "");
    let (_running, proxy) = start_tls(&fx, &t, "builtin:whoami", "").await;
    let mut s = connect_from(US_CLIENT, proxy).await;
    s.write_all(&[22, 3, 1, 0, 200, 1]).await.unwrap(); // a ClientHello that never completes
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = within("close after handshake timeout", s.read(&mut buf)).await;
    assert!(matches!(n, Ok(0) | Err(_)));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Garbage instead of TLS: closed too, the listener keeps serving.
    let answer = raw_exchange(US_CLIENT, proxy, b"GET / HTTP/1.1\r\n\r\n".to_vec()).await;
    assert!(!answer.contains("200"));
    let ok = tls_connect(
        US_CLIENT,
        proxy,
        HOST,
        client_config(&t.pki.ca_der(), None, &[]),
    )
    .await;
    assert!(ok.is_ok());
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol in
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_is_believed_from_trusted_peers_only() {
    use locgate::edge::proxy_proto::{v1_header, v2_header};
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener(
            "lb",
            &up.url(),
            "mode = \"enforce\"\nproxy_protocol = true\ntrusted_proxies = [\"127.0.0.1/32\"]",
        ))
        .await;
    let proxy = running.addr("lb").unwrap();
    let local: SocketAddr = "10.0.0.1:443".parse().unwrap();
    let get = b"GET /pp HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n";

    // v1 from the trusted balancer: the US client is served and the upstream sees it.
    let us: SocketAddr = format!("{US_CLIENT}:40001").parse().unwrap();
    let mut bytes = v1_header(us, local);
    bytes.extend_from_slice(get);
    let answer = raw_exchange(LOCAL, proxy, bytes).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(
        up.only().header("x-forwarded-for").as_deref(),
        Some(US_CLIENT)
    );

    // v2 naming a sanctioned-country client: blocked on that address.
    let kp: SocketAddr = format!("{KP_CLIENT}:40002").parse().unwrap();
    let mut bytes = v2_header(kp, local);
    bytes.extend_from_slice(get);
    let answer = raw_exchange(LOCAL, proxy, bytes).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");

    // Missing header from the trusted peer: closed, nothing served.
    let answer = raw_exchange(LOCAL, proxy, get.to_vec()).await;
    assert_eq!(answer, "");
    // A header from an untrusted peer: closed, even though it names an allowed client.
    let mut bytes = v2_header(us, local);
    bytes.extend_from_slice(get);
    let answer = raw_exchange(AWS_CLIENT, proxy, bytes).await;
    assert_eq!(answer, "");
    assert_eq!(up.seen().len(), 1);

    let events = fx.events(&running).await;
    let errors: Vec<String> = events
        .iter()
        .filter_map(|e| e["locgate"]["error"].as_str().map(str::to_owned))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("does not start with a PROXY header")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("not in trusted_proxies")),
        "{errors:?}"
    );
    let kp_events = events_from(&events, KP_CLIENT);
    assert_eq!(kp_events[0]["locgate"]["peer_ip"], LOCAL);
}

// ---------------------------------------------------------------------------------------------
// TCP pass-through
// ---------------------------------------------------------------------------------------------

/// A TLS echo server with its own certificate for `name`; counts connections.
struct TlsEcho {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn tls_echo(pki: &Pki, name: &str) -> TlsEcho {
    let leaf = pki.leaf(&[name], name);
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.cert_der.clone()],
        PrivateKeyDer::try_from(leaf.key_der.clone()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    let (mut r, mut w) = tokio::io::split(tls);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
        }
    });
    TlsEcho { addr, accepted }
}

async fn echo_once(tls: &mut Tls, msg: &[u8]) -> Vec<u8> {
    tls.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    within("echo", tls.read_exact(&mut got)).await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_pass_through_routes_by_sni_without_terminating_and_blocks_before_connecting() {
    let fx = Fixture::new();
    let pki = Pki::new("upstream CA");
    let a = tls_echo(&pki, "a.example.test").await;
    let b = tls_echo(&pki, "b.example.test").await;
    let running = fx
        .start(&listener(
            "vpn",
            &a.addr.to_string(),
            &format!(
                "kind = \"tcp\"\nmode = \"enforce\"\nsni_routes = {{ \"B.example.test\" = \"{}\" }}",
                b.addr
            ),
        ))
        .await;
    let proxy = running.addr("vpn").unwrap();
    let cfg = client_config(&pki.ca_der(), None, &[]);

    // The upstream's own certificate arrives: the proxy did not terminate TLS.
    let mut s = tls_connect(US_CLIENT, proxy, "a.example.test", cfg.clone())
        .await
        .unwrap();
    assert!(leaf_names(&s).contains("a.example.test"));
    assert_eq!(
        echo_once(&mut s, b"ping through a").await,
        b"ping through a"
    );
    let mut s2 = tls_connect(US_CLIENT, proxy, "b.example.test", cfg.clone())
        .await
        .unwrap();
    assert!(leaf_names(&s2).contains("b.example.test"));
    assert_eq!(echo_once(&mut s2, b"ping b").await, b"ping b");
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1);

    // Blocked: closed, and the upstream never sees a connection.
    let before = a.accepted.load(Ordering::SeqCst);
    assert!(
        tls_connect(KP_CLIENT, proxy, "a.example.test", cfg.clone())
            .await
            .is_err()
    );
    // Garbage instead of a ClientHello: no SNI, default upstream, nothing crashes.
    let answer = raw_exchange(US_CLIENT, proxy, b"\x16\x03\x01\xff\xff garbage".to_vec()).await;
    assert!(answer.is_empty() || !answer.is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.accepted.load(Ordering::SeqCst), before + 1); // the garbage one, not KP

    let events = fx.events(&running).await;
    let kp = events_from(&events, KP_CLIENT);
    assert_eq!(kp.len(), 1);
    assert_eq!(kp[0]["event"]["action"], "block");
    assert_eq!(kp[0]["network"]["transport"], "tcp");
    assert!(kp[0].get("http").is_none());
    let us = events_from(&events, US_CLIENT);
    assert!(
        us.iter()
            .any(|e| e["tls"]["client"]["server_name"] == "a.example.test")
    );
    drop((s, s2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_reads_a_proxy_v2_header_with_the_real_client() {
    let fx = Fixture::new();
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = upstream.accept().await.unwrap();
        let src = locgate::edge::proxy_proto::read_header(&mut s, Duration::from_secs(5)).await;
        let mut rest = [0u8; 5];
        s.read_exact(&mut rest).await.unwrap();
        s.write_all(b"bye").await.unwrap();
        (src, rest)
    });
    let running = fx
        .start(&listener(
            "rdp",
            &up_addr.to_string(),
            "kind = \"tcp\"\nsend_proxy_protocol = \"v2\"",
        ))
        .await;
    let proxy = running.addr("rdp").unwrap();
    let mut c = connect_from(US_CLIENT, proxy).await;
    let client_port = c.local_addr().unwrap().port();
    c.write_all(b"hello").await.unwrap();
    let mut bye = [0u8; 3];
    within("reply", c.read_exact(&mut bye)).await.unwrap();
    let (src, rest) = within("upstream", server).await.unwrap();
    let src = src.expect("valid PROXY v2").expect("an address");
    assert_eq!(src, format!("{US_CLIENT}:{client_port}").parse().unwrap());
    assert_eq!(&rest, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_moves_megabytes_both_ways_and_passes_half_closes_on() {
    // An upstream that echoes everything until the client's half-close, then adds a trailer
    // and closes: both directions and both end-of-stream signals cross the relay.
    let fx = Fixture::new();
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = upstream.accept().await.unwrap();
        let (mut r, mut w) = s.into_split();
        let n = tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.write_all(format!("END {n}").as_bytes()).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let running = fx
        .start(&listener("raw", &up_addr.to_string(), "kind = \"tcp\""))
        .await;
    let proxy = running.addr("raw").unwrap();
    let c = connect_from(US_CLIENT, proxy).await;
    let (mut r, mut w) = c.into_split();
    let data = pattern(3 * 1024 * 1024 + 17, 7);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    within("echo and close", r.read_to_end(&mut got))
        .await
        .unwrap();
    writer.await.unwrap();
    let trailer = format!("END {}", data.len());
    assert_eq!(got.len(), data.len() + trailer.len());
    assert!(got[..data.len()] == data[..], "echoed bytes differ");
    assert_eq!(&got[data.len()..], trailer.as_bytes());
}

fn is_close(e: &Json) -> bool {
    e["event"]["type"] == serde_json::json!(["connection", "end"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_close_event_has_its_exact_bytes_duration_and_end_and_a_block_has_none() {
    const UP: usize = 1_000_003; // client -> upstream
    const DOWN: usize = 2_500_001; // upstream -> client
    let fx = Fixture::new();
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        // First connection: read UP bytes, answer DOWN bytes, wait for the client's end, close.
        let (s, _) = upstream.accept().await.unwrap();
        let (mut r, mut w) = s.into_split();
        let mut got = vec![0u8; UP];
        r.read_exact(&mut got).await.unwrap();
        w.write_all(&pattern(DOWN, 3)).await.unwrap();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        drop(w);
        // Second: the upstream speaks and closes first.
        let (mut s, _) = upstream.accept().await.unwrap();
        s.write_all(b"bye now").await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    });
    let running = fx
        .start(&listener(
            "raw",
            &up_addr.to_string(),
            "kind = \"tcp\"\nmode = \"enforce\"",
        ))
        .await;
    let proxy = running.addr("raw").unwrap();

    let c = connect_from(US_CLIENT, proxy).await;
    let (mut r, mut w) = c.into_split();
    w.write_all(&pattern(UP, 5)).await.unwrap();
    let mut down = vec![0u8; DOWN];
    within("download", r.read_exact(&mut down)).await.unwrap();
    assert!(down == pattern(DOWN, 3));
    tokio::time::sleep(Duration::from_millis(150)).await; // a measurable duration
    w.shutdown().await.unwrap();
    let mut tail = Vec::new();
    within("upstream end", r.read_to_end(&mut tail))
        .await
        .unwrap();
    assert!(tail.is_empty());

    let events = fx.events_until(&running, is_close).await;
    let us = events_from(&events, US_CLIENT);
    assert_eq!(us.len(), 2, "connect and close: {us:#?}");
    let (open, close) = (us[0], us[1]);
    assert_eq!(
        open["event"]["type"],
        serde_json::json!(["connection", "start", "allowed"])
    );
    assert!(is_close(close), "{close:#}");
    assert_eq!(close["event"]["category"], serde_json::json!(["network"]));
    assert_eq!(close["event"]["action"], "allow");
    assert_ne!(close["event"]["id"], open["event"]["id"]);
    assert_eq!(close["locgate"]["tunnel"]["start_id"], open["event"]["id"]);
    assert_eq!(close["locgate"]["tunnel"]["end"], "client_closed");
    assert_eq!(close["source"]["bytes"], UP as u64);
    assert_eq!(close["destination"]["bytes"], DOWN as u64);
    // ECS: the host in `destination.address` (and `ip`), the port on its own.
    assert_eq!(close["destination"]["address"], up_addr.ip().to_string());
    assert_eq!(close["destination"]["ip"], up_addr.ip().to_string());
    assert_eq!(close["destination"]["port"], up_addr.port());
    assert_eq!(close["network"]["bytes"], (UP + DOWN) as u64);
    assert_eq!(close["network"]["transport"], "tcp");
    assert_eq!(close["source"]["port"], open["source"]["port"]);
    assert_eq!(close["source"]["geo"], open["source"]["geo"]);
    let ns = close["event"]["duration"].as_u64().expect("duration");
    assert!(
        (150_000_000..20_000_000_000).contains(&ns),
        "duration {ns} ns"
    );

    // The upstream ends first; this connect allow is throttled, the close event is not.
    let mut c = connect_from(US_CLIENT, proxy).await;
    let mut got = Vec::new();
    within("bye", c.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"bye now");
    drop(c);
    let events = fx
        .events_until(&running, |e| {
            is_close(e) && e["locgate"]["tunnel"]["end"] == "upstream_closed"
        })
        .await;
    let us = events_from(&events, US_CLIENT);
    assert_eq!(
        us.len(),
        3,
        "the second connect allow is throttled: {us:#?}"
    );
    let second = us[2];
    assert!(second["locgate"]["tunnel"].get("start_id").is_none());
    assert_eq!(second["source"]["bytes"], 0);
    assert_eq!(second["destination"]["bytes"], 7);

    // Blocked: one event, no close event.
    let mut kp = connect_from(KP_CLIENT, proxy).await;
    let mut nothing = Vec::new();
    let _ = within("closed", kp.read_to_end(&mut nothing)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = fx.events(&running).await;
    let kp = events_from(&events, KP_CLIENT);
    assert_eq!(kp.len(), 1, "{kp:#?}");
    assert_eq!(kp[0]["event"]["action"], "block");
    assert!(!is_close(kp[0]));

    // Metrics: connections by transport and action, bytes by direction; no request counted.
    let text = locgate::audit::metrics::render(
        &running.shared.auditor.stats,
        &running.shared.state.load().intel,
        0,
    );
    let m = |n: &str| -> u64 { metric(&text, n) };
    assert_eq!(
        m("locgate_connections_total{listener=\"raw\",transport=\"tcp\",action=\"allow\"}"),
        2
    );
    assert_eq!(
        m("locgate_connections_total{listener=\"raw\",transport=\"tcp\",action=\"block\"}"),
        1
    );
    assert_eq!(
        m("locgate_connections_total{listener=\"raw\",transport=\"udp\",action=\"allow\"}"),
        0
    );
    assert_eq!(
        m("locgate_requests_total{listener=\"raw\",action=\"allow\"}"),
        0
    );
    assert_eq!(
        m("locgate_requests_total{listener=\"raw\",action=\"block\"}"),
        0
    );
    assert_eq!(
        m("locgate_tunnel_bytes_total{direction=\"client_to_upstream\"}"),
        UP as u64
    );
    assert_eq!(
        m("locgate_tunnel_bytes_total{direction=\"upstream_to_client\"}"),
        DOWN as u64 + 7
    );
    // A close event is not a decision: reasons are not counted twice.
    assert_eq!(m("locgate_events_total"), 4);
}

// ---------------------------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_flows_echo_and_blocked_sources_are_dropped_and_recorded_once() {
    let fx = Fixture::new();
    let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    let seen_by_echo = Arc::new(std::sync::Mutex::new(Vec::<SocketAddr>::new()));
    let seen = seen_by_echo.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf).await {
            seen.lock().unwrap().push(from);
            let _ = echo.send_to(&buf[..n], from).await;
        }
    });
    let running = fx
        .start(&listener(
            "wg",
            &echo_addr.to_string(),
            "kind = \"udp\"\nmode = \"enforce\"\nidle_timeout = \"2s\"",
        ))
        .await;
    let proxy = running.addr("wg").unwrap();

    let us = UdpSocket::bind(format!("{US_CLIENT}:0")).await.unwrap();
    for i in 0..3u8 {
        us.send_to(&[i; 100], proxy).await.unwrap();
        let mut buf = [0u8; 200];
        let (n, from) = within("udp echo", us.recv_from(&mut buf)).await.unwrap();
        assert_eq!(from, proxy);
        assert_eq!(&buf[..n], &[i; 100]);
    }
    // One flow: one upstream socket for all three datagrams.
    let sources = seen_by_echo.lock().unwrap().clone();
    assert_eq!(sources.len(), 3);
    assert!(sources.iter().all(|s| *s == sources[0]));

    let kp = UdpSocket::bind(format!("{KP_CLIENT}:0")).await.unwrap();
    for _ in 0..5 {
        kp.send_to(b"let me in", proxy).await.unwrap();
    }
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_millis(300), kp.recv_from(&mut buf)).await;
    assert!(got.is_err(), "a blocked source got an answer");
    assert_eq!(seen_by_echo.lock().unwrap().len(), 3);

    let events = fx.events(&running).await;
    let kp_events = events_from(&events, KP_CLIENT);
    assert_eq!(kp_events.len(), 1, "recorded once, not per packet");
    assert_eq!(kp_events[0]["network"]["transport"], "udp");
    assert_eq!(
        events_from(&events, US_CLIENT)[0]["network"]["transport"],
        "udp"
    );

    // The flow expires: its close event has the bytes each way; the blocked source has none.
    let events = fx.events_until(&running, is_close).await;
    let us = events_from(&events, US_CLIENT);
    assert_eq!(us.len(), 2, "{us:#?}");
    let close = us[1];
    assert_eq!(close["network"]["transport"], "udp");
    assert_eq!(close["locgate"]["tunnel"]["end"], "idle_timeout");
    assert_eq!(close["locgate"]["tunnel"]["start_id"], us[0]["event"]["id"]);
    assert_eq!(close["source"]["bytes"], 300);
    assert_eq!(close["destination"]["bytes"], 300);
    assert!(close["event"]["duration"].as_u64().unwrap() >= 2_000_000_000);
    assert_eq!(events_from(&events, KP_CLIENT).len(), 1);
    let text = locgate::audit::metrics::render(
        &running.shared.auditor.stats,
        &running.shared.state.load().intel,
        0,
    );
    let m = |n: &str| -> u64 { metric(&text, n) };
    assert_eq!(
        m("locgate_connections_total{listener=\"wg\",transport=\"udp\",action=\"allow\"}"),
        1
    );
    assert_eq!(
        m("locgate_connections_total{listener=\"wg\",transport=\"udp\",action=\"block\"}"),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Limits, slow clients, draining
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_slow_clients_do_not_starve_a_normal_one() {
    let App {
        fx: _fx,
        up: _up,
        running: _running,
        proxy,
    } = App::start("header_read_timeout = \"20s\"").await;
    let mut slow = Vec::new();
    for i in 0..200u32 {
        let src = format!("127.1.{}.{}", 1 + i / 200, 10 + i % 200);
        let mut s = connect_from(&src, proxy).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\nX-Dribble: ")
            .await
            .unwrap();
        slow.push(s);
    }
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let (parts, _) = get(US_CLIENT, proxy, "/", &[]).await;
        assert_eq!(parts.status, UPSTREAM_STATUS);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "5 requests took {took:?}");
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_connection_cap_is_closed_and_others_are_not() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener(
            "app",
            &up.url(),
            "max_connections_per_client = 2",
        ))
        .await;
    let proxy = running.addr("app").unwrap();
    let _a = connect_from(US_CLIENT, proxy).await;
    let _b = connect_from(US_CLIENT, proxy).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut third = connect_from(US_CLIENT, proxy).await;
    let mut buf = [0u8; 16];
    let n = within("cap close", third.read(&mut buf)).await;
    assert!(matches!(n, Ok(0) | Err(_)));
    let (parts, _) = get(AWS_CLIENT, proxy, "/", &[]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let events = fx.events(&running).await;
    assert!(events.iter().any(|e| {
        e["locgate"]["error"]
            .as_str()
            .is_some_and(|s| s.contains("over its cap"))
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_a_slow_download_and_an_open_tunnel() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let listeners = format!(
        "{}{}",
        listener("app", &up.url(), ""),
        listener("tunnel", &echo_addr.to_string(), "kind = \"tcp\"")
    );
    let running = fx.start(&listeners).await;
    let app = running.addr("app").unwrap();
    let tunnel = running.addr("tunnel").unwrap();

    // A 10 MB download read slowly, and an open tunnel.
    let resp = send(
        US_CLIENT,
        app,
        request("GET", "/big-response")
            .body(Empty::<Bytes>::new())
            .unwrap(),
    )
    .await;
    let mut t = connect_from(US_CLIENT, tunnel).await;
    t.write_all(b"before").await.unwrap();
    let mut buf = [0u8; 6];
    within("tunnel echo", t.read_exact(&mut buf)).await.unwrap();

    let stopping = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown did not wait for the download"
    );
    let mut body = resp.into_body();
    let mut total = 0;
    while let Some(frame) = within("download", body.frame()).await {
        if let Ok(data) = frame.unwrap().into_data() {
            total += data.len();
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    assert_eq!(total, BIG);
    // The tunnel still works during the drain, then its end lets shutdown finish.
    t.write_all(b"during").await.unwrap();
    within("tunnel echo", t.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"during");
    drop(t);
    within("shutdown finishes", stopping).await.unwrap();
    assert!(tokio::net::TcpStream::connect(app).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reads_the_certificates_and_names_a_bad_file() {
    let fx = Fixture::new();
    let t = tls_setup(&fx, "");
    let cfg = fx.dir.path().join("edge.toml");
    std::fs::write(
        &cfg,
        fx.config_text(&listener("tls", "builtin:whoami", &t.extra)),
    )
    .unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_locgate"))
            .args(["validate", "-c"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let ok = run();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::write(&t.key, "garbage").unwrap();
    let bad = run();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("app.key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_the_keepalive_timeout() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "");
    let (_running, proxy) = start_tls(&fx, &t, &up.url(), "keepalive_timeout = \"1s\"").await;
    let s = tls_connect(
        US_CLIENT,
        proxy,
        HOST,
        client_config(&t.pki.ca_der(), None, &[b"h2"]),
    )
    .await
    .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    let driver = tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("https://{HOST}/"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = within("h2", sender.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), UPSTREAM_STATUS);
    // The connection driver ends once the server has sent GOAWAY and closed.
    within("idle close", driver).await.unwrap().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_active_udp_flow_finish_then_stops() {
    let fx = Fixture::new();
    let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf).await {
            let _ = echo.send_to(&buf[..n], from).await;
        }
    });
    let running = fx
        .start(&listener("wg", &echo_addr.to_string(), "kind = \"udp\""))
        .await;
    let proxy = running.addr("wg").unwrap();
    let c = UdpSocket::bind(format!("{US_CLIENT}:0")).await.unwrap();
    let mut buf = [0u8; 64];
    c.send_to(b"one", proxy).await.unwrap();
    within("echo", c.recv_from(&mut buf)).await.unwrap();

    let started = std::time::Instant::now();
    let stopping = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The existing flow is still relayed during the drain.
    c.send_to(b"two", proxy).await.unwrap();
    let (n, _) = within("echo while draining", c.recv_from(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf[..n], b"two");
    // A new source is not taken on while draining.
    let late = UdpSocket::bind(format!("{AWS_CLIENT}:0")).await.unwrap();
    late.send_to(b"new", proxy).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), late.recv_from(&mut buf))
            .await
            .is_err()
    );
    within("shutdown once the flow is quiet", stopping)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_optional_serves_without_a_certificate_and_names_the_holder_with_one() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "optional");
    let (running, proxy) = start_tls(&fx, &t, &up.url(), "").await;
    let ca = t.pki.ca_der();
    let s = tls_connect(US_CLIENT, proxy, HOST, client_config(&ca, None, &[]))
        .await
        .unwrap();
    assert_eq!(h1_get(s, "/anon").await.unwrap().0.status, UPSTREAM_STATUS);
    let bob = t.pki.leaf(&[], "bob@example.com");
    let s = tls_connect(AWS_CLIENT, proxy, HOST, client_config(&ca, Some(&bob), &[]))
        .await
        .unwrap();
    assert_eq!(h1_get(s, "/bob").await.unwrap().0.status, UPSTREAM_STATUS);
    let events = fx.events(&running).await;
    let us = events_from(&events, US_CLIENT);
    assert!(us.iter().all(|e| e.get("user").is_none()));
    let aws = events_from(&events, AWS_CLIENT);
    assert_eq!(user_of(aws[0]), "bob@example.com");
}

// ---------------------------------------------------------------------------------------------
// The exchange spine: one event per exchange, the same decision whatever the protocol
// ---------------------------------------------------------------------------------------------

/// An event with what differs between two runs of the same request taken out (ids, times,
/// ports, the client's own address), so events of the two protocols can be compared whole.
fn comparable(e: &Json) -> Json {
    let mut e = e.clone();
    let ip = e["source"]["ip"].as_str().unwrap_or_default().to_owned();
    let o = e.as_object_mut().expect("event object");
    o.remove("@timestamp");
    for (section, field) in [
        ("event", "id"),
        ("event", "duration"),
        ("source", "ip"),
        ("source", "port"),
        ("locgate", "suppressed_allows"),
    ] {
        if let Some(s) = o.get_mut(section).and_then(Json::as_object_mut) {
            s.remove(field);
        }
    }
    if let Some(Json::String(m)) = o.get_mut("message") {
        *m = m.replace(&ip, "<client>");
    }
    e
}

/// The same requests over HTTP/1.1 and HTTP/2 (one TLS listener, ALPN picks the engine) give
/// the same decision, the same status and the same event, field for field: allowed, blocked,
/// named by a typed-in identity, refused by the upstream's absence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_http2_give_the_same_decision_status_and_event() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "");
    let dir = fx.write_standard_directory();
    let extra = format!(
        "mode = \"enforce\"\nidentity = [{{ basic = true }}]\n{}",
        t.extra
    );
    let down = closed_port();
    let listeners = format!(
        "{}{}",
        listener("tls", &up.url(), &extra),
        listener("down", &format!("http://{down}"), &extra)
    );
    let running = fx
        .start_with(
            &listeners,
            &employees_section(&dir.file_name().unwrap().to_string_lossy()),
        )
        .await;
    let ca = t.pki.ca_der();
    let bob = basic_auth("bob", "pw");
    // (case, listener, client address for h1 / for h2 (same country), target, headers)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
    );
    let cases: [Case; 4] = [
        (
            "allowed",
            "tls",
            "127.1.0.150",
            "127.1.0.250",
            "/a?q=1",
            vec![],
        ),
        ("blocked", "tls", "127.2.0.150", "127.2.0.250", "/b", vec![]),
        (
            "named",
            "tls",
            "127.6.0.150",
            "127.6.0.250",
            "/c",
            vec![("authorization", bob.as_str())],
        ),
        (
            "no upstream",
            "down",
            "127.1.0.151",
            "127.1.0.251",
            "/d",
            vec![],
        ),
    ];
    let mut statuses = Vec::new();
    for (case, name, h1_src, h2_src, target, headers) in &cases {
        let proxy = running.addr(name).expect("listener");
        let s = tls_connect(
            h1_src,
            proxy,
            HOST,
            client_config(&ca, None, &[b"http/1.1"]),
        )
        .await
        .expect("handshake");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        let mut req = request("GET", target);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let h1 = within(
            "h1",
            sender.send_request(req.body(Empty::<Bytes>::new()).unwrap()),
        )
        .await
        .expect("h1 response");
        let s = tls_connect(h2_src, proxy, HOST, client_config(&ca, None, &[b"h2"]))
            .await
            .expect("handshake");
        let (h2, _) = h2_request(s, "GET", target, headers, Empty::new().boxed()).await;
        assert_eq!(h1.status(), h2.status, "{case}: status");
        statuses.push(h2.status.as_u16());
    }
    assert_eq!(
        statuses,
        [201, 403, 201, 502],
        "the cases mean what they say"
    );

    let events = fx.events(&running).await;
    for (case, _, h1_src, h2_src, _, _) in &cases {
        let a = comparable(one_event_from(&events, h1_src));
        let b = comparable(one_event_from(&events, h2_src));
        assert_eq!(a, b, "{case}: the events differ\nh1: {a:#}\nh2: {b:#}");
    }
    let named = one_event_from(&events, "127.6.0.250");
    assert_eq!(user_of(named), "e2001", "{named:#}");
    assert_eq!(named["event"]["action"], "flag", "{named:#}");
    running.shutdown().await;
}

/// A client that starts an upload and goes away leaves exactly one event saying so, over
/// HTTP/1.1 (with and without `Expect: 100-continue`) and over HTTP/2 (a stream reset midway);
/// the upstream never sees a complete request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_writes_exactly_one_event() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "");
    let listeners = format!(
        "{}{}",
        listener("plain", &up.url(), "mode = \"enforce\""),
        listener(
            "tls",
            &up.url(),
            &format!("mode = \"enforce\"\n{}", t.extra)
        )
    );
    let running = fx.start(&listeners).await;
    let plain = running.addr("plain").expect("plain listener");

    for (src, expect) in [("127.1.0.160", false), ("127.1.0.161", true)] {
        let mut s = connect_from(src, plain).await;
        let continue_line = if expect {
            "Expect: 100-continue\r\n"
        } else {
            ""
        };
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000000\r\n{continue_line}\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&pattern(10_000, 7)).await.unwrap();
        if expect {
            let mut interim = [0u8; 25];
            within("100 Continue", s.read_exact(&mut interim))
                .await
                .unwrap();
            assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        drop(s);
    }

    // HTTP/2: the body stream fails after its first chunk, so the client resets the stream.
    let ca = t.pki.ca_der();
    let tls_addr = running.addr("tls").expect("tls listener");
    let s = tls_connect(
        "127.1.0.162",
        tls_addr,
        HOST,
        client_config(&ca, None, &[b"h2"]),
    )
    .await
    .expect("handshake");
    let half = sent_then_abandoned(Bytes::from(pattern(10_000, 8)));
    let sent = h2_send(
        s,
        "POST",
        "/upload",
        &[("content-length", "1000000")],
        http_body_util::StreamBody::new(half),
    )
    .await;
    assert!(sent.is_err(), "the client's own request failed: {sent:?}");

    let mut events = Vec::new();
    for _ in 0..50 {
        events = fx.events(&running).await;
        if ["127.1.0.160", "127.1.0.161", "127.1.0.162"]
            .iter()
            .all(|ip| !events_from(&events, ip).is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for src in ["127.1.0.160", "127.1.0.161", "127.1.0.162"] {
        let e = one_event_from(&events, src);
        assert_eq!(e["http"]["response"]["status_code"], 499, "{e:#}");
        assert_eq!(e["url"]["path"], "/upload", "{e:#}");
        let error = e["locgate"]["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("client closed or stalled") || error.starts_with("client went away"),
            "{e:#}"
        );
    }
    assert!(
        up.seen().iter().all(|s| s.body.len() < 1_000_000),
        "no complete upload reached the upstream"
    );
    running.shutdown().await;
}

/// A client that resets an HTTP/2 stream while the upstream is still working on it: the
/// exchange is recorded at once as a client that went away, and locgate stops waiting on the
/// upstream (a client resetting streams cannot keep upstream requests running for nobody).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_http2_stream_is_recorded_at_once_and_its_upstream_request_abandoned() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "");
    let (running, proxy) = start_tls(&fx, &t, &up.url(), "mode = \"enforce\"").await;
    let s = tls_connect(
        "127.1.0.180",
        proxy,
        HOST,
        client_config(&t.pki.ca_der(), None, &[b"h2"]),
    )
    .await
    .expect("handshake");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("https://{HOST}/slow"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    // The upstream never answers /slow; the client gives up (hyper resets the stream).
    let waited = tokio::time::timeout(Duration::from_millis(300), sender.send_request(req)).await;
    assert!(waited.is_err(), "the upstream answered /slow");
    let started = std::time::Instant::now();
    let mut events = Vec::new();
    while started.elapsed() < Duration::from_secs(5) {
        events = fx.events(&running).await;
        if !events_from(&events, "127.1.0.180").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = one_event_from(&events, "127.1.0.180");
    assert_eq!(e["http"]["response"]["status_code"], 499, "{e:#}");
    assert_eq!(
        e["locgate"]["error"],
        "client went away: it reset the stream before the response"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Logins over HTTP/2 (issue 12): the same identity checks as HTTP/1.1 (tests/login.rs)
// ---------------------------------------------------------------------------------------------

/// Attacks over HTTP/2: a login posted to another spelling of its path (`/LOGIN/`) from the
/// wrong country, a login as alice carrying bob's session cookie, and a login locgate cannot
/// read. On the old code the first and last were anonymous allows and the second was decided as
/// bob; HTTP/2 runs the same spine, so each now gets the same reason as on HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_logins_get_the_same_identity_checks() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let t = tls_setup(&fx, "");
    let running = fx
        .start_with(
            &listener(
                "tls",
                &up.url(),
                &format!(
                    "mode = \"enforce\"\nidentity = [{{ basic = true }}, {{ form = {{ \
                     path = \"/login\", field = \"username\" }} }}]\n\
                     session = {{ cookie = \"SESSION\", ttl = \"1h\" }}\n{}",
                    t.extra
                ),
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let proxy = running.addr("tls").unwrap();
    let ca = t.pki.ca_der();
    let h2 = |src: &'static str| {
        let cfg = client_config(&ca, None, &[b"h2"]);
        async move { tls_connect(src, proxy, HOST, cfg).await.expect("handshake") }
    };
    let full = |b: &[u8]| Full::new(Bytes::copy_from_slice(b)).boxed();
    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

    // bob signs in with Basic from home; the portal issues his session.
    let bob = "SESSION=b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
    let set = format!("{bob}; Path=/");
    let auth = basic_auth("bob", "pw");
    let headers = [
        ("authorization", auth.as_str()),
        (SET_COOKIE_ON_REQUEST, &set),
    ];
    let (parts, _) = h2_request(h2("127.1.8.1").await, "GET", "/sso", &headers, full(b"")).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let logins = [
        (
            "127.6.8.2",
            "/LOGIN/",
            vec![FORM],
            &b"username=alice&password=pw"[..],
        ),
        (
            "127.1.8.3",
            "/login",
            vec![FORM, ("cookie", bob)],
            b"username=alice",
        ),
        ("127.1.8.4", "/login", vec![FORM], b"username=%zz"),
    ];
    for (src, target, headers, body) in logins {
        let (parts, _) = h2_request(h2(src).await, "POST", target, &headers, full(body)).await;
        assert_eq!(parts.version, http::Version::HTTP_2);
        assert_eq!(parts.status, UPSTREAM_STATUS, "{src}");
    }

    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.6.8.2");
    assert_eq!(user_of(e), "e1042", "{e:#}");
    assert_eq!(e["event"]["action"], "flag", "{e:#}");
    assert!(
        reasons(e).contains(&"country_mismatch".to_string()),
        "{e:#}"
    );
    let e = one_event_from(&events, "127.1.8.3");
    assert_eq!(reasons(e), ["identity_conflict"], "{e:#}");
    assert_eq!(user_of(e), "e1042", "the new login's name: {e:#}");
    assert_eq!(e["locgate"]["identity"]["source"], "form", "{e:#}");
    let e = one_event_from(&events, "127.1.8.4");
    assert_eq!(reasons(e), ["identity_unreadable"], "{e:#}");
    assert_eq!(e["event"]["action"], "flag", "{e:#}");
    running.shutdown().await;
}
