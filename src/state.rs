//! The state every request reads: data, rules and the employee directory, swapped whole on reload.
//!
//! Data only: deciding with it is [`crate::decide`]'s job.

use arc_swap::ArcSwap;

use crate::audit::Auditor;
use crate::config::EmployeesConfig;
use crate::employees::Directory;
use crate::history::synced::SyncHealth;
use crate::history::{HistoryStore, MemoryHistory};
use crate::intel::{DataError, DataSources, Intel};
use crate::policy::employee::EmployeeRules;
use crate::policy::history::HistoryRules;
use crate::policy::{Action, Policy};
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
