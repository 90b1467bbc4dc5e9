//! The state every request reads: data, rules and the employee directory, swapped whole on reload.

use arc_swap::ArcSwap;

use crate::audit::Auditor;
use crate::config::EmployeesConfig;
use crate::employees::Directory;
use crate::history::synced::SyncHealth;
use crate::history::{EgressKey, HistoryStore, MemoryHistory, Record, Sighting};
use crate::intel::Observation;
use crate::intel::{DataError, DataSources, Intel};
use crate::policy::employee::{EmployeeRules, Subject, evaluate_for_employee};
use crate::policy::history::{self as history_signals, HistoryRules};
use crate::policy::{Action, Decision, Mode, Policy, Reason};
use crate::values::ConfigError;

/// Data and rules that are replaced together, so no request ever sees new data with old rules.
pub struct RuntimeState {
    /// Loaded intelligence.
    pub intel: Intel,
    /// Organisation-wide rules.
    pub policy: Policy,
    /// Who declared what (absent: no per-employee checks).
    pub directory: Option<Directory>,
    /// Actions for per-employee reasons.
    pub employee_rules: EmployeeRules,
    /// Action for `session_location_changed`.
    pub session_rule: Action,
    /// Age limits for the data above (see [`RuntimeState::stale`]).
    pub freshness: crate::intel::Freshness,
    /// History signals' actions and thresholds.
    pub history_rules: HistoryRules,
    /// Wire signals (`[network]`), when the gateway's location is configured.
    pub wire_rules: Option<crate::policy::wire::WireRules>,
}

/// Why state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A data file is missing or bad.
    #[error("data: {0}")]
    Data(#[from] DataError),
    /// The employee directory is missing or bad.
    #[error("{0}")]
    Directory(#[from] ConfigError),
}

impl RuntimeState {
    /// Loads data and the directory; the first problem is returned naming its file.
    pub fn load(
        data: &DataSources,
        policy: Policy,
        employees: Option<&EmployeesConfig>,
        history_rules: HistoryRules,
    ) -> Result<Self, LoadError> {
        let intel = Intel::load(data)?;
        let directory = match employees {
            Some(e) => Some(Directory::load(&e.file, e.default_radius_km)?),
            None => None,
        };
        Ok(RuntimeState {
            intel,
            policy,
            directory,
            employee_rules: employees.map(|e| e.rules).unwrap_or_default(),
            session_rule: employees.map_or(Action::Flag, |e| e.session_location_changed),
            freshness: crate::intel::Freshness::default(),
            history_rules,
            wire_rules: None,
        })
    }

    /// Loads everything a config names, with its age limits: what `run`, `validate` and a reload
    /// use. The policy moves out of the config into the state; the rest of the config (listeners,
    /// events) stays with the caller.
    pub fn from_config(config: &mut crate::config::Config) -> Result<Self, LoadError> {
        let policy = std::mem::take(&mut config.policy);
        let mut state = Self::load(
            &config.data,
            policy,
            config.employees.as_ref(),
            config.history,
        )?;
        state.wire_rules = config.network;
        state.freshness = config.freshness.clone();
        Ok(state)
    }

    /// Data sources past their age limit now, for logs, `/readyz` and metrics.
    pub fn stale(&self) -> Vec<crate::intel::StaleSource> {
        self.freshness
            .stale(self.intel.versions(), crate::intel::freshness::now_epoch())
    }
}

impl RuntimeState {
    /// Decides for one observation and (optionally) a presented user with whether that identity
    /// is verified. `extra` are reasons found elsewhere (a session seen from another place).
    /// Returns the decision and the user id to record (the directory id when the person is
    /// known, otherwise the name as presented).
    pub fn judge(
        &self,
        obs: &Observation<'_>,
        user: Option<(&str, bool)>,
        extra: Vec<Reason>,
        mode: Mode,
        at: jiff::Timestamp,
    ) -> (Decision, Option<String>) {
        let mut reasons = self.policy.reasons(obs);
        reasons.extend(extra);
        let subject = match (&self.directory, user) {
            (Some(dir), Some((name, verified))) => Subject::resolve(dir, Some(name), verified),
            _ => Subject::Anonymous,
        };
        let recorded = match subject {
            Subject::Known { employee, .. } => Some(employee.id.clone()),
            _ => user.map(|(name, _)| name.to_owned()),
        };
        let decision = evaluate_for_employee(reasons, obs, subject, mode, &self.employee_rules, at);
        (decision, recorded)
    }
}

impl RuntimeState {
    /// [`RuntimeState::judge`] with history: reads what the store knows of the person, adds the
    /// history reasons (impossible travel, shared egress, residence, night work), decides, then
    /// records this sighting. Only verified identities are recorded: a name typed into a Basic
    /// prompt must not plant sightings that later flag the real person.
    pub fn judge_with_history(
        &self,
        history: &dyn HistoryStore,
        obs: &Observation<'_>,
        user: Option<(&str, bool)>,
        mut extra: Vec<Reason>,
        mode: Mode,
        at: jiff::Timestamp,
    ) -> (Decision, Option<String>) {
        let rules = &self.history_rules;
        let employee = match (&self.directory, user) {
            (Some(dir), Some((name, _))) if rules.enabled => dir.get(name),
            _ => None,
        };
        let Some(employee) = employee else {
            return self.judge(obs, user, extra, mode, at);
        };
        let verified = user.is_some_and(|(_, v)| v);
        // Corporate egress and the person's own networks are not places and not shared egress.
        let corporate = obs.trusted_network
            || self.policy.allow_networks.lookup(obs.ip).trusted
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
        if let (Some(now), Some(prev)) = (place, history.last_place(&employee.id)) {
            extra.extend(history_signals::impossible_travel(&prev, &now, rules));
        }
        let egress = (!corporate).then(|| EgressKey::of(obs.ip));
        if let Some(key) = egress {
            let since = at
                .checked_sub(rules.shared_egress_window)
                .unwrap_or(jiff::Timestamp::MIN);
            let others = history.egress_employees(key, since);
            extra.extend(history_signals::shared_egress(&employee.id, &others, rules));
        }
        let mut today = history_signals::day_of(employee, obs, at, rules);
        if corporate {
            today.placed = false;
            today.home = false;
        }
        let mut days = history.recent_days(&employee.id, rules.residence_days);
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
        extra.extend(history_signals::residence_mismatch(&days, employee, rules));
        extra.extend(history_signals::off_hours(&days, employee, rules));
        let result = self.judge(obs, user, extra, mode, at);
        if verified {
            history.record(Record {
                employee: &employee.id,
                place,
                egress,
                day: Some(today),
            });
        }
        result
    }
}

/// What all listeners share.
pub struct Shared {
    /// The current state; requests take a snapshot at their start and keep it to the end.
    pub state: ArcSwap<RuntimeState>,
    /// What happened before (not swapped on reload: history outlives configurations).
    pub history: std::sync::Arc<dyn HistoryStore>,
    /// How sharing history with other instances is going, when it is configured.
    pub history_sync: Option<std::sync::Arc<SyncHealth>>,
    /// Event recording and counters (not swapped on reload: counts and queue survive it).
    pub auditor: Auditor,
    /// Set once the process is stopping (not when a reload stops one listener): pass-through
    /// tunnels still open near the end of the drain time end themselves and write their close
    /// events before the last flush.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// Wraps a first state and an auditor, with history kept in this process only.
    pub fn new(state: RuntimeState, auditor: Auditor) -> Self {
        Self::with_history(
            state,
            auditor,
            std::sync::Arc::new(MemoryHistory::new()),
            None,
        )
    }

    /// Wraps a first state, an auditor and a history store (shared through Redis when `sync`
    /// reports on the link).
    pub fn with_history(
        state: RuntimeState,
        auditor: Auditor,
        history: std::sync::Arc<dyn HistoryStore>,
        history_sync: Option<std::sync::Arc<SyncHealth>>,
    ) -> Self {
        Shared {
            state: ArcSwap::from_pointee(state),
            history,
            history_sync,
            auditor,
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Why history is not fully shared right now (for events), when it is configured to be.
    pub fn history_problem(&self) -> Option<String> {
        self.history_sync.as_ref().and_then(|h| h.problem())
    }
}
