//! The schema and its migrations, applied by the program itself on open (`PRAGMA
//! user_version` counts those applied), so an upgrade needs no manual step.

use rusqlite::Connection;

use super::error::{Result, StoreError};

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
    // 2: the instance that saw the event (`observer.name`), as the shared PostgreSQL store has.
    "ALTER TABLE events ADD COLUMN instance TEXT",
];

/// Brings the schema up to date, one transaction per migration; refuses a newer file.
pub(super) fn migrate(conn: &Connection, label: &str) -> Result<()> {
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
