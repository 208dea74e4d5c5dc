//! The `iam-d` stage: β times the local inconsistency Ŝ_ρ of Algorithm 1, as a loss.

use serde::{Deserialize, Serialize};

use crate::recipe::check::{above, at_least, count_at_least, in_open_closed, Check, Problem};

/// `[[stage]] kind = "iam-d"`: β · KL(p(x; θ) ‖ p(x; θ + sg(δ*))) (SPEC §2, §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamDSpec {
    /// Weight β of the inconsistency term.
    #[serde(default = "default::beta")]
    pub beta: f64,
    /// Perturbation radius ρ (> 0).
    #[serde(default = "default::rho")]
    pub rho: f64,
    /// Scale σ (≥ 0) of the random initial perturbation δ₀.
    #[serde(default = "default::sigma")]
    pub sigma: f64,
    /// Ascent steps K (≥ 1).
    #[serde(default = "default::steps")]
    pub steps: usize,
    /// Which predictive distribution is perturbed.
    #[serde(default)]
    pub source: IamDSource,
    /// With `source = "projection"`: how projections become a distribution.
    #[serde(default)]
    pub distribution: IamDDistribution,
    /// Share of the KL batch Algorithm 1's ascent runs on, in (0, 1]. 1 (the default) is the paper's estimate; below
    /// 1 a random ⌈f·n⌉ of the n images choose δ*, and the penalised KL still covers all n (docs/iam.md, "A cheaper
    /// ascent").
    #[serde(default = "default::ascent_fraction")]
    pub ascent_fraction: f64,
}

/// The inputs and distribution whose inconsistency IAM-D penalises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IamDSource {
    /// Classifier softmax over the labelled and unlabeled weak views.
    #[default]
    Batch,
    /// A distribution built from projection-head outputs (self-supervised recipes).
    Projection,
}

/// How projection-head outputs become a distribution (only with `source = "projection"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IamDDistribution {
    /// Softmax over each row of the NT-Xent logits.
    #[default]
    Ntxent,
    /// Softmax over the components of each projection vector (the reference IAM-S SSL variant).
    Components,
}

/// Defaults of the stage's keys (SPEC §3: ρ = 0.1, σ = 1e-3, K = 1).
mod default {
    pub(super) fn beta() -> f64 {
        1.0
    }
    pub(super) fn rho() -> f64 {
        0.1
    }
    pub(super) fn sigma() -> f64 {
        1e-3
    }
    pub(super) fn steps() -> usize {
        1
    }
    pub(super) fn ascent_fraction() -> f64 {
        1.0
    }
}

impl Default for IamDSpec {
    fn default() -> Self {
        IamDSpec {
            beta: default::beta(),
            rho: default::rho(),
            sigma: default::sigma(),
            steps: default::steps(),
            source: IamDSource::default(),
            distribution: IamDDistribution::default(),
            ascent_fraction: default::ascent_fraction(),
        }
    }
}

impl IamDSpec {
    /// Checks the stage's own ranges; `at` is its key prefix (`stage.N`).
    pub(crate) fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.beta"), self.beta, 0.0)?;
        above(&format!("{at}.rho"), self.rho, 0.0)?;
        at_least(&format!("{at}.sigma"), self.sigma, 0.0)?;
        count_at_least(&format!("{at}.steps"), self.steps, 1)?;
        in_open_closed(&format!("{at}.ascent_fraction"), self.ascent_fraction, 0.0, 1.0)?;
        if self.source == IamDSource::Batch && self.distribution != IamDDistribution::default() {
            // A setting that would be silently ignored is more likely a mistake than an intention.
            return Err(Problem::new(
                format!("{at}.distribution"),
                "only applies with source = \"projection\" (this stage has source = \"batch\")",
            ));
        }
        Ok(())
    }
}
