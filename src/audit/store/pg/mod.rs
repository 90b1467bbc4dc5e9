//! The fleet's shared event store on PostgreSQL (`[events] postgres`): every instance writes its
//! events there from its writer thread, and the review page and API of any instance read the
//! whole fleet. SQLite stays the single-instance default; both speak through the same [`Row`]
//! and the same review filters.
//!
//! One file per job: this one connects (password from a file, TLS with a private CA),
//! `schema` migrates under an advisory lock, `ops` reads and writes, `spool` keeps events on
//! disk while the database is away and `sink` is the writer thread's side of it all.

mod ops;
mod schema;
mod sink;
mod spool;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use sink::{PgHealth, PgSink};

use super::error::{Result, StoreError};

/// Where the shared store is and how to reach it.
#[derive(Clone, PartialEq)]
pub struct PgTarget {
    /// Connection URL or key=value string, without a password.
    pub url: String,
    /// The password (`postgres_password_file`).
    pub password: Option<String>,
    /// Private CA to verify the server with; with it, TLS is required.
    pub ca_file: Option<PathBuf>,
    /// Local spool for events written while the database is unreachable.
    pub spool: PathBuf,
    /// Largest the spool may grow; beyond it events are dropped (and counted).
    pub spool_max_bytes: u64,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("spool", &self.spool)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .finish()
    }
}

/// How long a connection attempt may take: the writer thread waits on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl PgTarget {
    /// Parses the URL: what the config check calls to name a bad one at its line.
    pub fn parse(url: &str) -> std::result::Result<postgres::Config, String> {
        let cfg = postgres::Config::from_str(url).map_err(|e| e.to_string())?;
        if cfg.get_password().is_some() {
            return Err("a password in the URL shows up in logs and process lists: put it in postgres_password_file".into());
        }
        if cfg.get_hosts().is_empty() {
            return Err("the URL names no host".into());
        }
        if cfg.get_dbname().is_none() {
            return Err("the URL names no database".into());
        }
        Ok(cfg)
    }

    /// What messages call the database: user, hosts and name, never the password.
    pub fn label(&self) -> String {
        let Ok(cfg) = postgres::Config::from_str(&self.url) else {
            return "postgres (bad URL)".into();
        };
        let hosts: Vec<String> = cfg
            .get_hosts()
            .iter()
            .zip(cfg.get_ports().iter().chain(std::iter::repeat(&5432)))
            .map(|(h, p)| match h {
                postgres::config::Host::Tcp(h) => format!("{h}:{p}"),
                postgres::config::Host::Unix(d) => format!("{}", d.display()),
            })
            .collect();
        format!(
            "postgres://{}@{}/{}",
            cfg.get_user().unwrap_or(""),
            hosts.join(","),
            cfg.get_dbname().unwrap_or("")
        )
    }

    /// Opens a connection and brings the schema up to date (refusing a newer one).
    pub fn connect(&self) -> Result<PgStore> {
        let label = self.label();
        let mut cfg = Self::parse(&self.url)
            .map_err(|e| StoreError::Invalid(format!("event store {label}: {e}")))?;
        if let Some(p) = &self.password {
            cfg.password(p.as_bytes());
        }
        cfg.connect_timeout(CONNECT_TIMEOUT);
        cfg.application_name("locgate");
        let pg = |source| StoreError::Postgres {
            target: label.clone(),
            source,
        };
        let mut client = match &self.ca_file {
            Some(ca) => {
                cfg.ssl_mode(postgres::config::SslMode::Require);
                let tls = tls_with_ca(ca).map_err(|e| {
                    StoreError::Invalid(format!("event store {label}: postgres_ca_file: {e}"))
                })?;
                cfg.connect(tls).map_err(pg)?
            }
            None => cfg.connect(postgres::NoTls).map_err(pg)?,
        };
        schema::migrate(&mut client, &label)?;
        Ok(PgStore { client, label })
    }
}

/// A TLS connector that trusts only the CA in `path` (and checks the server's name).
fn tls_with_ca(
    path: &std::path::Path,
) -> std::result::Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// An open connection to the shared store.
pub struct PgStore {
    pub(super) client: postgres::Client,
    pub(super) label: String,
}

impl PgStore {
    /// The error for a failed call on this database.
    pub(super) fn pg(&self, source: postgres::Error) -> StoreError {
        StoreError::Postgres {
            target: self.label.clone(),
            source,
        }
    }

    /// Whether the connection is gone (the next use must reconnect).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}
