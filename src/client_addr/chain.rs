//! Walking a forwarding list right to left, the same for `X-Forwarded-For` and `Forwarded`:
//! split off one element at a time (commas inside quoted-strings respected), and stop at the
//! first address that is not a trusted proxy, at garbage, or at the work cap.
//!
//! This is where the security rules of the module docs (right to left, stop at garbage,
//! bounded work) are carried out; the parsers only turn one element into a `Hop`.

use http::HeaderValue;

use super::addr::{AddrSource, ClientAddr, normalize};
use super::node::Hop;
use super::trusted::TrustedProxies;

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

/// Right-to-left walk state. `last_good` starts as the socket peer (itself
/// trusted) and becomes each trusted hop in turn.
pub(super) struct Walk<'t> {
    trusted: &'t TrustedProxies,
    visited: usize,
    last_good: ClientAddr,
}

impl<'t> Walk<'t> {
    /// A walk that starts at the socket peer (`direct`), which `trusted` contains.
    pub(super) fn new(trusted: &'t TrustedProxies, direct: ClientAddr) -> Self {
        Walk {
            trusted,
            visited: 0,
            last_good: direct,
        }
    }

    /// Walks every field line of one header, the last line first (it holds the right-most
    /// entries) and each line right to left, splitting with `quoted` (see [`split_last`]) and
    /// reading each element with `parse`; returns the address the walk ends at.
    pub(super) fn run<'h>(
        mut self,
        lines: impl DoubleEndedIterator<Item = &'h HeaderValue>,
        quoted: bool,
        parse: impl Fn(&[u8]) -> Hop,
        source: AddrSource,
    ) -> ClientAddr {
        for line in lines.rev() {
            let mut rest = Some(line.as_bytes());
            while let Some(bytes) = rest {
                let (elem, before) = split_last(bytes, quoted);
                rest = before;
                let hop = match elem {
                    Some(e) => parse(e),
                    None => Hop::Bad,
                };
                if let Some(done) = self.step(hop, source) {
                    return done;
                }
            }
        }
        self.last_good
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_addr::resolve;
    use crate::client_addr::test_support::{got, hdrs, ip, lan, sock};

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
}
