//! One training step's objective: the clean forward over every view the stages read, then the weighted sum of
//! the stages' losses. Update rules (`crate::update`) evaluate it at θ and, for SAM-like rules, at θ + ε.

mod batch;
mod forward;

pub use batch::{StepBatch, Stream, ViewKey};
pub use forward::Forward;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

use crate::model::{BnMode, Net};
use crate::pipeline::seed::derive_seed;
use crate::stage::{StageContext, Weighted};

/// The weighted stages of a recipe: the training objective.
pub struct Objective<B: AutodiffBackend> {
    /// Stages in recipe order.
    pub stages: Vec<Weighted<B>>,
}

/// The objective evaluated once: its loss, the forward it came from and its metrics.
pub struct Evaluation<B: AutodiffBackend> {
    /// Σ weight · stage loss (carries gradient).
    pub total: Tensor<B, 1>,
    /// The clean forward the stages read.
    pub forward: Forward<B>,
    /// `(name, value)` pairs: each stage's loss and metrics, and the total.
    pub metrics: Vec<(String, Tensor<B, 1>)>,
}

impl<B: AutodiffBackend> Objective<B> {
    /// Every view some stage reads, each once, in first-use order (so labelled views come first).
    pub fn views(&self) -> Vec<ViewKey> {
        let mut keys: Vec<ViewKey> = Vec::new();
        for s in &self.stages {
            for k in s.stage.views() {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        keys
    }

    /// Metric-name prefix of each stage: its kind, with its index when the kind repeats.
    pub fn stage_names(&self) -> Vec<String> {
        let kinds: Vec<&str> = self.stages.iter().map(|s| s.stage.kind()).collect();
        kinds
            .iter()
            .enumerate()
            .map(|(i, k)| if kinds.iter().filter(|o| *o == k).count() > 1 { format!("{k}.{i}") } else { k.to_string() })
            .collect()
    }

    /// Runs the forward over every needed view with `mode`, then every stage, and sums the weighted losses.
    pub fn evaluate(
        &self,
        model: &Net<B>,
        batch: &StepBatch<B>,
        mode: BnMode,
        seed: u64,
    ) -> Result<Evaluation<B>, String> {
        let forward = Forward::run(model, batch, &self.views(), mode)?;
        let mut total: Option<Tensor<B, 1>> = None;
        let mut metrics = Vec::new();
        for (i, (s, name)) in self.stages.iter().zip(self.stage_names()).enumerate() {
            let ctx = StageContext { forward: &forward, batch, model, seed: derive_seed(&[seed, i as u64]) };
            let out = s.stage.loss(&ctx);
            metrics.push((format!("{name}/loss"), out.loss.clone().detach()));
            for m in out.metrics {
                metrics.push((format!("{name}/{}", m.name), m.value));
            }
            let term = out.loss.mul_scalar(s.weight);
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
        let total = total.ok_or("a recipe needs at least one stage")?;
        metrics.push(("loss".into(), total.clone().detach()));
        Ok(Evaluation { total, forward, metrics })
    }
}
