//! Connections to one upstream origin.
//!
//! Each client connection owns at most one upstream connection and reuses it for its next
//! request: HTTP/1.1 exchanges on one client connection are sequential, so the upstream connection
//! is always free when the next request arrives. That removes the shared pool (its lock, its
//! checkout and its per-request task hand-off) from the request path.

use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Where one listener sends its traffic.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `host:port` to connect to.
    pub addr: String,
}

impl Origin {
    /// The origin of `uri` (validated by config as `http://host[:port]`).
    pub fn new(uri: &http::Uri) -> Self {
        let host = uri.host().unwrap_or("127.0.0.1");
        let port = uri.port_u16().unwrap_or(80);
        let addr = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Origin { addr }
    }
}

/// An open upstream connection with its read buffer.
pub struct UpstreamConn {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read but not yet relayed.
    pub buf: BytesMut,
    /// Whether a request has been completed on it before (a reused connection may have been
    /// closed by the upstream in the meantime, so a failure on it may be retried).
    pub reused: bool,
}

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// Nothing answered in time.
    Timeout(Duration),
    /// Refused, unreachable, unresolvable.
    Io(std::io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout(d) => write!(f, "connect timed out after {d:?}"),
            ConnectError::Io(e) => write!(f, "connect failed: {e}"),
        }
    }
}

/// Opens a new connection to `origin` within `timeout`.
pub async fn connect(origin: &Origin, timeout: Duration) -> Result<UpstreamConn, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(origin.addr.as_str())).await
    {
        Err(_) => return Err(ConnectError::Timeout(timeout)),
        Ok(Err(e)) => return Err(ConnectError::Io(e)),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    Ok(UpstreamConn {
        stream,
        buf: BytesMut::with_capacity(4 * 1024),
        reused: false,
    })
}
