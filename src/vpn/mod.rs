//! Who is on the tunnels: what the VPN servers behind pass-through listeners report
//! (`[[listener.vpn]]`, issue 15 point 2).
//!
//! A tunnel carries no identity locgate can read, but the VPN server that terminates it
//! authenticated its client and lists each session with the address it saw. Each source is one
//! task, started with its listener and stopped with it:
//! - `openvpn`: the management interface's `status 3`, polled ([`openvpn`]);
//! - `wireguard`: `wg show <if> dump`, polled; a peer's public key names the employee through the
//!   directory's `wireguard_keys` ([`wireguard`]);
//! - `log`: a gateway's log lines (a file followed, or syslog datagrams) and one regular
//!   expression ([`log_source`]).
//!
//! A [`Reporter`] matches each reported session to its open tunnel by address and port
//! ([`crate::history::vpn_sessions::OpenTunnels`]) and has the tunnel re-decided as that person
//! ([`crate::edge::events::redecide`]): their declared home, policy and history then judge it,
//! and an enforce-mode block closes it. What a source cannot read is said in `/readyz` and
//! `/metrics`, never silently skipped.

pub mod log_source;
pub mod openvpn;
pub mod wireguard;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::{VpnConfig, VpnSource};
use crate::history::vpn_sessions::VpnIdentity;
use crate::state::Shared;

/// One session as a VPN server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// The name the server knows them by (`None` when it gives none).
    pub user: Option<String>,
    /// The address it saw: locgate's upstream-side socket, or the client's own with a PROXY
    /// header. Port 0 when the report gives no port (some gateways' logs).
    pub addr: SocketAddr,
}

/// Reads an address as VPN servers print it: `1.2.3.4:5`, `[2001:db8::1]:5`, `2001:db8::1:5`
/// (the last colon separates the port), optionally after a protocol or family tag
/// (`udp4:`, `tcp4-server:`, `[AF_INET]`); IPv4-mapped IPv6 becomes IPv4. The port is required.
pub fn parse_address(text: &str) -> Option<SocketAddr> {
    let mut s = text.trim();
    if let Some(rest) = s.strip_prefix("[AF_INET6]").or(s.strip_prefix("[AF_INET]")) {
        s = rest;
    }
    if let Some((tag, rest)) = s.split_once(':')
        && !tag.is_empty()
        && tag.starts_with(|c: char| c.is_ascii_alphabetic())
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && tag.chars().any(|c| !c.is_ascii_hexdigit())
    {
        // `udp4:`, `tcp6-server:`; never an IPv6 group such as `fe80:` (hex digits only).
        s = rest;
    }
    let normal = |a: SocketAddr| SocketAddr::new(crate::client_addr::normalize(a.ip()), a.port());
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(normal(a));
    }
    let (host, port) = s.rsplit_once(':')?;
    let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
    Some(normal(SocketAddr::new(ip, port.parse().ok()?)))
}

/// Starts one task per source of a listener; they stop when the returned set is dropped (the
/// listener stopped), and their status leaves `/readyz` with them.
pub fn watch(shared: Arc<Shared>, sources: &[VpnConfig]) -> Sources {
    let mut tasks = tokio::task::JoinSet::new();
    let mut owners = Vec::new();
    for cfg in sources {
        let owner = shared.vpn_health.starting(&cfg.name);
        owners.push((cfg.name.clone(), owner));
        let reporter = Reporter::new(shared.clone(), cfg);
        match cfg.source.clone() {
            VpnSource::OpenVpn {
                management,
                password,
                user,
            } => tasks.spawn(openvpn::run(reporter, management, password, user, cfg.poll)),
            VpnSource::WireGuard { command } => {
                tasks.spawn(wireguard::run(reporter, command, cfg.poll))
            }
            VpnSource::Log {
                input,
                pattern,
                end_pattern,
            } => tasks.spawn(log_source::run(reporter, input, pattern, end_pattern)),
        };
    }
    Sources {
        _tasks: tasks,
        owners,
        shared,
    }
}

/// A listener's running sources.
pub struct Sources {
    _tasks: tokio::task::JoinSet<()>,
    owners: Vec<(String, u64)>,
    shared: Arc<Shared>,
}

impl Drop for Sources {
    fn drop(&mut self) {
        for (name, owner) in &self.owners {
            self.shared.vpn_health.remove(name, *owner);
        }
    }
}

/// Applies one source's reports to the open tunnels and its status to `/readyz`.
pub struct Reporter {
    shared: Arc<Shared>,
    name: Arc<str>,
    kind: &'static str,
    verified: bool,
    /// The sessions last reported, by address.
    known: HashMap<SocketAddr, Arc<VpnIdentity>>,
    /// Size of `known` at which a log source next forgets sessions whose tunnel closed.
    prune_at: usize,
}

/// A log source first looks for sessions of closed tunnels once it knows this many.
const PRUNE_FIRST: usize = 1024;

impl Reporter {
    fn new(shared: Arc<Shared>, cfg: &VpnConfig) -> Reporter {
        Reporter {
            shared,
            name: Arc::from(cfg.name.as_str()),
            kind: match cfg.source {
                VpnSource::OpenVpn { .. } => "openvpn",
                VpnSource::WireGuard { .. } => "wireguard",
                VpnSource::Log { .. } => "vpn_log",
            },
            verified: cfg.verified,
            known: HashMap::new(),
            prune_at: PRUNE_FIRST,
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runtime state now (the directory names WireGuard keys).
    pub fn state(&self) -> arc_swap::Guard<Arc<crate::state::RuntimeState>> {
        self.shared.state.load()
    }

    /// A whole list of the sessions open now (OpenVPN, WireGuard): each names its tunnel, and
    /// tunnels whose session is gone lose the identity.
    pub fn snapshot(&mut self, sessions: Vec<Reported>) {
        let mut now: HashMap<SocketAddr, Arc<VpnIdentity>> = HashMap::with_capacity(sessions.len());
        let mut unmatched = 0;
        for r in sessions {
            let Some(user) = r.user else { continue };
            let identity = self.identity(r.addr, user);
            if !self.name_tunnel(r.addr, Some(identity.clone())) {
                unmatched += 1;
            }
            now.insert(r.addr, identity);
        }
        let gone: Vec<SocketAddr> = self
            .known
            .keys()
            .filter(|a| !now.contains_key(a))
            .copied()
            .collect();
        for addr in gone {
            self.name_tunnel(addr, None);
        }
        self.known = now;
        self.read(unmatched);
    }

    /// One session started (a log line).
    pub fn started(&mut self, r: Reported) {
        let Some(user) = r.user else { return };
        let identity = self.identity(r.addr, user);
        let matched = self.name_tunnel(r.addr, Some(identity.clone()));
        self.known.insert(r.addr, identity);
        // Sessions whose tunnel has closed are forgotten, so the table stays as big as what is
        // open; looked over once it has doubled since the last time (amortised, not per line).
        if self.known.len() >= self.prune_at {
            let tunnels = &self.shared.tunnels;
            self.known
                .retain(|a, _| a.port() == 0 || tunnels.is_open(*a) || *a == r.addr);
            self.prune_at = (2 * self.known.len()).max(PRUNE_FIRST);
        }
        self.read(usize::from(!matched));
    }

    /// Sessions ended (a log line): those of `user` at `addr` when the line gives one, else all
    /// of `user`'s.
    pub fn ended(&mut self, user: &str, addr: Option<SocketAddr>) {
        let gone: Vec<SocketAddr> = self
            .known
            .iter()
            .filter(|(a, id)| id.user == user && addr.is_none_or(|x| x == **a))
            .map(|(a, _)| *a)
            .collect();
        for a in gone {
            self.known.remove(&a);
            self.name_tunnel(a, None);
        }
        self.read(0);
    }

    /// The source is open (a file, a syslog socket) though nothing was said yet.
    pub fn ready(&self) {
        self.read(0);
    }

    /// A reading failed: said in `/readyz` and `/metrics`, and logged when it is news.
    pub fn failed(&self, problem: String) {
        if self.shared.vpn_health.failed(&self.name, problem.clone()) {
            tracing::warn!(source = %self.name, %problem, "vpn source cannot be read: tunnels it serves stay anonymous");
        }
    }

    /// The identity to give a session of `user` at `addr` (the one already given there when
    /// unchanged, so an unchanged session is no news).
    fn identity(&self, addr: SocketAddr, user: String) -> Arc<VpnIdentity> {
        let fresh = VpnIdentity {
            user,
            source: self.kind,
            server: self.name.clone(),
            verified: self.verified,
        };
        match self.known.get(&addr).filter(|k| ***k == fresh) {
            Some(k) => k.clone(),
            None => Arc::new(fresh),
        }
    }

    /// Gives (or takes) the tunnel at `addr` its identity and has it re-decided when that is
    /// news; false when no open tunnel matches.
    fn name_tunnel(&self, addr: SocketAddr, identity: Option<Arc<VpnIdentity>>) -> bool {
        let tunnels = &self.shared.tunnels;
        let found = if addr.port() == 0 {
            tunnels.identify_ip(addr.ip(), identity).ok()
        } else if tunnels.is_open(addr) {
            Some(tunnels.identify(addr, identity))
        } else {
            None
        };
        match found {
            Some(Some(client)) => {
                self.shared.verdicts_may_have_changed(Some(client.ip()));
                true
            }
            Some(None) => true,
            None => false,
        }
    }

    /// Records a successful reading in the source's status.
    fn read(&self, unmatched: usize) {
        let state = self.shared.state.load();
        let unknown = match &state.directory {
            Some(dir) => self
                .known
                .values()
                .filter(|id| dir.get(&id.user).is_none())
                .count(),
            None => 0,
        };
        self.shared
            .vpn_health
            .read(&self.name, self.known.len(), unknown, unmatched);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_address;

    #[test]
    fn addresses_as_vpn_servers_print_them() {
        let a = |s: &str| parse_address(s).map(|a| a.to_string());
        assert_eq!(a("127.0.0.1:51000").as_deref(), Some("127.0.0.1:51000"));
        assert_eq!(
            a("udp4:127.0.0.1:51000").as_deref(),
            Some("127.0.0.1:51000")
        );
        assert_eq!(
            a("tcp4-server:10.0.0.2:443").as_deref(),
            Some("10.0.0.2:443")
        );
        assert_eq!(
            a("[AF_INET]192.0.2.7:1194").as_deref(),
            Some("192.0.2.7:1194")
        );
        assert_eq!(a("[2001:db8::1]:5").as_deref(), Some("[2001:db8::1]:5"));
        assert_eq!(a("2001:db8::1:1194").as_deref(), Some("[2001:db8::1]:1194"));
        assert_eq!(
            a("::ffff:192.0.2.9:40000").as_deref(),
            Some("192.0.2.9:40000")
        );
        assert_eq!(
            a("[AF_INET6]::ffff:192.0.2.9:40000").as_deref(),
            Some("192.0.2.9:40000")
        );
        assert_eq!(a("198.51.100.4"), None);
        assert_eq!(a("fe80::1:443").as_deref(), Some("[fe80::1]:443"));
        assert_eq!(a("nowhere"), None);
        assert_eq!(a("1.2.3.4:99999"), None);
        assert_eq!(a(""), None);
    }
}
