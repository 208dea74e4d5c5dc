//! The `[eval]` section: how often the test set, probes and Ŝ_ρ are measured during training.

use serde::{Deserialize, Serialize};

use super::check::{count_at_least, Check};

/// Evaluation during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Steps between test-set evaluations; 0 = only at the end.
    #[serde(default)]
    pub every: u64,
    /// Images per evaluation batch.
    #[serde(default = "default::batch_size")]
    pub batch_size: usize,
    /// Steps between linear-probe evaluations; 0 = never.
    #[serde(default)]
    pub probe_every: u64,
    /// Steps between Ŝ_ρ measurements logged during training; 0 = never.
    #[serde(default)]
    pub measure_every: u64,
}

/// Defaults of the `[eval]` keys.
mod default {
    pub(super) fn batch_size() -> usize {
        256
    }
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection { every: 0, batch_size: default::batch_size(), probe_every: 0, measure_every: 0 }
    }
}

impl EvalSection {
    /// Checks the ranges of the section's own keys.
    pub(crate) fn validate(&self) -> Check {
        count_at_least("eval.batch_size", self.batch_size, 1)
    }
}
