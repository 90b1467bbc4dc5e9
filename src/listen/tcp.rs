//! TCP pass-through (`kind = "tcp"`): decide at connect time, then copy bytes both ways.
//!
//! ```text
//! client address (socket peer, or PROXY header from a trusted balancer)
//!   -> observe + decide            block: record, close; no upstream connection is ever made
//!   -> first bytes: TLS SNI?       read, not terminated; garbage or silence = no SNI
//!   -> upstream = sni_routes[SNI] or `upstream`; optional PROXY v1/v2 header to it
//!   -> record (same schema as HTTP: network.transport, tls.server_name)
//!   -> relay until either side closes or idle_timeout passes
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::proxy_proto;
use super::sni::{self, Peek};
use crate::audit::TlsOut;
use crate::config::{SendProxy, Upstream};
use crate::policy::Action;
use crate::proxy::ListenerCtx;
use crate::proxy::exchange::{ConnFacts, decide_connection, record_connection};

/// How long to wait for the client's first bytes when no `sni_routes` need them: long enough
/// for a ClientHello on a slow link, short enough that server-speaks-first protocols (SSH)
/// are not held up much.
const SNI_WAIT: Duration = Duration::from_millis(300);
const RELAY_BUF: usize = 16 * 1024;

/// Serves one pass-through connection. `client` is the address decided on; `peer` the socket
/// peer (differs when a PROXY header named the client); `local` the address the client reached.
pub async fn serve(
    ctx: Arc<ListenerCtx>,
    mut stream: tokio::net::TcpStream,
    client: SocketAddr,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let state = ctx.shared.state.load_full();
    let (obs, decision) = decide_connection(&ctx, &state, client.ip());
    let facts = |tls: Option<TlsOut>, error: Option<String>| ConnFacts {
        peer_ip: (peer != client).then_some(peer.ip()),
        source: if peer != client {
            "proxy_protocol"
        } else {
            "peer"
        },
        transport: "tcp",
        tls,
        error,
        user: None,
    };
    if decision.action == Action::Block {
        record_connection(
            &ctx,
            &state,
            &obs,
            &decision,
            Some(client.port()),
            facts(None, None),
        );
        let _ = stream.shutdown().await;
        return;
    }

    // The first bytes: a ClientHello gives the SNI; they are forwarded unchanged afterwards.
    let edge = &ctx.cfg.edge;
    let wait = if edge.sni_routes.is_empty() {
        SNI_WAIT
    } else {
        ctx.cfg.header_read_timeout
    };
    let mut first = Vec::with_capacity(2048);
    let server_name = read_sni(&mut stream, &mut first, wait).await;
    let tls = server_name.as_ref().map(|n| TlsOut {
        server_name: Some(n.clone()),
        ..TlsOut::default()
    });
    let target = server_name
        .as_ref()
        .and_then(|n| edge.sni_routes.get(n))
        .map(String::as_str)
        .or(match &ctx.cfg.upstream {
            Upstream::Addr(a) => Some(a.as_str()),
            _ => None,
        });
    let Some(target) = target else {
        record_connection(
            &ctx,
            &state,
            &obs,
            &decision,
            Some(client.port()),
            facts(tls, Some("no upstream for this connection".into())),
        );
        return;
    };
    let timeout = ctx.cfg.connect_timeout;
    let mut up = match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let err = format!("upstream {target}: connect failed: {e}");
            record_connection(
                &ctx,
                &state,
                &obs,
                &decision,
                Some(client.port()),
                facts(tls, Some(err)),
            );
            return;
        }
        Err(_) => {
            let err = format!("upstream {target}: connect timed out after {timeout:?}");
            record_connection(
                &ctx,
                &state,
                &obs,
                &decision,
                Some(client.port()),
                facts(tls, Some(err)),
            );
            return;
        }
    };
    let _ = up.set_nodelay(true);
    let header = match edge.send_proxy_protocol {
        Some(SendProxy::V1) => proxy_proto::v1_header(client, local),
        Some(SendProxy::V2) => proxy_proto::v2_header(client, local),
        None => Vec::new(),
    };
    record_connection(
        &ctx,
        &state,
        &obs,
        &decision,
        Some(client.port()),
        facts(tls, None),
    );
    drop(state);
    if (!header.is_empty() && up.write_all(&header).await.is_err())
        || (!first.is_empty() && up.write_all(&first).await.is_err())
    {
        return;
    }
    drop(first);
    #[cfg(target_os = "linux")]
    if splice::relay(&stream, &up, edge.idle_timeout).await.is_ok() {
        return;
    }
    relay(&mut stream, &mut up, edge.idle_timeout).await;
}

/// Reads the client's first bytes into `buf` until a ClientHello is complete, the bytes are
/// clearly not TLS, or `wait` passes; returns the SNI if any.
async fn read_sni<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    wait: Duration,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut chunk = [0u8; 2048];
    loop {
        if buf.len() >= sni::MAX_HELLO {
            return None;
        }
        let room = (sni::MAX_HELLO - buf.len()).min(chunk.len());
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..room])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Peek::Done(name) = sni::peek(buf) {
            return name;
        }
    }
}

/// Copies both ways until both directions have ended (a half-close is passed on as a
/// half-close), either side errs, or nothing moves for `idle`.
pub async fn relay<A, B>(a: &mut A, b: &mut B, idle: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut ab = vec![0u8; RELAY_BUF];
    let mut ba = vec![0u8; RELAY_BUF];
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        tokio::select! {
            r = a.read(&mut ab), if a_open => match r {
                Ok(0) | Err(_) => { a_open = false; let _ = b.shutdown().await; }
                Ok(n) => if b.write_all(&ab[..n]).await.is_err() { return },
            },
            r = b.read(&mut ba), if b_open => match r {
                Ok(0) | Err(_) => { b_open = false; let _ = a.shutdown().await; }
                Ok(n) => if a.write_all(&ba[..n]).await.is_err() { return },
            },
            _ = tokio::time::sleep(idle) => return,
        }
    }
}

/// Zero-copy relay on Linux: bytes move socket -> pipe -> socket inside the kernel with
/// `splice(2)`, never through user space, driven by tokio's readiness events.
#[cfg(target_os = "linux")]
mod splice {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use tokio::io::Interest;
    use tokio::net::TcpStream;

    /// Largest move per call (the default pipe capacity).
    const CHUNK: usize = 64 * 1024;

    /// Relays until both directions have ended (half-closes passed on), either side errs, or
    /// nothing moves for `idle`. `Err(())` only when no pipe could be made: the caller then
    /// falls back to copying.
    pub async fn relay(a: &TcpStream, b: &TcpStream, idle: Duration) -> Result<(), ()> {
        let (Ok(ab), Ok(ba)) = (Pipe::new(), Pipe::new()) else {
            return Err(());
        };
        let clock = Clock::new();
        let result = tokio::try_join!(pump(a, b, &ab, &clock, idle), pump(b, a, &ba, &clock, idle));
        if let Err(e) = result {
            tracing::debug!(error = %e, "pass-through ended");
        }
        Ok(())
    }

    /// When anything last moved, shared by both directions (one task polls both).
    struct Clock {
        start: Instant,
        last_ms: AtomicU64,
    }

    impl Clock {
        fn new() -> Self {
            Clock {
                start: Instant::now(),
                last_ms: AtomicU64::new(0),
            }
        }

        fn touch(&self) {
            let ms = self.start.elapsed().as_millis() as u64;
            self.last_ms.store(ms, Ordering::Relaxed);
        }

        fn idle_for(&self) -> Duration {
            let now = self.start.elapsed().as_millis() as u64;
            Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
        }
    }

    struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
    }

    impl Pipe {
        fn new() -> io::Result<Pipe> {
            let mut fds = [0 as RawFd; 2];
            // SAFETY: `fds` has room for the two descriptors pipe2 writes.
            let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: pipe2 succeeded, so both descriptors are open and owned by us alone.
            Ok(unsafe {
                Pipe {
                    read: OwnedFd::from_raw_fd(fds[0]),
                    write: OwnedFd::from_raw_fd(fds[1]),
                }
            })
        }
    }

    fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: plain descriptors the caller owns for the call; null offsets (both are a
        // socket or a pipe, which have no offsets).
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// One direction: `from` -> pipe -> `to`; at end of stream, half-closes `to`.
    async fn pump(
        from: &TcpStream,
        to: &TcpStream,
        pipe: &Pipe,
        clock: &Clock,
        idle: Duration,
    ) -> io::Result<()> {
        loop {
            match tokio::time::timeout(idle, from.readable()).await {
                Ok(ready) => ready?,
                Err(_) if clock.idle_for() >= idle => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "idle"));
                }
                Err(_) => continue,
            }
            let moved = from.try_io(Interest::READABLE, || {
                splice(from.as_raw_fd(), pipe.write.as_raw_fd(), CHUNK)
            });
            let n = match moved {
                Ok(0) => {
                    // SAFETY: `to` is an open socket; SHUT_WR passes the end of stream on.
                    unsafe { libc::shutdown(to.as_raw_fd(), libc::SHUT_WR) };
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            clock.touch();
            let mut left = n;
            while left > 0 {
                to.writable().await?;
                match to.try_io(Interest::WRITABLE, || {
                    splice(pipe.read.as_raw_fd(), to.as_raw_fd(), left)
                }) {
                    Ok(m) => {
                        left -= m;
                        clock.touch();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}
