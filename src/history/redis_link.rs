//! The link between this instance's history and the fleet's: one Redis stream.
//!
//! Every instance appends the sightings it records (`XADD`, trimmed by age with `MINID`) and
//! reads everyone else's (`XREAD` from the last entry it saw), applying them to its own memory.
//! A stream rather than shared keys because it gives each instance catch-up for free: after an
//! outage, or at start, an instance reads on from where it stopped, and what it recorded in the
//! meantime waits in its queue and goes out when Redis is back. Applying a record twice changes
//! nothing, so at-least-once delivery is enough.
//!
//! Nothing here is on the request path: the proxy only ever reads local memory and `try_send`s.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use tokio::sync::{mpsc, watch};

use super::shared_record::SharedRecord;
use super::synced::{SyncHealth, SyncedHistory};
use super::{HistoryStore, MemoryHistory};

/// `[history] redis*`: where the fleet's history is shared.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisLinkConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://` for TLS.
    pub url: String,
    /// The stream's key.
    pub stream: String,
    /// How long entries stay in the stream (a starting instance reads this much back).
    pub retention: Duration,
    /// Time allowed to connect and for each command.
    pub timeout: Duration,
    /// PEM file of the CA that signed Redis's certificate (`rediss://` with a private CA),
    /// instead of the system's trust store.
    pub ca_file: Option<std::path::PathBuf>,
}

impl RedisLinkConfig {
    /// Host and port of the URL, never its credentials: safe for logs, events and `/readyz`.
    pub fn endpoint(&self) -> String {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        rest.split(['/', '?']).next().unwrap_or(rest).to_string()
    }
}

impl RedisLinkConfig {
    /// A client for the URL, trusting `ca_file` when given.
    pub fn client(&self) -> Result<redis::Client, String> {
        crate::http_client::use_ring_for_tls();
        let client = match &self.ca_file {
            None => redis::Client::open(self.url.as_str()),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read redis_ca_file {}: {e}", path.display()))?;
                redis::Client::build_with_tls(
                    self.url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
        };
        client.map_err(|e| e.to_string())
    }

    /// Connects and sends `PING` (blocking, within the configured timeout): what `validate`
    /// checks.
    pub fn ping(&self) -> Result<(), String> {
        let client = self.client()?;
        let mut conn = client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query::<String>(&mut conn)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Entries read per `XREAD`.
const READ_COUNT: usize = 1000;
/// Sightings published per round trip.
const PUBLISH_BATCH: usize = 512;
/// How long an up-to-date `XREAD` waits for new entries before asking again.
const READ_BLOCK: Duration = Duration::from_millis(100);
/// Sightings queued while Redis is away; beyond that they are dropped and counted.
const OUTBOX: usize = 100_000;
/// Largest payload accepted from the stream.
const MAX_PAYLOAD: usize = 4096;
/// Clock differences between instances above this are logged.
const SKEW_WARN_MS: i64 = 60_000;

/// Stops the link and lets it publish what is queued.
pub struct LinkHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LinkHandle {
    /// Asks the link to publish its queue and stop; waits at most `grace`.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace, self.task).await;
    }
}

/// Starts the link (inside a Tokio runtime) and returns the store the proxy uses, the health
/// the admin side reads, and the handle that stops it.
pub fn start(cfg: RedisLinkConfig) -> (Arc<dyn HistoryStore>, Arc<SyncHealth>, LinkHandle) {
    crate::http_client::use_ring_for_tls();
    let local = Arc::new(MemoryHistory::new());
    let health = Arc::new(SyncHealth::new(cfg.endpoint()));
    let (tx, rx) = mpsc::channel(OUTBOX);
    let (stop, stop_rx) = watch::channel(false);
    let link = Link {
        ctx: LinkCtx {
            instance: instance_id(),
            cfg,
            health: health.clone(),
        },
        publisher: Publisher {
            outbox: rx,
            pending: VecDeque::new(),
        },
        reader: Reader {
            local: local.clone(),
            last_id: "0-0".into(),
            skew_warned: None,
        },
        stop: stop_rx,
    };
    let task = tokio::spawn(link.run());
    let store = SyncedHistory::new(local, tx, health.clone());
    (Arc::new(store), health, LinkHandle { stop, task })
}

/// Tells this process's entries apart from the others' (host, process, start time).
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{nanos:08x}", std::process::id())
}

struct Link {
    ctx: LinkCtx,
    publisher: Publisher,
    reader: Reader,
    stop: watch::Receiver<bool>,
}

/// What both halves of a session read.
struct LinkCtx {
    instance: String,
    cfg: RedisLinkConfig,
    health: Arc<SyncHealth>,
}

/// Sends this instance's sightings as they come (its own connection, so a sighting never waits
/// behind a blocked `XREAD`).
struct Publisher {
    outbox: mpsc::Receiver<SharedRecord>,
    /// Taken from the outbox, not yet acknowledged by Redis.
    pending: VecDeque<SharedRecord>,
}

/// Applies the other instances' sightings.
struct Reader {
    local: Arc<MemoryHistory>,
    /// The last stream entry applied: where reading resumes after an outage.
    last_id: String,
    skew_warned: Option<std::time::Instant>,
}

impl Link {
    async fn run(mut self) {
        let client = match self.ctx.cfg.client() {
            Ok(c) => c,
            Err(e) => {
                // The config check opened the same URL and read the CA file; a CA file that has
                // gone since is reported, not retried.
                self.ctx.health.failed(&e);
                return;
            }
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let err = match self.session(&client).await {
                Ok(()) => return,
                Err(e) => e,
            };
            // A session that got as far as connecting starts the backoff over.
            if self.ctx.health.is_up() {
                backoff = Duration::from_millis(100);
            }
            self.ctx.health.failed(&err);
            if *self.stop.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Connects both halves and runs them until either fails (the error) or a stop (after a
    /// last publication).
    async fn session(&mut self, client: &redis::Client) -> Result<(), String> {
        let ctx = &self.ctx;
        let mut publish_conn = ctx.connect(client).await?;
        let mut read_conn = ctx.connect(client).await?;
        ctx.health.connected();
        tracing::info!(redis = %ctx.health.endpoint, resume_after = %self.reader.last_id, "history sharing connected");
        let (mut stop_a, mut stop_b) = (self.stop.clone(), self.stop.clone());
        tokio::try_join!(
            self.publisher.run(ctx, &mut publish_conn, &mut stop_a),
            self.reader.run(ctx, &mut read_conn, &mut stop_b),
        )
        .map(|_| ())
    }
}

impl LinkCtx {
    async fn connect(&self, client: &redis::Client) -> Result<MultiplexedConnection, String> {
        let conf = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.cfg.timeout))
            .set_response_timeout(None);
        self.timed(client.get_multiplexed_async_connection_with_config(&conf))
            .await
            .map_err(|e| e.replace("no answer", "no connection"))
    }

    async fn timed<T>(
        &self,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        self.timed_for(self.cfg.timeout, fut).await
    }

    async fn timed_for<T>(
        &self,
        limit: Duration,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }
}

impl Publisher {
    /// Publishes whatever is queued, then waits for more; on a stop, publishes the rest first.
    async fn run(
        &mut self,
        ctx: &LinkCtx,
        conn: &mut MultiplexedConnection,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        loop {
            while self.pending.len() < PUBLISH_BATCH {
                match self.outbox.try_recv() {
                    Ok(r) => self.pending.push_back(r),
                    Err(_) => break,
                }
            }
            if !self.pending.is_empty() {
                self.publish(ctx, conn).await?;
                continue;
            }
            if *stop.borrow() {
                return Ok(());
            }
            tokio::select! {
                r = self.outbox.recv() => match r {
                    Some(r) => self.pending.push_back(r),
                    None => return Ok(()),
                },
                _ = stop.changed() => {}
            }
        }
    }

    async fn publish(
        &mut self,
        ctx: &LinkCtx,
        conn: &mut MultiplexedConnection,
    ) -> Result<(), String> {
        let oldest = Timestamp::now().as_millisecond()
            - i64::try_from(ctx.cfg.retention.as_millis()).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        for rec in &self.pending {
            pipe.cmd("XADD")
                .arg(&ctx.cfg.stream)
                .arg("MINID")
                .arg("~")
                .arg(oldest.max(0))
                .arg("*")
                .arg("i")
                .arg(&ctx.instance)
                .arg("r")
                .arg(rec.encode())
                .ignore();
        }
        ctx.timed(pipe.query_async::<()>(conn)).await?;
        let n = self.pending.len();
        self.pending.clear();
        ctx.health.published.fetch_add(n as u64, Ordering::Relaxed);
        ctx.health
            .queued
            .fetch_sub(i64::try_from(n).unwrap_or(0), Ordering::Relaxed);
        Ok(())
    }
}

impl Reader {
    /// Reads the backlog without waiting, then waits for new entries, until a stop.
    async fn run(
        &mut self,
        ctx: &LinkCtx,
        conn: &mut MultiplexedConnection,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let caught_up = ctx.health.is_caught_up();
            let got = tokio::select! {
                got = self.read(ctx, conn, caught_up.then_some(READ_BLOCK)) => got?,
                _ = stop.changed() => continue,
            };
            if got < READ_COUNT && !caught_up {
                ctx.health.caught_up(true);
                tracing::info!(redis = %ctx.health.endpoint, applied = ctx.health.applied.load(Ordering::Relaxed), "history sharing caught up");
            }
        }
    }

    /// Reads the next entries after `last_id` and applies the other instances' ones; returns
    /// how many entries came.
    async fn read(
        &mut self,
        ctx: &LinkCtx,
        conn: &mut MultiplexedConnection,
        block: Option<Duration>,
    ) -> Result<usize, String> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(READ_COUNT);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(b.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&ctx.cfg.stream).arg(&self.last_id);
        // Redis ends a BLOCK on its 100 ms timer tick, so allow one tick more.
        let limit = ctx.cfg.timeout + block.map_or(Duration::ZERO, |b| b * 2);
        let reply: Option<StreamReadReply> = ctx.timed_for(limit, cmd.query_async(conn)).await?;
        let Some(reply) = reply else {
            return Ok(0);
        };
        let now = Timestamp::now();
        let mut got = 0;
        let mut skew = 0i64;
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            got += 1;
            self.last_id.clone_from(&entry.id);
            let field = |name: &str| match entry.map.get(name) {
                Some(redis::Value::BulkString(b)) => Some(b.as_slice()),
                _ => None,
            };
            if field("i") == Some(ctx.instance.as_bytes()) {
                continue;
            }
            let decoded = match field("r") {
                Some(p) if p.len() <= MAX_PAYLOAD => SharedRecord::decode(p),
                Some(_) => Err("payload too large".into()),
                None => Err("no payload".into()),
            };
            let mut rec = match decoded {
                Ok(r) => r,
                Err(e) => {
                    ctx.health.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(entry = %entry.id, error = %e, "refused a shared history entry");
                    continue;
                }
            };
            if let Some(place) = &mut rec.place {
                // The entry id is Redis's clock when the sighting arrived; a large difference is
                // a skewed instance. A sighting from this instance's future cannot be ordered
                // honestly against local ones, so it counts as now.
                if let Some(ms) = entry_millis(&entry.id) {
                    let d = place.at.as_millisecond() - ms;
                    if d.abs() > skew.abs() {
                        skew = d;
                    }
                }
                if place.at > now {
                    place.at = now;
                }
            }
            self.local.record(rec.as_record());
            ctx.health.applied.fetch_add(1, Ordering::Relaxed);
        }
        ctx.health.skew_ms.store(skew, Ordering::Relaxed);
        if skew.abs() > SKEW_WARN_MS
            && self
                .skew_warned
                .is_none_or(|t| t.elapsed() > Duration::from_secs(600))
        {
            self.skew_warned = Some(std::time::Instant::now());
            tracing::warn!(
                skew_ms = skew,
                "another instance's clock differs from Redis's; travel times between instances are off by as much"
            );
        }
        Ok(got)
    }
}

/// The millisecond part of a stream entry id (`1700000000000-0`).
fn entry_millis(id: &str) -> Option<i64> {
    id.split_once('-').and_then(|(ms, _)| ms.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_never_shows_credentials() {
        let c = |url: &str| RedisLinkConfig {
            url: url.into(),
            stream: "s".into(),
            retention: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            ca_file: None,
        };
        assert_eq!(
            c("redis://:s3cret@10.0.0.5:6380/2").endpoint(),
            "10.0.0.5:6380"
        );
        assert_eq!(
            c("rediss://user:p@ss@redis.corp:6379").endpoint(),
            "redis.corp:6379"
        );
        assert_eq!(c("redis://127.0.0.1:6379").endpoint(), "127.0.0.1:6379");
    }

    #[test]
    fn entry_ids_give_redis_time() {
        assert_eq!(entry_millis("1764064800000-3"), Some(1_764_064_800_000));
        assert_eq!(entry_millis("junk"), None);
    }
}
