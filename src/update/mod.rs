//! Update rules: how the gradient an optimiser step applies is obtained (SPEC §4).
//!
//! Every rule returns gradients keyed by the original model's parameter ids and never changes the model itself,
//! so after the optimiser step θ differs from before only by the optimiser's update.

mod perturbation;

pub use perturbation::{asam_perturbation, sam_perturbation};

use burn::optim::GradientsParams;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use burnish_augment::View;

use crate::iam::{kl_batchmean, worst_case_delta, Inconsistency};
use crate::model::{BnMode, Net};
use crate::params::{fresh_leaf_copy, map_vector};
use crate::pipeline::seed::{derive_seed, rng_for};
use crate::step::{Evaluation, Objective, StepBatch, Stream, ViewKey};

/// How the perturbation ε of a two-pass rule is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Plain gradient ∇L(θ).
    Plain,
    /// SAM: ε = ρ g / ‖g‖.
    Sam {
        /// Radius ρ.
        rho: f64,
    },
    /// ASAM: ε = ρ T² g / ‖T g‖ with T = |w| + η on weights and 1 on biases.
    Asam {
        /// Radius ρ.
        rho: f64,
        /// Offset η.
        eta: f64,
    },
    /// IAM-S: ε = δ* of Algorithm 1 on the step's inconsistency batch.
    IamS(Inconsistency),
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
pub struct RuleOutput<B: AutodiffBackend> {
    /// Gradients keyed by the model's parameter ids.
    pub grads: GradientsParams,
    /// Metrics of the objective at θ (plus `s_rho` for IAM-S).
    pub metrics: Vec<(String, Tensor<B, 1>)>,
}

impl UpdateRule {
    /// A rule without m-sharpness.
    pub fn new(rule: Rule) -> Self {
        Self { rule, m: None }
    }

    /// Computes the gradient this rule applies for `batch`; the model's running statistics are updated by the
    /// clean pass(es) only.
    pub fn gradients<B: AutodiffBackend>(
        &self,
        model: &Net<B>,
        batch: &StepBatch<B>,
        objective: &Objective<B>,
        seed: u64,
    ) -> Result<RuleOutput<B>, String> {
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
        let mut outputs = Vec::with_capacity(chunks);
        for (i, part) in batch.chunks(chunks).iter().enumerate() {
            outputs.push(self.single(model, part, objective, derive_seed(&[seed, i as u64]))?);
        }
        Ok(average(model, outputs))
    }

    fn single<B: AutodiffBackend>(
        &self,
        model: &Net<B>,
        batch: &StepBatch<B>,
        objective: &Objective<B>,
        seed: u64,
    ) -> Result<RuleOutput<B>, String> {
        // Stages draw from `seed`; the rule's own draws (IAM-S) from a seed derived from it, so neither repeats the other.
        let clean = objective.evaluate(model, batch, BnMode::Train, seed)?;
        let epsilon = match &self.rule {
            Rule::Plain => {
                let grads = GradientsParams::from_grads(clean.total.backward(), model);
                return Ok(RuleOutput { grads, metrics: clean.metrics });
            }
            Rule::Sam { rho } => {
                let g = GradientsParams::from_grads(clean.total.clone().backward(), model);
                sam_perturbation(model, &g, *rho)
            }
            Rule::Asam { rho, eta } => {
                let g = GradientsParams::from_grads(clean.total.clone().backward(), model);
                asam_perturbation(model, &g, *rho, *eta)
            }
            Rule::IamS(cfg) => iam_s_perturbation(model, &clean, cfg, derive_seed(&[seed, u64::MAX]))?,
        };
        let Evaluation { metrics, forward, .. } = clean;
        let perturbed = fresh_leaf_copy(model, &epsilon);
        let at_eps = objective.evaluate(&perturbed, batch, BnMode::TrainNoStats, seed)?;
        let mut metrics = metrics;
        if let Rule::IamS(_) = self.rule {
            // Ŝ_ρ comes free: the θ + δ* pass already produced the perturbed logits of the inconsistency batch.
            let keys = inconsistency_keys(&forward);
            let p = softmax(cat_logits(&forward, &keys), 1).detach();
            let q = log_softmax(cat_logits(&at_eps.forward, &keys), 1).detach();
            metrics.push(("s_rho".into(), kl_batchmean(p, q)));
        }
        let grads = GradientsParams::from_grads(at_eps.total.backward(), &perturbed);
        Ok(RuleOutput { grads, metrics })
    }
}

/// The views IAM-S measures inconsistency on: the labelled weak view and, when present, the unlabeled weak view.
fn inconsistency_keys<B: AutodiffBackend>(forward: &crate::step::Forward<B>) -> Vec<ViewKey> {
    [ViewKey::new(Stream::Labeled, View::Weak), ViewKey::new(Stream::Unlabeled, View::Weak)]
        .into_iter()
        .filter(|k| forward.rows(*k).is_some())
        .collect()
}

fn cat_logits<B: AutodiffBackend>(forward: &crate::step::Forward<B>, keys: &[ViewKey]) -> Tensor<B, 2> {
    Tensor::cat(keys.iter().map(|&k| forward.logits(k).expect("keys are filtered to present views")).collect(), 0)
}

fn iam_s_perturbation<B: AutodiffBackend>(
    model: &Net<B>,
    clean: &Evaluation<B>,
    cfg: &Inconsistency,
    seed: u64,
) -> Result<GradientsParams, String> {
    let keys = inconsistency_keys(&clean.forward);
    if keys.is_empty() {
        return Err("iam-s needs a weak view of the labelled or unlabeled stream".into());
    }
    let p = softmax(cat_logits(&clean.forward, &keys), 1);
    let x = clean.forward.inputs(&keys).expect("keys are filtered to present views");
    Ok(worst_case_delta(
        model,
        p,
        |m: &Net<B>| log_softmax(m.forward(x.clone(), BnMode::TrainNoStats).logits, 1),
        cfg,
        &mut rng_for(&[seed]),
    ))
}

/// Averages the chunks' gradients (m-sharpness) and concatenates their metrics' means.
fn average<B: AutodiffBackend>(model: &Net<B>, outputs: Vec<RuleOutput<B>>) -> RuleOutput<B> {
    let n = outputs.len() as f64;
    let mut iter = outputs.into_iter();
    let first = iter.next().expect("at least one chunk");
    let (mut grads, mut metrics) = (first.grads, first.metrics);
    for o in iter {
        grads = crate::params::add(model, &grads, &o.grads);
        for ((_, acc), (_, v)) in metrics.iter_mut().zip(o.metrics) {
            *acc = acc.clone() + v;
        }
    }
    let grads = map_vector(model, &grads, |mut e| {
        e.flat = e.flat.div_scalar(n);
        e
    });
    let metrics = metrics.into_iter().map(|(k, v)| (k, v.div_scalar(n))).collect();
    RuleOutput { grads, metrics }
}
