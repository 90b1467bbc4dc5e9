//! The console's connection to the event store: one reading connection, opened on first use and
//! again after it breaks, with a backoff of its own while the store is down. Without the
//! backoff, every console request during a PostgreSQL outage would wait out a connect timeout
//! in turn behind the one connection; with it, one attempt is made per period and the requests
//! in between are told at once (503) that the store is unavailable, and why.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::audit::store::{Reader, StoreError, StoreLocation};

/// The first wait after a failed connect; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between connect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the console reads and writes the store through.
pub(super) struct StoreAccess {
    at: Option<StoreLocation>,
    conn: Mutex<Connection>,
}

#[derive(Default)]
struct Connection {
    reader: Option<Reader>,
    /// After a failed connect: no new attempt before this, the wait that set it, and why.
    down: Option<(Instant, Duration, String)>,
}

/// Why a call did not reach the store.
pub(super) enum Unavailable {
    /// No store configured.
    NotConfigured,
    /// The store is down; the message says why and when the next attempt is.
    Down(String),
    /// The call itself failed.
    Store(StoreError),
}

impl StoreAccess {
    pub(super) fn new(at: Option<StoreLocation>) -> StoreAccess {
        StoreAccess {
            at,
            conn: Mutex::new(Connection::default()),
        }
    }

    /// Whether a store is configured.
    pub(super) fn configured(&self) -> bool {
        self.at.is_some()
    }

    /// Runs `f` on the connection (blocking: call it from the blocking pool), connecting
    /// first when there is none and the backoff allows.
    pub(super) fn run<T>(
        &self,
        f: impl FnOnce(&mut Reader) -> Result<T, StoreError>,
    ) -> Result<T, Unavailable> {
        let Some(at) = &self.at else {
            return Err(Unavailable::NotConfigured);
        };
        let mut c = self
            .conn
            .lock()
            .map_err(|_| Unavailable::Store(StoreError::Invalid("store lock poisoned".into())))?;
        if c.reader.as_ref().is_some_and(Reader::is_broken) {
            c.reader = None;
        }
        if c.reader.is_none() {
            let now = Instant::now();
            if let Some((until, _, why)) = &c.down
                && now < *until
            {
                let secs = (*until - now).as_secs() + 1;
                return Err(Unavailable::Down(format!(
                    "event store {} unavailable: {why} (next attempt within {secs} s)",
                    at.label()
                )));
            }
            match Reader::open(at) {
                Ok(r) => {
                    if c.down.take().is_some() {
                        tracing::info!(store = %at.label(), "console reconnected to the event store");
                    }
                    c.reader = Some(r);
                }
                Err(e) => {
                    let wait = c
                        .down
                        .as_ref()
                        .map_or(FIRST_BACKOFF, |(_, w, _)| (*w * 2).min(MAX_BACKOFF));
                    tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "console cannot open the event store");
                    c.down = Some((Instant::now() + wait, wait, e.to_string()));
                    return Err(Unavailable::Store(e));
                }
            }
        }
        let Some(reader) = c.reader.as_mut() else {
            return Err(Unavailable::NotConfigured);
        };
        let result = f(reader);
        if result.is_err() && reader.is_broken() {
            c.reader = None;
        }
        result.map_err(Unavailable::Store)
    }

    /// Runs a long job (ranking a fleet's month) on a connection of its own, opened for it and
    /// closed after, so the console's connection stays free for the pages meanwhile. While
    /// the store is known to be down, it is not tried.
    pub(super) fn run_apart<T>(
        &self,
        f: impl FnOnce(&mut Reader) -> Result<T, StoreError>,
    ) -> Result<T, Unavailable> {
        let Some(at) = &self.at else {
            return Err(Unavailable::NotConfigured);
        };
        let down = self.conn.lock().ok().and_then(|c| {
            c.down
                .as_ref()
                .filter(|(until, _, _)| Instant::now() < *until)
                .map(|(_, _, why)| why.clone())
        });
        if let Some(why) = down {
            return Err(Unavailable::Down(format!(
                "event store {} unavailable: {why}",
                at.label()
            )));
        }
        let mut reader = Reader::open(at).map_err(Unavailable::Store)?;
        f(&mut reader).map_err(Unavailable::Store)
    }
}
