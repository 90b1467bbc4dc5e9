//! One decision for every transport: HTTP/1.1, HTTP/2, TCP and UDP pass-through, `check` and
//! `replay` all end here.
//!
//! In: the observation of the client address, who claims to be behind it (a [`Claim`], with the
//! session it came from), reasons measured on the wire, the listener's mode and the time; the
//! runtime state (global policy, directory, per-employee and history rules) and, when the caller
//! keeps one, the history store. Out: a [`Decision`] and the user id to record.
//!
//! The steps, in order: identity trouble (a login nobody could read, sources naming different
//! people: a reason of its own, and the claim demoted to unverified), the session place (a cookie used far from its login), the global rules,
//! history (impossible travel, shared egress, residence, night work: read, then this sighting
//! recorded), the person's declaration. Nothing here touches a socket or a file; the history
//! store is memory (shared through a background link when configured).

use crate::history::{EgressKey, HistoryStore, Record, Sighting};
use crate::identity::{IdentitySource, SessionEntry, Trouble, Who};
use crate::intel::Observation;
use crate::policy::employee::{Subject, evaluate_for_employee};
use crate::policy::history as signals;
use crate::policy::session::{LoginPlace, session_reason};
use crate::policy::{Decision, Mode, Reason, ReasonCode};
use crate::state::RuntimeState;

/// Home radius used for session comparisons when the employee is unknown.
const DEFAULT_SESSION_RADIUS_KM: f64 = 100.0;

/// Someone a request names: the user name, whether it is vouched for, and the login session
/// it came from (when it came from a session cookie).
#[derive(Debug, Clone, Copy)]
pub struct Claim<'q> {
    /// The name as presented (mapped to an employee by the directory).
    pub name: &'q str,
    /// Whether something cryptographic or a trusted proxy vouches for it.
    pub verified: bool,
    /// The session whose cookie named the user.
    pub session: Option<&'q SessionEntry>,
}

impl<'q> Claim<'q> {
    /// The claim of what the identity steps found, if they found anyone.
    pub fn of(who: &'q Who) -> Option<Self> {
        let id = who.identity.as_ref()?;
        Some(Claim {
            name: &id.user,
            verified: id.verified,
            session: who
                .session
                .as_ref()
                .filter(|_| id.source == IdentitySource::Session),
        })
    }

    /// A name taken as verified (an IdP's sign-in log, an operator's `check --employee`).
    pub fn verified(name: &'q str) -> Self {
        Claim {
            name,
            verified: true,
            session: None,
        }
    }

    /// A name inferred, not proven: a pass-through connection from an address a verified login
    /// bound. The person's declaration (home, history) judges it, but it is not their proof: a
    /// hotel's or an office's shared address may carry someone else's tunnel, so their allowances
    /// and exemption do not loosen the decision, and nothing is recorded in their history.
    pub fn inferred(name: &'q str) -> Self {
        Claim {
            name,
            verified: false,
            session: None,
        }
    }
}

/// Everything one decision reads besides the observation and the state.
#[derive(Debug)]
pub struct Question<'q> {
    /// Who the request names, if anyone.
    pub claim: Option<Claim<'q>>,
    /// Why the identity steps could not name one person ([`Who::trouble`]): adds
    /// `identity_unreadable` or `identity_conflict`, and the claim is then never verified.
    pub trouble: Option<&'q Trouble>,
    /// Reasons found on the wire (RTT, MSS), when the socket peer is the client.
    pub wire: Vec<Reason>,
    /// The listener's mode.
    pub mode: Mode,
    /// When it happened (now on the live path; the log's time in `replay`).
    pub at: jiff::Timestamp,
}

impl Question<'_> {
    /// A question about an address alone (pass-through, protocol errors): no identity yet, no
    /// wire reasons, now.
    pub fn anonymous(mode: Mode) -> Self {
        Question {
            claim: None,
            trouble: None,
            wire: Vec::new(),
            mode,
            at: jiff::Timestamp::now(),
        }
    }
}

/// The outcome.
#[derive(Debug)]
pub struct Answer {
    /// Action, verdict and reasons.
    pub decision: Decision,
    /// The user id to record: the directory id when the person is known, else the name as
    /// presented.
    pub user: Option<String>,
    /// The directory id when the identity was verified and names a known employee: what may
    /// bind the client address to them (`bind_address`).
    pub verified_employee: Option<String>,
    /// Whether `user` was vouched for (and not demoted: a moved session cookie, identity
    /// trouble): the event writes it as ECS `user.id`, else as `user.name`.
    pub user_verified: bool,
}

/// Decides one request or connection. Without `history` (a one-off `check`) the history signals
/// are not computed and nothing is recorded.
pub fn decide(
    state: &RuntimeState,
    history: Option<&dyn HistoryStore>,
    obs: &Observation<'_>,
    q: Question<'_>,
) -> Answer {
    let Question {
        claim,
        trouble,
        mut wire,
        mode,
        at,
    } = q;
    wire.extend(state.policy.identity_reason(trouble));
    let Some(claim) = claim else {
        // Anonymous: the global rules (and the wire) are the whole decision; a clean allow costs
        // a few bit tests and no allocation.
        let mut reasons = state.policy.reasons(obs);
        reasons.append(&mut wire);
        return Answer {
            decision: Decision::new(reasons, mode),
            user: None,
            verified_employee: None,
            user_verified: false,
        };
    };
    let mut extra = wire;
    if let Some(entry) = claim.session {
        let radius = state
            .directory
            .as_ref()
            .and_then(|d| d.get(claim.name))
            .map_or(DEFAULT_SESSION_RADIUS_KM, |e| e.home.radius_km);
        let login = LoginPlace {
            country: entry.place.country,
            location: entry.place.location,
            accuracy_km: entry.place.accuracy_km,
        };
        extra.extend(session_reason(&login, obs, radius, state.session_rule));
    }
    // A session cookie seen somewhere other than its login may be stolen: it still names the
    // person (tightening applies) but no longer unlocks their allowances or exemption.
    let moved = extra
        .iter()
        .any(|r| r.code == ReasonCode::SessionLocationChanged);
    // Identity trouble: whatever named the person may not unlock anything either.
    let user = (claim.name, claim.verified && !moved && trouble.is_none());
    match history {
        Some(history) => with_history(state, history, obs, user, extra, mode, at),
        None => {
            let subject = subject(state, user);
            judge(state, obs, Some(user), subject, extra, mode, at)
        }
    }
}

/// Whom `user` names in the directory: looked up once per decision and handed on (with the
/// history, the same person is judged and recorded; a replay makes a million of these lookups).
fn subject<'s>(state: &'s RuntimeState, (name, verified): (&'s str, bool)) -> Subject<'s> {
    match &state.directory {
        Some(dir) => Subject::resolve(dir, Some(name), verified),
        None => Subject::Anonymous,
    }
}

/// The global rules plus `extra`, then the declaration of `subject` (whom `user` names).
fn judge(
    state: &RuntimeState,
    obs: &Observation<'_>,
    user: Option<(&str, bool)>,
    subject: Subject<'_>,
    extra: Vec<Reason>,
    mode: Mode,
    at: jiff::Timestamp,
) -> Answer {
    let mut reasons = state.policy.reasons(obs);
    reasons.extend(extra);
    let recorded = match subject {
        Subject::Known { employee, .. } => Some(employee.id.clone()),
        _ => user.map(|(name, _)| name.to_owned()),
    };
    let verified_employee = match subject {
        Subject::Known {
            employee,
            verified: true,
        } => Some(employee.id.clone()),
        _ => None,
    };
    let decision = evaluate_for_employee(reasons, obs, subject, mode, &state.employee_rules, at);
    Answer {
        decision,
        user: recorded,
        verified_employee,
        user_verified: user.is_some_and(|(_, verified)| verified),
    }
}

/// [`judge`] with history: reads what the store knows of the person, adds the history reasons
/// (impossible travel, shared egress, residence, night work), decides, then records this
/// sighting. Only verified identities are recorded: a name typed into a Basic prompt must not
/// plant sightings that later flag the real person.
fn with_history(
    state: &RuntimeState,
    history: &dyn HistoryStore,
    obs: &Observation<'_>,
    user: (&str, bool),
    mut extra: Vec<Reason>,
    mode: Mode,
    at: jiff::Timestamp,
) -> Answer {
    let rules = &state.history_rules;
    let subject = subject(state, user);
    let employee = match subject {
        Subject::Known { employee, .. } if rules.enabled => employee,
        _ => return judge(state, obs, Some(user), subject, extra, mode, at),
    };
    // Corporate egress and the person's own networks are not places and not shared egress.
    let corporate = obs.trusted_network
        || state.policy.allow_networks.lookup(obs.ip).trusted
        || employee.network_allowed(obs.ip);
    let place = match (corporate, obs.location) {
        (false, Some(location)) => Some(Sighting {
            at,
            country: obs.country,
            location: Some(location),
            accuracy_km: obs.accuracy_km.unwrap_or(0.0),
        }),
        _ => None,
    };
    // Days with sign-ins, as many as residence may reach back over (one per calendar day at most).
    let (last, mut days) = history.person(
        &employee.id,
        rules.residence_lookback_days.max(rules.residence_days) + 1,
    );
    if let (Some(now), Some(prev)) = (place, last) {
        extra.extend(signals::impossible_travel(&prev, &now, rules));
    }
    let egress = (!corporate).then(|| EgressKey::of(obs.ip));
    if let Some(key) = egress {
        let since = at
            .checked_sub(rules.shared_egress_window)
            .unwrap_or(jiff::Timestamp::MIN);
        let others = history.egress_employees(key, since);
        extra.extend(signals::shared_egress(&employee.id, &others, rules));
    }
    let mut today = signals::day_of(employee, obs, at, rules);
    if corporate {
        today.placed = false;
        today.home = false;
    }
    match days.iter_mut().find(|d| d.date == today.date) {
        Some(d) => {
            d.home |= today.home;
            d.placed |= today.placed;
            d.night |= today.night;
        }
        None => {
            days.push(today);
            days.sort_by_key(|d| d.date);
        }
    }
    extra.extend(signals::residence_mismatch(&days, employee, rules));
    extra.extend(signals::off_hours(&days, employee, rules));
    let answer = judge(state, obs, Some(user), subject, extra, mode, at);
    if user.1 {
        history.record(Record {
            employee: &employee.id,
            place,
            egress,
            day: Some(today),
        });
    }
    answer
}
