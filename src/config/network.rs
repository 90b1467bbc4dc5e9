//! `[network]`: where the gateway stands, for the wire signals (latency, tunnel MSS).

use serde::Deserialize;
use toml::Spanned;

use super::ErrAt;
use crate::policy::Action;
use crate::policy::wire::WireRules;
use crate::values::ConfigError;

/// Checks `[network]`; `None` when the section is absent (the wire signals are then off).
pub(super) fn check(
    raw: Option<RawNetwork>,
    err: ErrAt<'_>,
) -> Result<Option<WireRules>, ConfigError> {
    let Some(n) = raw else { return Ok(None) };
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
    rules.latency_inconsistent = n.latency_inconsistent.unwrap_or(rules.latency_inconsistent);
    rules.tunnel_mss = n.tunnel_mss.unwrap_or(rules.tunnel_mss);
    rules.mss_below_v4 = n.mss_below_v4.unwrap_or(rules.mss_below_v4);
    rules.mss_below_v6 = n.mss_below_v6.unwrap_or(rules.mss_below_v6);
    Ok(Some(rules))
}

/// `[network]`: the gateway's location and the wire signals.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
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
