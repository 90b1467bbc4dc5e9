//! One decoder for a database record, whatever the vendor's layout.
//!
//! The files people bring spell the same facts many ways: GeoIP2 nests them (`country.iso_code`,
//! `location.latitude`, `traits.isp`), ip-location-db and IPinfo keep them flat (`country_code`,
//! `latitude` or `lat`, `asn: "AS15169"`), and the numbers come in every type the MaxMind DB
//! format has (DB-IP City Lite in the ip-location-db form stores coordinates as 32-bit floats;
//! IPinfo stores them as strings). Rather than one struct per layout, each chosen by a guess,
//! [`Facts`] walks a record's map once and reads every key it knows in whichever form the file
//! uses, skipping the rest without allocating. The load-time probe and the request path use this
//! same decoder, so a file the probe accepts is a file the request path can read.
//!
//! A known key holding a value of the wrong kind (a map where a number belongs) is an error that
//! names the key: the probe refuses such a file rather than letting every lookup silently come back
//! empty.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::category::{Anonymizers, Category};

/// What one record says. Strings borrow from the database bytes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Facts<'a> {
    /// ISO 3166-1 alpha-2 code of the country where the address is used.
    pub country: Option<&'a str>,
    /// ISO code of the country the network is registered in (GeoIP2's fallback).
    pub registered_country: Option<&'a str>,
    /// First-level subdivision (state, province), English name.
    pub region: Option<&'a str>,
    /// City, English name.
    pub city: Option<&'a str>,
    /// Degrees north.
    pub latitude: Option<f64>,
    /// Degrees east.
    pub longitude: Option<f64>,
    /// How far the true position may be from the point, in km.
    pub accuracy_km: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_org: Option<&'a str>,
    /// Internet service provider or organisation (GeoIP2 ISP and Enterprise).
    pub isp: Option<&'a str>,
    /// How the network connects (`Cellular`, `Satellite`, `Cable/DSL`, ...).
    pub connection_type: Option<&'a str>,
    /// Anonymizer categories the record flags.
    pub anonymizers: Anonymizers,
    /// The record carries anonymizer fields at all (even all false): an Anonymous-IP style file.
    pub has_anonymizer_fields: bool,
    /// How sure the vendor is that the address is an anonymizer, 1 to 99 (MaxMind Anonymous Plus,
    /// Residential Proxy).
    pub confidence: Option<u8>,
    /// Who runs the exit ("NordVPN", a residential proxy network's name).
    pub provider: Option<&'a str>,
    /// When the vendor last saw the network used as an anonymizer, `YYYY-MM-DD`.
    pub last_seen: Option<&'a str>,
}

impl<'a> Facts<'a> {
    /// The country code, falling back to the registered country.
    pub fn country_code(&self) -> Option<&'a str> {
        self.country.or(self.registered_country)
    }

    /// Whether the record places the address at all (country, region, city or a point).
    pub fn has_place(&self) -> bool {
        self.country_code().is_some() || self.has_city()
    }

    /// Whether the record says more than a country: a region, a city or a point.
    pub fn has_city(&self) -> bool {
        self.region.is_some() || self.city.is_some() || self.point().is_some()
    }

    /// The coordinates and accuracy, when both coordinates are present.
    pub fn point(&self) -> Option<(f64, f64)> {
        Some((self.latitude?, self.longitude?))
    }

    /// One key of a record map (top level, or GeoIP2 Enterprise `traits`).
    fn read<A: MapAccess<'a>>(
        &mut self,
        key: &str,
        map: &mut A,
        top: bool,
    ) -> Result<(), A::Error> {
        let flag = |c| Some(c);
        let category = match key {
            "is_anonymous_vpn" | "vpn" => flag(Category::AnonymousVpn),
            "is_hosting_provider" | "hosting" => flag(Category::HostingProvider),
            "is_public_proxy" | "proxy" => flag(Category::PublicProxy),
            "is_residential_proxy" => flag(Category::ResidentialProxy),
            "is_tor_exit_node" | "tor" => flag(Category::TorExit),
            "relay" => flag(Category::Relay),
            _ => None,
        };
        if let Some(c) = category {
            self.has_anonymizer_fields = true;
            if map.next_value::<Flag>()?.0 {
                self.anonymizers.insert(c);
            }
            return Ok(());
        }
        match key {
            "is_anonymous" => {
                self.has_anonymizer_fields = true;
                map.next_value::<Flag>()?;
            }
            "autonomous_system_number" | "asn" => {
                self.asn = map.next_value::<Asn>().map_err(|e| field(key, e))?.0;
            }
            "autonomous_system_organization" | "as_name" => {
                self.as_org = text(map, key)?;
            }
            "isp" => self.isp = text(map, key)?,
            "organization" => {
                let org = text(map, key)?;
                self.isp = self.isp.or(org);
            }
            "connection_type" => self.connection_type = text(map, key)?,
            "anonymizer_confidence" => {
                let n = number(map, key)?;
                self.confidence = n.map(|n| n.clamp(0.0, 100.0) as u8);
            }
            "provider_name" | "service" => self.provider = text(map, key)?,
            "network_last_seen" | "last_seen" => self.last_seen = text(map, key)?,
            _ if !top => {
                map.next_value::<IgnoredAny>()?;
            }
            "country" => {
                let code = map.next_value::<Place>().map_err(|e| field(key, e))?.code;
                // IPinfo Lite's `country` is the name (its code is `country_code`); IPinfo's
                // location files put the code here.
                self.country = self.country.or(code.filter(|c| is_code(c)));
            }
            "registered_country" => {
                self.registered_country = map.next_value::<Place>().map_err(|e| field(key, e))?.code
            }
            "country_code" => self.country = text(map, key)?.or(self.country),
            "subdivisions" => {
                let first = map.next_value::<FirstOf>().map_err(|e| field(key, e))?;
                self.region = first.0.and_then(|p| p.name);
            }
            "state1" | "region" => {
                self.region = map.next_value::<Place>().map_err(|e| field(key, e))?.name;
            }
            "city" => self.city = map.next_value::<Place>().map_err(|e| field(key, e))?.name,
            "location" => {
                let loc = map.next_value::<Location>().map_err(|e| field(key, e))?;
                self.latitude = loc.latitude;
                self.longitude = loc.longitude;
                self.accuracy_km = loc.accuracy_radius;
            }
            "latitude" | "lat" => self.latitude = number(map, key)?,
            "longitude" | "lng" | "lon" => self.longitude = number(map, key)?,
            "accuracy_radius" => self.accuracy_km = number(map, key)?,
            "traits" => {
                let traits = map.next_value::<Traits<'a>>().map_err(|e| field(key, e))?;
                self.merge_traits(traits.0);
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn merge_traits(&mut self, t: Facts<'a>) {
        self.asn = self.asn.or(t.asn);
        self.as_org = self.as_org.or(t.as_org);
        self.isp = self.isp.or(t.isp);
        self.connection_type = self.connection_type.or(t.connection_type);
        self.anonymizers = self.anonymizers.union(t.anonymizers);
        self.has_anonymizer_fields |= t.has_anonymizer_fields;
        self.confidence = self.confidence.or(t.confidence);
        self.provider = self.provider.or(t.provider);
        self.last_seen = self.last_seen.or(t.last_seen);
    }
}

fn is_code(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Names the key in a value error, so a refused file says which field it could not read.
fn field<E: de::Error>(key: &str, e: E) -> E {
    E::custom(format_args!("field `{key}`: {e}"))
}

fn text<'a, A: MapAccess<'a>>(map: &mut A, key: &str) -> Result<Option<&'a str>, A::Error> {
    let t = map.next_value::<Text<'a>>().map_err(|e| field(key, e))?;
    Ok(t.0.filter(|s| !s.is_empty()))
}

fn number<'a, A: MapAccess<'a>>(map: &mut A, key: &str) -> Result<Option<f64>, A::Error> {
    Ok(map.next_value::<Num>().map_err(|e| field(key, e))?.0)
}

impl<'de: 'a, 'a> Deserialize<'de> for Facts<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor {
            top: true,
            _p: PhantomData,
        })
    }
}

/// GeoIP2 Enterprise's `traits`: the flat keys only (no nesting inside).
struct Traits<'a>(Facts<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for Traits<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor {
            top: false,
            _p: PhantomData,
        })
        .map(Traits)
    }
}

struct RecordVisitor<'a> {
    top: bool,
    _p: PhantomData<&'a ()>,
}

impl<'de: 'a, 'a> Visitor<'de> for RecordVisitor<'a> {
    type Value = Facts<'a>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Facts<'a>, A::Error> {
        let mut facts = Facts::default();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match key.0 {
                Some(k) => facts.read(k, &mut map, self.top)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(facts)
    }
}

/// A string, borrowed from the file.
struct Text<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Some(v)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Text<'a>, E> {
                // Not borrowable from the file (cannot happen with maxminddb): unknown, not wrong.
                Ok(Text(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A number in any type the MaxMind DB format has (unsigned 16/32/64/128, signed 32, float,
/// double), or a decimal string (IPinfo).
struct Num(Option<f64>);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v.is_finite().then_some(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                if v.trim().is_empty() {
                    return Ok(Num(None));
                }
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map(|n| Num(Some(n)))
                    .ok_or_else(|| E::custom(format_args!("expected a number, found {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// An AS number: an integer of any width, or a string `AS15169` / `15169` (IPinfo).
struct Asn(Option<u32>);

impl<'de> Deserialize<'de> for Asn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Asn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an AS number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Asn, E> {
                in_range(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Asn, E> {
                in_range(v)
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Asn, E> {
                in_range(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Asn, E> {
                let digits = v
                    .strip_prefix("AS")
                    .or_else(|| v.strip_prefix("as"))
                    .unwrap_or(v);
                if digits.is_empty() {
                    return Ok(Asn(None));
                }
                digits
                    .parse::<u32>()
                    .map(|n| Asn(Some(n)))
                    .map_err(|_| E::custom(format_args!("expected an AS number, found {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer AS number of any width, refused when it does not fit in 32 bits.
fn in_range<T, E>(v: T) -> Result<Asn, E>
where
    T: TryInto<u32> + Copy + fmt::Display,
    E: de::Error,
{
    v.try_into()
        .map(|n| Asn(Some(n)))
        .map_err(|_| E::custom(format_args!("AS number {v} is out of range")))
}

/// A yes/no: a boolean, or the strings and integers some vendors use (`"true"`, `""`, `1`).
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flag, E> {
                Ok(Flag(v != 0))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Flag, E> {
                Ok(Flag(v != 0))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "1" => Ok(Flag(true)),
                    "false" | "no" | "0" | "" => Ok(Flag(false)),
                    _ => Err(E::custom(format_args!("expected a boolean, found {v:?}"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A place: a GeoIP2 map (`iso_code`, `names.en`) or a plain string (flat layouts).
#[derive(Default)]
struct Place<'a> {
    code: Option<&'a str>,
    name: Option<&'a str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Place<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Place<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a place (a map with names, or a string)")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Place<'a>, E> {
                let v = Some(v).filter(|s| !s.is_empty());
                Ok(Place { code: v, name: v })
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Place<'a>, E> {
                Ok(Place::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Place<'a>, A::Error> {
                let mut place = Place::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match key.0 {
                        Some("iso_code") => place.code = text(&mut map, "iso_code")?,
                        Some("names") => {
                            place.name = map
                                .next_value::<English>()
                                .map_err(|e| field("names", e))?
                                .0
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(place)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The English entry of a `names` map.
struct English<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for English<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = English<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of names by language")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<English<'a>, A::Error> {
                let mut en = None;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if key.0 == Some("en") {
                        en = text(&mut map, "en")?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(English(en))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// The first place of a list (GeoIP2 `subdivisions`: the state or province); the rest are skipped.
struct FirstOf<'a>(Option<Place<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstOf<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = FirstOf<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of places")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FirstOf<'a>, A::Error> {
                let first = seq.next_element::<Place<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstOf(first))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// GeoIP2 `location`.
#[derive(Default)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
    accuracy_radius: Option<f64>,
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Location;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a location map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Location, A::Error> {
                let mut loc = Location::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match key.0 {
                        Some(k @ "latitude") => loc.latitude = number(&mut map, k)?,
                        Some(k @ "longitude") => loc.longitude = number(&mut map, k)?,
                        Some(k @ "accuracy_radius") => loc.accuracy_radius = number(&mut map, k)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(loc)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use mmdb_writer::{ReservedNetworks, Value, Writer, ipnet::IpNet};

    use super::*;
    use crate::intel::{DbBytes, MmdbFile, Observation};

    /// A database holding `record` at 1.2.3.0/24 and, past the probe's reach, `late` at
    /// 201.0.0.0/24 (behind 600 good networks).
    fn db(record: Value, late: Option<Value>) -> Vec<u8> {
        let mut w = Writer::builder("test")
            .reserved_networks(ReservedNetworks::Included)
            .build();
        let put = |w: &mut Writer, net: &str, v: Value| {
            w.insert_value(net.parse::<IpNet>().unwrap(), v).unwrap();
        };
        put(&mut w, "1.2.3.0/24", record);
        if let Some(late) = late {
            for i in 0..600u32 {
                let net = format!("{}/32", std::net::Ipv4Addr::from(0x0200_0000 + i * 2));
                put(
                    &mut w,
                    &net,
                    Value::map([("country_code", Value::from("US"))]),
                );
            }
            put(&mut w, "201.0.0.0/24", late);
        }
        w.to_bytes().unwrap()
    }

    fn observe(bytes: Vec<u8>, ip: &str) -> (MmdbFile, Observation<'static>) {
        let file = MmdbFile::from_bytes("t", DbBytes::Owned(bytes)).unwrap();
        let ip: IpAddr = ip.parse().unwrap();
        let mut obs = Observation::empty(ip);
        let _ = file.fill(ip, &mut obs);
        let obs = Observation {
            region: None,
            city: None,
            as_org: None,
            anonymizer_detail: None,
            ..obs
        };
        (file, obs)
    }

    #[test]
    fn numbers_of_every_type_the_format_has_are_read() {
        let cases = [
            Value::Float(47.5),
            Value::Double(47.5),
            Value::U16(47),
            Value::U32(47),
            Value::U64(47),
            Value::U128(47),
            Value::I32(47),
            Value::from("47.5"),
        ];
        for lat in cases {
            let rec = Value::map([
                ("country_code", Value::from("US")),
                ("latitude", lat.clone()),
                ("longitude", Value::I32(-122)),
                ("accuracy_radius", Value::U32(20)),
            ]);
            let (_, obs) = observe(db(rec, None), "1.2.3.4");
            let loc = obs.location.unwrap_or_else(|| panic!("{lat:?}"));
            assert!((loc.lat - 47.0).abs() <= 0.5, "{lat:?}: {loc:?}");
            assert_eq!(loc.lon, -122.0);
            assert_eq!(obs.accuracy_km, Some(20.0));
        }
    }

    #[test]
    fn ipinfo_spellings_are_read() {
        let rec = Value::map([
            ("asn", Value::from("AS15169")),
            ("as_name", Value::from("Google LLC")),
            ("country", Value::from("United States")),
            ("country_code", Value::from("US")),
            ("vpn", Value::from("true")),
            ("hosting", Value::from("false")),
            ("service", Value::from("NordVPN")),
        ]);
        let file = MmdbFile::from_bytes("t", DbBytes::Owned(db(rec, None))).unwrap();
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let mut obs = Observation::empty(ip);
        file.fill(ip, &mut obs).unwrap();
        assert_eq!(obs.asn, Some(15169));
        assert_eq!(obs.as_org, Some("Google LLC"));
        assert_eq!(obs.country, crate::country::CountryCode::parse("US"));
        assert!(obs.anonymizers.contains(Category::AnonymousVpn));
        assert!(!obs.anonymizers.contains(Category::HostingProvider));
        assert_eq!(obs.anonymizer_detail.unwrap().provider, Some("NordVPN"));
    }

    #[test]
    fn a_known_field_of_the_wrong_kind_refuses_the_file_naming_the_field() {
        let rec = Value::map([
            ("country_code", Value::from("US")),
            ("latitude", Value::map([("x", Value::from(1u32))])),
        ]);
        let err = MmdbFile::from_bytes("bad.mmdb", DbBytes::Owned(db(rec, None))).unwrap_err();
        assert!(err.reason.contains("field `latitude`"), "{err}");
        assert!(err.reason.contains("1.2.3.0/24"), "{err}");
    }

    #[test]
    fn a_record_that_fails_at_run_time_is_counted_and_the_lookup_goes_on() {
        let good = Value::map([("country_code", Value::from("US"))]);
        let late = Value::map([("latitude", Value::Bool(true))]);
        let file = MmdbFile::from_bytes("t", DbBytes::Owned(db(good, Some(late)))).unwrap();
        let ip: IpAddr = "201.0.0.9".parse().unwrap();
        let mut obs = Observation::empty(ip);
        let err = file.fill(ip, &mut obs).unwrap_err();
        file.note_failure(ip, &err);
        assert_eq!(file.decode_failures(), 1);
        assert_eq!(obs.location, None);
    }
}
