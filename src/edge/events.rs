//! Connection-level decisions and events: TCP pass-through connections, UDP flows, and
//! connections refused before any request (PROXY header, TLS handshake, connection caps).
//!
//! They carry the same schema as request events (no `http.*`); clean allows are throttled per
//! client like request allows; flags, blocks and errors are always written.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::context::ListenerCtx;
use super::tunnel::Tunnel;
use crate::audit::event::IdentityOut;
use crate::audit::{Event, RequestFacts, TlsOut};
use crate::client_addr::{self, AddrSource};
use crate::decide::Answer;
use crate::decide::{Claim, Question, decide};
use crate::history::EgressKey;
use crate::history::vpn_sessions::{TunnelSlot, VpnIdentity};
use crate::intel::Observation;
use crate::policy::history::shared_egress;
use crate::policy::{Action, Decision};
use crate::state::RuntimeState;

/// What a connection-level event says besides the decision.
#[derive(Debug, Default, Clone)]
pub struct ConnFacts {
    /// The socket peer, when the client address came from a PROXY header.
    pub peer_ip: Option<IpAddr>,
    /// `peer` or `proxy_protocol`.
    pub source: &'static str,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// TLS facts (SNI peeked on pass-through).
    pub tls: Option<TlsOut>,
    /// What went wrong, if anything (always written).
    pub error: Option<String>,
    /// The local address of locgate's upstream socket (`source.nat.*`), once connected.
    pub nat: Option<SocketAddr>,
}

impl ConnFacts {
    /// These facts, saying what went wrong.
    pub fn failed(self, error: String) -> ConnFacts {
        ConnFacts {
            error: Some(error),
            ..self
        }
    }
}

/// A connection decided on its client address: what each of its events repeats (listener,
/// observation, decision, client port), held once, so each step of a connection records with
/// only what it learned (TLS facts, an error).
pub struct Decided<'s> {
    ctx: &'s ListenerCtx,
    state: &'s RuntimeState,
    obs: Observation<'s>,
    decision: Decision,
    client_port: u16,
    /// The employee the connection is judged as: the one its VPN server names, else the one a
    /// recent verified login bound the client address to (if exactly one).
    user: Option<String>,
    /// Whether their VPN server vouched for them (ECS `user.id`; else `user.name`).
    user_verified: bool,
    /// How that employee was found (`locgate.identity`).
    identity: Option<IdentityOut>,
}

impl<'s> Decided<'s> {
    /// Observes and decides a connection on its client address through the one decision
    /// ([`crate::decide`]), with the listener's mode: [`Decided::judged`] before its VPN server
    /// has said who it is.
    pub fn new(ctx: &'s ListenerCtx, state: &'s RuntimeState, client: SocketAddr) -> Self {
        Self::judged(ctx, state, client, None)
    }

    /// Observes and decides a connection on its client address through the one decision, as
    /// the person `vpn` names when its VPN server reported one (that server authenticated them:
    /// a verified source judges them with their whole policy and history, and the sighting is
    /// recorded; an unverified one, like a typed-in name, only tightens). Otherwise layer 4
    /// carries no identity of its own, and the address may still be bound: see
    /// [`by_address`]. Not counted here: pass-through listeners count what they carry out with
    /// [`Decided::count`], and a refused connection (bad PROXY header, failed handshake, over a
    /// cap) is recorded but is neither a request nor a pass-through connection.
    pub fn judged(
        ctx: &'s ListenerCtx,
        state: &'s RuntimeState,
        client: SocketAddr,
        vpn: Option<&VpnIdentity>,
    ) -> Self {
        let obs = state.intel.observe(client_addr::normalize(client.ip()));
        let now = jiff::Timestamp::now();
        let mode = ctx.cfg.mode;
        let (answer, identity) = match vpn {
            Some(vpn) => {
                let claim = Claim {
                    name: &vpn.user,
                    verified: vpn.verified,
                    session: None,
                };
                let question = Question {
                    claim: Some(claim),
                    at: now,
                    ..Question::anonymous(mode)
                };
                let answer = decide(state, Some(&*ctx.shared.history), &obs, question);
                let identity = IdentityOut {
                    source: Some(vpn.source),
                    verified: vpn.verified,
                    presented: (answer.user.as_deref() != Some(&vpn.user))
                        .then(|| vpn.user.clone()),
                    problems: Vec::new(),
                };
                (answer, Some(identity))
            }
            None => {
                let answer = by_address(ctx, state, &obs, now);
                let identity = answer.user.is_some().then(|| IdentityOut {
                    source: Some("address_binding"),
                    verified: false,
                    ..IdentityOut::default()
                });
                (answer, identity)
            }
        };
        Decided {
            ctx,
            state,
            obs,
            decision: answer.decision,
            client_port: client.port(),
            user_verified: answer.user_verified,
            user: answer.user,
            identity,
        }
    }

    /// Counts a pass-through connection (`tcp`) or UDP flow (`udp`) in `/metrics`.
    pub fn count(&self, transport: &'static str) {
        self.ctx
            .counters
            .count_connection(transport, self.decision.action);
    }

    /// The decision taken.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Whether the decision refuses the connection.
    pub fn blocked(&self) -> bool {
        self.decision.action == Action::Block
    }

    /// Records a connection-level event. Clean allows are throttled per client.
    pub fn record(&self, facts: ConnFacts) {
        if let Some(event) = self.admitted_event(facts) {
            self.ctx.shared.auditor.record(event);
        }
    }

    /// Records a connection-level event whatever the allow throttle says: news about a tunnel
    /// already open (its VPN server named who is on it).
    pub fn record_unthrottled(&self, facts: ConnFacts) {
        self.ctx.shared.auditor.record(self.event(facts));
    }

    /// The employee the connection was judged as, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Records the connect event of a pass-through tunnel about to relay (throttled like
    /// [`Decided::record`]) and keeps what its close event needs. The close event is written
    /// whatever the throttle said, so no tunnel's duration and bytes are lost. Takes the
    /// connection, so a caller can let the runtime state go before relaying for hours.
    pub fn open_tunnel(self, facts: ConnFacts, upstream: String) -> Tunnel {
        let admitted = self.admit(&facts);
        let mut event = self.event(facts);
        let start_id = admitted.map(|suppressed| {
            event.locgate.suppressed_allows = suppressed;
            let id = event.event.id.clone();
            self.ctx.shared.auditor.record(event.clone());
            event.locgate.suppressed_allows = None;
            id
        });
        Tunnel::new(event, start_id, upstream)
    }

    /// The event to write, unless the allow throttle folds it away (then none is built).
    fn admitted_event(&self, facts: ConnFacts) -> Option<Event> {
        let suppressed = self.admit(&facts)?;
        let mut event = self.event(facts);
        event.locgate.suppressed_allows = suppressed;
        Some(event)
    }

    /// The allow throttle for a connection event: `None` when it is folded away, else how many
    /// allows were folded into it.
    fn admit(&self, facts: &ConnFacts) -> Option<Option<u64>> {
        let decision = &self.decision;
        if decision.is_routine() && facts.error.is_none() {
            let throttle = &self.ctx.shared.auditor.throttle;
            let n = throttle.admit(self.obs.ip, None, Instant::now())?;
            return Some((n > 0).then_some(n));
        }
        Some(None)
    }

    /// A connection event (no `http.*`) with a fresh id.
    fn event(&self, facts: ConnFacts) -> Event {
        let request = RequestFacts {
            listener: self.ctx.cfg.name.clone(),
            port: Some(self.client_port),
            peer_ip: facts.peer_ip,
            client_addr_source: if facts.source.is_empty() {
                AddrSource::Peer.as_str()
            } else {
                facts.source
            },
            http: None,
            identity: self.identity.clone(),
            user: self.user.clone(),
            user_verified: self.user_verified,
            duration_ns: None,
            error: facts.error,
            network: None,
        };
        let mut event = Event::build(
            self.ctx.shared.auditor.next_id(),
            crate::audit::timestamp_now(),
            &self.obs,
            &self.decision,
            request,
            self.state.intel.shown(),
        );
        if !facts.transport.is_empty() {
            event.network.transport = facts.transport;
        }
        event.source.nat = facts.nat.map(|a| crate::audit::event::Nat {
            ip: a.ip(),
            port: a.port(),
        });
        event.tls = facts.tls;
        event
    }
}

/// The decision on a client address alone. When a verified login on an HTTP listener with
/// `bind_address` bound this address to one employee, the connection is judged as them
/// ([`Claim::inferred`]: their declared home and history tighten the decision; their allowances
/// and exemption do not loosen it). Several employees bound to the address at once add
/// `shared_egress` once they reach the history threshold, and otherwise leave the connection
/// anonymous (a couple on one home line names nobody).
fn by_address(
    ctx: &ListenerCtx,
    state: &RuntimeState,
    obs: &Observation<'_>,
    now: jiff::Timestamp,
) -> Answer {
    let mode = ctx.cfg.mode;
    let bound = ctx.shared.bindings.lookup(obs.ip, now);
    match bound.as_slice() {
        [] => decide(state, None, obs, Question::anonymous(mode)),
        [one] => decide(
            state,
            Some(&*ctx.shared.history),
            obs,
            Question {
                claim: Some(Claim::inferred(one)),
                at: now,
                ..Question::anonymous(mode)
            },
        ),
        [first, rest @ ..] => {
            let corporate =
                obs.trusted_network || state.policy.allow_networks.lookup(obs.ip).trusted;
            let others: Vec<_> = rest.iter().map(|e| (e.clone(), now)).collect();
            let wire = (!corporate)
                .then(|| shared_egress(first, &others, &state.history_rules))
                .flatten()
                .into_iter()
                .collect();
            decide(
                state,
                None,
                obs,
                Question {
                    wire,
                    ..Question::anonymous(mode)
                },
            )
        }
    }
}

/// What an open tunnel or flow is re-decided on: its client address, the facts its events
/// repeat (where the address came from, the transport), the strictest action recorded for it
/// so far, and where its VPN server's report of who is on it lands.
pub struct Watch {
    /// The client address decided on.
    pub client: SocketAddr,
    /// Address source and transport, for the re-decision's event.
    pub facts: ConnFacts,
    /// The strictest action recorded so far (the connect decision's, at first).
    pub action: Action,
    /// The tunnel's entry in [`crate::state::Shared::tunnels`].
    pub slot: Arc<TunnelSlot>,
}

/// Continuous verification: each time verdicts may have changed (a reload brought new data or
/// policy, a login bound the address, the tunnel's VPN server said who is on it), the open
/// tunnel or flow is decided again on its client address, as the person its VPN server names.
/// A newly named person is always recorded (the event links the tunnel to them, and their
/// verdict becomes the one to beat); otherwise a verdict stricter than any recorded for the
/// tunnel is recorded (monitor mode keeps the tunnel). A block, which only enforce mode gives,
/// returns the decision, and the caller ends the tunnel. Never returns otherwise.
pub async fn redecide(ctx: &ListenerCtx, mut watch: Watch) -> Decision {
    let mut changed = ctx.shared.verdicts_changed.subscribe();
    let mut seen = changed.borrow_and_update().0;
    let mine = EgressKey::of(watch.client.ip());
    let mut named: Option<Arc<VpnIdentity>> = None;
    while changed.changed().await.is_ok() {
        let (generation, only) = *changed.borrow_and_update();
        // Changes seen one by one may be skipped when they concern another address; several
        // folded into one (the watch keeps the latest) may hide a reload: re-decide then.
        let single = generation == seen.wrapping_add(1);
        seen = generation;
        if single && only.is_some_and(|ip| EgressKey::of(ip) != mine) {
            continue;
        }
        let identity = watch.slot.get();
        let state = ctx.shared.state.load_full();
        let conn = Decided::judged(ctx, &state, watch.client, identity.as_deref());
        let action = conn.decision().action;
        if identity != named {
            if let (Some(user), Some(by)) = (&conn.user, &identity) {
                watch.slot.set_decided(user.clone(), by.clone());
            }
            named = identity;
            watch.action = action;
            conn.record_unthrottled(watch.facts.clone());
        } else if action > watch.action {
            watch.action = action;
            conn.record(watch.facts.clone());
        } else {
            continue;
        }
        if conn.blocked() {
            if let (Some(by), Some(user)) = (&named, conn.user())
                && by.verified
            {
                bind_blocked(ctx, watch.client.ip(), user);
            }
            return conn.decision().clone();
        }
    }
    std::future::pending().await
}

/// A person their VPN server authenticated was blocked on a tunnel: their address stays bound to
/// them for `allow_log_interval` (as a verified login binds it), so the tunnel their client
/// reopens at once is judged as them at connect, blocked there and named in its event, rather
/// than carried anonymously until the source's next report.
fn bind_blocked(ctx: &ListenerCtx, ip: IpAddr, user: &str) {
    let now = jiff::Timestamp::now();
    let ttl = ctx.shared.auditor.throttle.interval();
    let until = now + jiff::SignedDuration::try_from(ttl).unwrap_or_default();
    if ctx.shared.bindings.bind(ip, user, until, now) {
        ctx.shared.verdicts_may_have_changed(Some(ip));
    }
}

/// Records a connection refused before any decision could matter (PROXY header missing or from
/// an untrusted peer, TLS handshake failure, connection cap): decided on `client` for context.
pub fn record_refused_connection(ctx: &ListenerCtx, client: SocketAddr, error: String) {
    let state = ctx.shared.state.load();
    Decided::new(ctx, &state, client).record(ConnFacts {
        transport: "tcp",
        error: Some(error),
        ..ConnFacts::default()
    });
}
