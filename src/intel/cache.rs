//! A small cache of recent observations, keyed by address.
//!
//! The same employees connect from the same few addresses all day, and each uncached observation
//! walks two or three database trees of several megabytes, mostly in cache misses (about 1.5 µs
//! a request in profiles, the largest single cost on the request path). The cache is two-way
//! set-associative (a direct-mapped one kept evicting about one address in eight of a busy
//! working set of 1,024: two addresses sharing a slot evict each other on every turn) and fixed
//! in size (memory is bounded whatever the traffic), lives inside
//! [`super::Intel`] (so a reload, which builds a new `Intel`, starts it empty), and stores strings
//! as offsets into the database bytes, so a hit rebuilds the borrowed [`Observation`] without
//! allocating.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

use super::category::Anonymizers;
use super::observation::{
    AnonymizerDetail, ConnectionType, LatLon, LocationPrecision, Observation,
};
use crate::country::CountryCode;

/// Number of sets (a power of two); each holds [`WAYS`] entries.
const SETS: usize = 4096;
/// Entries per set.
const WAYS: usize = 2;

/// Where a borrowed string lives: which database's bytes, at what offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StrRef {
    db: u8,
    off: u32,
    len: u32,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    ip: IpAddr,
    country: Option<CountryCode>,
    region: Option<StrRef>,
    city: Option<StrRef>,
    location: Option<LatLon>,
    accuracy_km: Option<f64>,
    precision: Option<LocationPrecision>,
    asn: Option<u32>,
    as_org: Option<StrRef>,
    anonymizers: Anonymizers,
    trusted_network: bool,
    connection_type: Option<ConnectionType>,
    detail: Option<Detail>,
    network_kind: Option<super::NetworkKind>,
}

/// [`AnonymizerDetail`] with its strings as offsets.
#[derive(Clone, Copy, Debug)]
struct Detail {
    confidence: Option<u8>,
    provider: Option<StrRef>,
    last_seen: Option<StrRef>,
    flags: Anonymizers,
    sole: Anonymizers,
}

/// The cache. `sources` are the byte buffers the observations' strings borrow from.
pub struct ObservationCache {
    sets: Box<[Mutex<Set>]>,
    /// Random per cache: which addresses share a set cannot be chosen from outside.
    key: u64,
}

/// One set: its entries and which one was used last (the other is replaced first).
#[derive(Default)]
struct Set {
    ways: [Option<Entry>; WAYS],
    last_used: usize,
}

impl std::fmt::Debug for ObservationCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservationCache")
            .field("sets", &self.sets.len())
            .finish()
    }
}

impl Default for ObservationCache {
    fn default() -> Self {
        ObservationCache {
            sets: (0..SETS).map(|_| Mutex::new(Set::default())).collect(),
            key: std::collections::hash_map::RandomState::new().hash_one(0x006c_6f63_6761_7465_u64),
        }
    }
}

impl ObservationCache {
    /// The set of `ip`: a keyed multiply-xorshift of the address bits (a few cycles; SipHash
    /// cost more than the rest of a hit).
    fn set(&self, ip: IpAddr) -> &Mutex<Set> {
        let bits = match ip {
            IpAddr::V4(a) => u64::from(a.to_bits()),
            IpAddr::V6(a) => {
                let b = a.to_bits();
                (b as u64) ^ ((b >> 64) as u64).rotate_left(29)
            }
        };
        let mut x = (bits ^ self.key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 32;
        x = x.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        x ^= x >> 29;
        &self.sets[(x as usize) & (SETS - 1)]
    }

    pub fn get<'a>(&self, ip: IpAddr, sources: &[&'a [u8]]) -> Option<Observation<'a>> {
        let entry = {
            let mut set = self.set(ip).lock().ok()?;
            let way = set
                .ways
                .iter()
                .position(|e| e.as_ref().is_some_and(|e| e.ip == ip))?;
            set.last_used = way;
            set.ways[way]?
        };
        let text = |r: Option<StrRef>| -> Result<Option<&'a str>, ()> {
            match r {
                None => Ok(None),
                Some(r) => {
                    let bytes = sources.get(usize::from(r.db)).ok_or(())?;
                    let start = r.off as usize;
                    let slice = bytes.get(start..start + r.len as usize).ok_or(())?;
                    std::str::from_utf8(slice).map(Some).map_err(|_| ())
                }
            }
        };
        Some(Observation {
            ip,
            country: entry.country,
            country_name: entry.country.map(CountryCode::name),
            region: text(entry.region).ok()?,
            city: text(entry.city).ok()?,
            location: entry.location,
            accuracy_km: entry.accuracy_km,
            precision: entry.precision,
            asn: entry.asn,
            as_org: text(entry.as_org).ok()?,
            anonymizers: entry.anonymizers,
            trusted_network: entry.trusted_network,
            connection_type: entry.connection_type,
            network_kind: entry.network_kind,
            anonymizer_detail: match entry.detail {
                None => None,
                Some(d) => Some(AnonymizerDetail {
                    confidence: d.confidence,
                    provider: text(d.provider).ok()?,
                    last_seen: text(d.last_seen).ok()?,
                    flags: d.flags,
                    sole: d.sole,
                }),
            },
        })
    }

    /// Remembers `obs`. Observations whose strings do not come from `sources` are not cached.
    pub fn put(&self, obs: &Observation<'_>, sources: &[&[u8]]) {
        let locate = |s: Option<&str>| -> Result<Option<StrRef>, ()> {
            let Some(s) = s else { return Ok(None) };
            let p = s.as_ptr() as usize;
            for (i, bytes) in sources.iter().enumerate() {
                let base = bytes.as_ptr() as usize;
                if p >= base && p + s.len() <= base + bytes.len() {
                    return Ok(Some(StrRef {
                        db: u8::try_from(i).map_err(|_| ())?,
                        off: u32::try_from(p - base).map_err(|_| ())?,
                        len: u32::try_from(s.len()).map_err(|_| ())?,
                    }));
                }
            }
            Err(())
        };
        let (Ok(region), Ok(city), Ok(as_org)) =
            (locate(obs.region), locate(obs.city), locate(obs.as_org))
        else {
            return;
        };
        let detail = match &obs.anonymizer_detail {
            None => None,
            Some(d) => {
                let (Ok(provider), Ok(last_seen)) = (locate(d.provider), locate(d.last_seen))
                else {
                    return;
                };
                Some(Detail {
                    confidence: d.confidence,
                    provider,
                    last_seen,
                    flags: d.flags,
                    sole: d.sole,
                })
            }
        };
        let entry = Entry {
            ip: obs.ip,
            country: obs.country,
            region,
            city,
            location: obs.location,
            accuracy_km: obs.accuracy_km,
            precision: obs.precision,
            asn: obs.asn,
            as_org,
            anonymizers: obs.anonymizers,
            trusted_network: obs.trusted_network,
            connection_type: obs.connection_type,
            detail,
            network_kind: obs.network_kind,
        };
        if let Ok(mut set) = self.set(obs.ip).lock() {
            let way = set
                .ways
                .iter()
                .position(|e| e.as_ref().is_none_or(|e| e.ip == obs.ip))
                .unwrap_or((set.last_used + 1) % WAYS);
            set.ways[way] = Some(entry);
            set.last_used = way;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rebuilds_borrowed_strings_and_miss_on_other_ip() {
        let db: &[u8] = b"xxAMAZON-02yyAustin";
        let cache = ObservationCache::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut obs = Observation::empty(ip);
        obs.as_org = Some(std::str::from_utf8(&db[2..11]).unwrap());
        obs.city = Some(std::str::from_utf8(&db[13..19]).unwrap());
        obs.asn = Some(16509);
        cache.put(&obs, &[db]);
        let again = cache.get(ip, &[db]).unwrap();
        assert_eq!(again, obs);
        assert!(cache.get("192.0.2.2".parse().unwrap(), &[db]).is_none());
    }

    #[test]
    fn strings_from_elsewhere_are_not_cached() {
        let db: &[u8] = b"abc";
        let cache = ObservationCache::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut obs = Observation::empty(ip);
        obs.city = Some("not in db");
        cache.put(&obs, &[db]);
        assert!(cache.get(ip, &[db]).is_none());
    }

    #[test]
    fn two_addresses_of_one_set_both_stay_and_a_third_replaces_the_least_recent() {
        let cache = ObservationCache::default();
        let first: IpAddr = "192.0.2.1".parse().unwrap();
        let home = |ip: IpAddr| cache.set(ip) as *const _;
        let mut same = (2u32..)
            .map(|n| IpAddr::from(std::net::Ipv4Addr::from(0xC000_0200 + n)))
            .filter(|ip| home(*ip) == home(first));
        let (second, third) = (same.next().unwrap(), same.next().unwrap());
        for ip in [first, second] {
            cache.put(&Observation::empty(ip), &[]);
        }
        assert!(cache.get(second, &[]).is_some());
        assert!(cache.get(first, &[]).is_some(), "both ways hold");
        cache.put(&Observation::empty(third), &[]);
        assert!(cache.get(first, &[]).is_some(), "the last used stays");
        assert!(cache.get(second, &[]).is_none(), "the least recent went");
        assert!(cache.get(third, &[]).is_some());
    }
}
