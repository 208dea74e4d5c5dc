//! `iam-d`: β · KL(p(x; θ) ‖ p(x; θ + sg(δ*))), the IAM regulariser as a loss term (docs/stages.md, docs/iam.md).
//!
//! The clean and perturbed distributions are taken over the same images x with BatchNorm normalising x alone in
//! every pass. Cost model (K = 1): one ascent pass (forward + backward at θ + δ₀) inside Algorithm 1 and one
//! perturbed pass (forward at θ + sg(δ*), back-propagated with the task loss). The clean branch reuses the step's
//! forward when that forward held exactly x (supervised, SimCLR); when it also held other images (FixMatch's
//! strong views) a third pass runs over x alone. Either way the KL's gradient rides on the task loss's backward.
//! With `ascent_fraction` f < 1 the ascent pass covers ⌈f·n⌉ of the n images, plus a forward over them for its own
//! clean side. With `batch_fraction` g < 1 the whole term (clean pass, ascent, perturbed pass) runs on a random
//! ⌈g·n⌉ of the n images, and `ascent_fraction` then applies within that sub-batch.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use burnish_augment::View;
use serde::{Deserialize, Serialize};

use super::ntxent::pair;
use super::spec::{is_zero, Needs, StageKind, Supply, WeightSchedule};
use super::{ntxent_logits, Metric, NtXentSpec, Stage, StageContext, StageOutput, StageSpec};
use crate::backend::TrainBackend;
use crate::check::{above, at_least, count_at_least, in_open_closed, Check, Problem};
use crate::iam::{kl_batchmean, worst_case_delta, Inconsistency};
use crate::model::{BnMode, Net};
use crate::params::linked_copy;
use crate::seed::rng_for;
use crate::step::{Stream, ViewKey};

/// `[[stage]] kind = "iam-d"`: β · KL(p(x; θ) ‖ p(x; θ + sg(δ*))) (docs/stages.md, docs/iam.md).
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
    #[serde(default = "default::fraction")]
    pub ascent_fraction: f64,
    /// Share of the KL batch the whole term is computed on, in (0, 1]. 1 (the default) is the paper's estimate; below
    /// 1 each step's clean pass, ascent and penalised KL all cover a random ⌈g·n⌉ of the n images (docs/iam.md, "The
    /// whole term on a sub-batch").
    #[serde(default = "default::fraction", skip_serializing_if = "is_one")]
    pub batch_fraction: f64,
    /// First step (0-based) at which the weight is not 0 (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_step: u64,
    /// Steps over which the weight then ramps linearly to full (default 0: at once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ramp_steps: u64,
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

/// Defaults of the stage's keys (the IAM paper's ρ = 0.1, σ = 1e-3, K = 1; docs/stages.md).
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
    /// `ascent_fraction` and `batch_fraction`: the whole batch, the paper's estimate.
    pub(super) fn fraction() -> f64 {
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
            ascent_fraction: default::fraction(),
            batch_fraction: default::fraction(),
            start_step: 0,
            ramp_steps: 0,
        }
    }
}

impl StageKind for IamDSpec {
    fn weight(&self) -> f64 {
        self.beta
    }

    fn schedule(&self) -> WeightSchedule {
        WeightSchedule { start_step: self.start_step, ramp_steps: self.ramp_steps }
    }

    fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.beta"), self.beta, 0.0)?;
        above(&format!("{at}.rho"), self.rho, 0.0)?;
        at_least(&format!("{at}.sigma"), self.sigma, 0.0)?;
        count_at_least(&format!("{at}.steps"), self.steps, 1)?;
        in_open_closed(&format!("{at}.ascent_fraction"), self.ascent_fraction, 0.0, 1.0)?;
        in_open_closed(&format!("{at}.batch_fraction"), self.batch_fraction, 0.0, 1.0)?;
        if self.source == IamDSource::Batch && self.distribution != IamDDistribution::default() {
            // A setting that would be silently ignored is more likely a mistake than an intention.
            return Err(Problem::new(
                format!("{at}.distribution"),
                "only applies with source = \"projection\" (this stage has source = \"batch\")",
            ));
        }
        Ok(())
    }
    fn needs(&self, at: &str, supply: &Supply<'_>) -> Result<Needs, Problem> {
        match self.source {
            IamDSource::Batch => {
                let views = batch_views(supply);
                if views.is_empty() {
                    return Err(Problem::new(
                        format!("{at}.source"),
                        "\"batch\" needs a \"weak\" view in data.labeled_views or (with data.mu > 0) data.unlabeled_views",
                    ));
                }
                Ok(Needs { views, chosen_by: Some("source"), ..Needs::default() })
            }
            // The ntxent stage checks that there are exactly two views to pair.
            IamDSource::Projection => Ok(Needs {
                views: ViewKey::for_views(Stream::Unlabeled, supply.unlabeled_views),
                projection: true,
                stages: vec![NtXentSpec::KIND],
                chosen_by: Some("source"),
                ..Needs::default()
            }),
        }
    }

    fn build<B: TrainBackend>(&self, supply: &Supply<'_>, needs: Needs) -> Result<Box<dyn Stage<B>>, Problem> {
        let source = match self.source {
            IamDSource::Batch => IamSource::Batch(needs.views),
            IamDSource::Projection => IamSource::Projection {
                views: pair("stage", supply)?,
                distribution: match self.distribution {
                    IamDDistribution::Components => ProjectionDistribution::Components,
                    IamDDistribution::Ntxent => ProjectionDistribution::NtXent {
                        temperature: ntxent_temperature(supply)
                            .ok_or_else(|| Problem::new("stage", "source = \"projection\" needs an ntxent stage"))?,
                    },
                },
            },
        };
        Ok(Box::new(IamD {
            inconsistency: Inconsistency { rho: self.rho, sigma: self.sigma, steps: self.steps },
            source,
            ascent_fraction: self.ascent_fraction,
            batch_fraction: self.batch_fraction,
        }))
    }
}

/// The weak views IAM measures inconsistency on: the labelled weak view and, when drawn, the unlabeled one (the
/// `iam-s` rule and `burnish measure` use the same batch).
pub fn batch_views(supply: &Supply<'_>) -> Vec<ViewKey> {
    let mut keys = Vec::new();
    if supply.labeled_views.contains(&View::Weak) {
        keys.push(ViewKey::new(Stream::Labeled, View::Weak));
    }
    if supply.unlabeled_stream && supply.unlabeled_views.contains(&View::Weak) {
        keys.push(ViewKey::new(Stream::Unlabeled, View::Weak));
    }
    keys
}

/// τ of the recipe's first ntxent stage.
fn ntxent_temperature(supply: &Supply<'_>) -> Option<f64> {
    supply.stages.iter().find_map(|s| if let StageSpec::NtXent(n) = s { Some(n.temperature) } else { None })
}

/// Where the distributions compared by IAM-D come from.
#[derive(Debug, Clone, PartialEq)]
pub enum IamSource {
    /// Classifier softmax over these views (e.g. labelled weak + unlabeled weak), concatenated.
    Batch(Vec<ViewKey>),
    /// A distribution made from the projection-head outputs of two paired views (SimCLR).
    Projection {
        /// The two views of each image, in the ntxent stage's order.
        views: [ViewKey; 2],
        /// How projections become a distribution.
        distribution: ProjectionDistribution,
    },
}

/// How `source = "projection"` turns projection-head outputs into a distribution per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProjectionDistribution {
    /// Softmax over each row of the NT-Xent logits with this temperature (the ntxent stage's τ).
    NtXent {
        /// τ of the ntxent stage.
        temperature: f64,
    },
    /// Softmax over the components of each projection vector.
    Components,
}

/// The IAM-D stage; its weight in the recipe is β.
#[derive(Debug, Clone)]
pub struct IamD {
    /// ρ, σ and K of Algorithm 1.
    pub inconsistency: Inconsistency,
    /// The batch and distribution the KL is taken over.
    pub source: IamSource,
    /// Share of the KL batch (after `batch_fraction`'s draw) that Algorithm 1's ascent runs on, in (0, 1]; 1 is the
    /// paper's estimate.
    pub ascent_fraction: f64,
    /// Share of the KL batch the whole term is computed on, in (0, 1]; 1 is the paper's estimate.
    pub batch_fraction: f64,
}

/// Serde's `skip_serializing_if` for `batch_fraction`, so recipes without it resolve to the same text as before.
fn is_one(v: &f64) -> bool {
    *v == 1.0
}

/// Stream tag of the draw that picks a sub-batch ascent's images, apart from δ₀'s noise.
const ASCENT_ROWS: u64 = 0x6173_6365_6e74;

/// Stream tag of the draw that picks the images of a sub-batch term (`batch_fraction`), apart from the ascent's.
const BATCH_ROWS: u64 = 0x0062_6174_6368;

/// The rows of an `n`-row KL batch that a sub-batch ascent runs on: a seeded random ⌈f·u⌉ of its u units, in
/// increasing order. A unit is one row, or with `pairs` (SimCLR's projection source, whose NT-Xent distribution
/// needs both views of an image) the rows i and i + n/2; the rows of the first views come first.
pub fn ascent_rows(n: usize, pairs: bool, fraction: f64, seed: u64) -> Vec<usize> {
    sample_rows(n, pairs, fraction, rng_for(&[seed, ASCENT_ROWS]))
}

/// The rows of an `n`-row KL batch that a sub-batch term (`batch_fraction`) is computed on: drawn as
/// [`ascent_rows`] draws, from a stream of its own.
pub fn batch_rows(n: usize, pairs: bool, fraction: f64, seed: u64) -> Vec<usize> {
    sample_rows(n, pairs, fraction, rng_for(&[seed, BATCH_ROWS]))
}

/// A random ⌈f·u⌉ of the u units of an `n`-row batch (rows, or with `pairs` the rows i and i + n/2), in increasing
/// order with the first views' rows first.
fn sample_rows(n: usize, pairs: bool, fraction: f64, mut rng: impl rand::Rng) -> Vec<usize> {
    let units = if pairs { n / 2 } else { n };
    // fraction ∈ (0, 1] makes the ceiling at least 1 (for a non-empty batch); min() only guards float rounding.
    let m = ((fraction * units as f64).ceil() as usize).min(units);
    let mut chosen = rand::seq::index::sample(&mut rng, units, m).into_vec();
    chosen.sort_unstable();
    if pairs {
        let second: Vec<usize> = chosen.iter().map(|i| i + units).collect();
        chosen.extend(second);
    }
    chosen
}

impl IamD {
    fn keys(&self) -> Vec<ViewKey> {
        match &self.source {
            IamSource::Batch(keys) => keys.clone(),
            IamSource::Projection { views, .. } => views.to_vec(),
        }
    }

    /// The logits (before softmax) of the compared distribution, from the rows of every key in order: classifier
    /// logits, or projections turned into NT-Xent logits or used as they are.
    fn scores<B: Backend>(&self, logits: Tensor<B, 2>, projections: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        match &self.source {
            IamSource::Batch(_) => logits,
            IamSource::Projection { distribution, .. } => {
                let z = projections.expect("validation requires a projection head for source = \"projection\"");
                match *distribution {
                    ProjectionDistribution::Components => z,
                    ProjectionDistribution::NtXent { temperature } => {
                        let n = z.dims()[0] / 2;
                        ntxent_logits(z.clone().narrow(0, 0, n), z.narrow(0, n, n), temperature).0
                    }
                }
            }
        }
    }

    /// δ* of Algorithm 1 for the KL batch `x`, whose clean distribution is `p`. With `ascent_fraction` < 1 the ascent
    /// runs on the rows [`ascent_rows`] picks, and the clean side of that ascent is recomputed on those rows alone, so
    /// that BatchNorm normalises the same images in its clean and perturbed passes (docs/iam.md, "A cheaper ascent").
    pub fn delta_star<B: TrainBackend>(
        &self,
        model: &Net<B>,
        x: &Tensor<B, 4>,
        p: Tensor<B, 2>,
        seed: u64,
    ) -> GradientsParams {
        let mut rng = rng_for(&[seed]);
        if self.ascent_fraction >= 1.0 {
            return worst_case_delta(model, p, |m| self.perturbed_log_probs(m, x), &self.inconsistency, &mut rng);
        }
        let pairs = self.pairs();
        let sub = select_rows(x, &ascent_rows(x.dims()[0], pairs, self.ascent_fraction, seed));
        // Never differentiated (the ascent detaches its p), so it runs untracked, as the iam-s rule's clean pass does.
        let out = model.valid().forward(sub.clone().inner(), BnMode::TrainNoStats);
        let p_sub = Tensor::from_inner(log_softmax(self.scores(out.logits, out.projections), 1).exp());
        worst_case_delta(model, p_sub, |m| self.perturbed_log_probs(m, &sub), &self.inconsistency, &mut rng)
    }

    /// Whether the KL pairs the rows i and i + n/2 (SimCLR's projection source), so a sub-batch keeps pairs whole.
    fn pairs(&self) -> bool {
        matches!(self.source, IamSource::Projection { .. })
    }

    /// Log-probabilities at `model` on `x`, normalising with batch statistics that are not stored.
    fn perturbed_log_probs<B: TrainBackend>(&self, model: &Net<B>, x: &Tensor<B, 4>) -> Tensor<B, 2> {
        let out = model.forward(x.clone(), BnMode::TrainNoStats);
        log_softmax(self.scores(out.logits, out.projections), 1)
    }
}

impl<B: TrainBackend> Stage<B> for IamD {
    fn kind(&self) -> &'static str {
        IamDSpec::KIND
    }

    fn metric_names(&self) -> &'static [&'static str] {
        &["s_rho"]
    }

    fn views(&self) -> Vec<ViewKey> {
        self.keys()
    }

    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B> {
        let keys = self.keys();
        let all =
            ctx.batch.images(&keys).unwrap_or_else(|k| panic!("the step batch has every listed view; {k} is missing"));
        // A sub-batch term is the full estimate on the drawn images alone (docs/iam.md, "The whole term on a
        // sub-batch"); its draw is a function of the stage seed, so SAM-like rules see the same images at θ + ε.
        let (x, whole) = if self.batch_fraction >= 1.0 {
            (all, true)
        } else {
            (select_rows(&all, &batch_rows(all.dims()[0], self.pairs(), self.batch_fraction, ctx.seed)), false)
        };
        // The clean branch must normalise exactly the batch the perturbed passes see (docs/iam.md, "Which batch x
        // is"), or the KL would not vanish as ρ → 0. The step's forward qualifies only when it held x and nothing else.
        let clean = if whole && ctx.forward.holds_exactly(&keys) {
            self.scores(ctx.forward.output.logits.clone(), ctx.forward.output.projections.clone())
        } else {
            let out = ctx.model.forward(x.clone(), BnMode::TrainNoStats);
            self.scores(out.logits, out.projections)
        };
        // Tracked: the clean branch's gradient flows through p as well as through the perturbed branch.
        let p = log_softmax(clean, 1).exp();
        let delta = self.delta_star(ctx.model, &x, p.clone(), ctx.seed);
        let perturbed = linked_copy(ctx.model, &delta);
        let kl = kl_batchmean(p, self.perturbed_log_probs(&perturbed, &x));
        let s_rho = kl.clone().detach();
        StageOutput::new(kl, vec![Metric { name: "s_rho", value: s_rho }])
    }
}

/// The rows `rows` of `x`, in that order.
fn select_rows<B: Backend>(x: &Tensor<B, 4>, rows: &[usize]) -> Tensor<B, 4> {
    let rows: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    let count = rows.len();
    x.clone().select(0, Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [count]), &x.device()))
}
