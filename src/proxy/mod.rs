//! The HTTP listeners: accept, serve, and shut down gracefully.
//!
//! Each accepted connection is one task running the HTTP/1.1 engine ([`h1::serve`]); everything
//! a request needs is reached through one `Arc` per connection, so the request path clones
//! nothing but that.

pub mod exchange;
pub mod h1;
pub mod h2;
mod refuse;
mod tcp_info;
mod upstream;
mod whoami;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::task::TaskTracker;

use crate::config::Kind;
use crate::listen::limits::Limits;
use crate::listen::tls::TlsTerminator;

use crate::client_addr::TrustedProxies;
use crate::config::{ListenerConfig, Upstream};
use crate::state::Shared;

/// How long a client may pause while sending a request body (HTTP/1.1 and HTTP/2 alike).
const BODY_IDLE: Duration = Duration::from_secs(60);

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
    /// Connection caps (total, per client).
    pub limits: Arc<Limits>,
    /// TLS termination, when configured (reloadable: [`crate::listen::reload_tls`]).
    pub tls: Option<Arc<TlsTerminator>>,
}

/// The socket of a listener.
enum Socket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// A bound listener, ready to serve.
pub struct BoundListener {
    ctx: Arc<ListenerCtx>,
    socket: Socket,
}

impl BoundListener {
    /// Binds `cfg.bind`. Binding happens before serving so a port conflict stops the start.
    pub async fn bind(cfg: ListenerConfig, shared: Arc<Shared>) -> std::io::Result<Self> {
        // Certificates first: a bad file must stop the start before anything is bound.
        let tls = match &cfg.edge.tls {
            Some(t) => Some(
                TlsTerminator::load(&cfg.name, t)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let bind_err = |e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!("listener {}: cannot bind {}: {e}", cfg.name, cfg.bind),
            )
        };
        let socket = match cfg.edge.kind {
            Kind::Udp => Socket::Udp(UdpSocket::bind(cfg.bind).await.map_err(bind_err)?),
            Kind::Http | Kind::Tcp => {
                Socket::Tcp(TcpListener::bind(cfg.bind).await.map_err(bind_err)?)
            }
        };
        let origin = match &cfg.upstream {
            Upstream::Http(uri) => Some(upstream::Origin::new(uri)),
            Upstream::Whoami | Upstream::Addr(_) => None,
        };
        let limits = Limits::new(
            cfg.edge.max_connections,
            cfg.edge.max_connections_per_client,
        );
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
                limits,
                tls,
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
        match &self.socket {
            Socket::Tcp(s) => s.local_addr(),
            Socket::Udp(s) => s.local_addr(),
        }
    }

    /// Accepts until `shutdown` fires, then lets open connections (and upgraded tunnels,
    /// pass-through connections, UDP flows) finish within `drain`.
    pub async fn serve(self, shutdown: tokio::sync::watch::Receiver<bool>, drain: Duration) {
        let tracker = self.ctx.tasks.clone();
        let name = self.ctx.cfg.name.clone();
        let socket = match self.socket {
            Socket::Udp(udp) => {
                // Drains its own flows (until they go quiet, at most `drain`).
                crate::listen::udp::serve(self.ctx.clone(), udp, shutdown, drain).await;
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
            tokio::select! {
                accepted = socket.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let ctx = self.ctx.clone();
                        let shutdown = shutdown.clone();
                        if plain {
                            let exempt = ctx.trusted.contains(peer.ip());
                            let Some(slot) = ctx.limits.admit_unless(peer.ip(), exempt) else {
                                refuse_over_cap(&ctx, peer);
                                continue;
                            };
                            let meta = exchange::ConnMeta {
                                fd: Some(std::os::fd::AsRawFd::as_raw_fd(&stream)),
                                ..exchange::ConnMeta::default()
                            };
                            tracker.spawn(async move {
                                h1::serve_with(ctx, stream, peer, shutdown, meta).await;
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
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(listener = %name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = stop.changed() => break,
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

/// A client over its connection cap: closed at once, recorded.
fn refuse_over_cap(ctx: &ListenerCtx, client: SocketAddr) {
    exchange::record_refused_connection(
        ctx,
        client,
        "tcp",
        format!(
            "client over its cap of {} open connections",
            ctx.cfg.edge.max_connections_per_client
        ),
    );
}

/// One connection of a TLS, PROXY-protocol or TCP pass-through listener: PROXY header, caps,
/// TLS handshake (ALPN picks the engine), or the pass-through relay.
async fn connection(
    ctx: Arc<ListenerCtx>,
    mut stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut client = peer;
    if ctx.cfg.edge.proxy_protocol {
        if !ctx.trusted.contains(peer.ip()) {
            // Only the named balancers may claim a client address; anyone else is refused
            // rather than served on their socket address, so a misrouted path shows up.
            exchange::record_refused_connection(
                &ctx,
                peer,
                "tcp",
                "PROXY protocol listener: peer is not in trusted_proxies".into(),
            );
            return;
        }
        match crate::listen::proxy_proto::read_header(&mut stream, ctx.cfg.header_read_timeout)
            .await
        {
            Ok(Some(addr)) => client = addr,
            Ok(None) => {}
            Err(e) => {
                exchange::record_refused_connection(&ctx, peer, "tcp", e.to_string());
                return;
            }
        }
    }
    let Some(_slot) = ctx
        .limits
        .admit_unless(client.ip(), ctx.trusted.contains(client.ip()))
    else {
        refuse_over_cap(&ctx, client);
        return;
    };
    if ctx.cfg.edge.kind == Kind::Tcp {
        crate::listen::tcp::serve(ctx, stream, client, peer, local).await;
        return;
    }
    let proxied_by = (client != peer).then_some(peer.ip());
    // Behind a PROXY-protocol balancer the socket RTT is the balancer's, not the client's.
    let fd = proxied_by
        .is_none()
        .then(|| std::os::fd::AsRawFd::as_raw_fd(&stream));
    let Some(tls) = ctx.tls.clone() else {
        let meta = exchange::ConnMeta {
            tls: None,
            proxied_by,
            fd,
        };
        h1::serve_with(ctx, stream, client, shutdown, meta).await;
        return;
    };
    let accept = tls.acceptor().accept(stream);
    let stream = match tokio::time::timeout(tls.handshake_timeout(), accept).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            ctx.shared
                .auditor
                .stats
                .bad_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(listener = %ctx.cfg.name, %client, error = %e, "TLS handshake failed");
            exchange::record_refused_connection(
                &ctx,
                client,
                "tcp",
                format!("TLS handshake failed: {e}"),
            );
            return;
        }
        Err(_) => {
            ctx.shared
                .auditor
                .stats
                .bad_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            exchange::record_refused_connection(
                &ctx,
                client,
                "tcp",
                format!(
                    "TLS handshake not complete within {:?}",
                    tls.handshake_timeout()
                ),
            );
            return;
        }
    };
    let (_, session) = stream.get_ref();
    let meta = exchange::ConnMeta {
        tls: Some(Arc::new(tls_info(session))),
        proxied_by,
        fd,
    };
    if session.alpn_protocol() == Some(b"h2") {
        h2::serve(ctx, stream, client, shutdown, meta).await;
    } else {
        h1::serve_with(ctx, stream, client, shutdown, meta).await;
    }
}

/// What a finished handshake tells the events and the identity step.
fn tls_info(session: &rustls::ServerConnection) -> exchange::TlsInfo {
    let mut info = exchange::TlsInfo::default();
    info.out.server_name = session.server_name().map(str::to_owned);
    info.out.version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => Some("1.3"),
        Some(rustls::ProtocolVersion::TLSv1_2) => Some("1.2"),
        _ => None,
    };
    // rustls only hands over certificates that chained to `client_ca`.
    if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
        use x509_parser::prelude::FromDer;
        if let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(leaf) {
            info.out.client = Some(crate::audit::TlsClient {
                subject: cert.subject().to_string(),
            });
        }
        let found = crate::identity::from_client_cert(leaf);
        info.identity = found.identity;
        info.problems = found.problems;
    }
    info
}
