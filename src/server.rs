//! Starting and stopping the gateway: load, bind every listener, serve, drain.
//!
//! Used by `locgate run` and by the integration tests, which start the real server in-process on
//! port 0 and read back the bound addresses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::Auditor;
use crate::config::Config;
use crate::proxy::BoundListener;
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
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Loads data, binds every listener and starts serving. Must run inside a Tokio runtime.
pub async fn start(config: Config) -> Result<Running, StartError> {
    if config.listeners.is_empty() {
        return Err(StartError::NoListener(config.origin));
    }
    let mut state = RuntimeState::load(
        &config.data,
        config.policy,
        config.employees.as_ref(),
        config.history,
    )?;
    state.wire_rules = config.network;
    let auditor = Auditor::start(
        config.events.jsonl.clone(),
        config.events.allow_log_interval,
    )?;
    let shared = Arc::new(Shared::new(state, auditor));
    let mut bound = Vec::new();
    for l in config.listeners {
        bound.push(BoundListener::bind(l, shared.clone()).await?);
    }
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for listener in bound {
        let addr = listener.local_addr()?;
        let name = listener.name().to_string();
        tracing::info!(listener = %name, %addr, upstream = %listener.upstream(), mode = listener.mode(), "listening");
        addrs.push((name, addr));
        tasks.push(tokio::spawn(listener.serve(stop_rx.clone(), DRAIN)));
    }
    Ok(Running {
        addrs,
        shared,
        stop,
        tasks,
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
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.auditor.flush()).await;
    }
}
