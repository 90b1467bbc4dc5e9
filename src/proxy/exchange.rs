//! What one request knows once it is decided, and how it is recorded.
//!
//! Both the HTTP/1 engine and the HTTP/2 front end go through [`Exchange::begin`] (client
//! address -> observe -> decide) and [`Exchange::record`], so the decision and the event schema
//! cannot drift between protocols.

use std::net::SocketAddr;
use std::time::Instant;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::ListenerCtx;
use crate::audit::{Event, IdentityOut, NetworkOut, RequestFacts};
use crate::client_addr::{self, AddrSource, ClientAddr};
use crate::identity::{FormRule, Identity, IdentitySource, SessionEntry};
use crate::intel::Observation;
use crate::policy::session::{LoginPlace, session_reason};
use crate::policy::wire::{self, WireSignals};
use crate::policy::{Action, Decision};
use crate::state::RuntimeState;

/// Headers locgate sends to the upstream; a client must never be able to set them itself.
pub static ANNOTATION_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-locgate-verdict"),
    HeaderName::from_static("x-locgate-country"),
    HeaderName::from_static("x-locgate-reasons"),
];

/// What was learned about who is behind a request, before deciding.
#[derive(Debug, Default)]
pub struct Who {
    /// The identity found, if any.
    pub identity: Option<Identity>,
    /// Why sources failed (for the event).
    pub problems: Vec<String>,
    /// The session the identity came from, when it came from a session cookie.
    pub session: Option<SessionEntry>,
}

impl Who {
    /// Who the request's head names, for every front end: the connection's client certificate
    /// (it wins outright), then the header sources in configuration order, then a session
    /// cookie. A login form body is read afterwards, by the front end ([`login_form`]).
    pub fn from_head(
        ctx: &ListenerCtx,
        meta: &ConnMeta,
        headers: &HeaderMap,
        peer_trusted: bool,
    ) -> Who {
        let mut who = meta.who();
        if who.identity.is_some() || (ctx.cfg.identity.is_empty() && ctx.sessions.is_none()) {
            return who;
        }
        let now = jiff::Timestamp::now();
        let found = ctx.cfg.identity.from_headers(headers, peer_trusted, now);
        who.identity = found.identity;
        who.problems.extend(found.problems);
        if who.identity.is_none()
            && let Some(store) = &ctx.sessions
            && let Some((identity, entry)) = store.identify(headers, now)
        {
            who.identity = Some(identity);
            who.session = Some(entry);
        }
        who
    }

    /// Reads the user name from a login form body (all of it, at most the rule's
    /// [`FormRule::max_body`] bytes), as the request's `Content-Type` says to parse it.
    pub fn read_login_form(&mut self, rule: &FormRule, headers: &HeaderMap, body: &[u8]) {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let found = rule.extract(content_type, body);
        self.identity = found.identity;
        self.problems.extend(found.problems);
    }
}

/// The login form whose body must be read before deciding: the identity is still unknown and
/// the request is a POST to a configured login path (the target's query is not compared).
pub fn login_form<'c>(
    ctx: &'c ListenerCtx,
    who: &Who,
    method: &Method,
    target: &[u8],
) -> Option<&'c FormRule> {
    if who.identity.is_some() || method != Method::POST {
        return None;
    }
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    std::str::from_utf8(path)
        .ok()
        .and_then(|p| ctx.cfg.identity.form_rule(method, p))
}

/// The answer to a login form body over its rule's limit (413), and the event's error.
pub fn login_form_too_large(limit: usize) -> (super::refuse::Reply, String) {
    (
        super::refuse::plain(StatusCode::PAYLOAD_TOO_LARGE, "login form body too large\n"),
        format!("login form body larger than {limit} bytes"),
    )
}

/// What the connection layer learned before the first request (TLS facts, the client
/// certificate's identity). Empty, and free, on plain HTTP connections.
#[derive(Debug, Default, Clone)]
pub struct ConnMeta {
    /// Set on TLS connections.
    pub tls: Option<std::sync::Arc<TlsInfo>>,
    /// The load balancer that sent a PROXY header naming the client (the socket peer).
    pub proxied_by: Option<std::net::IpAddr>,
    /// The client's own TCP socket, for the kernel's measurements (`TCP_INFO`); absent when the
    /// socket peer is not the client (a PROXY-protocol balancer).
    pub fd: Option<std::os::fd::RawFd>,
}

impl ConnMeta {
    /// The scheme for `X-Forwarded-Proto`.
    pub fn proto(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// One TLS connection's facts, shared by its requests.
#[derive(Debug, Default)]
pub struct TlsInfo {
    /// For the event's `tls.*`.
    pub out: crate::audit::TlsOut,
    /// The verified client certificate's identity (mTLS).
    pub identity: Option<Identity>,
    /// Why the client certificate gave no identity.
    pub problems: Vec<String>,
}

impl ConnMeta {
    /// The identity the connection itself proves (client certificate), as a starting [`Who`].
    pub fn who(&self) -> Who {
        match &self.tls {
            Some(t) => Who {
                identity: t.identity.clone(),
                problems: t.problems.clone(),
                session: None,
            },
            None => Who::default(),
        }
    }
}

/// Home radius used for session comparisons when the employee is unknown.
const DEFAULT_SESSION_RADIUS_KM: f64 = 100.0;

/// Decides one request: global rules, session place, then the person's declaration.
pub fn decide(
    state: &RuntimeState,
    history: &dyn crate::history::HistoryStore,
    obs: &Observation<'_>,
    who: &Who,
    mut extra: Vec<crate::policy::Reason>,
    mode: crate::policy::Mode,
    now: jiff::Timestamp,
) -> (Decision, Option<String>) {
    if let (Some(entry), Some(id)) = (&who.session, &who.identity)
        && id.source == IdentitySource::Session
    {
        let radius = state
            .directory
            .as_ref()
            .and_then(|d| d.get(&id.user))
            .map_or(DEFAULT_SESSION_RADIUS_KM, |e| e.home.radius_km);
        let login = LoginPlace {
            country: entry.place.country,
            location: entry.place.location,
            accuracy_km: entry.place.accuracy_km,
        };
        extra.extend(session_reason(&login, obs, radius, state.session_rule));
    }
    // A session cookie seen somewhere other than its login may be stolen: it still names the
    // person (tightening applies) but no longer unlocks their allowances or exemption.
    let moved = extra
        .iter()
        .any(|r| r.code == crate::policy::ReasonCode::SessionLocationChanged);
    let user = who
        .identity
        .as_ref()
        .map(|i| (i.user.as_str(), i.verified && !moved));
    state.judge_with_history(history, obs, user, extra, mode, now)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The parts of a request the decision reads, whatever protocol carried it.
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    /// Header fields.
    pub headers: &'a HeaderMap,
    /// Method.
    pub method: &'a Method,
    /// Request target as sent.
    pub target: &'a bytes::Bytes,
}

/// One decided request.
pub struct Exchange<'s> {
    /// Listener.
    pub ctx: &'s ListenerCtx,
    /// Socket peer.
    pub peer: SocketAddr,
    /// Resolved client.
    pub client: ClientAddr,
    /// What the data says about the client.
    pub obs: Observation<'s>,
    /// The decision.
    pub decision: Decision,
    /// Request method.
    pub method: Method,
    /// Request target as sent; only its path is recorded (queries carry tokens).
    pub target: bytes::Bytes,
    /// When the request head was complete.
    pub started: Instant,
    /// The state snapshot the request was decided on.
    pub state: &'s RuntimeState,
    /// Who: identity, problems, session.
    pub who: Who,
    /// The employee id (directory id when known, else the presented name).
    pub user: Option<String>,
    /// What the kernel measured of the connection, for the event.
    pub network: Option<NetworkOut>,
    /// TLS facts of the connection, for the event (set by TLS front ends after `begin`).
    pub tls: Option<std::sync::Arc<TlsInfo>>,
    /// The balancer whose PROXY header named `peer` (set by front ends after `begin`).
    pub proxied_by: Option<std::net::IpAddr>,
    /// Why the decision had less history than configured, for the event.
    pub history_problem: Option<String>,
}

impl<'s> Exchange<'s> {
    /// Resolves the client, observes and decides.
    pub fn begin(
        ctx: &'s ListenerCtx,
        state: &'s RuntimeState,
        peer: SocketAddr,
        req: RequestView<'_>,
        started: Instant,
        who: Who,
        wire: Option<WireSignals>,
    ) -> Self {
        let RequestView {
            headers,
            method,
            target,
        } = req;
        let client =
            client_addr::resolve_with(peer, &ctx.trusted, headers, ctx.cfg.client_ip_header);
        let lookup = Instant::now();
        let obs = state.intel.observe(client.ip);
        ctx.shared
            .auditor
            .stats
            .lookup_latency
            .observe(lookup.elapsed());
        // Without identities or a directory, the global rules are the whole decision (the hot
        // path of a plain deployment stays a few bit tests).
        // The wire signals count only when the socket peer is the client itself.
        let mut wire_reasons = Vec::new();
        let mut network = None;
        if let (Some(rules), Some(sig), AddrSource::Peer) = (&state.wire_rules, wire, client.source)
        {
            let (latency, floor) = wire::latency(rules, &sig, &obs);
            wire_reasons.extend(latency);
            wire_reasons.extend(wire::tunnel_mss(rules, &sig, client.ip.is_ipv6()));
            network = Some(NetworkOut {
                rtt_ms: round1(sig.min_rtt_ms.unwrap_or(sig.rtt_ms)),
                rtt_floor_ms: floor.map(round1),
                mss: sig.mss,
            });
        }
        // Without identities, a directory or wire signals, the global rules are the whole
        // decision (the hot path of a plain deployment stays a few bit tests).
        let plain = ctx.cfg.identity.is_empty()
            && ctx.sessions.is_none()
            && state.directory.is_none()
            && who.identity.is_none();
        let mut history_problem = None;
        let (decision, user) = if plain && wire_reasons.is_empty() {
            (state.policy.evaluate(&obs, ctx.cfg.mode), None)
        } else {
            history_problem = ctx.shared.history_problem();
            let history = &*ctx.shared.history;
            decide(
                state,
                history,
                &obs,
                &who,
                wire_reasons,
                ctx.cfg.mode,
                jiff::Timestamp::now(),
            )
        };
        ctx.shared.auditor.stats.count(decision.action);
        ctx.shared
            .auditor
            .stats
            .decision_latency
            .observe(started.elapsed());
        Exchange {
            ctx,
            peer,
            client,
            obs,
            decision,
            method: method.clone(),
            target: target.clone(),
            started,
            state,
            who,
            user,
            network,
            tls: None,
            proxied_by: None,
            history_problem,
        }
    }

    /// Writes the event if it must be written: always for flags, blocks and errors; for allows,
    /// once per client per interval (with a count of those folded into it).
    pub fn record(&self, status: StatusCode, id: Option<String>, error: Option<String>) {
        let auditor = &self.ctx.shared.auditor;
        let mut suppressed = None;
        // Only a clean allow is throttled: an exempt employee's allow (verdict stronger than the
        // action) is evidence and is always written.
        if self.decision.action == Action::Allow
            && self.decision.verdict == Action::Allow
            && error.is_none()
        {
            match auditor
                .throttle
                .admit(self.obs.ip, self.user.as_deref(), Instant::now())
            {
                None => return,
                Some(n) => suppressed = (n > 0).then_some(n),
            }
        }
        let facts = RequestFacts {
            listener: self.ctx.cfg.name.clone(),
            port: self.client.port,
            peer_ip: if self.client.source != AddrSource::Peer {
                Some(self.peer.ip())
            } else {
                self.proxied_by
            },
            client_addr_source: match self.proxied_by {
                Some(_) if self.client.source == AddrSource::Peer => "proxy_protocol",
                _ => self.client.source.as_str(),
            },
            http: Some((
                self.method.as_str().to_owned(),
                path_of(&self.target),
                status.as_u16(),
            )),
            user: self.user.clone(),
            duration_ns: Some(self.started.elapsed().as_nanos() as u64),
            error,
            identity: self.identity_out(),
            network: self.network,
        };
        let id = id.unwrap_or_else(|| auditor.next_id());
        let mut event = Event::build(
            id,
            crate::audit::timestamp_now(),
            &self.obs,
            &self.decision,
            facts,
            self.state.intel.versions(),
        );
        event.locgate.suppressed_allows = suppressed;
        event.locgate.history = self
            .history_problem
            .clone()
            .map(|problem| crate::audit::event::HistoryOut { problem });
        if let Some(t) = &self.tls {
            event.tls = Some(t.out.clone());
        }
        auditor.record(event);
    }

    fn identity_out(&self) -> Option<IdentityOut> {
        if self.who.identity.is_none() && self.who.problems.is_empty() {
            return None;
        }
        let presented = self
            .who
            .identity
            .as_ref()
            .map(|i| i.user.as_str())
            .filter(|p| Some(*p) != self.user.as_deref())
            .map(str::to_owned);
        Some(IdentityOut {
            source: self.who.identity.as_ref().map(|i| i.source.as_str()),
            verified: self.who.identity.as_ref().is_some_and(|i| i.verified),
            presented,
            problems: self.who.problems.clone(),
        })
    }

    /// An upstream failure, the same for every front end: counted, recorded with a fresh
    /// reference id, and answered 502/504 with that id.
    pub fn upstream_failed(&self, status: StatusCode, error: String) -> super::refuse::Reply {
        let auditor = &self.ctx.shared.auditor;
        auditor
            .stats
            .upstream_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = auditor.next_id();
        let reply = super::refuse::upstream_error(status, &id);
        self.record(status, Some(id), Some(error));
        reply
    }

    /// After a login, remembers which employee the session cookie the upstream sets (in the
    /// response's `headers`) belongs to, and where the login came from. A rotated cookie keeps
    /// the original login's place.
    pub fn learn_session(&self, headers: &HeaderMap) {
        let (Some(store), Some(identity)) = (&self.ctx.sessions, &self.who.identity) else {
            return;
        };
        let Some(value) = crate::identity::set_cookie_value(headers, store.cookie_name()) else {
            return;
        };
        let employee = self.user.as_deref().unwrap_or(&identity.user);
        let (place, verified) = match &self.who.session {
            Some(entry) => (entry.place, entry.verified),
            None => (
                crate::identity::SessionPlace {
                    country: self.obs.country,
                    location: self.obs.location,
                    accuracy_km: self.obs.accuracy_km,
                },
                identity.verified,
            ),
        };
        store.learn(value, employee, verified, place, jiff::Timestamp::now());
    }

    /// Adds the `X-Locgate-*` headers for the upstream.
    pub fn annotate(&self, headers: &mut HeaderMap) {
        headers.insert(
            ANNOTATION_HEADERS[0].clone(),
            HeaderValue::from_static(self.decision.verdict.as_str()),
        );
        if let Some(cc) = self.obs.country
            && let Ok(v) = HeaderValue::from_str(cc.as_str())
        {
            headers.insert(ANNOTATION_HEADERS[1].clone(), v);
        }
        if !self.decision.reasons.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.decision.codes_csv())
        {
            headers.insert(ANNOTATION_HEADERS[2].clone(), v);
        }
    }
}

/// The path part of a request target, for events (lossy for non-UTF-8).
fn path_of(target: &[u8]) -> String {
    let end = target
        .iter()
        .position(|b| *b == b'?')
        .unwrap_or(target.len());
    String::from_utf8_lossy(&target[..end]).into_owned()
}

/// Records a request that failed before it could be decided (malformed head, too large, too
/// slow): observed and decided on the socket peer alone.
pub fn record_protocol_error(
    ctx: &ListenerCtx,
    peer: SocketAddr,
    status: StatusCode,
    error: String,
) {
    ctx.shared
        .auditor
        .stats
        .bad_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let state = ctx.shared.state.load();
    let ip = client_addr::normalize(peer.ip());
    let obs = state.intel.observe(ip);
    let decision = state.policy.evaluate(&obs, ctx.cfg.mode);
    let facts = RequestFacts {
        listener: ctx.cfg.name.clone(),
        port: Some(peer.port()),
        peer_ip: None,
        client_addr_source: AddrSource::Peer.as_str(),
        http: Some((String::new(), String::new(), status.as_u16())),
        user: None,
        duration_ns: None,
        error: Some(error),
        identity: None,
        network: None,
    };
    let event = Event::build(
        ctx.shared.auditor.next_id(),
        crate::audit::timestamp_now(),
        &obs,
        &decision,
        facts,
        state.intel.versions(),
    );
    ctx.shared.auditor.record(event);
}

/// What a connection-level event (TCP pass-through, UDP flow, PROXY header refusal, TLS
/// handshake failure) says besides the decision.
#[derive(Debug, Default)]
pub struct ConnFacts {
    /// The socket peer, when the client address came from a PROXY header.
    pub peer_ip: Option<std::net::IpAddr>,
    /// `peer` or `proxy_protocol`.
    pub source: &'static str,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// TLS facts (SNI peeked on pass-through).
    pub tls: Option<crate::audit::TlsOut>,
    /// What went wrong, if anything (always written).
    pub error: Option<String>,
    /// The identity the connection proved, when any.
    pub user: Option<String>,
}

/// Observes and decides a connection on its client address alone (layer 4: no headers, no
/// identity), with the listener's mode. Not counted here: pass-through listeners count what
/// they carry out with [`crate::audit::Stats::count_connection`], and a refused connection
/// (bad PROXY header, failed handshake, over a cap) is recorded but is neither a request nor
/// a pass-through connection.
pub fn decide_connection<'s>(
    ctx: &ListenerCtx,
    state: &'s RuntimeState,
    client: std::net::IpAddr,
) -> (Observation<'s>, Decision) {
    let obs = state.intel.observe(client_addr::normalize(client));
    let decision = state.policy.evaluate(&obs, ctx.cfg.mode);
    (obs, decision)
}

/// Records a connection-level event with the same schema as request events (no `http.*`).
/// Clean allows are throttled per client like request allows; flags, blocks and errors are
/// always written.
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
) -> crate::listen::tunnel::Tunnel {
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
    crate::listen::tunnel::Tunnel::new(event, start_id, upstream)
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
pub fn record_refused_connection(
    ctx: &ListenerCtx,
    client: SocketAddr,
    transport: &'static str,
    error: String,
) {
    let state = ctx.shared.state.load();
    let (obs, decision) = decide_connection(ctx, &state, client.ip());
    record_connection(
        ctx,
        &state,
        &obs,
        &decision,
        Some(client.port()),
        ConnFacts {
            transport,
            error: Some(error),
            ..ConnFacts::default()
        },
    );
}
