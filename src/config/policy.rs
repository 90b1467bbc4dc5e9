//! `[policy]`: the organisation-wide rules (countries, anonymizers, trusted networks), and what
//! identity trouble does (`identity_unreadable`, `identity_conflict`: `note`, `flag` (default)
//! or `block`; never `allow`, which would make a login nobody could read an anonymous allow).

use ipnetwork::IpNetwork;
use serde::Deserialize;
use toml::Spanned;

use super::ErrAt;
use crate::country::{CountryCode, CountrySet};
use crate::intel::{Anonymizers, Category, CidrLists, ListCategory};
use crate::policy::{Action, Policy};
use crate::values::{ConfigError, Net};

/// Checks `[policy]`: a category or country may not be in two opposite lists.
pub(super) fn check(p: RawPolicy, err: ErrAt<'_>) -> Result<Policy, ConfigError> {
    let block: Anonymizers = p.block_anonymizers.get_ref().iter().copied().collect();
    let flag: Anonymizers = p.flag_anonymizers.get_ref().iter().copied().collect();
    if let Some(c) = block.iter().find(|c| flag.contains(*c)) {
        return Err(err(
            p.flag_anonymizers.span(),
            format!("`{c}` is in both block_anonymizers and flag_anonymizers"),
        ));
    }
    let deny: CountrySet = p.deny_countries.get_ref().iter().copied().collect();
    if let Some(c) = p
        .allow_countries
        .get_ref()
        .iter()
        .find(|c| deny.contains(**c))
    {
        return Err(err(
            p.allow_countries.span(),
            format!("`{c}` is in both allow_countries and deny_countries"),
        ));
    }
    for action in [&p.identity_unreadable, &p.identity_conflict] {
        if *action.get_ref() == Action::Allow {
            return Err(err(
                action.span(),
                "`allow` would let a login nobody could read, or one identity hiding another, \
                 pass as a clean allow; use `note`, `flag` or `block`"
                    .into(),
            ));
        }
    }
    if let Some(min) = &p.anonymizer_min_confidence
        && !(1..=100).contains(min.get_ref())
    {
        return Err(err(
            min.span(),
            "anonymizer_min_confidence is a vendor confidence score, 1 to 100".into(),
        ));
    }
    let mut allow_networks = CidrLists::default();
    let nets: Vec<IpNetwork> = p.allow_networks.iter().map(|n| n.0).collect();
    allow_networks.add(&nets, ListCategory::Trusted);
    allow_networks.propagate();
    Ok(Policy {
        sanctioned: p.sanctioned_countries.into_iter().collect(),
        deny,
        allow: p.allow_countries.into_inner().into_iter().collect(),
        block_anonymizers: block,
        flag_anonymizers: flag,
        allow_networks,
        unknown_location: p.unknown_location,
        internal_address: p.internal_address,
        anonymizer_min_confidence: p.anonymizer_min_confidence.map(|m| m.into_inner()),
        identity_unreadable: p.identity_unreadable.into_inner(),
        identity_conflict: p.identity_conflict.into_inner(),
    })
}

/// `[policy]` as written; unset lists take the defaults below.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default = "default_sanctioned")]
    sanctioned_countries: Vec<CountryCode>,
    #[serde(default = "empty_countries")]
    deny_countries: Spanned<Vec<CountryCode>>,
    #[serde(default = "empty_countries")]
    allow_countries: Spanned<Vec<CountryCode>>,
    #[serde(default = "default_block")]
    block_anonymizers: Spanned<Vec<Category>>,
    #[serde(default = "default_flag")]
    flag_anonymizers: Spanned<Vec<Category>>,
    #[serde(default)]
    allow_networks: Vec<Net>,
    #[serde(default = "default_unknown")]
    unknown_location: Action,
    /// `internal_address`: a client address that is not public (default `note`).
    #[serde(default = "default_internal")]
    internal_address: Action,
    /// Below this vendor confidence, a scored database's lone anonymizer flag is only noted.
    anonymizer_min_confidence: Option<Spanned<u8>>,
    /// `identity_unreadable`: a login whose name could not be read (default `flag`).
    #[serde(default = "default_identity")]
    identity_unreadable: Spanned<Action>,
    /// `identity_conflict`: identity sources naming different people (default `flag`).
    #[serde(default = "default_identity")]
    identity_conflict: Spanned<Action>,
}

impl Default for RawPolicy {
    fn default() -> Self {
        RawPolicy {
            sanctioned_countries: default_sanctioned(),
            deny_countries: empty_countries(),
            allow_countries: empty_countries(),
            block_anonymizers: default_block(),
            flag_anonymizers: default_flag(),
            allow_networks: Vec::new(),
            unknown_location: default_unknown(),
            internal_address: default_internal(),
            anonymizer_min_confidence: None,
            identity_unreadable: default_identity(),
            identity_conflict: default_identity(),
        }
    }
}

fn default_sanctioned() -> Vec<CountryCode> {
    ["KP", "IR", "CU", "SY"]
        .iter()
        .filter_map(|c| CountryCode::parse(c))
        .collect()
}

fn empty_countries() -> Spanned<Vec<CountryCode>> {
    Spanned::new(0..0, Vec::new())
}

fn default_block() -> Spanned<Vec<Category>> {
    Spanned::new(0..0, vec![Category::TorExit])
}

fn default_flag() -> Spanned<Vec<Category>> {
    Spanned::new(
        0..0,
        vec![
            Category::AnonymousVpn,
            Category::HostingProvider,
            Category::PublicProxy,
            Category::ResidentialProxy,
        ],
    )
}

fn default_identity() -> Spanned<Action> {
    Spanned::new(0..0, Action::Flag)
}

fn default_unknown() -> Action {
    Action::Flag
}

fn default_internal() -> Action {
    Action::Note
}
