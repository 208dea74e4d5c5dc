//! The `[update]` section: how one optimiser step is taken (SPEC §4).

use serde::{Deserialize, Serialize};

use crate::check::{above, at_least, count_at_least, Check};

/// The update rule and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSection {
    /// Which gradient is applied.
    #[serde(default)]
    pub rule: UpdateRuleKind,
    /// Perturbation radius ρ (> 0) of sam, asam and iam-s.
    #[serde(default = "default::rho")]
    pub rho: f64,
    /// ASAM's η (≥ 0) in T = |w| + η.
    #[serde(default = "default::eta")]
    pub eta: f64,
    /// iam-s: scale σ (≥ 0) of the random initial perturbation.
    #[serde(default = "default::sigma")]
    pub sigma: f64,
    /// iam-s: ascent steps K (≥ 1).
    #[serde(default = "default::steps")]
    pub steps: usize,
    /// sam and asam: the loss ε is taken on, `all` stages or only the `labeled` ones (FixMatch + SAM baseline).
    #[serde(default)]
    pub loss: PerturbedLossKind,
    /// m-sharpness: samples per perturbation chunk; absent = the whole batch. Must divide `data.batch_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
}

/// The update rules of SPEC §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateRuleKind {
    /// ∇L(θ).
    #[default]
    Plain,
    /// SAM: ∇L(θ + ρ g/‖g‖).
    Sam,
    /// Adaptive SAM.
    Asam,
    /// IAM-S: ∇L(θ + δ*) with δ* from Algorithm 1.
    IamS,
}

/// Which loss `sam` and `asam` perturb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PerturbedLossKind {
    /// The whole objective.
    #[default]
    All,
    /// Only the stages that read labelled views alone (e.g. `supervised`): the paper's FixMatch + SAM baseline.
    Labeled,
}

/// Defaults of the `[update]` keys.
mod default {
    pub(super) fn rho() -> f64 {
        0.05
    }
    pub(super) fn eta() -> f64 {
        0.01
    }
    pub(super) fn sigma() -> f64 {
        1e-3
    }
    pub(super) fn steps() -> usize {
        1
    }
}

impl Default for UpdateSection {
    fn default() -> Self {
        UpdateSection {
            rule: UpdateRuleKind::default(),
            rho: default::rho(),
            eta: default::eta(),
            sigma: default::sigma(),
            steps: default::steps(),
            loss: PerturbedLossKind::default(),
            m: None,
        }
    }
}

impl UpdateSection {
    /// Checks the ranges of the section's own keys.
    pub(crate) fn validate(&self) -> Check {
        above("update.rho", self.rho, 0.0)?;
        at_least("update.eta", self.eta, 0.0)?;
        at_least("update.sigma", self.sigma, 0.0)?;
        count_at_least("update.steps", self.steps, 1)?;
        if self.loss != PerturbedLossKind::All && !matches!(self.rule, UpdateRuleKind::Sam | UpdateRuleKind::Asam) {
            return Err(crate::check::Problem::new(
                "update.loss",
                "only applies to rule = \"sam\" or \"asam\" (the other rules perturb no loss)",
            ));
        }
        if let Some(m) = self.m {
            count_at_least("update.m", m, 1)?;
        }
        Ok(())
    }
}
