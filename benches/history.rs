//! What history costs the request path: one decision's reads plus its record, in memory alone
//! and in the fleet store (the same reads; the record also fingerprinted and queued for Redis).
//! Redis itself is not involved: the request path never waits on it (see ARCHITECTURE.md).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use locgate::history::synced::{SyncHealth, SyncedHistory};
use locgate::history::{Day, EgressKey, HistoryStore, MemoryHistory, Record, Sighting};
use locgate::intel::LatLon;

const EMPLOYEES: usize = 1000;

/// The reads `decide` makes (with history), then the record it writes.
fn one_decision(h: &dyn HistoryStore, who: &str, ip: u32, at: Timestamp, lat: f64) {
    let place = Sighting {
        at,
        country: None,
        location: Some(LatLon { lat, lon: -97.7 }),
        accuracy_km: 20.0,
    };
    let egress = EgressKey::V4(ip);
    black_box(h.last_place(who));
    black_box(h.egress_employees(egress, at - SignedDuration::from_hours(24 * 14)));
    black_box(h.recent_days(who, 14));
    h.record(Record {
        employee: who,
        place: Some(place),
        egress: Some(egress),
        day: Some(Day {
            date: jiff::tz::TimeZone::UTC.to_datetime(at).date(),
            home: true,
            placed: true,
            night: false,
        }),
    });
}

fn stores() -> Vec<(&'static str, Arc<dyn HistoryStore>)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(100_000);
    // The link's side: drain the queue as the Redis task would.
    std::thread::spawn(move || while rx.blocking_recv().is_some() {});
    vec![
        ("memory", Arc::new(MemoryHistory::new())),
        (
            "shared",
            Arc::new(SyncedHistory::new(
                Arc::new(MemoryHistory::new()),
                tx,
                Arc::new(SyncHealth::new("bench".into())),
            )),
        ),
    ]
}

fn history(c: &mut Criterion) {
    let names: Vec<String> = (0..EMPLOYEES).map(|i| format!("e{i:05}")).collect();
    let t0 = Timestamp::now();
    for (label, store) in stores() {
        // The common case: the same people signing in again from the same place.
        c.bench_function(&format!("history {label}: repeat sign-in"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % EMPLOYEES;
                one_decision(&*store, &names[i], i as u32, t0, 30.2);
            })
        });
        // Every sign-in news (a new place each time): the shared store queues each one.
        c.bench_function(&format!("history {label}: new place every time"), |b| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                let n = (i as usize) % EMPLOYEES;
                let lat = 20.0 + (i % 4000) as f64 / 100.0;
                one_decision(&*store, &names[n], n as u32, t0, lat);
            })
        });
    }
}

criterion_group!(benches, history);
criterion_main!(benches);
