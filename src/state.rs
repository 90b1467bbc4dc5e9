//! The state every request reads: data, rules and the employee directory, swapped whole on reload.

use arc_swap::ArcSwap;

use crate::audit::Auditor;
use crate::config::{ConfigError, EmployeesConfig};
use crate::employees::Directory;
use crate::intel::Observation;
use crate::intel::{DataError, DataSources, Intel};
use crate::policy::employee::{EmployeeRules, Subject, evaluate_for_employee};
use crate::policy::{Action, Decision, Mode, Policy, Reason};

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
        })
    }

    /// Loads everything a config names, with its age limits: what `run` and a reload use.
    /// Consumes the config: the policy moves into the state.
    pub fn from_config(config: crate::config::Config) -> Result<Self, LoadError> {
        let mut state = Self::load(&config.data, config.policy, config.employees.as_ref())?;
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

/// What all listeners share.
pub struct Shared {
    /// The current state; requests take a snapshot at their start and keep it to the end.
    pub state: ArcSwap<RuntimeState>,
    /// Event recording and counters (not swapped on reload: counts and queue survive it).
    pub auditor: Auditor,
}

impl Shared {
    /// Wraps a first state and an auditor.
    pub fn new(state: RuntimeState, auditor: Auditor) -> Self {
        Shared {
            state: ArcSwap::from_pointee(state),
            auditor,
        }
    }
}
