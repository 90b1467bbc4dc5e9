//! How old each data source may get before locgate says it is stale.
//!
//! Geolocation moves slowly (addresses change hands over weeks), Tor exits within hours. A gateway
//! deciding on data months out of date still answers confidently, so age is checked against a
//! limit per source and reported (log, `/readyz`, metrics) rather than silently tolerated. This
//! module is pure: it compares [`DataVersion`]s with limits at a given time; the caller supplies
//! the clock and does the logging.

use std::time::Duration;

use super::DataVersion;

/// Default limit for geolocation and ASN databases (`[data] max_age`).
pub const DEFAULT_GEO_MAX_AGE: Duration = Duration::from_secs(35 * 86_400);
/// Default limit for Tor exit lists: exits change within hours, a two-day-old list misses many.
pub const DEFAULT_TOR_MAX_AGE: Duration = Duration::from_secs(2 * 86_400);

/// Age limits, from `[data] max_age`, per-list `max_age` and `[[update.source]] max_age`.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    /// Limit for every mmdb database (geolocation, ASN, anonymizer).
    pub geo_max_age: Duration,
    /// Limit for lists of category `tor_exit` without their own limit.
    pub tor_max_age: Duration,
    /// Limits for single sources, keyed by the source label (the file path as displayed).
    /// These win over the defaults above; lists of other categories are only checked when named
    /// here, because hand-kept lists (corporate egress) legitimately go unchanged for months.
    pub per_source: Vec<(String, Duration)>,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness {
            geo_max_age: DEFAULT_GEO_MAX_AGE,
            tor_max_age: DEFAULT_TOR_MAX_AGE,
            per_source: Vec::new(),
        }
    }
}

/// A source past its age limit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleSource {
    /// File name (or `embedded:<name>`).
    pub source: String,
    /// Database type or `list:<category>`.
    pub kind: String,
    /// Build (or modification) time, Unix seconds.
    pub built_epoch: u64,
    /// Age at the time of the check, seconds.
    pub age_secs: u64,
    /// The limit it is past, seconds.
    pub max_age_secs: u64,
    /// Compiled into the binary: only a newer binary or a configured file can freshen it, so
    /// readiness checks may choose to tolerate it.
    pub embedded: bool,
}

impl StaleSource {
    /// One line for logs and `/readyz`: "city.mmdb (GeoIP2-City) is 40 days old; limit 35 days".
    pub fn describe(&self) -> String {
        format!(
            "{} ({}) is {} old; limit {}",
            self.source,
            self.kind,
            human(self.age_secs),
            human(self.max_age_secs)
        )
    }
}

fn human(secs: u64) -> String {
    if secs >= 2 * 86_400 {
        format!("{} days", secs / 86_400)
    } else {
        format!("{} hours", secs / 3600)
    }
}

impl Freshness {
    /// The limit that applies to `v`, if any.
    pub fn limit_for(&self, v: &DataVersion) -> Option<Duration> {
        if let Some((_, d)) = self.per_source.iter().find(|(s, _)| *s == v.source) {
            return Some(*d);
        }
        if v.kind == "list:tor_exit" {
            return Some(self.tor_max_age);
        }
        if v.kind.starts_with("list:") || v.kind == "asn-table" {
            return None;
        }
        Some(self.geo_max_age)
    }

    /// The sources among `versions` older than their limit at `now_epoch` (Unix seconds).
    /// A source with an unknown build time (0) is not reported: there is nothing to compare.
    pub fn stale(&self, versions: &[DataVersion], now_epoch: u64) -> Vec<StaleSource> {
        versions
            .iter()
            .filter(|v| v.built_epoch != 0)
            .filter_map(|v| {
                let limit = self.limit_for(v)?.as_secs();
                let age = now_epoch.saturating_sub(v.built_epoch);
                (age > limit).then(|| StaleSource {
                    source: v.source.clone(),
                    kind: v.kind.clone(),
                    built_epoch: v.built_epoch,
                    age_secs: age,
                    max_age_secs: limit,
                    embedded: v.source.starts_with("embedded:"),
                })
            })
            .collect()
    }
}

/// The current time as Unix seconds (0 if the clock is before 1970).
pub fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(source: &str, kind: &str, built: u64) -> DataVersion {
        DataVersion {
            source: source.into(),
            kind: kind.into(),
            built_epoch: built,
        }
    }

    const DAY: u64 = 86_400;

    #[test]
    fn defaults_geo_35_days_tor_2_days_other_lists_unchecked() {
        let f = Freshness::default();
        let now = 1000 * DAY;
        let versions = [
            v("city.mmdb", "GeoIP2-City", now - 36 * DAY),
            v("asn.mmdb", "GeoLite2-ASN", now - 34 * DAY),
            v("tor.txt", "list:tor_exit", now - 3 * DAY),
            v("egress.txt", "list:trusted", now - 400 * DAY),
            v("embedded:country.mmdb", "country", now - 100 * DAY),
            v("unknown.mmdb", "x", 0),
        ];
        let stale = f.stale(&versions, now);
        let names: Vec<_> = stale.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(names, ["city.mmdb", "tor.txt", "embedded:country.mmdb"]);
        assert!(stale[2].embedded);
        assert_eq!(stale[0].age_secs, 36 * DAY);
        assert_eq!(
            stale[0].describe(),
            "city.mmdb (GeoIP2-City) is 36 days old; limit 35 days"
        );
        assert_eq!(
            stale[1].describe(),
            "tor.txt (list:tor_exit) is 3 days old; limit 2 days"
        );
    }

    #[test]
    fn per_source_limit_wins() {
        let f = Freshness {
            per_source: vec![
                ("egress.txt".into(), Duration::from_secs(DAY)),
                ("tor.txt".into(), Duration::from_secs(10 * DAY)),
            ],
            ..Freshness::default()
        };
        let now = 100 * DAY;
        let versions = [
            v("egress.txt", "list:trusted", now - 2 * DAY),
            v("tor.txt", "list:tor_exit", now - 3 * DAY),
        ];
        let stale = f.stale(&versions, now);
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].source, "egress.txt");
    }

    #[test]
    fn future_build_time_is_not_stale() {
        let f = Freshness::default();
        assert!(
            f.stale(&[v("a.mmdb", "x", 200 * DAY)], 100 * DAY)
                .is_empty()
        );
    }
}
