//! Identity sources end to end: who the gateway says is behind a request, as an IT security
//! engineer checks it — the status the client gets, what the upstream received, and the event's
//! `user.id` (verified) or `user.name` (claimed) and `locgate.identity.*`.
//!
//! Every request comes from its own source address, so each event is found by `source.ip` and the
//! allow throttle (one allow per client per interval) never folds the one a test looks for.

mod common;

use common::*;
use http::StatusCode;
use serde_json::{Value as Json, json};

/// Asserts a request was identified as `user_id` by `source`: ECS `user.id` when `verified`,
/// `user.name` (and no `user.id`) when the name was only claimed.
#[track_caller]
fn assert_identified(e: &Json, user_id: &str, source: &str, verified: bool, presented: &str) {
    let (field, other) = if verified {
        ("id", "name")
    } else {
        ("name", "id")
    };
    assert_eq!(e["user"][field], user_id, "{e:#}");
    assert!(e["user"][other].is_null(), "{e:#}");
    assert_eq!(identity(e)["source"], source, "{e:#}");
    assert_eq!(identity(e)["verified"], verified, "{e:#}");
    if presented == user_id {
        assert!(identity(e)["presented"].is_null(), "{e:#}");
    } else {
        assert_eq!(identity(e)["presented"], presented, "{e:#}");
    }
    assert!(problems(e).is_empty(), "{e:#}");
}

/// Asserts nobody was identified, and the problems are exactly `want`.
#[track_caller]
fn assert_anonymous(e: &Json, want: &[&str]) {
    assert!(e["user"].is_null(), "no user.id expected: {e:#}");
    assert!(identity(e)["source"].is_null(), "{e:#}");
    assert_eq!(identity(e)["verified"], false, "{e:#}");
    assert_eq!(problems(e), want, "{e:#}");
}

// ---------------------------------------------------------------------------------------------
// 1. Trusted header
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_header_names_the_employee_and_anyone_elses_is_ignored_and_stripped() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener(
                "sso",
                &up.url(),
                "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\n\
                 identity = [{ header = \"X-Remote-User\" }]",
            ),
            &format!(
                "[policy]\ndeny_countries = [\"DE\"]\n\n{}",
                employees_section("employees.toml")
            ),
        )
        .await;
    let proxy = running.addr("sso").unwrap();

    // The inner SSO proxy (a trusted peer) vouches for alice and forwards her Austin address.
    let (parts, body) = get(
        LOCAL,
        proxy,
        "/app",
        &[
            ("x-remote-user", "alice@example.com"),
            ("x-forwarded-for", "127.1.0.11"),
        ],
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    assert_eq!(&body[..], UPSTREAM_BODY);

    // The same proxy forwards bob from Pyongyang: he is named, and blocked.
    let (parts, _) = get(
        LOCAL,
        proxy,
        "/app",
        &[("x-remote-user", "bob"), ("x-forwarded-for", "127.2.0.14")],
    )
    .await;
    assert_eq!(parts.status, StatusCode::FORBIDDEN);

    // A client in Austin connecting directly sends the same header: ignored, and not passed on.
    let (parts, _) = get("127.1.0.12", proxy, "/app", &[("x-remote-user", "e1042")]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    // A client in Berlin (denied) claims to be carol, who is exempt: still blocked.
    let (parts, _) = get("127.6.0.13", proxy, "/app", &[("X-Remote-User", "carol")]).await;
    assert_eq!(parts.status, StatusCode::FORBIDDEN);

    let seen = up.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(
        seen[0].header("x-remote-user").as_deref(),
        Some("alice@example.com"),
        "a trusted proxy's header reaches the upstream"
    );
    assert_eq!(
        seen[1].header("x-remote-user"),
        None,
        "an untrusted client's X-Remote-User must not reach the upstream, which may believe it"
    );

    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.1.0.11");
    assert_identified(e, "e1042", "header", true, "alice@example.com");
    assert_eq!(e["event"]["action"], "allow");
    assert_eq!(e["locgate"]["client_addr_source"], "x-forwarded-for");
    assert_eq!(e["locgate"]["peer_ip"], LOCAL);
    assert_eq!(e["message"], "127.1.0.11 from Austin, US: allowed");

    let e = one_event_from(&events, "127.2.0.14");
    assert_identified(e, "e2001", "header", true, "bob");
    assert_eq!(e["event"]["action"], "block");
    assert_eq!(
        reasons(e),
        [
            "sanctioned_country",
            "outside_home_radius",
            "country_mismatch"
        ]
    );
    assert_eq!(
        e["message"],
        "observed North Korea (KP), a sanctioned country; observed Pyongyang, KP, 11,092 km from \
         declared home Austin, US (radius 150 km, location accurate to 50 km); observed North \
         Korea (KP), not the declared home country United States (US)"
    );

    let e = one_event_from(&events, "127.1.0.12");
    assert_anonymous(
        e,
        &["header X-Remote-User not from an identity proxy (identity_proxies); ignored"],
    );
    assert_eq!(e["event"]["action"], "allow");

    let e = one_event_from(&events, "127.6.0.13");
    assert_anonymous(
        e,
        &["header X-Remote-User not from an identity proxy (identity_proxies); ignored"],
    );
    assert_eq!(e["event"]["action"], "block");
    assert_eq!(e["locgate"]["verdict"], "block");
    assert_eq!(reasons(e), ["country_not_allowed"]);
    assert_eq!(e["http"]["response"]["status_code"], 403);
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 2. JWT
// ---------------------------------------------------------------------------------------------

const ISSUER: &str = "https://idp.example.test";

/// What an event must say: the employee id and the name as presented, or the one problem.
type Expect = Result<(&'static str, &'static str), String>;

/// An ES256 token signed with the fixture P-256 key (`ec-1` in the JWKS).
fn es256_token(claims: &Json) -> String {
    let pem = std::fs::read(identity_fixture("ec1.key.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("ec-1".into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_hs256_and_rs256_tokens_identify_and_bad_ones_are_named_but_still_served() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    fx.hs256_secret_file();
    let jwks = toml_str(&identity_fixture("jwks.json"));
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &format!(
                "{}{}",
                listener(
                    "hs",
                    &up.url(),
                    "mode = \"enforce\"\nidentity = [{ jwt = { header = \"authorization\", \
                     claim = \"sub\", hs256_secret_file = \"hs256.key\" } }]",
                ),
                listener_at(
                    "rs",
                    "127.0.0.2:0",
                    &up.url(),
                    &format!(
                        "mode = \"enforce\"\nidentity = [{{ jwt = {{ header = \"authorization\", \
                         claim = \"email\", jwks = {jwks}, issuer = \"{ISSUER}\", \
                         audience = \"portal\" }} }}]"
                    ),
                ),
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let hs = running.addr("hs").unwrap();
    let rs = running.addr("rs").unwrap();
    let now = now_secs();
    let expired_at = now - 3600;
    let expired_text = jiff::Timestamp::from_second(expired_at)
        .unwrap()
        .to_string();

    let rs_claims = |email: &str, exp: i64| json!({ "email": email, "iss": ISSUER, "aud": ["portal", "other"], "iat": now - 5, "exp": exp });
    // (source address, listener, token, what the event must say)
    let cases: Vec<(&str, _, String, Expect)> = vec![
        (
            "127.1.0.21",
            hs,
            hs256_token("alice"),
            Ok(("e1042", "alice")),
        ),
        (
            "127.1.0.22",
            hs,
            hs256_token_with(
                b"someone-elses-secret-someone-elses-secret",
                &json!({ "sub": "alice", "exp": now + 600 }),
            ),
            Err("jwt: bad signature".into()),
        ),
        (
            "127.1.0.23",
            hs,
            hs256_token_with(
                HS256_SECRET.as_bytes(),
                &json!({ "sub": "alice", "exp": expired_at }),
            ),
            Err(format!("jwt: token expired at {expired_text}")),
        ),
        (
            "127.1.0.24",
            rs,
            rs256_token(
                "rsa1.key.pem",
                "rsa-1",
                &rs_claims("alice@example.com", now + 600),
            ),
            Ok(("e1042", "alice@example.com")),
        ),
        (
            "127.1.0.25",
            rs,
            rs256_token(
                "rsa2.key.pem",
                "rsa-2",
                &rs_claims("bob@example.com", now + 600),
            ),
            Ok(("e2001", "bob@example.com")),
        ),
        (
            "127.1.0.29",
            rs,
            es256_token(&rs_claims("carol@example.com", now + 600)),
            Ok(("e3007", "carol@example.com")),
        ),
        (
            // Signed with rsa-2's private key but claiming to be rsa-1: a forgery.
            "127.1.0.26",
            rs,
            rs256_token(
                "rsa2.key.pem",
                "rsa-1",
                &rs_claims("alice@example.com", now + 600),
            ),
            Err("jwt: bad signature".into()),
        ),
        (
            "127.1.0.27",
            rs,
            rs256_token(
                "rsa1.key.pem",
                "rsa-1",
                &rs_claims("alice@example.com", expired_at),
            ),
            Err(format!("jwt: token expired at {expired_text}")),
        ),
        (
            // Correctly signed, but minted for another application.
            "127.1.0.28",
            rs,
            rs256_token(
                "rsa1.key.pem",
                "rsa-1",
                &json!({ "email": "alice@example.com", "iss": ISSUER, "aud": "wiki", "exp": now + 600 }),
            ),
            Err("jwt: audience does not include portal".into()),
        ),
    ];

    for (src, proxy, token, _) in &cases {
        let auth = bearer(token);
        let (parts, body) = get(src, *proxy, "/app", &[("authorization", &auth)]).await;
        assert_eq!(
            parts.status, UPSTREAM_STATUS,
            "{src}: the request is served"
        );
        assert_eq!(&body[..], UPSTREAM_BODY);
    }
    let seen = up.seen();
    assert_eq!(
        seen.len(),
        cases.len(),
        "every request reached the upstream"
    );

    let events = fx.events(&running).await;
    for (src, _, token, want) in &cases {
        let e = one_event_from(&events, src);
        match want {
            Ok((id, presented)) => assert_identified(e, id, "jwt", true, presented),
            Err(problem) => assert_anonymous(e, &[problem.as_str()]),
        }
        assert_eq!(e["event"]["action"], "allow", "{e:#}");
        let text = e.to_string();
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !text.contains(token.as_str()) && !text.contains(signature),
            "the event must never carry the token: {e:#}"
        );
    }
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Basic and login forms
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_user_names_and_login_forms_identify_unverified_and_bodies_pass_byte_exact() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener(
                "sso",
                &up.url(),
                "mode = \"enforce\"\nidentity = [{ basic = true }, \
                 { form = { path = \"/login\", field = \"username\", max_body = 1024 } }]",
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let proxy = running.addr("sso").unwrap();

    // Basic: the user name only; locgate never learns whether the password was right.
    let auth = basic_auth("alice", "correct horse battery");
    let (parts, _) = get("127.1.0.31", proxy, "/portal", &[("authorization", &auth)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    // A urlencoded login form.
    let form = b"username=bob%40example.com&password=p%40ss+w0rd%21&remember=on".to_vec();
    let (parts, _) = post(
        "127.1.0.32",
        proxy,
        "/login?next=%2Fhome",
        &[("content-type", "application/x-www-form-urlencoded")],
        &form,
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    // A JSON login (non-ASCII in the password, field order reversed).
    let json_body = "{\"password\":\"s3cr\u{e9}t \\\"quoted\\\"\",\"username\":\"carol\"}"
        .as_bytes()
        .to_vec();
    let (parts, _) = post(
        "127.1.0.33",
        proxy,
        "/login",
        &[("content-type", "application/json; charset=utf-8")],
        &json_body,
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    // Exactly max_body bytes is still read.
    let mut at_limit = b"username=dave&pad=".to_vec();
    at_limit.resize(1024, b'x');
    let (parts, _) = post(
        "127.1.0.35",
        proxy,
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        &at_limit,
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    // A large body elsewhere is none of the form source's business.
    let upload = pattern(4096, 11);
    let (parts, _) = post(
        "127.1.0.36",
        proxy,
        "/upload",
        &[("content-type", "application/x-www-form-urlencoded")],
        &upload,
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    // One byte over the limit: 413, and the upstream never sees it.
    let mut raw = format!(
        "POST /login HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 1025\r\n\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(b"username=alice&pad=");
    raw.resize(raw.len() + 1025 - 19, b'y');
    let answer = raw_exchange("127.1.0.34", proxy, raw).await;
    assert!(
        answer.starts_with("HTTP/1.1 413 "),
        "oversized login form: {answer:?}"
    );

    let seen = up.seen();
    assert_eq!(seen.len(), 5, "{seen:#?}");
    assert_eq!(&seen[1].body[..], &form[..], "urlencoded body byte-exact");
    assert_eq!(seen[1].target, "/login?next=%2Fhome");
    assert_eq!(
        seen[1].header("content-length").as_deref(),
        Some(form.len().to_string().as_str())
    );
    assert_eq!(&seen[2].body[..], &json_body[..], "JSON body byte-exact");
    assert_eq!(&seen[3].body[..], &at_limit[..]);
    assert_eq!(&seen[4].body[..], &upload[..]);
    assert!(seen.iter().all(|s| s.body.len() != 1025));

    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.1.0.31");
    assert_identified(e, "e1042", "basic", false, "alice");
    assert!(!e.to_string().contains("horse"), "no password in events");
    let e = one_event_from(&events, "127.1.0.32");
    assert_identified(e, "e2001", "form", false, "bob@example.com");
    assert_eq!(e["url"]["path"], "/login");
    assert!(!e.to_string().contains("w0rd"), "no password in events");
    let e = one_event_from(&events, "127.1.0.33");
    assert_identified(e, "e3007", "form", false, "carol");
    let e = one_event_from(&events, "127.1.0.35");
    assert_identified(e, "e4001", "form", false, "dave");
    let e = one_event_from(&events, "127.1.0.36");
    assert!(e["locgate"]["identity"].is_null(), "{e:#}");

    let e = one_event_from(&events, "127.1.0.34");
    assert_eq!(e["http"]["response"]["status_code"], 413);
    assert_eq!(
        e["locgate"]["error"],
        "login form body larger than 1024 bytes"
    );
    // The unreadable login body is a reason of its own (fail closed), then the error.
    assert_eq!(
        e["message"],
        "form: login form body larger than 1024 bytes; login form body larger than 1024 bytes"
    );
    assert_eq!(reasons(e), ["identity_unreadable"]);
    assert!(e["user"].is_null());
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Sessions
// ---------------------------------------------------------------------------------------------

/// 32 characters that differ from run to run.
fn random_cookie(salt: u64) -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ salt;
    pattern(16, seed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_carries_the_login_identity_and_moving_it_is_flagged() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    fx.hs256_secret_file();
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener(
                "sso",
                &up.url(),
                "mode = \"enforce\"\nidentity = [{ jwt = { header = \"authorization\", \
                 claim = \"sub\", hs256_secret_file = \"hs256.key\" } }, { basic = true }, \
                 { form = { path = \"/login\", field = \"username\" } }]\n\
                 session = { cookie = \"SESSION\", ttl = \"1h\" }",
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let proxy = running.addr("sso").unwrap();

    // alice signs in from home (Austin) with a verified token; the portal issues a session.
    let alice_session = random_cookie(1);
    assert_eq!(alice_session.len(), 32);
    let set = format!("SESSION={alice_session}; Path=/; HttpOnly; Secure");
    let auth = bearer(&hs256_token("alice"));
    let (parts, _) = get(
        "127.1.0.60",
        proxy,
        "/login",
        &[
            ("authorization", &auth),
            (SET_COOKIE_ON_REQUEST, set.as_str()),
        ],
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let set_cookies: Vec<&str> = parts
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        set_cookies.contains(&set.as_str()),
        "the client gets the portal's cookie unchanged: {set_cookies:?}"
    );

    // bob signs in with Basic (unverified): his session stays unverified.
    let bob_session = random_cookie(2);
    let set_bob = format!("SESSION={bob_session}; Path=/");
    let auth = basic_auth("bob", "pw");
    let (parts, _) = get(
        "127.1.0.70",
        proxy,
        "/login",
        &[
            ("authorization", &auth),
            (SET_COOKIE_ON_REQUEST, set_bob.as_str()),
        ],
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    // carol signs in with the login form (unverified); her session stays unverified too.
    let carol_session = random_cookie(4);
    let set_carol = format!("SESSION=\"{carol_session}\"; Path=/; Max-Age=3600");
    let (parts, _) = post(
        "127.1.0.73",
        proxy,
        "/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            (SET_COOKIE_ON_REQUEST, set_carol.as_str()),
        ],
        b"username=carol&password=pw",
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let cookie = format!("SESSION={carol_session}");
    let (parts, _) = get("127.1.0.74", proxy, "/mail", &[("cookie", &cookie)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let cookie = format!("theme=dark; SESSION={alice_session}");
    // Later, only the cookie: from home (another address in Austin), Seattle, Berlin, Pyongyang.
    for (src, want) in [
        ("127.1.0.61", UPSTREAM_STATUS),
        ("127.4.0.62", UPSTREAM_STATUS),
        ("127.6.0.63", UPSTREAM_STATUS),
        ("127.2.0.64", StatusCode::FORBIDDEN),
    ] {
        let (parts, _) = get(src, proxy, "/mail", &[("cookie", &cookie)]).await;
        assert_eq!(parts.status, want, "cookie from {src}");
    }
    let cookie = format!("SESSION={bob_session}");
    let (parts, _) = get("127.1.0.71", proxy, "/mail", &[("cookie", &cookie)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    // A cookie the gateway never saw issued identifies nobody.
    let cookie = format!("SESSION={}", random_cookie(3));
    let (parts, _) = get("127.1.0.72", proxy, "/mail", &[("cookie", &cookie)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.1.0.60");
    assert_identified(e, "e1042", "jwt", true, "alice");
    assert!(
        !e.to_string().contains(&alice_session),
        "no cookie values in events"
    );

    let e = one_event_from(&events, "127.1.0.61");
    assert_identified(e, "e1042", "session", true, "e1042");
    assert_eq!(e["event"]["action"], "allow");
    assert_eq!(reasons(e), Vec::<String>::new());

    let e = one_event_from(&events, "127.4.0.62");
    // The cookie is verified, but moved from its login's place it is demoted: the person is
    // still named, as a claim (ECS `user.name`), not as a verified `user.id`.
    assert_eq!(e["user"]["name"], "e1042", "{e:#}");
    assert!(e["user"]["id"].is_null(), "{e:#}");
    assert_eq!(identity(e)["source"], "session", "{e:#}");
    assert_eq!(identity(e)["verified"], true, "{e:#}");
    assert_eq!(e["event"]["action"], "flag");
    // Moved within seconds of the login: the history also calls it impossible travel.
    assert_eq!(
        reasons(e),
        [
            "session_location_changed",
            "impossible_travel",
            "outside_home_radius",
            "region_mismatch"
        ]
    );
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "session issued to a login 2848 km away is now used from Seattle, US \
             (allowed 190 km including accuracy); "
        ) && msg.contains(
            "observed Seattle, US, 2,848 km from declared home Austin, US (radius 150 km, \
             location accurate to 20 km)"
        ),
        "{msg}"
    );

    let e = one_event_from(&events, "127.6.0.63");
    assert_eq!(
        e["user"]["name"], "e1042",
        "moved, so demoted to a claim: {e:#}"
    );
    assert!(e["user"]["id"].is_null(), "{e:#}");
    assert_eq!(identity(e)["source"], "session", "{e:#}");
    assert_eq!(e["event"]["action"], "flag");
    assert_eq!(
        reasons(e),
        [
            "session_location_changed",
            "impossible_travel",
            "outside_home_radius",
            "country_mismatch"
        ]
    );
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "session issued to a login from United States (US) is now used from Germany (DE); "
        ),
        "{msg}"
    );

    let e = one_event_from(&events, "127.2.0.64");
    assert_eq!(
        e["user"]["name"], "e1042",
        "moved, so demoted to a claim: {e:#}"
    );
    assert!(e["user"]["id"].is_null(), "{e:#}");
    assert_eq!(identity(e)["source"], "session", "{e:#}");
    assert_eq!(e["event"]["action"], "block");
    assert_eq!(e["http"]["response"]["status_code"], 403);
    assert_eq!(
        reasons(e),
        [
            "sanctioned_country",
            "session_location_changed",
            "impossible_travel",
            "outside_home_radius",
            "country_mismatch"
        ]
    );
    assert!(
        e["message"].as_str().unwrap().contains(
            "session issued to a login from United States (US) is now used from North Korea (KP)"
        ),
        "{e:#}"
    );

    let e = one_event_from(&events, "127.1.0.71");
    assert_identified(e, "e2001", "session", false, "e2001");

    let e = one_event_from(&events, "127.1.0.73");
    assert_identified(e, "e3007", "form", false, "carol");
    let e = one_event_from(&events, "127.1.0.74");
    assert_identified(e, "e3007", "session", false, "e3007");

    let e = one_event_from(&events, "127.1.0.72");
    assert!(
        e["user"].is_null() && e["locgate"]["identity"].is_null(),
        "{e:#}"
    );

    for e in &events {
        let text = e.to_string();
        assert!(
            !text.contains(&alice_session)
                && !text.contains(&bob_session)
                && !text.contains(&carol_session)
        );
    }
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The allow throttle and identities
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_employees_behind_one_address_each_get_their_allow_event() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    fx.hs256_secret_file();
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener(
                "sso",
                &up.url(),
                "identity = [{ jwt = { header = \"authorization\", claim = \"sub\", \
                 hs256_secret_file = \"hs256.key\" } }]",
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let proxy = running.addr("sso").unwrap();
    // One office egress address; alice twice, then bob.
    for who in ["alice", "alice", "bob"] {
        let auth = bearer(&hs256_token(who));
        let (parts, _) = get("127.1.0.80", proxy, "/", &[("authorization", &auth)]).await;
        assert_eq!(parts.status, UPSTREAM_STATUS);
    }
    let events = fx.events(&running).await;
    let users: Vec<&str> = events_from(&events, "127.1.0.80")
        .iter()
        .map(|e| e["user"]["id"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        users,
        ["e1042", "e2001"],
        "alice's second allow is folded; bob's first is not (one allow per client and user)"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_form_sent_with_expect_100_continue_is_not_stalled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener(
                "sso",
                &up.url(),
                "identity = [{ form = { path = \"/login\", field = \"username\" } }]",
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let proxy = running.addr("sso").unwrap();
    let body = b"username=alice&password=pw";
    let mut stream = connect_from("127.1.0.90", proxy).await;
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    within("write head", stream.write_all(head.as_bytes()))
        .await
        .unwrap();
    // A client that honours Expect waits for the interim response before sending the body.
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(3), stream.read(&mut buf))
        .await
        .expect("the gateway must answer 100 Continue before it waits for a login body")
        .unwrap();
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(got.starts_with("HTTP/1.1 100 Continue\r\n\r\n"), "{got:?}");
    within("write body", stream.write_all(body)).await.unwrap();
    let mut answer = got.as_bytes()[25..].to_vec();
    while !String::from_utf8_lossy(&answer).contains("hello from the upstream") {
        let n = within("read answer", stream.read(&mut buf)).await.unwrap();
        assert!(
            n > 0,
            "closed early: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 201 "),
        "exactly one 100, then the answer: {text:?}"
    );
    assert_eq!(&up.only().body[..], body);
    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.1.0.90");
    assert_eq!(
        e["user"]["name"], "e1042",
        "a login form's name is claimed: {e:#}"
    );
    assert_eq!(e["locgate"]["identity"]["source"], "form");
    running.shutdown().await;
}
