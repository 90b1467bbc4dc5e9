//! Recording decisions: every flag and block, allows at a throttled rate, all counted.
//!
//! Events are serialised and written by a dedicated thread fed through a bounded queue, so the
//! request path never waits on disk unless the disk falls a whole queue behind; then it waits
//! (back-pressure) rather than drop evidence, and the wait is counted.
//!
//! Network outputs (syslog, journald, Splunk HEC, OTLP: [`outputs`]) are fed by the writer
//! thread after the file and the store, each through its own bounded queue to its own thread:
//! a receiver that is down or slow costs that output's queue, never the writer's pace nor the
//! request path's.

pub mod alerts;
pub mod event;
mod generations;
mod histogram;
mod jsonl;
pub mod metrics;
pub mod outputs;
mod process;
pub mod stats;
pub mod store;
mod throttle;

pub use event::{
    Destination, Event, IdentityOut, Network, NetworkOut, RequestFacts, TlsClient, TlsOut,
    TunnelEnd, TunnelOut, timestamp_now,
};
pub use generations::Generations;
pub use stats::Stats;
pub use throttle::{AllowThrottle, MAX_KEYS as THROTTLE_MAX_KEYS};

use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

pub use jsonl::Rotation;
pub use store::{EventSink, SinkError, Store};

/// How many events may wait for the writer before the request path waits too (default).
pub const QUEUE_CAPACITY: usize = 65_536;

/// What the request path does when the writer is a whole queue behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room (counted in `events_waited`): nothing is lost, requests slow down.
    #[default]
    Backpressure,
    /// Write the event straight to the JSON lines file (counted in `events_spilled`): requests
    /// keep their pace, the event is in the file but not in the SQLite store.
    Spill,
}

/// Everything the writer needs; [`Auditor::start`] is the JSON-lines-only shorthand.
pub struct AuditOptions {
    /// JSON lines file (`-` = standard output).
    pub jsonl: Option<PathBuf>,
    /// When to rotate the JSON lines file.
    pub rotation: Rotation,
    /// Allow throttling interval.
    pub allow_interval: std::time::Duration,
    /// The event store (SQLite, or a test double).
    pub store: Option<Box<dyn EventSink>>,
    /// Behaviour when the queue is full.
    pub when_full: WhenFull,
    /// Queue capacity.
    pub capacity: usize,
    /// Alert dispatcher fed after events are written.
    pub alerts: Option<alerts::Alerter>,
    /// Who writes the events (`observer.*`, `host.*`), stamped on each one recorded.
    pub origin: Arc<event::Origin>,
    /// Network outputs, each started on its own thread.
    pub outputs: Vec<outputs::OutputConfig>,
}

enum Msg {
    Event(Box<Event>),
    Flush(mpsc::Sender<()>),
}

/// The JSON lines output, shared by the writer and (when spilling) the request path.
type SharedOut = Arc<Mutex<jsonl::Output>>;

/// The audit front door shared by all listeners.
pub struct Auditor {
    tx: Option<mpsc::SyncSender<Msg>>,
    origin: Arc<event::Origin>,
    spill: Option<SharedOut>,
    /// Decision counters.
    pub stats: std::sync::Arc<Stats>,
    /// Allow throttling.
    pub throttle: AllowThrottle,
    id_seed: u64,
    id_counter: AtomicU64,
}

impl Auditor {
    /// This instance's name (`observer.name`), which its events and case changes carry.
    pub fn instance(&self) -> &str {
        &self.origin.observer.name
    }

    /// Starts the writer for `jsonl` (`-` = standard output; `None` = count only).
    pub fn start(
        jsonl: Option<PathBuf>,
        allow_interval: std::time::Duration,
    ) -> std::io::Result<Self> {
        Self::start_with(AuditOptions {
            jsonl,
            rotation: Rotation::default(),
            allow_interval,
            store: None,
            when_full: WhenFull::Backpressure,
            capacity: QUEUE_CAPACITY,
            alerts: None,
            origin: Arc::new(event::Origin::new(None)),
            outputs: Vec::new(),
        })
    }

    /// Starts the writer thread for JSON lines, the store and alerts, as configured.
    pub fn start_with(opts: AuditOptions) -> std::io::Result<Self> {
        let stats = std::sync::Arc::new(Stats::default());
        let out = match &opts.jsonl {
            Some(path) => Some(Arc::new(Mutex::new(jsonl::open(path, opts.rotation)?))),
            None => None,
        };
        let spill = match opts.when_full {
            WhenFull::Spill => out.clone(),
            WhenFull::Backpressure => None,
        };
        let forwarders = outputs::Outputs::start(&opts.outputs, &opts.origin)?;
        let _ = stats.outputs.set(forwarders.stats());
        let tx = if out.is_some()
            || opts.store.is_some()
            || opts.alerts.is_some()
            || !forwarders.is_empty()
        {
            let (tx, rx) = mpsc::sync_channel(opts.capacity.max(1));
            let mut alerts = opts.alerts;
            if let Some(a) = &mut alerts {
                a.start(stats.clone())?;
            }
            let stats = stats.clone();
            let writer = Writer {
                out,
                store: opts.store,
                alerts,
                outputs: forwarders,
            };
            std::thread::Builder::new()
                .name("locgate-events".into())
                .spawn(move || writer.run(rx, &stats))?;
            Some(tx)
        } else {
            None
        };
        Ok(Auditor {
            tx,
            origin: opts.origin,
            spill,
            stats,
            throttle: AllowThrottle::new(opts.allow_interval),
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
    pub fn record(&self, mut event: Event) {
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        if event.origin.is_none() {
            event.origin = Some(self.origin.clone());
        }
        // A close event repeats its connect event's decision: its reasons were counted then.
        if !event.event.reason.is_empty()
            && !event.is_tunnel_close()
            && let Ok(mut m) = self.stats.reasons.lock()
        {
            for r in &event.event.reason {
                *m.entry(r).or_default() += 1;
            }
        }
        let Some(tx) = &self.tx else { return };
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(Msg::Event(event))) if self.spill.is_some() => {
                self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                self.spill_one(&event);
            }
            Err(mpsc::TrySendError::Full(msg)) => {
                self.stats.events_waited.fetch_add(1, Ordering::Relaxed);
                if tx.send(msg).is_err() {
                    self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!("event writer has stopped; event lost");
            }
        }
    }

    /// Writes one event to the JSON lines file from the caller's thread (the queue is full).
    fn spill_one(&self, event: &Event) {
        let Some(out) = &self.spill else { return };
        let mut line = match serde_json::to_vec(event) {
            Ok(l) => l,
            Err(_) => {
                self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        line.push(b'\n');
        let written = out.lock().map(|mut o| o.write_batch(&line));
        match written {
            Ok(Ok(())) => {
                self.stats.events_spilled.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(id = %event.event.id, "could not spill event to JSON lines");
            }
        }
    }

    /// Marks the store as unavailable (configured, but could not be opened).
    pub fn set_degraded(&self, why: String) {
        self.stats.store_degraded.store(true, Ordering::Relaxed);
        if let Ok(mut p) = self.stats.store_problem.lock() {
            *p = Some(why);
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

/// The writer thread's sinks.
struct Writer {
    out: Option<SharedOut>,
    store: Option<Box<dyn EventSink>>,
    alerts: Option<alerts::Alerter>,
    outputs: outputs::Outputs,
}

/// Largest batch handed to the store in one transaction.
const MAX_BATCH: usize = 2048;
/// After a batch smaller than [`MAX_BATCH`], the writer waits this long before it looks for
/// the next one, so events arriving one by one are taken in batches. Without it, a stream of
/// events (one allow per new client address, each client new) woke the writer thread once per
/// event: with one core, half the time went to switching between the request thread and the
/// writer (measured with `bench/random_clients.sh`). Events reach the file at most this much
/// later; `flush` waits at most this much longer.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(2);
/// How often an idle writer wakes to let the store do its own work (replay a spool).
const TICK: std::time::Duration = std::time::Duration::from_secs(1);
/// How often old events are pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>, stats: &Stats) {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut batch: Vec<Box<Event>> = Vec::with_capacity(MAX_BATCH);
        self.prune();
        let mut last_prune = std::time::Instant::now();
        loop {
            let first = match rx.recv_timeout(TICK) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(store) = &mut self.store {
                        store.tick();
                    }
                    if last_prune.elapsed() >= PRUNE_EVERY {
                        self.prune();
                        last_prune = std::time::Instant::now();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut acks = Vec::new();
            let mut take = |msg: Msg, batch: &mut Vec<Box<Event>>| match msg {
                Msg::Event(e) => batch.push(e),
                Msg::Flush(ack) => acks.push(ack),
            };
            take(first, &mut batch);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(msg) => take(msg, &mut batch),
                    Err(_) => break,
                }
            }
            let full = batch.len() >= MAX_BATCH;
            if !batch.is_empty() {
                self.write(&batch, &mut buf, stats);
                stats
                    .queue_depth
                    .fetch_sub(batch.len() as i64, Ordering::Relaxed);
                if let Some(alerts) = &mut self.alerts {
                    for e in &batch {
                        alerts.offer(e, stats);
                    }
                }
                batch.clear();
            }
            // Prune on schedule even when the writer never goes idle for a minute.
            if last_prune.elapsed() >= PRUNE_EVERY {
                self.prune();
                last_prune = std::time::Instant::now();
            }
            let flushed = !acks.is_empty();
            for ack in acks {
                let _ = ack.send(());
            }
            if !full && !flushed {
                std::thread::sleep(COALESCE);
            }
        }
    }

    fn write(&mut self, batch: &[Box<Event>], buf: &mut Vec<u8>, stats: &Stats) {
        // Each event is serialised once: the file takes the lines, the outputs a shared copy.
        let forward = !self.outputs.is_empty();
        let mut lines = Vec::new();
        if self.out.is_some() || forward {
            buf.clear();
            for e in batch {
                let start = buf.len();
                if serde_json::to_writer(&mut *buf, e).is_ok() {
                    if forward && let Ok(line) = std::str::from_utf8(&buf[start..]) {
                        lines.push(Arc::<str>::from(line));
                    }
                    buf.push(b'\n');
                }
            }
        }
        if let Some(out) = &self.out {
            let res = match out.lock() {
                Ok(mut o) => o.write_batch(buf),
                Err(_) => Err(std::io::Error::other("event file lock poisoned")),
            };
            if let Err(e) = res {
                let lines = batch.len() as u64;
                stats.events_failed.fetch_add(lines, Ordering::Relaxed);
                tracing::error!(error = %e, lines, "could not write events");
            }
        }
        if let Some(store) = &mut self.store {
            // One retry: a busy reader (the CLI) can hold a lock for a moment. A batch kept
            // in part is not retried: what was kept would be kept twice.
            let res = store.write_batch(batch).or_else(|e| match e {
                SinkError::Failed(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    store.write_batch(batch)
                }
                partial => Err(partial),
            });
            let lost = match &res {
                Ok(()) => 0,
                Err(SinkError::Failed(_)) => batch.len(),
                Err(SinkError::Partial { lost, .. }) => (*lost).min(batch.len()),
            };
            stats
                .events_stored
                .fetch_add((batch.len() - lost) as u64, Ordering::Relaxed);
            if let Err(e) = res {
                stats.store_failed.fetch_add(lost as u64, Ordering::Relaxed);
                tracing::error!(error = %e, events = lost,
                    "could not write events to the store; they are in the JSON lines file");
            }
        }
        for line in &lines {
            self.outputs.offer(line);
        }
    }

    fn prune(&mut self) {
        if let Some(store) = &mut self.store {
            match store.prune() {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned events past retention"),
                Err(e) => tracing::warn!(error = %e, "could not prune old events"),
            }
        }
    }
}
