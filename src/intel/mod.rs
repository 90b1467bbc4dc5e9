//! Intelligence about an address: where it is, whose network it is, and whether it hides someone.
//!
//! Everything is loaded up front ([`Intel::load`]); [`Intel::observe`] is then a pure, allocation-
//! free function of the address, so the request path never touches disk and the decision logic
//! can be unit-tested against databases the tests build themselves.

pub mod asn_csv;
pub mod asn_table;
mod cache;
pub mod category;
pub mod cidr_list;
pub mod embedded;
pub mod freshness;
pub mod mmdb;
pub mod network_kind;
pub mod observation;
pub mod record;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

pub use asn_table::AsnTable;
pub use category::{Anonymizers, Category, ListCategory};
pub use cidr_list::CidrLists;
pub use freshness::{Freshness, StaleSource};
pub use mmdb::{Capabilities, DbBytes, MmdbFile};
pub use network_kind::{NetworkKind, NetworkKinds};
pub use observation::{AnonymizerDetail, ConnectionType, LatLon, LocationPrecision, Observation};

use crate::client_addr::normalize;
use crate::country;

/// A data file that could not be used, and why. Shown to operators at start and on reload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {reason}")]
pub struct DataError {
    /// The file (or `file:line`).
    pub source_name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl DataError {
    /// A new error about `source`.
    pub fn new(source: &str, reason: impl Into<String>) -> Self {
        DataError {
            source_name: source.to_string(),
            reason: reason.into(),
        }
    }
}

/// Which data answered, so every event says what it was decided on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DataVersion {
    /// File name (or `embedded:<name>`).
    pub source: String,
    /// Database type from the mmdb metadata, or `list:<category>`, or `asn-table`.
    pub kind: String,
    /// Build time (mmdb metadata) or modification time (lists), Unix seconds.
    pub built_epoch: u64,
}

impl DataVersion {
    /// The build date as `YYYY-MM-DD`.
    pub fn built_date(&self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.built_epoch as i64)
            .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
            .unwrap_or_else(|_| "unknown".into())
    }
}

/// Where to load data from, resolved from the `[data]` config section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataSources {
    /// mmdb files, most specific first (city before country); each is probed for what it knows.
    pub mmdb: Vec<PathBuf>,
    /// Use the embedded country and ASN databases after the files above.
    pub embedded_mmdb: bool,
    /// CIDR lists with their category.
    pub lists: Vec<(PathBuf, ListCategory)>,
    /// Corrections to the embedded hosting/VPN ASN table.
    pub asn_table: Option<PathBuf>,
    /// Corrections to the embedded network-kind table.
    pub network_kinds: Option<PathBuf>,
}

/// Reads an operator's CSV table, naming the file and line of a mistake; dated by the file.
fn read_table<T>(
    path: &Path,
    kind: &str,
    parse: impl Fn(&str) -> Result<T, (usize, String)>,
) -> Result<(T, DataVersion), DataError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| DataError::new(&label, format!("cannot read: {e}")))?;
    let table = parse(&text).map_err(|(l, m)| DataError::new(&format!("{label}:{l}"), m))?;
    let built_epoch = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok((
        table,
        DataVersion {
            source: label,
            kind: kind.into(),
            built_epoch,
        },
    ))
}

/// All loaded data, immutable once built; swapped whole on reload.
#[derive(Debug)]
pub struct Intel {
    dbs: Vec<MmdbFile>,
    cache: cache::ObservationCache,
    lists: CidrLists,
    asn_table: AsnTable,
    kinds: NetworkKinds,
    versions: Vec<DataVersion>,
    /// `versions` as every event shows them, made once: an event shares them rather than
    /// formatting dates and copying names per decision.
    shown: Arc<[DataShown]>,
}

/// One data source as an event shows it (`locgate.data`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DataShown {
    /// File.
    pub source: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Build date.
    pub built: String,
}

impl From<&DataVersion> for DataShown {
    fn from(v: &DataVersion) -> Self {
        DataShown {
            source: v.source.clone(),
            kind: v.kind.clone(),
            built: v.built_date(),
        }
    }
}

/// What events show of `versions`.
fn shown(versions: &[DataVersion]) -> Arc<[DataShown]> {
    versions.iter().map(DataShown::from).collect()
}

impl Intel {
    /// Loads and checks every source. The first problem found is returned, naming its file.
    pub fn load(sources: &DataSources) -> Result<Self, DataError> {
        let mut dbs = Vec::new();
        for path in &sources.mmdb {
            dbs.push(MmdbFile::open(path)?);
        }
        if sources.embedded_mmdb {
            dbs.extend(embedded::databases()?);
        }
        if !dbs.iter().any(|d| d.capabilities().country) {
            return Err(DataError::new(
                "[data]",
                "no database answers countries: configure country_db or city_db, or keep the embedded data",
            ));
        }
        let lists = CidrLists::load(&sources.lists)?;
        let (mut asn_table, asn_version) = embedded::asn_table()?;
        let mut versions: Vec<DataVersion> = dbs.iter().map(|d| d.version().clone()).collect();
        versions.extend(lists.versions().iter().cloned());
        versions.push(asn_version);
        // The operator's tables correct the embedded ones (see `asn_table`, `network_kind`).
        if let Some(path) = &sources.asn_table {
            let (table, version) = read_table(path, "asn-table", AsnTable::parse)?;
            asn_table = asn_table.overlay(table);
            versions.push(version);
        }
        let mut kinds = embedded::network_kinds()?;
        if let Some(path) = &sources.network_kinds {
            let (table, version) = read_table(path, "network-kinds", NetworkKinds::parse)?;
            kinds = kinds.overlay(table);
            versions.push(version);
        }
        Ok(Intel {
            dbs,
            cache: cache::ObservationCache::default(),
            lists,
            asn_table,
            kinds,
            shown: shown(&versions),
            versions,
        })
    }

    /// The embedded default data alone.
    pub fn embedded() -> Result<Self, DataError> {
        Self::load(&DataSources {
            embedded_mmdb: true,
            ..DataSources::default()
        })
    }

    /// Builds from databases already opened (tests and benches).
    pub fn from_parts(dbs: Vec<MmdbFile>, lists: CidrLists, asn_table: AsnTable) -> Self {
        let mut versions: Vec<DataVersion> = dbs.iter().map(|d| d.version().clone()).collect();
        versions.extend(lists.versions().iter().cloned());
        Intel {
            dbs,
            cache: cache::ObservationCache::default(),
            lists,
            asn_table,
            kinds: embedded::network_kinds().unwrap_or_default(),
            shown: shown(&versions),
            versions,
        }
    }

    /// What the data says about `ip`.
    pub fn observe(&self, ip: IpAddr) -> Observation<'_> {
        let ip = normalize(ip);
        let mut sources: [&[u8]; 8] = [&[]; 8];
        for (slot, db) in sources.iter_mut().zip(&self.dbs) {
            *slot = db.bytes();
        }
        let sources = &sources[..self.dbs.len().min(8)];
        if let Some(obs) = self.cache.get(ip, sources) {
            return obs;
        }
        let obs = self.observe_uncached(ip);
        self.cache.put(&obs, sources);
        obs
    }

    /// What the data says about `ip`, looked up afresh.
    pub fn observe_uncached(&self, ip: IpAddr) -> Observation<'_> {
        let ip = normalize(ip);
        let mut obs = Observation::empty(ip);
        for db in &self.dbs {
            if let Err(e) = db.fill(ip, &mut obs) {
                db.note_failure(ip, &e);
            }
        }
        if let Some(cc) = obs.country
            && let Some(info) = country::table().get(cc)
        {
            obs.country_name = Some(info.name.as_str());
            if obs.location.is_none() {
                obs.location = Some(LatLon {
                    lat: info.lat,
                    lon: info.lon,
                });
                obs.accuracy_km = Some(info.radius_km);
                obs.precision = Some(LocationPrecision::Country);
            }
        }
        let flags = self.lists.lookup(ip);
        obs.anonymizers = obs.anonymizers.union(flags.anonymizers);
        obs.trusted_network = flags.trusted;
        if let Some(asn) = obs.asn
            && let Some((category, _)) = self.asn_table.get(asn)
        {
            obs.anonymizers.insert(category);
        }
        // A gateway-located network: its point is not the person's (see `network_kind`).
        obs.network_kind = self
            .kinds
            .get(ip, obs.asn)
            .or_else(|| obs.connection_type.and_then(NetworkKind::from_connection));
        if let Some(kind) = obs.network_kind {
            obs.accuracy_km = Some(obs.accuracy_km.unwrap_or(0.0).max(kind.typical_error_km()));
        }
        // Scored flags count like any other, but the ones no other source agrees with are
        // remembered as `sole`: a policy minimum confidence applies to those only.
        if let Some(detail) = &mut obs.anonymizer_detail {
            let scored = detail.sole;
            detail.sole = scored.difference(obs.anonymizers);
            obs.anonymizers = obs.anonymizers.union(scored);
        }
        obs
    }

    /// What the loaded databases answer together.
    pub fn capabilities(&self) -> Capabilities {
        self.dbs
            .iter()
            .fold(Capabilities::default(), |mut all, db| {
                let c = db.capabilities();
                all.country |= c.country;
                all.city |= c.city;
                all.coordinates |= c.coordinates;
                all.asn |= c.asn;
                all.anonymous |= c.anonymous;
                all.connection_type |= c.connection_type;
                all
            })
    }

    /// Every database with what it answers, for `validate` and the start-up log.
    pub fn databases(&self) -> impl Iterator<Item = (&DataVersion, Capabilities)> {
        self.dbs.iter().map(|d| (d.version(), d.capabilities()))
    }

    /// Records that could not be decoded since load, per database (`/metrics`).
    pub fn decode_failures(&self) -> impl Iterator<Item = (&str, u64)> {
        self.dbs
            .iter()
            .map(|d| (d.version().source.as_str(), d.decode_failures()))
    }

    /// Versions of every source, for events and `--version`.
    pub fn versions(&self) -> &[DataVersion] {
        &self.versions
    }

    /// The sources as events show them (shared, made at load).
    pub fn shown(&self) -> &Arc<[DataShown]> {
        &self.shown
    }

    /// The ASN table (for explanations).
    pub fn asn_table(&self) -> &AsnTable {
        &self.asn_table
    }
}
