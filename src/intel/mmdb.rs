//! MaxMind-format databases, whatever their vendor and layout.
//!
//! Users bring GeoIP2/GeoLite2 files (`country.iso_code`, `location.latitude`, ...), DB-IP's own
//! files, IPinfo's (`asn: "AS15169"`, `vpn`), or the free ip-location-db files we embed (flat
//! `country_code`, `latitude` as a 32-bit float). Rather than ask the operator which is which,
//! every record is read by one decoder that knows every spelling ([`super::record::Facts`]), and
//! each file is probed once at load with that same decoder: a sample of its real records tells
//! us what it can answer (place, city, ASN, anonymizer flags, connection type), and a record it
//! cannot read refuses the file with the reason. The hot path then borrows strings from the
//! mapped bytes and allocates nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use maxminddb::{LookupResult, MaxMindDbError, Reader, WithinOptions};

use super::category::{Anonymizers, Category};
use super::observation::{
    AnonymizerDetail, ConnectionType, LatLon, LocationPrecision, Observation,
};
use super::record::Facts;
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

/// What a file can answer, learned from a sample of its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Has a country.
    pub country: bool,
    /// Has a region or city name.
    pub city: bool,
    /// Has coordinates (what radius rules need).
    pub coordinates: bool,
    /// Has an autonomous system number.
    pub asn: bool,
    /// Has anonymizer flags (Anonymous-IP, Anonymous Plus, Residential Proxy, IPinfo privacy).
    pub anonymous: bool,
    /// Has a connection type (Connection-Type, Enterprise).
    pub connection_type: bool,
}

impl Capabilities {
    fn absorb(&mut self, f: &Facts<'_>, implied: Anonymizers) {
        self.country |= f.country_code().is_some();
        self.city |= f.region.is_some() || f.city.is_some();
        self.coordinates |= f.point().is_some();
        self.asn |= f.asn.is_some();
        self.anonymous |= f.has_anonymizer_fields
            || f.confidence.is_some()
            || (!implied.is_empty() && (f.provider.is_some() || f.last_seen.is_some()));
        self.connection_type |= f.connection_type.is_some();
    }

    /// "country, city, coordinates": what the file answers, for logs and `validate`.
    pub fn describe(&self) -> String {
        let parts: Vec<&str> = [
            (self.country, "country"),
            (self.city, "region/city"),
            (self.coordinates, "coordinates"),
            (self.asn, "ASN"),
            (self.anonymous, "anonymizer flags"),
            (self.connection_type, "connection type"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        parts.join(", ")
    }
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
    caps: Capabilities,
    version: DataVersion,
    /// Categories every record of the file stands for (a Residential Proxy database lists
    /// residential proxies only, and its records carry no flag to say so).
    implied: Anonymizers,
    /// Only IPv4 in the tree: IPv6 clients are not looked up (ip-location-db splits v4 and v6).
    ipv4_only: bool,
    /// Records that could not be decoded at run time (`/metrics`).
    failures: AtomicU64,
    /// When the last decode failure was logged (Unix seconds): one warning a minute at most.
    warned_at: AtomicU64,
}

impl std::fmt::Debug for MmdbFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmdbFile")
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
        let meta = reader.metadata();
        let implied = implied_categories(&meta.database_type);
        let ipv4_only = meta.ip_version == 4;
        // The embedded files were verified when they were built (`data/build.sh`) and by the
        // tests; spread lookups into them at every start would only fault in megabytes of their
        // pages (resident memory) to learn nothing new.
        let spread = !matches!(bytes.0.as_ref(), DbBytes::Static(_));
        let caps = probe(&reader, implied, ipv4_only, spread)
            .map_err(|e| DataError::new(label, format!("cannot be read: {e}")))?;
        if caps == Capabilities::default() {
            return Err(DataError::new(
                label,
                "no record has a field locgate understands (country, city, coordinates, ASN, anonymizer flags or connection type)",
            ));
        }
        let version = DataVersion {
            source: label.to_string(),
            kind: meta.database_type.clone(),
            built_epoch: meta.build_epoch,
        };
        Ok(MmdbFile {
            reader,
            bytes,
            caps,
            version,
            implied,
            ipv4_only,
            failures: AtomicU64::new(0),
            warned_at: AtomicU64::new(0),
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

    /// Name, type and build date, for events and `--version`.
    pub fn version(&self) -> &DataVersion {
        &self.version
    }

    /// Records that could not be decoded since load.
    pub fn decode_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Counts a record that could not be decoded and warns, at most once a minute per file:
    /// a corrupt region of a file that passed its probe must be visible, not a debug line.
    pub fn note_failure(&self, ip: IpAddr, error: &MaxMindDbError) {
        let total = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.warned_at.load(Ordering::Relaxed);
        if now >= last.saturating_add(60)
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                db = %self.version.source, %ip, error = %error, failures_so_far = total,
                "a database record could not be decoded; the lookup used the other sources"
            );
        }
    }

    /// Fills in whatever `obs` is still missing that this file knows about `ip`.
    ///
    /// Anonymizer flags from a record with a confidence score go into
    /// `obs.anonymizer_detail.sole` (see [`super::Intel::observe_uncached`], which settles them);
    /// others straight into `obs.anonymizers`. A record that fails to decode is an error the
    /// caller counts; the other files still answer.
    pub fn fill<'a>(&'a self, ip: IpAddr, obs: &mut Observation<'a>) -> Result<(), MaxMindDbError> {
        // Not even a tree walk when this file cannot add anything: a fallback file (the embedded
        // country database behind the city one) then costs nothing, and its pages are never
        // touched (resident memory). An IPv4-only file has nothing for an IPv6 client.
        if (self.ipv4_only && ip.is_ipv6()) || !self.could_add(obs) {
            return Ok(());
        }
        let result = self.reader.lookup(ip)?;
        if !result.has_data() {
            return Ok(());
        }
        let Some(f) = result.decode::<Facts<'a>>()? else {
            return Ok(());
        };
        if obs.location.is_none() && f.has_place() {
            let point = f
                .point()
                .map(|(lat, lon)| (LatLon { lat, lon }, f.accuracy_km));
            apply_geo(obs, f.country_code(), f.region, f.city, point);
        }
        if obs.asn.is_none() && f.asn.is_some() {
            obs.asn = f.asn;
            obs.as_org = f.as_org.or(f.isp);
        }
        if obs.connection_type.is_none() {
            obs.connection_type = f.connection_type.and_then(ConnectionType::parse);
        }
        let flags = f.anonymizers.union(self.implied);
        let detailed = f.confidence.is_some() || f.provider.is_some() || f.last_seen.is_some();
        if detailed && obs.anonymizer_detail.is_none() && !flags.is_empty() {
            let scored = f.confidence.is_some();
            obs.anonymizer_detail = Some(AnonymizerDetail {
                confidence: f.confidence,
                provider: f.provider,
                last_seen: f.last_seen,
                flags,
                sole: if scored { flags } else { Anonymizers::NONE },
            });
            if !scored {
                obs.anonymizers = obs.anonymizers.union(flags);
            }
        } else {
            obs.anonymizers = obs.anonymizers.union(flags);
        }
        Ok(())
    }
}

impl MmdbFile {
    /// Whether this file can fill anything `obs` still misses (the same conditions as `fill`).
    fn could_add(&self, obs: &Observation<'_>) -> bool {
        let c = &self.caps;
        ((c.country || c.city || c.coordinates) && obs.location.is_none())
            || (c.asn && obs.asn.is_none())
            || (c.connection_type && obs.connection_type.is_none())
            || c.anonymous
    }
}

/// What a database's type says about every record in it.
fn implied_categories(database_type: &str) -> Anonymizers {
    let t = database_type.to_ascii_lowercase();
    let mut a = Anonymizers::NONE;
    if t.contains("residential") && t.contains("proxy") {
        a.insert(Category::ResidentialProxy);
    }
    a
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
        obs.accuracy_km = accuracy.filter(|a| a.is_finite() && *a >= 0.0);
        obs.precision = Some(LocationPrecision::Database);
    }
}

/// Networks read from the start of the tree by the probe.
const PROBE_NETWORKS: usize = 512;

/// Decodes a sample of real records with the request path's decoder: the first networks of the
/// tree, and one address in every /6 of IPv4 and a spread of IPv6, so a file whose records
/// cannot be read is refused at load (naming the network and field) instead of answering nothing
/// at run time. Without `spread`, only the first networks are read (the embedded files).
fn probe(
    reader: &Reader<SharedBytes>,
    implied: Anonymizers,
    ipv4_only: bool,
    spread: bool,
) -> Result<Capabilities, String> {
    let mut caps = Capabilities::default();
    let mut read = |result: LookupResult<'_, SharedBytes>| -> Result<(), String> {
        match result.decode::<Facts<'_>>() {
            Ok(Some(f)) => {
                caps.absorb(&f, implied);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(match result.network() {
                Ok(net) => format!("the record for {net}: {e}"),
                Err(_) => format!("a record: {e}"),
            }),
        }
    };
    let networks = reader
        .networks(WithinOptions::default())
        .map_err(|e| e.to_string())?;
    for item in networks.take(PROBE_NETWORKS) {
        read(item.map_err(|e| format!("its search tree: {e}"))?)?;
    }
    let v4 = (0u32..64).map(|i| IpAddr::V4(Ipv4Addr::from((i << 26) | 0x0001_0101)));
    let v6 = (0u128..64).map(|i| IpAddr::V6(Ipv6Addr::from((0x2000 + (i << 6)) << 112 | 1)));
    for ip in v4.chain(v6.filter(|_| !ipv4_only)).filter(|_| spread) {
        let result = reader
            .lookup(ip)
            .map_err(|e| format!("looking up {ip}: {e}"))?;
        if result.has_data() {
            read(result)?;
        }
    }
    Ok(caps)
}
