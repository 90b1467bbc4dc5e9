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
    // 3: cases (employees' evidence grouped, with a state, an owner and an append-only trail)
    // and the egress key they group shared addresses by.
    "ALTER TABLE events ADD COLUMN egress TEXT;
     ALTER TABLE events ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
     UPDATE events SET egress = ip WHERE instr(ip, ':') = 0;
     UPDATE events SET verified = 1 WHERE json_extract(json, '$.user.id') IS NOT NULL;
     CREATE INDEX events_egress ON events (egress, ts_ms);
     CREATE TABLE cases (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        kind       TEXT NOT NULL,      -- employee | egress
        subject    TEXT NOT NULL,      -- the employee id (lower case) or the egress key
        state      TEXT NOT NULL,      -- open | investigating | confirmed_fraud | benign
        owner      TEXT,
        opened_ms  BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        closed_seq BIGINT,             -- the newest event when it was decided
        reasons    TEXT NOT NULL       -- ',code,' of the evidence that opened it
     );
     CREATE UNIQUE INDEX cases_active ON cases (kind, subject)
        WHERE state IN ('open', 'investigating');
     CREATE INDEX cases_state ON cases (state, updated_ms);
     CREATE TABLE case_members (
        case_id    BIGINT NOT NULL REFERENCES cases (id),
        employee   TEXT NOT NULL,
        added_ms   BIGINT NOT NULL,
        PRIMARY KEY (case_id, employee)
     );
     CREATE INDEX case_members_employee ON case_members (employee);
     CREATE TABLE case_trail (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id    BIGINT NOT NULL REFERENCES cases (id),
        at_ms      BIGINT NOT NULL,
        actor      TEXT NOT NULL,
        source     TEXT NOT NULL,
        action     TEXT NOT NULL,
        detail     TEXT NOT NULL
     );
     CREATE INDEX case_trail_case ON case_trail (case_id, seq);
     CREATE TABLE case_sweep (
        id         BIGINT PRIMARY KEY CHECK (id = 1),
        seq        BIGINT NOT NULL
     );
     CREATE TRIGGER case_trail_no_update BEFORE UPDATE ON case_trail
        BEGIN SELECT RAISE(ABORT, 'the case trail is append-only'); END;
     CREATE TRIGGER case_trail_no_delete BEFORE DELETE ON case_trail
        BEGIN SELECT RAISE(ABORT, 'the case trail is append-only'); END;",
    // 4: the day rollup (per employee and calendar day, the report's sums; `audit::store::rollup`)
    // and its watermark, so the ranking reads days instead of every event of the period.
    "CREATE TABLE employee_days (
        employee    TEXT NOT NULL,
        day         TEXT NOT NULL,     -- YYYY-MM-DD, the employee's calendar day
        fingerprint TEXT NOT NULL,     -- of the directory entry the day was summed with
        acc         TEXT NOT NULL,     -- the report's accumulator of the day (JSON)
        first_seq   BIGINT NOT NULL,
        last_seq    BIGINT NOT NULL,
        PRIMARY KEY (employee, day)
     );
     CREATE INDEX employee_days_day ON employee_days (day);
     CREATE INDEX employee_days_lower ON employee_days (lower(employee), day);
     CREATE TABLE rollup_mark (
        id         BIGINT PRIMARY KEY CHECK (id = 1),
        seq        BIGINT NOT NULL
     );",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of the previous version (3) with an event.
    fn v3() -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        for m in &MIGRATIONS[..3] {
            conn.execute_batch(m).expect("migration");
        }
        conn.execute_batch(
            "PRAGMA user_version = 3;
             INSERT INTO events (id, ts_ms, timestamp, action, reasons, employee, ip, anonymizer,
             listener, message, json) VALUES ('e1', 0, '1970-01-01T00:00:00Z', 'allow', '',
             'alice', '192.0.2.1', 0, 'l', '', '{}');",
        )
        .expect("v3 store");
        conn
    }

    #[test]
    fn a_v3_store_gains_the_day_rollup_and_keeps_its_events() {
        let conn = v3();
        migrate(&conn, "v3.db").expect("migrate");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version as usize, MIGRATIONS.len());
        assert_eq!(version, 4);
        let (days, marks, events): (i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM employee_days), (SELECT count(*) FROM rollup_mark),
                 (SELECT count(*) FROM events)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("tables");
        assert_eq!((days, marks, events), (0, 0, 1));
    }

    #[test]
    fn a_newer_store_is_refused() {
        let conn = v3();
        conn.execute_batch("PRAGMA user_version = 5")
            .expect("newer");
        assert!(matches!(
            migrate(&conn, "new.db"),
            Err(StoreError::TooNew(_, 5, 4))
        ));
    }
}
