//! `[data]`: where the geolocation databases and network lists are, and how old they may get.
//!
//! Parsing cannot fail here, but a configured file or directory that does not exist is returned
//! as a located error beside the sources: `validate`, `run` and a reload refuse it (a mistyped
//! `dir` must not leave the gateway silently on the embedded data), while `locgate update`,
//! whose job is to fill that directory, does not. One exception: a `dir` that `[update]` installs
//! into may be missing (a fresh host before its first update, a checkout validating the example
//! config); it counts as the empty directory it will be, said in a note (`validate`, the log),
//! and a typo cannot hide there, because the updater writes to the same path the gateway reads.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ErrAt, UpdateConfig};
use crate::intel::{DataSources, Freshness, ListCategory};
use crate::values::ConfigError;
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
                .push((base.join(l.path.get_ref()).display().to_string(), d.0));
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
    data.dir.as_ref().map(|d| base.join(d.get_ref()))
}

/// What [`resolve`] found: the sources, an error for each configured path that does not
/// exist, and notes (a missing `dir` that `[update]` fills).
pub(super) struct Resolved {
    pub sources: DataSources,
    pub missing: Vec<ConfigError>,
    pub notes: Vec<String>,
}

/// Paths of `[data]` resolved against the config directory, with the databases found in `dir`
/// (see the module comment; `update` is the checked `[update]`, whose sources may fill `dir`).
pub(super) fn resolve(
    raw: RawData,
    base: &Path,
    update: Option<&UpdateConfig>,
    err: ErrAt<'_>,
) -> Resolved {
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    let mut mmdb: Vec<PathBuf> = Vec::new();
    for key in [raw.city_db, raw.country_db, raw.anonymous_db, raw.asn_db]
        .into_iter()
        .flatten()
    {
        let span = key.span();
        for p in key.into_inner().into_vec() {
            let path = base.join(p);
            if !path.is_file() {
                missing.push(err(span.clone(), not_found(&path, "database file")));
            }
            mmdb.push(path);
        }
    }
    let dir = raw.dir.and_then(|d| {
        let path = base.join(d.get_ref());
        let filled = update.is_some_and(|u| u.sources.iter().any(|s| s.path.parent() == Some(&path)));
        if path.is_dir() {
            Some(path)
        } else if filled && !path.exists() {
            notes.push(format!(
                "[data] dir {} does not exist yet: `locgate update` creates and fills it; until then the embedded data decides",
                path.display()
            ));
            None
        } else {
            missing.push(err(d.span(), not_found(&path, "directory")));
            None
        }
    });
    if let Some(dir) = &dir {
        for name in KNOWN_DATABASES {
            let path = dir.join(name);
            let same_name = mmdb.iter().any(|p| p.file_name() == path.file_name());
            if path.is_file() && !same_name {
                mmdb.push(path);
            }
        }
    }
    // Corrections to the embedded tables: the configured file, or the one found in `dir`.
    let table = |configured: Option<PathBuf>, name: &str| {
        configured
            .map(|p| base.join(p))
            .or_else(|| dir.as_ref().map(|d| d.join(name)).filter(|p| p.is_file()))
    };
    let asn_table = table(raw.asn_table, "asn-categories.csv");
    let network_kinds = table(raw.network_kinds, "network-kinds.csv");
    let mut lists: Vec<(PathBuf, ListCategory)> = raw
        .lists
        .into_iter()
        .map(|l| {
            let path = base.join(l.path.get_ref());
            if !path.is_file() {
                missing.push(err(l.path.span(), not_found(&path, "list file")));
            }
            (path, l.category)
        })
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
    let sources = DataSources {
        mmdb,
        embedded_mmdb: raw.embedded,
        lists,
        asn_table,
        network_kinds,
    };
    Resolved {
        sources,
        missing,
        notes,
    }
}

fn not_found(path: &Path, what: &str) -> String {
    match std::fs::metadata(path) {
        Ok(_) => format!("{} is not a {what}", path.display()),
        Err(e) => format!(
            "{what} {} cannot be used: {e}; locgate would otherwise run blind on the embedded data",
            path.display()
        ),
    }
}

/// One path or a list of them (`city_db = ["v4.mmdb", "v6.mmdb"]`: ip-location-db ships IPv4
/// and IPv6 as two files).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Paths {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl Paths {
    fn into_vec(self) -> Vec<PathBuf> {
        match self {
            Paths::One(p) => vec![p],
            Paths::Many(v) => v,
        }
    }
}

/// `[data]` as written; every field optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    dir: Option<Spanned<PathBuf>>,
    country_db: Option<Spanned<Paths>>,
    city_db: Option<Spanned<Paths>>,
    asn_db: Option<Spanned<Paths>>,
    anonymous_db: Option<Spanned<Paths>>,
    asn_table: Option<PathBuf>,
    network_kinds: Option<PathBuf>,
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
            network_kinds: None,
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
    path: Spanned<PathBuf>,
    category: ListCategory,
    /// Reported stale past this age.
    max_age: Option<Dur>,
}
