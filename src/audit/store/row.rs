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
    /// Whether `employee` is a verified identity (a directory id from a certificate, a signed
    /// token, a trusted header...), not a name the client only claimed: only verified
    /// identities make shared-egress cases, so nobody can frame colleagues by typing names.
    #[serde(default)]
    pub verified: bool,
    /// Client address.
    pub ip: String,
    /// The egress it counts under when several employees share one: the address itself, an
    /// IPv6 address's /64 (one home line's prefix; rotating within it changes nothing).
    #[serde(default)]
    pub egress: Option<String>,
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
            verified: e.user.as_ref().is_some_and(|u| u.id.is_some()),
            ip: e.source.ip.to_string(),
            egress: Some(egress_of(e.source.ip)),
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

    /// The reason codes, split (`,a,b,` -> `[a, b]`).
    pub fn reason_codes(reasons: &str) -> Vec<String> {
        reasons
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The egress key of `ip`: an IPv4 address as it is, an IPv6 address as its /64
/// (`2001:db8:1:2::/64`); an IPv4-mapped IPv6 address as the IPv4 address.
pub fn egress_of(ip: std::net::IpAddr) -> String {
    match crate::client_addr::normalize(ip) {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_is_the_v4_address_or_the_v6_slash_64() {
        let e = |s: &str| egress_of(s.parse().expect("ip"));
        assert_eq!(e("203.0.113.7"), "203.0.113.7");
        assert_eq!(e("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(e("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(e("::ffff:198.51.100.4"), "198.51.100.4");
    }
}
