//! UDP forwarding (`kind = "udp"`): WireGuard, OpenVPN and IPsec gateways.
//!
//! A flow is one client address. Its first datagram is decided; an allowed flow gets its own
//! upstream socket (so replies can be told apart) and a task relaying replies back; a flow with
//! no traffic either way for `idle_timeout` is forgotten, and its close event written (bytes
//! each way, `idle_timeout`, or `shutdown` for flows still open when the listener stops).
//! Blocked sources are dropped, and recorded once per `allow_log_interval` rather than once per
//! packet (a blocked VPN client retries many times a second).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::context::ListenerCtx;
use super::events::{ConnFacts, Decided};
use super::limits::ClientSlot;
use super::tunnel::{Ended, Tunnel};
use crate::audit::{Auditor, TunnelEnd};
use crate::config::Upstream;

/// During shutdown, a flow without traffic for this long counts as finished.
const DRAIN_QUIET: Duration = Duration::from_secs(2);

/// During shutdown, how often the flows are checked for quiet when no datagram arrives.
const DRAIN_CHECK: Duration = Duration::from_millis(200);

/// Largest datagram relayed.
const MAX_DATAGRAM: usize = 65_535;

struct Flow {
    up: Arc<UdpSocket>,
    /// Milliseconds since `born` of the last datagram either way.
    last: AtomicU64,
    born: Instant,
    /// Bytes relayed each way (payloads).
    to_upstream: AtomicU64,
    to_client: AtomicU64,
    /// Taken by whoever ends the flow first (expiry, or the listener stopping).
    tunnel: Mutex<Option<Tunnel>>,
    _slot: ClientSlot,
}

impl Flow {
    /// A flow relaying through `up`, holding its client's `slot` while it lives.
    fn new(up: UdpSocket, tunnel: Tunnel, slot: ClientSlot) -> Flow {
        Flow {
            up: Arc::new(up),
            last: AtomicU64::new(0),
            born: Instant::now(),
            to_upstream: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            tunnel: Mutex::new(Some(tunnel)),
            _slot: slot,
        }
    }
    /// Sends a client's datagram upstream, counting its bytes once sent.
    async fn forward(&self, datagram: &[u8]) {
        if self.up.send(datagram).await.is_ok() {
            self.to_upstream
                .fetch_add(datagram.len() as u64, Ordering::Relaxed);
        }
    }
    fn touch(&self) {
        self.last
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }
    /// Writes the close event, once.
    fn close(&self, auditor: &Auditor, end: TunnelEnd) {
        let tunnel = self.tunnel.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = tunnel {
            t.close(
                auditor,
                Ended {
                    end,
                    to_upstream: self.to_upstream.load(Ordering::Relaxed),
                    to_client: self.to_client.load(Ordering::Relaxed),
                    error: None,
                },
            );
        }
    }
}

type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<Flow>>>>;

/// Relays datagrams until shutdown, then lets open flows finish for up to `drain` (no new
/// flows are accepted while draining).
pub async fn serve(
    ctx: Arc<ListenerCtx>,
    socket: UdpSocket,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    // 1. The upstream is resolved once: every flow goes to the same address.
    let Some(upstream) = resolve_upstream(&ctx.cfg.upstream).await else {
        tracing::error!(listener = %ctx.cfg.name, upstream = %ctx.cfg.upstream, "cannot resolve the udp upstream");
        return;
    };
    // 2. Receive: existing flows forward, new ones are decided, until shutdown and the drain.
    let mut forwarder = Forwarder::new(ctx, socket, upstream);
    forwarder.receive(shutdown, drain).await;
    // 3. Flows still open when the listener stops end here (their relays end with the set).
    forwarder.close_open_flows();
}

/// The configured upstream's first address.
async fn resolve_upstream(upstream: &Upstream) -> Option<SocketAddr> {
    match upstream {
        Upstream::Addr(a) => match tokio::net::lookup_host(a.as_str()).await {
            Ok(mut addrs) => addrs.next(),
            Err(_) => None,
        },
        _ => None,
    }
}

/// What the receiving task owns: the socket, the flow table (shared with the reply relays),
/// the blocked sources, and the reply relays themselves.
struct Forwarder {
    ctx: Arc<ListenerCtx>,
    socket: Arc<UdpSocket>,
    upstream: SocketAddr,
    flows: Flows,
    blocked: Blocked,
    /// Reply relays; dropping the set at the end stops whatever is left.
    relays: tokio::task::JoinSet<()>,
}

impl Forwarder {
    fn new(ctx: Arc<ListenerCtx>, socket: UdpSocket, upstream: SocketAddr) -> Forwarder {
        let interval = ctx.shared.auditor.throttle.interval();
        Forwarder {
            ctx,
            socket: Arc::new(socket),
            upstream,
            flows: Arc::new(Mutex::new(HashMap::new())),
            blocked: Blocked::new(interval),
            relays: tokio::task::JoinSet::new(),
        }
    }

    /// Receives datagrams until shutdown, then until the drain is over: a datagram of a known
    /// flow is forwarded, the first of a new one is admitted (or not; never while draining).
    async fn receive(&mut self, mut shutdown: watch::Receiver<bool>, drain: Duration) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut draining: Option<tokio::time::Instant> = None;
        loop {
            if let Some(deadline) = draining
                && self.drained(deadline)
            {
                break;
            }
            while self.relays.try_join_next().is_some() {}
            let received = tokio::select! {
                r = self.socket.recv_from(&mut buf) => r,
                _ = shutdown.changed(), if draining.is_none() => {
                    draining = Some(tokio::time::Instant::now() + drain);
                    continue;
                }
                _ = tokio::time::sleep(DRAIN_CHECK), if draining.is_some() => continue,
            };
            let (n, src) = match received {
                Ok(x) => x,
                Err(_) => continue, // ICMP errors surface here on some systems; keep serving
            };
            let existing = self.flows.lock().ok().and_then(|f| f.get(&src).cloned());
            if let Some(flow) = existing {
                flow.touch();
                flow.forward(&buf[..n]).await;
            } else if draining.is_none() {
                self.admit(src, &buf[..n]).await;
            }
        }
    }

    /// Whether a drain is over: its deadline has passed, or no flow is busy. Datagrams have no
    /// "end": a flow is finished once it has been quiet for a moment ([`DRAIN_QUIET`]).
    fn drained(&self, deadline: tokio::time::Instant) -> bool {
        let busy = self
            .flows
            .lock()
            .map(|f| f.values().any(|fl| fl.idle_for() < DRAIN_QUIET))
            .unwrap_or(false);
        !busy || tokio::time::Instant::now() >= deadline
    }

    /// The first datagram of a new flow from `src`: decided (a recently blocked source is
    /// dropped undecided), held to the caps, then given its own upstream socket, so replies
    /// can be told apart, and a task relaying them back.
    async fn admit(&mut self, src: SocketAddr, datagram: &[u8]) {
        if self.blocked.recently(src.ip()) {
            return;
        }
        let state = self.ctx.shared.state.load_full();
        let conn = Decided::new(&self.ctx, &state, src);
        conn.count("udp");
        let facts = ConnFacts {
            transport: "udp",
            ..ConnFacts::default()
        };
        if conn.blocked() {
            self.blocked.remember(src.ip());
            conn.record(facts);
            return;
        }
        let Some(slot) = self.slot(src) else {
            return; // over a cap: dropped, as a full socket buffer would
        };
        let up = match upstream_socket(self.upstream).await {
            Some(up) => up,
            None => {
                let error = format!("upstream {}: cannot open a socket", self.upstream);
                conn.record(facts.failed(error));
                return;
            }
        };
        let tunnel = conn.open_tunnel(facts, self.upstream.to_string());
        let flow = Arc::new(Flow::new(up, tunnel, slot));
        flow.forward(datagram).await;
        self.start(src, flow);
    }

    /// A slot for a new flow from `src`, unless the listener's or the client's cap is reached.
    fn slot(&self, src: SocketAddr) -> Option<ClientSlot> {
        let open = self.flows.lock().map(|f| f.len()).unwrap_or(usize::MAX);
        if open < self.ctx.cfg.edge.max_connections {
            self.ctx.limits.admit(src.ip())
        } else {
            None
        }
    }

    /// Enters `flow` in the table and starts relaying its replies.
    fn start(&mut self, src: SocketAddr, flow: Arc<Flow>) {
        if let Ok(mut f) = self.flows.lock() {
            f.insert(src, flow.clone());
        }
        self.relays.spawn(replies(
            flow,
            self.socket.clone(),
            src,
            self.flows.clone(),
            self.ctx.clone(),
        ));
    }

    /// Ends the flows still open, with their close events (`shutdown`).
    fn close_open_flows(self) {
        let left: Vec<Arc<Flow>> = self
            .flows
            .lock()
            .map(|mut f| f.drain().map(|(_, fl)| fl).collect())
            .unwrap_or_default();
        for flow in left {
            flow.close(&self.ctx.shared.auditor, TunnelEnd::Shutdown);
        }
    }
}

/// A socket of its own towards `upstream` for one flow, so its replies can be told apart.
async fn upstream_socket(upstream: SocketAddr) -> Option<UdpSocket> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    match UdpSocket::bind(bind).await {
        Ok(s) if s.connect(upstream).await.is_ok() => Some(s),
        _ => None,
    }
}

/// Blocked sources and when each was recorded: for `allow_log_interval` a source is neither
/// decided nor recorded again (a blocked VPN client retries many times a second).
struct Blocked {
    at: HashMap<IpAddr, Instant>,
    interval: Duration,
}

impl Blocked {
    fn new(interval: Duration) -> Blocked {
        Blocked {
            at: HashMap::new(),
            interval,
        }
    }

    /// Whether `ip` was blocked within the interval.
    fn recently(&self, ip: IpAddr) -> bool {
        self.at
            .get(&ip)
            .is_some_and(|at| at.elapsed() < self.interval)
    }

    /// Remembers that `ip` was blocked now. Past 100 000 sources the expired ones are swept
    /// out first: a sweep is a scan of the map, so it is not done on every block.
    fn remember(&mut self, ip: IpAddr) {
        if self.at.len() > 100_000 {
            let interval = self.interval;
            self.at.retain(|_, at| at.elapsed() < interval);
        }
        self.at.insert(ip, Instant::now());
    }
}

/// Relays the upstream's replies to `client` until the flow has been idle for the listener's
/// `idle_timeout`, then forgets it and writes its close event.
async fn replies(
    flow: Arc<Flow>,
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Flows,
    ctx: Arc<ListenerCtx>,
) {
    let idle = ctx.cfg.edge.idle_timeout;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let wait = idle.saturating_sub(flow.idle_for());
        if wait.is_zero() {
            break;
        }
        match tokio::time::timeout(wait, flow.up.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                flow.touch();
                if socket.send_to(&buf[..n], client).await.is_ok() {
                    flow.to_client.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            Ok(Err(_)) => {
                // ICMP port unreachable from the upstream: keep the flow, it may come back.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {} // re-check: the client may have sent meanwhile
        }
    }
    if let Ok(mut f) = flows.lock() {
        f.remove(&client);
    }
    flow.close(&ctx.shared.auditor, TunnelEnd::IdleTimeout);
}
