//! History shared between instances through a real Redis on loopback: impossible travel and
//! shared egress split across two instances, Redis stopped and hung mid-test (decisions go on and
//! say so, and catch up after), hostile and skewed stream entries.
//!
//! Each test starts its own `redis-server` (Debian's package; `.ci/run` installs it) on a free
//! loopback port. Without one the tests say so and pass, unless `LOCGATE_REQUIRE_REDIS` is set
//! (as CI does), where a missing server fails them.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use locgate::serve::Running;
use serde_json::Value as Json;

const TOKEN: &str = "history-test-token-0123456789";

/// A `redis-server` of the test's own on loopback, killed on drop.
struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// TLS only (`rediss://`), with a certificate from the test's own CA (`ca.pem` in `dir`).
    tls: bool,
}

impl RedisServer {
    /// Starts one, or `None` (with a note) where there is no `redis-server` and CI did not ask
    /// for it.
    fn start() -> Option<Self> {
        Self::start_with(false)
    }

    fn start_with(tls: bool) -> Option<Self> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var_os("LOCGATE_REQUIRE_REDIS").is_none(),
                "redis-server not found, and LOCGATE_REQUIRE_REDIS is set"
            );
            eprintln!("SKIPPED: redis-server not installed (apt-get install redis-server)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut r = RedisServer {
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            tls,
        };
        if tls {
            r.write_pki();
        }
        r.spawn();
        Some(r)
    }

    /// A CA, and a certificate it signed for `localhost` that Redis serves.
    fn write_pki(&self) {
        use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "history test CA");
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .expect("leaf params")
            .signed_by(&key, &ca)
            .expect("leaf");
        let d = self.dir.path();
        std::fs::write(d.join("ca.pem"), ca.pem()).expect("write CA");
        std::fs::write(d.join("redis.pem"), leaf.pem()).expect("write cert");
        std::fs::write(d.join("redis.key"), key.serialize_pem()).expect("write key");
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let d = self.dir.path();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1"]);
        if self.tls {
            cmd.args([
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(d.join("redis.pem"))
            .arg("--tls-key-file")
            .arg(d.join("redis.key"))
            .arg("--tls-ca-cert-file")
            .arg(d.join("ca.pem"));
        } else {
            cmd.args(["--port", &port]);
        }
        let child = cmd
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(d)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.connection().is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: a Redis that accepts connections but answers nothing.
    fn signal(&self, sig: libc::c_int) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: kill(2) on our own child's pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
    }

    fn url(&self) -> String {
        match self.tls {
            true => format!("rediss://localhost:{}", self.port),
            false => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The `[history]` lines that reach this server.
    fn config(&self) -> String {
        let mut text = format!("redis = \"{}\"\n", self.url());
        if self.tls {
            text.push_str(&format!(
                "redis_ca_file = {}\n",
                toml_str(&self.dir.path().join("ca.pem"))
            ));
        }
        text
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = match self.tls {
            true => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(
                        std::fs::read(self.dir.path().join("ca.pem")).expect("read CA"),
                    ),
                },
            )?,
            false => redis::Client::open(self.url())?,
        };
        client.get_connection()
    }

    /// Appends an entry to the shared stream as if another instance had.
    fn xadd(&self, instance: &str, payload: &str) {
        let mut c = self.connection().expect("redis connection");
        let _: String = redis::cmd("XADD")
            .arg("locgate:history")
            .arg("*")
            .arg("i")
            .arg(instance)
            .arg("r")
            .arg(payload)
            .query(&mut c)
            .expect("XADD");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A stopped process must be continued to die promptly.
            let _ = self.child.as_ref().map(|c| unsafe {
                // SAFETY: as in `signal`.
                libc::kill(c.id() as libc::pid_t, libc::SIGCONT)
            });
        }
        self.stop();
    }
}

/// One locgate instance with history shared through `redis`, an admin API, and ann..dan vouched
/// for by a trusted inner proxy (`X-Remote-User` from 127.0.0.1).
struct Instance {
    fx: Fixture,
    running: Running,
    proxy: std::net::SocketAddr,
}

impl Instance {
    async fn start(redis: &RedisServer, up: &Upstream) -> Self {
        let fx = Fixture::new();
        fx.write("employees.toml", &austin_team());
        let sections = format!(
            "{}\n[history]\n{}redis_timeout = \"300ms\"\n\n[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n",
            employees_section("employees.toml"),
            redis.config()
        );
        let running = fx
            .start_with(
                &listener(
                    "sso",
                    &up.url(),
                    "mode = \"monitor\"\ntrusted_proxies = [\"127.0.0.1/32\"]\nidentity_proxies = [\"127.0.0.1/32\"]\n\
                     identity = [{ header = \"X-Remote-User\" }]",
                ),
                &sections,
            )
            .await;
        let proxy = running.addr("sso").expect("sso listener");
        let me = Instance { fx, running, proxy };
        me.wait_for("link up and caught up", |h| h.is_up() && h.is_caught_up())
            .await;
        me
    }

    fn health(&self) -> &locgate::history::synced::SyncHealth {
        self.running
            .shared
            .history_sync
            .as_deref()
            .expect("shared history configured")
    }

    async fn wait_for(
        &self,
        what: &str,
        cond: impl Fn(&locgate::history::synced::SyncHealth) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !cond(self.health()) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `who` signs in from `client` (vouched for by the inner proxy); the request must be
    /// forwarded, and promptly, whatever Redis is doing.
    async fn sign_in(&self, who: &str, client: &str) {
        let started = Instant::now();
        let (parts, _) = get(
            LOCAL,
            self.proxy,
            "/",
            &[("x-forwarded-for", client), ("x-remote-user", who)],
        )
        .await;
        assert_eq!(parts.status, UPSTREAM_STATUS, "{who} from {client}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the request waited {:?} on history",
            started.elapsed()
        );
    }

    /// The last event about `who`.
    async fn last_event(&self, who: &str) -> Json {
        let events = self.fx.events(&self.running).await;
        events
            .into_iter()
            .rfind(|e| e["user"]["id"] == who)
            .unwrap_or_else(|| panic!("no event for {who}"))
    }

    async fn admin(&self, path: &str) -> (u16, String) {
        let adm = self.running.admin_addr.expect("admin");
        let auth = format!("Bearer {TOKEN}");
        let (parts, body) = get(LOCAL, adm, path, &[("authorization", &auth)]).await;
        (
            parts.status.as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.admin("/metrics").await;
        metric(&text, name)
    }
}

fn message_of(e: &Json) -> &str {
    e["message"].as_str().unwrap_or_default()
}

/// ann signs in from Austin through A, and seconds later from Berlin through B, which has never
/// seen her itself: B must flag impossible travel. Returns B's event.
async fn travel_split_across(a: &Instance, b: &Instance) -> Json {
    a.sign_in("ann", US_CLIENT).await;
    b.wait_for("B applies A's sighting", |h| {
        h.applied.load(Ordering::Relaxed) >= 1
    })
    .await;
    b.sign_in("ann", DE_CLIENT).await;
    let e = b.last_event("ann").await;
    assert!(reasons(&e).contains(&"impossible_travel".into()), "{e:#}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_catch_impossible_travel_and_a_laptop_farm_split_across_them() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = Upstream::start().await;
    let a = Instance::start(&redis, &up).await;
    let b = Instance::start(&redis, &up).await;

    let e = travel_split_across(&a, &b).await;
    assert!(
        message_of(&e).contains("from the previous sighting"),
        "{e:#}"
    );
    assert!(
        e["locgate"]["history"].is_null(),
        "history was complete: {e:#}"
    );

    // A laptop farm: bob and cat on one Seattle line through A, dan on it through B.
    let applied = b.health().applied.load(Ordering::Relaxed);
    a.sign_in("bob", SEATTLE_CLIENT).await;
    a.sign_in("cat", SEATTLE_CLIENT).await;
    b.wait_for("B applies bob and cat", |h| {
        h.applied.load(Ordering::Relaxed) >= applied + 2
    })
    .await;
    b.sign_in("dan", SEATTLE_CLIENT).await;
    let e = b.last_event("dan").await;
    assert!(reasons(&e).contains(&"shared_egress".into()), "{e:#}");
    let msg = message_of(&e);
    assert!(
        msg.contains("bob") && msg.contains("cat"),
        "names the cluster: {msg}"
    );

    // And A learns of B's sightings the same way: ann's Berlin sighting makes Austin impossible.
    a.wait_for("A applies B's sightings", |h| {
        h.applied.load(Ordering::Relaxed) >= 2
    })
    .await;
    a.sign_in("ann", US_CLIENT).await;
    assert!(reasons(&a.last_event("ann").await).contains(&"impossible_travel".into()));

    // Each instance published only its own sightings and applied only the other's.
    assert_eq!(a.metric("locgate_history_redis_up").await, 1.0);
    assert!(a.metric("locgate_history_published_total").await >= 3.0);
    assert_eq!(b.metric("locgate_history_refused_total").await, 0.0);
    a.running.shutdown().await;
    b.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_shared_over_tls_with_a_private_ca() {
    let Some(redis) = RedisServer::start_with(true) else {
        return;
    };
    let up = Upstream::start().await;
    let a = Instance::start(&redis, &up).await;
    let b = Instance::start(&redis, &up).await;
    travel_split_across(&a, &b).await;
    a.running.shutdown().await;
    b.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_test_decisions_go_on_say_so_and_catch_up_after() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let up = Upstream::start().await;
    let a = Instance::start(&redis, &up).await;
    a.sign_in("ann", US_CLIENT).await;
    a.wait_for("published", |h| h.published.load(Ordering::Relaxed) >= 1)
        .await;

    redis.stop();
    a.wait_for("link noticed", |h| !h.is_up()).await;

    // Decisions go on, with this instance's own history (Austin, then Berlin: still caught)...
    a.sign_in("ann", DE_CLIENT).await;
    let e = a.last_event("ann").await;
    assert!(reasons(&e).contains(&"impossible_travel".into()), "{e:#}");
    // ...and the event, metrics and readiness say history is not shared right now.
    let problem = e["locgate"]["history"]["problem"]
        .as_str()
        .unwrap_or_default();
    assert!(
        problem.contains("local to this instance") && problem.contains(&redis.port.to_string()),
        "{e:#}"
    );
    assert_eq!(a.metric("locgate_history_redis_up").await, 0.0);
    assert!(a.metric("locgate_history_queued").await >= 1.0);
    assert!(a.metric("locgate_history_redis_errors_total").await >= 1.0);
    let (status, body) = a.admin("/readyz").await;
    assert_eq!(
        status, 200,
        "one Redis outage must not unready the fleet: {body}"
    );
    assert!(
        body.contains("warning: history is local to this instance"),
        "{body}"
    );

    // Redis comes back (empty: it kept nothing on disk); A reconnects and publishes its queue.
    redis.spawn();
    a.wait_for("reconnected, queue published", |h| {
        h.is_up() && h.is_caught_up() && h.queued.load(Ordering::Relaxed) == 0
    })
    .await;
    let (_, body) = a.admin("/readyz").await;
    assert_eq!(body, "ready\n");

    // A new instance reads the stream back and knows ann was last in Berlin, a sighting A made
    // while Redis was down.
    let b = Instance::start(&redis, &up).await;
    assert!(b.health().applied.load(Ordering::Relaxed) >= 1);
    b.sign_in("ann", US_CLIENT).await;
    let e = b.last_event("ann").await;
    assert!(reasons(&e).contains(&"impossible_travel".into()), "{e:#}");
    assert!(e["locgate"]["history"].is_null(), "{e:#}");
    a.running.shutdown().await;
    b.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_hangs_never_holds_up_a_request() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = Upstream::start().await;
    let a = Instance::start(&redis, &up).await;
    redis.signal(libc::SIGSTOP);
    // Every request is forwarded promptly (sign_in asserts it) while Redis answers nothing.
    for who in ["ann", "bob", "cat", "ann", "bob"] {
        a.sign_in(who, US_CLIENT).await;
    }
    a.wait_for("timeout noticed", |h| !h.is_up()).await;
    a.sign_in("dan", US_CLIENT).await;
    let e = a.last_event("dan").await;
    assert!(
        e["locgate"]["history"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("no answer within") || p.contains("no connection within")),
        "{e:#}"
    );
    redis.signal(libc::SIGCONT);
    a.wait_for("recovered", |h| {
        h.is_up() && h.is_caught_up() && h.queued.load(Ordering::Relaxed) == 0
    })
    .await;
    a.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_skewed_entries_are_refused_or_clamped_never_trusted() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let up = Upstream::start().await;
    let a = Instance::start(&redis, &up).await;
    let hour_ahead = jiff::Timestamp::now().as_millisecond() + 3_600_000;
    redis.xadd("other", "not json");
    redis.xadd(
        "other",
        r#"{"e":"bob","p":{"t":0,"la":400.0,"lo":0.0,"a":1}}"#,
    );
    redis.xadd("other", &"x".repeat(10_000));
    // An instance whose clock runs an hour ahead saw cat in Berlin.
    redis.xadd(
        "skewed",
        &format!(
            r#"{{"e":"cat","p":{{"t":{hour_ahead},"c":"DE","la":52.52,"lo":13.405,"a":20}}}}"#
        ),
    );
    a.wait_for("entries read", |h| {
        h.refused.load(Ordering::Relaxed) == 3 && h.applied.load(Ordering::Relaxed) == 1
    })
    .await;
    let now = jiff::Timestamp::now();
    let cat = a
        .running
        .shared
        .history
        .last_place("cat")
        .expect("cat's sighting applied");
    assert!(
        cat.at <= now,
        "a sighting from the future counts as now: {cat:?}"
    );
    assert!(a.metric("locgate_history_clock_skew_seconds").await > 3_000.0);
    assert_eq!(a.metric("locgate_history_refused_total").await, 3.0);
    // The link kept going: live sightings still flow.
    a.sign_in("bob", US_CLIENT).await;
    a.wait_for("published", |h| h.published.load(Ordering::Relaxed) >= 1)
        .await;
    a.running.shutdown().await;
}

#[test]
fn a_bad_redis_url_names_file_line_and_field() {
    let fx = Fixture::new();
    let text = fx.config_text_with(
        &listener("a", "builtin:whoami", ""),
        "[history]\nredis = \"http://:hunter2@cache:6379\"\n",
    );
    let err = locgate::config::Config::parse(&text, "gw.toml", fx.dir.path())
        .expect_err("refused")
        .to_string();
    assert!(err.starts_with("gw.toml:"), "{err}");
    assert!(
        err.contains("redis") && err.contains("not a Redis URL"),
        "{err}"
    );
}
