//! The table of hosting, cloud and VPN-provider autonomous systems.
//!
//! Free geolocation data does not flag data centres, but the AS number does: a connection from
//! AS16509 comes from Amazon's network, not from anybody's home. The table is small facts (number,
//! category, name), committed in `data/asn-categories.csv` and replaceable by the operator.

use std::collections::HashMap;

use super::category::Category;

/// ASN -> (category, provider name).
#[derive(Debug, Default, Clone)]
pub struct AsnTable {
    by_asn: HashMap<u32, (Category, Box<str>)>,
}

impl AsnTable {
    /// Parses `asn,category,name` CSV; `#` comments and the header row are skipped. Errors give
    /// the 1-based line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut by_asn = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("asn,") {
                continue;
            }
            let mut cols = line.splitn(3, ',');
            let asn = cols.next().unwrap_or("").trim();
            let asn: u32 = asn
                .trim_start_matches("AS")
                .parse()
                .map_err(|_| (n + 1, format!("`{asn}` is not an AS number")))?;
            let cat = cols.next().unwrap_or("").trim();
            let category =
                Category::parse(cat).ok_or_else(|| (n + 1, format!("unknown category `{cat}`")))?;
            let name = cols.next().unwrap_or("").trim().trim_matches('"');
            if by_asn.insert(asn, (category, name.into())).is_some() {
                return Err((n + 1, format!("AS{asn} is listed twice")));
            }
        }
        Ok(AsnTable { by_asn })
    }

    /// The category and provider of `asn`, if listed.
    pub fn get(&self, asn: u32) -> Option<(Category, &str)> {
        self.by_asn.get(&asn).map(|(c, n)| (*c, &**n))
    }

    /// Number of ASNs listed.
    pub fn len(&self) -> usize {
        self.by_asn.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_asn.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_table() {
        let t = AsnTable::parse(
            "# c\nasn,category,name\n16509,hosting_provider,Amazon\nAS9009,vpn,M247\n",
        )
        .unwrap();
        assert_eq!(t.get(16509), Some((Category::HostingProvider, "Amazon")));
        assert_eq!(t.get(9009).map(|x| x.0), Some(Category::AnonymousVpn));
        assert_eq!(t.get(1), None);
    }

    #[test]
    fn rejects_duplicates_and_bad_rows() {
        assert_eq!(AsnTable::parse("1,vpn,a\n1,vpn,b\n").unwrap_err().0, 2);
        assert_eq!(AsnTable::parse("x,vpn,a\n").unwrap_err().0, 1);
        assert_eq!(AsnTable::parse("1,cafe,a\n").unwrap_err().0, 1);
    }

    #[test]
    fn embedded_table_has_the_big_clouds() {
        let t = AsnTable::parse(include_str!("../../data/asn-categories.csv")).unwrap();
        for asn in [
            16509, 14618, 8075, 15169, 396982, 24940, 14061, 9009, 209854,
        ] {
            assert!(t.get(asn).is_some(), "AS{asn} missing");
        }
    }
}
