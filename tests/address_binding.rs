//! Identity follows the address from the SSO login to the tunnel (issue 15, point 1): a verified
//! login on an HTTP listener with `bind_address` binds the client address to the employee, and a
//! TCP pass-through connection from that address is judged as them, through the real server on
//! loopback (127.x addresses placed by the test databases: 127.1 Austin, 127.6 Berlin).

mod common;

use std::net::SocketAddr;

use common::*;
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The SSO listener (a trusted loopback auth proxy names client and user) and a TCP
/// pass-through listener in enforce mode in front of an echo upstream.
fn listeners(bind_address: &str, upstream: SocketAddr) -> String {
    let sso = listener(
        "sso",
        "builtin:whoami",
        &format!(
            "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\n\
             identity = [ {{ header = \"X-Remote-User\" }} ]\n{bind_address}"
        ),
    );
    let vpn = listener(
        "vpn",
        &upstream.to_string(),
        "kind = \"tcp\"\nmode = \"enforce\"",
    );
    format!("{sso}{vpn}")
}

/// Starts the two listeners (`bind_address` on the SSO one, as given) with the standard
/// directory: the fixture, the server, and the SSO and VPN addresses.
async fn start(bind_address: &str) -> (Fixture, locgate::serve::Running, SocketAddr, SocketAddr) {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let upstream = tcp_echo_upstream().await;
    let running = fx
        .start_with(
            &listeners(bind_address, upstream),
            &employees_section("employees.toml"),
        )
        .await;
    let sso = running.addr("sso").expect("sso");
    let vpn = running.addr("vpn").expect("vpn");
    (fx, running, sso, vpn)
}

/// Opens a tunnel from `client`: whether bytes came back.
async fn tunnel(vpn: SocketAddr, client: &str) -> bool {
    let mut s = connect_from(client, vpn).await;
    if s.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut buf)).await,
        Ok(Ok(_))
    ) && &buf == b"ping"
}

fn tcp_events<'a>(events: &'a [Json], ip: &str) -> Vec<&'a Json> {
    events
        .iter()
        .filter(|e| e["http"].is_null() && e["source"]["ip"] == ip)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_from_an_address_bound_at_login_is_judged_as_that_employee() {
    let (fx, running, sso, vpn) = start("bind_address = \"12h\"").await;

    // alice (e1042, declared Austin) signs in from Berlin; dave (e4001, also Austin, allowed DE)
    // from another Berlin address. 127.6.0.30 has no login at all.
    assert_eq!(sso_login(sso, "127.6.0.10", "alice").await, 200);
    assert_eq!(sso_login(sso, "127.6.0.20", "dave").await, 200);
    // Their tunnels: judged with each one's declaration, named in the event.
    assert!(tunnel(vpn, "127.6.0.10").await, "a flag still passes");
    assert!(tunnel(vpn, "127.6.0.20").await);
    assert!(tunnel(vpn, "127.6.0.30").await);
    // Three employees behind one Austin address: a laptop farm, at layer 4 too.
    for user in ["alice", "bob", "dave"] {
        assert_eq!(sso_login(sso, "127.1.0.50", user).await, 200);
    }
    assert!(tunnel(vpn, "127.1.0.50").await);

    let events = fx.events(&running).await;
    let alice = tcp_events(&events, "127.6.0.10");
    assert!(!alice.is_empty(), "no tunnel event: {events:#?}");
    let e = alice[0];
    assert_eq!(user_of(e), "e1042", "{e:#}");
    assert_eq!(
        e["locgate"]["identity"]["source"], "address_binding",
        "{e:#}"
    );
    assert_eq!(e["event"]["action"], "flag", "{e:#}");
    assert!(
        reasons(e).contains(&"country_mismatch".to_string()),
        "{e:#}"
    );

    // dave may work from Germany, but an address binding is an inference, not his proof: his
    // allowance does not loosen the tunnel's decision, and the sentence says so.
    let dave = tcp_events(&events, "127.6.0.20");
    let e = dave.first().expect("dave's tunnel");
    assert_eq!(user_of(e), "e4001", "{e:#}");
    assert_eq!(e["locgate"]["identity"]["verified"], false, "{e:#}");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("not applied because the identity is not verified"),
        "{e:#}"
    );

    let nobody = tcp_events(&events, "127.6.0.30");
    assert!(!nobody.is_empty(), "the first allow of a client is written");
    for e in nobody {
        assert!(e["user"].is_null(), "nobody signed in from there: {e:#}");
        assert!(reasons(e).is_empty(), "{e:#}");
    }

    let farm = tcp_events(&events, "127.1.0.50");
    let e = farm.first().expect("the farm's tunnel");
    assert!(reasons(e).contains(&"shared_egress".to_string()), "{e:#}");
    assert!(
        e["user"].is_null(),
        "several people: nobody is named: {e:#}"
    );
    assert!(
        e["message"].as_str().unwrap_or("").contains("e1042")
            && e["message"].as_str().unwrap_or("").contains("e2001"),
        "{e:#}"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_verified_login_on_a_binding_listener_binds() {
    let (fx, running, sso, vpn) = start("").await;
    // Without bind_address, a login binds nothing.
    assert_eq!(sso_login(sso, "127.6.0.11", "alice").await, 200);
    // The identity header straight from the client (not from the auth proxy) is not believed,
    // so it could not bind either.
    let (parts, _) = get("127.6.0.12", sso, "/login", &[("x-remote-user", "alice")]).await;
    assert_eq!(parts.status, 200);
    assert!(tunnel(vpn, "127.6.0.11").await);
    assert!(tunnel(vpn, "127.6.0.12").await);
    let events = fx.events(&running).await;
    for ip in ["127.6.0.11", "127.6.0.12"] {
        let tunnels = tcp_events(&events, ip);
        assert!(!tunnels.is_empty(), "no event for {ip}");
        for e in tunnels {
            assert!(e["user"].is_null(), "{e:#}");
        }
    }
    running.shutdown().await;
}

#[test]
fn bind_address_is_refused_where_no_login_is_seen() {
    let fx = Fixture::new();
    let tcp = listener(
        "vpn",
        "127.0.0.1:9",
        "kind = \"tcp\"\nbind_address = \"12h\"",
    );
    let err = locgate::config::Config::parse(&fx.config_text(&tcp), "t.toml", fx.dir.path())
        .expect_err("a tcp listener cannot bind");
    assert!(err.to_string().contains("bind_address"), "{err}");
    let no_identity = listener("sso", "builtin:whoami", "bind_address = \"12h\"");
    let err =
        locgate::config::Config::parse(&fx.config_text(&no_identity), "t.toml", fx.dir.path())
            .expect_err("no identity sources");
    assert!(err.to_string().contains("no identity sources"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_opened_before_the_login_is_judged_again_once_its_address_is_bound() {
    let (fx, running, sso, vpn) = start("bind_address = \"12h\"").await;
    // The tunnel first: an anonymous Berlin address, allowed.
    let mut s = connect_from("127.6.0.40", vpn).await;
    s.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    within("echo", s.read_exact(&mut buf)).await.expect("echo");
    // Then alice (declared Austin) signs in from the same address: the open tunnel is now hers.
    assert_eq!(sso_login(sso, "127.6.0.40", "alice").await, 200);
    let redecided = |e: &Json| {
        e["http"].is_null() && e["source"]["ip"] == "127.6.0.40" && e["event"]["action"] == "flag"
    };
    let events = fx.events_until(&running, redecided).await;
    let e = events
        .iter()
        .find(|e| redecided(e))
        .expect("a re-decision once the address was bound");
    assert_eq!(user_of(e), "e1042", "{e:#}");
    assert!(
        reasons(e).contains(&"country_mismatch".to_string()),
        "{e:#}"
    );
    // A flag does not close it.
    s.write_all(b"pong").await.expect("write");
    within("echo", s.read_exact(&mut buf))
        .await
        .expect("still open");
    drop(s);
    running.shutdown().await;
}
