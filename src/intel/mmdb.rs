//! MaxMind-format databases, whatever their layout.
//!
//! Users bring GeoIP2/GeoLite2 files (`country.iso_code`, `location.latitude`, ...); the free
//! ip-location-db files we embed use a flat layout (`country_code`, `latitude`, ...). Rather than
//! ask the operator which is which, each file is probed once at load: the keys of its first records
//! tell us its layout and what it can answer (geolocation, ASN, anonymizer flags). The hot path
//! then decodes only the fields that file has, borrowing strings from the mapped bytes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::{MaxMindDbError, Reader, WithinOptions};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::category::{Anonymizers, Category};
use super::observation::{LatLon, LocationPrecision, Observation};
use super::{DataError, DataVersion};
use crate::country::CountryCode;

/// The bytes behind a reader: compiled into the binary, memory-mapped, or read into memory.
pub enum DbBytes {
    /// Embedded default data.
    Static(&'static [u8]),
    /// A file mapped read-only. Files must be replaced by rename, never rewritten in place.
    Mapped(maxminddb::Mmap),
    /// Bytes read into memory (used by tests and small files).
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for DbBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            DbBytes::Static(b) => b,
            DbBytes::Mapped(m) => m.as_ref(),
            DbBytes::Owned(v) => v,
        }
    }
}

/// How a file spells its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// MaxMind GeoIP2 / GeoLite2 (and DB-IP's GeoIP2-compatible files).
    GeoIp2,
    /// ip-location-db's flat layout.
    Flat,
}

/// What a file can answer, learned from its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Has a country.
    pub country: bool,
    /// Has city, region or coordinates.
    pub city: bool,
    /// Has an autonomous system number.
    pub asn: bool,
    /// Has anonymizer flags (GeoIP2 Anonymous-IP).
    pub anonymous: bool,
}

/// Shared ownership of database bytes: the reader reads them, the observation cache rebuilds
/// borrowed strings from them.
#[derive(Clone)]
pub struct SharedBytes(std::sync::Arc<DbBytes>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref().as_ref()
    }
}

/// One opened database.
pub struct MmdbFile {
    reader: Reader<SharedBytes>,
    bytes: SharedBytes,
    layout: Layout,
    caps: Capabilities,
    version: DataVersion,
}

impl std::fmt::Debug for MmdbFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmdbFile")
            .field("layout", &self.layout)
            .field("caps", &self.caps)
            .field("version", &self.version)
            .finish()
    }
}

impl MmdbFile {
    /// Maps a file and probes it. Errors name the file and say what is wrong with it.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let label = path.display().to_string();
        let meta = std::fs::metadata(path)
            .map_err(|e| DataError::new(&label, format!("cannot read: {e}")))?;
        if meta.len() == 0 {
            return Err(DataError::new(&label, "file is empty"));
        }
        let file = std::fs::File::open(path)
            .map_err(|e| DataError::new(&label, format!("cannot open: {e}")))?;
        // SAFETY: the map is read-only and locgate documents (and `update` practises) replacing
        // database files by rename, so the mapped inode is never modified while mapped.
        let map = unsafe { maxminddb::Mmap::map(&file) }
            .map_err(|e| DataError::new(&label, format!("cannot map: {e}")))?;
        Self::from_bytes(&label, DbBytes::Mapped(map))
    }

    /// Opens bytes already in hand; `label` names them in errors and events.
    pub fn from_bytes(label: &str, bytes: DbBytes) -> Result<Self, DataError> {
        let bytes = SharedBytes(std::sync::Arc::new(bytes));
        let reader = Reader::from_source(bytes.clone())
            .map_err(|e| DataError::new(label, format!("not a MaxMind DB file: {e}")))?;
        let (layout, caps) =
            probe(&reader).map_err(|e| DataError::new(label, format!("corrupt database: {e}")))?;
        if caps == Capabilities::default() {
            return Err(DataError::new(
                label,
                "database has no field locgate understands (country, city, ASN or anonymizer flags)",
            ));
        }
        let meta = reader.metadata();
        let version = DataVersion {
            source: label.to_string(),
            kind: meta.database_type.clone(),
            built_epoch: meta.build_epoch,
        };
        Ok(MmdbFile {
            reader,
            bytes,
            layout,
            caps,
            version,
        })
    }

    /// The database bytes (strings in observations point into them).
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// What this file answers.
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// The layout detected.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Name, type and build date, for events and `--version`.
    pub fn version(&self) -> &DataVersion {
        &self.version
    }

    /// Fills in whatever `obs` is still missing that this file knows about `ip`.
    ///
    /// A record that fails to decode (a corrupt region of a file that passed its probe) counts as
    /// "no answer" for the missing fields: one bad record must not fail the request.
    pub fn fill<'a>(&'a self, ip: IpAddr, obs: &mut Observation<'a>) -> Result<(), MaxMindDbError> {
        if !self.could_add(obs) {
            // Not even a tree walk: a fallback file (the embedded country database behind the
            // city one) then costs nothing, and its pages are never touched (resident memory).
            return Ok(());
        }
        let result = self.reader.lookup(ip)?;
        if !result.has_data() {
            return Ok(());
        }
        match self.layout {
            Layout::GeoIp2 => {
                if self.caps.city && obs.location.is_none() {
                    if let Some(rec) = result.decode::<GeoIp2City<'a>>()? {
                        apply_geo(
                            obs,
                            rec.country_code(),
                            rec.region(),
                            rec.city_name(),
                            rec.location(),
                        );
                    }
                } else if self.caps.country && obs.country.is_none() {
                    let cc = result
                        .decode_path::<&str>(&maxminddb::path!["country", "iso_code"])?
                        .or(result.decode_path::<&str>(&maxminddb::path![
                            "registered_country",
                            "iso_code"
                        ])?);
                    apply_geo(obs, cc, None, None, None);
                }
                if self.caps.asn && obs.asn.is_none() {
                    if let Some(rec) = result.decode::<AsnRecord<'a>>()? {
                        obs.asn = rec.autonomous_system_number;
                        obs.as_org = rec.autonomous_system_organization;
                    }
                }
                if self.caps.anonymous
                    && let Some(rec) = result.decode::<AnonymousRecord>()?
                {
                    obs.anonymizers = obs.anonymizers.union(rec.flags());
                }
            }
            Layout::Flat => {
                if self.caps.city && obs.location.is_none() {
                    if let Some(rec) = result.decode::<FlatCity<'a>>()? {
                        let loc = match (rec.latitude, rec.longitude) {
                            (Some(lat), Some(lon)) => Some((LatLon { lat, lon }, None)),
                            _ => None,
                        };
                        apply_geo(obs, rec.country_code, rec.state1, rec.city, loc);
                    }
                } else if self.caps.country && obs.country.is_none() {
                    let cc = result.decode_path::<&str>(&maxminddb::path!["country_code"])?;
                    apply_geo(obs, cc, None, None, None);
                }
                if self.caps.asn && obs.asn.is_none() {
                    if let Some(rec) = result.decode::<AsnRecord<'a>>()? {
                        obs.asn = rec.autonomous_system_number;
                        obs.as_org = rec.autonomous_system_organization;
                    }
                }
            }
        }
        Ok(())
    }
}

impl MmdbFile {
    /// Whether this file can fill anything `obs` still misses (the same conditions as `fill`).
    fn could_add(&self, obs: &Observation<'_>) -> bool {
        (self.caps.city && obs.location.is_none())
            || (self.caps.country && obs.country.is_none())
            || (self.caps.asn && obs.asn.is_none())
            || self.caps.anonymous
    }
}

fn apply_geo<'a>(
    obs: &mut Observation<'a>,
    country: Option<&str>,
    region: Option<&'a str>,
    city: Option<&'a str>,
    location: Option<(LatLon, Option<f64>)>,
) {
    // A later file never places the address in another country than an earlier one said: the
    // embedded city data sits behind the operator's own files, and a country database of theirs
    // saying DE must not be dressed up with a DB-IP city in FR.
    if let (Some(have), Some(cc)) = (obs.country, country.and_then(CountryCode::parse))
        && have != cc
    {
        return;
    }
    if obs.country.is_none() {
        obs.country = country.and_then(CountryCode::parse);
    }
    if obs.region.is_none() {
        obs.region = region.filter(|s| !s.is_empty());
    }
    if obs.city.is_none() {
        obs.city = city.filter(|s| !s.is_empty());
    }
    if obs.location.is_none()
        && let Some((loc, accuracy)) = location
        && loc.lat.is_finite()
        && loc.lon.is_finite()
        && (-90.0..=90.0).contains(&loc.lat)
        && (-180.0..=180.0).contains(&loc.lon)
    {
        obs.location = Some(loc);
        obs.accuracy_km = accuracy;
        obs.precision = Some(LocationPrecision::Database);
    }
}

/// Reads the keys of the first records to learn layout and capabilities.
fn probe(reader: &Reader<SharedBytes>) -> Result<(Layout, Capabilities), MaxMindDbError> {
    let mut seen = std::collections::BTreeSet::new();
    for item in reader.networks(WithinOptions::default())?.take(256) {
        if let Some(keys) = item?.decode::<BTreeMap<&str, IgnoredAny>>()? {
            seen.extend(keys.into_keys().map(str::to_owned));
        }
    }
    let has = |k: &str| seen.contains(k);
    let flat = has("country_code") || has("latitude") || has("state1");
    let geoip2 =
        has("country") || has("registered_country") || has("location") || has("subdivisions");
    let caps = Capabilities {
        country: has("country") || has("registered_country") || has("country_code"),
        city: has("city")
            || has("location")
            || has("subdivisions")
            || has("latitude")
            || has("state1"),
        asn: has("autonomous_system_number"),
        anonymous: seen.iter().any(|k| k.starts_with("is_")),
    };
    let layout = if flat && !geoip2 {
        Layout::Flat
    } else {
        Layout::GeoIp2
    };
    Ok((layout, caps))
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct EnglishNames<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    names: Option<EnglishNames<'a>>,
}

#[derive(Deserialize)]
struct GeoIp2Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
    accuracy_radius: Option<u16>,
}

/// Only the first subdivision matters (state/province); the rest are skipped without allocating.
struct FirstSubdivision<'a>(Option<Named<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstSubdivision<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = FirstSubdivision<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of subdivisions")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<Named<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstSubdivision(first))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct GeoIp2City<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    registered_country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    subdivisions: Option<FirstSubdivision<'a>>,
    #[serde(borrow)]
    city: Option<Named<'a>>,
    location: Option<GeoIp2Location>,
}

impl<'a> GeoIp2City<'a> {
    fn country_code(&self) -> Option<&'a str> {
        self.country
            .as_ref()
            .and_then(|c| c.iso_code)
            .or_else(|| self.registered_country.as_ref().and_then(|c| c.iso_code))
    }
    fn region(&self) -> Option<&'a str> {
        self.subdivisions.as_ref()?.0.as_ref()?.names.as_ref()?.en
    }
    fn city_name(&self) -> Option<&'a str> {
        self.city.as_ref()?.names.as_ref()?.en
    }
    fn location(&self) -> Option<(LatLon, Option<f64>)> {
        let loc = self.location.as_ref()?;
        Some((
            LatLon {
                lat: loc.latitude?,
                lon: loc.longitude?,
            },
            loc.accuracy_radius.map(f64::from),
        ))
    }
}

#[derive(Deserialize)]
struct FlatCity<'a> {
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(borrow)]
    state1: Option<&'a str>,
    #[serde(borrow)]
    city: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct AnonymousRecord {
    #[serde(default)]
    is_anonymous_vpn: bool,
    #[serde(default)]
    is_hosting_provider: bool,
    #[serde(default)]
    is_public_proxy: bool,
    #[serde(default)]
    is_residential_proxy: bool,
    #[serde(default)]
    is_tor_exit_node: bool,
}

impl AnonymousRecord {
    fn flags(&self) -> Anonymizers {
        let mut a = Anonymizers::NONE;
        for (on, c) in [
            (self.is_anonymous_vpn, Category::AnonymousVpn),
            (self.is_hosting_provider, Category::HostingProvider),
            (self.is_public_proxy, Category::PublicProxy),
            (self.is_residential_proxy, Category::ResidentialProxy),
            (self.is_tor_exit_node, Category::TorExit),
        ] {
            if on {
                a.insert(c);
            }
        }
        a
    }
}
