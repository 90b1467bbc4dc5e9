//! Reading and writing the shared store: the same jobs the SQLite store's modules do (insert a
//! batch, list by filter, acknowledge, report, prune), in PostgreSQL's dialect. The filters and
//! the report's ranking are shared with SQLite; only the SQL and the row reading live here.

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use rusqlite::types::Value as V;

use super::super::ack::Ack;
use super::super::error::{Result, StoreError};
use super::super::report::{DAY_MARGIN_MS, EmployeeSummary, ReportRow, rank, ranked, report_sql};
use super::super::review::{Dialect, Filter, Page, StoredEvent, filter_sql};
use super::super::rollup::{Ask, PG_SETTLE, Rolled, prune, roll_up, rolled_report};
use super::super::row::Row;
use super::PgStore;
use crate::audit::event::timestamp_now;
use crate::employees::Directory;

/// The batch insert: one statement for any batch size (arrays, one per column), ids already
/// present skipped, so a spool replayed twice or a batch retried after a lost reply adds
/// nothing twice.
const INSERT: &str = "INSERT INTO events (id, ts_ms, timestamp, action, reasons, employee, ip,
        country, asn, as_org, lat, lon, accuracy_km, anonymizer, listener, message, instance,
        tunnel_close, json, egress, verified)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::float8[],
        $12::float8[], $13::float8[], $14::bool[], $15::text[], $16::text[], $17::text[],
        $18::bool[], $19::text[], $20::text[], $21::bool[])
    ON CONFLICT (id) DO NOTHING";

/// Rows deleted per statement when pruning: short transactions beside the writers.
const PRUNE_BATCH: i64 = 10_000;

impl PgStore {
    /// Inserts rows in one statement; returns how many were new.
    pub fn insert(&mut self, rows: &[Row]) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        macro_rules! col {
            ($f:expr) => {
                rows.iter().map($f).collect::<Vec<_>>()
            };
        }
        let id = col!(|r| r.id.as_str());
        let ts = col!(|r| r.ts_ms);
        let timestamp = col!(|r| r.timestamp.as_str());
        let action = col!(|r| r.action.as_str());
        let reasons = col!(|r| r.reasons.as_str());
        let employee = col!(|r| r.employee.as_deref());
        let ip = col!(|r| r.ip.as_str());
        let country = col!(|r| r.country.as_deref());
        let asn = col!(|r| r.asn.map(i64::from));
        let as_org = col!(|r| r.as_org.as_deref());
        let lat = col!(|r| r.lat);
        let lon = col!(|r| r.lon);
        let accuracy = col!(|r| r.accuracy_km);
        let anonymizer = col!(|r| r.anonymizer);
        let listener = col!(|r| r.listener.as_str());
        let message = col!(|r| r.message.as_str());
        let instance = col!(|r| r.instance.as_deref());
        let tunnel_close = col!(|r| r.tunnel_close);
        let json = col!(|r| r.json.as_str());
        let egress = col!(|r| r.egress.as_deref());
        let verified = col!(|r| r.verified);
        let params: [&(dyn ToSql + Sync); 21] = [
            &id,
            &ts,
            &timestamp,
            &action,
            &reasons,
            &employee,
            &ip,
            &country,
            &asn,
            &as_org,
            &lat,
            &lon,
            &accuracy,
            &anonymizer,
            &listener,
            &message,
            &instance,
            &tunnel_close,
            &json,
            &egress,
            &verified,
        ];
        self.client.execute(INSERT, &params).map_err(|e| self.pg(e))
    }

    /// Deletes events older than `cutoff_ms`, a batch at a time; returns how many went.
    pub fn prune_before(&mut self, cutoff_ms: i64) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self
                .client
                .execute(
                    "DELETE FROM events WHERE seq IN
                       (SELECT seq FROM events WHERE ts_ms < $1 LIMIT $2)",
                    &[&cutoff_ms, &PRUNE_BATCH],
                )
                .map_err(|e| self.pg(e))?;
            total += n as usize;
            if n < PRUNE_BATCH as u64 {
                prune(self, cutoff_ms)?;
                return Ok(total);
            }
        }
    }

    /// Events matching `f`, newest first, at most `f.limit`; with the cursor for the next page.
    pub fn query(&mut self, f: &Filter) -> Result<Page> {
        let limit = f.limit.clamp(1, 1000);
        let (sql, args) = filter_sql(f, limit, Dialect::Postgres);
        let args: Vec<Box<dyn ToSql + Sync>> = args
            .into_iter()
            .map(|v| match v {
                V::Integer(i) => Box::new(i) as Box<dyn ToSql + Sync>,
                V::Text(t) => Box::new(t),
                V::Real(r) => Box::new(r),
                V::Null => Box::new(Option::<String>::None),
                V::Blob(b) => Box::new(b),
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref()).collect();
        let rows = self.client.query(&sql, &refs).map_err(|e| self.pg(e))?;
        let rows = rows
            .iter()
            .map(stored_event)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.pg(e))?;
        Ok(Page::of_rows(rows, limit))
    }

    /// Number of events stored.
    pub fn count(&mut self) -> Result<u64> {
        let n: i64 = self
            .client
            .query_one("SELECT count(*) FROM events", &[])
            .map_err(|e| self.pg(e))?
            .get(0);
        Ok(n.max(0) as u64)
    }

    /// Whether every event came from a replay (none from a listener); not when empty.
    pub fn only_replayed(&mut self) -> Result<bool> {
        // A gateway's event is found at once; asked first, the other question (a scan of the
        // whole table when it has no replayed event: 30 s at 50 million events) is never asked.
        let exists = |s: &mut Self, sql: &str| -> Result<bool> {
            let row = s.client.query_one(sql, &[]).map_err(|e| s.pg(e))?;
            Ok(row.get::<_, bool>(0))
        };
        if exists(
            self,
            "SELECT EXISTS(SELECT 1 FROM events WHERE listener <> 'replay')",
        )? {
            return Ok(false);
        }
        exists(
            self,
            "SELECT EXISTS(SELECT 1 FROM events WHERE listener = 'replay')",
        )
    }

    /// The first and last event time (ms since the epoch), `None` for an empty store.
    pub fn span_ms(&mut self) -> Result<Option<(i64, i64)>> {
        let row = self
            .client
            .query_one("SELECT min(ts_ms), max(ts_ms) FROM events", &[])
            .map_err(|e| self.pg(e))?;
        Ok(row
            .get::<_, Option<i64>>(0)
            .zip(row.get::<_, Option<i64>>(1)))
    }

    /// Records a reviewer's acknowledgement (replacing an earlier one for the same event).
    pub fn ack(&mut self, id: &str, reviewer: &str, note: &str) -> Result<Ack> {
        let at = timestamp_now();
        // One statement: the event must exist (a concurrent prune cannot slip in between).
        let n = self
            .client
            .execute(
                "INSERT INTO acks (event_id, reviewer, note, at)
                 SELECT id, $2, $3, $4 FROM events WHERE id = $1
                 ON CONFLICT (event_id) DO UPDATE SET reviewer = excluded.reviewer,
                 note = excluded.note, at = excluded.at",
                &[&id, &reviewer, &note, &at],
            )
            .map_err(|e| self.pg(e))?;
        if n == 0 {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        Ok(Ack {
            reviewer: reviewer.to_owned(),
            note: note.to_owned(),
            at,
        })
    }

    /// Per-employee summary since `since_ms` (of one employee when `only` names one),
    /// employees with the most evidence first, over whole days (see `Store::report`): from the
    /// day rollup when it is near enough to current, else from the events.
    pub fn report(
        &mut self,
        since_ms: i64,
        dir: Option<&Directory>,
        only: Option<&str>,
    ) -> Result<Vec<EmployeeSummary>> {
        let ask = Ask {
            since_ms,
            dir,
            only,
            writable: true,
            settle: PG_SETTLE,
        };
        if let Some(by) = rolled_report(self, &ask)? {
            return Ok(ranked(by));
        }
        self.report_from_events(since_ms, dir, only)
    }

    /// Sums the events after the rollup's watermark (at most `max_events`, the newest
    /// [`PG_SETTLE`] left for later) into the day rollup.
    pub fn roll_up(&mut self, dir: Option<&Directory>, max_events: i64) -> Result<Rolled> {
        roll_up(self, dir, max_events, PG_SETTLE)
    }

    /// [`PgStore::report`] from the events themselves (streamed, not loaded at once; the day
    /// rollup not used): what the rollup must equal, for checks and measurements.
    pub fn report_from_events(
        &mut self,
        since_ms: i64,
        dir: Option<&Directory>,
        only: Option<&str>,
    ) -> Result<Vec<EmployeeSummary>> {
        let label = self.label.clone();
        let pg = |source| StoreError::Postgres {
            target: label.clone(),
            source,
        };
        let sql = report_sql(only.is_some(), "$1", "lower(employee) = lower($2)");
        let from = since_ms.saturating_sub(DAY_MARGIN_MS);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from];
        if let Some(who) = &only {
            params.push(who);
        }
        let mut it = self.client.query_raw(&sql, params).map_err(pg)?;
        let rows = std::iter::from_fn(|| match it.next() {
            Ok(Some(r)) => Some(report_row(&r).map_err(pg)),
            Ok(None) => None,
            Err(e) => Some(Err(pg(e))),
        });
        rank(rows, dir, since_ms)
    }
}

/// One row of the listing (columns as `filter_sql` selects them).
fn stored_event(r: &postgres::Row) -> std::result::Result<(i64, StoredEvent), postgres::Error> {
    let reasons: String = r.try_get(4)?;
    let reviewer: Option<String> = r.try_get(16)?;
    Ok((
        r.try_get(0)?,
        StoredEvent {
            id: r.try_get(1)?,
            timestamp: r.try_get(2)?,
            action: r.try_get(3)?,
            reasons: Row::reason_codes(&reasons),
            employee: r.try_get(5)?,
            ip: r.try_get(6)?,
            country: r.try_get(7)?,
            asn: r
                .try_get::<_, Option<i64>>(8)?
                .and_then(|a| u32::try_from(a).ok()),
            as_org: r.try_get(9)?,
            lat: r.try_get(10)?,
            lon: r.try_get(11)?,
            accuracy_km: r.try_get(12)?,
            anonymizer: r.try_get(13)?,
            listener: r.try_get(14)?,
            message: r.try_get(15)?,
            ack: match reviewer {
                Some(reviewer) => Some(Ack {
                    reviewer,
                    note: r.try_get(17)?,
                    at: r.try_get(18)?,
                }),
                None => None,
            },
            instance: r.try_get(19)?,
        },
    ))
}

/// One row of the report query (columns as [`REPORT_COLUMNS`]).
fn report_row(r: &postgres::Row) -> std::result::Result<ReportRow, postgres::Error> {
    Ok(ReportRow {
        employee: r.try_get(0)?,
        timestamp: r.try_get(1)?,
        action: r.try_get(2)?,
        reasons: r.try_get(3)?,
        country: r.try_get(4)?,
        asn: r
            .try_get::<_, Option<i64>>(5)?
            .and_then(|a| u32::try_from(a).ok()),
        as_org: r.try_get(6)?,
        lat: r.try_get(7)?,
        lon: r.try_get(8)?,
        anonymizer: r.try_get(9)?,
        message: r.try_get(10)?,
        json: r.try_get(11)?,
        ip: r.try_get(12)?,
        accuracy_km: r.try_get(13)?,
        seq: r.try_get(14)?,
        ts_ms: r.try_get(15)?,
    })
}
