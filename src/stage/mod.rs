//! Loss stages: the terms a training step sums, each with its own weight (docs/stages.md).
//!
//! A stage is one file: the serde type of its `[[stage]]` table (keys, defaults, range checks, what it reads
//! from the step, how it is built; [`spec::StageKind`]) next to the runtime [`Stage`] that computes its loss from
//! the step's one clean forward. Adding a stage is that file plus, here, its `mod` line and one line in
//! [`registry!`]; the recipe's parsing, `kind` names, validation against the data section and the trainer's
//! building all come from the registry line.

mod spec;

// Declared outside the registry because rustfmt does not look for modules inside macro invocations.
mod entropy;
mod fixmatch;
mod ggcr;
mod iam_d;
mod ntxent;
mod supervised;

pub use spec::{Needs, StageKind, Supply, WeightSchedule};

/// The stage kinds: `"kind" => Variant(module::Spec)`. Re-exports the modules, declares the [`StageSpec`] enum a recipe's
/// `[[stage]]` tables parse into, and its dispatch to each kind's [`StageKind`] methods.
macro_rules! registry {
    ($($kind:literal => $variant:ident($module:ident::$spec:ident)),+ $(,)?) => {
        $(pub use $module::*;)+

        /// One `[[stage]]` table: a loss term and its settings, tagged by `kind`.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind")]
        pub enum StageSpec {
            $(
                #[doc = concat!("`kind = \"", $kind, "\"`.")]
                #[serde(rename = $kind)]
                $variant($spec),
            )+
        }

        $(impl $spec {
            /// The stage's `kind` as recipes write it.
            pub const KIND: &'static str = $kind;
        })+

        impl StageSpec {
            /// Every stage kind, as recipes name them.
            pub const KINDS: &'static [&'static str] = &[$($kind),+];

            /// The stage's `kind` as written in recipes.
            pub fn kind(&self) -> &'static str {
                match self { $(StageSpec::$variant(_) => $kind,)+ }
            }

            /// The stage's weight in the summed loss (β for `iam-d`).
            pub fn weight(&self) -> f64 {
                match self { $(StageSpec::$variant(s) => s.weight(),)+ }
            }

            /// The stage's weight schedule (its `start_step` and `ramp_steps`).
            pub fn schedule(&self) -> WeightSchedule {
                match self { $(StageSpec::$variant(s) => s.schedule(),)+ }
            }

            /// Checks the stage's own ranges; `index` is its 0-based position among the `[[stage]]` tables.
            pub(crate) fn validate(&self, index: usize) -> crate::check::Check {
                let at = format!("stage.{index}");
                match self { $(StageSpec::$variant(s) => s.validate(&at),)+ }
            }

            /// What the stage at `index` reads from the step, given what the recipe supplies.
            pub fn needs(&self, index: usize, supply: &Supply<'_>) -> Result<Needs, crate::check::Problem> {
                let at = format!("stage.{index}");
                match self { $(StageSpec::$variant(s) => s.needs(&at, supply),)+ }
            }

            /// The runtime stage, reading `needs`.
            pub fn build<B: TrainBackend>(
                &self,
                supply: &Supply<'_>,
                needs: Needs,
            ) -> Result<Box<dyn Stage<B>>, crate::check::Problem> {
                match self { $(StageSpec::$variant(s) => s.build(supply, needs),)+ }
            }

            /// Reads a table of kind `kind` (without its `kind` key) as that kind's spec, to check it on its own;
            /// `None` for an unknown kind.
            pub(crate) fn check_table<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                table: D,
            ) -> Option<Result<(), D::Error>> {
                use serde::Deserialize as _;
                match kind {
                    $($kind => Some($spec::deserialize(table).map(drop)),)+
                    _ => None,
                }
            }
        }
    };
}

registry! {
    "supervised" => Supervised(supervised::SupervisedSpec),
    "fixmatch" => FixMatch(fixmatch::FixMatchSpec),
    "iam-d" => IamD(iam_d::IamDSpec),
    "ntxent" => NtXent(ntxent::NtXentSpec),
    "entropy" => Entropy(entropy::EntropySpec),
    "ggcr" => Ggcr(ggcr::GgcrSpec),
}

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
    /// The stage's effective weight at this step (after its schedule): a stage may skip work whose result would
    /// be multiplied by 0.
    pub weight: f64,
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
#[derive(Debug)]
pub struct StageOutput<B: TrainBackend> {
    /// The unweighted loss (a one-element tensor that carries gradient).
    pub loss: Tensor<B, 1>,
    /// Extra named metrics.
    pub metrics: Vec<Metric<B>>,
    /// Targets derived from the model at this evaluation's parameters, to hold fixed at θ + ε.
    pub targets: Option<Targets<B>>,
    /// The unweighted gradient of the loss, for a stage that computes it itself because Burn cannot differentiate
    /// its loss (`ggcr`); its `loss` is then a detached value. Keyed by the model's parameter ids.
    pub gradient: Option<burn::optim::GradientsParams>,
}

impl<B: TrainBackend> StageOutput<B> {
    /// An output without model-derived targets.
    pub fn new(loss: Tensor<B, 1>, metrics: Vec<Metric<B>>) -> Self {
        Self { loss, metrics, targets: None, gradient: None }
    }
}

/// One term of the training objective.
pub trait Stage<B: TrainBackend>: Send + Sync {
    /// The stage's kind as recipes name it (e.g. `supervised`, `iam-d`).
    fn kind(&self) -> &'static str;
    /// The views of the step this stage reads from the clean forward (its spec's [`Needs::views`]).
    fn views(&self) -> Vec<ViewKey>;
    /// The names of the metrics [`Stage::loss`] may report, besides `loss` (e.g. `mask_rate`).
    fn metric_names(&self) -> &'static [&'static str];
    /// Computes the unweighted loss and metrics.
    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B>;
}

/// A stage with its weight in the sum.
pub struct Weighted<B: TrainBackend> {
    /// Multiplies the stage's loss.
    pub weight: f64,
    /// How the weight changes over training.
    pub schedule: WeightSchedule,
    /// The stage.
    pub stage: Box<dyn Stage<B>>,
}

impl<B: TrainBackend> Weighted<B> {
    /// A stage with a constant weight.
    pub fn new(weight: f64, stage: Box<dyn Stage<B>>) -> Self {
        Self { weight, schedule: WeightSchedule::default(), stage }
    }

    /// The weight at (0-based) `step`.
    pub fn weight_at(&self, step: u64) -> f64 {
        self.weight * self.schedule.factor(step)
    }
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
