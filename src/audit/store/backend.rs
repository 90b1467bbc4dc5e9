//! Either store behind one face: the configured location ([`StoreLocation`]) and a reader's
//! connection to it ([`Reader`]), so the admin API and the CLI review, acknowledge and report
//! the same way over one instance's SQLite file or the fleet's PostgreSQL.

use std::path::PathBuf;

use super::ack::Ack;
use super::cases::{self, Actor, Case, CaseChange, CaseState, SweepRules, Swept, TrailEntry};
use super::error::Result;
use super::open::Store;
use super::pg::{PgStore, PgTarget};
use super::report::EmployeeSummary;
use super::review::{Filter, Page};
use super::rollup::Rolled;
use crate::employees::Directory;

/// Where the event store is.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    /// One instance's SQLite file.
    Sqlite(PathBuf),
    /// The fleet's shared PostgreSQL.
    Postgres(PgTarget),
}

impl StoreLocation {
    /// What messages call it.
    pub fn label(&self) -> String {
        match self {
            StoreLocation::Sqlite(p) => p.display().to_string(),
            StoreLocation::Postgres(t) => t.label(),
        }
    }
}

/// A reading (and acknowledging) connection to either store.
pub enum Reader {
    /// SQLite.
    Sqlite(Store),
    /// PostgreSQL.
    Postgres(PgStore),
}

/// Calls the same method on whichever store this is.
macro_rules! either {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Reader::Sqlite($s) => $e,
            Reader::Postgres($s) => $e,
        }
    };
}

impl Reader {
    /// Opens for the admin API: a SQLite file is created and migrated if needed (the gateway
    /// owns it), PostgreSQL is connected and migrated.
    pub fn open(at: &StoreLocation) -> Result<Reader> {
        Ok(match at {
            StoreLocation::Sqlite(p) => Reader::Sqlite(Store::open(p, None)?),
            StoreLocation::Postgres(t) => Reader::Postgres(t.connect()?),
        })
    }

    /// Opens for the CLI: a SQLite file read-only (never created or migrated).
    pub fn open_read_only(at: &StoreLocation) -> Result<Reader> {
        Ok(match at {
            StoreLocation::Sqlite(p) => Reader::Sqlite(Store::open_read_only(p)?),
            StoreLocation::Postgres(t) => Reader::Postgres(t.connect()?),
        })
    }

    /// Whether the connection is gone and must be opened again.
    pub fn is_broken(&self) -> bool {
        match self {
            Reader::Sqlite(_) => false,
            Reader::Postgres(p) => p.is_closed(),
        }
    }

    /// Events matching `f`, newest first.
    pub fn query(&mut self, f: &Filter) -> Result<Page> {
        either!(self, s => s.query(f))
    }

    /// Records a reviewer's acknowledgement.
    pub fn ack(&mut self, id: &str, reviewer: &str, note: &str) -> Result<Ack> {
        either!(self, s => s.ack(id, reviewer, note))
    }

    /// Per-employee summary since `since_ms` (only `only`'s when given), most evidence first.
    pub fn report(
        &mut self,
        since_ms: i64,
        dir: Option<&Directory>,
        only: Option<&str>,
    ) -> Result<Vec<EmployeeSummary>> {
        either!(self, s => s.report(since_ms, dir, only))
    }

    /// Sums the events after the day rollup's watermark (at most `max_events`) into it.
    pub fn roll_up(&mut self, dir: Option<&Directory>, max_events: i64) -> Result<Rolled> {
        either!(self, s => s.roll_up(dir, max_events))
    }

    /// Number of events stored.
    pub fn count(&mut self) -> Result<u64> {
        either!(self, s => s.count())
    }

    /// The first and last event time, `None` when empty.
    pub fn span_ms(&mut self) -> Result<Option<(i64, i64)>> {
        either!(self, s => s.span_ms())
    }

    /// Whether every event came from a replay.
    pub fn only_replayed(&mut self) -> Result<bool> {
        either!(self, s => s.only_replayed())
    }

    /// Cases in `states` (all when empty), most recently changed first.
    pub fn cases(&mut self, states: &[CaseState], limit: usize) -> Result<Vec<Case>> {
        either!(self, s => cases::list(s, states, limit))
    }

    /// One case.
    pub fn case(&mut self, id: i64) -> Result<Case> {
        either!(self, s => cases::get(s, id))
    }

    /// The trail of one case, or of all after `after` (export), oldest first.
    pub fn case_trail(
        &mut self,
        case: Option<i64>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<TrailEntry>> {
        either!(self, s => cases::trail_of(s, case, after, limit))
    }

    /// Changes a case, recorded in its trail.
    pub fn change_case(&mut self, id: i64, who: &Actor, change: &CaseChange) -> Result<Case> {
        either!(self, s => cases::change(s, id, who, change))
    }

    /// Records an event's acknowledgement in the trail of the cases that hold it.
    pub fn note_ack_in_cases(&mut self, event: &str, who: &Actor, note: &str) -> Result<Vec<i64>> {
        either!(self, s => cases::note_ack(s, event, who, note))
    }

    /// Opens and extends cases from the events stored since the last sweep.
    pub fn sweep_cases(
        &mut self,
        rules: SweepRules,
        shares: &dyn Fn(&str, &str) -> bool,
        who: &Actor,
    ) -> Result<Swept> {
        either!(self, s => cases::sweep(s, rules, shares, who))
    }
}
