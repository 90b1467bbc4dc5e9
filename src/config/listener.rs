//! `[[listener]]`: one entry per address locgate listens on.
//!
//! The largest section of the config, kept in its own file so [`super::Config::parse`] reads as a
//! list of sections. The edge part of a listener (kind, TLS, PROXY protocol, limits) is checked
//! in [`super::edge`]; this file checks the rest and the listeners against each other.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde::Deserialize;
use toml::Spanned;

use super::edge::{self, EdgeConfig, Kind, SendProxy, TlsConfig};
use super::{ErrAt, Upstream};
use crate::client_addr::ChainHeader;
use crate::identity::{Extractors, SessionConfig, SessionStore, SourceConfig};
use crate::policy::Mode;
use crate::values::{ConfigError, Dur, Net};

/// One listener.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Name in events and logs.
    pub name: String,
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Where allowed requests go.
    pub upstream: Upstream,
    /// Monitor or enforce.
    pub mode: Mode,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNetwork>,
    /// Which forwarding header the trusted proxies maintain. Pinned (default `x-forwarded-for`)
    /// because a proxy that appends to one header but passes the other through untouched would
    /// let a client choose its own address if both were read.
    pub client_ip_header: ChainHeader,
    /// Send `X-Locgate-*` headers to the upstream.
    pub annotate: bool,
    /// Time allowed to connect to the upstream before answering 502.
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response headers before answering 504.
    pub response_timeout: Duration,
    /// Time a client has to send its request headers (slowloris defence).
    pub header_read_timeout: Duration,
    /// How long a client may pause while sending a request body (HTTP/1.1 and HTTP/2); a
    /// login form body stalled longer is refused with 408, any other body is abandoned (499).
    pub body_read_timeout: Duration,
    /// How long an idle keep-alive connection is kept open waiting for the next request.
    pub keepalive_timeout: Duration,
    /// Largest request head accepted (request line and headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Identity sources, tried in order (keys already loaded).
    pub identity: Extractors,
    /// Session-cookie learning, when configured.
    pub session: Option<SessionConfig>,
    /// Kind, TLS, PROXY protocol and connection limits (issue 4; `config/edge.rs`).
    pub edge: EdgeConfig,
}

/// One `[[listener]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListener {
    name: Spanned<String>,
    bind: Spanned<SocketAddr>,
    upstream: Upstream,
    #[serde(default = "default_mode")]
    mode: Mode,
    #[serde(default)]
    trusted_proxies: Vec<Net>,
    #[serde(default = "default_client_ip_header")]
    client_ip_header: ChainHeader,
    #[serde(default)]
    annotate: bool,
    connect_timeout: Option<Dur>,
    response_timeout: Option<Dur>,
    header_read_timeout: Option<Dur>,
    body_read_timeout: Option<Dur>,
    keepalive_timeout: Option<Dur>,
    max_header_bytes: Option<usize>,
    #[serde(default = "no_identity")]
    identity: Spanned<Vec<SourceConfig>>,
    session: Option<Spanned<SessionConfig>>,
    #[serde(default)]
    kind: Kind,
    tls: Option<TlsConfig>,
    #[serde(default)]
    proxy_protocol: bool,
    send_proxy_protocol: Option<SendProxy>,
    #[serde(default)]
    sni_routes: std::collections::BTreeMap<String, String>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    idle_timeout: Option<Dur>,
}

fn no_identity() -> Spanned<Vec<SourceConfig>> {
    Spanned::new(0..0, Vec::new())
}

fn default_client_ip_header() -> ChainHeader {
    ChainHeader::XForwardedFor
}

fn default_mode() -> Mode {
    Mode::Monitor
}

/// Checks every listener in file order; a name or address used twice is reported at the second.
pub(super) fn check_all(
    raw: Vec<RawListener>,
    base: &Path,
    err: ErrAt<'_>,
) -> Result<Vec<ListenerConfig>, ConfigError> {
    let mut listeners = Vec::new();
    for l in raw {
        if listeners
            .iter()
            .any(|x: &ListenerConfig| x.name == *l.name.get_ref())
        {
            return Err(err(
                l.name.span(),
                format!("listener name `{}` is used twice", l.name.get_ref()),
            ));
        }
        // Port 0 (the OS picks) never clashes; TCP and UDP listeners may share a port.
        if l.bind.get_ref().port() != 0
            && listeners.iter().any(|x: &ListenerConfig| {
                x.bind == *l.bind.get_ref() && (x.edge.kind == Kind::Udp) == (l.kind == Kind::Udp)
            })
        {
            return Err(err(
                l.bind.span(),
                format!("address {} is bound by two listeners", l.bind.get_ref()),
            ));
        }
        listeners.push(check(l, base, err)?);
    }
    Ok(listeners)
}

/// Checks one listener on its own: identity sources (keys are loaded here), session, edge.
fn check(l: RawListener, base: &Path, err: ErrAt<'_>) -> Result<ListenerConfig, ConfigError> {
    let identity = Extractors::from_config(l.identity.get_ref(), base)
        .map_err(|e| err(l.identity.span(), e))?;
    if let Some(sc) = &l.session
        && let Err(e) = SessionStore::new(sc.get_ref())
    {
        return Err(err(sc.span(), e));
    }
    let edge = edge::RawEdge {
        kind: l.kind,
        tls: l.tls,
        proxy_protocol: l.proxy_protocol,
        send_proxy_protocol: l.send_proxy_protocol,
        sni_routes: l.sni_routes,
        max_connections: l.max_connections,
        max_connections_per_client: l.max_connections_per_client,
        idle_timeout: l.idle_timeout,
    }
    .check(&l.upstream, base)
    .map_err(|e| {
        err(
            l.name.span(),
            format!("listener `{}`: {e}", l.name.get_ref()),
        )
    })?;
    Ok(ListenerConfig {
        edge,
        identity,
        session: l.session.map(Spanned::into_inner),
        name: l.name.into_inner(),
        bind: l.bind.into_inner(),
        upstream: l.upstream,
        mode: l.mode,
        trusted_proxies: l.trusted_proxies.into_iter().map(|n| n.0).collect(),
        client_ip_header: l.client_ip_header,
        annotate: l.annotate,
        connect_timeout: l.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
        response_timeout: l.response_timeout.map_or(Duration::from_secs(60), |d| d.0),
        header_read_timeout: l
            .header_read_timeout
            .map_or(Duration::from_secs(10), |d| d.0),
        body_read_timeout: l.body_read_timeout.map_or(Duration::from_secs(60), |d| d.0),
        keepalive_timeout: l.keepalive_timeout.map_or(Duration::from_secs(60), |d| d.0),
        max_header_bytes: l.max_header_bytes.unwrap_or(64 * 1024),
    })
}
