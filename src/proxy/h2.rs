//! HTTP/2 to clients (TLS listeners whose client chose `h2` by ALPN).
//!
//! hyper serves the HTTP/2 connection; each stream goes through the same exchange spine as the
//! HTTP/1.1 engine (`super::exchange`: identify, begin, route, prepare, responded or fail), then
//! to the upstream over HTTP/1.1 (hyper client connections, a few kept per client connection).
//! HTTP/1.1 over TLS stays on the faster engine in `h1`; this path only exists for clients that
//! ask for h2. When a client resets a stream, hyper drops its handler: the exchange's guard
//! still records it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::exchange::{Exchange, RequestView, Route, identify_head, login_form};
use super::failure::Failure;
use super::headers;
use super::health;
use super::refuse::{self, Reply};
use super::upstream;
use crate::edge::context::{ConnMeta, ListenerCtx, Origin};
use crate::identity::Who;

type Body = BoxBody<Bytes, hyper::Error>;
/// What goes to the upstream: the client's body streamed, or a login form body read to decide.
type UpBody = Either<Incoming, Full<Bytes>>;

/// Most idle upstream connections kept per client connection.
const POOL_MAX: usize = 8;
/// Concurrent streams per client connection: enough for a browser, bounded for a hostile client.
const MAX_STREAMS: u32 = 128;
/// Login bodies buffered at once per connection: a login page sends one; without this bound a
/// single connection could hold `MAX_STREAMS` bodies of `max_body` each. Further login streams
/// wait (flow control holds their senders back).
const LOGIN_READS: usize = 4;

struct H2Conn {
    ctx: Arc<ListenerCtx>,
    peer: SocketAddr,
    meta: ConnMeta,
    idle: Mutex<Vec<SendRequest<UpBody>>>,
    /// Streams being decided or waiting for the upstream's head.
    active: AtomicUsize,
    /// Milliseconds after `born` when the last request arrived.
    last_request: AtomicU64,
    born: Instant,
    /// Permits to buffer a login body ([`LOGIN_READS`]).
    login_reads: tokio::sync::Semaphore,
}

/// Counts a stream as active while it lives.
struct Active<'a>(&'a AtomicUsize);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one HTTP/2 connection until the client closes it or shutdown is asked for (then
/// GOAWAY: in-flight streams finish, new ones are refused).
pub async fn serve<S>(
    ctx: Arc<ListenerCtx>,
    io: S,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    meta: ConnMeta,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let keepalive = ctx.cfg.keepalive_timeout;
    let max_header = ctx.cfg.max_header_bytes as u32;
    let conn = Arc::new(H2Conn {
        ctx,
        peer,
        meta,
        idle: Mutex::new(Vec::new()),
        active: AtomicUsize::new(0),
        last_request: AtomicU64::new(0),
        born: Instant::now(),
        login_reads: tokio::sync::Semaphore::new(LOGIN_READS),
    });
    let watch = conn.clone();
    let svc = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        // Each stream is handled in a task of its own: when the client resets a stream, hyper
        // drops this future, but the exchange still runs to its end (its body read fails) and
        // records what happened, exactly once.
        // The guard cancels the task's waiting on the upstream when hyper drops this future, so
        // a client resetting streams cannot keep upstream requests running for nobody.
        let gone = tokio_util::sync::CancellationToken::new();
        let guard = gone.clone().drop_guard();
        let handled = conn.ctx.tasks.spawn(conn.clone().handle(req, gone));
        async move {
            let resp = handled.await.unwrap_or_else(|_| {
                reply_response(&refuse::plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error\n",
                ))
            });
            guard.disarm();
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(max_header)
        .keep_alive_interval(Some(keepalive))
        .keep_alive_timeout(std::time::Duration::from_secs(20));
    let served = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(served);
    // hyper's HTTP/2 server has no idle timeout of its own (pings keep a silent connection
    // alive): a connection without a new request for `keepalive_timeout` gets a GOAWAY, which
    // still lets streams in flight (a long download) finish.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1).min(keepalive));
    loop {
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "h2 connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed() => break,
            _ = tick.tick() => {
                let last = std::time::Duration::from_millis(watch.last_request.load(Ordering::Relaxed));
                let idle = watch.born.elapsed().saturating_sub(last);
                if watch.active.load(Ordering::Relaxed) == 0 && idle >= keepalive {
                    break;
                }
            }
        }
    }
    served.as_mut().graceful_shutdown();
    let _ = served.await;
}

/// A login form body as read before deciding.
enum LoginBody {
    /// All of it, within the limit.
    Read(Bytes),
    /// Larger than the limit (by `content-length`, or by what arrived).
    TooLarge,
    /// The client paused longer than `body_read_timeout`.
    Stalled,
    /// The client reset the stream or the connection failed.
    Gone,
}

/// Reads a login form body of at most `max` bytes, allowing pauses of at most `idle`. A
/// `content-length` over the limit is refused before anything is read; without one, reading
/// stops as soon as the limit is passed. Trailers (not part of the body) are not kept.
async fn read_login_body(body: &mut Incoming, max: usize, idle: Duration) -> LoginBody {
    if body.size_hint().lower() > max as u64 {
        return LoginBody::TooLarge;
    }
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return LoginBody::Stalled,
            Ok(None) => return LoginBody::Read(buf.freeze()),
            Ok(Some(Err(_))) => return LoginBody::Gone,
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return LoginBody::TooLarge;
            }
            buf.extend_from_slice(&data);
        }
    }
}

fn reply_response(reply: &Reply) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(reply.body.clone()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = reply.status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

impl H2Conn {
    /// One stream, through the spine: identify (reading a login form body when one is due),
    /// decide, route, forward.
    async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        gone: tokio_util::sync::CancellationToken,
    ) -> Response<Body> {
        self.active.fetch_add(1, Ordering::Relaxed);
        let _active = Active(&self.active);
        self.last_request
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
        let ctx = &*self.ctx;
        let state = ctx.shared.state.load_full();
        let started = Instant::now();
        // HTTP/2 carries the authority as a pseudo-header; HTTP/1.1 upstreams and the identity
        // and policy code expect Host (RFC 9113 §8.3.1).
        if !req.headers().contains_key(header::HOST)
            && let Some(a) = req.uri().authority()
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            req.headers_mut().insert(header::HOST, v);
        }
        let target = Bytes::copy_from_slice(
            req.uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .as_bytes(),
        );
        if let Some(reply) = health::answer(&ctx.cfg, req.method(), &target) {
            return reply_response(&reply);
        }
        let (who, login) = self.identify(&mut req, &target).await;
        let method = req.method().clone();
        let view = RequestView {
            headers: req.headers(),
            method: &method,
            target: &target,
        };
        let ex = Exchange::begin(ctx, &state, self.peer, &self.meta, view, who, started);
        let login_body = match login {
            Ok(body) => body,
            Err(failure) => return respond_failure(&ex, failure),
        };
        if let Route::Reply(reply) = ex.route(req.headers()) {
            return reply_response(&reply);
        }
        let req = match login_body {
            Some(body) => req.map(|_| Either::Right(Full::new(body))),
            None => req.map(Either::Left),
        };
        let forwarded = tokio::select! {
            r = self.forward(&ex, req) => r,
            () = gone.cancelled() => Err(Failure::StreamReset),
        };
        match forwarded {
            Ok(resp) => resp,
            Err(failure) => respond_failure(&ex, failure),
        }
    }

    /// Who is behind the stream: the head's sources, then a login form body, read whole before
    /// deciding (h1 does the same) and forwarded as read (`Ok(Some(body))`). A login body that
    /// cannot be read (stalled, over the limit, stream gone) marks `who` unreadable and is
    /// the `Err` the stream is refused with.
    async fn identify(
        &self,
        req: &mut Request<Incoming>,
        target: &[u8],
    ) -> (Who, Result<Option<Bytes>, Failure>) {
        let ctx = &*self.ctx;
        let trust = ctx.trust(self.peer, &self.meta);
        let mut who = identify_head(ctx, &self.meta, req.headers(), trust.identity).await;
        let Some(rule) = login_form(ctx, &who, req.method(), target) else {
            return (who, Ok(None));
        };
        // The semaphore is never closed, so a permit always comes.
        let _permit = self.login_reads.acquire().await.ok();
        let idle = ctx.cfg.body_read_timeout;
        let read = match read_login_body(req.body_mut(), rule.max_body(), idle).await {
            LoginBody::Read(body) => {
                who.read_login_form(rule, req.headers(), target, &body);
                return (who, Ok(Some(body)));
            }
            LoginBody::TooLarge => Failure::LoginBodyTooLarge(rule.max_body()),
            LoginBody::Stalled => Failure::LoginBodyStalled(idle),
            LoginBody::Gone => Failure::LoginBodyGone,
        };
        // Fail closed: an unreadable login body is recorded as such and never forwarded.
        who.unreadable(format!("form: {}", read.message()));
        (who, Err(read))
    }

    async fn forward(
        &self,
        ex: &Exchange<'_>,
        req: Request<UpBody>,
    ) -> Result<Response<Body>, Failure> {
        let ctx = &*self.ctx;
        let Some(origin) = ctx.origin.as_ref() else {
            return Err(Failure::NoUpstream);
        };
        let (mut parts, body) = req.into_parts();
        let headers = &mut parts.headers;
        // HTTP/2 may split cookies into several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
        if headers.get_all(header::COOKIE).iter().nth(1).is_some() {
            let joined: Vec<&[u8]> = headers
                .get_all(header::COOKIE)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect();
            if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
                headers.insert(header::COOKIE, v);
            }
        }
        ex.prepare_upstream_head(headers, false, self.meta.proto());
        let pq = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = pq
            .parse()
            .map_err(|_| Failure::BadTarget("not a valid path"))?;
        parts.version = http::Version::HTTP_11;
        let up_req = Request::from_parts(parts, body);

        let mut sender = match self.take_idle() {
            Some(s) => s,
            None => self.connect(origin).await?,
        };
        let timeout = ctx.cfg.response_timeout;
        let resp = match tokio::time::timeout(timeout, sender.send_request(up_req)).await {
            Err(_) => {
                return Err(Failure::UpstreamTimeout {
                    origin: origin.addr.clone(),
                    timeout,
                });
            }
            // The client's own body failed (it reset the stream mid-upload): not the upstream's.
            Ok(Err(e)) if client_body_failed(&e) => return Err(Failure::ClientGone),
            Ok(Err(e)) => {
                return Err(Failure::UpstreamBad(format!(
                    "upstream {}: {e}",
                    origin.addr
                )));
            }
            Ok(Ok(r)) => r,
        };
        self.put_idle(sender);
        let (mut parts, body) = resp.into_parts();
        ex.responded(parts.status, &parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, false);
        parts.version = http::Version::HTTP_2;
        Ok(Response::from_parts(parts, body.boxed()))
    }

    fn take_idle(&self) -> Option<SendRequest<UpBody>> {
        let mut idle = self.idle.lock().ok()?;
        let mut busy = Vec::new();
        let mut found = None;
        while let Some(s) = idle.pop() {
            if s.is_closed() {
                continue;
            }
            if s.is_ready() {
                found = Some(s);
                break;
            }
            busy.push(s);
        }
        idle.extend(busy);
        found
    }

    fn put_idle(&self, s: SendRequest<UpBody>) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < POOL_MAX
        {
            idle.push(s);
        }
    }

    async fn connect(&self, origin: &Origin) -> Result<SendRequest<UpBody>, Failure> {
        let tcp = upstream::dial(origin, self.ctx.cfg.connect_timeout).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| Failure::UpstreamBad(format!("upstream {}: {e}", origin.addr)))?;
        self.ctx.tasks.spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// Whether an upstream request failed because the client's body stream did: hyper reports a
/// failing request body as a user error whose source is the body's own error (here the
/// `Incoming` of a reset stream). Other user errors stay upstream failures (502), so nothing
/// the upstream does can be filed as the client going away.
fn client_body_failed(e: &hyper::Error) -> bool {
    e.is_user()
        && std::error::Error::source(e).is_some_and(|s| s.downcast_ref::<hyper::Error>().is_some())
}

/// Ends a stream with `failure` through the spine; the reply, or an empty 400 when nothing can
/// be said (the client is gone and will not read it).
fn respond_failure(ex: &Exchange<'_>, failure: Failure) -> Response<Body> {
    match ex.fail(failure) {
        Some(reply) => reply_response(&reply),
        None => {
            let mut resp = Response::new(
                Full::new(Bytes::new())
                    .map_err(|never| match never {})
                    .boxed(),
            );
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            resp
        }
    }
}
