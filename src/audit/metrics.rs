//! The Prometheus text rendering of [`Stats`] (the histogram type itself is in
//! `histogram.rs`).
//!
//! Hand-written rather than a metrics crate: the counters already live in `Stats` (atomics the
//! request path bumps anyway), so rendering them is a few `writeln!`s, with no global recorder
//! and no extra dependency in the proxy's hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

pub use super::histogram::{BUCKETS, Histogram};
use super::stats::Stats;
use crate::intel::Intel;
use crate::policy::Action;

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, v: i64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

/// Escapes a label value (backslash, quote, newline) per the text exposition format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of the counters and data ages.
pub fn render(stats: &Stats, intel: &Intel, now_epoch: u64) -> String {
    let data = intel.versions();
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut out = String::with_capacity(4096);
    out.push_str("# HELP locgate_requests_total HTTP requests decided, by action carried out.\n");
    out.push_str("# TYPE locgate_requests_total counter\n");
    for (action, c) in [
        ("allow", &stats.allow),
        ("flag", &stats.flag),
        ("block", &stats.block),
    ] {
        let _ = writeln!(
            out,
            "locgate_requests_total{{action=\"{action}\"}} {}",
            l(c)
        );
    }
    out.push_str(
        "# HELP locgate_connections_total Pass-through connections (TCP) and flows (UDP) decided, by action.\n",
    );
    out.push_str("# TYPE locgate_connections_total counter\n");
    for transport in ["tcp", "udp"] {
        for action in [Action::Allow, Action::Note, Action::Flag, Action::Block] {
            let _ = writeln!(
                out,
                "locgate_connections_total{{transport=\"{transport}\",action=\"{action}\"}} {}",
                stats.connections(transport, action)
            );
        }
    }
    out.push_str(
        "# HELP locgate_tunnel_bytes_total Bytes relayed by pass-through tunnels, added when each closes.\n",
    );
    out.push_str("# TYPE locgate_tunnel_bytes_total counter\n");
    for (direction, c) in [
        ("client_to_upstream", &stats.tunnel_bytes_to_upstream),
        ("upstream_to_client", &stats.tunnel_bytes_to_client),
    ] {
        let _ = writeln!(
            out,
            "locgate_tunnel_bytes_total{{direction=\"{direction}\"}} {}",
            l(c)
        );
    }
    out.push_str("# HELP locgate_reasons_total Recorded events by reason code.\n");
    out.push_str("# TYPE locgate_reasons_total counter\n");
    if let Ok(m) = stats.reasons.lock() {
        for (code, n) in m.iter() {
            let _ = writeln!(out, "locgate_reasons_total{{code=\"{}\"}} {n}", label(code));
        }
    }
    stats.decision_latency.render(
        "locgate_decision_seconds",
        "Time from request start to decision.",
        &mut out,
    );
    stats.lookup_latency.render(
        "locgate_lookup_seconds",
        "Time of the address lookup (location, network, anonymizer data).",
        &mut out,
    );
    counter(
        &mut out,
        "locgate_upstream_errors_total",
        "Upstream failures answered 502/504.",
        l(&stats.upstream_errors),
    );
    counter(
        &mut out,
        "locgate_bad_requests_total",
        "Malformed requests answered 400/431.",
        l(&stats.bad_requests),
    );
    counter(
        &mut out,
        "locgate_events_total",
        "Events handed to the writer.",
        l(&stats.events),
    );
    counter(
        &mut out,
        "locgate_events_stored_total",
        "Events committed to the event store.",
        l(&stats.events_stored),
    );
    counter(
        &mut out,
        "locgate_events_waited_total",
        "Times the request path waited for a full queue (backpressure).",
        l(&stats.events_waited),
    );
    counter(
        &mut out,
        "locgate_events_spilled_total",
        "Events written straight to JSON lines because the queue was full (spill).",
        l(&stats.events_spilled),
    );
    counter(
        &mut out,
        "locgate_events_dropped_total",
        "Events lost: could not be written anywhere.",
        l(&stats.events_failed),
    );
    counter(
        &mut out,
        "locgate_events_store_failed_total",
        "Events in JSON lines that the store could not take.",
        l(&stats.store_failed),
    );
    gauge(
        &mut out,
        "locgate_event_queue_depth",
        "Events waiting for the writer.",
        stats.queue_depth.load(Ordering::Relaxed).max(0),
    );
    gauge(
        &mut out,
        "locgate_event_store_up",
        "1 when events go to the SQLite store, 0 when running on JSON lines only.",
        i64::from(!stats.store_degraded.load(Ordering::Relaxed)),
    );
    counter(
        &mut out,
        "locgate_alerts_sent_total",
        "Webhook alerts delivered.",
        l(&stats.alerts_sent),
    );
    counter(
        &mut out,
        "locgate_alerts_failed_total",
        "Webhook alerts that failed after every retry.",
        l(&stats.alerts_failed),
    );
    counter(
        &mut out,
        "locgate_alerts_deduplicated_total",
        "Alerts suppressed as repeats within the interval.",
        l(&stats.alerts_deduplicated),
    );
    counter(
        &mut out,
        "locgate_alerts_dropped_total",
        "Alerts dropped because the alert queue was full.",
        l(&stats.alerts_dropped),
    );
    counter(
        &mut out,
        "locgate_reloads_total",
        "Reloads that swapped in new config and data.",
        l(&stats.reloads_ok),
    );
    counter(
        &mut out,
        "locgate_reloads_failed_total",
        "Reloads refused (bad config or data); the previous state kept serving.",
        l(&stats.reloads_failed),
    );
    counter(
        &mut out,
        "locgate_updates_total",
        "Sources the in-process update schedule installed or found current.",
        l(&stats.updates_ok),
    );
    counter(
        &mut out,
        "locgate_updates_failed_total",
        "Sources the in-process update schedule could not update.",
        l(&stats.updates_failed),
    );
    gauge(
        &mut out,
        "locgate_data_stale_sources",
        "Data sources past their age limit at the last check (embedded data included).",
        i64::try_from(l(&stats.stale_sources)).unwrap_or(i64::MAX),
    );
    gauge(
        &mut out,
        "locgate_data_blind_spots",
        "Rules the loaded data cannot serve (radius or region rules without a city database); /readyz names them.",
        i64::try_from(l(&stats.blind_spots)).unwrap_or(i64::MAX),
    );
    out.push_str("# HELP locgate_data_decode_errors_total Database records that could not be decoded at run time (the lookup used the other sources).\n");
    out.push_str("# TYPE locgate_data_decode_errors_total counter\n");
    for (source, n) in intel.decode_failures() {
        let _ = writeln!(
            out,
            "locgate_data_decode_errors_total{{source=\"{}\"}} {n}",
            label(source)
        );
    }
    out.push_str("# HELP locgate_data_age_seconds Age of each loaded database or list.\n");
    out.push_str("# TYPE locgate_data_age_seconds gauge\n");
    for v in data {
        let _ = writeln!(
            out,
            "locgate_data_age_seconds{{source=\"{}\",type=\"{}\"}} {}",
            label(&v.source),
            label(&v.kind),
            now_epoch.saturating_sub(v.built_epoch)
        );
    }
    out
}

/// The shared-history link's counters (only when `[history] redis` is set).
pub fn render_history(h: &crate::history::synced::SyncHealth, out: &mut String) {
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    gauge(
        out,
        "locgate_history_redis_up",
        "1 when history is shared through Redis, 0 when deciding with this instance's history only.",
        i64::from(h.is_up()),
    );
    gauge(
        out,
        "locgate_history_caught_up",
        "1 once the other instances' sightings have been read since the last (re)connection.",
        i64::from(h.is_up() && h.is_caught_up()),
    );
    counter(
        out,
        "locgate_history_published_total",
        "Sightings this instance published to the shared stream.",
        l(&h.published),
    );
    counter(
        out,
        "locgate_history_applied_total",
        "Other instances' sightings applied to this instance's history.",
        l(&h.applied),
    );
    counter(
        out,
        "locgate_history_unchanged_total",
        "Sightings not published because nothing had changed since the last one.",
        l(&h.unchanged),
    );
    gauge(
        out,
        "locgate_history_queued",
        "Sightings waiting to be published (grows while Redis is away).",
        h.queued.load(Ordering::Relaxed).max(0),
    );
    counter(
        out,
        "locgate_history_dropped_total",
        "Sightings never published because the queue was full.",
        l(&h.dropped),
    );
    counter(
        out,
        "locgate_history_refused_total",
        "Shared stream entries refused as malformed.",
        l(&h.refused),
    );
    counter(
        out,
        "locgate_history_redis_errors_total",
        "Failed connections and commands to Redis.",
        l(&h.errors),
    );
    gauge(
        out,
        "locgate_history_clock_skew_ms",
        "Largest clock difference in the last batch between another instance and Redis, ms.",
        h.skew_ms.load(Ordering::Relaxed),
    );
}

/// One per-source gauge: name, help, and how to read it off a source's status.
type VpnFamily = (
    &'static str,
    &'static str,
    fn(&crate::history::vpn_sessions::SourceStatus) -> usize,
);

/// The VPN sources' status (`[[listener.vpn]]`) and the pass-through tunnels open, so an alert
/// can fire when a source stops answering: its tunnels are then judged without identity.
pub fn render_vpn(
    sources: &[(String, crate::history::vpn_sessions::SourceStatus)],
    tunnels_open: usize,
    out: &mut String,
) {
    gauge(
        out,
        "locgate_tunnels_open",
        "Pass-through TCP tunnels and UDP flows open now.",
        i64::try_from(tunnels_open).unwrap_or(i64::MAX),
    );
    if sources.is_empty() {
        return;
    }
    let families: [VpnFamily; 4] = [
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
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (source, status) in sources {
            let _ = writeln!(
                out,
                "{name}{{source=\"{}\"}} {}",
                label(source),
                value(status)
            );
        }
    }
}

/// One identity provider's signing keys (`jwks_url` or OIDC discovery), as `/metrics` shows it.
pub struct KeySourceGauge<'a> {
    /// The JWKS address, or the issuer with "(discovery)".
    pub source: &'a str,
    /// Whether the last fetch succeeded.
    pub up: bool,
    /// Keys in use.
    pub keys: usize,
    /// Seconds since the keys in use were fetched (`None`: never).
    pub age_seconds: Option<u64>,
}

/// One per-provider gauge: name, help, and how to read it off a source (`None`: not shown).
type KeyFamily = (
    &'static str,
    &'static str,
    fn(&KeySourceGauge<'_>) -> Option<u64>,
);

/// The identity providers' key sources, so an alert can fire before the last good keys go
/// stale (a provider down for a day) or when none were ever fetched (every token refused).
pub fn render_key_sources(sources: &[KeySourceGauge<'_>], out: &mut String) {
    if sources.is_empty() {
        return;
    }
    let families: [KeyFamily; 3] = [
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
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in sources {
            if let Some(v) = value(s) {
                let _ = writeln!(out, "{name}{{source=\"{}\"}} {v}", label(s.source));
            }
        }
    }
}

/// The SCIM-provisioned users by state (`[scim]`): active, inactive (deactivated by the IdP,
/// kept), and unplaceable (active but with no usable country, so out of the directory).
pub fn render_scim(active: usize, inactive: usize, unplaceable: usize, out: &mut String) {
    let name = "locgate_scim_users";
    let _ = writeln!(
        out,
        "# HELP {name} SCIM-provisioned users by state (unplaceable: active with no usable country, not in the directory; see /readyz).\n# TYPE {name} gauge"
    );
    for (state, n) in [
        ("active", active),
        ("inactive", inactive),
        ("unplaceable", unplaceable),
    ] {
        let _ = writeln!(out, "{name}{{state=\"{state}\"}} {n}");
    }
}
