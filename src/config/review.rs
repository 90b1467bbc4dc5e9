//! `[events]` store settings, `[admin]` and `[[alert]]`: the review side of the config (issue 5),
//! kept apart from the proxy's settings so each can change without touching the other.
//!
//! `[admin]` takes `bind`, `token` or `token_file`, and optionally `tls = { cert, key, .. }`
//! (the listener's TLS settings): HTTPS for the console, whose session cookie is then `Secure`.
//! Without `tls` the console should stay on loopback (a warning says so otherwise).
//!
//! `[[alert]]` may set request headers (`headers = { Authorization = "Splunk ..." }`) or a
//! `token_file` (sent as `Authorization: Bearer <token>`, or `token_scheme`), checked like the
//! event outputs' (`outputs::headers`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ErrAt;
use super::secret::{Secret, secret};
use crate::audit::WhenFull;
use crate::audit::alerts::{AlertFormat, AlertRule};
use crate::audit::store::{PgTarget, StoreLocation};
use crate::values::{ConfigError, Dur};

/// What to do when the SQLite store cannot be opened at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreOnError {
    /// Refuse to start (default): review depends on the store.
    #[default]
    Stop,
    /// Serve anyway on JSON lines only, and say so loudly (log, `/readyz`, metrics).
    JsonlOnly,
}

/// `[admin]`: the review API and page, on their own listener.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Address (loopback by default).
    pub bind: SocketAddr,
    /// The bearer token every route requires.
    pub token: Secret,
    /// HTTPS for the console (`tls = { cert, key }`, the listener's TLS settings); the browser
    /// cookie is then marked `Secure`. Without it, keep the console on loopback.
    pub tls: Option<super::TlsConfig>,
    /// Browser sign-in with the company's identity provider (`[admin.oidc]`).
    pub oidc: Option<super::OidcConfig>,
    /// The `[employees] file` (and its default radius), where a case decided benign can write
    /// an allowed network or a trip back to; not an `[admin]` key.
    pub directory_file: Option<(PathBuf, f64)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    #[serde(default = "default_admin_bind")]
    bind: SocketAddr,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<PathBuf>>,
    tls: Option<super::TlsConfig>,
    oidc: Option<super::console_oidc::RawOidc>,
}

fn default_admin_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlert {
    webhook: Spanned<String>,
    #[serde(default = "default_format")]
    format: AlertFormat,
    on: Spanned<Vec<String>>,
    dedup_interval: Option<Dur>,
    retries: Option<u32>,
    backoff: Option<Dur>,
    headers: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    token_file: Option<Spanned<PathBuf>>,
    token_scheme: Option<Spanned<String>>,
}

fn default_format() -> AlertFormat {
    AlertFormat::Json
}

pub(super) fn admin(
    raw: Option<RawAdmin>,
    base: &Path,
    err: ErrAt<'_>,
    whole: &dyn Fn(String) -> ConfigError,
) -> Result<Option<AdminConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let token = secret("admin", raw.token, raw.token_file, base, err, whole)?;
    Ok(Some(AdminConfig {
        bind: raw.bind,
        token,
        tls: raw.tls.map(|t| t.resolve(base)),
        oidc: super::console_oidc::oidc(raw.oidc, base, err)?,
        directory_file: None,
    }))
}

/// Triggers accepted in `on`: actions and the stable reason codes.
const TRIGGERS: &[&str] = &[
    "block",
    "flag",
    "country_not_allowed",
    "sanctioned_country",
    "outside_home_radius",
    "country_mismatch",
    "region_mismatch",
    "anonymous_vpn",
    "hosting_provider",
    "tor_exit",
    "public_proxy",
    "residential_proxy",
    "relay",
    "impossible_travel",
    "shared_egress",
    "session_location_changed",
    "latency_inconsistent",
    "tunnel_mss",
    "off_hours",
    "unknown_employee",
    "unknown_location",
    "internal_address",
    "data_unavailable",
    "identity_unreadable",
    "identity_conflict",
];

pub(super) fn alerts(
    raw: Vec<RawAlert>,
    base: &Path,
    err: ErrAt<'_>,
) -> Result<Vec<AlertRule>, ConfigError> {
    let mut out = Vec::new();
    for a in raw {
        let (host, port, path) =
            AlertRule::parse_url(a.webhook.get_ref()).map_err(|e| err(a.webhook.span(), e))?;
        if a.on.get_ref().is_empty() {
            return Err(err(a.on.span(), "on: list at least one trigger".into()));
        }
        if let Some(bad) =
            a.on.get_ref()
                .iter()
                .find(|t| !TRIGGERS.contains(&t.as_str()))
        {
            return Err(err(
                a.on.span(),
                format!("`{bad}` is not `block`, `flag` or a reason code"),
            ));
        }
        let headers = super::outputs::headers(a.headers, a.token_file, a.token_scheme, base, err)?;
        out.push(AlertRule {
            headers,
            webhook: a.webhook.into_inner(),
            host,
            port,
            path,
            format: a.format,
            on: a.on.into_inner(),
            dedup_interval: a.dedup_interval.map_or(Duration::from_secs(600), |d| d.0),
            retries: a.retries.unwrap_or(5).min(20),
            backoff: a.backoff.map_or(Duration::from_secs(1), |d| d.0),
        });
    }
    Ok(out)
}

/// The store part of `[events]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Where: a SQLite file (`sqlite`) or the fleet's PostgreSQL (`postgres`).
    pub location: crate::audit::store::StoreLocation,
    /// Events older than this many days are deleted (hourly).
    pub retention_days: Option<u32>,
    /// What to do if it cannot be opened.
    pub on_error: StoreOnError,
}

/// `[events] postgres*` as written.
#[derive(Default)]
pub(super) struct RawPostgres {
    pub(super) url: Option<Spanned<String>>,
    pub(super) password_file: Option<Spanned<PathBuf>>,
    pub(super) ca_file: Option<Spanned<PathBuf>>,
    pub(super) spool: Option<Spanned<PathBuf>>,
    pub(super) spool_max_mb: Option<Spanned<u64>>,
}

/// Default bound of the PostgreSQL spool.
const DEFAULT_SPOOL_MB: u64 = 1024;

#[allow(clippy::too_many_arguments)]
pub(super) fn store(
    sqlite: Option<PathBuf>,
    postgres: RawPostgres,
    jsonl: Option<&Path>,
    retention_days: Option<Spanned<u32>>,
    on_error: StoreOnError,
    when_full: WhenFull,
    when_full_span: Option<std::ops::Range<usize>>,
    base: &Path,
    err: ErrAt<'_>,
) -> Result<Option<StoreConfig>, ConfigError> {
    let has_jsonl_file = jsonl.is_some_and(|p| p != Path::new("-"));
    if when_full == WhenFull::Spill && !has_jsonl_file {
        return Err(err(
            when_full_span.unwrap_or(0..0),
            "when_full = \"spill\" needs a jsonl file to spill to".into(),
        ));
    }
    if let Some(r) = &retention_days
        && *r.get_ref() == 0
    {
        return Err(err(r.span(), "retention_days must be at least 1".into()));
    }
    let location = match (sqlite, postgres.url) {
        (Some(_), Some(url)) => {
            return Err(err(
                url.span(),
                "give either sqlite (one instance) or postgres (a fleet), not both".into(),
            ));
        }
        (Some(p), None) => Some(StoreLocation::Sqlite(base.join(p))),
        (None, Some(url)) => Some(StoreLocation::Postgres(postgres_target(
            url,
            postgres.password_file,
            postgres.ca_file,
            postgres.spool,
            postgres.spool_max_mb,
            jsonl.filter(|_| has_jsonl_file),
            base,
            err,
        )?)),
        (None, None) => {
            let stray = [
                postgres.password_file.map(|s| s.span()),
                postgres.ca_file.map(|s| s.span()),
                postgres.spool.map(|s| s.span()),
                postgres.spool_max_mb.map(|s| s.span()),
            ];
            if let Some(span) = stray.into_iter().flatten().next() {
                return Err(err(
                    span,
                    "postgres_* settings need postgres = \"postgres://...\"".into(),
                ));
            }
            None
        }
    };
    Ok(location.map(|location| StoreConfig {
        location,
        retention_days: retention_days.map(Spanned::into_inner),
        on_error,
    }))
}

/// `postgres = URL` with its password file, CA and spool, checked.
#[allow(clippy::too_many_arguments)]
fn postgres_target(
    url: Spanned<String>,
    password_file: Option<Spanned<PathBuf>>,
    ca_file: Option<Spanned<PathBuf>>,
    spool: Option<Spanned<PathBuf>>,
    spool_max_mb: Option<Spanned<u64>>,
    jsonl: Option<&Path>,
    base: &Path,
    err: ErrAt<'_>,
) -> Result<PgTarget, ConfigError> {
    PgTarget::parse(url.get_ref()).map_err(|e| err(url.span(), format!("postgres: {e}")))?;
    let password = match password_file {
        Some(f) => {
            let path = base.join(f.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                err(
                    f.span(),
                    format!("postgres_password_file {}: {e}", path.display()),
                )
            })?;
            let pw = text.trim_end_matches(['\n', '\r']).to_owned();
            if pw.is_empty() {
                return Err(err(
                    f.span(),
                    format!("postgres_password_file {} is empty", path.display()),
                ));
            }
            Some(pw)
        }
        None => None,
    };
    let ca_file = match ca_file {
        Some(f) => {
            let path = base.join(f.get_ref());
            if !path.is_file() {
                return Err(err(
                    f.span(),
                    format!("postgres_ca_file {}: no such file", path.display()),
                ));
            }
            Some(path)
        }
        None => None,
    };
    let spool = match (spool, jsonl) {
        (Some(s), _) => base.join(s.get_ref()),
        (None, Some(j)) => j
            .parent()
            .unwrap_or(Path::new("."))
            .join("postgres-spool.jsonl"),
        (None, None) => {
            return Err(err(
                url.span(),
                "postgres needs a local spool for outages: set postgres_spool = \"/var/lib/locgate/postgres-spool.jsonl\" (or a jsonl file beside which it goes)".into(),
            ));
        }
    };
    let spool_max_mb = match spool_max_mb {
        Some(m) if *m.get_ref() == 0 => {
            return Err(err(
                m.span(),
                "postgres_spool_max_mb must be at least 1".into(),
            ));
        }
        Some(m) => m.into_inner(),
        None => DEFAULT_SPOOL_MB,
    };
    Ok(PgTarget {
        url: url.into_inner(),
        password,
        ca_file,
        spool,
        spool_max_bytes: spool_max_mb.saturating_mul(1_000_000),
    })
}

/// `jsonl_max_mb`, `jsonl_max_age`, `jsonl_keep` (default 7 rotated files).
pub(super) fn rotation(
    max_mb: Option<Spanned<u64>>,
    max_age: Option<Duration>,
    keep: Option<Spanned<u32>>,
    err: ErrAt<'_>,
) -> Result<crate::audit::Rotation, ConfigError> {
    if let Some(m) = &max_mb
        && *m.get_ref() == 0
    {
        return Err(err(m.span(), "jsonl_max_mb must be at least 1".into()));
    }
    if let Some(k) = &keep
        && !(1..=1000).contains(k.get_ref())
    {
        return Err(err(k.span(), "jsonl_keep must be 1..=1000".into()));
    }
    Ok(crate::audit::Rotation {
        max_bytes: max_mb.map(|m| m.into_inner().saturating_mul(1024 * 1024)),
        max_age: max_age.filter(|d| !d.is_zero()),
        keep: keep.map_or(7, Spanned::into_inner),
    })
}
