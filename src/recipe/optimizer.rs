//! The `[optimizer]` section: SGD or AdamW and their hyper-parameters (docs/data-flow.md, "Train").

use serde::{Deserialize, Serialize};

use crate::check::{above, at_least, in_closed_open, Check, Problem};

/// The optimiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    /// Which optimiser.
    #[serde(default)]
    pub kind: OptimizerKind,
    /// Base learning rate (> 0), before the schedule.
    #[serde(default = "default::lr")]
    pub lr: f64,
    /// SGD momentum in [0, 1).
    #[serde(default = "default::momentum")]
    pub momentum: f64,
    /// SGD: Nesterov momentum.
    #[serde(default = "default::nesterov")]
    pub nesterov: bool,
    /// Weight decay (≥ 0).
    #[serde(default = "default::weight_decay")]
    pub weight_decay: f64,
    /// Whether biases and normalisation parameters are decayed too.
    #[serde(default)]
    pub decay_bias_and_norm: bool,
    /// AdamW: β₁ in [0, 1).
    #[serde(default = "default::beta1")]
    pub beta1: f64,
    /// AdamW: β₂ in [0, 1).
    #[serde(default = "default::beta2")]
    pub beta2: f64,
    /// AdamW: ε (> 0).
    #[serde(default = "default::epsilon")]
    pub epsilon: f64,
}

/// The supported optimisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// SGD with (Nesterov) momentum.
    #[default]
    #[serde(rename = "sgd")]
    Sgd,
    /// Adam with decoupled weight decay.
    #[serde(rename = "adamw")]
    AdamW,
}

/// Defaults of the `[optimizer]` keys (the FixMatch reference's SGD).
mod default {
    pub(super) fn lr() -> f64 {
        0.03
    }
    pub(super) fn momentum() -> f64 {
        0.9
    }
    pub(super) fn nesterov() -> bool {
        true
    }
    pub(super) fn weight_decay() -> f64 {
        5e-4
    }
    pub(super) fn beta1() -> f64 {
        0.9
    }
    pub(super) fn beta2() -> f64 {
        0.999
    }
    pub(super) fn epsilon() -> f64 {
        1e-8
    }
}

impl Default for OptimizerSection {
    fn default() -> Self {
        OptimizerSection {
            kind: OptimizerKind::default(),
            lr: default::lr(),
            momentum: default::momentum(),
            nesterov: default::nesterov(),
            weight_decay: default::weight_decay(),
            decay_bias_and_norm: false,
            beta1: default::beta1(),
            beta2: default::beta2(),
            epsilon: default::epsilon(),
        }
    }
}

impl OptimizerSection {
    /// Checks the ranges of the section's own keys.
    pub(crate) fn validate(&self) -> Check {
        above("optimizer.lr", self.lr, 0.0)?;
        in_closed_open("optimizer.momentum", self.momentum, 0.0, 1.0)?;
        at_least("optimizer.weight_decay", self.weight_decay, 0.0)?;
        in_closed_open("optimizer.beta1", self.beta1, 0.0, 1.0)?;
        in_closed_open("optimizer.beta2", self.beta2, 0.0, 1.0)?;
        above("optimizer.epsilon", self.epsilon, 0.0)?;
        if self.kind == OptimizerKind::Sgd && self.nesterov && self.momentum == 0.0 {
            return Err(Problem::new("optimizer.nesterov", "Nesterov SGD needs optimizer.momentum > 0, got 0"));
        }
        Ok(())
    }
}
