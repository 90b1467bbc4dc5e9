//! Who the VPN servers say is on the tunnels locgate carries (issue 15, point 2).
//!
//! A VPN server behind a pass-through listener authenticates its clients (a certificate, a
//! password, a WireGuard key) and reports each session with the address it saw: locgate's own
//! upstream-side socket when the server reads no PROXY header (`source.nat` of the tunnel's
//! events), or the client's address when it does. [`OpenTunnels`] indexes every open TCP
//! tunnel and UDP flow by both addresses, so a reported session finds its tunnel exactly (an
//! address and a port, never an address alone: two people behind one NAT are two tunnels), and the
//! tunnel's [`TunnelSlot`] then holds the identity its re-decisions are judged with.
//!
//! [`VpnHealth`] keeps what each source last managed, for `/readyz` and `/metrics`: a source
//! that cannot be read leaves tunnels anonymous, and that must not be silent.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// An identity a VPN server reported for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnIdentity {
    /// The name to look up in the directory (a username, a certificate's common name, or
    /// `wireguard:<key>` for a WireGuard peer no employee lists).
    pub user: String,
    /// What kind of source: `openvpn`, `wireguard` or `vpn_log` (the event's
    /// `locgate.identity.source`).
    pub source: &'static str,
    /// The source's configured name.
    pub server: Arc<str>,
    /// Whether the source is proof (see `VpnConfig::verified`).
    pub verified: bool,
}

/// The identity of one open tunnel, set when its VPN server reports it.
#[derive(Debug, Default)]
pub struct TunnelSlot {
    identity: Mutex<Option<Arc<VpnIdentity>>>,
    /// The employee the last re-decision judged the tunnel as (for its close event).
    decided: Mutex<Option<(String, Arc<VpnIdentity>)>>,
}

impl TunnelSlot {
    fn lock(&self) -> MutexGuard<'_, Option<Arc<VpnIdentity>>> {
        self.identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The identity reported for the tunnel, if any.
    pub fn get(&self) -> Option<Arc<VpnIdentity>> {
        self.lock().clone()
    }

    /// The employee the last re-decision named and the report it named them on, if any: what
    /// the tunnel's close event says, even when the session ended first.
    pub fn decided(&self) -> Option<(String, Arc<VpnIdentity>)> {
        self.decided
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Remembers the employee a re-decision named, and on which report.
    pub fn set_decided(&self, user: String, by: Arc<VpnIdentity>) {
        *self
            .decided
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((user, by));
    }

    /// Sets (or clears) the identity; true when it changed.
    fn set(&self, identity: Option<Arc<VpnIdentity>>) -> bool {
        let mut slot = self.lock();
        let changed = slot.as_deref() != identity.as_deref();
        *slot = identity;
        changed
    }
}

/// One open tunnel in the index.
struct Open {
    client: SocketAddr,
    slot: Arc<TunnelSlot>,
}

#[derive(Default)]
struct Index {
    /// By locgate's upstream-side socket.
    by_nat: HashMap<SocketAddr, Open>,
    /// By the client's address (what a server behind `send_proxy_protocol` sees).
    by_client: HashMap<SocketAddr, Open>,
}

/// Every open pass-through tunnel, by the addresses a VPN server may report for it.
#[derive(Default, Clone)]
pub struct OpenTunnels {
    index: Arc<Mutex<Index>>,
}

/// A tunnel's place in [`OpenTunnels`]; dropping it takes the tunnel out.
pub struct Registered {
    index: Arc<Mutex<Index>>,
    client: SocketAddr,
    nat: Option<SocketAddr>,
    /// The tunnel's identity, as its VPN server reports it.
    pub slot: Arc<TunnelSlot>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut index = lock(&self.index);
        // Only our own entry: a later tunnel may have taken the same address meanwhile.
        let ours = |o: &Open| Arc::ptr_eq(&o.slot, &self.slot);
        if let Some(nat) = self.nat
            && index.by_nat.get(&nat).is_some_and(ours)
        {
            index.by_nat.remove(&nat);
        }
        if index.by_client.get(&self.client).is_some_and(ours) {
            index.by_client.remove(&self.client);
        }
    }
}

fn lock(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    // A panic elsewhere while holding the lock leaves plain data behind: keep using it.
    index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl OpenTunnels {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Enters a tunnel from `client` whose upstream socket is `nat`, until the returned guard
    /// is dropped.
    pub fn register(&self, client: SocketAddr, nat: Option<SocketAddr>) -> Registered {
        let slot = Arc::new(TunnelSlot::default());
        let mut index = lock(&self.index);
        if let Some(nat) = nat {
            index.by_nat.insert(
                nat,
                Open {
                    client,
                    slot: slot.clone(),
                },
            );
        }
        index.by_client.insert(
            client,
            Open {
                client,
                slot: slot.clone(),
            },
        );
        drop(index);
        Registered {
            index: self.index.clone(),
            client,
            nat,
            slot,
        }
    }

    /// Gives the tunnel a VPN server saw at `addr` (locgate's upstream-side socket first, then
    /// a client address) its identity, or clears it (`None`: the session ended). Returns the
    /// tunnel's client address when a tunnel was found and its identity changed, so the caller
    /// can have it re-decided.
    pub fn identify(
        &self,
        addr: SocketAddr,
        identity: Option<Arc<VpnIdentity>>,
    ) -> Option<SocketAddr> {
        let index = lock(&self.index);
        let open = index
            .by_nat
            .get(&addr)
            .or_else(|| index.by_client.get(&addr))?;
        open.slot.set(identity).then_some(open.client)
    }

    /// Like [`OpenTunnels::identify`] for a report that gives an address without a port (some
    /// gateways' logs): only a client address can match (locgate's own upstream-side address is
    /// shared by every tunnel), and only when exactly one tunnel is open from it, so two people
    /// behind one NAT are never both named after one of them. `Err(n)` when `n` tunnels (none,
    /// or several) are open from `ip`.
    pub fn identify_ip(
        &self,
        ip: std::net::IpAddr,
        identity: Option<Arc<VpnIdentity>>,
    ) -> Result<Option<SocketAddr>, usize> {
        let index = lock(&self.index);
        let mut from_ip = index.by_client.values().filter(|o| o.client.ip() == ip);
        match (from_ip.next(), from_ip.next()) {
            (Some(open), None) => Ok(open.slot.set(identity).then_some(open.client)),
            (None, _) => Err(0),
            (Some(_), Some(_)) => Err(2 + from_ip.count()),
        }
    }

    /// Whether a tunnel is open at `addr` (either side).
    pub fn is_open(&self, addr: SocketAddr) -> bool {
        let index = lock(&self.index);
        index.by_nat.contains_key(&addr) || index.by_client.contains_key(&addr)
    }

    /// Number of open tunnels.
    pub fn len(&self) -> usize {
        lock(&self.index).by_client.len()
    }

    /// Whether no tunnel is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one source last managed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStatus {
    /// Why the last attempt failed (cannot connect, bad output); `None` while it works.
    pub problem: Option<String>,
    /// Sessions it reported at its last reading.
    pub sessions: usize,
    /// Of those, the ones whose user the directory does not know.
    pub unknown: usize,
    /// Of those, the ones no open tunnel matches: the client reached the server some other way
    /// (the server should be reachable only through locgate), or a session outlived its tunnel
    /// (a UDP client gone quiet stays listed until the server's own timeout).
    pub unmatched: usize,
    /// Readings that succeeded.
    pub readings: u64,
}

/// Every configured source's status, by name.
#[derive(Debug, Default)]
pub struct VpnHealth {
    /// Status and the id of the task that reports it, by name.
    sources: Mutex<BTreeMap<String, (u64, SourceStatus)>>,
    next_owner: std::sync::atomic::AtomicU64,
}

impl VpnHealth {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, (u64, SourceStatus)>> {
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Enters a source that has not been read yet (so `/readyz` says so until it is); returns
    /// the id its task removes it with.
    pub fn starting(&self, name: &str) -> u64 {
        let owner = self
            .next_owner
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let status = SourceStatus {
            problem: Some("not read yet".into()),
            ..SourceStatus::default()
        };
        self.lock().insert(name.to_string(), (owner, status));
        owner
    }

    /// A reading succeeded: `sessions` sessions, `unknown` of them not in the directory,
    /// `unmatched` on no open tunnel.
    pub fn read(&self, name: &str, sessions: usize, unknown: usize, unmatched: usize) {
        let mut map = self.lock();
        let (_, s) = map.entry(name.to_string()).or_default();
        s.problem = None;
        s.sessions = sessions;
        s.unknown = unknown;
        s.unmatched = unmatched;
        s.readings += 1;
    }

    /// A reading failed; returns true when this is news (the source worked before, or failed
    /// differently), so the caller warns once rather than every poll.
    pub fn failed(&self, name: &str, problem: String) -> bool {
        let mut map = self.lock();
        let (_, s) = map.entry(name.to_string()).or_default();
        let news = s.problem.as_deref() != Some(problem.as_str());
        s.problem = Some(problem);
        news
    }

    /// Takes a source out (its listener stopped), unless a newer task reports under its name
    /// (a reload started the listener again before the old one finished).
    pub fn remove(&self, name: &str, owner: u64) {
        let mut map = self.lock();
        if map.get(name).is_some_and(|(o, _)| *o == owner) {
            map.remove(name);
        }
    }

    /// Every source's status, by name.
    pub fn snapshot(&self) -> Vec<(String, SourceStatus)> {
        self.lock()
            .iter()
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(user: &str) -> Option<Arc<VpnIdentity>> {
        Some(Arc::new(VpnIdentity {
            user: user.into(),
            source: "openvpn",
            server: Arc::from("ovpn"),
            verified: true,
        }))
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn a_session_finds_its_tunnel_by_either_address_and_port() {
        let t = OpenTunnels::new();
        let one = t.register(a("203.0.113.5:40000"), Some(a("127.0.0.1:51000")));
        let two = t.register(a("203.0.113.5:40001"), Some(a("127.0.0.1:51001")));
        assert_eq!(
            t.identify(a("127.0.0.1:51000"), id("alice")),
            Some(a("203.0.113.5:40000"))
        );
        assert_eq!(one.slot.get().map(|i| i.user.clone()), Some("alice".into()));
        assert!(
            two.slot.get().is_none(),
            "same address, other port: another tunnel"
        );
        // By the client's address (a server that reads PROXY headers).
        assert_eq!(
            t.identify(a("203.0.113.5:40001"), id("bob")),
            Some(a("203.0.113.5:40001"))
        );
        // The same identity again is no change; an address with no tunnel finds nothing.
        assert_eq!(t.identify(a("127.0.0.1:51000"), id("alice")), None);
        assert_eq!(t.identify(a("127.0.0.1:9"), id("alice")), None);
        assert_eq!(t.len(), 2);
        drop(one);
        assert!(!t.is_open(a("127.0.0.1:51000")) && !t.is_open(a("203.0.113.5:40000")));
        assert!(t.is_open(a("127.0.0.1:51001")));
    }

    #[test]
    fn a_newer_tunnel_on_the_same_address_outlives_the_older_ones_guard() {
        let t = OpenTunnels::new();
        let old = t.register(a("198.51.100.7:5000"), Some(a("127.0.0.1:6000")));
        let new = t.register(a("198.51.100.7:5000"), Some(a("127.0.0.1:6001")));
        drop(old);
        assert!(t.is_open(a("198.51.100.7:5000")));
        assert!(t.identify(a("198.51.100.7:5000"), id("carol")).is_some());
        assert!(new.slot.get().is_some());
    }

    #[test]
    fn health_warns_once_per_problem() {
        let h = VpnHealth::default();
        let old = h.starting("ovpn");
        assert!(h.failed("ovpn", "connection refused".into()));
        assert!(!h.failed("ovpn", "connection refused".into()));
        h.read("ovpn", 3, 1, 0);
        assert_eq!(
            h.snapshot(),
            vec![(
                "ovpn".to_string(),
                SourceStatus {
                    problem: None,
                    sessions: 3,
                    unknown: 1,
                    unmatched: 0,
                    readings: 1
                }
            )]
        );
        assert!(h.failed("ovpn", "connection refused".into()));
        // A reload's new task took the name: the old one's end leaves it.
        let new = h.starting("ovpn");
        h.remove("ovpn", old);
        assert_eq!(h.snapshot().len(), 1);
        h.remove("ovpn", new);
        assert!(h.snapshot().is_empty());
    }
}
