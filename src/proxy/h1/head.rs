//! Request and response heads: parsing, validation and message framing (RFC 9112).
//!
//! A proxy that disagrees with its upstream about where a message ends can be made to smuggle a
//! second request past the policy. So framing is decided here, strictly, in one place: anything
//! ambiguous (both `Content-Length` and `Transfer-Encoding`, differing lengths, a transfer coding
//! other than a final `chunked`, obsolete line folding) is refused with 400 instead of guessed.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};
use std::mem::MaybeUninit;

/// Most header fields accepted in one head (more is 431).
pub const MAX_HEADERS: usize = 128;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// More bytes are needed.
    Partial,
    /// More than [`MAX_HEADERS`] fields.
    TooManyHeaders,
    /// Not valid HTTP/1.x, or ambiguous framing; the text says which rule.
    Invalid(&'static str),
}

/// A parsed, validated request head. Header values share the read buffer (no copies).
#[derive(Debug)]
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// The request target as sent (origin-form, `*`, or absolute-form).
    pub target: Bytes,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Header fields.
    pub headers: HeaderMap,
    /// How the body is delimited.
    pub framing: Framing,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent (and removed from `headers`).
    pub expect_continue: bool,
}

/// Parses a request head from the start of `buf`. Returns the head and its length in bytes.
pub fn parse_request(buf: &Bytes) -> Result<(RequestHead, usize), HeadError> {
    // Uninitialised slots: zeroing 128 of them (4 KiB) for every head showed in profiles.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HeadError::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Invalid(parse_error_text(e))),
    };
    let method = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(HeadError::Invalid("bad method"))?;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(HeadError::Invalid("unsupported HTTP version")),
    };
    let target = req.path.ok_or(HeadError::Invalid("no request target"))?;
    let target = slice_of(buf, target.as_bytes());
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::Invalid("bad header name"))?;
        let value = HeaderValue::from_maybe_shared(slice_of(buf, h.value))
            .map_err(|_| HeadError::Invalid("bad header value"))?;
        headers.append(name, value);
    }

    if version == Version::HTTP_11 && headers.get_all(header::HOST).iter().count() != 1 {
        // RFC 9112 §3.2: a 1.1 request without exactly one Host is an error.
        return Err(HeadError::Invalid(
            "HTTP/1.1 request needs exactly one Host header",
        ));
    }
    let framing = request_framing(&headers, version)?;
    let keep_alive = match version {
        Version::HTTP_11 => !has_token(&headers, header::CONNECTION, "close"),
        _ => false,
    };
    let expect_continue = match headers.get(header::EXPECT) {
        None => false,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"100-continue") => true,
        // RFC 9110 §10.1.1: an expectation we cannot meet is answered 417; we keep it simple.
        Some(_) => return Err(HeadError::Invalid("unsupported Expect value")),
    };
    if expect_continue {
        headers.remove(header::EXPECT);
    }
    Ok((
        RequestHead {
            method,
            target,
            version,
            headers,
            framing,
            keep_alive,
            expect_continue,
        },
        len,
    ))
}

/// RFC 9112 §6.1-6.3 for requests: chunked (final, only coding), or one Content-Length, or none.
fn request_framing(headers: &HeaderMap, version: Version) -> Result<Framing, HeadError> {
    let te = headers.get_all(header::TRANSFER_ENCODING);
    if te.iter().next().is_some() {
        if version == Version::HTTP_10 {
            return Err(HeadError::Invalid(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if headers.contains_key(header::CONTENT_LENGTH) {
            return Err(HeadError::Invalid(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        return match only_chunked(headers) {
            true => Ok(Framing::Chunked),
            false => Err(HeadError::Invalid("Transfer-Encoding other than chunked")),
        };
    }
    match content_length(headers)? {
        Some(0) | None => Ok(Framing::None),
        Some(n) => Ok(Framing::Length(n)),
    }
}

/// The single value of Content-Length, if present. Repeated identical values are tolerated
/// (RFC 9110 §8.6); different ones are not.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut found: Option<u64> = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|b| *b == b',') {
            let part = trim(part);
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::Invalid("bad Content-Length"));
            }
            let n = part
                .iter()
                .try_fold(0u64, |acc, d| {
                    acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                })
                .ok_or(HeadError::Invalid("bad Content-Length"))?;
            match found {
                Some(prev) if prev != n => {
                    return Err(HeadError::Invalid("conflicting Content-Length values"));
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// Whether Transfer-Encoding is exactly `chunked` (case-insensitive, in any number of lines that
/// together list only it once).
fn only_chunked(headers: &HeaderMap) -> bool {
    let mut codings = 0;
    for v in headers.get_all(header::TRANSFER_ENCODING) {
        for part in v.as_bytes().split(|b| *b == b',') {
            let part = trim(part);
            if part.is_empty() {
                continue;
            }
            if !part.eq_ignore_ascii_case(b"chunked") {
                return false;
            }
            codings += 1;
        }
    }
    codings == 1
}

/// Whether a comma-separated header contains `token` (case-insensitive).
pub fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// A parsed response head: only what the proxy needs to frame and relay it.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Reason phrase bytes (relayed as received).
    pub reason: Bytes,
    /// Header fields (values share the upstream read buffer).
    pub headers: HeaderMap,
    /// The upstream will close after this response (or is HTTP/1.0 without keep-alive).
    pub closes: bool,
}

/// Parses a response head from the start of `buf`.
pub fn parse_response(buf: &Bytes) -> Result<(ResponseHead, usize), HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HeadError::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Invalid(parse_error_text(e))),
    };
    let status = resp.code.ok_or(HeadError::Invalid("no status code"))?;
    if !(100..=999).contains(&status) {
        return Err(HeadError::Invalid("bad status code"));
    }
    let reason = slice_of(buf, resp.reason.unwrap_or("").as_bytes());
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::Invalid("bad header name"))?;
        let value = HeaderValue::from_maybe_shared(slice_of(buf, h.value))
            .map_err(|_| HeadError::Invalid("bad header value"))?;
        headers.append(name, value);
    }
    let closes = match resp.version {
        Some(1) => has_token(&headers, header::CONNECTION, "close"),
        _ => !has_token(&headers, header::CONNECTION, "keep-alive"),
    };
    Ok((
        ResponseHead {
            status,
            reason,
            headers,
            closes,
        },
        len,
    ))
}

/// RFC 9112 §6.3 for responses: no body for HEAD, 1xx, 204, 304; chunked; Content-Length; or
/// until close. Ambiguity is refused whatever the status, never passed on: chunked with
/// Content-Length (a smuggling vector), any other transfer coding, a malformed or conflicting
/// Content-Length, and a 1xx or 204 that announces a body it must not have (RFC 9110 §15.2,
/// §15.3.5). (A 304 or a HEAD response may carry the length the body would have had.)
pub fn response_framing(
    head: &ResponseHead,
    request_method: &Method,
) -> Result<Framing, HeadError> {
    let chunked = if head.headers.contains_key(header::TRANSFER_ENCODING) {
        if head.headers.contains_key(header::CONTENT_LENGTH) {
            return Err(HeadError::Invalid(
                "upstream sent both Transfer-Encoding and Content-Length",
            ));
        }
        if !only_chunked(&head.headers) {
            return Err(HeadError::Invalid(
                "upstream used a transfer coding other than chunked",
            ));
        }
        true
    } else {
        false
    };
    let length = content_length(&head.headers)?;
    if head.status < 200 || head.status == 204 {
        if chunked || length.is_some_and(|n| n > 0) {
            return Err(HeadError::Invalid(
                "upstream announced a body on a response that cannot have one",
            ));
        }
        return Ok(Framing::None);
    }
    if request_method == Method::HEAD || head.status == 304 {
        return Ok(Framing::None);
    }
    Ok(match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::UntilClose,
    })
}

fn slice_of(buf: &Bytes, part: &[u8]) -> Bytes {
    // `part` points into `buf` (httparse borrows from it), so this is a cheap refcounted view.
    buf.slice_ref(part)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

fn parse_error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::Version => "invalid HTTP version",
        httparse::Error::TooManyHeaders => "too many headers",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<RequestHead, HeadError> {
        parse_request(&Bytes::copy_from_slice(s.as_bytes())).map(|(h, _)| h)
    }

    #[test]
    fn simple_get_keeps_alive() {
        let h = req("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(h.method, Method::GET);
        assert_eq!(&h.target[..], b"/a?b=1");
        assert_eq!(h.framing, Framing::None);
        assert!(h.keep_alive);
    }

    #[test]
    fn partial_head_asks_for_more() {
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: x\r\n").unwrap_err(),
            HeadError::Partial
        );
    }

    #[test]
    fn http10_closes_and_needs_no_host() {
        let h = req("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn connection_close_is_honoured() {
        assert!(
            !req("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn missing_or_duplicate_host_is_refused() {
        // RFC 9112 §3.2
        assert!(matches!(
            req("GET / HTTP/1.1\r\n\r\n"),
            Err(HeadError::Invalid(_))
        ));
        assert!(matches!(
            req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(HeadError::Invalid(_))
        ));
    }

    #[test]
    fn content_length_framing() {
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
                .unwrap()
                .framing,
            Framing::Length(5)
        );
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                .unwrap()
                .framing,
            Framing::None
        );
        // RFC 9110 §8.6: identical repeats are one value
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n")
                .unwrap()
                .framing,
            Framing::Length(5)
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        // RFC 9112 §6.1: TE + CL together; §6.3: different lengths; non-final chunked.
        for bad in [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        ] {
            assert!(
                matches!(req(bad), Err(HeadError::Invalid(_))),
                "accepted: {bad:?}"
            );
        }
    }

    #[test]
    fn chunked_is_accepted_case_insensitively() {
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n")
                .unwrap()
                .framing,
            Framing::Chunked
        );
    }

    #[test]
    fn expect_continue_is_taken_out() {
        let h =
            req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
                .unwrap();
        assert!(h.expect_continue);
        assert!(!h.headers.contains_key(header::EXPECT));
    }

    #[test]
    fn too_many_headers() {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..200 {
            s.push_str(&format!("X-{i}: y\r\n"));
        }
        s.push_str("\r\n");
        assert_eq!(req(&s).unwrap_err(), HeadError::TooManyHeaders);
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        for bad in [
            "\0\0\0\0\r\n\r\n",
            "GET / HTTP/9.9\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            "G\u{e9}T / HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(req(bad), Err(HeadError::Invalid(_))), "{bad:?}");
        }
    }

    fn resp(s: &str, method: Method) -> Result<Framing, HeadError> {
        let (h, _) = parse_response(&Bytes::copy_from_slice(s.as_bytes()))?;
        response_framing(&h, &method)
    }

    #[test]
    fn response_framing_rules() {
        assert_eq!(
            resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Method::GET),
            Ok(Framing::Length(3))
        );
        assert_eq!(
            resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Method::HEAD),
            Ok(Framing::None)
        );
        assert_eq!(
            resp("HTTP/1.1 204 No Content\r\n\r\n", Method::GET),
            Ok(Framing::None)
        );
        assert_eq!(
            resp(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                Method::GET
            ),
            Ok(Framing::None)
        );
        assert_eq!(
            resp(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::GET
            ),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            resp("HTTP/1.1 200 OK\r\n\r\n", Method::GET),
            Ok(Framing::UntilClose)
        );
        assert!(
            resp(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Method::GET
            )
            .is_err()
        );
    }

    /// What no-body responses may and may not say: ambiguity is refused even where no body is
    /// read (the upstream's idea of the boundary is unknown), a 204 announcing a body is
    /// refused, and a 304 or HEAD response keeps the length the body would have had.
    #[test]
    fn no_body_responses_never_pass_ambiguity_on() {
        for (text, method) in [
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Method::HEAD,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Method::GET,
            ),
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                Method::GET,
            ),
            (
                "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::GET,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                Method::HEAD,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Method::HEAD,
            ),
        ] {
            assert!(
                matches!(resp(text, method.clone()), Err(HeadError::Invalid(_))),
                "{text:?} to {method}"
            );
        }
        assert_eq!(
            resp(
                "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
                Method::GET
            ),
            Ok(Framing::None)
        );
        assert_eq!(
            resp(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::HEAD
            ),
            Ok(Framing::None)
        );
    }

    #[test]
    fn response_connection_semantics() {
        let (h, _) = parse_response(&Bytes::from_static(b"HTTP/1.0 200 OK\r\n\r\n")).unwrap();
        assert!(h.closes);
        let (h, _) = parse_response(&Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        ))
        .unwrap();
        assert!(h.closes);
        let (h, _) = parse_response(&Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n")).unwrap();
        assert!(!h.closes);
    }
}
