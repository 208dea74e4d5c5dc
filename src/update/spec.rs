//! The `[update]` table: the update rule, tagged by `rule`, each variant with only its own keys (docs/rules.md).
//! A key another rule uses is an error, as in `[[stage]]` tables, rather than silently ignored.

use serde::{Deserialize, Serialize};

use crate::check::{above, at_least, count_at_least, Check};
use crate::iam::Inconsistency;

/// `[update]`: how one optimiser step's gradient is obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum UpdateSection {
    /// `rule = "plain"`: ∇L(θ) (the default).
    Plain(PlainSpec),
    /// `rule = "sam"`: ∇L(θ + ρ g/‖g‖).
    Sam(SamSpec),
    /// `rule = "asam"`: adaptive SAM.
    Asam(AsamSpec),
    /// `rule = "iam-s"`: ∇L(θ + δ*) with δ* from Algorithm 1.
    IamS(IamSSpec),
}

/// `rule = "plain"` has no keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainSpec {}

/// `rule = "sam"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamSpec {
    /// Perturbation radius ρ (> 0).
    #[serde(default = "default::rho")]
    pub rho: f64,
    /// The loss ε is taken on, `all` stages or only the `labeled` ones (the paper's FixMatch + SAM baseline).
    #[serde(default)]
    pub loss: PerturbedLossKind,
    /// m-sharpness: labelled samples per perturbation chunk; absent = the whole batch. Must divide `data.batch_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
}

/// `rule = "asam"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsamSpec {
    /// Perturbation radius ρ (> 0).
    #[serde(default = "default::rho")]
    pub rho: f64,
    /// η (≥ 0) in T = |w| + η.
    #[serde(default = "default::eta")]
    pub eta: f64,
    /// The loss ε is taken on, as for `sam`.
    #[serde(default)]
    pub loss: PerturbedLossKind,
    /// m-sharpness, as for `sam`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
}

/// `rule = "iam-s"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamSSpec {
    /// Perturbation radius ρ (> 0).
    #[serde(default = "default::rho")]
    pub rho: f64,
    /// Scale σ (≥ 0) of the random initial perturbation.
    #[serde(default = "default::sigma")]
    pub sigma: f64,
    /// Ascent steps K (≥ 1).
    #[serde(default = "default::steps")]
    pub steps: usize,
    /// m-sharpness, as for `sam`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
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

/// Defaults of the rules' keys (ρ = 0.05 as in SAM's CIFAR runs; σ and K as in the IAM paper).
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

impl Default for SamSpec {
    fn default() -> Self {
        SamSpec { rho: default::rho(), loss: PerturbedLossKind::default(), m: None }
    }
}

impl Default for AsamSpec {
    fn default() -> Self {
        AsamSpec { rho: default::rho(), eta: default::eta(), loss: PerturbedLossKind::default(), m: None }
    }
}

impl Default for IamSSpec {
    fn default() -> Self {
        IamSSpec { rho: default::rho(), sigma: default::sigma(), steps: default::steps(), m: None }
    }
}

impl Default for UpdateSection {
    fn default() -> Self {
        UpdateSection::Plain(PlainSpec {})
    }
}

impl UpdateSection {
    /// Every rule, as recipes name them.
    pub const RULES: [&'static str; 4] = ["plain", "sam", "asam", "iam-s"];

    /// The rule's name as recipes write it.
    pub fn name(&self) -> &'static str {
        match self {
            UpdateSection::Plain(_) => "plain",
            UpdateSection::Sam(_) => "sam",
            UpdateSection::Asam(_) => "asam",
            UpdateSection::IamS(_) => "iam-s",
        }
    }

    /// m-sharpness chunk size, where the rule has one.
    pub fn m(&self) -> Option<usize> {
        match self {
            UpdateSection::Plain(_) => None,
            UpdateSection::Sam(s) => s.m,
            UpdateSection::Asam(s) => s.m,
            UpdateSection::IamS(s) => s.m,
        }
    }

    /// The loss `sam`/`asam` perturb (`all` for the other rules, which perturb no single loss).
    pub fn perturbed_loss(&self) -> PerturbedLossKind {
        match self {
            UpdateSection::Sam(s) => s.loss,
            UpdateSection::Asam(s) => s.loss,
            UpdateSection::Plain(_) | UpdateSection::IamS(_) => PerturbedLossKind::All,
        }
    }

    /// Algorithm 1's settings of an `iam-s` rule.
    pub fn inconsistency(&self) -> Option<Inconsistency> {
        match self {
            UpdateSection::IamS(s) => Some(Inconsistency { rho: s.rho, sigma: s.sigma, steps: s.steps }),
            _ => None,
        }
    }

    /// Checks the ranges of the rule's own keys.
    pub(crate) fn validate(&self) -> Check {
        match self {
            UpdateSection::Plain(_) => {}
            UpdateSection::Sam(s) => above("update.rho", s.rho, 0.0)?,
            UpdateSection::Asam(s) => {
                above("update.rho", s.rho, 0.0)?;
                at_least("update.eta", s.eta, 0.0)?;
            }
            UpdateSection::IamS(s) => {
                above("update.rho", s.rho, 0.0)?;
                at_least("update.sigma", s.sigma, 0.0)?;
                count_at_least("update.steps", s.steps, 1)?;
            }
        }
        if let Some(m) = self.m() {
            count_at_least("update.m", m, 1)?;
        }
        Ok(())
    }

    /// The keys of each rule (besides `rule`), for messages about a key set under the wrong rule.
    pub(crate) const KEYS: [(&'static str, &'static [&'static str]); 4] = [
        ("plain", &[]),
        ("sam", &["rho", "loss", "m"]),
        ("asam", &["rho", "eta", "loss", "m"]),
        ("iam-s", &["rho", "sigma", "steps", "m"]),
    ];

    /// Reads an `[update]` table of rule `rule` (without its `rule` key) as that rule's keys, to check it on its own;
    /// `None` for an unknown rule.
    pub(crate) fn check_table<'de, D: serde::Deserializer<'de>>(rule: &str, table: D) -> Option<Result<(), D::Error>> {
        Some(match rule {
            "plain" => PlainSpec::deserialize(table).map(drop),
            "sam" => SamSpec::deserialize(table).map(drop),
            "asam" => AsamSpec::deserialize(table).map(drop),
            "iam-s" => IamSSpec::deserialize(table).map(drop),
            _ => return None,
        })
    }
}
