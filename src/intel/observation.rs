//! What the data says about one client address.

use std::net::IpAddr;

use super::category::Anonymizers;
use crate::country::CountryCode;

/// A point on the globe, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLon {
    /// Latitude, -90..=90.
    pub lat: f64,
    /// Longitude, -180..=180.
    pub lon: f64,
}

/// Where an observation's coordinates came from, because a city database's point and a
/// country's capital carry very different certainty and sentences must say which was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationPrecision {
    /// Coordinates (and accuracy radius) from a city-level database.
    Database,
    /// Only the country was known; coordinates are its capital, accuracy its size.
    Country,
}

/// Everything the loaded data says about one address. Strings borrow from the databases, so
/// building one allocates nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation<'a> {
    /// The address looked up (IPv4-mapped IPv6 already normalised to IPv4).
    pub ip: IpAddr,
    /// Country, from the most specific database that answered.
    pub country: Option<CountryCode>,
    /// English name of the country.
    pub country_name: Option<&'static str>,
    /// First-level subdivision (state, province), English name.
    pub region: Option<&'a str>,
    /// City, English name.
    pub city: Option<&'a str>,
    /// Coordinates, when known at all.
    pub location: Option<LatLon>,
    /// How far the true position may be from `location`, in km.
    pub accuracy_km: Option<f64>,
    /// Whether `location` is a city-level point or a country's reference point.
    pub precision: Option<LocationPrecision>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_org: Option<&'a str>,
    /// Anonymizer flags from every source (databases, lists, ASN table).
    pub anonymizers: Anonymizers,
    /// The address is in a `trusted` list (corporate egress).
    pub trusted_network: bool,
    /// How the network connects, from a Connection-Type or Enterprise database.
    pub connection_type: Option<ConnectionType>,
    /// What an anonymizer database with confidence scores said (Anonymous Plus, Residential
    /// Proxy, IPinfo privacy): who runs the exit, how sure the vendor is, when it was last seen.
    pub anonymizer_detail: Option<AnonymizerDetail<'a>>,
    /// The network geolocates to a gateway (mobile, satellite, fixed wireless): its point is not
    /// the person's, so home radius, region and residence read it as country precision.
    pub network_kind: Option<super::NetworkKind>,
}

/// The detail an anonymizer database gives beyond its flags, carried into the event and the
/// sentence ("NordVPN exit, confidence 99, seen 2026-11-28") so a reviewer can weigh it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AnonymizerDetail<'a> {
    /// The vendor's confidence, 1 to 99, when it gives one.
    pub confidence: Option<u8>,
    /// Who runs the exit.
    pub provider: Option<&'a str>,
    /// When the network was last seen used as an anonymizer (`YYYY-MM-DD`).
    pub last_seen: Option<&'a str>,
    /// The categories this database's record gave.
    pub flags: Anonymizers,
    /// The categories only this database reported (no list, table or other file agrees): the
    /// ones a policy minimum confidence applies to.
    pub sole: Anonymizers,
}

impl AnonymizerDetail<'_> {
    /// "NordVPN, confidence 99, seen 2026-11-28" (whichever parts are known), or `None`.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(p) = self.provider {
            parts.push(p.to_string());
        }
        if let Some(c) = self.confidence {
            parts.push(format!("confidence {c}"));
        }
        if let Some(d) = self.last_seen {
            parts.push(format!("seen {d}"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// How a network connects to the Internet (MaxMind Connection-Type vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionType {
    /// A mobile network.
    Cellular,
    /// A satellite link.
    Satellite,
    /// A fixed home line (cable, DSL, fibre).
    CableDsl,
    /// A company network.
    Corporate,
    /// Dial-up.
    Dialup,
}

impl ConnectionType {
    /// Reads a vendor's spelling; `None` for one locgate does not know.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "cellular" | "mobile" => ConnectionType::Cellular,
            "satellite" => ConnectionType::Satellite,
            "cable/dsl" | "cable_dsl" | "broadband" => ConnectionType::CableDsl,
            "corporate" => ConnectionType::Corporate,
            "dialup" => ConnectionType::Dialup,
            _ => return None,
        })
    }

    /// The stable name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Cellular => "cellular",
            ConnectionType::Satellite => "satellite",
            ConnectionType::CableDsl => "cable_dsl",
            ConnectionType::Corporate => "corporate",
            ConnectionType::Dialup => "dialup",
        }
    }
}

impl<'a> Observation<'a> {
    /// An observation with nothing known but the address.
    pub fn empty(ip: IpAddr) -> Self {
        Observation {
            ip,
            country: None,
            country_name: None,
            region: None,
            city: None,
            location: None,
            accuracy_km: None,
            precision: None,
            asn: None,
            as_org: None,
            anonymizers: Anonymizers::NONE,
            trusted_network: false,
            connection_type: None,
            anonymizer_detail: None,
            network_kind: None,
        }
    }

    /// Whether the point is a city database's and says where the person is: not a country's
    /// capital, not a gateway-located network's.
    pub fn placed_precisely(&self) -> bool {
        self.precision == Some(LocationPrecision::Database) && self.network_kind.is_none()
    }

    /// "Pyongyang, KP" / "KP" / "unknown location": the place as a sentence fragment.
    pub fn place(&self) -> String {
        match (self.city, self.country) {
            (Some(city), Some(cc)) => format!("{city}, {cc}"),
            (None, Some(cc)) => format!("{} ({cc})", cc.name()),
            (Some(city), None) => city.to_string(),
            (None, None) => "an unknown location".to_string(),
        }
    }
}
