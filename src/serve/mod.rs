//! The top floor: starting and stopping the gateway (load, bind every listener, serve, drain),
//! the set of listeners a reload changes, and the reload itself.
//!
//! Used by `locgate run` and by the integration tests, which start the real server in-process on
//! port 0 and read back the bound addresses.

pub mod listener;
pub mod listeners;
pub mod notify;
pub mod reload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use self::listeners::ListenerSet;
use crate::audit::alerts::Alerter;
use crate::audit::store::{PgSink, StoreLocation};
use crate::audit::{AuditOptions, Auditor, EventSink, Store};
use crate::config::{Config, StoreOnError};
use crate::state::{RuntimeState, Shared};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A data file or the employee directory is missing or bad.
    #[error("{0}")]
    Load(#[from] crate::state::LoadError),
    /// A socket or file could not be opened.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The event store could not be opened (and `on_store_error` is `stop`).
    #[error("{0}\n(set [events] on_store_error = \"jsonl_only\" to serve on JSON lines only)")]
    Store(#[from] crate::audit::store::StoreError),
    /// The SCIM store could not be opened or read (a damaged store is never served as empty).
    #[error("{0}")]
    Scim(#[from] crate::scim::store::StoreError),
    /// Nothing to serve.
    #[error("{0}: no [[listener]] is configured")]
    NoListener(String),
}

/// A gateway that is serving.
pub struct Running {
    /// Listener name and the address it bound.
    pub addrs: Vec<(String, SocketAddr)>,
    /// The admin listener's address, when `[admin]` is configured.
    pub admin_addr: Option<SocketAddr>,
    /// Shared state (tests read counters from it).
    pub shared: Arc<Shared>,
    /// The serving listeners (a reload may add, remove or change them).
    pub listeners: Arc<ListenerSet>,
    stop_admin: tokio::sync::watch::Sender<bool>,
    history_link: Option<crate::history::redis_link::LinkHandle>,
}

/// Loads data, binds every listener and starts serving. Must run inside a Tokio runtime.
pub async fn start(config: Config) -> Result<Running, StartError> {
    start_with_sink(config, None).await
}

/// Like [`start`], with `sink` instead of the configured SQLite store (tests use a slow double).
pub async fn start_with_sink(
    mut config: Config,
    sink: Option<Box<dyn EventSink>>,
) -> Result<Running, StartError> {
    if config.listeners.is_empty() {
        return Err(StartError::NoListener(config.origin));
    }
    reload::warn_about(&config);
    let state = RuntimeState::from_config(&mut config)?;
    let scim = match &config.scim {
        Some(sc) => Some(Arc::new(crate::scim::ScimUsers::open(
            &sc.store,
            sc.default_radius_km,
        )?)),
        None => None,
    };
    let state = match &scim {
        Some(users) => state.with_scim(&users.snapshot()),
        None => state,
    };
    let mut pg_health = None;
    let mut opened = None;
    if sink.is_none()
        && let Some(sc) = &config.events.store
        && let StoreLocation::Postgres(t) = &sc.location
    {
        // The synchronous client runs a runtime of its own: not on this one's threads.
        let (t, days) = (t.clone(), sc.retention_days);
        let open = tokio::task::spawn_blocking(move || PgSink::open(t, days))
            .await
            .map_err(|e| crate::audit::store::StoreError::Invalid(e.to_string()));
        opened = Some(open.and_then(|r| r));
    }
    let mut open_sink = |sc: &crate::config::StoreConfig| -> Result<Box<dyn EventSink>, crate::audit::store::StoreError> {
        match (&sc.location, opened.take()) {
            (_, Some(pg)) => {
                let (sink, health) = pg?;
                pg_health = Some(health);
                Ok(Box::new(sink))
            }
            (StoreLocation::Sqlite(p), None) => Ok(Box::new(Store::open(p, sc.retention_days)?)),
            (StoreLocation::Postgres(_), None) => Err(crate::audit::store::StoreError::Invalid(
                "event store not opened".into(),
            )),
        }
    };
    let (store, problem) = match (sink, &config.events.store) {
        (Some(sink), _) => (Some(sink), None),
        (None, None) => (None, None),
        (None, Some(sc)) => match open_sink(sc) {
            Ok(s) => (Some(s), None),
            Err(e) if sc.on_error == StoreOnError::JsonlOnly => {
                tracing::error!(error = %e, "EVENT STORE UNAVAILABLE: serving on JSON lines only (on_store_error = \"jsonl_only\"); review, report and /api/events see nothing new");
                (None, Some(e.to_string()))
            }
            Err(e) => return Err(StartError::Store(e)),
        },
    };
    let auditor = Auditor::start_with(AuditOptions {
        jsonl: config.events.jsonl.clone(),
        rotation: config.events.rotation,
        allow_interval: config.events.allow_log_interval,
        store,
        when_full: config.events.when_full,
        capacity: config.events.queue_capacity,
        alerts: (!config.alerts.is_empty()).then(|| Alerter::new(config.alerts.clone())),
        origin: Arc::new(crate::audit::event::Origin::new(
            config.events.instance.as_deref(),
        )),
        outputs: config.events.outputs.clone(),
    })?;
    if let Some(p) = problem {
        auditor.set_degraded(p);
    }
    if let Some(h) = pg_health {
        let _ = auditor.stats.shared_store.set(h);
    }
    let (history, history_sync, history_link) = match config.history_redis.clone() {
        Some(link) => {
            let (store, health, handle) = crate::history::redis_link::start(link);
            (store, Some(health), Some(handle))
        }
        None => (
            Arc::new(crate::history::MemoryHistory::new()) as Arc<dyn crate::history::HistoryStore>,
            None,
            None,
        ),
    };
    let mut shared = Shared::with_history(state, auditor, history, history_sync);
    shared.scim = scim;
    let shared = Arc::new(shared);
    reload::report_data(&shared.state.load(), &shared.auditor.stats);
    // Identity providers' keys, before the first request needs them.
    crate::identity::start_key_refresh(KEY_FETCH_WAIT).await;
    let (stop_admin, stop_admin_rx) = tokio::sync::watch::channel(false);
    let admin_addr = match &config.admin {
        Some(ac) => {
            let db = config.events.store.as_ref().map(|s| s.location.clone());
            Some(
                crate::admin::serve(ac, config.scim.as_ref(), db, shared.clone(), stop_admin_rx)
                    .await?,
            )
        }
        None => None,
    };
    let listeners = Arc::new(ListenerSet::start(shared.clone(), config.listeners, DRAIN).await?);
    let addrs = listeners.addrs().await;
    shared
        .serving
        .store(true, std::sync::atomic::Ordering::Release);
    Ok(Running {
        history_link,
        addrs,
        admin_addr,
        stop_admin,
        shared,
        listeners,
    })
}

/// How long a start or reload waits for identity providers' keys
/// ([`crate::identity::KEY_FETCH_WAIT`]).
pub const KEY_FETCH_WAIT: Duration = crate::identity::KEY_FETCH_WAIT;

/// How long in-flight requests and tunnels get to finish after a stop is asked for.
pub const DRAIN: Duration = Duration::from_secs(30);

impl Running {
    /// The bound address of listener `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// One line naming what serves where, for the log and `systemctl status`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .addrs
            .iter()
            .map(|(name, addr)| format!("{name} on {addr}"))
            .collect();
        if let Some(a) = self.admin_addr {
            parts.push(format!("admin on {a}"));
        }
        format!("serving {}", parts.join(", "))
    }

    /// Stops accepting, drains, and flushes every event to its sink.
    pub async fn shutdown(self) {
        self.shared.stopping.send_replace(true);
        self.listeners.shutdown().await;
        let _ = self.stop_admin.send(true);
        if let Some(link) = self.history_link {
            // What the drained requests recorded goes out to the other instances.
            link.stop(Duration::from_secs(2)).await;
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.auditor.flush()).await;
    }
}
