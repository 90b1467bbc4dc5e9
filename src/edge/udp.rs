//! UDP forwarding (`kind = "udp"`): WireGuard, OpenVPN and IPsec gateways.
//!
//! A flow is one client address. Its first datagram is decided; an allowed flow gets its own
//! upstream socket (so replies can be told apart) and a task relaying replies back; a flow with
//! no traffic either way for `idle_timeout` is forgotten, and its close event written (bytes
//! each way, `idle_timeout`, or `shutdown` for flows still open when the listener stops).
//! Blocked sources are dropped, and recorded once per `allow_log_interval` rather than once per
//! packet (a blocked VPN client retries many times a second).
//!
//! **Limits.** UDP sources are trivially spoofed, so flows are held to a budget of their own
//! that a flood of new sources cannot take from clients already talking:
//! - at most `max_connections` flows on the listener;
//! - at most `max_connections_per_client` flows per source *prefix* (IPv4 /24, IPv6 /64), as
//!   spoofing a whole neighbourhood is as easy as one address;
//! - when the table is full, a new source may take the place of a flow that has been quiet for
//!   [`EVICT_QUIET`] (the oldest such flow, looked for among [`EVICT_TRIES`] flows in admission
//!   order, so the work per new source is constant); a flow that moved a datagram either way
//!   within [`EVICT_QUIET`] is never evicted, so a flood of new sources cannot push out a tunnel
//!   that is carrying traffic. An evicted flow's close event says so; its client simply starts a
//!   new flow with its next datagram (WireGuard and OpenVPN follow a changed endpoint);
//! - otherwise the new source's datagram is dropped, as a full socket buffer would drop it;
//! - blocked sources are remembered in two generations per `allow_log_interval`, at most
//!   [`BLOCKED_GENERATION`] each, without scans.
//!
//! **Batching.** The listener takes every datagram queued with one system call and sends a run
//! of one client's datagrams upstream with one; replies likewise ([`super::udp_batch`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::coalesce;
use super::context::ListenerCtx;
use super::events::{ConnFacts, Decided, Watch, redecide};
use super::tunnel::{Ended, Tunnel};
use super::udp_batch::{self, RecvBatch};
use crate::audit::{Auditor, TunnelEnd};
use crate::config::Upstream;
use crate::history::vpn_sessions::Registered;
use crate::policy::{Action, Decision};

/// During shutdown, a flow without traffic for this long counts as finished.
const DRAIN_QUIET: Duration = Duration::from_secs(2);

/// During shutdown, how often the flows are checked for quiet when no datagram arrives.
const DRAIN_CHECK: Duration = Duration::from_millis(200);

/// Largest datagram relayed.
const MAX_DATAGRAM: usize = udp_batch::MAX_DATAGRAM;

/// Datagrams the listener takes per system call ([`udp_batch`]).
const RECV_SLOTS: usize = 32;

/// A flow quiet (no datagram either way) for this long may be evicted for a new source when
/// the table is full; a flow that moved data more recently never is.
pub const EVICT_QUIET: Duration = Duration::from_secs(2);

/// Flows looked at (in admission order) for one to evict, per new source.
pub const EVICT_TRIES: usize = 8;

/// Most blocked sources remembered per generation (two generations are kept).
pub const BLOCKED_GENERATION: usize = 65_536;

struct Flow {
    up: Arc<UdpSocket>,
    /// Milliseconds since `born` of the last datagram either way.
    last: AtomicU64,
    born: Instant,
    /// Bytes relayed each way (payloads).
    to_upstream: AtomicU64,
    to_client: AtomicU64,
    /// Taken by whoever ends the flow first (expiry, eviction, or the listener stopping).
    tunnel: Mutex<Option<Tunnel>>,
    /// Cancelled when the flow is evicted: its reply relay stops at once.
    evicted: tokio_util::sync::CancellationToken,
    /// The action its first datagram was decided with (re-decisions record only stricter ones).
    action: Action,
    /// Its entry in the index VPN servers' reports are matched against, until it ends.
    registered: Registered,
}

impl Flow {
    /// A flow relaying through `up`.
    fn new(up: UdpSocket, tunnel: Tunnel, action: Action, registered: Registered) -> Flow {
        Flow {
            up: Arc::new(up),
            last: AtomicU64::new(0),
            born: Instant::now(),
            to_upstream: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            tunnel: Mutex::new(Some(tunnel)),
            evicted: tokio_util::sync::CancellationToken::new(),
            action,
            registered,
        }
    }
    /// Sends a client's datagram upstream, counting its bytes once sent.
    async fn forward(&self, datagram: &[u8]) {
        if self.up.send(datagram).await.is_ok() {
            self.to_upstream
                .fetch_add(datagram.len() as u64, Ordering::Relaxed);
        }
    }
    /// Sends a run of a client's datagrams upstream in as few system calls as the platform
    /// allows ([`udp_batch::send`]), counting the bytes sent.
    async fn forward_many(&self, datagrams: &[&[u8]]) {
        let sent = udp_batch::send(&self.up, None, datagrams).await;
        self.to_upstream.fetch_add(sent, Ordering::Relaxed);
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
        self.close_with(auditor, end, None);
    }

    /// Writes the close event, once, with a note for `locgate.error`.
    fn close_with(&self, auditor: &Auditor, end: TunnelEnd, error: Option<String>) {
        self.close_ended(auditor, end, error, None);
    }

    /// Writes the close event, once: `blocked_by` when a re-decision ended the flow.
    fn close_ended(
        &self,
        auditor: &Auditor,
        end: TunnelEnd,
        error: Option<String>,
        blocked_by: Option<Decision>,
    ) {
        let tunnel = self.tunnel.lock().ok().and_then(|mut t| t.take());
        if let Some(mut t) = tunnel {
            t.name_from(&self.registered.slot);
            t.close(
                auditor,
                Ended {
                    end,
                    to_upstream: self.to_upstream.load(Ordering::Relaxed),
                    to_client: self.to_client.load(Ordering::Relaxed),
                    error,
                    blocked_by,
                },
            );
        }
    }
}

/// The source prefix a per-client cap counts: IPv4 /24, IPv6 /64.
fn prefix(ip: IpAddr) -> IpAddr {
    match crate::client_addr::normalize(ip) {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

/// The open flows, how many each source prefix holds, and the sources recently blocked (at
/// their first datagram, or by a re-decision that ended their flow).
struct Table {
    flows: HashMap<SocketAddr, Arc<Flow>>,
    per_prefix: HashMap<IpAddr, usize>,
    blocked: Blocked,
}

impl Table {
    fn new(blocked_for: Duration) -> Table {
        Table {
            flows: HashMap::new(),
            per_prefix: HashMap::new(),
            blocked: Blocked::new(blocked_for),
        }
    }

    fn insert(&mut self, src: SocketAddr, flow: Arc<Flow>) {
        if let Some(old) = self.flows.insert(src, flow) {
            // Not expected (a known source is forwarded, not admitted); keep the counts right.
            old.evicted.cancel();
        } else {
            *self.per_prefix.entry(prefix(src.ip())).or_insert(0) += 1;
        }
    }

    /// Removes `src`'s flow if it is still `flow` (a newer flow of the same source stays).
    fn remove_if(&mut self, src: SocketAddr, flow: &Arc<Flow>) -> bool {
        if !self.flows.get(&src).is_some_and(|f| Arc::ptr_eq(f, flow)) {
            return false;
        }
        self.flows.remove(&src);
        let p = prefix(src.ip());
        if let Some(n) = self.per_prefix.get_mut(&p) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_prefix.remove(&p);
            }
        }
        true
    }

    fn held_by_prefix(&self, ip: IpAddr) -> usize {
        self.per_prefix.get(&prefix(ip)).copied().unwrap_or(0)
    }
}

type Flows = Arc<Mutex<Table>>;

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
    /// Flows in admission order (the eviction candidates); records of ended flows are
    /// skipped when met and compacted away.
    admitted: VecDeque<(SocketAddr, Weak<Flow>)>,
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
            flows: Arc::new(Mutex::new(Table::new(interval))),
            admitted: VecDeque::new(),
            relays: tokio::task::JoinSet::new(),
        }
    }

    /// Receives datagrams until shutdown, then until the drain is over: a datagram of a known
    /// flow is forwarded, the first of a new one is admitted (or not; never while draining).
    async fn receive(&mut self, mut shutdown: watch::Receiver<bool>, drain: Duration) {
        // Batched: one system call takes what is queued (and splits what GRO coalesced).
        let mut batch = RecvBatch::new(RECV_SLOTS, MAX_DATAGRAM).short_batch_drains();
        udp_batch::enable_gro(&self.socket);
        let rcvbuf = udp_batch::grow_receive_buffer(&self.socket, udp_batch::LISTENER_RCVBUF);
        tracing::debug!(listener = %self.ctx.cfg.name, rcvbuf, "udp: receive buffer");
        let hold = self.ctx.cfg.edge.udp_coalesce.and_then(|period| {
            coalesce::Hold::new(period)
                .inspect_err(|e| tracing::warn!(listener = %self.ctx.cfg.name, error = %e, "udp_coalesce: no timer; receiving without it"))
                .ok()
        });
        let mut draining: Option<tokio::time::Instant> = None;
        loop {
            if let Some(deadline) = draining
                && self.drained(deadline)
            {
                break;
            }
            while self.relays.try_join_next().is_some() {}
            let received = tokio::select! {
                r = batch.recv(&self.socket) => r,
                _ = shutdown.changed(), if draining.is_none() => {
                    draining = Some(tokio::time::Instant::now() + drain);
                    continue;
                }
                _ = tokio::time::sleep(DRAIN_CHECK), if draining.is_some() => continue,
            };
            if received.is_err() {
                continue; // ICMP errors surface here on some systems; keep serving
            }
            // A run of one source's datagrams goes upstream together.
            for (src, run) in batch.runs() {
                let Some((first, rest)) = run.split_first() else {
                    continue;
                };
                if let Some(flow) = self.flow(src) {
                    flow.touch();
                    flow.forward_many(&run).await;
                } else if draining.is_none() {
                    self.admit(src, first).await;
                    // The rest of the run follows its first datagram if that was admitted.
                    if let Some(flow) = self.flow(src).filter(|_| !rest.is_empty()) {
                        flow.forward_many(rest).await;
                    }
                }
            }
            // Under load, let the next datagrams gather before receiving them in one call.
            if let Some(hold) = &hold
                && received.is_ok_and(|n| n > 0)
                && hold.wait().await.is_err()
            {
                tracing::debug!("udp_coalesce: timer failed; this hold skipped");
            }
        }
    }

    /// The open flow of `src`, if any.
    fn flow(&self, src: SocketAddr) -> Option<Arc<Flow>> {
        self.flows
            .lock()
            .ok()
            .and_then(|f| f.flows.get(&src).cloned())
    }

    /// Whether a drain is over: its deadline has passed, or no flow is busy. Datagrams have no
    /// "end": a flow is finished once it has been quiet for a moment ([`DRAIN_QUIET`]).
    fn drained(&self, deadline: tokio::time::Instant) -> bool {
        let busy = self
            .flows
            .lock()
            .map(|f| f.flows.values().any(|fl| fl.idle_for() < DRAIN_QUIET))
            .unwrap_or(false);
        !busy || tokio::time::Instant::now() >= deadline
    }

    /// The first datagram of a new flow from `src`: decided (a recently blocked source is
    /// dropped undecided), held to the caps, then given its own upstream socket, so replies
    /// can be told apart, and a task relaying them back.
    async fn admit(&mut self, src: SocketAddr, datagram: &[u8]) {
        if self
            .flows
            .lock()
            .map_or(true, |t| t.blocked.recently(src.ip()))
        {
            return;
        }
        let state = self.ctx.shared.state.load_full();
        let ctx = self.ctx.clone();
        let conn = Decided::new(&ctx, &state, src);
        conn.count("udp");
        let mut facts = ConnFacts {
            transport: "udp",
            ..ConnFacts::default()
        };
        if conn.blocked() {
            if let Ok(mut t) = self.flows.lock() {
                t.blocked.remember(src.ip());
            }
            conn.record(facts);
            return;
        }
        if !self.room_for(src) {
            return; // over a cap: dropped, as a full socket buffer would
        }
        let up = match upstream_socket(self.upstream).await {
            Some(up) => up,
            None => {
                let error = format!("upstream {}: cannot open a socket", self.upstream);
                conn.record(facts.failed(error));
                return;
            }
        };
        let action = conn.decision().action;
        facts.nat = up.local_addr().ok();
        let registered = self.ctx.shared.tunnels.register(src, facts.nat);
        let tunnel = conn.open_tunnel(facts, self.upstream.to_string());
        let flow = Arc::new(Flow::new(up, tunnel, action, registered));
        flow.forward(datagram).await;
        self.start(src, flow);
    }

    /// Whether a new flow from `src` fits: its prefix is under the per-client cap, and the
    /// table has room or a quiet flow to give up ([`Forwarder::evict_one`]).
    fn room_for(&mut self, src: SocketAddr) -> bool {
        let (open, mine) = match self.flows.lock() {
            Ok(t) => (t.flows.len(), t.held_by_prefix(src.ip())),
            Err(_) => return false,
        };
        if mine >= self.ctx.cfg.edge.max_connections_per_client {
            tracing::debug!(listener = %self.ctx.cfg.name, %src, "udp: source prefix at its flow cap");
            return false;
        }
        open < self.ctx.cfg.edge.max_connections || self.evict_one()
    }

    /// Makes room by ending one flow quiet for [`EVICT_QUIET`], the first met in admission
    /// order among at most [`EVICT_TRIES`]; flows that are moving data go to the back.
    fn evict_one(&mut self) -> bool {
        for _ in 0..EVICT_TRIES {
            let Some((src, weak)) = self.admitted.pop_front() else {
                return false;
            };
            let Some(flow) = weak.upgrade() else {
                continue; // ended
            };
            if flow.idle_for() < EVICT_QUIET {
                self.admitted.push_back((src, weak));
                continue;
            }
            let removed = self
                .flows
                .lock()
                .map(|mut t| t.remove_if(src, &flow))
                .unwrap_or(false);
            if !removed {
                continue; // already ended by its relay
            }
            flow.evicted.cancel();
            flow.close_with(
                &self.ctx.shared.auditor,
                TunnelEnd::IdleTimeout,
                Some(format!(
                    "evicted: the flow table was full and this flow had been quiet for {:?}",
                    flow.idle_for()
                )),
            );
            return true;
        }
        false
    }

    /// Enters `flow` in the table and starts relaying its replies.
    fn start(&mut self, src: SocketAddr, flow: Arc<Flow>) {
        let open = match self.flows.lock() {
            Ok(mut t) => {
                t.insert(src, flow.clone());
                t.flows.len()
            }
            Err(_) => 0,
        };
        self.admitted.push_back((src, Arc::downgrade(&flow)));
        if self.admitted.len() > 2 * open + 64 {
            self.admitted.retain(|(_, w)| w.strong_count() > 0);
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
            .map(|mut t| {
                t.per_prefix.clear();
                t.flows.drain().map(|(_, fl)| fl).collect()
            })
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
        Ok(s) if s.connect(upstream).await.is_ok() => {
            udp_batch::enable_gro(&s); // its replies are read by `udp_batch::relay`
            Some(s)
        }
        _ => None,
    }
}

/// Blocked sources and when each was recorded: for `allow_log_interval` a source is neither
/// decided nor recorded again (a blocked VPN client retries many times a second). Two
/// generations, rotated per interval or when the current one holds [`BLOCKED_GENERATION`]
/// sources (a spoofed flood): bounded, no scans, and a forgotten source is only decided and
/// recorded again (towards writing, never hiding).
struct Blocked {
    at: crate::audit::Generations<IpAddr, Instant>,
    interval: Duration,
}

impl Blocked {
    fn new(interval: Duration) -> Blocked {
        Blocked {
            at: crate::audit::Generations::new(interval, BLOCKED_GENERATION, Instant::now()),
            interval,
        }
    }

    /// Whether `ip` was blocked within the interval.
    fn recently(&self, ip: IpAddr) -> bool {
        self.at
            .get(&ip)
            .is_some_and(|at| at.elapsed() < self.interval)
    }

    /// Remembers that `ip` was blocked now.
    fn remember(&mut self, ip: IpAddr) {
        let now = Instant::now();
        self.at.rotate_if_due(now);
        self.at.insert(ip, now, now);
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
    // Continuous verification: a re-decision that blocks ends the flow, and the client's
    // datagrams are dropped for `allow_log_interval` like those of a source blocked at once.
    let watch = Watch {
        client,
        facts: ConnFacts {
            transport: "udp",
            ..ConnFacts::default()
        },
        action: flow.action,
        slot: flow.registered.slot.clone(),
    };
    let redecided = redecide(&ctx, watch);
    tokio::pin!(redecided);
    loop {
        let wait = idle.saturating_sub(flow.idle_for());
        if wait.is_zero() {
            break;
        }
        let received = tokio::select! {
            r = tokio::time::timeout(wait, flow.up.readable()) => r,
            _ = flow.evicted.cancelled() => return, // its close event is written already
            decision = &mut redecided => {
                // Its next datagrams are dropped too, not decided afresh on the address alone
                // (which knows nothing of the person the block was about).
                if let Ok(mut t) = flows.lock() {
                    t.remove_if(client, &flow);
                    t.blocked.remember(client.ip());
                }
                flow.close_ended(&ctx.shared.auditor, TunnelEnd::Blocked, None, Some(decision));
                return;
            }
        };
        match received {
            // What is queued goes to the client in as few system calls as the platform allows.
            Ok(Ok(())) => match udp_batch::relay(&flow.up, &socket, client) {
                Ok((0, _)) => {} // nothing was queued after all
                Ok((_, sent)) => {
                    flow.touch();
                    flow.to_client.fetch_add(sent, Ordering::Relaxed);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await, // as below
            },
            Ok(Err(_)) => {
                // ICMP port unreachable from the upstream: keep the flow, it may come back.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {} // re-check: the client may have sent meanwhile
        }
    }
    if let Ok(mut t) = flows.lock() {
        t.remove_if(client, &flow);
    }
    flow.close(&ctx.shared.auditor, TunnelEnd::IdleTimeout);
}
