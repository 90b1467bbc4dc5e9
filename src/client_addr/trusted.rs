//! The trust list (`trusted_proxies`): which socket peers may tell us who the client is,
//! answered per request without allocating.
//!
//! Its own file because it is the first thing `resolve` asks and the only part built from
//! configuration; it knows nothing about headers.

use std::net::IpAddr;
use std::ops::BitAnd;

use ipnetwork::IpNetwork;

use super::addr::normalize;

/// Networks whose forwarding headers we believe (config `trusted_proxies`).
///
/// Only peers inside one of these networks may tell us who the client is;
/// for everyone else the socket address is the truth. Lookups are
/// allocation-free: networks are grouped by prefix length, and each group is a
/// sorted vector searched with one binary search, so the cost is
/// `O(distinct prefix lengths × log n)` regardless of list size.
///
/// IPv6 networks inside `::ffff:0:0/96` (IPv4-mapped) are stored as the IPv4
/// networks they denote, because addresses are normalised before lookup.
/// Broader IPv6 networks (e.g. `::/0`) deliberately do *not* cover IPv4
/// clients: trust is never widened beyond what was written.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    v4: Vec<Bucket<u32>>,
    v6: Vec<Bucket<u128>>,
}

/// All trusted networks of one prefix length: `nets` holds the masked network
/// addresses, sorted and deduplicated.
#[derive(Debug, Clone)]
struct Bucket<T> {
    prefix: u8,
    mask: T,
    nets: Vec<T>,
}

impl<T: Copy + Ord + BitAnd<Output = T>> Bucket<T> {
    fn contains(&self, addr: T) -> bool {
        self.nets.binary_search(&(addr & self.mask)).is_ok()
    }
}

fn add_net<T: Copy + Ord + BitAnd<Output = T>>(
    buckets: &mut Vec<Bucket<T>>,
    prefix: u8,
    mask: T,
    addr: T,
) {
    let net = addr & mask;
    match buckets.iter_mut().find(|b| b.prefix == prefix) {
        Some(b) => b.nets.push(net),
        None => buckets.push(Bucket {
            prefix,
            mask,
            nets: vec![net],
        }),
    }
}

fn finish<T: Ord>(buckets: &mut [Bucket<T>]) {
    // Shortest prefixes first: they cover the most addresses, so a hit is
    // likeliest there and `any` can stop early.
    buckets.sort_by_key(|b| b.prefix);
    for b in buckets {
        b.nets.sort_unstable();
        b.nets.dedup();
    }
}

fn v4_mask(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0)
}

fn v6_mask(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0)
}

impl TrustedProxies {
    /// Build the set from configured networks. Duplicates are harmless; host
    /// bits in a network (`10.0.0.1/8`) are ignored, as in `ipnetwork`.
    pub fn new(nets: impl IntoIterator<Item = IpNetwork>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNetwork::V4(n) => {
                    add_net(&mut v4, n.prefix(), v4_mask(n.prefix()), u32::from(n.ip()));
                }
                IpNetwork::V6(n) => {
                    let prefix = n.prefix();
                    let bits = u128::from(n.ip()) & v6_mask(prefix);
                    if prefix >= 96 && (bits >> 32) == 0xffff {
                        // ::ffff:a.b.c.d/(96+p) is the IPv4 network a.b.c.d/p.
                        let p4 = prefix - 96;
                        let low = u32::try_from(bits & u128::from(u32::MAX)).unwrap_or(0);
                        add_net(&mut v4, p4, v4_mask(p4), low);
                    } else {
                        add_net(&mut v6, prefix, v6_mask(prefix), bits);
                    }
                }
            }
        }
        finish(&mut v4);
        finish(&mut v6);
        TrustedProxies { v4, v6 }
    }

    /// True when no proxy is trusted: [`resolve`](super::resolve) then always returns the
    /// socket peer, and callers can skip forwarding-header work entirely.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Is `ip` inside a trusted network? IPv4-mapped IPv6 (`::ffff:a.b.c.d`)
    /// matches IPv4 networks, because a dual-stack socket reports IPv4 peers
    /// in that form. Allocation-free.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match normalize(ip) {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|b| b.contains(a))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|b| b.contains(a))
            }
        }
    }
}

impl FromIterator<IpNetwork> for TrustedProxies {
    /// Same as [`TrustedProxies::new`]; lets config code `collect()`.
    fn from_iter<I: IntoIterator<Item = IpNetwork>>(iter: I) -> Self {
        TrustedProxies::new(iter)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::client_addr::test_support::{ip, nets};

    #[test]
    fn trusted_basic_membership_and_boundaries() {
        let t = nets(&["192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32"]);
        assert!(t.contains(ip("192.0.2.0")));
        assert!(t.contains(ip("192.0.2.255")));
        assert!(!t.contains(ip("192.0.3.0")));
        assert!(!t.contains(ip("192.0.1.255")));
        assert!(t.contains(ip("198.51.100.7")));
        assert!(!t.contains(ip("198.51.100.8")));
        assert!(t.contains(ip("2001:db8:ffff::1")));
        assert!(!t.contains(ip("2001:db9::1")));
        assert!(!t.is_empty());
    }

    #[test]
    fn trusted_empty_and_zero_prefix() {
        let empty = TrustedProxies::new([]);
        assert!(empty.is_empty());
        assert!(!empty.contains(ip("127.0.0.1")));
        assert!(!empty.contains(ip("::1")));
        let all4 = nets(&["0.0.0.0/0"]);
        assert!(all4.contains(ip("203.0.113.9")));
        // ::/0 does not silently extend trust to IPv4 (mapped) clients.
        let all6 = nets(&["::/0"]);
        assert!(all6.contains(ip("2001:db8::1")));
        assert!(!all6.contains(ip("203.0.113.9")));
        assert!(!all6.contains(ip("::ffff:203.0.113.9")));
    }

    #[test]
    fn trusted_mapped_ipv6_matches_ipv4_nets() {
        let t = nets(&["10.0.0.0/8"]);
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        assert!(!t.contains(ip("::ffff:11.1.2.3")));
        // IPv4-compatible (deprecated) form is not treated as IPv4.
        assert!(!t.contains(ip("::10.1.2.3")));
    }

    #[test]
    fn trusted_mapped_network_in_config_becomes_ipv4() {
        let t = nets(&["::ffff:10.0.0.0/104"]);
        assert!(t.contains(ip("10.200.0.1")));
        assert!(t.contains(ip("::ffff:10.200.0.1")));
        assert!(!t.contains(ip("11.0.0.1")));
    }

    #[test]
    fn trusted_host_bits_and_duplicates() {
        let t = nets(&["10.1.2.3/8", "10.0.0.0/8", "10.0.0.0/8", "fd00::1/8"]);
        assert!(t.contains(ip("10.255.255.255")));
        assert!(t.contains(ip("fdff::9")));
        let t: TrustedProxies = ["127.0.0.1/32".parse::<IpNetwork>().expect("net")]
            .into_iter()
            .collect();
        assert!(t.contains(ip("127.0.0.1")));
    }

    #[test]
    fn trusted_many_networks() {
        let list: Vec<IpNetwork> = (0..=255u8)
            .map(|i| {
                IpNetwork::V4(
                    ipnetwork::Ipv4Network::new(Ipv4Addr::new(100, i, 0, 0), 16).expect("net"),
                )
            })
            .collect();
        let t = TrustedProxies::new(list);
        for i in [0u8, 17, 128, 255] {
            assert!(t.contains(IpAddr::V4(Ipv4Addr::new(100, i, 9, 9))));
        }
        assert!(!t.contains(ip("101.0.0.1")));
    }
}
