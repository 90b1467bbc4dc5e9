//! The proxy path end to end: real server on loopback, real upstream, real clients.

mod common;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_request_reaches_upstream_and_response_comes_back_unchanged() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener(
            "app",
            &up.url(),
            "mode = \"enforce\"\nannotate = true",
        ))
        .await;
    let proxy = running.addr("app").expect("listener app");

    let sent_body = b"name=widget&qty=3&note=%00%ff".to_vec();
    let req = request("POST", "/api/items?x=1&y=two%20words")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-custom-request", "kept as is")
        .header("authorization", "Bearer secret-token")
        .body(Full::new(Bytes::from(sent_body.clone())))
        .unwrap();
    let (parts, body) = read_body(send(US_CLIENT, proxy, req).await).await;

    // What the user sees: the upstream's answer, untouched.
    assert_eq!(parts.status, UPSTREAM_STATUS);
    assert_eq!(&body[..], UPSTREAM_BODY);
    assert_eq!(header(&parts, "x-upstream"), Some("reached"));
    assert_eq!(header(&parts, "x-custom-thing"), Some("a; b=\"c, d\""));
    assert_eq!(
        header(&parts, "set-cookie"),
        Some("session=abc123; HttpOnly")
    );
    assert_eq!(header(&parts, "cache-control"), Some("private, max-age=7"));
    assert_eq!(header(&parts, "content-type"), Some("application/x-test"));

    // What the application behind the gateway sees.
    let seen = up.only();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/api/items?x=1&y=two%20words");
    assert_eq!(seen.header("host").as_deref(), Some(HOST));
    assert_eq!(&seen.body[..], &sent_body[..]);
    assert_eq!(
        seen.header("x-custom-request").as_deref(),
        Some("kept as is")
    );
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Bearer secret-token")
    );
    let xff = seen.header("x-forwarded-for").expect("X-Forwarded-For");
    assert!(xff.ends_with(US_CLIENT), "X-Forwarded-For = {xff}");
    assert_eq!(xff, US_CLIENT, "an untrusted client's chain is ours alone");
    let fwd = seen.header("forwarded").expect("Forwarded");
    assert!(
        fwd.contains(&format!("for={US_CLIENT}")) && fwd.contains("proto=http"),
        "Forwarded = {fwd}"
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen.header("x-locgate-verdict").as_deref(), Some("allow"));
    assert_eq!(seen.header("x-locgate-country").as_deref(), Some("US"));
    assert_eq!(seen.header("x-locgate-reasons"), None);

    running.shutdown().await;
    let events = read_events(&fx.events);
    let mine = events_from(&events, US_CLIENT);
    assert_eq!(mine.len(), 1, "{events:#?}");
    let e = mine[0];
    assert_eq!(e["event"]["action"], "allow");
    assert_eq!(e["http"]["response"]["status_code"], 201);
    assert_eq!(e["http"]["request"]["method"], "POST");
    assert_eq!(e["url"]["path"], "/api/items");
    assert_eq!(e["source"]["geo"]["country_iso_code"], "US");
    assert_eq!(e["source"]["geo"]["city_name"], "Austin");
    assert_eq!(e["source"]["geo"]["region_name"], "Texas");
    assert_eq!(e["source"]["geo"]["location"]["lat"], 30.27);
    assert_eq!(e["source"]["geo"]["location"]["lon"], -97.74);
    assert_eq!(e["locgate"]["accuracy_radius_km"], 20.0);
    assert_eq!(e["locgate"]["listener"], "app");
    assert_eq!(e["locgate"]["client_addr_source"], "peer");
    assert!(
        !e.to_string().contains("secret-token") && !e.to_string().contains("y=two"),
        "events carry neither credentials nor queries: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabyte_bodies_stream_through_intact_both_ways() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx.start(&listener("app", &up.url(), "")).await;
    let proxy = running.addr("app").unwrap();

    // Request body: 10 MB, chunked (no Content-Length), so it must be streamed.
    let upload = Bytes::from(pattern(BIG, 3));
    let req = request("PUT", "/upload")
        .body(chunked(upload.clone()))
        .unwrap();
    let (parts, _) = read_body(send(US_CLIENT, proxy, req).await).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let seen = up.only();
    assert_eq!(seen.body.len(), BIG);
    assert!(seen.body == upload, "upload corrupted on the way");

    // Response body: 10 MB, chunked by the upstream.
    let (parts, body) = get(US_CLIENT, proxy, "/big-response", &[]).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body.len(), BIG);
    assert!(body == pattern(BIG, 7), "download corrupted on the way");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sanctioned_country_is_blocked_in_enforce_mode_with_a_reference_in_the_events() {
    let App {
        fx,
        up,
        running,
        proxy,
    } = App::start("mode = \"enforce\"").await;

    let (parts, body) = get(KP_CLIENT, proxy, "/secret?token=x", &[]).await;
    assert_eq!(parts.status, StatusCode::FORBIDDEN);
    assert!(
        header(&parts, "content-type")
            .unwrap()
            .starts_with("text/html"),
        "{parts:?}"
    );
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("Access denied"), "{page}");
    assert!(
        !page.contains("sanction") && !page.contains("KP") && !page.contains("North Korea"),
        "the block page must not explain the rule: {page}"
    );
    let html_ref = html_reference(&body);

    let (parts, body) = get(
        KP_CLIENT,
        proxy,
        "/api/data",
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(parts.status, StatusCode::FORBIDDEN);
    assert_eq!(header(&parts, "content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON 403 body");
    let json_ref = json["reference"].as_str().expect("reference").to_string();
    assert_eq!(json["error"], "access_denied");
    assert_ne!(html_ref, json_ref, "every refusal has its own reference");

    assert!(up.seen().is_empty(), "upstream saw {:#?}", up.seen());

    let events = fx.events(&running).await;
    for (id, path) in [(&html_ref, "/secret"), (&json_ref, "/api/data")] {
        let e = event_with_id(&events, id);
        assert_eq!(e["event"]["action"], "block");
        assert!(reasons(e).iter().any(|r| r == "sanctioned_country"), "{e}");
        assert_eq!(e["source"]["ip"], KP_CLIENT);
        assert_eq!(e["source"]["geo"]["country_iso_code"], "KP");
        assert_eq!(e["source"]["geo"]["city_name"], "Pyongyang");
        assert_eq!(e["http"]["response"]["status_code"], 403);
        assert_eq!(e["url"]["path"], path);
        assert_eq!(e["locgate"]["verdict"], "block");
        assert_eq!(e["locgate"]["mode"], "enforce");
    }
    assert_eq!(events.len(), 2, "{events:#?}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sanctioned_country_is_forwarded_and_flagged_in_monitor_mode() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener(
            "app",
            &up.url(),
            "mode = \"monitor\"\nannotate = true",
        ))
        .await;
    let proxy = running.addr("app").unwrap();

    let (parts, body) = get(KP_CLIENT, proxy, "/report", &[]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    assert_eq!(&body[..], UPSTREAM_BODY);

    let seen = up.only();
    assert_eq!(seen.header("x-locgate-verdict").as_deref(), Some("block"));
    assert_eq!(seen.header("x-locgate-country").as_deref(), Some("KP"));
    let reasons_hdr = seen.header("x-locgate-reasons").expect("reasons header");
    assert!(reasons_hdr.contains("sanctioned_country"), "{reasons_hdr}");

    running.shutdown().await;
    let events = read_events(&fx.events);
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e["event"]["action"], "flag");
    assert_eq!(e["locgate"]["verdict"], "block");
    assert_eq!(e["locgate"]["mode"], "monitor");
    assert!(reasons(e).iter().any(|r| r == "sanctioned_country"), "{e}");
    assert_eq!(e["source"]["ip"], KP_CLIENT);
    assert_eq!(e["http"]["response"]["status_code"], 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_set_or_remove_the_annotation_headers() {
    let fx = Fixture::new();
    let up_annotated = Upstream::start().await;
    let up_plain = Upstream::start().await;
    let running = fx
        .start(&format!(
            "{}{}",
            listener(
                "annotated",
                &up_annotated.url(),
                "mode = \"monitor\"\nannotate = true"
            ),
            // Two listeners may not share a bind address, even with port 0.
            listener_at(
                "plain",
                "127.0.0.2:0",
                &up_plain.url(),
                "mode = \"monitor\""
            ),
        ))
        .await;

    let forged: &[(&str, &str)] = &[
        ("x-locgate-verdict", "allow"),
        ("X-Locgate-Country", "US"),
        ("x-locgate-reasons", ""),
        // Try to make the proxy drop its own headers as hop-by-hop.
        (
            "connection",
            "x-locgate-verdict, x-locgate-country, x-locgate-reasons",
        ),
    ];
    let (parts, _) = get(KP_CLIENT, running.addr("annotated").unwrap(), "/", forged).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let seen = up_annotated.only();
    assert_eq!(seen.header("x-locgate-verdict").as_deref(), Some("block"));
    assert_eq!(seen.header("x-locgate-country").as_deref(), Some("KP"));
    assert!(
        seen.header("x-locgate-reasons")
            .unwrap_or_default()
            .contains("sanctioned_country"),
        "{:?}",
        seen.headers
    );

    // Without annotation the upstream gets no verdict at all, not the client's.
    let (parts, _) = get(
        US_CLIENT,
        running.addr("plain").unwrap(),
        "/",
        &[("x-locgate-verdict", "allow"), ("x-locgate-country", "US")],
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let seen = up_plain.only();
    for h in [
        "x-locgate-verdict",
        "x-locgate-country",
        "x-locgate-reasons",
    ] {
        assert_eq!(seen.header(h), None, "{h} reached the upstream");
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_tunnelled_both_ways() {
    let App {
        fx,
        up,
        running,
        proxy,
    } = App::start("mode = \"enforce\"").await;

    let req = request("GET", "/ws")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let resp = send(US_CLIENT, proxy, req).await;
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        resp.headers()
            .get("upgrade")
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .as_deref(),
        Some("websocket")
    );
    assert_eq!(
        resp.headers()
            .get("sec-websocket-accept")
            .map(|v| v.to_str().unwrap()),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );

    let seen = up.only();
    assert_eq!(seen.header("upgrade").as_deref(), Some("websocket"));
    assert!(
        seen.header("connection")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .contains("upgrade"),
        "{:?}",
        seen.headers
    );

    let upgraded = within("upgrade", hyper::upgrade::on(resp))
        .await
        .expect("client side upgrade");
    let mut io = hyper_util::rt::TokioIo::new(upgraded);
    for msg in [
        &b"\x81\x05hello"[..],
        &pattern(100_000, 11)[..],
        b"second round",
    ] {
        within("tunnel write", io.write_all(msg)).await.unwrap();
        let mut echo = vec![0u8; msg.len()];
        within("tunnel echo", io.read_exact(&mut echo))
            .await
            .expect("echo");
        assert_eq!(echo, msg);
    }
    // Closing our side closes the tunnel end to end.
    within("tunnel close", io.shutdown()).await.unwrap();
    let mut rest = Vec::new();
    within("tunnel eof", io.read_to_end(&mut rest))
        .await
        .expect("clean end");
    assert!(rest.is_empty());

    within("shutdown", running.shutdown()).await;
    let events = read_events(&fx.events);
    let e = events_from(&events, US_CLIENT);
    assert_eq!(e.len(), 1, "{events:#?}");
    assert_eq!(e[0]["http"]["response"]["status_code"], 101);
    assert_eq!(e[0]["event"]["action"], "allow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_tells_the_caller_what_the_gateway_sees() {
    let fx = Fixture::new();
    let running = fx
        .start(&listener("who", "builtin:whoami", "mode = \"enforce\""))
        .await;
    let proxy = running.addr("who").unwrap();

    let (parts, body) = get(US_CLIENT, proxy, "/", &[("accept", "application/json")]).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(header(&parts, "content-type"), Some("application/json"));
    let e: serde_json::Value = serde_json::from_slice(&body).expect("JSON event");
    assert_eq!(e["source"]["ip"], US_CLIENT);
    assert_eq!(e["source"]["geo"]["country_iso_code"], "US");
    assert_eq!(e["source"]["geo"]["city_name"], "Austin");
    assert_eq!(e["source"]["geo"]["region_name"], "Texas");
    assert_eq!(e["event"]["action"], "allow");
    assert_eq!(e["locgate"]["listener"], "who");
    assert_eq!(e["locgate"]["mode"], "enforce");
    assert_eq!(e["locgate"]["client_addr_source"], "peer");
    let sources: Vec<&str> = e["locgate"]["data"]
        .as_array()
        .expect("data versions")
        .iter()
        .map(|d| d["source"].as_str().unwrap_or_default())
        .collect();
    assert!(
        sources
            .iter()
            .any(|s| s.ends_with("city.mmdb") && s.contains(&*fx.dir.path().to_string_lossy())),
        "{sources:?}"
    );

    // An Amazon address: hosting provider, flagged, with its AS.
    let (parts, body) = get(AWS_CLIENT, proxy, "/", &[("accept", "application/json")]).await;
    assert_eq!(parts.status, StatusCode::OK);
    let e: serde_json::Value = serde_json::from_slice(&body).expect("JSON event");
    assert_eq!(e["source"]["ip"], AWS_CLIENT);
    assert_eq!(e["source"]["as"]["number"], 16509);
    assert_eq!(
        e["source"]["as"]["organization"]["name"],
        "Amazon.com, Inc."
    );
    assert_eq!(e["locgate"]["anonymizer"]["hosting_provider"], true);
    assert_eq!(e["event"]["action"], "flag");
    assert!(reasons(&e).iter().any(|r| r == "hosting_provider"), "{e}");

    // A browser gets HTML.
    let (parts, body) = get(US_CLIENT, proxy, "/", &[("accept", "text/html")]).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(
        header(&parts, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("What locgate sees"), "{page}");
    assert!(page.contains("Austin"), "{page}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_upload_gets_the_block_page_and_never_reaches_the_upstream() {
    let App {
        fx,
        up,
        running,
        proxy,
    } = App::start("mode = \"enforce\"").await;

    // Like curl, this client keeps reading while it writes, so it sees the early 403 even though
    // the gateway does not wait for the 10 MB it refuses.
    let mut req = format!("POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {BIG}\r\n\r\n")
        .into_bytes();
    req.extend(pattern(BIG, 1));
    let answer = raw_exchange(KP_CLIENT, proxy, req).await;
    assert!(
        answer.starts_with("HTTP/1.1 403"),
        "answer: {:?}",
        &answer[..answer.len().min(200)]
    );
    assert!(up.seen().is_empty());

    running.shutdown().await;
    let events = read_events(&fx.events);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event"]["action"], "block");
    assert_eq!(events[0]["http"]["request"]["method"], "POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_request_in_flight_finish_and_stops_accepting() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx.start(&listener("app", &up.url(), "")).await;
    let proxy = running.addr("app").unwrap();

    let in_flight = tokio::spawn(async move { get(US_CLIENT, proxy, "/delay", &[]).await });
    within("request reaches the upstream", async {
        while up.seen().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    within("shutdown", running.shutdown()).await;

    let (parts, body) = within("in-flight request", in_flight).await.unwrap();
    assert_eq!(parts.status, UPSTREAM_STATUS);
    assert_eq!(&body[..], UPSTREAM_BODY);
    let refused = tokio::net::TcpStream::connect(proxy).await;
    assert!(refused.is_err(), "still accepting after shutdown");
    assert_eq!(events_from(&read_events(&fx.events), US_CLIENT).len(), 1);
}

/// A minimal keep-alive upstream that counts the TCP connections it accepts; with `close_after`
/// it closes each connection right after its first answer (without saying so), as an origin
/// whose keep-alive timer ran out would.
async fn counting_upstream(
    close_after: bool,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.write_all(answer).await.is_err() || close_after {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// One request per client connection, as clients without keep-alive (or with a new TLS
/// handshake each time) send them: the upstream connection a finished client connection leaves
/// is reused by the next one; a stale one (closed by the origin meanwhile) is replaced, and the
/// client never sees the difference. One that carried a connection-bound login (NTLM) is not
/// shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_outlive_client_connections_and_stale_ones_are_replaced() {
    for close_after in [false, true] {
        let fx = Fixture::new();
        let (up, accepted) = counting_upstream(close_after).await;
        let running = fx
            .start(&listener(
                "app",
                &format!("http://{up}"),
                "mode = \"enforce\"",
            ))
            .await;
        let proxy = running.addr("app").expect("listener app");
        for _ in 0..5 {
            let answer = raw_exchange(
                "127.1.0.170",
                proxy,
                format!("GET /one HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")
                    .into_bytes(),
            )
            .await;
            assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
            assert!(answer.ends_with("ok"), "{answer}");
        }
        let connections = accepted.load(std::sync::atomic::Ordering::SeqCst);
        if close_after {
            assert_eq!(connections, 5, "each stale connection was replaced");
        } else {
            assert_eq!(
                connections, 1,
                "one upstream connection served five clients"
            );
        }
        // A connection that carried an NTLM (or Negotiate) login may be logged in itself at the
        // origin: it is never handed to another client connection.
        for _ in 0..3 {
            let answer = raw_exchange(
                "127.1.0.171",
                proxy,
                format!(
                    "GET /two HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: NTLM TlRMTVNTUAADAAAA\r\n\
                     Connection: close\r\n\r\n"
                )
                .into_bytes(),
            )
            .await;
            assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        }
        // The first may take the clean idle connection left by the requests above; after it
        // carried the login, each following one needs a new connection.
        let after = accepted.load(std::sync::atomic::Ordering::SeqCst);
        let reused = usize::from(!close_after);
        assert_eq!(
            after,
            connections + 3 - reused,
            "a connection that carried an NTLM login was handed to another client"
        );
        let events = fx.events(&running).await;
        assert!(
            events.iter().all(|e| e["locgate"]["error"].is_null()),
            "no failure recorded: {events:#?}"
        );
        running.shutdown().await;
    }
}
