//! One hop's address: the RFC 7239 §6 node syntax (`a.b.c.d`, `[v6]:port`, `unknown`,
//! obfuscated names and ports) that both forwarding headers carry (an `X-Forwarded-For` entry
//! is a bare node), and the RFC 9110 whitespace and token rules the parsers share.
//!
//! Its own file so the `Forwarded` parser and the list walk share one reading of an address
//! and one `Hop`, without depending on each other.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest textual node we accept: `[ffff:...:255.255.255.255]:65535` is 54
/// bytes; anything longer cannot be an address.
pub(super) const MAX_NODE_LEN: usize = 64;

/// One list element, as far as the walk is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hop {
    /// Empty list element: ignored (RFC 9110 §5.6.1), but counts toward the
    /// work cap.
    Empty,
    Addr(IpAddr, Option<u16>),
    /// Anything we will not believe; ends the walk.
    Bad,
}

pub(super) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// RFC 9110 §5.6.2 tchar.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One `X-Forwarded-For` entry: `a.b.c.d`, `a.b.c.d:port`, bare IPv6,
/// `[v6]`, or `[v6]:port`, with optional surrounding whitespace.
pub(super) fn parse_xff_entry(e: &[u8]) -> Hop {
    let e = trim_ows(e);
    if e.is_empty() {
        return Hop::Empty;
    }
    parse_node(e, false)
}

/// Parse a node (RFC 7239 §6) or an `X-Forwarded-For` entry. `obf_port`
/// permits an obfuscated `_port` (Forwarded only), which yields no port.
pub(super) fn parse_node(b: &[u8], obf_port: bool) -> Hop {
    if b.len() > MAX_NODE_LEN {
        return Hop::Bad;
    }
    // `unknown` and `_obfuscated` fail to parse as addresses below, which is
    // exactly the "stop here" behaviour RFC 7239 §6.2/§6.3 call for.
    let Ok(s) = std::str::from_utf8(b) else {
        return Hop::Bad;
    };
    if let Some(rest) = s.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Hop::Bad;
        };
        let Ok(v6) = addr.parse::<Ipv6Addr>() else {
            return Hop::Bad;
        };
        return match after {
            "" => Hop::Addr(IpAddr::V6(v6), None),
            _ => match after.strip_prefix(':').map(|p| parse_port(p, obf_port)) {
                Some(Ok(port)) => Hop::Addr(IpAddr::V6(v6), port),
                _ => Hop::Bad,
            },
        };
    }
    // Bare IPv4, or (leniently; RFC 7239 wants brackets) bare IPv6.
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Hop::Addr(ip, None);
    }
    // a.b.c.d:port
    if let Some((host, port)) = s.split_once(':') {
        if let (Ok(v4), Ok(port)) = (host.parse::<Ipv4Addr>(), parse_port(port, obf_port)) {
            return Hop::Addr(IpAddr::V4(v4), port);
        }
    }
    Hop::Bad
}

/// RFC 7239 §6 node-port: 1-5 digits (must fit u16), or with `obf_port` an
/// obfuscated `_xyz` which carries no usable port. Digits only: `str::parse`
/// would also accept `+80`.
fn parse_port(p: &str, obf_port: bool) -> Result<Option<u16>, ()> {
    let b = p.as_bytes();
    if let (true, Some(obf)) = (obf_port, b.strip_prefix(b"_")) {
        let ok = !obf.is_empty()
            && obf
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-');
        return if ok { Ok(None) } else { Err(()) };
    }
    if b.is_empty() || b.len() > 5 || !b.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    p.parse::<u16>().map(Some).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_port_strict() {
        assert_eq!(parse_port("80", false), Ok(Some(80)));
        assert_eq!(parse_port("65535", false), Ok(Some(65535)));
        assert!(parse_port("65536", false).is_err());
        assert!(parse_port("+80", false).is_err());
        assert!(parse_port("", false).is_err());
        assert!(parse_port("_x", false).is_err());
        assert_eq!(parse_port("_x-1.y", true), Ok(None));
        assert!(parse_port("_", true).is_err());
    }
}
