//! The employee directory: where each person told HR they live.
//!
//! Remote-hiring fraud rests on one lie, "I live where I said", so per-employee policy needs that
//! declaration in a form the gateway can check every connection against: a home country (and
//! optionally region, city, coordinates and a radius), extra countries that are always fine for
//! this person, announced travel, networks of their own, and a mode override.
//!
//! The directory is loaded from TOML ([`Directory::parse_toml`]) or from a CSV export of an HR
//! system ([`Directory::parse_csv`]); [`Directory::load`] picks by file extension. Like the
//! config, every problem stops the load and names `file:line: field:`, because a directory that
//! loads half its people would silently flag (or clear) the other half.
//!
//! Ids and aliases (emails, usernames, certificate names) share one case-insensitive namespace:
//! identities arrive from headers, tokens and certificates in whatever case the sender chose, and
//! two people answering to one name would make every decision about them ambiguous.

mod amend;
mod csv_file;
mod toml_file;
mod travel;

pub use amend::{Amendment, amend_file};
pub use csv_file::CsvColumns;
pub use travel::{TravelError, TravelWindow, When};

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use ipnetwork::IpNetwork;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::country::{CountryCode, CountrySet};
use crate::intel::LatLon;
use crate::values::ConfigError;

/// How a person's own setting overrides the listener's mode. Honoured only for identities that
/// come from a source an attacker cannot forge (see `policy::employee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmployeeMode {
    /// Record and flag, never block, whatever the listener does (e.g. while a declaration is
    /// being corrected).
    Monitor,
    /// Carry out blocks even on a monitor listener (e.g. someone already under investigation).
    Enforce,
    /// Always let through, but still evaluate and record, so IT keeps the trail (executives on
    /// the road, the on-call engineer during an incident).
    Exempt,
}

impl EmployeeMode {
    /// Parses `monitor`, `enforce` or `exempt` (any case), as written in both file formats.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "monitor" => Ok(EmployeeMode::Monitor),
            "enforce" => Ok(EmployeeMode::Enforce),
            "exempt" => Ok(EmployeeMode::Exempt),
            _ => Err(format!("`{s}` is not a mode (monitor, enforce or exempt)")),
        }
    }

    /// The stable name, as written in the files.
    pub fn as_str(self) -> &'static str {
        match self {
            EmployeeMode::Monitor => "monitor",
            EmployeeMode::Enforce => "enforce",
            EmployeeMode::Exempt => "exempt",
        }
    }
}

impl fmt::Display for EmployeeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The declared home: what every connection from this person is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Home {
    /// Country of residence (always known: it is the one thing HR must have).
    pub country: CountryCode,
    /// First-level subdivision as the location database names it in English ("Texas", not
    /// "TX"), compared case-insensitively.
    pub region: Option<String>,
    /// City, for sentences ("declared home Austin, US").
    pub city: Option<String>,
    /// Coordinates of the home; `None` means only the country is declared, and the country's
    /// capital and size stand in.
    pub location: Option<LatLon>,
    /// How far from `location` a connection may come without being "outside the home radius",
    /// in km (the directory's default when the record gives none).
    pub radius_km: f64,
}

impl Home {
    /// "Austin, US" / "Texas, US" / "United States (US)": the home as a sentence fragment.
    pub fn place(&self) -> String {
        let cc = self.country;
        match (&self.city, &self.region) {
            (Some(city), _) => format!("{city}, {cc}"),
            (None, Some(region)) => format!("{region}, {cc}"),
            (None, None) => format!("{} ({cc})", cc.name()),
        }
    }
}

/// One person's declaration, checked when the directory was loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Employee {
    /// Primary identifier (employee number, username), unique in the directory.
    pub id: String,
    /// Other names the identity sources may present: emails, usernames, certificate names.
    pub aliases: Vec<String>,
    /// Where the person said they live.
    pub home: Home,
    /// The declared IANA time zone (kept for working-hours checks).
    pub time_zone: Option<TimeZone>,
    /// Countries that are always fine for this person besides the home country (a commuter's
    /// neighbouring country, a second residence).
    pub allow_countries: CountrySet,
    /// Announced trips: countries that are fine during a window of time.
    pub travel: Vec<TravelWindow>,
    /// Networks of this person's own (a static home IP) that are always allowed, except from a
    /// sanctioned country.
    pub allow_networks: Vec<IpNetwork>,
    /// Overrides the listener's mode; `None` keeps it.
    pub mode: Option<EmployeeMode>,
    /// WireGuard public keys of the person's devices (base64, as `wg` prints them): a
    /// WireGuard server's peer is this person ([`Directory::by_wireguard_key`]).
    pub wireguard_keys: Vec<String>,
}

impl Employee {
    /// Whether `ip` is in one of the person's own networks. A linear scan: a person has a handful
    /// of networks at most.
    pub fn network_allowed(&self, ip: IpAddr) -> bool {
        self.allow_networks.iter().any(|n| n.contains(ip))
    }

    /// Whether a travel window covering `country` is open at `at`.
    pub fn travelling_to(&self, country: CountryCode, at: Timestamp) -> bool {
        self.travel.iter().any(|w| w.covers(country, at))
    }

    /// Whether `country` is fine for this person at `at` besides being home: listed in
    /// `allow_countries` or covered by an open travel window.
    pub fn allows_country(&self, country: CountryCode, at: Timestamp) -> bool {
        self.allow_countries.contains(country) || self.travelling_to(country, at)
    }

    /// The declared IANA time zone name, if any.
    pub fn time_zone_name(&self) -> Option<&str> {
        self.time_zone.as_ref().and_then(TimeZone::iana_name)
    }
}

/// All declared employees, indexed by id and alias (case-insensitive). Immutable once loaded;
/// swapped whole on reload like the rest of the runtime state.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    employees: Vec<Employee>,
    /// Lower-cased id or alias -> index into `employees`.
    index: HashMap<String, usize>,
    /// WireGuard public key (canonical base64, exact) -> index into `employees`. Apart from the
    /// names: a key is not a name any identity source may present.
    keys: HashMap<String, usize>,
    /// What the file held that no field takes (a CSV export's extra columns), said once.
    notes: Vec<String>,
}

impl Directory {
    /// Reads a directory file: `.toml` or `.csv` (by extension, any case). `default_radius_km` is
    /// the home radius for records that give coordinates but no radius; `columns` says which CSV
    /// header holds which field (a TOML file refuses a mapping: it names its fields itself).
    pub fn load(
        path: &Path,
        default_radius_km: f64,
        columns: &CsvColumns,
    ) -> Result<Directory, ConfigError> {
        let label = path.display().to_string();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let read = || {
            std::fs::read_to_string(path)
                .map_err(|e| ConfigError::whole_file(&label, format!("cannot read: {e}")))
        };
        match ext.as_deref() {
            Some("toml") if *columns != CsvColumns::default() => Err(ConfigError::whole_file(
                &label,
                "[employees] columns maps CSV headers; a TOML directory names its fields itself",
            )),
            Some("toml") => Directory::parse_toml(&read()?, &label, default_radius_km),
            Some("csv") => Directory::parse_csv_with(&read()?, &label, default_radius_km, columns),
            _ => Err(ConfigError::whole_file(
                &label,
                "an employee directory must be a .toml or .csv file",
            )),
        }
    }

    /// Parses the TOML form (`[[employee]]` tables); `label` names the file in errors.
    pub fn parse_toml(
        text: &str,
        label: &str,
        default_radius_km: f64,
    ) -> Result<Directory, ConfigError> {
        check_default_radius(label, default_radius_km)?;
        let entries = toml_file::parse(strip_bom(text), label, default_radius_km)?;
        Directory::build(label, entries)
    }

    /// Parses the CSV form, as exported from an HR system, with the columns named as the fields
    /// are; `label` names the file in errors.
    pub fn parse_csv(
        text: &str,
        label: &str,
        default_radius_km: f64,
    ) -> Result<Directory, ConfigError> {
        Self::parse_csv_with(text, label, default_radius_km, &CsvColumns::default())
    }

    /// Parses the CSV form with `columns` naming the headers of the export.
    pub fn parse_csv_with(
        text: &str,
        label: &str,
        default_radius_km: f64,
        columns: &CsvColumns,
    ) -> Result<Directory, ConfigError> {
        check_default_radius(label, default_radius_km)?;
        let parsed = csv_file::parse(strip_bom(text), label, default_radius_km, columns)?;
        let mut directory = Directory::build(label, parsed.entries)?;
        if !parsed.ignored.is_empty() {
            directory.notes.push(format!(
                "{label}: columns ignored, they hold no directory field: {}; if one holds a \
                 declaration, map it with [employees] columns = {{ field = \"Header\" }} (fields: {})",
                parsed.ignored.join(", "),
                CsvColumns::fields().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(directory)
    }

    /// What was read but not used (a CSV export's extra columns), for the start-up log,
    /// `validate` and `/readyz`.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The employee known by `name` (id or alias), ignoring case: emails arrive as `Bob@Corp.com`
    /// from one source and `bob@corp.com` from another.
    pub fn get(&self, name: &str) -> Option<&Employee> {
        // ASCII names (nearly all) are folded only when they have a capital; any other name
        // always is, since characters such as `ǅ` (title case) are not upper case but still
        // fold (found by the `employees_csv` fuzz target: such an id was never found).
        let folds = if name.is_ascii() {
            name.bytes().any(|b| b.is_ascii_uppercase())
        } else {
            true
        };
        let i = if folds {
            self.index.get(&name.to_lowercase())
        } else {
            self.index.get(name)
        };
        i.and_then(|&i| self.employees.get(i))
    }

    /// The employee whose device has the WireGuard public key `key` (base64, compared
    /// exactly: keys are not names and do not fold case).
    pub fn by_wireguard_key(&self, key: &str) -> Option<&Employee> {
        self.keys.get(key).and_then(|&i| self.employees.get(i))
    }

    /// Number of employees.
    pub fn len(&self) -> usize {
        self.employees.len()
    }

    /// Whether the directory has nobody in it.
    pub fn is_empty(&self) -> bool {
        self.employees.is_empty()
    }

    /// Every employee, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Employee> {
        self.employees.iter()
    }

    /// This directory with employees from another source (`label`, e.g. `SCIM`) added after
    /// its own, and `notes` about that source appended to its notes.
    ///
    /// The directory's own entries win every conflict: an added employee whose id, alias or
    /// WireGuard key is already taken is left out whole, and each such conflict becomes a note
    /// (start log, `validate`, `/readyz`). Leaving the newcomer out rather than merging it keeps
    /// one person's declaration in one place: the file an operator reviewed, not a field-by-field
    /// blend of two sources. Aliases an added employee repeats are kept once.
    pub fn with_added(
        &self,
        label: &str,
        added: impl IntoIterator<Item = Employee>,
        notes: impl IntoIterator<Item = String>,
    ) -> Directory {
        let mut out = self.clone();
        out.notes.extend(notes);
        for mut employee in added {
            let mut names: Vec<String> = Vec::with_capacity(1 + employee.aliases.len());
            for name in std::iter::once(&employee.id).chain(&employee.aliases) {
                let key = name.to_lowercase();
                if !names.contains(&key) {
                    names.push(key);
                }
            }
            let taken = names
                .iter()
                .find_map(|n| out.index.get(n).map(|&j| (n.as_str(), j)))
                .map(|(n, j)| (format!("the name `{n}`"), j))
                .or_else(|| {
                    employee.wireguard_keys.iter().find_map(|k| {
                        out.keys
                            .get(k)
                            .map(|&j| (format!("WireGuard key `{k}`"), j))
                    })
                });
            if let Some((what, j)) = taken {
                let other = out.employees.get(j).map_or("?", |e| e.id.as_str());
                out.notes.push(format!(
                    "{label} user `{}` left out: {what} is already employee `{other}`'s; the \
                     earlier source wins, so `{}` is judged by that entry",
                    employee.id, employee.id
                ));
                continue;
            }
            let i = out.employees.len();
            let id_key = employee.id.to_lowercase();
            employee.aliases.retain(|a| a.to_lowercase() != id_key);
            let mut seen = Vec::new();
            employee.aliases.retain(|a| {
                !seen.contains(&a.to_lowercase()) && {
                    seen.push(a.to_lowercase());
                    true
                }
            });
            for key in names {
                out.index.insert(key, i);
            }
            for key in &employee.wireguard_keys {
                out.keys.insert(key.clone(), i);
            }
            out.employees.push(employee);
        }
        out
    }

    /// Indexes the entries, refusing a name that two people share.
    fn build(label: &str, entries: Vec<Entry>) -> Result<Directory, ConfigError> {
        if entries.is_empty() {
            return Err(ConfigError::whole_file(
                label,
                "the employee directory lists nobody; every identity would be unknown",
            ));
        }
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut keys: HashMap<String, usize> = HashMap::new();
        let mut lines = Vec::with_capacity(entries.len());
        let mut employees = Vec::with_capacity(entries.len());
        for (i, mut entry) in entries.into_iter().enumerate() {
            let mut kept = Vec::with_capacity(entry.employee.aliases.len());
            for name in entry.names {
                let key = name.text.to_lowercase();
                match index.get(&key) {
                    // The same person listing a name twice (an alias equal to the id) is harmless.
                    Some(&j) if j == i => continue,
                    Some(&j) => {
                        let (other, line) = match (employees.get(j), lines.get(j)) {
                            (Some(Employee { id, .. }), Some(line)) => (id.as_str(), *line),
                            _ => ("?", 0),
                        };
                        return Err(ConfigError {
                            file: label.to_string(),
                            line: name.line,
                            field: name.field,
                            message: format!(
                                "`{}` is already used by employee `{other}` (line {line}); ids and aliases must be unique, ignoring case",
                                name.text
                            ),
                        });
                    }
                    None => {
                        index.insert(key, i);
                        if name.is_alias {
                            kept.push(name.text);
                        }
                    }
                }
            }
            entry.employee.aliases = kept;
            for key in entry.keys {
                if let Some(&j) = keys.get(&key.text)
                    && j != i
                {
                    let other = employees.get(j).map_or("?", |e: &Employee| e.id.as_str());
                    return Err(ConfigError {
                        file: label.to_string(),
                        line: key.line,
                        field: key.field,
                        message: format!(
                            "WireGuard key `{}` is already employee `{other}`'s; a device belongs to one person",
                            key.text
                        ),
                    });
                }
                keys.insert(key.text, i);
            }
            lines.push(entry.line);
            employees.push(entry.employee);
        }
        Ok(Directory {
            employees,
            index,
            keys,
            notes: Vec::new(),
        })
    }
}

/// A parsed record before indexing, with where its names were written (for duplicate errors).
struct Entry {
    employee: Employee,
    /// Line of the record (of its id).
    line: usize,
    /// The id first, then the aliases, each with its location.
    names: Vec<Name>,
    /// WireGuard keys (canonical), each with its location (`is_alias` unused).
    keys: Vec<Name>,
}

/// An id or alias and where it was written.
struct Name {
    text: String,
    is_alias: bool,
    line: usize,
    field: String,
}

/// The checks both formats share; each returns the message, the caller adds `file:line: field:`.
pub(crate) mod check {
    use super::*;

    /// An id or alias: trimmed, not empty, no control characters (an identity with them is
    /// refused on the request path, so such a name could never match, and it would go into
    /// events).
    pub fn name(s: &str, what: &str) -> Result<String, String> {
        let t = s.trim();
        if t.is_empty() {
            Err(format!("{what} is empty"))
        } else if t.chars().any(char::is_control) {
            Err(format!("{what} contains control characters"))
        } else {
            Ok(t.to_string())
        }
    }

    /// A country the embedded table knows (a typo such as `UK` is refused, not ignored).
    pub fn country(s: &str) -> Result<CountryCode, String> {
        CountryCode::parse_known(s.trim())
    }

    /// Home radius: a positive, finite number of km.
    pub fn radius(r: f64) -> Result<f64, String> {
        if r.is_finite() && r > 0.0 {
            Ok(r)
        } else {
            Err(format!("{r} is not a radius: it must be more than 0 km"))
        }
    }

    /// An IANA time zone known to the bundled database.
    pub fn time_zone(s: &str) -> Result<TimeZone, String> {
        let t = s.trim();
        TimeZone::get(t).map_err(|_| {
            format!("`{t}` is not an IANA time zone name (e.g. America/Chicago, Europe/Berlin)")
        })
    }

    /// A network as CIDR or a bare address.
    pub fn network(s: &str) -> Result<IpNetwork, String> {
        crate::values::parse_net(s)
    }

    /// A WireGuard public key: base64 of 32 bytes, returned in canonical form (as `wg` prints it).
    pub fn wireguard_key(s: &str) -> Result<String, String> {
        use base64::Engine as _;
        let t = s.trim();
        match base64::engine::general_purpose::STANDARD.decode(t) {
            Ok(bytes) if bytes.len() == 32 => {
                Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            _ => Err(format!(
                "`{t}` is not a WireGuard public key (44 characters of base64, as `wg pubkey` prints)"
            )),
        }
    }

    /// Optional text: blank counts as absent (HR exports leave cells empty).
    pub fn text(s: &str) -> Option<String> {
        let t = s.trim();
        (!t.is_empty()).then(|| t.to_string())
    }
}

/// Whether `s` is a WireGuard public key exactly as `wg` prints it (32 bytes, base64).
pub fn is_wireguard_key(s: &str) -> bool {
    check::wireguard_key(s).is_ok_and(|canonical| canonical == s)
}

fn check_default_radius(label: &str, r: f64) -> Result<(), ConfigError> {
    check::radius(r)
        .map(|_| ())
        .map_err(|m| ConfigError::whole_file(label, format!("default home radius: {m}")))
}

/// Spreadsheet exports often start with a UTF-8 byte order mark; it is not part of the first
/// column's name.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

#[cfg(test)]
mod tests;
