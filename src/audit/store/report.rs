//! Reporting: the per-employee summary behind `locgate report` and the admin page (volumes,
//! countries, networks, share at home, the history and wire evidence, round-trip times), ranked
//! by evidence over the period: days away, which signals on how many days, how many networks.
//! Counting days, not events, is what keeps one honest outlier sign-in (or fifty retries of it
//! on one afternoon) from reading like a laptop farm.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::error::Result;
use super::open::Store;
use super::sql::Cells;
use crate::country::CountryCode;
use crate::employees::{Directory, Employee, Home};
use crate::intel::{LatLon, LocationPrecision, NetworkKind, Observation};
use crate::policy::history::{HistoryRules, day_of};

impl Store {
    /// [`Store::report`] from the events themselves (every event of the period read, the day
    /// rollup not used): what the rollup must equal, for checks and measurements.
    pub fn report_from_events(
        &self,
        since_ms: i64,
        dir: Option<&Directory>,
        only: Option<&str>,
    ) -> Result<Vec<EmployeeSummary>> {
        let mut stmt = self
            .conn
            .prepare(&report_sql(
                only.is_some(),
                "?1",
                "employee = ?2 COLLATE NOCASE",
            ))
            .map_err(|e| self.sq(e))?;
        let from = since_ms.saturating_sub(DAY_MARGIN_MS);
        let rows = match only {
            Some(who) => stmt.query_map(rusqlite::params![from, who], ReportRow::read),
            None => stmt.query_map(rusqlite::params![from], ReportRow::read),
        }
        .map_err(|e| self.sq(e))?
        .map(|r| r.map_err(|e| self.sq(e)));
        rank(rows, dir, since_ms)
    }
}

/// How far before the period's first instant its first day can start in some time zone (time
/// zones are at most 14 hours off UTC): the events queried from there are then filtered by day.
pub(super) const DAY_MARGIN_MS: i64 = 86_400_000;

/// The report's query: events of named employees from the first parameter on (the caller
/// filters them by day); with `one`, only the employee the second parameter names (`same` is
/// how the dialect compares it, case-insensitively). In no order: what is summed does not
/// depend on it (see [`Acc`]).
pub(super) fn report_sql(one: bool, since: &str, same: &str) -> String {
    let only = if one {
        format!(" AND {same}")
    } else {
        String::new()
    };
    format!(
        "SELECT {REPORT_COLUMNS} FROM events
         WHERE employee IS NOT NULL AND ts_ms >= {since}{only}"
    )
}

/// The report's columns, in the order [`ReportRow`] reads them.
pub(super) const REPORT_COLUMNS: &str = "employee, timestamp, action, reasons, country, asn, \
    as_org, lat, lon, anonymizer, message, json, ip, accuracy_km, seq, ts_ms";

/// The calendar day (the employee's time zone, else UTC) an instant falls on: what a period's
/// days and the rollup's rows are counted in.
pub(super) fn local_day(ts_ms: i64, employee: Option<&Employee>) -> jiff::civil::Date {
    let at = jiff::Timestamp::from_millisecond(ts_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let zone = employee
        .and_then(|e| e.time_zone.clone())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    zone.to_datetime(at).date()
}

/// Sums the rows per employee, keeping those on days of the period (see [`Store::report`]),
/// and ranks them, most evidence first.
pub(super) fn rank(
    rows: impl Iterator<Item = Result<ReportRow>>,
    dir: Option<&Directory>,
    since_ms: i64,
) -> Result<Vec<EmployeeSummary>> {
    let mut by: HashMap<String, Acc> = HashMap::new();
    for row in rows {
        add_in_period(&mut by, row?, dir, since_ms);
    }
    Ok(ranked(by))
}

/// Counts `row` into its employee's accumulator when it falls on a day of the period.
pub(super) fn add_in_period(
    by: &mut HashMap<String, Acc>,
    row: ReportRow,
    dir: Option<&Directory>,
    since_ms: i64,
) {
    let employee = dir.and_then(|d| d.get(&row.employee));
    if local_day(row.ts_ms, employee) < local_day(since_ms, employee) {
        return;
    }
    match by.get_mut(&row.employee) {
        Some(acc) => acc.add(row, employee),
        None => {
            let mut acc = Acc::default();
            let name = row.employee.clone();
            acc.add(row, employee);
            by.insert(name, acc);
        }
    }
}

/// The summaries of the accumulators, most evidence first.
pub(super) fn ranked(by: HashMap<String, Acc>) -> Vec<EmployeeSummary> {
    let mut out: Vec<EmployeeSummary> = by
        .into_iter()
        .map(|(employee, a)| a.summary(employee))
        .collect();
    out.sort_by(|a, b| {
        b.evidence_score
            .total_cmp(&a.evidence_score)
            .then(b.days_away.cmp(&a.days_away))
            .then(b.mismatches.cmp(&a.mismatches))
            .then(a.employee.cmp(&b.employee))
    });
    out
}

/// One row of the report query.
pub(super) struct ReportRow {
    pub(super) employee: String,
    pub(super) timestamp: String,
    pub(super) action: String,
    pub(super) reasons: String,
    pub(super) country: Option<String>,
    pub(super) asn: Option<u32>,
    pub(super) as_org: Option<String>,
    pub(super) lat: Option<f64>,
    pub(super) lon: Option<f64>,
    pub(super) anonymizer: bool,
    pub(super) message: String,
    pub(super) json: String,
    pub(super) ip: String,
    pub(super) accuracy_km: Option<f64>,
    pub(super) seq: i64,
    pub(super) ts_ms: i64,
}

impl ReportRow {
    /// Reads one row of the report query.
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReportRow> {
        Ok(ReportRow {
            employee: r.get(0)?,
            timestamp: r.get(1)?,
            action: r.get(2)?,
            reasons: r.get(3)?,
            country: r.get(4)?,
            asn: r.get(5)?,
            as_org: r.get(6)?,
            lat: r.get(7)?,
            lon: r.get(8)?,
            anonymizer: r.get(9)?,
            message: r.get(10)?,
            json: r.get(11)?,
            ip: r.get(12)?,
            accuracy_km: r.get(13)?,
            seq: r.get(14)?,
            ts_ms: r.get(15)?,
        })
    }

    /// Reads one row of the report query from either store ([`Cells`]).
    pub(super) fn of_cells(c: &Cells) -> Result<ReportRow> {
        Ok(ReportRow {
            employee: c.text(0)?,
            timestamp: c.text(1)?,
            action: c.text(2)?,
            reasons: c.text(3)?,
            country: c.opt_text(4)?,
            asn: c.opt_int(5)?.and_then(|a| u32::try_from(a).ok()),
            as_org: c.opt_text(6)?,
            lat: c.opt_real(7)?,
            lon: c.opt_real(8)?,
            anonymizer: c.int(9)? != 0,
            message: c.text(10)?,
            json: c.text(11)?,
            ip: c.text(12)?,
            accuracy_km: c.opt_real(13)?,
            seq: c.int(14)?,
            ts_ms: c.int(15)?,
        })
    }
}

/// The declared home as a centre and radius: its coordinates, or the capital and the country's
/// size when only the country is declared (as the policy measures it).
pub fn home_disc(home: &Home) -> Option<(LatLon, f64)> {
    match home.location {
        Some(c) => Some((c, home.radius_km)),
        None => crate::country::table().get(home.country).map(|i| {
            (
                LatLon {
                    lat: i.lat,
                    lon: i.lon,
                },
                home.radius_km.max(i.radius_km),
            )
        }),
    }
}

/// What one employee's events add up to: over one day (a row of the rollup, stored as JSON)
/// or over a period. Mergeable ([`Acc::merge`]) so that days summed one by one give what the
/// events summed at once give: counts and maps add, sets unite, a day's flags OR and its codes
/// unite, and the "latest" things (evidence sentences, last seen) are the ones of the greatest
/// (time, sequence number), never of the reading order.
///
/// Round-trip times are kept as a histogram of 0.1 ms buckets (value, count): exact to 0.05 ms,
/// small per day whatever the volume, and merged by adding counts, so p50, p90 and the maximum
/// are the same whether computed from the days or from the events (both read the buckets).
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Acc {
    connections: u64,
    mismatches: u64,
    anonymized: u64,
    located: u64,
    in_radius: u64,
    countries: HashMap<String, u64>,
    networks: HashMap<String, u64>,
    reasons: HashMap<String, u64>,
    evidence: BTreeMap<String, Latest>,
    rtts: BTreeMap<i64, u64>,
    last_seen: Option<Stamp>,
    days: BTreeMap<String, DayAcc>,
    asns: BTreeSet<u32>,
    /// Only counted, never listed: a hash set (a fleet's month merges millions of them).
    addresses: HashSet<String>,
}

/// When an event was (ms since the epoch, then its sequence number: a total order) and its
/// RFC 3339 time.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, PartialOrd)]
struct Stamp(i64, i64, String);

/// One evidence code: events carrying it, and the sentences of the latest.
#[derive(Default, Serialize, Deserialize)]
struct Latest {
    count: u64,
    at: Stamp,
    message: String,
}

/// What one calendar day (in the employee's time zone) showed.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct DayAcc {
    placed: bool,
    home: bool,
    codes: BTreeSet<String>,
}

/// Adds `from`'s counts into `into`.
fn add_counts<K: Ord + std::hash::Hash + Eq>(into: &mut HashMap<K, u64>, from: HashMap<K, u64>) {
    for (k, n) in from {
        *into.entry(k).or_default() += n;
    }
}

impl Acc {
    /// Counts one event of this employee; `employee` is their directory entry when known.
    pub(super) fn add(&mut self, row: ReportRow, employee: Option<&Employee>) {
        self.connections += 1;
        if row.action != "allow" {
            self.mismatches += 1;
        }
        if row.anonymizer {
            self.anonymized += 1;
        }
        let json = serde_json::from_str::<serde_json::Value>(&row.json).unwrap_or_default();
        let day = place_of(&row, &json, employee).map(|(date, placed, home)| {
            let key = date.to_string();
            let d = self.days.entry(key.clone()).or_default();
            d.placed |= placed;
            d.home |= home;
            key
        });
        if let Some(c) = &row.country {
            *self.countries.entry(c.clone()).or_default() += 1;
        }
        if let Some(a) = row.asn {
            self.asns.insert(a);
            let label = match &row.as_org {
                Some(o) => format!("AS{a} {o}"),
                None => format!("AS{a}"),
            };
            *self.networks.entry(label).or_default() += 1;
        }
        self.addresses.insert(row.ip.clone());
        let at = Stamp(row.ts_ms, row.seq, row.timestamp.clone());
        for r in row.reasons.split(',').filter(|s| !s.is_empty()) {
            *self.reasons.entry(r.to_owned()).or_default() += 1;
            if let Some(date) = &day {
                self.days
                    .entry(date.clone())
                    .or_default()
                    .codes
                    .insert(r.to_owned());
            }
            if EVIDENCE_CODES.contains(&r) {
                let e = self.evidence.entry(r.to_owned()).or_default();
                e.count += 1;
                if at >= e.at {
                    e.at = at.clone();
                    e.message.clone_from(&row.message);
                }
            }
        }
        if let Some(rtt) = json["locgate"]["network"]["rtt_ms"].as_f64() {
            *self.rtts.entry(rtt_bucket(rtt)).or_default() += 1;
        }
        if let (Some(home), Some(lat), Some(lon)) = (employee.map(|e| &e.home), row.lat, row.lon)
            && let Some((centre, radius)) = home_disc(home)
        {
            self.located += 1;
            if crate::geo::distance_km(centre, LatLon { lat, lon }) <= radius {
                self.in_radius += 1;
            }
        }
        if self.last_seen.as_ref().is_none_or(|s| at > *s) {
            self.last_seen = Some(at);
        }
    }

    /// Adds what `other` counted (another day, or more events of the same day).
    pub(super) fn merge(&mut self, other: Acc) {
        self.connections += other.connections;
        self.mismatches += other.mismatches;
        self.anonymized += other.anonymized;
        self.located += other.located;
        self.in_radius += other.in_radius;
        add_counts(&mut self.countries, other.countries);
        add_counts(&mut self.networks, other.networks);
        add_counts(&mut self.reasons, other.reasons);
        for (code, e) in other.evidence {
            let mine = self.evidence.entry(code).or_default();
            mine.count += e.count;
            if e.at >= mine.at {
                mine.at = e.at;
                mine.message = e.message;
            }
        }
        for (bucket, n) in other.rtts {
            *self.rtts.entry(bucket).or_default() += n;
        }
        if let Some(at) = other.last_seen
            && self.last_seen.as_ref().is_none_or(|s| at > *s)
        {
            self.last_seen = Some(at);
        }
        for (date, d) in other.days {
            let mine = self.days.entry(date).or_default();
            mine.placed |= d.placed;
            mine.home |= d.home;
            mine.codes.extend(d.codes);
        }
        self.asns.extend(other.asns);
        // The smaller set goes into the larger.
        let mut other_addresses = other.addresses;
        if other_addresses.len() > self.addresses.len() {
            std::mem::swap(&mut self.addresses, &mut other_addresses);
        }
        self.addresses.extend(other_addresses);
    }

    /// The summary line of what was counted.
    fn summary(self, employee: String) -> EmployeeSummary {
        let days_away = self.days.values().filter(|d| d.placed && !d.home).count() as u64;
        let days_home = self.days.values().filter(|d| d.home).count() as u64;
        let mut signal_days: HashMap<String, u64> = HashMap::new();
        for code in self.days.values().flat_map(|d| &d.codes) {
            *signal_days.entry(code.clone()).or_default() += 1;
        }
        let evidence_score = signal_days
            .iter()
            .map(|(code, days)| weight(code) * *days as f64)
            .sum::<f64>();
        EmployeeSummary {
            days: self.days.len() as u64,
            days_home,
            days_away,
            distinct_networks: self.asns.len() as u64,
            distinct_addresses: self.addresses.len() as u64,
            signal_days: sorted(signal_days)
                .into_iter()
                .filter(|(code, _)| weight(code) > 0.0)
                .collect(),
            evidence_score,
            employee,
            connections: self.connections,
            mismatches: self.mismatches,
            home_radius_share: (self.located > 0)
                .then(|| self.in_radius as f64 / self.located as f64),
            anonymizer_share: self.anonymized as f64 / self.connections.max(1) as f64,
            countries: sorted(self.countries),
            networks: sorted(self.networks),
            top_reasons: sorted(self.reasons).into_iter().take(3).collect(),
            evidence: self
                .evidence
                .into_iter()
                .map(|(code, e)| Evidence {
                    code,
                    count: e.count,
                    latest: e.message,
                })
                .collect(),
            rtt_ms: rtt_summary(&self.rtts),
            last_seen: self.last_seen.map(|s| s.2).unwrap_or_default(),
        }
    }
}

/// The histogram bucket of a round-trip time: tenths of a millisecond.
fn rtt_bucket(ms: f64) -> i64 {
    (ms * 10.0).round() as i64
}

/// The day this event falls on, marked home or away as the residence rule would mark it
/// (`policy::history::day_of`: travel windows, networks placed at a gateway and
/// country-level data are neither). An event on the person's own networks, or one away from
/// home that the policy had nothing to say about (corporate egress, trusted lists), is not a
/// place either. Without a directory entry, days are counted but never placed.
fn place_of(
    row: &ReportRow,
    json: &serde_json::Value,
    employee: Option<&Employee>,
) -> Option<(jiff::civil::Date, bool, bool)> {
    let at: jiff::Timestamp = row.timestamp.parse().ok()?;
    let ip: std::net::IpAddr = row.ip.parse().ok()?;
    let Some(employee) = employee else {
        return Some((jiff::tz::TimeZone::UTC.to_datetime(at).date(), false, false));
    };
    let mut obs = Observation::empty(ip);
    obs.country = row.country.as_deref().and_then(CountryCode::parse);
    obs.location = row.lat.zip(row.lon).map(|(lat, lon)| LatLon { lat, lon });
    obs.accuracy_km = row.accuracy_km;
    obs.precision = match json["locgate"]["location_precision"].as_str() {
        Some("database") => Some(LocationPrecision::Database),
        Some("country") => Some(LocationPrecision::Country),
        _ => None,
    };
    obs.network_kind = json["locgate"]["network_kind"]
        .as_str()
        .and_then(NetworkKind::parse);
    let d = day_of(employee, &obs, at, &HistoryRules::default());
    let unremarked = row.reasons.split(',').all(str::is_empty);
    let not_a_place = employee.network_allowed(ip) || (!d.home && unremarked);
    Some((d.date, d.placed && !not_a_place, d.home && !not_a_place))
}

/// How much one day carrying `code` weighs in the ranking. Signals a careful worker cannot
/// explain away (a sanctioned country, a laptop farm, an anonymizer, a place the packets contradict)
/// weigh most; a day outside the radius weighs one, so a pattern of days outranks a trip, and
/// the residence verdict (already a pattern) adds to it. Codes that are no evidence about the
/// person (internal address, unknown location, data problems) weigh nothing.
fn weight(code: &str) -> f64 {
    match code {
        "sanctioned_country" => 10.0,
        "tor_exit" | "shared_egress" => 6.0,
        "impossible_travel" | "latency_inconsistent" | "residential_proxy" => 4.0,
        "anonymous_vpn" | "public_proxy" | "hosting_provider" | "residence_mismatch" => 3.0,
        "country_mismatch" | "country_not_allowed" | "session_location_changed" => 2.0,
        "outside_home_radius"
        | "region_mismatch"
        | "relay"
        | "tunnel_mss"
        | "off_hours"
        | "identity_conflict" => 1.0,
        _ => 0.0,
    }
}

/// The reason codes whose evidence `report` spells out (the ones built from history and the wire,
/// which a reviewer cannot see from one event alone).
const EVIDENCE_CODES: [&str; 7] = [
    "impossible_travel",
    "shared_egress",
    "residence_mismatch",
    "off_hours",
    "session_location_changed",
    "latency_inconsistent",
    "tunnel_mss",
];

/// p50, p90 and the maximum of the histogram, each the value at the rank the sorted samples
/// would have it.
fn rtt_summary(rtts: &BTreeMap<i64, u64>) -> Option<RttSummary> {
    let samples: u64 = rtts.values().sum();
    if samples == 0 {
        return None;
    }
    let at = |q: f64| {
        let rank = ((samples - 1) as f64 * q).round() as u64;
        let mut seen = 0;
        for (bucket, n) in rtts {
            seen += n;
            if seen > rank {
                return *bucket as f64 / 10.0;
            }
        }
        0.0
    };
    Some(RttSummary {
        samples,
        p50: at(0.5),
        p90: at(0.9),
        max: at(1.0),
    })
}

fn sorted(m: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// One line of `locgate report`.
#[derive(Debug, Clone, Serialize)]
pub struct EmployeeSummary {
    /// Employee id.
    pub employee: String,
    /// Events recorded.
    pub connections: u64,
    /// Flags and blocks.
    pub mismatches: u64,
    /// Share of located events within the declared home radius (needs the directory).
    pub home_radius_share: Option<f64>,
    /// Share through an anonymizer.
    pub anonymizer_share: f64,
    /// Countries seen, most frequent first.
    pub countries: Vec<(String, u64)>,
    /// Networks seen, most frequent first.
    pub networks: Vec<(String, u64)>,
    /// The three most frequent reasons.
    pub top_reasons: Vec<(String, u64)>,
    /// History and wire signals seen, with how often and the latest sentences (clusters, trips,
    /// share of days at home).
    pub evidence: Vec<Evidence>,
    /// Round-trip times measured on direct connections.
    pub rtt_ms: Option<RttSummary>,
    /// Last event time.
    pub last_seen: String,
    /// Calendar days with events (the employee's time zone, else UTC).
    pub days: u64,
    /// Days with a sighting inside the home radius.
    pub days_home: u64,
    /// Placed days with no sighting inside the home radius (travel windows, networks placed at
    /// a gateway, country-level data and corporate egress are not placed).
    pub days_away: u64,
    /// Distinct autonomous systems.
    pub distinct_networks: u64,
    /// Distinct client addresses.
    pub distinct_addresses: u64,
    /// Each evidence-bearing reason code with the number of days it appeared on, most first.
    pub signal_days: Vec<(String, u64)>,
    /// The ranking key: each signal's days, weighted by how hard it is to explain away.
    pub evidence_score: f64,
}

/// One signal's evidence for one employee.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evidence {
    /// Reason code.
    pub code: String,
    /// Events carrying it.
    pub count: u64,
    /// The sentences of the latest such event.
    pub latest: String,
}

/// Distribution of measured round-trip times, ms.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct RttSummary {
    /// Events with a measurement.
    pub samples: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest.
    pub max: f64,
}
