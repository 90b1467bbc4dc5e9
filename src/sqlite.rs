//! Opening a SQLite file the way every store here needs it (the event store, the SCIM users):
//! created if missing, WAL so readers work beside the writer, a busy timeout, the durability
//! the caller asks for, and an integrity check before anything is trusted from it.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// How much a commit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL`: in WAL, a process crash (kill -9) loses no commit; a power cut may
    /// lose the last ones (events: the JSON lines have them too).
    Crash,
    /// `synchronous=FULL`: a commit acknowledged to someone else (an IdP's provisioning call)
    /// survives a power cut too.
    PowerCut,
}

/// What opening found wrong: the database error, or the integrity check's first complaint.
#[derive(Debug)]
pub enum OpenError {
    /// SQLite refused.
    Sqlite(rusqlite::Error),
    /// `PRAGMA quick_check` did not say `ok`.
    Damaged(String),
}

/// Opens (creating if needed) `path` for writing, checked; foreign keys on.
pub fn open_checked(path: &Path, durability: Durability) -> Result<Connection, OpenError> {
    let conn = Connection::open(path).map_err(OpenError::Sqlite)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(OpenError::Sqlite)?;
    // journal_mode returns a row.
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .map_err(OpenError::Sqlite)?;
    let synchronous = match durability {
        Durability::Crash => "NORMAL",
        Durability::PowerCut => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous={synchronous}; PRAGMA foreign_keys=ON;"
    ))
    .map_err(OpenError::Sqlite)?;
    // A damaged file must be found now, at start, not on the first write.
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(OpenError::Sqlite)?;
    if check != "ok" {
        return Err(OpenError::Damaged(check));
    }
    Ok(conn)
}
