//! Wire signals through the running proxy: the kernel's RTT against physics, recorded in events.
//! (A really delayed path, the "relayed" branch, is in `wire_delay.rs`.)

mod common;

use common::*;
use serde_json::Value as Json;

fn network_section() -> &'static str {
    // The gateway says it is in Austin, Texas.
    "[network]\nlocation = { lat = 30.2672, lon = -97.7431 }\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_client_claiming_berlin_is_too_close_to_be_in_berlin() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener(
                "app",
                &up.url(),
                "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]",
            ),
            network_section(),
        )
        .await;
    let proxy = running.addr("app").unwrap();
    for src in [DE_CLIENT, US_CLIENT] {
        let (parts, _) = get(src, proxy, "/", &[]).await;
        assert_eq!(parts.status, UPSTREAM_STATUS, "{src}");
    }
    // Through a trusted proxy the socket RTT is the proxy's: nothing is judged or recorded.
    let (parts, _) = get(LOCAL, proxy, "/", &[("x-forwarded-for", "127.6.0.77")]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let events = fx.events(&running).await;
    let de: &Json = one_event_from(&events, DE_CLIENT);
    assert_eq!(de["event"]["action"], "flag", "{de:#}");
    assert!(
        reasons(de).contains(&"latency_inconsistent".to_string()),
        "{de:#}"
    );
    let net = &de["locgate"]["network"];
    assert!(net["rtt_ms"].as_f64().unwrap() < 5.0, "{de:#}");
    let floor = net["rtt_floor_ms"].as_f64().unwrap();
    assert!(
        (80.0..95.0).contains(&floor),
        "Austin-Berlin is ~8,650 km: {floor}"
    );
    assert!(
        de["message"].as_str().unwrap().contains("light in fibre"),
        "{de:#}"
    );

    // Austin itself (within its accuracy radius): the floor is 0, nothing to say; the allow
    // event still carries the measurement.
    let us = one_event_from(&events, US_CLIENT);
    assert!(
        !reasons(us).contains(&"latency_inconsistent".to_string()),
        "{us:#}"
    );
    assert_eq!(us["locgate"]["network"]["rtt_floor_ms"], 0.0, "{us:#}");

    let relayed = one_event_from(&events, "127.6.0.77");
    assert!(relayed["locgate"]["network"].is_null(), "{relayed:#}");
    assert!(!reasons(relayed).contains(&"latency_inconsistent".to_string()));
}

#[test]
fn a_bad_gateway_location_is_a_config_error() {
    let fx = Fixture::new();
    let config = fx.write(
        "bad.toml",
        &fx.config_text_with("", "[network]\nlocation = { lat = 95.0, lon = 0.0 }\n"),
    );
    let out = locgate_bin(&["validate", "-c", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("network.location"), "{}", out.stderr);
}
