//! Why a store operation failed: one error type for opening, writing, reviewing and reporting.
//!
//! Its own file so every store module can name it without importing a sibling that does more.

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
    /// PostgreSQL said no (unreachable, refused the login, a query failed...).
    #[error("event store {target}: {}", with_cause(source))]
    Postgres {
        /// The database, without its password.
        target: String,
        /// What the client or the server said.
        source: postgres::Error,
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

/// The client's error with its cause ("error connecting to server: Connection refused"): the
/// client's own message alone does not say why.
fn with_cause(e: &postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// What every store operation returns.
pub(super) type Result<T> = std::result::Result<T, StoreError>;
