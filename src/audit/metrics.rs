//! `/metrics`: the counters in the OpenMetrics text format, encoded by `prometheus-client` (the
//! Prometheus project's Rust client), so names, types, `_total` suffixes, histogram buckets,
//! `# EOF` and the content type follow the specification rather than hand-written text.
//!
//! The counters themselves stay where the request path bumps them: relaxed atomics in
//! [`Stats`] (and each listener's [`super::stats::ListenerCounters`]). A scrape gathers them,
//! with the data ages, the history link, the VPN sources, the identity providers' keys, SCIM
//! and the process's own `/proc` figures, into a [`Scrape`], which the crate's `Collector`
//! encodes. Nothing on the request path takes a lock or looks a label up.
//!
//! Units are base units: seconds and bytes (`locgate_history_clock_skew_seconds` was
//! `_clock_skew_ms` before 0.2: see CHANGELOG.md).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub use super::histogram::{BUCKETS, Histogram};
use super::process::ProcessStats;
use super::stats::Stats;
use crate::history::synced::SyncHealth;
use crate::history::vpn_sessions::SourceStatus;
use crate::intel::Intel;
use crate::policy::Action;

/// The content type of the exposition (OpenMetrics 1.0 text; Prometheus asks for it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every action, in the order the counters show them.
const ACTIONS: [Action; 4] = [Action::Allow, Action::Note, Action::Flag, Action::Block];

/// One loaded database or list, for `locgate_data_age_seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataAge {
    /// File.
    pub source: String,
    /// Type.
    pub kind: String,
    /// Seconds since it was built.
    pub age_seconds: u64,
}

/// One identity provider's signing keys (`jwks_url` or OIDC discovery), as `/metrics` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySourceGauge {
    /// The JWKS address, or the issuer with "(discovery)".
    pub source: String,
    /// Whether the last fetch succeeded.
    pub up: bool,
    /// Keys in use.
    pub keys: usize,
    /// Seconds since the keys in use were fetched (`None`: never).
    pub age_seconds: Option<u64>,
}

/// SCIM-provisioned users by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScimGauge {
    /// Active and placed (in the directory).
    pub active: usize,
    /// Deactivated by the identity provider, kept.
    pub inactive: usize,
    /// Active but with no usable country, so not in the directory.
    pub unplaceable: usize,
}

/// Everything one scrape shows: [`Scrape::new`] takes the counters and data ages, the caller
/// adds what it has (history link, VPN sources, key sources, SCIM), [`Scrape::render`] encodes.
#[derive(Debug, Default)]
pub struct Scrape {
    /// The counters.
    pub stats: Arc<Stats>,
    /// Each loaded database or list and its age.
    pub data: Vec<DataAge>,
    /// Records each database could not decode at run time.
    pub decode_errors: Vec<(String, u64)>,
    /// The shared-history link, with `[history] redis`.
    pub history: Option<Arc<SyncHealth>>,
    /// Each VPN source (`[[listener.vpn]]`) and its status.
    pub vpn: Vec<(String, SourceStatus)>,
    /// Pass-through tunnels and flows open now.
    pub tunnels_open: usize,
    /// The identity providers' key sources.
    pub key_sources: Vec<KeySourceGauge>,
    /// SCIM users, with `[scim]`.
    pub scim: Option<ScimGauge>,
    /// The process's own CPU, memory and descriptors.
    pub process: ProcessStats,
}

impl Scrape {
    /// The counters and data of this process now (`now_epoch`: seconds since the epoch).
    pub fn new(stats: &Arc<Stats>, intel: &Intel, now_epoch: u64) -> Scrape {
        Scrape {
            stats: stats.clone(),
            data: intel
                .versions()
                .iter()
                .map(|v| DataAge {
                    source: v.source.clone(),
                    kind: v.kind.clone(),
                    age_seconds: now_epoch.saturating_sub(v.built_epoch),
                })
                .collect(),
            decode_errors: intel
                .decode_failures()
                .map(|(s, n)| (s.to_owned(), n))
                .collect(),
            process: ProcessStats::read(),
            ..Scrape::default()
        }
    }

    /// The OpenMetrics text exposition, `# EOF` included.
    pub fn render(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "could not encode /metrics");
        }
        out
    }
}

/// The counters and data ages alone (what a test of the counters needs).
pub fn render(stats: &Arc<Stats>, intel: &Intel, now_epoch: u64) -> String {
    Scrape::new(stats, intel, now_epoch).render()
}

/// A per-source gauge family: name, help, and how to read its value off a source.
type Family<S, V> = (&'static str, &'static str, fn(&S) -> V);

/// A label set of `N` labels.
type Labels<'a, const N: usize> = [(&'static str, &'a str); N];

/// Writes families through the crate's descriptor encoder, one call per family.
struct Families<'a, 'e> {
    enc: &'a mut DescriptorEncoder<'e>,
}

impl Families<'_, '_> {
    fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        write: impl FnOnce(&mut MetricEncoder<'_>) -> fmt::Result,
    ) -> fmt::Result {
        let mut m = self.enc.encode_descriptor(name, help, None, kind)?;
        write(&mut m)
    }

    /// A counter without labels; `name` without `_total` (the encoder adds it).
    fn counter(&mut self, name: &str, help: &str, v: impl EncodeCounterValue) -> fmt::Result {
        self.family(name, help, MetricType::Counter, |m| {
            m.encode_counter::<NoLabelSet, _, u64>(&v, None)
        })
    }

    /// A gauge without labels.
    fn gauge(&mut self, name: &str, help: &str, v: impl EncodeGaugeValue) -> fmt::Result {
        self.family(name, help, MetricType::Gauge, |m| m.encode_gauge(&v))
    }

    /// A counter with one sample per label set.
    fn counters<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (L, u64)>,
    ) -> fmt::Result {
        self.family(name, help, MetricType::Counter, |m| {
            for (labels, v) in rows {
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
            }
            Ok(())
        })
    }

    /// A gauge with one sample per label set.
    fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (L, V)>,
    ) -> fmt::Result {
        self.family(name, help, MetricType::Gauge, |m| {
            for (labels, v) in rows {
                m.encode_family(&labels)?.encode_gauge(&v)?;
            }
            Ok(())
        })
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) -> fmt::Result {
        let (sum, count, buckets) = h.snapshot();
        self.family(name, help, MetricType::Histogram, |m| {
            m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
        })
    }
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let mut f = Families { enc: &mut enc };
        self.build_info(&mut f)?;
        self.decisions(&mut f)?;
        self.writer(&mut f)?;
        self.operations(&mut f)?;
        self.data(&mut f)?;
        if let Some(h) = &self.history {
            history(h, &mut f)?;
        }
        self.vpn(&mut f)?;
        self.keys(&mut f)?;
        self.scim(&mut f)?;
        self.process(&mut f)
    }
}

impl Scrape {
    fn build_info(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let labels: Labels<'_, 3> = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("ecs_version", super::event::ECS_VERSION),
            (
                "profile",
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            ),
        ];
        f.family(
            "locgate_build",
            "This build: its version and the ECS version its events follow (always 1).",
            MetricType::Info,
            |m| m.encode_info(&labels),
        )
    }

    /// What was decided, per listener, and how long it took.
    fn decisions(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let stats = &self.stats;
        let listeners = stats.listeners();
        f.counters(
            "locgate_requests",
            "HTTP requests decided, by listener and action carried out.",
            listeners.iter().flat_map(|(name, c)| {
                ACTIONS.into_iter().map(move |a| {
                    let labels: Labels<'_, 2> = [("listener", name), ("action", a.as_str())];
                    (labels, c.requests(a))
                })
            }),
        )?;
        f.counters(
            "locgate_connections",
            "Pass-through connections (TCP) and flows (UDP) decided, by listener, transport and action.",
            listeners.iter().flat_map(|(name, c)| {
                ["tcp", "udp"].into_iter().flat_map(move |t| {
                    ACTIONS.into_iter().map(move |a| {
                        let labels: Labels<'_, 3> = [
                            ("listener", name),
                            ("transport", t),
                            ("action", a.as_str()),
                        ];
                        (labels, c.connections(t, a))
                    })
                })
            }),
        )?;
        f.counters(
            "locgate_tunnel_bytes",
            "Bytes relayed by pass-through tunnels, added when each closes.",
            [
                ("client_to_upstream", load(&stats.tunnel_bytes_to_upstream)),
                ("upstream_to_client", load(&stats.tunnel_bytes_to_client)),
            ]
            .map(|(d, v)| ([("direction", d)], v)),
        )?;
        let reasons: Vec<(&'static str, u64)> = stats
            .reasons
            .lock()
            .map(|m| m.iter().map(|(c, n)| (*c, *n)).collect())
            .unwrap_or_default();
        f.counters(
            "locgate_reasons",
            "Recorded events by reason code.",
            reasons.into_iter().map(|(c, n)| ([("code", c)], n)),
        )?;
        f.histogram(
            "locgate_decision_seconds",
            "Time from request start to decision.",
            &stats.decision_latency,
        )?;
        f.histogram(
            "locgate_lookup_seconds",
            "Time of the address lookup (location, network, anonymizer data).",
            &stats.lookup_latency,
        )?;
        f.counter(
            "locgate_upstream_errors",
            "Upstream failures answered 502/504.",
            load(&stats.upstream_errors),
        )?;
        f.counter(
            "locgate_bad_requests",
            "Malformed requests answered 400/431.",
            load(&stats.bad_requests),
        )
    }

    /// The event writer, its store, the outputs and alerts.
    fn writer(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let s = &self.stats;
        for (name, help, v) in [
            ("locgate_events", "Events handed to the writer.", &s.events),
            (
                "locgate_events_stored",
                "Events committed to the event store.",
                &s.events_stored,
            ),
            (
                "locgate_events_waited",
                "Times the request path waited for a full queue (backpressure).",
                &s.events_waited,
            ),
            (
                "locgate_events_spilled",
                "Events written straight to JSON lines because the queue was full (spill).",
                &s.events_spilled,
            ),
            (
                "locgate_events_dropped",
                "Events lost: could not be written anywhere.",
                &s.events_failed,
            ),
            (
                "locgate_events_store_failed",
                "Events in JSON lines that the store could not take.",
                &s.store_failed,
            ),
        ] {
            f.counter(name, help, load(v))?;
        }
        f.gauge(
            "locgate_event_queue_depth",
            "Events waiting for the writer.",
            s.queue_depth.load(Ordering::Relaxed).max(0),
        )?;
        let shared = s.shared_store.get();
        let up = !s.store_degraded.load(Ordering::Relaxed)
            && shared.is_none_or(|h| h.up.load(Ordering::Relaxed));
        f.gauge(
            "locgate_event_store_up",
            "1 when events go to the event store; 0 when running on JSON lines only, or while the shared PostgreSQL store is unreachable (events spool locally).",
            i64::from(up),
        )?;
        if let Some(h) = shared {
            f.gauge(
                "locgate_event_store_spooled",
                "Events in the local spool waiting for the shared PostgreSQL store.",
                h.spooled.load(Ordering::Relaxed),
            )?;
            f.gauge(
                "locgate_event_store_spool_bytes",
                "Bytes in the local spool (bounded by postgres_spool_max_mb).",
                h.spool_bytes.load(Ordering::Relaxed),
            )?;
            f.counter(
                "locgate_event_store_spool_dropped",
                "Events dropped because the spool was full while PostgreSQL was unreachable.",
                h.dropped.load(Ordering::Relaxed),
            )?;
            f.counter(
                "locgate_event_store_replayed",
                "Spooled events replayed into PostgreSQL once it answered again.",
                h.replayed.load(Ordering::Relaxed),
            )?;
        }
        let outputs = s.outputs.get().map(Vec::as_slice).unwrap_or_default();
        let per = |v: fn(&super::outputs::OutputStats) -> u64| {
            outputs.iter().map(move |o| ([("output", o.name)], v(o)))
        };
        f.gauges(
            "locgate_output_up",
            "1 while the event output's last delivery succeeded; 0 while its receiver is down or refusing (see /readyz).",
            per(|o| u64::from(o.up.load(Ordering::Relaxed))),
        )?;
        f.counters(
            "locgate_output_sent",
            "Events the output's receiver took.",
            per(|o| load(&o.sent)),
        )?;
        f.counters(
            "locgate_output_dropped",
            "Events the output lost: its queue was full while the receiver was down or slow, or the receiver refused them (they are in JSON lines and the store).",
            per(|o| load(&o.dropped)),
        )?;
        f.counters(
            "locgate_output_failures",
            "Failed deliveries to the output's receiver (each retry counts).",
            per(|o| load(&o.failures)),
        )?;
        f.gauges(
            "locgate_output_queued",
            "Events waiting for the output (its queue plus the batch being retried).",
            per(|o| u64::try_from(o.queued.load(Ordering::Relaxed)).unwrap_or(0)),
        )?;
        for (name, help, v) in [
            (
                "locgate_alerts_sent",
                "Webhook alerts delivered.",
                &s.alerts_sent,
            ),
            (
                "locgate_alerts_failed",
                "Webhook alerts that failed after every retry.",
                &s.alerts_failed,
            ),
            (
                "locgate_alerts_deduplicated",
                "Alerts suppressed as repeats within the interval.",
                &s.alerts_deduplicated,
            ),
            (
                "locgate_alerts_dropped",
                "Alerts dropped because the alert queue was full.",
                &s.alerts_dropped,
            ),
        ] {
            f.counter(name, help, load(v))?;
        }
        Ok(())
    }

    /// Reloads and the in-process update schedule.
    fn operations(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let s = &self.stats;
        for (name, help, v) in [
            (
                "locgate_reloads",
                "Reloads that swapped in new config and data.",
                &s.reloads_ok,
            ),
            (
                "locgate_reloads_failed",
                "Reloads refused (bad config or data); the previous state kept serving.",
                &s.reloads_failed,
            ),
            (
                "locgate_updates",
                "Sources the in-process update schedule installed or found current.",
                &s.updates_ok,
            ),
            (
                "locgate_updates_failed",
                "Sources the in-process update schedule could not update.",
                &s.updates_failed,
            ),
        ] {
            f.counter(name, help, load(v))?;
        }
        Ok(())
    }

    /// The data the decisions use: staleness, blind spots, decode errors, ages.
    fn data(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let s = &self.stats;
        f.gauge(
            "locgate_data_stale_sources",
            "Data sources past their age limit at the last check (embedded data included).",
            load(&s.stale_sources),
        )?;
        f.gauge(
            "locgate_data_blind_spots",
            "Rules the loaded data cannot serve (radius or region rules without a city database); /readyz names them.",
            load(&s.blind_spots),
        )?;
        f.counters(
            "locgate_data_decode_errors",
            "Database records that could not be decoded at run time (the lookup used the other sources).",
            self.decode_errors
                .iter()
                .map(|(source, n)| ([("source", source)], *n)),
        )?;
        f.gauges(
            "locgate_data_age_seconds",
            "Age of each loaded database or list.",
            self.data.iter().map(|d| {
                let labels: Labels<'_, 2> = [("source", &d.source), ("type", &d.kind)];
                (labels, d.age_seconds)
            }),
        )
    }

    /// The VPN sources' status (`[[listener.vpn]]`) and the pass-through tunnels open, so an
    /// alert can fire when a source stops answering: its tunnels are then judged without
    /// identity.
    fn vpn(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        f.gauge(
            "locgate_tunnels_open",
            "Pass-through TCP tunnels and UDP flows open now.",
            self.tunnels_open,
        )?;
        if self.vpn.is_empty() {
            return Ok(());
        }
        let families: [Family<SourceStatus, usize>; 4] = [
            (
                "locgate_vpn_source_up",
                "1 when the VPN source's last reading succeeded; 0 while it cannot be read (see /readyz).",
                |s| usize::from(s.problem.is_none()),
            ),
            (
                "locgate_vpn_sessions",
                "Sessions the VPN source reported at its last reading.",
                |s| s.sessions,
            ),
            (
                "locgate_vpn_sessions_unknown",
                "Of those, sessions whose user the employee directory does not know.",
                |s| s.unknown,
            ),
            (
                "locgate_vpn_sessions_unmatched",
                "Of those, sessions on no open tunnel through locgate (reached the server another way, or outlived their tunnel).",
                |s| s.unmatched,
            ),
        ];
        for (name, help, value) in families {
            f.gauges(
                name,
                help,
                self.vpn
                    .iter()
                    .map(|(source, st)| ([("source", source)], value(st))),
            )?;
        }
        Ok(())
    }

    /// The identity providers' key sources, so an alert can fire before the last good keys go
    /// stale (a provider down for a day) or when none were ever fetched (every token refused).
    fn keys(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        if self.key_sources.is_empty() {
            return Ok(());
        }
        let families: [Family<KeySourceGauge, Option<u64>>; 3] = [
            (
                "locgate_jwks_up",
                "1 when the last fetch of the provider's signing keys succeeded; 0 while it fails (the last good keys stay in use; see /readyz).",
                |s| Some(u64::from(s.up)),
            ),
            (
                "locgate_jwks_keys",
                "Signing keys in use from the provider (0: tokens it signs are refused).",
                |s| Some(s.keys as u64),
            ),
            (
                "locgate_jwks_age_seconds",
                "Seconds since the signing keys in use were fetched (absent: never fetched).",
                |s| s.age_seconds,
            ),
        ];
        for (name, help, value) in families {
            f.gauges(
                name,
                help,
                self.key_sources
                    .iter()
                    .filter_map(|s| value(s).map(|v| ([("source", &s.source)], v))),
            )?;
        }
        Ok(())
    }

    /// The SCIM-provisioned users by state (`[scim]`).
    fn scim(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let Some(s) = self.scim else { return Ok(()) };
        f.gauges(
            "locgate_scim_users",
            "SCIM-provisioned users by state (unplaceable: active with no usable country, not in the directory; see /readyz).",
            [
                ("active", s.active),
                ("inactive", s.inactive),
                ("unplaceable", s.unplaceable),
            ]
            .map(|(state, n)| ([("state", state)], n)),
        )
    }

    /// The standard `process_*` metrics, from `/proc` (left out where it cannot be read).
    fn process(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let p = &self.process;
        if let Some(v) = p.cpu_seconds {
            f.counter(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                v,
            )?;
        }
        if let Some(v) = p.resident_bytes {
            f.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                v,
            )?;
        }
        if let Some(v) = p.virtual_bytes {
            f.gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                v,
            )?;
        }
        if let Some(v) = p.open_fds {
            f.gauge("process_open_fds", "Number of open file descriptors.", v)?;
        }
        if let Some(v) = p.max_fds {
            f.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                v,
            )?;
        }
        if let Some(v) = p.start_time_seconds {
            f.gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                v,
            )?;
        }
        Ok(())
    }
}

/// The shared-history link's counters (only with `[history] redis`).
fn history(h: &SyncHealth, f: &mut Families<'_, '_>) -> fmt::Result {
    f.gauge(
        "locgate_history_redis_up",
        "1 when history is shared through Redis, 0 when deciding with this instance's history only.",
        i64::from(h.is_up()),
    )?;
    f.gauge(
        "locgate_history_caught_up",
        "1 once the other instances' sightings have been read since the last (re)connection.",
        i64::from(h.is_up() && h.is_caught_up()),
    )?;
    for (name, help, v) in [
        (
            "locgate_history_published",
            "Sightings this instance published to the shared stream.",
            &h.published,
        ),
        (
            "locgate_history_applied",
            "Other instances' sightings applied to this instance's history.",
            &h.applied,
        ),
        (
            "locgate_history_unchanged",
            "Sightings not published because nothing had changed since the last one.",
            &h.unchanged,
        ),
    ] {
        f.counter(name, help, load(v))?;
    }
    f.gauge(
        "locgate_history_queued",
        "Sightings waiting to be published (grows while Redis is away).",
        h.queued.load(Ordering::Relaxed).max(0),
    )?;
    for (name, help, v) in [
        (
            "locgate_history_dropped",
            "Sightings never published because the queue was full.",
            &h.dropped,
        ),
        (
            "locgate_history_refused",
            "Shared stream entries refused as malformed.",
            &h.refused,
        ),
        (
            "locgate_history_redis_errors",
            "Failed connections and commands to Redis.",
            &h.errors,
        ),
    ] {
        f.counter(name, help, load(v))?;
    }
    f.gauge(
        "locgate_history_clock_skew_seconds",
        "Largest clock difference in the last batch between another instance and Redis, seconds.",
        h.skew_ms.load(Ordering::Relaxed) as f64 / 1000.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_openmetrics_with_labels_escaped() {
        let stats = Arc::new(Stats::default());
        stats.listener("sso").count(Action::Block);
        stats.listener("sso").count(Action::Note);
        stats.listener("rdp").count_connection("tcp", Action::Allow);
        if let Ok(mut r) = stats.reasons.lock() {
            r.insert("tor_exit", 2);
        }
        let scrape = Scrape {
            stats,
            data: vec![DataAge {
                source: "dir\\with \"quotes\"\nand newline.mmdb".into(),
                kind: "City".into(),
                age_seconds: 60,
            }],
            process: ProcessStats::read(),
            ..Scrape::default()
        };
        let text = scrape.render();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for want in [
            "# TYPE locgate_requests counter",
            "locgate_requests_total{listener=\"sso\",action=\"block\"} 1",
            "locgate_requests_total{listener=\"sso\",action=\"note\"} 1",
            "locgate_connections_total{listener=\"rdp\",transport=\"tcp\",action=\"allow\"} 1",
            "locgate_reasons_total{code=\"tor_exit\"} 2",
            "locgate_decision_seconds_bucket{le=\"+Inf\"} 0",
            "locgate_data_age_seconds{source=\"dir\\\\with \\\"quotes\\\"\\nand newline.mmdb\",type=\"City\"} 60",
            "# TYPE locgate_build info",
        ] {
            assert!(text.contains(want), "missing `{want}` in\n{text}");
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("locgate_build_info{version=\"") && l.ends_with(" 1")),
            "{text}"
        );
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(text.contains("process_start_time_seconds "), "{text}");
    }
}
