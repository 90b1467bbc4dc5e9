//! Reason codes: stable strings that events, metrics, alerts and the API share.

use std::cell::Cell;
use std::fmt;

use super::Action;
use crate::intel::Category;

/// Why a decision is not a plain allow. The strings never change once shipped: SIEM rules match
/// on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    /// Country denied, or not on a non-empty allow list.
    CountryNotAllowed,
    /// Country under comprehensive sanctions.
    SanctionedCountry,
    /// Farther from the declared home than its radius allows.
    OutsideHomeRadius,
    /// Not in the declared home country.
    CountryMismatch,
    /// Not in the declared home region.
    RegionMismatch,
    /// Commercial VPN exit.
    AnonymousVpn,
    /// Data centre / cloud.
    HostingProvider,
    /// Tor exit node.
    TorExit,
    /// Public proxy.
    PublicProxy,
    /// Residential proxy.
    ResidentialProxy,
    /// Privacy relay.
    Relay,
    /// Faster than travel allows since the last sighting.
    ImpossibleTravel,
    /// Several employees behind one egress address.
    SharedEgress,
    /// Persistently not where the employee declared to live.
    ResidenceMismatch,
    /// A session cookie used from somewhere else than where it was issued.
    SessionLocationChanged,
    /// Round-trip time does not fit the observed location.
    LatencyInconsistent,
    /// Segment size typical of a tunnel.
    TunnelMss,
    /// Activity at night in the declared time zone.
    OffHours,
    /// An identity not in the employee directory.
    UnknownEmployee,
    /// No database knows the location.
    UnknownLocation,
    /// The client address is not public (loopback, private, link-local): a health check, a
    /// probe or an internal user, which no database can place.
    InternalAddress,
    /// The data needed to decide was not available.
    DataUnavailable,
    /// A login (or another identity source) that should have named someone could not be read:
    /// no or unknown content type, malformed, undecodable, a missing or duplicated field, a
    /// body that stalled or was too large.
    IdentityUnreadable,
    /// Identity sources on one request named different people (login form versus session
    /// cookie, header, JWT, Basic or query; a session cookie sent with different values).
    IdentityConflict,
}

impl ReasonCode {
    /// Every code, in declaration order (`ALL[code as usize] == code`; new codes go last): for
    /// tallies kept in an array rather than a map.
    pub const ALL: [ReasonCode; 24] = [
        ReasonCode::CountryNotAllowed,
        ReasonCode::SanctionedCountry,
        ReasonCode::OutsideHomeRadius,
        ReasonCode::CountryMismatch,
        ReasonCode::RegionMismatch,
        ReasonCode::AnonymousVpn,
        ReasonCode::HostingProvider,
        ReasonCode::TorExit,
        ReasonCode::PublicProxy,
        ReasonCode::ResidentialProxy,
        ReasonCode::Relay,
        ReasonCode::ImpossibleTravel,
        ReasonCode::SharedEgress,
        ReasonCode::ResidenceMismatch,
        ReasonCode::SessionLocationChanged,
        ReasonCode::LatencyInconsistent,
        ReasonCode::TunnelMss,
        ReasonCode::OffHours,
        ReasonCode::UnknownEmployee,
        ReasonCode::UnknownLocation,
        ReasonCode::InternalAddress,
        ReasonCode::DataUnavailable,
        ReasonCode::IdentityUnreadable,
        ReasonCode::IdentityConflict,
    ];

    /// The stable string.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::CountryNotAllowed => "country_not_allowed",
            ReasonCode::SanctionedCountry => "sanctioned_country",
            ReasonCode::OutsideHomeRadius => "outside_home_radius",
            ReasonCode::CountryMismatch => "country_mismatch",
            ReasonCode::RegionMismatch => "region_mismatch",
            ReasonCode::AnonymousVpn => "anonymous_vpn",
            ReasonCode::HostingProvider => "hosting_provider",
            ReasonCode::TorExit => "tor_exit",
            ReasonCode::PublicProxy => "public_proxy",
            ReasonCode::ResidentialProxy => "residential_proxy",
            ReasonCode::Relay => "relay",
            ReasonCode::ImpossibleTravel => "impossible_travel",
            ReasonCode::SharedEgress => "shared_egress",
            ReasonCode::ResidenceMismatch => "residence_mismatch",
            ReasonCode::SessionLocationChanged => "session_location_changed",
            ReasonCode::LatencyInconsistent => "latency_inconsistent",
            ReasonCode::TunnelMss => "tunnel_mss",
            ReasonCode::OffHours => "off_hours",
            ReasonCode::UnknownEmployee => "unknown_employee",
            ReasonCode::UnknownLocation => "unknown_location",
            ReasonCode::InternalAddress => "internal_address",
            ReasonCode::DataUnavailable => "data_unavailable",
            ReasonCode::IdentityUnreadable => "identity_unreadable",
            ReasonCode::IdentityConflict => "identity_conflict",
        }
    }
}

impl From<Category> for ReasonCode {
    fn from(c: Category) -> Self {
        match c {
            Category::AnonymousVpn => ReasonCode::AnonymousVpn,
            Category::HostingProvider => ReasonCode::HostingProvider,
            Category::TorExit => ReasonCode::TorExit,
            Category::PublicProxy => ReasonCode::PublicProxy,
            Category::ResidentialProxy => ReasonCode::ResidentialProxy,
            Category::Relay => ReasonCode::Relay,
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ReasonCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One finding: its code, the action it asks for, and a sentence with the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// Machine-readable code.
    pub code: ReasonCode,
    /// What this finding alone asks for.
    pub action: Action,
    /// The human sentence ("observed North Korea (KP), a sanctioned country").
    pub detail: String,
}

impl Reason {
    /// A new reason.
    pub fn new(code: ReasonCode, action: Action, detail: String) -> Self {
        Reason {
            code,
            action,
            detail,
        }
    }

    /// A new reason whose sentence is written only when someone may read it: inside
    /// [`codes_only`] the detail is left empty and `sentence` is never called. The sentences
    /// with numbers (distances, speeds, shares) are the costly part of a flagged decision.
    pub fn explained(code: ReasonCode, action: Action, sentence: impl FnOnce() -> String) -> Self {
        let detail = if CODES_ONLY.with(Cell::get) {
            String::new()
        } else {
            sentence()
        };
        Reason::new(code, action, detail)
    }
}

thread_local! {
    /// Whether this thread is inside [`codes_only`].
    static CODES_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the reasons made by [`Reason::explained`] carrying their codes and actions but
/// no sentence (an empty `detail`).
///
/// For a caller that reads only the codes: `replay --summary` judges a million sign-ins and
/// prints reason counts, and formatting a sentence for every flagged one was a sixth of its run.
/// A scope rather than a parameter because the sentences are written deep in the policy (global
/// rules, the person's declaration, history signals) and the live proxy, which always writes
/// them, should not pay for or be able to forget an extra argument. The previous setting is
/// restored on return, even by a panic.
pub fn codes_only<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CODES_ONLY.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CODES_ONLY.with(|c| c.replace(true)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_at_its_own_index() {
        for (i, code) in ReasonCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "{code:?}");
        }
        assert_eq!(
            ReasonCode::IdentityConflict as usize + 1,
            ReasonCode::ALL.len(),
            "the last code is in ALL"
        );
    }

    #[test]
    fn codes_only_skips_the_sentence_and_restores_the_setting() {
        let made = || Reason::explained(ReasonCode::OffHours, Action::Flag, || "why".into());
        let inside = codes_only(|| {
            let outer = made();
            (codes_only(made), outer, made())
        });
        assert_eq!(
            (inside.0.code, inside.0.action),
            (ReasonCode::OffHours, Action::Flag)
        );
        assert!(inside.0.detail.is_empty() && inside.1.detail.is_empty());
        assert!(inside.2.detail.is_empty(), "nesting keeps the outer scope");
        assert_eq!(
            made().detail,
            "why",
            "outside the scope, the sentence is written"
        );
    }
}
