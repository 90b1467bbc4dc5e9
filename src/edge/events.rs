//! Connection-level decisions and events: TCP pass-through connections, UDP flows, and
//! connections refused before any request (PROXY header, TLS handshake, connection caps).
//!
//! They carry the same schema as request events (no `http.*`); clean allows are throttled per
//! client like request allows; flags, blocks and errors are always written.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::context::ListenerCtx;
use super::tunnel::Tunnel;
use crate::audit::{Event, RequestFacts, TlsOut};
use crate::client_addr::{self, AddrSource};
use crate::decide::{Question, decide};
use crate::intel::Observation;
use crate::policy::{Action, Decision};
use crate::state::RuntimeState;

/// What a connection-level event says besides the decision.
#[derive(Debug, Default)]
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
}

/// Observes and decides a connection on its client address through the one decision
/// ([`crate::decide`]), with the listener's mode. No identity reaches layer 4 yet, so no
/// history is read. Not counted here: pass-through listeners count what they carry out with
/// [`crate::audit::Stats::count_connection`], and a refused connection (bad PROXY header,
/// failed handshake, over a cap) is recorded but is neither a request nor a pass-through
/// connection.
pub fn decide_connection<'s>(
    ctx: &ListenerCtx,
    state: &'s RuntimeState,
    client: IpAddr,
) -> (Observation<'s>, Decision) {
    let obs = state.intel.observe(client_addr::normalize(client));
    let answer = decide(state, None, &obs, Question::anonymous(ctx.cfg.mode));
    (obs, answer.decision)
}

/// Records a connection-level event. Clean allows are throttled per client.
pub fn record_connection(
    ctx: &ListenerCtx,
    state: &RuntimeState,
    obs: &Observation<'_>,
    decision: &Decision,
    client_port: Option<u16>,
    facts: ConnFacts,
) {
    let Some(suppressed) = admit_connection(ctx, obs, decision, &facts) else {
        return;
    };
    let mut event = connection_event(ctx, state, obs, decision, client_port, facts);
    event.locgate.suppressed_allows = suppressed;
    ctx.shared.auditor.record(event);
}

/// Records the connect event of a pass-through tunnel about to relay (throttled like
/// [`record_connection`]) and keeps what its close event needs. The close event is written
/// whatever the throttle said, so no tunnel's duration and bytes are lost.
pub fn open_tunnel(
    ctx: &ListenerCtx,
    state: &RuntimeState,
    obs: &Observation<'_>,
    decision: &Decision,
    client_port: Option<u16>,
    facts: ConnFacts,
    upstream: String,
) -> Tunnel {
    let admitted = admit_connection(ctx, obs, decision, &facts);
    let mut event = connection_event(ctx, state, obs, decision, client_port, facts);
    let start_id = match admitted {
        Some(suppressed) => {
            event.locgate.suppressed_allows = suppressed;
            let id = event.event.id.clone();
            ctx.shared.auditor.record(event.clone());
            event.locgate.suppressed_allows = None;
            Some(id)
        }
        None => None,
    };
    Tunnel::new(event, start_id, upstream)
}

/// The allow throttle for a connection event: `None` when it is folded away, else how many
/// allows were folded into it.
fn admit_connection(
    ctx: &ListenerCtx,
    obs: &Observation<'_>,
    decision: &Decision,
    facts: &ConnFacts,
) -> Option<Option<u64>> {
    if decision.action == Action::Allow
        && decision.verdict == Action::Allow
        && facts.error.is_none()
    {
        let n = ctx
            .shared
            .auditor
            .throttle
            .admit(obs.ip, None, Instant::now())?;
        return Some((n > 0).then_some(n));
    }
    Some(None)
}

/// A connection event (no `http.*`) with a fresh id.
fn connection_event(
    ctx: &ListenerCtx,
    state: &RuntimeState,
    obs: &Observation<'_>,
    decision: &Decision,
    client_port: Option<u16>,
    facts: ConnFacts,
) -> Event {
    let request = RequestFacts {
        listener: ctx.cfg.name.clone(),
        port: client_port,
        peer_ip: facts.peer_ip,
        client_addr_source: if facts.source.is_empty() {
            AddrSource::Peer.as_str()
        } else {
            facts.source
        },
        http: None,
        user: facts.user,
        duration_ns: None,
        error: facts.error,
        identity: None,
        network: None,
    };
    let mut event = Event::build(
        ctx.shared.auditor.next_id(),
        crate::audit::timestamp_now(),
        obs,
        decision,
        request,
        state.intel.versions(),
    );
    if !facts.transport.is_empty() {
        event.network.transport = facts.transport;
    }
    event.tls = facts.tls;
    event
}

/// Records a connection refused before any decision could matter (PROXY header missing or from
/// an untrusted peer, TLS handshake failure, connection cap): decided on `client` for context.
pub fn record_refused_connection(ctx: &ListenerCtx, client: SocketAddr, error: String) {
    let state = ctx.shared.state.load();
    let (obs, decision) = decide_connection(ctx, &state, client.ip());
    record_connection(
        ctx,
        &state,
        &obs,
        &decision,
        Some(client.port()),
        ConnFacts {
            transport: "tcp",
            error: Some(error),
            ..ConnFacts::default()
        },
    );
}
