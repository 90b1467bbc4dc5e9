//! Opening the database: the writer's connection (created, checked, migrated, made private to
//! its owner) and the CLI's read-only one. `Store`, the handle, is defined here; the other store
//! modules add the methods of their own job to it.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::error::{Result, StoreError};
use super::schema::migrate;

/// An open event database.
pub struct Store {
    pub(super) conn: Connection,
    pub(super) path: String,
    pub(super) retention: Option<Duration>,
    /// Whether the file has the `instance` column (schema 2; a read-only open cannot add it).
    pub(super) has_instance: bool,
    /// Opened read-only (the CLI): the report reads the day rollup but cannot bring it up to
    /// date or rewrite it.
    pub(super) read_only: bool,
}

impl Store {
    /// Opens (creating if needed) and migrates the database for writing.
    pub fn open(path: &Path, retention_days: Option<u32>) -> Result<Store> {
        let label = path.display().to_string();
        let sq = |source| StoreError::Sqlite {
            path: label.clone(),
            source,
        };
        let conn = crate::sqlite::open_checked(path, crate::sqlite::Durability::Crash).map_err(
            |e| match e {
                crate::sqlite::OpenError::Sqlite(source) => sq(source),
                crate::sqlite::OpenError::Damaged(check) => StoreError::Invalid(format!(
                    "event store {label}: integrity check failed: {check}"
                )),
            },
        )?;
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
            has_instance: true,
            read_only: false,
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
            has_instance: version >= 2,
            read_only: true,
        })
    }

    /// The error for a failed SQLite call on this database.
    pub(super) fn sq(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// `PRAGMA integrity_check` result (`ok` when intact).
    pub fn integrity(&self) -> Result<String> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.sq(e))
    }
}
