//! The CSV form of the directory, as exported from an HR system.
//!
//! The header row names the columns, in any order and any case:
//!
//! | column | content |
//! | --- | --- |
//! | `id` (required) | employee number or username |
//! | `aliases` | other names, separated by `;`, `,` or `\|` |
//! | `country` (required) | home country, ISO 3166-1 alpha-2 |
//! | `region`, `city` | as the location database names them in English |
//! | `lat`, `lon` | home coordinates (both or neither) |
//! | `radius_km` | home radius; empty: the directory default |
//! | `time_zone` | IANA name, e.g. `America/Chicago` |
//! | `mode` | `monitor`, `enforce` or `exempt` |
//! | `allow_countries`, `allow_networks` | lists separated by `;` or `\|` |
//! | `wireguard_keys` | WireGuard public keys of the person's devices, separated by `;` or `\|` |
//!
//! Empty cells mean "not declared", and rows whose cells are all empty (spreadsheet padding) are
//! skipped. An export names its columns its own way: `[employees] columns = { id = "Employee
//! ID", country = "Country" }` says which header holds which field ([`CsvColumns`]). Columns that
//! hold no field (`department`, `manager`: exports always have more) are ignored, and named once
//! in a warning (`Directory::notes`: at start, by `validate`, in `/readyz`), since a misspelt
//! `contry` would otherwise drop its declarations unseen; a missing required column's error lists
//! them too. Travel windows need the TOML form.

use csv::{ReaderBuilder, StringRecord, Trim};

use super::{Employee, EmployeeMode, Entry, Home, Name, check};
use crate::country::CountrySet;
use crate::geo;
use crate::intel::LatLon;
use crate::values::ConfigError;

/// The columns the CSV form knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Id,
    Aliases,
    Country,
    Region,
    City,
    Lat,
    Lon,
    RadiusKm,
    TimeZone,
    Mode,
    AllowCountries,
    AllowNetworks,
    WireguardKeys,
}

const COLUMNS: &[(&str, Col)] = &[
    ("id", Col::Id),
    ("aliases", Col::Aliases),
    ("country", Col::Country),
    ("region", Col::Region),
    ("city", Col::City),
    ("lat", Col::Lat),
    ("lon", Col::Lon),
    ("radius_km", Col::RadiusKm),
    ("time_zone", Col::TimeZone),
    ("mode", Col::Mode),
    ("allow_countries", Col::AllowCountries),
    ("allow_networks", Col::AllowNetworks),
    ("wireguard_keys", Col::WireguardKeys),
];

fn col_name(c: Col) -> &'static str {
    COLUMNS
        .iter()
        .find(|(_, k)| *k == c)
        .map_or("?", |(n, _)| n)
}

/// Reads the header, then one [`Entry`] per non-blank row, stopping at the first problem.
pub(super) fn parse(
    text: &str,
    label: &str,
    default_radius_km: f64,
    columns: &CsvColumns,
) -> Result<Parsed, ConfigError> {
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let err = |line: usize, field: &str, message: String| ConfigError {
        file: label.to_string(),
        line,
        field: field.to_string(),
        message,
    };
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line() as usize);
        err(line, "", format!("not valid CSV: {e}"))
    };

    let header = match records.next() {
        Some(h) => h.map_err(csv_err)?,
        None => {
            return Err(ConfigError::whole_file(
                label,
                "the employee directory is empty (expected a header row: id,country,...)",
            ));
        }
    };
    let header_line = line_of(&header).max(1);
    let mut cols: Vec<Option<Col>> = Vec::with_capacity(header.len());
    let mut ignored: Vec<String> = Vec::new();
    for name in header.iter() {
        let Some(col) = columns.field_of(name) else {
            ignored.push(name.to_string());
            cols.push(None);
            continue;
        };
        if cols.contains(&Some(col)) {
            return Err(err(header_line, name, "column appears twice".into()));
        }
        cols.push(Some(col));
    }
    for (field, wanted) in &columns.map {
        if !cols.contains(&Some(*field)) {
            return Err(err(
                header_line,
                wanted,
                format!(
                    "[employees] columns names `{wanted}` for {}, but the header row has no such column",
                    col_name(*field)
                ),
            ));
        }
    }
    for required in [Col::Id, Col::Country] {
        if !cols.contains(&Some(required)) {
            let also = if ignored.is_empty() {
                String::new()
            } else {
                format!(
                    " (the header's other columns: {}; map one with [employees] columns = {{ {} = \"...\" }})",
                    ignored.join(", "),
                    col_name(required)
                )
            };
            return Err(err(
                header_line,
                col_name(required),
                format!("required column is missing from the header row{also}"),
            ));
        }
    }
    let header_of = |c: Col| -> String {
        cols.iter()
            .position(|k| *k == Some(c))
            .and_then(|i| header.get(i))
            .map_or_else(|| col_name(c).to_string(), str::to_string)
    };

    let mut entries = Vec::new();
    for record in records {
        let record = record.map_err(csv_err)?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let line = line_of(&record);
        if record.len() != cols.len() {
            return Err(err(
                line,
                "",
                format!(
                    "row has {} but the header has {}",
                    cells(record.len()),
                    cols.len()
                ),
            ));
        }
        entries.push(
            row(&cols, &record, line, default_radius_km)
                .map_err(|(col, message)| err(line, &header_of(col), message))?,
        );
    }
    Ok(Parsed { entries, ignored })
}

/// What a CSV directory gave: its employees, and the header's columns that hold no field.
pub(super) struct Parsed {
    pub entries: Vec<Entry>,
    pub ignored: Vec<String>,
}

/// Which header holds which field, for exports that name columns their own way (`[employees]
/// columns`); a field not mapped is looked for by its own name, in any case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvColumns {
    map: Vec<(Col, String)>,
}

impl CsvColumns {
    /// The fields a mapping may name.
    pub fn fields() -> impl Iterator<Item = &'static str> {
        COLUMNS.iter().map(|(n, _)| *n)
    }

    /// A mapping from `(field, header)` pairs; an unknown field or a header given twice is an
    /// error naming it.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut map: Vec<(Col, String)> = Vec::new();
        for (field, header) in pairs {
            let Some(&(_, col)) = COLUMNS.iter().find(|(n, _)| *n == field) else {
                return Err(format!(
                    "`{field}` is not a directory field; the fields are {}",
                    Self::fields().collect::<Vec<_>>().join(", ")
                ));
            };
            let header = header.trim();
            if header.is_empty() {
                return Err(format!("{field}: an empty column name"));
            }
            if map.iter().any(|(_, h)| h.eq_ignore_ascii_case(header)) {
                return Err(format!("`{header}` is named for two fields"));
            }
            map.push((col, header.to_string()));
        }
        Ok(CsvColumns { map })
    }

    /// The field a header cell holds: the mapping first, then the field's own name (unless the
    /// mapping put that field under another header).
    fn field_of(&self, cell: &str) -> Option<Col> {
        if let Some((col, _)) = self.map.iter().find(|(_, h)| h.eq_ignore_ascii_case(cell)) {
            return Some(*col);
        }
        let key = cell.to_ascii_lowercase();
        COLUMNS
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, c)| *c)
            .filter(|c| !self.map.iter().any(|(m, _)| m == c))
    }
}

fn cells(n: usize) -> String {
    if n == 1 {
        "1 cell".into()
    } else {
        format!("{n} cells")
    }
}

fn line_of(record: &StringRecord) -> usize {
    record.position().map_or(0, |p| p.line() as usize)
}

/// `a;b|c` -> `["a", "b", "c"]`, blanks dropped.
fn list(cell: &str) -> impl Iterator<Item = &str> {
    cell.split([';', '|'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// One data row; errors name the column.
fn row(
    cols: &[Option<Col>],
    record: &StringRecord,
    line: usize,
    default_radius_km: f64,
) -> Result<Entry, (Col, String)> {
    let cell = |c: Col| -> &str {
        cols.iter()
            .position(|k| *k == Some(c))
            .and_then(|i| record.get(i))
            .unwrap_or("")
    };
    let number = |c: Col| -> Result<Option<f64>, (Col, String)> {
        let s = cell(c);
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<f64>()
            .map(Some)
            .map_err(|_| (c, format!("`{s}` is not a number")))
    };
    let field = |c: Col| col_name(c).to_string();

    let id = check::name(cell(Col::Id), "id").map_err(|m| (Col::Id, m))?;
    let mut names = vec![Name {
        text: id.clone(),
        is_alias: false,
        line,
        field: field(Col::Id),
    }];
    for alias in cell(Col::Aliases)
        .split([';', ',', '|'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        names.push(Name {
            text: alias.to_string(),
            is_alias: true,
            line,
            field: field(Col::Aliases),
        });
    }
    let country_cell = cell(Col::Country);
    if country_cell.is_empty() {
        return Err((
            Col::Country,
            format!("empty: employee `{id}` needs a declared home country"),
        ));
    }
    let country = check::country(country_cell).map_err(|m| (Col::Country, m))?;

    let location = match (number(Col::Lat)?, number(Col::Lon)?) {
        (None, None) => None,
        (Some(_), None) => return Err((Col::Lat, "lat without lon".into())),
        (None, Some(_)) => return Err((Col::Lon, "lon without lat".into())),
        (Some(lat), Some(lon)) => Some(LatLon {
            lat: geo::check_lat(lat).map_err(|m| (Col::Lat, m))?,
            lon: geo::check_lon(lon).map_err(|m| (Col::Lon, m))?,
        }),
    };
    let radius_km = match number(Col::RadiusKm)? {
        Some(r) => check::radius(r).map_err(|m| (Col::RadiusKm, m))?,
        None => default_radius_km,
    };
    let time_zone = match cell(Col::TimeZone) {
        "" => None,
        tz => Some(check::time_zone(tz).map_err(|m| (Col::TimeZone, m))?),
    };
    let mode = match cell(Col::Mode) {
        "" => None,
        m => Some(EmployeeMode::parse(m).map_err(|msg| (Col::Mode, msg))?),
    };
    let mut allow_countries = CountrySet::default();
    for c in list(cell(Col::AllowCountries)) {
        allow_countries.insert(check::country(c).map_err(|m| (Col::AllowCountries, m))?);
    }
    let mut allow_networks = Vec::new();
    for n in list(cell(Col::AllowNetworks)) {
        allow_networks.push(check::network(n).map_err(|m| (Col::AllowNetworks, m))?);
    }

    let mut keys = Vec::new();
    for k in list(cell(Col::WireguardKeys)) {
        keys.push(Name {
            text: check::wireguard_key(k).map_err(|m| (Col::WireguardKeys, m))?,
            is_alias: false,
            line,
            field: field(Col::WireguardKeys),
        });
    }

    Ok(Entry {
        line,
        names,
        employee: Employee {
            wireguard_keys: keys.iter().map(|k| k.text.clone()).collect(),
            id,
            aliases: Vec::new(),
            home: Home {
                country,
                region: check::text(cell(Col::Region)),
                city: check::text(cell(Col::City)),
                location,
                radius_km,
            },
            time_zone,
            allow_countries,
            travel: Vec::new(),
            allow_networks,
            mode,
        },
        keys,
    })
}
