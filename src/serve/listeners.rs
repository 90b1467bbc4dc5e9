//! The set of serving listeners, changeable while running.
//!
//! A config reload may add, remove or change `[[listener]]` sections. Listeners whose
//! configuration did not change keep their socket and their connections untouched; removed ones
//! stop accepting and drain like at shutdown; added ones are bound and start serving. New
//! addresses are all bound before anything is stopped, so a port conflict refuses the whole
//! change and nothing is lost. A listener changed in place (same address, other settings) is
//! stopped and bound again on the same address: connections it has keep being served, new ones
//! are refused for the moment between the two sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::listener::Listener;
use crate::config::ListenerConfig;
use crate::state::Shared;

/// What identifies a listener's configuration: equal keys mean nothing about it changed.
/// (Debug output covers every field; key material is summarised, so rotating a key file alone
/// is not seen: that needs a restart.)
fn key(cfg: &ListenerConfig) -> String {
    format!("{cfg:?}")
}

struct Live {
    name: String,
    key: String,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Inner {
    live: Vec<Live>,
    /// Listeners stopped by a reload, still draining; shutdown waits for them too.
    draining: Vec<JoinHandle<()>>,
}

/// Listeners added and removed by [`ListenerSet::apply`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Names of listeners started (new or changed).
    pub started: Vec<String>,
    /// Names of listeners stopped (removed or changed).
    pub stopped: Vec<String>,
}

impl Change {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.stopped.is_empty()
    }
}

/// All serving listeners.
pub struct ListenerSet {
    shared: Arc<Shared>,
    drain: Duration,
    inner: tokio::sync::Mutex<Inner>,
}

impl ListenerSet {
    /// Binds every listener (any failure: none serves), then starts them.
    pub async fn start(
        shared: Arc<Shared>,
        configs: Vec<ListenerConfig>,
        drain: Duration,
    ) -> std::io::Result<Self> {
        let set = ListenerSet {
            shared,
            drain,
            inner: tokio::sync::Mutex::new(Inner::default()),
        };
        let mut bound = Vec::new();
        for cfg in configs {
            let k = key(&cfg);
            bound.push((k, Listener::bind(cfg, set.shared.clone()).await?));
        }
        let mut inner = set.inner.lock().await;
        for (k, l) in bound {
            inner.live.push(set.spawn(k, l)?);
        }
        drop(inner);
        Ok(set)
    }

    fn spawn(&self, key: String, listener: Listener) -> std::io::Result<Live> {
        let addr = listener.local_addr()?;
        let name = listener.name().to_string();
        tracing::info!(listener = %name, %addr, upstream = %listener.upstream(), mode = listener.mode(), "listening");
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(listener.serve(stop_rx, self.drain));
        Ok(Live {
            name,
            key,
            addr,
            stop,
            task,
        })
    }

    /// Name and bound address of every serving listener.
    pub async fn addrs(&self) -> Vec<(String, SocketAddr)> {
        let inner = self.inner.lock().await;
        inner
            .live
            .iter()
            .map(|l| (l.name.clone(), l.addr))
            .collect()
    }

    /// Makes the serving set match `configs`. Unchanged listeners are kept as they are. On a
    /// bind error for a new address nothing changes and the error names the listener.
    pub async fn apply(&self, configs: Vec<ListenerConfig>) -> std::io::Result<Change> {
        let mut inner = self.inner.lock().await;
        let wanted: Vec<(String, ListenerConfig)> =
            configs.into_iter().map(|c| (key(&c), c)).collect();
        let stop: Vec<usize> = (0..inner.live.len())
            .filter(|i| !wanted.iter().any(|(k, _)| *k == inner.live[*i].key))
            .collect();
        let start: Vec<(String, ListenerConfig)> = wanted
            .into_iter()
            .filter(|(k, _)| !inner.live.iter().any(|l| l.key == *k))
            .collect();
        // Addresses a stopping listener holds can only be bound after it lets go.
        let held = |cfg: &ListenerConfig| stop.iter().any(|i| inner.live[*i].addr == cfg.bind);
        let (later, now): (Vec<_>, Vec<_>) = start.into_iter().partition(|(_, c)| held(c));
        let mut bound = Vec::new();
        for (k, cfg) in now {
            bound.push((k, Listener::bind(cfg, self.shared.clone()).await?));
        }
        let mut change = Change::default();
        for i in stop.into_iter().rev() {
            let l = inner.live.remove(i);
            tracing::info!(listener = %l.name, addr = %l.addr, "listener removed or changed by reload: stopping, in-flight requests drain");
            let _ = l.stop.send(true);
            change.stopped.push(l.name);
            inner.draining.push(l.task);
        }
        for (k, l) in bound {
            change.started.push(l.name().to_string());
            let live = self.spawn(k, l)?;
            inner.live.push(live);
        }
        for (k, cfg) in later {
            let name = cfg.name.clone();
            let l = rebind(cfg, self.shared.clone()).await?;
            change.started.push(name);
            let live = self.spawn(k, l)?;
            inner.live.push(live);
        }
        inner.draining.retain(|t| !t.is_finished());
        Ok(change)
    }

    /// Stops every listener, waits for in-flight requests (up to the drain time).
    pub async fn shutdown(&self) {
        let mut inner = self.inner.lock().await;
        for l in &inner.live {
            let _ = l.stop.send(true);
        }
        let live = std::mem::take(&mut inner.live);
        let draining = std::mem::take(&mut inner.draining);
        drop(inner);
        for l in live {
            let _ = l.task.await;
        }
        for t in draining {
            let _ = t.await;
        }
    }
}

/// Binds an address a stopping listener is releasing: it drops its socket as soon as it sees
/// the stop, so a few short retries suffice.
async fn rebind(cfg: ListenerConfig, shared: Arc<Shared>) -> std::io::Result<Listener> {
    let mut last = None;
    for _ in 0..50 {
        match Listener::bind(cfg.clone(), shared.clone()).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("cannot bind")))
}
