//! Signals that only history shows: impossible travel, shared egress (laptop farms), persistent
//! absence from the declared home, and night-time work in the declared time zone.
//!
//! Pure functions of what the history store returned and the current sighting, so every
//! boundary (exactly at the speed limit, accuracy larger than the distance, one trip against a
//! pattern) is unit-tested, and `replay` computes exactly what the live proxy would.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::{Action, Reason, ReasonCode};
use crate::employees::Employee;
use crate::geo;
use crate::history::{Day, Sighting};
use crate::intel::{LocationPrecision, Observation};

/// `[history]`: actions and thresholds of the history signals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryRules {
    /// Whether history is consulted at all.
    pub enabled: bool,
    /// Action for `impossible_travel`.
    pub impossible_travel: Action,
    /// Fastest plausible travel, km/h (airliners cruise at about 900).
    pub travel_kmh: f64,
    /// Shortest distance (beyond both accuracy radii) that counts as travel, km.
    pub travel_min_km: f64,
    /// Action for `shared_egress`.
    pub shared_egress: Action,
    /// Distinct employees on one egress that make a cluster.
    pub shared_egress_employees: usize,
    /// How far back shared egress looks.
    pub shared_egress_window: SignedDuration,
    /// Action for `residence_mismatch`.
    pub residence_mismatch: Action,
    /// How many recent placed days with sign-ins residence looks at.
    pub residence_days: usize,
    /// How far back (calendar days) residence reaches to find them: days that cannot be placed
    /// (travel windows, networks placed at a gateway, country-level data) are skipped, so a
    /// nomad back from three weeks abroad is judged on the home days before the trip.
    pub residence_lookback_days: usize,
    /// Fewest placed days before residence is judged at all.
    pub residence_min_days: usize,
    /// Share of placed days at home below which residence is mismatched.
    pub residence_home_share: f64,
    /// Action for `off_hours`.
    pub off_hours: Action,
    /// Night starts at this local hour (inclusive)...
    pub night_start_hour: i8,
    /// ...and ends at this local hour (exclusive).
    pub night_end_hour: i8,
    /// Nights among the recent days with sign-ins that make a pattern.
    pub off_hours_nights: usize,
}

impl Default for HistoryRules {
    fn default() -> Self {
        HistoryRules {
            enabled: true,
            impossible_travel: Action::Flag,
            travel_kmh: 900.0,
            travel_min_km: 500.0,
            shared_egress: Action::Flag,
            shared_egress_employees: 3,
            shared_egress_window: SignedDuration::from_hours(14 * 24),
            residence_mismatch: Action::Flag,
            residence_days: 14,
            residence_lookback_days: 60,
            residence_min_days: 7,
            residence_home_share: 0.5,
            off_hours: Action::Note,
            night_start_hour: 0,
            night_end_hour: 5,
            off_hours_nights: 5,
        }
    }
}

/// `impossible_travel`: from the previous place to this one faster than `travel_kmh`, over at
/// least `travel_min_km` beyond both accuracy radii. Exactly at the limit is not above it.
pub fn impossible_travel(prev: &Sighting, now: &Sighting, rules: &HistoryRules) -> Option<Reason> {
    if rules.impossible_travel == Action::Allow {
        return None;
    }
    let (Some(a), Some(b)) = (prev.location, now.location) else {
        return None;
    };
    let distance = geo::distance_km(a, b);
    let beyond = distance - prev.accuracy_km.max(0.0) - now.accuracy_km.max(0.0);
    if beyond < rules.travel_min_km {
        return None;
    }
    // Clock skew and out-of-order lines: the gap is a gap whichever way round.
    let gap = now.at.duration_since(prev.at).abs();
    let hours = gap.as_secs_f64() / 3600.0;
    let speed = if hours > 0.0 {
        beyond / hours
    } else {
        f64::INFINITY
    };
    if speed <= rules.travel_kmh {
        return None;
    }
    Some(Reason::explained(
        ReasonCode::ImpossibleTravel,
        rules.impossible_travel,
        || {
            let speed_text = if speed.is_finite() {
                format!("{} km/h", group(speed))
            } else {
                "at the same instant".to_string()
            };
            format!(
                "{} km ({} km beyond both accuracy radii) from the previous sighting {} earlier: {speed_text}, above {} km/h",
                group(distance),
                group(beyond),
                human_gap(gap),
                group(rules.travel_kmh)
            )
        },
    ))
}

/// `shared_egress`: this employee and `others` (distinct, within the window) on one egress.
pub fn shared_egress(
    me: &str,
    others: &[(Arc<str>, Timestamp)],
    rules: &HistoryRules,
) -> Option<Reason> {
    if rules.shared_egress == Action::Allow {
        return None;
    }
    let mut names: Vec<&str> = others
        .iter()
        .map(|(n, _)| &**n)
        .filter(|n| *n != me)
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.len() + 1 < rules.shared_egress_employees {
        return None;
    }
    Some(Reason::explained(
        ReasonCode::SharedEgress,
        rules.shared_egress,
        || {
            format!(
                "{} employees used this address within {} days: {me} and {}",
                names.len() + 1,
                rules.shared_egress_window.as_hours() / 24,
                names.join(", ")
            )
        },
    ))
}

/// `residence_mismatch`: over the last `residence_days` placed days with sign-ins (the current
/// one included; reaching back at most `residence_lookback_days`), the share with a sighting
/// inside the home radius is below the threshold. Days that cannot be placed are neither home
/// nor away: they are skipped, not counted against the person.
pub fn residence_mismatch(
    days: &[Day],
    employee: &Employee,
    rules: &HistoryRules,
) -> Option<Reason> {
    if rules.residence_mismatch == Action::Allow {
        return None;
    }
    let today = days.last()?.date;
    let lookback = i32::try_from(rules.residence_lookback_days).unwrap_or(i32::MAX);
    let oldest = today
        .checked_sub(jiff::Span::new().days(lookback))
        .unwrap_or(jiff::civil::Date::MIN);
    let placed: Vec<&Day> = days
        .iter()
        .rev()
        .take_while(|d| d.date >= oldest)
        .filter(|d| d.placed)
        .take(rules.residence_days)
        .collect();
    if placed.len() < rules.residence_min_days {
        return None;
    }
    let home = placed.iter().filter(|d| d.home).count();
    let share = home as f64 / placed.len() as f64;
    if share >= rules.residence_home_share {
        return None;
    }
    let since = placed.last().map_or(today, |d| d.date);
    Some(Reason::explained(
        ReasonCode::ResidenceMismatch,
        rules.residence_mismatch,
        || {
            format!(
                "inside the declared home radius ({}, {:.0} km) on {home} of the last {} placed days with sign-ins, since {since} ({:.0}%, threshold {:.0}%)",
                employee.home.place(),
                employee.home.radius_km,
                placed.len(),
                share * 100.0,
                rules.residence_home_share * 100.0
            )
        },
    ))
}

/// `off_hours`: sign-ins at night in the declared time zone on many of the recent days.
pub fn off_hours(days: &[Day], employee: &Employee, rules: &HistoryRules) -> Option<Reason> {
    if rules.off_hours == Action::Allow {
        return None;
    }
    let zone = employee.time_zone_name()?;
    let recent = &days[days.len().saturating_sub(rules.residence_days)..];
    let nights = recent.iter().filter(|d| d.night).count();
    if nights < rules.off_hours_nights {
        return None;
    }
    Some(Reason::explained(
        ReasonCode::OffHours,
        rules.off_hours,
        || {
            format!(
                "signed in between {:02}:00 and {:02}:00 {zone} time on {nights} of the last {} days with sign-ins",
                rules.night_start_hour,
                rules.night_end_hour,
                recent.len()
            )
        },
    ))
}

/// What this sighting says about its day: the date and hour in the declared time zone, whether it
/// is inside the home radius (only judged for city-level data or another country). A sighting
/// inside one of the employee's travel windows is not placed: announced travel is neither home
/// nor away.
pub fn day_of(
    employee: &Employee,
    obs: &Observation<'_>,
    at: Timestamp,
    rules: &HistoryRules,
) -> Day {
    let zone = employee
        .time_zone
        .clone()
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let local = zone.to_datetime(at);
    let hour = local.hour();
    let night = employee.time_zone.is_some()
        && if rules.night_start_hour <= rules.night_end_hour {
            hour >= rules.night_start_hour && hour < rules.night_end_hour
        } else {
            hour >= rules.night_start_hour || hour < rules.night_end_hour
        };
    let (placed, home) = match (
        obs.country,
        obs.location,
        obs.precision,
        employee.home.location,
    ) {
        (Some(cc), _, _, _) if cc != employee.home.country => (true, false),
        (_, Some(seen), Some(LocationPrecision::Database), Some(home))
            if obs.network_kind.is_none() =>
        {
            let beyond = geo::distance_km(home, seen)
                - employee.home.radius_km
                - obs.accuracy_km.unwrap_or(0.0).max(0.0);
            (true, beyond <= 0.0)
        }
        _ => (false, false),
    };
    let traveling = employee.travel.iter().any(|w| w.contains(at));
    let (placed, home) = if traveling {
        (false, false)
    } else {
        (placed, home)
    };
    Day {
        date: local.date(),
        home,
        placed,
        night,
    }
}

fn group(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn human_gap(gap: SignedDuration) -> String {
    let mins = gap.as_secs() / 60;
    if mins < 60 {
        format!("{mins} min")
    } else if mins < 48 * 60 {
        format!("{}h{:02}", mins / 60, mins % 60)
    } else {
        format!("{} days", mins / (24 * 60))
    }
}

#[cfg(test)]
mod tests;
