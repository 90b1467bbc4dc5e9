//! Starting and stopping the gateway: load, bind every listener, serve, drain.
//!
//! Used by `locgate run` and by the integration tests, which start the real server in-process on
//! port 0 and read back the bound addresses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::Auditor;
use crate::config::Config;
use crate::listeners::ListenerSet;
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
    /// Nothing to serve.
    #[error("{0}: no [[listener]] is configured")]
    NoListener(String),
}

/// A gateway that is serving.
pub struct Running {
    /// Listener name and the address it bound.
    pub addrs: Vec<(String, SocketAddr)>,
    /// Shared state (tests read counters from it).
    pub shared: Arc<Shared>,
    /// The serving listeners (a reload may add, remove or change them).
    pub listeners: Arc<ListenerSet>,
}

/// Loads data, binds every listener and starts serving. Must run inside a Tokio runtime.
pub async fn start(mut config: Config) -> Result<Running, StartError> {
    if config.listeners.is_empty() {
        return Err(StartError::NoListener(config.origin));
    }
    let listeners = std::mem::take(&mut config.listeners);
    let events = config.events.clone();
    let state = RuntimeState::from_config(config)?;
    let auditor = Auditor::start(events.jsonl, events.allow_log_interval)?;
    let shared = Arc::new(Shared::new(state, auditor));
    let listeners = Arc::new(ListenerSet::start(shared.clone(), listeners, DRAIN).await?);
    let addrs = listeners.addrs().await;
    Ok(Running {
        addrs,
        shared,
        listeners,
    })
}

/// How long in-flight requests and tunnels get to finish after a stop is asked for.
pub const DRAIN: Duration = Duration::from_secs(30);

impl Running {
    /// The bound address of listener `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Stops accepting, drains, and flushes every event to its sink.
    pub async fn shutdown(self) {
        self.listeners.shutdown().await;
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.auditor.flush()).await;
    }
}
