//! Update rules: how the gradient an optimiser step applies is obtained (docs/rules.md).
//!
//! Every rule returns gradients keyed by the original model's parameter ids and never changes the model itself,
//! so after the optimiser step θ differs from before only by the optimiser's update.

mod perturbation;
mod spec;

pub use perturbation::{asam_perturbation, sam_perturbation};
pub use spec::{AsamSpec, IamSSpec, PerturbedLossKind, PlainSpec, SamSpec, UpdateSection};

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::Tensor;

use crate::backend::TrainBackend;
use crate::devices::{ascent_per_device, gradients, mean_gradients, Ascent, Pass, Peer};
use crate::iam::{inconsistency_at, kl_batchmean, worst_case_delta, Inconsistency};
use crate::model::{BnMode, Net};
use crate::objective::Objective;
use crate::params::{fresh_leaf_copy, map_vector, swap_term};
use crate::seed::{derive_seed, rng_for};
use crate::step::{StepBatch, StepError, Stream, ViewKey};

/// Which loss SAM and ASAM perturb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerturbedLoss {
    /// The whole objective: ε from ∇L(θ), gradient ∇L(θ + ε).
    All,
    /// Only the stages that read labelled views alone (the paper's FixMatch + SAM baseline): ε from the labelled
    /// loss's gradient, and that loss's gradient at θ + ε replaces its gradient at θ in the applied gradient.
    Labeled,
}

/// How the perturbation ε of a two-pass rule is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Plain gradient ∇L(θ).
    Plain,
    /// SAM: ε = ρ g / ‖g‖.
    Sam {
        /// Radius ρ.
        rho: f64,
        /// The loss ε is taken on and re-evaluated at θ + ε.
        loss: PerturbedLoss,
    },
    /// ASAM: ε = ρ T² g / ‖T g‖ with T = |w| + η on weights (BatchNorm γ included) and 1 on biases and β.
    Asam {
        /// Radius ρ.
        rho: f64,
        /// Offset η.
        eta: f64,
        /// The loss ε is taken on and re-evaluated at θ + ε.
        loss: PerturbedLoss,
    },
    /// IAM-S: ε = δ* of Algorithm 1 on the inconsistency batch `views`, with BatchNorm normalising those images
    /// alone in the clean and every perturbed pass.
    IamS {
        /// ρ, σ and K of Algorithm 1.
        inconsistency: Inconsistency,
        /// The views whose images form the inconsistency batch, concatenated in this order.
        views: Vec<ViewKey>,
    },
}

/// An update rule with optional m-sharpness.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRule {
    /// The rule.
    pub rule: Rule,
    /// m-sharpness: chunks of `m` labelled samples, one ε per chunk, gradients averaged. `None`: one ε per batch.
    pub m: Option<usize>,
}

/// The gradient to apply and the metrics of the clean evaluation.
pub struct RuleOutput<B: TrainBackend> {
    /// Gradients keyed by the model's parameter ids.
    pub grads: GradientsParams,
    /// Metrics of the objective at θ (plus `s_rho` for IAM-S).
    pub metrics: Vec<(String, Tensor<B, 1>)>,
    /// The perturbation ε each chunk's gradient was taken at (one per m-sharpness chunk; none for `plain`).
    pub perturbations: Vec<GradientsParams>,
}

impl UpdateRule {
    /// A rule without m-sharpness.
    pub fn new(rule: Rule) -> Self {
        Self { rule, m: None }
    }

    /// Computes the gradient this rule applies for `batch`; the model's running statistics are updated by the
    /// clean pass(es) only.
    pub fn gradients<B: TrainBackend>(
        &self,
        model: &Net<B>,
        batch: &StepBatch<B>,
        objective: &Objective<B>,
        seed: u64,
    ) -> Result<RuleOutput<B>, StepError> {
        let chunks = match (self.m, &self.rule) {
            (Some(m), rule) if *rule != Rule::Plain => {
                let labeled = batch.labels(Stream::Labeled).map(|l| l.dims()[0]).unwrap_or(0);
                (labeled / m.max(1)).max(1)
            }
            _ => 1,
        };
        if chunks == 1 {
            return self.single(model, batch, objective, seed);
        }
        // m-sharpness: each chunk's ε is its own, on every device (docs/devices.md); the applied gradients are
        // still averaged over the peers.
        let _local =
            crate::devices::current().map(|p| crate::devices::enter(Some(Peer { ascent: Ascent::PerDevice, ..p })));
        let mut outputs = Vec::with_capacity(chunks);
        for (i, part) in batch.chunks(chunks).iter().enumerate() {
            // Chunks are numbered across the global batch, so chunk i of peer r draws what chunk r·chunks + i draws on
            // one device.
            let global = crate::devices::current().map_or(0, |p| p.rank * chunks) + i;
            outputs.push(self.single(model, part, objective, derive_seed(&[seed, global as u64]))?);
        }
        Ok(average(model, outputs))
    }

    fn single<B: TrainBackend>(
        &self,
        model: &Net<B>,
        batch: &StepBatch<B>,
        objective: &Objective<B>,
        seed: u64,
    ) -> Result<RuleOutput<B>, StepError> {
        let clean = objective.evaluate(model, batch, BnMode::Train, seed, None)?;
        if clean.gradient.is_some() && self.rule != Rule::Plain {
            return Err(StepError::OwnGradient);
        }
        let perturb = |g: &GradientsParams| match self.rule {
            Rule::Asam { rho, eta, .. } => asam_perturbation(model, g, rho, eta),
            Rule::Sam { rho, .. } => sam_perturbation(model, g, rho),
            Rule::Plain | Rule::IamS { .. } => unreachable!("only SAM and ASAM perturb along a gradient"),
        };
        let (grads, epsilon) = match &self.rule {
            Rule::Plain => {
                let mut grads = gradients(clean.total.clone(), model, Pass::Objective);
                if let Some(own) = &clean.gradient {
                    grads = crate::params::add(model, &grads, own);
                }
                return Ok(RuleOutput { grads, metrics: clean.metrics, perturbations: Vec::new() });
            }
            Rule::Sam { loss: PerturbedLoss::All, .. } | Rule::Asam { loss: PerturbedLoss::All, .. } => {
                let g = gradients(clean.total.clone(), model, Pass::Ascent);
                let epsilon = perturb(&g);
                let perturbed = fresh_leaf_copy(model, &epsilon);
                // Stage targets (pseudo-labels, mask) come from θ and are held at θ + ε (docs/rules.md).
                let at_eps = objective.evaluate(&perturbed, batch, BnMode::TrainNoStats, seed, Some(&clean))?;
                (gradients(at_eps.total, &perturbed, Pass::Objective), epsilon)
            }
            Rule::Sam { loss: PerturbedLoss::Labeled, .. } | Rule::Asam { loss: PerturbedLoss::Labeled, .. } => {
                let labeled = objective.labeled();
                if labeled.is_empty() {
                    return Err(StepError::NoLabeledStage);
                }
                let g_all = gradients(clean.total.clone(), model, Pass::Objective);
                // The labelled loss on the labelled views alone, at θ and at θ + ε, so that BatchNorm normalises
                // the same images in both and the correction vanishes as ρ → 0.
                let at_theta =
                    objective.evaluate_stages(&labeled, model, batch, BnMode::TrainNoStats, seed, Some(&clean))?;
                let g_lab = gradients(at_theta.total, model, Pass::Ascent);
                let epsilon = perturb(&g_lab);
                // The applied gradient subtracts the peers' mean g_lab, also when ε came from this peer's own.
                let g_lab = if ascent_per_device() { mean_gradients(model, g_lab, Pass::Objective) } else { g_lab };
                let perturbed = fresh_leaf_copy(model, &epsilon);
                let at_eps =
                    objective.evaluate_stages(&labeled, &perturbed, batch, BnMode::TrainNoStats, seed, Some(&clean))?;
                let g_lab_eps = gradients(at_eps.total, &perturbed, Pass::Objective);
                (swap_term(model, &g_all, &g_lab, &g_lab_eps), epsilon)
            }
            Rule::IamS { inconsistency, views } => {
                let x = batch.images(views).map_err(StepError::MissingView)?;
                let log_q = |m: &Net<B>| log_softmax(m.forward(x.clone(), BnMode::TrainNoStats).logits, 1);
                // p over x alone: the step's forward qualifies only if it held exactly x (docs/iam.md, "Which batch x is").
                let p = if clean.forward.holds_exactly(views) {
                    softmax(clean.forward.output.logits.clone().detach(), 1)
                } else {
                    let untracked = model.valid().forward(x.clone().inner(), BnMode::TrainNoStats);
                    Tensor::from_inner(softmax(untracked.logits, 1))
                };
                let mut rng = rng_for(&[derive_seed(&[seed, u64::MAX])]);
                let delta = worst_case_delta(model, p.clone(), log_q, inconsistency, &mut rng);
                let perturbed = fresh_leaf_copy(model, &delta);
                let at_eps = objective.evaluate(&perturbed, batch, BnMode::TrainNoStats, seed, Some(&clean))?;
                // Ŝ_ρ = KL(p ‖ p(x; θ + δ*)): free when the θ + δ* pass held exactly x, one forward otherwise.
                let s_rho = if at_eps.forward.holds_exactly(views) {
                    kl_batchmean(p, log_softmax(at_eps.forward.output.logits.clone().detach(), 1))
                } else {
                    inconsistency_at(model, p, &delta, log_q)
                };
                let grads = gradients(at_eps.total, &perturbed, Pass::Objective);
                let mut metrics = clean.metrics;
                metrics.push(("s_rho".into(), s_rho));
                return Ok(RuleOutput { grads, metrics, perturbations: vec![delta] });
            }
        };
        Ok(RuleOutput { grads, metrics: clean.metrics, perturbations: vec![epsilon] })
    }
}

/// Averages the chunks' gradients (m-sharpness) and concatenates their metrics' means.
fn average<B: TrainBackend>(model: &Net<B>, outputs: Vec<RuleOutput<B>>) -> RuleOutput<B> {
    let n = outputs.len() as f64;
    let mut iter = outputs.into_iter();
    let first = iter.next().expect("at least one chunk");
    let (mut grads, mut metrics, mut perturbations) = (first.grads, first.metrics, first.perturbations);
    for o in iter {
        grads = crate::params::add(model, &grads, &o.grads);
        perturbations.extend(o.perturbations);
        for ((_, acc), (_, v)) in metrics.iter_mut().zip(o.metrics) {
            *acc = acc.clone() + v;
        }
    }
    let grads = map_vector(model, &grads, |mut e| {
        e.flat = e.flat.div_scalar(n);
        e
    });
    let metrics = metrics.into_iter().map(|(k, v)| (k, v.div_scalar(n))).collect();
    RuleOutput { grads, metrics, perturbations }
}
