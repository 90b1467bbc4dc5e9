//! The default data compiled into the binary, so `locgate run` works from any directory with no
//! files at all. Sources and licences: `data/README.md`.

use super::{AsnTable, Category, DataError, DataVersion, DbBytes, MmdbFile};

/// City/region database (flat layout with `accuracy_radius`), derived from DB-IP City Lite by
/// `data/build.sh`: metro-level points, so the declared-home checks (radius, region, residence)
/// work with no configuration at all.
pub static CITY_MMDB: &[u8] = include_bytes!("../../data/city.mmdb");
/// Country database (ip-location-db geo-whois-asn-country, flat layout). Kept behind the city
/// database as a fallback: where the compact city file has no data (reserved for its coarsened
/// IPv6 blocks without a clear majority), this one still answers the country.
pub static COUNTRY_MMDB: &[u8] = include_bytes!("../../data/country.mmdb");
/// ASN database (GeoLite2-ASN layout, built from ip-location-db asn).
pub static ASN_MMDB: &[u8] = include_bytes!("../../data/asn.mmdb");
/// Networks that geolocate to a gateway (mobile, satellite, fixed wireless), by ASN.
pub static NETWORK_KINDS: &str = include_str!("../../data/network-kinds.csv");
/// Hand table of hosting/VPN ASNs: corrections over the curated lists.
pub static ASN_CATEGORIES: &str = include_str!("../../data/asn-categories.csv");
/// X4BNet `lists_vpn` datacenter ASNs (MIT), verbatim.
pub static X4BNET_DATACENTER_ASNS: &str = include_str!("../../data/x4bnet-datacenter-asn.txt");
/// X4BNet `lists_vpn` VPN-provider ASNs (MIT), verbatim.
pub static X4BNET_VPN_ASNS: &str = include_str!("../../data/x4bnet-vpn-asn.txt");
/// The commit date of the ASN table is not in the file; the binary's build says how old it is.
const ASN_TABLE_LABEL: &str = "embedded:asn-categories.csv";

/// Opens the embedded databases, most specific first: each file only fills what the ones before
/// it left empty.
pub fn databases() -> Result<Vec<MmdbFile>, DataError> {
    Ok(vec![
        MmdbFile::from_bytes("embedded:city.mmdb", DbBytes::Static(CITY_MMDB))?,
        MmdbFile::from_bytes("embedded:country.mmdb", DbBytes::Static(COUNTRY_MMDB))?,
        MmdbFile::from_bytes("embedded:asn.mmdb", DbBytes::Static(ASN_MMDB))?,
    ])
}

/// A mistake in an embedded file, named by file and line (a build that embeds a broken table).
fn at(file: &str, (line, message): (usize, String)) -> DataError {
    DataError::new(&format!("embedded:{file}:{line}"), message)
}

/// Parses the embedded network-kind table.
pub fn network_kinds() -> Result<super::NetworkKinds, DataError> {
    super::NetworkKinds::parse(NETWORK_KINDS).map_err(|e| at("network-kinds.csv", e))
}

/// The embedded ASN table: X4BNet's datacenter ASNs, corrected by its VPN-provider ASNs, corrected
/// by the hand table.
pub fn asn_table() -> Result<(AsnTable, DataVersion), DataError> {
    let table = AsnTable::from_list(X4BNET_DATACENTER_ASNS, Category::HostingProvider)
        .map_err(|e| at("x4bnet-datacenter-asn.txt", e))?
        .overlay(
            AsnTable::from_list(X4BNET_VPN_ASNS, Category::AnonymousVpn)
                .map_err(|e| at("x4bnet-vpn-asn.txt", e))?,
        )
        .overlay(AsnTable::parse(ASN_CATEGORIES).map_err(|e| at("asn-categories.csv", e))?);
    // Date the table by the embedded ASN database it was shipped with.
    let built_epoch =
        maxminddb::Reader::from_source(ASN_MMDB).map_or(0, |r| r.metadata().build_epoch);
    Ok((
        table,
        DataVersion {
            source: ASN_TABLE_LABEL.into(),
            kind: "asn-table".into(),
            built_epoch,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpn_providers_are_vpn_and_plain_hosting_is_hosting() {
        let (t, _) = asn_table().unwrap();
        // M247 and Datacamp are in X4BNet's datacenter list too; their VPN listing wins.
        assert_eq!(t.get(9009).map(|e| e.0), Some(Category::AnonymousVpn));
        assert_eq!(t.get(212238).map(|e| e.0), Some(Category::AnonymousVpn));
        assert_eq!(t.get(209854).map(|e| e.0), Some(Category::AnonymousVpn));
        // Dedicated-server providers the hand table never listed come from the curated list.
        assert_eq!(t.get(7979).map(|e| e.0), Some(Category::HostingProvider));
        assert_eq!(t.get(8100).map(|e| e.0), Some(Category::HostingProvider));
        // The hand table corrects the curated lists: X4BNet lists Tencent Cloud as a VPN, and
        // PacketHub (NordVPN) as a datacenter.
        assert_eq!(t.get(45090).map(|e| e.0), Some(Category::HostingProvider));
        assert_eq!(t.get(147049).map(|e| e.0), Some(Category::AnonymousVpn));
        assert!(t.len() > 900, "{} ASNs", t.len());
        // Home ISPs are in neither list.
        for isp in [7922, 7018, 701, 20115, 3320, 2856, 5089] {
            assert_eq!(t.get(isp), None, "AS{isp}");
        }
    }

    #[test]
    fn no_gateway_located_network_is_called_hosting() {
        let (t, _) = asn_table().unwrap();
        let kinds = NETWORK_KINDS
            .lines()
            .filter_map(|l| l.split(',').next())
            .filter_map(|k| k.parse::<u32>().ok());
        for asn in kinds {
            assert_eq!(t.get(asn), None, "AS{asn} is a network kind and a category");
        }
    }
}
