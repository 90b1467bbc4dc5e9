//! Issue 5 end to end: the event store, backpressure and spill, the admin API and metrics,
//! webhook alerts, and a kill -9 of the real binary under load.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use locgate::audit::event::{AnonymizerFlags, EventMeta, Geo, GeoPoint, Locgate, Source, User};
use locgate::audit::store::{Filter, Store};
use locgate::audit::{AuditOptions, Auditor, Event, EventSink, WhenFull};
use locgate::config::Config;
use locgate::policy::{Action, Mode};
use serde_json::Value as Json;

const TOKEN: &str = "test-token-0123456789abcdef";

fn employees_file() -> String {
    toml_str(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/employees/employees.example.toml"),
    )
}

/// A listener whose trusted loopback proxy names the client (X-Forwarded-For) and the user
/// (X-Remote-User).
fn review_listener(mode: &str) -> String {
    listener(
        "sso",
        "builtin:whoami",
        &format!(
            "mode = \"{mode}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\nidentity = [ {{ header = \"X-Remote-User\" }} ]"
        ),
    )
}

/// Fixture config plus the store, admin and anything in `extra` (appended after `[events]`).
fn review_config(fx: &Fixture, mode: &str, events_extra: &str, extra: &str) -> Config {
    let db = fx.dir.path().join("events.db");
    let text = format!(
        "{}sqlite = {}\n{events_extra}\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n[employees]\nfile = {}\n\n{extra}",
        fx.config_text(&review_listener(mode)),
        toml_str(&db),
        employees_file(),
    );
    Config::parse(&text, "review.toml", fx.dir.path())
        .unwrap_or_else(|e| panic!("config does not parse: {e}\n{text}"))
}

async fn visit(proxy: SocketAddr, client: &str, user: &str) -> u16 {
    let (parts, _) = get(
        LOCAL,
        proxy,
        "/login",
        &[("x-forwarded-for", client), ("x-remote-user", user)],
    )
    .await;
    parts.status.as_u16()
}

async fn admin(
    addr: SocketAddr,
    method: &str,
    target: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut b = request(method, target);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let req = b
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .expect("request");
    let (parts, bytes) = read_body(send(LOCAL, addr, req).await).await;
    (
        parts.status.as_u16(),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

async fn api(addr: SocketAddr, target: &str) -> Json {
    let (status, body) = admin(addr, "GET", target, Some(&bearer()), None).await;
    assert_eq!(status, 200, "{target}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"))
}

// ---------------------------------------------------------------------------------------------
// The store on its own
// ---------------------------------------------------------------------------------------------

fn ev(
    id: &str,
    ts: &str,
    action: Action,
    reasons: &[&'static str],
    user: Option<&str>,
) -> Box<Event> {
    Box::new(Event {
        timestamp: ts.into(),
        ecs: Default::default(),
        origin: None,
        event: EventMeta {
            id: id.into(),
            kind: "event",
            category: None,
            types: None,
            action,
            reason: reasons.to_vec(),
            duration: Some(1000),
            outcome: None,
        },
        message: format!("test event {id}"),
        source: Source {
            ip: "192.0.2.7".parse().expect("ip"),
            port: None,
            bytes: None,
            geo: Geo {
                country_iso_code: Some("DE".into()),
                location: Some(GeoPoint {
                    lat: 52.5,
                    lon: 13.4,
                }),
                ..Geo::default()
            },
            autonomous_system: None,
            nat: None,
        },
        destination: None,
        url: None,
        http: None,
        network: locgate::audit::Network {
            transport: "tcp",
            bytes: None,
        },
        tls: None,
        user: user.map(|u| User::named(u.into(), true)),
        locgate: Locgate {
            verdict: action,
            mode: Mode::Enforce,
            listener: "t".into(),
            accuracy_radius_km: Some(20.0),
            connection_type: None,
            network_kind: None,
            location_precision: Some("database"),
            anonymizer: AnonymizerFlags {
                hosting_provider: reasons.contains(&"hosting_provider"),
                ..AnonymizerFlags::default()
            },
            client_addr_source: "peer",
            peer_ip: None,
            data: Vec::new().into(),
            error: None,
            suppressed_allows: None,
            identity: None,
            network: None,
            history: None,
            tunnel: None,
        },
    })
}

fn now_ts(back_days: i64) -> String {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * back_days);
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[test]
fn store_round_trip_filters_pagination_ack_and_retention() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("e.db");
    let mut store = Store::open(&path, Some(30)).expect("open");
    let mut batch = Vec::new();
    for i in 0..25 {
        let (action, reasons): (Action, &[&'static str]) = match i % 3 {
            0 => (Action::Block, &["sanctioned_country"]),
            1 => (Action::Flag, &["country_mismatch", "hosting_provider"]),
            _ => (Action::Allow, &[]),
        };
        let user = if i % 2 == 0 { "e1042" } else { "e2001" };
        batch.push(ev(
            &format!("ev{i:02}"),
            &now_ts(0),
            action,
            reasons,
            Some(user),
        ));
    }
    batch.push(ev(
        "old1",
        &now_ts(40),
        Action::Block,
        &["tor_exit"],
        Some("e1042"),
    ));
    store.insert(&batch).expect("insert");
    // The same ids again (a replay after a crash) are not duplicated.
    store.insert(&batch[..5]).expect("insert again");
    assert_eq!(store.count().expect("count"), 26);

    let all = |f: Filter| {
        store
            .query(&Filter { limit: 1000, ..f })
            .expect("query")
            .events
    };
    assert_eq!(
        all(Filter {
            action: Some("block".into()),
            ..Filter::default()
        })
        .len(),
        9 + 1
    );
    assert_eq!(
        all(Filter {
            reason: Some("hosting_provider".into()),
            ..Filter::default()
        })
        .len(),
        8
    );
    assert_eq!(
        all(Filter {
            employee: Some("E1042".into()),
            ..Filter::default()
        })
        .len(),
        13 + 1
    );
    let since = locgate::audit::store::parse_since("1d").expect("since");
    assert_eq!(
        all(Filter {
            since_ms: Some(since),
            ..Filter::default()
        })
        .len(),
        25
    );

    // Pagination: pages of 10, newest first, no overlap, nothing missed.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(&Filter {
                limit: 10,
                before: cursor,
                ..Filter::default()
            })
            .expect("page");
        seen.extend(page.events.iter().map(|e| e.id.clone()));
        match page.next {
            Some(n) => cursor = Some(Filter::parse_cursor(&n).expect("cursor")),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 26);

    // Acknowledge: kept, shown, filterable.
    let ack = store
        .ack("ev03", "carol", "called her; on holiday")
        .expect("ack");
    assert_eq!(ack.reviewer, "carol");
    assert!(matches!(
        store.ack("nope", "x", ""),
        Err(locgate::audit::store::StoreError::NotFound(_))
    ));
    let acked = all(Filter {
        acked: Some(true),
        ..Filter::default()
    });
    assert_eq!(acked.len(), 1);
    assert_eq!(
        acked[0].ack.as_ref().expect("ack").note,
        "called her; on holiday"
    );
    assert_eq!(
        all(Filter {
            acked: Some(false),
            ..Filter::default()
        })
        .len(),
        25
    );

    // Report: most evidence first, with home-radius shares from the directory.
    let dir_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/employees/employees.example.toml");
    let directory = locgate::employees::Directory::load(&dir_path, 100.0, &Default::default())
        .expect("directory");
    let rows = store.report(0, Some(&directory), None).expect("report");
    assert_eq!(rows[0].employee, "e1042");
    assert_eq!(
        rows[0].home_radius_share,
        Some(0.0),
        "Berlin is far from Austin"
    );
    assert!(rows[0].countries.iter().any(|(c, _)| c == "DE"));

    // Retention: the 40-day-old event goes, the rest stay.
    assert_eq!(store.prune_now().expect("prune"), 1);
    assert_eq!(store.count().expect("count"), 25);
    assert_eq!(store.integrity().expect("integrity"), "ok");
    drop(store);

    // Reopening migrates nothing and keeps everything; the schema version is recorded.
    let store = Store::open(&path, None).expect("reopen");
    assert_eq!(store.count().expect("count"), 25);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(
        v, 4,
        "events, the instance column, cases, then the day rollup"
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
}

#[test]
fn a_corrupt_store_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bad.db");
    std::fs::write(&path, vec![0x42u8; 8192]).expect("write");
    let err = Store::open(&path, None)
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("bad.db"), "{err}");
    let err = Store::open_read_only(&dir.path().join("missing.db"))
        .err()
        .expect("fail")
        .to_string();
    assert!(err.contains("missing.db"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Queue behaviour with a slow store
// ---------------------------------------------------------------------------------------------

/// A store double that sleeps per batch and counts what it got.
struct SlowSink {
    delay: Duration,
    got: Arc<Mutex<Vec<String>>>,
}

impl EventSink for SlowSink {
    fn write_batch(&mut self, events: &[Box<Event>]) -> Result<(), locgate::audit::SinkError> {
        std::thread::sleep(self.delay);
        let mut g = self.got.lock().expect("lock");
        g.extend(events.iter().map(|e| e.event.id.clone()));
        Ok(())
    }
}

fn slow(delay: Duration) -> (Box<dyn EventSink>, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    (
        Box::new(SlowSink {
            delay,
            got: got.clone(),
        }),
        got,
    )
}

fn count_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Records `n` events from 4 threads; returns how long recording took.
fn record_many(auditor: &Arc<Auditor>, n: usize) -> Duration {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let a = auditor.clone();
            let next = next.clone();
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    a.record(*ev(
                        &format!("q{i}"),
                        &now_ts(0),
                        Action::Flag,
                        &["relay"],
                        None,
                    ));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    started.elapsed()
}

#[test]
fn backpressure_keeps_every_event() {
    let dir = tempfile::tempdir().expect("tmp");
    let jsonl = dir.path().join("e.jsonl");
    let (sink, got) = slow(Duration::from_millis(20));
    let auditor = Arc::new(
        Auditor::start_with(AuditOptions {
            jsonl: Some(jsonl.clone()),
            rotation: Default::default(),
            allow_interval: Duration::from_secs(600),
            store: Some(sink),
            when_full: WhenFull::Backpressure,
            capacity: 4,
            alerts: None,
            origin: Arc::new(locgate::audit::event::Origin::new(Some("test"))),
            outputs: Vec::new(),
        })
        .expect("start"),
    );
    record_many(&auditor, 200);
    auditor.flush();
    let stats = &auditor.stats;
    assert!(
        stats.events_waited.load(Ordering::Relaxed) > 0,
        "the queue never filled"
    );
    assert_eq!(
        got.lock().expect("lock").len(),
        200,
        "store has every event"
    );
    assert_eq!(count_lines(&jsonl), 200, "JSON lines has every event");
    assert_eq!(stats.events_stored.load(Ordering::Relaxed), 200);
    assert_eq!(stats.events_spilled.load(Ordering::Relaxed), 0);
    assert_eq!(stats.events_failed.load(Ordering::Relaxed), 0);
}

#[test]
fn spill_keeps_every_event_and_never_waits() {
    let dir = tempfile::tempdir().expect("tmp");
    let jsonl = dir.path().join("e.jsonl");
    let (sink, got) = slow(Duration::from_millis(300));
    let auditor = Arc::new(
        Auditor::start_with(AuditOptions {
            jsonl: Some(jsonl.clone()),
            rotation: Default::default(),
            allow_interval: Duration::from_secs(600),
            store: Some(sink),
            when_full: WhenFull::Spill,
            capacity: 4,
            alerts: None,
            origin: Arc::new(locgate::audit::event::Origin::new(Some("test"))),
            outputs: Vec::new(),
        })
        .expect("start"),
    );
    let took = record_many(&auditor, 200);
    assert!(
        took < Duration::from_millis(300),
        "recording waited: {took:?}"
    );
    auditor.flush();
    let stats = &auditor.stats;
    let spilled = stats.events_spilled.load(Ordering::Relaxed) as usize;
    let stored = got.lock().expect("lock").len();
    assert!(spilled > 0, "nothing spilled");
    assert_eq!(stats.events_waited.load(Ordering::Relaxed), 0);
    assert_eq!(stored + spilled, 200, "store {stored} + spilled {spilled}");
    assert_eq!(count_lines(&jsonl), 200, "every event is in JSON lines");
    // Every line is whole JSON (spills and batches never interleave mid-line).
    for line in std::fs::read_to_string(&jsonl).expect("read").lines() {
        serde_json::from_str::<Json>(line).expect("whole JSON line");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_path_keeps_serving_while_the_store_is_slow() {
    let up = Upstream::start().await;
    let fx = Fixture::new();
    let text = fx.config_text(&listener("sso", &up.url(), "mode = \"enforce\""));
    let config = Config::parse(&text, "t.toml", fx.dir.path()).expect("config");
    let (sink, got) = slow(Duration::from_secs(2));
    let running = within("start", locgate::serve::start_with_sink(config, Some(sink)))
        .await
        .expect("start");
    let proxy = running.addr("sso").expect("addr");
    let started = Instant::now();
    for _ in 0..20 {
        let (parts, _) = get(KP_CLIENT, proxy, "/", &[]).await;
        assert_eq!(parts.status, 403);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "20 requests took {took:?} behind a 2 s store"
    );
    running.shutdown().await;
    assert_eq!(
        got.lock().expect("lock").len(),
        20,
        "every event reached the slow store"
    );
}

// ---------------------------------------------------------------------------------------------
// Admin API, metrics, page
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_auth_filters_pagination_ack_report_and_metrics() {
    let fx = Fixture::new();
    let config = review_config(&fx, "enforce", "", "");
    let running = within("start", locgate::serve::start(config))
        .await
        .expect("start");
    let proxy = running.addr("sso").expect("proxy");
    let adm = running.admin_addr.expect("admin");

    // alice (e1042, Austin) from North Korea x3, from AWS x2, from Austin x1; bob (GB) from AWS.
    for _ in 0..3 {
        assert_eq!(visit(proxy, KP_CLIENT, "alice").await, 403);
    }
    for _ in 0..2 {
        visit(proxy, AWS_CLIENT, "alice@example.com").await;
    }
    visit(proxy, US_CLIENT, "alice").await;
    visit(proxy, AWS_CLIENT, "bob@example.com").await;
    let shared = running.shared.clone();
    tokio::task::spawn_blocking(move || shared.auditor.flush())
        .await
        .expect("flush");

    // Auth: nothing without the token, wrong token, or a malformed header (the health routes
    // answer probes without it: `health_routes_answer_probes_without_the_token`).
    for target in [
        "/api/events",
        "/api/report",
        "/metrics",
        "/api/employees/e1042",
    ] {
        assert_eq!(
            admin(adm, "GET", target, None, None).await.0,
            401,
            "{target}"
        );
        assert_eq!(
            admin(
                adm,
                "GET",
                target,
                Some("Bearer wrong-token-0123456789"),
                None
            )
            .await
            .0,
            401
        );
        assert_eq!(admin(adm, "GET", target, Some(TOKEN), None).await.0, 401);
    }
    assert_eq!(
        admin(adm, "POST", "/api/events/x/ack", None, Some("{}"))
            .await
            .0,
        401
    );
    let (status, body) = admin(adm, "GET", "/", None, None).await;
    assert_eq!(status, 401);
    assert!(!body.contains(TOKEN));

    // Filters.
    let all = api(adm, "/api/events?limit=1000").await;
    assert_eq!(all["events"].as_array().expect("events").len(), 7, "{all}");
    let blocks = api(adm, "/api/events?action=block").await;
    assert_eq!(blocks["events"].as_array().expect("a").len(), 3);
    let alice = api(adm, "/api/events?employee=e1042&reason=country_mismatch").await;
    assert_eq!(alice["events"].as_array().expect("a").len(), 3, "{alice}");
    let bob = api(adm, "/api/events?employee=e2001").await;
    assert_eq!(bob["events"].as_array().expect("a").len(), 1);
    assert_eq!(
        api(adm, "/api/events?since=1h").await["events"]
            .as_array()
            .expect("a")
            .len(),
        7
    );
    for bad in [
        "/api/events?action=drop",
        "/api/events?since=yesterday",
        "/api/events?limit=0",
        "/api/events?cursor=abc",
        "/api/events?colour=red",
        "/api/events?reason=a%27b",
        "/api/report?since=x",
    ] {
        let (status, body) = admin(adm, "GET", bad, Some(&bearer()), None).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("error"), "{body}");
    }

    // Pagination with the cursor.
    let mut ids = Vec::new();
    let mut target = "/api/events?limit=3".to_string();
    loop {
        let page = api(adm, &target).await;
        ids.extend(
            page["events"]
                .as_array()
                .expect("a")
                .iter()
                .map(|e| e["id"].as_str().expect("id").to_owned()),
        );
        match page["next"].as_str() {
            Some(n) => target = format!("/api/events?limit=3&cursor={n}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 7);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7);

    // Acknowledge.
    let id = blocks["events"][0]["id"].as_str().expect("id").to_owned();
    let (status, body) = admin(
        adm,
        "POST",
        &format!("/api/events/{id}/ack"),
        Some(&bearer()),
        Some(r#"{"reviewer":"carol","note":"known VPN test"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        admin(
            adm,
            "POST",
            "/api/events/nope/ack",
            Some(&bearer()),
            Some(r#"{"reviewer":"c"}"#)
        )
        .await
        .0,
        404
    );
    assert_eq!(
        admin(
            adm,
            "POST",
            &format!("/api/events/{id}/ack"),
            Some(&bearer()),
            Some(r#"{"note":"x"}"#)
        )
        .await
        .0,
        400
    );
    assert_eq!(
        admin(
            adm,
            "POST",
            &format!("/api/events/{id}/ack"),
            Some(&bearer()),
            Some("not json")
        )
        .await
        .0,
        400
    );
    let acked = api(adm, "/api/events?status=acked").await;
    assert_eq!(acked["events"].as_array().expect("a").len(), 1);
    assert_eq!(acked["events"][0]["ack"]["note"], "known VPN test");
    assert_eq!(
        api(adm, "/api/events?status=open").await["events"]
            .as_array()
            .expect("a")
            .len(),
        6
    );

    // Employee and report.
    let emp = api(adm, "/api/employees/alice@example.com").await;
    assert_eq!(emp["id"], "e1042");
    assert_eq!(emp["home"]["city"], "Austin");
    assert_eq!(emp["timeline"].as_array().expect("t").len(), 6);
    assert_eq!(emp["summary"]["connections"], 6);
    assert_eq!(
        admin(adm, "GET", "/api/employees/nobody", Some(&bearer()), None)
            .await
            .0,
        404
    );
    let report = api(adm, "/api/report?since=1d").await;
    assert_eq!(
        report[0]["employee"], "e1042",
        "most evidence first: {report}"
    );

    // Metrics, parsed.
    let (status, text) = admin(adm, "GET", "/metrics", Some(&bearer()), None).await;
    assert_eq!(status, 200);
    let metrics = parse_prometheus(&text);
    assert_eq!(
        metrics["locgate_requests_total{listener=\"sso\",action=\"block\"}"],
        3.0
    );
    assert!(metrics.contains_key("locgate_requests_total{listener=\"sso\",action=\"note\"}"));
    assert_eq!(
        metrics["locgate_reasons_total{code=\"sanctioned_country\"}"],
        3.0
    );
    assert_eq!(metrics["locgate_events_stored_total"], 7.0);
    assert_eq!(metrics["locgate_event_queue_depth"], 0.0);
    assert_eq!(metrics["locgate_event_store_up"], 1.0);
    assert_eq!(metrics["locgate_events_spilled_total"], 0.0);
    assert_eq!(metrics["locgate_decision_seconds_count"], 7.0);
    assert_eq!(metrics["locgate_lookup_seconds_count"], 7.0);
    assert_eq!(metrics["locgate_decision_seconds_bucket{le=\"+Inf\"}"], 7.0);
    assert!(
        metrics
            .keys()
            .any(|k| k.starts_with("locgate_data_age_seconds{")),
        "{text}"
    );
    assert!(metrics.contains_key("locgate_upstream_errors_total"));

    assert_eq!(
        admin(adm, "GET", "/healthz", Some(&bearer()), None).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        admin(adm, "GET", "/readyz", Some(&bearer()), None).await,
        (200, "ready\n".into())
    );

    // The page, with the browser cookie from the login form.
    let form = format!("token={TOKEN}");
    let req = request("POST", "/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .expect("req");
    let (parts, _) = read_body(send(LOCAL, adm, req).await).await;
    let cookie = header(&parts, "set-cookie").expect("cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie must not carry the token itself"
    );
    let (parts, _) = get(LOCAL, adm, "/", &[("cookie", "locgate_admin=forged")]).await;
    assert_eq!(parts.status, 401);
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let (parts, body) = get(LOCAL, adm, "/?status=all", &[("cookie", &pair)]).await;
    assert_eq!(parts.status, 200);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("sanctioned_country") && body.contains("e1042"),
        "{body}"
    );
    // The queue opens with the employees ranked by evidence, linked to their pages.
    let ranking = body.split("id=\"ranking\"").nth(1).expect("ranking table");
    assert!(
        ranking.contains("<a href=\"/employees/e1042\">e1042</a>")
            && ranking.contains("sanctioned_country ×1"),
        "{ranking}"
    );
    // DB-IP's CC BY licence: a link on every page that shows its results.
    assert!(
        body.contains("<a href=\"https://db-ip.com\">IP Geolocation by DB-IP</a>"),
        "{body}"
    );
    let (parts, body) = get(LOCAL, adm, "/employees/e1042", &[("cookie", &pair)]).await;
    assert_eq!(parts.status, 200);
    assert!(String::from_utf8_lossy(&body).contains("id=\"home\""));

    running.shutdown().await;
}

/// `name{labels} value` lines into a map; every non-comment line must parse.
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, f64> {
    let mut out = std::collections::HashMap::new();
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics ends with # EOF:\n{text}"
    );
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            if line.starts_with("# TYPE") {
                let kind = line.split(' ').nth(3).expect("type");
                assert!(
                    ["counter", "gauge", "histogram", "info"].contains(&kind),
                    "{line}"
                );
            }
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        assert!(
            name.starts_with("locgate_") || name.starts_with("process_"),
            "{line}"
        );
        out.insert(name.to_owned(), v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_stops_the_start_or_runs_degraded_and_says_so() {
    let fx = Fixture::new();
    std::fs::write(fx.dir.path().join("events.db"), vec![7u8; 4096]).expect("write");
    let config = review_config(&fx, "enforce", "", "");
    let err = locgate::serve::start(config)
        .await
        .err()
        .expect("must not start")
        .to_string();
    assert!(
        err.contains("events.db") && err.contains("jsonl_only"),
        "{err}"
    );

    let config = review_config(&fx, "enforce", "on_store_error = \"jsonl_only\"", "");
    let running = within("start", locgate::serve::start(config))
        .await
        .expect("start");
    let proxy = running.addr("sso").expect("proxy");
    let adm = running.admin_addr.expect("admin");
    assert_eq!(visit(proxy, KP_CLIENT, "alice").await, 403);
    let (status, body) = admin(adm, "GET", "/readyz", Some(&bearer()), None).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("DEGRADED") && body.contains("JSON lines only"),
        "{body}"
    );
    // A probe without the token learns the status, not why.
    assert_eq!(
        admin(adm, "GET", "/readyz", None, None).await,
        (503, "not ready\n".into())
    );
    let (_, text) = admin(adm, "GET", "/metrics", Some(&bearer()), None).await;
    assert_eq!(parse_prometheus(&text)["locgate_event_store_up"], 0.0);
    let events = fx.events(&running).await;
    assert_eq!(events.len(), 1, "the event is in JSON lines");
    running.shutdown().await;
}

/// Load balancers, kubelet and a container HEALTHCHECK have no token: `/livez`, `/healthz` and
/// `/readyz` answer them with a status word; the detail of `/readyz` stays behind the token; a
/// draining instance is not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_routes_answer_probes_without_the_token() {
    let fx = Fixture::new();
    // A stale list gives `/readyz` a detail line to keep from strangers.
    let stale = fx.write("tor.txt", "185.220.101.1\n");
    let old = std::time::SystemTime::now() - Duration::from_secs(30 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(old))
        .expect("age the list");
    let text = fx.config_text(&review_listener("enforce")).replace(
        "embedded = false\n",
        "embedded = false\nlists = [{ path = \"tor.txt\", category = \"tor_exit\" }]\n",
    ) + &format!("\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n");
    let config = Config::parse(&text, "health.toml", fx.dir.path())
        .unwrap_or_else(|e| panic!("config does not parse: {e}\n{text}"));
    let running = within("start", locgate::serve::start(config))
        .await
        .expect("start");
    let adm = running.admin_addr.expect("admin");

    for target in ["/livez", "/healthz"] {
        assert_eq!(
            admin(adm, "GET", target, None, None).await,
            (200, "ok\n".into()),
            "{target}"
        );
    }
    assert_eq!(
        admin(adm, "GET", "/readyz", None, None).await,
        (200, "ready\n".into())
    );
    // A wrong token is a stranger too.
    assert_eq!(
        admin(
            adm,
            "GET",
            "/readyz",
            Some("Bearer wrong-token-0123456789"),
            None
        )
        .await,
        (200, "ready\n".into())
    );
    let (status, detail) = admin(adm, "GET", "/readyz", Some(&bearer()), None).await;
    assert_eq!(status, 200);
    assert!(
        detail.starts_with("ready\n")
            && detail.contains("warning: stale data")
            && detail.contains("tor.txt"),
        "{detail}"
    );

    // Draining: out of the balancer before the listeners close.
    running.shared.stopping.send_replace(true);
    assert_eq!(
        admin(adm, "GET", "/readyz", None, None).await,
        (503, "not ready\n".into())
    );
    assert_eq!(
        admin(adm, "GET", "/livez", None, None).await,
        (200, "ok\n".into())
    );
    running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_alerts_retry_until_delivered_and_deduplicate() {
    let (hook, bodies) = flaky_webhook(2).await;
    let fx = Fixture::new();
    let alert = format!(
        "[[alert]]\nwebhook = \"http://{hook}/hooks/locgate\"\nformat = \"slack\"\non = [\"block\", \"country_mismatch\"]\nretries = 4\nbackoff = \"50ms\"\ndedup_interval = \"10m\"\n"
    );
    let config = review_config(&fx, "enforce", "", &alert);
    let running = within("start", locgate::serve::start(config))
        .await
        .expect("start");
    let proxy = running.addr("sso").expect("proxy");
    let started = Instant::now();
    assert_eq!(visit(proxy, KP_CLIENT, "alice").await, 403);
    assert_eq!(visit(proxy, KP_CLIENT, "alice").await, 403);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "requests waited for the webhook"
    );
    let stats = running.shared.auditor.stats.clone();
    within("alert delivered", async {
        while stats.alerts_sent.load(Ordering::Relaxed) < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let got = bodies.lock().expect("lock").clone();
    assert_eq!(got.len(), 3, "two failures then success: {got:?}");
    let v: Json = serde_json::from_str(&got[2]).expect("json");
    let text = v["text"].as_str().expect("slack text");
    assert!(text.contains("e1042") && text.contains("block"), "{text}");
    // The second block for the same person and trigger was deduplicated (one trigger per event
    // and rule: the action when it is listed, else the first listed reason).
    assert_eq!(stats.alerts_deduplicated.load(Ordering::Relaxed), 1);
    assert_eq!(stats.alerts_failed.load(Ordering::Relaxed), 0);
    running.shutdown().await;
}

#[test]
fn bad_webhooks_triggers_tokens_and_oidc_settings_are_config_errors() {
    let fx = Fixture::new();
    for (alert, want) in [
        (
            "[[alert]]\nwebhook = \"ftp://hooks.invalid/x\"\non = [\"block\"]\n",
            "ftp",
        ),
        (
            "[[alert]]\nwebhook = \"https://user:pw@hooks.invalid/x\"\non = [\"block\"]\n",
            "credentials",
        ),
        (
            "[[alert]]\nwebhook = \"http://127.0.0.1:9/x\"\non = [\"blokc\"]\n",
            "blokc",
        ),
        ("[admin]\ntoken = \"short\"\n", "at least 16"),
        (
            "[admin]\ntoken = \"0123456789abcdef0\"\n[admin.oidc]\nissuer = \"http://idp.example\"\n\
             client_id = \"c\"\nredirect_url = \"https://r.example/oidc/callback\"\nviewer_groups = [\"x\"]\n",
            "issuer: `http://idp.example` must be https",
        ),
        (
            "[admin]\ntoken = \"0123456789abcdef0\"\n[admin.oidc]\nissuer = \"https://idp.example\"\n\
             client_id = \"c\"\nredirect_url = \"https://r.example/oidc/callback\"\n",
            "gives nobody a role",
        ),
        (
            "[admin]\ntoken = \"0123456789abcdef0\"\n[admin.oidc]\nissuer = \"https://idp.example\"\n\
             client_id = \"c\"\nredirect_url = \"https://r.example/login\"\nroles_claim = \"r\"\n",
            "must be /oidc/callback",
        ),
    ] {
        let text = format!(
            "{}{alert}",
            fx.config_text(&listener("a", "builtin:whoami", ""))
        );
        let err = Config::parse(&text, "t.toml", fx.dir.path())
            .expect_err("error")
            .to_string();
        assert!(err.contains(want) && err.contains("t.toml:"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// kill -9 under load, then restart
// ---------------------------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn wait_listening(addr: SocketAddr) {
    within("binary listening", async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_under_load_loses_no_acknowledged_event() {
    let fx = Fixture::new();
    let (pp, ap) = (free_port(), free_port());
    let db = fx.dir.path().join("events.db");
    let text = format!(
        "{}sqlite = {}\n\n[admin]\nbind = \"127.0.0.1:{ap}\"\ntoken = \"{TOKEN}\"\n",
        fx.config_text(&listener_at(
            "sso",
            &format!("127.0.0.1:{pp}"),
            "builtin:whoami",
            "mode = \"enforce\""
        )),
        toml_str(&db)
    );
    let cfg = fx.dir.path().join("locgate.toml");
    std::fs::write(&cfg, text).expect("config");
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_locgate"))
            .args(["run", "-c"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let proxy: SocketAddr = format!("127.0.0.1:{pp}").parse().expect("addr");
    let adm: SocketAddr = format!("127.0.0.1:{ap}").parse().expect("addr");
    let mut child = spawn();
    wait_listening(proxy).await;
    wait_listening(adm).await;

    // Bounded load: 4 clients for 1.5 s.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        let sent = sent.clone();
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (parts, _) = get(KP_CLIENT, proxy, "/", &[]).await;
                assert_eq!(parts.status, 403);
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Events the gateway reports as written (the store's own answer), seen during the load.
    let mut acknowledged = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut stored_seen = 0.0;
    while Instant::now() < deadline {
        let page = api(adm, "/api/events?limit=1000").await;
        for e in page["events"].as_array().expect("a") {
            acknowledged.insert(e["id"].as_str().expect("id").to_owned());
        }
        let (_, text) = admin(adm, "GET", "/metrics", Some(&bearer()), None).await;
        stored_seen = parse_prometheus(&text)["locgate_events_stored_total"];
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }
    assert!(
        sent.load(Ordering::Relaxed) > 50,
        "load too small to mean anything"
    );
    assert!(!acknowledged.is_empty());

    // Restart on the same database: it opens, and holds everything it had acknowledged.
    let mut child = spawn();
    wait_listening(adm).await;
    let store = Store::open_read_only(&db).expect("store opens after kill -9");
    assert_eq!(store.integrity().expect("integrity"), "ok");
    let count = store.count().expect("count") as f64;
    assert!(
        count >= stored_seen,
        "store has {count}, gateway had acknowledged {stored_seen}"
    );
    let all: std::collections::HashSet<String> = store
        .query(&Filter {
            limit: 1000,
            ..Filter::default()
        })
        .expect("q")
        .events
        .into_iter()
        .map(|e| e.id)
        .collect();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !all.contains(*id))
        .collect();
    assert!(missing.is_empty() || count > 1000.0, "lost: {missing:?}");
    // The restarted gateway serves and records.
    assert_eq!(get(KP_CLIENT, proxy, "/", &[]).await.0.status, 403);
    child.kill().expect("kill");
    let _ = child.wait();
    eprintln!(
        "kill -9: {} requests sent, {stored_seen} acknowledged, {count} in store",
        sent.load(Ordering::Relaxed)
    );
}

// ---------------------------------------------------------------------------------------------
// locgate events / locgate report
// ---------------------------------------------------------------------------------------------

fn locgate(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locgate"))
        .args(args)
        .output()
        .expect("run locgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn events_and_report_commands_read_the_store() {
    let fx = Fixture::new();
    let db = fx.dir.path().join("events.db");
    let mut store = Store::open(&db, None).expect("open");
    store
        .insert(&[
            ev(
                "b1",
                &now_ts(0),
                Action::Block,
                &["sanctioned_country"],
                Some("e1042"),
            ),
            ev(
                "f1",
                &now_ts(0),
                Action::Flag,
                &["hosting_provider"],
                Some("e2001"),
            ),
            ev(
                "f2",
                &now_ts(2),
                Action::Flag,
                &["country_mismatch"],
                Some("e1042"),
            ),
        ])
        .expect("insert");
    store.ack("f1", "carol", "known").expect("ack");
    drop(store);
    let dbs = db.to_str().expect("utf-8 path");

    let (code, out, err) = locgate(&["events", "--db", dbs]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("TIME (UTC)"), "{out}");
    assert!(
        out.contains("b1") && out.contains("acked by carol: known"),
        "{out}"
    );

    let (code, out, _) = locgate(&["events", "--db", dbs, "--since", "24h", "--json"]);
    assert_eq!(code, 0);
    let ids: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Json>(l).expect("json")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["f1", "b1"]);

    let (_, out, _) = locgate(&[
        "events",
        "--db",
        dbs,
        "--employee",
        "e1042",
        "--action",
        "flag",
        "--csv",
    ]);
    let mut lines = out.lines();
    assert!(lines.next().expect("header").starts_with("time,id,action"));
    assert!(lines.next().expect("row").contains(",f2,flag,e1042,"));
    assert!(lines.next().is_none());

    let (_, out, _) = locgate(&[
        "events",
        "--db",
        dbs,
        "--reason",
        "hosting_provider",
        "--status",
        "open",
    ]);
    assert!(out.contains("(no events match)"), "{out}");

    // Every documented action is a filter, `note` included.
    let (code, out, err) = locgate(&["events", "--db", dbs, "--action", "note"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(no events match)"), "{out}");

    let (code, _, err) = locgate(&["events", "--db", dbs, "--since", "yesterday"]);
    assert_eq!(code, 2);
    assert!(err.contains("--since"), "{err}");
    let (code, _, err) = locgate(&["events", "--db", "/nonexistent/x.db"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such event store"), "{err}");

    // The report with the directory from a config: most evidence first.
    let cfg = fx.dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}sqlite = \"events.db\"\n\n[employees]\nfile = {}\n",
            fx.config_text(""),
            employees_file()
        ),
    )
    .expect("write");
    let (code, out, err) = locgate(&[
        "report",
        "-c",
        cfg.to_str().expect("utf-8"),
        "--since",
        "30d",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert!(
        rows[0].starts_with("period: ") && rows[0].ends_with("(--since 30d)"),
        "{out}"
    );
    assert!(rows[1].starts_with("EMPLOYEE"), "{out}");
    assert!(
        rows[2].starts_with("e1042") && rows[2].contains("0%"),
        "{out}"
    );
    assert!(rows[3].starts_with("e2001"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Admin console sessions and login limit (issue 12 item 7)
// ---------------------------------------------------------------------------------------------

/// `POST /login` with `token` from `src`: status, `Set-Cookie`, `Retry-After`.
async fn admin_login(
    src: &str,
    adm: SocketAddr,
    token: &str,
) -> (u16, Option<String>, Option<String>) {
    let req = request("POST", "/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("token={token}"))))
        .expect("req");
    let (parts, _) = read_body(send(src, adm, req).await).await;
    (
        parts.status.as_u16(),
        header(&parts, "set-cookie").map(str::to_owned),
        header(&parts, "retry-after").map(str::to_owned),
    )
}

/// The `name=value` pair of a `Set-Cookie` line.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().expect("pair").to_owned()
}

/// The attack: a reviewer signs out on a shared machine, or a cookie is copied out of a
/// browser. The cookie used to be a fixed digest of the token, the same for every login and
/// valid for as long as the token, so signing out revoked nothing. Now each login gets its own
/// random session, and signing out ends it on the server: the old cookie gets 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_logout_revokes_the_session_on_the_server() {
    let fx = Fixture::new();
    let running = within(
        "start",
        locgate::serve::start(review_config(&fx, "enforce", "", "")),
    )
    .await
    .expect("start");
    let adm = running.admin_addr.expect("admin");
    let (status, first, _) = admin_login(LOCAL, adm, TOKEN).await;
    assert_eq!(status, 303);
    let first = first.expect("cookie");
    assert!(
        first.contains("HttpOnly") && first.contains("SameSite=Strict") && first.contains("Path=/"),
        "{first}"
    );
    assert!(
        !first.contains("Secure"),
        "plain HTTP (loopback) cannot use Secure: {first}"
    );
    let (_, second, _) = admin_login(LOCAL, adm, TOKEN).await;
    let (a, b) = (cookie_pair(&first), cookie_pair(&second.expect("cookie")));
    assert_ne!(a, b, "every login gets its own session");
    assert_eq!(a.len(), "locgate_admin=".len() + 64, "{a}");

    let (parts, _) = get(LOCAL, adm, "/?status=all", &[("cookie", &a)]).await;
    assert_eq!(parts.status, 200);
    let (parts, _) = get(LOCAL, adm, "/logout", &[("cookie", &a)]).await;
    assert_eq!(parts.status, 303);
    assert!(header(&parts, "set-cookie").is_some_and(|c| c.contains("Max-Age=0")));
    let (parts, _) = get(LOCAL, adm, "/?status=all", &[("cookie", &a)]).await;
    assert_eq!(
        parts.status, 401,
        "the signed-out cookie is revoked on the server"
    );
    let (parts, _) = get(LOCAL, adm, "/?status=all", &[("cookie", &b)]).await;
    assert_eq!(parts.status, 200, "the other session is untouched");
    running.shutdown().await;
}

/// The attack: guessing the admin token through the login form as fast as the server
/// answers. Now five wrong tokens a minute per address, then 429 with `Retry-After` (even the
/// right token waits); another address is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_login_is_rate_limited_per_address() {
    let fx = Fixture::new();
    let running = within(
        "start",
        locgate::serve::start(review_config(&fx, "enforce", "", "")),
    )
    .await
    .expect("start");
    let adm = running.admin_addr.expect("admin");
    for n in 0..5 {
        let (status, cookie, _) = admin_login(LOCAL, adm, &format!("wrong-token-{n:012}")).await;
        assert_eq!((status, cookie), (401, None), "attempt {n}");
    }
    let (status, cookie, retry) = admin_login(LOCAL, adm, "wrong-token-again-0000").await;
    assert_eq!((status, cookie), (429, None));
    let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let (status, cookie, _) = admin_login(LOCAL, adm, TOKEN).await;
    assert_eq!((status, cookie), (429, None), "the limited address waits");
    let (status, cookie, _) = admin_login("127.0.0.2", adm, TOKEN).await;
    assert_eq!(status, 303, "another address signs in");
    assert!(cookie.is_some());
    running.shutdown().await;
}

/// The attack: a session cookie sent over plain HTTP can be read on the path. An HTTPS
/// console (`[admin] tls`) marks it `Secure`, so the browser never sends it in clear text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_admin_console_sets_a_secure_cookie() {
    let fx = Fixture::new();
    let leaf = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert = fx.write("admin.pem", &leaf.cert.pem());
    let key = fx.write("admin.key", &leaf.signing_key.serialize_pem());
    let tls = format!(
        "[admin.tls]\ncert = {}\nkey = {}\n",
        toml_str(&cert),
        toml_str(&key)
    );
    let running = within(
        "start",
        locgate::serve::start(review_config(&fx, "enforce", "", &tls)),
    )
    .await
    .expect("start");
    let adm = running.admin_addr.expect("admin");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(leaf.cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let https = |req: http::Request<Full<Bytes>>| {
        let (connector, name) = (connector.clone(), name.clone());
        async move {
            let tcp = connect_from(LOCAL, adm).await;
            let tls = within("handshake", connector.connect(name, tcp))
                .await
                .expect("TLS");
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .expect("h1");
            tokio::spawn(conn);
            read_body(
                within("response", sender.send_request(req))
                    .await
                    .expect("resp"),
            )
            .await
        }
    };
    let login = request("POST", "/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("token={TOKEN}"))))
        .expect("req");
    let (parts, _) = https(login).await;
    assert_eq!(parts.status, 303);
    let set = header(&parts, "set-cookie").expect("cookie").to_owned();
    assert!(
        set.contains("; Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let page = request("GET", "/?status=all")
        .header("cookie", cookie_pair(&set))
        .body(Full::new(Bytes::new()))
        .expect("req");
    let (parts, _) = https(page).await;
    assert_eq!(parts.status, 200);
    running.shutdown().await;
}

#[test]
fn report_ranks_by_days_of_evidence_not_by_events() {
    // e1042 retried forty times on one afternoon from Berlin (one day away, forty flags); e2001
    // shared an address with other employees on eight different days, one sign-in each.
    let dir = tempfile::tempdir().expect("tmp");
    let mut store = Store::open(&dir.path().join("e.db"), None).expect("open");
    let mut batch = Vec::new();
    for i in 0..40 {
        batch.push(ev(
            &format!("outlier{i}"),
            &now_ts(3),
            Action::Flag,
            &["outside_home_radius", "country_mismatch"],
            Some("e1042"),
        ));
    }
    for day in 0..8 {
        batch.push(ev(
            &format!("farm{day}"),
            &now_ts(day),
            Action::Flag,
            &["shared_egress"],
            Some("e2001"),
        ));
    }
    store.insert(&batch).expect("insert");
    let dir_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/employees/employees.example.toml");
    let directory = locgate::employees::Directory::load(&dir_path, 100.0, &Default::default())
        .expect("directory");
    let rows = store.report(0, Some(&directory), None).expect("report");
    assert_eq!(rows[0].employee, "e2001", "{rows:#?}");
    assert_eq!(rows[0].signal_days, vec![("shared_egress".to_string(), 8)]);
    let outlier = &rows[1];
    assert_eq!((outlier.connections, outlier.mismatches), (40, 40));
    assert_eq!((outlier.days, outlier.days_away), (1, 1));
    assert_eq!(outlier.distinct_addresses, 1);
    assert!(rows[0].evidence_score > 2.0 * outlier.evidence_score);
}
