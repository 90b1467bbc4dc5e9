//! A small cache of recent observations, keyed by address.
//!
//! The same employees connect from the same few addresses all day, and each uncached observation
//! walks two or three database trees of several megabytes, mostly in cache misses (about 1.5 µs
//! a request in profiles, the largest single cost on the request path). The cache is
//! direct-mapped and fixed in size (memory is bounded whatever the traffic), lives inside
//! [`super::Intel`] (so a reload, which builds a new `Intel`, starts it empty), and stores strings
//! as offsets into the database bytes, so a hit rebuilds the borrowed [`Observation`] without
//! allocating.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;

use super::category::Anonymizers;
use super::observation::{LatLon, LocationPrecision, Observation};
use crate::country::CountryCode;

/// Number of slots (a power of two).
const SLOTS: usize = 8192;

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
}

/// The cache. `sources` are the byte buffers the observations' strings borrow from.
pub struct ObservationCache {
    slots: Box<[Mutex<Option<Entry>>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for ObservationCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservationCache")
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl Default for ObservationCache {
    fn default() -> Self {
        ObservationCache {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl ObservationCache {
    fn slot(&self, ip: IpAddr) -> &Mutex<Option<Entry>> {
        // Keyed hashing: a client cannot aim addresses at one slot to evict a victim's entry.
        let mut h = self.hasher.build_hasher();
        match ip {
            IpAddr::V4(a) => h.write_u32(a.to_bits()),
            IpAddr::V6(a) => h.write_u128(a.to_bits()),
        }
        &self.slots[(h.finish() as usize) & (SLOTS - 1)]
    }

    /// The cached observation of `ip`, rebuilt against `sources`.
    pub fn get<'a>(&self, ip: IpAddr, sources: &[&'a [u8]]) -> Option<Observation<'a>> {
        let entry = (*self.slot(ip).lock().ok()?)?;
        if entry.ip != ip {
            return None;
        }
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
        };
        if let Ok(mut slot) = self.slot(obs.ip).lock() {
            *slot = Some(entry);
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
}
