//! The `ggcr` stage: gradient-consistency regularisation between the weak and strong unlabeled views.

use serde::{Deserialize, Serialize};

use crate::recipe::check::{above, at_least, Check};

/// `[[stage]] kind = "ggcr"`: λ · (1 − cos(∇ℓ(u_w), ∇ℓ(u_s))) (SPEC §2); parsed and checked here, the trainer
/// decides whether it can run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgcrSpec {
    /// Weight λ of the regulariser.
    #[serde(default = "default::weight")]
    pub weight: f64,
    /// Finite-difference step h (> 0) of the Hessian-vector products.
    #[serde(default = "default::h")]
    pub h: f64,
}

/// Defaults of the stage's keys.
mod default {
    pub(super) fn weight() -> f64 {
        1.0
    }
    pub(super) fn h() -> f64 {
        1e-3
    }
}

impl Default for GgcrSpec {
    fn default() -> Self {
        GgcrSpec { weight: default::weight(), h: default::h() }
    }
}

impl GgcrSpec {
    /// Checks the stage's own ranges; `at` is its key prefix (`stage.N`).
    pub(crate) fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.weight"), self.weight, 0.0)?;
        above(&format!("{at}.h"), self.h, 0.0)
    }
}
