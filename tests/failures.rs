//! When things go wrong: a dead or silent upstream, malformed or oversized requests. Each must
//! get a clean status, leave an event, and leave the gateway serving.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use hyper_util::rt::TokioIo;
use locgate::serve::Running;
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn reference_in(text: &[u8]) -> String {
    let text = std::str::from_utf8(text).expect("UTF-8");
    let at = text.find("Reference: ").expect("a reference") + "Reference: ".len();
    text[at..].trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_gives_502_with_a_reference_and_the_gateway_recovers() {
    let fx = Fixture::new();
    let dead = closed_port();
    let running = fx
        .start(&listener(
            "app",
            &format!("http://{dead}"),
            "mode = \"enforce\"\nconnect_timeout = \"2s\"",
        ))
        .await;
    let proxy = running.addr("app").unwrap();

    let (parts, body) = get(US_CLIENT, proxy, "/dashboard", &[]).await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    let id = reference_in(&body);
    assert!(!id.is_empty());
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains(&dead.ip().to_string()) && !text.contains(&format!(":{}", dead.port())),
        "the client is not told where the upstream is: {text}"
    );

    // The upstream comes back on the same address: the same listener serves again.
    let up = Upstream::start_on(dead).await;
    let (parts, body) = get(US_CLIENT, proxy, "/dashboard", &[]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    assert_eq!(&body[..], UPSTREAM_BODY);
    assert_eq!(up.only().target, "/dashboard");

    let stats = &running.shared.auditor.stats;
    assert_eq!(stats.upstream_errors.load(Ordering::Relaxed), 1);
    running.shutdown().await;
    let events = read_events(&fx.events);
    let e = event_with_id(&events, &id);
    assert_eq!(e["http"]["response"]["status_code"], 502);
    assert_eq!(e["source"]["ip"], US_CLIENT);
    let error = e["locgate"]["error"].as_str().expect("locgate.error");
    assert!(
        error.contains("upstream") && error.contains(&dead.to_string()),
        "locgate.error = {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_gives_504_after_the_response_timeout() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener(
            "app",
            &up.url(),
            "mode = \"enforce\"\nresponse_timeout = \"1s\"",
        ))
        .await;
    let proxy = running.addr("app").unwrap();

    let started = Instant::now();
    let (parts, body) = get(US_CLIENT, proxy, "/slow", &[]).await;
    let took = started.elapsed();
    assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    let id = reference_in(&body);
    assert_eq!(up.only().target, "/slow");

    // Other requests are unaffected.
    let (parts, _) = get(US_CLIENT, proxy, "/fast", &[]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    within("shutdown", running.shutdown()).await;
    let events = read_events(&fx.events);
    let e = event_with_id(&events, &id);
    assert_eq!(e["http"]["response"]["status_code"], 504);
    let error = e["locgate"]["error"].as_str().expect("locgate.error");
    assert!(error.contains("upstream"), "locgate.error = {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_gets_400_and_the_gateway_keeps_serving() {
    let App {
        fx,
        up,
        running,
        proxy,
    } = App::start("mode = \"enforce\"").await;

    let answer = raw_exchange(
        US_CLIENT,
        proxy,
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "answer: {answer:?}");
    assert!(up.seen().is_empty());

    let (parts, _) = get(US_CLIENT, proxy, "/", &[]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let events = stop_after_one_bad_request(&fx, running).await;
    let bad = one_refusal(&events, 400);
    assert!(
        bad["locgate"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("malformed"),
        "{}",
        bad
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431_and_the_gateway_keeps_serving() {
    let App {
        fx,
        up,
        running,
        proxy,
    } = App::start("mode = \"enforce\"").await;

    let with_header = |size: usize| {
        let mut req =
            b"GET /big-header HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', size));
        req.extend_from_slice(b"\r\n\r\n");
        req
    };

    // 48 KB of headers is within the default 64 KiB limit: forwarded intact.
    let answer = raw_exchange(US_CLIENT, proxy, with_header(48 * 1024)).await;
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "answer: {:?}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(up.only().header("x-big").map(|v| v.len()), Some(48 * 1024));

    // 1 MB is refused by the HTTP layer before it reaches policy or upstream.
    let answer = raw_exchange(US_CLIENT, proxy, with_header(1024 * 1024)).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "answer: {:?}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(up.seen().len(), 1, "the 1 MB request reached the upstream");

    let (parts, _) = get(US_CLIENT, proxy, "/after", &[]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let events = stop_after_one_bad_request(&fx, running).await;
    one_refusal(&events, 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_in_its_headers_is_cut_off_and_recorded_but_idle_ones_are_not() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener(
            "app",
            &up.url(),
            "mode = \"enforce\"\nheader_read_timeout = \"1s\"\nkeepalive_timeout = \"1s\"",
        ))
        .await;
    let proxy = running.addr("app").unwrap();

    // Three clients at once, each for about the header read timeout:
    // a keep-alive client that finished its request and stays idle,
    let idle = raw_exchange(
        US_CLIENT,
        proxy,
        b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    );
    // one that connects and never says anything (a browser's pre-connect),
    let silent = raw_exchange("127.1.0.10", proxy, Vec::new());
    // and a slowloris that stops halfway through its headers.
    let stalled = raw_exchange(
        "127.1.0.11",
        proxy,
        b"GET /slow-client HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n".to_vec(),
    );
    let started = Instant::now();
    let (idle, silent, stalled) = tokio::join!(idle, silent, stalled);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "connections closed after {took:?}"
    );
    assert!(idle.starts_with("HTTP/1.1 201"), "{idle:?}");
    assert!(silent.is_empty(), "{silent:?}");
    assert!(!stalled.starts_with("HTTP/1.1 2"), "{stalled:?}");
    assert_eq!(up.only().target, "/idle");

    let events = stop_after_one_bad_request(&fx, running).await;
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events_from(&events, US_CLIENT).len(), 1, "{events:#?}");
    assert_eq!(
        events_from(&events, US_CLIENT)[0]["http"]["response"]["status_code"],
        201
    );
    assert!(events_from(&events, "127.1.0.10").is_empty(), "{events:#?}");
    let slow = events_from(&events, "127.1.0.11");
    assert_eq!(slow.len(), 1, "{events:#?}");
    assert_eq!(slow[0]["http"]["response"]["status_code"], 408);
    assert!(
        slow[0]["locgate"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("timeout"),
        "{}",
        slow[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_cut_short_by_the_upstream_is_not_passed_off_as_complete() {
    let fx = Fixture::new();
    // An upstream that promises 1000 bytes, sends 10 and hangs up.
    let liar = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let liar_addr = liar.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = liar.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                    .await;
            });
        }
    });
    let running = fx
        .start(&listener("app", &format!("http://{liar_addr}"), ""))
        .await;
    let proxy = running.addr("app").unwrap();

    // Either the response never completes its headers or its body fails: both tell the client
    // the transfer broke. What must not happen is a clean 10-byte body.
    let stream = connect_from(US_CLIENT, proxy).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = request("GET", "/file")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    match within("response", sender.send_request(req)).await {
        Err(e) => assert!(e.is_incomplete_message(), "{e:?}"),
        Ok(resp) => {
            assert_eq!(resp.status(), StatusCode::OK);
            let body = within(
                "truncated body",
                http_body_util::BodyExt::collect(resp.into_body()),
            )
            .await;
            assert!(body.is_err(), "the client got a clean short body");
        }
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_refused_with_405_and_recorded() {
    let App {
        fx,
        up,
        running,
        proxy,
    } = App::start("mode = \"enforce\"").await;

    let answer = raw_exchange(
        US_CLIENT,
        proxy,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "answer: {answer:?}");
    assert!(up.seen().is_empty());
    running.shutdown().await;
    let events = read_events(&fx.events);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["http"]["response"]["status_code"], 405);
    assert_eq!(events[0]["http"]["request"]["method"], "CONNECT");
}

/// Stops the gateway and returns its events, checking exactly one malformed request was counted.
/// The connection task records after the client has its answer, and shutdown waits for it.
async fn stop_after_one_bad_request(fx: &Fixture, running: Running) -> Vec<Json> {
    let stats = running.shared.auditor.stats.clone();
    running.shutdown().await;
    assert_eq!(stats.bad_requests.load(Ordering::Relaxed), 1);
    read_events(&fx.events)
}

/// The one event answered with `status`, which must be the US client's.
fn one_refusal(events: &[Json], status: u16) -> &Json {
    let mine: Vec<&Json> = events
        .iter()
        .filter(|e| e["http"]["response"]["status_code"] == status)
        .collect();
    assert_eq!(mine.len(), 1, "{events:#?}");
    assert_eq!(mine[0]["source"]["ip"], US_CLIENT);
    mine[0]
}
