//! CIDR list files: one network per line, `#` comments, each file tagged with a category.
//!
//! Lists are how operators add what databases do not know: the Tor exit list, a VPN provider's
//! ranges, or their own corporate egress (`trusted`). All lists are merged into one prefix trie per
//! address family; a network inherits the flags of every list network that covers it, so one
//! longest-prefix match answers for all lists at once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use prefix_trie::PrefixMap;

use super::category::{Anonymizers, ListCategory};
use super::{DataError, DataVersion};

/// What the lists say about one network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFlags {
    /// Anonymizer categories from anonymizer lists.
    pub anonymizers: Anonymizers,
    /// Present in a `trusted` (corporate egress) list.
    pub trusted: bool,
}

impl ListFlags {
    fn add(&mut self, category: ListCategory) {
        match category {
            ListCategory::Anonymizer(c) => self.anonymizers.insert(c),
            ListCategory::Trusted => self.trusted = true,
        }
    }

    fn union(self, other: ListFlags) -> ListFlags {
        ListFlags {
            anonymizers: self.anonymizers.union(other.anonymizers),
            trusted: self.trusted || other.trusted,
        }
    }
}

/// All loaded lists.
#[derive(Default)]
pub struct CidrLists {
    v4: PrefixMap<Ipv4Network, ListFlags>,
    v6: PrefixMap<Ipv6Network, ListFlags>,
    versions: Vec<DataVersion>,
    networks: usize,
}

impl std::fmt::Debug for CidrLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CidrLists")
            .field("networks", &self.networks)
            .field("versions", &self.versions)
            .finish()
    }
}

/// Parses list text. Errors carry the 1-based line number.
pub fn parse_list(text: &str) -> Result<Vec<IpNetwork>, (usize, String)> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let net = if line.contains('/') {
            line.parse::<IpNetwork>()
                .map_err(|e| (n + 1, format!("`{line}` is not a network: {e}")))?
        } else {
            let ip: IpAddr = line.parse().map_err(|_| {
                (
                    n + 1,
                    format!("`{line}` is not an IP address or CIDR network"),
                )
            })?;
            IpNetwork::from(ip)
        };
        out.push(net);
    }
    Ok(out)
}

impl CidrLists {
    /// Loads each `(path, category)` list. A missing, unreadable, malformed or empty file is an
    /// error naming it: a list that silently loads nothing would silently allow everything.
    pub fn load(sources: &[(impl AsRef<Path>, ListCategory)]) -> Result<Self, DataError> {
        let mut lists = CidrLists::default();
        for (path, category) in sources {
            let path = path.as_ref();
            let label = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| DataError::new(&label, format!("cannot read list: {e}")))?;
            let nets = parse_list(&text)
                .map_err(|(line, msg)| DataError::new(&format!("{label}:{line}"), msg))?;
            if nets.is_empty() {
                return Err(DataError::new(&label, "list has no networks"));
            }
            let modified = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            lists.versions.push(DataVersion {
                source: label,
                kind: format!("list:{}", category_name(*category)),
                built_epoch: modified,
            });
            lists.add(&nets, *category);
        }
        lists.propagate();
        Ok(lists)
    }

    /// Adds networks from memory (tests, and the policy's `allow_networks`).
    pub fn add(&mut self, nets: &[IpNetwork], category: ListCategory) {
        for net in nets {
            match net {
                IpNetwork::V4(n) => {
                    let key = Ipv4Network::new(n.network(), n.prefix()).unwrap_or(*n);
                    self.v4.entry(key).or_default().add(category);
                }
                IpNetwork::V6(n) => {
                    let key = Ipv6Network::new(n.network(), n.prefix()).unwrap_or(*n);
                    self.v6.entry(key).or_default().add(category);
                }
            }
            self.networks += 1;
        }
    }

    /// Makes every network carry the flags of the networks that cover it, so a longest-prefix
    /// match alone answers for all lists. Call after the last `add`.
    pub fn propagate(&mut self) {
        let v4: Vec<_> = self.v4.iter().map(|(p, _)| p).collect();
        for p in v4 {
            let merged = self
                .v4
                .cover(&p)
                .fold(ListFlags::default(), |acc, (_, f)| acc.union(*f));
            if let Some(f) = self.v4.get_mut(&p) {
                *f = merged;
            }
        }
        let v6: Vec<_> = self.v6.iter().map(|(p, _)| p).collect();
        for p in v6 {
            let merged = self
                .v6
                .cover(&p)
                .fold(ListFlags::default(), |acc, (_, f)| acc.union(*f));
            if let Some(f) = self.v6.get_mut(&p) {
                *f = merged;
            }
        }
    }

    /// The flags for `ip` (IPv4-mapped IPv6 must already be normalised).
    pub fn lookup(&self, ip: IpAddr) -> ListFlags {
        match ip {
            IpAddr::V4(a) => lookup_v4(&self.v4, a),
            IpAddr::V6(a) => lookup_v6(&self.v6, a),
        }
    }

    /// Number of networks loaded.
    pub fn len(&self) -> usize {
        self.networks
    }

    /// Whether no list is loaded.
    pub fn is_empty(&self) -> bool {
        self.networks == 0
    }

    /// One version entry per list file.
    pub fn versions(&self) -> &[DataVersion] {
        &self.versions
    }
}

fn lookup_v4(map: &PrefixMap<Ipv4Network, ListFlags>, a: Ipv4Addr) -> ListFlags {
    if map.is_empty() {
        return ListFlags::default();
    }
    let host = Ipv4Network::from(a);
    map.get_lpm(&host).map(|(_, f)| *f).unwrap_or_default()
}

fn lookup_v6(map: &PrefixMap<Ipv6Network, ListFlags>, a: Ipv6Addr) -> ListFlags {
    if map.is_empty() {
        return ListFlags::default();
    }
    let host = Ipv6Network::from(a);
    map.get_lpm(&host).map(|(_, f)| *f).unwrap_or_default()
}

fn category_name(c: ListCategory) -> &'static str {
    match c {
        ListCategory::Anonymizer(c) => c.as_str(),
        ListCategory::Trusted => "trusted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intel::category::Category;

    fn nets(s: &str) -> Vec<IpNetwork> {
        parse_list(s).unwrap()
    }

    #[test]
    fn parses_comments_blank_lines_and_bare_addresses() {
        let n = nets("# Tor exits\n\n1.2.3.4\n10.0.0.0/8 # office\n2001:db8::/32\n");
        assert_eq!(n.len(), 3);
        assert_eq!(n[0].prefix(), 32);
    }

    #[test]
    fn reports_bad_line_number() {
        let err = parse_list("1.2.3.0/24\nnot-an-ip\n").unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("not-an-ip"));
    }

    #[test]
    fn nested_networks_carry_all_flags() {
        let mut l = CidrLists::default();
        l.add(
            &nets("10.0.0.0/8"),
            ListCategory::Anonymizer(Category::HostingProvider),
        );
        l.add(
            &nets("10.1.0.0/16"),
            ListCategory::Anonymizer(Category::AnonymousVpn),
        );
        l.add(&nets("2001:db8::/32"), ListCategory::Trusted);
        l.propagate();
        let f = l.lookup("10.1.2.3".parse().unwrap());
        assert!(f.anonymizers.contains(Category::HostingProvider));
        assert!(f.anonymizers.contains(Category::AnonymousVpn));
        let f = l.lookup("10.2.0.1".parse().unwrap());
        assert!(!f.anonymizers.contains(Category::AnonymousVpn));
        assert!(l.lookup("2001:db8::5".parse().unwrap()).trusted);
        assert_eq!(l.lookup("192.0.2.1".parse().unwrap()), ListFlags::default());
    }

    #[test]
    fn non_canonical_network_is_normalised() {
        let mut l = CidrLists::default();
        l.add(
            &nets("10.1.2.3/16"),
            ListCategory::Anonymizer(Category::TorExit),
        );
        l.propagate();
        assert!(
            l.lookup("10.1.200.1".parse().unwrap())
                .anonymizers
                .contains(Category::TorExit)
        );
    }
}
