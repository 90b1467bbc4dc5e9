//! UDP forwarding (`kind = "udp"`): WireGuard, OpenVPN and IPsec gateways.
//!
//! A flow is one client address. Its first datagram is decided; an allowed flow gets its own
//! upstream socket (so replies can be told apart) and a task relaying replies back; a flow with no
//! traffic either way for `idle_timeout` is forgotten. Blocked sources are dropped, and recorded
//! once per `allow_log_interval` rather than once per packet (a blocked VPN client retries many
//! times a second).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::limits::ClientSlot;
use crate::config::Upstream;
use crate::policy::Action;
use crate::proxy::ListenerCtx;
use crate::proxy::exchange::{ConnFacts, decide_connection, record_connection};

/// During shutdown, a flow without traffic for this long counts as finished.
const DRAIN_QUIET: Duration = Duration::from_secs(2);

/// Largest datagram relayed.
const MAX_DATAGRAM: usize = 65_535;

struct Flow {
    up: Arc<UdpSocket>,
    /// Milliseconds since `born` of the last datagram either way.
    last: AtomicU64,
    born: Instant,
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
            let _ = flow.up.send(&buf[..n]).await;
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
        record_connection(&ctx, &state, &obs, &decision, Some(src.port()), facts(None));
        let flow = Arc::new(Flow {
            up,
            last: AtomicU64::new(0),
            born: Instant::now(),
            _slot: slot,
        });
        let _ = flow.up.send(&buf[..n]).await;
        if let Ok(mut f) = flows.lock() {
            f.insert(src, flow.clone());
        }
        relays.spawn(replies(
            flow,
            socket.clone(),
            src,
            flows.clone(),
            ctx.cfg.edge.idle_timeout,
        ));
    }
}

/// Relays the upstream's replies to `client` until the flow has been idle for `idle`.
async fn replies(
    flow: Arc<Flow>,
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Flows,
    idle: Duration,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let wait = idle.saturating_sub(flow.idle_for());
        if wait.is_zero() {
            break;
        }
        match tokio::time::timeout(wait, flow.up.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                flow.touch();
                let _ = socket.send_to(&buf[..n], client).await;
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
}
