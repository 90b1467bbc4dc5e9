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
//!
//! One file per job: `open` (the handle, its connections and pragmas), `schema` (migrations),
//! `write` (the writer thread's batches and retention), `bulk` (`replay --store`), `review` (listing with filters), `ack`
//! (acknowledgements), `cases` (cases and their trail, over `sql`, one way to speak to either
//! store), `report` (per-employee summaries), `rollup` (their per-day sums), `clock` (times) and `error`. This
//! file only names them, so the public paths (`audit::store::Store`, `StoreError`, ...) stay.

mod ack;
mod backend;
mod bulk;
mod cases;
mod clock;
mod error;
mod open;
mod pg;
mod report;
mod review;
mod rollup;
mod row;
mod schema;
mod sql;
mod write;

pub use ack::Ack;
pub use backend::{Reader, StoreLocation};
pub use bulk::{BulkLoad, Loaded};
pub use cases::{Actor, Case, CaseChange, CaseState, SweepRules, Swept, TrailEntry};
pub use clock::{now_ms, parse_since, parse_ts_ms};
pub use error::StoreError;
pub use open::Store;
pub use pg::{PgHealth, PgSink, PgStore, PgTarget};
pub use report::{EmployeeSummary, Evidence, RttSummary, home_disc};
pub use review::{Filter, Page, StoredEvent};
pub use rollup::{CATCH_UP_BATCH, ROLL_BATCH, Rolled};
pub use row::{Row, egress_of};
pub use write::{EventSink, SinkError};
