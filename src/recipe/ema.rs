//! The `[ema]` section: the exponential moving average of the parameters used for evaluation.

use serde::{Deserialize, Serialize};

use crate::check::{in_closed_open, Check};

/// The parameter EMA (docs/data-flow.md, "Train").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaSection {
    /// Decay in [0, 1) applied each step.
    #[serde(default = "default::decay")]
    pub decay: f64,
    /// Whether the EMA is kept and evaluated at all.
    #[serde(default = "default::enabled")]
    pub enabled: bool,
}

/// Defaults of the `[ema]` keys.
mod default {
    pub(super) fn decay() -> f64 {
        0.999
    }
    pub(super) fn enabled() -> bool {
        true
    }
}

impl Default for EmaSection {
    fn default() -> Self {
        EmaSection { decay: default::decay(), enabled: default::enabled() }
    }
}

impl EmaSection {
    /// Checks the ranges of the section's own keys.
    pub(crate) fn validate(&self) -> Check {
        in_closed_open("ema.decay", self.decay, 0.0, 1.0)
    }
}
