//! The decision: allow, flag or block, and why.
//!
//! Pure functions of an [`Observation`] and the configured [`Policy`]: no sockets, no files, no
//! clock. That is what lets the heart of the product be tested exhaustively and lets `check` and
//! `replay` explain exactly what the live proxy would do.

pub mod employee;
pub mod history;
pub mod reason;
pub mod session;
pub mod wire;

pub use reason::{Reason, ReasonCode};

use std::fmt;

use crate::client_addr::is_internal;
use crate::country::{CountryCode, CountrySet};
use crate::identity::Trouble;
use crate::intel::{Anonymizers, Category, CidrLists, Observation};

/// What is done with a connection. Ordered: a stronger action wins when reasons disagree.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Forward, record at most once per interval.
    #[default]
    Allow,
    /// Forward and record: evidence that strengthens other evidence but is not worth a review
    /// on its own (a tunnel-sized MSS, a single domestic trip).
    Note,
    /// Forward, and record for review.
    Flag,
    /// Refuse (403 / close), and record.
    Block,
}

impl Action {
    /// Every action, mildest first: what a filter on actions accepts (CLI, API, review page).
    pub const ALL: [Action; 4] = [Action::Allow, Action::Note, Action::Flag, Action::Block];

    /// The stable names of [`Action::ALL`].
    pub const NAMES: [&'static str; 4] = ["allow", "note", "flag", "block"];

    /// The action named `name` (one of [`Action::NAMES`]).
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The stable name in events and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Note => "note",
            Action::Flag => "flag",
            Action::Block => "block",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a listener carries out blocks. `monitor` is how a deployment starts: every verdict is
/// recorded, nobody is locked out, and IT learns what enforcing would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Record and annotate; a `block` verdict is carried out as `flag`.
    Monitor,
    /// Carry out the verdict.
    Enforce,
}

impl Mode {
    /// The stable name in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
        }
    }
}

/// The outcome for one connection or request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What the policy concluded.
    pub verdict: Action,
    /// What is actually done: the verdict, softened from `block` to `flag` in monitor mode.
    pub action: Action,
    /// The mode that applied.
    pub mode: Mode,
    /// Every reason found, strongest first; empty for a clean allow.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// Combines reasons under a mode.
    pub fn new(mut reasons: Vec<Reason>, mode: Mode) -> Self {
        reasons.sort_by_key(|r| std::cmp::Reverse(r.action));
        let verdict = reasons
            .iter()
            .map(|r| r.action)
            .max()
            .unwrap_or(Action::Allow);
        let action = match (mode, verdict) {
            (Mode::Monitor, Action::Block) => Action::Flag,
            (_, v) => v,
        };
        Decision {
            verdict,
            action,
            mode,
            reasons,
        }
    }

    /// Whether the event may be folded by the allow throttle: a clean allow, or a decision whose
    /// only reasons are notes of an internal address (health checks and probes, which repeat
    /// every few seconds and prove nothing new). Anything stronger is always written.
    pub fn is_routine(&self) -> bool {
        self.action == self.verdict
            && match self.action {
                Action::Allow => true,
                Action::Note => self
                    .reasons
                    .iter()
                    .all(|r| r.code == ReasonCode::InternalAddress),
                _ => false,
            }
    }

    /// Reason codes joined by commas, for the annotation header.
    pub fn codes_csv(&self) -> String {
        let mut s = String::new();
        for (i, r) in self.reasons.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(r.code.as_str());
        }
        s
    }
}

/// The organisation-wide rules (`[policy]`).
#[derive(Debug)]
pub struct Policy {
    /// Always blocked (comprehensive sanctions).
    pub sanctioned: CountrySet,
    /// Blocked.
    pub deny: CountrySet,
    /// When not empty, only these countries are fine.
    pub allow: CountrySet,
    /// Anonymizer categories that block.
    pub block_anonymizers: Anonymizers,
    /// Anonymizer categories that flag.
    pub flag_anonymizers: Anonymizers,
    /// Networks always allowed (corporate egress); stored as a `trusted` list.
    pub allow_networks: CidrLists,
    /// What to do when no database knows the country.
    pub unknown_location: Action,
    /// What to do with a client address that is not public (default `note`, throttled like an
    /// allow): health checks and probes are not suspects.
    pub internal_address: Action,
    /// Anonymizer flags that only a scored database reports, with a confidence below this, are
    /// noted instead of flagged or blocked (`[policy] anonymizer_min_confidence`).
    pub anonymizer_min_confidence: Option<u8>,
    /// What to do when a login or identity source could not be read (`identity_unreadable`).
    pub identity_unreadable: Action,
    /// What to do when identity sources name different people (`identity_conflict`).
    pub identity_conflict: Action,
}

impl Default for Policy {
    /// No lists, and identity trouble flagged: even a policy built from nothing fails closed.
    fn default() -> Self {
        Policy {
            sanctioned: CountrySet::default(),
            deny: CountrySet::default(),
            allow: CountrySet::default(),
            block_anonymizers: Anonymizers::default(),
            flag_anonymizers: Anonymizers::default(),
            allow_networks: CidrLists::default(),
            unknown_location: Action::Allow,
            internal_address: Action::Note,
            anonymizer_min_confidence: None,
            identity_unreadable: Action::Flag,
            identity_conflict: Action::Flag,
        }
    }
}

impl Policy {
    /// Evaluates the global rules for one observation.
    pub fn evaluate(&self, obs: &Observation<'_>, mode: Mode) -> Decision {
        Decision::new(self.reasons(obs), mode)
    }

    /// The reasons the global rules find, unordered. Allocation happens only when there is
    /// something to say, so a clean allow costs a few bit tests.
    pub fn reasons(&self, obs: &Observation<'_>) -> Vec<Reason> {
        if obs.trusted_network || self.allow_networks.lookup(obs.ip).trusted {
            return Vec::new();
        }
        let mut reasons = Vec::new();
        match obs.country {
            Some(cc) => self.country_reasons(cc, &mut reasons),
            None if is_internal(obs.ip) => {
                if self.internal_address != Action::Allow {
                    reasons.push(Reason::explained(
                        ReasonCode::InternalAddress,
                        self.internal_address,
                        || {
                            format!(
                                "{} is an internal address (not public, so no database places it)",
                                obs.ip
                            )
                        },
                    ));
                }
            }
            None => {
                if self.unknown_location != Action::Allow {
                    reasons.push(Reason::explained(
                        ReasonCode::UnknownLocation,
                        self.unknown_location,
                        || format!("no database knows where {} is", obs.ip),
                    ));
                }
            }
        }
        for category in obs.anonymizers.iter() {
            let mut action = if self.block_anonymizers.contains(category) {
                Action::Block
            } else if self.flag_anonymizers.contains(category) {
                Action::Flag
            } else {
                continue;
            };
            let mut below = None;
            if let (Some(min), Some(detail)) =
                (self.anonymizer_min_confidence, &obs.anonymizer_detail)
                && detail.sole.contains(category)
                && let Some(c) = detail.confidence
                && c < min
            {
                action = Action::Note;
                below = Some((c, min));
            }
            reasons.push(Reason::explained(
                ReasonCode::from(category),
                action,
                || {
                    let mut sentence = anonymizer_sentence(obs, category);
                    if let Some((c, min)) = below {
                        sentence.push_str(&format!(
                            "; confidence {c} is below the policy minimum {min}, so only noted"
                        ));
                    }
                    sentence
                },
            ));
        }
        reasons
    }

    /// The reason for a request whose identity steps could not name one person: fail closed,
    /// never a silent anonymous allow. `None` when they could.
    pub fn identity_reason(&self, trouble: Option<&Trouble>) -> Option<Reason> {
        let (code, action, why) = match trouble? {
            Trouble::Unreadable(why) => (
                ReasonCode::IdentityUnreadable,
                self.identity_unreadable,
                why,
            ),
            Trouble::Conflict(why) => (ReasonCode::IdentityConflict, self.identity_conflict, why),
        };
        Some(Reason::new(code, action, why.clone()))
    }

    fn country_reasons(&self, cc: CountryCode, reasons: &mut Vec<Reason>) {
        if self.sanctioned.contains(cc) {
            reasons.push(Reason::explained(
                ReasonCode::SanctionedCountry,
                Action::Block,
                || format!("observed {} ({cc}), a sanctioned country", cc.name()),
            ));
        } else if self.deny.contains(cc) {
            reasons.push(Reason::explained(
                ReasonCode::CountryNotAllowed,
                Action::Block,
                || format!("observed {} ({cc}), which is on the deny list", cc.name()),
            ));
        } else if !self.allow.is_empty() && !self.allow.contains(cc) {
            reasons.push(Reason::explained(
                ReasonCode::CountryNotAllowed,
                Action::Block,
                || {
                    format!(
                        "observed {} ({cc}), which is not on the allow list",
                        cc.name()
                    )
                },
            ));
        }
    }
}

fn anonymizer_sentence(obs: &Observation<'_>, category: Category) -> String {
    let mut s = network_sentence(obs, category);
    if let Some(detail) = obs
        .anonymizer_detail
        .as_ref()
        .filter(|d| d.flags.contains(category))
        .and_then(|d| d.describe())
    {
        s.push_str(&format!(": {detail}"));
    }
    s
}

fn network_sentence(obs: &Observation<'_>, category: Category) -> String {
    match (obs.asn, obs.as_org) {
        (Some(asn), Some(org)) => format!(
            "{} belongs to {} (AS{asn} {org})",
            obs.ip,
            category.describe()
        ),
        (Some(asn), None) => format!("{} belongs to {} (AS{asn})", obs.ip, category.describe()),
        _ => format!("{} belongs to {}", obs.ip, category.describe()),
    }
}

#[cfg(test)]
mod tests;
