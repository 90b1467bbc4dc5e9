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
