//! PROXY protocol (HAProxy's spec, v1 text and v2 binary): reading the header a trusted load
//! balancer puts in front of a connection, and writing one to a TCP upstream.
//!
//! The header is read byte-exactly (never past its end), so whatever follows — a TLS
//! ClientHello, an HTTP request — is left in the socket for the next layer untouched. Parsing
//! itself is the `ppp` crate's.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// v2 signature (spec §2.2).
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 header, CRLF included (spec §2.1).
const V1_MAX: usize = 107;
/// Largest v2 payload accepted: addresses and a few TLVs; anything larger is refused rather
/// than buffered.
const V2_MAX_PAYLOAD: usize = 2048;

/// Why a PROXY header was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxyError {
    /// Nothing (or not all of it) arrived in time.
    Timeout,
    /// The connection closed or failed first.
    Closed,
    /// The bytes are not a PROXY header.
    Missing,
    /// A PROXY header that does not parse.
    Malformed(String),
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::Timeout => f.write_str("PROXY header not received in time"),
            ProxyError::Closed => f.write_str("connection closed before a complete PROXY header"),
            ProxyError::Missing => f.write_str("connection does not start with a PROXY header"),
            ProxyError::Malformed(why) => write!(f, "malformed PROXY header: {why}"),
        }
    }
}

/// Reads one PROXY header. `Ok(Some(addr))`: the client's source address. `Ok(None)`: a valid
/// header without an address (v1 `UNKNOWN`, v2 `LOCAL` such as health checks): use the socket
/// peer.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Option<SocketAddr>, ProxyError> {
    match tokio::time::timeout(timeout, read_inner(stream)).await {
        Ok(r) => r,
        Err(_) => Err(ProxyError::Timeout),
    }
}

async fn read_inner<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<SocketAddr>, ProxyError> {
    let mut buf = vec![0u8; 16];
    // Six bytes tell the versions apart ("PROXY " vs the v2 signature) and fit inside the
    // shortest v1 header ("PROXY UNKNOWN\r\n", 15 bytes), so nothing is read past the end.
    s.read_exact(&mut buf[..6])
        .await
        .map_err(|_| ProxyError::Closed)?;
    if &buf[..6] == b"PROXY " {
        buf.truncate(6);
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(ProxyError::Malformed(
                    "v1 header longer than 107 bytes".into(),
                ));
            }
            let b = s.read_u8().await.map_err(|_| ProxyError::Closed)?;
            buf.push(b);
        }
        return parse_v1(&buf);
    }
    if buf[..6] != V2_SIG[..6] {
        return Err(ProxyError::Missing);
    }
    s.read_exact(&mut buf[6..16])
        .await
        .map_err(|_| ProxyError::Closed)?;
    if buf[..12] != V2_SIG {
        return Err(ProxyError::Missing);
    }
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if len > V2_MAX_PAYLOAD {
        return Err(ProxyError::Malformed(format!("v2 payload of {len} bytes")));
    }
    buf.resize(16 + len, 0);
    s.read_exact(&mut buf[16..])
        .await
        .map_err(|_| ProxyError::Closed)?;
    parse_v2(&buf)
}

/// Parses a complete v1 header (CRLF included).
pub fn parse_v1(bytes: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    use ppp::v1::{Addresses, Header};
    let h = Header::try_from(bytes).map_err(|e| ProxyError::Malformed(format!("v1: {e:?}")))?;
    Ok(match h.addresses {
        Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::Unknown => None,
    })
}

/// Parses a complete v2 header.
pub fn parse_v2(bytes: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    use ppp::v2::{Addresses, Command, Header};
    let h = Header::try_from(bytes).map_err(|e| ProxyError::Malformed(format!("v2: {e:?}")))?;
    if h.command == Command::Local {
        return Ok(None);
    }
    Ok(match h.addresses {
        Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::Unspecified | Addresses::Unix(_) => None,
    })
}

/// A v1 header for `client` connecting to `local` (both of one family; mixed families are sent
/// as IPv6 with IPv4-mapped addresses).
pub fn v1_header(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (c, l) = same_family(client, local);
    let fam = if c.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {fam} {} {} {} {}\r\n",
        c.ip(),
        l.ip(),
        c.port(),
        l.port()
    )
    .into_bytes()
}

/// A v2 header (`PROXY` command, stream) for `client` connecting to `local`.
pub fn v2_header(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    use ppp::v2::{Builder, Command, Protocol, Version};
    let (c, l) = same_family(client, local);
    Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, (c, l))
        .build()
        .unwrap_or_default()
}

fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |s: SocketAddr| match s {
        SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        v6 => v6,
    };
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (v6(a), v6(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes.to_vec());
        let r = read_header(&mut cursor, Duration::from_secs(1)).await;
        let pos = cursor.position() as usize;
        (r, bytes[pos..].to_vec())
    }

    #[tokio::test]
    async fn v1_and_v2_round_trip_and_leave_the_rest() {
        let c: SocketAddr = "203.0.113.7:51000".parse().unwrap();
        let l: SocketAddr = "10.0.0.1:443".parse().unwrap();
        for h in [v1_header(c, l), v2_header(c, l)] {
            let mut wire = h.clone();
            wire.extend_from_slice(b"GET / HTTP/1.1\r\n");
            let (r, rest) = read(&wire).await;
            assert_eq!(r, Ok(Some(c)));
            assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        }
        let c6: SocketAddr = "[2001:db8::5]:4000".parse().unwrap();
        assert_eq!(
            read(&v2_header(c6, l)).await.0,
            Ok(Some("[2001:db8::5]:4000".parse().unwrap()))
        );
        assert_eq!(read(b"PROXY UNKNOWN\r\nX").await, (Ok(None), b"X".to_vec()));
    }

    #[tokio::test]
    async fn garbage_is_refused_without_panic() {
        assert_eq!(
            read(b"GET / HTTP/1.1\r\n\r\n").await.0,
            Err(ProxyError::Missing)
        );
        assert_eq!(read(b"PRO").await.0, Err(ProxyError::Closed));
        assert!(matches!(
            read(b"PROXY TCP4 1.2.3.4\r\n").await.0,
            Err(ProxyError::Malformed(_))
        ));
        let long = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert!(matches!(read(&long).await.0, Err(ProxyError::Malformed(_))));
        let mut v2 = v2_header("1.2.3.4:5".parse().unwrap(), "5.6.7.8:9".parse().unwrap());
        v2[14] = 0xff; // absurd length
        assert!(matches!(read(&v2).await.0, Err(ProxyError::Malformed(_))));
        // every truncation and byte flip of a valid v2 header: no panic
        let good = v2_header("1.2.3.4:5".parse().unwrap(), "5.6.7.8:9".parse().unwrap());
        for i in 0..good.len() {
            let _ = read(&good[..i]).await;
            let mut b = good.clone();
            b[i] ^= 0xa5;
            let _ = read(&b).await;
        }
    }
}
