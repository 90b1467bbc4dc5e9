//! A validating pass-through parser for chunked bodies (RFC 9112 §7.1).
//!
//! The proxy forwards chunked bodies byte for byte, but must know exactly where each one ends:
//! the bytes after it are the next request on the connection. The parser therefore walks every
//! byte, refuses anything malformed (bad hex, overflowing sizes, bare LF, oversized extensions or
//! trailers), and reports how much of the input belongs to the body.

/// Longest chunk-size line (size + extensions) accepted.
const MAX_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { digits: u8 },
    /// After the size: extensions up to CR.
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
    /// Inside a trailer field line.
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
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return Ok(i),
                // Chunk data is skipped in one step, not walked byte by byte.
                State::Data => {
                    let take = ((input.len() - i) as u64).min(self.remaining);
                    self.remaining -= take;
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
            State::Size { .. } | State::Ext | State::SizeLf => self.size_line(b),
            State::DataCr | State::DataLf => self.data_end(b),
            State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf => {
                self.trailers(b)
            }
            State::Data | State::Done => Ok(()),
        }
    }

    /// `chunk-size [ chunk-ext ] CRLF` (RFC 9112 §7.1): hex digits (at most 16), then an
    /// extension we skip but check for control bytes, then CRLF.
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
                } else if b == b';' || b == b' ' || b == b'\t' {
                    self.state = State::Ext;
                } else if b == b'\r' {
                    self.state = State::SizeLf;
                } else {
                    return Err(ChunkError("bad chunk size"));
                }
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

    /// The trailer section and the final CRLF.
    fn trailers(&mut self, b: u8) -> Result<(), ChunkError> {
        match self.state {
            State::TrailerStart => {
                self.state = match b {
                    b'\r' => State::EndLf,
                    b'\n' => return Err(ChunkError("bare LF in trailers")),
                    _ => State::Trailer,
                };
                self.bump_trailers()
            }
            State::Trailer => {
                if b == b'\r' {
                    self.state = State::TrailerLf;
                } else if b == b'\n' || b < 0x20 && b != b'\t' {
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

#[cfg(test)]
mod tests {
    use super::*;

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
