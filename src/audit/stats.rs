//! The decision counters (`Stats`): atomics the request path bumps and `/metrics`, the whoami
//! page and the alert sender read.
//!
//! Its own file, below both the writer (`mod.rs`) and the alert sender (`alerts.rs`), so that
//! each can use the counters without importing the other.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use super::histogram::Histogram;

/// Counters of everything decided, written or not; read by `/metrics` and the whoami page.
/// `allow`..`block` count HTTP requests; pass-through connections are in `connections`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Pass-through connections decided: `[tcp, udp]` x `[allow, note, flag, block]`.
    pub connections: [[AtomicU64; 4]; 2],
    /// Bytes clients sent through ended tunnels (added when a tunnel closes).
    pub tunnel_bytes_to_upstream: AtomicU64,
    /// Bytes upstreams sent back through ended tunnels (added when a tunnel closes).
    pub tunnel_bytes_to_client: AtomicU64,
    /// Requests allowed.
    pub allow: AtomicU64,
    /// Requests allowed with a note.
    pub note: AtomicU64,
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
    /// Counts one decision.
    pub fn count(&self, action: crate::policy::Action) {
        let c = match action {
            crate::policy::Action::Allow => &self.allow,
            crate::policy::Action::Note => &self.note,
            crate::policy::Action::Flag => &self.flag,
            crate::policy::Action::Block => &self.block,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one pass-through connection (`udp` for a UDP flow, anything else TCP).
    pub fn count_connection(&self, transport: &str, action: crate::policy::Action) {
        let t = usize::from(transport == "udp");
        self.connections[t][action_index(action)].fetch_add(1, Ordering::Relaxed);
    }

    /// Pass-through connections so far of `transport` (`tcp`/`udp`) and `action`.
    pub fn connections(&self, transport: &str, action: crate::policy::Action) -> u64 {
        let t = usize::from(transport == "udp");
        self.connections[t][action_index(action)].load(Ordering::Relaxed)
    }
}

fn action_index(action: crate::policy::Action) -> usize {
    match action {
        crate::policy::Action::Allow => 0,
        crate::policy::Action::Note => 1,
        crate::policy::Action::Flag => 2,
        crate::policy::Action::Block => 3,
    }
}
