//! The durable store of SCIM users: one SQLite table, WAL, every write committed before the IdP
//! hears 2xx (an IdP does not resend a change it saw accepted).
//!
//! A file that cannot be opened, fails its integrity check, has another schema or holds a row
//! that does not read back is an error: the gateway refuses to start rather than serve an
//! empty SCIM directory (everyone provisioned would silently become `unknown_employee`).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

/// Schema version (`PRAGMA user_version`).
const VERSION: i64 = 1;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("SCIM store {path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file is not a usable store.
    #[error("SCIM store {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Another user already has the `userName` (the unique index said so).
    #[error("userName `{0}` is already taken")]
    Taken(String),
}

/// One stored user.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The server-assigned id (a UUID).
    pub id: String,
    /// The normalised resource, without `id` and `meta`.
    pub resource: Map<String, Value>,
    /// Bumped on every change (the ETag).
    pub version: u64,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339.
    pub modified: String,
}

impl Row {
    /// The `userName`.
    pub fn user_name(&self) -> &str {
        self.resource
            .get("userName")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The `externalId`, if any.
    pub fn external_id(&self) -> Option<&str> {
        self.resource.get("externalId").and_then(Value::as_str)
    }
}

/// An open store.
pub struct Store {
    conn: Connection,
    path: String,
}

impl Store {
    /// Opens (creating if needed) and checks the store.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let label = path.display().to_string();
        let sq = |source| StoreError::Sqlite {
            path: label.clone(),
            source,
        };
        // FULL: a provisioning change acknowledged to the IdP must survive a power cut too.
        let conn = crate::sqlite::open_checked(path, crate::sqlite::Durability::PowerCut).map_err(
            |e| match e {
                crate::sqlite::OpenError::Sqlite(source) => sq(source),
                crate::sqlite::OpenError::Damaged(check) => StoreError::Invalid {
                    path: label.clone(),
                    message: format!("integrity check failed: {check}"),
                },
            },
        )?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sq)?;
        match version {
            0 => conn
                .execute_batch(
                    "BEGIN;
                     CREATE TABLE scim_users (
                         id TEXT PRIMARY KEY,
                         user_name_key TEXT NOT NULL UNIQUE,
                         resource TEXT NOT NULL,
                         version INTEGER NOT NULL,
                         created TEXT NOT NULL,
                         modified TEXT NOT NULL
                     );
                     PRAGMA user_version = 1;
                     COMMIT;",
                )
                .map_err(sq)?,
            VERSION => {}
            v => {
                return Err(StoreError::Invalid {
                    path: label,
                    message: format!(
                        "schema version {v} is newer than this locgate knows ({VERSION})"
                    ),
                });
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Home addresses: not world-readable.
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(Store { conn, path: label })
    }

    fn sq(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Every stored user; a row that does not read back is an error naming it.
    pub fn load_all(&self) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, resource, version, created, modified FROM scim_users ORDER BY created, id")
            .map_err(|e| self.sq(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.sq(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, text, version, created, modified) = row.map_err(|e| self.sq(e))?;
            let resource = match serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| super::resource::normalize_user(v).ok())
            {
                Some(r) => r,
                None => {
                    return Err(StoreError::Invalid {
                        path: self.path.clone(),
                        message: format!("user {id}: stored resource does not read back"),
                    });
                }
            };
            out.push(Row {
                id,
                resource,
                version: u64::try_from(version).unwrap_or(0),
                created,
                modified,
            });
        }
        Ok(out)
    }

    /// Inserts or replaces `row` (one statement, committed on return).
    pub fn put(&self, row: &Row) -> Result<(), StoreError> {
        let text = Value::Object(row.resource.clone()).to_string();
        let key = row.user_name().to_lowercase();
        let version = i64::try_from(row.version).unwrap_or(i64::MAX);
        let taken: Option<String> = self
            .conn
            .query_row(
                "SELECT id FROM scim_users WHERE user_name_key = ?1 AND id <> ?2",
                params![key, row.id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sq(e))?;
        if taken.is_some() {
            return Err(StoreError::Taken(row.user_name().to_string()));
        }
        self.conn
            .execute(
                "INSERT INTO scim_users (id, user_name_key, resource, version, created, modified)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET user_name_key = excluded.user_name_key,
                     resource = excluded.resource, version = excluded.version,
                     modified = excluded.modified",
                params![row.id, key, text, version, row.created, row.modified],
            )
            .map_err(|e| self.sq(e))?;
        Ok(())
    }

    /// Deletes user `id`; whether it existed.
    pub fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.conn
            .execute("DELETE FROM scim_users WHERE id = ?1", params![id])
            .map(|n| n > 0)
            .map_err(|e| self.sq(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: &str, name: &str) -> Row {
        Row {
            id: id.into(),
            resource: super::super::resource::normalize_user(json!({"userName": name}))
                .expect("valid"),
            version: 1,
            created: "2026-01-01T00:00:00Z".into(),
            modified: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn rows_survive_reopening_and_user_names_stay_unique() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scim.sqlite");
        let s = Store::open(&path).expect("open");
        s.put(&row("1", "Ann")).expect("put");
        s.put(&row("2", "bob")).expect("put");
        assert!(matches!(s.put(&row("3", "ANN")), Err(StoreError::Taken(_))));
        let mut changed = row("2", "bobby");
        changed.version = 2;
        s.put(&changed).expect("replace");
        assert!(s.delete("1").expect("delete"));
        assert!(!s.delete("1").expect("delete"));
        drop(s);
        let rows = Store::open(&path)
            .expect("reopen")
            .load_all()
            .expect("load");
        assert_eq!(rows, vec![changed]);
    }

    #[test]
    fn a_damaged_store_is_refused_not_emptied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scim.sqlite");
        std::fs::write(&path, vec![b'x'; 8192]).expect("write");
        assert!(Store::open(&path).is_err());
        let path = dir.path().join("bad-row.sqlite");
        let s = Store::open(&path).expect("open");
        s.conn
            .execute(
                "INSERT INTO scim_users VALUES ('x', 'k', 'not json', 1, 'a', 'b')",
                [],
            )
            .expect("insert");
        let e = s.load_all().unwrap_err().to_string();
        assert!(e.contains("does not read back"), "{e}");
    }
}
