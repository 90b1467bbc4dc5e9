//! Opening one accepted connection: the PROXY header (trusted balancers only), the per-client
//! cap, the TLS handshake. What comes out is a stream ready for the engine the listener runs;
//! whatever is refused on the way is recorded with its reason and closed.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::context::{ConnMeta, ListenerCtx, TlsInfo};
use super::events::record_refused_connection;
use super::limits::ClientSlot;
use crate::config::Kind;

/// The byte stream of an opened connection.
pub enum Stream {
    /// TCP as accepted (plain HTTP, or pass-through bytes).
    Plain(TcpStream),
    /// TLS terminated here.
    Tls(Box<TlsStream<TcpStream>>),
}

/// A connection the edge let through.
pub struct Opened {
    /// The stream to serve.
    pub stream: Stream,
    /// The address decided on: the socket peer, or what a trusted PROXY header named.
    pub client: SocketAddr,
    /// What the HTTP engines need to know of the connection.
    pub meta: ConnMeta,
    /// Whether the client chose HTTP/2 by ALPN.
    pub h2: bool,
    /// The client's place under its connection cap, held while the connection lives.
    pub slot: ClientSlot,
}

/// Reads the PROXY header (when the listener expects one), admits the client under its cap and,
/// on HTTP listeners with TLS, completes the handshake within its timeout. `None`: refused
/// (recorded) or gone.
pub async fn open(ctx: &ListenerCtx, mut stream: TcpStream, peer: SocketAddr) -> Option<Opened> {
    let mut client = peer;
    let mut named = false;
    if ctx.cfg.edge.proxy_protocol {
        if !ctx.trusted.contains(peer.ip()) {
            // Only the named balancers may claim a client address; anyone else is refused
            // rather than served on their socket address, so a misrouted path shows up.
            record_refused_connection(
                ctx,
                peer,
                "PROXY protocol listener: peer is not in trusted_proxies".into(),
            );
            return None;
        }
        match super::proxy_proto::read_header(&mut stream, ctx.cfg.header_read_timeout).await {
            Ok(Some(addr)) => {
                client = addr;
                named = true;
            }
            // `UNKNOWN` / `LOCAL`: the connection is the balancer's own; served as the peer.
            Ok(None) => {}
            Err(e) => {
                record_refused_connection(ctx, peer, e.to_string());
                return None;
            }
        }
    }
    let Some(slot) = ctx
        .limits
        .admit_unless(client.ip(), ctx.trusted.contains(client.ip()))
    else {
        refuse_over_cap(ctx, client);
        return None;
    };
    // Set whenever a PROXY header named the client, even one naming the balancer itself, so the
    // trust and the event follow what the header said.
    let proxied_by = named.then_some(peer.ip());
    // Behind a PROXY-protocol balancer the socket RTT is the balancer's, not the client's.
    let fd = proxied_by
        .is_none()
        .then(|| std::os::fd::AsRawFd::as_raw_fd(&stream));
    let mut meta = ConnMeta {
        tls: None,
        proxied_by,
        fd,
    };
    let tls = match (&ctx.tls, ctx.cfg.edge.kind) {
        (Some(tls), Kind::Http) => tls.clone(),
        _ => {
            return Some(Opened {
                stream: Stream::Plain(stream),
                client,
                meta,
                h2: false,
                slot,
            });
        }
    };
    let stream = handshake(ctx, &tls, stream, client).await?;
    let (_, session) = stream.get_ref();
    let h2 = session.alpn_protocol() == Some(b"h2");
    meta.tls = Some(Arc::new(tls_info(session)));
    Some(Opened {
        stream: Stream::Tls(Box::new(stream)),
        client,
        meta,
        h2,
        slot,
    })
}

/// The TLS handshake within the listener's timeout; a failure is counted and recorded.
async fn handshake(
    ctx: &ListenerCtx,
    tls: &super::tls::TlsTerminator,
    stream: TcpStream,
    client: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    let accept = tls.acceptor().accept(stream);
    let error = match tokio::time::timeout(tls.handshake_timeout(), accept).await {
        Ok(Ok(s)) => return Some(s),
        Ok(Err(e)) => {
            tracing::debug!(listener = %ctx.cfg.name, %client, error = %e, "TLS handshake failed");
            format!("TLS handshake failed: {e}")
        }
        Err(_) => format!(
            "TLS handshake not complete within {:?}",
            tls.handshake_timeout()
        ),
    };
    ctx.shared
        .auditor
        .stats
        .bad_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    record_refused_connection(ctx, client, error);
    None
}

/// A client over its connection cap: closed at once, recorded.
pub fn refuse_over_cap(ctx: &ListenerCtx, client: SocketAddr) {
    record_refused_connection(
        ctx,
        client,
        format!(
            "client over its cap of {} open connections",
            ctx.cfg.edge.max_connections_per_client
        ),
    );
}

/// What a finished handshake tells the events and the identity step.
fn tls_info(session: &rustls::ServerConnection) -> TlsInfo {
    let mut info = TlsInfo::default();
    info.out.client.server_name = session.server_name().map(str::to_owned);
    info.out.version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => Some("1.3"),
        Some(rustls::ProtocolVersion::TLSv1_2) => Some("1.2"),
        _ => None,
    };
    // rustls only hands over certificates that chained to `client_ca`.
    if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
        use x509_parser::prelude::FromDer;
        if let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(leaf) {
            info.out.client.subject = Some(cert.subject().to_string());
        }
        let found = crate::identity::from_client_cert(leaf);
        info.identity = found.identity;
        info.problems = found.problems;
    }
    info
}
