//! Listener settings of the edge (issue 4): listener kind, TLS, PROXY protocol, limits.
//!
//! Kept apart from `mod.rs` so the HTTP core's config stays readable; [`EdgeConfig`] is one
//! field of [`super::ListenerConfig`], and its defaults leave a plain HTTP listener exactly as it
//! was before the edge existed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::values::Dur;

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// HTTP reverse proxy (optionally over TLS, then also HTTP/2).
    #[default]
    Http,
    /// TCP pass-through: decided at connect time, bytes copied both ways.
    Tcp,
    /// UDP forwarding: decided on the first datagram of each flow.
    Udp,
}

impl Kind {
    /// ECS `network.transport`.
    pub fn transport(self) -> &'static str {
        match self {
            Kind::Http | Kind::Tcp => "tcp",
            Kind::Udp => "udp",
        }
    }
}

/// Whether TLS clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertMode {
    /// Never asked for.
    #[default]
    None,
    /// Asked for; verified against `client_ca` when sent; connections without one still served.
    Optional,
    /// Handshake refused without a certificate that chains to `client_ca`.
    Required,
}

/// PROXY protocol header sent to the upstream of a TCP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendProxy {
    /// Text header (`PROXY TCP4 ...\r\n`).
    V1,
    /// Binary header.
    V2,
}

/// One certificate chain and its key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertPair {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `tls = { .. }` of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Default certificate chain (served when SNI matches no other certificate, or is absent).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// More certificates; each is served for the DNS names in its subjectAltName (SNI).
    #[serde(default)]
    pub sni: Vec<CertPair>,
    /// CA bundle client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// `none` (default), `optional`, `required`.
    #[serde(default)]
    pub client_cert: ClientCertMode,
    /// Time a client has to complete its handshake (default 10s).
    pub handshake_timeout: Option<Dur>,
}

impl TlsConfig {
    /// Resolves relative paths against the config file's directory.
    pub(super) fn resolve(mut self, base: &Path) -> Self {
        self.cert = base.join(&self.cert);
        self.key = base.join(&self.key);
        for p in &mut self.sni {
            p.cert = base.join(&p.cert);
            p.key = base.join(&p.key);
        }
        self.client_ca = self.client_ca.map(|c| base.join(c));
        self
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
            .map_or(Duration::from_secs(10), |d| d.0)
    }
}

/// The edge settings of one listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EdgeConfig {
    /// `http` (default), `tcp`, `udp`.
    pub kind: Kind,
    /// TLS termination (HTTP listeners only).
    pub tls: Option<TlsConfig>,
    /// Expect a PROXY protocol v1/v2 header from peers in `trusted_proxies`. Peers outside it
    /// are refused: a PROXY header is a claim about the client address, believed only from the
    /// load balancers the operator named. Such a balancer passes the client's own bytes
    /// through, so on this listener forwarding headers are never believed (the PROXY source is
    /// the client) and an identity header only when the PROXY source is in `identity_proxies`.
    pub proxy_protocol: bool,
    /// PROXY header sent to a TCP upstream.
    pub send_proxy_protocol: Option<SendProxy>,
    /// TCP listeners: SNI server name (lower case) -> upstream `host:port`.
    pub sni_routes: BTreeMap<String, String>,
    /// Most open connections (or UDP flows) on this listener; more wait in the kernel backlog.
    pub max_connections: usize,
    /// Most open connections (or flows) per client address; more are closed at once.
    pub max_connections_per_client: usize,
    /// TCP pass-through and UDP flows: closed after this long without traffic either way.
    pub idle_timeout: Duration,
    /// UDP listeners: after relaying a batch, wait this long before receiving the next, so a
    /// busy listener takes many datagrams per wake-up (`edge/coalesce.rs`). `None`: off.
    pub udp_coalesce: Option<Duration>,
}

/// Longest `udp_coalesce` accepted: beyond this the latency added shows to interactive traffic.
pub const MAX_UDP_COALESCE: Duration = Duration::from_millis(5);

/// Default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default `max_connections_per_client`.
pub const DEFAULT_MAX_PER_CLIENT: usize = 256;

/// The raw TOML fields of the edge, filled from [`super::listener::RawListener`].
pub(super) struct RawEdge {
    pub kind: Kind,
    pub tls: Option<TlsConfig>,
    pub proxy_protocol: bool,
    pub send_proxy_protocol: Option<SendProxy>,
    pub sni_routes: BTreeMap<String, String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub idle_timeout: Option<Dur>,
    pub udp_coalesce: Option<Dur>,
}

impl RawEdge {
    /// Checks the combination against the upstream; `Err` is the message for the config error.
    pub(super) fn check(
        self,
        upstream: &super::Upstream,
        base: &Path,
    ) -> Result<EdgeConfig, String> {
        use super::Upstream;
        match (self.kind, upstream) {
            (Kind::Http, Upstream::Addr(a)) => {
                return Err(format!(
                    "upstream `{a}` is an address; an http listener needs http://host:port (or set kind = \"tcp\")"
                ));
            }
            (Kind::Tcp | Kind::Udp, Upstream::Http(_) | Upstream::Whoami) => {
                return Err(format!(
                    "a {} listener needs upstream = \"host:port\"",
                    if self.kind == Kind::Tcp { "tcp" } else { "udp" }
                ));
            }
            _ => {}
        }
        if self.kind != Kind::Http && self.tls.is_some() {
            return Err("tls is only for http listeners (tcp listeners pass TLS through)".into());
        }
        if self.kind != Kind::Tcp
            && (self.send_proxy_protocol.is_some() || !self.sni_routes.is_empty())
        {
            return Err("send_proxy_protocol and sni_routes are for tcp listeners".into());
        }
        if self.kind == Kind::Udp && self.proxy_protocol {
            return Err("proxy_protocol is not supported on udp listeners".into());
        }
        if let Some(t) = &self.tls {
            if t.client_cert != ClientCertMode::None && t.client_ca.is_none() {
                return Err(
                    "tls.client_cert needs tls.client_ca (the CA bundle to verify against)".into(),
                );
            }
        }
        let mut routes = BTreeMap::new();
        for (name, addr) in self.sni_routes {
            if !is_host_port(&addr) {
                return Err(format!("sni_routes.\"{name}\": `{addr}` is not host:port"));
            }
            routes.insert(name.to_ascii_lowercase(), addr);
        }
        let udp_coalesce = match self.udp_coalesce {
            Some(_) if self.kind != Kind::Udp => {
                return Err("udp_coalesce is for udp listeners".into());
            }
            Some(Dur(d)) if d.is_zero() || d > MAX_UDP_COALESCE => {
                return Err(format!(
                    "udp_coalesce must be between 1us and {}us (it adds up to that much latency under load)",
                    MAX_UDP_COALESCE.as_micros()
                ));
            }
            other => other.map(|d| d.0),
        };
        let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let per_client = self
            .max_connections_per_client
            .unwrap_or(DEFAULT_MAX_PER_CLIENT);
        if max_connections == 0 || per_client == 0 {
            return Err("max_connections and max_connections_per_client must be at least 1".into());
        }
        Ok(EdgeConfig {
            kind: self.kind,
            tls: self.tls.map(|t| t.resolve(base)),
            proxy_protocol: self.proxy_protocol,
            send_proxy_protocol: self.send_proxy_protocol,
            sni_routes: routes,
            max_connections,
            max_connections_per_client: per_client,
            idle_timeout: self.idle_timeout.map_or(Duration::from_secs(300), |d| d.0),
            udp_coalesce,
        })
    }
}

/// `host:port` with a non-empty host and a numeric port (`[v6]:port` too).
pub fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn parse(listener: &str) -> Result<Config, String> {
        let text = format!("[[listener]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n{listener}\n");
        Config::parse(&text, "t.toml", Path::new("/etc/locgate")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_leave_a_plain_http_listener() {
        let c = parse("upstream = \"http://127.0.0.1:9000\"").unwrap();
        let e = &c.listeners[0].edge;
        assert_eq!(e.kind, Kind::Http);
        assert!(e.tls.is_none() && !e.proxy_protocol);
        assert_eq!(e.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(e.max_connections_per_client, DEFAULT_MAX_PER_CLIENT);
    }

    #[test]
    fn tcp_listener_with_routes_and_proxy_out() {
        let c = parse(
            "kind = \"tcp\"\nupstream = \"10.0.0.6:1194\"\nsend_proxy_protocol = \"v2\"\n\
             sni_routes = { \"VPN.example.com\" = \"[2001:db8::1]:443\" }",
        )
        .unwrap();
        let e = &c.listeners[0].edge;
        assert_eq!(e.send_proxy_protocol, Some(SendProxy::V2));
        assert_eq!(
            e.sni_routes.get("vpn.example.com").map(String::as_str),
            Some("[2001:db8::1]:443")
        );
    }

    #[test]
    fn tls_paths_resolve_against_the_config_directory() {
        let c = parse(
            "upstream = \"builtin:whoami\"\ntls = { cert = \"c.pem\", key = \"/abs/k.pem\", \
             client_ca = \"ca.pem\", client_cert = \"required\" }",
        )
        .unwrap();
        let t = c.listeners[0].edge.tls.as_ref().unwrap();
        assert_eq!(t.cert, Path::new("/etc/locgate/c.pem"));
        assert_eq!(t.key, Path::new("/abs/k.pem"));
        assert_eq!(t.client_cert, ClientCertMode::Required);
    }

    #[test]
    fn mistakes_are_reported_at_the_listener() {
        for (text, why) in [
            (
                "kind = \"tcp\"\nupstream = \"http://x:1\"",
                "needs upstream = \"host:port\"",
            ),
            ("upstream = \"10.0.0.1:80\"", "is an address"),
            (
                "upstream = \"builtin:whoami\"\ntls = { cert = \"c\", key = \"k\", client_cert = \"required\" }",
                "needs tls.client_ca",
            ),
            (
                "kind = \"udp\"\nupstream = \"10.0.0.1:51820\"\nproxy_protocol = true",
                "not supported on udp",
            ),
            (
                "upstream = \"http://x:1\"\nsend_proxy_protocol = \"v1\"",
                "for tcp listeners",
            ),
            (
                "kind = \"tcp\"\nupstream = \"10.0.0.1:1\"\nsni_routes = { a = \"nope\" }",
                "not host:port",
            ),
            (
                "upstream = \"http://x:1\"\nmax_connections = 0",
                "at least 1",
            ),
            (
                "upstream = \"http://x:1\"\nkind = \"sctp\"",
                "unknown variant",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.starts_with("t.toml:"), "{err}");
        }
    }

    #[test]
    fn tcp_and_udp_may_share_a_port_but_two_tcp_may_not() {
        let text = "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:1194\"\nkind = \"tcp\"\nupstream = \"10.0.0.1:1194\"\n\
                    [[listener]]\nname = \"b\"\nbind = \"127.0.0.1:1194\"\nkind = \"udp\"\nupstream = \"10.0.0.1:1194\"\n";
        assert!(Config::parse(text, "t.toml", Path::new(".")).is_ok());
        let clash = text.replace("kind = \"udp\"", "kind = \"tcp\"");
        assert!(Config::parse(&clash, "t.toml", Path::new(".")).is_err());
    }

    #[test]
    fn udp_coalesce_is_for_udp_listeners_and_bounded() {
        let udp = |extra: &str| {
            format!(
                "[[listener]]\nname = \"u\"\nbind = \"127.0.0.1:51820\"\nkind = \"udp\"\n\
                 upstream = \"10.0.0.1:51820\"\n{extra}\n"
            )
        };
        let ok = Config::parse(&udp("udp_coalesce = \"250us\""), "t.toml", Path::new("."))
            .expect("valid");
        assert_eq!(
            ok.listeners[0].edge.udp_coalesce,
            Some(Duration::from_micros(250))
        );
        for (extra, why) in [
            ("udp_coalesce = \"10ms\"", "between 1us and 5000us"),
            ("udp_coalesce = \"0us\"", "between 1us"),
        ] {
            let e = Config::parse(&udp(extra), "t.toml", Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why) && e.starts_with("t.toml:"), "{extra}: {e}");
        }
        let tcp = udp("udp_coalesce = \"250us\"").replace("kind = \"udp\"", "kind = \"tcp\"");
        let e = Config::parse(&tcp, "t.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(e.contains("udp_coalesce is for udp listeners"), "{e}");
    }
}
