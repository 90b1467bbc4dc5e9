//! `[update]`: where `locgate update` (and the in-process schedule) fetches data from.
//!
//! Kept apart from the rest of the config model so the updater's settings can grow without
//! touching the listener and policy parsing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::preset;
use crate::intel::{Category, ListCategory};
use crate::values::Dur;

/// What a source's bytes are, and so how they are parsed and checked before installing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A MaxMind-format database, plain or gzip-compressed.
    Mmdb,
    /// A CIDR list: one network or address per line, `#` comments (X4BNet, the Tor bulk list).
    List,
    /// AWS `ip-ranges.json`.
    Aws,
    /// Google Cloud `cloud.json`.
    Gcp,
    /// Oracle Cloud `public_ip_ranges.json`: `regions[].cidrs[].cidr`.
    Oracle,
    /// Azure Service Tags JSON (`ServiceTags_Public_*.json`): `values[].properties.addressPrefixes`.
    /// Not in the preset: Microsoft moves the file to a new URL every week.
    Azure,
    /// An RFC 8805 geofeed (CSV, the network in the first column): DigitalOcean, Linode.
    Geofeed,
}

/// One `[[update.source]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateSource {
    /// Name in progress lines and errors.
    pub name: String,
    /// Where to fetch from (`http://` or `https://`).
    pub url: String,
    /// How to parse it.
    pub kind: SourceKind,
    /// Category written into the list's header comment (lists only; informational: the
    /// category that counts is the one `[data] lists` gives the file).
    pub category: Option<ListCategory>,
    /// Where it is installed (resolved against the config's directory).
    pub path: PathBuf,
    /// Age past which the installed file is reported stale.
    pub max_age: Option<Duration>,
    /// Largest share by which a list may shrink from the installed one before it is refused.
    pub max_shrink: f64,
    /// The licence the data comes under: `Some` exactly for a preset's sources, `None` for the
    /// operator's own.
    pub licence: Option<String>,
    /// Credit the licence requires wherever the data is used, if any.
    pub attribution: Option<String>,
}

/// `[update]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateConfig {
    /// A geoipupdate `GeoIP.conf` naming MaxMind editions to fetch.
    pub geoip_conf: Option<PathBuf>,
    /// Run the update in-process this often (and reload after it); `None`: only `locgate update`.
    pub schedule: Option<Duration>,
    /// Plain-URL sources.
    pub sources: Vec<UpdateSource>,
    /// Time allowed for one download, start to finish.
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpdate {
    geoip_conf: Option<PathBuf>,
    schedule: Option<Spanned<Dur>>,
    #[serde(default)]
    source: Vec<RawSource>,
    timeout: Option<Dur>,
    /// A built-in set of key-less sources (`free`), installed into `[data] dir`.
    preset: Option<Spanned<String>>,
    /// Base URL of a mirror serving the preset's files as `/<host>/<path>`.
    preset_mirror: Option<Spanned<String>>,
    /// Default for every source's `max_shrink`.
    max_shrink: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Spanned<String>,
    url: Spanned<String>,
    kind: Spanned<SourceKind>,
    category: Option<ListCategory>,
    path: Spanned<PathBuf>,
    max_age: Option<Dur>,
    max_shrink: Option<Spanned<f64>>,
}

/// Default time allowed for one download.
pub const DEFAULT_UPDATE_TIMEOUT: Duration = Duration::from_secs(300);

/// Default `max_shrink`: a list that loses more than half its networks at once is more likely a
/// broken download than a real change.
pub const DEFAULT_MAX_SHRINK: f64 = 0.5;

fn share(v: &Spanned<f64>) -> Result<f64, (std::ops::Range<usize>, String)> {
    let x = *v.get_ref();
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err((
            v.span(),
            "max_shrink must be a share between 0.0 and 1.0".into(),
        ))
    }
}

/// The category a source's list is written with: lists must name one, mmdb sources must not, and
/// cloud ranges are hosting providers unless told otherwise.
fn category(
    kind: &Spanned<SourceKind>,
    given: Option<ListCategory>,
) -> Result<Option<ListCategory>, (std::ops::Range<usize>, String)> {
    match (*kind.get_ref(), given) {
        (SourceKind::Mmdb, Some(_)) => Err((
            kind.span(),
            "category applies to lists, not to mmdb sources".into(),
        )),
        (SourceKind::Mmdb, None) => Ok(None),
        (SourceKind::List, None) => Err((
            kind.span(),
            "a list source needs a category (e.g. tor_exit, anonymous_vpn)".into(),
        )),
        (
            SourceKind::Aws
            | SourceKind::Gcp
            | SourceKind::Oracle
            | SourceKind::Azure
            | SourceKind::Geofeed,
            None,
        ) => Ok(Some(ListCategory::Anonymizer(Category::HostingProvider))),
        (_, Some(c)) => Ok(Some(c)),
    }
}

/// Whether `url` is an `http://` or `https://` URL (a monthly placeholder taken as a month).
fn is_http_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && reqwest::Url::parse(&preset::for_month(url, 2000, 1)).is_ok()
}

/// The sources of preset `name` installed into `dir`, fetched from `mirror` when given; `None`
/// for an unknown name.
pub fn preset_sources(
    name: &str,
    dir: &Path,
    mirror: Option<&str>,
    max_shrink: f64,
) -> Option<Vec<UpdateSource>> {
    let table = preset::named(name)?;
    Some(
        table
            .iter()
            .map(|p| UpdateSource {
                name: p.name.to_string(),
                url: mirror.map_or_else(|| p.url.to_string(), |m| preset::mirrored(p.url, m)),
                kind: p.kind,
                category: p.category,
                path: dir.join(p.file),
                // A database's limit comes from `[data]` (see `data::freshness`), so that an
                // explicit `[data] max_age` stays the limit of every database.
                max_age: p.category.map(|_| p.max_age()),
                max_shrink,
                licence: Some(p.licence.to_string()),
                attribution: p.attribution.map(str::to_string),
            })
            .collect(),
    )
}

/// The preset's sources with the operator's added: one of the same name, or writing the same
/// file, replaces the preset's.
pub fn merge_sources(preset: Vec<UpdateSource>, own: Vec<UpdateSource>) -> Vec<UpdateSource> {
    let mut out: Vec<UpdateSource> = preset
        .into_iter()
        .filter(|p| !own.iter().any(|o| o.name == p.name || o.path == p.path))
        .collect();
    out.extend(own);
    out
}

impl RawUpdate {
    /// Checks the section; errors are a span and a message for `ConfigError::at_span`.
    /// `data_dir` is `[data] dir`, where a preset installs its files.
    pub(super) fn resolve(
        self,
        base: &Path,
        data_dir: Option<&Path>,
    ) -> Result<UpdateConfig, (std::ops::Range<usize>, String)> {
        let default_shrink = match &self.max_shrink {
            Some(v) => share(v)?,
            None => DEFAULT_MAX_SHRINK,
        };
        if let Some(d) = &self.schedule
            && d.get_ref().0.is_zero()
        {
            return Err((d.span(), "schedule must be longer than 0s".into()));
        }
        let mut sources: Vec<UpdateSource> = Vec::new();
        for s in self.source {
            let name = s.name.get_ref();
            if name.is_empty() {
                return Err((s.name.span(), "source name is empty".into()));
            }
            if sources.iter().any(|x| x.name == *name) {
                return Err((s.name.span(), format!("source name `{name}` is used twice")));
            }
            let url = s.url.get_ref();
            if !is_http_url(url) {
                return Err((
                    s.url.span(),
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
            let path = base.join(s.path.get_ref());
            if path.file_name().is_none() {
                return Err((s.path.span(), "path must name a file".into()));
            }
            if sources.iter().any(|x| x.path == path) {
                return Err((
                    s.path.span(),
                    format!("{} is written by two sources", path.display()),
                ));
            }
            let kind = *s.kind.get_ref();
            let category = category(&s.kind, s.category)?;
            let max_shrink = match &s.max_shrink {
                Some(v) => share(v)?,
                None => default_shrink,
            };
            sources.push(UpdateSource {
                name: name.clone(),
                url: url.clone(),
                kind,
                category,
                path,
                max_age: s.max_age.map(|d| d.0),
                max_shrink,
                licence: None,
                attribution: None,
            });
        }
        if let Some(m) = &self.preset_mirror
            && !is_http_url(m.get_ref())
        {
            return Err((
                m.span(),
                format!("`{}` is not an http:// or https:// URL", m.get_ref()),
            ));
        }
        if let Some(p) = &self.preset {
            let Some(dir) = data_dir else {
                return Err((
                    p.span(),
                    "a preset installs its files into [data] dir: set `dir` in [data]".into(),
                ));
            };
            let mirror = self.preset_mirror.as_ref().map(|m| m.get_ref().as_str());
            let Some(preset) = preset_sources(p.get_ref(), dir, mirror, default_shrink) else {
                return Err((
                    p.span(),
                    format!(
                        "unknown preset `{}` (known: {})",
                        p.get_ref(),
                        preset::NAMES.join(", ")
                    ),
                ));
            };
            sources = merge_sources(preset, sources);
        }
        Ok(UpdateConfig {
            geoip_conf: self.geoip_conf.map(|p| base.join(p)),
            schedule: self.schedule.map(|d| d.into_inner().0),
            sources,
            timeout: self.timeout.map_or(DEFAULT_UPDATE_TIMEOUT, |d| d.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{Config, SourceKind};
    use crate::intel::{Category, ListCategory};

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "t.toml", Path::new("/etc/locgate")).map_err(|e| e.to_string())
    }

    const TOR: &str = "[[update.source]]\nname = \"tor\"\nurl = \"https://example.org/torbulkexitlist\"\nkind = \"list\"\ncategory = \"tor_exit\"\npath = \"tor.txt\"\nmax_age = \"1d\"\n";

    #[test]
    fn sources_resolve_paths_categories_and_age_limits() {
        let c = parse(&format!(
            "[data]\nmax_age = \"20d\"\nlists = [{{ path = \"tor.txt\", category = \"tor_exit\" }}, {{ path = \"vpn.txt\", category = \"vpn\", max_age = \"7d\" }}]\n[update]\ngeoip_conf = \"GeoIP.conf\"\nschedule = \"12h\"\n{TOR}[[update.source]]\nname = \"aws\"\nurl = \"https://example.org/ip-ranges.json\"\nkind = \"aws\"\npath = \"/var/lib/locgate/aws.txt\"\nmax_shrink = 0.2\n"
        ))
        .unwrap();
        let u = c.update.unwrap();
        assert_eq!(
            u.geoip_conf.as_deref(),
            Some(Path::new("/etc/locgate/GeoIP.conf"))
        );
        assert_eq!(u.schedule, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(u.sources[0].path, Path::new("/etc/locgate/tor.txt"));
        assert_eq!(u.sources[0].kind, SourceKind::List);
        assert_eq!(u.sources[0].max_shrink, super::DEFAULT_MAX_SHRINK);
        assert_eq!(
            u.sources[1].category,
            Some(ListCategory::Anonymizer(Category::HostingProvider))
        );
        assert_eq!(u.sources[1].max_shrink, 0.2);
        let f = c.freshness;
        assert_eq!(f.geo_max_age, Duration::from_secs(20 * 86_400));
        assert!(f.per_source.contains(&(
            "/etc/locgate/vpn.txt".into(),
            Duration::from_secs(7 * 86_400)
        )));
        assert!(
            f.per_source
                .contains(&("/etc/locgate/tor.txt".into(), Duration::from_secs(86_400)))
        );
    }

    #[test]
    fn mistakes_name_line_and_field() {
        let e = parse(&TOR.replace("kind = \"list\"", "kind = \"zip\"")).unwrap_err();
        assert!(e.starts_with("t.toml:4: update.source[0].kind:"), "{e}");
        let e = parse(&TOR.replace("https://example.org", "ftp://example.org")).unwrap_err();
        assert!(
            e.starts_with("t.toml:3: update.source[0].url:") && e.contains("http"),
            "{e}"
        );
        let e = parse(&TOR.replace("category = \"tor_exit\"\n", "")).unwrap_err();
        assert!(e.contains("needs a category"), "{e}");
        let e = parse(&format!("{TOR}{TOR}")).unwrap_err();
        assert!(e.contains("`tor` is used twice"), "{e}");
        let e = parse("[update]\nschedule = \"0s\"\n").unwrap_err();
        assert!(e.contains("longer than 0s"), "{e}");
        let e = parse(&format!("{TOR}max_shrink = 1.5\n")).unwrap_err();
        assert!(e.contains("between 0.0 and 1.0"), "{e}");
    }

    #[test]
    fn preset_expands_into_the_data_dir_with_own_sources_winning() {
        let c = parse(&format!(
            "[data]\ndir = \"/var/lib/locgate\"\n[update]\npreset = \"free\"\npreset_mirror = \"http://mirror.internal/locgate\"\nmax_shrink = 0.3\n{TOR}[[update.source]]\nname = \"aws\"\nurl = \"https://example.org/aws.json\"\nkind = \"aws\"\npath = \"/srv/aws.txt\"\n"
        ))
        .unwrap();
        let u = c.update.unwrap();
        let free = crate::config::preset::FREE;
        // The preset's, minus `aws` replaced by name, plus the two own ones.
        assert_eq!(u.sources.len(), free.len() + 1);
        let city = u
            .sources
            .iter()
            .find(|s| s.name == "dbip-city-lite")
            .unwrap();
        assert_eq!(city.path, Path::new("/var/lib/locgate/dbip-city-lite.mmdb"));
        assert_eq!(
            city.url,
            "http://mirror.internal/locgate/download.db-ip.com/free/dbip-city-lite-{month}.mmdb.gz"
        );
        assert_eq!(city.max_age, None, "databases get their limit from [data]");
        assert!(city.attribution.as_deref().unwrap().contains("DB-IP"));
        let vpn = u
            .sources
            .iter()
            .find(|s| s.name == "x4bnet-vpn-v4")
            .unwrap();
        assert_eq!(
            vpn.category,
            Some(ListCategory::Anonymizer(Category::AnonymousVpn))
        );
        assert_eq!(vpn.max_shrink, 0.3);
        assert!(vpn.licence.as_deref().unwrap().starts_with("MIT"));
        let aws = u.sources.iter().find(|s| s.name == "aws").unwrap();
        assert_eq!(aws.url, "https://example.org/aws.json");
        assert_eq!(aws.licence, None);
        assert_eq!(
            u.sources.iter().filter(|s| s.name == "tor").count(),
            1,
            "an own source of another name is added"
        );
        // `[data] dir` knows the limits of the preset's files.
        let f = &c.freshness.per_source;
        assert!(f.contains(&(
            "/var/lib/locgate/tor-exits.txt".into(),
            Duration::from_secs(2 * 86_400)
        )));
        assert!(f.contains(&(
            "/var/lib/locgate/dbip-city-lite.mmdb".into(),
            Duration::from_secs(40 * 86_400)
        )));
        // An explicit `[data] max_age` is the limit of every database, the preset's included.
        let c = parse("[data]\ndir = \"/d\"\nmax_age = \"20d\"\n[update]\npreset = \"free\"\n")
            .unwrap();
        assert!(
            !c.freshness
                .per_source
                .iter()
                .any(|(p, _)| p.ends_with(".mmdb")),
            "{:?}",
            c.freshness.per_source
        );
        assert_eq!(c.freshness.geo_max_age, Duration::from_secs(20 * 86_400));
    }

    #[test]
    fn preset_mistakes_name_line_and_field() {
        let e = parse("[update]\npreset = \"free\"\n").unwrap_err();
        assert!(
            e.starts_with("t.toml:2: update.preset:") && e.contains("[data] dir"),
            "{e}"
        );
        let e = parse("[data]\ndir = \"d\"\n[update]\npreset = \"all\"\n").unwrap_err();
        assert!(e.contains("unknown preset `all` (known: free)"), "{e}");
        let e = parse(
            "[data]\ndir = \"d\"\n[update]\npreset = \"free\"\npreset_mirror = \"ftp://x\"\n",
        )
        .unwrap_err();
        assert!(e.starts_with("t.toml:5: update.preset_mirror:"), "{e}");
        // A monthly placeholder is a valid URL part for an own source too.
        assert!(parse("[[update.source]]\nname = \"m\"\nurl = \"https://example.org/db-{month}.mmdb.gz\"\nkind = \"mmdb\"\npath = \"m.mmdb\"\n").is_ok());
    }

    #[test]
    fn new_kinds_default_to_hosting_provider() {
        for kind in ["oracle", "azure", "geofeed"] {
            let c = parse(&format!("[[update.source]]\nname = \"x\"\nurl = \"https://example.org/x\"\nkind = \"{kind}\"\npath = \"x.txt\"\n")).unwrap();
            assert_eq!(
                c.update.unwrap().sources[0].category,
                Some(ListCategory::Anonymizer(Category::HostingProvider)),
                "{kind}"
            );
        }
    }
}
