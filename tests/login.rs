//! Logins cannot be dodged and one identity cannot hide another (issue 12, items 2, 3 and 6),
//! end to end against the real server: the status the client gets, the audit event's
//! `event.reason`, `user.id` and `locgate.identity.*`, and what the session store learned (seen
//! through the next request's event).
//!
//! The attacks share one shape: alice (e1042) lives in Austin; a login typed as alice from Berlin
//! is flagged (`country_mismatch`, `outside_home_radius`), while an anonymous request from Berlin
//! is a plain allow (Berlin is not denied). Every way of making locgate miss the name (or read
//! another one) used to turn the flag into an allow. Each client uses its own source address,
//! so the allow throttle folds nothing a test looks for (except where a test is about folding).

mod common;

use common::*;
use serde_json::Value as Json;

/// The listener every test uses: Basic and a login form at `/login`, learned sessions, a JWT
/// source for verified logins; `extra` adds lines (mode, ...).
fn sso(up: &Upstream, name: &str, extra: &str) -> String {
    listener(
        name,
        &up.url(),
        &format!(
            "identity = [{{ jwt = {{ header = \"authorization\", claim = \"sub\", \
             hs256_secret_file = \"hs256.key\" }} }}, {{ basic = true }}, \
             {{ form = {{ path = \"/login\", field = \"username\" }} }}]\n\
             session = {{ cookie = \"SESSION\", ttl = \"1h\" }}\n{extra}"
        ),
    )
}

/// Starts the gateway with the standard directory and one enforcing `sso` listener, plus
/// `sections` (e.g. `[policy]`).
async fn start(fx: &Fixture, up: &Upstream, sections: &str) -> locgate::serve::Running {
    fx.write_standard_directory();
    fx.hs256_secret_file();
    fx.start_with(
        &sso(up, "sso", "mode = \"enforce\""),
        &format!("{sections}\n{}", employees_section("employees.toml")),
    )
    .await
}

/// A raw HTTP/1.1 POST (the target exactly as written, which an HTTP library would normalise),
/// read to the close; returns the status line.
async fn raw_post(
    src: &str,
    proxy: std::net::SocketAddr,
    target: &str,
    ct: &str,
    body: &[u8],
) -> String {
    let mut raw = format!(
        "POST {target} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    let answer = raw_exchange(src, proxy, raw).await;
    answer.lines().next().unwrap_or_default().to_string()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// 32 characters that differ per salt and run (a session id).
fn session_id(salt: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:016x}{:016x}",
        nanos ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        salt
    )
}

/// Asserts alice's typed-in login from Berlin was read: flagged for her home, named, unverified.
#[track_caller]
fn assert_alice_login_from_berlin(e: &Json) {
    assert_eq!(user_of(e), "e1042", "{e:#}");
    assert_eq!(identity(e)["source"], "form", "{e:#}");
    assert_eq!(identity(e)["verified"], false, "{e:#}");
    assert_eq!(e["event"]["action"], "flag", "{e:#}");
    let r = reasons(e);
    assert!(r.contains(&"country_mismatch".to_string()), "{e:#}");
}

/// Attack: spell the login path the way the upstream's router accepts but locgate did not
/// compare (`//login`, `/Login`, `/login/`, `/a/../login`, `/%6cogin`, `/login;x=1`, an
/// absolute-form target): the body was not read and the typed-in name from the wrong country
/// was allowed as anonymous. Now every spelling is read as the login; other paths are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_the_login_path_is_read_as_the_login() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = start(&fx, &up, "").await;
    let proxy = running.addr("sso").unwrap();
    let spellings = [
        ("127.6.1.1", "/login".to_string()),
        ("127.6.1.2", "//login".to_string()),
        ("127.6.1.3", "/Login".to_string()),
        ("127.6.1.4", "/login/".to_string()),
        ("127.6.1.5", "/a/../login".to_string()),
        ("127.6.1.6", "/%6cogin".to_string()),
        ("127.6.1.7", "/login;x=1".to_string()),
        ("127.6.1.8", format!("http://{HOST}/login?next=/")),
        ("127.6.1.9", "/./LOGIN//?x=1".to_string()),
    ];
    for (src, target) in &spellings {
        let status = raw_post(src, proxy, target, FORM, b"username=alice&password=pw").await;
        assert!(status.starts_with("HTTP/1.1 201"), "{target}: {status}");
    }
    // Not the login: the body is none of locgate's business.
    let status = raw_post("127.6.1.10", proxy, "/logins", FORM, b"username=alice").await;
    assert!(status.starts_with("HTTP/1.1 201"), "{status}");

    let events = fx.events(&running).await;
    for (src, target) in &spellings {
        let e = one_event_from(&events, src);
        assert_alice_login_from_berlin(e);
        assert!(problems(e).is_empty(), "{target}: {e:#}");
    }
    let e = one_event_from(&events, "127.6.1.10");
    assert!(e["user"].is_null(), "{e:#}");
    assert_eq!(e["event"]["action"], "allow", "{e:#}");
    assert_eq!(
        up.seen().len(),
        spellings.len() + 1,
        "every request forwarded"
    );
    running.shutdown().await;
}

/// Attack: post the login as `multipart/form-data` (or `text/plain`), or put the name in the
/// query, which frameworks merge with the body: none of these were read, so the login was an
/// anonymous allow. A query and body naming different people are a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_text_plain_and_query_logins_are_read() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = start(&fx, &up, "").await;
    let proxy = running.addr("sso").unwrap();

    let boundary = "----WebKitFormBoundaryx7MA4YWxkTrZu0gW";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nt0k\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\npw\r\n\
         --{boundary}--\r\n"
    );
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (parts, _) = post(
        "127.6.2.1",
        proxy,
        "/login",
        &[("content-type", ct.as_str())],
        multipart.as_bytes(),
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let (parts, _) = post(
        "127.6.2.2",
        proxy,
        "/login",
        &[("content-type", "text/plain")],
        b"username=alice\r\npassword=pw\r\n",
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let (parts, _) = post(
        "127.6.2.3",
        proxy,
        "/login?username=alice",
        &[("content-type", FORM)],
        b"password=pw",
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    // No body at all (no Content-Length): the query alone names her.
    let answer = raw_exchange(
        "127.6.2.5",
        proxy,
        b"POST /login?username=alice HTTP/1.1\r\nHost: portal\r\nConnection: close\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    // From home, the body says bob and the query says alice.
    let (parts, _) = post(
        "127.1.2.4",
        proxy,
        "/login?username=alice",
        &[("content-type", FORM)],
        b"username=bob&password=pw",
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let events = fx.events(&running).await;
    assert_alice_login_from_berlin(one_event_from(&events, "127.6.2.1"));
    assert_alice_login_from_berlin(one_event_from(&events, "127.6.2.2"));
    assert_alice_login_from_berlin(one_event_from(&events, "127.6.2.5"));
    let e = one_event_from(&events, "127.6.2.3");
    assert_alice_login_from_berlin(e);
    assert_eq!(
        problems(e),
        ["form: no username field"],
        "the body's oddity is still shown"
    );
    let e = one_event_from(&events, "127.1.2.4");
    assert_eq!(e["event"]["action"], "flag", "{e:#}");
    assert_eq!(reasons(e), ["identity_conflict"], "{e:#}");
    assert_eq!(
        problems(e),
        ["identity sources disagree: form bob, form alice"]
    );
    assert_eq!(user_of(e), "e2001", "the body's name is decided on: {e:#}");
    assert_eq!(
        up.seen()[0].body,
        multipart.as_bytes(),
        "the multipart body reaches the upstream byte for byte"
    );
    running.shutdown().await;
}

/// Attack: send a login locgate cannot read (no Content-Type, an unknown one, a broken
/// escape, a duplicated field): it used to be decided as anonymous, a silent allow. Now it is
/// `identity_unreadable`: flagged by default, blocked when configured, and a monitoring
/// listener turns that block into a flag as for every reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_login_is_flagged_or_blocked_never_a_silent_allow() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = start(&fx, &up, "").await;
    let proxy = running.addr("sso").unwrap();
    let cases: [(&str, &str, &[u8], &str); 4] = [
        (
            "127.1.3.1",
            "application/octet-stream",
            b"username=alice",
            "form: unsupported Content-Type (urlencoded, JSON, multipart and text/plain bodies are read)",
        ),
        (
            "127.1.3.2",
            FORM,
            b"username=al%zzice",
            "form: malformed percent-encoding",
        ),
        (
            "127.1.3.3",
            FORM,
            b"username=alice&username=bob",
            "form: user name field appears more than once",
        ),
        (
            "127.1.3.4",
            "application/json",
            b"{\"username\":",
            "form: malformed JSON body",
        ),
    ];
    for (src, ct, body, _) in &cases {
        let status = raw_post(src, proxy, "/login", ct, body).await;
        assert!(status.starts_with("HTTP/1.1 201"), "{src}: {status}");
    }
    let events = fx.events(&running).await;
    for (src, _, _, why) in &cases {
        let e = one_event_from(&events, src);
        assert_eq!(e["event"]["action"], "flag", "{e:#}");
        assert_eq!(reasons(e), ["identity_unreadable"], "{e:#}");
        assert_eq!(problems(e), [*why], "{e:#}");
        assert!(e["user"].is_null(), "{e:#}");
        assert!(
            e["message"].as_str().unwrap_or_default().contains(why),
            "{e:#}"
        );
    }
    running.shutdown().await;

    // Configured to block: refused, and the upstream never sees it; in monitor mode, flagged.
    let fx = Fixture::new();
    fx.write_standard_directory();
    fx.hs256_secret_file();
    let up = Upstream::start().await;
    let listeners = format!(
        "{}{}",
        sso(&up, "sso", "mode = \"enforce\""),
        sso(&up, "watch", "mode = \"monitor\"")
    );
    let running = fx
        .start_with(
            &listeners,
            &format!(
                "[policy]\nidentity_unreadable = \"block\"\n\n{}",
                employees_section("employees.toml")
            ),
        )
        .await;
    let status = raw_post(
        "127.1.3.5",
        running.addr("sso").unwrap(),
        "/login",
        FORM,
        b"username=%",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    let status = raw_post(
        "127.1.3.6",
        running.addr("watch").unwrap(),
        "/login",
        FORM,
        b"username=%",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 201"), "{status}");
    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.1.3.5");
    assert_eq!(e["event"]["action"], "block", "{e:#}");
    assert_eq!(reasons(e), ["identity_unreadable"], "{e:#}");
    let e = one_event_from(&events, "127.1.3.6");
    assert_eq!(e["event"]["action"], "flag", "{e:#}");
    assert_eq!(reasons(e), ["identity_unreadable"], "{e:#}");
    assert_eq!(up.seen().len(), 1, "only the monitored login was forwarded");
    running.shutdown().await;
}

/// `identity_unreadable = "allow"` would reopen the dodge: refused at load, naming the field.
#[test]
fn identity_actions_cannot_be_allow() {
    let fx = Fixture::new();
    let text = fx.config_text_with(
        &listener("sso", "http://127.0.0.1:9", ""),
        "[policy]\nidentity_conflict = \"allow\"\n",
    );
    let err = locgate::config::Config::parse(&text, "test.toml", std::path::Path::new("."))
        .expect_err("allow is refused")
        .to_string();
    assert!(
        err.contains("test.toml:") && err.contains("policy.identity_conflict: `allow` would let"),
        "{err}"
    );
    let text = fx.config_text_with(
        &listener("sso", "http://127.0.0.1:9", ""),
        "[policy]\nidentity_conflict = \"block\"\nidentity_unreadable = \"note\"\n",
    );
    locgate::config::Config::parse(&text, "test.toml", std::path::Path::new("."))
        .expect("the other actions are accepted");
}

/// Attack: carry a known session cookie (carol's: exempt, verified by her JWT login) and log
/// in as someone else. The form used to be skipped because an identity was already known, so
/// the new login was decided as carol and its new session learned as carol's. Now it is an
/// `identity_conflict`, decided on the form's user unverified, and the new session is learned
/// as the form's user (unverified), never the cookie owner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_does_not_hide_a_login_as_someone_else() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = start(&fx, &up, "").await;
    let proxy = running.addr("sso").unwrap();

    let carol = session_id(1);
    let set = format!("SESSION={carol}; Path=/");
    let auth = bearer(&hs256_token("carol"));
    let (parts, _) = get(
        "127.1.4.1",
        proxy,
        "/sso",
        &[("authorization", &auth), (SET_COOKIE_ON_REQUEST, &set)],
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    // From Berlin, with carol's cookie, a login as alice; the portal issues a new session.
    let fresh = session_id(2);
    let set = format!("SESSION={fresh}; Path=/");
    let cookie = format!("SESSION={carol}");
    let (parts, _) = post(
        "127.6.4.2",
        proxy,
        "/login",
        &[
            ("content-type", FORM),
            ("cookie", &cookie),
            (SET_COOKIE_ON_REQUEST, &set),
        ],
        b"username=alice&password=pw",
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    // The new session, used from home.
    let cookie = format!("SESSION={fresh}");
    let (parts, _) = get("127.1.4.3", proxy, "/mail", &[("cookie", &cookie)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    // With carol's cookie, a login nobody can read; the portal issues yet another session,
    // which must not become carol's (whose login was it?).
    let unread = session_id(5);
    let set = format!("SESSION={unread}; Path=/");
    let cookie = format!("SESSION={carol}");
    let (parts, _) = post(
        "127.1.4.4",
        proxy,
        "/login",
        &[
            ("content-type", "application/xml"),
            ("cookie", &cookie),
            (SET_COOKIE_ON_REQUEST, &set),
        ],
        b"<user>bob</user>",
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let cookie = format!("SESSION={unread}");
    let (parts, _) = get("127.1.4.5", proxy, "/mail", &[("cookie", &cookie)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.6.4.2");
    assert_alice_login_from_berlin(e);
    assert!(
        reasons(e).contains(&"identity_conflict".to_string()),
        "{e:#}"
    );
    assert!(
        problems(e).contains(&"identity sources disagree: session e3007, form alice".to_string()),
        "{e:#}"
    );
    let e = one_event_from(&events, "127.1.4.3");
    assert_eq!(user_of(e), "e1042", "learned as the form's user: {e:#}");
    assert_eq!(identity(e)["source"], "session", "{e:#}");
    assert_eq!(
        identity(e)["verified"],
        false,
        "a typed-in name stays unverified: {e:#}"
    );
    let e = one_event_from(&events, "127.1.4.4");
    assert_eq!(reasons(e), ["identity_unreadable"], "{e:#}");
    assert_eq!(
        identity(e)["verified"],
        false,
        "carol's session is in doubt: {e:#}"
    );
    let e = one_event_from(&events, "127.1.4.5");
    assert!(e["user"].is_null(), "nothing was learned: {e:#}");
    running.shutdown().await;
}

/// Attack: a stolen session cookie sent behind a junk value of the same name (locgate read the
/// first value, many frameworks use the last), and two known sessions of different people on
/// one request: both are `identity_conflict` now, never an anonymous allow or one person's
/// session standing for the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_session_cookie_is_a_conflict() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = start(&fx, &up, "").await;
    let proxy = running.addr("sso").unwrap();
    let alice = session_id(3);
    let bob = session_id(4);
    for (src, user, id) in [("127.1.5.1", "alice", &alice), ("127.1.5.2", "bob", &bob)] {
        let set = format!("SESSION={id}; Path=/");
        let auth = basic_auth(user, "pw");
        let (parts, _) = get(
            src,
            proxy,
            "/sso",
            &[("authorization", &auth), (SET_COOKIE_ON_REQUEST, &set)],
        )
        .await;
        assert_eq!(parts.status, UPSTREAM_STATUS);
    }

    // From Berlin (an anonymous request there is a plain allow): junk first, stolen last.
    let junk_first = format!("SESSION=0000000000000000junk; theme=dark; SESSION={alice}");
    let (parts, _) = get("127.6.5.3", proxy, "/mail", &[("cookie", &junk_first)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    // From home, two Cookie lines naming alice's and bob's sessions.
    let (a, b) = (format!("SESSION={alice}"), format!("SESSION={bob}"));
    let (parts, _) = get(
        "127.1.5.4",
        proxy,
        "/mail",
        &[("cookie", &a), ("cookie", &b)],
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    // The same value twice is no ambiguity.
    let twice = format!("SESSION={alice}; SESSION=\"{alice}\"");
    let (parts, _) = get("127.1.5.5", proxy, "/mail", &[("cookie", &twice)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.6.5.3");
    assert_eq!(e["event"]["action"], "flag", "{e:#}");
    assert!(
        reasons(e).contains(&"identity_conflict".to_string()),
        "{e:#}"
    );
    assert_eq!(
        user_of(e),
        "e1042",
        "the known session still names alice: {e:#}"
    );
    assert_eq!(
        problems(e),
        ["cookie SESSION sent with different values"],
        "{e:#}"
    );
    assert!(
        !e.to_string().contains(&alice),
        "no cookie values in events"
    );

    let e = one_event_from(&events, "127.1.5.4");
    assert_eq!(e["event"]["action"], "flag", "{e:#}");
    assert_eq!(reasons(e), ["identity_conflict"], "{e:#}");
    assert_eq!(
        problems(e),
        [
            "cookie SESSION sent with different values",
            "identity sources disagree: session e1042, session e2001"
        ],
        "{e:#}"
    );
    assert_eq!(identity(e)["verified"], false, "{e:#}");

    let e = one_event_from(&events, "127.1.5.5");
    assert_eq!(e["event"]["action"], "allow", "{e:#}");
    assert_eq!(user_of(e), "e1042", "{e:#}");
    assert!(problems(e).is_empty(), "{e:#}");
    running.shutdown().await;
}

/// Attack: probe the dodges from one address; the allow throttle folded every request after
/// the first into one event, so no event showed the attempts. Now every request whose identity
/// had a problem gets its own event, while clean allows are still folded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_with_an_identity_problem_gets_its_own_event() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = start(&fx, &up, "").await;
    let proxy = running.addr("sso").unwrap();
    let src = "127.1.6.1";
    // Allowed (from home), but each carries a Basic header locgate cannot read.
    for _ in 0..3 {
        let (parts, _) = get(src, proxy, "/app", &[("authorization", "Basic !!!")]).await;
        assert_eq!(parts.status, UPSTREAM_STATUS);
    }
    // Two clean allows: the first is written, the second folded.
    for _ in 0..2 {
        let (parts, _) = get(src, proxy, "/app", &[]).await;
        assert_eq!(parts.status, UPSTREAM_STATUS);
    }
    let events = fx.events(&running).await;
    let mine = events_from(&events, src);
    assert_eq!(mine.len(), 4, "{mine:#?}");
    let with_problems = mine.iter().filter(|e| !problems(e).is_empty()).count();
    assert_eq!(with_problems, 3, "{mine:#?}");
    assert!(mine.iter().all(|e| e["event"]["action"] == "allow"));
    running.shutdown().await;
}

/// The control: a browser's ordinary login from home is read and allowed (what the attacks
/// above are measured against).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_login_from_home_is_allowed() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = start(&fx, &up, "").await;
    let proxy = running.addr("sso").unwrap();
    let status = raw_post(
        "127.1.7.1",
        proxy,
        "/login",
        FORM,
        b"username=alice&password=pw",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 201"), "{status}");
    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.1.7.1");
    assert_eq!(e["event"]["action"], "allow", "{e:#}");
    assert_eq!(user_of(e), "e1042", "{e:#}");
    running.shutdown().await;
}
