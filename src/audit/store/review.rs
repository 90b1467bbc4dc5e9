//! Reviewing: listing stored events by filter, newest first, a page at a time, each with its
//! acknowledgement. Every filter value is a bound parameter: they come from the network (admin
//! API) and the command line.

use rusqlite::params_from_iter;
use rusqlite::types::Value as V;
use serde::Serialize;

use super::ack::Ack;
use super::error::{Result, StoreError};
use super::open::Store;
use super::row::Row;

impl Store {
    /// Events matching `f`, newest first, at most `f.limit`; with the cursor for the next page.
    pub fn query(&self, f: &Filter) -> Result<Page> {
        let limit = f.limit.clamp(1, 1000);
        let (sql, args) = filter_sql(
            f,
            limit,
            Dialect::Sqlite {
                instance: self.has_instance,
            },
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sq(e))?;
        let rows = stmt
            .query_map(params_from_iter(args), stored_event)
            .map_err(|e| self.sq(e))?;
        let rows = rows
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.sq(e))?;
        Ok(Page::of_rows(rows, limit))
    }

    /// Number of events stored.
    pub fn count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(|e| self.sq(e))
    }
}

/// The SQL spoken to: the two stores differ in placeholders, case folding and where a tunnel's
/// close event is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// SQLite; `instance` only from schema version 2 on (a read-only open cannot migrate).
    Sqlite {
        /// Whether the file has the `instance` column.
        instance: bool,
    },
    /// PostgreSQL.
    Postgres,
}

/// The listing SQL for `f` and its parameters, asking for one row more than `limit` (so the
/// caller knows whether there is a next page). Columns as [`stored_event`] reads them.
pub(super) fn filter_sql(f: &Filter, limit: usize, dialect: Dialect) -> (String, Vec<V>) {
    let pg = dialect == Dialect::Postgres;
    let instance = match dialect {
        Dialect::Sqlite { instance: false } => "NULL",
        _ => "e.instance",
    };
    let mut sql = format!(
        "SELECT e.seq, e.id, e.timestamp, e.action, e.reasons, e.employee, e.ip, e.country,
                    e.asn, e.as_org, e.lat, e.lon, e.accuracy_km, e.anonymizer, e.listener,
                    e.message, a.reviewer, a.note, a.at, {instance}
             FROM events e LEFT JOIN acks a ON a.event_id = e.id WHERE 1=1"
    );
    let mut args: Vec<V> = Vec::new();
    // The next placeholder, its value bound.
    let bind = |v: V, args: &mut Vec<V>| {
        args.push(v);
        if pg {
            format!("${}", args.len())
        } else {
            "?".to_owned()
        }
    };
    if let Some(emp) = &f.employee {
        let p = bind(V::Text(emp.clone()), &mut args);
        if pg {
            sql.push_str(&format!(" AND lower(e.employee) = lower({p})"));
        } else {
            sql.push_str(&format!(" AND e.employee = {p} COLLATE NOCASE"));
        }
    }
    if let Some(list) = &f.employees {
        let marks: Vec<String> = list
            .iter()
            .map(|e| bind(V::Text(e.to_lowercase()), &mut args))
            .collect();
        if marks.is_empty() {
            sql.push_str(" AND 1=0");
        } else {
            sql.push_str(&format!(" AND lower(e.employee) IN ({})", marks.join(", ")));
        }
    }
    if let Some(egress) = &f.egress {
        let p = bind(V::Text(egress.clone()), &mut args);
        sql.push_str(&format!(" AND e.egress = {p}"));
    }
    if let Some(since) = f.since_ms {
        let p = bind(V::Integer(since), &mut args);
        sql.push_str(&format!(" AND e.ts_ms >= {p}"));
    }
    if let Some(action) = &f.action {
        let p = bind(V::Text(action.clone()), &mut args);
        sql.push_str(&format!(" AND e.action = {p}"));
    }
    if let Some(reason) = &f.reason {
        let p = bind(V::Text(format!("%,{reason},%")), &mut args);
        sql.push_str(&format!(" AND e.reasons LIKE {p}"));
    }
    match f.acked {
        Some(true) => sql.push_str(" AND a.event_id IS NOT NULL"),
        Some(false) => sql.push_str(" AND a.event_id IS NULL"),
        None => {}
    }
    if f.mismatches_only {
        // A tunnel's close event repeats its connect event's verdict: one item to review.
        sql.push_str(if pg {
            " AND e.action <> 'allow' AND NOT e.tunnel_close"
        } else {
            " AND e.action <> 'allow' AND json_extract(e.json, '$.locgate.tunnel') IS NULL"
        });
    }
    if let Some(before) = f.before {
        let p = bind(V::Integer(before), &mut args);
        sql.push_str(&format!(" AND e.seq < {p}"));
    }
    let p = bind(V::Integer(limit as i64 + 1), &mut args);
    sql.push_str(&format!(" ORDER BY e.seq DESC LIMIT {p}"));
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
            reasons: Row::reason_codes(&reasons),
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
            instance: r.get(19)?,
        },
    ))
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this employee (case-insensitive).
    pub employee: Option<String>,
    /// Only these employees (lower case; a case's members), when given.
    pub employees: Option<Vec<String>>,
    /// Only this egress (an egress case's subject: an IPv4 address or an IPv6 /64).
    pub egress: Option<String>,
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

impl Page {
    /// The page from the listing's rows (sequence number, event), of which there may be one
    /// more than `limit`: then the last one shown is the cursor for the next page.
    pub(super) fn of_rows(rows: Vec<(i64, StoredEvent)>, limit: usize) -> Page {
        let more = rows.len() > limit;
        let mut next = None;
        let mut events = Vec::with_capacity(rows.len().min(limit));
        for (seq, ev) in rows.into_iter().take(limit) {
            next = Some(seq);
            events.push(ev);
        }
        Page {
            events,
            next: next.filter(|_| more).map(|s| s.to_string()),
        }
    }
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
    /// The instance that saw it (`observer.name`); none in stores written before it was kept.
    #[serde(default)]
    pub instance: Option<String>,
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
