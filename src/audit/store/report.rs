//! Reporting: the per-employee summary behind `locgate report` and the admin page (volumes,
//! countries, networks, share at home, the history and wire evidence, round-trip times).

use std::collections::HashMap;

use serde::Serialize;

use super::error::Result;
use super::open::Store;
use crate::employees::{Directory, Home};
use crate::intel::LatLon;

impl Store {
    /// Per-employee summary since `since_ms`, employees with the most evidence first.
    pub fn report(&self, since_ms: i64, dir: Option<&Directory>) -> Result<Vec<EmployeeSummary>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT employee, timestamp, action, reasons, country, asn, as_org, lat, lon, anonymizer,
                        message, json
                 FROM events WHERE employee IS NOT NULL AND ts_ms >= ?1 ORDER BY ts_ms",
            )
            .map_err(|e| self.sq(e))?;
        let mut by: HashMap<String, Acc> = HashMap::new();
        let rows = stmt
            .query_map([since_ms], ReportRow::read)
            .map_err(|e| self.sq(e))?;
        for row in rows {
            let row = row.map_err(|e| self.sq(e))?;
            let home = dir.and_then(|d| d.get(&row.employee)).map(|e| &e.home);
            by.entry(row.employee.clone()).or_default().add(row, home);
        }
        let mut out: Vec<EmployeeSummary> = by
            .into_iter()
            .map(|(employee, a)| a.summary(employee))
            .collect();
        out.sort_by(|a, b| {
            b.mismatches
                .cmp(&a.mismatches)
                .then(b.connections.cmp(&a.connections))
                .then(a.employee.cmp(&b.employee))
        });
        Ok(out)
    }
}

/// One row of the report query.
struct ReportRow {
    employee: String,
    timestamp: String,
    action: String,
    reasons: String,
    country: Option<String>,
    asn: Option<u32>,
    as_org: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    anonymizer: bool,
    message: String,
    json: String,
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

#[derive(Default)]
struct Acc {
    connections: u64,
    mismatches: u64,
    anonymized: u64,
    located: u64,
    in_radius: u64,
    countries: HashMap<String, u64>,
    networks: HashMap<String, u64>,
    reasons: HashMap<String, u64>,
    evidence: std::collections::BTreeMap<String, (u64, String)>,
    rtts: Vec<f64>,
    last_seen: String,
}

impl Acc {
    /// Counts one event of this employee; `home` is their declared home when the directory
    /// knows them.
    fn add(&mut self, row: ReportRow, home: Option<&Home>) {
        self.connections += 1;
        if row.action != "allow" {
            self.mismatches += 1;
        }
        if row.anonymizer {
            self.anonymized += 1;
        }
        if let Some(c) = row.country {
            *self.countries.entry(c).or_default() += 1;
        }
        if let Some(a) = row.asn {
            let label = match row.as_org {
                Some(o) => format!("AS{a} {o}"),
                None => format!("AS{a}"),
            };
            *self.networks.entry(label).or_default() += 1;
        }
        for r in row.reasons.split(',').filter(|s| !s.is_empty()) {
            *self.reasons.entry(r.to_owned()).or_default() += 1;
            if EVIDENCE_CODES.contains(&r) {
                let e = self.evidence.entry(r.to_owned()).or_default();
                e.0 += 1;
                e.1.clone_from(&row.message);
            }
        }
        if let Some(rtt) = serde_json::from_str::<serde_json::Value>(&row.json)
            .ok()
            .and_then(|v| v["locgate"]["network"]["rtt_ms"].as_f64())
        {
            self.rtts.push(rtt);
        }
        if let (Some(home), Some(lat), Some(lon)) = (home, row.lat, row.lon) {
            if let Some((centre, radius)) = home_disc(home) {
                self.located += 1;
                if crate::geo::distance_km(centre, LatLon { lat, lon }) <= radius {
                    self.in_radius += 1;
                }
            }
        }
        self.last_seen = row.timestamp;
    }

    /// The summary line of what was counted.
    fn summary(self, employee: String) -> EmployeeSummary {
        EmployeeSummary {
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
                .map(|(code, (count, latest))| Evidence {
                    code,
                    count,
                    latest,
                })
                .collect(),
            rtt_ms: rtt_summary(self.rtts),
            last_seen: self.last_seen,
        }
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

fn rtt_summary(mut rtts: Vec<f64>) -> Option<RttSummary> {
    if rtts.is_empty() {
        return None;
    }
    rtts.sort_by(f64::total_cmp);
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q).round() as usize];
    Some(RttSummary {
        samples: rtts.len() as u64,
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
