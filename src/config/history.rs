//! `[history]`: the history signals (impossible travel, shared egress, residence, off hours)
//! and the Redis stream through which a fleet of gateways shares history.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ErrAt;
use crate::history::redis_link::RedisLinkConfig;
use crate::policy::Action;
use crate::policy::history::HistoryRules;
use crate::values::{ConfigError, Dur};

/// Checks `[history]`: the Redis link first, then the signal settings; defaults when absent.
pub(super) fn check(
    raw: Option<RawHistory>,
    base: &Path,
    err: ErrAt<'_>,
) -> Result<(HistoryRules, Option<RedisLinkConfig>), ConfigError> {
    match raw {
        None => Ok((HistoryRules::default(), None)),
        Some(h) => {
            let link = redis_link(&h, base, err)?;
            Ok((rules(h, err)?, link))
        }
    }
}

/// Checks `[history] redis*`: the URL must parse (the credentials in it are never echoed).
fn redis_link(
    h: &RawHistory,
    base: &Path,
    err: ErrAt<'_>,
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
fn rules(h: RawHistory, err: ErrAt<'_>) -> Result<HistoryRules, ConfigError> {
    let d = HistoryRules::default();
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
            err,
        )?,
        travel_min_km: positive(
            h.impossible_travel_min_km,
            d.travel_min_km,
            "impossible_travel_min_km",
            err,
        )?,
        shared_egress: h.shared_egress.unwrap_or(d.shared_egress),
        shared_egress_employees: count(
            h.shared_egress_employees,
            d.shared_egress_employees,
            "shared_egress_employees",
            err,
        )?,
        shared_egress_window: window,
        residence_mismatch: h.residence_mismatch.unwrap_or(d.residence_mismatch),
        residence_days: count(h.residence_days, d.residence_days, "residence_days", err)?,
        residence_lookback_days: count(
            h.residence_lookback_days,
            d.residence_lookback_days,
            "residence_lookback_days",
            err,
        )?,
        residence_min_days: count(
            h.residence_min_days,
            d.residence_min_days,
            "residence_min_days",
            err,
        )?,
        residence_home_share: share,
        off_hours: h.off_hours.unwrap_or(d.off_hours),
        night_start_hour: hour(h.night_start_hour, d.night_start_hour, err)?,
        night_end_hour: hour(h.night_end_hour, d.night_end_hour, err)?,
        off_hours_nights: count(
            h.off_hours_nights,
            d.off_hours_nights,
            "off_hours_nights",
            err,
        )?,
    })
}

/// A positive finite number, or `default` when the field is not set.
fn positive(
    v: Option<Spanned<f64>>,
    default: f64,
    what: &str,
    err: ErrAt<'_>,
) -> Result<f64, ConfigError> {
    match v {
        None => Ok(default),
        Some(x) if x.get_ref().is_finite() && *x.get_ref() > 0.0 => Ok(*x.get_ref()),
        Some(x) => Err(err(x.span(), format!("{what} must be a positive number"))),
    }
}

/// A count of at least 1, or `default` when the field is not set.
fn count(
    v: Option<Spanned<usize>>,
    default: usize,
    what: &str,
    err: ErrAt<'_>,
) -> Result<usize, ConfigError> {
    match v {
        None => Ok(default),
        Some(x) if *x.get_ref() >= 1 => Ok(*x.get_ref()),
        Some(x) => Err(err(x.span(), format!("{what} must be at least 1"))),
    }
}

/// An hour of the day (0 to 23), or `default` when the field is not set.
fn hour(v: Option<Spanned<i8>>, default: i8, err: ErrAt<'_>) -> Result<i8, ConfigError> {
    match v {
        None => Ok(default),
        Some(x) if (0..24).contains(x.get_ref()) => Ok(*x.get_ref()),
        Some(x) => Err(err(x.span(), "an hour is 0 to 23".into())),
    }
}

/// `[history]`; every field optional, defaults in [`HistoryRules::default`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHistory {
    enabled: Option<bool>,
    impossible_travel: Option<Action>,
    impossible_travel_kmh: Option<Spanned<f64>>,
    impossible_travel_min_km: Option<Spanned<f64>>,
    shared_egress: Option<Action>,
    shared_egress_employees: Option<Spanned<usize>>,
    shared_egress_window: Option<Dur>,
    residence_mismatch: Option<Action>,
    residence_days: Option<Spanned<usize>>,
    residence_lookback_days: Option<Spanned<usize>>,
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
