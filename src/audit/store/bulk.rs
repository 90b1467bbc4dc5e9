//! Bulk loading for `replay --store`: months of past sign-ins written into an event store in
//! seconds, without ever leaving a half-written store behind.
//!
//! A new store is built beside its final name (`FILE.partial`) with no rollback journal and no
//! syncs (a crash leaves only the partial file, and the replay can simply run again), then
//! switched to WAL, synced and renamed into place: the file at `FILE` is always either absent
//! or complete. Adding to an existing store (`--append`) goes through the ordinary durable
//! path in large transactions; event ids derived from the sign-ins make a second load of the
//! same export add nothing.

use std::path::{Path, PathBuf};

use super::error::{Result, StoreError};
use super::open::Store;
use crate::audit::event::Event;

/// A store being loaded: [`BulkLoad::add`] batches, then [`BulkLoad::finish`].
pub struct BulkLoad {
    store: Store,
    /// For a new store: where it is built, and where it goes when complete.
    building: Option<(PathBuf, PathBuf)>,
    /// Events in the store before this load.
    before: u64,
}

/// What a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Events in the store before.
    pub before: u64,
    /// Events in the store after (the difference is what this load added; the rest of what it
    /// was given was already there).
    pub after: u64,
}

impl BulkLoad {
    /// Starts loading into `path`: a new store when there is none (or an empty one), else
    /// only with `append` (a store that already holds events is refused without it, so a
    /// typo cannot mix two hunts).
    pub fn start(path: &Path, append: bool) -> Result<BulkLoad> {
        if path.exists() {
            let store = Store::open(path, None)?;
            let before = store.count()?;
            if before > 0 && !append {
                return Err(StoreError::Invalid(format!(
                    "{} already holds {before} events: give --append to add to them, or name a new file",
                    path.display()
                )));
            }
            return Ok(BulkLoad {
                store,
                building: None,
                before,
            });
        }
        let partial = partial_name(path);
        // A partial file is what an interrupted load left: it is never a store anyone reads.
        for leftover in [
            partial.clone(),
            suffixed(&partial, "-wal"),
            suffixed(&partial, "-shm"),
        ] {
            let _ = std::fs::remove_file(leftover);
        }
        // 16 KiB pages (SQLite's default is 4): an event is about 2 KiB, so fewer of them spill
        // into overflow pages, and a load of gigabytes makes a quarter of the system calls
        // (measured: 1 M events 51 s -> 35 s). Fixed when the file is first written.
        rusqlite::Connection::open(&partial)
            .and_then(|c| {
                c.execute_batch(
                    "PRAGMA page_size=16384; CREATE TABLE page_size_set(x); DROP TABLE page_size_set;",
                )
            })
            .map_err(|source| StoreError::Sqlite {
                path: partial.display().to_string(),
                source,
            })?;
        let store = Store::open(&partial, None)?;
        // One writer, nothing to roll back to: no journal and no syncs while loading.
        store
            .conn
            .query_row("PRAGMA journal_mode=OFF", [], |_| Ok(()))
            .map_err(|e| store.sq(e))?;
        store
            .conn
            .execute_batch("PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;")
            .map_err(|e| store.sq(e))?;
        Ok(BulkLoad {
            store,
            building: Some((partial, path.to_path_buf())),
            before: 0,
        })
    }

    /// Adds a batch in one transaction (ids already present are skipped).
    pub fn add(&mut self, events: &[Event]) -> Result<()> {
        self.store.insert(events)
    }

    /// Completes the load: a new store is switched to WAL, synced and moved into place.
    pub fn finish(self) -> Result<Loaded> {
        let after = self.store.count()?;
        let loaded = Loaded {
            before: self.before,
            after,
        };
        let Some((partial, target)) = self.building else {
            return Ok(loaded);
        };
        let store = self.store;
        store
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(|e| store.sq(e))?;
        store
            .conn
            .execute_batch("PRAGMA synchronous=NORMAL; PRAGMA optimize;")
            .map_err(|e| store.sq(e))?;
        drop(store);
        let io = |what: &str, e: std::io::Error| {
            StoreError::Invalid(format!("{}: cannot {what}: {e}", target.display()))
        };
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("sync the new store", e))?;
        std::fs::rename(&partial, &target).map_err(|e| io("move the new store into place", e))?;
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(loaded)
    }
}

impl Store {
    /// Whether every event came from a replay (none from a listener): such a store is a past
    /// period, reported whole by default. An empty store is not.
    pub fn only_replayed(&self) -> Result<bool> {
        // A gateway's event is found at once; asked first, the other question (a scan of the
        // whole table when it has no replayed event) is never asked.
        let exists = |sql: &str| {
            self.conn
                .query_row(sql, [], |r| r.get::<_, bool>(0))
                .map_err(|e| self.sq(e))
        };
        Ok(
            !exists("SELECT EXISTS(SELECT 1 FROM events WHERE listener != 'replay')")?
                && exists("SELECT EXISTS(SELECT 1 FROM events WHERE listener = 'replay')")?,
        )
    }

    /// The first and last event time (ms since the epoch), `None` for an empty store.
    pub fn span_ms(&self) -> Result<Option<(i64, i64)>> {
        self.conn
            .query_row("SELECT min(ts_ms), max(ts_ms) FROM events", [], |r| {
                Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?))
            })
            .map_err(|e| self.sq(e))
    }
}

fn partial_name(path: &Path) -> PathBuf {
    suffixed(path, ".partial")
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_appears_only_when_complete_and_a_full_one_needs_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hunt.db");
        let load = BulkLoad::start(&path, false).expect("start");
        assert!(!path.exists(), "nothing at the final name while loading");
        assert!(partial_name(&path).exists());
        let done = load.finish().expect("finish");
        assert_eq!(
            done,
            Loaded {
                before: 0,
                after: 0
            }
        );
        assert!(path.exists() && !partial_name(&path).exists());
        // Empty: may be loaded again without --append.
        BulkLoad::start(&path, false).expect("empty store reused");
    }
}
