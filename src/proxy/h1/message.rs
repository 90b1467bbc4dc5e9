//! HTTP/1.1 message heads on the wire: finding where a head ends, reading the upstream's
//! response head, turning a request target into origin-form, and writing request and response
//! heads (hop-by-hop fields out, framing fields set from what is actually relayed).
//!
//! Parsing a head's fields and framing is `head.rs`; this is the byte-level glue around it.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Version};
use tokio::io::AsyncReadExt;

use super::head::{self, Framing, HeadError, RequestHead, ResponseHead};
use super::{BODY_CHUNK, HEAD_CHUNK};
use crate::proxy::failure::Failure;
use crate::proxy::headers;
use crate::proxy::upstream::UpstreamConn;

/// Reads more from the upstream. `Err("closed")` on a clean end of stream.
pub(super) async fn fill(up: &mut UpstreamConn, timeout: Duration) -> Result<(), &'static str> {
    up.buf.reserve(BODY_CHUNK);
    match tokio::time::timeout(timeout, up.stream.read_buf(&mut up.buf)).await {
        Ok(Ok(0)) => Err("closed"),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err("read error"),
        Err(_) => Err("timed out while sending the body"),
    }
}

/// Reads a response head from the upstream `origin` (within `response_timeout` in total).
/// The head's bytes are taken out of `up.buf`; what follows (body bytes) stays there.
pub(super) async fn read_response_head(
    up: &mut UpstreamConn,
    origin: &str,
    cfg: &crate::config::ListenerConfig,
) -> Result<ResponseHead, Failure> {
    let timeout = cfg.response_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let bad = |why: &str| Failure::UpstreamBad(format!("upstream {origin}: {why}"));
    let closed = |e: &dyn std::fmt::Display| {
        Failure::UpstreamClosed(format!("upstream {origin} closed the connection: {e}"))
    };
    // The same exact limit as for request heads: only the first `limit` bytes can hold the end.
    let limit = cfg.max_header_bytes;
    let mut scanned = 0;
    loop {
        let found = find_head_end(&up.buf[..up.buf.len().min(limit)], scanned)
            .map_err(|BareLf| bad("bare LF in the response head"))?;
        if let Some(end) = found {
            let bytes = up.buf.split_to(end).freeze();
            return match head::parse_response(&bytes) {
                Ok((resp, _)) => Ok(resp),
                Err(HeadError::Invalid(why)) => Err(bad(why)),
                Err(_) => Err(bad("response head not understood")),
            };
        }
        if up.buf.len() >= limit {
            return Err(bad("response head too large"));
        }
        scanned = up.buf.len().saturating_sub(3);
        up.buf.reserve(HEAD_CHUNK);
        match tokio::time::timeout_at(deadline, up.stream.read_buf(&mut up.buf)).await {
            Ok(Ok(0)) => return Err(closed(&"connection closed before a response")),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(closed(&e)),
            Err(_) => {
                return Err(Failure::UpstreamTimeout {
                    origin: origin.to_owned(),
                    timeout,
                });
            }
        }
    }
}

/// A line of a head ended in a bare LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BareLf;

/// Position just past the `\r\n\r\n` that ends a head, searching from `from` (bytes before it
/// were searched already). A bare LF is refused (`Err`) rather than accepted as a line end:
/// httparse would end the head at `\n\n`, this search at the later CRLF CRLF, and the bytes
/// between (a pipelined request, a body) would vanish into a head that was never parsed.
pub(super) fn find_head_end(buf: &[u8], from: usize) -> Result<Option<usize>, BareLf> {
    let mut at = from;
    while let Some(p) = buf.get(at..).and_then(|rest| memchr::memchr(b'\n', rest)) {
        let lf = at + p;
        if lf == 0 || buf[lf - 1] != b'\r' {
            return Err(BareLf);
        }
        if lf >= 3 && &buf[lf - 3..lf] == b"\r\n\r" {
            return Ok(Some(lf + 1));
        }
        at = lf + 1;
    }
    Ok(None)
}

/// Turns the request target into origin-form for the upstream. Absolute-form (RFC 9112 §3.2.2)
/// is accepted and its authority replaces Host; `*` is kept for OPTIONS.
pub(super) fn origin_form(head: &mut RequestHead) -> Result<bytes::Bytes, &'static str> {
    let t = &head.target;
    if t.first() == Some(&b'/') {
        return Ok(t.clone());
    }
    if &t[..] == b"*" && head.method == Method::OPTIONS {
        return Ok(t.clone());
    }
    let uri: http::Uri = http::Uri::from_maybe_shared(t.clone()).map_err(|_| "not a valid URI")?;
    let (Some(authority), Some(_)) = (uri.authority(), uri.scheme()) else {
        return Err("neither origin-form nor absolute-form");
    };
    let host = HeaderValue::from_str(authority.as_str()).map_err(|_| "bad authority")?;
    head.headers.insert(header::HOST, host);
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(bytes::Bytes::copy_from_slice(if pq.is_empty() {
        b"/"
    } else {
        pq.as_bytes()
    }))
}

pub(super) fn write_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &[u8],
    version: Version,
    headers: &HeaderMap,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(if version == Version::HTTP_10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    write_fields(out, headers);
    out.extend_from_slice(b"\r\n");
}

/// Writes a response head for the client: hop-by-hop fields removed, framing fields set from
/// what is actually relayed, `Connection: close` when we will close.
pub(super) fn write_response_head(
    out: &mut Vec<u8>,
    resp: &mut ResponseHead,
    framing: Option<Framing>,
    close: bool,
) {
    use std::io::Write;
    let _ = write!(out, "HTTP/1.1 {} ", resp.status);
    out.extend_from_slice(&resp.reason);
    out.extend_from_slice(b"\r\n");
    let switching = resp.status == 101;
    headers::strip_hop_by_hop(&mut resp.headers, switching);
    if framing == Some(Framing::Chunked) {
        resp.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    write_fields(out, &resp.headers);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

pub(super) fn write_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_across_reads() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\n\r\nrest", 0),
            Ok(Some(18))
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r", 0), Ok(None));
        assert_eq!(find_head_end(b"abc\r\n\r\n", 2), Ok(Some(7)));
        assert_eq!(find_head_end(b"ab", 5), Ok(None));
        // Rescanning from three bytes before the end of the last read finds a split CRLFCRLF.
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for split in 1..head.len() {
            let first = find_head_end(&head[..split], 0);
            assert!(matches!(first, Ok(None) | Ok(Some(_))), "{split}");
            if first == Ok(None) {
                assert_eq!(
                    find_head_end(head, split.saturating_sub(3)),
                    Ok(Some(head.len()))
                );
            }
        }
    }

    /// Bare LF line ends are refused wherever they are, not searched past.
    #[test]
    fn bare_lf_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\nHost: x\n\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\n\n",
            b"\nGET / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(find_head_end(bad, 0), Err(BareLf), "{bad:?}");
        }
    }

    #[test]
    fn request_head_is_serialised_in_wire_form() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("example.com"));
        let mut out = Vec::new();
        write_request_head(&mut out, &Method::GET, b"/x?y", Version::HTTP_11, &h);
        assert_eq!(out, b"GET /x?y HTTP/1.1\r\nhost: example.com\r\n\r\n");
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_host() {
        let raw = bytes::Bytes::from_static(
            b"GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        );
        let (mut head, _) = head::parse_request(&raw).unwrap();
        assert_eq!(&origin_form(&mut head).unwrap()[..], b"/p?q=1");
        assert_eq!(head.headers.get(header::HOST).unwrap(), "example.com:8080");
    }

    #[test]
    fn response_head_drops_hop_by_hop_and_sets_framing() {
        let raw = bytes::Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nTransfer-Encoding: chunked\r\nX-Keep: 2\r\n\r\n",
        );
        let (mut resp, _) = head::parse_response(&raw).unwrap();
        let mut out = Vec::new();
        write_response_head(&mut out, &mut resp, Some(Framing::Chunked), true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("x-keep: 2\r\n") && text.contains("transfer-encoding: chunked\r\n"));
        assert!(!text.contains("x-drop") && text.ends_with("connection: close\r\n\r\n"));
    }
}
