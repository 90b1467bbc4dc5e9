//! The form in which one instance's sightings travel to the others (one Redis stream entry).
//!
//! Entries come from other processes, possibly other versions, possibly a tampered Redis, so
//! decoding checks every field (lengths, coordinate ranges, dates) and refuses what it cannot
//! place instead of guessing. Keys are short because a fleet writes many of them.

use std::net::{Ipv4Addr, Ipv6Addr};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Day, EgressKey, Record, Sighting};
use crate::country::CountryCode;
use crate::intel::LatLon;

/// Longest employee id accepted from the stream (directory ids are far shorter).
const MAX_EMPLOYEE_LEN: usize = 256;

/// An owned [`Record`], as it goes to and comes from the shared stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedRecord {
    /// Employee id.
    pub employee: String,
    /// The sighting, when it counted as a place.
    pub place: Option<Sighting>,
    /// The egress, when it counted towards shared egress.
    pub egress: Option<EgressKey>,
    /// The day it counted for.
    pub day: Option<Day>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    e: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<WirePlace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<WireDay>,
}

#[derive(Serialize, Deserialize)]
struct WirePlace {
    /// Unix milliseconds.
    t: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    la: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lo: Option<f64>,
    a: f64,
}

#[derive(Serialize, Deserialize)]
struct WireDay {
    d: String,
    /// Bits: 1 home, 2 placed, 4 night.
    f: u8,
}

impl SharedRecord {
    /// An owned copy of `rec`.
    pub fn from_record(rec: &Record<'_>) -> Self {
        SharedRecord {
            employee: rec.employee.to_string(),
            place: rec.place,
            egress: rec.egress,
            day: rec.day,
        }
    }

    /// The record to apply to a local store.
    pub fn as_record(&self) -> Record<'_> {
        Record {
            employee: &self.employee,
            place: self.place,
            egress: self.egress,
            day: self.day,
        }
    }

    /// The stream entry's payload.
    pub fn encode(&self) -> String {
        let wire = Wire {
            e: self.employee.clone(),
            p: self.place.map(|s| WirePlace {
                t: s.at.as_millisecond(),
                c: s.country.map(|c| c.as_str().to_string()),
                la: s.location.map(|l| l.lat),
                lo: s.location.map(|l| l.lon),
                a: s.accuracy_km,
            }),
            g: self.egress.map(|g| match g {
                EgressKey::V4(a) => Ipv4Addr::from_bits(a).to_string(),
                EgressKey::V6(net) => Ipv6Addr::from_bits(u128::from(net) << 64).to_string(),
            }),
            d: self.day.map(|d| WireDay {
                d: d.date.to_string(),
                f: u8::from(d.home) | u8::from(d.placed) << 1 | u8::from(d.night) << 2,
            }),
        };
        // Plain strings and numbers: serialising cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Reads a payload written by [`SharedRecord::encode`], refusing anything out of range.
    pub fn decode(payload: &[u8]) -> Result<Self, String> {
        let wire: Wire =
            serde_json::from_slice(payload).map_err(|e| format!("not a record: {e}"))?;
        if wire.e.is_empty() || wire.e.len() > MAX_EMPLOYEE_LEN {
            return Err(format!("employee id must be 1 to {MAX_EMPLOYEE_LEN} bytes"));
        }
        let place = match wire.p {
            None => None,
            Some(p) => Some(decode_place(p)?),
        };
        let egress = match wire.g {
            None => None,
            Some(g) => Some(EgressKey::of(
                g.parse()
                    .map_err(|_| format!("egress `{g}` is not an address"))?,
            )),
        };
        let day = match wire.d {
            None => None,
            Some(d) => {
                if d.f > 7 {
                    return Err(format!("day flags {} out of range", d.f));
                }
                Some(Day {
                    date: d
                        .d
                        .parse()
                        .map_err(|_| format!("day `{}` is not a date", d.d))?,
                    home: d.f & 1 != 0,
                    placed: d.f & 2 != 0,
                    night: d.f & 4 != 0,
                })
            }
        };
        Ok(SharedRecord {
            employee: wire.e,
            place,
            egress,
            day,
        })
    }
}

fn decode_place(p: WirePlace) -> Result<Sighting, String> {
    let at = Timestamp::from_millisecond(p.t).map_err(|_| format!("time {} out of range", p.t))?;
    let country = match p.c {
        None => None,
        Some(c) => Some(CountryCode::parse(&c).ok_or_else(|| format!("country `{c}`"))?),
    };
    let location = match (p.la, p.lo) {
        (Some(lat), Some(lon))
            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
        {
            Some(LatLon { lat, lon })
        }
        (None, None) => None,
        _ => return Err("coordinates missing or out of range".into()),
    };
    if !(p.a.is_finite() && p.a >= 0.0) {
        return Err(format!("accuracy {} is not a distance", p.a));
    }
    Ok(Sighting {
        at,
        country,
        location,
        accuracy_km: p.a,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> SharedRecord {
        SharedRecord {
            employee: "ann".into(),
            place: Some(Sighting {
                at: "2026-11-25T10:00:00.123Z".parse().unwrap(),
                country: CountryCode::parse("DE"),
                location: Some(LatLon {
                    lat: 52.52,
                    lon: 13.405,
                }),
                accuracy_km: 20.0,
            }),
            egress: Some(EgressKey::of("2001:db8:1:2::99".parse().unwrap())),
            day: Some(Day {
                date: "2026-11-25".parse().unwrap(),
                home: false,
                placed: true,
                night: true,
            }),
        }
    }

    #[test]
    fn round_trips_every_field() {
        let r = full();
        assert_eq!(SharedRecord::decode(r.encode().as_bytes()), Ok(r));
        let bare = SharedRecord {
            employee: "bob".into(),
            place: None,
            egress: Some(EgressKey::of("203.0.113.9".parse().unwrap())),
            day: None,
        };
        assert_eq!(SharedRecord::decode(bare.encode().as_bytes()), Ok(bare));
    }

    #[test]
    fn refuses_what_it_cannot_place() {
        for bad in [
            "garbage",
            r#"{"e":""}"#,
            r#"{"e":"a","p":{"t":0,"la":95.0,"lo":0.0,"a":1}}"#,
            r#"{"e":"a","p":{"t":0,"la":10.0,"a":1}}"#,
            r#"{"e":"a","p":{"t":0,"a":-1}}"#,
            r#"{"e":"a","p":{"t":99999999999999999,"a":1}}"#,
            r#"{"e":"a","p":{"t":0,"c":"ZZZ","a":1}}"#,
            r#"{"e":"a","g":"not-an-ip"}"#,
            r#"{"e":"a","d":{"d":"2026-13-01","f":1}}"#,
            r#"{"e":"a","d":{"d":"2026-11-01","f":9}}"#,
        ] {
            assert!(SharedRecord::decode(bad.as_bytes()).is_err(), "{bad}");
        }
        let long = format!(r#"{{"e":"{}"}}"#, "x".repeat(300));
        assert!(SharedRecord::decode(long.as_bytes()).is_err());
    }
}
