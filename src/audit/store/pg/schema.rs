//! The shared store's schema, versioned in `locgate_schema` and migrated by whichever instance
//! starts first: under an advisory lock, so instances starting together take turns, and in one
//! transaction, so a failed migration leaves the old schema whole. A schema newer than this
//! program knows is refused: an old binary must not write into tables it does not understand.

use super::super::error::{Result, StoreError};

/// Migrations, in order; `locgate_schema.version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: events (the columns of `Row`), acknowledgements, and the indexes of the review
    // queries: the queue (mismatches, newest first), one employee's timeline, periods.
    "CREATE TABLE events (
        seq          BIGSERIAL PRIMARY KEY,
        id           TEXT NOT NULL UNIQUE,
        ts_ms        BIGINT NOT NULL,
        timestamp    TEXT NOT NULL,
        action       TEXT NOT NULL,
        reasons      TEXT NOT NULL,
        employee     TEXT,
        ip           TEXT NOT NULL,
        country      TEXT,
        asn          BIGINT,
        as_org       TEXT,
        lat          DOUBLE PRECISION,
        lon          DOUBLE PRECISION,
        accuracy_km  DOUBLE PRECISION,
        anonymizer   BOOLEAN NOT NULL,
        listener     TEXT NOT NULL,
        message      TEXT NOT NULL,
        instance     TEXT,
        tunnel_close BOOLEAN NOT NULL,
        json         TEXT NOT NULL
     );
     CREATE INDEX events_ts ON events (ts_ms);
     CREATE INDEX events_employee ON events (lower(employee), seq);
     CREATE INDEX events_employee_ts ON events (employee, ts_ms) WHERE employee IS NOT NULL;
     CREATE INDEX events_queue ON events (seq) WHERE action <> 'allow' AND NOT tunnel_close;
     CREATE TABLE acks (
        event_id TEXT PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
        reviewer TEXT NOT NULL,
        note     TEXT NOT NULL,
        at       TEXT NOT NULL
     );",
    // 2: cases (employees' evidence grouped, with a state, an owner and an append-only trail,
    // refused UPDATE and DELETE by a trigger) and the egress key shared addresses group by.
    "ALTER TABLE events ADD COLUMN egress TEXT;
     ALTER TABLE events ADD COLUMN verified BOOLEAN NOT NULL DEFAULT false;
     UPDATE events SET egress = ip WHERE position(':' in ip) = 0;
     UPDATE events SET verified = true WHERE (json::jsonb #>> '{user,id}') IS NOT NULL;
     CREATE INDEX events_egress ON events (egress, ts_ms);
     CREATE TABLE cases (
        id         BIGSERIAL PRIMARY KEY,
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
        seq        BIGSERIAL PRIMARY KEY,
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
     CREATE FUNCTION locgate_trail_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the case trail is append-only'; END $$;
     CREATE TRIGGER case_trail_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON case_trail
        FOR EACH STATEMENT EXECUTE FUNCTION locgate_trail_append_only();",
    // 3: the day rollup (per employee and calendar day, the report's sums; `audit::store::rollup`)
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

/// The advisory lock every instance migrates under ("locgate" in ASCII).
const MIGRATION_LOCK: i64 = 0x6c_6f63_6761_7465;

/// Brings the schema up to date; refuses a newer one.
pub(super) fn migrate(client: &mut postgres::Client, label: &str) -> Result<()> {
    let pg = |source| StoreError::Postgres {
        target: label.to_owned(),
        source,
    };
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg)?;
    // Quietly: the server's "already exists, skipping" notice would be logged on every connect.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS locgate_schema (version INTEGER NOT NULL)",
    )
    .map_err(pg)?;
    let version: i32 = tx
        .query_one("SELECT COALESCE(max(version), 0) FROM locgate_schema", &[])
        .map_err(pg)?
        .get(0);
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::TooNew(
            label.to_owned(),
            i64::from(version),
            MIGRATIONS.len(),
        ));
    }
    let from = version.max(0) as usize;
    for m in &MIGRATIONS[from..] {
        tx.batch_execute(m).map_err(pg)?;
    }
    if from < MIGRATIONS.len() {
        let to = MIGRATIONS.len() as i32;
        tx.execute("DELETE FROM locgate_schema", &[]).map_err(pg)?;
        tx.execute("INSERT INTO locgate_schema (version) VALUES ($1)", &[&to])
            .map_err(pg)?;
    }
    tx.commit().map_err(pg)?;
    if from < MIGRATIONS.len() {
        tracing::info!(
            store = label,
            from,
            to = MIGRATIONS.len(),
            "event store schema migrated"
        );
    }
    Ok(())
}
