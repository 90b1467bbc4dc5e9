//! TLS termination: certificates from PEM files, chosen by SNI; optional or required client
//! certificates; ALPN `h2` and `http/1.1`; TLS 1.2 and 1.3 only; reload without dropping
//! connections.
//!
//! A [`TlsTerminator`] holds the current `rustls::ServerConfig` behind an `ArcSwap`. Each
//! handshake takes the config current at that moment, so [`TlsTerminator::reload`] (or the
//! process-wide [`reload_tls`]) changes what *new* connections get while established ones keep
//! the session they negotiated. A reload that fails keeps the old certificates and says why.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertPair, ClientCertMode, TlsConfig};

/// The ring provider: aws-lc-rs builds too, but triples the build time (DESIGN.md).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One listener's TLS settings, reloadable.
pub struct TlsTerminator {
    /// Listener name, for messages.
    listener: String,
    cfg: TlsConfig,
    current: ArcSwap<ServerConfig>,
}

impl std::fmt::Debug for TlsTerminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTerminator")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

/// Every live terminator, so a SIGHUP handler can reload them all without holding handles.
static REGISTRY: Mutex<Vec<Weak<TlsTerminator>>> = Mutex::new(Vec::new());

impl TlsTerminator {
    /// Loads every file named by `cfg`. The error names the file and what is wrong with it;
    /// the gateway must not start on it.
    pub fn load(listener: &str, cfg: &TlsConfig) -> Result<Arc<Self>, String> {
        let server = build(cfg).map_err(|e| format!("listener {listener}: tls: {e}"))?;
        let t = Arc::new(TlsTerminator {
            listener: listener.to_owned(),
            cfg: cfg.clone(),
            current: ArcSwap::from_pointee(server),
        });
        if let Ok(mut reg) = REGISTRY.lock() {
            reg.retain(|w| w.strong_count() > 0);
            reg.push(Arc::downgrade(&t));
        }
        Ok(t)
    }

    /// Re-reads the certificate, key and CA files. On success new handshakes use them; open
    /// connections are untouched. On failure the previous configuration stays.
    pub fn reload(&self) -> Result<(), String> {
        let server =
            build(&self.cfg).map_err(|e| format!("listener {}: tls: {e}", self.listener))?;
        self.current.store(Arc::new(server));
        Ok(())
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// The configured handshake deadline.
    pub fn handshake_timeout(&self) -> std::time::Duration {
        self.cfg.handshake_timeout()
    }
}

/// Reads and checks every file of `cfg` without serving (`locgate validate`).
pub fn check(listener: &str, cfg: &TlsConfig) -> Result<(), String> {
    build(cfg)
        .map(drop)
        .map_err(|e| format!("listener {listener}: tls: {e}"))
}

/// Reloads the certificates of every TLS listener of this process (call it on SIGHUP).
/// Returns, per listener, whether its reload worked; a failed one keeps serving its old
/// certificates. Open connections are never dropped.
pub fn reload_tls() -> Vec<(String, Result<(), String>)> {
    let live: Vec<Arc<TlsTerminator>> = match REGISTRY.lock() {
        Ok(mut reg) => {
            reg.retain(|w| w.strong_count() > 0);
            reg.iter().filter_map(Weak::upgrade).collect()
        }
        Err(_) => Vec::new(),
    };
    live.iter()
        .map(|t| (t.listener.clone(), t.reload()))
        .collect()
}

/// Builds the rustls configuration from files.
fn build(cfg: &TlsConfig) -> Result<ServerConfig, String> {
    let provider = provider();
    let default = load_pair(&cfg.cert, &cfg.key, &provider)?;
    let mut resolver = SniResolver {
        exact: HashMap::new(),
        wildcard: HashMap::new(),
        default: Arc::new(default),
    };
    // The default certificate's names are routed too, so an SNI that names it gets it even
    // when another certificate also has a wildcard covering it.
    let mut pairs = vec![(cfg.cert.as_path(), resolver.default.clone())];
    for CertPair { cert, key } in &cfg.sni {
        pairs.push((cert.as_path(), Arc::new(load_pair(cert, key, &provider)?)));
    }
    for (path, ck) in pairs {
        let names = dns_names(&ck.cert[0]).map_err(|e| format!("{}: {e}", path.display()))?;
        for name in names {
            match name.strip_prefix("*.") {
                Some(suffix) => resolver.wildcard.entry(suffix.to_owned()),
                None => resolver.exact.entry(name),
            }
            .or_insert_with(|| ck.clone());
        }
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("protocol versions: {e}"))?;
    let builder = match (cfg.client_cert, &cfg.client_ca) {
        (ClientCertMode::None, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", ca.display()))?;
            }
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let b = if mode == ClientCertMode::Optional {
                b.allow_unauthenticated()
            } else {
                b
            };
            let verifier = b.build().map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_cert_resolver(Arc::new(resolver));
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // rustls lists its suites strongest first; the server's order wins over a client's
    // (testssl.sh flags a missing server order).
    server.ignore_client_order = true;
    Ok(server)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read certificates: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", path.display()));
    }
    Ok(certs)
}

fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = read_certs(cert)?;
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: no usable private key: {e}", key.display()))?;
    CertifiedKey::from_der(chain, der, provider).map_err(|e| {
        format!(
            "{} / {}: key does not fit the certificate or is not supported: {e}",
            cert.display(),
            key.display()
        )
    })
}

/// The DNS names of a leaf certificate's subjectAltName, lower case.
fn dns_names(der: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|_| "leaf certificate is not valid DER".to_owned())?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| "malformed subjectAltName".to_owned())?;
    Ok(san
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Picks the certificate by SNI: exact name, then `*.` wildcard one label deep, then the
/// listener's default (clients without SNI, or asking for a name we do not have, get the
/// default rather than a failed handshake, as nginx does).
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        // rustls hands over a validated DNS name; it may still be mixed case.
        let name = name.to_ascii_lowercase();
        if let Some(ck) = self.exact.get(&name) {
            return Some(ck.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(ck) = self.wildcard.get(parent)
        {
            return Some(ck.clone());
        }
        Some(self.default.clone())
    }
}
