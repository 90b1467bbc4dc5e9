//! UDP forwarding (`kind = "udp"`): WireGuard, OpenVPN and IPsec gateways.
//!
//! A flow is one client address. Its first datagram is decided; an allowed flow gets its own
//! upstream socket (so replies can be told apart) and a task relaying replies back; a flow with no
//! traffic either way for `idle_timeout` is forgotten, and its close event written (bytes each
//! way, `idle_timeout`, or `shutdown` for flows still open when the listener stops). Blocked sources are dropped, and recorded
//! once per `allow_log_interval` rather than once per packet (a blocked VPN client retries many
//! times a second).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::context::ListenerCtx;
use super::events::{ConnFacts, decide_connection, open_tunnel, record_connection};
use super::limits::ClientSlot;
use super::tunnel::{Ended, Tunnel};
use crate::audit::{Auditor, TunnelEnd};
use crate::config::Upstream;
use crate::policy::Action;

/// During shutdown, a flow without traffic for this long counts as finished.
const DRAIN_QUIET: Duration = Duration::from_secs(2);

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
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let socket = Arc::new(socket);
    let upstream = match &ctx.cfg.upstream {
        Upstream::Addr(a) => match tokio::net::lookup_host(a.as_str()).await {
            Ok(mut addrs) => addrs.next(),
            Err(_) => None,
        },
        _ => None,
    };
    let Some(upstream) = upstream else {
        tracing::error!(listener = %ctx.cfg.name, upstream = %ctx.cfg.upstream, "cannot resolve the udp upstream");
        return;
    };
    let flows: Flows = Arc::new(Mutex::new(HashMap::new()));
    let mut blocked: HashMap<IpAddr, Instant> = HashMap::new();
    let interval = ctx.shared.auditor.throttle.interval();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut draining: Option<tokio::time::Instant> = None;
    // Reply relays; dropping the set at the end stops whatever is left.
    let mut relays = tokio::task::JoinSet::new();
    loop {
        if let Some(deadline) = draining {
            // Datagrams have no "end": a flow is finished once it has been quiet for a moment.
            let busy = flows
                .lock()
                .map(|f| f.values().any(|fl| fl.idle_for() < DRAIN_QUIET))
                .unwrap_or(false);
            if !busy || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        while relays.try_join_next().is_some() {}
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = shutdown.changed(), if draining.is_none() => {
                draining = Some(tokio::time::Instant::now() + drain);
                continue;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)), if draining.is_some() => continue,
        };
        let (n, src) = match received {
            Ok(x) => x,
            Err(_) => continue, // ICMP errors surface here on some systems; keep serving
        };
        let existing = flows.lock().ok().and_then(|f| f.get(&src).cloned());
        if let Some(flow) = existing {
            flow.touch();
            if flow.up.send(&buf[..n]).await.is_ok() {
                flow.to_upstream.fetch_add(n as u64, Ordering::Relaxed);
            }
            continue;
        }
        if draining.is_some() {
            continue;
        }
        if let Some(at) = blocked.get(&src.ip())
            && at.elapsed() < interval
        {
            continue;
        }
        let state = ctx.shared.state.load_full();
        let (obs, decision) = decide_connection(&ctx, &state, src.ip());
        ctx.shared
            .auditor
            .stats
            .count_connection("udp", decision.action);
        let facts = |error: Option<String>| ConnFacts {
            transport: "udp",
            error,
            ..ConnFacts::default()
        };
        if decision.action == Action::Block {
            if blocked.len() > 100_000 {
                blocked.retain(|_, at| at.elapsed() < interval);
            }
            blocked.insert(src.ip(), Instant::now());
            record_connection(&ctx, &state, &obs, &decision, Some(src.port()), facts(None));
            continue;
        }
        let open = flows.lock().map(|f| f.len()).unwrap_or(usize::MAX);
        let slot = if open < ctx.cfg.edge.max_connections {
            ctx.limits.admit(src.ip())
        } else {
            None
        };
        let Some(slot) = slot else {
            continue; // over a cap: dropped, as a full socket buffer would
        };
        let bind: SocketAddr = if upstream.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let up = match UdpSocket::bind(bind).await {
            Ok(s) if s.connect(upstream).await.is_ok() => Arc::new(s),
            _ => {
                let err = Some(format!("upstream {upstream}: cannot open a socket"));
                record_connection(&ctx, &state, &obs, &decision, Some(src.port()), facts(err));
                continue;
            }
        };
        let tunnel = open_tunnel(
            &ctx,
            &state,
            &obs,
            &decision,
            Some(src.port()),
            facts(None),
            upstream.to_string(),
        );
        let flow = Arc::new(Flow {
            up,
            last: AtomicU64::new(0),
            born: Instant::now(),
            to_upstream: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            tunnel: Mutex::new(Some(tunnel)),
            _slot: slot,
        });
        if flow.up.send(&buf[..n]).await.is_ok() {
            flow.to_upstream.fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Ok(mut f) = flows.lock() {
            f.insert(src, flow.clone());
        }
        relays.spawn(replies(
            flow,
            socket.clone(),
            src,
            flows.clone(),
            ctx.clone(),
        ));
    }
    // Flows still open when the listener stops end here (their relays end with the set).
    let left: Vec<Arc<Flow>> = flows
        .lock()
        .map(|mut f| f.drain().map(|(_, fl)| fl).collect())
        .unwrap_or_default();
    for flow in left {
        flow.close(&ctx.shared.auditor, TunnelEnd::Shutdown);
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
