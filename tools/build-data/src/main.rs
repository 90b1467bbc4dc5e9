//! `build-data` — builds and verifies locgate's embedded default data.
//!
//! This is a standalone cargo package (its own workspace root) that `data/build.sh` runs.
//! It is not part of the locgate crate and is never linked into the proxy.
//!
//! Subcommands:
//!
//! * `asn --ipv4 CSV --ipv6 CSV --out MMDB [--description TEXT] [--build-epoch SECS]`
//!   builds an MMDB in the **GeoLite2-ASN layout** (`autonomous_system_number` as a u32,
//!   `autonomous_system_organization` as a string; `database_type` `locgate-ASN`) from the
//!   `ip_range_start,ip_range_end,autonomous_system_number,autonomous_system_organization`
//!   CSVs of the npm package `@ip-location-db/asn`. The database is IPv6 (`ip_version` 6);
//!   IPv4 networks live under `::/96` and are aliased from `::ffff:0:0/96`, `2001::/32`
//!   (Teredo) and `2002::/16` (6to4), as MaxMind's own databases do. IPv6 rows that fall
//!   inside those aliased networks or inside `::/96` are skipped (they would shadow or clash
//!   with the IPv4 data) and counted. Start–end ranges are decomposed into CIDRs by
//!   `mmdb_writer::Writer::insert_range`. With a fixed `--build-epoch` the output is
//!   byte-for-byte reproducible.
//! * `verify-asn MMDB` — runs `maxminddb`'s full `Reader::verify` and probe lookups
//!   (8.8.8.8 → AS15169 Google, 175.45.176.1 → AS131279 Star JV in North Korea, an IPv6
//!   Google address, and IPv4 reached through its IPv4-mapped and 6to4 IPv6 forms).
//! * `verify-country MMDB` — the same for the ip-location-db country database
//!   (`{"country_code": "KP"}` layout): 175.45.176.1 → KP, 8.8.8.8 → US, an IPv6 address.
//!   Its `Reader::verify` failure is only a warning: upstream writes an empty `description`
//!   map, which maxminddb 0.32's strict verifier rejects though lookups work.
//! * `check-categories CSV` — validates `data/asn-categories.csv` (`asn,category,name`,
//!   `#` comment lines, category `hosting_provider` or `anonymous_vpn`, unique ASNs).
//! * `probe MMDB IP...` — prints the record for each address as JSON (for humans).
//! * `city --ipv4 MMDB --ipv6 MMDB --out MMDB [...]` — builds `data/city.mmdb` from the
//!   ip-location-db DB-IP City Lite files (see `city.rs` for the merge rule);
//!   `verify-city MMDB` checks it (probe lookups in known US states).
//! * `compare-city FULL_V4 FULL_V6 EMBEDDED` — the precision lost against the full files;
//!   `sample-addresses ASN_MMDB` — the fixed address list of `bench/precision.sh`
//!   (`measure.rs`).

use std::collections::{BTreeMap, HashSet};
use std::error::Error;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod city;
mod measure;

use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{Value, Writer};

pub(crate) type Res<T> = Result<T, Box<dyn Error>>;

/// `database_type` written to the ASN database. Readers that check for "ASN" in the type
/// (or just decode the GeoLite2-ASN field names) accept it.
const ASN_DATABASE_TYPE: &str = "locgate-ASN";

fn main() {
    if let Err(e) = run() {
        eprintln!("build-data: error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        return Err(usage());
    };
    match cmd.as_str() {
        "asn" => cmd_asn(rest),
        "city" => city::cmd_city(rest),
        "verify-city" => match rest {
            [path] => city::verify_city(Path::new(path)),
            _ => Err(usage()),
        },
        "compare-city" => measure::compare_city(rest),
        "sample-addresses" => measure::sample_addresses(rest),
        "verify-asn" => match rest {
            [path] => verify_asn(Path::new(path)),
            _ => Err(usage()),
        },
        "verify-country" => match rest {
            [path] => verify_country(Path::new(path)),
            _ => Err(usage()),
        },
        "check-categories" => match rest {
            [path] => check_categories(Path::new(path)),
            _ => Err(usage()),
        },
        "probe" => match rest {
            [path, ips @ ..] if !ips.is_empty() => probe(Path::new(path), ips),
            _ => Err(usage()),
        },
        _ => Err(usage()),
    }
}

fn usage() -> Box<dyn Error> {
    "usage: build-data asn --ipv4 CSV --ipv6 CSV --out MMDB [--description TEXT] \
     [--build-epoch SECS]\n       build-data verify-asn MMDB\n       \
     build-data verify-country MMDB\n       build-data check-categories CSV\n       \
     build-data probe MMDB IP...\n       \
     build-data city --ipv4 MMDB --ipv6 MMDB --out MMDB [--merge-km KM] [--floor-km KM] \
     [--min-prefix-v4 N] [--min-prefix-v6 N] [--min-share F] [--description TEXT] [--build-epoch SECS]\n       \
     build-data verify-city MMDB\n       \
     build-data compare-city FULL_V4 FULL_V6 EMBEDDED [--count N] [--seed S]\n       \
     build-data sample-addresses ASN_MMDB [--v4 N] [--v6 N] [--seed S]"
        .into()
}

/// Parsed `asn` subcommand options.
struct AsnOpts {
    ipv4: String,
    ipv6: String,
    out: String,
    description: String,
    build_epoch: Option<u64>,
}

fn parse_asn_opts(args: &[String]) -> Res<AsnOpts> {
    let mut ipv4 = None;
    let mut ipv6 = None;
    let mut out = None;
    let mut description = String::from("locgate ASN database (GeoLite2-ASN layout)");
    let mut build_epoch = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--ipv4" => ipv4 = Some(val()?),
            "--ipv6" => ipv6 = Some(val()?),
            "--out" => out = Some(val()?),
            "--description" => description = val()?,
            "--build-epoch" => build_epoch = Some(val()?.parse()?),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(AsnOpts {
        ipv4: ipv4.ok_or("--ipv4 is required")?,
        ipv6: ipv6.ok_or("--ipv6 is required")?,
        out: out.ok_or("--out is required")?,
        description,
        build_epoch,
    })
}

/// Counters reported after loading one CSV.
#[derive(Default)]
struct LoadStats {
    rows: usize,
    skipped_rows: usize,
}

fn cmd_asn(args: &[String]) -> Res<()> {
    let opts = parse_asn_opts(args)?;
    let epoch = opts
        .build_epoch
        .map_or_else(SystemTime::now, |s| UNIX_EPOCH + Duration::from_secs(s));
    let mut writer = Writer::builder(ASN_DATABASE_TYPE)
        .description(&[("en", opts.description.as_str())])
        .build_epoch(epoch)
        .build();

    // IPv6 first, then IPv4: the IPv4 rows own `::/96` whatever the IPv6 file says.
    let v6 = load_csv(&mut writer, Path::new(&opts.ipv6), false)?;
    eprintln!(
        "build-data: {}: {} rows inserted, {} skipped (aliased or ::/96 space)",
        opts.ipv6, v6.rows, v6.skipped_rows
    );
    let v4 = load_csv(&mut writer, Path::new(&opts.ipv4), true)?;
    eprintln!("build-data: {}: {} rows inserted", opts.ipv4, v4.rows);
    if v4.skipped_rows != 0 {
        return Err(format!("{} IPv4 rows unexpectedly skipped", v4.skipped_rows).into());
    }

    let bytes = writer.to_bytes()?;
    let tmp = format!("{}.tmp", opts.out);
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, &opts.out)?;
    eprintln!("build-data: wrote {} ({} bytes)", opts.out, bytes.len());
    Ok(())
}

/// Networks that are not inserted from the IPv6 file: the three IPv4 alias networks
/// (inserting into them is an error in mmdb-writer) and `::/96`, where IPv4 lives.
fn ipv6_excluded() -> [IpNet; 4] {
    [
        "::ffff:0:0/96".parse().expect("valid"),
        "2001::/32".parse().expect("valid"),
        "2002::/16".parse().expect("valid"),
        "::/96".parse().expect("valid"),
    ]
}

fn load_csv(writer: &mut Writer, path: &Path, want_v4: bool) -> Res<LoadStats> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let excluded = ipv6_excluded();
    let mut stats = LoadStats::default();
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record)? {
        let line = record.position().map_or(0, csv::Position::line);
        let ctx = |what: &str| format!("{}:{line}: {what}", path.display());
        if record.len() != 4 {
            return Err(ctx(&format!("expected 4 fields, got {}", record.len())).into());
        }
        let start: IpAddr = record[0].trim().parse().map_err(|e| ctx(&format!("{e}")))?;
        let end: IpAddr = record[1].trim().parse().map_err(|e| ctx(&format!("{e}")))?;
        let asn: u32 = record[2]
            .trim()
            .parse()
            .map_err(|e| ctx(&format!("bad ASN: {e}")))?;
        let org = record[3].trim();
        if start.is_ipv4() != want_v4 || end.is_ipv4() != want_v4 {
            return Err(ctx("address family does not match the file").into());
        }
        let mut fields = vec![("autonomous_system_number", Value::from(asn))];
        if !org.is_empty() {
            fields.push(("autonomous_system_organization", Value::from(org)));
        }
        let value = Value::map(fields);
        if want_v4 {
            writer.insert_range(start, end, &value)?;
        } else {
            if excluded.iter().any(|x| range_overlaps(start, end, x)) {
                stats.skipped_rows += 1;
                continue;
            }
            writer.insert_range(start, end, &value)?;
        }
        stats.rows += 1;
    }
    if stats.rows == 0 {
        return Err(format!("{}: no rows", path.display()).into());
    }
    Ok(stats)
}

/// Whether the inclusive range `[start, end]` shares any address with `net`.
fn range_overlaps(start: IpAddr, end: IpAddr, net: &IpNet) -> bool {
    let key = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => (4u8, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (6u8, u128::from(v6)),
    };
    let (fs, s) = key(start);
    let (fe, e) = key(end);
    let (fn_, ns) = key(net.network());
    let (_, ne) = key(net.broadcast());
    fs == fn_ && fe == fn_ && s <= ne && e >= ns
}

/// Open `path` and run `maxminddb`'s full `Reader::verify`. A verify failure is an error
/// when `strict`, otherwise only a warning (the upstream country database has an empty
/// `description` map, which `Reader::verify` rejects but every lookup path accepts).
fn open(path: &Path, strict: bool) -> Res<maxminddb::Reader<Vec<u8>>> {
    let reader =
        maxminddb::Reader::open_readfile(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match reader.verify() {
        Ok(()) => eprintln!("build-data: {}: Reader::verify OK", path.display()),
        Err(e) if !strict => {
            eprintln!(
                "build-data: {}: warning: Reader::verify: {e}",
                path.display()
            );
        }
        Err(e) => return Err(format!("{}: verify failed: {e}", path.display()).into()),
    }
    Ok(reader)
}

fn asn_of(reader: &maxminddb::Reader<Vec<u8>>, ip: &str) -> Res<(u32, String)> {
    let rec: Option<maxminddb::geoip2::Asn> = reader.lookup(ip.parse()?)?.decode()?;
    let rec = rec.ok_or_else(|| format!("{ip}: no record"))?;
    Ok((
        rec.autonomous_system_number
            .ok_or_else(|| format!("{ip}: no ASN"))?,
        rec.autonomous_system_organization
            .unwrap_or_default()
            .to_owned(),
    ))
}

fn verify_asn(path: &Path) -> Res<()> {
    let reader = open(path, true)?;
    let md = reader.metadata();
    eprintln!(
        "build-data: {}: type={} ip_version={} record_size={} nodes={} epoch={}",
        path.display(),
        md.database_type,
        md.ip_version,
        md.record_size,
        md.node_count,
        md.build_epoch
    );
    if md.ip_version != 6 || !md.database_type.contains("ASN") {
        return Err("expected an IPv6 database whose type contains \"ASN\"".into());
    }
    let checks: &[(&str, u32, &str)] = &[
        ("8.8.8.8", 15169, "Google"),
        ("175.45.176.1", 131_279, "Star"),
        ("2001:4860:4860::8888", 15169, "Google"),
        ("::ffff:8.8.8.8", 15169, "Google"),
        ("2002:808:808::1", 15169, "Google"),
    ];
    for &(ip, want_asn, want_org) in checks {
        let (asn, org) = asn_of(&reader, ip)?;
        eprintln!("build-data:   {ip:<22} -> AS{asn} {org}");
        if asn != want_asn || !org.contains(want_org) {
            return Err(format!("{ip}: expected AS{want_asn} ~{want_org:?}").into());
        }
    }
    for ip in ["127.0.0.1", "10.1.2.3", "::1"] {
        let found = reader.lookup(ip.parse()?)?.has_data();
        eprintln!(
            "build-data:   {ip:<22} -> {}",
            if found { "DATA (!)" } else { "no data" }
        );
        if found {
            return Err(format!("{ip}: reserved address unexpectedly has data").into());
        }
    }
    eprintln!("build-data: {}: OK", path.display());
    Ok(())
}

fn country_of(reader: &maxminddb::Reader<Vec<u8>>, ip: &str) -> Res<String> {
    let cc: Option<String> = reader
        .lookup(ip.parse()?)?
        .decode_path(&maxminddb::path!["country_code"])?;
    cc.ok_or_else(|| format!("{ip}: no country_code").into())
}

fn verify_country(path: &Path) -> Res<()> {
    let reader = open(path, false)?;
    let md = reader.metadata();
    eprintln!(
        "build-data: {}: type={} ip_version={} record_size={} nodes={} epoch={}",
        path.display(),
        md.database_type,
        md.ip_version,
        md.record_size,
        md.node_count,
        md.build_epoch
    );
    let checks: &[(&str, &str)] = &[
        ("175.45.176.1", "KP"),
        ("8.8.8.8", "US"),
        ("2001:4860:4860::8888", "US"),
    ];
    for &(ip, want) in checks {
        let cc = country_of(&reader, ip)?;
        eprintln!("build-data:   {ip:<22} -> {cc}");
        if cc != want {
            return Err(format!("{ip}: expected {want}, got {cc}").into());
        }
    }
    // Upstream does not alias IPv4 into ::ffff:0:0/96: callers must unmap IPv4-mapped
    // addresses (Ipv6Addr::to_ipv4_mapped) before looking them up. Report, don't require.
    let mapped = reader.lookup("::ffff:175.45.176.1".parse()?)?.has_data();
    eprintln!(
        "build-data:   ::ffff:175.45.176.1    -> {} (IPv4-mapped form {}aliased)",
        if mapped { "data" } else { "no data" },
        if mapped { "" } else { "NOT " }
    );
    eprintln!("build-data: {}: OK", path.display());
    Ok(())
}

fn check_categories(path: &Path) -> Res<()> {
    let text = std::fs::read_to_string(path)?;
    let mut seen = HashSet::new();
    let mut header_seen = false;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if !header_seen {
            if t != "asn,category,name" {
                return Err(
                    format!("{}:{n}: header must be asn,category,name", path.display()).into(),
                );
            }
            header_seen = true;
            continue;
        }
        let mut parts = t.splitn(3, ',');
        let (Some(asn), Some(cat), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{}:{n}: expected 3 fields", path.display()).into());
        };
        let asn: u32 = asn
            .trim()
            .parse()
            .map_err(|e| format!("{}:{n}: bad ASN {asn:?}: {e}", path.display()))?;
        let cat = cat.trim();
        if !matches!(cat, "hosting_provider" | "anonymous_vpn" | "tor_exit" | "none") {
            return Err(format!("{}:{n}: bad category {cat:?}", path.display()).into());
        }
        if name.trim().is_empty() || name.contains(',') || name.contains('"') {
            return Err(format!(
                "{}:{n}: name must be non-empty, no commas/quotes",
                path.display()
            )
            .into());
        }
        if !seen.insert(asn) {
            return Err(format!("{}:{n}: duplicate ASN {asn}", path.display()).into());
        }
        *counts
            .entry(if cat == "anonymous_vpn" {
                "anonymous_vpn"
            } else {
                "hosting_provider"
            })
            .or_default() += 1;
    }
    if !header_seen || seen.is_empty() {
        return Err(format!("{}: no header or no rows", path.display()).into());
    }
    eprintln!(
        "build-data: {}: OK, {} ASNs {counts:?}",
        path.display(),
        seen.len()
    );
    Ok(())
}

fn probe(path: &Path, ips: &[String]) -> Res<()> {
    let reader = maxminddb::Reader::open_readfile(path)?;
    for ip in ips {
        let res = reader.lookup(ip.parse()?)?;
        let rec: Option<serde_json::Value> = res.decode()?;
        let net = res.network().map(|n| n.to_string()).unwrap_or_default();
        println!(
            "{ip}\t{net}\t{}",
            rec.map_or_else(|| "null".to_owned(), |v| v.to_string())
        );
    }
    Ok(())
}
