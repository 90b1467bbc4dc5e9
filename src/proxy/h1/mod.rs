//! The HTTP/1.1 engine: one task per client connection, top to bottom.
//!
//! ```text
//! loop {
//!   read a request head            (header_read_timeout; idle keep-alive; 400/408/431)
//!   Exchange::begin                (client address -> observe -> decide)
//!   block / whoami / 405           -> our reply, record
//!   forward                        -> head + body to the upstream connection this client owns,
//!                                     response head + body back, record, keep-alive or close
//! }
//! ```
//!
//! Why not hyper here: a reverse proxy on hyper parses every message twice into header maps and
//! hands each request across tasks and channels to a pooled client. This engine parses each head
//! once with `httparse`, passes bodies through byte for byte after validating their framing
//! (`head.rs`, `chunked.rs`), keeps the upstream connection inside the client's task, and sends
//! a small response in one write. The framing rules are strict by design: ambiguity is refused,
//! never guessed (request smuggling).

pub mod chunked;
pub mod head;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use self::chunked::ChunkedParser;
use self::head::{Framing, HeadError, RequestHead, ResponseHead};
use super::exchange::{
    ANNOTATION_HEADERS, ConnMeta, Exchange, RequestView, Who, login_form, login_form_too_large,
    record_protocol_error,
};
use super::refuse::{self, Reply};
use super::upstream::{self, ConnectError, UpstreamConn};
use super::{BODY_IDLE, ListenerCtx, whoami};
use crate::config::Upstream;
use crate::forwarding;

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

/// A failure that ends an exchange: the status for the client (if a head can still be sent) and
/// the text for the event.
struct Failure {
    status: Option<StatusCode>,
    error: String,
}

impl Failure {
    fn upstream(status: StatusCode, error: String) -> Self {
        Failure {
            status: Some(status),
            error,
        }
    }

    /// After the response head went out: nothing more can be said, the connection just closes.
    fn mid_response(error: String) -> Self {
        Failure {
            status: None,
            error,
        }
    }
}

/// Serves one plain-HTTP client connection until it closes, errs, idles out, or shutdown is
/// asked for.
pub async fn serve<S>(
    ctx: Arc<ListenerCtx>,
    client: S,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    serve_with(ctx, client, peer, shutdown, ConnMeta::default()).await;
}

/// Serves one client connection with what the connection layer learned (`meta`: TLS facts and
/// the client certificate's identity; empty for plain HTTP).
pub async fn serve_with<S>(
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
        upstream: None,
        shutdown,
    };
    let mut served = 0u64;
    loop {
        let head = match conn.read_head(served == 0).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err((status, error)) => {
                record_protocol_error(&conn.ctx, peer, status, error);
                let reply = refuse::plain(status, reason_text(status));
                conn.out.clear();
                reply.write_to(&mut conn.out, true);
                let _ = conn.client.write_all(&conn.out).await;
                conn.linger().await;
                return;
            }
        };
        served += 1;
        match conn.exchange(head).await {
            Next::KeepAlive if !*conn.shutdown.borrow() => continue,
            Next::KeepAlive | Next::Close => {
                let _ = conn.client.shutdown().await;
                return;
            }
            Next::Linger => {
                conn.linger().await;
                return;
            }
        }
    }
}

fn reason_text(status: StatusCode) -> &'static str {
    match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "request headers too large\n",
        StatusCode::REQUEST_TIMEOUT => "request headers not received in time\n",
        _ => "malformed request\n",
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
    reqbuf: Vec<u8>,
    upstream: Option<UpstreamConn>,
    shutdown: watch::Receiver<bool>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Reads the next request head. `Ok(None)`: the client closed, idled out or we are shutting
    /// down, between requests (nothing to record). `Err`: a status to answer and record.
    ///
    /// A new connection gets `header_read_timeout` for its first request from the moment it is
    /// accepted (a silent pre-connect must not hold a slot for the whole keep-alive time); later
    /// requests get `keepalive_timeout` of idleness, then `header_read_timeout` once they start.
    async fn read_head(
        &mut self,
        first: bool,
    ) -> Result<Option<RequestHead>, (StatusCode, String)> {
        let cfg = &self.ctx.cfg;
        let mut deadline = first.then(|| tokio::time::Instant::now() + cfg.header_read_timeout);
        let mut scanned = 0;
        loop {
            if let Some(end) = find_head_end(&self.inbuf, scanned) {
                let bytes = self.inbuf.split_to(end).freeze();
                return match head::parse_request(&bytes) {
                    Ok((head, _)) => Ok(Some(head)),
                    Err(HeadError::TooManyHeaders) => Err((
                        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        format!("more than {} header fields", head::MAX_HEADERS),
                    )),
                    Err(HeadError::Invalid(why)) => {
                        Err((StatusCode::BAD_REQUEST, format!("malformed request: {why}")))
                    }
                    Err(HeadError::Partial) => Err((
                        StatusCode::BAD_REQUEST,
                        "malformed request: incomplete head".into(),
                    )),
                };
            }
            scanned = self.inbuf.len().saturating_sub(3);
            if self.inbuf.len() > cfg.max_header_bytes {
                return Err((
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    format!("request head larger than {} bytes", cfg.max_header_bytes),
                ));
            }
            let waiting_for_first_byte = self.inbuf.is_empty();
            if !waiting_for_first_byte && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + cfg.header_read_timeout);
            }
            let limit = match deadline {
                Some(d) => d,
                None => tokio::time::Instant::now() + cfg.keepalive_timeout,
            };
            self.inbuf.reserve(HEAD_CHUNK);
            let read = tokio::select! {
                r = tokio::time::timeout_at(limit, self.client.read_buf(&mut self.inbuf)) => r,
                _ = self.shutdown.changed(), if waiting_for_first_byte => return Ok(None),
            };
            match read {
                Ok(Ok(0)) if waiting_for_first_byte => return Ok(None),
                Ok(Ok(0)) => {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        "client closed in the middle of a request head".into(),
                    ));
                }
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Ok(None),
                Err(_) if waiting_for_first_byte => return Ok(None),
                Err(_) => {
                    return Err((
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "request head read timeout: not complete within {:?}",
                            cfg.header_read_timeout
                        ),
                    ));
                }
            }
        }
    }

    /// One request: decide, then refuse, answer or forward.
    async fn exchange(&mut self, mut head: RequestHead) -> Next {
        let ctx = self.ctx.clone();
        let state = ctx.shared.state.load_full();
        let started = Instant::now();
        let peer_trusted = ctx.trusted.contains(self.peer.ip());
        let (who, body_too_large) = self.identify(&mut head, peer_trusted).await;
        // The kernel's RTT and MSS, when the rules want them (one getsockopt per request).
        let wire = match (&state.wire_rules, self.meta.fd) {
            (Some(_), Some(fd)) => super::tcp_info::read(fd),
            _ => None,
        };
        let mut ex = Exchange::begin(
            &ctx,
            &state,
            self.peer,
            RequestView {
                headers: &head.headers,
                method: &head.method,
                target: &head.target,
            },
            started,
            who,
            wire,
        );
        ex.tls.clone_from(&self.meta.tls);
        ex.proxied_by = self.meta.proxied_by;
        let has_body = head.framing != Framing::None;
        let keep_alive = head.keep_alive && !*self.shutdown.borrow();

        if let Some(limit) = body_too_large {
            let (reply, error) = login_form_too_large(limit);
            ex.record(reply.status, None, Some(error));
            return self.reply(&reply, false).await;
        }

        if head.method == Method::CONNECT {
            let reply = refuse::plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT is not supported by a reverse proxy\n",
            );
            ex.record(reply.status, None, Some("CONNECT refused".into()));
            return self.reply(&reply, false).await;
        }
        if ex.decision.action == crate::policy::Action::Block {
            let id = ctx.shared.auditor.next_id();
            let reply = refuse::forbidden(&id, &head.headers);
            ex.record(reply.status, Some(id), None);
            return self.reply(&reply, keep_alive && !has_body).await;
        }
        if matches!(ctx.cfg.upstream, Upstream::Whoami) {
            let reply = whoami::page(
                &ctx,
                &ex.client,
                &ex.obs,
                &ex.decision,
                &state.intel,
                &head.headers,
            );
            ex.record(reply.status, None, None);
            return self.reply(&reply, keep_alive && !has_body).await;
        }

        let target = match origin_form(&mut head) {
            Ok(t) => t,
            Err(why) => {
                let reply = refuse::plain(StatusCode::BAD_REQUEST, "bad request target\n");
                ex.record(
                    reply.status,
                    None,
                    Some(format!("bad request target: {why}")),
                );
                return self.reply(&reply, false).await;
            }
        };
        let upgrade =
            head.version == Version::HTTP_11 && forwarding::is_upgrade_request(&head.headers);
        forwarding::strip_hop_by_hop(&mut head.headers, upgrade);
        forwarding::strip_named(&mut head.headers, &ANNOTATION_HEADERS);
        if !peer_trusted {
            forwarding::strip_named(&mut head.headers, &ctx.identity_headers);
        }
        forwarding::add_forwarding_headers(
            &mut head.headers,
            self.peer,
            peer_trusted,
            self.meta.proto(),
        );
        if ctx.cfg.annotate {
            ex.annotate(&mut head.headers);
        }
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
        if head.expect_continue && has_body {
            // We accept the body on the upstream's behalf (RFC 9110 §10.1.1) rather than relay the
            // interim response, so the client never waits on a round trip it cannot see.
            if self
                .client
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
            {
                return Next::Close;
            }
        }

        self.reqbuf.clear();
        write_request_head(
            &mut self.reqbuf,
            &head.method,
            &target,
            head.version,
            &head.headers,
        );

        match self.forward(&ex, &head, upgrade, keep_alive).await {
            Ok(next) => next,
            Err(f) => {
                self.upstream = None;
                match f.status {
                    Some(status) => {
                        let reply = ex.upstream_failed(status, f.error);
                        self.reply(&reply, false).await
                    }
                    None => {
                        tracing::debug!(peer = %self.peer, error = %f.error, "exchange ended mid-response");
                        Next::Close
                    }
                }
            }
        }
    }

    /// Who is behind the request: header sources, then the session cookie, then a login form
    /// body (read here, up to its limit, and left in the buffer to be forwarded unchanged).
    /// The second value is the form limit when the body is larger (answered 413).
    async fn identify(
        &mut self,
        head: &mut RequestHead,
        peer_trusted: bool,
    ) -> (Who, Option<usize>) {
        let ctx = self.ctx.clone();
        let mut who = Who::from_head(&ctx, &self.meta, &head.headers, peer_trusted);
        if let Some(rule) = login_form(&ctx, &who, &head.method, &head.target) {
            match head.framing {
                Framing::Length(n) if n <= rule.max_body() as u64 => {
                    let n = n as usize;
                    // A client that sent `Expect: 100-continue` waits for it before sending the
                    // body we are about to read; send it now (once: `exchange` checks the flag).
                    if head.expect_continue && self.inbuf.len() < n {
                        head.expect_continue = false;
                        if self
                            .client
                            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                            .await
                            .is_err()
                        {
                            who.problems
                                .push("form: client stopped sending the login body".into());
                            return (who, None);
                        }
                    }
                    while self.inbuf.len() < n {
                        if self.fill_client_body().await.is_err() {
                            who.problems
                                .push("form: client stopped sending the login body".into());
                            return (who, None);
                        }
                    }
                    who.read_login_form(rule, &head.headers, &self.inbuf[..n]);
                }
                Framing::Length(_) => return (who, Some(rule.max_body())),
                Framing::Chunked => who
                    .problems
                    .push("form: chunked login body not inspected".into()),
                Framing::None | Framing::UntilClose => {}
            }
        }
        (who, None)
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
            return Err(Failure::upstream(
                StatusCode::BAD_GATEWAY,
                "no upstream configured".into(),
            ));
        };
        // A kept-alive upstream connection may have been closed by the upstream since; a request
        // without a body can safely be sent again on a fresh connection.
        let mut attempts = 0;
        let (mut up, mut resp) = loop {
            attempts += 1;
            let mut up = match self.upstream.take() {
                Some(up) => up,
                None => upstream::connect(origin, cfg.connect_timeout)
                    .await
                    .map_err(|e| {
                        let status = match e {
                            ConnectError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                            ConnectError::Io(_) => StatusCode::BAD_GATEWAY,
                        };
                        Failure::upstream(status, format!("upstream {}: {e}", origin.addr))
                    })?,
            };
            let reused = up.reused;
            let sent = self.send_request(&mut up, head).await;
            let result = match sent {
                Ok(()) => {
                    read_response_head(&mut up, cfg.response_timeout, cfg.max_header_bytes).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(resp) => break (up, resp),
                Err(ResponseError::Closed(_))
                    if reused && head.framing == Framing::None && attempts == 1 =>
                {
                    continue;
                }
                Err(e) => return Err(e.into_failure(&origin.addr, cfg.response_timeout)),
            }
        };

        // 1xx interim responses (103 Early Hints...) are relayed; 100 is ours to send, not theirs.
        while resp.status < 200 && resp.status != 101 {
            if resp.status != 100 {
                self.out.clear();
                write_response_head(&mut self.out, &mut resp, None, false);
                self.client
                    .write_all(&self.out)
                    .await
                    .map_err(|e| Failure::mid_response(format!("client: {e}")))?;
            }
            resp = read_response_head(&mut up, cfg.response_timeout, cfg.max_header_bytes)
                .await
                .map_err(|e| e.into_failure(&origin.addr, cfg.response_timeout))?;
        }

        let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY);
        if resp.status == 101 {
            if !upgrade {
                return Err(Failure::upstream(
                    StatusCode::BAD_GATEWAY,
                    "upstream switched protocols without being asked".into(),
                ));
            }
            self.out.clear();
            write_response_head(&mut self.out, &mut resp, None, false);
            self.client
                .write_all(&self.out)
                .await
                .map_err(|e| Failure::mid_response(format!("client: {e}")))?;
            ex.record(status, None, None);
            self.tunnel(up).await;
            return Ok(Next::Close);
        }

        let framing = head::response_framing(&resp, &head.method).map_err(|e| {
            let why = match e {
                HeadError::Invalid(w) => w,
                _ => "bad response framing",
            };
            Failure::upstream(
                StatusCode::BAD_GATEWAY,
                format!("upstream {}: {why}", origin.addr),
            )
        })?;
        if framing == Framing::Chunked && head.version == Version::HTTP_10 {
            return Err(Failure::upstream(
                StatusCode::BAD_GATEWAY,
                format!(
                    "upstream {} sent a chunked response to an HTTP/1.0 request",
                    origin.addr
                ),
            ));
        }
        ex.learn_session(&resp.headers);
        let keep_client = keep_alive && framing != Framing::UntilClose;
        self.out.clear();
        write_response_head(
            &mut self.out,
            &mut resp,
            Some(framing),
            !keep_client && head.version == Version::HTTP_11,
        );
        ex.record(status, None, None);
        self.relay_response_body(&mut up, framing).await?;
        if !resp.closes && framing != Framing::UntilClose {
            up.reused = true;
            self.upstream = Some(up);
        }
        Ok(if keep_client {
            Next::KeepAlive
        } else {
            Next::Close
        })
    }

    /// Writes the request head and body to the upstream.
    /// Writes the request head (in `self.reqbuf`) and body to the upstream.
    async fn send_request(
        &mut self,
        up: &mut UpstreamConn,
        head: &RequestHead,
    ) -> Result<(), ResponseError> {
        match head.framing {
            Framing::None | Framing::UntilClose => up
                .stream
                .write_all(&self.reqbuf)
                .await
                .map_err(ResponseError::Closed),
            Framing::Length(n) => {
                // Send the head together with whatever body bytes are already buffered.
                let now = (n.min(self.inbuf.len() as u64)) as usize;
                self.reqbuf.extend_from_slice(&self.inbuf[..now]);
                self.inbuf.advance(now);
                up.stream
                    .write_all(&self.reqbuf)
                    .await
                    .map_err(ResponseError::Closed)?;
                let mut remaining = n - now as u64;
                while remaining > 0 {
                    self.fill_client_body().await?;
                    let take = (remaining.min(self.inbuf.len() as u64)) as usize;
                    up.stream
                        .write_all(&self.inbuf[..take])
                        .await
                        .map_err(ResponseError::UpstreamWrite)?;
                    self.inbuf.advance(take);
                    remaining -= take as u64;
                }
                Ok(())
            }
            Framing::Chunked => {
                up.stream
                    .write_all(&self.reqbuf)
                    .await
                    .map_err(ResponseError::Closed)?;
                let mut parser = ChunkedParser::new();
                while !parser.is_done() {
                    if self.inbuf.is_empty() {
                        self.fill_client_body().await?;
                    }
                    let n = parser
                        .feed(&self.inbuf)
                        .map_err(|e| ResponseError::BadClientBody(e.0))?;
                    up.stream
                        .write_all(&self.inbuf[..n])
                        .await
                        .map_err(ResponseError::UpstreamWrite)?;
                    self.inbuf.advance(n);
                }
                Ok(())
            }
        }
    }

    /// Reads more request body from the client.
    async fn fill_client_body(&mut self) -> Result<(), ResponseError> {
        self.inbuf.reserve(BODY_CHUNK);
        match tokio::time::timeout(BODY_IDLE, self.client.read_buf(&mut self.inbuf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Err(ResponseError::ClientGone),
            Ok(Ok(_)) => Ok(()),
            Err(_) => Err(ResponseError::ClientGone),
        }
    }

    /// Relays the response body; `self.out` holds the response head, sent with the first bytes.
    async fn relay_response_body(
        &mut self,
        up: &mut UpstreamConn,
        framing: Framing,
    ) -> Result<(), Failure> {
        let timeout = self.ctx.cfg.response_timeout;
        let client_err = |e: std::io::Error| Failure::mid_response(format!("client: {e}"));
        let upstream_err = |what: &str| Failure::mid_response(format!("upstream: {what}"));
        match framing {
            Framing::None => self.client.write_all(&self.out).await.map_err(client_err),
            Framing::Length(n) => {
                let now = (n.min(up.buf.len() as u64)) as usize;
                self.out.extend_from_slice(&up.buf[..now]);
                up.buf.advance(now);
                self.client.write_all(&self.out).await.map_err(client_err)?;
                let mut remaining = n - now as u64;
                while remaining > 0 {
                    fill(up, timeout).await.map_err(upstream_err)?;
                    let take = (remaining.min(up.buf.len() as u64)) as usize;
                    self.client
                        .write_all(&up.buf[..take])
                        .await
                        .map_err(client_err)?;
                    up.buf.advance(take);
                    remaining -= take as u64;
                }
                Ok(())
            }
            Framing::Chunked => {
                let mut parser = ChunkedParser::new();
                let n = parser.feed(&up.buf).map_err(|e| upstream_err(e.0))?;
                self.out.extend_from_slice(&up.buf[..n]);
                up.buf.advance(n);
                self.client.write_all(&self.out).await.map_err(client_err)?;
                while !parser.is_done() {
                    fill(up, timeout).await.map_err(upstream_err)?;
                    let n = parser.feed(&up.buf).map_err(|e| upstream_err(e.0))?;
                    self.client
                        .write_all(&up.buf[..n])
                        .await
                        .map_err(client_err)?;
                    up.buf.advance(n);
                }
                Ok(())
            }
            Framing::UntilClose => {
                self.out.extend_from_slice(&up.buf);
                up.buf.clear();
                self.client.write_all(&self.out).await.map_err(client_err)?;
                loop {
                    match fill(up, timeout).await {
                        Ok(()) => {
                            self.client.write_all(&up.buf).await.map_err(client_err)?;
                            up.buf.clear();
                        }
                        Err("closed") => return Ok(()),
                        Err(w) => return Err(upstream_err(w)),
                    }
                }
            }
        }
    }

    /// Copies bytes both ways after a 101 (WebSocket) until either side closes.
    async fn tunnel(&mut self, mut up: UpstreamConn) {
        if !self.inbuf.is_empty() && up.stream.write_all(&self.inbuf).await.is_err() {
            return;
        }
        self.inbuf.clear();
        if !up.buf.is_empty() && self.client.write_all(&up.buf).await.is_err() {
            return;
        }
        if let Err(e) = tokio::io::copy_bidirectional(&mut self.client, &mut up.stream).await {
            tracing::debug!(peer = %self.peer, error = %e, "upgraded tunnel ended with an error");
        }
    }

    /// Sends a reply we generated.
    async fn reply(&mut self, reply: &Reply, keep_alive: bool) -> Next {
        self.out.clear();
        reply.write_to(&mut self.out, !keep_alive);
        if self.client.write_all(&self.out).await.is_err() {
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

/// Reads more from the upstream. `Err("closed")` on a clean end of stream.
async fn fill(up: &mut UpstreamConn, timeout: Duration) -> Result<(), &'static str> {
    up.buf.reserve(BODY_CHUNK);
    match tokio::time::timeout(timeout, up.stream.read_buf(&mut up.buf)).await {
        Ok(Ok(0)) => Err("closed"),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err("read error"),
        Err(_) => Err("timed out while sending the body"),
    }
}

/// Why no response head could be had from the upstream.
enum ResponseError {
    /// Connection closed or reset before a response head (possibly a stale kept-alive one).
    Closed(std::io::Error),
    /// Writing the request body failed.
    UpstreamWrite(std::io::Error),
    /// No head within the response timeout.
    Timeout,
    /// Head unparsable or too large.
    Bad(&'static str),
    /// The client went away or stalled while sending its body.
    ClientGone,
    /// The client's chunked body was malformed.
    BadClientBody(&'static str),
}

impl ResponseError {
    fn into_failure(self, origin: &str, timeout: Duration) -> Failure {
        match self {
            ResponseError::Closed(e) => Failure::upstream(
                StatusCode::BAD_GATEWAY,
                format!("upstream {origin} closed the connection: {e}"),
            ),
            ResponseError::UpstreamWrite(e) => Failure::upstream(
                StatusCode::BAD_GATEWAY,
                format!("upstream {origin} stopped reading the request body: {e}"),
            ),
            ResponseError::Timeout => Failure::upstream(
                StatusCode::GATEWAY_TIMEOUT,
                format!("upstream {origin} sent no response within {timeout:?}"),
            ),
            ResponseError::Bad(why) => {
                Failure::upstream(StatusCode::BAD_GATEWAY, format!("upstream {origin}: {why}"))
            }
            ResponseError::ClientGone => Failure::mid_response(
                "client closed or stalled while sending the request body".into(),
            ),
            ResponseError::BadClientBody(why) => Failure::upstream(
                StatusCode::BAD_REQUEST,
                format!("malformed chunked request body: {why}"),
            ),
        }
    }
}

/// Reads a response head from the upstream (within `timeout` in total).
/// The head's bytes are taken out of `up.buf`; what follows (body bytes) stays there.
async fn read_response_head(
    up: &mut UpstreamConn,
    timeout: Duration,
    max: usize,
) -> Result<ResponseHead, ResponseError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut scanned = 0;
    loop {
        if let Some(end) = find_head_end(&up.buf, scanned) {
            let bytes = up.buf.split_to(end).freeze();
            return match head::parse_response(&bytes) {
                Ok((resp, _)) => Ok(resp),
                Err(HeadError::Invalid(why)) => Err(ResponseError::Bad(why)),
                Err(_) => Err(ResponseError::Bad("response head not understood")),
            };
        }
        scanned = up.buf.len().saturating_sub(3);
        if up.buf.len() > max {
            return Err(ResponseError::Bad("response head too large"));
        }
        up.buf.reserve(HEAD_CHUNK);
        match tokio::time::timeout_at(deadline, up.stream.read_buf(&mut up.buf)).await {
            Ok(Ok(0)) => {
                return Err(ResponseError::Closed(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                )));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ResponseError::Closed(e)),
            Err(_) => return Err(ResponseError::Timeout),
        }
    }
}

/// Position just past the `\r\n\r\n` that ends a head, searching from `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| from + p + 4)
}

/// Turns the request target into origin-form for the upstream. Absolute-form (RFC 9112 §3.2.2)
/// is accepted and its authority replaces Host; `*` is kept for OPTIONS.
fn origin_form(head: &mut RequestHead) -> Result<bytes::Bytes, &'static str> {
    let t = &head.target;
    if t.first() == Some(&b'/') {
        return Ok(t.clone());
    }
    if &t[..] == b"*" && head.method == Method::OPTIONS {
        return Ok(t.clone());
    }
    let uri: http::Uri = http::Uri::from_maybe_shared(t.clone()).map_err(|_| "not a valid URI")?;
    let (Some(authority), Some(_)) = (uri.authority(), uri.scheme()) else {
        return Err("neither origin-form nor absolute-form");
    };
    let host = HeaderValue::from_str(authority.as_str()).map_err(|_| "bad authority")?;
    head.headers.insert(header::HOST, host);
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(bytes::Bytes::copy_from_slice(if pq.is_empty() {
        b"/"
    } else {
        pq.as_bytes()
    }))
}

fn write_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &[u8],
    version: Version,
    headers: &HeaderMap,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(if version == Version::HTTP_10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    write_fields(out, headers);
    out.extend_from_slice(b"\r\n");
}

/// Writes a response head for the client: hop-by-hop fields removed, framing fields set from
/// what is actually relayed, `Connection: close` when we will close.
fn write_response_head(
    out: &mut Vec<u8>,
    resp: &mut ResponseHead,
    framing: Option<Framing>,
    close: bool,
) {
    use std::io::Write;
    let _ = write!(out, "HTTP/1.1 {} ", resp.status);
    out.extend_from_slice(&resp.reason);
    out.extend_from_slice(b"\r\n");
    let switching = resp.status == 101;
    forwarding::strip_hop_by_hop(&mut resp.headers, switching);
    if framing == Some(Framing::Chunked) {
        resp.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    write_fields(out, &resp.headers);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn write_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_across_reads() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
        assert_eq!(find_head_end(b"abc\r\n\r\n", 2), Some(7));
        assert_eq!(find_head_end(b"ab", 5), None);
    }

    #[test]
    fn request_head_is_serialised_in_wire_form() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("example.com"));
        let mut out = Vec::new();
        write_request_head(&mut out, &Method::GET, b"/x?y", Version::HTTP_11, &h);
        assert_eq!(out, b"GET /x?y HTTP/1.1\r\nhost: example.com\r\n\r\n");
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_host() {
        let raw = bytes::Bytes::from_static(
            b"GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        );
        let (mut head, _) = head::parse_request(&raw).unwrap();
        assert_eq!(&origin_form(&mut head).unwrap()[..], b"/p?q=1");
        assert_eq!(head.headers.get(header::HOST).unwrap(), "example.com:8080");
    }

    #[test]
    fn response_head_drops_hop_by_hop_and_sets_framing() {
        let raw = bytes::Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nTransfer-Encoding: chunked\r\nX-Keep: 2\r\n\r\n",
        );
        let (mut resp, _) = head::parse_response(&raw).unwrap();
        let mut out = Vec::new();
        write_response_head(&mut out, &mut resp, Some(Framing::Chunked), true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("x-keep: 2\r\n") && text.contains("transfer-encoding: chunked\r\n"));
        assert!(!text.contains("x-drop") && text.ends_with("connection: close\r\n\r\n"));
    }
}
