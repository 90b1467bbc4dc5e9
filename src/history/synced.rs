//! History shared by a fleet of instances.
//!
//! Reads stay in this process's memory, so the request path never waits on the network; every
//! sighting is also queued (never awaited) for the Redis link, which publishes it and applies what
//! the other instances saw to the same memory. When Redis is slow or gone, decisions go on with
//! what this instance knows, and [`SyncHealth`] says so in events, metrics and `/readyz`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::mpsc;

use super::shared_record::SharedRecord;
use super::{Day, EgressKey, HistoryStore, MemoryHistory, Record, Sighting};

/// A sighting that says nothing new (same place, egress and day) is published again only after
/// this long, so a busy session does not flood the stream while the others' "last seen" stays
/// fresh enough for travel speeds (a staler time only lowers the computed speed).
const REFRESH: SignedDuration = SignedDuration::from_secs(300);
/// Employees whose last publication is remembered; beyond that the memory starts over (the
/// worst case is one extra publication each).
const MAX_THROTTLED: usize = 200_000;

/// How the link to the shared store is doing; read by events, metrics and `/readyz`.
#[derive(Debug)]
pub struct SyncHealth {
    /// Where the shared store is, without credentials (safe for logs).
    pub endpoint: String,
    up: AtomicBool,
    caught_up: AtomicBool,
    /// The current outage has been logged (once per outage, not per retry).
    logged: AtomicBool,
    problem: Mutex<Option<(String, Timestamp)>>,
    /// Sightings this instance published.
    pub published: AtomicU64,
    /// Other instances' sightings applied here.
    pub applied: AtomicU64,
    /// Sightings not published because nothing had changed since the last one.
    pub unchanged: AtomicU64,
    /// Sightings lost because the queue to the shared store was full (long outage).
    pub dropped: AtomicU64,
    /// Stream entries refused as malformed.
    pub refused: AtomicU64,
    /// Failed connections and commands.
    pub errors: AtomicU64,
    /// Sightings queued for publication.
    pub queued: AtomicI64,
    /// The largest clock difference seen in the last batch between another instance's sighting
    /// and the time Redis took it, milliseconds.
    pub skew_ms: AtomicI64,
}

impl SyncHealth {
    /// A link that has not connected yet.
    pub fn new(endpoint: String) -> Self {
        SyncHealth {
            endpoint,
            up: AtomicBool::new(false),
            caught_up: AtomicBool::new(false),
            logged: AtomicBool::new(false),
            problem: Mutex::new(Some(("not connected yet".into(), Timestamp::now()))),
            published: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            unchanged: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            queued: AtomicI64::new(0),
            skew_ms: AtomicI64::new(0),
        }
    }

    /// Whether the shared store is connected.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether the other instances' backlog has been read since the last (re)connection.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    pub(super) fn connected(&self) {
        self.up.store(true, Ordering::Relaxed);
        self.logged.store(false, Ordering::Relaxed);
        if let Ok(mut p) = self.problem.lock() {
            *p = None;
        }
    }

    pub(super) fn caught_up(&self, yes: bool) {
        self.caught_up.store(yes, Ordering::Relaxed);
    }

    /// Marks the link down; the first failure's time is kept as "since".
    pub(super) fn failed(&self, why: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let was_up = self.up.swap(false, Ordering::Relaxed);
        self.caught_up.store(false, Ordering::Relaxed);
        if let Ok(mut p) = self.problem.lock() {
            match &mut *p {
                Some((text, _)) if !was_up => *text = why.to_string(),
                _ => *p = Some((why.to_string(), Timestamp::now())),
            }
        }
        if !self.logged.swap(true, Ordering::Relaxed) {
            tracing::error!(redis = %self.endpoint, error = %why, "HISTORY SHARING DOWN: deciding with this instance's history only; sightings are queued and published when Redis is back");
        }
    }

    /// What events and `/readyz` say while history is not fully shared; `None` when it is.
    pub fn problem(&self) -> Option<String> {
        if self.is_up() {
            return (!self.is_caught_up()).then(|| {
                format!(
                    "catching up with the shared history at {} ({} sightings read so far)",
                    self.endpoint,
                    self.applied.load(Ordering::Relaxed)
                )
            });
        }
        let (why, since) = self.problem.lock().ok()?.clone()?;
        Some(format!(
            "history is local to this instance: Redis at {} unreachable since {}: {why}; other instances' sightings are missing and {} of this one's are queued",
            self.endpoint,
            since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            self.queued.load(Ordering::Relaxed).max(0)
        ))
    }
}

/// A [`HistoryStore`] whose memory is shared with other instances through the Redis link.
pub struct SyncedHistory {
    local: Arc<MemoryHistory>,
    outbox: mpsc::Sender<SharedRecord>,
    throttle: Mutex<HashMap<String, (u64, Timestamp)>>,
    health: Arc<SyncHealth>,
}

impl SyncedHistory {
    /// Reads from `local`, and queues every new sighting on `outbox` for the link.
    pub fn new(
        local: Arc<MemoryHistory>,
        outbox: mpsc::Sender<SharedRecord>,
        health: Arc<SyncHealth>,
    ) -> Self {
        SyncedHistory {
            local,
            outbox,
            throttle: Mutex::new(HashMap::new()),
            health,
        }
    }

    /// Whether `rec` says something the other instances do not know yet.
    fn worth_publishing(&self, rec: &Record<'_>, now: Timestamp) -> bool {
        let print = fingerprint(rec);
        let Ok(mut seen) = self.throttle.lock() else {
            return true;
        };
        if let Some((last, at)) = seen.get_mut(rec.employee) {
            if *last == print && now.duration_since(*at) < REFRESH {
                return false;
            }
            (*last, *at) = (print, now);
            return true;
        }
        if seen.len() >= MAX_THROTTLED {
            seen.clear();
        }
        seen.insert(rec.employee.to_string(), (print, now));
        true
    }
}

/// What makes two sightings of one employee the same news: where (to about a kilometre), the
/// egress, and the day with its flags.
fn fingerprint(rec: &Record<'_>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    rec.place
        .map(|s| {
            (
                s.country,
                s.location
                    .map(|l| ((l.lat * 100.0) as i32, (l.lon * 100.0) as i32)),
            )
        })
        .hash(&mut h);
    rec.egress.hash(&mut h);
    rec.day.hash(&mut h);
    h.finish()
}

impl HistoryStore for SyncedHistory {
    fn last_place(&self, employee: &str) -> Option<Sighting> {
        self.local.last_place(employee)
    }

    fn egress_employees(&self, egress: EgressKey, since: Timestamp) -> Vec<(Arc<str>, Timestamp)> {
        self.local.egress_employees(egress, since)
    }

    fn recent_days(&self, employee: &str, n: usize) -> Vec<Day> {
        self.local.recent_days(employee, n)
    }

    fn person(&self, employee: &str, n: usize) -> (Option<Sighting>, Vec<Day>) {
        self.local.person(employee, n)
    }

    fn record(&self, rec: Record<'_>) {
        self.local.record(rec);
        if !self.worth_publishing(&rec, Timestamp::now()) {
            self.health.unchanged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.outbox.try_send(SharedRecord::from_record(&rec)) {
            Ok(()) => {
                self.health.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.health.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intel::LatLon;

    fn rec<'a>(who: &'a str, lat: f64, t: &str) -> Record<'a> {
        Record {
            employee: who,
            place: Some(Sighting {
                at: t.parse().unwrap(),
                country: None,
                location: Some(LatLon { lat, lon: 0.0 }),
                accuracy_km: 1.0,
            }),
            egress: None,
            day: None,
        }
    }

    #[test]
    fn publishes_news_and_refreshes_but_not_repeats() {
        let (tx, mut rx) = mpsc::channel(16);
        let health = Arc::new(SyncHealth::new("test".into()));
        let h = SyncedHistory::new(Arc::new(MemoryHistory::new()), tx, health.clone());
        let t0: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let r = rec("ann", 10.0, "2026-11-25T10:00:00Z");
        assert!(h.worth_publishing(&r, t0));
        assert!(!h.worth_publishing(&r, t0 + SignedDuration::from_secs(60)));
        assert!(h.worth_publishing(&rec("ann", 20.0, "2026-11-25T10:02:00Z"), t0));
        assert!(h.worth_publishing(&rec("bob", 20.0, "2026-11-25T10:02:00Z"), t0));
        assert!(h.worth_publishing(
            &rec("bob", 20.0, "2026-11-25T10:08:00Z"),
            t0 + SignedDuration::from_secs(301)
        ));
        // Every record lands locally at once, whatever is published.
        h.record(r);
        h.record(r);
        assert_eq!(h.last_place("ann"), r.place);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err(), "the repeat was not queued");
        assert_eq!(health.unchanged.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_full_queue_drops_and_counts_but_never_blocks() {
        let (tx, _rx) = mpsc::channel(1);
        let health = Arc::new(SyncHealth::new("test".into()));
        let h = SyncedHistory::new(Arc::new(MemoryHistory::new()), tx, health.clone());
        h.record(rec("ann", 1.0, "2026-11-25T10:00:00Z"));
        h.record(rec("bob", 1.0, "2026-11-25T10:00:00Z"));
        assert_eq!(health.dropped.load(Ordering::Relaxed), 1);
        assert!(h.last_place("bob").is_some());
    }

    #[test]
    fn problem_names_endpoint_and_cause_and_clears_on_connect() {
        let health = SyncHealth::new("127.0.0.1:6379".into());
        health.failed("connection refused");
        let p = health.problem().unwrap();
        assert!(
            p.contains("127.0.0.1:6379") && p.contains("connection refused"),
            "{p}"
        );
        health.connected();
        assert!(health.problem().unwrap().contains("catching up"));
        health.caught_up(true);
        assert_eq!(health.problem(), None);
    }
}
