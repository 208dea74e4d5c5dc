//! Loss stages: the terms a training step sums, each with its own weight (SPEC §2).
//!
//! A stage sees the step's one clean forward (outputs for every view), the batch's labels and the model, and
//! returns a scalar loss and named metrics. It never runs an optimiser step. New objectives are new stages:
//! implement [`Stage`], list the views it reads in [`Stage::views`], and the step feeds them to the forward.

mod fixmatch;
mod iam_d;
mod ntxent;
mod supervised;

pub use fixmatch::{FixMatch, FixMatchTerms, Normalization, PseudoLabels};
pub use iam_d::{ascent_rows, IamD, IamSource, ProjectionDistribution};
pub use ntxent::{l2_normalize, ntxent_logits, ntxent_loss, NtXent};
pub use supervised::Supervised;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::backend::TrainBackend;
use crate::model::Net;
use crate::step::{Forward, StepBatch, ViewKey};

/// What a stage may read while computing its loss.
pub struct StageContext<'a, B: TrainBackend> {
    /// The step's clean forward (at the parameters being differentiated).
    pub forward: &'a Forward<B>,
    /// The images and labels of the step.
    pub batch: &'a StepBatch<B>,
    /// The model the forward ran on, for stages that need passes at perturbed parameters.
    pub model: &'a Net<B>,
    /// Seed for the stage's random draws, fixed by (run seed, step, stage index).
    pub seed: u64,
    /// The targets this stage derived from the model at θ, when the objective is evaluated again at a perturbed
    /// θ + ε (SAM, ASAM, IAM-S): they are held fixed there instead of being derived again.
    pub held: Option<&'a Targets<B>>,
}

/// Targets a stage derives from the model itself (FixMatch's pseudo-labels and mask): computed once at θ and
/// reused, detached, when the same objective is evaluated at θ + ε.
#[derive(Debug, Clone)]
pub struct Targets<B: Backend> {
    /// Hard pseudo-label of each row.
    pub labels: Tensor<B, 1, Int>,
    /// Soft target distribution of each row (`[rows, classes]`), when the stage trains on soft labels.
    pub soft: Option<Tensor<B, 2>>,
    /// 1 where the row takes part in the loss, else 0.
    pub mask: Tensor<B, 1>,
}

/// A named scalar a stage reports (detached; read on the host only when logged).
#[derive(Debug, Clone)]
pub struct Metric<B: TrainBackend> {
    /// Name, without the stage prefix (e.g. `mask_rate`).
    pub name: &'static str,
    /// One-element value.
    pub value: Tensor<B, 1>,
}

/// A stage's contribution to the step.
#[derive(Debug, Clone)]
pub struct StageOutput<B: TrainBackend> {
    /// The unweighted loss (a one-element tensor that carries gradient).
    pub loss: Tensor<B, 1>,
    /// Extra named metrics.
    pub metrics: Vec<Metric<B>>,
    /// Targets derived from the model at this evaluation's parameters, to hold fixed at θ + ε.
    pub targets: Option<Targets<B>>,
}

impl<B: TrainBackend> StageOutput<B> {
    /// An output without model-derived targets.
    pub fn new(loss: Tensor<B, 1>, metrics: Vec<Metric<B>>) -> Self {
        Self { loss, metrics, targets: None }
    }
}

/// One term of the training objective.
pub trait Stage<B: TrainBackend>: Send + Sync {
    /// The stage's kind as recipes name it (e.g. `supervised`, `iam-d`).
    fn kind(&self) -> &'static str;
    /// The views of the step this stage reads from the clean forward.
    fn views(&self) -> Vec<ViewKey>;
    /// Computes the unweighted loss and metrics.
    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B>;
}

/// A stage with its weight in the sum.
pub struct Weighted<B: TrainBackend> {
    /// Multiplies the stage's loss.
    pub weight: f64,
    /// The stage.
    pub stage: Box<dyn Stage<B>>,
}

/// Mean cross-entropy of `logits` against integer `targets`, with label smoothing `eps` (0 for none).
pub fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, burn::tensor::Int>,
    eps: f64,
) -> Tensor<B, 1> {
    per_sample_cross_entropy(logits, targets, eps).mean()
}

/// Cross-entropy per row of `logits` against integer `targets`, with label smoothing `eps`.
pub fn per_sample_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, burn::tensor::Int>,
    eps: f64,
) -> Tensor<B, 1> {
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    let nll = log_p.clone().gather(1, targets.unsqueeze_dim(1)).squeeze_dim::<1>(1).neg();
    if eps == 0.0 {
        return nll;
    }
    let uniform = log_p.mean_dim(1).squeeze_dim::<1>(1).neg();
    nll.mul_scalar(1.0 - eps) + uniform.mul_scalar(eps)
}

/// Cross-entropy per row of `logits` against target distributions `targets` (`-Σ_c q_c log p_c`).
pub fn per_sample_soft_cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 2>) -> Tensor<B, 1> {
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    (log_p * targets).sum_dim(1).squeeze_dim::<1>(1).neg()
}
