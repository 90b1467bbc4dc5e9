//! The HTTP listeners: accept, serve, and shut down gracefully.
//!
//! Each accepted connection is one task running the HTTP/1.1 engine ([`h1::serve`]); everything
//! a request needs is reached through one `Arc` per connection, so the request path clones
//! nothing but that.

pub mod exchange;
pub mod h1;
mod refuse;
mod tcp_info;
mod upstream;
mod whoami;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::client_addr::TrustedProxies;
use crate::config::{ListenerConfig, Upstream};
use crate::state::Shared;

/// Everything a request on one listener needs.
pub struct ListenerCtx {
    /// The listener's configuration.
    pub cfg: ListenerConfig,
    /// Parsed `trusted_proxies`.
    pub trusted: TrustedProxies,
    /// Where allowed requests go (absent for built-in upstreams).
    pub origin: Option<upstream::Origin>,
    /// State shared by all listeners.
    pub shared: Arc<Shared>,
    /// Connections and upgraded tunnels, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Sessions learned at login (when `session` is configured).
    pub sessions: Option<crate::identity::SessionStore>,
    /// Identity headers stripped from requests of untrusted peers.
    pub identity_headers: Vec<http::HeaderName>,
}

/// A bound listener, ready to serve.
pub struct BoundListener {
    ctx: Arc<ListenerCtx>,
    socket: TcpListener,
}

impl BoundListener {
    /// Binds `cfg.bind`. Binding happens before serving so a port conflict stops the start.
    pub async fn bind(cfg: ListenerConfig, shared: Arc<Shared>) -> std::io::Result<Self> {
        let socket = TcpListener::bind(cfg.bind).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("listener {}: cannot bind {}: {e}", cfg.name, cfg.bind),
            )
        })?;
        let origin = match &cfg.upstream {
            Upstream::Http(uri) => Some(upstream::Origin::new(uri)),
            Upstream::Whoami => None,
        };
        let trusted = TrustedProxies::new(cfg.trusted_proxies.iter().copied());
        let sessions = match &cfg.session {
            Some(sc) => Some(crate::identity::SessionStore::new(sc).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("listener {}: session: {e}", cfg.name),
                )
            })?),
            None => None,
        };
        let identity_headers = cfg.identity.trusted_header_names();
        Ok(BoundListener {
            ctx: Arc::new(ListenerCtx {
                cfg,
                trusted,
                origin,
                shared,
                tasks: TaskTracker::new(),
                sessions,
                identity_headers,
            }),
            socket,
        })
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.ctx.cfg.name
    }

    /// Where allowed traffic goes.
    pub fn upstream(&self) -> &Upstream {
        &self.ctx.cfg.upstream
    }

    /// `monitor` or `enforce`.
    pub fn mode(&self) -> &'static str {
        self.ctx.cfg.mode.as_str()
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Accepts until `shutdown` fires, then lets open connections (and upgraded tunnels) finish
    /// within `drain`.
    pub async fn serve(self, shutdown: tokio::sync::watch::Receiver<bool>, drain: Duration) {
        let tracker = self.ctx.tasks.clone();
        let name = self.ctx.cfg.name.clone();
        let mut stop = shutdown.clone();
        loop {
            tokio::select! {
                accepted = self.socket.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
                        tracker.spawn(h1::serve(self.ctx.clone(), stream, peer, shutdown.clone(), Some(fd)));
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(listener = %name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = stop.changed() => break,
            }
        }
        drop(self.socket);
        tracker.close();
        tracing::info!(listener = %name, open = tracker.len(), "stopped accepting; draining connections");
        if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
            tracing::warn!(listener = %name, open = tracker.len(), "connections still open after the drain deadline");
        }
    }
}
