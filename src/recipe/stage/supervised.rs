//! The `supervised` stage: cross-entropy on the labelled view.

use burnish_augment::View;
use serde::{Deserialize, Serialize};

use crate::recipe::check::{at_least, in_closed_open, Check};
use crate::recipe::named;

/// `[[stage]] kind = "supervised"`: CE(f(x_l), y) with optional label smoothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisedSpec {
    /// Weight of the loss in the sum.
    #[serde(default = "default::weight")]
    pub weight: f64,
    /// The labelled view the loss is computed on; must be one of `data.labeled_views`.
    #[serde(default = "default::view", with = "named::one")]
    pub view: View,
    /// Label smoothing ε in [0, 1).
    #[serde(default)]
    pub label_smoothing: f64,
}

/// Defaults of the stage's keys.
mod default {
    use super::*;

    pub(super) fn weight() -> f64 {
        1.0
    }
    pub(super) fn view() -> View {
        View::Weak
    }
}

impl Default for SupervisedSpec {
    fn default() -> Self {
        SupervisedSpec { weight: default::weight(), view: default::view(), label_smoothing: 0.0 }
    }
}

impl SupervisedSpec {
    /// Checks the stage's own ranges; `at` is its key prefix (`stage.N`).
    pub(crate) fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.weight"), self.weight, 0.0)?;
        in_closed_open(&format!("{at}.label_smoothing"), self.label_smoothing, 0.0, 1.0)
    }
}
