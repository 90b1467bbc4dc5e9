//! Writing: the writer thread's batches (one transaction each, ids already present skipped)
//! and the retention pruning it runs. The only code that adds or deletes events.

use rusqlite::params;

use super::clock::{now_ms, parse_ts_ms};
use super::error::{Result, StoreError};
use super::open::Store;
use crate::audit::event::Event;

/// Where the writer thread puts batches: the SQLite store, or a test double.
pub trait EventSink: Send {
    /// Writes a batch; all or nothing.
    fn write_batch(&mut self, events: &[Box<Event>]) -> std::result::Result<(), String>;
    /// Deletes events older than the retention period; returns how many went.
    fn prune(&mut self) -> std::result::Result<usize, String> {
        Ok(0)
    }
}

impl Store {
    /// Inserts events in one transaction; an id already present is skipped (a replay after a
    /// crash must not duplicate).
    pub fn insert<E: std::borrow::Borrow<Event>>(&mut self, events: &[E]) -> Result<()> {
        let path = self.path.clone();
        let sq = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sq)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO events (id, ts_ms, timestamp, action, reasons, employee,
                     ip, country, asn, as_org, lat, lon, accuracy_km, anonymizer, listener, message, json)
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)",
                )
                .map_err(sq)?;
            for e in events {
                let e: &Event = e.borrow();
                let json = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
                let reasons = if e.event.reason.is_empty() {
                    String::new()
                } else {
                    format!(",{},", e.event.reason.join(","))
                };
                let a = &e.locgate.anonymizer;
                let anon = a.anonymous_vpn
                    || a.hosting_provider
                    || a.tor_exit
                    || a.public_proxy
                    || a.residential_proxy
                    || a.relay;
                let loc = e.source.geo.location;
                stmt.execute(params![
                    e.event.id,
                    parse_ts_ms(&e.timestamp).unwrap_or(0),
                    e.timestamp,
                    e.event.action.as_str(),
                    reasons,
                    e.user.as_ref().map(|u| u.employee()),
                    e.source.ip.to_string(),
                    e.source.geo.country_iso_code,
                    e.source.autonomous_system.as_ref().map(|a| a.number),
                    e.source
                        .autonomous_system
                        .as_ref()
                        .and_then(|a| a.organization.as_ref())
                        .map(|o| o.name.as_str()),
                    loc.map(|l| l.lat),
                    loc.map(|l| l.lon),
                    e.locgate.accuracy_radius_km,
                    anon,
                    e.locgate.listener,
                    e.message,
                    json,
                ])
                .map_err(sq)?;
            }
        }
        tx.commit().map_err(sq)
    }

    /// Deletes events older than the retention period.
    pub fn prune_now(&mut self) -> Result<usize> {
        let Some(keep) = self.retention else {
            return Ok(0);
        };
        let cutoff = now_ms() - keep.as_millis() as i64;
        self.conn
            .execute("DELETE FROM events WHERE ts_ms < ?1", [cutoff])
            .map_err(|e| self.sq(e))
    }
}

impl EventSink for Store {
    fn write_batch(&mut self, events: &[Box<Event>]) -> std::result::Result<(), String> {
        self.insert(events).map_err(|e| e.to_string())
    }
    fn prune(&mut self) -> std::result::Result<usize, String> {
        self.prune_now().map_err(|e| e.to_string())
    }
}
