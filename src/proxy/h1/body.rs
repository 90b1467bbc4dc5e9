//! Bodies on the HTTP/1.1 engine: the request body from the client to the upstream, the
//! response body back, and the bytes of an upgraded (101) connection. Nothing is buffered beyond
//! what has been read.
//!
//! The upstream never receives a byte locgate did not parse: a `Content-Length` body goes
//! through unchanged (no copy beyond the read buffer); a chunked request body is decoded and
//! re-encoded in locgate's own framing (`chunked.rs`), validated whole before the head goes out
//! when it is all buffered already. A body that goes wrong midway (malformed chunk, client gone
//! or stalled) ends with an error that makes the engine drop the upstream connection: the
//! upstream sees an incomplete request on a closed connection, never a complete one, and the
//! connection is never reused.

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::chunked::{self, ChunkedParser};
use super::head::{Framing, RequestHead};
use super::message::fill;
use super::{BODY_CHUNK, Conn};
use crate::proxy::failure::Failure;
use crate::proxy::upstream::UpstreamConn;

/// Why a request body stopped arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyStop {
    /// The client closed its side or the connection failed.
    Gone,
    /// The client paused longer than `body_read_timeout`.
    Stalled,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Writes the request head (in `self.reqbuf`) and body to the upstream (`origin`, for
    /// messages).
    pub(super) async fn send_request(
        &mut self,
        up: &mut UpstreamConn,
        head: &RequestHead,
        origin: &str,
    ) -> Result<(), Failure> {
        let closed = |e: std::io::Error| {
            Failure::UpstreamClosed(format!("upstream {origin} closed the connection: {e}"))
        };
        let stopped = |e: std::io::Error| {
            Failure::UpstreamStoppedReading(format!(
                "upstream {origin} stopped reading the request body: {e}"
            ))
        };
        match head.framing {
            Framing::None | Framing::UntilClose => {
                up.stream.write_all(&self.reqbuf).await.map_err(closed)
            }
            Framing::Length(n) => {
                // Send the head together with whatever body bytes are already buffered.
                let now = (n.min(self.inbuf.len() as u64)) as usize;
                self.reqbuf.extend_from_slice(&self.inbuf[..now]);
                self.inbuf.advance(now);
                up.stream.write_all(&self.reqbuf).await.map_err(closed)?;
                let mut remaining = n - now as u64;
                while remaining > 0 {
                    self.fill_client_body().await?;
                    let take = (remaining.min(self.inbuf.len() as u64)) as usize;
                    up.stream
                        .write_all(&self.inbuf[..take])
                        .await
                        .map_err(stopped)?;
                    self.inbuf.advance(take);
                    remaining -= take as u64;
                }
                Ok(())
            }
            Framing::Chunked => {
                // `self.reqbuf` holds the head and the buffered chunks, already re-encoded
                // ([`Conn::encode_buffered_chunks`]); the rest is decoded as it arrives.
                up.stream.write_all(&self.reqbuf).await.map_err(closed)?;
                let mut encoded = Vec::new();
                while !self.chunks.is_done() {
                    self.fill_client_body().await?;
                    encoded.clear();
                    let n = chunked::reencode(&mut self.chunks, &self.inbuf, &mut encoded)
                        .map_err(|e| Failure::BadClientBody(e.0))?;
                    self.inbuf.advance(n);
                    up.stream.write_all(&encoded).await.map_err(stopped)?;
                }
                Ok(())
            }
        }
    }

    /// Starts a chunked request body: decodes what is buffered and appends it, in locgate's
    /// framing, to the head in `self.reqbuf`. A body that is all buffered (the common case) is
    /// thereby validated before anything goes to the upstream.
    pub(super) fn encode_buffered_chunks(&mut self) -> Result<(), Failure> {
        self.chunks = ChunkedParser::new();
        let n = chunked::reencode(&mut self.chunks, &self.inbuf, &mut self.reqbuf)
            .map_err(|e| Failure::BadClientBody(e.0))?;
        self.inbuf.advance(n);
        Ok(())
    }

    /// Reads more request body from the client; a client that closed or paused longer than
    /// `body_read_timeout` is gone (nothing can be answered).
    pub(super) async fn fill_client_body(&mut self) -> Result<(), Failure> {
        self.read_client_body()
            .await
            .map_err(|_| Failure::ClientGone)
    }

    /// Reads more request body from the client, saying why it could not.
    pub(super) async fn read_client_body(&mut self) -> Result<(), BodyStop> {
        self.inbuf.reserve(BODY_CHUNK);
        let timeout = self.ctx.cfg.body_read_timeout;
        match tokio::time::timeout(timeout, self.client.read_buf(&mut self.inbuf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Err(BodyStop::Gone),
            Err(_) => Err(BodyStop::Stalled),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Relays the response body; `self.out` holds the response head, sent with the first bytes.
    pub(super) async fn relay_response_body(
        &mut self,
        up: &mut UpstreamConn,
        framing: Framing,
    ) -> Result<(), Failure> {
        let timeout = self.ctx.cfg.response_timeout;
        let client_err = |e: std::io::Error| Failure::MidResponse(format!("client: {e}"));
        let upstream_err = |what: &str| Failure::MidResponse(format!("upstream: {what}"));
        match framing {
            Framing::None => self.client.write_all(&self.out).await.map_err(client_err),
            Framing::Length(n) => {
                let now = (n.min(up.buf.len() as u64)) as usize;
                self.out.extend_from_slice(&up.buf[..now]);
                up.buf.advance(now);
                self.client.write_all(&self.out).await.map_err(client_err)?;
                let mut remaining = n - now as u64;
                while remaining > 0 {
                    fill(up, timeout).await.map_err(upstream_err)?;
                    let take = (remaining.min(up.buf.len() as u64)) as usize;
                    self.client
                        .write_all(&up.buf[..take])
                        .await
                        .map_err(client_err)?;
                    up.buf.advance(take);
                    remaining -= take as u64;
                }
                Ok(())
            }
            Framing::Chunked => {
                let mut parser = ChunkedParser::new();
                let n = parser.feed(&up.buf).map_err(|e| upstream_err(e.0))?;
                self.out.extend_from_slice(&up.buf[..n]);
                up.buf.advance(n);
                self.client.write_all(&self.out).await.map_err(client_err)?;
                while !parser.is_done() {
                    fill(up, timeout).await.map_err(upstream_err)?;
                    let n = parser.feed(&up.buf).map_err(|e| upstream_err(e.0))?;
                    self.client
                        .write_all(&up.buf[..n])
                        .await
                        .map_err(client_err)?;
                    up.buf.advance(n);
                }
                Ok(())
            }
            Framing::UntilClose => {
                self.out.extend_from_slice(&up.buf);
                up.buf.clear();
                self.client.write_all(&self.out).await.map_err(client_err)?;
                loop {
                    match fill(up, timeout).await {
                        Ok(()) => {
                            self.client.write_all(&up.buf).await.map_err(client_err)?;
                            up.buf.clear();
                        }
                        Err("closed") => return Ok(()),
                        Err(w) => return Err(upstream_err(w)),
                    }
                }
            }
        }
    }

    /// Copies bytes both ways after a 101 (WebSocket) until either side closes.
    pub(super) async fn tunnel(&mut self, mut up: UpstreamConn) {
        if !self.inbuf.is_empty() && up.stream.write_all(&self.inbuf).await.is_err() {
            return;
        }
        self.inbuf.clear();
        if !up.buf.is_empty() && self.client.write_all(&up.buf).await.is_err() {
            return;
        }
        if let Err(e) = tokio::io::copy_bidirectional(&mut self.client, &mut up.stream).await {
            tracing::debug!(peer = %self.peer, error = %e, "upgraded tunnel ended with an error");
        }
    }
}
