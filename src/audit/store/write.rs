//! Writing: the writer thread's batches (one transaction each, ids already present skipped)
//! and the retention pruning it runs. The only code that adds or deletes events.

use rusqlite::params;

use super::clock::now_ms;
use super::error::{Result, StoreError};
use super::open::Store;
use super::row::Row;
use crate::audit::event::Event;

/// Why a batch was not (wholly) kept.
#[derive(Debug)]
pub enum SinkError {
    /// Nothing of the batch was kept; trying again may work (a reader held a lock).
    Failed(String),
    /// `lost` events of the batch are gone for good and the rest is kept (the PostgreSQL spool
    /// was full): trying again would keep the rest twice and count the loss twice.
    Partial {
        /// How many events were not kept.
        lost: usize,
        /// Why.
        why: String,
    },
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::Failed(why) | SinkError::Partial { why, .. } => f.write_str(why),
        }
    }
}

/// Where the writer thread puts batches: the SQLite store, or a test double.
pub trait EventSink: Send {
    /// Writes a batch: all of it, none of it ([`SinkError::Failed`]), or all but what is lost
    /// for good ([`SinkError::Partial`]).
    fn write_batch(&mut self, events: &[Box<Event>]) -> std::result::Result<(), SinkError>;
    /// Deletes events older than the retention period; returns how many went.
    fn prune(&mut self) -> std::result::Result<usize, String> {
        Ok(0)
    }
    /// Called about once a second, also when no events come: a sink with work of its own
    /// (the PostgreSQL spool waiting for the database) does it here.
    fn tick(&mut self) {}
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
                     ip, country, asn, as_org, lat, lon, accuracy_km, anonymizer, listener, message,
                     json, instance, egress, verified)
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)",
                )
                .map_err(sq)?;
            for e in events {
                let r = Row::of(e.borrow());
                stmt.execute(params![
                    r.id,
                    r.ts_ms,
                    r.timestamp,
                    r.action,
                    r.reasons,
                    r.employee,
                    r.ip,
                    r.country,
                    r.asn,
                    r.as_org,
                    r.lat,
                    r.lon,
                    r.accuracy_km,
                    r.anonymizer,
                    r.listener,
                    r.message,
                    r.json,
                    r.instance,
                    r.egress,
                    r.verified,
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
        let n = self
            .conn
            .execute("DELETE FROM events WHERE ts_ms < ?1", [cutoff])
            .map_err(|e| self.sq(e))?;
        // The day rollup's rows of the days whose events are gone go too.
        super::rollup::prune(self, cutoff)?;
        Ok(n)
    }
}

impl EventSink for Store {
    fn write_batch(&mut self, events: &[Box<Event>]) -> std::result::Result<(), SinkError> {
        self.insert(events)
            .map_err(|e| SinkError::Failed(e.to_string()))
    }
    fn prune(&mut self) -> std::result::Result<usize, String> {
        self.prune_now().map_err(|e| e.to_string())
    }
}
