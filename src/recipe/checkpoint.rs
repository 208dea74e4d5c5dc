//! The `[checkpoint]` section: how often training state is saved and how many saves are kept.

use serde::{Deserialize, Serialize};

use crate::check::{count_at_least, Check};

/// Checkpointing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// Steps between checkpoints; 0 = only at the end.
    #[serde(default = "default::every")]
    pub every: u64,
    /// How many of the most recent checkpoints are kept (≥ 1).
    #[serde(default = "default::keep")]
    pub keep: usize,
}

/// Defaults of the `[checkpoint]` keys.
mod default {
    pub(super) fn every() -> u64 {
        1000
    }
    pub(super) fn keep() -> usize {
        2
    }
}

impl Default for CheckpointSection {
    fn default() -> Self {
        CheckpointSection { every: default::every(), keep: default::keep() }
    }
}

impl CheckpointSection {
    /// Checks the ranges of the section's own keys.
    pub(crate) fn validate(&self) -> Check {
        count_at_least("checkpoint.keep", self.keep, 1)
    }
}
