//! `[data]`: where the geolocation databases and network lists are, and how old they may get.
//!
//! Nothing here can fail (missing files are the loader's business), so these are plain
//! functions that resolve paths against the config directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::UpdateConfig;
use crate::intel::{DataSources, Freshness, ListCategory};
use crate::values::Dur;

/// File names locgate recognises in `[data] dir`, most specific first. MaxMind's own names come
/// first so a geoipupdate `DatabaseDirectory` works as a data dir unchanged.
const KNOWN_DATABASES: &[&str] = &[
    "GeoIP2-City.mmdb",
    "GeoLite2-City.mmdb",
    "dbip-city-lite.mmdb",
    "city.mmdb",
    "GeoIP2-Country.mmdb",
    "GeoLite2-Country.mmdb",
    "dbip-country-lite.mmdb",
    "country.mmdb",
    "GeoIP2-Anonymous-IP.mmdb",
    "anonymous.mmdb",
    "GeoLite2-ASN.mmdb",
    "GeoIP2-ISP.mmdb",
    "dbip-asn-lite.mmdb",
    "asn.mmdb",
];

/// Age limits from `[data] max_age`, `tor_max_age`, each list's `max_age` and each update
/// source's `max_age`, keyed by the path as data versions name it.
pub(super) fn freshness(data: &RawData, update: Option<&UpdateConfig>, base: &Path) -> Freshness {
    let mut f = Freshness::default();
    if let Some(d) = data.max_age {
        f.geo_max_age = d.0;
    }
    if let Some(d) = data.tor_max_age {
        f.tor_max_age = d.0;
    }
    for l in &data.lists {
        if let Some(d) = l.max_age {
            f.per_source
                .push((base.join(&l.path).display().to_string(), d.0));
        }
    }
    for s in update.map(|u| u.sources.as_slice()).unwrap_or_default() {
        let label = s.path.display().to_string();
        if let Some(d) = s.max_age
            && !f.per_source.iter().any(|(p, _)| *p == label)
        {
            f.per_source.push((label, d));
        }
    }
    // The stale limits of the files a preset installs in `dir`, when not given otherwise (an
    // explicit `[data] max_age` is the operator's limit for every database).
    if let Some(dir) = dir(data, base) {
        let lists = super::preset::list_files().map(|(f, _, d)| (f, d));
        let dbs = super::preset::database_limits().filter(|_| data.max_age.is_none());
        for (file, d) in lists.chain(dbs) {
            let label = dir.join(file).display().to_string();
            if !f.per_source.iter().any(|(p, _)| *p == label) {
                f.per_source.push((label, d));
            }
        }
    }
    f
}

/// `[data] dir` resolved against the config directory.
pub(super) fn dir(data: &RawData, base: &Path) -> Option<PathBuf> {
    data.dir.as_ref().map(|d| base.join(d))
}

/// Paths of `[data]` resolved against the config directory, with the databases found in `dir`.
pub(super) fn resolve(raw: RawData, base: &Path) -> DataSources {
    let mut mmdb: Vec<PathBuf> = [raw.city_db, raw.country_db, raw.anonymous_db, raw.asn_db]
        .into_iter()
        .flatten()
        .map(|p| base.join(p))
        .collect();
    let dir = raw.dir.map(|d| base.join(d));
    if let Some(dir) = &dir {
        for name in KNOWN_DATABASES {
            let path = dir.join(name);
            let same_name = mmdb.iter().any(|p| p.file_name() == path.file_name());
            if path.is_file() && !same_name {
                mmdb.push(path);
            }
        }
    }
    let asn_table = raw.asn_table.map(|p| base.join(p)).or_else(|| {
        dir.as_ref()
            .map(|d| d.join("asn-categories.csv"))
            .filter(|p| p.is_file())
    });
    let mut lists: Vec<(PathBuf, ListCategory)> = raw
        .lists
        .into_iter()
        .map(|l| (base.join(l.path), l.category))
        .collect();
    // The lists a preset installed in `dir` are loaded with their category, as its databases are.
    if let Some(dir) = &dir {
        for (file, category, _) in super::preset::list_files() {
            let path = dir.join(file);
            if path.is_file() && !lists.iter().any(|(p, _)| *p == path) {
                lists.push((path, category));
            }
        }
    }
    DataSources {
        mmdb,
        embedded_mmdb: raw.embedded,
        lists,
        asn_table,
    }
}

/// `[data]` as written; every field optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    dir: Option<PathBuf>,
    country_db: Option<PathBuf>,
    city_db: Option<PathBuf>,
    asn_db: Option<PathBuf>,
    anonymous_db: Option<PathBuf>,
    asn_table: Option<PathBuf>,
    #[serde(default)]
    lists: Vec<RawList>,
    /// The embedded databases fill whatever the configured files do not answer.
    #[serde(default = "yes")]
    embedded: bool,
    /// Databases older than this are reported stale (default 35 days).
    max_age: Option<Dur>,
    /// Tor exit lists older than this are reported stale (default 2 days).
    tor_max_age: Option<Dur>,
}

impl Default for RawData {
    fn default() -> Self {
        RawData {
            dir: None,
            country_db: None,
            city_db: None,
            asn_db: None,
            anonymous_db: None,
            asn_table: None,
            lists: Vec::new(),
            embedded: true,
            max_age: None,
            tor_max_age: None,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    path: PathBuf,
    category: ListCategory,
    /// Reported stale past this age.
    max_age: Option<Dur>,
}
