//! The TOML configuration: read, checked, and turned into the runtime types the core uses.
//!
//! Raw serde structs mirror the file; [`Config`] is what the rest of the program sees, so the
//! core never handles TOML. Every problem is reported as `file:line: field: what is wrong` and
//! stops the load: a gateway must not start on a config it half understood.

mod edge;
mod error;
mod review;
mod update;
mod values;

pub use edge::{CertPair, ClientCertMode, EdgeConfig, Kind, SendProxy, TlsConfig};
pub use review::{AdminConfig, Secret, StoreConfig, StoreOnError};

pub use error::ConfigError;
pub use update::{DEFAULT_MAX_SHRINK, SourceKind, UpdateConfig, UpdateSource};
pub use values::{Dur, Net, Upstream, parse_duration, parse_net, parse_upstream};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde::Deserialize;
use toml::Spanned;

use crate::client_addr::ChainHeader;
use crate::country::{CountryCode, CountrySet};
use crate::history::redis_link::RedisLinkConfig;
use crate::identity::{Extractors, SessionConfig, SessionStore, SourceConfig};
use crate::intel::{Anonymizers, Category, CidrLists, DataSources, Freshness, ListCategory};
use crate::policy::employee::EmployeeRules;
use crate::policy::history::HistoryRules;
use crate::policy::wire::WireRules;
use crate::policy::{Action, Mode, Policy};

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
}

/// `[employees]`: who declared what, and what a mismatch does.
#[derive(Debug, Clone)]
pub struct EmployeesConfig {
    /// Directory file (TOML or CSV), resolved against the config's directory.
    pub file: PathBuf,
    /// Home radius for employees that do not declare one.
    pub default_radius_km: f64,
    /// Actions for the per-employee reasons.
    pub rules: EmployeeRules,
    /// Action when a session cookie is used from somewhere other than where it was issued.
    pub session_location_changed: Action,
}

/// One listener.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Name in events and logs.
    pub name: String,
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Where allowed requests go.
    pub upstream: Upstream,
    /// Monitor or enforce.
    pub mode: Mode,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNetwork>,
    /// Which forwarding header the trusted proxies maintain. Pinned (default `x-forwarded-for`)
    /// because a proxy that appends to one header but passes the other through untouched would
    /// let a client choose its own address if both were read.
    pub client_ip_header: ChainHeader,
    /// Send `X-Locgate-*` headers to the upstream.
    pub annotate: bool,
    /// Time allowed to connect to the upstream before answering 502.
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response headers before answering 504.
    pub response_timeout: Duration,
    /// Time a client has to send its request headers (slowloris defence).
    pub header_read_timeout: Duration,
    /// How long an idle keep-alive connection is kept open waiting for the next request.
    pub keepalive_timeout: Duration,
    /// Largest request head accepted (request line and headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Identity sources, tried in order (keys already loaded).
    pub identity: Extractors,
    /// Session-cookie learning, when configured.
    pub session: Option<SessionConfig>,
    /// Kind, TLS, PROXY protocol and connection limits (issue 4; `config/edge.rs`).
    pub edge: EdgeConfig,
}

/// `[events]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    /// JSON lines file; `None` disables it, `-` writes to standard output.
    pub jsonl: Option<PathBuf>,
    /// An allow for the same client (and user) is written at most once per this interval.
    pub allow_log_interval: Duration,
    /// The SQLite event store, when configured.
    pub store: Option<StoreConfig>,
    /// What the request path does when the writer queue is full.
    pub when_full: crate::audit::WhenFull,
    /// Writer queue capacity.
    pub queue_capacity: usize,
    /// JSON lines rotation.
    pub rotation: crate::audit::Rotation,
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
    pub fn parse(text: &str, label: &str, base: &Path) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Err(ConfigError::whole_file(label, "config file is empty"));
        }
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::at_span(label, text, e.span(), e.message().trim()))?;
        let err = |span: std::ops::Range<usize>, msg: String| {
            ConfigError::at_span(label, text, Some(span), msg)
        };

        let mut listeners = Vec::new();
        for l in raw.listener {
            if listeners
                .iter()
                .any(|x: &ListenerConfig| x.name == *l.name.get_ref())
            {
                return Err(err(
                    l.name.span(),
                    format!("listener name `{}` is used twice", l.name.get_ref()),
                ));
            }
            // Port 0 (the OS picks) never clashes; TCP and UDP listeners may share a port.
            if l.bind.get_ref().port() != 0
                && listeners.iter().any(|x: &ListenerConfig| {
                    x.bind == *l.bind.get_ref()
                        && (x.edge.kind == Kind::Udp) == (l.kind == Kind::Udp)
                })
            {
                return Err(err(
                    l.bind.span(),
                    format!("address {} is bound by two listeners", l.bind.get_ref()),
                ));
            }
            let identity = Extractors::from_config(l.identity.get_ref(), base)
                .map_err(|e| err(l.identity.span(), e))?;
            if let Some(sc) = &l.session
                && let Err(e) = SessionStore::new(sc.get_ref())
            {
                return Err(err(sc.span(), e));
            }
            let edge = edge::RawEdge {
                kind: l.kind,
                tls: l.tls,
                proxy_protocol: l.proxy_protocol,
                send_proxy_protocol: l.send_proxy_protocol,
                sni_routes: l.sni_routes,
                max_connections: l.max_connections,
                max_connections_per_client: l.max_connections_per_client,
                idle_timeout: l.idle_timeout,
            }
            .check(&l.upstream, base)
            .map_err(|e| {
                err(
                    l.name.span(),
                    format!("listener `{}`: {e}", l.name.get_ref()),
                )
            })?;
            listeners.push(ListenerConfig {
                edge,
                identity,
                session: l.session.map(Spanned::into_inner),
                name: l.name.into_inner(),
                bind: l.bind.into_inner(),
                upstream: l.upstream,
                mode: l.mode,
                trusted_proxies: l.trusted_proxies.into_iter().map(|n| n.0).collect(),
                client_ip_header: l.client_ip_header,
                annotate: l.annotate,
                connect_timeout: l.connect_timeout.map_or(Duration::from_secs(5), |d| d.0),
                response_timeout: l.response_timeout.map_or(Duration::from_secs(60), |d| d.0),
                header_read_timeout: l
                    .header_read_timeout
                    .map_or(Duration::from_secs(10), |d| d.0),
                keepalive_timeout: l.keepalive_timeout.map_or(Duration::from_secs(60), |d| d.0),
                max_header_bytes: l.max_header_bytes.unwrap_or(64 * 1024),
            });
        }

        let p = raw.policy;
        let block: Anonymizers = p.block_anonymizers.get_ref().iter().copied().collect();
        let flag: Anonymizers = p.flag_anonymizers.get_ref().iter().copied().collect();
        if let Some(c) = block.iter().find(|c| flag.contains(*c)) {
            return Err(err(
                p.flag_anonymizers.span(),
                format!("`{c}` is in both block_anonymizers and flag_anonymizers"),
            ));
        }
        let deny: CountrySet = p.deny_countries.get_ref().iter().copied().collect();
        if let Some(c) = p
            .allow_countries
            .get_ref()
            .iter()
            .find(|c| deny.contains(**c))
        {
            return Err(err(
                p.allow_countries.span(),
                format!("`{c}` is in both allow_countries and deny_countries"),
            ));
        }
        let mut allow_networks = CidrLists::default();
        let nets: Vec<IpNetwork> = p.allow_networks.iter().map(|n| n.0).collect();
        allow_networks.add(&nets, ListCategory::Trusted);
        allow_networks.propagate();
        let policy = Policy {
            sanctioned: p.sanctioned_countries.into_iter().collect(),
            deny,
            allow: p.allow_countries.into_inner().into_iter().collect(),
            block_anonymizers: block,
            flag_anonymizers: flag,
            allow_networks,
            unknown_location: p.unknown_location,
        };

        let update = match raw.update {
            Some(u) => Some(u.resolve(base).map_err(|(span, msg)| err(span, msg))?),
            None => None,
        };
        let freshness = resolve_freshness(&raw.data, update.as_ref(), base);
        let data = resolve_data(raw.data, base);
        let has_jsonl_file = raw
            .events
            .jsonl
            .as_ref()
            .is_some_and(|p| p != Path::new("-"));
        let when_full_span = raw.events.when_full.as_ref().map(|w| w.span());
        let when_full = raw
            .events
            .when_full
            .map(Spanned::into_inner)
            .unwrap_or_default();
        let store = review::store(
            raw.events.sqlite,
            raw.events.retention_days,
            raw.events.on_store_error.unwrap_or_default(),
            when_full,
            when_full_span,
            has_jsonl_file,
            base,
            &err,
        )?;
        if let Some(q) = &raw.events.queue_capacity
            && *q.get_ref() == 0
        {
            return Err(err(q.span(), "queue_capacity must be at least 1".into()));
        }
        let whole = |m: String| ConfigError::whole_file(label, m);
        let admin = review::admin(raw.admin, base, &err, &whole)?;
        let alerts = review::alerts(raw.alert, &err)?;
        let rotation = review::rotation(
            raw.events.jsonl_max_mb,
            raw.events.jsonl_max_age.map(|d| d.0),
            raw.events.jsonl_keep,
            &err,
        )?;
        let events = EventsConfig {
            rotation,
            store,
            when_full,
            queue_capacity: raw
                .events
                .queue_capacity
                .map_or(crate::audit::QUEUE_CAPACITY, Spanned::into_inner),
            jsonl: raw
                .events
                .jsonl
                .map(|p| if p == Path::new("-") { p } else { base.join(p) }),
            allow_log_interval: raw
                .events
                .allow_log_interval
                .map_or(Duration::from_secs(600), |d| d.0),
        };
        if let Some(n) = &raw.runtime.worker_threads
            && *n.get_ref() == 0
        {
            return Err(err(n.span(), "worker_threads must be at least 1".into()));
        }
        let employees = match raw.employees {
            None => None,
            Some(e) => {
                let radius = match e.default_radius_km {
                    None => 100.0,
                    Some(r) if r.get_ref().is_finite() && *r.get_ref() > 0.0 => *r.get_ref(),
                    Some(r) => {
                        return Err(err(
                            r.span(),
                            "default_radius_km must be a positive number of km".into(),
                        ));
                    }
                };
                Some(EmployeesConfig {
                    file: base.join(e.file),
                    default_radius_km: radius,
                    rules: EmployeeRules {
                        country_mismatch: e.country_mismatch,
                        outside_home_radius: e.outside_home_radius,
                        outside_home_radius_domestic: e.outside_home_radius_domestic,
                        region_mismatch: e.region_mismatch,
                        unknown_employee: e.unknown_employee,
                    },
                    session_location_changed: e.session_location_changed,
                })
            }
        };
        let (history, history_redis) = match raw.history {
            None => (HistoryRules::default(), None),
            Some(h) => {
                let link = redis_link(&h, base, &err)?;
                (history_rules(h, &err)?, link)
            }
        };
        let network = match raw.network {
            None => None,
            Some(n) => {
                let loc = n.location.get_ref();
                if !(-90.0..=90.0).contains(&loc.lat) || !(-180.0..=180.0).contains(&loc.lon) {
                    return Err(err(
                        n.location.span(),
                        "location needs lat in -90..90 and lon in -180..180".into(),
                    ));
                }
                let mut rules = WireRules::at(crate::intel::LatLon {
                    lat: loc.lat,
                    lon: loc.lon,
                });
                for (v, slot, what) in [
                    (n.rtt_factor, &mut rules.rtt_factor, "rtt_factor"),
                    (n.rtt_slack_ms, &mut rules.rtt_slack_ms, "rtt_slack_ms"),
                ] {
                    if let Some(v) = v {
                        if !(v.get_ref().is_finite() && *v.get_ref() >= 0.0) {
                            return Err(err(
                                v.span(),
                                format!("{what} must be a non-negative number"),
                            ));
                        }
                        *slot = *v.get_ref();
                    }
                }
                rules.latency_inconsistent =
                    n.latency_inconsistent.unwrap_or(rules.latency_inconsistent);
                rules.tunnel_mss = n.tunnel_mss.unwrap_or(rules.tunnel_mss);
                rules.mss_below_v4 = n.mss_below_v4.unwrap_or(rules.mss_below_v4);
                rules.mss_below_v6 = n.mss_below_v6.unwrap_or(rules.mss_below_v6);
                Some(rules)
            }
        };
        Ok(Config {
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
            policy,
            events,
            runtime: RuntimeConfig {
                worker_threads: raw.runtime.worker_threads.map(Spanned::into_inner),
            },
        })
    }
}

/// Checks `[history] redis*`: the URL must parse (the credentials in it are never echoed).
fn redis_link(
    h: &RawHistory,
    base: &Path,
    err: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<Option<RedisLinkConfig>, ConfigError> {
    let Some(url) = &h.redis else {
        return Ok(None);
    };
    if let Err(e) = redis::Client::open(url.get_ref().as_str()) {
        return Err(err(
            url.span(),
            format!(
                "not a Redis URL (redis://[:password@]host:port[/db] or rediss://...): {}",
                e
            ),
        ));
    }
    let stream = match &h.redis_stream {
        None => "locgate:history".to_string(),
        Some(s) if !s.get_ref().is_empty() => s.get_ref().clone(),
        Some(s) => return Err(err(s.span(), "redis_stream needs a key name".into())),
    };
    let ca_file = match &h.redis_ca_file {
        None => None,
        Some(p) => {
            let path = base.join(p.get_ref());
            if let Err(e) = std::fs::read(&path) {
                return Err(err(
                    p.span(),
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
            Some(path)
        }
    };
    Ok(Some(RedisLinkConfig {
        ca_file,
        url: url.get_ref().clone(),
        stream,
        retention: h
            .redis_retention
            .map_or(Duration::from_secs(30 * 86_400), |d| d.0),
        timeout: h.redis_timeout.map_or(Duration::from_secs(1), |d| d.0),
    }))
}

/// Checks `[history]` and fills defaults.
fn history_rules(
    h: RawHistory,
    err: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<HistoryRules, ConfigError> {
    let d = HistoryRules::default();
    let positive = |v: Option<Spanned<f64>>, default: f64, what: &str| match v {
        None => Ok(default),
        Some(x) if x.get_ref().is_finite() && *x.get_ref() > 0.0 => Ok(*x.get_ref()),
        Some(x) => Err(err(x.span(), format!("{what} must be a positive number"))),
    };
    let count = |v: Option<Spanned<usize>>, default: usize, what: &str| match v {
        None => Ok(default),
        Some(x) if *x.get_ref() >= 1 => Ok(*x.get_ref()),
        Some(x) => Err(err(x.span(), format!("{what} must be at least 1"))),
    };
    let hour = |v: Option<Spanned<i8>>, default: i8| match v {
        None => Ok(default),
        Some(x) if (0..24).contains(x.get_ref()) => Ok(*x.get_ref()),
        Some(x) => Err(err(x.span(), "an hour is 0 to 23".into())),
    };
    let share = match h.residence_home_share {
        None => d.residence_home_share,
        Some(x) if (0.0..=1.0).contains(x.get_ref()) => *x.get_ref(),
        Some(x) => {
            return Err(err(
                x.span(),
                "residence_home_share is a share between 0 and 1".into(),
            ));
        }
    };
    let window = match h.shared_egress_window {
        None => d.shared_egress_window,
        Some(w) => jiff::SignedDuration::try_from(w.0).unwrap_or(d.shared_egress_window),
    };
    Ok(HistoryRules {
        enabled: h.enabled.unwrap_or(d.enabled),
        impossible_travel: h.impossible_travel.unwrap_or(d.impossible_travel),
        travel_kmh: positive(
            h.impossible_travel_kmh,
            d.travel_kmh,
            "impossible_travel_kmh",
        )?,
        travel_min_km: positive(
            h.impossible_travel_min_km,
            d.travel_min_km,
            "impossible_travel_min_km",
        )?,
        shared_egress: h.shared_egress.unwrap_or(d.shared_egress),
        shared_egress_employees: count(
            h.shared_egress_employees,
            d.shared_egress_employees,
            "shared_egress_employees",
        )?,
        shared_egress_window: window,
        residence_mismatch: h.residence_mismatch.unwrap_or(d.residence_mismatch),
        residence_days: count(h.residence_days, d.residence_days, "residence_days")?,
        residence_min_days: count(
            h.residence_min_days,
            d.residence_min_days,
            "residence_min_days",
        )?,
        residence_home_share: share,
        off_hours: h.off_hours.unwrap_or(d.off_hours),
        night_start_hour: hour(h.night_start_hour, d.night_start_hour)?,
        night_end_hour: hour(h.night_end_hour, d.night_end_hour)?,
        off_hours_nights: count(h.off_hours_nights, d.off_hours_nights, "off_hours_nights")?,
    })
}

/// File names locgate recognises in `[data] dir`, most specific first. MaxMind's own names come
/// first so a geoipupdate `DatabaseDirectory` works as a data dir unchanged.
const KNOWN_DATABASES: &[&str] = &[
    "GeoIP2-City.mmdb",
    "GeoLite2-City.mmdb",
    "dbip-city-lite.mmdb",
    "city.mmdb",
    "GeoIP2-Country.mmdb",
    "GeoLite2-Country.mmdb",
    "dbip-country-lite.mmdb",
    "country.mmdb",
    "GeoIP2-Anonymous-IP.mmdb",
    "anonymous.mmdb",
    "GeoLite2-ASN.mmdb",
    "GeoIP2-ISP.mmdb",
    "asn.mmdb",
];

/// Age limits from `[data] max_age`, `tor_max_age`, each list's `max_age` and each update
/// source's `max_age`, keyed by the path as data versions name it.
fn resolve_freshness(data: &RawData, update: Option<&UpdateConfig>, base: &Path) -> Freshness {
    let mut f = Freshness::default();
    if let Some(d) = data.max_age {
        f.geo_max_age = d.0;
    }
    if let Some(d) = data.tor_max_age {
        f.tor_max_age = d.0;
    }
    for l in &data.lists {
        if let Some(d) = l.max_age {
            f.per_source
                .push((base.join(&l.path).display().to_string(), d.0));
        }
    }
    for s in update.map(|u| u.sources.as_slice()).unwrap_or_default() {
        let label = s.path.display().to_string();
        if let Some(d) = s.max_age
            && !f.per_source.iter().any(|(p, _)| *p == label)
        {
            f.per_source.push((label, d));
        }
    }
    f
}

fn resolve_data(raw: RawData, base: &Path) -> DataSources {
    let mut mmdb: Vec<PathBuf> = [raw.city_db, raw.country_db, raw.anonymous_db, raw.asn_db]
        .into_iter()
        .flatten()
        .map(|p| base.join(p))
        .collect();
    let dir = raw.dir.map(|d| base.join(d));
    if let Some(dir) = &dir {
        for name in KNOWN_DATABASES {
            let path = dir.join(name);
            let same_name = mmdb.iter().any(|p| p.file_name() == path.file_name());
            if path.is_file() && !same_name {
                mmdb.push(path);
            }
        }
    }
    let asn_table = raw.asn_table.map(|p| base.join(p)).or_else(|| {
        dir.as_ref()
            .map(|d| d.join("asn-categories.csv"))
            .filter(|p| p.is_file())
    });
    DataSources {
        mmdb,
        embedded_mmdb: raw.embedded,
        lists: raw
            .lists
            .into_iter()
            .map(|l| (base.join(l.path), l.category))
            .collect(),
        asn_table,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listener: Vec<RawListener>,
    #[serde(default)]
    data: RawData,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    events: RawEvents,
    #[serde(default)]
    runtime: RawRuntime,
    employees: Option<RawEmployees>,
    update: Option<update::RawUpdate>,
    history: Option<RawHistory>,
    network: Option<RawNetwork>,
    admin: Option<review::RawAdmin>,
    #[serde(default)]
    alert: Vec<review::RawAlert>,
}

/// `[network]`: the gateway's location and the wire signals.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    location: Spanned<RawLatLon>,
    latency_inconsistent: Option<Action>,
    rtt_factor: Option<Spanned<f64>>,
    rtt_slack_ms: Option<Spanned<f64>>,
    tunnel_mss: Option<Action>,
    mss_below_v4: Option<u32>,
    mss_below_v6: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLatLon {
    lat: f64,
    lon: f64,
}

/// `[history]`; every field optional, defaults in [`HistoryRules::default`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    enabled: Option<bool>,
    impossible_travel: Option<Action>,
    impossible_travel_kmh: Option<Spanned<f64>>,
    impossible_travel_min_km: Option<Spanned<f64>>,
    shared_egress: Option<Action>,
    shared_egress_employees: Option<Spanned<usize>>,
    shared_egress_window: Option<Dur>,
    residence_mismatch: Option<Action>,
    residence_days: Option<Spanned<usize>>,
    residence_min_days: Option<Spanned<usize>>,
    residence_home_share: Option<Spanned<f64>>,
    off_hours: Option<Action>,
    night_start_hour: Option<Spanned<i8>>,
    night_end_hour: Option<Spanned<i8>>,
    off_hours_nights: Option<Spanned<usize>>,
    redis: Option<Spanned<String>>,
    redis_stream: Option<Spanned<String>>,
    redis_retention: Option<Dur>,
    redis_timeout: Option<Dur>,
    redis_ca_file: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Spanned<String>,
    bind: Spanned<SocketAddr>,
    upstream: Upstream,
    #[serde(default = "default_mode")]
    mode: Mode,
    #[serde(default)]
    trusted_proxies: Vec<Net>,
    #[serde(default = "default_client_ip_header")]
    client_ip_header: ChainHeader,
    #[serde(default)]
    annotate: bool,
    connect_timeout: Option<Dur>,
    response_timeout: Option<Dur>,
    header_read_timeout: Option<Dur>,
    keepalive_timeout: Option<Dur>,
    max_header_bytes: Option<usize>,
    #[serde(default = "no_identity")]
    identity: Spanned<Vec<SourceConfig>>,
    session: Option<Spanned<SessionConfig>>,
    #[serde(default)]
    kind: Kind,
    tls: Option<TlsConfig>,
    #[serde(default)]
    proxy_protocol: bool,
    send_proxy_protocol: Option<SendProxy>,
    #[serde(default)]
    sni_routes: std::collections::BTreeMap<String, String>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    idle_timeout: Option<Dur>,
}

fn no_identity() -> Spanned<Vec<SourceConfig>> {
    Spanned::new(0..0, Vec::new())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmployees {
    file: PathBuf,
    default_radius_km: Option<Spanned<f64>>,
    #[serde(default = "flag")]
    unknown_employee: Action,
    #[serde(default = "flag")]
    country_mismatch: Action,
    #[serde(default = "flag")]
    outside_home_radius: Action,
    #[serde(default = "note")]
    outside_home_radius_domestic: Action,
    #[serde(default = "note")]
    region_mismatch: Action,
    #[serde(default = "flag")]
    session_location_changed: Action,
}

fn flag() -> Action {
    Action::Flag
}

fn note() -> Action {
    Action::Note
}

fn default_client_ip_header() -> ChainHeader {
    ChainHeader::XForwardedFor
}

fn default_mode() -> Mode {
    Mode::Monitor
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    dir: Option<PathBuf>,
    country_db: Option<PathBuf>,
    city_db: Option<PathBuf>,
    asn_db: Option<PathBuf>,
    anonymous_db: Option<PathBuf>,
    asn_table: Option<PathBuf>,
    #[serde(default)]
    lists: Vec<RawList>,
    /// The embedded databases fill whatever the configured files do not answer.
    #[serde(default = "yes")]
    embedded: bool,
    /// Databases older than this are reported stale (default 35 days).
    max_age: Option<Dur>,
    /// Tor exit lists older than this are reported stale (default 2 days).
    tor_max_age: Option<Dur>,
}

impl Default for RawData {
    fn default() -> Self {
        RawData {
            dir: None,
            country_db: None,
            city_db: None,
            asn_db: None,
            anonymous_db: None,
            asn_table: None,
            lists: Vec::new(),
            embedded: true,
            max_age: None,
            tor_max_age: None,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    path: PathBuf,
    category: ListCategory,
    /// Reported stale past this age.
    max_age: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default = "default_sanctioned")]
    sanctioned_countries: Vec<CountryCode>,
    #[serde(default = "empty_countries")]
    deny_countries: Spanned<Vec<CountryCode>>,
    #[serde(default = "empty_countries")]
    allow_countries: Spanned<Vec<CountryCode>>,
    #[serde(default = "default_block")]
    block_anonymizers: Spanned<Vec<Category>>,
    #[serde(default = "default_flag")]
    flag_anonymizers: Spanned<Vec<Category>>,
    #[serde(default)]
    allow_networks: Vec<Net>,
    #[serde(default = "default_unknown")]
    unknown_location: Action,
}

impl Default for RawPolicy {
    fn default() -> Self {
        RawPolicy {
            sanctioned_countries: default_sanctioned(),
            deny_countries: empty_countries(),
            allow_countries: empty_countries(),
            block_anonymizers: default_block(),
            flag_anonymizers: default_flag(),
            allow_networks: Vec::new(),
            unknown_location: default_unknown(),
        }
    }
}

fn default_sanctioned() -> Vec<CountryCode> {
    ["KP", "IR", "CU", "SY"]
        .iter()
        .filter_map(|c| CountryCode::parse(c))
        .collect()
}

fn empty_countries() -> Spanned<Vec<CountryCode>> {
    Spanned::new(0..0, Vec::new())
}

fn default_block() -> Spanned<Vec<Category>> {
    Spanned::new(0..0, vec![Category::TorExit])
}

fn default_flag() -> Spanned<Vec<Category>> {
    Spanned::new(
        0..0,
        vec![
            Category::AnonymousVpn,
            Category::HostingProvider,
            Category::PublicProxy,
            Category::ResidentialProxy,
        ],
    )
}

fn default_unknown() -> Action {
    Action::Flag
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    jsonl: Option<PathBuf>,
    allow_log_interval: Option<Dur>,
    sqlite: Option<PathBuf>,
    retention_days: Option<Spanned<u32>>,
    when_full: Option<Spanned<crate::audit::WhenFull>>,
    queue_capacity: Option<Spanned<usize>>,
    on_store_error: Option<StoreOnError>,
    jsonl_max_mb: Option<Spanned<u64>>,
    jsonl_max_age: Option<Dur>,
    jsonl_keep: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    worker_threads: Option<Spanned<usize>>,
}

#[cfg(test)]
mod tests;
