//! The `[train]` section: how the training loop reacts to a step that diverges.

use serde::{Deserialize, Serialize};

use crate::check::{count_at_least, Check};

/// The loop's response to non-finite values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// What a step whose loss, gradient or updated parameters are not finite does to the run.
    #[serde(default)]
    pub on_nonfinite: NonFinitePolicy,
    /// With `on_nonfinite = "skip"`: this many non-finite steps in a row stop the run as `stop` would.
    #[serde(default = "default::max_skipped")]
    pub max_skipped: u64,
}

/// What happens to a run when a step produces a non-finite loss, gradient or parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NonFinitePolicy {
    /// Stop with an error naming the step and the cause; no checkpoint of the diverged state is written.
    #[default]
    Stop,
    /// Drop the step (no update), count it in `skipped_steps`, and go on with the next batch.
    Skip,
}

/// Defaults of the `[train]` keys.
mod default {
    pub(super) fn max_skipped() -> u64 {
        10
    }
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection { on_nonfinite: NonFinitePolicy::default(), max_skipped: default::max_skipped() }
    }
}

impl TrainSection {
    /// Checks the ranges of the section's own keys.
    pub(crate) fn validate(&self) -> Check {
        count_at_least("train.max_skipped", self.max_skipped, 1)
    }
}
