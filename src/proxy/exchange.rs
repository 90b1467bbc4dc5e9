//! The HTTP exchange spine: the steps every request takes, whichever engine carries it.
//!
//! Both engines (`h1` on locgate's own HTTP/1.1 code, `h2` on hyper) drive the same steps, in
//! this order; only reading and writing bytes is theirs:
//!
//! 1. [`identify_head`]: client certificate, header sources, session cookie; then, for a login
//!    POST ([`login_form`]), the engine reads the body and calls [`Who::read_login_form`];
//! 2. [`Exchange::begin`]: client address, observation, wire signals, the one decision
//!    ([`crate::decide`]);
//! 3. [`Exchange::route`]: refuse (405, 403), answer (`builtin:whoami`) or forward;
//! 4. [`Exchange::prepare_upstream_head`]: header hygiene, forwarding headers, identity headers
//!    stripped, annotations;
//! 5. [`Exchange::responded`] (the upstream's head: learn the session cookie, record) or
//!    [`Exchange::fail`] (one [`Failure`] table: status, counter, event).
//!
//! An [`Exchange`] records its event exactly once: the step that ends it records, and if the
//! engine drops it without an ending (a client gone mid-upload, a failed `100 Continue`, an
//! HTTP/2 stream reset) the drop records it as a client that went away.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::failure::{Blame, CLIENT_CLOSED, Failure};
use super::headers;
use super::refuse::{self, Reply};
use crate::audit::{Event, IdentityOut, NetworkOut, RequestFacts};
use crate::client_addr::{self, AddrSource, ClientAddr};
use crate::config::Upstream;
use crate::decide::{Claim, Question, decide};
use crate::edge::context::{ConnMeta, ListenerCtx, PeerTrust, TlsInfo};
use crate::identity::{FormRule, Who};
use crate::intel::Observation;
use crate::policy::wire::{self, WireSignals};
use crate::policy::{Action, Decision, Reason};
use crate::state::RuntimeState;

/// Headers locgate sends to the upstream; a client must never be able to set them itself.
pub static ANNOTATION_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-locgate-verdict"),
    HeaderName::from_static("x-locgate-country"),
    HeaderName::from_static("x-locgate-reasons"),
];

/// Who the request's head names: the connection's client certificate (it wins), then the
/// header sources in configuration order, then the session cookie. Every source is read and
/// every identity kept as a claim ([`Who::claims`]), so one cannot hide another
/// ([`Who::settle`] compares them before deciding); a session cookie sent with different values
/// is a conflict. A login form body is read afterwards, by the engine ([`login_form`]).
/// `identity_trusted`: the peer is an identity proxy ([`ListenerCtx::trust`]), so a `header`
/// source is believed.
pub async fn identify_head(
    ctx: &ListenerCtx,
    meta: &ConnMeta,
    headers: &HeaderMap,
    identity_trusted: bool,
) -> Who {
    let mut who = meta.who();
    if !ctx.identifies() {
        return who;
    }
    ctx.cfg.identity.refresh_keys_for(headers).await;
    let now = jiff::Timestamp::now();
    let found = ctx
        .cfg
        .identity
        .from_headers(headers, identity_trusted, now);
    who.problems.extend(found.problems);
    who.claims.extend(found.identity.iter().cloned());
    who.claims.extend(found.others);
    if who.identity.is_none() {
        who.identity = found.identity;
    }
    if let Some(store) = &ctx.sessions {
        let sessions = store.identify(headers, now);
        if sessions.differing {
            who.conflict(format!(
                "cookie {} sent with different values",
                store.cookie_name()
            ));
        }
        for (identity, entry) in sessions.sessions {
            if who.identity.is_none() {
                who.identity = Some(identity.clone());
                who.session = Some(entry);
            }
            who.claims.push(identity);
        }
    }
    who
}

/// The login form whose body must be read before deciding: every POST to a configured login
/// path, whatever the spelling of its target ([`crate::identity::login_path`]) and whatever
/// identity the head already named (a new login may name someone else). Not a POST: `None` at
/// once, so other requests pay nothing.
pub fn login_form<'c>(
    ctx: &'c ListenerCtx,
    _who: &Who,
    method: &Method,
    target: &[u8],
) -> Option<&'c FormRule> {
    ctx.cfg.identity.form_rule(method, target)
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

/// What the engine does with a decided request.
#[derive(Debug)]
pub enum Route {
    /// Send locgate's own answer (already recorded): 405, the block page, `builtin:whoami`.
    Reply(Reply),
    /// Forward to the upstream.
    Forward,
}

/// One decided request, until its event is written.
pub struct Exchange<'s> {
    /// Listener.
    pub ctx: &'s ListenerCtx,
    /// Socket peer.
    pub peer: SocketAddr,
    /// What the peer is believed for: its forwarding headers (`trust.forwarder`, a balancer in
    /// `trusted_proxies`) and its identity headers (`trust.identity`, an `identity_proxies`
    /// auth proxy). Never both by default: see [`ListenerCtx::trust`].
    pub trust: PeerTrust,
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
    /// When it was decided (also the allow throttle's clock: one clock read fewer a request).
    decided_at: Instant,
    /// The state snapshot the request was decided on.
    pub state: &'s RuntimeState,
    /// Who: identity, problems, session.
    pub who: Who,
    /// The employee id (directory id when known, else the presented name).
    pub user: Option<String>,
    /// Whether `user` was vouched for (ECS `user.id`) or only claimed (`user.name`).
    user_verified: bool,
    /// What the kernel measured of the connection, for the event.
    pub network: Option<NetworkOut>,
    /// TLS facts of the connection, for the event.
    pub tls: Option<std::sync::Arc<TlsInfo>>,
    /// The balancer whose PROXY header named `peer`.
    pub proxied_by: Option<std::net::IpAddr>,
    /// Why the decision had less history than configured, for the event.
    pub history_problem: Option<String>,
    /// The resolved client's place under its per-client cap while the request is in flight
    /// (taken only when the client came from a trusted forwarding header: a socket peer is
    /// counted per connection at accept).
    inflight: InFlight,
    /// Set once the event is written (or deliberately folded by the allow throttle).
    recorded: AtomicBool,
}

/// A request's standing under `max_connections_per_client` behind a trusted balancer.
enum InFlight {
    /// Counted at the connection (socket peer or PROXY source), or exempt.
    NotCounted,
    /// Counted; the slot is given back when the exchange is dropped.
    Held {
        /// Dropping it frees the slot.
        _slot: crate::edge::limits::ClientSlot,
    },
    /// The client already had its cap of requests in flight: answered 429.
    OverCap,
}

impl InFlight {
    /// Behind a trusted balancer the socket peer carries many clients and is exempt from the
    /// connection cap, so the resolved client's requests in flight are what is counted.
    fn take(ctx: &ListenerCtx, client: &ClientAddr) -> InFlight {
        if client.source == AddrSource::Peer || ctx.trusted.contains(client.ip) {
            return InFlight::NotCounted;
        }
        match ctx.limits.admit(client.ip) {
            Some(slot) => InFlight::Held { _slot: slot },
            None => InFlight::OverCap,
        }
    }
}

impl<'s> Exchange<'s> {
    /// Resolves the client, observes, reads the wire signals and decides.
    pub fn begin(
        ctx: &'s ListenerCtx,
        state: &'s RuntimeState,
        peer: SocketAddr,
        meta: &ConnMeta,
        req: RequestView<'_>,
        mut who: Who,
        started: Instant,
    ) -> Self {
        let stats = &ctx.shared.auditor.stats;
        let trust = ctx.trust(peer, meta);
        let client = if trust.forwarder {
            client_addr::resolve_with(peer, &ctx.trusted, req.headers, ctx.cfg.client_ip_header)
        } else {
            client_addr::peer_only(peer)
        };
        let inflight = InFlight::take(ctx, &client);
        let lookup = Instant::now();
        let obs = state.intel.observe(client.ip);
        stats.lookup_latency.observe(lookup.elapsed());
        let (wire_reasons, network) = wire_signals(state, meta, &client, &obs);
        // Claims are compared as people: two aliases of one employee are no conflict.
        who.settle(
            |name| match state.directory.as_ref().and_then(|d| d.get(name)) {
                Some(employee) => employee.id.clone(),
                None => name.to_lowercase(),
            },
        );
        // History matters (and its health is worth saying) only where someone can be named.
        let history_problem = (ctx.identifies()
            || state.directory.is_some()
            || who.identity.is_some()
            || !wire_reasons.is_empty())
        .then(|| ctx.shared.history_problem())
        .flatten();
        let answer = decide(
            state,
            Some(&*ctx.shared.history),
            &obs,
            Question {
                claim: Claim::of(&who),
                trouble: who.trouble.as_ref(),
                wire: wire_reasons,
                mode: ctx.cfg.mode,
                at: jiff::Timestamp::now(),
            },
        );
        ctx.counters.count(answer.decision.action);
        // A verified login binds the client address to the employee, so the tunnel that
        // follows (TCP/UDP pass-through from the same address) is judged as them.
        if let (Some(ttl), Some(employee)) = (ctx.cfg.bind_address, &answer.verified_employee) {
            let now = jiff::Timestamp::now();
            let until = now + jiff::SignedDuration::try_from(ttl).unwrap_or_default();
            if ctx.shared.bindings.bind(obs.ip, employee, until, now) {
                ctx.shared.verdicts_may_have_changed(Some(obs.ip));
            }
        }
        let decided_at = Instant::now();
        stats.decision_latency.observe(decided_at - started);
        Exchange {
            ctx,
            peer,
            trust,
            client,
            obs,
            decision: answer.decision,
            method: req.method.clone(),
            target: req.target.clone(),
            started,
            decided_at,
            state,
            who,
            user: answer.user,
            user_verified: answer.user_verified,
            network,
            tls: meta.tls.clone(),
            proxied_by: meta.proxied_by,
            history_problem,
            inflight,
            recorded: AtomicBool::new(false),
        }
    }

    /// Refuse, answer or forward. Refusals and answers are recorded here.
    pub fn route(&self, headers: &HeaderMap) -> Route {
        if matches!(self.inflight, InFlight::OverCap) {
            let cap = self.ctx.cfg.edge.max_connections_per_client;
            if let Some(reply) = self.fail(Failure::ClientOverCap(cap)) {
                return Route::Reply(reply);
            }
        }
        if self.method == Method::CONNECT {
            return match self.fail(Failure::Connect) {
                Some(reply) => Route::Reply(reply),
                None => Route::Forward,
            };
        }
        if self.decision.action == Action::Block {
            let id = self.ctx.shared.auditor.next_id();
            let reply = refuse::forbidden(&id, headers);
            self.record(reply.status.as_u16(), Some(id), None);
            return Route::Reply(reply);
        }
        if matches!(self.ctx.cfg.upstream, Upstream::Whoami) {
            let reply = super::whoami::page(
                self.ctx,
                &self.client,
                &self.obs,
                &self.decision,
                &self.state.intel,
                headers,
            );
            self.record(reply.status.as_u16(), None, None);
            return Route::Reply(reply);
        }
        Route::Forward
    }

    /// Makes a request head fit for the upstream, in the order that keeps every rule: hop-by-hop
    /// fields out (`upgrade` keeps `Upgrade` for a WebSocket); in one scan, every name that is
    /// protected once `_` reads as `-` (`X-Locgate-*`, the identity headers unless the peer is
    /// an identity proxy, any `_` spelling of those and of the forwarding headers, which a
    /// WSGI/CGI upstream would map onto the real names); forwarding headers replaced with what
    /// locgate observed unless the peer is a trusted forwarder (`proto`: the client's scheme);
    /// then the annotations added last so no `Connection:` trick can remove them. The same
    /// code for HTTP/1 and HTTP/2.
    pub fn prepare_upstream_head(
        &self,
        fields: &mut HeaderMap,
        upgrade: bool,
        proto: &'static str,
    ) {
        headers::strip_hop_by_hop(fields, upgrade);
        headers::strip_protected(fields, &self.ctx.identity_headers, !self.trust.identity);
        headers::add_forwarding_headers(fields, self.peer, self.trust.forwarder, proto);
        if self.ctx.cfg.annotate {
            self.annotate(fields);
        }
    }

    /// The upstream's response head arrived (`fields` as the upstream sent them): learns the
    /// session cookie a login sets, and records the exchange with its status.
    pub fn responded(&self, status: StatusCode, fields: &HeaderMap) {
        self.learn_session(fields);
        self.record(status.as_u16(), None, None);
    }

    /// Ends the exchange with `failure`: counted, recorded (unless the event was already written
    /// with the response head), and the reply to send when one can still be sent.
    pub fn fail(&self, failure: Failure) -> Option<Reply> {
        let auditor = &self.ctx.shared.auditor;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        match failure.blame() {
            Blame::Client => auditor.stats.bad_requests.fetch_add(1, relaxed),
            Blame::Upstream => auditor.stats.upstream_errors.fetch_add(1, relaxed),
            Blame::None => 0,
        };
        if !failure.needs_event() {
            tracing::debug!(peer = %self.peer, error = %failure.message(), "exchange ended mid-response");
            return None;
        }
        let id = auditor.next_id();
        let reply = failure.reply(&id);
        self.record(failure.recorded_status(), Some(id), Some(failure.message()));
        reply
    }

    /// Writes the event if it must be written: always for flags, blocks and errors; for allows,
    /// once per client per interval (with a count of those folded into it). Only the first call
    /// counts: an exchange has one event.
    fn record(&self, status: u16, id: Option<String>, error: Option<String>) {
        if self.recorded.swap(true, Ordering::Relaxed) {
            return;
        }
        let auditor = &self.ctx.shared.auditor;
        let mut suppressed = None;
        // Only a clean allow is throttled: an exempt employee's allow (verdict stronger than the
        // action) is evidence and is always written, and so is every request whose identity had
        // a problem (each dodge attempt is its own event).
        if self.decision.is_routine() && error.is_none() && !self.who.has_problems() {
            match auditor
                .throttle
                .admit(self.obs.ip, self.user.as_deref(), self.decided_at)
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
                status,
            )),
            user: self.user.clone(),
            user_verified: self.user_verified,
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
            self.state.intel.shown(),
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

    /// After a login, remembers which employee the session cookie the upstream sets (in the
    /// response's `fields`) belongs to, and where the login came from. A rotated cookie keeps
    /// the original login's place. On a conflict the identity is the new login's, unverified,
    /// with no old session ([`Who::settle`]), so the session is learned as the form's user from
    /// here; an identity in doubt teaches nothing ([`Who::may_learn_session`]).
    fn learn_session(&self, fields: &HeaderMap) {
        let (Some(store), Some(identity)) = (&self.ctx.sessions, &self.who.identity) else {
            return;
        };
        if !self.who.may_learn_session() {
            return;
        }
        let Some(value) = crate::identity::set_cookie_value(fields, store.cookie_name()) else {
            return;
        };
        let employee = self.user.as_deref().unwrap_or(&identity.user);
        let (place, verified) = match &self.who.session {
            Some(entry) => (entry.place, entry.verified && identity.verified),
            None => (
                crate::identity::SessionPlace {
                    country: self.obs.country,
                    location: self.obs.location,
                    accuracy_km: self.obs.accuracy_km,
                },
                identity.verified,
            ),
        };
        store.learn(
            self.client.ip,
            value,
            employee,
            verified,
            place,
            jiff::Timestamp::now(),
        );
    }

    /// Adds the `X-Locgate-*` headers for the upstream.
    fn annotate(&self, fields: &mut HeaderMap) {
        fields.insert(
            ANNOTATION_HEADERS[0].clone(),
            HeaderValue::from_static(self.decision.verdict.as_str()),
        );
        if let Some(cc) = self.obs.country
            && let Ok(v) = HeaderValue::from_str(cc.as_str())
        {
            fields.insert(ANNOTATION_HEADERS[1].clone(), v);
        }
        if !self.decision.reasons.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.decision.codes_csv())
        {
            fields.insert(ANNOTATION_HEADERS[2].clone(), v);
        }
    }
}

impl Drop for Exchange<'_> {
    /// The guard: an exchange the engine abandoned without an ending (the client went away
    /// mid-upload or mid-wait, an HTTP/2 stream was reset) is still recorded, once.
    fn drop(&mut self) {
        if !self.recorded.load(Ordering::Relaxed) {
            self.record(
                CLIENT_CLOSED,
                None,
                Some("client went away before the response".into()),
            );
        }
    }
}

/// The wire reasons (RTT, MSS) and what the event shows of them. They count only when the
/// socket peer is the client itself and the rules want them (one `getsockopt` per request).
fn wire_signals(
    state: &RuntimeState,
    meta: &ConnMeta,
    client: &ClientAddr,
    obs: &Observation<'_>,
) -> (Vec<Reason>, Option<NetworkOut>) {
    let (Some(rules), Some(fd), AddrSource::Peer) = (&state.wire_rules, meta.fd, client.source)
    else {
        return (Vec::new(), None);
    };
    let Some(sig): Option<WireSignals> = crate::edge::tcp_info::read(fd) else {
        return (Vec::new(), None);
    };
    let (latency, floor) = wire::latency(rules, &sig, obs);
    let mut reasons: Vec<Reason> = latency.into_iter().collect();
    reasons.extend(wire::tunnel_mss(rules, &sig, client.ip.is_ipv6()));
    let network = NetworkOut {
        rtt_ms: round1(sig.min_rtt_ms.unwrap_or(sig.rtt_ms)),
        rtt_floor_ms: floor.map(round1),
        mss: sig.mss,
    };
    (reasons, Some(network))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The path part of a request target, for events (lossy for non-UTF-8).
fn path_of(target: &[u8]) -> String {
    let end = target
        .iter()
        .position(|b| *b == b'?')
        .unwrap_or(target.len());
    String::from_utf8_lossy(&target[..end]).into_owned()
}

/// Refuses a request that failed before it could be decided (malformed head, too large, too
/// slow): counted, recorded decided on the socket peer alone, and the reply to send.
pub fn refuse_unreadable(ctx: &ListenerCtx, peer: SocketAddr, failure: &Failure) -> Option<Reply> {
    if failure.blame() == Blame::Client {
        ctx.shared
            .auditor
            .stats
            .bad_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let state = ctx.shared.state.load();
    let ip = client_addr::normalize(peer.ip());
    let obs = state.intel.observe(ip);
    let decision = decide(&state, None, &obs, Question::anonymous(ctx.cfg.mode)).decision;
    let facts = RequestFacts {
        listener: ctx.cfg.name.clone(),
        port: Some(peer.port()),
        peer_ip: None,
        client_addr_source: AddrSource::Peer.as_str(),
        http: Some((String::new(), String::new(), failure.recorded_status())),
        user: None,
        user_verified: false,
        duration_ns: None,
        error: Some(failure.message()),
        identity: None,
        network: None,
    };
    let id = ctx.shared.auditor.next_id();
    let reply = failure.reply(&id);
    let event = Event::build(
        id,
        crate::audit::timestamp_now(),
        &obs,
        &decision,
        facts,
        state.intel.shown(),
    );
    ctx.shared.auditor.record(event);
    reply
}
