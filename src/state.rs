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
    /// Loaded intelligence (shared, so a SCIM change can swap in a new directory without
    /// reopening a database: [`RuntimeState::with_scim`]).
    pub intel: std::sync::Arc<Intel>,
    /// Organisation-wide rules.
    pub policy: std::sync::Arc<Policy>,
    /// Who declared what, as the rules read it: the directory file with the SCIM users merged
    /// in (absent: no per-employee checks).
    pub directory: Option<Directory>,
    /// The directory file alone, what every SCIM change is merged onto again.
    pub file_directory: Option<std::sync::Arc<Directory>>,
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
    /// A configured data file or directory does not exist.
    #[error("{0}")]
    MissingData(ConfigError),
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
            Some(e) => Some(Directory::load(&e.file, e.default_radius_km, &e.columns)?),
            None => None,
        };
        Ok(RuntimeState {
            intel: std::sync::Arc::new(intel),
            policy: std::sync::Arc::new(policy),
            file_directory: directory.clone().map(std::sync::Arc::new),
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
        if let Some(e) = config.data_missing.first() {
            return Err(LoadError::MissingData(e.clone()));
        }
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

    /// This state with the directory rebuilt from the file and `scim` (the file wins every
    /// conflict, see [`Directory::with_added`]); data and rules are shared, not reloaded.
    pub fn with_scim(&self, scim: &crate::scim::Snapshot) -> RuntimeState {
        RuntimeState {
            intel: self.intel.clone(),
            policy: self.policy.clone(),
            directory: self.file_directory.as_ref().map(|d| {
                d.with_added(
                    "SCIM",
                    scim.employees.iter().cloned(),
                    scim.notes.iter().cloned(),
                )
            }),
            file_directory: self.file_directory.clone(),
            employee_rules: self.employee_rules,
            session_rule: self.session_rule,
            freshness: self.freshness.clone(),
            history_rules: self.history_rules,
            wire_rules: self.wire_rules,
        }
    }

    /// What the rules need that the data cannot give: per-employee radius or region rules with
    /// no database that has coordinates or regions, and directory columns no field takes (a
    /// misspelt `contry` would otherwise drop its declarations unseen). Said at start, by `validate`, in `/readyz`
    /// and in metrics, so a deployment is never silently blind.
    pub fn blind_spots(&self) -> Vec<String> {
        let Some(directory) = &self.directory else {
            return Vec::new();
        };
        let caps = self.intel.capabilities();
        let rules = &self.employee_rules;
        let mut out = directory.notes().to_vec();
        let radius_on = rules.outside_home_radius != Action::Allow
            || rules.outside_home_radius_domestic != Action::Allow;
        if radius_on && !caps.coordinates && directory.iter().any(|e| e.home.location.is_some()) {
            out.push(
                "radius checks need a city database: no loaded database has coordinates, so every \
                 address is placed at its country's capital and `outside_home_radius` cannot \
                 tell cities apart; configure `[data] city_db` (or a `dir` holding one), or keep \
                 the embedded data"
                    .to_string(),
            );
        }
        if rules.region_mismatch != Action::Allow
            && !caps.city
            && directory.iter().any(|e| e.home.region.is_some())
        {
            out.push(
                "region checks need a city database: no loaded database names regions, so \
                 `region_mismatch` can never fire; configure `[data] city_db` (or a `dir` \
                 holding one), or keep the embedded data"
                    .to_string(),
            );
        }
        out
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
    /// Client addresses bound to the employees who signed in from them (`bind_address`): what
    /// TCP and UDP pass-through learn identity from. Not swapped on reload.
    pub bindings: crate::history::bindings::AddressBindings,
    /// Open pass-through tunnels by client and upstream-side address, each with the identity its
    /// VPN server reported (`[[listener.vpn]]`).
    pub tunnels: crate::history::vpn_sessions::OpenTunnels,
    /// What each VPN source last managed (`/readyz`, `/metrics`).
    pub vpn_health: crate::history::vpn_sessions::VpnHealth,
    /// How sharing history with other instances is going, when it is configured.
    pub history_sync: Option<std::sync::Arc<SyncHealth>>,
    /// Event recording and counters (not swapped on reload: counts and queue survive it).
    pub auditor: Auditor,
    /// The SCIM-provisioned users (`[scim]`), merged into every state installed.
    pub scim: Option<std::sync::Arc<crate::scim::ScimUsers>>,
    /// Held while a state is installed, so a reload and a SCIM change cannot overwrite each
    /// other's directory with an older one.
    install: std::sync::Mutex<()>,
    /// Bumped whenever an open tunnel's verdict may have changed (a reload swapped data or
    /// policy in, a login bound an address): pass-through tunnels re-decide on each change, and an
    /// enforce-mode block closes them (continuous verification).
    /// The value is a generation count and, when only one address's bindings changed, that
    /// address (tunnels from elsewhere need not re-decide).
    pub verdicts_changed: tokio::sync::watch::Sender<(u64, Option<std::net::IpAddr>)>,
    /// Set once the process is stopping (not when a reload stops one listener): pass-through
    /// tunnels still open near the end of the drain time end themselves and write their close
    /// events before the last flush.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Set once every listener of the start is bound (`/readyz` answers 503 before that and
    /// again once [`Self::stopping`] is set, so a balancer sends nothing to a draining instance).
    pub serving: std::sync::atomic::AtomicBool,
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
            bindings: crate::history::bindings::AddressBindings::new(),
            tunnels: crate::history::vpn_sessions::OpenTunnels::new(),
            vpn_health: crate::history::vpn_sessions::VpnHealth::default(),
            history_sync,
            auditor,
            scim: None,
            install: std::sync::Mutex::new(()),
            verdicts_changed: tokio::sync::watch::Sender::new((0, None)),
            stopping: tokio::sync::watch::Sender::new(false),
            serving: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Swaps in a freshly loaded state (start, reload), with the current SCIM users merged in.
    pub fn install(&self, state: RuntimeState) {
        let _one = self.install.lock().unwrap_or_else(|p| p.into_inner());
        let state = match &self.scim {
            Some(scim) => state.with_scim(&scim.snapshot()),
            None => state,
        };
        self.state.store(std::sync::Arc::new(state));
    }

    /// Rebuilds the directory from the file and the current SCIM users and swaps it in, keeping
    /// data and rules: what a committed SCIM write calls. Open tunnels re-decide.
    pub fn scim_changed(&self) {
        let Some(scim) = &self.scim else { return };
        {
            let _one = self.install.lock().unwrap_or_else(|p| p.into_inner());
            let next = self.state.load().with_scim(&scim.snapshot());
            self.state.store(std::sync::Arc::new(next));
        }
        self.verdicts_may_have_changed(None);
    }

    /// Says that open tunnels should re-decide: all of them (`None`: new data or policy), or
    /// those from one address (a login bound it).
    pub fn verdicts_may_have_changed(&self, only: Option<std::net::IpAddr>) {
        self.verdicts_changed
            .send_modify(|(g, at)| (*g, *at) = (g.wrapping_add(1), only));
    }

    /// Why history is not fully shared right now (for events), when it is configured to be.
    pub fn history_problem(&self) -> Option<String> {
        self.history_sync.as_ref().and_then(|h| h.problem())
    }
}
