//! The local spool: events the writer could not hand to PostgreSQL, on disk until it returns.
//!
//! One JSON line per [`Row`], appended and synced before the writer calls the batch done, so
//! neither a database outage nor a `kill -9` of locgate loses an event the writer has taken.
//! Bounded (`postgres_spool_max_mb`): beyond it events are dropped and counted, never the disk
//! filled. Replayed oldest first when the database answers again; the insert skips ids already
//! present, so a replay cut short and repeated adds nothing twice. Locked (`flock`) so two
//! processes never share one spool.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::super::row::Row;

/// Rows handed to the database per insert when replaying.
const REPLAY_BATCH: usize = 2048;

/// An open, locked spool file.
pub(super) struct Spool {
    file: File,
    path: PathBuf,
    max_bytes: u64,
    bytes: u64,
    events: u64,
}

impl Spool {
    /// Opens (creating) and locks the spool; a torn last line (a crash mid-append) is cut off.
    pub(super) fn open(path: &Path, max_bytes: u64) -> Result<Spool, String> {
        let say = |what: &str, e: std::io::Error| format!("spool {}: {what}: {e}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| say("cannot create its directory", e))?;
        }
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Events name people.
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(|e| say("cannot open", e))?;
        lock(&file).map_err(|e| say("in use by another process", e))?;
        let (keep, events) = whole_lines(&mut file).map_err(|e| say("cannot read", e))?;
        if keep < file.metadata().map_err(|e| say("cannot read", e))?.len() {
            tracing::warn!(spool = %path.display(), "spool ended in a torn line (a crash while writing it): cut off");
            file.set_len(keep)
                .map_err(|e| say("cannot cut a torn line", e))?;
        }
        Ok(Spool {
            file,
            path: path.to_path_buf(),
            max_bytes,
            bytes: keep,
            events,
        })
    }

    /// Events waiting.
    pub(super) fn events(&self) -> u64 {
        self.events
    }

    /// Bytes on disk.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Where it is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends rows, synced; returns how many fit under the bound (the rest are not written).
    pub(super) fn append(&mut self, rows: &[Row]) -> std::io::Result<usize> {
        let mut buf = Vec::new();
        let mut taken = 0;
        for r in rows {
            let start = buf.len();
            serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
            buf.push(b'\n');
            if self.bytes + buf.len() as u64 > self.max_bytes {
                buf.truncate(start);
                break;
            }
            taken += 1;
        }
        if taken == 0 {
            return Ok(0);
        }
        self.file.seek(SeekFrom::End(0))?;
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            // Whatever part went out is cut off again: the file holds whole lines only.
            let _ = self.file.set_len(self.bytes);
            return Err(e);
        }
        self.bytes += buf.len() as u64;
        self.events += taken as u64;
        Ok(taken)
    }

    /// Hands every spooled row to `insert`, oldest first, a batch at a time; when all are in,
    /// empties the spool. On an error the spool stays as it is (to be replayed again).
    pub(super) fn replay<E>(
        &mut self,
        mut insert: impl FnMut(&[Row]) -> Result<(), E>,
    ) -> Result<Replayed, ReplayError<E>> {
        if self.events == 0 {
            return Ok(Replayed::default());
        }
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(ReplayError::Io)?;
        let mut reader = BufReader::new(&self.file);
        let mut batch = Vec::with_capacity(REPLAY_BATCH);
        let mut line = String::new();
        let mut replayed = 0;
        let mut unreadable = 0u64;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(ReplayError::Io)?;
            if n > 0 {
                match serde_json::from_str::<Row>(line.trim_end()) {
                    Ok(r) => batch.push(r),
                    Err(_) => unreadable += 1,
                }
            }
            if batch.len() >= REPLAY_BATCH || (n == 0 && !batch.is_empty()) {
                insert(&batch).map_err(ReplayError::Insert)?;
                replayed += batch.len() as u64;
                batch.clear();
            }
            if n == 0 {
                break;
            }
        }
        if unreadable > 0 {
            tracing::error!(spool = %self.path.display(), unreadable, "spooled lines that do not read as events were dropped");
        }
        self.file.set_len(0).map_err(ReplayError::Io)?;
        self.file.sync_data().map_err(ReplayError::Io)?;
        self.bytes = 0;
        self.events = 0;
        Ok(Replayed {
            stored: replayed,
            unreadable,
        })
    }
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Replayed {
    /// Rows handed to the database.
    pub(super) stored: u64,
    /// Lines that did not read as events (damaged on disk): dropped, and counted as lost.
    pub(super) unreadable: u64,
}

/// Why a replay stopped.
pub(super) enum ReplayError<E> {
    /// The spool file.
    Io(std::io::Error),
    /// The database.
    Insert(E),
}

/// Length of the file up to its last newline, and the number of lines in it.
fn whole_lines(file: &mut File) -> std::io::Result<(u64, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&*file);
    let (mut keep, mut lines) = (0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Ok((keep, lines));
        }
        keep += n as u64;
        lines += 1;
    }
}

/// An exclusive lock, refused at once when another process holds it.
fn lock(file: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this File owns; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> Row {
        Row {
            id: id.into(),
            ts_ms: 1,
            timestamp: "2026-12-01T00:00:00Z".into(),
            action: "flag".into(),
            reasons: ",vpn,".into(),
            employee: Some("e1".into()),
            ip: "192.0.2.1".into(),
            egress: None,
            verified: false,
            country: None,
            asn: None,
            as_org: None,
            lat: None,
            lon: None,
            accuracy_km: None,
            anonymizer: true,
            listener: "sso".into(),
            message: "m".into(),
            instance: Some("a".into()),
            tunnel_close: false,
            json: "{}".into(),
        }
    }

    #[test]
    fn spooled_rows_survive_reopening_and_replay_empties_the_spool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spool.jsonl");
        let mut s = Spool::open(&path, 1 << 20).expect("open");
        assert_eq!(s.append(&[row("a"), row("b")]).expect("append"), 2);
        drop(s);
        // A damaged whole line is dropped at replay and counted; a crash mid-append leaves a
        // torn line: cut off on open, the whole lines kept.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"damaged\": 1}\n{\"id\":\"torn"))
            .expect("tear");
        let mut s = Spool::open(&path, 1 << 20).expect("reopen");
        assert_eq!(s.events(), 3);
        let mut seen = Vec::new();
        let n = s
            .replay(|rows| {
                seen.extend(rows.iter().map(|r| r.id.clone()));
                Ok::<(), ()>(())
            })
            .ok();
        assert_eq!(
            n,
            Some(Replayed {
                stored: 2,
                unreadable: 1
            })
        );
        assert_eq!(seen, ["a", "b"]);
        assert_eq!((s.events(), s.bytes()), (0, 0));
    }

    #[test]
    fn a_failed_replay_keeps_the_spool_and_the_bound_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spool.jsonl");
        let one = serde_json::to_vec(&row("a")).expect("json").len() as u64 + 1;
        let mut s = Spool::open(&path, one * 2).expect("open");
        assert_eq!(
            s.append(&[row("a"), row("b"), row("c")]).expect("append"),
            2
        );
        assert!(s.replay(|_| Err::<(), _>("down")).is_err());
        assert_eq!(s.events(), 2);
        // A second process cannot take the same spool.
        assert!(Spool::open(&path, one * 2).is_err());
    }
}
