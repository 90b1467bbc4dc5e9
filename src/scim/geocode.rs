//! Placing a declared home from the address an IdP holds, with embedded data only (no network
//! call, no external service learns who lives where).
//!
//! * locality: the bundled GeoNames table (`data/cities.csv`, places of 15,000 people or more),
//!   matched by name or accent-free name within the country; in the US and Canada the region
//!   picks among namesakes (Austin, TX over Austin, MN), elsewhere the most populous wins;
//! * region: kept by name for `region_mismatch`, US state and Canadian province codes written
//!   out as the location database names them ("TX" -> "Texas");
//! * otherwise only the country.
//!
//! A home placed at a city gets its point; a home known only by region or country gets none
//! (`Home.location = None`), so the radius rules measure from the country's capital with the
//! country's size and stay silent inside the home country (`policy::employee`): a centroid with
//! a made-up radius would accuse people of being far from a point they never declared.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::country::{self, CountryCode};
use crate::intel::LatLon;

/// The embedded table (see `data/README.md`).
static CITIES: &str = include_str!("../../data/cities.csv");

/// One place of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct City {
    /// GeoNames name.
    pub name: &'static str,
    /// GeoNames first-level subdivision code.
    pub admin1: &'static str,
    /// Its point.
    pub at: LatLon,
    /// Inhabitants (orders namesakes).
    pub population: u64,
}

/// US states (and DC, PR) and Canadian provinces: code, name as the location database writes it,
/// GeoNames admin1 code.
const REGIONS: &[(&str, &str, &str, &str)] = &[
    ("US", "AL", "Alabama", "AL"),
    ("US", "AK", "Alaska", "AK"),
    ("US", "AZ", "Arizona", "AZ"),
    ("US", "AR", "Arkansas", "AR"),
    ("US", "CA", "California", "CA"),
    ("US", "CO", "Colorado", "CO"),
    ("US", "CT", "Connecticut", "CT"),
    ("US", "DE", "Delaware", "DE"),
    ("US", "DC", "District of Columbia", "DC"),
    ("US", "FL", "Florida", "FL"),
    ("US", "GA", "Georgia", "GA"),
    ("US", "HI", "Hawaii", "HI"),
    ("US", "ID", "Idaho", "ID"),
    ("US", "IL", "Illinois", "IL"),
    ("US", "IN", "Indiana", "IN"),
    ("US", "IA", "Iowa", "IA"),
    ("US", "KS", "Kansas", "KS"),
    ("US", "KY", "Kentucky", "KY"),
    ("US", "LA", "Louisiana", "LA"),
    ("US", "ME", "Maine", "ME"),
    ("US", "MD", "Maryland", "MD"),
    ("US", "MA", "Massachusetts", "MA"),
    ("US", "MI", "Michigan", "MI"),
    ("US", "MN", "Minnesota", "MN"),
    ("US", "MS", "Mississippi", "MS"),
    ("US", "MO", "Missouri", "MO"),
    ("US", "MT", "Montana", "MT"),
    ("US", "NE", "Nebraska", "NE"),
    ("US", "NV", "Nevada", "NV"),
    ("US", "NH", "New Hampshire", "NH"),
    ("US", "NJ", "New Jersey", "NJ"),
    ("US", "NM", "New Mexico", "NM"),
    ("US", "NY", "New York", "NY"),
    ("US", "NC", "North Carolina", "NC"),
    ("US", "ND", "North Dakota", "ND"),
    ("US", "OH", "Ohio", "OH"),
    ("US", "OK", "Oklahoma", "OK"),
    ("US", "OR", "Oregon", "OR"),
    ("US", "PA", "Pennsylvania", "PA"),
    ("US", "PR", "Puerto Rico", "PR"),
    ("US", "RI", "Rhode Island", "RI"),
    ("US", "SC", "South Carolina", "SC"),
    ("US", "SD", "South Dakota", "SD"),
    ("US", "TN", "Tennessee", "TN"),
    ("US", "TX", "Texas", "TX"),
    ("US", "UT", "Utah", "UT"),
    ("US", "VT", "Vermont", "VT"),
    ("US", "VA", "Virginia", "VA"),
    ("US", "WA", "Washington", "WA"),
    ("US", "WV", "West Virginia", "WV"),
    ("US", "WI", "Wisconsin", "WI"),
    ("US", "WY", "Wyoming", "WY"),
    ("CA", "AB", "Alberta", "01"),
    ("CA", "BC", "British Columbia", "02"),
    ("CA", "MB", "Manitoba", "03"),
    ("CA", "NB", "New Brunswick", "04"),
    ("CA", "NL", "Newfoundland and Labrador", "05"),
    ("CA", "NS", "Nova Scotia", "07"),
    ("CA", "ON", "Ontario", "08"),
    ("CA", "PE", "Prince Edward Island", "09"),
    ("CA", "QC", "Quebec", "10"),
    ("CA", "SK", "Saskatchewan", "11"),
    ("CA", "YT", "Yukon", "12"),
    ("CA", "NT", "Northwest Territories", "13"),
    ("CA", "NU", "Nunavut", "14"),
];

/// A known region of `country` written as a code or a name: its name and GeoNames admin1 code.
fn known_region(country: CountryCode, region: &str) -> Option<(&'static str, &'static str)> {
    let r = region.trim();
    REGIONS
        .iter()
        .find(|(cc, code, name, _)| {
            *cc == country.as_str()
                && (code.eq_ignore_ascii_case(r) || name.eq_ignore_ascii_case(r))
        })
        .map(|(_, _, name, admin1)| (*name, *admin1))
}

/// The region as the location database names it: US and Canadian codes written out, any other
/// text kept as given.
pub fn region_name(country: CountryCode, region: &str) -> String {
    known_region(country, region).map_or_else(|| region.trim().to_string(), |(n, _)| n.to_string())
}

/// Lower-cased `country|name` -> places, most populous first.
fn table() -> &'static HashMap<String, Vec<City>> {
    static TABLE: OnceLock<HashMap<String, Vec<City>>> = OnceLock::new();
    TABLE.get_or_init(|| parse(CITIES))
}

/// The rows of `country,name,ascii,admin1,lat,lon,population` (header skipped; a malformed
/// line is skipped, and the unit test checks the committed file has none): country, place, and
/// the accent-free spelling (empty when the same).
fn rows(text: &'static str) -> impl Iterator<Item = (&'static str, City, &'static str)> {
    text.lines().skip(1).filter_map(|line| {
        let f: Vec<&'static str> = line.split(',').collect();
        let [cc, name, ascii, admin1, lat, lon, pop] = f[..] else {
            return None;
        };
        let (Ok(lat), Ok(lon), Ok(population)) = (lat.parse(), lon.parse(), pop.parse()) else {
            return None;
        };
        let city = City {
            name,
            admin1,
            at: LatLon { lat, lon },
            population,
        };
        Some((cc, city, ascii))
    })
}

/// Indexes the rows by country and name, and by country and accent-free name.
fn parse(text: &'static str) -> HashMap<String, Vec<City>> {
    let mut out: HashMap<String, Vec<City>> = HashMap::new();
    for (cc, city, ascii) in rows(text) {
        let by_name = key(cc, city.name);
        let by_ascii = (!ascii.is_empty()).then(|| key(cc, ascii));
        if by_ascii.as_ref().is_some_and(|k| *k != by_name)
            && let Some(k) = by_ascii
        {
            out.entry(k).or_default().push(city);
        }
        out.entry(by_name).or_default().push(city);
    }
    for list in out.values_mut() {
        list.sort_by_key(|c| std::cmp::Reverse(c.population));
    }
    out
}

fn key(cc: &str, name: &str) -> String {
    format!("{}|{}", cc.to_ascii_uppercase(), name.trim().to_lowercase())
}

/// Looks a locality up in `country`; `region` (code or name) picks among namesakes in the US and
/// Canada.
pub fn city(country: CountryCode, region: Option<&str>, locality: &str) -> Option<City> {
    let list = table().get(&key(country.as_str(), locality))?;
    let admin1 = region
        .and_then(|r| known_region(country, r))
        .map(|(_, a)| a);
    match admin1 {
        Some(a) => list.iter().find(|c| c.admin1 == a).copied(),
        None => list.first().copied(),
    }
}

/// The region name of a city's GeoNames code, where this module knows it (US, Canada).
fn region_of(country: CountryCode, admin1: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .find(|(cc, _, _, a)| *cc == country.as_str() && *a == admin1)
        .map(|(_, _, name, _)| *name)
}

/// A country written as an ISO alpha-2 code or its English name ("Germany").
pub fn country(text: &str) -> Option<CountryCode> {
    let t = text.trim();
    if let Ok(cc) = CountryCode::parse_known(t) {
        return Some(cc);
    }
    // Common spellings that are not the table's names.
    let alias = match t.to_ascii_lowercase().as_str() {
        "usa" | "united states of america" | "u.s." | "u.s.a." => Some("US"),
        "uk" | "great britain" | "england" | "scotland" | "wales" => Some("GB"),
        _ => None,
    };
    match alias {
        Some(code) => CountryCode::parse(code),
        None => country::table().code_by_name(t),
    }
}

/// Where a declared address puts the home.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// Region by the location database's name.
    pub region: Option<String>,
    /// The city as the table names it.
    pub city: Option<String>,
    /// Its point, only when the city was found.
    pub location: Option<LatLon>,
    /// What could not be placed, for the directory notes.
    pub note: Option<String>,
}

/// Places `locality` / `region` in `country`.
pub fn place(country: CountryCode, region: Option<&str>, locality: Option<&str>) -> Place {
    let mut region_out = region.map(|r| region_name(country, r));
    match locality {
        Some(l) => match city(country, region, l) {
            Some(c) => {
                if region_out.is_none() {
                    region_out = region_of(country, c.admin1).map(str::to_string);
                }
                Place {
                    region: region_out,
                    city: Some(c.name.to_string()),
                    location: Some(c.at),
                    note: None,
                }
            }
            None => Place {
                note: Some(format!(
                    "locality `{l}` is not in the bundled city table for {country}{}: the home is \
                     placed at {} level (no radius check inside {country})",
                    region.map(|r| format!(" ({r})")).unwrap_or_default(),
                    if region_out.is_some() {
                        "region"
                    } else {
                        "country"
                    }
                )),
                region: region_out,
                city: Some(l.trim().to_string()),
                location: None,
            },
        },
        None => Place {
            region: region_out,
            city: None,
            location: None,
            note: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(s: &str) -> CountryCode {
        CountryCode::parse(s).expect("code")
    }

    #[test]
    fn the_committed_table_parses_whole() {
        let lines = CITIES.lines().count() - 1;
        assert!(lines > 30_000, "{lines}");
        assert_eq!(rows(CITIES).count(), lines, "every line is a place");
        assert!(table().len() >= lines / 2);
    }

    #[test]
    fn austin_texas_is_placed_with_its_region_written_out() {
        let p = place(cc("US"), Some("TX"), Some("Austin"));
        assert_eq!(p.region.as_deref(), Some("Texas"));
        assert_eq!(p.city.as_deref(), Some("Austin"));
        let at = p.location.expect("point");
        assert!(
            (at.lat - 30.27).abs() < 0.05 && (at.lon + 97.74).abs() < 0.05,
            "{at:?}"
        );
        // The region picks the namesake; without one the most populous wins.
        let mn = place(cc("US"), Some("Minnesota"), Some("austin"));
        assert!(mn.location.expect("point").lat > 43.0);
        assert_eq!(
            place(cc("US"), None, Some("Austin")).region.as_deref(),
            Some("Texas")
        );
    }

    #[test]
    fn berlin_and_accent_free_spellings() {
        let p = place(cc("DE"), None, Some("Berlin"));
        let at = p.location.expect("point");
        assert!((at.lat - 52.52).abs() < 0.05, "{at:?}");
        assert!(city(cc("DE"), None, "Monchengladbach").is_some());
        assert!(city(cc("DE"), None, "Mönchengladbach").is_some());
    }

    #[test]
    fn an_unknown_city_falls_back_with_a_note() {
        let p = place(cc("US"), Some("TX"), Some("Nowhereville"));
        assert_eq!(p.location, None);
        assert_eq!(p.region.as_deref(), Some("Texas"));
        assert!(
            p.note.as_deref().unwrap_or("").contains("region level"),
            "{p:?}"
        );
        let p = place(cc("FR"), None, Some("Nowhereville"));
        assert!(
            p.note.as_deref().unwrap_or("").contains("country level"),
            "{p:?}"
        );
        assert_eq!(
            place(cc("DE"), Some("Bavaria"), None).region.as_deref(),
            Some("Bavaria")
        );
    }

    #[test]
    fn countries_by_code_or_english_name() {
        assert_eq!(country("us"), Some(cc("US")));
        assert_eq!(country("Germany"), Some(cc("DE")));
        assert_eq!(country("united states"), Some(cc("US")));
        assert_eq!(country("Atlantis"), None);
    }
}
