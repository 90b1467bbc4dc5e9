//! The round-trip-time signal over a really slow path: a client whose packets take 120 ms each
//! way is flagged as relayed, one next door is not, though both addresses map to Austin, where
//! the gateway is. The delay is real (see `common::delay_line`: TUN devices between network
//! namespaces, because this kernel has no `tc netem`); the gateway measures it with its own
//! kernel's `TCP_INFO` as in production.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::delay_line::{self, DelayLine, Netns};
use common::*;
use serde_json::Value as Json;

/// One way, each direction: a 240 ms round trip, eight times what Austin-to-Austin may take
/// (`rtt_factor` 3 x 20 km accuracy radius, + 30 ms slack = 30.6 ms).
const FAR: Duration = Duration::from_millis(120);

/// A plain HTTP/1.1 GET over a std socket from the calling thread (which is in the client
/// namespace): the whole answer, and how long the TCP handshake took as the client saw it.
fn http_get(to: SocketAddr) -> (String, Duration) {
    let started = Instant::now();
    let mut s =
        TcpStream::connect_timeout(&to, STEP).unwrap_or_else(|e| panic!("connect {to}: {e}"));
    let handshake = started.elapsed();
    s.set_read_timeout(Some(STEP)).expect("timeout");
    s.set_write_timeout(Some(STEP)).expect("timeout");
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read the answer");
    (String::from_utf8_lossy(&answer).into_owned(), handshake)
}

#[test]
fn a_client_whose_packets_take_long_is_relayed_and_one_next_door_is_not() {
    if let Some(why) = delay_line::missing() {
        // `.ci/run` sets LOCGATE_REQUIRE_NETNS where it found root, /dev/net/tun and `ip`:
        // there a skip would hide a broken test, so it fails instead.
        assert!(
            std::env::var_os("LOCGATE_REQUIRE_NETNS").is_none(),
            "the delay-line test needs {why}, and LOCGATE_REQUIRE_NETNS is set"
        );
        eprintln!("SKIPPED: the delay-line test needs {why}");
        return;
    }
    let gateway = Netns::new().expect("gateway namespace");
    let client = Netns::new().expect("client namespace");
    let near = DelayLine::new(&client, &gateway, 1, Duration::ZERO).expect("near line");
    let far = DelayLine::new(&client, &gateway, 2, FAR).expect("far line");

    // The gateway, its upstream and their runtime all live in the gateway namespace.
    let (events, handshakes) = gateway.run(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let fx = Fixture::new();
            let up = Upstream::start().await;
            let running = fx
                .start_with(
                    &listener_at("app", "0.0.0.0:0", &up.url(), "mode = \"enforce\""),
                    // The gateway says it is in Austin, Texas.
                    "[network]\nlocation = { lat = 30.2672, lon = -97.7431 }\n",
                )
                .await;
            let port = running.addr("app").expect("app listener").port();
            let mut handshakes = Vec::new();
            for line in [&near, &far] {
                // The runtime's workers serve it while this thread is the client.
                let to = SocketAddr::new(line.gateway.into(), port);
                let (answer, handshake) = client.run(|| http_get(to));
                assert!(answer.starts_with("HTTP/1.1 201 "), "{to}: {answer}");
                handshakes.push(handshake);
            }
            (fx.events(&running).await, handshakes)
        })
    });
    // The wire itself: the client waited a round trip for the SYN-ACK.
    eprintln!(
        "client-side handshakes: near {:?}, far {:?}",
        handshakes[0], handshakes[1]
    );
    assert!(handshakes[0] < Duration::from_millis(50), "{handshakes:?}");
    assert!(handshakes[1] >= 2 * FAR, "{handshakes:?}");

    let rtt = |e: &Json| e["locgate"]["network"]["rtt_ms"].as_f64().expect("rtt_ms");
    let relayed = |e: &Json| reasons(e).contains(&"latency_inconsistent".to_string());

    let n = one_event_from(&events, &near.client.to_string());
    let f = one_event_from(&events, &far.client.to_string());
    eprintln!(
        "gateway-measured RTT: near {} ms, far {} ms",
        rtt(n),
        rtt(f)
    );

    // Next door: a tiny RTT, the floor recorded (0 within Austin), nothing to say.
    assert_eq!(n["event"]["action"], "allow", "{n:#}");
    assert!(rtt(n) < 20.0, "{n:#}");
    assert_eq!(n["locgate"]["network"]["rtt_floor_ms"], 0.0, "{n:#}");
    assert!(!relayed(n), "{n:#}");

    // Far away: the kernel measured the slow wire, and the sentence says what it means.
    assert!((200.0..1000.0).contains(&rtt(f)), "{f:#}");
    assert_eq!(f["locgate"]["network"]["rtt_floor_ms"], 0.0, "{f:#}");
    assert!(relayed(f), "{f:#}");
    assert_eq!(f["event"]["action"], "flag", "{f:#}");
    let message = f["message"].as_str().expect("message");
    assert!(
        message.contains("is far above") && message.contains("probably relayed"),
        "{f:#}"
    );
    assert!(message.contains("Austin"), "{f:#}");
    // Both are in Austin by their addresses: only the wire differs.
    for e in [n, f] {
        assert_eq!(e["source"]["geo"]["city_name"], "Austin", "{e:#}");
    }
}
