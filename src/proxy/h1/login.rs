//! Reading a login form body on the HTTP/1.1 engine, whatever its framing.
//!
//! A login form names the person only if locgate reads the same body the upstream will: a
//! `Content-Length` body is read up to the form's `max_body`; a chunked one is decoded (at most
//! `max_body` decoded bytes, plus [`FRAMING_ALLOWANCE`] bytes of chunk framing) by the decoder
//! that later re-encodes it for the upstream. The raw bytes stay in the client buffer, so
//! forwarding sends exactly what was read here (a chunked body, then all buffered, is validated
//! again before the head goes out).
//!
//! Fail closed: a login body that cannot be read (stalled past `body_read_timeout`, client gone,
//! over the limit, malformed framing) marks the identity unreadable (`Who::unreadable`) and the
//! request is refused, never forwarded: 408, 499 (nothing sent), 413 or 400.

use tokio::io::{AsyncRead, AsyncWrite};

use super::Conn;
use super::body::BodyStop;
use super::chunked::ChunkedParser;
use super::head::{Framing, RequestHead};
use crate::identity::{FormRule, Who};
use crate::proxy::failure::Failure;

/// Chunk framing (size lines, extensions, CRLFs, trailers) accepted around a chunked login
/// body's data, beyond the data itself: generous for any real client, and it bounds what a
/// sender of one-byte chunks or long extensions can make locgate buffer.
pub(super) const FRAMING_ALLOWANCE: usize = 16 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Reads the login form body `rule` asks for and hands the decoded bytes to
    /// [`Who::read_login_form`]. `Err`: the body could not be read; `who` is marked unreadable
    /// and the failure says what to answer (the request must not be forwarded).
    pub(super) async fn read_login_body(
        &mut self,
        head: &mut RequestHead,
        rule: &FormRule,
        who: &mut Who,
    ) -> Result<(), Failure> {
        let max = rule.max_body();
        let read = match head.framing {
            Framing::Length(n) if n > max as u64 => Err(Failure::LoginBodyTooLarge(max)),
            Framing::Length(n) => self.buffer_length(head, n as usize).await.map(|()| {
                who.read_login_form(rule, &head.headers, &head.target, &self.inbuf[..n as usize]);
            }),
            Framing::Chunked => self.decode_chunked(head, max).await.map(|body| {
                who.read_login_form(rule, &head.headers, &head.target, &body);
            }),
            // No body: the query may still name someone, and a login naming nobody is
            // unreadable (HTTP/2 reads its empty body the same way).
            Framing::None | Framing::UntilClose => {
                who.read_login_form(rule, &head.headers, &head.target, b"");
                Ok(())
            }
        };
        if let Err(failure) = &read {
            who.unreadable(format!("form: {}", failure.message()));
        }
        read
    }

    /// Buffers `n` body bytes (the whole `Content-Length` body) in the client buffer.
    async fn buffer_length(&mut self, head: &mut RequestHead, n: usize) -> Result<(), Failure> {
        self.continue_if_waiting(head, n).await?;
        while self.inbuf.len() < n {
            self.read_login_bytes().await?;
        }
        Ok(())
    }

    /// Decodes a chunked login body from the client buffer, reading more as needed, without
    /// consuming it; returns the decoded bytes (at most `max`).
    async fn decode_chunked(
        &mut self,
        head: &mut RequestHead,
        max: usize,
    ) -> Result<Vec<u8>, Failure> {
        self.continue_if_waiting(head, 1).await?;
        let mut parser = ChunkedParser::new();
        let mut body = Vec::new();
        let mut over = false;
        let mut used = 0;
        loop {
            let n = parser
                .feed_with(&self.inbuf[used..], |d| {
                    if body.len() + d.len() > max {
                        over = true;
                    } else {
                        body.extend_from_slice(d);
                    }
                })
                .map_err(|e| Failure::BadClientBody(e.0))?;
            used += n;
            if over || used - body.len() > FRAMING_ALLOWANCE {
                return Err(Failure::LoginBodyTooLarge(max));
            }
            if parser.is_done() {
                return Ok(body);
            }
            self.read_login_bytes().await?;
        }
    }

    /// A client that sent `Expect: 100-continue` waits for it before sending the body we are
    /// about to read: send it now, unless `need` bytes are here already (once: `exchange`
    /// checks the flag).
    async fn continue_if_waiting(
        &mut self,
        head: &mut RequestHead,
        need: usize,
    ) -> Result<(), Failure> {
        if head.expect_continue && self.inbuf.len() < need {
            head.expect_continue = false;
            if !self.send_continue().await {
                return Err(Failure::ClientGone);
            }
        }
        Ok(())
    }

    /// More login body bytes: a stall is 408, a client gone is recorded as 499.
    async fn read_login_bytes(&mut self) -> Result<(), Failure> {
        self.read_client_body().await.map_err(|stop| match stop {
            BodyStop::Stalled => Failure::LoginBodyStalled(self.ctx.cfg.body_read_timeout),
            BodyStop::Gone => Failure::ClientGone,
        })
    }
}
