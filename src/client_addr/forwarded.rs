//! The RFC 7239 `Forwarded` element parser: pairs, tokens and quoted-strings (with escapes),
//! reduced to the one hop its `for=` names. It works in place, with a stack buffer for an
//! unescaped quoted node, and never allocates.
//!
//! Its own file because it is the one real grammar in this module; the list walk around it
//! (`chain.rs`) is shared with `X-Forwarded-For`.

use super::node::{Hop, MAX_NODE_LEN, is_ows, is_tchar, parse_node, trim_ows};

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
pub(super) fn parse_forwarded_element(e: &[u8]) -> Hop {
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
        let Some((end, value)) = parse_value(e, i, is_for) else {
            return Hop::Bad;
        };
        i = end;
        if value.is_some() {
            node = value;
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

/// Reads the value of a pair, starting at `e[i]`: a quoted-string or a token. Returns the index
/// just past it and, for a `for` pair, the node it names; `None` when it is malformed.
fn parse_value(e: &[u8], mut i: usize, is_for: bool) -> Option<(usize, Option<Hop>)> {
    if e.get(i) == Some(&b'"') {
        if is_for {
            let mut buf = NodeBuf::new();
            let end = parse_quoted(e, i, Some(&mut buf))?;
            let node = if buf.overflow {
                Hop::Bad
            } else {
                parse_node(buf.as_slice(), true)
            };
            Some((end, Some(node)))
        } else {
            let end = parse_quoted(e, i, None)?;
            Some((end, None))
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
            return None;
        }
        let node = is_for.then(|| parse_node(e.get(start..i).unwrap_or_default(), true));
        Some((i, node))
    }
}

#[cfg(test)]
mod tests {
    use http::header::FORWARDED;
    use http::{HeaderMap, HeaderValue};

    use crate::client_addr::test_support::{got, hdrs, ip, lan, sock};
    use crate::client_addr::{AddrSource, resolve};

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
}
