//! Connection-level decisions and events: TCP pass-through connections, UDP flows, and
//! connections refused before any request (PROXY header, TLS handshake, connection caps).
//!
//! They carry the same schema as request events (no `http.*`); clean allows are throttled per
//! client like request allows; flags, blocks and errors are always written.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::context::ListenerCtx;
use super::tunnel::Tunnel;
use crate::audit::event::IdentityOut;
use crate::audit::{Event, RequestFacts, TlsOut};
use crate::client_addr::{self, AddrSource};
use crate::decide::{Claim, Question, decide};
use crate::history::EgressKey;
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
    /// The identity the connection proved, when any.
    pub user: Option<String>,
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
    /// The employee the client address is bound to by a recent verified login, if exactly one.
    user: Option<String>,
}

impl<'s> Decided<'s> {
    /// Observes and decides a connection on its client address through the one decision
    /// ([`crate::decide`]), with the listener's mode. Layer 4 carries no identity of its own;
    /// when a verified login on an HTTP listener with `bind_address` bound this address to one
    /// employee, the connection is judged as them ([`Claim::inferred`]: their declared home and
    /// history tighten the decision; their allowances and exemption do not loosen it). Several employees bound to the address at once add
    /// `shared_egress` once they reach the history threshold, and otherwise leave the connection
    /// anonymous (a couple on one home line names nobody). Not counted here: pass-through
    /// listeners count what they carry out with [`Decided::count`], and a refused connection
    /// (bad PROXY header, failed handshake, over a cap) is recorded but is neither a request nor a
    /// pass-through connection.
    pub fn new(ctx: &'s ListenerCtx, state: &'s RuntimeState, client: SocketAddr) -> Self {
        let obs = state.intel.observe(client_addr::normalize(client.ip()));
        let now = jiff::Timestamp::now();
        let bound = ctx.shared.bindings.lookup(obs.ip, now);
        let mode = ctx.cfg.mode;
        let answer = match bound.as_slice() {
            [] => decide(state, None, &obs, Question::anonymous(mode)),
            [one] => decide(
                state,
                Some(&*ctx.shared.history),
                &obs,
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
                    &obs,
                    Question {
                        wire,
                        ..Question::anonymous(mode)
                    },
                )
            }
        };
        Decided {
            ctx,
            state,
            obs,
            decision: answer.decision,
            client_port: client.port(),
            user: answer.user,
        }
    }

    /// Counts a pass-through connection (`tcp`) or UDP flow (`udp`) in `/metrics`.
    pub fn count(&self, transport: &'static str) {
        let stats = &self.ctx.shared.auditor.stats;
        stats.count_connection(transport, self.decision.action);
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
            identity: match (&facts.user, &self.user) {
                (None, Some(_)) => Some(IdentityOut {
                    source: Some("address_binding"),
                    verified: false,
                    ..IdentityOut::default()
                }),
                _ => None,
            },
            user: facts.user.or_else(|| self.user.clone()),
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
            self.state.intel.versions(),
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

/// What an open tunnel or flow is re-decided on: its client address, the facts its events
/// repeat (where the address came from, the transport), and the strictest action recorded for
/// it so far.
pub struct Watch {
    /// The client address decided on.
    pub client: SocketAddr,
    /// Address source and transport, for the re-decision's event.
    pub facts: ConnFacts,
    /// The strictest action recorded so far (the connect decision's, at first).
    pub action: Action,
}

/// Continuous verification: each time verdicts may have changed (a reload brought new data or
/// policy, a login bound the address), the open tunnel or flow is decided again on its client
/// address. A verdict stricter than any recorded for it is recorded (monitor mode keeps the
/// tunnel); a block, which only enforce mode gives, returns the decision, and the caller ends the
/// tunnel. Never returns otherwise.
pub async fn redecide(ctx: &ListenerCtx, mut watch: Watch) -> Decision {
    let mut changed = ctx.shared.verdicts_changed.subscribe();
    let mut seen = changed.borrow_and_update().0;
    let mine = EgressKey::of(watch.client.ip());
    while changed.changed().await.is_ok() {
        let (generation, only) = *changed.borrow_and_update();
        // Changes seen one by one may be skipped when they concern another address; several
        // folded into one (the watch keeps the latest) may hide a reload: re-decide then.
        let single = generation == seen.wrapping_add(1);
        seen = generation;
        if single && only.is_some_and(|ip| EgressKey::of(ip) != mine) {
            continue;
        }
        let state = ctx.shared.state.load_full();
        let conn = Decided::new(ctx, &state, watch.client);
        let action = conn.decision().action;
        if action > watch.action {
            watch.action = action;
            conn.record(watch.facts.clone());
            if conn.blocked() {
                return conn.decision().clone();
            }
        }
    }
    std::future::pending().await
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
