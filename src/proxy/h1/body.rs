//! Bodies on the HTTP/1.1 engine: the request body from the client to the upstream, the
//! response body back, and the bytes of an upgraded (101) connection. Bodies pass through byte
//! for byte once their framing is checked (`chunked.rs` walks chunked ones); nothing is buffered
//! beyond one read.

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::chunked::ChunkedParser;
use super::head::{Framing, RequestHead};
use super::message::fill;
use super::{BODY_CHUNK, Conn};
use crate::proxy::BODY_IDLE;
use crate::proxy::failure::Failure;
use crate::proxy::upstream::UpstreamConn;

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
                up.stream.write_all(&self.reqbuf).await.map_err(closed)?;
                let mut parser = ChunkedParser::new();
                while !parser.is_done() {
                    if self.inbuf.is_empty() {
                        self.fill_client_body().await?;
                    }
                    let n = parser
                        .feed(&self.inbuf)
                        .map_err(|e| Failure::BadClientBody(e.0))?;
                    up.stream
                        .write_all(&self.inbuf[..n])
                        .await
                        .map_err(stopped)?;
                    self.inbuf.advance(n);
                }
                Ok(())
            }
        }
    }

    /// Reads more request body from the client.
    pub(super) async fn fill_client_body(&mut self) -> Result<(), Failure> {
        self.inbuf.reserve(BODY_CHUNK);
        match tokio::time::timeout(BODY_IDLE, self.client.read_buf(&mut self.inbuf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => Err(Failure::ClientGone),
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
