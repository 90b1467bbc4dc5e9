//! One request, top to bottom: client address -> observe -> decide -> act -> record.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::{ListenerCtx, refuse, whoami};
use crate::audit::{Event, RequestFacts};
use crate::client_addr::{self, AddrSource, ClientAddr};
use crate::config::Upstream;
use crate::forwarding;
use crate::intel::Observation;
use crate::policy::{Action, Decision};

/// Response bodies: the upstream's, streamed, or one we generate.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Headers locgate sends to the upstream; a client must never be able to set them itself.
pub static ANNOTATION_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-locgate-verdict"),
    HeaderName::from_static("x-locgate-country"),
    HeaderName::from_static("x-locgate-reasons"),
];

/// Handles one request. Never fails: every problem becomes a status code and an event.
pub async fn handle(
    ctx: Arc<ListenerCtx>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let state = ctx.shared.state.load_full();
    let client =
        client_addr::resolve_with(peer, &ctx.trusted, req.headers(), ctx.cfg.client_ip_header);
    let obs = state.intel.observe(client.ip);
    let decision = state.policy.evaluate(&obs, ctx.cfg.mode);
    ctx.shared.auditor.stats.count(decision.action);

    let record = |status: StatusCode,
                  id: Option<String>,
                  error: Option<String>,
                  req_line: (&Method, &str)| {
        let Some(suppressed) = must_record(&ctx, &obs, &decision, error.is_some()) else {
            return;
        };
        let facts = facts(&ctx, peer, &client, req_line, status, started, error);
        let id = id.unwrap_or_else(|| ctx.shared.auditor.next_id());
        let mut event = Event::build(
            id,
            crate::audit::timestamp_now(),
            &obs,
            &decision,
            facts,
            state.intel.versions(),
        );
        event.locgate.suppressed_allows = suppressed;
        ctx.shared.auditor.record(event);
    };

    if req.method() == Method::CONNECT {
        let resp = refuse::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported by a reverse proxy\n",
        );
        record(
            resp.status(),
            None,
            Some("CONNECT refused".into()),
            (req.method(), ""),
        );
        return Ok(resp);
    }

    if decision.action == Action::Block {
        let id = ctx.shared.auditor.next_id();
        let resp = refuse::forbidden(&id, req.headers());
        record(
            resp.status(),
            Some(id),
            None,
            (req.method(), req.uri().path()),
        );
        return Ok(resp);
    }

    let upstream = match (&ctx.cfg.upstream, &ctx.upstream) {
        (Upstream::Http(_), Some(up)) => up,
        _ => {
            let resp = whoami::page(&ctx, &client, &obs, &decision, &state.intel, req.headers());
            record(resp.status(), None, None, (req.method(), req.uri().path()));
            return Ok(resp);
        }
    };

    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // HTTP/1.0 has no upgrade mechanism (RFC 9110 §7.8): its Upgrade header is ignored.
    let upgrade =
        req.version() == http::Version::HTTP_11 && forwarding::is_upgrade_request(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    parts.uri = match upstream.uri_for(&parts.uri) {
        Ok(uri) => uri,
        Err(e) => {
            let resp = refuse::plain(StatusCode::BAD_REQUEST, "bad request target\n");
            record(
                resp.status(),
                None,
                Some(format!("bad request target: {e}")),
                (&method, &path),
            );
            return Ok(resp);
        }
    };
    parts.version = http::Version::HTTP_11;
    forwarding::strip_hop_by_hop(&mut parts.headers, upgrade);
    forwarding::strip_named(&mut parts.headers, &ANNOTATION_HEADERS);
    forwarding::add_forwarding_headers(
        &mut parts.headers,
        peer,
        ctx.trusted.contains(peer.ip()),
        "http",
    );
    if ctx.cfg.annotate {
        annotate(&mut parts.headers, &obs, &decision);
    }

    let sent = tokio::time::timeout(
        ctx.cfg.response_timeout,
        upstream.client.request(Request::from_parts(parts, body)),
    )
    .await;
    let mut resp = match sent {
        Err(_) => {
            ctx.shared
                .auditor
                .stats
                .upstream_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let id = ctx.shared.auditor.next_id();
            let resp = refuse::upstream_error(StatusCode::GATEWAY_TIMEOUT, &id);
            let error = format!(
                "upstream {} sent no response within {:?}",
                upstream.authority, ctx.cfg.response_timeout
            );
            record(resp.status(), Some(id), Some(error), (&method, &path));
            return Ok(resp);
        }
        Ok(Err(e)) => {
            ctx.shared
                .auditor
                .stats
                .upstream_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let id = ctx.shared.auditor.next_id();
            let resp = refuse::upstream_error(StatusCode::BAD_GATEWAY, &id);
            let error = format!(
                "upstream {} failed: {}",
                upstream.authority,
                error_chain(&e)
            );
            record(resp.status(), Some(id), Some(error), (&method, &path));
            return Ok(resp);
        }
        Ok(Ok(resp)) => resp,
    };

    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(client_upgrade)) = (switching, client_upgrade) {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        ctx.tasks.spawn(tunnel(client_upgrade, upstream_upgrade));
    }
    forwarding::strip_hop_by_hop(resp.headers_mut(), switching);
    record(resp.status(), None, None, (&method, &path));
    Ok(resp.map(Either::Left))
}

/// Copies bytes both ways between an upgraded client and upstream (WebSocket) until either closes.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "upgraded tunnel ended with an error");
    }
}

fn annotate(headers: &mut http::HeaderMap, obs: &Observation<'_>, decision: &Decision) {
    headers.insert(
        ANNOTATION_HEADERS[0].clone(),
        HeaderValue::from_static(decision.verdict.as_str()),
    );
    if let Some(cc) = obs.country
        && let Ok(v) = HeaderValue::from_str(cc.as_str())
    {
        headers.insert(ANNOTATION_HEADERS[1].clone(), v);
    }
    if !decision.reasons.is_empty()
        && let Ok(v) = HeaderValue::from_str(&decision.codes_csv())
    {
        headers.insert(ANNOTATION_HEADERS[2].clone(), v);
    }
}

fn facts(
    ctx: &ListenerCtx,
    peer: SocketAddr,
    client: &ClientAddr,
    (method, path): (&Method, &str),
    status: StatusCode,
    started: Instant,
    error: Option<String>,
) -> RequestFacts {
    RequestFacts {
        listener: ctx.cfg.name.clone(),
        port: client.port,
        peer_ip: (client.source != AddrSource::Peer).then_some(peer.ip()),
        client_addr_source: client.source.as_str(),
        http: Some((method.as_str().to_owned(), path.to_owned(), status.as_u16())),
        user: None,
        duration_ns: Some(started.elapsed().as_nanos() as u64),
        error,
    }
}

/// Whether an event must be written: always for flags, blocks and errors; for allows, once per
/// client per interval. `Some(n)` carries how many allows were folded into this one.
fn must_record(
    ctx: &ListenerCtx,
    obs: &Observation<'_>,
    decision: &Decision,
    failed: bool,
) -> Option<Option<u64>> {
    if decision.action != Action::Allow || failed {
        return Some(None);
    }
    let n = ctx
        .shared
        .auditor
        .throttle
        .admit(obs.ip, None, Instant::now())?;
    Some((n > 0).then_some(n))
}

/// Records a connection that failed at the HTTP layer (malformed request, headers too large,
/// client too slow). hyper has already answered 400/431 where a response was possible.
pub fn connection_error(ctx: &ListenerCtx, peer: SocketAddr, err: &hyper::Error) {
    let status = if err.is_parse_too_large() {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    } else if err.is_parse() || err.is_parse_status() {
        StatusCode::BAD_REQUEST
    } else if err.is_timeout() {
        StatusCode::REQUEST_TIMEOUT
    } else {
        // Client went away mid-request and similar: nothing to tell anyone.
        tracing::debug!(%peer, error = %err, "connection ended with an error");
        return;
    };
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
        error: Some(format!("malformed or incomplete request: {err}")),
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

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
