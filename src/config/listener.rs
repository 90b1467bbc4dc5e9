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
    /// Peers whose forwarding headers are believed (load balancers; on a `proxy_protocol`
    /// listener, the peers allowed to send a PROXY header). Never believed for an identity.
    pub trusted_proxies: Vec<IpNetwork>,
    /// Peers that *set* the identity header of a `header` source (an auth proxy such as
    /// oauth2-proxy or mod_auth_mellon). Separate from `trusted_proxies` because a load balancer
    /// passes a client's `X-Remote-User` through untouched: believing it from the balancer would
    /// let anyone name themselves. On a `proxy_protocol` listener the PROXY source is compared.
    pub identity_proxies: Vec<IpNetwork>,
    /// Located warnings found while checking (`file:line: field: ...`), for `validate` and
    /// start to print: valid, but probably not what the operator meant.
    pub warnings: Vec<String>,
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
    /// A GET or HEAD of exactly this path is answered `200 ok` by locgate itself, with no
    /// decision and no event: the balancer's health check is not a suspect. `None`: disabled
    /// (`health_path = ""`).
    pub health_path: Option<String>,
    /// Identity sources, tried in order (keys already loaded).
    pub identity: Extractors,
    /// Session-cookie learning, when configured.
    pub session: Option<SessionConfig>,
    /// How long a verified identity seen here binds the client address to that employee, so
    /// TCP and UDP pass-through from the address is judged as them (`bind_address = "12h"`;
    /// HTTP listeners only; `None`: off).
    pub bind_address: Option<Duration>,
    /// The VPN servers behind a pass-through listener that say who is on its tunnels
    /// (`[[listener.vpn]]`; `config/vpn.rs`).
    pub vpn: Vec<super::vpn::VpnConfig>,
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
    #[serde(default)]
    identity_proxies: Option<Spanned<Vec<Net>>>,
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
    health_path: Option<Spanned<String>>,
    #[serde(default = "no_identity")]
    identity: Spanned<Vec<SourceConfig>>,
    session: Option<Spanned<SessionConfig>>,
    bind_address: Option<Spanned<Dur>>,
    #[serde(default)]
    vpn: Vec<Spanned<super::vpn::RawVpn>>,
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
    udp_coalesce: Option<Dur>,
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

/// Widest network an `identity_proxies` entry may name without a warning: an auth proxy is a
/// host or a handful of hosts; a wider range is a balancer's or a whole subnet's, whose clients'
/// own headers would then be believed.
const IDENTITY_PROXY_WIDEST_V4: u8 = 24;
/// The IPv6 counterpart of [`IDENTITY_PROXY_WIDEST_V4`] (one subnet).
const IDENTITY_PROXY_WIDEST_V6: u8 = 64;

/// `identity_proxies` against the `header` sources: a `header` source needs the list (an
/// error naming the `identity` field otherwise: without it the header would be believed from no
/// one, or, as before, from the balancer), and a wide entry is a warning.
fn check_identity_proxies(
    l: &RawListener,
    err: ErrAt<'_>,
) -> Result<(Vec<IpNetwork>, Vec<String>), ConfigError> {
    let nets: Vec<IpNetwork> = l
        .identity_proxies
        .as_ref()
        .map(|n| n.get_ref().iter().map(|n| n.0).collect())
        .unwrap_or_default();
    let header = l.identity.get_ref().iter().find_map(|s| match s {
        SourceConfig::Header(h) => Some(h.as_str()),
        _ => None,
    });
    if let Some(name) = header
        && nets.is_empty()
    {
        return Err(err(
            l.identity.span(),
            format!(
                "the header source `{name}` needs identity_proxies: list the auth proxy hosts \
                 that set {name} (e.g. identity_proxies = [\"10.0.0.7/32\"]); trusted_proxies \
                 (load balancers) pass a client's own {name} through and are not believed for it"
            ),
        ));
    }
    let mut warnings = Vec::new();
    if let Some(spanned) = &l.identity_proxies {
        for net in &nets {
            let wide = match net {
                IpNetwork::V4(n) => n.prefix() < IDENTITY_PROXY_WIDEST_V4,
                IpNetwork::V6(n) => n.prefix() < IDENTITY_PROXY_WIDEST_V6,
            };
            if wide {
                warnings.push(
                    err(
                        spanned.span(),
                        format!(
                            "{net} is a wide network (wider than /{IDENTITY_PROXY_WIDEST_V4} IPv4 \
                             or /{IDENTITY_PROXY_WIDEST_V6} IPv6): every host in it may name any \
                             employee with an identity header; list only the auth proxy hosts"
                        ),
                    )
                    .to_string(),
                );
            }
        }
    }
    Ok((nets, warnings))
}

/// Checks one listener on its own: identity sources (keys are loaded here), session, edge.
fn check(l: RawListener, base: &Path, err: ErrAt<'_>) -> Result<ListenerConfig, ConfigError> {
    let identity = Extractors::from_config(l.identity.get_ref(), base)
        .map_err(|e| err(l.identity.span(), e))?;
    let (identity_proxies, warnings) = check_identity_proxies(&l, err)?;
    if let Some(sc) = &l.session
        && let Err(e) = SessionStore::new(sc.get_ref())
    {
        return Err(err(sc.span(), e));
    }
    let bind_address = match &l.bind_address {
        None => None,
        Some(d) if l.kind != Kind::Http => {
            return Err(err(
                d.span(),
                "bind_address: only an HTTP listener sees the logins that bind an address; set it \
                 on the SSO listener, and pass-through listeners use the bindings by themselves"
                    .into(),
            ));
        }
        Some(d) if l.identity.get_ref().is_empty() => {
            return Err(err(
                d.span(),
                "bind_address: this listener has no identity sources, so no login can bind an \
                 address; add `identity = [...]`"
                    .into(),
            ));
        }
        Some(d) if d.get_ref().0.is_zero() || d.get_ref().0 > Duration::from_secs(7 * 86_400) => {
            return Err(err(
                d.span(),
                "bind_address: between 1s and 7d (a working day is \"12h\")".into(),
            ));
        }
        Some(d) => Some(d.get_ref().0),
    };
    if l.kind == Kind::Http
        && let Some(v) = l.vpn.first()
    {
        return Err(err(
            v.span(),
            "vpn: only a tcp or udp pass-through listener carries VPN tunnels; an HTTP \
             listener learns identity from its `identity` sources"
                .into(),
        ));
    }
    let vpn = super::vpn::check_all(l.vpn, l.name.get_ref(), base, err)?;
    let edge = edge::RawEdge {
        kind: l.kind,
        tls: l.tls,
        proxy_protocol: l.proxy_protocol,
        send_proxy_protocol: l.send_proxy_protocol,
        sni_routes: l.sni_routes,
        max_connections: l.max_connections,
        max_connections_per_client: l.max_connections_per_client,
        idle_timeout: l.idle_timeout,
        udp_coalesce: l.udp_coalesce,
    }
    .check(&l.upstream, base)
    .map_err(|e| {
        err(
            l.name.span(),
            format!("listener `{}`: {e}", l.name.get_ref()),
        )
    })?;
    let health_path = match l.health_path {
        None => Some(DEFAULT_HEALTH_PATH.to_string()),
        Some(p) if p.get_ref().is_empty() => None,
        Some(p)
            if !p.get_ref().starts_with('/')
                || p.get_ref()
                    .bytes()
                    .any(|b| b <= b' ' || b == b'?' || b == b'#' || b >= 0x7f) =>
        {
            return Err(err(
                p.span(),
                "health_path: an absolute path such as \"/locgate/health\" (no query, spaces or controls), or \"\" to turn it off".into(),
            ));
        }
        Some(p) => Some(p.into_inner()),
    };
    Ok(ListenerConfig {
        bind_address,
        vpn,
        health_path,
        edge,
        identity,
        session: l.session.map(Spanned::into_inner),
        name: l.name.into_inner(),
        bind: l.bind.into_inner(),
        upstream: l.upstream,
        mode: l.mode,
        trusted_proxies: l.trusted_proxies.into_iter().map(|n| n.0).collect(),
        identity_proxies,
        warnings,
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

/// Where the health check is answered unless `health_path` says otherwise.
pub const DEFAULT_HEALTH_PATH: &str = "/locgate/health";

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    fn parse(extra: &str) -> Result<Config, String> {
        let text = format!(
            "[[listener]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:9\"\n{extra}\n"
        );
        Config::parse(&text, "t.toml", Path::new("/etc/locgate")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_header_source_needs_identity_proxies_and_trusted_proxies_do_not_count() {
        let err = parse(
            "trusted_proxies = [\"10.0.0.0/24\"]\nidentity = [{ basic = true }, { header = \"X-User\" }]",
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "t.toml:6: listener[0].identity: the header source `X-User` needs identity_proxies"
            ),
            "{err}"
        );
        let ok = parse("identity_proxies = [\"10.0.0.7\"]\nidentity = [{ header = \"X-User\" }]")
            .unwrap();
        let l = &ok.listeners[0];
        assert_eq!(l.identity_proxies, ["10.0.0.7/32".parse().unwrap()]);
        assert!(l.trusted_proxies.is_empty() && l.warnings.is_empty());
    }

    #[test]
    fn identity_proxies_wider_than_a_subnet_are_warned_about() {
        let c = parse(
            "identity_proxies = [\"10.0.0.0/24\", \"10.8.0.0/23\", \"2001:db8::/64\", \"2001:db8::/48\"]",
        )
        .unwrap();
        let w = &c.listeners[0].warnings;
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with(
                "t.toml:5: listener[0].identity_proxies: 10.8.0.0/23 is a wide network"
            ),
            "{w:?}"
        );
        assert!(w[1].contains("2001:db8::/48 is a wide network"), "{w:?}");
    }
}
