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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::BitAnd;

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};
use ipnetwork::IpNetwork;

/// `X-Forwarded-For`; `http` has no constant for this de-facto header.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Maximum number of list elements (hops, including empty ones) examined per
/// request. Real chains are a handful of hops long; the cap bounds the cost
/// of a hostile header. If the cap is reached while every hop so far was
/// trusted, the left-most hop examined is used.
pub const MAX_HOPS: usize = 32;

/// Maximum length in bytes of one list element. A single `Forwarded` element
/// with `for`, `by`, `proto` and a long `host` stays well below this; longer
/// elements are treated as malformed (which stops the walk) so one giant
/// element cannot make us scan the whole header.
pub const MAX_ELEMENT_LEN: usize = 1024;

/// Longest textual node we accept: `[ffff:...:255.255.255.255]:65535` is 54
/// bytes; anything longer cannot be an address.
const MAX_NODE_LEN: usize = 64;

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

    /// True when no proxy is trusted: [`resolve`] then always returns the
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

/// [`resolve`] with an explicit choice of header (see [`ChainHeader`]).
#[must_use]
pub fn resolve_with(
    peer: SocketAddr,
    trusted: &TrustedProxies,
    headers: &HeaderMap,
    which: ChainHeader,
) -> ClientAddr {
    let peer_ip = normalize(peer.ip());
    let direct = ClientAddr {
        ip: peer_ip,
        port: Some(peer.port()),
        source: AddrSource::Peer,
    };
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
    let mut walk = Walk {
        trusted,
        visited: 0,
        last_good: direct,
    };
    if use_forwarded {
        for line in headers.get_all(FORWARDED).iter().rev() {
            let mut rest = Some(line.as_bytes());
            while let Some(bytes) = rest {
                let (elem, before) = split_last(bytes, true);
                rest = before;
                let hop = match elem {
                    Some(e) => parse_forwarded_element(e),
                    None => Hop::Bad,
                };
                if let Some(done) = walk.step(hop, AddrSource::Forwarded) {
                    return done;
                }
            }
        }
    } else {
        for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let mut rest = Some(line.as_bytes());
            while let Some(bytes) = rest {
                let (elem, before) = split_last(bytes, false);
                rest = before;
                let hop = match elem {
                    Some(e) => parse_xff_entry(e),
                    None => Hop::Bad,
                };
                if let Some(done) = walk.step(hop, AddrSource::XForwardedFor) {
                    return done;
                }
            }
        }
    }
    walk.last_good
}

/// One list element, as far as the walk is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    /// Empty list element: ignored (RFC 9110 §5.6.1), but counts toward the
    /// work cap.
    Empty,
    Addr(IpAddr, Option<u16>),
    /// Anything we will not believe; ends the walk.
    Bad,
}

/// Right-to-left walk state. `last_good` starts as the socket peer (itself
/// trusted) and becomes each trusted hop in turn.
struct Walk<'t> {
    trusted: &'t TrustedProxies,
    visited: usize,
    last_good: ClientAddr,
}

impl Walk<'_> {
    /// Feed the next hop (moving left). `Some` = the walk is over.
    fn step(&mut self, hop: Hop, source: AddrSource) -> Option<ClientAddr> {
        self.visited += 1;
        match hop {
            Hop::Empty => {}
            Hop::Bad => return Some(self.last_good),
            Hop::Addr(ip, port) => {
                let ip = normalize(ip);
                let here = ClientAddr { ip, port, source };
                if !self.trusted.contains(ip) {
                    return Some(here);
                }
                self.last_good = here;
            }
        }
        if self.visited >= MAX_HOPS {
            return Some(self.last_good);
        }
        None
    }
}

/// Split off the right-most comma-separated element of `s`.
///
/// Returns `(element, remainder_left_of_it)`. `element` is `None` when the
/// element is malformed in a way visible to the splitter (unbalanced quote,
/// longer than [`MAX_ELEMENT_LEN`]); the caller treats that as a bad hop. With
/// `quoted`, commas inside RFC 9110 §5.6.4 quoted-strings do not split;
/// scanning right-to-left, a `"` inside a quoted-string is an escaped quote
/// exactly when preceded by an odd run of backslashes.
fn split_last(s: &[u8], quoted: bool) -> (Option<&[u8]>, Option<&[u8]>) {
    let floor = s.len().saturating_sub(MAX_ELEMENT_LEN + 1);
    let mut in_quote = false;
    let mut i = s.len();
    while i > floor {
        i -= 1;
        let (Some(&b), Some(left)) = (s.get(i), s.get(..i)) else {
            break;
        };
        if in_quote {
            if b == b'"' {
                let run = left.iter().rev().take_while(|&&c| c == b'\\').count();
                if run % 2 == 0 {
                    in_quote = false;
                }
            }
        } else if b == b',' {
            return (s.get(i + 1..), Some(left));
        } else if quoted && b == b'"' {
            in_quote = true;
        }
    }
    if in_quote || s.len() > MAX_ELEMENT_LEN {
        // The quote never opened, or the element is over budget: malformed.
        (None, None)
    } else {
        (Some(s), None)
    }
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
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
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One `X-Forwarded-For` entry: `a.b.c.d`, `a.b.c.d:port`, bare IPv6,
/// `[v6]`, or `[v6]:port`, with optional surrounding whitespace.
fn parse_xff_entry(e: &[u8]) -> Hop {
    let e = trim_ows(e);
    if e.is_empty() {
        return Hop::Empty;
    }
    parse_node(e, false)
}

/// Parse a node (RFC 7239 §6) or an `X-Forwarded-For` entry. `obf_port`
/// permits an obfuscated `_port` (Forwarded only), which yields no port.
fn parse_node(b: &[u8], obf_port: bool) -> Hop {
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

/// Fixed-size stack buffer for an unescaped quoted-string node value.
struct NodeBuf {
    buf: [u8; MAX_NODE_LEN],
    len: usize,
    overflow: bool,
}

impl NodeBuf {
    fn new() -> Self {
        NodeBuf {
            buf: [0; MAX_NODE_LEN],
            len: 0,
            overflow: false,
        }
    }

    fn push(&mut self, b: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// Parse a quoted-string (RFC 9110 §5.6.4) starting at `s[start] == '"'`.
/// Returns the index just past the closing quote, or `None` if malformed.
/// Unescaped content goes to `out` when given.
fn parse_quoted(s: &[u8], start: usize, mut out: Option<&mut NodeBuf>) -> Option<usize> {
    let mut i = start + 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Some(i + 1),
            b'\\' => {
                let &c = s.get(i + 1)?;
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                if !(c == b'\t' || c == b' ' || (0x21..=0x7e).contains(&c) || c >= 0x80) {
                    return None;
                }
                if let Some(o) = out.as_deref_mut() {
                    o.push(c);
                }
                i += 2;
            }
            // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
            b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => {
                if let Some(o) = out.as_deref_mut() {
                    o.push(b);
                }
                i += 1;
            }
            _ => return None,
        }
    }
    None
}

/// Parse one `Forwarded` element (RFC 7239 §4):
/// `forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )`,
/// `forwarded-pair = token "=" value`, `value = token / quoted-string`.
///
/// Parameter names are case-insensitive (§4). A repeated `for` (forbidden by
/// §4), a syntax error, or an element without `for` makes the hop bad: such
/// an element tells us nothing trustworthy about who connected to that proxy.
/// Whitespace around `;` is tolerated because real proxies emit it.
fn parse_forwarded_element(e: &[u8]) -> Hop {
    let e = trim_ows(e);
    if e.is_empty() {
        return Hop::Empty;
    }
    let mut node: Option<Hop> = None;
    let mut i = 0;
    loop {
        while e.get(i).copied().is_some_and(is_ows) {
            i += 1;
        }
        match e.get(i) {
            None => break,
            Some(b';') => {
                // empty pair
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let name_start = i;
        while e.get(i).copied().is_some_and(is_tchar) {
            i += 1;
        }
        let name = e.get(name_start..i).unwrap_or_default();
        if name.is_empty() || e.get(i) != Some(&b'=') {
            return Hop::Bad;
        }
        i += 1;
        let is_for = name.eq_ignore_ascii_case(b"for");
        if is_for && node.is_some() {
            return Hop::Bad;
        }
        if e.get(i) == Some(&b'"') {
            if is_for {
                let mut buf = NodeBuf::new();
                let Some(end) = parse_quoted(e, i, Some(&mut buf)) else {
                    return Hop::Bad;
                };
                i = end;
                node = Some(if buf.overflow {
                    Hop::Bad
                } else {
                    parse_node(buf.as_slice(), true)
                });
            } else {
                let Some(end) = parse_quoted(e, i, None) else {
                    return Hop::Bad;
                };
                i = end;
            }
        } else {
            // Token value. Lenient: also accept `:` `[` `]` `/` so that
            // common unquoted `for=[::1]` / `for=1.2.3.4:80` still parse.
            let start = i;
            while e
                .get(i)
                .is_some_and(|&b| is_tchar(b) || matches!(b, b':' | b'[' | b']' | b'/'))
            {
                i += 1;
            }
            if i == start {
                return Hop::Bad;
            }
            if is_for {
                node = Some(parse_node(e.get(start..i).unwrap_or_default(), true));
            }
        }
        while e.get(i).copied().is_some_and(is_ows) {
            i += 1;
        }
        match e.get(i) {
            None => break,
            Some(b';') => i += 1,
            Some(_) => return Hop::Bad,
        }
    }
    node.unwrap_or(Hop::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn nets(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            list.iter()
                .map(|s| s.parse::<IpNetwork>().expect("test net")),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().expect("test sock")
    }

    fn hdrs(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("test name"),
                HeaderValue::from_bytes(v).expect("test value"),
            );
        }
        h
    }

    fn lan() -> TrustedProxies {
        nets(&["10.0.0.0/8", "fd00::/8"])
    }

    fn got(c: ClientAddr) -> (IpAddr, Option<u16>, AddrSource) {
        (c.ip, c.port, c.source)
    }

    // ---- TrustedProxies ----

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

    // ---- resolve: trust gate ----

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

    // ---- resolve: X-Forwarded-For (de-facto) ----

    #[test]
    fn xff_rightmost_untrusted_wins_over_spoofed_left() {
        // Client 198.51.100.9 planted "1.1.1.1"; our trusted LB appended the real peer.
        let h = hdrs(&[("x-forwarded-for", b"1.1.1.1, 198.51.100.9")]);
        let c = resolve(sock("10.0.0.1:80"), &lan(), &h);
        assert_eq!(
            got(c),
            (ip("198.51.100.9"), None, AddrSource::XForwardedFor)
        );
    }

    #[test]
    fn xff_trusted_chain_of_three_proxies() {
        // client -> 10.0.0.3 -> 10.0.0.2 -> 10.0.0.1 (peer) -> us
        let h = hdrs(&[(
            "x-forwarded-for",
            b"6.6.6.6, 198.51.100.9, 10.0.0.3, 10.0.0.2",
        )]);
        let c = resolve(sock("10.0.0.1:80"), &lan(), &h);
        assert_eq!(c.ip, ip("198.51.100.9"));
    }

    #[test]
    fn xff_all_trusted_takes_leftmost() {
        let h = hdrs(&[("x-forwarded-for", b"10.9.9.9, 10.0.0.3,10.0.0.2")]);
        let c = resolve(sock("10.0.0.1:80"), &lan(), &h);
        assert_eq!(got(c), (ip("10.9.9.9"), None, AddrSource::XForwardedFor));
    }

    #[test]
    fn xff_multiple_lines_are_one_list() {
        // RFC 9110 §5.3: lines combine in order; the last line is right-most.
        let h = hdrs(&[
            ("x-forwarded-for", b"6.6.6.6"),
            ("x-forwarded-for", b"198.51.100.9, 10.0.0.2"),
        ]);
        assert_eq!(
            resolve(sock("10.0.0.1:80"), &lan(), &h).ip,
            ip("198.51.100.9")
        );
        let h = hdrs(&[
            ("x-forwarded-for", b"198.51.100.9"),
            ("x-forwarded-for", b"10.0.0.3"),
            ("x-forwarded-for", b"10.0.0.2"),
        ]);
        assert_eq!(
            resolve(sock("10.0.0.1:80"), &lan(), &h).ip,
            ip("198.51.100.9")
        );
    }

    #[test]
    fn xff_ipv6_forms_and_ports() {
        let t = lan();
        let p = sock("10.0.0.1:80");
        for (v, want_ip, want_port) in [
            (&b"2001:db8::1"[..], "2001:db8::1", None),
            (b"[2001:db8::1]", "2001:db8::1", None),
            (b" [2001:db8::1]:4711 ", "2001:db8::1", Some(4711)),
            (b"198.51.100.1:8080", "198.51.100.1", Some(8080)),
            (b"\t198.51.100.1\t", "198.51.100.1", None),
            (b"::ffff:198.51.100.1", "198.51.100.1", None),
        ] {
            let c = resolve(p, &t, &hdrs(&[("x-forwarded-for", v)]));
            assert_eq!((c.ip, c.port), (ip(want_ip), want_port), "{:?}", v);
        }
    }

    #[test]
    fn xff_empty_elements_skipped() {
        let h = hdrs(&[("x-forwarded-for", b"198.51.100.9,, ,10.0.0.2,")]);
        assert_eq!(
            resolve(sock("10.0.0.1:80"), &lan(), &h).ip,
            ip("198.51.100.9")
        );
        // Only empties: fall back to the peer.
        let h = hdrs(&[("x-forwarded-for", b" , ,")]);
        assert_eq!(
            resolve(sock("10.0.0.1:80"), &lan(), &h).source,
            AddrSource::Peer
        );
    }

    #[test]
    fn xff_garbage_stops_walk_never_skips_left() {
        // Garbage left of a trusted hop: use the trusted hop, not 6.6.6.6.
        for bad in [
            &b"garbage"[..],
            b"unknown",
            b"_hidden",
            b"1.2.3",
            b"1.2.3.4:+80",
            b"1.2.3.4 5.6.7.8",
            b"[2001:db8::1",
            b"[1.2.3.4]",
            b"01.2.3.4",
            b"1.2.3.4:99999",
            b"fe80::1%eth0",
        ] {
            let mut v = b"6.6.6.6, ".to_vec();
            v.extend_from_slice(bad);
            v.extend_from_slice(b", 10.0.0.2");
            let c = resolve(
                sock("10.0.0.1:80"),
                &lan(),
                &hdrs(&[("x-forwarded-for", &v)]),
            );
            assert_eq!(
                got(c),
                (ip("10.0.0.2"), None, AddrSource::XForwardedFor),
                "{:?}",
                bad
            );
        }
        // Garbage right-most: the peer itself.
        let h = hdrs(&[("x-forwarded-for", b"6.6.6.6, nonsense")]);
        let c = resolve(sock("10.0.0.1:80"), &lan(), &h);
        assert_eq!(got(c), (ip("10.0.0.1"), Some(80), AddrSource::Peer));
    }

    #[test]
    fn xff_non_utf8_is_garbage() {
        let h = hdrs(&[("x-forwarded-for", b"6.6.6.6, 1.2.3.\xff, 10.0.0.2")]);
        assert_eq!(resolve(sock("10.0.0.1:80"), &lan(), &h).ip, ip("10.0.0.2"));
        let h = hdrs(&[("x-forwarded-for", b"\x80\x81\xfe")]);
        assert_eq!(
            resolve(sock("10.0.0.1:80"), &lan(), &h).source,
            AddrSource::Peer
        );
    }

    #[test]
    fn hop_cap_bounds_work() {
        // 100 trusted hops, attacker value at the far left: never reached.
        let mut v = b"6.6.6.6".to_vec();
        for i in 0..100u32 {
            v.extend_from_slice(format!(", 10.0.{}.{}", i / 250, i % 250 + 1).as_bytes());
        }
        let h = hdrs(&[("x-forwarded-for", &v)]);
        let c = resolve(sock("10.0.0.1:80"), &lan(), &h);
        assert!(
            lan().contains(c.ip),
            "stopped inside the trusted chain, got {}",
            c.ip
        );
        assert_ne!(c.ip, ip("6.6.6.6"));
        // 100 untrusted hops: right-most wins immediately.
        let list = (0..100)
            .map(|i| format!("198.51.100.{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let h = hdrs(&[("x-forwarded-for", list.as_bytes())]);
        assert_eq!(
            resolve(sock("10.0.0.1:80"), &lan(), &h).ip,
            ip("198.51.100.99")
        );
        // 8 KB of commas: bounded, falls back to the peer.
        let h = hdrs(&[("x-forwarded-for", &[b','; 8192][..])]);
        assert_eq!(
            resolve(sock("10.0.0.1:80"), &lan(), &h).source,
            AddrSource::Peer
        );
    }

    #[test]
    fn huge_single_element_is_garbage() {
        let mut v = vec![b'a'; 8000];
        v.extend_from_slice(b", 10.0.0.2");
        let h = hdrs(&[("x-forwarded-for", &v)]);
        assert_eq!(resolve(sock("10.0.0.1:80"), &lan(), &h).ip, ip("10.0.0.2"));
        let mut v = b"for=6.6.6.6;x=\"".to_vec();
        v.extend_from_slice(&[b'a'; 8000]);
        v.extend_from_slice(b"\", for=10.0.0.2");
        let h = hdrs(&[("forwarded", &v)]);
        assert_eq!(resolve(sock("10.0.0.1:80"), &lan(), &h).ip, ip("10.0.0.2"));
    }

    // ---- resolve: Forwarded (RFC 7239) ----

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
    fn forwarded_rfc7239_examples() {
        // RFC 7239 §4 / §7.1 examples.
        let t = lan();
        let p = sock("10.0.0.1:80");
        let cases: [(&[u8], &str, Option<u16>); 7] = [
            (b"for=\"_gazonk\", for=192.0.2.60", "192.0.2.60", None),
            (
                b"For=\"[2001:db8:cafe::17]:4711\"",
                "2001:db8:cafe::17",
                Some(4711),
            ),
            (
                b"for=192.0.2.60;proto=http;by=203.0.113.43",
                "192.0.2.60",
                None,
            ),
            (b"for=192.0.2.43, for=198.51.100.17", "198.51.100.17", None),
            (b"for=\"192.0.2.43:47011\"", "192.0.2.43", Some(47011)),
            (b"FOR=\"[2001:db8::1]:_port\"", "2001:db8::1", None),
            (
                b"proto=https ; for=192.0.2.1 ;by=\"[::1]\"",
                "192.0.2.1",
                None,
            ),
        ];
        for (v, want_ip, want_port) in cases {
            let c = resolve(p, &t, &hdrs(&[("forwarded", v)]));
            assert_eq!(
                (c.ip, c.port, c.source),
                (ip(want_ip), want_port, AddrSource::Forwarded),
                "{:?}",
                v
            );
        }
    }

    #[test]
    fn forwarded_quoted_strings_with_commas_and_escapes() {
        // A comma inside a quoted host= must not split elements (RFC 9110 §5.6.4).
        let h = hdrs(&[(
            "forwarded",
            b"for=6.6.6.6, for=198.51.100.1;host=\"a,b\\\"c\\\\\", for=10.0.0.2",
        )]);
        let c = resolve(sock("10.0.0.1:80"), &lan(), &h);
        assert_eq!(c.ip, ip("198.51.100.1"));
        // Escaped characters inside the for value itself.
        let h = hdrs(&[("forwarded", b"for=\"\\[2001:db8::5\\]\"")]);
        assert_eq!(
            resolve(sock("10.0.0.1:80"), &lan(), &h).ip,
            ip("2001:db8::5")
        );
    }

    #[test]
    fn forwarded_unknown_and_obfuscated_stop_walk() {
        // RFC 7239 §6.2 / §6.3: not an address, so stop at the trusted hop to its right.
        for bad in [
            &b"for=unknown"[..],
            b"for=\"_hidden\"",
            b"for=_x",
            b"for=UNKNOWN",
        ] {
            let mut v = b"for=6.6.6.6, ".to_vec();
            v.extend_from_slice(bad);
            v.extend_from_slice(b", for=10.0.0.2");
            let c = resolve(sock("10.0.0.1:80"), &lan(), &hdrs(&[("forwarded", &v)]));
            assert_eq!(
                got(c),
                (ip("10.0.0.2"), None, AddrSource::Forwarded),
                "{:?}",
                bad
            );
        }
    }

    #[test]
    fn forwarded_malformed_elements_are_bad() {
        for bad in [
            &b"for=\"[2001:db8::1]"[..], // unterminated quote
            b"for=2001:db8::1\"",        // stray quote
            b"for=1.2.3.4;for=5.6.7.8",  // duplicate for (RFC 7239 §4)
            b"proto=https",              // no for=
            b"for=",                     // empty value
            b"=1.2.3.4",                 // empty name
            b"for 1.2.3.4",              // no '='
            b"for=1.2.3.4 junk",         // trailing junk
            b"for=\"1.2.3.4\"x",         // junk after quoted-string
            b"for=[2001:db8::1]:80:80",
            b"for=\"[2001:db8::1]x\"",
            b"for=\"1.2.3.4:_bad!\"",
            b"for=\"\x01\"",
        ] {
            let mut v = b"for=6.6.6.6, ".to_vec();
            v.extend_from_slice(bad);
            v.extend_from_slice(b", for=10.0.0.2");
            let Ok(hv) = HeaderValue::from_bytes(&v) else {
                continue; // not representable as a header value at all
            };
            let mut h = HeaderMap::new();
            h.insert(FORWARDED, hv);
            let c = resolve(sock("10.0.0.1:80"), &lan(), &h);
            assert_eq!(c.ip, ip("10.0.0.2"), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn forwarded_attacker_open_quote_cannot_swallow_proxy_element() {
        // Client sends an unterminated quote; the trusted proxy appends its
        // element to the same line. Right-to-left parsing still sees the
        // proxy's element intact, so the client is attributed correctly.
        let h = hdrs(&[("forwarded", b"for=\"6.6.6.6, for=198.51.100.9")]);
        let c = resolve(sock("10.0.0.1:80"), &lan(), &h);
        assert_eq!(c.ip, ip("198.51.100.9"));
        // With an extra trusted hop, the open quote is reached and stops the walk.
        let h = hdrs(&[("forwarded", b"for=\"6.6.6.6, for=10.0.0.2")]);
        assert_eq!(resolve(sock("10.0.0.1:80"), &lan(), &h).ip, ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_multiple_lines_and_trusted_chain() {
        let h = hdrs(&[
            ("forwarded", b"for=6.6.6.6"),
            ("forwarded", b"for=\"[2001:db8::9]:1000\""),
            ("forwarded", b"for=\"[fd00::3]\", for=10.0.0.2"),
        ]);
        let c = resolve(sock("10.0.0.1:80"), &lan(), &h);
        assert_eq!(
            got(c),
            (ip("2001:db8::9"), Some(1000), AddrSource::Forwarded)
        );
    }

    #[test]
    fn forwarded_mapped_and_non_utf8() {
        let h = hdrs(&[("forwarded", b"for=\"[::ffff:198.51.100.3]\"")]);
        assert_eq!(
            resolve(sock("10.0.0.1:80"), &lan(), &h).ip,
            ip("198.51.100.3")
        );
        let h = hdrs(&[("forwarded", b"for=6.6.6.6, for=\"\xc3\x28\", for=10.0.0.2")]);
        assert_eq!(resolve(sock("10.0.0.1:80"), &lan(), &h).ip, ip("10.0.0.2"));
        // obs-text in an ignored parameter is fine.
        let h = hdrs(&[("forwarded", b"for=198.51.100.4;host=\"caf\xe9\"")]);
        assert_eq!(
            resolve(sock("10.0.0.1:80"), &lan(), &h).ip,
            ip("198.51.100.4")
        );
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

    #[test]
    fn split_last_quote_parity() {
        assert_eq!(split_last(b"a,b", true), (Some(&b"b"[..]), Some(&b"a"[..])));
        assert_eq!(
            split_last(b"x=\"a,b\"", true),
            (Some(&b"x=\"a,b\""[..]), None)
        );
        assert_eq!(
            split_last(b"x=\"a\\\",b\"", true),
            (Some(&b"x=\"a\\\",b\""[..]), None)
        );
        assert_eq!(
            split_last(b"x=\"a\\\\\",b", true),
            (Some(&b"b"[..]), Some(&b"x=\"a\\\\\""[..]))
        );
        assert_eq!(split_last(b"x=a\"", true), (None, None));
        assert_eq!(
            split_last(b"\"a,b\"", false),
            (Some(&b"b\""[..]), Some(&b"\"a"[..]))
        );
    }

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
