//! Reviewing: listing stored events by filter, newest first, a page at a time, each with its
//! acknowledgement. Every filter value is a bound parameter: they come from the network (admin
//! API) and the command line.

use rusqlite::params_from_iter;
use rusqlite::types::Value as V;
use serde::Serialize;

use super::ack::Ack;
use super::error::{Result, StoreError};
use super::open::Store;

impl Store {
    /// Events matching `f`, newest first, at most `f.limit`; with the cursor for the next page.
    pub fn query(&self, f: &Filter) -> Result<Page> {
        let limit = f.limit.clamp(1, 1000);
        let (sql, args) = filter_sql(f, limit);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sq(e))?;
        let rows = stmt
            .query_map(params_from_iter(args), stored_event)
            .map_err(|e| self.sq(e))?;
        let mut events = Vec::new();
        let mut seqs = Vec::new();
        for row in rows {
            let (seq, ev) = row.map_err(|e| self.sq(e))?;
            seqs.push(seq);
            events.push(ev);
        }
        let next = if events.len() > limit {
            events.truncate(limit);
            seqs.get(limit - 1).map(|s| s.to_string())
        } else {
            None
        };
        Ok(Page { events, next })
    }

    /// Number of events stored.
    pub fn count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(|e| self.sq(e))
    }
}

/// The listing SQL for `f` and its parameters, asking for one row more than `limit` (so the
/// caller knows whether there is a next page).
fn filter_sql(f: &Filter, limit: usize) -> (String, Vec<V>) {
    let mut sql = String::from(
        "SELECT e.seq, e.id, e.timestamp, e.action, e.reasons, e.employee, e.ip, e.country,
                    e.asn, e.as_org, e.lat, e.lon, e.accuracy_km, e.anonymizer, e.listener,
                    e.message, a.reviewer, a.note, a.at
             FROM events e LEFT JOIN acks a ON a.event_id = e.id WHERE 1=1",
    );
    let mut args: Vec<V> = Vec::new();
    if let Some(emp) = &f.employee {
        sql.push_str(" AND e.employee = ? COLLATE NOCASE");
        args.push(V::Text(emp.clone()));
    }
    if let Some(since) = f.since_ms {
        sql.push_str(" AND e.ts_ms >= ?");
        args.push(V::Integer(since));
    }
    if let Some(action) = &f.action {
        sql.push_str(" AND e.action = ?");
        args.push(V::Text(action.clone()));
    }
    if let Some(reason) = &f.reason {
        sql.push_str(" AND e.reasons LIKE ?");
        args.push(V::Text(format!("%,{reason},%")));
    }
    match f.acked {
        Some(true) => sql.push_str(" AND a.event_id IS NOT NULL"),
        Some(false) => sql.push_str(" AND a.event_id IS NULL"),
        None => {}
    }
    if f.mismatches_only {
        // A tunnel's close event repeats its connect event's verdict: one item to review.
        sql.push_str(
            " AND e.action <> 'allow' AND json_extract(e.json, '$.locgate.tunnel') IS NULL",
        );
    }
    if let Some(before) = f.before {
        sql.push_str(" AND e.seq < ?");
        args.push(V::Integer(before));
    }
    sql.push_str(" ORDER BY e.seq DESC LIMIT ?");
    args.push(V::Integer(limit as i64 + 1));
    (sql, args)
}

/// One row of the listing: its sequence number (the cursor) and the event.
fn stored_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, StoredEvent)> {
    let reasons: String = r.get(4)?;
    let reviewer: Option<String> = r.get(16)?;
    Ok((
        r.get::<_, i64>(0)?,
        StoredEvent {
            id: r.get(1)?,
            timestamp: r.get(2)?,
            action: r.get(3)?,
            reasons: reasons
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            employee: r.get(5)?,
            ip: r.get(6)?,
            country: r.get(7)?,
            asn: r.get(8)?,
            as_org: r.get(9)?,
            lat: r.get(10)?,
            lon: r.get(11)?,
            accuracy_km: r.get(12)?,
            anonymizer: r.get(13)?,
            listener: r.get(14)?,
            message: r.get(15)?,
            ack: match reviewer {
                Some(reviewer) => Some(Ack {
                    reviewer,
                    note: r.get(17)?,
                    at: r.get(18)?,
                }),
                None => None,
            },
        },
    ))
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this employee (case-insensitive).
    pub employee: Option<String>,
    /// Only events at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// `allow`, `flag` or `block`.
    pub action: Option<String>,
    /// A reason code.
    pub reason: Option<String>,
    /// Only acknowledged (`Some(true)`) or open (`Some(false)`) events.
    pub acked: Option<bool>,
    /// Leave out allows (the review page lists mismatches).
    pub mismatches_only: bool,
    /// Cursor: only events older than this sequence number.
    pub before: Option<i64>,
    /// Page size (1..=1000).
    pub limit: usize,
}

impl Filter {
    /// Checks filter values from outside, so a typo is an error rather than an empty list.
    pub fn validate(&self) -> Result<()> {
        if let Some(a) = &self.action
            && crate::policy::Action::from_name(a).is_none()
        {
            return Err(StoreError::Invalid(format!(
                "action `{a}` is not one of {}",
                crate::policy::Action::NAMES.join(", ")
            )));
        }
        if let Some(r) = &self.reason
            && (r.is_empty() || !r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            return Err(StoreError::Invalid(format!("`{r}` is not a reason code")));
        }
        Ok(())
    }

    /// Parses a cursor from the API.
    pub fn parse_cursor(s: &str) -> Result<i64> {
        s.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| StoreError::Invalid(format!("cursor `{s}` is not valid")))
    }
}

/// One page of events.
#[derive(Debug, Serialize)]
pub struct Page {
    /// The events, newest first.
    pub events: Vec<StoredEvent>,
    /// Cursor for the next (older) page, if there is one.
    pub next: Option<String>,
}

/// An event as the review tools show it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StoredEvent {
    /// Event id (the block page's reference).
    pub id: String,
    /// RFC 3339 time.
    pub timestamp: String,
    /// allow / flag / block.
    pub action: String,
    /// Reason codes.
    pub reasons: Vec<String>,
    /// Employee id.
    pub employee: Option<String>,
    /// Client address.
    pub ip: String,
    /// Country code.
    pub country: Option<String>,
    /// AS number.
    pub asn: Option<u32>,
    /// AS organisation.
    pub as_org: Option<String>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// Accuracy radius.
    pub accuracy_km: Option<f64>,
    /// Whether any anonymizer flag was set.
    pub anonymizer: bool,
    /// Listener.
    pub listener: String,
    /// Reason sentences.
    pub message: String,
    /// The acknowledgement, if reviewed.
    pub ack: Option<Ack>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_rejects_bad_values() {
        let f = Filter {
            action: Some("drop".into()),
            ..Filter::default()
        };
        assert!(f.validate().is_err());
        let f = Filter {
            reason: Some("x' OR 1=1".into()),
            ..Filter::default()
        };
        assert!(f.validate().is_err());
        assert!(Filter::parse_cursor("-1").is_err());
        assert_eq!(Filter::parse_cursor("42").ok(), Some(42));
    }
}
