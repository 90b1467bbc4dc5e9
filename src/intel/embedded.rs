//! The default data compiled into the binary, so `locgate run` works from any directory with no
//! files at all. Sources and licences: `data/README.md`.

use super::{AsnTable, DataError, DataVersion, DbBytes, MmdbFile};

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
/// Hosting/VPN ASN table.
pub static ASN_CATEGORIES: &str = include_str!("../../data/asn-categories.csv");
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

/// Parses the embedded ASN table.
pub fn asn_table() -> Result<(AsnTable, DataVersion), DataError> {
    let table = AsnTable::parse(ASN_CATEGORIES)
        .map_err(|(l, m)| DataError::new(&format!("{ASN_TABLE_LABEL}:{l}"), m))?;
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
