//! The server name (SNI) of a TLS ClientHello, read without terminating TLS (RFC 8446 §4.1.2,
//! RFC 6066 §3), for pass-through listeners that route or log by name.
//!
//! Every length is checked against what is actually there: a truncated or hostile hello gives
//! "no SNI", never a panic or an out-of-bounds read.

/// The outcome of looking at the first bytes of a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek {
    /// A TLS record has started but is not complete yet: read more (up to the caller's limit).
    NeedMore,
    /// Done: the name, or `None` (not TLS, garbage, or a hello without SNI).
    Done(Option<String>),
}

/// Largest TLS record (2^14 plus header): the caller need not read more than this.
pub const MAX_HELLO: usize = 16 * 1024 + 5;

/// Looks for the SNI in `buf`, the first bytes the client sent.
pub fn peek(buf: &[u8]) -> Peek {
    if buf.is_empty() {
        return Peek::NeedMore;
    }
    // Record header: handshake(22), legacy version 3.x, length.
    if buf[0] != 22 {
        return Peek::Done(None);
    }
    if buf.len() < 5 {
        return Peek::NeedMore;
    }
    if buf[1] != 3 {
        return Peek::Done(None);
    }
    let rec_len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    if rec_len == 0 || rec_len > MAX_HELLO - 5 {
        return Peek::Done(None);
    }
    if buf.len() < 5 + rec_len {
        return Peek::NeedMore;
    }
    Peek::Done(client_hello_sni(&buf[5..5 + rec_len]))
}

/// A bounds-checked reader.
struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| b[0] as usize)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize)
    }
}

fn client_hello_sni(msg: &[u8]) -> Option<String> {
    let mut r = R(msg);
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let len = r.u24()?;
    // A hello split over several records is parsed as far as this record goes.
    let body = r.take(len.min(r.0.len()))?;
    let mut r = R(body);
    r.take(2 + 32)?; // legacy_version, random
    let n = r.u8()?;
    r.take(n)?; // session id
    let n = r.u16()?;
    r.take(n)?; // cipher suites
    let n = r.u8()?;
    r.take(n)?; // compression methods
    let n = r.u16()?;
    let mut ext = R(r.take(n.min(r.0.len()))?);
    while !ext.0.is_empty() {
        let kind = ext.u16()?;
        let n = ext.u16()?;
        let data = ext.take(n)?;
        if kind != 0 {
            continue;
        }
        let mut s = R(data);
        let n = s.u16()?;
        let mut list = R(s.take(n)?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let n = list.u16()?;
            let name = list.take(n)?;
            if name_type == 0 {
                return valid_name(name);
            }
        }
        return None;
    }
    None
}

/// A host name as RFC 6066 allows it (ASCII letters, digits, `-`, `.`; no trailing dot),
/// lower-cased; anything else is treated as absent.
fn valid_name(name: &[u8]) -> Option<String> {
    if name.is_empty()
        || name.len() > 253
        || name.last() == Some(&b'.')
        || !name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.' || *b == b'_')
    {
        return None;
    }
    Some(String::from_utf8_lossy(name).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal but well-formed ClientHello record with `sni`.
    pub(crate) fn hello(sni: &str) -> Vec<u8> {
        let name = sni.as_bytes();
        let mut sni_ext = Vec::new();
        sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sni_ext.push(0);
        sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni_ext.extend_from_slice(name);
        let mut exts = Vec::new();
        exts.extend_from_slice(&[0, 0]);
        exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
        exts.extend_from_slice(&sni_ext);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn finds_the_name() {
        assert_eq!(
            peek(&hello("VPN.Example.com")),
            Peek::Done(Some("vpn.example.com".into()))
        );
    }

    #[test]
    fn partial_then_complete() {
        let h = hello("a.example");
        assert_eq!(peek(&h[..3]), Peek::NeedMore);
        assert_eq!(peek(&h[..h.len() - 1]), Peek::NeedMore);
    }

    #[test]
    fn garbage_is_no_sni() {
        assert_eq!(peek(b"GET / HTTP/1.1\r\n"), Peek::Done(None));
        assert_eq!(peek(b"SSH-2.0-x\r\n"), Peek::Done(None));
        assert_eq!(peek(&[22, 3, 1, 0, 0]), Peek::Done(None));
        assert_eq!(
            peek(&[22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]),
            Peek::Done(None)
        );
        let good = hello("x.example");
        for i in 5..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xff;
            let _ = peek(&b); // never panics
            let _ = peek(&good[..i]);
        }
        assert_eq!(peek(&hello("bad name!")), Peek::Done(None));
    }
}
