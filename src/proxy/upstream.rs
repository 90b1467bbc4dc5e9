//! Connections to one upstream origin.
//!
//! Each HTTP/1.1 client connection owns at most one upstream connection and reuses it for its
//! next request: HTTP/1.1 exchanges on one client connection are sequential, so the upstream
//! connection is always free when the next request arrives. That removes the shared pool (its
//! lock, its checkout and its per-request task hand-off) from the request path. When the client
//! connection ends, its upstream connection goes to the origin's idle set for the next client
//! connection (taken once per client connection, never per request). HTTP/2 dials through
//! [`dial`] too, so a failed connect reads the same in both.

use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;

use super::failure::Failure;
use crate::edge::context::{Origin, is_quiet};

/// An open upstream connection with its read buffer.
pub struct UpstreamConn {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read but not yet relayed.
    pub buf: BytesMut,
    /// Whether a request has been completed on it before (a reused connection may have been
    /// closed by the upstream in the meantime, so a failure on it may be retried).
    pub reused: bool,
    /// Whether a connection-bound authentication (NTLM, Negotiate) was seen on it: the origin
    /// may then treat the connection itself as logged in, so it is never handed to another
    /// client connection.
    pub bound: bool,
}

/// Opens a TCP connection to `origin` within `timeout` (`TCP_NODELAY`: heads go out at once).
pub async fn dial(origin: &Origin, timeout: Duration) -> Result<TcpStream, Failure> {
    let addr = &origin.addr;
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr.as_str())).await {
        Err(_) => {
            return Err(Failure::UpstreamConnectTimeout(format!(
                "upstream {addr}: connect timed out after {timeout:?}"
            )));
        }
        Ok(Err(e)) => {
            return Err(Failure::UpstreamConnect(format!(
                "upstream {addr}: connect failed: {e}"
            )));
        }
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A connection to `origin` with an empty read buffer: an idle one another client connection
/// left (marked reused, so a stale one is retried like any kept-alive connection), else a new
/// one.
pub async fn connect(origin: &Origin, timeout: Duration) -> Result<UpstreamConn, Failure> {
    match origin.take_idle() {
        Some(stream) => Ok(UpstreamConn {
            stream,
            buf: BytesMut::with_capacity(4 * 1024),
            reused: true,
            bound: false,
        }),
        None => fresh(origin, timeout).await,
    }
}

/// A new connection to `origin`, never an idle one.
pub async fn fresh(origin: &Origin, timeout: Duration) -> Result<UpstreamConn, Failure> {
    Ok(UpstreamConn {
        stream: dial(origin, timeout).await?,
        buf: BytesMut::with_capacity(4 * 1024),
        reused: false,
        bound: false,
    })
}

impl UpstreamConn {
    /// Whether the connection may carry another request: nothing left in its buffer and
    /// nothing arrived since its last response ended. Bytes the upstream sent beyond a response
    /// must never become the answer to a later request, so such a connection is closed.
    pub fn is_quiet(&self) -> bool {
        self.buf.is_empty() && is_quiet(&self.stream)
    }

    /// Hands the connection back to `origin`'s idle set when nothing of an exchange is left in
    /// it (the engine keeps only connections whose response was read to its end) and no
    /// connection-bound login happened on it.
    pub fn release(self, origin: &Origin) {
        if !self.bound && self.is_quiet() {
            origin.put_idle(self.stream);
        }
    }
}
