//! Per-employee rules: does this connection fit where the person said they live?
//!
//! The global rules ([`Policy::reasons`](super::Policy::reasons)) know only the address. Once an
//! identity is known, locgate also compares the observation with that person's declaration in the
//! employee directory: the home country, region and radius, plus the person's own allowances
//! (extra countries, announced travel, own networks, a mode override).
//!
//! Identities differ in how far they can be believed. A signed token or a client certificate
//! cannot be forged by the person at the keyboard; a username typed into a form can. So an
//! identity may always **tighten** the decision (mismatch and radius reasons apply to anyone who
//! claims to be this person), but only a **verified** identity may **loosen** it: otherwise a
//! fraudster would simply claim to be the colleague who is exempt or on holiday in the right
//! country.
//!
//! Like the rest of `policy`, this is a pure function: the time is an argument, not a clock.

use jiff::Timestamp;

use super::{Action, Decision, Mode, Reason, ReasonCode};
use crate::country;
use crate::employees::{Directory, Employee, EmployeeMode};
use crate::geo;
use crate::intel::{LatLon, LocationPrecision, Observation};

/// What each per-employee finding asks for. Every rule defaults to `flag`: a mismatch is a reason
/// for IT to look, not on its own proof of fraud (declarations go stale, data is imprecise). A
/// rule set to `allow` is switched off and adds no reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmployeeRules {
    /// Observed outside the home country, its allowed countries and any open travel window.
    pub country_mismatch: Action,
    /// Observed farther from the declared home than its radius and the data's accuracy allow,
    /// in another country.
    pub outside_home_radius: Action,
    /// The same, inside the home country: one business trip is not evidence, a pattern is, and
    /// `residence_mismatch` (history) judges the pattern. Default `note`.
    pub outside_home_radius_domestic: Action,
    /// Observed in the home country but another region than declared. Default `note`, like a
    /// domestic trip outside the radius: `residence_mismatch` judges the pattern.
    pub region_mismatch: Action,
    /// An identity the directory does not know.
    pub unknown_employee: Action,
}

impl Default for EmployeeRules {
    fn default() -> Self {
        EmployeeRules {
            country_mismatch: Action::Flag,
            outside_home_radius: Action::Flag,
            outside_home_radius_domestic: Action::Note,
            region_mismatch: Action::Note,
            unknown_employee: Action::Flag,
        }
    }
}

/// Who is making the request, as far as locgate can tell.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// No identity was presented (or none could be extracted).
    Anonymous,
    /// An identity was presented but the directory does not know it.
    Unknown {
        /// The identity as presented.
        name: &'a str,
    },
    /// A person in the directory.
    Known {
        /// Their declaration.
        employee: &'a Employee,
        /// Whether the identity came from a source an attacker cannot forge (a verified token
        /// signature, a client certificate). Only then may the person's allowances loosen the
        /// decision.
        verified: bool,
    },
}

impl<'a> Subject<'a> {
    /// Looks `name` up in `directory`: no name is `Anonymous`, a name the directory lacks is
    /// `Unknown`, otherwise `Known` with the given `verified`.
    pub fn resolve(directory: &'a Directory, name: Option<&'a str>, verified: bool) -> Self {
        match name {
            None => Subject::Anonymous,
            Some(name) => match directory.get(name) {
                Some(employee) => Subject::Known { employee, verified },
                None => Subject::Unknown { name },
            },
        }
    }
}

/// Evaluate one request for a (possibly) identified person. `verified` (in [`Subject::Known`])
/// says whether the identity came from a source an attacker cannot forge. `global` are the
/// reasons from [`Policy::reasons`](super::Policy::reasons) for the same observation; `at` is the
/// request time, for travel windows.
///
/// * `Anonymous`: the global decision under the listener mode.
/// * `Unknown`: plus `unknown_employee`.
/// * `Known`: plus `country_mismatch`, `outside_home_radius` and `region_mismatch` as they apply.
///   For a verified identity only: a country in the person's `allow_countries` or an open travel
///   window clears those three and a global `country_not_allowed` (never `sanctioned_country`);
///   the person's own networks clear everything but `sanctioned_country`; `mode = monitor |
///   enforce` replaces the listener mode; `mode = exempt` carries out `allow` while keeping the
///   verdict and reasons, so the event still shows what would have happened.
///
/// An exempt decision is recognisable as `action == Allow` with a stronger `verdict` (monitor mode
/// never softens below `flag`).
pub fn evaluate_for_employee(
    global: Vec<Reason>,
    obs: &Observation<'_>,
    who: Subject<'_>,
    listener_mode: Mode,
    rules: &EmployeeRules,
    at: Timestamp,
) -> Decision {
    match who {
        Subject::Anonymous => Decision::new(global, listener_mode),
        Subject::Unknown { name } => {
            let mut reasons = global;
            push(
                &mut reasons,
                ReasonCode::UnknownEmployee,
                rules.unknown_employee,
                || format!("identity `{name}` is not in the employee directory"),
            );
            Decision::new(reasons, listener_mode)
        }
        Subject::Known { employee, verified } => {
            known(global, obs, employee, verified, listener_mode, rules, at)
        }
    }
}

fn known(
    global: Vec<Reason>,
    obs: &Observation<'_>,
    employee: &Employee,
    verified: bool,
    listener_mode: Mode,
    rules: &EmployeeRules,
    at: Timestamp,
) -> Decision {
    // What an unverified identity asks for is ignored entirely: only verified ones loosen.
    let own_mode = if verified { employee.mode } else { None };
    let mode = match own_mode {
        Some(EmployeeMode::Monitor) => Mode::Monitor,
        Some(EmployeeMode::Enforce) => Mode::Enforce,
        Some(EmployeeMode::Exempt) | None => listener_mode,
    };

    let mut reasons = global;
    if verified && employee.network_allowed(obs.ip) {
        reasons.retain(|r| r.code == ReasonCode::SanctionedCountry);
    } else {
        let allowed_here = obs
            .country
            .is_some_and(|cc| employee.allows_country(cc, at));
        if verified && allowed_here {
            reasons.retain(|r| r.code != ReasonCode::CountryNotAllowed);
        } else {
            location_reasons(obs, employee, rules, allowed_here, &mut reasons);
        }
    }

    // Exempt carries out `allow`, except where the law decides: sanctions are not an HR exception.
    let sanctioned = reasons
        .iter()
        .any(|r| r.code == ReasonCode::SanctionedCountry);
    let mut decision = Decision::new(reasons, mode);
    if own_mode == Some(EmployeeMode::Exempt) && !sanctioned {
        decision.action = Action::Allow;
    }
    decision
}

/// The reasons that compare the observation with the declared home. `would_allow` says that the
/// person's allowances cover the observed country but were not applied (unverified identity), so
/// the sentence can say why.
fn location_reasons(
    obs: &Observation<'_>,
    employee: &Employee,
    rules: &EmployeeRules,
    would_allow: bool,
    reasons: &mut Vec<Reason>,
) {
    // Emitted in reason-code order (radius, country, region) so equal-action reasons always list
    // the same way.
    let radius_action = if obs.country == Some(employee.home.country) {
        rules.outside_home_radius_domestic
    } else {
        rules.outside_home_radius
    };
    if radius_action != Action::Allow
        && let Some(outside) = outside_radius(obs, employee)
    {
        reasons.push(Reason::explained(
            ReasonCode::OutsideHomeRadius,
            radius_action,
            || outside.sentence(obs, employee),
        ));
    }

    let home = &employee.home;
    if let Some(cc) = obs.country
        && cc != home.country
    {
        push(
            reasons,
            ReasonCode::CountryMismatch,
            rules.country_mismatch,
            || {
                let mut s = format!(
                    "observed {} ({cc}), not the declared home country {} ({})",
                    cc.name(),
                    home.country.name(),
                    home.country
                );
                if would_allow {
                    s.push_str(
                    "; the employee's allowed countries and travel were not applied because the identity is not verified",
                );
                }
                s
            },
        );
    }

    if obs.country == Some(home.country)
        && obs.network_kind.is_none()
        && let (Some(declared), Some(observed)) = (home.region.as_deref(), obs.region)
        && !same_text(declared, observed)
    {
        push(
            reasons,
            ReasonCode::RegionMismatch,
            rules.region_mismatch,
            || {
                format!(
                    "observed region {observed}, {}, not the declared home region {declared}",
                    home.country
                )
            },
        );
    }
}

/// Floating-point slack (1 mm) so that a point exactly on the radius counts as inside.
const ROUNDING_KM: f64 = 1e-6;

/// A point with the distance around it that still counts as "there".
struct Disc {
    centre: LatLon,
    radius_km: f64,
    country_level: bool,
}

/// How far outside the home radius an observation is: what the `outside_home_radius` sentence
/// reports.
struct Outside {
    home_disc: Disc,
    obs_disc: Disc,
    distance: f64,
}

/// How far outside the home radius the observation is, or `None` when it may be within it (or
/// there is nothing to measure).
///
/// The gap is the great-circle distance between the two points minus the home radius minus the
/// observation's accuracy radius; only a gap above zero counts, so imprecise data never accuses.
/// When either side is known only as a country, the country's capital and its size radius stand
/// in; if that country is also the home country, the data cannot tell anything finer than
/// "in the home country" and no radius reason is given.
fn outside_radius(obs: &Observation<'_>, employee: &Employee) -> Option<Outside> {
    let home = &employee.home;
    let home_disc = match home.location {
        Some(centre) => Disc {
            centre,
            radius_km: home.radius_km,
            country_level: false,
        },
        None => {
            let info = country::table().get(home.country)?;
            Disc {
                centre: LatLon {
                    lat: info.lat,
                    lon: info.lon,
                },
                radius_km: home.radius_km.max(info.radius_km),
                country_level: true,
            }
        }
    };
    let obs_disc = observed_disc(obs)?;
    if (home_disc.country_level || obs_disc.country_level) && obs.country == Some(home.country) {
        return None;
    }
    let distance = geo::distance_km(home_disc.centre, obs_disc.centre);
    let gap = distance - home_disc.radius_km - obs_disc.radius_km;
    // NaN (bad database coordinates) is unordered: no accusation without a number.
    if gap.partial_cmp(&ROUNDING_KM) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    Some(Outside {
        home_disc,
        obs_disc,
        distance,
    })
}

impl Outside {
    /// The sentence: both places, the distance, the radii and how each side was located.
    fn sentence(&self, obs: &Observation<'_>, employee: &Employee) -> String {
        let Outside {
            home_disc,
            obs_disc,
            distance,
        } = self;
        let home = &employee.home;
        let mut s = format!(
            "observed {}, {} km from declared home {} (radius {} km",
            obs.place(),
            km(*distance),
            home.place(),
            km(home_disc.radius_km)
        );
        if obs_disc.radius_km > 0.0 {
            s.push_str(&format!(
                ", location accurate to {} km",
                km(obs_disc.radius_km)
            ));
        }
        s.push(')');
        if let Some(kind) = obs.network_kind {
            match obs.as_org {
                Some(org) => s.push_str(&format!("; {org}, {}", kind.describe())),
                None => s.push_str(&format!("; {}", kind.describe())),
            }
        }
        // A gateway-located network was measured from its point (its sentence is above), not from
        // a capital.
        let obs_capital = obs_disc.country_level && obs.network_kind.is_none();
        match (home_disc.country_level, obs_capital) {
            (false, false) => {}
            (true, false) => s.push_str(&format!(
                "; country-level location: the home is declared only as {}, measured from its capital",
                home.country
            )),
            (false, true) => s.push_str(&format!(
                "; country-level location: the observation is {} only, measured from its capital",
                obs.country
                    .map_or_else(|| "a country".to_string(), |c| c.to_string())
            )),
            (true, true) => {
                s.push_str("; country-level location on both sides, measured between the capitals")
            }
        }
        s
    }
}

/// Where the observation puts the client: its coordinates and accuracy, or, with only a country,
/// the capital and the country's size. `None` when nothing is known.
fn observed_disc(obs: &Observation<'_>) -> Option<Disc> {
    let accuracy = |a: Option<f64>| a.filter(|a| a.is_finite() && *a > 0.0).unwrap_or(0.0);
    match obs.location {
        Some(centre) => Some(Disc {
            centre,
            radius_km: accuracy(obs.accuracy_km),
            // A gateway-located network's point is not the person's: country precision.
            country_level: obs.precision == Some(LocationPrecision::Country)
                || obs.network_kind.is_some(),
        }),
        None => {
            let info = country::table().get(obs.country?)?;
            Some(Disc {
                centre: LatLon {
                    lat: info.lat,
                    lon: info.lon,
                },
                radius_km: info.radius_km,
                country_level: true,
            })
        }
    }
}

/// Adds a reason unless its rule is switched off (`allow`); the sentence is built only if added.
fn push(
    reasons: &mut Vec<Reason>,
    code: ReasonCode,
    action: Action,
    sentence: impl FnOnce() -> String,
) {
    if action != Action::Allow {
        reasons.push(Reason::explained(code, action, sentence));
    }
}

/// Case-insensitive comparison without allocating ("Texas" = "TEXAS", "Île-de-France" =
/// "île-de-france").
fn same_text(a: &str, b: &str) -> bool {
    a.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .eq(b.trim().chars().flat_map(char::to_lowercase))
}

/// Kilometres for sentences: `10,960`; one decimal below 10 km (`0.4`).
fn km(v: f64) -> String {
    if v < 10.0 {
        return format!("{v:.1}");
    }
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
#[path = "employee_tests.rs"]
mod tests;
