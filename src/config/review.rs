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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    #[serde(default = "default_admin_bind")]
    bind: SocketAddr,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<PathBuf>>,
    tls: Option<super::TlsConfig>,
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
    /// SQLite file.
    pub sqlite: PathBuf,
    /// Events older than this many days are deleted (hourly).
    pub retention_days: Option<u32>,
    /// What to do if it cannot be opened.
    pub on_error: StoreOnError,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn store(
    sqlite: Option<PathBuf>,
    retention_days: Option<Spanned<u32>>,
    on_error: StoreOnError,
    when_full: WhenFull,
    when_full_span: Option<std::ops::Range<usize>>,
    has_jsonl_file: bool,
    base: &Path,
    err: ErrAt<'_>,
) -> Result<Option<StoreConfig>, ConfigError> {
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
    Ok(sqlite.map(|p| StoreConfig {
        sqlite: base.join(p),
        retention_days: retention_days.map(Spanned::into_inner),
        on_error,
    }))
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
