//! A strict parser for chunked bodies (RFC 9112 §7.1), in two modes, and locgate's own chunk
//! encoder.
//!
//! The proxy must know exactly where a chunked body ends: the bytes after it are the next
//! message on the connection. The parser therefore walks every framing byte, refuses anything
//! malformed (bad hex, overflowing sizes, bare LF, oversized extensions or trailers), and reports
//! how much of the input belongs to the body.
//!
//! * **Validating** ([`ChunkedParser::feed`]): response bodies, relayed byte for byte to the
//!   client once checked.
//! * **Decoding** ([`ChunkedParser::feed_with`]): request bodies. The data bytes are handed out
//!   and the upstream receives [`encode_chunk`] / [`encode_end`] framing made by locgate (sizes
//!   in lower-case hex without leading zeros, no extensions, **no trailers**: a trailer section
//!   is checked for its framing and then dropped, so nothing the client put after the data can
//!   reach the upstream in a form locgate did not parse). An upstream that reads chunks
//!   differently (leading zeros, extensions, odd whitespace) therefore sees the same message
//!   boundaries locgate decided on, and a login form body is read by the same decoder.

/// Longest chunk-size line (size + extensions) accepted.
const MAX_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { digits: u8 },
    /// After the size, whitespace (RFC 9112 BWS): more of it, `;` or CR may follow.
    SizeWs,
    /// Inside extensions (after `;`), up to CR.
    Ext,
    /// Expecting LF after the size line's CR.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Expecting CR after data.
    DataCr,
    /// Expecting LF after data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field's name.
    TrailerName,
    /// Inside a trailer field's value.
    Trailer,
    /// Expecting LF after a trailer line's CR.
    TrailerLf,
    /// Expecting LF of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

/// Incremental parser state.
#[derive(Debug, Clone)]
pub struct ChunkedParser {
    state: State,
    /// Bytes left in the current chunk (or the size being accumulated).
    remaining: u64,
    line: usize,
    trailers: usize,
}

impl Default for ChunkedParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedParser {
    /// A parser at the start of a body.
    pub fn new() -> Self {
        ChunkedParser {
            state: State::Size { digits: 0 },
            remaining: 0,
            line: 0,
            trailers: 0,
        }
    }

    /// Whether the whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes as much of `input` as belongs to the body; returns how many bytes that is.
    /// Stops at the end of the body, leaving what follows (a pipelined request) unconsumed.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ChunkError> {
        self.feed_with(input, |_| {})
    }

    /// [`ChunkedParser::feed`] that also hands each run of chunk data in `input` to `data`, in
    /// order (the decoded body; runs follow the input's reads, not the sender's chunks). Data
    /// handed out before an error was not yet known to be followed by valid framing.
    pub fn feed_with(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return Ok(i),
                // Chunk data is skipped in one step, not walked byte by byte.
                State::Data => {
                    let take = ((input.len() - i) as u64).min(self.remaining);
                    self.remaining -= take;
                    data(&input[i..i + take as usize]);
                    i += take as usize;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    let b = input[i];
                    i += 1;
                    self.framing_byte(b)?;
                    if self.state == State::Done {
                        return Ok(i);
                    }
                }
            }
        }
        Ok(i)
    }

    /// One byte of framing: a size line, the CRLF after chunk data, or the trailers.
    fn framing_byte(&mut self, b: u8) -> Result<(), ChunkError> {
        match self.state {
            State::Size { .. } | State::SizeWs | State::Ext | State::SizeLf => self.size_line(b),
            State::DataCr | State::DataLf => self.data_end(b),
            State::TrailerStart
            | State::TrailerName
            | State::Trailer
            | State::TrailerLf
            | State::EndLf => self.trailers(b),
            State::Data | State::Done => Ok(()),
        }
    }

    /// `chunk-size [ chunk-ext ] CRLF` (RFC 9112 §7.1): hex digits (at most 16), optional
    /// whitespace, then extensions (from `;`) we skip but check for control bytes, then CRLF.
    /// Anything else after the size (`5 x`) is refused, not read as an extension.
    fn size_line(&mut self, b: u8) -> Result<(), ChunkError> {
        match self.state {
            State::Size { digits } => {
                if let Some(d) = char::from(b).to_digit(16) {
                    if digits >= 16 {
                        return Err(ChunkError("chunk size too large"));
                    }
                    self.remaining = (self.remaining << 4) | u64::from(d);
                    self.state = State::Size { digits: digits + 1 };
                } else if digits == 0 {
                    return Err(ChunkError("chunk size missing"));
                } else if b == b';' {
                    self.state = State::Ext;
                } else if b == b' ' || b == b'\t' {
                    self.state = State::SizeWs;
                } else if b == b'\r' {
                    self.state = State::SizeLf;
                } else {
                    return Err(ChunkError("bad chunk size"));
                }
                self.bump_line()
            }
            State::SizeWs => {
                self.state = match b {
                    b' ' | b'\t' => State::SizeWs,
                    b';' => State::Ext,
                    b'\r' => State::SizeLf,
                    _ => return Err(ChunkError("bad chunk size")),
                };
                self.bump_line()
            }
            State::Ext => {
                if b == b'\r' {
                    self.state = State::SizeLf;
                } else if b == b'\n' || b < 0x20 && b != b'\t' || b == 0x7f {
                    return Err(ChunkError("bad chunk extension"));
                }
                self.bump_line()
            }
            _ => {
                if b != b'\n' {
                    return Err(ChunkError("chunk size line not ended by CRLF"));
                }
                self.line = 0;
                self.state = if self.remaining == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                };
                Ok(())
            }
        }
    }

    /// The CRLF that must follow chunk data.
    fn data_end(&mut self, b: u8) -> Result<(), ChunkError> {
        match self.state {
            State::DataCr if b == b'\r' => self.state = State::DataLf,
            State::DataLf if b == b'\n' => {
                self.remaining = 0;
                self.state = State::Size { digits: 0 };
            }
            _ => return Err(ChunkError("chunk data not followed by CRLF")),
        }
        Ok(())
    }

    /// The trailer section and the final CRLF. Each trailer line must be a field line
    /// (`token ":" value`, RFC 9112 §7.1.2, §5): a line that is not (a pipelined request
    /// line after a last chunk missing its final CRLF, a folded line, a name with a space) is
    /// refused rather than swallowed as a trailer.
    fn trailers(&mut self, b: u8) -> Result<(), ChunkError> {
        match self.state {
            State::TrailerStart => {
                self.state = match b {
                    b'\r' => State::EndLf,
                    b'\n' => return Err(ChunkError("bare LF in trailers")),
                    b' ' | b'\t' => return Err(ChunkError("folded trailer line")),
                    _ if is_tchar(b) => State::TrailerName,
                    _ => return Err(ChunkError("bad trailer field name")),
                };
                self.bump_trailers()
            }
            State::TrailerName => {
                if b == b':' {
                    self.state = State::Trailer;
                } else if !is_tchar(b) {
                    return Err(ChunkError("bad trailer field name"));
                }
                self.bump_trailers()
            }
            State::Trailer => {
                if b == b'\r' {
                    self.state = State::TrailerLf;
                } else if b == b'\n' || b < 0x20 && b != b'\t' || b == 0x7f {
                    return Err(ChunkError("bad trailer line"));
                }
                self.bump_trailers()
            }
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(ChunkError("trailer line not ended by CRLF"));
                }
                self.state = State::TrailerStart;
                Ok(())
            }
            _ => {
                if b != b'\n' {
                    return Err(ChunkError("chunked body not ended by CRLF"));
                }
                self.state = State::Done;
                Ok(())
            }
        }
    }

    fn bump_line(&mut self) -> Result<(), ChunkError> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(ChunkError("chunk size line too long"));
        }
        Ok(())
    }

    fn bump_trailers(&mut self) -> Result<(), ChunkError> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(ChunkError("trailers too large"));
        }
        Ok(())
    }
}

/// RFC 9110 §5.6.2 `tchar`: the bytes a field name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Appends one chunk carrying `data` in locgate's framing: the size in lower-case hex without
/// leading zeros, CRLF, the data, CRLF. Empty data writes nothing (a zero-size chunk would end
/// the body).
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    use std::io::Write;
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and an empty trailer section: the end of a chunked body.
pub fn encode_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// Decodes `input` from the start with `parser` and appends it re-encoded to `out`
/// ([`encode_chunk`] per data run, [`encode_end`] once the body is complete). Returns how many
/// input bytes belong to the body. On an error, `out` may hold chunks already re-encoded; the
/// caller must not send them as a complete message.
pub fn reencode(
    parser: &mut ChunkedParser,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, ChunkError> {
    let n = parser.feed_with(input, |d| encode_chunk(out, d))?;
    if parser.is_done() {
        encode_end(out);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the data and the bytes consumed.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut p = ChunkedParser::new();
        let mut data = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            let n = p.feed_with(piece, |d| data.extend_from_slice(d))?;
            used += n;
            if p.is_done() {
                break;
            }
        }
        Ok((data, used, p.is_done()))
    }

    #[test]
    fn decoding_byte_at_a_time_equals_all_at_once() {
        let body = b"5;ext=\"q\"\r\nhello\r\n000A \t;x\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let whole = decode_in_steps(body, body.len()).unwrap();
        assert_eq!(whole, (b"hello0123456789".to_vec(), body.len() - 4, true));
        for step in 1..body.len() {
            assert_eq!(decode_in_steps(body, step).unwrap(), whole, "step {step}");
        }
    }

    #[test]
    fn reencoding_is_canonical_and_drops_extensions_and_trailers() {
        let body =
            b"0005;a=b\r\nhello\r\n1f\r\n0123456789012345678901234567890\r\n0;z\r\nX-T: 1\r\n\r\n";
        let mut out = Vec::new();
        let mut p = ChunkedParser::new();
        assert_eq!(reencode(&mut p, body, &mut out), Ok(body.len()));
        assert_eq!(
            out,
            b"5\r\nhello\r\n1f\r\n0123456789012345678901234567890\r\n0\r\n\r\n".to_vec()
        );
        // Canonical framing decodes to the same data, and is its own canonical form.
        let mut again = Vec::new();
        assert_eq!(
            reencode(&mut ChunkedParser::new(), &out, &mut again),
            Ok(out.len())
        );
        assert_eq!(again, out);
    }

    #[test]
    fn reencoding_in_pieces_never_writes_the_end_before_the_body_is_complete() {
        let body = b"a\r\n0123456789\r\n0\r\n\r\n";
        let mut p = ChunkedParser::new();
        let mut out = Vec::new();
        reencode(&mut p, &body[..12], &mut out).unwrap();
        assert_eq!(out, b"9\r\n012345678\r\n".to_vec());
        reencode(&mut p, &body[12..], &mut out).unwrap();
        assert!(p.is_done());
        assert_eq!(out, b"9\r\n012345678\r\n1\r\n9\r\n0\r\n\r\n".to_vec());
    }

    /// Every malformed class, fed whole and byte by byte: the same refusal either way.
    #[test]
    fn every_malformed_class_is_refused_whole_and_byte_by_byte() {
        let long_ext = [&b"1;"[..], &[b'a'; MAX_LINE + 2], b"\r\n"].concat();
        let long_trailer = [&b"0\r\nX: "[..], &[b'a'; MAX_TRAILERS + 2], b"\r\n\r\n"].concat();
        let cases: Vec<(&[u8], &str)> = vec![
            (b"x\r\n", "chunk size missing"),
            (b"5 x\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
            (b"5 \t 6\r\n", "bad chunk size"),
            (b"\r\n", "chunk size missing"),
            (b";ext\r\n", "chunk size missing"),
            (b"-1\r\n", "chunk size missing"),
            (b"+1\r\n", "chunk size missing"),
            (b"0x5\r\n", "bad chunk size"),
            (b"11111111111111111\r\n", "chunk size too large"),
            (b"5\nhello\r\n0\r\n\r\n", "bad chunk size"),
            (b"5\rhello", "chunk size line not ended by CRLF"),
            (b"5;a\nb\r\n", "bad chunk extension"),
            (b"5;a\x00\r\n", "bad chunk extension"),
            (&long_ext, "chunk size line too long"),
            (b"5\r\nhelloXY0\r\n\r\n", "chunk data not followed by CRLF"),
            (b"5\r\nhello\n0\r\n\r\n", "chunk data not followed by CRLF"),
            (b"5\r\nhello\rX", "chunk data not followed by CRLF"),
            (b"0\r\n\n", "bare LF in trailers"),
            (b"0\r\nbad\ntrailer\r\n\r\n", "bad trailer field name"),
            (b"0\r\nX: a\nb\r\n\r\n", "bad trailer line"),
            (b"0\r\nX: a\x7f\r\n\r\n", "bad trailer line"),
            (b"0\r\nBad Name: x\r\n\r\n", "bad trailer field name"),
            (b"0\r\nnocolon\r\n\r\n", "bad trailer field name"),
            (b"0\r\nX: a\r\n b\r\n\r\n", "folded trailer line"),
            (b"0\r\n: empty name\r\n\r\n", "bad trailer field name"),
            (
                b"0\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
                "bad trailer field name",
            ),
            (b"0\r\nX: 1\rY", "trailer line not ended by CRLF"),
            (b"0\r\n\rX", "chunked body not ended by CRLF"),
            (&long_trailer, "trailers too large"),
        ];
        for (bad, why) in cases {
            let shown = String::from_utf8_lossy(&bad[..bad.len().min(40)]).into_owned();
            assert_eq!(
                decode_in_steps(bad, bad.len()).map(|_| ()),
                Err(ChunkError(why)),
                "whole: {shown:?}"
            );
            assert_eq!(
                decode_in_steps(bad, 1).map(|_| ()),
                Err(ChunkError(why)),
                "byte by byte: {shown:?}"
            );
        }
    }

    fn whole(input: &[u8]) -> Result<usize, ChunkError> {
        let mut p = ChunkedParser::new();
        let n = p.feed(input)?;
        assert!(p.is_done(), "not done after {n} of {} bytes", input.len());
        Ok(n)
    }

    #[test]
    fn simple_body_and_what_follows_is_left() {
        let body = b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        assert_eq!(whole(body), Ok(15));
    }

    #[test]
    fn extensions_and_trailers() {
        let body = b"3;name=v\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(whole(body), Ok(body.len()));
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let body = b"a\r\n0123456789\r\n1F\r\n0123456789012345678901234567890\r\n0\r\n\r\n";
        let mut p = ChunkedParser::new();
        let mut total = 0;
        for b in body.iter() {
            total += p.feed(std::slice::from_ref(b)).unwrap();
        }
        assert!(p.is_done());
        assert_eq!(total, body.len());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXY0\r\n\r\n",
            b"11111111111111111\r\n",
            b"0\r\nbad\ntrailer\r\n\r\n",
            b"0\r\n\n",
            b"-1\r\n",
        ] {
            let mut p = ChunkedParser::new();
            assert!(
                p.feed(bad).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn max_size_chunk_does_not_overflow() {
        let mut p = ChunkedParser::new();
        assert!(p.feed(b"ffffffffffffffff\r\nabc").is_ok());
        assert!(!p.is_done());
    }

    #[test]
    fn endless_extension_is_cut_off() {
        let mut p = ChunkedParser::new();
        let long = vec![b'a'; MAX_LINE + 10];
        assert!(p.feed(b"1;").is_ok());
        assert!(p.feed(&long).is_err());
    }
}
