//! Who is the real client of a request.
//!
//! locgate decides on the *client's* address (geolocation, policy, events), so
//! getting this wrong is a security bug: a client that can choose the address we
//! attribute to it can choose its country. The rules, in order of importance:
//!
//! 1. **Never believe an untrusted peer.** If the TCP peer is not inside a
//!    configured `trusted_proxies` network, its forwarding headers are ignored
//!    entirely and the socket address is the client. That check is the first
//!    thing [`resolve`] does, and it does not look at a single header byte, so
//!    the common case (direct clients, or an empty trust list) costs one
//!    membership test.
//! 2. **Walk the chain right to left.** Each trusted proxy *appends* the address
//!    it saw, so the right-most entries were written by the proxies we trust and
//!    everything further left was supplied by someone else. We take the
//!    right-most address that is not itself trusted: that is the peer of the
//!    outer-most trusted proxy, as that proxy observed it.
//! 3. **Stop at garbage.** An entry we cannot parse (`unknown`, an obfuscated
//!    `_identifier` per RFC 7239 §6.3, a malformed token or quoted-string) ends
//!    the walk and the last good address is used (the nearest trusted proxy's
//!    view). We never skip over garbage to reach a value further left, because
//!    everything further left is attacker-controllable.
//! 4. **Bounded work.** At most [`MAX_HOPS`] list elements are examined and a
//!    single element is scanned for at most [`MAX_ELEMENT_LEN`] bytes, so a
//!    hostile 8 KB header costs about as much as a short one. Parsing walks the
//!    header bytes in place (right to left) and never allocates.
//!
//! Header sources: `Forwarded` (RFC 7239) is preferred when present, else the
//! de-facto `X-Forwarded-For`. Multiple field lines of the same header form one
//! comma-separated list (RFC 9110 §5.3), so the last line holds the right-most
//! entries. [`resolve_with`] lets a deployment pin one header, which matters if
//! its proxies only maintain one of them (see [`ChainHeader`]).
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2), which is
//! what a dual-stack listener reports for IPv4 peers, are normalised to plain
//! IPv4 everywhere (see [`normalize`]) so that trust lists, geolocation and
//! policy all see a single form.
//!
//! Layout, one job per file, each using only the ones listed before it: `addr` (the answer
//! types and `normalize`), `trusted` (the trust list), `node` (one hop's address syntax),
//! `chain` (the right-to-left walk over a header's list), `forwarded` (the RFC 7239 element
//! parser). This file decides which header to walk and keeps the public paths.

mod addr;
mod chain;
mod forwarded;
mod node;
#[cfg(test)]
mod test_support;
mod trusted;

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};

pub use addr::{AddrSource, ClientAddr, is_internal, normalize};
pub use chain::{MAX_ELEMENT_LEN, MAX_HOPS};
pub use trusted::TrustedProxies;

use chain::Walk;
use forwarded::parse_forwarded_element;
use node::parse_xff_entry;

/// `X-Forwarded-For`; `http` has no constant for this de-facto header.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which forwarding header [`resolve_with`] reads.
///
/// `Auto` follows the default rule (prefer `Forwarded`, else
/// `X-Forwarded-For`). Pin a single header when the trusted proxies maintain
/// only that one: a proxy that appends to `X-Forwarded-For` but passes a
/// client's `Forwarded` through untouched would otherwise let the client's
/// own `Forwarded` win under `Auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainHeader {
    /// `Forwarded` when present, else `X-Forwarded-For`.
    #[default]
    Auto,
    /// Only RFC 7239 `Forwarded`.
    Forwarded,
    /// Only `X-Forwarded-For`.
    XForwardedFor,
}

/// The real client: the socket peer, unless the peer is a trusted proxy, in
/// which case the forwarding chain is walked right-to-left and the right-most
/// address that is not itself trusted is taken.
///
/// `Forwarded` (RFC 7239) is preferred when present, else `X-Forwarded-For`;
/// all field lines are considered in order. If every hop is trusted, the
/// left-most hop is taken. A malformed hop (unparsable, `unknown`, obfuscated
/// `_id`, a `Forwarded` element without `for=`) stops the walk and the last
/// good address is used — never an address further left. See the module docs.
#[must_use]
pub fn resolve(peer: SocketAddr, trusted: &TrustedProxies, headers: &HeaderMap) -> ClientAddr {
    resolve_with(peer, trusted, headers, ChainHeader::Auto)
}

/// The socket peer as the client, no header read: what [`resolve`] answers for an untrusted
/// peer, and what a `proxy_protocol` listener always uses (its balancer passes the client's own
/// bytes through, so no forwarding header on it was written by anyone trusted; the peer there
/// is the PROXY source, or the balancer itself after `UNKNOWN` / v2 `LOCAL`).
#[must_use]
pub fn peer_only(peer: SocketAddr) -> ClientAddr {
    ClientAddr {
        ip: normalize(peer.ip()),
        port: Some(peer.port()),
        source: AddrSource::Peer,
    }
}

/// [`resolve`] with an explicit choice of header (see [`ChainHeader`]).
#[must_use]
pub fn resolve_with(
    peer: SocketAddr,
    trusted: &TrustedProxies,
    headers: &HeaderMap,
    which: ChainHeader,
) -> ClientAddr {
    let direct = peer_only(peer);
    let peer_ip = direct.ip;
    // Cheapest possible rejection first: an untrusted peer's headers are
    // never even looked at.
    if !trusted.contains(peer_ip) {
        return direct;
    }
    let use_forwarded = match which {
        ChainHeader::Forwarded => true,
        ChainHeader::XForwardedFor => false,
        ChainHeader::Auto => headers.contains_key(FORWARDED),
    };
    let walk = Walk::new(trusted, direct);
    if use_forwarded {
        walk.run(
            headers.get_all(FORWARDED).iter(),
            true,
            parse_forwarded_element,
            AddrSource::Forwarded,
        )
    } else {
        walk.run(
            headers.get_all(X_FORWARDED_FOR).iter(),
            false,
            parse_xff_entry,
            AddrSource::XForwardedFor,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_addr::test_support::{got, hdrs, ip, lan, sock};

    #[test]
    fn untrusted_peer_headers_ignored() {
        // Spoofing attempt: direct client claims to be someone else.
        let h = hdrs(&[
            ("x-forwarded-for", b"10.0.0.5"),
            ("forwarded", b"for=10.0.0.5"),
        ]);
        let c = resolve(sock("203.0.113.7:5555"), &lan(), &h);
        assert_eq!(got(c), (ip("203.0.113.7"), Some(5555), AddrSource::Peer));
    }

    #[test]
    fn empty_trust_list_ignores_headers() {
        let h = hdrs(&[("x-forwarded-for", b"198.51.100.1")]);
        let c = resolve(sock("10.0.0.1:80"), &TrustedProxies::default(), &h);
        assert_eq!(c.source, AddrSource::Peer);
        assert_eq!(c.ip, ip("10.0.0.1"));
    }

    #[test]
    fn mapped_peer_is_normalized_and_trusted() {
        let h = hdrs(&[("x-forwarded-for", b"198.51.100.1")]);
        let c = resolve(sock("[::ffff:10.0.0.1]:80"), &lan(), &h);
        assert_eq!(
            got(c),
            (ip("198.51.100.1"), None, AddrSource::XForwardedFor)
        );
        let c = resolve(sock("[::ffff:203.0.113.1]:80"), &lan(), &HeaderMap::new());
        assert_eq!(got(c), (ip("203.0.113.1"), Some(80), AddrSource::Peer));
    }

    #[test]
    fn trusted_peer_without_headers_is_peer() {
        let c = resolve(sock("10.0.0.1:1234"), &lan(), &HeaderMap::new());
        assert_eq!(got(c), (ip("10.0.0.1"), Some(1234), AddrSource::Peer));
    }

    #[test]
    fn forwarded_preferred_over_xff() {
        let h = hdrs(&[
            ("x-forwarded-for", b"198.51.100.1"),
            ("forwarded", b"for=198.51.100.2;proto=https"),
        ]);
        let c = resolve(sock("10.0.0.1:80"), &lan(), &h);
        assert_eq!(got(c), (ip("198.51.100.2"), None, AddrSource::Forwarded));
    }

    #[test]
    fn chain_header_pinning() {
        let h = hdrs(&[
            ("x-forwarded-for", b"198.51.100.1"),
            ("forwarded", b"for=198.51.100.2"),
        ]);
        let p = sock("10.0.0.1:80");
        assert_eq!(
            resolve_with(p, &lan(), &h, ChainHeader::XForwardedFor).ip,
            ip("198.51.100.1")
        );
        assert_eq!(
            resolve_with(p, &lan(), &h, ChainHeader::Forwarded).ip,
            ip("198.51.100.2")
        );
        let only_xff = hdrs(&[("x-forwarded-for", b"198.51.100.1")]);
        let c = resolve_with(p, &lan(), &only_xff, ChainHeader::Forwarded);
        assert_eq!(c.source, AddrSource::Peer);
    }
}
