//! The table of hosting, cloud and VPN-provider autonomous systems.
//!
//! Free geolocation data does not flag data centres, but the AS number does: a connection from
//! AS16509 comes from Amazon's network, not from anybody's home. The embedded table is three
//! layers, each correcting the one before: X4BNet's curated datacenter ASNs (`hosting_provider`),
//! its VPN-provider ASNs (`anonymous_vpn`: a VPN brand's exits are not plain hosting), then the
//! hand table `data/asn-categories.csv`. An operator's `[data] asn_table` is one more layer on
//! top; its category `none` takes an ASN out of the layers below.

use std::collections::HashMap;

use super::category::Category;

/// ASN -> (category, provider name); a `None` category is a correction that unlists the ASN.
#[derive(Debug, Default, Clone)]
pub struct AsnTable {
    by_asn: HashMap<u32, (Option<Category>, Box<str>)>,
}

impl AsnTable {
    /// Parses `asn,category,name` CSV (`none` unlists an ASN of a lower layer); `#` comments and
    /// the header row are skipped. Errors give the 1-based line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let by_asn = super::asn_csv::parse(text, |cat| match cat {
            "none" => Ok(None),
            _ => Category::parse(cat).map(Some).ok_or_else(|| {
                format!("unknown category `{cat}`; expected a category name or none")
            }),
        })?;
        Ok(AsnTable { by_asn })
    }

    /// Reads an `AS123 # name` list whose every ASN is `category`.
    pub fn from_list(text: &str, category: Category) -> Result<Self, (usize, String)> {
        let by_asn = super::asn_csv::parse_list(text)?
            .into_iter()
            .map(|(asn, name)| (asn, (Some(category), name)))
            .collect();
        Ok(AsnTable { by_asn })
    }

    /// This table corrected by `over`: where both list an ASN, `over` wins.
    pub fn overlay(mut self, over: AsnTable) -> Self {
        self.by_asn.extend(over.by_asn);
        self
    }

    /// The category and provider of `asn`, if listed.
    pub fn get(&self, asn: u32) -> Option<(Category, &str)> {
        match self.by_asn.get(&asn) {
            Some((Some(c), n)) => Some((*c, &**n)),
            _ => None,
        }
    }

    /// Number of ASNs listed with a category.
    pub fn len(&self) -> usize {
        self.by_asn.values().filter(|(c, _)| c.is_some()).count()
    }

    /// Whether no ASN is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn a_later_layer_corrects_and_unlists() {
        let base = AsnTable::parse("1,hosting,A\n2,hosting,B\n3,hosting,C\n").unwrap();
        let over = AsnTable::parse("2,vpn,B VPN\n3,none,C is an ISP\n").unwrap();
        let t = base.overlay(over);
        assert_eq!(t.get(1), Some((Category::HostingProvider, "A")));
        assert_eq!(t.get(2), Some((Category::AnonymousVpn, "B VPN")));
        assert_eq!(t.get(3), None);
        assert_eq!(t.len(), 2);
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
