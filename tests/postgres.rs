//! The fleet's shared event store on a real PostgreSQL (issue 18 point 1), through the real
//! `locgate` binary: two instances write into one database and each one's console and CLI show
//! the whole fleet; the database killed (`kill -9`) and restarted under load, and locgate itself
//! killed while events wait in its spool, lose no event; TLS with a private CA and a password
//! file; a schema newer than the binary is refused at start.
//!
//! PostgreSQL comes from Debian's packages (`.ci/run` installs it and sets
//! `LOCGATE_REQUIRE_POSTGRES`); see `common/pg_server.rs`.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::pg_server::PgServer;
use common::*;
use http_body_util::Full;
use serde_json::Value as Json;

const TOKEN: &str = "pg-test-admin-token-0123456789abcdef";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One locgate process: its config, ports and files.
struct Instance {
    name: String,
    config: PathBuf,
    proxy: SocketAddr,
    admin: SocketAddr,
    jsonl: PathBuf,
    child: Option<Child>,
}

impl Instance {
    /// Writes the config of instance `name` (its own JSON lines, spool and ports) storing into
    /// `url`, with `extra` `[events]` keys.
    fn new(fx: &Fixture, pg: &PgServer, name: &str, url: &str, extra: &str) -> Instance {
        Self::with_listener(fx, pg, name, url, extra, "mode = \"enforce\"", "")
    }

    /// [`Self::new`] with `listener` keys for the listener and `sections` (`[employees]`...).
    fn with_listener(
        fx: &Fixture,
        pg: &PgServer,
        name: &str,
        url: &str,
        extra: &str,
        listener: &str,
        sections: &str,
    ) -> Instance {
        let (pp, ap) = (free_port(), free_port());
        let jsonl = fx.dir.path().join(format!("{name}.jsonl"));
        let spool = fx.dir.path().join(format!("{name}.spool"));
        let text = format!(
            "{}\
             [events]\njsonl = {}\ninstance = \"{name}\"\npostgres = \"{url}\"\n\
             postgres_password_file = {}\npostgres_spool = {}\n{extra}\n\
             [admin]\nbind = \"127.0.0.1:{ap}\"\ntoken = \"{TOKEN}\"\n",
            fx.config_text_with(
                &listener_at(
                    "sso",
                    &format!("127.0.0.1:{pp}"),
                    "builtin:whoami",
                    listener
                ),
                sections
            )
            .replace(&format!("[events]\njsonl = {}\n", toml_str(&fx.events)), ""),
            toml_str(&jsonl),
            toml_str(&pg.password_file()),
            toml_str(&spool),
        );
        let config = fx.write(&format!("{name}.toml"), &text);
        Instance {
            name: name.to_owned(),
            config,
            proxy: format!("127.0.0.1:{pp}").parse().expect("addr"),
            admin: format!("127.0.0.1:{ap}").parse().expect("addr"),
            jsonl,
            child: None,
        }
    }

    async fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_locgate"))
            .args(["run", "-c"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn locgate");
        self.child = Some(child);
        within("locgate listening", async {
            for addr in [self.proxy, self.admin] {
                while tokio::net::TcpStream::connect(addr).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
        .await;
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            let _ = c.wait();
        }
    }

    /// Ids of the events in this instance's JSON lines file.
    fn jsonl_ids(&self) -> HashSet<String> {
        read_events(&self.jsonl)
            .iter()
            .map(|e| e["event"]["id"].as_str().expect("id").to_owned())
            .collect()
    }

    async fn admin(&self, method: &str, target: &str, body: Option<&str>) -> (u16, String) {
        let mut b = request(method, target).header("authorization", format!("Bearer {TOKEN}"));
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .expect("request");
        let (parts, bytes) = read_body(send(LOCAL, self.admin, req).await).await;
        (
            parts.status.as_u16(),
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    async fn api(&self, target: &str) -> Json {
        let (status, body) = self.admin("GET", target, None).await;
        assert_eq!(status, 200, "{target}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"))
    }

    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.admin("GET", "/metrics", None).await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// Waits until the spool is empty and the store reachable (bounded: 60 s).
    async fn caught_up(&self) {
        eventually(
            &format!("{}: spool replayed", self.name),
            Duration::from_secs(60),
            || async {
                let spooled = self.metric("locgate_event_store_spooled").await;
                let up = self.metric("locgate_event_store_up").await;
                (spooled == 0.0 && up == 1.0)
                    .then_some(())
                    .ok_or(format!("spooled {spooled}, up {up}"))
            },
        )
        .await
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A sign-in from Pyongyang: blocked (enforce), one event each.
async fn blocked(i: &Instance, path: &str) {
    let (parts, _) = get(KP_CLIENT, i.proxy, path, &[]).await;
    assert_eq!(parts.status, 403, "{}: a KP client is blocked", i.name);
}

fn flush_wait() -> Duration {
    Duration::from_millis(300)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_store_and_each_console_shows_the_fleet() {
    let Some(pg) = PgServer::start(false) else {
        return;
    };
    let url = pg.database("fleet");
    let fx = Fixture::new();
    let mut a = Instance::new(&fx, &pg, "gw-a", &url, "");
    let mut b = Instance::new(&fx, &pg, "gw-b", &url, "");
    a.start().await;
    b.start().await;
    for _ in 0..3 {
        blocked(&a, "/from-a").await;
    }
    for _ in 0..2 {
        blocked(&b, "/from-b").await;
    }
    // Each instance's events reach the shared store from its writer thread.
    let want: HashSet<String> =
        eventually("five events written", Duration::from_secs(20), || async {
            let ids: HashSet<String> = a.jsonl_ids().union(&b.jsonl_ids()).cloned().collect();
            if ids.len() == 5 {
                Ok(ids)
            } else {
                Err(format!("{ids:?}"))
            }
        })
        .await;
    eventually("events in PostgreSQL", Duration::from_secs(20), || async {
        let stored = pg.event_ids("fleet");
        if stored == want {
            Ok(())
        } else {
            Err(format!("{stored:?}"))
        }
    })
    .await;
    // Either console lists the whole fleet, each event with the instance that saw it.
    for console in [&a, &b] {
        let page = console.api("/api/events?limit=100").await;
        let events = page["events"].as_array().expect("events");
        let by: Vec<(&str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["instance"].as_str().unwrap_or("?"),
                    e["action"].as_str().unwrap_or("?"),
                )
            })
            .collect();
        assert_eq!(by.len(), 5, "{}: {by:?}", console.name);
        assert_eq!(by.iter().filter(|(i, _)| *i == "gw-a").count(), 3);
        assert_eq!(by.iter().filter(|(i, _)| *i == "gw-b").count(), 2);
        assert!(by.iter().all(|(_, act)| *act == "block"));
    }
    // An acknowledgement made on A's console is what B's console shows.
    let page = b.api("/api/events?limit=100").await;
    let of_b = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["instance"] == "gw-b")
        .expect("an event of gw-b")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, body) = a
        .admin(
            "POST",
            &format!("/api/events/{of_b}/ack"),
            Some(r#"{"reviewer":"it-sec","note":"seen on gw-b, reviewed on gw-a"}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let acked = b.api("/api/events?status=acked").await;
    let acked = acked["events"].as_array().expect("events");
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0]["id"], of_b.as_str());
    assert_eq!(acked[0]["ack"]["note"], "seen on gw-b, reviewed on gw-a");
    // The CLI reads the same store through either config.
    let out = locgate_bin(&["events", "-c", a.config.to_str().expect("utf-8"), "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let rows = out.json_lines();
    assert_eq!(rows.len(), 5);
    let instances: HashSet<&str> = rows.iter().filter_map(|r| r["instance"].as_str()).collect();
    assert_eq!(instances, HashSet::from(["gw-a", "gw-b"]));
    // /readyz says nothing is wrong.
    let (status, body) = a.admin("GET", "/readyz", None).await;
    assert_eq!(status, 200);
    assert!(!body.contains("event store"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_kill_and_restart_under_load_and_locgate_kill_lose_no_event() {
    let Some(mut pg) = PgServer::start(false) else {
        return;
    };
    let url = pg.database("events");
    let fx = Fixture::new();
    let mut gw = Instance::new(&fx, &pg, "gw", &url, "");
    gw.start().await;

    // Bounded load: 2 clients for 6 s; the database is killed after 1.5 s and back at 3.5 s.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (stop, answered, proxy) = (stop.clone(), answered.clone(), gw.proxy);
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (parts, _) = get(KP_CLIENT, proxy, "/load", &[]).await;
                assert_eq!(parts.status, 403);
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.kill9();
    let killed_at = answered.load(Ordering::Relaxed);
    // While it is down the gateway keeps answering, and says the store is behind.
    let mut saw_spool = false;
    let mut saw_warning = false;
    let mut saw_console_503 = false;
    while started.elapsed() < Duration::from_millis(3500) {
        saw_spool |= gw.metric("locgate_event_store_spooled").await > 0.0;
        let (status, body) = gw.admin("GET", "/readyz", None).await;
        assert_eq!(
            status, 200,
            "a database outage does not make the gateway unready"
        );
        saw_warning |= body.contains("events spooled locally");
        // The console answers at once that the store is down (no wait on a connect).
        let (status, body) = gw.admin("GET", "/api/events?limit=1", None).await;
        if status == 503 {
            saw_console_503 = true;
            assert!(body.contains("unavailable"), "{body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered.load(Ordering::Relaxed) > killed_at,
        "requests answered while the database was down"
    );
    assert!(saw_spool, "events spooled while the database was down");
    assert!(saw_warning, "/readyz named the spooling");
    assert!(saw_console_503, "the console said the store is unavailable");
    assert_eq!(gw.metric("locgate_event_store_up").await, 0.0);
    pg.restart();
    while started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.expect("load task");
    }
    let answered = answered.load(Ordering::Relaxed);
    gw.caught_up().await;
    // The JSON lines file is flushed by the writer a moment after its batch (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(20);
    let written = loop {
        let ids = gw.jsonl_ids();
        if ids.len() >= answered || Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(flush_wait()).await;
    };
    let stored = pg.event_ids("events");
    eprintln!(
        "database kill -9 under load: {answered} requests answered, {} events written, {} stored, {} replayed from the spool",
        written.len(),
        stored.len(),
        gw.metric("locgate_event_store_replayed_total").await
    );
    assert_eq!(written.len(), answered, "one event per blocked request");
    let missing: Vec<_> = written.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} events lost: {missing:?}",
        missing.len()
    );
    assert_eq!(stored.len(), written.len());

    // Now locgate itself dies while events wait in its spool: the next start replays them.
    pg.kill9();
    for _ in 0..20 {
        blocked(&gw, "/while-down").await;
    }
    eventually("20 events spooled", Duration::from_secs(20), || async {
        let n = gw.metric("locgate_event_store_spooled").await;
        if n >= 20.0 {
            Ok(())
        } else {
            Err(format!("{n} spooled"))
        }
    })
    .await;
    gw.kill9();
    pg.restart();
    gw.start().await;
    gw.caught_up().await;
    let written = gw.jsonl_ids();
    let stored = pg.event_ids("events");
    let missing: Vec<_> = written.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "after locgate kill -9: {} lost",
        missing.len()
    );
    assert_eq!(
        stored.len(),
        answered + 20,
        "every blocked request's event is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_and_a_password_file() {
    let Some(pg) = PgServer::start(true) else {
        return;
    };
    let url = pg.database("secure");
    let fx = Fixture::new();
    let ca = fx.write("db-ca.pem", pg.ca_pem.as_deref().expect("ca"));
    // Without the CA the server refuses the plain connection (hostssl only): spooled, said.
    let mut plain = Instance::new(&fx, &pg, "plain", &url, "");
    plain.start().await;
    blocked(&plain, "/x").await;
    eventually(
        "a spooling warning in /readyz",
        Duration::from_secs(20),
        || async {
            let (_, body) = plain.admin("GET", "/readyz", None).await;
            if body.contains("events spooled locally") {
                Ok(())
            } else {
                Err(body)
            }
        },
    )
    .await;
    plain.kill9();
    // With it: TLS, the server's certificate checked against the private CA.
    let mut tls = Instance::new(
        &fx,
        &pg,
        "tls",
        &url,
        &format!("postgres_ca_file = {}\n", toml_str(&ca)),
    );
    tls.start().await;
    blocked(&tls, "/y").await;
    let want = tls.jsonl_ids();
    eventually(
        "the event arrived over TLS",
        Duration::from_secs(20),
        || async {
            let stored = pg.event_ids("secure");
            if want.is_subset(&stored) {
                Ok(())
            } else {
                Err(format!("{stored:?}"))
            }
        },
    )
    .await;
    let ssl: bool = pg
        .with_client("secure", |c| {
            c.query_one(
                "SELECT bool_or(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
                 WHERE application_name = 'locgate'",
                &[],
            )
            .expect("pg_stat_ssl")
            .get(0)
        })
        .expect("connect");
    assert!(ssl, "locgate's connections use TLS");
    // A CA that did not sign the server's certificate is refused.
    let other = fx.write("other-ca.pem", &other_ca());
    let mut wrong = Instance::new(
        &fx,
        &pg,
        "wrong",
        &url,
        &format!("postgres_ca_file = {}\n", toml_str(&other)),
    );
    wrong.start().await;
    let (_, body) = wrong.admin("GET", "/readyz", None).await;
    assert!(body.contains("event store"), "{body}");
    assert_eq!(wrong.metric("locgate_event_store_up").await, 0.0);
}

fn other_ca() -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.self_signed(&key).expect("cert").pem()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused_at_start() {
    let Some(pg) = PgServer::start(false) else {
        return;
    };
    let url = pg.database("future");
    let fx = Fixture::new();
    let mut first = Instance::new(&fx, &pg, "first", &url, "");
    first.start().await;
    first.kill9();
    let version: i32 = pg
        .with_client("future", |c| {
            let v = c
                .query_one("SELECT version FROM locgate_schema", &[])
                .expect("version")
                .get(0);
            c.batch_execute("UPDATE locgate_schema SET version = 999")
                .expect("update");
            v
        })
        .expect("connect");
    assert!(version >= 1, "migrated at first start");
    let second = Instance::new(&fx, &pg, "second", &url, "");
    let out = locgate_bin(&["run", "-c", second.config.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "refused to start");
    assert!(
        out.stderr.contains("schema version 999 is newer"),
        "{}",
        out.stderr
    );
}

/// The Austin team's listener: a loopback identity proxy names the user and the client.
const TEAM_LISTENER: &str = "mode = \"enforce\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
     identity_proxies = [\"127.0.0.1/32\"]\nidentity = [ { header = \"X-Remote-User\" } ]";

/// `who` signs in through `i` from `client`.
async fn sign_in(i: &Instance, client: &str, who: &str) -> u16 {
    let (parts, _) = get(
        LOCAL,
        i.proxy,
        "/login",
        &[("x-forwarded-for", client), ("x-remote-user", who)],
    )
    .await;
    parts.status.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laptop_farm_split_across_instances_is_one_case_on_every_console() {
    let Some(pg) = PgServer::start(false) else {
        return;
    };
    let url = pg.database("farm");
    let fx = Fixture::new();
    fx.write("team.toml", &austin_team());
    let team = employees_section("team.toml");
    let mut a = Instance::with_listener(&fx, &pg, "gw-a", &url, "", TEAM_LISTENER, &team);
    let mut b = Instance::with_listener(&fx, &pg, "gw-b", &url, "", TEAM_LISTENER, &team);
    a.start().await;
    b.start().await;
    // ann and bob through gw-a, cat through gw-b, all from one Austin home line: neither
    // instance sees three people on it (no shared history between them), so each allows.
    assert_eq!(sign_in(&a, US_CLIENT, "ann").await, 200);
    assert_eq!(sign_in(&a, US_CLIENT, "bob").await, 200);
    assert_eq!(sign_in(&b, US_CLIENT, "cat").await, 200);
    // The shared store does: one case, the same on both consoles, with all three in it.
    let find = |i: &'static str| {
        let inst = if i == "a" { &a } else { &b };
        async move {
            eventually(
                &format!("gw-{i}'s console shows the farm's case"),
                Duration::from_secs(30),
                || async {
                    let cases = inst.api("/api/cases").await;
                    let farm: Vec<Json> = cases
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter(|c| c["kind"] == "egress")
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    let members = farm.first().map(|c| c["members"].clone());
                    if farm.len() == 1
                        && members.as_ref().and_then(Json::as_array).map(Vec::len) == Some(3)
                    {
                        Ok(farm[0].clone())
                    } else {
                        Err(cases.to_string())
                    }
                },
            )
            .await
        }
    };
    let on_a = find("a").await;
    let on_b = find("b").await;
    assert_eq!(on_a["id"], on_b["id"], "one case, not one per console");
    assert_eq!(on_a["subject"], US_CLIENT);
    assert_eq!(on_a["members"], serde_json::json!(["ann", "bob", "cat"]));
    let id = on_a["id"].as_i64().expect("id");
    // Its events come from both instances.
    let view = b.api(&format!("/api/cases/{id}")).await;
    let seen_by: HashSet<&str> = view["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["instance"].as_str())
        .collect();
    assert_eq!(seen_by, HashSet::from(["gw-a", "gw-b"]));
    // Worked on gw-b's console, read on gw-a's: the same state and trail.
    let (status, body) = b
        .admin(
            "POST",
            &format!("/api/cases/{id}"),
            Some(r#"{"state":"confirmed_fraud","owner":"sam","note":"one line, three badges"}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let view = a.api(&format!("/api/cases/{id}")).await;
    assert_eq!(view["case"]["state"], "confirmed_fraud");
    let trail = view["trail"].as_array().expect("trail");
    let actions: Vec<&str> = trail.iter().filter_map(|t| t["action"].as_str()).collect();
    assert_eq!(actions.first(), Some(&"opened"));
    assert_eq!(
        actions.iter().filter(|a| **a == "opened").count(),
        1,
        "opened once although two consoles sweep: {actions:?}"
    );
    let state = trail
        .iter()
        .find(|t| t["action"] == "state")
        .expect("state change");
    assert_eq!(state["source"], "127.0.0.1 via gw-b");
    assert_eq!(state["actor"], "admin token (API)");
    // The trail is append-only in PostgreSQL too.
    let refused = pg
        .with_client("farm", |c| {
            [
                "UPDATE case_trail SET actor = 'nobody'",
                "DELETE FROM case_trail",
                "TRUNCATE case_trail",
            ]
            .iter()
            .map(|sql| {
                c.batch_execute(sql).map_err(|e| {
                    e.as_db_error()
                        .map(|d| d.message().to_owned())
                        .unwrap_or_else(|| e.to_string())
                })
            })
            .collect::<Vec<_>>()
        })
        .expect("connect");
    for r in refused {
        let e = r.expect_err("refused");
        assert!(e.contains("append-only"), "{e}");
    }
}

/// The day rollup on PostgreSQL gives what the events give: more events than the roll-up leaves
/// settling (10,000), so days are rolled, merged across batches and read with the events after
/// the watermark; then again after a directory change.
#[test]
fn the_day_rollup_equals_the_events_on_postgres() {
    let Some(pg) = PgServer::start(false) else {
        return;
    };
    let url = pg.database("rollup");
    let tmp = tempfile::tempdir().expect("tempdir");
    let password = std::fs::read_to_string(pg.password_file()).expect("password");
    let target = locgate::audit::store::PgTarget {
        url,
        password: Some(password.trim().to_owned()),
        ca_file: None,
        spool: tmp.path().join("spool"),
        spool_max_bytes: 1 << 20,
    };
    let mut store = target.connect().expect("connect and migrate");
    // 30,000 events over 10 days: seven employees, reasons, networks, round-trip times.
    pg.with_client("rollup", |c| {
        c.batch_execute(
            "INSERT INTO events (id, ts_ms, timestamp, action, reasons, employee, ip, country,
             asn, as_org, lat, lon, accuracy_km, anonymizer, listener, message, instance,
             tunnel_close, json, egress, verified)
             SELECT 'e' || g, t, to_char(to_timestamp(t / 1000.0) AT TIME ZONE 'UTC',
                    'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    CASE WHEN g % 9 = 0 THEN 'flag' ELSE 'allow' END,
                    CASE WHEN g % 9 = 0 THEN ',country_mismatch,off_hours,'
                         WHEN g % 13 = 0 THEN ',anonymous_vpn,' ELSE '' END,
                    CASE WHEN g % 7 = 0 THEN 'Alice' ELSE 'e' || (g % 7) END,
                    '198.51.100.' || (g % 50), CASE WHEN g % 9 = 0 THEN 'FR' ELSE 'US' END,
                    64500 + g % 5, 'Net', 30.2 + (g % 3), -97.7, 10, g % 13 = 0, 'l',
                    'event ' || g, 'gw', false,
                    '{\"locgate\":{\"network\":{\"rtt_ms\":' || (g % 200) / 4.0 || '}}}',
                    '198.51.100.' || (g % 50), true
             FROM (SELECT g, 1772409600000 + g * 28800 AS t
                   FROM generate_series(1, 30000) g) s",
        )
    })
    .expect("connect")
    .expect("insert");
    let text =
        |s: &[locgate::audit::store::EmployeeSummary]| serde_json::to_string(s).expect("json");
    let rolled = store.roll_up(None, 7_000).expect("roll up");
    assert_eq!(rolled.events, 7_000);
    for since in [0, 1_772_409_600_000 + 3 * 86_400_000] {
        for only in [None, Some("alice")] {
            let want = text(&store.report_from_events(since, None, only).expect("events"));
            assert!(want.len() > 100);
            let got = text(&store.report(since, None, only).expect("report"));
            assert_eq!(got, want, "since {since}, {only:?}");
        }
    }
    let days: i64 = pg
        .with_client("rollup", |c| {
            c.query_one("SELECT count(*) FROM employee_days", &[])
                .expect("count")
                .get(0)
        })
        .expect("connect");
    assert!(days >= 7 * 6, "rolled up: {days} rows");
    // A directory naming one of them: that employee is recomputed, the verdicts still equal.
    let dir = locgate::employees::Directory::parse_toml(
        "[[employee]]\nid = \"e3\"\ncountry = \"US\"\nlat = 30.2\nlon = -97.7\n\
         radius_km = 50\ntime_zone = \"Asia/Tokyo\"\n",
        "team.toml",
        100.0,
    )
    .expect("directory");
    let same = |store: &mut locgate::audit::store::PgStore, when: &str| {
        let want = text(
            &store
                .report_from_events(0, Some(&dir), None)
                .expect("events"),
        );
        let got = text(&store.report(0, Some(&dir), None).expect("report"));
        assert_eq!(got, want, "{when}");
    };
    same(&mut store, "after a directory change");
    // Retention cuts into the fourth day (in Tokyo, the fourth day began at 15:00 UTC the day
    // before): the days around the cutoff are recomputed from the events left.
    let cutoff = 1_772_409_600_000 + 3 * 86_400_000 + 2 * 3_600_000;
    assert!(store.prune_before(cutoff).expect("prune") > 0);
    same(&mut store, "after retention");
}
