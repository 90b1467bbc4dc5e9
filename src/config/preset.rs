//! Built-in sets of key-less data sources (`[update] preset = "free"`, `locgate update --preset`).
//!
//! A gateway without a MaxMind account should still get fresh data with one line of config: the
//! preset is a fixed, versioned table of public sources, each with the file it is installed as in
//! `[data] dir`, the list category the loader gives it there, its licence and its stale limit.
//! The table lives in the config layer (not in `update/`) because both sides read it: the
//! updater expands it into `[[update.source]]` entries, and `[data] dir` picks up the files it
//! installs ([`list_files`]) with no more configuration.
//!
//! Change the table only together with [`FREE_VERSION`], the README's table and the fixtures of
//! `tests/update_preset.rs`.

use std::time::Duration;

use super::SourceKind;
use crate::intel::{Category, ListCategory};

/// Placeholder in a source URL for the year and month (`2026-12`): DB-IP names its monthly files
/// by it. The updater tries the current month, then the previous one when the current file is
/// not published yet (404).
pub const MONTH: &str = "{month}";

/// Version of the `free` table, printed by `locgate update --list`; raised on every change of a
/// URL, file name, category or limit, so operators can tell which table a binary carries.
pub const FREE_VERSION: u32 = 1;

/// Preset names `[update] preset` accepts.
pub const NAMES: &[&str] = &["free"];

/// One source of a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetSource {
    /// Name in progress lines and errors; an `[[update.source]]` of the same name replaces it.
    pub name: &'static str,
    /// Where it is published (may contain [`MONTH`]).
    pub url: &'static str,
    /// Its format.
    pub kind: SourceKind,
    /// File name in `[data] dir`.
    pub file: &'static str,
    /// Category of a list (`None` for databases).
    pub category: Option<ListCategory>,
    /// Licence the publisher states (or the absence of one, said plainly).
    pub licence: &'static str,
    /// Credit the licence requires wherever the data is used or shown, if any.
    pub attribution: Option<&'static str>,
    /// Reported stale past this many days (file age: the database's build date, or the time the
    /// publisher last changed a list, since an unchanged list is not rewritten).
    pub max_age_days: u64,
}

impl PresetSource {
    /// The stale limit as a duration.
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_days * 86_400)
    }

    /// The category's config name, or `-` for a database.
    pub fn category_name(&self) -> &'static str {
        match self.category {
            Some(ListCategory::Anonymizer(c)) => c.as_str(),
            Some(ListCategory::Trusted) => "trusted",
            None => "-",
        }
    }
}

const HOSTING: Option<ListCategory> = Some(ListCategory::Anonymizer(Category::HostingProvider));
const VPN: Option<ListCategory> = Some(ListCategory::Anonymizer(Category::AnonymousVpn));
const TOR: Option<ListCategory> = Some(ListCategory::Anonymizer(Category::TorExit));

const DBIP_LICENCE: &str = "CC BY 4.0 (DB-IP Lite)";
/// The credit DB-IP's licence requires on any page or product that uses the Lite databases.
pub const DBIP_ATTRIBUTION: &str = "IP Geolocation by DB-IP (https://db-ip.com)";
const X4B_LICENCE: &str = "MIT (X4BNet lists_vpn, (c) 2024 X4B, Mathew Heard)";
const NO_LICENCE: &str = "no licence stated; published openly by the provider for firewall rules";

/// `free`, version [`FREE_VERSION`]: every source needs no account or key.
///
/// Azure is missing on purpose: its Service Tags JSON moves to a new URL every week, behind a
/// download page, and Microsoft offers no stable key-less URL; the `azure` kind reads that JSON
/// from a URL the operator gives.
pub const FREE: &[PresetSource] = &[
    PresetSource {
        name: "dbip-city-lite",
        url: "https://download.db-ip.com/free/dbip-city-lite-{month}.mmdb.gz",
        kind: SourceKind::Mmdb,
        file: "dbip-city-lite.mmdb",
        category: None,
        licence: DBIP_LICENCE,
        attribution: Some(DBIP_ATTRIBUTION),
        // Published monthly; 40 days leaves a week for the next month's file to appear.
        max_age_days: 40,
    },
    PresetSource {
        name: "dbip-asn-lite",
        url: "https://download.db-ip.com/free/dbip-asn-lite-{month}.mmdb.gz",
        kind: SourceKind::Mmdb,
        file: "dbip-asn-lite.mmdb",
        category: None,
        licence: DBIP_LICENCE,
        attribution: Some(DBIP_ATTRIBUTION),
        max_age_days: 40,
    },
    PresetSource {
        name: "tor-exits",
        url: "https://check.torproject.org/torbulkexitlist",
        kind: SourceKind::List,
        file: "tor-exits.txt",
        category: TOR,
        licence: "no licence stated; published by the Tor Project for anyone to check exits",
        attribution: None,
        // Exits change within hours.
        max_age_days: 2,
    },
    PresetSource {
        name: "x4bnet-vpn-v4",
        url: "https://raw.githubusercontent.com/X4BNet/lists_vpn/main/output/vpn/ipv4.txt",
        kind: SourceKind::List,
        file: "x4bnet-vpn-v4.txt",
        category: VPN,
        licence: X4B_LICENCE,
        attribution: None,
        // Rebuilt by CI several times a week.
        max_age_days: 14,
    },
    PresetSource {
        name: "x4bnet-vpn-v6",
        url: "https://raw.githubusercontent.com/X4BNet/lists_vpn/main/output/vpn/ipv6.txt",
        kind: SourceKind::List,
        file: "x4bnet-vpn-v6.txt",
        category: VPN,
        licence: X4B_LICENCE,
        attribution: None,
        max_age_days: 14,
    },
    PresetSource {
        name: "x4bnet-datacenter-v4",
        url: "https://raw.githubusercontent.com/X4BNet/lists_vpn/main/output/datacenter/ipv4.txt",
        kind: SourceKind::List,
        file: "x4bnet-datacenter-v4.txt",
        category: HOSTING,
        licence: X4B_LICENCE,
        attribution: None,
        max_age_days: 14,
    },
    PresetSource {
        name: "x4bnet-datacenter-v6",
        url: "https://raw.githubusercontent.com/X4BNet/lists_vpn/main/output/datacenter/ipv6.txt",
        kind: SourceKind::List,
        file: "x4bnet-datacenter-v6.txt",
        category: HOSTING,
        licence: X4B_LICENCE,
        attribution: None,
        max_age_days: 14,
    },
    PresetSource {
        name: "aws",
        url: "https://ip-ranges.amazonaws.com/ip-ranges.json",
        kind: SourceKind::Aws,
        file: "aws.txt",
        category: HOSTING,
        licence: NO_LICENCE,
        attribution: None,
        // Changes several times a week.
        max_age_days: 14,
    },
    PresetSource {
        name: "gcp",
        url: "https://www.gstatic.com/ipranges/cloud.json",
        kind: SourceKind::Gcp,
        file: "gcp.txt",
        category: HOSTING,
        licence: NO_LICENCE,
        attribution: None,
        max_age_days: 14,
    },
    PresetSource {
        name: "oracle",
        url: "https://docs.oracle.com/en-us/iaas/tools/public_ip_ranges.json",
        kind: SourceKind::Oracle,
        file: "oracle.txt",
        category: HOSTING,
        licence: NO_LICENCE,
        attribution: None,
        // Oracle asks to poll weekly; it changes every few weeks.
        max_age_days: 60,
    },
    PresetSource {
        name: "cloudflare-v4",
        url: "https://www.cloudflare.com/ips-v4/",
        kind: SourceKind::List,
        file: "cloudflare-v4.txt",
        category: HOSTING,
        licence: NO_LICENCE,
        attribution: None,
        // Changes once in years: the limit only catches an updater that stopped running long
        // ago (an unchanged list keeps its file date).
        max_age_days: 365,
    },
    PresetSource {
        name: "cloudflare-v6",
        url: "https://www.cloudflare.com/ips-v6/",
        kind: SourceKind::List,
        file: "cloudflare-v6.txt",
        category: HOSTING,
        licence: NO_LICENCE,
        attribution: None,
        max_age_days: 365,
    },
    PresetSource {
        name: "digitalocean",
        url: "https://www.digitalocean.com/geo/google.csv",
        kind: SourceKind::Geofeed,
        file: "digitalocean.txt",
        category: HOSTING,
        licence: NO_LICENCE,
        attribution: None,
        max_age_days: 60,
    },
    PresetSource {
        name: "linode",
        url: "https://geoip.linode.com/",
        kind: SourceKind::Geofeed,
        file: "linode.txt",
        category: HOSTING,
        licence: NO_LICENCE,
        attribution: None,
        max_age_days: 60,
    },
];

/// The preset called `name`.
pub fn named(name: &str) -> Option<&'static [PresetSource]> {
    match name {
        "free" => Some(FREE),
        _ => None,
    }
}

/// The list files any preset installs, with their category and stale limit: `[data] dir`
/// loads each one present there.
pub fn list_files() -> impl Iterator<Item = (&'static str, ListCategory, Duration)> {
    FREE.iter()
        .filter_map(|s| s.category.map(|c| (s.file, c, s.max_age())))
}

/// The stale limits of the databases a preset installs (by file name).
pub fn database_limits() -> impl Iterator<Item = (&'static str, Duration)> {
    FREE.iter()
        .filter(|s| s.category.is_none())
        .map(|s| (s.file, s.max_age()))
}

/// `url` with its `/host/path` appended to `mirror`: a mirror serves every preset file under
/// the publisher's host name, so one base URL replaces all of them (an internal mirror for
/// hosts without internet access, and the loopback fixtures of the tests).
pub fn mirrored(url: &str, mirror: &str) -> String {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_start_matches('/');
    format!("{}/{rest}", mirror.trim_end_matches('/'))
}

/// `url` with [`MONTH`] replaced by `year-month` (`2026-12`).
pub fn for_month(url: &str, year: i32, month: u8) -> String {
    url.replace(MONTH, &format!("{year:04}-{month:02}"))
}

/// The months to try for a monthly URL on `(year, month)`: that month, then the one before.
pub fn months_to_try(year: i32, month: u8) -> [(i32, u8); 2] {
    let previous = if month <= 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    };
    [(year, month), previous]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files_are_unique_and_every_list_has_a_category() {
        let mut names: Vec<_> = FREE.iter().map(|s| s.name).collect();
        let mut files: Vec<_> = FREE.iter().map(|s| s.file).collect();
        names.sort();
        names.dedup();
        files.sort();
        files.dedup();
        assert_eq!(names.len(), FREE.len());
        assert_eq!(files.len(), FREE.len());
        for s in FREE {
            assert_eq!(
                s.kind == SourceKind::Mmdb,
                s.category.is_none(),
                "{}",
                s.name
            );
            assert!(s.url.starts_with("https://"), "{}", s.name);
            assert!(s.max_age_days > 0 && !s.licence.is_empty(), "{}", s.name);
            assert!(!s.file.contains('/'), "{}", s.name);
        }
        // CC BY sources carry their credit.
        for s in FREE.iter().filter(|s| s.licence.starts_with("CC BY")) {
            assert!(s.attribution.is_some(), "{}", s.name);
        }
        assert_eq!(list_files().count() + database_limits().count(), FREE.len());
    }

    #[test]
    fn months_roll_back_over_the_new_year() {
        assert_eq!(months_to_try(2026, 12), [(2026, 12), (2026, 11)]);
        assert_eq!(months_to_try(2027, 1), [(2027, 1), (2026, 12)]);
        assert_eq!(
            for_month(FREE[0].url, 2027, 1),
            "https://download.db-ip.com/free/dbip-city-lite-2027-01.mmdb.gz"
        );
    }

    #[test]
    fn a_mirror_keeps_host_and_path() {
        assert_eq!(
            mirrored(
                "https://www.cloudflare.com/ips-v4/",
                "http://127.0.0.1:8000/"
            ),
            "http://127.0.0.1:8000/www.cloudflare.com/ips-v4/"
        );
        assert_eq!(
            mirrored("https://geoip.linode.com/", "http://m"),
            "http://m/geoip.linode.com/"
        );
    }
}
