//! Turning downloaded bytes into the files locgate loads, and checking them first.
//!
//! Pure functions of bytes: decompression, the provider formats (Tor bulk list, X4BNet and
//! Cloudflare lists, AWS `ip-ranges.json`, Google Cloud `cloud.json`, Oracle
//! `public_ip_ranges.json`, Azure Service Tags, RFC 8805 geofeeds) rewritten into the CIDR list
//! format, extraction of
//! the database from a MaxMind `tar.gz`, and the checks a file must pass before it may replace
//! the one in service. Nothing here touches the network or the disk, so every refusal is tested.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use md5::{Digest, Md5};

use crate::config::SourceKind;
use crate::intel::cidr_list::parse_list;
use crate::intel::{DbBytes, MmdbFile, Observation};

/// Largest decompressed file accepted: well above any real database (DB-IP City Lite is ~130 MB),
/// low enough that a gzip bomb cannot fill the disk.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Whether `bytes` start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses gzip, refusing truncated streams and anything larger than [`MAX_DECOMPRESSED`].
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("gzip data is corrupt or truncated: {e}"))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(format!(
            "decompressed size exceeds {MAX_DECOMPRESSED} bytes"
        ));
    }
    Ok(out)
}

/// The lowercase hex md5 of `bytes` (MaxMind's update protocol names files by it).
pub fn md5_hex(bytes: &[u8]) -> String {
    let digest = Md5::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The single `.mmdb` member of a MaxMind `tar.gz` download.
pub fn mmdb_from_tar_gz(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let tar = gunzip(bytes)?;
    let mut archive = tar::Archive::new(tar.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("tar archive is corrupt: {e}"))?;
        let is_mmdb = entry
            .path()
            .ok()
            .and_then(|p| p.extension().map(|x| x == "mmdb"))
            .unwrap_or(false);
        if is_mmdb && entry.header().entry_type().is_file() {
            let mut out = Vec::new();
            entry
                .by_ref()
                .take(MAX_DECOMPRESSED)
                .read_to_end(&mut out)
                .map_err(|e| format!("tar member is truncated: {e}"))?;
            return Ok(out);
        }
    }
    Err("the archive holds no .mmdb file".into())
}

/// Checks that `bytes` are a usable database: it opens, its records decode, and a probe lookup
/// (an IPv4 and an IPv6 address) answers without error. Returns the database type.
pub fn check_mmdb(label: &str, bytes: Vec<u8>) -> Result<String, String> {
    let db = MmdbFile::from_bytes(label, DbBytes::Owned(bytes)).map_err(|e| e.reason)?;
    for probe in [
        IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0, 0, 0, 0, 0, 0x8888)),
    ] {
        let mut obs = Observation::empty(probe);
        db.fill(probe, &mut obs)
            .map_err(|e| format!("probe lookup of {probe} failed: {e}"))?;
    }
    Ok(db.version().kind.clone())
}

/// Bytes of an mmdb source ready to install: decompressed when gzip, then checked.
pub fn prepare_mmdb(label: &str, bytes: Vec<u8>) -> Result<(Vec<u8>, String), String> {
    let bytes = if is_gzip(&bytes) {
        gunzip(&bytes)?
    } else {
        bytes
    };
    let kind = check_mmdb(label, bytes.clone())?;
    Ok((bytes, kind))
}

/// The networks a list-like source holds, in order of appearance (duplicates removed).
pub fn networks(kind: SourceKind, bytes: &[u8]) -> Result<Vec<IpNetwork>, String> {
    let bytes = if is_gzip(bytes) {
        gunzip(bytes)?
    } else {
        bytes.to_vec()
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let mut nets = match kind {
        SourceKind::List => {
            parse_list(text).map_err(|(line, msg)| format!("line {line}: {msg}"))?
        }
        SourceKind::Aws => aws(text)?,
        SourceKind::Gcp => gcp(text)?,
        SourceKind::Oracle => oracle(text)?,
        SourceKind::Azure => azure(text)?,
        SourceKind::Geofeed => geofeed(text)?,
        SourceKind::Mmdb => return Err("an mmdb source is not a list".into()),
    };
    let mut seen = std::collections::HashSet::new();
    nets.retain(|n| seen.insert(*n));
    Ok(nets)
}

#[derive(serde::Deserialize)]
struct AwsRanges {
    #[serde(default)]
    prefixes: Vec<AwsV4>,
    #[serde(default)]
    ipv6_prefixes: Vec<AwsV6>,
}

#[derive(serde::Deserialize)]
struct AwsV4 {
    ip_prefix: String,
}

#[derive(serde::Deserialize)]
struct AwsV6 {
    ipv6_prefix: String,
}

fn net(s: &str) -> Result<IpNetwork, String> {
    s.trim()
        .parse::<IpNetwork>()
        .map_err(|e| format!("`{s}` is not a network: {e}"))
}

/// AWS `ip-ranges.json`: `prefixes[].ip_prefix` and `ipv6_prefixes[].ipv6_prefix`.
fn aws(text: &str) -> Result<Vec<IpNetwork>, String> {
    let r: AwsRanges =
        serde_json::from_str(text).map_err(|e| format!("not AWS ip-ranges.json: {e}"))?;
    let v4 = r.prefixes.iter().map(|p| net(&p.ip_prefix));
    let v6 = r.ipv6_prefixes.iter().map(|p| net(&p.ipv6_prefix));
    v4.chain(v6).collect()
}

#[derive(serde::Deserialize)]
struct GcpRanges {
    prefixes: Vec<GcpPrefix>,
}

#[derive(serde::Deserialize)]
struct GcpPrefix {
    #[serde(rename = "ipv4Prefix")]
    v4: Option<String>,
    #[serde(rename = "ipv6Prefix")]
    v6: Option<String>,
}

/// Google Cloud `cloud.json`: `prefixes[].ipv4Prefix` / `ipv6Prefix`.
fn gcp(text: &str) -> Result<Vec<IpNetwork>, String> {
    let r: GcpRanges =
        serde_json::from_str(text).map_err(|e| format!("not Google Cloud cloud.json: {e}"))?;
    r.prefixes
        .iter()
        .filter_map(|p| p.v4.as_deref().or(p.v6.as_deref()))
        .map(net)
        .collect()
}

#[derive(serde::Deserialize)]
struct OracleRanges {
    regions: Vec<OracleRegion>,
}

#[derive(serde::Deserialize)]
struct OracleRegion {
    #[serde(default)]
    cidrs: Vec<OracleCidr>,
}

#[derive(serde::Deserialize)]
struct OracleCidr {
    cidr: String,
}

/// Oracle Cloud `public_ip_ranges.json`: `regions[].cidrs[].cidr`.
fn oracle(text: &str) -> Result<Vec<IpNetwork>, String> {
    let r: OracleRanges = serde_json::from_str(text)
        .map_err(|e| format!("not Oracle Cloud public_ip_ranges.json: {e}"))?;
    r.regions
        .iter()
        .flat_map(|region| region.cidrs.iter())
        .map(|c| net(&c.cidr))
        .collect()
}

#[derive(serde::Deserialize)]
struct AzureTags {
    values: Vec<AzureTag>,
}

#[derive(serde::Deserialize)]
struct AzureTag {
    properties: AzureProperties,
}

#[derive(serde::Deserialize)]
struct AzureProperties {
    #[serde(rename = "addressPrefixes", default)]
    prefixes: Vec<String>,
}

/// Azure Service Tags (`ServiceTags_Public_*.json`): every tag's `properties.addressPrefixes`
/// (the `AzureCloud` tag alone holds all of them; the others are subsets, removed as duplicates).
fn azure(text: &str) -> Result<Vec<IpNetwork>, String> {
    let r: AzureTags =
        serde_json::from_str(text).map_err(|e| format!("not Azure Service Tags JSON: {e}"))?;
    r.values
        .iter()
        .flat_map(|t| t.properties.prefixes.iter())
        .map(|p| net(p))
        .collect()
}

/// An RFC 8805 geofeed: CSV lines `prefix,country,region,city,postal`, `#` comments and blank
/// lines; only the prefix is kept (the location is the provider's claim for its customers). A
/// first line of column names (`ip_prefix,...`, no digit in its first field), which some
/// publishers add, is skipped; any other line that is not a network is refused.
fn geofeed(text: &str) -> Result<Vec<IpNetwork>, String> {
    let mut out = Vec::new();
    let mut first = true;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let prefix = line.split(',').next().unwrap_or("");
        if std::mem::take(&mut first) && !prefix.chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        out.push(net(prefix).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    Ok(out)
}

/// Refuses an empty list, or one that shrank by more than `max_shrink` of `previous` networks.
pub fn check_list(new: usize, previous: Option<usize>, max_shrink: f64) -> Result<(), String> {
    if new == 0 {
        return Err("the list holds no networks".into());
    }
    if let Some(old) = previous
        && old > 0
    {
        let lost = old.saturating_sub(new) as f64 / old as f64;
        if lost > max_shrink {
            return Err(format!(
                "the list shrank from {old} to {new} networks ({:.0}% lost, more than the {:.0}% allowed by max_shrink)",
                lost * 100.0,
                max_shrink * 100.0
            ));
        }
    }
    Ok(())
}

/// The list file locgate writes: a header saying where it came from, then one network a line.
pub fn render_list(source: &str, url: &str, category: &str, nets: &[IpNetwork]) -> String {
    let mut out = format!(
        "# locgate update: source {source}, category {category}\n# from {url}\n# {} networks\n",
        nets.len()
    );
    for n in nets {
        out.push_str(&n.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tor_bulk_list_is_one_address_a_line() {
        let n = networks(
            SourceKind::List,
            b"185.220.101.1\n185.220.101.2\n2001:db8::1\n",
        )
        .unwrap();
        assert_eq!(n.len(), 3);
        assert_eq!(n[0].to_string(), "185.220.101.1/32");
    }

    #[test]
    fn duplicates_are_removed() {
        let n = networks(SourceKind::List, b"10.0.0.0/8\n10.0.0.0/8\n").unwrap();
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn aws_and_gcp_formats() {
        let aws_json = br#"{"syncToken":"1","prefixes":[{"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"AMAZON"}],
            "ipv6_prefixes":[{"ipv6_prefix":"2600:1f14::/35","service":"AMAZON"}]}"#;
        let n = networks(SourceKind::Aws, aws_json).unwrap();
        assert_eq!(
            n.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            ["3.5.140.0/22", "2600:1f14::/35"]
        );
        let gcp_json = br#"{"syncToken":"1","prefixes":[{"ipv4Prefix":"34.1.208.0/20","service":"Google Cloud","scope":"africa-south1"},
            {"ipv6Prefix":"2600:1900:8000::/44","service":"Google Cloud"}]}"#;
        let n = networks(SourceKind::Gcp, gcp_json).unwrap();
        assert_eq!(n.len(), 2);
        assert!(
            networks(SourceKind::Aws, b"<html>")
                .unwrap_err()
                .contains("AWS")
        );
        assert!(
            networks(SourceKind::Aws, br#"{"prefixes":[{"ip_prefix":"bad"}]}"#)
                .unwrap_err()
                .contains("bad")
        );
    }

    #[test]
    fn oracle_azure_and_geofeed_formats() {
        let oracle_json = br#"{"last_updated_timestamp": "2019-11-18T19:55:47.204985","regions": [
            {"region": "us-phoenix-1","cidrs": [{"cidr": "129.146.0.0/21","tags": ["OCI"]},
              {"cidr": "134.70.8.0/21","tags": ["OSN","OBJECT_STORAGE"]}]},
            {"region": "us-ashburn-1","cidrs": [{"cidr": "129.213.8.0/21","tags": ["OCI"]}]}]}"#;
        let n = networks(SourceKind::Oracle, oracle_json).unwrap();
        assert_eq!(
            n.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            ["129.146.0.0/21", "134.70.8.0/21", "129.213.8.0/21"]
        );
        let azure_json = br#"{"changeNumber": 338,"cloud": "Public","values": [
            {"name": "ActionGroup","id": "ActionGroup","properties": {"changeNumber": 40,"region": "",
             "regionId": 0,"platform": "Azure","systemService": "ActionGroup",
             "addressPrefixes": ["4.145.74.52/30","2603:1030:c06:400::978/125"],"networkFeatures": ["API"]}},
            {"name": "AzureCloud","id": "AzureCloud","properties": {"changeNumber": 1,"region": "",
             "regionId": 0,"platform": "Azure","systemService": "",
             "addressPrefixes": ["4.145.74.52/30","13.64.0.0/11"]}}]}"#;
        let n = networks(SourceKind::Azure, azure_json).unwrap();
        assert_eq!(n.len(), 3, "duplicates across tags are removed: {n:?}");
        let feed = b"# DigitalOcean geofeed\n5.101.96.0/21,NL,NL-NH,Amsterdam,\n2a03:b0c0::/48,NL,NL-NH,Amsterdam,\n\n";
        let n = networks(SourceKind::Geofeed, feed).unwrap();
        assert_eq!(n.len(), 2);
        let with_header =
            b"ip_prefix,alpha2code,region,city,postal_code\n45.33.0.0/19,US,US-CA,Fremont,\n";
        assert_eq!(networks(SourceKind::Geofeed, with_header).unwrap().len(), 1);
        let err = networks(
            SourceKind::Geofeed,
            b"# x\n5.101.96.0/21,NL\nAmsterdam,NL\n",
        )
        .unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(
            networks(
                SourceKind::Oracle,
                br#"{"regions":[{"cidrs":[{"cidr":"x"}]}]}"#
            )
            .unwrap_err()
            .contains("`x`")
        );
        assert!(
            networks(SourceKind::Azure, b"<html>")
                .unwrap_err()
                .contains("Azure")
        );
    }

    #[test]
    fn html_error_page_is_not_a_list() {
        let err = networks(
            SourceKind::List,
            b"<html><body>rate limited</body></html>\n",
        )
        .unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
    }

    #[test]
    fn shrink_and_empty_checks() {
        assert!(check_list(0, None, 0.5).is_err());
        assert!(check_list(60, Some(100), 0.5).is_ok());
        assert!(check_list(50, Some(100), 0.5).is_ok());
        let err = check_list(49, Some(100), 0.5).unwrap_err();
        assert!(err.contains("100 to 49"), "{err}");
        assert!(check_list(1, Some(0), 0.5).is_ok());
    }

    #[test]
    fn gzip_round_trip_and_truncation() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"10.0.0.0/8\n").unwrap();
        let gz = enc.finish().unwrap();
        assert!(is_gzip(&gz));
        assert_eq!(gunzip(&gz).unwrap(), b"10.0.0.0/8\n");
        assert!(gunzip(&gz[..gz.len() - 6]).is_err());
        assert_eq!(networks(SourceKind::List, &gz).unwrap().len(), 1);
    }

    #[test]
    fn md5_is_lowercase_hex() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn garbage_is_not_an_mmdb() {
        assert!(prepare_mmdb("x", b"not a database".to_vec()).is_err());
        assert!(mmdb_from_tar_gz(b"nope").is_err());
    }

    #[test]
    fn rendered_list_parses_back() {
        let nets = networks(SourceKind::List, b"1.2.3.4\n10.0.0.0/8\n").unwrap();
        let text = render_list("tor", "http://x/", "tor_exit", &nets);
        assert_eq!(parse_list(&text).unwrap(), nets);
    }
}
