//! The identity sources together: configuration shape, order, trust of the peer.

use std::path::PathBuf;

use base64::Engine;
use http::HeaderValue;
use http::header::{AUTHORIZATION, COOKIE};
use serde::Deserialize;

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/identity")
}

/// The shape a listener will embed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Listener {
    identity: Vec<SourceConfig>,
    session: Option<SessionConfig>,
}

fn listener(toml_text: &str) -> Listener {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"))
}

fn extractors(toml_text: &str) -> Extractors {
    Extractors::from_config(&listener(toml_text).identity, &fixtures()).expect("valid sources")
}

fn now() -> Timestamp {
    "2026-11-20T09:00:00Z".parse().expect("time")
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header value")
}

fn basic(user_pass: &str) -> HeaderValue {
    hv(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    ))
}

#[test]
fn documented_shape_parses() {
    let l = listener(
        r#"
        identity = [ { header = "X-Remote-User" },
                     { jwt = { cookie = "id_token", claim = "email", jwks = "jwks.json" } },
                     { jwt = { header = "authorization", claim = "sub", hs256_secret = "0123456789abcdef0123456789abcdef",
                               issuer = "https://idp.example", audience = "portal", leeway = "60s" } },
                     { jwt = { cookie = "x", claim = "email", verify = false } },
                     { basic = true },
                     { form = { path = "/login", field = "username", max_body = 65536 } } ]
        session = { cookie = "SESSION", ttl = "12h", max_entries = 100000 }
        "#,
    );
    assert_eq!(l.identity.len(), 6);
    let ex = Extractors::from_config(&l.identity, &fixtures()).expect("loads");
    assert!(!ex.is_empty());
    let session = SessionStore::new(&l.session.expect("session")).expect("store");
    assert_eq!(session.cookie_name(), "SESSION");
}

#[test]
fn shape_errors() {
    for bad in [
        r#"identity = [ { unknown = true } ]"#,
        r#"identity = [ { header = "X-Remote-User", basic = true } ]"#,
        r#"identity = [ { header = "not a header" } ]"#,
        r#"identity = [ { form = { path = "/login", field = "u", extra = 1 } } ]"#,
        r#"identity = [ { basic = "yes" } ]"#,
        r#"identity = []
           session = { cookie = "S", ttl = "12" }"#,
        r#"identity = []
           session = { cookie = "S;x" }"#,
    ] {
        assert!(toml::from_str::<Listener>(bad).is_err(), "{bad}");
    }
}

#[test]
fn config_errors_name_the_entry() {
    let e = Extractors::from_config(
        &listener(r#"identity = [ { basic = true }, { jwt = { cookie = "c", claim = "sub", jwks = "nope.json" } } ]"#)
            .identity,
        &fixtures(),
    )
    .expect_err("missing file");
    assert!(
        e.starts_with("identity[1].jwt: cannot read JWKS file"),
        "{e}"
    );
    assert!(e.contains("nope.json"), "{e}");
    let e = Extractors::from_config(
        &listener(r#"identity = [ { form = { path = "login", field = "u" } } ]"#).identity,
        &fixtures(),
    )
    .expect_err("relative path");
    assert!(e.starts_with("identity[0].form: "), "{e}");
    for header in ["Authorization", "cookie"] {
        let e = Extractors::from_config(
            &listener(&format!(r#"identity = [ {{ header = "{header}" }} ]"#)).identity,
            &fixtures(),
        )
        .expect_err("credential header");
        assert!(e.contains("carries credentials"), "{e}");
    }
}

#[test]
fn header_only_from_trusted_peer() {
    let ex = extractors(r#"identity = [ { header = "X-Remote-User" } ]"#);
    let mut h = HeaderMap::new();
    h.insert("x-remote-user", hv("  alice  "));
    let trusted = ex.from_headers(&h, true, now());
    assert_eq!(
        trusted.identity,
        Some(Identity {
            user: "alice".into(),
            source: IdentitySource::Header,
            verified: true
        })
    );
    assert!(trusted.problems.is_empty());
    let untrusted = ex.from_headers(&h, false, now());
    assert_eq!(untrusted.identity, None);
    assert_eq!(
        untrusted.problems,
        vec![
            "header X-Remote-User not from an identity proxy (identity_proxies); ignored"
                .to_string()
        ]
    );
    // Absent header: nothing to say, trusted or not.
    assert_eq!(
        ex.from_headers(&HeaderMap::new(), false, now()),
        Extraction::none()
    );
}

#[test]
fn header_values_are_checked() {
    let ex = extractors(r#"identity = [ { header = "X-Remote-User" } ]"#);
    let run = |values: &[HeaderValue]| {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-remote-user", v.clone());
        }
        ex.from_headers(&h, true, now())
    };
    let long = "a".repeat(257);
    let cases = [
        (vec![hv("   ")], "header X-Remote-User: user name is empty"),
        (
            vec![hv(&long)],
            "header X-Remote-User: user name is longer than 256 bytes",
        ),
        (
            vec![hv("a\tb")],
            "header X-Remote-User: user name contains control characters",
        ),
        (
            vec![HeaderValue::from_bytes(b"\xff\xfe").expect("opaque")],
            "header X-Remote-User: user name is not UTF-8",
        ),
        (
            vec![hv("alice"), hv("mallory")],
            "header X-Remote-User appears more than once; ignored",
        ),
    ];
    for (values, want) in cases {
        let got = run(&values);
        assert_eq!(got.identity, None, "{want}");
        assert_eq!(got.problems, vec![want.to_string()]);
    }
    let utf8 = HeaderValue::from_bytes("Jürgen".as_bytes()).expect("utf-8 bytes");
    assert_eq!(
        run(&[utf8]).identity.map(|i| i.user).as_deref(),
        Some("Jürgen")
    );
    assert_eq!(run(&[hv(&"a".repeat(256))]).problems, Vec::<String>::new());
}

#[test]
fn first_identity_wins_and_problems_are_kept() {
    let ex = extractors(&format!(
        r#"identity = [ {{ header = "X-Remote-User" }},
                        {{ jwt = {{ header = "authorization", claim = "sub", hs256_secret = "{SECRET}" }} }},
                        {{ basic = true }} ]"#
    ));
    // Untrusted X-Remote-User is skipped (with a problem); Basic answers.
    let mut h = HeaderMap::new();
    h.insert("x-remote-user", hv("ceo"));
    h.insert(AUTHORIZATION, basic("bob:pw"));
    let got = ex.from_headers(&h, false, now());
    let id = got.identity.expect("basic identity");
    assert_eq!(
        (id.user.as_str(), id.source, id.verified),
        ("bob", IdentitySource::Basic, false)
    );
    assert_eq!(
        got.problems,
        vec![
            "header X-Remote-User not from an identity proxy (identity_proxies); ignored"
                .to_string()
        ]
    );
    // Trusted: the header answers first; Basic is still read, so a disagreement shows.
    let got = ex.from_headers(&h, true, now());
    assert_eq!(got.identity.map(|i| i.source), Some(IdentitySource::Header));
    let others: Vec<_> = got
        .others
        .iter()
        .map(|i| (i.user.as_str(), i.source))
        .collect();
    assert_eq!(others, [("bob", IdentitySource::Basic)]);
    // A forged bearer token is reported, and nothing else answers.
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        hv("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjZW8ifQ.c2ln"),
    );
    let got = ex.from_headers(&h, true, now());
    assert_eq!(got.identity, None);
    assert_eq!(got.problems, vec!["jwt: bad signature".to_string()]);
    // Nothing at all: no identity, no problems, no allocation needed.
    let got = ex.from_headers(&HeaderMap::new(), true, now());
    assert_eq!(got, Extraction::none());
    assert_eq!(got.problems.capacity(), 0);
}

#[test]
fn disabled_basic_and_empty_config() {
    let ex = extractors(r#"identity = [ { basic = false } ]"#);
    assert!(ex.is_empty());
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, basic("bob:pw"));
    assert_eq!(ex.from_headers(&h, true, now()), Extraction::none());
    assert!(Extractors::default().is_empty());
}

#[test]
fn form_rules() {
    let ex = extractors(
        r#"identity = [ { form = { path = "/login", field = "username" } },
                        { form = { path = "/api/login", field = "email", max_body = 1024 } } ]"#,
    );
    let max = |m: &Method, t: &str| ex.form_rule(m, t.as_bytes()).map(FormRule::max_body);
    assert_eq!(max(&Method::POST, "/login"), Some(65536));
    assert_eq!(max(&Method::POST, "/api/login?x=1"), Some(1024));
    assert_eq!(max(&Method::GET, "/login"), None);
    assert_eq!(max(&Method::PUT, "/login"), None);
    for spelling in [
        "/login/",
        "/LOGIN",
        "//login",
        "/a/../login",
        "/%6cogin",
        "/login;x=1",
        "http://portal.example/login",
    ] {
        assert_eq!(max(&Method::POST, spelling), Some(65536), "{spelling}");
    }
    assert_eq!(max(&Method::POST, "/API//Login/"), Some(1024));
    assert_eq!(max(&Method::POST, "/logout"), None);
    assert_eq!(
        max(&Method::POST, "/a%2Flogin"),
        Some(65536),
        "an ambiguous target is read with the first form"
    );
    let rule = ex.form_rule(&Method::POST, b"/api/login").expect("rule");
    let got = rule.extract(
        Some("application/json"),
        br#"{"email":"a@example.com","password":"pw"}"#,
    );
    assert_eq!(
        got.identity.map(|i| i.user).as_deref(),
        Some("a@example.com")
    );
    // Form sources never answer from headers.
    let mut h = HeaderMap::new();
    h.insert(COOKIE, hv("username=alice"));
    assert_eq!(ex.from_headers(&h, true, now()), Extraction::none());
}

#[test]
fn debug_shows_no_secrets() {
    let l = listener(&format!(
        r#"identity = [ {{ jwt = {{ header = "authorization", claim = "sub", hs256_secret = "{SECRET}" }} }},
                        {{ header = "X-Remote-User" }}, {{ basic = true }},
                        {{ form = {{ path = "/login", field = "username" }} }} ]"#
    ));
    let ex = Extractors::from_config(&l.identity, &fixtures()).expect("loads");
    for text in [
        format!("{:?}", l.identity),
        format!("{ex:?}"),
        format!("{ex:#?}"),
    ] {
        assert!(
            !text.contains(SECRET) && !text.contains("0123456789"),
            "{text}"
        );
    }
    let dbg = format!("{ex:?}");
    assert!(
        dbg.contains("X-Remote-User") && dbg.contains("basic") && dbg.contains("/login"),
        "{dbg}"
    );
    assert_eq!(format!("{:?}", Secret::new("hunter2hunter2")), "[redacted]");
}

#[test]
fn source_names() {
    let all = [
        (IdentitySource::Header, "header"),
        (IdentitySource::Jwt, "jwt"),
        (IdentitySource::Basic, "basic"),
        (IdentitySource::Form, "form"),
        (IdentitySource::Session, "session"),
        (IdentitySource::ClientCert, "client_cert"),
    ];
    for (source, name) in all {
        assert_eq!(source.as_str(), name);
        assert_eq!(source.to_string(), name);
    }
}

#[test]
fn user_name_rules() {
    assert_eq!(check_user(" a "), Ok("a"));
    assert!(check_user("").is_err());
    assert!(check_user("x\u{85}y").is_err(), "C1 controls too");
    assert!(check_user("a\u{7f}").is_err());
    assert!(
        check_user(&"é".repeat(129)).is_err(),
        "the limit is in bytes"
    );
    assert!(check_user(&"é".repeat(128)).is_ok());
}

/// Attack: a stolen token cookie behind a junk (or another person's) one of the same name; the
/// upstream may read either, so differing values are refused rather than the first believed.
#[test]
fn a_jwt_cookie_with_differing_values_is_refused() {
    let ex =
        extractors(r#"identity = [ { jwt = { cookie = "x", claim = "email", verify = false } } ]"#);
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let token = |email: &str| {
        format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64(&format!(r#"{{"email":"{email}"}}"#))
        )
    };
    let mut h = HeaderMap::new();
    h.insert(
        COOKIE,
        hv(&format!("x={}; x={}", token("a@x"), token("a@x"))),
    );
    let got = ex.from_headers(&h, false, now());
    assert_eq!(
        got.identity.map(|i| i.user).as_deref(),
        Some("a@x"),
        "{:?}",
        got.problems
    );
    let mut h = HeaderMap::new();
    h.insert(COOKIE, hv(&format!("x=junk; x={}", token("a@x"))));
    let got = ex.from_headers(&h, false, now());
    assert_eq!(got.identity, None);
    assert_eq!(
        got.problems,
        ["jwt: cookie x appears more than once with different values; ignored"]
    );
}
