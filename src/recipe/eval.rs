//! The `[eval]` section: how often the test set, probes and Ŝ_ρ are measured during training.

use serde::{Deserialize, Serialize};

use crate::check::{above, count_at_least, Check};

/// Evaluation during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Steps between test-set evaluations; 0 = only at the end.
    #[serde(default)]
    pub every: u64,
    /// Images per evaluation batch.
    #[serde(default = "default::batch_size")]
    pub batch_size: usize,
    /// Labelled training images (a fixed draw) whose accuracy and loss every evaluation logs next to the test set's,
    /// for the generalisation gap.
    #[serde(default = "default::train_images")]
    pub train_images: usize,
    /// Steps between linear-probe evaluations; 0 = never.
    #[serde(default)]
    pub probe_every: u64,
    /// Steps between Ŝ_ρ measurements logged during training; 0 = never.
    #[serde(default)]
    pub measure_every: u64,
    /// Epochs of linear-probe training over the frozen features.
    #[serde(default = "default::probe_epochs")]
    pub probe_epochs: usize,
    /// Images per batch of linear-probe training (the IAM paper's SimCLR evaluation uses 1024).
    #[serde(default = "default::probe_batch_size")]
    pub probe_batch_size: usize,
    /// Learning rate of the linear probe (cosine-decayed).
    #[serde(default = "default::probe_lr")]
    pub probe_lr: f64,
    /// Optimiser of the linear probe: `sgd` (momentum 0.9) or `adamw` (no weight decay).
    #[serde(default)]
    pub probe_optimizer: ProbeOptimizer,
    /// Neighbours k of the kNN score.
    #[serde(default = "default::knn_k")]
    pub knn_k: usize,
    /// Temperature of the kNN score's similarity weights.
    #[serde(default = "default::knn_temperature")]
    pub knn_temperature: f64,
}

/// The linear probe's optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeOptimizer {
    /// SGD with momentum 0.9 (solo-learn's linear evaluation).
    #[default]
    Sgd,
    /// AdamW without weight decay.
    Adamw,
}

/// Defaults of the `[eval]` keys.
mod default {
    pub(super) fn batch_size() -> usize {
        256
    }
    pub(super) fn train_images() -> usize {
        1024
    }
    pub(super) fn probe_epochs() -> usize {
        100
    }
    pub(super) fn probe_batch_size() -> usize {
        256
    }
    pub(super) fn probe_lr() -> f64 {
        0.1
    }
    pub(super) fn knn_k() -> usize {
        200
    }
    pub(super) fn knn_temperature() -> f64 {
        0.1
    }
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            every: 0,
            batch_size: default::batch_size(),
            train_images: default::train_images(),
            probe_every: 0,
            measure_every: 0,
            probe_epochs: default::probe_epochs(),
            probe_batch_size: default::probe_batch_size(),
            probe_lr: default::probe_lr(),
            probe_optimizer: ProbeOptimizer::default(),
            knn_k: default::knn_k(),
            knn_temperature: default::knn_temperature(),
        }
    }
}

impl EvalSection {
    /// Checks the ranges of the section's own keys.
    pub(crate) fn validate(&self) -> Check {
        count_at_least("eval.batch_size", self.batch_size, 1)?;
        count_at_least("eval.train_images", self.train_images, 1)?;
        count_at_least("eval.probe_epochs", self.probe_epochs, 1)?;
        count_at_least("eval.probe_batch_size", self.probe_batch_size, 1)?;
        above("eval.probe_lr", self.probe_lr, 0.0)?;
        count_at_least("eval.knn_k", self.knn_k, 1)?;
        above("eval.knn_temperature", self.knn_temperature, 0.0)
    }
}
