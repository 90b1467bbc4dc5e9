//! ISO 3166-1 alpha-2 country codes and the embedded country table.
//!
//! Country codes travel through every decision, so they are a two-byte `Copy` value rather than a
//! `String`. The table (capital coordinates and a size radius per country, from GeoNames) lets
//! distances be estimated when only a country is known, and gives policy sentences a name to say.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// A validated, upper-case ISO 3166-1 alpha-2 code such as `KP`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses two ASCII letters, case-insensitively, without checking the code is assigned.
    ///
    /// Databases carry codes we may not list (e.g. `EU`, `AP` in older files), so lookups accept
    /// any two letters; configuration uses [`CountryCode::parse_known`] instead.
    pub fn parse(s: &str) -> Option<Self> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(CountryCode([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
            ])),
            _ => None,
        }
    }

    /// Parses a code and insists it is a country the embedded table knows, so a typo such as
    /// `UK` (for `GB`) in a deny list is an error rather than a rule that never matches.
    pub fn parse_known(s: &str) -> Result<Self, String> {
        let code = Self::parse(s)
            .ok_or_else(|| format!("`{s}` is not a two-letter ISO 3166-1 country code"))?;
        if table().get(code).is_none() {
            let hint = if code.as_str() == "UK" {
                " (the United Kingdom is GB)"
            } else {
                ""
            };
            return Err(format!(
                "`{s}` is not an assigned ISO 3166-1 country code{hint}"
            ));
        }
        Ok(code)
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// Index 0..676 for bit sets.
    pub fn index(self) -> usize {
        (self.0[0] - b'A') as usize * 26 + (self.0[1] - b'A') as usize
    }

    /// The English name, or the code itself when unknown.
    pub fn name(self) -> &'static str {
        table()
            .get(self)
            .map(|c| c.name.as_str())
            .unwrap_or("unknown country")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        CountryCode::parse_known(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A set of countries as a 676-bit bitmap: membership is one shift and mask on the hot path.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CountrySet {
    bits: [u64; 11],
    len: usize,
}

impl CountrySet {
    /// Whether `code` is in the set.
    pub fn contains(&self, code: CountryCode) -> bool {
        let i = code.index();
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Adds `code`.
    pub fn insert(&mut self, code: CountryCode) {
        if !self.contains(code) {
            let i = code.index();
            self.bits[i / 64] |= 1 << (i % 64);
            self.len += 1;
        }
    }

    /// Whether nothing is in the set (an empty allow list means "all not denied").
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FromIterator<CountryCode> for CountrySet {
    fn from_iter<I: IntoIterator<Item = CountryCode>>(iter: I) -> Self {
        let mut set = CountrySet::default();
        for c in iter {
            set.insert(c);
        }
        set
    }
}

impl fmt::Debug for CountrySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_set();
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                let c = CountryCode([a, b]);
                if self.contains(c) {
                    list.entry(&c);
                }
            }
        }
        list.finish()
    }
}

/// What the embedded table knows about one country.
#[derive(Debug, Clone, PartialEq)]
pub struct CountryInfo {
    /// English short name, e.g. "North Korea".
    pub name: String,
    /// Latitude of the capital (degrees).
    pub lat: f64,
    /// Longitude of the capital (degrees).
    pub lon: f64,
    /// Radius of a disc with the country's area: how far a point "somewhere in the country" may
    /// be from its reference point, used as the accuracy of a country-only location.
    pub radius_km: f64,
}

/// The country table, keyed by code.
#[derive(Debug, Default)]
pub struct CountryTable {
    by_code: HashMap<CountryCode, CountryInfo>,
}

impl CountryTable {
    /// Parses `iso,lat,lon,radius_km,name` CSV (header row and `#` comments skipped).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut by_code = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("iso,") {
                continue;
            }
            let mut cols = line.splitn(5, ',');
            let mut next = || cols.next().map(str::trim).unwrap_or("");
            let (iso, lat, lon, radius, name) = (next(), next(), next(), next(), next());
            let bad = |what: &str| format!("line {}: {what}", n + 1);
            let code = CountryCode::parse(iso).ok_or_else(|| bad("bad country code"))?;
            let info = CountryInfo {
                lat: lat.parse().map_err(|_| bad("bad latitude"))?,
                lon: lon.parse().map_err(|_| bad("bad longitude"))?,
                radius_km: radius.parse().map_err(|_| bad("bad radius_km"))?,
                name: name.trim_matches('"').to_string(),
            };
            by_code.insert(code, info);
        }
        Ok(CountryTable { by_code })
    }

    /// Looks a country up.
    pub fn get(&self, code: CountryCode) -> Option<&CountryInfo> {
        self.by_code.get(&code)
    }

    /// The country whose English name is `name`, ignoring case ("germany" -> DE): what an HR
    /// system or IdP may write instead of the code. A scan: used at load time only.
    pub fn code_by_name(&self, name: &str) -> Option<CountryCode> {
        let n = name.trim();
        self.by_code
            .iter()
            .find(|(_, info)| info.name.eq_ignore_ascii_case(n))
            .map(|(code, _)| *code)
    }

    /// Number of countries known.
    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }
}

/// The embedded table, parsed once on first use.
pub fn table() -> &'static CountryTable {
    static TABLE: OnceLock<CountryTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        // The file is committed and checked by a test, so a parse failure is a build defect; an
        // empty table then only weakens validation instead of taking the gateway down.
        CountryTable::parse(include_str!("../data/country-coords.csv")).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses_and_knows_kp() {
        let t = CountryTable::parse(include_str!("../data/country-coords.csv")).unwrap();
        assert!(t.len() > 240, "only {} countries", t.len());
        let kp = t.get(CountryCode::parse("KP").unwrap()).unwrap();
        assert!(
            (kp.lat - 39.03).abs() < 0.2 && (kp.lon - 125.75).abs() < 0.2,
            "{kp:?}"
        );
    }

    #[test]
    fn parse_known_rejects_typos() {
        assert!(CountryCode::parse_known("kp").is_ok());
        assert!(CountryCode::parse_known("UK").unwrap_err().contains("GB"));
        assert!(CountryCode::parse_known("USA").is_err());
        assert!(CountryCode::parse_known("1A").is_err());
    }

    #[test]
    fn set_membership() {
        let set: CountrySet = ["KP", "IR"]
            .iter()
            .filter_map(|c| CountryCode::parse(c))
            .collect();
        assert!(set.contains(CountryCode::parse("KP").unwrap()));
        assert!(!set.contains(CountryCode::parse("US").unwrap()));
        assert!(!set.is_empty());
        assert!(CountrySet::default().is_empty());
    }
}
