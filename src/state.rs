//! The state every request reads: data and policy, swapped whole on reload.

use arc_swap::ArcSwap;

use crate::audit::Auditor;
use crate::intel::Intel;
use crate::policy::Policy;

/// Data and rules that are replaced together, so no request ever sees new data with old rules.
pub struct RuntimeState {
    /// Loaded intelligence.
    pub intel: Intel,
    /// Organisation-wide rules.
    pub policy: Policy,
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
