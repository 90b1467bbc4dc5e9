//! Signing keys that rotate: a `jwt` source with `jwks_url`, or only an `issuer` (OpenID Connect
//! discovery), against a loopback identity provider that the test runs and rotates. What a
//! security engineer checks: tokens signed with the new key are verified without a restart,
//! tokens signed with a retired key are refused with a reason, random key ids cannot make the
//! gateway hammer the provider, and while the provider is down the last good keys still decide
//! and `/readyz` and `/metrics` say so.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::StatusCode;
use serde_json::{Value as Json, json};

const ADMIN_TOKEN: &str = "a-long-enough-admin-token-for-the-test-0123456789";

/// A JWKS with only the fixture key `kid` (public part, as the provider publishes it).
fn jwks_with(kid: &str) -> String {
    let all: Json =
        serde_json::from_slice(&std::fs::read(identity_fixture("jwks.json")).unwrap()).unwrap();
    let keys: Vec<&Json> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kid"] == kid)
        .collect();
    assert_eq!(keys.len(), 1, "fixture key {kid}");
    json!({ "keys": keys }).to_string()
}

/// The identity provider: serves its discovery document and its key set over plain HTTP on
/// 127.0.0.1 (one request per connection), counts the key-set fetches, and can rotate or go down.
struct Idp {
    addr: SocketAddr,
    jwks: Arc<Mutex<String>>,
    key_fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl Idp {
    fn start(jwks: String) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let idp = Idp {
            addr,
            jwks: Arc::new(Mutex::new(jwks)),
            key_fetches: Arc::new(AtomicUsize::new(0)),
            down: Arc::new(AtomicBool::new(false)),
        };
        let (jwks, fetches, down) = (idp.jwks.clone(), idp.key_fetches.clone(), idp.down.clone());
        let issuer = idp.issuer();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // Read the rest of the head.
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = if down.load(Ordering::SeqCst) {
                    ("503 Service Unavailable", "down".to_string())
                } else if path == "/.well-known/openid-configuration" {
                    let doc = json!({
                        "issuer": issuer,
                        "jwks_uri": format!("{issuer}/oauth2/v1/keys"),
                        "authorization_endpoint": format!("{issuer}/oauth2/v1/authorize"),
                        "token_endpoint": format!("{issuer}/oauth2/v1/token"),
                        "id_token_signing_alg_values_supported": ["RS256"],
                    });
                    ("200 OK", doc.to_string())
                } else if path == "/oauth2/v1/keys" {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", jwks.lock().unwrap().clone())
                } else {
                    ("404 Not Found", "no".to_string())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                     cache-control: max-age=3600\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.flush();
                let mut rest = [0u8; 1];
                let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
                let _ = conn.read(&mut rest);
            }
        });
        idp
    }

    fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn rotate_to(&self, kid: &str) {
        *self.jwks.lock().unwrap() = jwks_with(kid);
    }

    fn fetches(&self) -> usize {
        self.key_fetches.load(Ordering::SeqCst)
    }
}

/// A token for `sub` signed with fixture key `key_file`, naming `kid`, from `issuer`.
fn token(key_file: &str, kid: &str, issuer: &str, sub: &str) -> String {
    let now = now_secs();
    rs256_token(
        key_file,
        kid,
        &json!({ "sub": sub, "iss": issuer, "aud": "portal", "iat": now - 5, "exp": now + 600 }),
    )
}

struct Gateway {
    _up: Upstream,
    fx: Fixture,
    running: locgate::serve::Running,
    proxy: SocketAddr,
}

impl Gateway {
    /// One listener whose `jwt` source finds its keys by `keys` (`jwks_url = ...` or nothing
    /// for discovery from `issuer`), plus the admin listener.
    async fn start(issuer: &str, keys: &str) -> Gateway {
        let fx = Fixture::new();
        fx.write_standard_directory();
        let up = Upstream::start().await;
        let listeners = listener(
            "sso",
            &up.url(),
            &format!(
                "mode = \"enforce\"\nidentity = [{{ jwt = {{ header = \"authorization\", \
                 claim = \"sub\", issuer = \"{issuer}\", audience = \"portal\"{keys} }} }}]"
            ),
        );
        let sections = format!(
            "{}\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n",
            employees_section("employees.toml")
        );
        let running = fx.start_with(&listeners, &sections).await;
        let proxy = running.addr("sso").unwrap();
        Gateway {
            _up: up,
            fx,
            running,
            proxy,
        }
    }

    /// Sends `token` from `src` and returns that request's event.
    async fn judge(&self, src: &str, token: &str) -> Json {
        let (parts, _) = get(
            src,
            self.proxy,
            "/app",
            &[("authorization", &bearer(token))],
        )
        .await;
        assert_eq!(
            parts.status, UPSTREAM_STATUS,
            "{src}: served (monitor of identity)"
        );
        let events = self
            .fx
            .events_until(&self.running, |e| e["source"]["ip"] == src)
            .await;
        one_event_from(&events, src).clone()
    }

    async fn admin(&self, path: &str) -> String {
        let adm = self.running.admin_addr.expect("admin");
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let (parts, body) = get(LOCAL, adm, path, &[("authorization", &auth)]).await;
        assert_eq!(parts.status, StatusCode::OK);
        String::from_utf8_lossy(&body).into_owned()
    }
}

#[track_caller]
fn assert_user(e: &Json, user: &str) {
    assert_eq!(e["user"]["id"], user, "{e:#}");
    assert_eq!(identity(e)["verified"], true, "{e:#}");
    assert!(problems(e).is_empty(), "{e:#}");
}

#[track_caller]
fn assert_refused(e: &Json, problem: &str) {
    assert!(e["user"].is_null(), "no identity expected: {e:#}");
    let all = problems(e);
    assert!(
        all.iter().any(|p| p.contains(problem)),
        "want a problem containing {problem:?}: {e:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_found_by_discovery_rotate_without_a_restart_and_outlive_the_provider() {
    let idp = Idp::start(jwks_with("rsa-1"));
    let iss = idp.issuer();
    let gw = Gateway::start(&iss, "").await;
    assert_eq!(idp.fetches(), 1, "keys fetched once at start");

    // The key in use verifies.
    let e = gw
        .judge("127.1.0.31", &token("rsa1.key.pem", "rsa-1", &iss, "alice"))
        .await;
    assert_user(&e, "e1042");

    // The provider rotates: the first token signed with the new key makes the gateway refetch,
    // and is verified, not refused.
    idp.rotate_to("rsa-2");
    let e = gw
        .judge("127.1.0.32", &token("rsa2.key.pem", "rsa-2", &iss, "bob"))
        .await;
    assert_user(&e, "e2001");
    assert_eq!(idp.fetches(), 2, "one refetch for the new key id");

    // The retired key is gone from the set: its tokens are refused with the reason.
    let e = gw
        .judge("127.1.0.33", &token("rsa1.key.pem", "rsa-1", &iss, "alice"))
        .await;
    assert_refused(&e, "no key matches the token's key id");

    // Random key ids right after a refetch cost the provider nothing (rate-limited).
    for (i, kid) in ["x1", "x2", "x3", "x4", "x5"].iter().enumerate() {
        let src = format!("127.1.0.{}", 40 + i);
        let e = gw
            .judge(&src, &token("rsa1.key.pem", kid, &iss, "alice"))
            .await;
        assert_refused(&e, "no key matches the token's key id");
    }
    assert_eq!(idp.fetches(), 2, "unknown key ids are rate-limited");

    // The provider goes down. Once the rate limit has passed, an unknown key id asks again; the
    // fetch fails, and the last good keys keep deciding.
    idp.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let e = gw
        .judge("127.1.0.50", &token("rsa1.key.pem", "nope", &iss, "alice"))
        .await;
    assert_refused(&e, "no key matches the token's key id");
    let e = gw
        .judge("127.1.0.51", &token("rsa2.key.pem", "rsa-2", &iss, "bob"))
        .await;
    assert_user(&e, "e2001");
    let ready = gw.admin("/readyz").await;
    assert!(
        ready.starts_with("ready\n")
            && ready.contains("JWT signing keys from")
            && ready.contains("not refreshed")
            && ready.contains("503"),
        "{ready}"
    );
    let metrics = gw.admin("/metrics").await;
    let source = format!("source=\"{iss} (discovery)\"");
    assert!(
        metrics.contains(&format!("locgate_jwks_up{{{source}}} 0"))
            && metrics.contains(&format!("locgate_jwks_keys{{{source}}} 1")),
        "{metrics}"
    );
    gw.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_unreachable_at_start_fails_closed_then_recovers() {
    let idp = Idp::start(jwks_with("rsa-1"));
    idp.down.store(true, Ordering::SeqCst);
    let iss = idp.issuer();
    let url = format!("{iss}/oauth2/v1/keys");
    let gw = Gateway::start(&iss, &format!(", jwks_url = \"{url}\"")).await;

    // No keys yet: a valid token is not believed, and the reason says why.
    let e = gw
        .judge("127.1.0.61", &token("rsa1.key.pem", "rsa-1", &iss, "alice"))
        .await;
    assert_refused(&e, "signing keys from");
    let ready = gw.admin("/readyz").await;
    assert!(
        ready.contains("not loaded") && ready.contains("tokens are refused"),
        "{ready}"
    );

    // The provider returns: the next token asks for the keys (its key id is unknown) and is
    // verified.
    idp.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let e = gw
        .judge("127.1.0.62", &token("rsa1.key.pem", "rsa-1", &iss, "alice"))
        .await;
    assert_user(&e, "e1042");
    let metrics = gw.admin("/metrics").await;
    assert!(
        metrics.contains(&format!("locgate_jwks_up{{source=\"{url}\"}} 1")),
        "{metrics}"
    );
    gw.running.shutdown().await;
}

#[test]
fn config_refuses_what_cannot_be_trusted() {
    let fx = Fixture::new();
    for (keys, why) in [
        (
            "jwks_url = \"http://idp.example.com/keys\"",
            "plain http is allowed only to a loopback host",
        ),
        (
            "jwks_url = \"https://idp.example.com/keys\", jwks = \"x.json\"",
            "give only one of",
        ),
        ("jwks_url = \"ftp://idp.example.com/keys\"", "only https"),
    ] {
        let text = fx.config_text(&listener(
            "sso",
            "http://127.0.0.1:9",
            &format!(
                "identity = [{{ jwt = {{ header = \"authorization\", claim = \"sub\", {keys} }} }}]"
            ),
        ));
        let e = locgate::config::Config::parse(&text, "t.toml", fx.dir.path())
            .expect_err(keys)
            .to_string();
        assert!(e.contains(why), "{keys}: {e}");
    }
    // An issuer that is not a URL cannot be discovered.
    let text = fx.config_text(&listener(
        "sso",
        "http://127.0.0.1:9",
        "identity = [{ jwt = { header = \"authorization\", claim = \"sub\", issuer = \"acme\" } }]",
    ));
    let e = locgate::config::Config::parse(&text, "t.toml", fx.dir.path())
        .expect_err("issuer")
        .to_string();
    assert!(e.contains("cannot be discovered"), "{e}");
}
