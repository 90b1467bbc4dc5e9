//! Trust per purpose (issue 12 "Cannot be fooled", items 1, 4 and 6c), end to end on loopback:
//! a load balancer (`trusted_proxies`) is believed for the client's address and never for its
//! identity; an auth proxy (`identity_proxies`) for the identity header; a PROXY-protocol
//! listener believes no forwarding header at all. Protected header names are compared with `_`
//! read as `-`, over HTTP/1.1 and HTTP/2.
//!
//! Roles on loopback: 127.0.0.1 is the balancer, 127.0.0.2 the auth proxy (see `common` for
//! the address plan of the test geo database).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value as Json;

/// The balancer: trusted for forwarding headers only.
const BALANCER: &str = LOCAL;
/// The auth proxy that sets `X-Remote-User`: trusted for forwarding and identity headers.
const AUTH_PROXY: &str = "127.0.0.2";

/// The listener settings of the SSO examples: the balancer and the auth proxy both forward,
/// only the auth proxy names people.
fn sso_settings(extra: &str) -> String {
    format!(
        "mode = \"enforce\"\nannotate = true\n\
         trusted_proxies = [\"{BALANCER}/32\", \"{AUTH_PROXY}/32\"]\n\
         identity_proxies = [\"{AUTH_PROXY}/32\"]\n\
         identity = [{{ header = \"X-Remote-User\" }}]\n{extra}"
    )
}

const NOT_FROM_IDENTITY_PROXY: &str =
    "header X-Remote-User not from an identity proxy (identity_proxies); ignored";

/// Attack (issue 12 item 1): through the trusted load balancer, a client from a sanctioned or
/// denied country names an exempt employee (`X-Remote-User: carol`). The balancer passes the
/// header through, so it was believed as verified before: a 200 for a client that gets 403
/// without the header. Now the header is believed only from the auth proxy in
/// `identity_proxies`, and never reaches the upstream from anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_header_through_the_balancer_is_not_believed_and_not_forwarded() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener("sso", &up.url(), &sso_settings("")),
            &format!(
                "[policy]\ndeny_countries = [\"DE\"]\n\n{}",
                employees_section("employees.toml")
            ),
        )
        .await;
    let sso = running.addr("sso").unwrap();
    let carol = |xff: &'static str| [("x-forwarded-for", xff), ("x-remote-user", "carol")];

    // Through the balancer: the client's own claim, ignored.
    let (kp, _) = get(BALANCER, sso, "/kp", &carol("127.2.0.21")).await;
    assert_eq!(kp.status, StatusCode::FORBIDDEN);
    let (de, _) = get(BALANCER, sso, "/de", &carol("127.6.0.21")).await;
    assert_eq!(
        de.status,
        StatusCode::FORBIDDEN,
        "an exempt name from the balancer must not open a denied country"
    );
    let (us, _) = get(BALANCER, sso, "/us", &carol("127.1.0.21")).await;
    assert_eq!(us.status, UPSTREAM_STATUS);
    let seen = up.only();
    assert_eq!(
        seen.header("x-remote-user"),
        None,
        "the upstream may believe X-Remote-User as much as locgate would have"
    );

    // The same header from the auth proxy: believed (exempt carol opens the denied country).
    let (de, _) = get(AUTH_PROXY, sso, "/de-auth", &carol("127.6.0.22")).await;
    assert_eq!(de.status, UPSTREAM_STATUS);
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("x-remote-user").as_deref(), Some("carol"));

    let events = fx.events(&running).await;
    for ip in ["127.2.0.21", "127.6.0.21", "127.1.0.21"] {
        let e = one_event_from(&events, ip);
        assert!(e["user"].is_null(), "no user from the balancer: {e:#}");
        assert_eq!(identity(e)["verified"], false, "{e:#}");
        assert!(identity(e)["source"].is_null(), "{e:#}");
        assert_eq!(problems(e), [NOT_FROM_IDENTITY_PROXY], "{e:#}");
        assert_eq!(e["locgate"]["client_addr_source"], "x-forwarded-for");
    }
    let e = one_event_from(&events, "127.6.0.22");
    assert_eq!(e["user"]["id"], "e3007", "{e:#}");
    assert_eq!(identity(e)["source"], "header", "{e:#}");
    assert_eq!(identity(e)["verified"], true, "{e:#}");
    assert_eq!(e["locgate"]["peer_ip"], AUTH_PROXY);
    running.shutdown().await;
}

/// The request headers of the underscore attack (issue 12 item 4): every protected name in a
/// spelling a WSGI/CGI upstream maps onto the real one (`X_Remote_User` -> `HTTP_X_REMOTE_USER`),
/// plus a harmless underscore name that must pass.
const UNDERSCORED: [(&str, &str); 7] = [
    ("X_Remote_User", "carol"),
    ("X_Locgate_Verdict", "allow"),
    ("x_locgate_country", "US"),
    ("X-Locgate-Reasons", ""),
    ("x_forwarded_for", "127.1.0.99"),
    ("X_Real_IP", "127.1.0.99"),
    ("X_App_Flag", "kept"),
];

/// What the upstream must have received for [`UNDERSCORED`]: no protected name in any
/// spelling, locgate's own verdict exactly once, the harmless name untouched.
#[track_caller]
fn assert_only_locgate_set_protected_names(seen: &Seen, verdict: &str) {
    let names: Vec<&str> = seen.headers.keys().map(|k| k.as_str()).collect();
    let underscored: Vec<&str> = names.iter().copied().filter(|n| n.contains('_')).collect();
    assert_eq!(
        underscored,
        ["x_app_flag"],
        "only the harmless name: {names:?}"
    );
    assert!(!names.contains(&"x-remote-user"), "{names:?}");
    let mut annotations: Vec<&str> = names
        .iter()
        .copied()
        .filter(|k| k.replace('_', "-").starts_with("x-locgate-"))
        .collect();
    annotations.sort_unstable();
    assert_eq!(
        annotations,
        ["x-locgate-country", "x-locgate-verdict"],
        "only locgate's annotations: {names:?}"
    );
    assert_eq!(seen.header("x-locgate-verdict").as_deref(), Some(verdict));
    assert_eq!(seen.header("x_app_flag").as_deref(), Some("kept"));
}

/// Attack (issue 12 item 4) over HTTP/1.1: underscore spellings of the identity header, the
/// annotations and the forwarding headers reached the upstream, from anyone. Now removed from
/// everyone, the auth proxy included (it sets `X-Remote-User`, never `X_Remote_User`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underscore_spellings_of_protected_headers_never_reach_the_upstream_over_http1() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener("sso", &up.url(), &sso_settings("")),
            &employees_section("employees.toml"),
        )
        .await;
    let sso = running.addr("sso").unwrap();
    let head = |extra: &str| {
        let mut h = format!("GET /u HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n{extra}");
        for (k, v) in UNDERSCORED {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    };

    // A direct client (not a proxy at all), US.
    let answer = raw_exchange(US_CLIENT, sso, head("")).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    // The auth proxy naming alice for a US client.
    let answer = raw_exchange(
        AUTH_PROXY,
        sso,
        head("X-Forwarded-For: 127.1.0.41\r\nX-Remote-User: alice\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_only_locgate_set_protected_names(&seen[0], "allow");
    assert_eq!(
        seen[0].header("x-forwarded-for").as_deref(),
        Some(US_CLIENT)
    );
    // The auth proxy's own X-Remote-User passes; its X_Remote_User does not (checked above).
    let mut from_proxy = seen[1].clone();
    assert_eq!(
        from_proxy
            .headers
            .remove("x-remote-user")
            .as_ref()
            .map(|v| v.as_bytes()),
        Some(&b"alice"[..])
    );
    assert_only_locgate_set_protected_names(&from_proxy, "allow");
    assert_eq!(
        seen[1].header("x-forwarded-for").as_deref(),
        Some("127.1.0.41, 127.0.0.2")
    );

    let events = fx.events(&running).await;
    // The client's x_forwarded_for named nobody: the direct client is its socket.
    let e = one_event_from(&events, US_CLIENT);
    assert_eq!(e["locgate"]["client_addr_source"], "peer");
    let e = one_event_from(&events, "127.1.0.41");
    assert_eq!(e["user"]["id"], "e1042", "{e:#}");
    assert_eq!(identity(e)["verified"], true, "{e:#}");
    running.shutdown().await;
}

/// A self-signed certificate for [`HOST`] and a client config that trusts it and offers `h2`.
fn h2_tls(fx: &Fixture) -> (String, Arc<rustls::ClientConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec![HOST.to_string()]).unwrap();
    let cert = fx.write("trust.pem", &ck.cert.pem());
    let key = fx.write("trust.key", &ck.signing_key.serialize_pem());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let settings = format!(
        "tls = {{ cert = {}, key = {} }}",
        toml_str(&cert),
        toml_str(&key)
    );
    (settings, Arc::new(client))
}

/// One HTTP/2 GET from `src` over TLS with `headers`; the status.
async fn h2_get(
    src: &str,
    dst: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    headers: &[(&str, &str)],
) -> StatusCode {
    let tcp = connect_from(src, dst).await;
    let name = rustls::pki_types::ServerName::try_from(HOST.to_string()).unwrap();
    let stream = within(
        "tls handshake",
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder().uri(format!("https://{HOST}/h2"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = within(
        "h2 response",
        sender.send_request(req.body(Empty::<Bytes>::new()).unwrap()),
    )
    .await
    .expect("h2 response");
    let status = resp.status();
    let _ = within("body", resp.into_body().collect()).await;
    status
}

/// Attack (issue 12 item 4) over HTTP/2: the same underscore spellings, sent by an h2 client
/// (ALPN `h2` on a TLS listener), go through the same spine step and never reach the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underscore_spellings_of_protected_headers_never_reach_the_upstream_over_http2() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let (tls_settings, client) = h2_tls(&fx);
    let running = fx
        .start_with(
            &listener("sso", &up.url(), &sso_settings(&tls_settings)),
            &employees_section("employees.toml"),
        )
        .await;
    let sso = running.addr("sso").unwrap();

    let status = h2_get(US_CLIENT, sso, client.clone(), &UNDERSCORED).await;
    assert_eq!(status, UPSTREAM_STATUS);
    // Through the balancer, with the exact identity name too.
    let mut through = UNDERSCORED.to_vec();
    through.push(("x-remote-user", "carol"));
    through.push(("x-forwarded-for", "127.1.0.51"));
    let status = h2_get(BALANCER, sso, client, &through).await;
    assert_eq!(status, UPSTREAM_STATUS);

    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_only_locgate_set_protected_names(s, "allow");
    }
    assert_eq!(
        seen[0].header("x-forwarded-for").as_deref(),
        Some(US_CLIENT)
    );
    assert_eq!(
        seen[1].header("x-forwarded-for").as_deref(),
        Some("127.1.0.51, 127.0.0.1")
    );
    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.1.0.51");
    assert_eq!(problems(e), [NOT_FROM_IDENTITY_PROXY], "{e:#}");
    running.shutdown().await;
}

/// PROXY v2 `LOCAL` (no addresses: a balancer's health check), 16 bytes.
fn v2_local() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    h
}

/// Attack (issue 12 item 6c): on a PROXY-protocol listener the balancer passes the client's
/// bytes through, so an `X-Forwarded-For` there is the client's own. It was believed after
/// `PROXY UNKNOWN` / v2 `LOCAL` (the client was the trusted balancer) and when the PROXY source
/// was itself in `trusted_proxies`: a KP client named a US address. Now the client is the PROXY
/// source, or the balancer after `UNKNOWN`/`LOCAL` (`client_addr_source` "peer"), never the XFF
/// value; and an identity header counts only when the PROXY source is an identity proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_protocol_listener_never_believes_forwarding_headers() {
    use locgate::edge::proxy_proto::v1_header;
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener(
                "pp",
                &up.url(),
                "mode = \"enforce\"\nproxy_protocol = true\n\
                 trusted_proxies = [\"127.0.0.1/32\", \"127.4.0.0/24\"]\n\
                 identity_proxies = [\"127.4.0.8/32\"]\n\
                 identity = [{ header = \"X-Remote-User\" }]",
            ),
            // Both unplaced requests below come from the balancer's own (internal) address: each
            // is written, not folded as a routine internal-address note.
            &format!(
                "{}\n[policy]\ninternal_address = \"flag\"\n",
                employees_section("employees.toml")
            ),
        )
        .await;
    let pp = running.addr("pp").unwrap();
    let local: SocketAddr = "10.0.0.1:443".parse().unwrap();
    let get = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n{extra}\r\n")
            .into_bytes()
    };
    let with = |mut header: Vec<u8>, request: Vec<u8>| {
        header.extend_from_slice(&request);
        header
    };

    // PROXY UNKNOWN, then the client's XFF naming a KP address and a US one.
    let answer = raw_exchange(
        BALANCER,
        pp,
        with(
            b"PROXY UNKNOWN\r\n".to_vec(),
            get("/unknown", "X-Forwarded-For: 127.2.0.31\r\n"),
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    // v2 LOCAL, likewise.
    let answer = raw_exchange(
        BALANCER,
        pp,
        with(v2_local(), get("/local", "X-Forwarded-For: 127.2.0.32\r\n")),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    // A PROXY source inside trusted_proxies (Seattle, US) with an XFF naming KP: the KP client
    // hid behind a US address before (or a US client could pose as anywhere).
    let seattle: SocketAddr = "127.4.0.7:40001".parse().unwrap();
    let answer = raw_exchange(
        BALANCER,
        pp,
        with(
            v1_header(seattle, local),
            get(
                "/inside",
                "X-Forwarded-For: 127.2.0.33\r\nX-Remote-User: carol\r\n",
            ),
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    // The PROXY source is the identity proxy: its header names the employee.
    let auth: SocketAddr = "127.4.0.8:40002".parse().unwrap();
    let answer = raw_exchange(
        BALANCER,
        pp,
        with(
            v1_header(auth, local),
            get("/auth", "X-Remote-User: alice\r\n"),
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let events = fx.events(&running).await;
    let by_path = |path: &str| -> &Json {
        let mine: Vec<&Json> = events.iter().filter(|e| e["url"]["path"] == path).collect();
        assert_eq!(mine.len(), 1, "{path}: {events:#?}");
        mine[0]
    };
    for e in &events {
        let ip = e["source"]["ip"].as_str().unwrap_or_default();
        assert!(
            !ip.starts_with("127.2."),
            "an XFF value was recorded: {e:#}"
        );
    }
    for path in ["/unknown", "/local"] {
        let e = by_path(path);
        assert_eq!(e["source"]["ip"], BALANCER, "{e:#}");
        assert_eq!(e["locgate"]["client_addr_source"], "peer", "{e:#}");
    }
    let e = by_path("/inside");
    assert_eq!(e["source"]["ip"], "127.4.0.7", "{e:#}");
    assert_eq!(
        e["locgate"]["client_addr_source"], "proxy_protocol",
        "{e:#}"
    );
    assert_eq!(e["locgate"]["peer_ip"], BALANCER, "{e:#}");
    assert_eq!(problems(e), [NOT_FROM_IDENTITY_PROXY], "{e:#}");
    let e = by_path("/auth");
    assert_eq!(e["user"]["id"], "e1042", "{e:#}");
    assert_eq!(identity(e)["verified"], true, "{e:#}");

    // What the upstream saw: the XFF is locgate's observation alone, never the client's.
    for s in up.seen() {
        let xff = s.header("x-forwarded-for").unwrap_or_default();
        assert!(!xff.contains("127.2."), "{} got {xff}", s.target);
        if s.target == "/inside" {
            assert_eq!(xff, "127.4.0.7");
            assert_eq!(s.header("x-remote-user"), None);
        }
        if s.target == "/auth" {
            assert_eq!(s.header("x-remote-user").as_deref(), Some("alice"));
        }
    }
    running.shutdown().await;
}

/// A `header` source on a listener without `identity_proxies` was believed from every
/// `trusted_proxies` peer; now `validate` refuses it, naming file, line and field and the fix.
/// An `identity_proxies` entry as wide as a balancer range (/8) is valid but warned about.
#[test]
fn validate_refuses_a_header_source_without_identity_proxies_and_warns_of_a_wide_one() {
    let fx = Fixture::new();
    let text = fx.config_text(&listener(
        "sso",
        "http://127.0.0.1:9",
        "trusted_proxies = [\"10.0.0.0/24\"]\nidentity = [{ header = \"X-Remote-User\" }]",
    ));
    let line = text
        .lines()
        .position(|l| l.starts_with("identity ="))
        .expect("identity line")
        + 1;
    let cfg = fx.write("no-identity-proxies.toml", &text);
    let cfg = cfg.to_str().unwrap();
    let out = locgate_bin(&["validate", "-c", cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let prefix = format!("{cfg}:{line}: listener[0].identity:");
    assert!(
        out.stderr.starts_with(&prefix),
        "{:?} vs {prefix:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains("needs identity_proxies"),
        "{}",
        out.stderr
    );

    let text = fx.config_text(&listener(
        "sso",
        "http://127.0.0.1:9",
        "identity_proxies = [\"10.0.0.0/8\", \"10.1.0.7/32\"]\n\
         identity = [{ header = \"X-Remote-User\" }]",
    ));
    let line = text
        .lines()
        .position(|l| l.starts_with("identity_proxies ="))
        .expect("identity_proxies line")
        + 1;
    let cfg = fx.write("wide.toml", &text);
    let cfg = cfg.to_str().unwrap();
    let out = locgate_bin(&["validate", "-c", cfg]);
    assert!(out.status.success(), "{}", out.stderr);
    let warning = format!(
        "warning: {cfg}:{line}: listener[0].identity_proxies: 10.0.0.0/8 is a wide network"
    );
    assert!(
        out.stderr.contains(&warning),
        "{:?} lacks {warning:?}",
        out.stderr
    );
    assert!(!out.stderr.contains("10.1.0.7/32 is"), "{}", out.stderr);
    assert!(out.stdout.contains("valid"), "{}", out.stdout);
}

/// The shipped SSO example keeps the roles apart: the balancer only in `trusted_proxies`, the
/// auth proxy host in `identity_proxies`, and nothing worth a warning.
#[test]
fn the_sso_example_names_the_auth_proxy_apart_from_the_balancer() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/locgate-sso.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = locgate::config::Config::parse(&text, "locgate-sso.toml", path.parent().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    let sso = &config.listeners[0];
    assert_eq!(sso.trusted_proxies, ["10.0.0.0/24".parse().unwrap()]);
    assert_eq!(sso.identity_proxies, ["10.0.1.7/32".parse().unwrap()]);
    assert!(sso.warnings.is_empty(), "{:?}", sso.warnings);
}
