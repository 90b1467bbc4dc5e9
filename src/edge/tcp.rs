//! TCP pass-through (`kind = "tcp"`): decide at connect time, then copy bytes both ways.
//!
//! ```text
//! client address (socket peer, or PROXY header from a trusted balancer)
//!   -> observe + decide            block: record, close; no upstream connection is ever made
//!   -> first bytes: TLS SNI?       read, not terminated; garbage or silence = no SNI
//!   -> upstream = sni_routes[SNI] or `upstream`; optional PROXY v1/v2 header to it
//!   -> record (same schema as HTTP: network.transport, tls.client.server_name)
//!   -> relay until either side closes or idle_timeout passes
//!   -> close event: duration, bytes each way, how it ended (linked to the connect event)
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::context::ListenerCtx;
use super::events::{ConnFacts, Decided, Watch, redecide};
use super::proxy_proto;
use super::sni::{self, Peek};
use super::tunnel::{Ended, TUNNEL_CUT};
use crate::audit::{TlsOut, TunnelEnd};
use crate::config::{SendProxy, Upstream};

/// How long to wait for the client's first bytes when no `sni_routes` need them: long enough
/// for a ClientHello on a slow link, short enough that server-speaks-first protocols (SSH)
/// are not held up much.
const SNI_WAIT: Duration = Duration::from_millis(300);
const RELAY_BUF: usize = 16 * 1024;

/// Serves one pass-through connection. `client` is the address decided on; `peer` the socket
/// peer (differs when a PROXY header named the client); `local` the address the client reached.
/// A connection has one decision event (the block, the failure, or the tunnel's connect event,
/// which the allow throttle may fold away), and a tunnel a close event besides.
pub async fn serve(
    ctx: Arc<ListenerCtx>,
    mut stream: TcpStream,
    client: SocketAddr,
    peer: SocketAddr,
    local: SocketAddr,
) {
    // 1. Decide on the client address and count the connection. A block is recorded and the
    //    connection closed: no upstream connection is ever made.
    let state = ctx.shared.state.load_full();
    let conn = Decided::new(&ctx, &state, client);
    conn.count("tcp");
    let mut facts = address_facts(client, peer);
    if conn.blocked() {
        conn.record(facts);
        let _ = stream.shutdown().await;
        return;
    }

    // 2. The first bytes: a ClientHello's SNI picks the target. They are kept, and forwarded
    //    unchanged once the upstream is connected.
    let mut first = Vec::with_capacity(2048);
    let server_name = read_sni(&mut stream, &mut first, sni_wait(&ctx)).await;
    facts.tls = sni_facts(server_name.as_deref());
    let Some(target) = route(&ctx, server_name.as_deref()) else {
        conn.record(facts.failed("no upstream for this connection".into()));
        return;
    };

    // 3. Connect to the target; a failure is the connection's event.
    let mut up = match connect(target, ctx.cfg.connect_timeout).await {
        Ok(up) => up,
        Err(error) => {
            conn.record(facts.failed(error));
            return;
        }
    };

    // 4. The connect event. The runtime state (data, policy) is let go: a tunnel may last hours.
    //    The tunnel enters the index its VPN server's reports are matched against, by both
    //    addresses the server may see (locgate's upstream socket, or the client's with a PROXY
    //    header), until it ends.
    let connect_action = conn.decision().action;
    facts.nat = up.local_addr().ok();
    let mut tunnel = conn.open_tunnel(facts.clone(), target.to_owned());
    let registered = ctx.shared.tunnels.register(client, facts.nat);
    drop(state);

    // 5. Relay until either side closes, the tunnel idles, a re-decision blocks it or the
    //    process stops; close event.
    let header = proxy_header(&ctx, client, local);
    let watch = Watch {
        client,
        facts,
        action: connect_action,
        slot: registered.slot.clone(),
    };
    let ended = relay_tunnel(&ctx, &mut stream, &mut up, &header, first, watch).await;
    tunnel.name_from(&registered.slot);
    drop(registered);
    tunnel.close(&ctx.shared.auditor, ended);
}

/// What the events say of where the client address came from: the socket peer, or a PROXY
/// header (then the peer is named too).
fn address_facts(client: SocketAddr, peer: SocketAddr) -> ConnFacts {
    let proxied = peer != client;
    ConnFacts {
        peer_ip: proxied.then_some(peer.ip()),
        source: if proxied { "proxy_protocol" } else { "peer" },
        transport: "tcp",
        ..ConnFacts::default()
    }
}

/// How long to wait for the first bytes: `header_read_timeout` when `sni_routes` need the name
/// (routing depends on it), else the short [`SNI_WAIT`].
fn sni_wait(ctx: &ListenerCtx) -> Duration {
    if ctx.cfg.edge.sni_routes.is_empty() {
        SNI_WAIT
    } else {
        ctx.cfg.header_read_timeout
    }
}

/// The SNI as the events carry it (`tls.client.server_name`).
fn sni_facts(server_name: Option<&str>) -> Option<TlsOut> {
    server_name.map(|n| TlsOut {
        client: crate::audit::TlsClient {
            server_name: Some(n.to_owned()),
            subject: None,
        },
        ..TlsOut::default()
    })
}

/// Where a connection goes: its SNI's entry in `sni_routes`, else the listener's `upstream`
/// when that is an address; `None` when neither applies.
fn route<'c>(ctx: &'c ListenerCtx, server_name: Option<&str>) -> Option<&'c str> {
    server_name
        .and_then(|n| ctx.cfg.edge.sni_routes.get(n))
        .map(String::as_str)
        .or(match &ctx.cfg.upstream {
            Upstream::Addr(a) => Some(a.as_str()),
            _ => None,
        })
}

/// Connects to `target` within `timeout`, with Nagle's delay off so small writes (an
/// interactive session's keystrokes) are passed on at once. The error, for the event, names the
/// target and what went wrong.
async fn connect(target: &str, timeout: Duration) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(up)) => {
            let _ = up.set_nodelay(true);
            Ok(up)
        }
        Ok(Err(e)) => Err(format!("upstream {target}: connect failed: {e}")),
        Err(_) => Err(format!(
            "upstream {target}: connect timed out after {timeout:?}"
        )),
    }
}

/// The PROXY header `send_proxy_protocol` asks for (empty when none), so the upstream learns the
/// client address too.
fn proxy_header(ctx: &ListenerCtx, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    match ctx.cfg.edge.send_proxy_protocol {
        Some(SendProxy::V1) => proxy_proto::v1_header(client, local),
        Some(SendProxy::V2) => proxy_proto::v2_header(client, local),
        None => Vec::new(),
    }
}

/// Sends `header` and the client's `first` bytes upstream, then relays both ways until the
/// tunnel ends; returns what the close event says. The tunnel is re-decided whenever verdicts
/// may have changed ([`redecide`]); a block ends it.
async fn relay_tunnel(
    ctx: &ListenerCtx,
    stream: &mut TcpStream,
    up: &mut TcpStream,
    header: &[u8],
    first: Vec<u8>,
    watch: Watch,
) -> Ended {
    let blocked_by = std::sync::OnceLock::new();
    let cut = async {
        tokio::select! {
            () = cut_when_stopping(ctx.shared.stopping.subscribe()) => {}
            decision = redecide(ctx, watch) => {
                let _ = blocked_by.set(decision);
            }
        }
    };
    let mut counts = Counts::default();
    for bytes in [header, &first[..]] {
        if let Err(e) = up.write_all(bytes).await {
            return counts.ended(Stop::failed("upstream", e));
        }
    }
    counts.to_upstream = first.len() as u64;
    drop(first);
    let idle = ctx.cfg.edge.idle_timeout;
    let stop = relay_any(stream, up, idle, cut, &mut counts).await;
    match (stop, blocked_by.into_inner()) {
        (Stop::Cut, Some(decision)) => Ended {
            blocked_by: Some(decision),
            ..counts.ended(Stop::Blocked)
        },
        (stop, _) => counts.ended(stop),
    }
}

/// Completes [`TUNNEL_CUT`] after the process starts stopping, so the close event is written
/// inside the drain; never when only this listener stops (a reload), nor while it runs.
async fn cut_when_stopping(mut stopping: watch::Receiver<bool>) {
    if stopping.wait_for(|s| *s).await.is_ok() {
        tokio::time::sleep(TUNNEL_CUT).await;
    } else {
        std::future::pending::<()>().await;
    }
}

/// Relays with splice where it works, else by copying.
async fn relay_any(
    stream: &mut TcpStream,
    up: &mut TcpStream,
    idle: Duration,
    cut: impl std::future::Future<Output = ()>,
    counts: &mut Counts,
) -> Stop {
    let mut cut = std::pin::pin!(cut);
    #[cfg(target_os = "linux")]
    if let Ok(stop) = splice::relay(stream, up, idle, cut.as_mut(), counts).await {
        return stop;
    }
    relay(stream, up, idle, cut, counts).await
}

/// Bytes each way and which direction reached its end of stream first; plain counters owned by
/// the relaying task.
#[derive(Debug, Default)]
pub struct Counts {
    /// Client to upstream.
    pub to_upstream: u64,
    /// Upstream to client.
    pub to_client: u64,
    /// Set by the first direction to see its end of stream.
    pub first_end: Option<TunnelEnd>,
}

/// Why a relay stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Both directions reached their end of stream.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A read or write failed: which side, and how.
    Failed(String),
    /// The process is stopping.
    Cut,
    /// A re-decision blocked the tunnel.
    Blocked,
}

impl Stop {
    /// A read or write on `side` (`client` or `upstream`) failed.
    fn failed(side: &str, e: io::Error) -> Stop {
        Stop::Failed(format!("{side}: {e}"))
    }
}

/// One direction of a relay; both relays (splice and copy) run the same steps for each.
#[derive(Debug, Clone, Copy)]
enum Direction {
    /// Client to upstream.
    ToUpstream,
    /// Upstream to client.
    ToClient,
}

impl Direction {
    /// The side read from, as errors name it.
    fn read_side(self) -> &'static str {
        match self {
            Direction::ToUpstream => "client",
            Direction::ToClient => "upstream",
        }
    }

    /// The side written to, as errors name it.
    fn write_side(self) -> &'static str {
        match self {
            Direction::ToUpstream => "upstream",
            Direction::ToClient => "client",
        }
    }

    /// How the tunnel ended if this direction's end of stream comes first.
    fn ends_as(self) -> TunnelEnd {
        match self {
            Direction::ToUpstream => TunnelEnd::ClientClosed,
            Direction::ToClient => TunnelEnd::UpstreamClosed,
        }
    }
}

impl Counts {
    /// The byte counter of `dir`.
    fn moved(&mut self, dir: Direction) -> &mut u64 {
        match dir {
            Direction::ToUpstream => &mut self.to_upstream,
            Direction::ToClient => &mut self.to_client,
        }
    }

    /// The close event's facts.
    pub fn ended(&self, stop: Stop) -> Ended {
        let (end, error) = match stop {
            Stop::Closed => (self.first_end.unwrap_or(TunnelEnd::ClientClosed), None),
            Stop::Idle => (TunnelEnd::IdleTimeout, None),
            Stop::Failed(e) => (TunnelEnd::Error, Some(e)),
            Stop::Cut => (TunnelEnd::Shutdown, None),
            Stop::Blocked => (TunnelEnd::Blocked, None),
        };
        Ended {
            end,
            to_upstream: self.to_upstream,
            to_client: self.to_client,
            error,
            blocked_by: None,
        }
    }
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
/// half-close), either side errs, nothing moves for `idle`, or `cut` completes. `a` is the
/// client, `b` the upstream; `counts` gets the bytes each way.
pub async fn relay<A, B>(
    a: &mut A,
    b: &mut B,
    idle: Duration,
    cut: impl std::future::Future<Output = ()>,
    counts: &mut Counts,
) -> Stop
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    use Direction::{ToClient, ToUpstream};
    let mut ab = vec![0u8; RELAY_BUF];
    let mut ba = vec![0u8; RELAY_BUF];
    let (mut a_open, mut b_open) = (true, true);
    let mut cut = std::pin::pin!(cut);
    while a_open || b_open {
        tokio::select! {
            r = a.read(&mut ab), if a_open => match pass_on(r, &ab, b, ToUpstream, counts).await {
                Ok(open) => a_open = open,
                Err(stop) => return stop,
            },
            r = b.read(&mut ba), if b_open => match pass_on(r, &ba, a, ToClient, counts).await {
                Ok(open) => b_open = open,
                Err(stop) => return stop,
            },
            _ = tokio::time::sleep(idle) => return Stop::Idle,
            _ = &mut cut => return Stop::Cut,
        }
    }
    Stop::Closed
}

/// One read of the copying relay, in direction `dir`: its bytes are written on to `to`, or at
/// the end of stream `to` is half-closed (and the end noted, if it is the first). `Ok(false)`
/// once this direction has ended.
async fn pass_on<W: AsyncWrite + Unpin>(
    read: io::Result<usize>,
    buf: &[u8],
    to: &mut W,
    dir: Direction,
    counts: &mut Counts,
) -> Result<bool, Stop> {
    match read {
        Ok(0) => {
            counts.first_end.get_or_insert(dir.ends_as());
            let _ = to.shutdown().await;
            Ok(false)
        }
        Ok(n) => {
            if let Err(e) = to.write_all(&buf[..n]).await {
                return Err(Stop::failed(dir.write_side(), e));
            }
            *counts.moved(dir) += n as u64;
            Ok(true)
        }
        Err(e) => Err(Stop::failed(dir.read_side(), e)),
    }
}

/// Zero-copy relay on Linux: bytes move socket -> pipe -> socket inside the kernel with
/// `splice(2)`, never through user space, driven by tokio's readiness events.
#[cfg(target_os = "linux")]
mod splice {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::pin::Pin;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use super::{Counts, Direction, Stop, TunnelEnd};

    use tokio::io::Interest;
    use tokio::net::TcpStream;

    /// Largest move per call while the pipe has its default capacity.
    const CHUNK: usize = 64 * 1024;
    /// Capacity a busy direction's pipe grows to (Linux's default `pipe-max-size`): a splice
    /// pair then moves up to 1 MiB instead of 64 KiB, so a bulk transfer costs fewer system
    /// calls and wake-ups per GB.
    const BIG_PIPE: usize = 1024 * 1024;
    /// Bytes a direction moves before its pipe grows. Pipe capacity counts against the
    /// per-user limit (`pipe-user-pages-soft`) whether used or not, so only bulk directions
    /// grow; interactive tunnels keep the default.
    const GROW_AFTER: u64 = 8 * 1024 * 1024;

    /// Relays until both directions have ended (half-closes passed on), either side errs,
    /// nothing moves for `idle`, or `cut` completes; `a` is the client, `b` the upstream, and
    /// `counts` gets the bytes each way. `Err(())` only when no pipe could be made: the caller
    /// then falls back to copying.
    pub async fn relay<F: Future<Output = ()>>(
        a: &TcpStream,
        b: &TcpStream,
        idle: Duration,
        cut: Pin<&mut F>,
        counts: &mut Counts,
    ) -> Result<Stop, ()> {
        let (Ok(ab), Ok(ba)) = (Pipe::new(), Pipe::new()) else {
            return Err(());
        };
        let clock = Clock::new();
        let first = OnceLock::new();
        let (mut up, mut down) = (0u64, 0u64);
        let stop = tokio::select! {
            r = async {
                tokio::try_join!(
                    pump(a, b, &ab, &clock, idle, Direction::ToUpstream, &mut up, &first),
                    pump(b, a, &ba, &clock, idle, Direction::ToClient, &mut down, &first),
                )
            } => match r {
                Ok(_) => Stop::Closed,
                Err(stop) => stop,
            },
            _ = cut => Stop::Cut,
        };
        counts.to_upstream += up;
        counts.to_client += down;
        counts.first_end = first.get().copied();
        if let Stop::Failed(e) = &stop {
            tracing::debug!(error = %e, "pass-through ended");
        }
        Ok(stop)
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

    impl Pipe {
        /// Asks for `size` bytes of capacity; the capacity granted, or `None` when refused
        /// (over the per-user limit, or an old kernel): the pipe then keeps what it had.
        fn grow(&self, size: usize) -> Option<usize> {
            let size = libc::c_int::try_from(size).ok()?;
            // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own; no pointers involved.
            let got = unsafe { libc::fcntl(self.write.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
            usize::try_from(got).ok().filter(|&n| n > 0)
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

    /// One direction: `from` -> pipe -> `to`; at end of stream, half-closes `to`. Adds what it
    /// moves to `moved` and, if first to end, says so in `first`.
    #[allow(clippy::too_many_arguments)]
    async fn pump(
        from: &TcpStream,
        to: &TcpStream,
        pipe: &Pipe,
        clock: &Clock,
        idle: Duration,
        dir: Direction,
        moved: &mut u64,
        first: &OnceLock<TunnelEnd>,
    ) -> Result<(), Stop> {
        let mut chunk = CHUNK;
        let mut may_grow = true;
        loop {
            if may_grow && *moved >= GROW_AFTER {
                may_grow = false;
                chunk = pipe.grow(BIG_PIPE).unwrap_or(chunk);
            }
            match tokio::time::timeout(idle, from.readable()).await {
                Ok(ready) => ready.map_err(|e| Stop::failed(dir.read_side(), e))?,
                Err(_) if clock.idle_for() >= idle => return Err(Stop::Idle),
                Err(_) => continue,
            }
            let spliced = from.try_io(Interest::READABLE, || {
                splice(from.as_raw_fd(), pipe.write.as_raw_fd(), chunk)
            });
            let n = match spliced {
                Ok(0) => {
                    let _ = first.set(dir.ends_as());
                    // SAFETY: `to` is an open socket; SHUT_WR passes the end of stream on.
                    unsafe { libc::shutdown(to.as_raw_fd(), libc::SHUT_WR) };
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(Stop::failed(dir.read_side(), e)),
            };
            clock.touch();
            let mut left = n;
            while left > 0 {
                to.writable()
                    .await
                    .map_err(|e| Stop::failed(dir.write_side(), e))?;
                match to.try_io(Interest::WRITABLE, || {
                    splice(pipe.read.as_raw_fd(), to.as_raw_fd(), left)
                }) {
                    Ok(m) => {
                        left -= m;
                        *moved += m as u64;
                        clock.touch();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(Stop::failed(dir.write_side(), e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copying relay (the splice path is covered end to end): counts each way, says who
    /// closed first, and stops when cut.
    #[tokio::test]
    async fn the_copying_relay_counts_both_ways_and_says_who_ended() {
        let (mut client, mut proxy_a) = tokio::io::duplex(4096);
        let (mut proxy_b, mut upstream) = tokio::io::duplex(4096);
        let relay = tokio::spawn(async move {
            let mut counts = Counts::default();
            let stop = relay(
                &mut proxy_a,
                &mut proxy_b,
                Duration::from_secs(5),
                std::future::pending(),
                &mut counts,
            )
            .await;
            counts.ended(stop)
        });
        client.write_all(&[1u8; 10_000]).await.unwrap();
        let mut got = vec![0u8; 10_000];
        upstream.read_exact(&mut got).await.unwrap();
        upstream.write_all(&[2u8; 333]).await.unwrap();
        client.read_exact(&mut got[..333]).await.unwrap();
        upstream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        client.shutdown().await.unwrap();
        let ended = relay.await.unwrap();
        assert_eq!(
            ended,
            Ended {
                end: TunnelEnd::UpstreamClosed,
                to_upstream: 10_000,
                to_client: 333,
                error: None,
                blocked_by: None,
            }
        );
    }

    #[tokio::test]
    async fn the_copying_relay_stops_when_cut_or_idle() {
        let (_client, mut a) = tokio::io::duplex(64);
        let (mut b, _upstream) = tokio::io::duplex(64);
        let mut counts = Counts::default();
        let stop = relay(
            &mut a,
            &mut b,
            Duration::from_secs(5),
            std::future::ready(()),
            &mut counts,
        )
        .await;
        assert_eq!(counts.ended(stop).end, TunnelEnd::Shutdown);
        let stop = relay(
            &mut a,
            &mut b,
            Duration::from_millis(20),
            std::future::pending(),
            &mut counts,
        )
        .await;
        assert_eq!(stop, Stop::Idle);
    }
}
