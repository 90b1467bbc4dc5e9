//! What every connection of one listener shares, and what one connection learned before its
//! first request.
//!
//! [`ListenerCtx`] is built once per configured listener (and again when a reload changes it);
//! every layer above the edge (the HTTP exchange, the pass-through relays) reaches the listener's
//! settings, trust lists, caps and the gateway's shared state through it, so a connection task
//! clones one `Arc` and nothing else. [`ConnMeta`] carries what the connection layer learned
//! (TLS facts, the client certificate's identity, who sent a PROXY header) up to the HTTP engines.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use tokio_util::task::TaskTracker;

use super::limits::Limits;
use super::tls::TlsTerminator;
use crate::client_addr::TrustedProxies;
use crate::config::{ListenerConfig, Upstream};
use crate::identity::{Identity, SessionStore, Who};
use crate::state::Shared;

/// Everything a connection on one listener needs.
pub struct ListenerCtx {
    /// The listener's configuration.
    pub cfg: ListenerConfig,
    /// Parsed `trusted_proxies`: whose forwarding headers (and PROXY headers) are believed.
    pub trusted: TrustedProxies,
    /// Parsed `identity_proxies`: whose identity headers are believed.
    pub identity_proxies: TrustedProxies,
    /// Where allowed HTTP requests go (absent for built-in upstreams and pass-through).
    pub origin: Option<Origin>,
    /// State shared by all listeners.
    pub shared: Arc<Shared>,
    /// Connections and upgraded tunnels, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Sessions learned at login (when `session` is configured).
    pub sessions: Option<SessionStore>,
    /// Identity headers stripped from requests that do not come from an identity proxy.
    pub identity_headers: Vec<http::HeaderName>,
    /// Connection caps (total, per client).
    pub limits: Arc<Limits>,
    /// TLS termination, when configured (reloadable: [`super::reload_tls`]).
    pub tls: Option<Arc<TlsTerminator>>,
    /// This listener's decision counters (`/metrics` labels them with its name).
    pub counters: Arc<crate::audit::stats::ListenerCounters>,
}

impl ListenerCtx {
    /// Builds the context of `cfg`: certificates, caps, trust list, session store. A bad
    /// certificate or session setting is an error naming the listener, so it stops a start (or
    /// refuses a reload) before anything is bound.
    pub fn new(cfg: ListenerConfig, shared: Arc<Shared>) -> std::io::Result<Self> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let tls = match &cfg.edge.tls {
            Some(t) => Some(TlsTerminator::load(&cfg.name, t).map_err(|e| invalid(e.to_string()))?),
            None => None,
        };
        let origin = match &cfg.upstream {
            Upstream::Http(uri) => Some(Origin::new(uri)),
            Upstream::Whoami | Upstream::Addr(_) => None,
        };
        let limits = Limits::new(
            cfg.edge.max_connections,
            cfg.edge.max_connections_per_client,
        );
        let trusted = TrustedProxies::new(cfg.trusted_proxies.iter().copied());
        let identity_proxies = TrustedProxies::new(cfg.identity_proxies.iter().copied());
        let sessions = match &cfg.session {
            Some(sc) => Some(
                SessionStore::new(sc)
                    .map_err(|e| invalid(format!("listener {}: session: {e}", cfg.name)))?,
            ),
            None => None,
        };
        let identity_headers = cfg.identity.trusted_header_names();
        let counters = shared.auditor.stats.listener(&cfg.name);
        Ok(ListenerCtx {
            cfg,
            trusted,
            identity_proxies,
            origin,
            shared,
            tasks: TaskTracker::new(),
            sessions,
            identity_headers,
            limits,
            tls,
            counters,
        })
    }

    /// What the connection's `peer` (the address the engines serve: the socket peer, or the
    /// source a PROXY header named) may tell us. Trust is per purpose: forwarding headers are
    /// believed from `trusted_proxies`, an identity header only from `identity_proxies`. On a
    /// `proxy_protocol` listener the balancer passed the client's own bytes through, so
    /// forwarding headers are never believed there, and an identity header only when a PROXY
    /// header named a source that is an identity proxy (not after `UNKNOWN` / v2 `LOCAL`).
    pub fn trust(&self, peer: SocketAddr, meta: &ConnMeta) -> PeerTrust {
        if self.cfg.edge.proxy_protocol {
            return PeerTrust {
                forwarder: false,
                identity: meta.proxied_by.is_some() && self.identity_proxies.contains(peer.ip()),
            };
        }
        PeerTrust {
            forwarder: self.trusted.contains(peer.ip()),
            identity: self.identity_proxies.contains(peer.ip()),
        }
    }

    /// Whether this listener can learn who is behind a request at all (identity sources or a
    /// session store). Without that, and without a directory, the global rules decide alone.
    pub fn identifies(&self) -> bool {
        !self.cfg.identity.is_empty() || self.sessions.is_some()
    }
}

/// What one peer is believed for, decided once per request by [`ListenerCtx::trust`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerTrust {
    /// Its forwarding headers (`X-Forwarded-For`, `Forwarded`) name the client.
    pub forwarder: bool,
    /// Its identity headers (`header` sources) name the employee.
    pub identity: bool,
}

/// Where one listener sends its HTTP traffic, and the connections to it that are idle.
#[derive(Debug)]
pub struct Origin {
    /// `host:port` to connect to.
    pub addr: String,
    /// Connections whose last response was read to its end, kept between client connections.
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

/// Most idle connections kept per origin.
const IDLE_MAX: usize = 256;
/// An idle connection older than this is closed rather than reused: origins close idle
/// keep-alive connections after a few seconds to minutes, and a request sent just as they do
/// fails.
const IDLE_FOR: Duration = Duration::from_secs(15);

impl Origin {
    /// The origin of `uri` (validated by config as `http://host[:port]`).
    pub fn new(uri: &http::Uri) -> Self {
        let host = uri.host().unwrap_or("127.0.0.1");
        let port = uri.port_u16().unwrap_or(80);
        let addr = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Origin {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection to the origin, most recently used first. A client that opens a
    /// connection per request (no keep-alive, or a new TLS handshake each time) then costs no
    /// new upstream connection. One that the origin has closed, that has bytes waiting (an
    /// answer nobody asked for) or that idled too long is closed instead.
    pub fn take_idle(&self) -> Option<TcpStream> {
        loop {
            let (stream, since) = self.idle.lock().ok()?.pop()?;
            if is_quiet(&stream) && since.elapsed() < IDLE_FOR {
                return Some(stream);
            }
        }
    }

    /// Keeps a connection whose last exchange ended cleanly (response read to its end, nothing
    /// buffered) for the next client connection; beyond [`IDLE_MAX`] it is closed.
    pub fn put_idle(&self, stream: TcpStream) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_MAX
        {
            idle.push((stream, Instant::now()));
        }
    }
}

/// Whether an idle connection has nothing waiting: no bytes (an answer nobody asked for, which
/// would become the answer to the next request) and no end of stream. A connection that is not
/// quiet must be closed, never reused; the probe consumes what it finds.
pub fn is_quiet(stream: &TcpStream) -> bool {
    matches!(
        stream.try_read(&mut [0u8; 1]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
}

/// What the connection layer learned before the first request (TLS facts, the client
/// certificate's identity). Empty, and free, on plain HTTP connections.
#[derive(Debug, Default, Clone)]
pub struct ConnMeta {
    /// Set on TLS connections.
    pub tls: Option<Arc<TlsInfo>>,
    /// The load balancer that sent a PROXY header naming the client (the socket peer). `None`
    /// without a PROXY header, and after one without an address (v1 `UNKNOWN`, v2 `LOCAL`),
    /// when the client address is the balancer's own.
    pub proxied_by: Option<IpAddr>,
    /// The client's own TCP socket, for the kernel's measurements (`TCP_INFO`); absent when the
    /// socket peer is not the client (a PROXY-protocol balancer).
    pub fd: Option<std::os::fd::RawFd>,
}

impl ConnMeta {
    /// The scheme for `X-Forwarded-Proto`.
    pub fn proto(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The identity the connection itself proves (client certificate), as a starting [`Who`].
    pub fn who(&self) -> Who {
        match &self.tls {
            Some(t) => Who {
                identity: t.identity.clone(),
                problems: t.problems.clone(),
                claims: t.identity.iter().cloned().collect(),
                ..Who::default()
            },
            None => Who::default(),
        }
    }
}

/// One TLS connection's facts, shared by its requests.
#[derive(Debug, Default)]
pub struct TlsInfo {
    /// For the event's `tls.*`.
    pub out: crate::audit::TlsOut,
    /// The verified client certificate's identity (mTLS).
    pub identity: Option<Identity>,
    /// Why the client certificate gave no identity.
    pub problems: Vec<String>,
}
