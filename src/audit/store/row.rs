//! An event as a row: the columns the review queries filter and show, plus the whole event as
//! JSON. Made once from an [`Event`] and written as it is by every backend (SQLite, PostgreSQL)
//! and by the PostgreSQL spool, so the three can never disagree on what a column holds.

use serde::{Deserialize, Serialize};

use super::clock::parse_ts_ms;
use crate::audit::event::Event;

/// One event's columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Event id (unique: a second insert of the same id is skipped).
    pub id: String,
    /// Event time, ms since the epoch (what periods and retention compare).
    pub ts_ms: i64,
    /// Event time as written (RFC 3339).
    pub timestamp: String,
    /// allow / flag / block / note.
    pub action: String,
    /// `,code,code,` so that one `LIKE '%,code,%'` finds one code.
    pub reasons: String,
    /// Employee id (or claimed name).
    pub employee: Option<String>,
    /// Client address.
    pub ip: String,
    /// Country code.
    pub country: Option<String>,
    /// AS number.
    pub asn: Option<u32>,
    /// AS organisation.
    pub as_org: Option<String>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// Accuracy radius (km).
    pub accuracy_km: Option<f64>,
    /// Whether any anonymizer flag was set.
    pub anonymizer: bool,
    /// Listener name.
    pub listener: String,
    /// The reasons' sentences.
    pub message: String,
    /// The instance that saw it (`observer.name`): a shared store holds the fleet's events.
    pub instance: Option<String>,
    /// A tunnel's close event (it repeats its connect event's verdict: not a second item to
    /// review).
    pub tunnel_close: bool,
    /// The whole event (ECS JSON).
    pub json: String,
}

impl Row {
    /// The row for `e`.
    pub fn of(e: &Event) -> Row {
        let json = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
        let reasons = if e.event.reason.is_empty() {
            String::new()
        } else {
            format!(",{},", e.event.reason.join(","))
        };
        let a = &e.locgate.anonymizer;
        let anonymizer = a.anonymous_vpn
            || a.hosting_provider
            || a.tor_exit
            || a.public_proxy
            || a.residential_proxy
            || a.relay;
        let loc = e.source.geo.location;
        let asys = e.source.autonomous_system.as_ref();
        Row {
            id: e.event.id.clone(),
            ts_ms: parse_ts_ms(&e.timestamp).unwrap_or(0),
            timestamp: e.timestamp.clone(),
            action: e.event.action.as_str().to_owned(),
            reasons,
            employee: e.user.as_ref().map(|u| u.employee().to_owned()),
            ip: e.source.ip.to_string(),
            country: e.source.geo.country_iso_code.clone(),
            asn: asys.map(|a| a.number),
            as_org: asys
                .and_then(|a| a.organization.as_ref())
                .map(|o| o.name.clone()),
            lat: loc.map(|l| l.lat),
            lon: loc.map(|l| l.lon),
            accuracy_km: e.locgate.accuracy_radius_km,
            anonymizer,
            listener: e.locgate.listener.clone(),
            message: e.message.clone(),
            instance: e.origin.as_ref().map(|o| o.observer.name.clone()),
            tunnel_close: e.is_tunnel_close(),
            json,
        }
    }

    /// The reason codes, split.
    pub fn reason_codes(reasons: &str) -> Vec<String> {
        reasons
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}
