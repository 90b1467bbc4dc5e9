//! The TOML form of the directory: one `[[employee]]` table per person.
//!
//! ```toml
//! [[employee]]
//! id = "e1042"
//! aliases = ["alice@example.com", "alice"]
//! country = "US"
//! region = "Texas"
//! city = "Austin"
//! lat = 30.2672
//! lon = -97.7431
//! radius_km = 150
//! time_zone = "America/Chicago"
//! allow_countries = ["CA"]
//! travel = [{ from = 2026-12-20, to = 2027-01-03, countries = ["MX"] }]
//! allow_networks = ["203.0.113.7/32"]
//! mode = "enforce"
//! wireguard_keys = ["xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="]
//! ```
//!
//! Values are read with their byte spans so every error names the line and the field as
//! `employee[3].country` (0-based, like the config's `listener[1]`).

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{Employee, Entry, Home, Name, TravelWindow, When, check};
use crate::country::CountrySet;
use crate::geo;
use crate::intel::LatLon;
use crate::values::ConfigError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    employee: Vec<Spanned<RawEmployee>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmployee {
    id: Option<Spanned<String>>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    country: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    city: Option<Spanned<String>>,
    lat: Option<Spanned<f64>>,
    lon: Option<Spanned<f64>>,
    radius_km: Option<Spanned<f64>>,
    time_zone: Option<Spanned<String>>,
    #[serde(default)]
    allow_countries: Vec<Spanned<String>>,
    #[serde(default)]
    travel: Vec<Spanned<RawTravel>>,
    #[serde(default)]
    allow_networks: Vec<Spanned<String>>,
    mode: Option<Spanned<String>>,
    #[serde(default)]
    wireguard_keys: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTravel {
    from: Option<Spanned<toml::Value>>,
    to: Option<Spanned<toml::Value>>,
    #[serde(default)]
    countries: Vec<Spanned<String>>,
}

/// Reads every `[[employee]]` table into an [`Entry`], stopping at the first problem.
pub(super) fn parse(
    text: &str,
    label: &str,
    default_radius_km: f64,
) -> Result<Vec<Entry>, ConfigError> {
    let raw: RawFile = toml::from_str(text)
        .map_err(|e| ConfigError::at_span(label, text, e.span(), e.message().trim()))?;
    let mut entries = Vec::with_capacity(raw.employee.len());
    for (i, e) in raw.employee.into_iter().enumerate() {
        let here = Here { label, text, i };
        let table_span = e.span();
        entries.push(employee(
            &here,
            table_span,
            e.into_inner(),
            default_radius_km,
        )?);
    }
    Ok(entries)
}

/// Where we are, to turn a span and a field name into a located error.
struct Here<'a> {
    label: &'a str,
    text: &'a str,
    i: usize,
}

impl Here<'_> {
    fn err(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> ConfigError {
        // The config's span machinery finds the line; the field we know better than its guess.
        let mut e = ConfigError::at_span(self.label, self.text, Some(span), message);
        e.field = self.field(field);
        e
    }

    fn line(&self, span: &Range<usize>) -> usize {
        ConfigError::at_span(self.label, self.text, Some(span.clone()), "").line
    }

    fn field(&self, field: &str) -> String {
        format!("employee[{}].{field}", self.i)
    }
}

fn employee(
    here: &Here<'_>,
    table_span: Range<usize>,
    e: RawEmployee,
    default_radius_km: f64,
) -> Result<Entry, ConfigError> {
    let id_raw = e.id.ok_or_else(|| {
        here.err(
            table_span.clone(),
            "id",
            "missing: every employee needs an id",
        )
    })?;
    let id_span = id_raw.span();
    let id = check::name(id_raw.get_ref(), "id").map_err(|m| here.err(id_span.clone(), "id", m))?;
    let mut names = vec![Name {
        text: id.clone(),
        is_alias: false,
        line: here.line(&id_span),
        field: here.field("id"),
    }];
    for a in &e.aliases {
        let alias =
            check::name(a.get_ref(), "alias").map_err(|m| here.err(a.span(), "aliases", m))?;
        names.push(Name {
            text: alias,
            is_alias: true,
            line: here.line(&a.span()),
            field: here.field("aliases"),
        });
    }

    let country_raw = e.country.ok_or_else(|| {
        here.err(
            id_span.clone(),
            "country",
            format!("missing: employee `{id}` needs a declared home country"),
        )
    })?;
    let country = check::country(country_raw.get_ref())
        .map_err(|m| here.err(country_raw.span(), "country", m))?;

    let location = match (e.lat, e.lon) {
        (None, None) => None,
        (Some(lat), None) => return Err(here.err(lat.span(), "lat", "lat without lon")),
        (None, Some(lon)) => return Err(here.err(lon.span(), "lon", "lon without lat")),
        (Some(lat), Some(lon)) => Some(LatLon {
            lat: geo::check_lat(*lat.get_ref()).map_err(|m| here.err(lat.span(), "lat", m))?,
            lon: geo::check_lon(*lon.get_ref()).map_err(|m| here.err(lon.span(), "lon", m))?,
        }),
    };
    let radius_km = match e.radius_km {
        Some(r) => check::radius(*r.get_ref()).map_err(|m| here.err(r.span(), "radius_km", m))?,
        None => default_radius_km,
    };
    let time_zone = e
        .time_zone
        .map(|tz| check::time_zone(tz.get_ref()).map_err(|m| here.err(tz.span(), "time_zone", m)))
        .transpose()?;
    let mode = e
        .mode
        .map(|m| {
            super::EmployeeMode::parse(m.get_ref()).map_err(|msg| here.err(m.span(), "mode", msg))
        })
        .transpose()?;

    let mut allow_countries = CountrySet::default();
    for c in &e.allow_countries {
        allow_countries.insert(
            check::country(c.get_ref()).map_err(|m| here.err(c.span(), "allow_countries", m))?,
        );
    }
    let mut allow_networks = Vec::with_capacity(e.allow_networks.len());
    for n in &e.allow_networks {
        allow_networks.push(
            check::network(n.get_ref()).map_err(|m| here.err(n.span(), "allow_networks", m))?,
        );
    }
    let mut keys = Vec::with_capacity(e.wireguard_keys.len());
    for k in &e.wireguard_keys {
        keys.push(Name {
            text: check::wireguard_key(k.get_ref())
                .map_err(|m| here.err(k.span(), "wireguard_keys", m))?,
            is_alias: false,
            line: here.line(&k.span()),
            field: here.field("wireguard_keys"),
        });
    }
    let mut travel = Vec::with_capacity(e.travel.len());
    for (j, t) in e.travel.into_iter().enumerate() {
        travel.push(window(here, j, t)?);
    }

    Ok(Entry {
        line: here.line(&id_span),
        names,
        employee: Employee {
            wireguard_keys: keys.iter().map(|k| k.text.clone()).collect(),
            id,
            aliases: Vec::new(),
            home: Home {
                country,
                region: e.region.and_then(|r| check::text(r.get_ref())),
                city: e.city.and_then(|c| check::text(c.get_ref())),
                location,
                radius_km,
            },
            time_zone,
            allow_countries,
            travel,
            allow_networks,
            mode,
        },
        keys,
    })
}

fn window(here: &Here<'_>, j: usize, t: Spanned<RawTravel>) -> Result<TravelWindow, ConfigError> {
    let span = t.span();
    let t = t.into_inner();
    let field = |name: &str| format!("travel[{j}].{name}");
    let when = |v: Option<Spanned<toml::Value>>,
                name: &str|
     -> Result<(When, Range<usize>), ConfigError> {
        let v = v.ok_or_else(|| here.err(span.clone(), &field(name), "missing"))?;
        let vspan = v.span();
        let parsed = match v.into_inner() {
            toml::Value::Datetime(dt) => When::parse(&dt.to_string()),
            toml::Value::String(s) => When::parse(&s),
            other => Err(format!(
                "expected a date (2026-12-20) or an RFC 3339 date-time (2026-12-20T09:00:00Z), found {}",
                other.type_str()
            )),
        };
        parsed
            .map(|w| (w, vspan.clone()))
            .map_err(|m| here.err(vspan, &field(name), m))
    };
    let (from, from_span) = when(t.from, "from")?;
    let (to, to_span) = when(t.to, "to")?;
    let mut countries = CountrySet::default();
    for c in &t.countries {
        countries.insert(
            check::country(c.get_ref()).map_err(|m| here.err(c.span(), &field("countries"), m))?,
        );
    }
    TravelWindow::new(from, to, countries).map_err(|e| {
        let s = match e.field {
            "from" => from_span,
            "to" => to_span,
            _ => span.clone(),
        };
        here.err(s, &field(e.field), e.message)
    })
}
