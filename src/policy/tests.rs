//! Unit tests of the global rules, one behaviour each.

use super::*;
use crate::intel::{ListCategory, Observation};
use std::net::IpAddr;

fn cc(s: &str) -> CountryCode {
    CountryCode::parse(s).unwrap()
}

fn obs(ip: &str, country: Option<&str>) -> Observation<'static> {
    let ip: IpAddr = ip.parse().unwrap();
    let mut o = Observation::empty(ip);
    o.country = country.map(cc);
    o
}

fn default_policy() -> Policy {
    Policy {
        sanctioned: ["KP", "IR", "CU", "SY"].iter().map(|c| cc(c)).collect(),
        block_anonymizers: [Category::TorExit].into_iter().collect(),
        flag_anonymizers: [
            Category::AnonymousVpn,
            Category::HostingProvider,
            Category::PublicProxy,
            Category::ResidentialProxy,
        ]
        .into_iter()
        .collect(),
        unknown_location: Action::Flag,
        ..Policy::default()
    }
}

#[test]
fn clean_us_address_is_allowed_without_reasons() {
    let d = default_policy().evaluate(&obs("8.8.8.8", Some("US")), Mode::Enforce);
    assert_eq!((d.verdict, d.action), (Action::Allow, Action::Allow));
    assert!(d.reasons.is_empty());
}

#[test]
fn sanctioned_country_blocks_in_enforce() {
    let d = default_policy().evaluate(&obs("175.45.176.1", Some("KP")), Mode::Enforce);
    assert_eq!(d.action, Action::Block);
    assert_eq!(d.reasons[0].code, ReasonCode::SanctionedCountry);
    assert!(
        d.reasons[0].detail.contains("North Korea"),
        "{}",
        d.reasons[0].detail
    );
}

#[test]
fn monitor_mode_turns_block_into_flag_but_keeps_verdict() {
    let d = default_policy().evaluate(&obs("175.45.176.1", Some("KP")), Mode::Monitor);
    assert_eq!(d.verdict, Action::Block);
    assert_eq!(d.action, Action::Flag);
}

#[test]
fn deny_list_blocks() {
    let p = Policy {
        deny: [cc("RU")].into_iter().collect(),
        ..default_policy()
    };
    let d = p.evaluate(&obs("5.5.5.5", Some("RU")), Mode::Enforce);
    assert_eq!(d.reasons[0].code, ReasonCode::CountryNotAllowed);
    assert_eq!(d.action, Action::Block);
}

#[test]
fn non_empty_allow_list_blocks_everything_else() {
    let p = Policy {
        allow: [cc("US"), cc("CA")].into_iter().collect(),
        ..default_policy()
    };
    assert_eq!(
        p.evaluate(&obs("1.1.1.1", Some("CA")), Mode::Enforce)
            .action,
        Action::Allow
    );
    let d = p.evaluate(&obs("1.1.1.1", Some("BR")), Mode::Enforce);
    assert_eq!(d.action, Action::Block);
    assert!(d.reasons[0].detail.contains("not on the allow list"));
}

#[test]
fn unknown_location_follows_config() {
    let mut p = default_policy();
    let d = p.evaluate(&obs("192.0.2.1", None), Mode::Enforce);
    assert_eq!(d.action, Action::Flag);
    assert_eq!(d.reasons[0].code, ReasonCode::UnknownLocation);
    p.unknown_location = Action::Block;
    assert_eq!(
        p.evaluate(&obs("192.0.2.1", None), Mode::Enforce).action,
        Action::Block
    );
    p.unknown_location = Action::Allow;
    assert!(
        p.evaluate(&obs("192.0.2.1", None), Mode::Enforce)
            .reasons
            .is_empty()
    );
}

#[test]
fn anonymizers_flag_or_block_by_category() {
    let mut o = obs("203.0.113.9", Some("US"));
    o.anonymizers.insert(Category::HostingProvider);
    o.asn = Some(16509);
    o.as_org = Some("AMAZON-02");
    let d = default_policy().evaluate(&o, Mode::Enforce);
    assert_eq!(d.action, Action::Flag);
    assert_eq!(d.reasons[0].code, ReasonCode::HostingProvider);
    assert!(
        d.reasons[0].detail.contains("AS16509 AMAZON-02"),
        "{}",
        d.reasons[0].detail
    );

    o.anonymizers.insert(Category::TorExit);
    let d = default_policy().evaluate(&o, Mode::Enforce);
    assert_eq!(d.action, Action::Block);
    assert_eq!(
        d.reasons[0].code,
        ReasonCode::TorExit,
        "strongest reason first"
    );
    assert_eq!(d.codes_csv(), "tor_exit,hosting_provider");
}

#[test]
fn unlisted_anonymizer_category_is_ignored() {
    let mut o = obs("203.0.113.9", Some("US"));
    o.anonymizers.insert(Category::Relay);
    assert!(
        default_policy()
            .evaluate(&o, Mode::Enforce)
            .reasons
            .is_empty()
    );
}

#[test]
fn allow_networks_override_everything() {
    let mut p = default_policy();
    p.allow_networks
        .add(&["175.45.176.0/22".parse().unwrap()], ListCategory::Trusted);
    p.allow_networks.propagate();
    let d = p.evaluate(&obs("175.45.176.1", Some("KP")), Mode::Enforce);
    assert_eq!(d.action, Action::Allow);
    assert!(d.reasons.is_empty());
}

#[test]
fn trusted_list_observation_is_allowed() {
    let mut o = obs("175.45.176.1", Some("KP"));
    o.trusted_network = true;
    assert_eq!(
        default_policy().evaluate(&o, Mode::Enforce).action,
        Action::Allow
    );
}

#[test]
fn ipv6_observation_is_judged_the_same() {
    let d = default_policy().evaluate(&obs("2001:db8::1", Some("IR")), Mode::Enforce);
    assert_eq!(d.action, Action::Block);
}

#[test]
fn identity_trouble_fails_closed_with_its_configured_action() {
    let mut p = default_policy();
    assert_eq!(p.identity_reason(None), None);
    let unreadable = Trouble::Unreadable("form: malformed JSON body".into());
    let r = p.identity_reason(Some(&unreadable)).expect("a reason");
    assert_eq!(
        (r.code, r.action, r.detail.as_str()),
        (
            ReasonCode::IdentityUnreadable,
            Action::Flag,
            "form: malformed JSON body"
        )
    );
    assert_eq!(r.code.as_str(), "identity_unreadable");
    p.identity_conflict = Action::Block;
    let conflict = Trouble::Conflict("identity sources disagree: form a, session b".into());
    let r = p.identity_reason(Some(&conflict)).expect("a reason");
    assert_eq!(
        (r.code.as_str(), r.action),
        ("identity_conflict", Action::Block)
    );
    assert_eq!(
        Decision::new(vec![r.clone()], Mode::Enforce).action,
        Action::Block
    );
    assert_eq!(Decision::new(vec![r], Mode::Monitor).action, Action::Flag);
}
