//! The HTTP listeners: accept, serve HTTP/1.1, and shut down gracefully.
//!
//! Each accepted connection gets a hyper connection task whose service is
//! [`handler::handle`]; everything a request needs is reached through one `Arc` per connection,
//! so the per-request path clones nothing but that.

pub mod handler;
mod refuse;
mod upstream;
mod whoami;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// Pooled upstream client (absent for built-in upstreams).
    pub upstream: Option<upstream::UpstreamClient>,
    /// State shared by all listeners.
    pub shared: Arc<Shared>,
    /// Connections and upgraded tunnels, so shutdown can wait for them.
    pub tasks: TaskTracker,
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
        let upstream = match &cfg.upstream {
            Upstream::Http(uri) => Some(upstream::UpstreamClient::new(uri, cfg.connect_timeout)),
            Upstream::Whoami => None,
        };
        let trusted = TrustedProxies::new(cfg.trusted_proxies.iter().copied());
        Ok(BoundListener {
            ctx: Arc::new(ListenerCtx {
                cfg,
                trusted,
                upstream,
                shared,
                tasks: TaskTracker::new(),
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
                        tracker.spawn(serve_connection(self.ctx.clone(), stream, peer, shutdown.clone()));
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

async fn serve_connection(
    ctx: Arc<ListenerCtx>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let svc_ctx = ctx.clone();
    let service = service_fn(move |req| handler::handle(svc_ctx.clone(), peer, req));
    let client_spoke_last = Arc::new(AtomicBool::new(false));
    let stream = Watched {
        inner: stream,
        client_spoke_last: client_spoke_last.clone(),
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.cfg.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        res = conn.as_mut() => res,
        _ = shutdown.changed() => {
            // Finish the request in flight, then close instead of waiting for the next one.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // hyper's header read timeout also fires on a keep-alive connection that is simply idle
        // after its last response (or on one that never sent a byte): that is a client that is
        // done, not a slow or broken one, and must not become a "malformed request" event.
        if e.is_timeout() && !client_spoke_last.load(Ordering::Relaxed) {
            tracing::debug!(%peer, "idle connection closed");
            return;
        }
        handler::connection_error(&ctx, peer, &e);
    }
}

/// The client socket, noting whether the client sent bytes after our last write, so an idle
/// keep-alive connection can be told from a client that stalls halfway through its headers.
struct Watched {
    inner: tokio::net::TcpStream,
    client_spoke_last: Arc<AtomicBool>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.client_spoke_last.store(true, Ordering::Relaxed);
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.client_spoke_last.store(false, Ordering::Relaxed);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.client_spoke_last.store(false, Ordering::Relaxed);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
