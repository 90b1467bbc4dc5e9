//! The writer thread's side of the shared store: batches go to PostgreSQL while it answers and
//! to the local spool while it does not; the spool is replayed, oldest first, before anything
//! newer is written once it answers again. Reconnects back off (1 s doubling to 30 s) so an
//! outage costs the writer one failed attempt now and then, not one per batch.
//!
//! What it sees is published in [`PgHealth`] for `/readyz` and the metrics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::super::clock::now_ms;
use super::super::error::{Result, StoreError};
use super::super::row::Row;
use super::super::write::{EventSink, SinkError};
use super::spool::{ReplayError, Spool};
use super::{PgStore, PgTarget};
use crate::audit::event::Event;

/// First wait before reconnecting; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the shared store looks like from this instance, for `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct PgHealth {
    /// The database, without its password.
    pub label: String,
    /// Whether the last attempt to write (or connect) succeeded.
    pub up: AtomicBool,
    /// Events in the local spool.
    pub spooled: AtomicU64,
    /// Bytes in the local spool.
    pub spool_bytes: AtomicU64,
    /// The spool's bound.
    pub spool_max_bytes: u64,
    /// Events dropped because the spool was full.
    pub dropped: AtomicU64,
    /// Events replayed from the spool into the database.
    pub replayed: AtomicU64,
    /// Why it is down (the last error).
    pub problem: Mutex<Option<String>>,
}

impl PgHealth {
    /// A line for `/readyz` when something is wrong, `None` when all is well.
    pub fn warning(&self) -> Option<String> {
        let spooled = self.spooled.load(Ordering::Relaxed);
        let dropped = self.dropped.load(Ordering::Relaxed);
        if self.up.load(Ordering::Relaxed) && spooled == 0 && dropped == 0 {
            return None;
        }
        let why = self
            .problem
            .lock()
            .ok()
            .and_then(|p| p.clone())
            .unwrap_or_else(|| "catching up".into());
        let mut s = format!(
            "event store {}: {why}: {spooled} events spooled locally ({} of {} MB)",
            self.label,
            self.spool_bytes.load(Ordering::Relaxed) / 1_000_000,
            self.spool_max_bytes / 1_000_000
        );
        if dropped > 0 {
            s.push_str(&format!(", {dropped} dropped with the spool full"));
        }
        Some(s)
    }

    fn down(&self, why: String) {
        self.up.store(false, Ordering::Relaxed);
        if let Ok(mut p) = self.problem.lock() {
            *p = Some(why);
        }
    }
}

/// The writer thread's sink for the shared store.
pub struct PgSink {
    target: PgTarget,
    conn: Option<PgStore>,
    spool: Spool,
    health: std::sync::Arc<PgHealth>,
    retry_at: Instant,
    backoff: Duration,
    retention: Option<Duration>,
}

impl PgSink {
    /// Opens the spool and tries the database once. An unreachable database is not an error
    /// (events spool until it answers); a schema newer than this program is, and so is a spool
    /// that cannot be opened.
    pub fn open(
        target: PgTarget,
        retention_days: Option<u32>,
    ) -> Result<(PgSink, std::sync::Arc<PgHealth>)> {
        let spool = Spool::open(&target.spool, target.spool_max_bytes)
            .map_err(|e| StoreError::Invalid(format!("event store {}: {e}", target.label())))?;
        let health = std::sync::Arc::new(PgHealth {
            label: target.label(),
            spool_max_bytes: target.spool_max_bytes,
            ..PgHealth::default()
        });
        let mut sink = PgSink {
            target,
            conn: None,
            spool,
            health: health.clone(),
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
            retention: retention_days.map(|d| Duration::from_secs(u64::from(d) * 86_400)),
        };
        match sink.target.connect() {
            Ok(c) => {
                sink.conn = Some(c);
                sink.health.up.store(true, Ordering::Relaxed);
            }
            Err(e @ StoreError::TooNew(..)) => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, spool = %sink.spool.path().display(),
                    "EVENT STORE UNREACHABLE: events are spooled locally until it answers");
                sink.failed(e.to_string());
            }
        }
        sink.publish();
        if sink.spool.events() > 0 {
            tracing::warn!(events = sink.spool.events(), spool = %sink.spool.path().display(),
                "events spooled by an earlier run are waiting for the event store");
            sink.catch_up();
        }
        Ok((sink, health))
    }

    /// A connection, making one if the backoff allows; `None` while the database is away.
    fn connection(&mut self) -> Option<&mut PgStore> {
        if self.conn.as_ref().is_some_and(PgStore::is_closed) {
            self.conn = None;
        }
        if self.conn.is_none() && Instant::now() >= self.retry_at {
            match self.target.connect() {
                Ok(c) => {
                    tracing::info!(store = %self.health.label, "event store reachable again");
                    self.conn = Some(c);
                    self.backoff = FIRST_BACKOFF;
                }
                Err(e) => self.failed(e.to_string()),
            }
        }
        self.conn.as_mut()
    }

    /// Notes a failure: the connection is dropped and the next attempt waits.
    fn failed(&mut self, why: String) {
        self.conn = None;
        self.health.down(why);
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Replays the spool if the database answers; true when the spool is empty afterwards.
    fn catch_up(&mut self) -> bool {
        if self.spool.events() == 0 {
            return true;
        }
        if self.connection().is_none() {
            return false;
        }
        let (Some(conn), spool) = (self.conn.as_mut(), &mut self.spool) else {
            return false;
        };
        let waiting = spool.events();
        let result = spool.replay(|rows| conn.insert(rows).map(|_| ()));
        let ok = match result {
            Ok(done) => {
                tracing::info!(
                    events = done.stored,
                    "spooled events replayed into the event store"
                );
                self.health
                    .replayed
                    .fetch_add(done.stored, Ordering::Relaxed);
                self.health
                    .dropped
                    .fetch_add(done.unreadable, Ordering::Relaxed);
                true
            }
            Err(ReplayError::Insert(e)) => {
                tracing::warn!(error = %e, waiting, "replaying the spool failed; it is kept");
                self.failed(e.to_string());
                false
            }
            Err(ReplayError::Io(e)) => {
                tracing::error!(error = %e, spool = %self.spool.path().display(), "cannot read the spool");
                self.health.down(format!("cannot read the spool: {e}"));
                false
            }
        };
        self.publish();
        ok
    }

    /// Spools rows the database did not take; an error names what the full spool dropped.
    fn spool_rows(&mut self, rows: &[Row]) -> std::result::Result<(), SinkError> {
        let taken = match self.spool.append(rows) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, spool = %self.spool.path().display(), "cannot write the spool");
                0
            }
        };
        self.publish();
        let lost = rows.len() - taken;
        if lost == 0 {
            return Ok(());
        }
        self.health
            .dropped
            .fetch_add(lost as u64, Ordering::Relaxed);
        Err(SinkError::Partial {
            lost,
            why: format!(
                "event store {} unreachable and the spool {} is full or unwritable: {lost} events not stored",
                self.health.label,
                self.spool.path().display()
            ),
        })
    }

    /// Copies the spool's figures into the health.
    fn publish(&self) {
        self.health
            .spooled
            .store(self.spool.events(), Ordering::Relaxed);
        self.health
            .spool_bytes
            .store(self.spool.bytes(), Ordering::Relaxed);
        if self.conn.is_some() {
            self.health.up.store(true, Ordering::Relaxed);
        }
    }
}

impl EventSink for PgSink {
    fn write_batch(&mut self, events: &[Box<Event>]) -> std::result::Result<(), SinkError> {
        let rows: Vec<Row> = events.iter().map(|e| Row::of(e)).collect();
        // Oldest first: nothing newer goes in while older events still wait in the spool.
        if self.catch_up()
            && let Some(conn) = self.connection()
        {
            match conn.insert(&rows) {
                Ok(_) => {
                    self.publish();
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, events = rows.len(), "event store write failed; spooling");
                    self.failed(e.to_string());
                }
            }
        }
        self.spool_rows(&rows)
    }

    fn tick(&mut self) {
        if self.spool.events() > 0 || self.conn.is_none() {
            self.catch_up();
            if self.spool.events() == 0 {
                let _ = self.connection();
                self.publish();
            }
        }
    }

    fn prune(&mut self) -> std::result::Result<usize, String> {
        let Some(keep) = self.retention else {
            return Ok(0);
        };
        let cutoff = now_ms() - keep.as_millis() as i64;
        match self.connection() {
            Some(c) => c.prune_before(cutoff).map_err(|e| e.to_string()),
            None => Err("event store unreachable".into()),
        }
    }
}
