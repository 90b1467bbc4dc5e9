//! Issue 12 item 7, end to end: state keyed by attacker input stays bounded and cannot be used
//! to push out real state. Learned sessions per client, the per-client cap behind a trusted
//! balancer, and hostile text in alerts. (The allow throttle's bound is a unit test in
//! `src/audit/throttle.rs`; the admin console's sessions and login limit are in
//! `tests/review.rs`.)

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::Value as Json;

/// A fresh random-looking session cookie value (32 hex digits).
fn cookie_value(n: u64) -> String {
    pattern(16, 0x5e55_1000 + 2 * n)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A form login of `user` from `src`, after which the upstream sets `SESSION=<value>`.
async fn form_login(proxy: std::net::SocketAddr, src: &str, user: &str, value: &str) -> u16 {
    let set = format!("SESSION={value}; Path=/; HttpOnly");
    let (parts, _) = post(
        src,
        proxy,
        "/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            (SET_COOKIE_ON_REQUEST, set.as_str()),
        ],
        format!("username={user}&password=pw").as_bytes(),
    )
    .await;
    parts.status.as_u16()
}

/// The attack: a script logs in over and over from one address (a form login costs nothing),
/// each login teaching the proxy one more session. The store is bounded, and it used to push
/// its oldest entries out, whoever they belonged to: alice's session was evicted and her next
/// request came without an identity. Now one address cycles through its own quota (a quarter
/// of `max_entries` by default) and alice's cookie still names her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_logins_from_one_address_do_not_evict_another_clients_session() {
    let fx = Fixture::new();
    fx.write_standard_directory();
    let up = Upstream::start().await;
    let running = fx
        .start_with(
            &listener(
                "sso",
                &up.url(),
                "mode = \"enforce\"\nidentity = [{ form = { path = \"/login\", field = \"username\" } }]\n\
                 session = { cookie = \"SESSION\", ttl = \"1h\", max_entries = 8 }",
            ),
            &employees_section("employees.toml"),
        )
        .await;
    let proxy = running.addr("sso").expect("proxy");

    let alice = cookie_value(0);
    assert_eq!(form_login(proxy, "127.1.0.60", "alice", &alice).await, 201);
    for n in 1..=40 {
        assert_eq!(
            form_login(proxy, "127.1.0.66", "bob", &cookie_value(n)).await,
            201
        );
    }

    let cookie = format!("SESSION={alice}");
    let (parts, _) = get("127.1.0.61", proxy, "/mail", &[("cookie", &cookie)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    // The attacker keeps only its newest sessions: its first one no longer names anyone.
    let first = format!("SESSION={}", cookie_value(1));
    let (parts, _) = get("127.1.0.67", proxy, "/mail", &[("cookie", &first)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);
    let last = format!("SESSION={}", cookie_value(40));
    let (parts, _) = get("127.1.0.68", proxy, "/mail", &[("cookie", &last)]).await;
    assert_eq!(parts.status, UPSTREAM_STATUS);

    let events = fx.events(&running).await;
    let e = one_event_from(&events, "127.1.0.61");
    assert_eq!(user_of(e), "e1042", "alice's cookie still names her: {e:#}");
    assert_eq!(e["locgate"]["identity"]["source"], "session", "{e:#}");
    assert!(
        one_event_from(&events, "127.1.0.67")["user"].is_null(),
        "the attacker's oldest session was its own to lose"
    );
    assert_eq!(user_of(one_event_from(&events, "127.1.0.68")), "e2001");
    running.shutdown().await;
}

/// The attack: behind a trusted balancer the socket peer is the balancer, which is exempt from
/// `max_connections_per_client`, so one client could hold any number of slow requests open
/// and the cap never applied. Now each request of a client resolved from `X-Forwarded-For`
/// holds a slot while in flight: above the cap it is answered 429 (recorded), while another
/// client behind the same balancer is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_client_over_its_cap_gets_429_while_another_is_served() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let running = fx
        .start(&listener(
            "app",
            &up.url(),
            "trusted_proxies = [\"127.0.0.1/32\"]\nmax_connections_per_client = 2",
        ))
        .await;
    let proxy = running.addr("app").expect("proxy");

    // Two requests the upstream never answers (in time) hold the client's two slots.
    let held: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                let mut b = request("GET", "/slow");
                b = b.header("x-forwarded-for", US_CLIENT);
                let req = b.body(http_body_util::Empty::<bytes::Bytes>::new());
                let _ = send(LOCAL, proxy, req.expect("request")).await;
            })
        })
        .collect();
    within("both slow requests reach the upstream", async {
        while up.seen().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let (parts, _) = get(LOCAL, proxy, "/third", &[("x-forwarded-for", US_CLIENT)]).await;
    assert_eq!(
        parts.status, 429,
        "the third request in flight is over the cap"
    );
    let (parts, _) = get(
        LOCAL,
        proxy,
        "/other",
        &[("x-forwarded-for", SEATTLE_CLIENT)],
    )
    .await;
    assert_eq!(parts.status, UPSTREAM_STATUS, "another client is served");
    assert!(
        !up.seen().iter().any(|s| s.target == "/third"),
        "the refused request never reached the upstream"
    );

    let events = fx.events(&running).await;
    let refused: Vec<&Json> = events_from(&events, US_CLIENT)
        .into_iter()
        .filter(|e| e["http"]["response"]["status_code"] == 429)
        .collect();
    assert_eq!(refused.len(), 1, "{events:#?}");
    assert_eq!(refused[0]["url"]["path"], "/third");
    let error = refused[0]["locgate"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("cap of 2 requests in flight"), "{error}");

    // The two held requests end with the test (the upstream holds them for 30 s): no
    // shutdown here, which would wait for them to drain.
    for h in held {
        h.abort();
    }
}

/// The attack: a typed-in name reaches the security channel. Slack turns `<!channel>` into an
/// @channel ping, `<@U123>` into a mention and `<http://x|click>` into a link whose label hides
/// where it goes. The alert now carries them as inert text (`&lt;` / `&gt;` / `&amp;`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_name_in_a_slack_alert_is_escaped() {
    let (hook, bodies) = flaky_webhook(0).await;
    let fx = Fixture::new();
    let alert = format!(
        "[[alert]]\nwebhook = \"http://{hook}/hooks/locgate\"\nformat = \"slack\"\non = [\"block\"]\n"
    );
    let running = fx
        .start_with(
            &listener(
                "sso",
                "builtin:whoami",
                "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\n\
                 identity = [ { header = \"X-Remote-User\" } ]",
            ),
            &alert,
        )
        .await;
    let proxy = running.addr("sso").expect("proxy");
    let hostile = "<!channel> <@U123> <http://evil.example|click here> & co";
    let (parts, _) = get(
        LOCAL,
        proxy,
        "/login",
        &[("x-forwarded-for", KP_CLIENT), ("x-remote-user", hostile)],
    )
    .await;
    assert_eq!(parts.status, 403);
    let stats = running.shared.auditor.stats.clone();
    within("alert delivered", async {
        while stats.alerts_sent.load(Ordering::Relaxed) < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let got = bodies.lock().expect("lock").clone();
    let v: Json = serde_json::from_str(&got[0]).expect("json");
    let text = v["text"].as_str().expect("slack text");
    assert!(
        text.contains(
            "&lt;!channel&gt; &lt;@U123&gt; &lt;http://evil.example|click here&gt; &amp; co"
        ),
        "{text}"
    );
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    running.shutdown().await;
}

/// A UDP echo upstream on loopback.
async fn udp_echo() -> std::net::SocketAddr {
    let echo = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = echo.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf).await {
            let _ = echo.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// Sends one datagram from `sock` and waits up to `wait` for its echo through the proxy.
async fn udp_round_trip(
    sock: &tokio::net::UdpSocket,
    proxy: std::net::SocketAddr,
    payload: &[u8],
    wait: Duration,
) -> bool {
    sock.send_to(payload, proxy).await.expect("send");
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(wait, sock.recv_from(&mut buf)).await,
        Ok(Ok((n, _))) if &buf[..n] == payload
    )
}

/// The attack: UDP sources are spoofed for free. Flows from made-up sources used to fill
/// `max_connections` for everyone until their `idle_timeout` (here 60 s), and the per-client
/// cap counted single addresses, which a spoofer varies at will. Now a source prefix (/24)
/// holds at most `max_connections_per_client` flows, a full table lets a new source take the
/// place of a flow quiet for 2 s, and a tunnel that is moving data is never evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_udp_sources_cannot_fill_the_flow_table_or_evict_a_moving_flow() {
    let fx = Fixture::new();
    let echo = udp_echo().await;
    let running = fx
        .start(&listener(
            "wg",
            &echo.to_string(),
            "kind = \"udp\"\nmode = \"enforce\"\nidle_timeout = \"60s\"\n\
             max_connections = 4\nmax_connections_per_client = 2",
        ))
        .await;
    let proxy = running.addr("wg").expect("udp listener");
    let bind = |ip: &str| {
        let ip = ip.to_owned();
        async move {
            tokio::net::UdpSocket::bind(format!("{ip}:0"))
                .await
                .expect("bind")
        }
    };
    let quick = Duration::from_millis(300);

    // The established tunnel keeps moving data (a datagram every 100 ms) throughout.
    let tunnel = bind(US_CLIENT).await;
    assert!(udp_round_trip(&tunnel, proxy, b"hello", quick).await);
    let moving = tokio::spawn(async move {
        let mut answered = 0u32;
        for i in 0..45u32 {
            if udp_round_trip(&tunnel, proxy, &i.to_be_bytes(), quick).await {
                answered += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        answered
    });

    // Three sources in one /24: the third is over its prefix's cap.
    let same_prefix = [
        bind("127.4.0.1").await,
        bind("127.4.0.2").await,
        bind("127.4.0.3").await,
    ];
    assert!(udp_round_trip(&same_prefix[0], proxy, b"a", quick).await);
    assert!(udp_round_trip(&same_prefix[1], proxy, b"b", quick).await);
    assert!(
        !udp_round_trip(&same_prefix[2], proxy, b"c", quick).await,
        "a third flow from the same /24 is over the per-prefix cap"
    );
    // The table is full now (tunnel + 2): one more, then a flood of new prefixes is dropped
    // while every flow is fresh.
    let filler = bind("127.6.0.1").await;
    assert!(udp_round_trip(&filler, proxy, b"d", quick).await);
    for n in 1..=20 {
        let spoofed = bind(&format!("127.5.{n}.1")).await;
        spoofed.send_to(b"spoof", proxy).await.expect("send");
    }
    // After 2.5 s the flood's flows are quiet: a new client takes the place of a quiet one.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let newcomer = bind("127.1.7.1").await;
    assert!(
        udp_round_trip(&newcomer, proxy, b"new client", quick).await,
        "a new client is served once a quiet flow can be evicted"
    );
    let answered = within("the moving tunnel's loop", moving)
        .await
        .expect("task");
    assert_eq!(answered, 45, "the moving tunnel was never cut");

    let events = fx.events(&running).await;
    let evicted: Vec<&Json> = events
        .iter()
        .filter(|e| {
            e["locgate"]["error"]
                .as_str()
                .is_some_and(|t| t.starts_with("evicted"))
        })
        .collect();
    assert_eq!(evicted.len(), 1, "{events:#?}");
    assert_ne!(evicted[0]["source"]["ip"], US_CLIENT);
    running.shutdown().await;
}
