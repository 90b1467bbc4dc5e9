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
        }
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
