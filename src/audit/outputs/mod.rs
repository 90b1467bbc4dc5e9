//! Event outputs beyond the JSON lines file: syslog (RFC 5424), the systemd journal (native
//! protocol), Splunk's HTTP Event Collector and OpenTelemetry logs (OTLP/HTTP, JSON).
//!
//! Each output runs on its own thread behind its own bounded queue. The event writer hands it
//! the event's JSON line with a non-blocking `try_send` ([`Outputs::offer`]): a full queue drops
//! that event for that output and counts it (`locgate_output_dropped_total{output}`), so a
//! receiver that is down or slow never slows the writer, and the writer never slows requests.
//! The event is still in the JSON lines file and the store.
//!
//! When a delivery fails, the output keeps the batch and retries it with doubling back-off
//! (0.5 s up to 30 s) until the receiver takes it, while new events wait in the queue; the
//! backlog is bounded by the queue (`queue`, default 10,000 events), past which new events
//! are dropped and counted. A receiver that refuses the payload itself (HTTP 400, 413, 415,
//! 422) would refuse it forever, so that batch is dropped and counted instead. `/metrics` shows
//! each output's `up`, queue, sent and dropped counts, and [`OutputStats::warning`] gives the
//! sentence `/readyz` shows.

pub mod flat;
pub mod hec;
pub mod http;
pub mod journald;
pub mod otlp;
pub mod syslog;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use super::event::Origin;

/// Default bound of each output's queue, in events.
pub const DEFAULT_QUEUE: usize = 10_000;

/// First wait after a failed delivery; doubled after each further failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One configured output, checked (`[events.syslog]`, `[events.journald]`, `[events.hec]`,
/// `[events.otlp]`).
#[derive(Debug, Clone, PartialEq)]
pub enum OutputConfig {
    /// RFC 5424 syslog to a local socket or a remote collector.
    Syslog(syslog::SyslogConfig),
    /// The systemd journal's native protocol.
    Journald(journald::JournaldConfig),
    /// Splunk HTTP Event Collector.
    Hec(hec::HecConfig),
    /// OpenTelemetry logs over HTTP (JSON encoding).
    Otlp(otlp::OtlpConfig),
}

impl OutputConfig {
    /// The output's name in metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            OutputConfig::Syslog(_) => "syslog",
            OutputConfig::Journald(_) => "journald",
            OutputConfig::Hec(_) => "splunk_hec",
            OutputConfig::Otlp(_) => "otlp",
        }
    }

    /// The queue bound configured for it.
    fn queue(&self) -> usize {
        match self {
            OutputConfig::Syslog(c) => c.queue,
            OutputConfig::Journald(c) => c.queue,
            OutputConfig::Hec(c) => c.queue,
            OutputConfig::Otlp(c) => c.queue,
        }
    }

    /// The delivery half, which runs on the output's thread.
    fn deliverer(&self, origin: &Origin) -> Box<dyn Deliver> {
        match self {
            OutputConfig::Syslog(c) => Box::new(syslog::Syslog::new(c.clone(), origin)),
            OutputConfig::Journald(c) => Box::new(journald::Journald::new(c.clone())),
            OutputConfig::Hec(c) => Box::new(hec::Hec::new(c.clone(), origin)),
            OutputConfig::Otlp(c) => Box::new(otlp::Otlp::new(c.clone(), origin)),
        }
    }
}

/// How a delivery went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The receiver is unreachable, down or busy: keep the batch and try again.
    Retry(String),
    /// The receiver refused this payload itself: trying again cannot help, drop the batch.
    Refused(String),
}

/// The delivery half of an output: how one batch of events reaches its receiver.
pub trait Deliver: Send {
    /// The most events it sends in one delivery.
    fn batch_size(&self) -> usize {
        1
    }

    /// Delivers `lines` (each one event's ECS JSON, as written to the JSON lines file).
    fn deliver(&mut self, lines: &[Arc<str>]) -> Result<(), Failure>;
}

/// One output's counters, for `/metrics` and `/readyz`.
#[derive(Debug)]
pub struct OutputStats {
    /// `syslog`, `journald`, `splunk_hec`, `otlp`.
    pub name: &'static str,
    /// Events the receiver took.
    pub sent: AtomicU64,
    /// Events lost to this output: its queue was full, or the receiver refused them.
    pub dropped: AtomicU64,
    /// Deliveries that failed (each retry counts).
    pub failures: AtomicU64,
    /// Events waiting in the queue or in the batch being retried.
    pub queued: AtomicI64,
    /// False from a failed delivery until the next one succeeds.
    pub up: AtomicBool,
    /// The last failure, while the output is down.
    pub problem: Mutex<Option<String>>,
}

impl OutputStats {
    fn new(name: &'static str) -> Self {
        OutputStats {
            name,
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            queued: AtomicI64::new(0),
            up: AtomicBool::new(true),
            problem: Mutex::new(None),
        }
    }

    /// A sentence for `/readyz` when the output is failing or has dropped events; `None` when
    /// all is well.
    pub fn warning(&self) -> Option<String> {
        let dropped = self.dropped.load(Ordering::Relaxed);
        let queued = self.queued.load(Ordering::Relaxed).max(0);
        let problem = self.problem.lock().ok().and_then(|p| p.clone());
        match (self.up.load(Ordering::Relaxed), problem) {
            (false, Some(p)) => Some(format!(
                "event output {}: failing ({p}): {queued} events waiting, {dropped} dropped",
                self.name
            )),
            _ if dropped > 0 => Some(format!(
                "event output {}: {dropped} events dropped since start (queue full or refused)",
                self.name
            )),
            _ => None,
        }
    }

    fn set_problem(&self, problem: Option<String>) {
        self.up.store(problem.is_none(), Ordering::Relaxed);
        if let Ok(mut p) = self.problem.lock() {
            *p = problem;
        }
    }
}

/// The writer's side of the outputs: one bounded queue per output.
pub struct Outputs {
    queues: Vec<Queue>,
}

struct Queue {
    tx: mpsc::SyncSender<Arc<str>>,
    stats: Arc<OutputStats>,
    /// Set when the writer goes away, so a retrying output gives up instead of holding a
    /// stopped process's events forever.
    closed: Arc<AtomicBool>,
}

impl Outputs {
    /// Starts one thread per configured output.
    pub fn start(configs: &[OutputConfig], origin: &Origin) -> std::io::Result<Outputs> {
        let mut queues = Vec::with_capacity(configs.len());
        for config in configs {
            let (tx, rx) = mpsc::sync_channel(config.queue().max(1));
            let stats = Arc::new(OutputStats::new(config.name()));
            let closed = Arc::new(AtomicBool::new(false));
            let deliverer = config.deliverer(origin);
            let (s, c) = (stats.clone(), closed.clone());
            std::thread::Builder::new()
                .name(format!("locgate-{}", config.name()))
                .spawn(move || forward(deliverer, rx, &s, &c))?;
            tracing::info!(output = config.name(), "event output started");
            queues.push(Queue { tx, stats, closed });
        }
        Ok(Outputs { queues })
    }

    /// No outputs configured.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Every output's counters.
    pub fn stats(&self) -> Vec<Arc<OutputStats>> {
        self.queues.iter().map(|q| q.stats.clone()).collect()
    }

    /// Queues one event's JSON line for every output; never waits (a full queue drops it for
    /// that output, counted).
    pub fn offer(&self, line: &Arc<str>) {
        for q in &self.queues {
            q.stats.queued.fetch_add(1, Ordering::Relaxed);
            if q.tx.try_send(line.clone()).is_err() {
                q.stats.queued.fetch_sub(1, Ordering::Relaxed);
                if q.stats.dropped.fetch_add(1, Ordering::Relaxed) % 1000 == 0 {
                    tracing::warn!(
                        output = q.stats.name,
                        "event output queue full; event dropped for it (it is in the JSON lines file and the store)"
                    );
                }
            }
        }
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for q in &self.queues {
            q.closed.store(true, Ordering::Relaxed);
        }
    }
}

/// An output's thread: takes batches off the queue and delivers each until it is taken,
/// refused, or the process is stopping.
fn forward(
    mut out: Box<dyn Deliver>,
    rx: mpsc::Receiver<Arc<str>>,
    stats: &OutputStats,
    closed: &AtomicBool,
) {
    let size = out.batch_size().max(1);
    let mut batch: Vec<Arc<str>> = Vec::with_capacity(size);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < size {
            match rx.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match out.deliver(&batch) {
                Ok(()) => {
                    stats.sent.fetch_add(n, Ordering::Relaxed);
                    if !stats.up.load(Ordering::Relaxed) {
                        tracing::info!(output = stats.name, "event output delivering again");
                    }
                    stats.set_problem(None);
                    break;
                }
                Err(Failure::Refused(why)) => {
                    stats.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(output = stats.name, events = n, error = %why, "receiver refused events; dropped for this output");
                    break;
                }
                Err(Failure::Retry(why)) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    if stats.up.load(Ordering::Relaxed) {
                        tracing::warn!(output = stats.name, error = %why, "event output failing; retrying with back-off");
                    }
                    stats.set_problem(Some(why));
                    if closed.load(Ordering::Relaxed) {
                        stats.dropped.fetch_add(n, Ordering::Relaxed);
                        break;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        stats.queued.fetch_sub(n as i64, Ordering::Relaxed);
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver that fails `down` times, then takes everything.
    struct Flaky {
        down: usize,
        got: Arc<Mutex<Vec<String>>>,
    }

    impl Deliver for Flaky {
        fn batch_size(&self) -> usize {
            10
        }
        fn deliver(&mut self, lines: &[Arc<str>]) -> Result<(), Failure> {
            if self.down > 0 {
                self.down -= 1;
                return Err(Failure::Retry("connection refused".into()));
            }
            if let Ok(mut g) = self.got.lock() {
                g.extend(lines.iter().map(|l| l.to_string()));
            }
            Ok(())
        }
    }

    #[test]
    fn a_failed_batch_is_retried_until_taken_and_the_queue_bounds_the_backlog() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::sync_channel(5);
        let stats = Arc::new(OutputStats::new("test"));
        let closed = Arc::new(AtomicBool::new(false));
        let out = Box::new(Flaky {
            down: 1,
            got: got.clone(),
        });
        let outputs = Outputs {
            queues: vec![Queue {
                tx,
                stats: stats.clone(),
                closed: closed.clone(),
            }],
        };
        let (s, c) = (stats.clone(), closed.clone());
        let thread = std::thread::spawn(move || forward(out, rx, &s, &c));
        // The first batch fails once (0.5 s back-off); meanwhile the queue (5) fills.
        for i in 0..40 {
            outputs.offer(&Arc::from(format!("{{\"n\":{i}}}")));
        }
        let dropped = stats.dropped.load(Ordering::Relaxed);
        assert!(dropped > 0, "a full queue drops, never blocks");
        // The failed batch is retried after its back-off (0.5 s) and taken.
        for _ in 0..100 {
            if stats.sent.load(Ordering::Relaxed) > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(outputs);
        thread.join().expect("thread");
        let got = got.lock().expect("lock").len() as u64;
        assert_eq!(
            got + stats.dropped.load(Ordering::Relaxed),
            40,
            "every event is sent or counted"
        );
        assert_eq!(stats.queued.load(Ordering::Relaxed), 0);
        assert!(stats.failures.load(Ordering::Relaxed) >= 1);
        assert!(stats.up.load(Ordering::Relaxed), "up again after the retry");
        assert!(stats.warning().is_some_and(|w| w.contains("dropped")));
    }
}
