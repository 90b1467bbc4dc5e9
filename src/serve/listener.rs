//! One configured listener, bound: its socket and its accept loop.
//!
//! Each accepted connection is one task. A plain HTTP listener without PROXY protocol goes
//! straight to the HTTP/1.1 engine (nothing per connection but the caps); every other one is
//! opened by the edge (PROXY header, cap, TLS handshake) and handed to the engine the listener
//! and the client chose: HTTP/1.1, HTTP/2 or TCP pass-through. UDP listeners run their own loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::config::{Kind, ListenerConfig, Upstream};
use crate::edge::context::{ConnMeta, ListenerCtx};
use crate::edge::open::{Stream, open, refuse_over_cap};
use crate::proxy::{h1, h2};
use crate::state::Shared;

/// Connections the kernel holds for a listener before `accept` (it caps the number at
/// `net.core.somaxconn`). The standard library's 128 drops SYNs as soon as a load balancer
/// reconnects a few hundred clients at once, and connections over `max_connections` are meant
/// to wait here, not be dropped (nginx and HAProxy ask for thousands too).
const BACKLOG: u32 = 4096;

/// A listening TCP socket on `addr` with [`BACKLOG`] (address reuse on, as `TcpListener::bind`
/// sets it, so a restart does not wait for old connections' TIME_WAIT).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The socket of a listener.
enum Socket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// A bound listener, ready to serve.
pub struct Listener {
    ctx: Arc<ListenerCtx>,
    socket: Socket,
}

impl Listener {
    /// Binds `cfg.bind`. Binding happens before serving so a port conflict stops the start;
    /// certificates are loaded first, so a bad file stops it before anything is bound.
    pub async fn bind(cfg: ListenerConfig, shared: Arc<Shared>) -> std::io::Result<Self> {
        let ctx = ListenerCtx::new(cfg, shared)?;
        let cfg = &ctx.cfg;
        let bind_err = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!("listener {}: cannot bind {}: {e}", cfg.name, cfg.bind),
            )
        };
        let socket = match cfg.edge.kind {
            Kind::Udp => Socket::Udp(UdpSocket::bind(cfg.bind).await.map_err(bind_err)?),
            Kind::Http | Kind::Tcp => Socket::Tcp(listen(cfg.bind).map_err(bind_err)?),
        };
        Ok(Listener {
            ctx: Arc::new(ctx),
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
        match &self.socket {
            Socket::Tcp(s) => s.local_addr(),
            Socket::Udp(s) => s.local_addr(),
        }
    }

    /// Accepts until `shutdown` fires, then lets open connections (and upgraded tunnels,
    /// pass-through connections, UDP flows) finish within `drain`.
    pub async fn serve(self, shutdown: watch::Receiver<bool>, drain: Duration) {
        let tracker = self.ctx.tasks.clone();
        let name = self.ctx.cfg.name.clone();
        // Who is on the tunnels, as the VPN servers behind this listener say, while it serves.
        let _vpn = crate::vpn::watch(self.ctx.shared.clone(), &self.ctx.cfg.vpn);
        let socket = match self.socket {
            Socket::Udp(udp) => {
                // Drains its own flows (until they go quiet, at most `drain`).
                crate::edge::udp::serve(self.ctx.clone(), udp, shutdown, drain).await;
                tracing::info!(listener = %name, "udp listener stopped");
                return;
            }
            Socket::Tcp(s) => s,
        };
        let local = socket.local_addr().ok();
        // The plain HTTP listener without PROXY protocol keeps the direct path: no per-connection
        // work beyond the caps.
        let plain = self.ctx.tls.is_none()
            && !self.ctx.cfg.edge.proxy_protocol
            && self.ctx.cfg.edge.kind == Kind::Http;
        let mut stop = shutdown.clone();
        loop {
            // The total cap is taken before accepting: excess connections wait in the backlog.
            let permit = tokio::select! {
                p = self.ctx.limits.acquire_total() => match p {
                    Some(p) => p,
                    None => break,
                },
                _ = stop.changed() => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = socket.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(listener = %name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let ctx = self.ctx.clone();
            let shutdown = shutdown.clone();
            if plain {
                let exempt = ctx.trusted.contains(peer.ip());
                let Some(slot) = ctx.limits.admit_unless(peer.ip(), exempt) else {
                    refuse_over_cap(&ctx, peer);
                    continue;
                };
                let meta = ConnMeta {
                    fd: Some(std::os::fd::AsRawFd::as_raw_fd(&stream)),
                    ..ConnMeta::default()
                };
                tracker.spawn(async move {
                    h1::serve(ctx, stream, peer, shutdown, meta).await;
                    drop((slot, permit));
                });
            } else {
                let local = local.unwrap_or(peer);
                tracker.spawn(async move {
                    connection(ctx, stream, peer, local, shutdown).await;
                    drop(permit);
                });
            }
        }
        drop(socket);
        tracker.close();
        tracing::info!(listener = %name, open = tracker.len(), "stopped accepting; draining connections");
        if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
            tracing::warn!(listener = %name, open = tracker.len(), "connections still open after the drain deadline");
        }
    }
}

/// One connection of a TLS, PROXY-protocol or TCP pass-through listener: opened by the edge,
/// then served by the engine the listener runs (pass-through) or the client chose by ALPN.
async fn connection(
    ctx: Arc<ListenerCtx>,
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shutdown: watch::Receiver<bool>,
) {
    let Some(opened) = open(&ctx, stream, peer).await else {
        return;
    };
    let _slot = opened.slot;
    let client = opened.client;
    match opened.stream {
        Stream::Plain(stream) if ctx.cfg.edge.kind == Kind::Tcp => {
            crate::edge::tcp::serve(ctx, stream, client, peer, local).await;
        }
        Stream::Plain(stream) => h1::serve(ctx, stream, client, shutdown, opened.meta).await,
        Stream::Tls(stream) if opened.h2 => {
            h2::serve(ctx, *stream, client, shutdown, opened.meta).await;
        }
        Stream::Tls(stream) => h1::serve(ctx, *stream, client, shutdown, opened.meta).await,
    }
}
