//! The `fixmatch` stage: confidence-thresholded pseudo-labels from the weak view, applied to the strong view.

use serde::{Deserialize, Serialize};

use crate::recipe::check::{above, at_least, in_open_closed, Check, Problem};

/// `[[stage]] kind = "fixmatch"`: Σ mask · CE(f(u_s), ŷ) / μB (SPEC §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixMatchSpec {
    /// Weight λ_u of the unlabeled loss.
    #[serde(default = "default::weight")]
    pub weight: f64,
    /// Confidence threshold τ in (0, 1].
    #[serde(default = "default::threshold")]
    pub threshold: f64,
    /// `hard` (argmax, FixMatch's default) or `soft` pseudo-labels.
    #[serde(default)]
    pub pseudo_labels: PseudoLabelKind,
    /// Temperature T (> 0) that sharpens soft pseudo-labels; the confidence mask always uses T = 1.
    #[serde(default = "default::temperature")]
    pub temperature: f64,
    /// What the masked loss is divided by.
    #[serde(default)]
    pub normalize: FixMatchNormalize,
}

/// The denominator of FixMatch's unlabeled loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixMatchNormalize {
    /// All μB unlabeled samples (the FixMatch reference).
    #[default]
    All,
    /// Only the confident samples (the IAM reference code).
    Confident,
}

/// What the strong view is taught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PseudoLabelKind {
    /// The weak view's argmax.
    #[default]
    Hard,
    /// The weak view's softmax at temperature `temperature`.
    Soft,
}

/// Defaults of the stage's keys.
mod default {
    pub(super) fn weight() -> f64 {
        1.0
    }
    pub(super) fn threshold() -> f64 {
        0.95
    }
    pub(super) fn temperature() -> f64 {
        1.0
    }
}

impl Default for FixMatchSpec {
    fn default() -> Self {
        FixMatchSpec {
            weight: default::weight(),
            threshold: default::threshold(),
            pseudo_labels: PseudoLabelKind::default(),
            temperature: default::temperature(),
            normalize: FixMatchNormalize::default(),
        }
    }
}

impl FixMatchSpec {
    /// Checks the stage's own ranges; `at` is its key prefix (`stage.N`).
    pub(crate) fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.weight"), self.weight, 0.0)?;
        in_open_closed(&format!("{at}.threshold"), self.threshold, 0.0, 1.0)?;
        above(&format!("{at}.temperature"), self.temperature, 0.0)?;
        if self.pseudo_labels == PseudoLabelKind::Hard && self.temperature != default::temperature() {
            // With hard labels the temperature changes nothing (the argmax is the same), so a set value is a mistake.
            return Err(Problem::new(
                format!("{at}.temperature"),
                "only applies with pseudo_labels = \"soft\" (hard pseudo-labels are an argmax, which T does not change)",
            ));
        }
        Ok(())
    }
}
