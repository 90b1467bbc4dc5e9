//! Which address a request is judged by: the socket peer, a trusted proxy's forwarding header,
//! and IPv6.

mod common;

use common::*;
use http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&format!(
            "{}{}",
            listener(
                "enforce",
                &up.url(),
                "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]"
            ),
            listener_at(
                "monitor",
                "127.0.0.2:0",
                &up.url(),
                "mode = \"monitor\"\nannotate = true\ntrusted_proxies = [\"127.0.0.1/32\"]"
            ),
        ))
        .await;
    let enforce = running.addr("enforce").unwrap();

    for spoof in ["8.8.8.8", "127.1.0.9", "127.1.0.9, 127.0.0.1"] {
        let (parts, _) = get(KP_CLIENT, enforce, "/", &[("x-forwarded-for", spoof)]).await;
        assert_eq!(parts.status, StatusCode::FORBIDDEN, "spoofed XFF {spoof}");
    }
    let (parts, _) = get(KP_CLIENT, enforce, "/", &[("forwarded", "for=127.1.0.9")]).await;
    assert_eq!(parts.status, StatusCode::FORBIDDEN, "spoofed Forwarded");
    assert!(up.seen().is_empty());

    // Forwarded (monitor mode): the upstream must not see the client's invented chain either.
    let (parts, _) = get(
        KP_CLIENT,
        running.addr("monitor").unwrap(),
        "/",
        &[
            ("x-forwarded-for", "127.1.0.9"),
            ("forwarded", "for=8.8.8.8;proto=https"),
            ("x-real-ip", "8.8.8.8"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let seen = up.only();
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some(KP_CLIENT));
    let fwd = seen.header("forwarded").unwrap();
    assert!(
        !fwd.contains("8.8.8.8") && fwd.contains(&format!("for={KP_CLIENT}")),
        "Forwarded = {fwd}"
    );
    assert_eq!(seen.header("x-real-ip"), None);
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen.header("x-locgate-verdict").as_deref(), Some("block"));
    assert_eq!(seen.header("x-locgate-country").as_deref(), Some("KP"));

    running.shutdown().await;
    let events = read_events(&fx.events);
    assert_eq!(events.len(), 5, "{events:#?}");
    for e in &events {
        assert_eq!(e["source"]["ip"], KP_CLIENT, "{e}");
        assert_eq!(e["locgate"]["client_addr_source"], "peer", "{e}");
        assert_eq!(e["locgate"]["verdict"], "block", "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_x_forwarded_for_names_the_client() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener(
            "behind-lb",
            &up.url(),
            "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
        ))
        .await;
    let proxy = running.addr("behind-lb").unwrap();

    // The load balancer (127.0.0.1) vouches for a North Korean client.
    let (parts, body) = get(LOCAL, proxy, "/", &[("x-forwarded-for", "127.2.0.7")]).await;
    assert_eq!(parts.status, StatusCode::FORBIDDEN);
    let id = html_reference(&body);
    assert!(up.seen().is_empty());

    // ... and for a client in Austin, whose chain reaches the upstream extended by one hop.
    let (parts, _) = get(
        LOCAL,
        proxy,
        "/",
        &[("x-forwarded-for", "203.0.113.9, 127.1.0.20")],
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let seen = up.only();
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.1.0.20, 127.0.0.1")
    );

    running.shutdown().await;
    let events = read_events(&fx.events);
    let e = event_with_id(&events, &id);
    assert_eq!(e["event"]["action"], "block");
    assert_eq!(e["source"]["ip"], "127.2.0.7");
    assert_eq!(e["source"]["geo"]["country_iso_code"], "KP");
    assert_eq!(e["locgate"]["client_addr_source"], "x-forwarded-for");
    assert_eq!(e["locgate"]["peer_ip"], LOCAL);
    let allowed = events_from(&events, "127.1.0.20");
    assert_eq!(allowed.len(), 1, "{events:#?}");
    assert_eq!(allowed[0]["event"]["action"], "allow");
    assert_eq!(
        allowed[0]["locgate"]["client_addr_source"],
        "x-forwarded-for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_forwarded_header_names_the_client_when_pinned() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener(
            "rfc7239",
            &up.url(),
            "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nclient_ip_header = \"forwarded\"",
        ))
        .await;
    let proxy = running.addr("rfc7239").unwrap();

    let (parts, body) = get(
        LOCAL,
        proxy,
        "/",
        &[("forwarded", "for=127.2.0.8;proto=https")],
    )
    .await;
    assert_eq!(parts.status, StatusCode::FORBIDDEN);
    let id = html_reference(&body);

    // Pinned to Forwarded: an X-Forwarded-For passed through by the proxy is not believed, so a
    // North Korean address there does not count; the request is judged by the peer (an internal
    // address: noted, forwarded).
    let (parts, _) = get(LOCAL, proxy, "/", &[("x-forwarded-for", "127.2.0.9")]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    running.shutdown().await;
    let events = read_events(&fx.events);
    let e = event_with_id(&events, &id);
    assert_eq!(e["source"]["ip"], "127.2.0.8");
    assert_eq!(e["locgate"]["client_addr_source"], "forwarded");
    assert!(reasons(e).iter().any(|r| r == "sanctioned_country"), "{e}");
    let flagged = events_from(&events, LOCAL);
    assert_eq!(flagged.len(), 1, "{events:#?}");
    assert_eq!(flagged[0]["event"]["action"], "note");
    assert!(
        reasons(flagged[0]).iter().any(|r| r == "internal_address"),
        "{}",
        flagged[0]
    );
    assert_eq!(flagged[0]["locgate"]["client_addr_source"], "peer");
    assert!(events_from(&events, "127.2.0.9").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_are_located_and_forwarded() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener_at(
            "v6",
            "[::1]:0",
            &up.url(),
            "mode = \"enforce\"\nannotate = true",
        ))
        .await;
    let proxy = running.addr("v6").unwrap();
    assert!(proxy.is_ipv6(), "{proxy}");

    let (parts, body) = get("::1", proxy, "/v6?q=1", &[]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    assert_eq!(&body[..], UPSTREAM_BODY);
    let seen = up.only();
    assert_eq!(seen.target, "/v6?q=1");
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("::1"));
    let fwd = seen.header("forwarded").unwrap();
    assert!(fwd.contains("for=\"[::1]\""), "Forwarded = {fwd}");
    assert_eq!(seen.header("x-locgate-verdict").as_deref(), Some("allow"));
    assert_eq!(seen.header("x-locgate-country").as_deref(), Some("CA"));

    running.shutdown().await;
    let events = read_events(&fx.events);
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e["source"]["ip"], "::1");
    assert_eq!(e["source"]["geo"]["country_iso_code"], "CA");
    assert_eq!(e["source"]["geo"]["city_name"], "Toronto");
    assert_eq!(e["event"]["action"], "allow");
}
