//! The decision counters (`Stats`): atomics the request path bumps and `/metrics`, the whoami
//! page and the alert sender read.
//!
//! Its own file, below both the writer (`mod.rs`) and the alert sender (`alerts.rs`), so that
//! each can use the counters without importing the other.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::histogram::Histogram;
use super::outputs::OutputStats;
use crate::policy::Action;

/// One listener's decisions: what `/metrics` shows with a `listener` label. Each listener's
/// context holds its own, so counting is one relaxed atomic add on the request path, with no
/// lookup by name.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    /// HTTP requests decided, by action (`[allow, note, flag, block]`).
    requests: [AtomicU64; 4],
    /// Pass-through connections decided: `[tcp, udp]` x `[allow, note, flag, block]`.
    connections: [[AtomicU64; 4]; 2],
}

impl ListenerCounters {
    /// Counts one HTTP request decision.
    pub fn count(&self, action: Action) {
        self.requests[action_index(action)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one pass-through connection (`udp` for a UDP flow, anything else TCP).
    pub fn count_connection(&self, transport: &str, action: Action) {
        let t = usize::from(transport == "udp");
        self.connections[t][action_index(action)].fetch_add(1, Ordering::Relaxed);
    }

    /// HTTP requests so far that ended in `action`.
    pub fn requests(&self, action: Action) -> u64 {
        self.requests[action_index(action)].load(Ordering::Relaxed)
    }

    /// Pass-through connections so far of `transport` (`tcp`/`udp`) and `action`.
    pub fn connections(&self, transport: &str, action: Action) -> u64 {
        let t = usize::from(transport == "udp");
        self.connections[t][action_index(action)].load(Ordering::Relaxed)
    }
}

/// Counters of everything decided, written or not; read by `/metrics` and the whoami page.
/// Decisions are counted per listener ([`ListenerCounters`], found by [`Stats::listener`]).
#[derive(Debug, Default)]
pub struct Stats {
    /// Each listener's decision counters, by name, in the order the listeners first started.
    /// A listener that a reload rebuilds (or removes and adds back) keeps its counters:
    /// Prometheus counters must never go down.
    listeners: Mutex<Vec<(String, Arc<ListenerCounters>)>>,
    /// The event outputs' counters (syslog, journald, HEC, OTLP), set once when they start.
    pub outputs: OnceLock<Vec<Arc<OutputStats>>>,
    /// Bytes clients sent through ended tunnels (added when a tunnel closes).
    pub tunnel_bytes_to_upstream: AtomicU64,
    /// Bytes upstreams sent back through ended tunnels (added when a tunnel closes).
    pub tunnel_bytes_to_client: AtomicU64,
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
    /// Reloads (SIGHUP, file change, schedule) that swapped in a new state.
    pub reloads_ok: AtomicU64,
    /// Reloads refused because something was bad; the old state kept serving.
    pub reloads_failed: AtomicU64,
    /// Data sources past their age limit at the last load or check.
    pub stale_sources: AtomicU64,
    /// Rules the loaded data cannot serve (radius rules without coordinates, ...).
    pub blind_spots: AtomicU64,
    /// Sources the in-process update schedule installed or found current.
    pub updates_ok: AtomicU64,
    /// Sources the in-process update schedule could not update (the installed file stayed).
    pub updates_failed: AtomicU64,
    /// Events committed to the event store.
    pub events_stored: AtomicU64,
    /// Events written straight to JSON lines because the queue was full (`when_full = "spill"`).
    pub events_spilled: AtomicU64,
    /// Events that reached JSON lines but not the store (store errors).
    pub store_failed: AtomicU64,
    /// Events waiting for the writer.
    pub queue_depth: AtomicI64,
    /// Set when the store was configured but could not be opened: running on JSON lines only.
    pub store_degraded: AtomicBool,
    /// Why the store is degraded (for `/readyz`).
    pub store_problem: Mutex<Option<String>>,
    /// The shared PostgreSQL store's health (spool, reachability), when that is the store.
    pub shared_store: std::sync::OnceLock<std::sync::Arc<crate::audit::store::PgHealth>>,
    /// Events per reason code.
    pub reasons: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Time from request start to decision.
    pub decision_latency: Histogram,
    /// Time of the data lookup (observe) alone.
    pub lookup_latency: Histogram,
    /// Alerts delivered.
    pub alerts_sent: AtomicU64,
    /// Alert deliveries that failed after every retry (the event is still in the store).
    pub alerts_failed: AtomicU64,
    /// Alerts not sent because the same employee and reason alerted within the interval.
    pub alerts_deduplicated: AtomicU64,
    /// Alerts dropped because the alert queue was full (the event is still in the store).
    pub alerts_dropped: AtomicU64,
}

impl Stats {
    /// The counters of the listener named `name`: the same ones every time the name is asked
    /// for (at start and on each reload), created the first time.
    pub fn listener(&self, name: &str) -> Arc<ListenerCounters> {
        let mut all = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, c)) = all.iter().find(|(n, _)| n == name) {
            return c.clone();
        }
        let c = Arc::new(ListenerCounters::default());
        all.push((name.to_owned(), c.clone()));
        c
    }

    /// Every listener's counters so far, by name (for `/metrics`).
    pub fn listeners(&self) -> Vec<(String, Arc<ListenerCounters>)> {
        self.listeners.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// HTTP requests so far that ended in `action`, all listeners together.
    pub fn requests(&self, action: Action) -> u64 {
        self.listeners()
            .iter()
            .map(|(_, c)| c.requests(action))
            .sum()
    }

    /// Pass-through connections so far of `transport` and `action`, all listeners together.
    pub fn connections(&self, transport: &str, action: Action) -> u64 {
        self.listeners()
            .iter()
            .map(|(_, c)| c.connections(transport, action))
            .sum()
    }

    /// What `/readyz` should say about the event outputs: each one that is failing (its
    /// receiver down or refusing) or has dropped events since the start.
    pub fn output_warnings(&self) -> Vec<String> {
        self.outputs
            .get()
            .map(|all| all.iter().filter_map(|o| o.warning()).collect())
            .unwrap_or_default()
    }
}

/// Index of an action in the per-action counters.
fn action_index(action: Action) -> usize {
    match action {
        Action::Allow => 0,
        Action::Note => 1,
        Action::Flag => 2,
        Action::Block => 3,
    }
}
