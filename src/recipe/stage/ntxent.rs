//! The `ntxent` stage: SimCLR's contrastive loss between two views of each unlabeled image.

use serde::{Deserialize, Serialize};

use crate::recipe::check::{above, at_least, Check};

/// `[[stage]] kind = "ntxent"`: NT-Xent over the projections of two views (SPEC §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtXentSpec {
    /// Weight of the loss in the sum.
    #[serde(default = "default::weight")]
    pub weight: f64,
    /// Temperature τ (> 0) of the similarity logits.
    #[serde(default = "default::temperature")]
    pub temperature: f64,
}

/// Defaults of the stage's keys (τ = 0.5, SimCLR's CIFAR value).
mod default {
    pub(super) fn weight() -> f64 {
        1.0
    }
    pub(super) fn temperature() -> f64 {
        0.5
    }
}

impl Default for NtXentSpec {
    fn default() -> Self {
        NtXentSpec { weight: default::weight(), temperature: default::temperature() }
    }
}

impl NtXentSpec {
    /// Checks the stage's own ranges; `at` is its key prefix (`stage.N`).
    pub(crate) fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.weight"), self.weight, 0.0)?;
        above(&format!("{at}.temperature"), self.temperature, 0.0)
    }
}
