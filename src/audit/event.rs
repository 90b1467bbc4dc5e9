//! The audit event, in Elastic Common Schema names so a SIEM ingests it without mapping work.
//!
//! Every field outside `locgate.*` is an ECS 8.x field of the ECS type (checked by
//! `tests/ecs.rs` against `tests/fixtures/ecs/fields.json`), and every event carries the
//! categorization fields (`event.kind`, `event.category`, `event.type`, `event.outcome`) with
//! ECS's allowed values, so Elastic's, Splunk's and Sentinel's ECS content applies unmapped.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::intel::{Category, DataShown, LocationPrecision, Observation};
use crate::policy::{Action, Decision, Mode};

/// The ECS version the events follow (`ecs.version`).
pub const ECS_VERSION: &str = "8.11.0";

/// One decision, as written to JSON lines (and later to the event store).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// When the decision was made (RFC 3339, UTC).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// ECS `ecs.version`: which schema the fields follow, so a SIEM pipeline can tell.
    pub ecs: Ecs,
    /// ECS `event.*`.
    pub event: EventMeta,
    /// The reason sentences joined, for humans reading the SIEM.
    pub message: String,
    /// ECS `observer.*` and `host.*`: which locgate instance wrote the event, so events from
    /// several instances can be told apart. Stamped by [`crate::audit::Auditor::record`] (or
    /// by `check` / `replay`); one shared value per process, so stamping costs a reference count.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Arc<Origin>>,
    /// ECS `source.*`: the client as resolved.
    pub source: Source,
    /// ECS `destination.*`: the upstream of a pass-through tunnel, on its close event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
    /// ECS `url.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    /// ECS `http.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    /// ECS `user.*`, when the employee is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// ECS `network.*`: the transport, so HTTP, TCP and UDP events share one schema.
    pub network: Network,
    /// ECS `tls.*`, for connections that carried TLS (terminated, or SNI peeked on pass-through).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsOut>,
    /// locgate's own fields.
    pub locgate: Locgate,
}

/// ECS `network.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Network {
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// Bytes both ways, on a tunnel's close event (`source.bytes + destination.bytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// ECS `ecs.*`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Ecs {
    /// [`ECS_VERSION`].
    pub version: &'static str,
}

impl Default for Ecs {
    fn default() -> Self {
        Ecs {
            version: ECS_VERSION,
        }
    }
}

/// Who wrote an event: ECS `observer.*` (this gateway, as a network device a SIEM knows by
/// type) and `host.*` (the machine it runs on).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Origin {
    /// ECS `observer.*`.
    pub observer: Observer,
    /// ECS `host.*`.
    pub host: Host,
}

/// ECS `observer.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Observer {
    /// The machine's host name.
    pub hostname: String,
    /// The instance name (`[events] instance`, default the host name): what tells two
    /// instances on one host, or two hosts behind one balancer, apart.
    pub name: String,
    /// Always `proxy`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `locgate`.
    pub vendor: &'static str,
    /// `locgate`.
    pub product: &'static str,
    /// This build's version.
    pub version: &'static str,
}

/// ECS `host.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Host {
    /// The host name (ECS recommends the same value as `host.hostname` where there is no
    /// better name).
    pub name: String,
    /// The host name as the kernel reports it.
    pub hostname: String,
}

impl Origin {
    /// This process's origin: the kernel's host name, and `instance` (or the host name) as the
    /// observer's name.
    pub fn new(instance: Option<&str>) -> Origin {
        let hostname = host_name();
        Origin {
            observer: Observer {
                hostname: hostname.clone(),
                name: instance.map_or_else(|| hostname.clone(), str::to_owned),
                kind: "proxy",
                vendor: "locgate",
                product: "locgate",
                version: env!("CARGO_PKG_VERSION"),
            },
            host: Host {
                name: hostname.clone(),
                hostname,
            },
        }
    }
}

/// The kernel's host name (`uname -n`); `localhost` if it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// ECS `destination.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Destination {
    /// The upstream's host as configured (a name or an address, without the port).
    pub address: String,
    /// The upstream's address, when `address` is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The upstream's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Bytes the upstream sent to the client.
    pub bytes: u64,
}

impl Destination {
    /// The destination of a tunnel to `upstream` (`host:port`, `[v6]:port`, or a bare host), with
    /// the bytes it sent back: ECS keeps the host in `address` (and `ip` when it is one) and the
    /// port in `port`.
    pub fn upstream(upstream: &str, bytes: u64) -> Destination {
        let (host, port) = match upstream.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => {
                match p.parse::<u16>() {
                    Ok(port) => (h, Some(port)),
                    Err(_) => (upstream, None),
                }
            }
            _ => (upstream, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Destination {
            address: host.to_owned(),
            ip: host.parse().ok(),
            port,
            bytes,
        }
    }
}

/// ECS `tls.*`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct TlsOut {
    /// The negotiated version (`1.2`, `1.3`), when terminated here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'static str>,
    /// What the client sent: the SNI, and its verified certificate.
    #[serde(skip_serializing_if = "TlsClient::is_empty")]
    pub client: TlsClient,
}

/// ECS `tls.client.*`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct TlsClient {
    /// The SNI the client asked for (`tls.client.server_name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The verified client certificate's subject distinguished name, when one was presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl TlsClient {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.server_name.is_none() && self.subject.is_none()
    }
}

/// ECS `event.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventMeta {
    /// Unique id; also the reference shown on the block page.
    pub id: String,
    /// ECS kind.
    pub kind: &'static str,
    /// ECS category: `["network", "web"]` for an HTTP request, `["network"]` for a
    /// pass-through connection and its close.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'static [&'static str]>,
    /// ECS type: `access` (HTTP) or `connection` with `start` / `end`, and `allowed` /
    /// `denied`, plus `error` when it failed.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub types: Option<&'static [&'static str]>,
    /// What was done: `allow`, `flag` or `block`.
    pub action: Action,
    /// Reason codes.
    pub reason: Vec<&'static str>,
    /// Time from request start to the decision being carried out, in nanoseconds; on a tunnel's
    /// close event, how long the tunnel was open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// ECS outcome: `failure` for a block, an error or a 4xx/5xx answer, else `success`; for a
    /// replayed sign-in, the identity provider's (a refused sign-in is `failure`, and evidence
    /// too: someone tried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
}

/// ECS `source.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Source {
    /// Client address.
    pub ip: IpAddr,
    /// Client port, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Bytes the client sent to the upstream, on a tunnel's close event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Geolocation.
    pub geo: Geo,
    /// Autonomous system.
    #[serde(rename = "as", skip_serializing_if = "Option::is_none")]
    pub autonomous_system: Option<AutonomousSystem>,
    /// The address locgate's own upstream socket had for a pass-through tunnel or flow: what
    /// a gateway that reads no PROXY header logs as its client (`source.nat.*`, ECS's field for a
    /// translated source), so its log lines can be matched to this event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<Nat>,
}

/// ECS `source.nat.*`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Nat {
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
}

/// ECS `source.geo.*`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Geo {
    /// ISO country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_iso_code: Option<String>,
    /// Country name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_name: Option<String>,
    /// Region (state, province).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
    /// City.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city_name: Option<String>,
    /// Coordinates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoPoint>,
}

/// ECS geo_point.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct GeoPoint {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// ECS `source.as.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AutonomousSystem {
    /// AS number.
    pub number: u32,
    /// Organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<Organization>,
}

/// ECS `*.organization`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Organization {
    /// Name.
    pub name: String,
}

/// ECS `url.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Url {
    /// Request path (no query: queries carry tokens).
    pub path: String,
}

/// ECS `http.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Http {
    /// Request (absent when the request could not be parsed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest>,
    /// Response.
    pub response: HttpResponse,
}

/// ECS `http.request.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HttpRequest {
    /// Method.
    pub method: String,
}

/// ECS `http.response.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HttpResponse {
    /// Status sent to the client.
    pub status_code: u16,
}

/// ECS `user.*`: `user.id` only for an identity something vouched for (a verified token,
/// certificate, trusted header, or an operator's `check --employee`); a name a client merely
/// typed in (Basic, a login form) or inferred from an address goes to `user.name`, so a SIEM
/// rule on `user.id` never acts on a name anyone could type.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    /// The employee's directory id (else the name presented), when verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The same, when not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl User {
    /// `name` as `user.id` when `verified`, else as `user.name`.
    pub fn named(name: String, verified: bool) -> User {
        if verified {
            User {
                id: Some(name),
                name: None,
            }
        } else {
            User {
                id: None,
                name: Some(name),
            }
        }
    }

    /// Who the event is about, verified or not: what the review store, reports and alerts key
    /// on (an unverified claim on someone's name is evidence about that person too).
    pub fn employee(&self) -> &str {
        self.id.as_deref().or(self.name.as_deref()).unwrap_or("")
    }
}

/// `locgate.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Locgate {
    /// The policy's verdict before the mode softened it.
    pub verdict: Action,
    /// The mode that applied.
    pub mode: Mode,
    /// Listener name (or `check` / `replay`).
    pub listener: String,
    /// How far the true position may be from `source.geo.location`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_radius_km: Option<f64>,
    /// `database` or `country` (capital of the country only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_precision: Option<&'static str>,
    /// One boolean per anonymizer category, and the vendor's detail when it gives one.
    pub anonymizer: AnonymizerFlags,
    /// How the network connects (`cellular`, `satellite`, `cable_dsl`, `corporate`, `dialup`),
    /// from a Connection-Type or Enterprise database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_type: Option<&'static str>,
    /// `mobile`, `satellite` or `fixed_wireless`: the location is a gateway's, read as country
    /// precision by the home rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_kind: Option<&'static str>,
    /// Where the client address came from: `peer`, `x-forwarded-for`, `forwarded`.
    pub client_addr_source: &'static str,
    /// The socket peer, when different from `source.ip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<IpAddr>,
    /// Which data the decision used (shared by every event of one data load).
    pub data: Arc<[DataShown]>,
    /// Upstream error, for 502/504 events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Allows for this client not written since the last written one (throttling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_allows: Option<u64>,
    /// How the user was identified, or why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityOut>,
    /// What the kernel measured of a direct client connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkOut>,
    /// Set when the decision had less history than configured (shared history unreachable or
    /// still catching up), so a reviewer knows a missing history signal may be missing data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryOut>,
    /// How a pass-through tunnel ended, on its close event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelOut>,
}

/// `locgate.tunnel.*`: the close of a TCP pass-through connection or a UDP flow.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TunnelOut {
    /// `event.id` of the connect event; absent when that allow was throttled (then this close
    /// event, which repeats the decision's fields, is the connection's only record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_id: Option<String>,
    /// `client_closed`, `upstream_closed`, `idle_timeout`, `error` or `shutdown`.
    pub end: TunnelEnd,
}

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TunnelEnd {
    /// The client ended its side first (FIN); the upstream's end followed.
    ClientClosed,
    /// The upstream ended its side first.
    UpstreamClosed,
    /// Nothing moved either way for `idle_timeout` (the only end a UDP flow has).
    IdleTimeout,
    /// A read or write failed (reset, unreachable); `locgate.error` says which side and why.
    Error,
    /// locgate was stopping and the drain time ran out.
    Shutdown,
    /// Re-decided while open (new data or policy, an identity learned) and blocked in enforce
    /// mode: the close event carries the new reasons.
    Blocked,
}

/// `locgate.history.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryOut {
    /// What is missing and why, in a sentence.
    pub problem: String,
}

/// `locgate.network.*`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct NetworkOut {
    /// Round-trip time (the kernel's minimum, else smoothed), ms.
    pub rtt_ms: f64,
    /// Physical minimum round trip to the observed location, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_floor_ms: Option<f64>,
    /// Segment size the kernel uses towards the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mss: Option<u32>,
}

/// `locgate.identity.*`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct IdentityOut {
    /// `header`, `jwt`, `basic`, `form`, `session`, `client_cert`, or `address_binding` (a
    /// pass-through connection from an address a verified login bound); absent when none was
    /// found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    /// Whether the source cannot be forged (verified signature, certificate, trusted header).
    pub verified: bool,
    /// The name as presented, when it differs from `user.id` (an alias such as an email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presented: Option<String>,
    /// Why sources failed (expired token, bad signature...); never the credential itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// `locgate.anonymizer.*`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct AnonymizerFlags {
    /// Commercial VPN.
    pub anonymous_vpn: bool,
    /// Hosting / cloud.
    pub hosting_provider: bool,
    /// Tor exit.
    pub tor_exit: bool,
    /// Public proxy.
    pub public_proxy: bool,
    /// Residential proxy.
    pub residential_proxy: bool,
    /// Privacy relay.
    pub relay: bool,
    /// Who runs the exit, from a database that names it (Anonymous Plus, IPinfo privacy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The vendor's confidence that the address is an anonymizer, 1 to 99.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    /// When the vendor last saw the network used as an anonymizer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// What the caller knows about the request beyond the observation and decision.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// Listener name.
    pub listener: String,
    /// Client port.
    pub port: Option<u16>,
    /// Socket peer when a forwarding header gave the client address.
    pub peer_ip: Option<IpAddr>,
    /// `peer`, `x-forwarded-for`, `forwarded`.
    pub client_addr_source: &'static str,
    /// HTTP method and path, status.
    pub http: Option<(String, String, u16)>,
    /// Employee id (or the name presented).
    pub user: Option<String>,
    /// Whether `user` was verified (`user.id`) or only claimed (`user.name`).
    pub user_verified: bool,
    /// Time to decision/response, ns.
    pub duration_ns: Option<u64>,
    /// Upstream failure.
    pub error: Option<String>,
    /// Identity details.
    pub identity: Option<IdentityOut>,
    /// Wire measurements.
    pub network: Option<NetworkOut>,
}

impl Event {
    /// Assembles an event. `event.action` is the decision's; a request that failed upstream
    /// (allowed, but the client got 502) says so in its status, `locgate.error` and message.
    /// Each ECS section has its builder below, in the order the fields are written.
    pub fn build(
        id: String,
        timestamp: String,
        obs: &Observation<'_>,
        decision: &Decision,
        mut facts: RequestFacts,
        data: &Arc<[DataShown]>,
    ) -> Event {
        let status = facts.http.as_ref().map(|h| h.2);
        let (url, http) = request_line(facts.http.take());
        let meta = EventMeta::decided(id, decision, facts.duration_ns)
            .categorized(status, facts.error.is_some());
        Event {
            timestamp,
            ecs: Ecs::default(),
            event: meta,
            message: message(obs, decision, facts.error.as_deref()),
            origin: None,
            source: Source::observed(obs, facts.port),
            destination: None,
            url,
            http,
            user: facts
                .user
                .take()
                .map(|name| User::named(name, facts.user_verified)),
            network: Network {
                transport: "tcp",
                bytes: None,
            },
            tls: None,
            locgate: Locgate::decided(obs, decision, facts, data),
        }
    }

    /// Whether this is a tunnel's close event (not a decision of its own: alerts, the review
    /// queue and reason counts leave it out).
    pub fn is_tunnel_close(&self) -> bool {
        self.locgate.tunnel.is_some()
    }
}

impl EventMeta {
    /// `event.*` of a decision: its reason codes; categorized by [`EventMeta::categorized`].
    fn decided(id: String, decision: &Decision, duration: Option<u64>) -> EventMeta {
        EventMeta {
            id,
            kind: "event",
            category: None,
            types: None,
            action: decision.action,
            reason: decision.reasons.iter().map(|r| r.code.as_str()).collect(),
            duration,
            outcome: None,
        }
    }

    /// The ECS categorization of a decision: an HTTP request (`status` known) is `web` and
    /// `network` access, a pass-through connection or flow a `network` connection start;
    /// `allowed` or `denied` by the action; an HTTP request that failed (`failed`, or a 5xx)
    /// is also `error` (which ECS's `web` category expects and `network` does not). A flag
    /// or block is `event.kind: alert` (a detection by locgate's rules), anything else
    /// `event`. The outcome is `failure` for a block, an error or a 4xx/5xx answer.
    pub fn categorized(mut self, status: Option<u16>, failed: bool) -> EventMeta {
        let denied = self.action == Action::Block;
        let error = failed || status.is_some_and(|s| s >= 500);
        self.kind = match self.action {
            Action::Flag | Action::Block => "alert",
            Action::Allow | Action::Note => "event",
        };
        self.category = Some(match status {
            Some(_) => &["network", "web"],
            None => &["network"],
        });
        self.types = Some(match (status.is_some(), denied, error) {
            (true, false, false) => &["access", "allowed"],
            (true, false, true) => &["access", "allowed", "error"],
            (true, true, false) => &["access", "denied"],
            (true, true, true) => &["access", "denied", "error"],
            // ECS's `network` category expects no `error` type: the outcome says it.
            (false, false, _) => &["connection", "start", "allowed"],
            (false, true, _) => &["connection", "denied"],
        });
        let failure = denied || error || status.is_some_and(|s| s >= 400);
        self.outcome = Some(if failure { "failure" } else { "success" });
        self
    }
}

/// The reason sentences, then the error, joined by `; `; a clean allow says where it came from.
fn message(obs: &Observation<'_>, decision: &Decision, error: Option<&str>) -> String {
    let mut message = String::new();
    for (i, r) in decision.reasons.iter().enumerate() {
        if i > 0 {
            message.push_str("; ");
        }
        message.push_str(&r.detail);
    }
    if let Some(e) = error {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(e);
    }
    if message.is_empty() {
        message = format!("{} from {}: allowed", obs.ip, obs.place());
    }
    message
}

impl Source {
    /// `source.*` as observed: the address, where it is, and its autonomous system.
    fn observed(obs: &Observation<'_>, port: Option<u16>) -> Source {
        Source {
            ip: obs.ip,
            port,
            bytes: None,
            geo: Geo::observed(obs),
            autonomous_system: AutonomousSystem::observed(obs),
            nat: None,
        }
    }
}

impl Geo {
    /// `source.geo.*`: whatever the databases answered.
    fn observed(obs: &Observation<'_>) -> Geo {
        Geo {
            country_iso_code: obs.country.map(|c| c.to_string()),
            country_name: obs.country_name.map(str::to_string),
            region_name: obs.region.map(str::to_string),
            city_name: obs.city.map(str::to_string),
            location: obs.location.map(|l| GeoPoint {
                lat: l.lat,
                lon: l.lon,
            }),
        }
    }
}

impl AutonomousSystem {
    /// `source.as.*`, when the ASN database knows the address.
    fn observed(obs: &Observation<'_>) -> Option<AutonomousSystem> {
        obs.asn.map(|number| AutonomousSystem {
            number,
            organization: obs.as_org.map(|n| Organization {
                name: n.to_string(),
            }),
        })
    }
}

/// `url.*` and `http.*` from the method, path and status: no `url` without a path, no
/// `http.request` without a method (a request that could not be parsed).
fn request_line(http: Option<(String, String, u16)>) -> (Option<Url>, Option<Http>) {
    let Some((method, path, status)) = http else {
        return (None, None);
    };
    let url = (!path.is_empty()).then_some(Url { path });
    let http = Http {
        request: (!method.is_empty()).then_some(HttpRequest { method }),
        response: HttpResponse {
            status_code: status,
        },
    };
    (url, Some(http))
}

impl Locgate {
    /// `locgate.*`: the decision's mode and verdict, how precise the location is, the
    /// anonymizer flags, and the rest of `facts` (`http` and `user` already taken). Throttling,
    /// history and tunnels are the caller's to add.
    fn decided(
        obs: &Observation<'_>,
        decision: &Decision,
        facts: RequestFacts,
        data: &Arc<[DataShown]>,
    ) -> Locgate {
        Locgate {
            verdict: decision.verdict,
            mode: decision.mode,
            listener: facts.listener,
            accuracy_radius_km: obs.accuracy_km.map(|r| r.round()),
            location_precision: obs.precision.map(|p| match p {
                LocationPrecision::Database => "database",
                LocationPrecision::Country => "country",
            }),
            anonymizer: AnonymizerFlags::observed(obs),
            connection_type: obs.connection_type.map(|c| c.as_str()),
            network_kind: obs.network_kind.map(|k| k.as_str()),
            client_addr_source: facts.client_addr_source,
            peer_ip: facts.peer_ip,
            data: data.clone(),
            error: facts.error,
            suppressed_allows: None,
            identity: facts.identity,
            network: facts.network,
            history: None,
            tunnel: None,
        }
    }
}

impl AnonymizerFlags {
    /// One flag per category the address was found in.
    fn observed(obs: &Observation<'_>) -> AnonymizerFlags {
        let mut flags = AnonymizerFlags::default();
        for c in obs.anonymizers.iter() {
            match c {
                Category::AnonymousVpn => flags.anonymous_vpn = true,
                Category::HostingProvider => flags.hosting_provider = true,
                Category::TorExit => flags.tor_exit = true,
                Category::PublicProxy => flags.public_proxy = true,
                Category::ResidentialProxy => flags.residential_proxy = true,
                Category::Relay => flags.relay = true,
            }
        }
        if let Some(d) = &obs.anonymizer_detail {
            flags.provider = d.provider.map(str::to_owned);
            flags.confidence = d.confidence;
            flags.last_seen = d.last_seen.map(str::to_owned);
        }
        flags
    }
}

/// The current time as RFC 3339 UTC with milliseconds, as ECS `@timestamp` wants it.
pub fn timestamp_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}
