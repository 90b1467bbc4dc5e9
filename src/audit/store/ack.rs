//! Acknowledging: a reviewer's conclusion on one event, stored beside it (one per event; a
//! later acknowledgement replaces the earlier one).

use rusqlite::params;
use serde::Serialize;

use super::error::{Result, StoreError};
use super::open::Store;
use crate::audit::event::timestamp_now;

/// A reviewer's acknowledgement.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Ack {
    /// Who.
    pub reviewer: String,
    /// What they concluded.
    pub note: String,
    /// When (RFC 3339).
    pub at: String,
}

impl Store {
    /// Records a reviewer's acknowledgement (replacing an earlier one for the same event).
    pub fn ack(&self, id: &str, reviewer: &str, note: &str) -> Result<Ack> {
        let exists: bool = self
            .conn
            .query_row("SELECT 1 FROM events WHERE id = ?1", [id], |_| Ok(true))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(false),
                e => Err(e),
            })
            .map_err(|e| self.sq(e))?;
        if !exists {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        let at = timestamp_now();
        self.conn
            .execute(
                "INSERT INTO acks (event_id, reviewer, note, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(event_id) DO UPDATE SET reviewer = excluded.reviewer,
                 note = excluded.note, at = excluded.at",
                params![id, reviewer, note, at],
            )
            .map_err(|e| self.sq(e))?;
        Ok(Ack {
            reviewer: reviewer.to_owned(),
            note: note.to_owned(),
            at,
        })
    }
}
