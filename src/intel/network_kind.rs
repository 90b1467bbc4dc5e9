//! Networks that geolocate to a gateway rather than to the subscriber.
//!
//! Satellite internet is placed at its ground station (Starlink: 400-900 km away), mobile and
//! 5G/LTE home internet at the carrier's gateway city (often 500-1,500 km away, sometimes two
//! gateways in one day). A city database's point for such an address says nothing about where
//! the person is, so the home radius, region and residence rules must not read it as a place:
//! the observation keeps its country (sanctions, country rules, anonymizers still apply) and its
//! accuracy is widened to the kind's typical error (impossible travel then allows for it).
//! Sources: the ASN table `data/network-kinds.csv` (embedded) and a database's
//! `connection_type` (GeoIP2 Connection-Type, Enterprise).

use std::collections::HashMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::observation::ConnectionType;

/// A network kind whose location is the gateway's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkKind {
    /// A mobile carrier (also its 5G/LTE home internet).
    Mobile,
    /// Satellite internet.
    Satellite,
    /// Fixed-wireless home internet.
    FixedWireless,
}

impl NetworkKind {
    /// Parses the table's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mobile" => NetworkKind::Mobile,
            "satellite" => NetworkKind::Satellite,
            "fixed_wireless" => NetworkKind::FixedWireless,
            _ => return None,
        })
    }

    /// The stable name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkKind::Mobile => "mobile",
            NetworkKind::Satellite => "satellite",
            NetworkKind::FixedWireless => "fixed_wireless",
        }
    }

    /// Why its location is not the person's, for sentences.
    pub fn describe(self) -> &'static str {
        match self {
            NetworkKind::Mobile => {
                "a mobile network: the location is the carrier gateway's, not the person's"
            }
            NetworkKind::Satellite => {
                "satellite internet: the location is the ground station's, not the home's"
            }
            NetworkKind::FixedWireless => {
                "fixed-wireless home internet: the location is the gateway's, not the home's"
            }
        }
    }

    /// How far the gateway may be from the person, in km: the observation's accuracy is at
    /// least this (so travel-speed checks allow for it). Mobile includes 5G/LTE home internet
    /// on the carrier's AS, placed 500-1,500 km away; Starlink's ground stations 400-900 km;
    /// a fixed-wireless ISP is regional.
    pub fn typical_error_km(self) -> f64 {
        match self {
            NetworkKind::Mobile => 1500.0,
            NetworkKind::Satellite => 1000.0,
            NetworkKind::FixedWireless => 500.0,
        }
    }

    /// The kind a database's connection type implies.
    pub fn from_connection(c: ConnectionType) -> Option<Self> {
        match c {
            ConnectionType::Cellular => Some(NetworkKind::Mobile),
            ConnectionType::Satellite => Some(NetworkKind::Satellite),
            _ => None,
        }
    }
}

/// Where a table row applies: a whole AS, or a prefix of an AS that mixes kinds (a carrier's
/// mobile range inside its fixed-line AS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Asn(u32),
    Prefix(IpNetwork),
}

impl Key {
    fn parse(s: &str) -> Result<Self, String> {
        if s.contains('/') {
            return s
                .parse::<IpNetwork>()
                .map(|n| Key::Prefix(IpNetwork::new(n.network(), n.prefix()).unwrap_or(n)))
                .map_err(|e| format!("`{s}` is not a prefix: {e}"));
        }
        super::asn_csv::parse_asn(s)
            .map(Key::Asn)
            .ok_or_else(|| format!("`{s}` is neither an AS number nor a prefix"))
    }
}

/// ASN or prefix -> kind. A `None` kind (`fixed` in the file) is a correction: the network's
/// database point is the person's after all.
#[derive(Debug, Default, Clone)]
pub struct NetworkKinds {
    by_asn: HashMap<u32, Option<NetworkKind>>,
    /// Few rows: a linear scan for the longest match is cheaper than a trie, and the answer is
    /// cached per address with the rest of the observation.
    prefixes: Vec<(IpNetwork, Option<NetworkKind>)>,
}

impl NetworkKinds {
    /// Parses `asn_or_prefix,kind,name` CSV (`kind`: mobile, satellite, fixed_wireless, or
    /// `fixed` to unlist); `#` comments and the header row are skipped. Errors give the 1-based
    /// line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let rows = super::asn_csv::parse_keyed(text, Key::parse, |kind| match kind {
            "fixed" => Ok(None),
            _ => NetworkKind::parse(kind).map(Some).ok_or_else(|| {
                format!(
                    "unknown kind `{kind}`; expected mobile, satellite, fixed_wireless or fixed"
                )
            }),
        })?;
        let mut table = NetworkKinds::default();
        for (key, (kind, _)) in rows {
            match key {
                Key::Asn(asn) => {
                    table.by_asn.insert(asn, kind);
                }
                Key::Prefix(net) => table.prefixes.push((net, kind)),
            }
        }
        Ok(table)
    }

    /// This table corrected by `over`: where both list an ASN or a prefix, `over` wins.
    pub fn overlay(mut self, over: NetworkKinds) -> Self {
        self.by_asn.extend(over.by_asn);
        self.prefixes
            .retain(|(net, _)| !over.prefixes.iter().any(|(o, _)| o == net));
        self.prefixes.extend(over.prefixes);
        self
    }

    /// The kind of the network `ip` (in `asn`) is on: the longest listed prefix holding `ip`
    /// decides, then the AS.
    pub fn get(&self, ip: IpAddr, asn: Option<u32>) -> Option<NetworkKind> {
        let by_prefix = self
            .prefixes
            .iter()
            .filter(|(net, _)| net.contains(ip))
            .max_by_key(|(net, _)| net.prefix());
        match by_prefix {
            Some((_, kind)) => *kind,
            None => asn.and_then(|a| self.by_asn.get(&a).copied().flatten()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_parses_and_knows_starlink_and_t_mobile() {
        let t = NetworkKinds::parse(super::super::embedded::NETWORK_KINDS).unwrap();
        let ip = IpAddr::from([192, 0, 2, 1]);
        assert_eq!(t.get(ip, Some(14593)), Some(NetworkKind::Satellite));
        assert_eq!(t.get(ip, Some(21928)), Some(NetworkKind::Mobile));
        assert_eq!(t.get(ip, Some(7922)), None, "Comcast is a fixed line");
        assert_eq!(t.get(ip, None), None);
    }

    #[test]
    fn mistakes_name_their_line() {
        assert_eq!(
            NetworkKinds::parse("asn,kind,name\n1,cable,X\n")
                .unwrap_err()
                .0,
            2
        );
        assert!(NetworkKinds::parse("1,mobile,A\n1,mobile,B\n").is_err());
        assert_eq!(
            NetworkKinds::parse("10.0.0.0/33,mobile,X\n").unwrap_err().0,
            1
        );
    }

    #[test]
    fn a_prefix_of_a_mixed_as_decides_before_the_as() {
        let t = NetworkKinds::parse(
            "asn,kind,name\n3320,fixed,Telekom fixed\n2a01:598::/32,mobile,Telekom mobile\n\
             10.1.0.0/16,mobile,M\n10.1.2.0/24,fixed,F\n",
        )
        .unwrap();
        let mobile: IpAddr = "2a01:598:8000::1".parse().unwrap();
        let fixed: IpAddr = "2003:e0::1".parse().unwrap();
        assert_eq!(t.get(mobile, Some(3320)), Some(NetworkKind::Mobile));
        assert_eq!(t.get(fixed, Some(3320)), None);
        assert_eq!(
            t.get("10.1.9.9".parse().unwrap(), None),
            Some(NetworkKind::Mobile)
        );
        assert_eq!(
            t.get("10.1.2.9".parse().unwrap(), None),
            None,
            "longest prefix wins"
        );
    }

    #[test]
    fn an_operators_table_corrects_the_embedded_one() {
        let embedded = NetworkKinds::parse(super::super::embedded::NETWORK_KINDS).unwrap();
        let ours = NetworkKinds::parse(
            "14593,fixed,we know our Starlink users\n64500,fixed_wireless,Local WISP\n",
        )
        .unwrap();
        let t = embedded.overlay(ours);
        let ip = IpAddr::from([192, 0, 2, 1]);
        assert_eq!(t.get(ip, Some(14593)), None);
        assert_eq!(t.get(ip, Some(64500)), Some(NetworkKind::FixedWireless));
        assert_eq!(t.get(ip, Some(21928)), Some(NetworkKind::Mobile));
    }

    #[test]
    fn connection_types_map_to_kinds() {
        assert_eq!(
            NetworkKind::from_connection(ConnectionType::Cellular),
            Some(NetworkKind::Mobile)
        );
        assert_eq!(
            NetworkKind::from_connection(ConnectionType::Satellite),
            Some(NetworkKind::Satellite)
        );
        assert_eq!(NetworkKind::from_connection(ConnectionType::CableDsl), None);
    }
}
