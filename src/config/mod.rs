//! The TOML configuration: read, checked, and turned into the runtime types the core uses.
//!
//! Raw serde structs mirror the file; [`Config`] is what the rest of the program sees, so the
//! core never handles TOML. Every problem is reported as `file:line: field: what is wrong` and
//! stops the load: a gateway must not start on a config it half understood.

mod console_oidc;
mod data;
mod edge;
mod employees;
mod events;
mod history;
mod listener;
mod network;
mod outputs;
mod policy;
pub mod preset;
mod review;
mod scim;
mod secret;
mod update;
mod upstream;
mod vpn;

pub use console_oidc::OidcConfig;
pub use edge::{
    CertPair, ClientCertMode, EdgeConfig, Kind, MAX_UDP_COALESCE, SendProxy, TlsConfig,
};
pub use employees::EmployeesConfig;
pub use events::EventsConfig;
pub use listener::ListenerConfig;
pub use review::{AdminConfig, StoreConfig, StoreOnError};
pub use scim::ScimConfig;
pub use secret::Secret;
pub use update::{
    DEFAULT_MAX_SHRINK, DEFAULT_UPDATE_TIMEOUT, SourceKind, UpdateConfig, UpdateSource,
    merge_sources, preset_sources,
};
pub use upstream::{Upstream, parse_upstream};
pub use vpn::{LogInput, Management, OpenVpnUser, VpnConfig, VpnSource};

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::history::redis_link::RedisLinkConfig;
use crate::intel::{DataSources, Freshness};
use crate::policy::Policy;
use crate::policy::history::HistoryRules;
use crate::policy::wire::WireRules;
use crate::values::ConfigError;

/// The embedded default: a monitor-mode listener on 127.0.0.1:8080 in front of `builtin:whoami`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");
/// How the embedded default is named in messages.
pub const DEFAULT_LABEL: &str = "<embedded default config>";

/// A checked configuration.
#[derive(Debug)]
pub struct Config {
    /// Where it was read from.
    pub origin: String,
    /// HTTP listeners.
    pub listeners: Vec<ListenerConfig>,
    /// Where intelligence comes from.
    pub data: DataSources,
    /// Configured data paths that do not exist, located (`file:line: data.dir: ...`): `run`,
    /// `validate` and reloads refuse them; `update`, which creates them, does not.
    pub data_missing: Vec<ConfigError>,
    /// Worth saying about the data paths but not wrong (a `[data] dir` that `[update]` fills and
    /// that does not exist yet): `validate` prints them, `run` and reloads log them.
    pub data_notes: Vec<String>,
    /// `[data] dir`, resolved: where `locgate update --preset` installs by default.
    pub data_dir: Option<std::path::PathBuf>,
    /// Organisation-wide rules.
    pub policy: Policy,
    /// Event output.
    pub events: EventsConfig,
    /// Process settings.
    pub runtime: RuntimeConfig,
    /// The employee directory and per-employee rules, when configured.
    pub employees: Option<EmployeesConfig>,
    /// `[update]`: data sources `locgate update` and the in-process schedule fetch.
    pub update: Option<UpdateConfig>,
    /// Age limits past which data is reported stale.
    pub freshness: Freshness,
    /// History signals (used when an employee directory is configured).
    pub history: HistoryRules,
    /// `[history] redis`: the Redis stream through which a fleet shares history, when set.
    pub history_redis: Option<RedisLinkConfig>,
    /// Wire signals (`[network]`), when the gateway's location is given.
    pub network: Option<WireRules>,
    /// The admin API and review page, when configured.
    pub admin: Option<AdminConfig>,
    /// Webhook alerts.
    pub alerts: Vec<crate::audit::alerts::AlertRule>,
    /// The SCIM server IdPs provision employees through, when configured.
    pub scim: Option<ScimConfig>,
}

/// `[runtime]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Worker threads; `None` means one per core.
    pub worker_threads: Option<usize>,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::whole_file(&label, format!("cannot read: {e}")))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &label, &base)
    }

    /// The embedded default config.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Self::parse(DEFAULT_CONFIG, DEFAULT_LABEL, Path::new("."))
    }

    /// Parses config text; relative paths are resolved against `base` (the config's directory).
    ///
    /// Sections are checked one after another in a fixed order, and the first mistake stops the
    /// load; the order decides which mistake is named when a file has several.
    pub fn parse(text: &str, label: &str, base: &Path) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Err(ConfigError::whole_file(label, "config file is empty"));
        }
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::at_span(label, text, e.span(), e.message().trim()))?;
        let err =
            |span: Range<usize>, msg: String| ConfigError::at_span(label, text, Some(span), msg);
        let whole = |m: String| ConfigError::whole_file(label, m);

        let listeners = listener::check_all(raw.listener, base, &err)?;
        let policy = policy::check(raw.policy, &err)?;
        let update = match raw.update {
            Some(u) => Some(
                u.resolve(base, data::dir(&raw.data, base).as_deref())
                    .map_err(|(span, msg)| err(span, msg))?,
            ),
            None => None,
        };
        let freshness = data::freshness(&raw.data, update.as_ref(), base);
        let data_dir = data::dir(&raw.data, base);
        let data::Resolved {
            sources: data,
            missing: data_missing,
            notes: data_notes,
        } = data::resolve(raw.data, base, update.as_ref(), &err);
        // `[events]` is checked in two steps around `[admin]` and `[[alert]]` (see `events.rs`).
        let events_head = events::check_store(raw.events, base, &err)?;
        let mut admin = review::admin(raw.admin, base, &err, &whole)?;
        let alerts = review::alerts(raw.alert, base, &err)?;
        let events = events_head.finish(base, &err)?;
        let runtime = check_runtime(raw.runtime, &err)?;
        let employees = employees::check(raw.employees, base, &err)?;
        if let (Some(a), Some(e)) = (admin.as_mut(), employees.as_ref()) {
            a.directory_file = Some((e.file.clone(), e.default_radius_km));
        }
        let (history, history_redis) = history::check(raw.history, base, &err)?;
        let network = network::check(raw.network, &err)?;
        let scim = scim::check(
            raw.scim,
            admin.as_ref(),
            employees.as_ref(),
            base,
            &err,
            &whole,
        )?;
        Ok(Config {
            scim,
            update,
            freshness,
            network,
            history,
            history_redis,
            admin,
            alerts,
            employees,
            origin: label.to_string(),
            listeners,
            data,
            data_missing,
            data_notes,
            data_dir,
            policy,
            events,
            runtime,
        })
    }
}

/// Builds a [`ConfigError`] at a byte span of the config text. [`Config::parse`] hands one to
/// every section check, so the sections need not carry the file name and text around.
type ErrAt<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// Checks `[runtime]`.
fn check_runtime(raw: RawRuntime, err: ErrAt<'_>) -> Result<RuntimeConfig, ConfigError> {
    if let Some(n) = &raw.worker_threads
        && *n.get_ref() == 0
    {
        return Err(err(n.span(), "worker_threads must be at least 1".into()));
    }
    Ok(RuntimeConfig {
        worker_threads: raw.worker_threads.map(Spanned::into_inner),
    })
}

/// The file as serde reads it, one field per section; each section's type lives with its check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listener: Vec<listener::RawListener>,
    #[serde(default)]
    data: data::RawData,
    #[serde(default)]
    policy: policy::RawPolicy,
    #[serde(default)]
    events: events::RawEvents,
    #[serde(default)]
    runtime: RawRuntime,
    employees: Option<employees::RawEmployees>,
    update: Option<update::RawUpdate>,
    history: Option<history::RawHistory>,
    network: Option<network::RawNetwork>,
    admin: Option<review::RawAdmin>,
    #[serde(default)]
    alert: Vec<review::RawAlert>,
    scim: Option<Spanned<scim::RawScim>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    worker_threads: Option<Spanned<usize>>,
}

#[cfg(test)]
mod tests;
