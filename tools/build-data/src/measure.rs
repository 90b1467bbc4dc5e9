//! `compare-city` and `sample-addresses`: the measurements behind `data/README.md`.
//!
//! Both are seeded (SplitMix64), so a re-run prints the same figures and writes the same list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use maxminddb::{Reader, WithinOptions};
use serde::Deserialize;

use crate::city::{distance_km, ipnetwork_like::Net, DbipRecord};
use crate::Res;

/// SplitMix64: a tiny, well-known, seedable generator (no dependency, stable forever).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn next_u128(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }
    /// Uniform in `0..n` (n > 0), by rejection so there is no modulo bias.
    pub fn below(&mut self, n: u128) -> u128 {
        let zone = u128::MAX - (u128::MAX % n);
        loop {
            let x = self.next_u128();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// The embedded file's record (the flat layout `city` writes).
#[derive(Deserialize, Default)]
struct Embedded {
    #[serde(default)]
    country_code: String,
    #[serde(default)]
    state1: String,
    #[serde(default)]
    city: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    accuracy_radius: Option<u16>,
}

fn flag(args: &[String], name: &str, default: u64) -> Res<u64> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or_else(|| format!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Networks of a file with data, as integer ranges (for sampling by network).
fn networks(reader: &Reader<Vec<u8>>) -> Res<Vec<Net>> {
    let mut out = Vec::new();
    for item in reader.networks(WithinOptions::default())? {
        let n = item?.network()?;
        out.push(Net::from_ip_prefix(n.ip(), n.prefix()));
    }
    Ok(out)
}

fn to_ip(v4: bool, x: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(x))
    }
}

/// `compare-city FULL_V4 FULL_V6 EMBEDDED [--count N] [--seed S]`: for N addresses per family
/// that the full DB-IP files place at a city (IPv4: uniform over the address space; IPv6: a
/// uniform network of the file, then a uniform address in it), the great-circle distance between
/// the full file's point and the embedded file's, and how often city, region or country changed.
pub fn compare_city(args: &[String]) -> Res<()> {
    let [v4, v6, emb, rest @ ..] = args else {
        return Err("usage: compare-city FULL_V4 FULL_V6 EMBEDDED [--count N] [--seed S]".into());
    };
    let count = flag(rest, "--count", 10_000)? as usize;
    let seed = flag(rest, "--seed", 13)?;
    let full4 = Reader::open_readfile(Path::new(v4))?;
    let full6 = Reader::open_readfile(Path::new(v6))?;
    let emb = Reader::open_readfile(Path::new(emb))?;
    let nets6 = networks(&full6)?;
    let mut rng = Rng::new(seed);
    println!("| sample | addresses | median km | p90 km | p99 km | city changed | region changed | country changed | not found | true point within accuracy_radius |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for fam_v4 in [true, false] {
        let full = if fam_v4 { &full4 } else { &full6 };
        let (mut d, mut city, mut region, mut country, mut missing, mut inside) =
            (Vec::new(), 0usize, 0usize, 0usize, 0usize, 0usize);
        let mut tries = 0u64;
        while d.len() + missing < count {
            tries += 1;
            if tries > 1000 * count as u64 {
                return Err("could not find enough addresses placed at a city".into());
            }
            let ip = if fam_v4 {
                to_ip(true, rng.below(1u128 << 32))
            } else {
                let n = nets6[rng.below(nets6.len() as u128) as usize];
                to_ip(false, n.start + rng.below(n.end - n.start + 1))
            };
            let Some(f): Option<DbipRecord> = full.lookup(ip)?.decode()? else {
                continue;
            };
            let Some(fp) = f.point().filter(|_| !f.city.is_empty()) else {
                continue;
            };
            let Some(e): Option<Embedded> = emb.lookup(ip)?.decode()? else {
                missing += 1;
                continue;
            };
            let (Some(lat), Some(lon)) = (e.latitude, e.longitude) else {
                missing += 1;
                continue;
            };
            let km = distance_km(fp, (lat, lon));
            if km <= f64::from(e.accuracy_radius.unwrap_or(0)) {
                inside += 1;
            }
            d.push(km);
            city += usize::from(e.city != f.city);
            region += usize::from(e.state1 != f.state1);
            country += usize::from(e.country_code != f.country_code);
        }
        d.sort_by(f64::total_cmp);
        let pct = |n: usize| format!("{:.1} %", 100.0 * n as f64 / count as f64);
        println!(
            "| IPv{} {} | {count} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
            if fam_v4 { 4 } else { 6 },
            if fam_v4 {
                "uniform address"
            } else {
                "uniform network"
            },
            percentile(&d, 0.5),
            percentile(&d, 0.9),
            percentile(&d, 0.99),
            pct(city),
            pct(region),
            pct(country),
            pct(missing),
            pct(inside),
        );
    }
    Ok(())
}

/// `sample-addresses ASN_MMDB [--v4 N] [--v6 N] [--seed S]`: a fixed list of public addresses,
/// one per line: uniform over the *routed* space (every network of the ASN database has an
/// origin AS), so a network weighs by its size. IPv6 is drawn within `2000::/3` only, excluding
/// the 6to4 and Teredo aliases of IPv4. Reserved space is never in the ASN data.
pub fn sample_addresses(args: &[String]) -> Res<()> {
    let [asn, rest @ ..] = args else {
        return Err("usage: sample-addresses ASN_MMDB [--v4 N] [--v6 N] [--seed S]".into());
    };
    let n4 = flag(rest, "--v4", 800)?;
    let n6 = flag(rest, "--v6", 200)?;
    let seed = flag(rest, "--seed", 13)?;
    let reader = Reader::open_readfile(Path::new(asn))?;
    let all = networks(&reader)?;
    let alias = |n: &Net| {
        let s = n.start >> 112;
        s == 0x2002 || (n.start >> 96) == 0x2001_0000
    };
    let mut rng = Rng::new(seed);
    for (v4, want) in [(true, n4), (false, n6)] {
        let nets: Vec<Net> = all
            .iter()
            .filter(|n| n.v4 == v4 && (v4 || ((n.start >> 125) == 1 && !alias(n))))
            .copied()
            .collect();
        // Cumulative sizes (u128 is enough: IPv6 within 2000::/3 is at most 2^125).
        let mut cum = Vec::with_capacity(nets.len());
        let mut total: u128 = 0;
        for n in &nets {
            total += n.end - n.start + 1;
            cum.push(total);
        }
        if total == 0 {
            return Err(format!("no IPv{} networks", if v4 { 4 } else { 6 }).into());
        }
        for _ in 0..want {
            let x = rng.below(total);
            let i = cum.partition_point(|&c| c <= x);
            let before = if i == 0 { 0 } else { cum[i - 1] };
            println!("{}", to_ip(v4, nets[i].start + (x - before)));
        }
    }
    Ok(())
}
