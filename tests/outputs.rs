//! The event outputs beyond the JSON lines file, each against a receiver the test runs on
//! loopback, checked as an operator would: the event arrived, its fields are where the
//! receiver's users look for them, the credentials went along; and when the receiver is down,
//! the backlog is bounded, drops are counted and shown, and delivery resumes once it is back.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use serde_json::Value as Json;
use tokio::io::AsyncReadExt;

/// The gateway with one enforcing HTTP listener and `outputs` appended to `[events]`.
async fn start(
    fx: &Fixture,
    up: &Upstream,
    outputs: &str,
) -> (locgate::serve::Running, std::net::SocketAddr) {
    // `[events]` is the config's last table: the output tables and the instance follow it.
    let text = fx.config_text(&listener("app", &up.url(), "mode = \"enforce\""))
        + "instance = \"gw-out-1\"\n"
        + outputs;
    let running = fx.start_text(&text).await;
    let proxy = running.addr("app").expect("app");
    (running, proxy)
}

/// One blocked request (a sanctioned country); returns its event id (the block page's reference).
async fn one_block(proxy: std::net::SocketAddr) -> String {
    let (parts, body) = get(KP_CLIENT, proxy, "/login", &[]).await;
    assert_eq!(parts.status, 403);
    html_reference(&body)
}

/// Waits (bounded) until `f` returns something.
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: nothing after 15 s");
}

/// The JSON after the RFC 5424 header of a syslog message.
fn syslog_json(msg: &str) -> Json {
    let start = msg.find("] {").expect("structured data then JSON") + 2;
    serde_json::from_str(&msg[start..]).expect("MSG is the event's JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_udp_tcp_and_a_unix_socket_carries_rfc5424_with_the_event() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("tcp");
    let unix_path = fx.dir.path().join("log.sock");
    let unix = UnixDatagram::bind(&unix_path).expect("unix");
    unix.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");

    // Three gateways, one per transport (one syslog output each).
    let (a, pa) = start(
        &fx,
        &up,
        &format!(
            "[events.syslog]\naddress = \"udp://{}\"\nfacility = \"local3\"\n",
            udp.local_addr().expect("addr")
        ),
    )
    .await;
    let id = one_block(pa).await;
    let mut buf = vec![0u8; 65536];
    let n = udp.recv(&mut buf).expect("a datagram arrives");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    // local3 (19) * 8 + warning (4) = 156; version 1; the event's time; app locgate; MSGID block.
    assert!(msg.starts_with("<156>1 20"), "{msg}");
    let header: Vec<&str> = msg.splitn(7, ' ').collect();
    assert_eq!(header[3], "locgate", "{msg}");
    assert_eq!(header[4], std::process::id().to_string(), "{msg}");
    assert_eq!(header[5], "block", "{msg}");
    assert!(
        msg.contains("[origin software=\"locgate\" swVersion=\""),
        "{msg}"
    );
    let e = syslog_json(&msg);
    assert_eq!(e["event"]["id"], id.as_str());
    assert_eq!(e["observer"]["name"], "gw-out-1");
    assert_eq!(e["source"]["ip"], KP_CLIENT);
    a.shutdown().await;

    let fx2 = Fixture::new();
    let (b, pb) = start(
        &fx2,
        &up,
        &format!(
            "[events.syslog]\naddress = \"tcp://{}\"\n",
            tcp.local_addr().expect("addr")
        ),
    )
    .await;
    let id = one_block(pb).await;
    let (mut conn, _) = within("syslog connects", tcp.accept())
        .await
        .expect("accept");
    // RFC 6587 octet counting: "LEN SP MSG".
    let mut len = Vec::new();
    loop {
        let c = within("frame", conn.read_u8()).await.expect("byte");
        if c == b' ' {
            break;
        }
        len.push(c);
    }
    let len: usize = String::from_utf8(len)
        .expect("digits")
        .parse()
        .expect("length");
    let mut frame = vec![0u8; len];
    within("frame body", conn.read_exact(&mut frame))
        .await
        .expect("frame");
    let msg = String::from_utf8(frame).expect("utf8");
    assert!(msg.starts_with("<132>1 "), "local0 by default: {msg}");
    assert_eq!(syslog_json(&msg)["event"]["id"], id.as_str());
    b.shutdown().await;

    let fx3 = Fixture::new();
    let (c, pc) = start(
        &fx3,
        &up,
        &format!(
            "[events.syslog]\naddress = \"unix://{}\"\n",
            unix_path.display()
        ),
    )
    .await;
    let id = one_block(pc).await;
    let n = unix.recv(&mut buf).expect("a datagram arrives");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert_eq!(syslog_json(&msg)["event"]["id"], id.as_str());
    c.shutdown().await;
}

/// The journal's fields of one native-protocol datagram (simple `KEY=value` lines, and the
/// binary-safe form for values with a newline).
fn journal_fields(d: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = d;
    while !rest.is_empty() {
        let nl = rest.iter().position(|b| *b == b'\n').expect("line end");
        let line = &rest[..nl];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            out.push((
                String::from_utf8_lossy(&line[..eq]).to_string(),
                String::from_utf8_lossy(&line[eq + 1..]).to_string(),
            ));
            rest = &rest[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).to_string();
            let mut len = [0u8; 8];
            len.copy_from_slice(&rest[nl + 1..nl + 9]);
            let n = u64::from_le_bytes(len) as usize;
            let value = &rest[nl + 9..nl + 9 + n];
            out.push((key, String::from_utf8_lossy(value).to_string()));
            rest = &rest[nl + 10 + n..];
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journald_gets_native_fields_that_journalctl_can_match() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let path = fx.dir.path().join("journal.sock");
    let journal = UnixDatagram::bind(&path).expect("journal socket");
    journal
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (running, proxy) = start(
        &fx,
        &up,
        &format!("[events.journald]\nsocket = \"{}\"\n", path.display()),
    )
    .await;
    let id = one_block(proxy).await;
    let mut buf = vec![0u8; 1 << 17];
    let n = journal.recv(&mut buf).expect("a datagram arrives");
    let fields = journal_fields(&buf[..n]);
    let get = |k: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("PRIORITY"), ["4"], "{fields:#?}");
    assert_eq!(get("SYSLOG_IDENTIFIER"), ["locgate"]);
    assert!(get("MESSAGE")[0].contains("(KP)"), "{fields:#?}");
    assert_eq!(get("EVENT_ID"), [id.as_str()]);
    assert_eq!(get("EVENT_ACTION"), ["block"]);
    assert_eq!(get("SOURCE_IP"), [KP_CLIENT]);
    assert_eq!(get("SOURCE_GEO_COUNTRY_ISO_CODE"), ["KP"]);
    assert_eq!(get("OBSERVER_NAME"), ["gw-out-1"]);
    assert_eq!(
        get("EVENT_TYPE"),
        ["access", "denied"],
        "one field per element"
    );
    let whole: Json = serde_json::from_str(get("LOCGATE_JSON")[0]).expect("JSON");
    assert_eq!(whole["event"]["id"], id.as_str());
    assert!(
        fields.iter().all(|(k, _)| !k.starts_with('_')
            && k.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')),
        "journal field names: {fields:#?}"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_gets_the_token_and_the_event_envelope() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let hec = Upstream::start().await;
    let token = fx.write("hec.token", "5a1b8f0e-3c2d-4e6f-9a7b-0c1d2e3f4a5b\n");
    let (running, proxy) = start(
        &fx,
        &up,
        &format!(
            "[events.hec]\nurl = \"{}\"\ntoken_file = \"{}\"\nindex = \"security\"\n",
            hec.url(),
            token.display()
        ),
    )
    .await;
    let id = one_block(proxy).await;
    let seen = eventually("HEC request", || hec.seen().into_iter().next()).await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/services/collector/event");
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Splunk 5a1b8f0e-3c2d-4e6f-9a7b-0c1d2e3f4a5b")
    );
    assert_eq!(
        seen.header("content-type").as_deref(),
        Some("application/json")
    );
    let envelope: Json = serde_json::Deserializer::from_slice(&seen.body)
        .into_iter::<Json>()
        .next()
        .expect("an envelope")
        .expect("JSON");
    assert_eq!(envelope["index"], "security");
    assert_eq!(envelope["host"], "gw-out-1");
    assert_eq!(envelope["source"], "locgate");
    assert_eq!(envelope["sourcetype"], "locgate:event");
    assert!(
        envelope["time"].as_f64().is_some_and(|t| t > 1.7e9),
        "{envelope}"
    );
    assert_eq!(envelope["event"]["event"]["id"], id.as_str());
    assert_eq!(envelope["event"]["source"]["ip"], KP_CLIENT);
    let sent = running.shared.auditor.stats.outputs.get().expect("outputs")[0]
        .sent
        .load(Ordering::Relaxed);
    assert!(sent >= 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_logs_over_http_json_carry_typed_attributes_and_headers() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let collector = Upstream::start().await;
    let (running, proxy) = start(
        &fx,
        &up,
        &format!(
            "[events.otlp]\nurl = \"{}\"\nheaders = {{ \"X-Scope-OrgID\" = \"security\" }}\n",
            collector.url()
        ),
    )
    .await;
    let id = one_block(proxy).await;
    let seen = eventually("OTLP request", || collector.seen().into_iter().next()).await;
    assert_eq!(seen.target, "/v1/logs");
    assert_eq!(
        seen.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(seen.header("x-scope-orgid").as_deref(), Some("security"));
    let body: Json = serde_json::from_slice(&seen.body).expect("JSON");
    let rl = &body["resourceLogs"][0];
    let resource = rl["resource"]["attributes"].as_array().expect("resource");
    let res = |k: &str| {
        resource
            .iter()
            .find(|a| a["key"] == k)
            .map(|a| a["value"]["stringValue"].clone())
            .unwrap_or_default()
    };
    assert_eq!(res("service.name"), "locgate");
    assert_eq!(res("service.instance.id"), "gw-out-1");
    let record = &rl["scopeLogs"][0]["logRecords"][0];
    assert_eq!(record["severityText"], "WARN");
    assert_eq!(record["severityNumber"], 13);
    assert!(
        record["timeUnixNano"]
            .as_str()
            .is_some_and(|t| t.len() >= 19),
        "{record}"
    );
    assert!(
        record["body"]["stringValue"]
            .as_str()
            .is_some_and(|m| m.contains("(KP)"))
    );
    let attr = |k: &str| {
        record["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["key"] == k))
            .map(|x| x["value"].clone())
            .unwrap_or_default()
    };
    assert_eq!(attr("event.id")["stringValue"], id.as_str());
    assert_eq!(attr("source.ip")["stringValue"], KP_CLIENT);
    assert_eq!(attr("http.response.status_code")["intValue"], "403");
    assert_eq!(attr("locgate.anonymizer.tor_exit")["boolValue"], false);
    running.shutdown().await;
}

/// A free port on a loopback address no other test uses (bound, then released).
fn free_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.71:0").expect("bind");
    l.local_addr().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_costs_a_bounded_queue_is_counted_and_caught_up_later() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let addr = free_port();
    let (running, proxy) = start(
        &fx,
        &up,
        &format!(
            "[events.hec]\nurl = \"http://{addr}\"\ntoken = \"0123456789abcdef0123\"\nqueue = 5\nbatch = 2\n"
        ),
    )
    .await;
    let stats = running.shared.auditor.stats.clone();
    // Requests are not slowed by the dead receiver: 30 blocks, each answered at once.
    let started = std::time::Instant::now();
    for _ in 0..30 {
        one_block(proxy).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the request path waited"
    );
    let out = stats.outputs.get().expect("outputs")[0].clone();
    eventually("the output notices", || {
        (!out.up.load(Ordering::Relaxed)).then_some(())
    })
    .await;
    eventually("drops are counted", || {
        (out.dropped.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;
    // At most the queue (5) and the batch being retried (2) wait.
    let queued = out.queued.load(Ordering::Relaxed);
    assert!((1..=7).contains(&queued), "queued {queued}");
    let metrics = locgate::audit::metrics::render(&stats, &running.shared.state.load().intel, 0);
    assert_eq!(
        metric::<u64>(&metrics, "locgate_output_up{output=\"splunk_hec\"}"),
        0
    );
    assert!(
        metric::<u64>(
            &metrics,
            "locgate_output_dropped_total{output=\"splunk_hec\"}"
        ) > 0
    );
    let warnings = stats.output_warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("splunk_hec") && w.contains("failing")),
        "{warnings:?}"
    );
    // Every event has reached the output (queued or dropped) before the receiver
    // comes up; the auditor hands events on after the responses went out.
    eventually("every event reaches the output", || {
        (out.queued.load(Ordering::Relaxed) + out.dropped.load(Ordering::Relaxed) as i64 == 30)
            .then_some(())
    })
    .await;
    let dropped = out.dropped.load(Ordering::Relaxed);
    // The receiver comes up: what waited is delivered, and the output is up again.
    let hec = Upstream::start_on(addr).await;
    eventually("backlog delivered", || {
        (out.queued.load(Ordering::Relaxed) == 0 && out.up.load(Ordering::Relaxed)).then_some(())
    })
    .await;
    let delivered: usize = hec
        .seen()
        .iter()
        .map(|s| {
            serde_json::Deserializer::from_slice(&s.body)
                .into_iter::<Json>()
                .count()
        })
        .sum();
    assert_eq!(delivered as u64, out.sent.load(Ordering::Relaxed));
    assert_eq!(
        out.sent.load(Ordering::Relaxed) + dropped,
        30,
        "every event is delivered or counted as dropped"
    );
    assert_eq!(
        out.dropped.load(Ordering::Relaxed),
        dropped,
        "nothing is dropped once the receiver is up"
    );
    assert!(
        stats
            .output_warnings()
            .iter()
            .all(|w| !w.contains("failing"))
    );
    running.shutdown().await;
}

#[test]
fn bad_output_settings_name_file_line_and_field() {
    let fx = Fixture::new();
    let base = fx.config_text(&listener("app", "builtin:whoami", ""));
    for (extra, want) in [
        (
            "[events.syslog]\naddress = \"udp://collector\"\n",
            "test.toml:",
        ),
        (
            "[events.syslog]\naddress = \"udp://collector\"\n",
            "events.syslog.address: `udp://collector` needs a host and a port",
        ),
        (
            "[events.syslog]\naddress = \"udp://h:514\"\nfacility = \"local9\"\n",
            "events.syslog.facility: `local9` is not a syslog facility",
        ),
        (
            "[events.hec]\nurl = \"https://splunk:8088\"\n",
            "events.hec.url: [events.hec] needs token or token_file",
        ),
        (
            "[events.hec]\nurl = \"ftp://splunk\"\ntoken = \"0123456789abcdef0123\"\n",
            "events.hec.url: `ftp://splunk`: scheme ftp",
        ),
        (
            "[events.hec]\nurl = \"https://splunk\"\ntoken = \"short\"\n",
            "events.hec.token: events.hec token must be at least 16",
        ),
        (
            "[events.otlp]\nurl = \"http://c:4318\"\nheaders = { \"Content-Length\" = \"1\" }\n",
            "events.otlp.headers: headers: `Content-Length` is set by locgate itself",
        ),
        (
            "[events.otlp]\nurl = \"http://c:4318\"\nbatch = 0\n",
            "events.otlp.batch: batch must be 1..=1000",
        ),
        (
            "[events.journald]\nqueue = 0\n",
            "events.journald.queue: queue must be 1..=",
        ),
        (
            "instance = \"gw 1\"\n",
            "events.instance: `gw 1`: the instance name must be",
        ),
    ] {
        let text = format!("{base}{extra}");
        let err = locgate::config::Config::parse(&text, "test.toml", fx.dir.path())
            .expect_err(extra)
            .to_string();
        assert!(err.contains(want), "{extra}: got `{err}`, want `{want}`");
        assert!(err.starts_with("test.toml:"), "{err}");
    }
}
