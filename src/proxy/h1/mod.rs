//! The HTTP/1.1 engine: one task per client connection, top to bottom. Only protocol code
//! lives here; every step that decides or records is the spine's (`super::exchange`).
//!
//! ```text
//! loop {
//!   read a request head            (header_read_timeout; idle keep-alive; 400/408/431)
//!   identify                       identify_head, then a login form body (login.rs; unreadable:
//!                                  refused 408/413/400/499, never forwarded)
//!   Exchange::begin                (client address -> observe -> decide)
//!   Exchange::route                block / whoami / 405 -> our reply (recorded by the spine)
//!   prepare_upstream_head          hygiene, forwarding headers, annotations
//!   forward                        head + body to the upstream connection this client owns,
//!                                  response head (Exchange::responded) + body back,
//!                                  keep-alive or close; failures through Exchange::fail
//! }
//! ```
//!
//! Why not hyper here: a reverse proxy on hyper parses every message twice into header maps and
//! hands each request across tasks and channels to a pooled client. This engine parses each head
//! once with `httparse`, passes `Content-Length` bodies through unchanged and re-encodes chunked
//! ones after decoding them (`head.rs`, `chunked.rs`), keeps the upstream connection inside the
//! client's task, and sends a small response in one write. The framing rules are strict by
//! design: ambiguity is refused, never guessed (request smuggling), and the upstream never
//! receives a byte this engine did not parse. `max_header_bytes` is exact; an upstream
//! connection with bytes beyond its response is closed, never reused.

mod body;
pub mod chunked;
pub mod head;
mod login;
mod message;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use self::chunked::ChunkedParser;
use self::head::{Framing, HeadError, RequestHead, ResponseHead};
use self::message::{
    BareLf, find_head_end, origin_form, read_response_head, write_request_head, write_response_head,
};
use super::exchange::{Exchange, RequestView, Route, identify_head, login_form, refuse_unreadable};
use super::failure::Failure;
use super::headers;
use super::health;
use super::refuse::Reply;
use super::upstream::{self, UpstreamConn};
use crate::edge::context::{ConnMeta, ListenerCtx, Origin};
use crate::identity::Who;

/// Free space ensured before reading a head: heads are small, and with thousands of idle
/// keep-alive connections small buffers keep the working set in cache.
const HEAD_CHUNK: usize = 4 * 1024;
/// Free space ensured before reading body bytes: larger reads, fewer system calls.
const BODY_CHUNK: usize = 16 * 1024;
/// After refusing a request whose body we will not read, how long to keep reading (and
/// discarding) so the client sees our response instead of a connection reset.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// What to do with the client connection after an exchange.
enum Next {
    KeepAlive,
    Close,
    /// Close after reading (and discarding) what the client is still sending.
    Linger,
}

/// Serves one client connection until it closes, errs, idles out, or shutdown is asked for.
/// `meta` is what the connection layer learned (TLS facts and the client certificate's
/// identity; `ConnMeta::default()`, which allocates nothing, on plain HTTP).
pub async fn serve<S>(
    ctx: Arc<ListenerCtx>,
    client: S,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    meta: ConnMeta,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Conn {
        meta,
        ctx,
        peer,
        client,
        inbuf: BytesMut::with_capacity(HEAD_CHUNK),
        out: Vec::with_capacity(4096),
        reqbuf: Vec::with_capacity(1024),
        chunks: ChunkedParser::new(),
        upstream: None,
        shutdown,
    };
    let mut served = 0u64;
    loop {
        let head = match conn.read_head(served == 0).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(failure) => {
                if let Some(reply) = refuse_unreadable(&conn.ctx, peer, &failure) {
                    conn.out.clear();
                    reply.write_to(&mut conn.out, true);
                    let _ = conn.send_out().await;
                }
                conn.linger().await;
                return;
            }
        };
        served += 1;
        match conn.exchange(head).await {
            Next::KeepAlive if !*conn.shutdown.borrow() => continue,
            // The upstream connection goes back to the origin before the client sees the
            // close, so the client's next connection finds it.
            Next::KeepAlive | Next::Close => {
                conn.release_upstream();
                let _ = conn.client.shutdown().await;
                return;
            }
            Next::Linger => {
                conn.release_upstream();
                conn.linger().await;
                return;
            }
        }
    }
}

/// A client connection ending hands its upstream connection, if it is reusable, to the origin.
impl<S> Drop for Conn<S> {
    fn drop(&mut self) {
        self.release_upstream();
    }
}

impl<S> Conn<S> {
    /// Hands this connection's upstream connection (kept only after a clean exchange) to the
    /// origin's idle set.
    fn release_upstream(&mut self) {
        if let (Some(up), Some(origin)) = (self.upstream.take(), self.ctx.origin.as_ref()) {
            up.release(origin);
        }
    }
}

struct Conn<S> {
    /// TLS facts; `ConnMeta::default()` (no allocation) on plain connections.
    meta: ConnMeta,
    ctx: Arc<ListenerCtx>,
    peer: SocketAddr,
    client: S,
    inbuf: BytesMut,
    out: Vec<u8>,
    /// The request head for the upstream, then (chunked) the body re-encoded so far.
    reqbuf: Vec<u8>,
    /// Where the current chunked request body's decoding stands.
    chunks: ChunkedParser,
    upstream: Option<UpstreamConn>,
    shutdown: watch::Receiver<bool>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Reads the next request head. `Ok(None)`: the client closed, idled out or we are shutting
    /// down, between requests (nothing to record). `Err`: a failure to answer and record.
    ///
    /// A new connection gets `header_read_timeout` for its first request from the moment it is
    /// accepted (a silent pre-connect must not hold a slot for the whole keep-alive time); later
    /// requests get `keepalive_timeout` of idleness, then `header_read_timeout` once they start.
    async fn read_head(&mut self, first: bool) -> Result<Option<RequestHead>, Failure> {
        let cfg = &self.ctx.cfg;
        let mut deadline = first.then(|| tokio::time::Instant::now() + cfg.header_read_timeout);
        let limit = cfg.max_header_bytes;
        let mut scanned = 0;
        loop {
            // The limit is exact: a head of `limit` bytes (request line through the final
            // CRLFCRLF) passes, one byte more is 431, however the bytes arrived. Only the first
            // `limit` bytes are searched, so what follows a head that ends in time (a pipelined
            // request) never counts, and a head that has not ended by then never will in time.
            let searched = &self.inbuf[..self.inbuf.len().min(limit)];
            let found = find_head_end(searched, scanned)
                .map_err(|BareLf| Failure::MalformedHead("bare LF in the head".into()))?;
            if let Some(end) = found {
                let bytes = self.inbuf.split_to(end).freeze();
                return match head::parse_request(&bytes) {
                    Ok((head, _)) => Ok(Some(head)),
                    Err(HeadError::TooManyHeaders) => {
                        Err(Failure::TooManyHeaders(head::MAX_HEADERS))
                    }
                    Err(HeadError::Invalid(why)) => Err(Failure::MalformedHead(why.into())),
                    Err(HeadError::Partial) => {
                        Err(Failure::MalformedHead("incomplete head".into()))
                    }
                };
            }
            if self.inbuf.len() >= limit {
                return Err(Failure::HeadTooLarge(limit));
            }
            scanned = self.inbuf.len().saturating_sub(3);
            let waiting_for_first_byte = self.inbuf.is_empty();
            if !waiting_for_first_byte && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + cfg.header_read_timeout);
            }
            let until = match deadline {
                Some(d) => d,
                None => tokio::time::Instant::now() + cfg.keepalive_timeout,
            };
            self.inbuf.reserve(HEAD_CHUNK);
            let read = tokio::select! {
                r = tokio::time::timeout_at(until, self.client.read_buf(&mut self.inbuf)) => r,
                _ = self.shutdown.changed(), if waiting_for_first_byte => return Ok(None),
            };
            match read {
                Ok(Ok(0)) if waiting_for_first_byte => return Ok(None),
                Ok(Ok(0)) => return Err(Failure::ClosedMidHead),
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Ok(None),
                Err(_) if waiting_for_first_byte => return Ok(None),
                Err(_) => return Err(Failure::HeadTimeout(cfg.header_read_timeout)),
            }
        }
    }

    /// One request, through the spine: identify, decide, route, then forward.
    async fn exchange(&mut self, mut head: RequestHead) -> Next {
        let ctx = self.ctx.clone();
        let keep_alive = head.keep_alive && !*self.shutdown.borrow();
        let has_body = head.framing != Framing::None;
        if let Some(reply) = health::answer(&ctx.cfg, &head.method, &head.target) {
            return self.reply(&reply, keep_alive && !has_body).await;
        }
        let state = ctx.shared.state.load_full();
        let started = Instant::now();
        let (who, form_failure) = self.identify(&mut head).await;
        let view = RequestView {
            headers: &head.headers,
            method: &head.method,
            target: &head.target,
        };
        let ex = Exchange::begin(&ctx, &state, self.peer, &self.meta, view, who, started);
        if let Some(failure) = form_failure {
            return self.fail(&ex, failure).await;
        }
        if let Route::Reply(reply) = ex.route(&head.headers) {
            let keep = keep_alive && !has_body && head.method != Method::CONNECT;
            return self.reply(&reply, keep).await;
        }
        let target = match origin_form(&mut head) {
            Ok(t) => t,
            Err(why) => return self.fail(&ex, Failure::BadTarget(why)).await,
        };
        let upgrade =
            head.version == Version::HTTP_11 && headers::is_upgrade_request(&head.headers);
        ex.prepare_upstream_head(&mut head.headers, upgrade, self.meta.proto());
        match head.framing {
            Framing::Chunked => {
                head.headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
            }
            Framing::Length(n) => {
                head.headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
            _ => {}
        }
        // We accept the body on the upstream's behalf (RFC 9110 §10.1.1) rather than relay the
        // interim response, so the client never waits on a round trip it cannot see. A client
        // gone by then is recorded by the exchange's guard.
        if head.expect_continue && has_body && !self.send_continue().await {
            return Next::Close;
        }
        self.reqbuf.clear();
        write_request_head(
            &mut self.reqbuf,
            &head.method,
            &target,
            head.version,
            &head.headers,
        );
        // A chunked body's buffered part is decoded (and re-encoded behind the head) before an
        // upstream connection is even taken: a body that is all here is refused whole.
        if head.framing == Framing::Chunked
            && let Err(failure) = self.encode_buffered_chunks()
        {
            return self.fail(&ex, failure).await;
        }
        match self.forward(&ex, &head, upgrade, keep_alive).await {
            Ok(next) => next,
            Err(failure) => {
                self.upstream = None;
                self.fail(&ex, failure).await
            }
        }
    }

    /// Ends an exchange with `failure` (recorded by the spine) and answers when it still can.
    async fn fail(&mut self, ex: &Exchange<'_>, failure: Failure) -> Next {
        match ex.fail(failure) {
            Some(reply) => self.reply(&reply, false).await,
            None => Next::Close,
        }
    }

    /// `100 Continue`, once per request; false when the client is gone.
    async fn send_continue(&mut self) -> bool {
        self.send(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_ok()
    }

    /// Writes `bytes` to the client and flushes them: a TLS stream may hold written bytes in
    /// its buffer until flushed, and the client would then wait for an answer already made.
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.client.write_all(bytes).await?;
        self.client.flush().await
    }

    /// [`Conn::send`] of the head in `self.out` (interim and 101 heads).
    async fn send_out(&mut self) -> Result<(), Failure> {
        let out = std::mem::take(&mut self.out);
        let sent = self.send(&out).await;
        self.out = out;
        sent.map_err(|e| Failure::MidResponse(format!("client: {e}")))
    }

    /// Who is behind the request: the head's sources ([`identify_head`]), then a login form
    /// body (`login.rs`: read whatever its framing, up to its limit, and left in the buffer to
    /// be forwarded). The failure is a login body that could not be read (the request is then
    /// refused with it, never forwarded; `who` says why it is unreadable).
    async fn identify(&mut self, head: &mut RequestHead) -> (Who, Option<Failure>) {
        let ctx = self.ctx.clone();
        let trust = ctx.trust(self.peer, &self.meta);
        let mut who = identify_head(&ctx, &self.meta, &head.headers, trust.identity).await;
        let Some(rule) = login_form(&ctx, &who, &head.method, &head.target) else {
            return (who, None);
        };
        let failure = self.read_login_body(head, rule, &mut who).await.err();
        (who, failure)
    }

    /// Sends the request upstream and relays the response.
    async fn forward(
        &mut self,
        ex: &Exchange<'_>,
        head: &RequestHead,
        upgrade: bool,
        keep_alive: bool,
    ) -> Result<Next, Failure> {
        let ctx = self.ctx.clone();
        let cfg = &ctx.cfg;
        let Some(origin) = ctx.origin.as_ref() else {
            return Err(Failure::NoUpstream);
        };
        let (mut up, mut resp) = self.exchange_heads(origin, head).await?;

        // 1xx interim responses (103 Early Hints...) are relayed; 100 is ours to send, not theirs.
        while resp.status < 200 && resp.status != 101 {
            if resp.status != 100 {
                self.out.clear();
                write_response_head(&mut self.out, &mut resp, None, false);
                self.send_out().await?;
            }
            resp = read_response_head(&mut up, &origin.addr, cfg).await?;
        }

        let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY);
        if resp.status == 101 {
            if !upgrade {
                return Err(Failure::UpstreamBad(
                    "upstream switched protocols without being asked".into(),
                ));
            }
            ex.responded(status, &resp.headers);
            self.out.clear();
            write_response_head(&mut self.out, &mut resp, None, false);
            self.send_out().await?;
            self.tunnel(up).await;
            return Ok(Next::Close);
        }

        let framing = head::response_framing(&resp, &head.method).map_err(|e| {
            let why = match e {
                HeadError::Invalid(w) => w,
                _ => "bad response framing",
            };
            Failure::UpstreamBad(format!("upstream {}: {why}", origin.addr))
        })?;
        if framing == Framing::Chunked && head.version == Version::HTTP_10 {
            return Err(Failure::UpstreamBad(format!(
                "upstream {} sent a chunked response to an HTTP/1.0 request",
                origin.addr
            )));
        }
        // Recorded (and the session learned) before the head is rewritten for the client.
        ex.responded(status, &resp.headers);
        up.bound |= headers::binds_connection(&head.headers, &resp.headers);
        let keep_client = keep_alive && framing != Framing::UntilClose;
        self.out.clear();
        write_response_head(
            &mut self.out,
            &mut resp,
            Some(framing),
            !keep_client && head.version == Version::HTTP_11,
        );
        self.relay_response_body(&mut up, framing).await?;
        self.client
            .flush()
            .await
            .map_err(|e| Failure::MidResponse(format!("client: {e}")))?;
        // Kept only when the response ended exactly where its framing said and nothing
        // follows it: leftover bytes would become the answer to the client's next request.
        if !resp.closes && framing != Framing::UntilClose && up.buf.is_empty() {
            up.reused = true;
            self.upstream = Some(up);
        }
        Ok(if keep_client {
            Next::KeepAlive
        } else {
            Next::Close
        })
    }

    /// Sends the request (head in `self.reqbuf`, body from the client) on this client's upstream
    /// connection and reads the response head. A kept-alive upstream connection may have been
    /// closed by the upstream since; a request without a body is sent again on a fresh one.
    async fn exchange_heads(
        &mut self,
        origin: &Origin,
        head: &RequestHead,
    ) -> Result<(UpstreamConn, ResponseHead), Failure> {
        let ctx = self.ctx.clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let timeout = ctx.cfg.connect_timeout;
            let mut up = match self.upstream.take() {
                // Anything that arrived on it since its last response (or its close) is not
                // an answer to this request: that connection is closed, not reused.
                Some(up) if up.is_quiet() => up,
                Some(_) => upstream::connect(origin, timeout).await?,
                None if attempts == 1 => upstream::connect(origin, timeout).await?,
                // The retry never takes another idle connection: it may be as stale.
                None => upstream::fresh(origin, timeout).await?,
            };
            let reused = up.reused;
            let result = match self.send_request(&mut up, head, &origin.addr).await {
                Ok(()) => read_response_head(&mut up, &origin.addr, &ctx.cfg).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(resp) => return Ok((up, resp)),
                Err(Failure::UpstreamClosed(_))
                    if reused && head.framing == Framing::None && attempts == 1 =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a reply we generated.
    async fn reply(&mut self, reply: &Reply, keep_alive: bool) -> Next {
        self.out.clear();
        reply.write_to(&mut self.out, !keep_alive);
        if self.send_out().await.is_err() {
            return Next::Close;
        }
        if keep_alive {
            Next::KeepAlive
        } else {
            Next::Linger
        }
    }

    /// Half-closes and discards what the client still sends for a short while, so it reads our
    /// response instead of a reset (a close with unread data in the kernel buffer sends RST).
    async fn linger(&mut self) {
        let _ = self.client.shutdown().await;
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut discarded = 0;
        let mut sink = [0u8; 8192];
        while discarded < LINGER_BYTES {
            match tokio::time::timeout_at(deadline, self.client.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => discarded += n,
                _ => break,
            }
        }
    }
}
