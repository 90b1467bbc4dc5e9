//! The answer `resolve` gives: the address a request is attributed to (`ClientAddr`), where it
//! came from (`AddrSource`), and the one form every address is normalised to (`normalize`).
//!
//! Its own file at the bottom of `client_addr`, because every other part (the trust list, the
//! list walk, `resolve` itself) speaks in these terms.

use std::net::IpAddr;

/// Where the client address came from (recorded in events), so an operator
/// can tell a socket address from one a trusted proxy vouched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrSource {
    /// The TCP peer itself (untrusted peer, no usable header, or garbage at
    /// the right-most hop).
    Peer,
    /// An `X-Forwarded-For` entry written by a trusted proxy.
    XForwardedFor,
    /// A `Forwarded` (RFC 7239) `for=` parameter written by a trusted proxy.
    Forwarded,
}

impl AddrSource {
    /// Stable lower-case name for logs and events; never changes meaning.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AddrSource::Peer => "peer",
            AddrSource::XForwardedFor => "x-forwarded-for",
            AddrSource::Forwarded => "forwarded",
        }
    }
}

/// The address we attribute a request to, with its provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// Client IP, always normalised (never IPv4-mapped IPv6).
    pub ip: IpAddr,
    /// Client source port: the socket's for [`AddrSource::Peer`], otherwise
    /// only when the proxy recorded one (`for="[v6]:port"`,
    /// `for="a.b.c.d:port"`, or the same forms in `X-Forwarded-For`).
    pub port: Option<u16>,
    /// Which input the address came from.
    pub source: AddrSource,
}

/// Normalise `::ffff:a.b.c.d` to `a.b.c.d` (so lookups and policy see one form).
///
/// Only the IPv4-*mapped* form is converted; the deprecated IPv4-compatible
/// form (`::a.b.c.d`) is left alone, since converting it would turn `::1`
/// into `0.0.0.1`.
#[must_use]
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        IpAddr::V4(v4) => IpAddr::V4(v4),
    }
}

/// Whether `ip` belongs to no public network: loopback, private (RFC 1918), shared CGNAT
/// (RFC 6598), link-local, unique-local (RFC 4193) or unspecified. Such a client is inside the
/// organisation (a balancer's health check, a monitoring probe, an internal user): no geolocation
/// database can place it, and that is not a reason to suspect it.
#[must_use]
pub fn is_internal(ip: IpAddr) -> bool {
    match normalize(ip) {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_addr::test_support::ip;

    #[test]
    fn internal_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip(a)), "{a}");
        }
        for a in [
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2001:db8::1",
            "2600::1",
        ] {
            assert!(!is_internal(ip(a)), "{a}");
        }
    }

    #[test]
    fn normalize_only_mapped() {
        assert_eq!(normalize(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(normalize(ip("::1")), ip("::1"));
        assert_eq!(normalize(ip("::192.0.2.1")), ip("::192.0.2.1"));
        assert_eq!(normalize(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(normalize(ip("2001:db8::1")), ip("2001:db8::1"));
    }

    #[test]
    fn addr_source_names() {
        assert_eq!(AddrSource::Peer.as_str(), "peer");
        assert_eq!(AddrSource::XForwardedFor.as_str(), "x-forwarded-for");
        assert_eq!(AddrSource::Forwarded.as_str(), "forwarded");
    }
}
