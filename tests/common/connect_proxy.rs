//! A recording forward proxy on loopback, for proving that downloads go through a proxy.
//!
//! It answers `CONNECT host:port` for the host names it was made for with `200`, then plays the
//! destination: it terminates the client's TLS with a certificate for that name (signed by a CA
//! the test hands to the client through `SSL_CERT_FILE`) and relays the one request inside to a
//! plain-HTTP origin on loopback. The names need not resolve: only a client that really sent its
//! request through the proxy can reach them. Every request line is recorded with its
//! `Proxy-Authorization`; anything but `CONNECT` (a plain-HTTP proxy request) is answered 502.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    /// The request line, e.g. `CONNECT lists.example.test:443 HTTP/1.1`.
    pub line: String,
    /// The `Proxy-Authorization` header, if sent.
    pub authorization: Option<String>,
}

/// The running proxy.
pub struct ConnectProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The CA that signed the certificates it presents (PEM), for `SSL_CERT_FILE`.
    pub ca_pem: String,
    log: Arc<Mutex<Vec<ProxyRequest>>>,
}

impl ConnectProxy {
    /// Starts the proxy on loopback; `CONNECT` to any of `names` reaches `origin`.
    pub fn start(names: &[&str], origin: SocketAddr) -> Self {
        let pki = super::ca_signed_leaf(names);
        let certs = vec![CertificateDer::from(pki.cert_der)];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der));
        let ca_pem = pki.ca_pem;
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
        let tls = Arc::new(tls);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let log: Arc<Mutex<Vec<ProxyRequest>>> = Arc::default();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let l = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (tls, l, names) = (tls.clone(), l.clone(), names.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &tls, origin, &names, &l);
                });
            }
        });
        ConnectProxy { addr, ca_pem, log }
    }

    /// `http://127.0.0.1:port`, for the proxy variables and GeoIP.conf.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.log.lock().expect("log").clone()
    }
}

/// Reads up to the end of a request head (no body follows in these tests).
fn read_head(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(head)
}

fn serve(
    mut s: TcpStream,
    tls: &Arc<rustls::ServerConfig>,
    origin: SocketAddr,
    names: &[String],
    log: &Mutex<Vec<ProxyRequest>>,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = String::from_utf8_lossy(&read_head(&mut s)?).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default().to_string();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_string());
    log.lock().expect("log").push(ProxyRequest {
        line: line.clone(),
        authorization,
    });
    let host = line
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(':').next())
        .filter(|h| names.iter().any(|n| n == h));
    if host.is_none() {
        return s.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
    }
    s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    let conn = rustls::ServerConnection::new(tls.clone()).map_err(std::io::Error::other)?;
    let mut tunnel = rustls::StreamOwned::new(conn, s);
    let request = read_head(&mut tunnel)?;
    let mut up = TcpStream::connect(origin)?;
    up.write_all(&request)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    tunnel.write_all(&answer)?;
    tunnel.conn.send_close_notify();
    tunnel.flush()
}
