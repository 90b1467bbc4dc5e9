//! Hot reload under load: data files replaced 100 times while clients keep sending requests,
//! with zero failed requests and decisions following the new data; corrupt replacements refused
//! while the old decisions continue; file-change and SIGHUP triggers.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use locgate::config::Config;
use locgate::serve::reload::Reloader;
use mmdb_writer::{ReservedNetworks, Value, Writer, ipnet::IpNet};

const BIN: &str = env!("CARGO_BIN_EXE_locgate");

/// A city database placing `127.1.0.0/16` in `cc` (and `127.2.0.0/16` in KP as always).
fn city_db(cc: &str) -> Vec<u8> {
    let rec = |cc: &str| {
        Value::map([
            (
                "country",
                Value::map([
                    ("iso_code", Value::from(cc)),
                    ("names", Value::map([("en", Value::from(cc))])),
                ]),
            ),
            (
                "location",
                Value::map([
                    ("latitude", Value::from(30.27)),
                    ("longitude", Value::from(-97.74)),
                    ("accuracy_radius", Value::from(20_u16)),
                ]),
            ),
        ])
    };
    let mut w = Writer::builder("locgate-test-City")
        .reserved_networks(ReservedNetworks::Included)
        .build();
    for (net, cc) in [("127.1.0.0/16", cc), ("127.2.0.0/16", "KP")] {
        w.insert_value(net.parse::<IpNet>().expect("net"), rec(cc))
            .expect("insert");
    }
    w.to_bytes().expect("db")
}

/// Replaces `path` the way operators and `locgate update` do: write aside, rename over.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-test");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

struct Gateway {
    fx: Fixture,
    _up: Upstream,
    cfg_path: PathBuf,
    running: locgate::serve::Running,
    reloader: Arc<Reloader>,
    addr: SocketAddr,
}

async fn gateway(policy: &str) -> Gateway {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let text = format!(
        "{}{policy}",
        fx.config_text(&listener("sso", &up.url(), "mode = \"enforce\""))
    );
    let cfg_path = fx.dir.path().join("locgate.toml");
    std::fs::write(&cfg_path, text).expect("config");
    let config = Config::load(&cfg_path).expect("config loads");
    let for_reloader = Config::load(&cfg_path).expect("config loads");
    let running = within("start", locgate::serve::start(config))
        .await
        .expect("starts");
    let reloader = Arc::new(
        Reloader::new(
            Some(cfg_path.clone()),
            &for_reloader,
            running.shared.clone(),
        )
        .with_listeners(running.listeners.clone()),
    );
    let addr = running.addr("sso").expect("addr");
    Gateway {
        fx,
        _up: up,
        cfg_path,
        running,
        reloader,
        addr,
    }
}

async fn status_from(src: &str, addr: SocketAddr) -> StatusCode {
    get(src, addr, "/login", &[]).await.0.status
}

async fn reload_now(r: &Arc<Reloader>) -> Result<(), String> {
    let r = r.clone();
    tokio::task::spawn_blocking(move || r.reload_now("test").map_err(|e| e.to_string()))
        .await
        .expect("reload task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_replacements_under_load_fail_no_request_and_switch_decisions() {
    let g = gateway("").await;
    assert_eq!(status_from(US_CLIENT, g.addr).await, UPSTREAM_STATUS);

    // Load: four clients in 127.1/16, each sending requests back to back until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for n in 0..4 {
        let (stop, addr) = (stop.clone(), g.addr);
        load.push(tokio::spawn(async move {
            let src = format!("127.1.0.{}", 20 + n);
            let (mut allowed, mut blocked, mut other) = (0u32, 0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match status_from(&src, addr).await {
                    s if s == UPSTREAM_STATUS => allowed += 1,
                    StatusCode::FORBIDDEN => blocked += 1,
                    s => other.push(s),
                }
            }
            (allowed, blocked, other)
        }));
    }

    let started = Instant::now();
    for i in 0..100 {
        // Even rounds place 127.1/16 in North Korea, odd rounds back in the US.
        let kp = i % 2 == 0;
        replace(&g.fx.city_db, &city_db(if kp { "KP" } else { "US" }));
        reload_now(&g.reloader).await.expect("reload succeeds");
        let want = if kp {
            StatusCode::FORBIDDEN
        } else {
            UPSTREAM_STATUS
        };
        assert_eq!(status_from(US_CLIENT, g.addr).await, want, "round {i}");
    }
    replace(&g.fx.city_db, &city_db("KP"));
    reload_now(&g.reloader).await.expect("reload succeeds");
    let reload_time = started.elapsed();
    assert_eq!(status_from(US_CLIENT, g.addr).await, StatusCode::FORBIDDEN);

    // A corrupt replacement (not a database, then a truncated one) is refused; KP stays blocked.
    let good = city_db("US");
    for (what, bad) in [
        ("garbage", b"definitely not a database".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ] {
        replace(&g.fx.city_db, &bad);
        let err = reload_now(&g.reloader).await.expect_err(what);
        assert!(err.contains("city.mmdb"), "{what}: {err}");
        assert_eq!(
            status_from(US_CLIENT, g.addr).await,
            StatusCode::FORBIDDEN,
            "{what}: the old decision continues"
        );
    }
    // A broken config is refused too, naming file and line.
    let cfg = std::fs::read_to_string(&g.cfg_path).unwrap();
    std::fs::write(
        &g.cfg_path,
        format!("{cfg}\n[policy]\nunknown_location = \"maybe\"\n"),
    )
    .unwrap();
    let err = reload_now(&g.reloader).await.expect_err("bad config");
    assert!(
        err.contains("locgate.toml:") && err.contains("unknown_location"),
        "{err}"
    );
    assert_eq!(status_from(US_CLIENT, g.addr).await, StatusCode::FORBIDDEN);

    stop.store(true, Ordering::Relaxed);
    let (mut allowed, mut blocked) = (0, 0);
    for t in load {
        let (a, b, other) = within("load task", t).await.expect("no request failed");
        assert!(
            other.is_empty(),
            "unexpected statuses under reload: {other:?}"
        );
        allowed += a;
        blocked += b;
    }
    assert!(
        allowed > 0 && blocked > 0,
        "allowed {allowed}, blocked {blocked}"
    );
    let stats = &g.running.shared.auditor.stats;
    assert_eq!(stats.reloads_ok.load(Ordering::Relaxed), 101);
    assert_eq!(stats.reloads_failed.load(Ordering::Relaxed), 4);
    assert_eq!(stats.upstream_errors.load(Ordering::Relaxed), 0);
    eprintln!(
        "101 reloads in {reload_time:?} under load; {allowed} allowed + {blocked} blocked requests, 0 failed"
    );
    g.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_files_reload_by_themselves() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let g = gateway("").await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(g.reloader.clone().serve(stop_rx));
    // Give the watcher a moment to register its directories.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = g.running.shared.auditor.stats.clone();

    async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f().await {
            assert!(Instant::now() < deadline, "not within 10 s: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // A database replaced by rename.
    replace(&g.fx.city_db, &city_db("KP"));
    until("the new database decides", async || {
        status_from(US_CLIENT, g.addr).await == StatusCode::FORBIDDEN
    })
    .await;

    // A corrupt database: refused and counted; the old decision stays.
    let failed = stats.reloads_failed.load(Ordering::Relaxed);
    replace(&g.fx.city_db, b"garbage");
    until("the corrupt file is refused", async || {
        stats.reloads_failed.load(Ordering::Relaxed) > failed
    })
    .await;
    assert_eq!(status_from(US_CLIENT, g.addr).await, StatusCode::FORBIDDEN);

    // The config itself: KP is no longer sanctioned, and the database is good again.
    replace(&g.fx.city_db, &city_db("KP"));
    let cfg = std::fs::read_to_string(&g.cfg_path).unwrap();
    replace(
        &g.cfg_path,
        format!("{cfg}\n[policy]\nsanctioned_countries = []\n").as_bytes(),
    );
    until("the new policy decides", async || {
        status_from(US_CLIENT, g.addr).await == UPSTREAM_STATUS
    })
    .await;

    let _ = stop_tx.send(true);
    within("reloader stops", task).await.expect("task");
    g.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_running_binary() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    // The database lives in a directory nobody changes during the test except through SIGHUP's
    // reload; the file watcher would reload too, so the test checks the log says "sighup".
    let cfg = fx.dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        fx.config_text(&listener("edge", &up.url(), "mode = \"enforce\"")),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn locgate run");
    let stderr = child.stderr.take().unwrap();
    let mut guard = Guard(Some(child));
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = Vec::new();
    let mut addr: Option<SocketAddr> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("not ready within 10 s; log: {log:#?}"));
        log.push(line.clone());
        if line.contains("listening")
            && let Some(at) = line.find("addr=")
        {
            let value = line[at + 5..].split_whitespace().next().unwrap_or_default();
            addr = value.parse().ok();
        }
        if line.contains("reload ready") {
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no address in {log:#?}"));
    assert_eq!(status_from(US_CLIENT, addr).await, UPSTREAM_STATUS);

    // Change the policy in place; the file watcher reloads it (in-place writes count too).
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}\n[policy]\ndeny_countries = [\"US\"]\n"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_from(US_CLIENT, addr).await != StatusCode::FORBIDDEN {
        assert!(Instant::now() < deadline, "no reload within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGHUP: a reload that says so in the log, and the process lives on.
    let pid = guard.0.as_ref().unwrap().id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no SIGHUP reload within 10 s: {log:#?}"));
        log.push(line.clone());
        if line.contains("reloaded") && line.contains("sighup") {
            break;
        }
    }
    assert!(
        log.iter().any(|l| l.contains("SIGHUP: reloading")),
        "{log:#?}"
    );
    assert_eq!(status_from(US_CLIENT, addr).await, StatusCode::FORBIDDEN);
    // Still running after the signal (SIGHUP's default action would have killed it).
    assert!(guard.0.as_mut().unwrap().try_wait().unwrap().is_none());
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let started = Instant::now();
    while guard.0.as_mut().unwrap().try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    guard.0 = None;
}

#[test]
fn stale_sources_are_reported_with_their_age_and_limit() {
    let fx = Fixture::new();
    let tor = fx.dir.path().join("tor.txt");
    let vpn = fx.dir.path().join("vpn.txt");
    std::fs::write(&tor, "185.220.101.1\n").unwrap();
    std::fs::write(&vpn, "10.9.0.0/16\n").unwrap();
    let three_days_ago = std::time::SystemTime::now() - Duration::from_secs(3 * 86_400);
    for p in [&tor, &vpn] {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(three_days_ago)
            .unwrap();
    }
    let text = format!(
        "{}lists = [{{ path = \"tor.txt\", category = \"tor_exit\" }}, {{ path = \"vpn.txt\", category = \"vpn\" }}]\nmax_age = \"1d\"\n",
        fx.config_text("")
            .replace("\n\n[events]", "\n[events]")
            .split("[events]")
            .next()
            .unwrap()
    );
    let mut config =
        Config::parse(&text, "t.toml", fx.dir.path()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let state = locgate::state::RuntimeState::from_config(&mut config).expect("loads");
    let stale = state.stale();
    let names: Vec<String> = stale
        .iter()
        .map(|s| {
            Path::new(&s.source)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // Tor's default limit is 2 days; the VPN list has none; the test databases were just built
    // (their build time is now), so under the 1-day limit.
    assert_eq!(names, ["tor.txt"], "{stale:#?}");
    assert_eq!(stale[0].max_age_secs, 2 * 86_400);
    assert!(
        stale[0].describe().contains("3 days old; limit 2 days"),
        "{}",
        stale[0].describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_starts_stops_and_rebinds_listeners_and_keeps_unchanged_ones() {
    let g = gateway("").await;
    let base = std::fs::read_to_string(&g.cfg_path).unwrap();
    let up = g._up.url();
    // A keep-alive connection on the first listener, used before and after the reloads.
    let stream = connect_from(US_CLIENT, g.addr).await;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut send_on_kept = async || {
        within("kept connection ready", sender.ready())
            .await
            .expect("the kept connection is still open");
        let req = request("GET", "/kept")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = within("kept connection", sender.send_request(req))
            .await
            .expect("the kept connection still works");
        // Read the body so the connection is ready for the next request.
        read_body(resp).await.0.status
    };
    assert_eq!(send_on_kept().await, UPSTREAM_STATUS);

    // Add listener "b" (monitor mode) on a port of its own.
    let b_addr = closed_port();
    let with_b = |mode: &str| {
        base.replacen(
            "[data]",
            &format!(
                "{}[data]",
                listener_at("b", &b_addr.to_string(), &up, &format!("mode = \"{mode}\""))
            ),
            1,
        )
    };
    std::fs::write(&g.cfg_path, with_b("monitor")).unwrap();
    reload_now(&g.reloader).await.expect("reload adds b");
    assert_eq!(
        status_from(KP_CLIENT, b_addr).await,
        UPSTREAM_STATUS,
        "monitor forwards"
    );
    assert_eq!(
        send_on_kept().await,
        UPSTREAM_STATUS,
        "sso kept its socket and connections"
    );
    assert_eq!(status_from(US_CLIENT, g.addr).await, UPSTREAM_STATUS);

    // b changed in place (enforce): rebound on the same address.
    std::fs::write(&g.cfg_path, with_b("enforce")).unwrap();
    reload_now(&g.reloader).await.expect("reload changes b");
    assert_eq!(status_from(KP_CLIENT, b_addr).await, StatusCode::FORBIDDEN);
    assert_eq!(send_on_kept().await, UPSTREAM_STATUS);

    // A listener on an address already taken: the whole reload is refused, nothing changes.
    let taken = with_b("monitor").replacen(
        "[data]",
        &format!(
            "{}[data]",
            listener_at("c", &g._up.addr.to_string(), &up, "")
        ),
        1,
    );
    std::fs::write(&g.cfg_path, taken).unwrap();
    let err = reload_now(&g.reloader).await.expect_err("port in use");
    assert!(
        err.contains("listener c") && err.contains("cannot bind"),
        "{err}"
    );
    assert_eq!(
        status_from(KP_CLIENT, b_addr).await,
        StatusCode::FORBIDDEN,
        "b unchanged"
    );

    // Remove the first listener: it stops accepting; b serves on.
    let only_b = format!(
        "{}{}",
        listener_at("b", &b_addr.to_string(), &up, "mode = \"enforce\""),
        base.split_once("[data]")
            .map(|(_, rest)| format!("[data]{rest}"))
            .unwrap()
    );
    std::fs::write(&g.cfg_path, only_b).unwrap();
    reload_now(&g.reloader).await.expect("reload removes sso");
    let names: Vec<String> = g
        .running
        .listeners
        .addrs()
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["b"]);
    // The stopped listener lets go of its socket as soon as it sees the stop.
    let deadline = Instant::now() + Duration::from_secs(5);
    while within("connect", tokio::net::TcpStream::connect(g.addr))
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "the removed listener still accepts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_from(US_CLIENT, b_addr).await, UPSTREAM_STATUS);
    g.running.shutdown().await;
}

#[test]
fn every_file_the_config_names_is_watched() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[listener]]\nname = \"t\"\nbind = \"127.0.0.1:0\"\nupstream = \"builtin:whoami\"\ntls = { cert = \"tls/app.pem\", key = \"tls/app.key\", sni = [{ cert = \"tls/b.pem\", key = \"tls/b.key\" }] }\n\n[data]\ncity_db = \"geo/city.mmdb\"\nasn_table = \"asn.csv\"\nlists = [{ path = \"lists/tor.txt\", category = \"tor_exit\" }]\n[employees]\nfile = \"staff.toml\"\n";
    let cfg_path = dir.path().join("locgate.toml");
    let config = Config::parse(text, "locgate.toml", dir.path()).unwrap();
    let watched = locgate::serve::reload::watched_files(Some(&cfg_path), &config);
    for name in [
        "locgate.toml",
        "staff.toml",
        "geo/city.mmdb",
        "lists/tor.txt",
        "asn.csv",
        "tls/app.pem",
        "tls/app.key",
        "tls/b.pem",
        "tls/b.key",
    ] {
        assert!(
            watched.contains(&dir.path().join(name)),
            "{name} not in {watched:?}"
        );
    }
    assert!(watched.iter().all(|p| p.is_absolute()));

    // With `[data] dir`, the files a preset installs there are watched before they exist.
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let config = Config::parse("[data]\ndir = \"data\"\n", "locgate.toml", dir.path()).unwrap();
    let watched = locgate::serve::reload::watched_files(Some(&cfg_path), &config);
    for name in [
        "data/tor-exits.txt",
        "data/dbip-city-lite.mmdb",
        "data/aws.txt",
    ] {
        assert!(
            watched.contains(&dir.path().join(name)),
            "{name} not in {watched:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_data_shows_in_readyz_and_metrics() {
    let fx = Fixture::new();
    let up = Upstream::start().await;
    let tor = fx.dir.path().join("tor.txt");
    std::fs::write(&tor, "185.220.101.1\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tor)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3 * 86_400))
        .unwrap();
    let token = "a-long-enough-admin-token-for-the-test-0123456789";
    let text = fx.config_text(&listener("sso", &up.url(), "")).replace(
        "embedded = false\n",
        "embedded = false\nlists = [{ path = \"tor.txt\", category = \"tor_exit\" }]\n",
    ) + &format!("\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{token}\"\n");
    let config = Config::parse(&text, "t.toml", fx.dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let running = within("start", locgate::serve::start(config))
        .await
        .expect("starts");
    let adm = running.admin_addr.expect("admin");
    let bearer = format!("Bearer {token}");
    let (parts, body) = get(LOCAL, adm, "/readyz", &[("authorization", &bearer)]).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(parts.status, StatusCode::OK, "{body}");
    assert!(
        body.starts_with("ready\n") && body.contains("stale data") && body.contains("tor.txt"),
        "{body}"
    );
    let (_, metrics) = get(LOCAL, adm, "/metrics", &[("authorization", &bearer)]).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("locgate_data_stale_sources 1"),
        "{metrics}"
    );
    assert!(metrics.contains("locgate_reloads_total 0"), "{metrics}");
    assert!(
        metrics.contains("locgate_reloads_failed_total 0"),
        "{metrics}"
    );
    running.shutdown().await;
}
