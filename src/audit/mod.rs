//! Recording decisions: every flag and block, allows at a throttled rate, all counted.
//!
//! Events are serialised and written by a dedicated thread fed through a bounded queue, so the
//! request path never waits on disk unless the disk falls a whole queue behind; then it waits
//! (back-pressure) rather than drop evidence, and the wait is counted.

pub mod event;
mod jsonl;
mod throttle;

pub use event::{Event, IdentityOut, Network, RequestFacts, TlsClient, TlsOut};
pub use throttle::AllowThrottle;

use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

/// How many events may wait for the writer before the request path waits too.
const QUEUE_CAPACITY: usize = 65_536;

/// Counters of everything decided, written or not; read by `/metrics` and the whoami page.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests allowed.
    pub allow: AtomicU64,
    /// Requests flagged.
    pub flag: AtomicU64,
    /// Requests blocked.
    pub block: AtomicU64,
    /// Upstream failures answered 502/504.
    pub upstream_errors: AtomicU64,
    /// Malformed requests answered 400/431 by the HTTP layer.
    pub bad_requests: AtomicU64,
    /// Events handed to the writer.
    pub events: AtomicU64,
    /// Times the request path had to wait for the writer.
    pub events_waited: AtomicU64,
    /// Events the writer could not write (I/O errors); also logged.
    pub events_failed: AtomicU64,
}

impl Stats {
    /// Counts one decision.
    pub fn count(&self, action: crate::policy::Action) {
        let c = match action {
            crate::policy::Action::Allow => &self.allow,
            crate::policy::Action::Flag => &self.flag,
            crate::policy::Action::Block => &self.block,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

enum Msg {
    Event(Box<Event>),
    Flush(mpsc::Sender<()>),
}

/// The audit front door shared by all listeners.
pub struct Auditor {
    tx: Option<mpsc::SyncSender<Msg>>,
    /// Decision counters.
    pub stats: std::sync::Arc<Stats>,
    /// Allow throttling.
    pub throttle: AllowThrottle,
    id_seed: u64,
    id_counter: AtomicU64,
}

impl Auditor {
    /// Starts the writer for `jsonl` (`-` = standard output; `None` = count only).
    pub fn start(
        jsonl: Option<PathBuf>,
        allow_interval: std::time::Duration,
    ) -> std::io::Result<Self> {
        let stats = std::sync::Arc::new(Stats::default());
        let tx = match jsonl {
            Some(path) => {
                let out = jsonl::open(&path)?;
                let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
                let stats = stats.clone();
                std::thread::Builder::new()
                    .name("locgate-events".into())
                    .spawn(move || writer_loop(rx, out, &stats))?;
                Some(tx)
            }
            None => None,
        };
        Ok(Auditor {
            tx,
            stats,
            throttle: AllowThrottle::new(allow_interval),
            id_seed: std::collections::hash_map::RandomState::new().hash_one(std::process::id()),
            id_counter: AtomicU64::new(0),
        })
    }

    /// A new event id: unique within the process and practically across restarts, short enough
    /// to read to IT over the phone.
    pub fn next_id(&self) -> String {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mixed = splitmix(self.id_seed ^ n);
        format!("{:08x}{:012x}", secs as u32, mixed & 0xffff_ffff_ffff)
    }

    /// Hands an event to the writer. Never drops it: waits when the queue is full.
    pub fn record(&self, event: Event) {
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(msg)) => {
                self.stats.events_waited.fetch_add(1, Ordering::Relaxed);
                if tx.send(msg).is_err() {
                    self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!("event writer has stopped; event lost");
            }
        }
    }

    /// Waits until every event recorded so far is written and flushed.
    pub fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (ack_tx, ack_rx) = mpsc::channel();
            if tx.send(Msg::Flush(ack_tx)).is_ok() {
                let _ = ack_rx.recv_timeout(std::time::Duration::from_secs(10));
            }
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn writer_loop(rx: mpsc::Receiver<Msg>, mut out: jsonl::Output, stats: &Stats) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut handle = |msg: Msg, buf: &mut Vec<u8>| match msg {
            Msg::Event(e) => {
                if serde_json::to_writer(&mut *buf, &e).is_ok() {
                    buf.push(b'\n');
                }
            }
            Msg::Flush(ack) => acks.push(ack),
        };
        handle(first, &mut buf);
        while buf.len() < 1 << 20 {
            match rx.try_recv() {
                Ok(msg) => handle(msg, &mut buf),
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            if let Err(e) = out.write_batch(&buf) {
                let lines = buf.iter().filter(|b| **b == b'\n').count() as u64;
                stats.events_failed.fetch_add(lines, Ordering::Relaxed);
                tracing::error!(error = %e, lines, "could not write events");
            }
            buf.clear();
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// The current time as RFC 3339 UTC with milliseconds, as ECS `@timestamp` wants it.
pub fn timestamp_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}
