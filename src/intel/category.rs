//! Anonymizer categories: the kinds of network that hide where a person really is.
//!
//! One vocabulary serves CIDR lists, the ASN table, Anonymous-IP databases, policy lists and
//! reason codes, so a category read from any source means the same thing everywhere.

use std::fmt;

/// A kind of anonymizing or non-residential network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// A commercial VPN exit.
    AnonymousVpn,
    /// A data centre or cloud: people do not live there, their rented servers do.
    HostingProvider,
    /// A Tor exit node.
    TorExit,
    /// An open or paid public proxy.
    PublicProxy,
    /// A residential proxy network (someone's home line resold as an exit).
    ResidentialProxy,
    /// A privacy relay such as iCloud Private Relay.
    Relay,
}

impl Category {
    /// Every category, in reporting order.
    pub const ALL: [Category; 6] = [
        Category::AnonymousVpn,
        Category::HostingProvider,
        Category::TorExit,
        Category::PublicProxy,
        Category::ResidentialProxy,
        Category::Relay,
    ];

    /// The stable name used in config, events and reason codes.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::AnonymousVpn => "anonymous_vpn",
            Category::HostingProvider => "hosting_provider",
            Category::TorExit => "tor_exit",
            Category::PublicProxy => "public_proxy",
            Category::ResidentialProxy => "residential_proxy",
            Category::Relay => "relay",
        }
    }

    /// Parses a name; `vpn` and `hosting` are accepted as the short forms people write.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "anonymous_vpn" | "vpn" => Category::AnonymousVpn,
            "hosting_provider" | "hosting" => Category::HostingProvider,
            "tor_exit" | "tor" => Category::TorExit,
            "public_proxy" => Category::PublicProxy,
            "residential_proxy" => Category::ResidentialProxy,
            "relay" => Category::Relay,
            _ => return None,
        })
    }

    /// Words for sentences ("a Tor exit node").
    pub fn describe(self) -> &'static str {
        match self {
            Category::AnonymousVpn => "an anonymous VPN exit",
            Category::HostingProvider => "a hosting or cloud provider",
            Category::TorExit => "a Tor exit node",
            Category::PublicProxy => "a public proxy",
            Category::ResidentialProxy => "a residential proxy",
            Category::Relay => "a privacy relay",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Category {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Category::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown anonymizer category `{s}`; expected one of anonymous_vpn, hosting_provider, tor_exit, public_proxy, residential_proxy, relay"
            ))
        })
    }
}

/// A set of categories in one byte, so an observation carries all its flags for free.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Anonymizers(u8);

impl Anonymizers {
    /// No flags.
    pub const NONE: Anonymizers = Anonymizers(0);

    /// Whether `c` is set.
    pub fn contains(self, c: Category) -> bool {
        self.0 & c.bit() != 0
    }

    /// Sets `c`.
    pub fn insert(&mut self, c: Category) {
        self.0 |= c.bit();
    }

    /// Union of two sets.
    pub fn union(self, other: Anonymizers) -> Anonymizers {
        Anonymizers(self.0 | other.0)
    }

    /// The categories of `self` that are not in `other`.
    pub fn difference(self, other: Anonymizers) -> Anonymizers {
        Anonymizers(self.0 & !other.0)
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set categories, in [`Category::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Category> {
        Category::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Category> for Anonymizers {
    fn from_iter<I: IntoIterator<Item = Category>>(iter: I) -> Self {
        let mut set = Anonymizers::NONE;
        for c in iter {
            set.insert(c);
        }
        set
    }
}

impl fmt::Debug for Anonymizers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Category::as_str))
            .finish()
    }
}

/// What a CIDR list says about the networks in it: an anonymizer category, or `trusted`
/// (corporate egress: always allowed, never counted as a place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListCategory {
    /// The networks belong to this anonymizer category.
    Anonymizer(Category),
    /// The networks are the organisation's own egress.
    Trusted,
}

impl<'de> serde::Deserialize<'de> for ListCategory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s == "trusted" {
            return Ok(ListCategory::Trusted);
        }
        Category::parse(&s).map(ListCategory::Anonymizer).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown list category `{s}`; expected trusted, anonymous_vpn, hosting_provider, tor_exit, public_proxy, residential_proxy or relay"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
        assert_eq!(Category::parse("vpn"), Some(Category::AnonymousVpn));
        assert_eq!(Category::parse("nope"), None);
    }

    #[test]
    fn set_operations() {
        let a: Anonymizers = [Category::TorExit, Category::Relay].into_iter().collect();
        assert!(a.contains(Category::TorExit) && !a.contains(Category::AnonymousVpn));
        let b = a.union([Category::AnonymousVpn].into_iter().collect());
        assert_eq!(b.iter().count(), 3);
        assert!(Anonymizers::NONE.is_empty());
    }
}
