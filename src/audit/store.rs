//! The event store: SQLite (WAL) next to the JSON lines file, so IT can query, review and
//! acknowledge events instead of grepping a SIEM feed.
//!
//! Only the writer thread inserts (in one transaction per batch), so the request path never
//! touches the database. Readers (the CLI, the admin API) open their own connections; WAL lets
//! them read while the writer writes. The schema is versioned with `PRAGMA user_version` and
//! migrated by the program itself on open, so an upgrade needs no manual step.
//!
//! Every query is parameterised: filter values come from the network (admin API) and the
//! command line.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params, params_from_iter};
use serde::Serialize;

use super::Event;
use crate::employees::Directory;
use crate::intel::LatLon;

/// Migrations, in order; `user_version` is the number applied so far.
const MIGRATIONS: &[&str] = &[
    // 1: events and acknowledgements.
    "CREATE TABLE events (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        id         TEXT NOT NULL UNIQUE,
        ts_ms      INTEGER NOT NULL,
        timestamp  TEXT NOT NULL,
        action     TEXT NOT NULL,
        reasons    TEXT NOT NULL,      -- ',code,code,' so one LIKE finds one code
        employee   TEXT,
        ip         TEXT NOT NULL,
        country    TEXT,
        asn        INTEGER,
        as_org     TEXT,
        lat        REAL,
        lon        REAL,
        accuracy_km REAL,
        anonymizer INTEGER NOT NULL,  -- 1 when any anonymizer flag was set
        listener   TEXT NOT NULL,
        message    TEXT NOT NULL,
        json       TEXT NOT NULL
     );
     CREATE INDEX events_ts ON events(ts_ms);
     CREATE INDEX events_employee ON events(employee, ts_ms);
     CREATE TABLE acks (
        event_id TEXT PRIMARY KEY REFERENCES events(id) ON DELETE CASCADE,
        reviewer TEXT NOT NULL,
        note     TEXT NOT NULL,
        at       TEXT NOT NULL
     );",
];

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no (corrupt file, locked, disk full...).
    #[error("event store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file was written by a newer locgate.
    #[error("event store {0}: schema version {1} is newer than this program knows ({2})")]
    TooNew(String, i64, usize),
    /// Bad filter or argument.
    #[error("{0}")]
    Invalid(String),
    /// No such event.
    #[error("no event with id `{0}`")]
    NotFound(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// Where the writer thread puts batches: the SQLite store, or a test double.
pub trait EventSink: Send {
    /// Writes a batch; all or nothing.
    fn write_batch(&mut self, events: &[Box<Event>]) -> std::result::Result<(), String>;
    /// Deletes events older than the retention period; returns how many went.
    fn prune(&mut self) -> std::result::Result<usize, String> {
        Ok(0)
    }
}

/// An open event database.
pub struct Store {
    conn: Connection,
    path: String,
    retention: Option<Duration>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database for writing.
    pub fn open(path: &Path, retention_days: Option<u32>) -> Result<Store> {
        let label = path.display().to_string();
        let sq = |source| StoreError::Sqlite {
            path: label.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(sq)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sq)?;
        // journal_mode returns a row; WAL lets readers work while the writer writes, and
        // synchronous=NORMAL in WAL survives a process crash (kill -9) without losing commits.
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(sq)?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(sq)?;
        // A corrupt file must be found now, at start, not on the first insert.
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sq)?;
        if check != "ok" {
            return Err(StoreError::Invalid(format!(
                "event store {label}: integrity check failed: {check}"
            )));
        }
        migrate(&conn, &label)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Events name people: not world-readable.
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640));
        }
        Ok(Store {
            conn,
            path: label,
            retention: retention_days.map(|d| Duration::from_secs(u64::from(d) * 86_400)),
        })
    }

    /// Opens an existing database read-only (the CLI): never creates or migrates.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let label = path.display().to_string();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Sqlite {
            path: label.clone(),
            source,
        })?;
        let _ = conn.busy_timeout(Duration::from_secs(5));
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|source| StoreError::Sqlite {
                path: label.clone(),
                source,
            })?;
        if version == 0 {
            return Err(StoreError::Invalid(format!(
                "{label}: not a locgate event store (no schema)"
            )));
        }
        Ok(Store {
            conn,
            path: label,
            retention: None,
        })
    }

    fn sq(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Inserts events in one transaction; an id already present is skipped (a replay after a
    /// crash must not duplicate).
    pub fn insert(&mut self, events: &[Box<Event>]) -> Result<()> {
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
                    e.user.as_ref().map(|u| u.id.as_str()),
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

    /// Events matching `f`, newest first, at most `f.limit`; with the cursor for the next page.
    pub fn query(&self, f: &Filter) -> Result<Page> {
        let mut sql = String::from(
            "SELECT e.seq, e.id, e.timestamp, e.action, e.reasons, e.employee, e.ip, e.country,
                    e.asn, e.as_org, e.lat, e.lon, e.accuracy_km, e.anonymizer, e.listener,
                    e.message, a.reviewer, a.note, a.at
             FROM events e LEFT JOIN acks a ON a.event_id = e.id WHERE 1=1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        use rusqlite::types::Value as V;
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
        let limit = f.limit.clamp(1, 1000);
        sql.push_str(" ORDER BY e.seq DESC LIMIT ?");
        args.push(V::Integer(limit as i64 + 1));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sq(e))?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
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
            })
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

    /// Records a reviewer's acknowledgement (replacing an earlier one for the same event).
    pub fn ack(&self, id: &str, reviewer: &str, note: &str) -> Result<Ack> {
        let exists: bool = self
            .conn
            .query_row("SELECT 1 FROM events WHERE id = ?1", [id], |_| Ok(true))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(false),
                e => Err(e),
            })
            .map_err(|e| self.sq(e))?;
        if !exists {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        let at = super::timestamp_now();
        self.conn
            .execute(
                "INSERT INTO acks (event_id, reviewer, note, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(event_id) DO UPDATE SET reviewer = excluded.reviewer,
                 note = excluded.note, at = excluded.at",
                params![id, reviewer, note, at],
            )
            .map_err(|e| self.sq(e))?;
        Ok(Ack {
            reviewer: reviewer.to_owned(),
            note: note.to_owned(),
            at,
        })
    }

    /// Number of events stored.
    pub fn count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(|e| self.sq(e))
    }

    /// `PRAGMA integrity_check` result (`ok` when intact).
    pub fn integrity(&self) -> Result<String> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.sq(e))
    }

    /// Per-employee summary since `since_ms`, employees with the most evidence first.
    pub fn report(&self, since_ms: i64, dir: Option<&Directory>) -> Result<Vec<EmployeeSummary>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT employee, timestamp, action, reasons, country, asn, as_org, lat, lon, anonymizer,
                        message, json
                 FROM events WHERE employee IS NOT NULL AND ts_ms >= ?1 ORDER BY ts_ms",
            )
            .map_err(|e| self.sq(e))?;
        let mut by: HashMap<String, Acc> = HashMap::new();
        let rows = stmt
            .query_map([since_ms], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<u32>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<f64>>(7)?,
                    r.get::<_, Option<f64>>(8)?,
                    r.get::<_, bool>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                ))
            })
            .map_err(|e| self.sq(e))?;
        for row in rows {
            let (emp, ts, action, reasons, country, asn, org, lat, lon, anon, message, json) =
                row.map_err(|e| self.sq(e))?;
            let acc = by.entry(emp.clone()).or_default();
            acc.connections += 1;
            if action != "allow" {
                acc.mismatches += 1;
            }
            if anon {
                acc.anonymized += 1;
            }
            if let Some(c) = country {
                *acc.countries.entry(c).or_default() += 1;
            }
            if let Some(a) = asn {
                let label = match org {
                    Some(o) => format!("AS{a} {o}"),
                    None => format!("AS{a}"),
                };
                *acc.networks.entry(label).or_default() += 1;
            }
            for r in reasons.split(',').filter(|s| !s.is_empty()) {
                *acc.reasons.entry(r.to_owned()).or_default() += 1;
                if EVIDENCE_CODES.contains(&r) {
                    let e = acc.evidence.entry(r.to_owned()).or_default();
                    e.0 += 1;
                    e.1.clone_from(&message);
                }
            }
            if let Some(rtt) = serde_json::from_str::<serde_json::Value>(&json)
                .ok()
                .and_then(|v| v["locgate"]["network"]["rtt_ms"].as_f64())
            {
                acc.rtts.push(rtt);
            }
            let home = dir.and_then(|d| d.get(&emp)).map(|e| &e.home);
            if let (Some(home), Some(lat), Some(lon)) = (home, lat, lon) {
                if let Some((centre, radius)) = home_disc(home) {
                    acc.located += 1;
                    if crate::geo::distance_km(centre, LatLon { lat, lon }) <= radius {
                        acc.in_radius += 1;
                    }
                }
            }
            acc.last_seen = ts;
        }
        let mut out: Vec<EmployeeSummary> = by
            .into_iter()
            .map(|(employee, a)| EmployeeSummary {
                employee,
                connections: a.connections,
                mismatches: a.mismatches,
                home_radius_share: (a.located > 0).then(|| a.in_radius as f64 / a.located as f64),
                anonymizer_share: a.anonymized as f64 / a.connections.max(1) as f64,
                countries: sorted(a.countries),
                networks: sorted(a.networks),
                top_reasons: sorted(a.reasons).into_iter().take(3).collect(),
                evidence: a
                    .evidence
                    .into_iter()
                    .map(|(code, (count, latest))| Evidence {
                        code,
                        count,
                        latest,
                    })
                    .collect(),
                rtt_ms: rtt_summary(a.rtts),
                last_seen: a.last_seen,
            })
            .collect();
        out.sort_by(|a, b| {
            b.mismatches
                .cmp(&a.mismatches)
                .then(b.connections.cmp(&a.connections))
                .then(a.employee.cmp(&b.employee))
        });
        Ok(out)
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

fn migrate(conn: &Connection, label: &str) -> Result<()> {
    let sq = |source| StoreError::Sqlite {
        path: label.to_owned(),
        source,
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sq)?;
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::TooNew(
            label.to_owned(),
            version,
            MIGRATIONS.len(),
        ));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let sql = format!("BEGIN; {m}; PRAGMA user_version = {}; COMMIT;", i + 1);
        conn.execute_batch(&sql).map_err(sq)?;
        tracing::info!(
            store = label,
            version = i + 1,
            "event store schema migrated"
        );
    }
    Ok(())
}

/// The declared home as a centre and radius: its coordinates, or the capital and the country's
/// size when only the country is declared (as the policy measures it).
pub fn home_disc(home: &crate::employees::Home) -> Option<(LatLon, f64)> {
    match home.location {
        Some(c) => Some((c, home.radius_km)),
        None => crate::country::table().get(home.country).map(|i| {
            (
                LatLon {
                    lat: i.lat,
                    lon: i.lon,
                },
                home.radius_km.max(i.radius_km),
            )
        }),
    }
}

#[derive(Default)]
struct Acc {
    connections: u64,
    mismatches: u64,
    anonymized: u64,
    located: u64,
    in_radius: u64,
    countries: HashMap<String, u64>,
    networks: HashMap<String, u64>,
    reasons: HashMap<String, u64>,
    evidence: std::collections::BTreeMap<String, (u64, String)>,
    rtts: Vec<f64>,
    last_seen: String,
}

/// The reason codes whose evidence `report` spells out (the ones built from history and the wire,
/// which a reviewer cannot see from one event alone).
const EVIDENCE_CODES: [&str; 7] = [
    "impossible_travel",
    "shared_egress",
    "residence_mismatch",
    "off_hours",
    "session_location_changed",
    "latency_inconsistent",
    "tunnel_mss",
];

fn rtt_summary(mut rtts: Vec<f64>) -> Option<RttSummary> {
    if rtts.is_empty() {
        return None;
    }
    rtts.sort_by(f64::total_cmp);
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q).round() as usize];
    Some(RttSummary {
        samples: rtts.len() as u64,
        p50: at(0.5),
        p90: at(0.9),
        max: at(1.0),
    })
}

fn sorted(m: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
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
            && !matches!(a.as_str(), "allow" | "flag" | "block")
        {
            return Err(StoreError::Invalid(format!(
                "action `{a}` is not allow, flag or block"
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

/// A reviewer's acknowledgement.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Ack {
    /// Who.
    pub reviewer: String,
    /// What they concluded.
    pub note: String,
    /// When (RFC 3339).
    pub at: String,
}

/// One line of `locgate report`.
#[derive(Debug, Clone, Serialize)]
pub struct EmployeeSummary {
    /// Employee id.
    pub employee: String,
    /// Events recorded.
    pub connections: u64,
    /// Flags and blocks.
    pub mismatches: u64,
    /// Share of located events within the declared home radius (needs the directory).
    pub home_radius_share: Option<f64>,
    /// Share through an anonymizer.
    pub anonymizer_share: f64,
    /// Countries seen, most frequent first.
    pub countries: Vec<(String, u64)>,
    /// Networks seen, most frequent first.
    pub networks: Vec<(String, u64)>,
    /// The three most frequent reasons.
    pub top_reasons: Vec<(String, u64)>,
    /// History and wire signals seen, with how often and the latest sentences (clusters, trips,
    /// share of days at home).
    pub evidence: Vec<Evidence>,
    /// Round-trip times measured on direct connections.
    pub rtt_ms: Option<RttSummary>,
    /// Last event time.
    pub last_seen: String,
}

/// One signal's evidence for one employee.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evidence {
    /// Reason code.
    pub code: String,
    /// Events carrying it.
    pub count: u64,
    /// The sentences of the latest such event.
    pub latest: String,
}

/// Distribution of measured round-trip times, ms.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct RttSummary {
    /// Events with a measurement.
    pub samples: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest.
    pub max: f64,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Parses an RFC 3339 time to Unix ms.
pub fn parse_ts_ms(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// Parses `--since` values: a duration back from now (`24h`, `30d`, `90m`) or an RFC 3339 time.
pub fn parse_since(s: &str) -> std::result::Result<i64, String> {
    if let Some(ms) = parse_ts_ms(s) {
        return Ok(ms);
    }
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (24h, 30d) or an RFC 3339 time"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{s}`: unit must be s, m, h, d or w")),
    };
    n.checked_mul(secs * 1000)
        .map(|back| now_ms() - back)
        .ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_durations_and_times() {
        let now = now_ms();
        let d = parse_since("24h").expect("24h");
        assert!((now - d - 86_400_000).abs() < 5_000);
        assert_eq!(
            parse_since("2026-01-01T00:00:00Z").expect("time"),
            1_767_225_600_000
        );
        assert!(parse_since("24x").is_err());
        assert!(parse_since("abc").is_err());
        assert!(parse_since("99999999999999999d").is_err());
    }

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
