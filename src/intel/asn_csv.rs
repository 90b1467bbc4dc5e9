//! The text shapes of the ASN tables: `key,value,name` CSV (categories, network kinds) and the
//! `AS123 # comment` lists curated projects publish (X4BNet `lists_vpn`).
//!
//! One reader so that every table accepts the same spellings (`AS123` or `123`, `#` comments, an
//! optional header row) and reports mistakes the same way, by 1-based line.

use std::collections::HashMap;
use std::hash::Hash;

/// One row's value and the provider name (may be empty).
pub type Row<T> = (T, Box<str>);

/// A mistake: 1-based line and what is wrong.
pub type LineError = (usize, String);

/// Parses `asn,value,name` rows; `value` turns the second column into `T` or says why not.
/// A repeated ASN is an error: a table that says two things about one network is a mistake.
pub fn parse<T>(
    text: &str,
    value: impl Fn(&str) -> Result<T, String>,
) -> Result<HashMap<u32, Row<T>>, LineError> {
    parse_keyed(
        text,
        |k| parse_asn(k).ok_or_else(|| format!("`{k}` is not an AS number")),
        value,
    )
}

/// Like [`parse`], with the first column read by `key` (a table keyed by ASN or by prefix).
pub fn parse_keyed<K: Eq + Hash, T>(
    text: &str,
    key: impl Fn(&str) -> Result<K, String>,
    value: impl Fn(&str) -> Result<T, String>,
) -> Result<HashMap<K, Row<T>>, LineError> {
    let mut rows = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("asn,") {
            continue;
        }
        let mut cols = line.splitn(3, ',');
        let raw_key = cols.next().unwrap_or("").trim();
        let k = key(raw_key).map_err(|m| (n + 1, m))?;
        let v = value(cols.next().unwrap_or("").trim()).map_err(|m| (n + 1, m))?;
        let name = cols.next().unwrap_or("").trim().trim_matches('"');
        if rows.insert(k, (v, name.into())).is_some() {
            return Err((n + 1, format!("`{raw_key}` is listed twice")));
        }
    }
    Ok(rows)
}

/// Parses an `AS123 # name` list, one ASN per line (X4BNet's `input/*/ASN.txt`); the comment
/// becomes the name. Blank and `#` lines are skipped; a repeated ASN keeps its first name
/// (curated lists do repeat, and both rows say the same thing).
pub fn parse_list(text: &str) -> Result<Vec<Row<u32>>, LineError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (asn, name) = line.split_once('#').unwrap_or((line, ""));
        let asn = asn.trim();
        let asn = parse_asn(asn).ok_or_else(|| (n + 1, format!("`{asn}` is not an AS number")))?;
        if seen.insert(asn) {
            out.push((asn, name.trim().into()));
        }
    }
    Ok(out)
}

/// `AS123`, `as123` or `123`.
pub fn parse_asn(s: &str) -> Option<u32> {
    let s = s.trim();
    let digits = s
        .strip_prefix("AS")
        .or_else(|| s.strip_prefix("as"))
        .unwrap_or(s);
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yes_no(s: &str) -> Result<bool, String> {
        match s {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err(format!("`{s}` is not yes or no")),
        }
    }

    #[test]
    fn reads_rows_comments_and_header() {
        let t = parse("# c\nasn,v,name\nAS1,yes,\"One\"\n2,no,Two\n", yes_no).unwrap();
        assert_eq!(t[&1], (true, "One".into()));
        assert_eq!(t[&2], (false, "Two".into()));
    }

    #[test]
    fn mistakes_name_their_line() {
        assert_eq!(parse("x,yes,a\n", yes_no).unwrap_err().0, 1);
        assert_eq!(parse("\n1,maybe,a\n", yes_no).unwrap_err().0, 2);
        assert_eq!(parse("1,yes,a\n1,no,b\n", yes_no).unwrap_err().0, 2);
    }

    #[test]
    fn reads_curated_asn_lists_with_their_comments() {
        let l =
            parse_list("AS9009 # M247, GB (NordVPN)\n\nAS212238\t# Datacamp\nAS9009\n").unwrap();
        assert_eq!(
            l,
            vec![
                (9009, "M247, GB (NordVPN)".into()),
                (212238, "Datacamp".into())
            ]
        );
        assert_eq!(parse_list("AS1\nASx # bad\n").unwrap_err().0, 2);
    }
}
