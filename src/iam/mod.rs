//! Local inconsistency: Algorithm 1 of the IAM paper (docs/iam.md), shared by the `iam-d` stage, the `iam-s` update
//! rule and `burnish measure`.
//!
//! Given the clean distribution `p = sg(p(x; θ))` of a batch (taken from the step's clean forward, never
//! recomputed), it finds the perturbation δ of global norm ρ that approximately maximises `KL(p ‖ p(x; θ + δ))`
//! by K normalised gradient-ascent steps from Gaussian noise of norm ≈ σ.

mod kl;

pub use kl::{kl_batchmean, P_FLOOR};

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::ElementConversion;

use crate::backend::TrainBackend;
use crate::model::{BnMode, Net};
use crate::params::{constant_copy, fresh_leaf_copy, gaussian, num_trainable, scale_to_radius};
use crate::seed::rng_for;

/// Settings of Algorithm 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inconsistency {
    /// Radius ρ of the perturbation (global norm).
    pub rho: f64,
    /// Norm σ of the initial Gaussian noise.
    pub sigma: f64,
    /// Number K of normalised ascent steps.
    pub steps: usize,
}

impl Default for Inconsistency {
    /// The paper's defaults: ρ = 0.1, σ = 1e-3, K = 1.
    fn default() -> Self {
        Self { rho: 0.1, sigma: 1e-3, steps: 1 }
    }
}

/// δ* of Algorithm 1: the perturbation that (approximately) maximises `KL(p ‖ p(x; θ + δ))` on `‖δ‖ = ρ`.
///
/// `p` holds the clean probabilities (they are detached here); `log_q` runs the model it is given on the batch
/// and returns log-probabilities, so the same routine serves classifier outputs and projection-head outputs.
/// The initial noise δ₀ is drawn from `rng`, which callers seed per step so that runs and resumes are exact.
pub fn worst_case_delta<B, M, F>(
    model: &M,
    p: Tensor<B, 2>,
    mut log_q: F,
    cfg: &Inconsistency,
    rng: &mut dyn rand::RngCore,
) -> GradientsParams
where
    B: TrainBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M) -> Tensor<B, 2>,
{
    let p = p.detach();
    let n = num_trainable::<B, M>(model).max(1);
    let mut delta = gaussian::<B, M>(model, cfg.sigma / (n as f64).sqrt(), rng);
    for _ in 0..cfg.steps {
        let perturbed = fresh_leaf_copy::<B, M>(model, &delta);
        let kl = kl_batchmean(p.clone(), log_q(&perturbed));
        // On several devices the direction is the global batch's (docs/devices.md).
        let grads = crate::devices::gradients(kl, &perturbed, crate::devices::Pass::Ascent);
        // Each step replaces δ rather than accumulating, as Algorithm 1 prescribes.
        delta = scale_to_radius::<B, M>(model, &grads, cfg.rho);
    }
    delta
}

/// `KL(p ‖ p(x; θ + δ))` evaluated without building a graph: Ŝ_ρ once δ is δ*.
pub fn inconsistency_at<B, M, F>(model: &M, p: Tensor<B, 2>, delta: &GradientsParams, mut log_q: F) -> Tensor<B, 1>
where
    B: TrainBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M) -> Tensor<B, 2>,
{
    let perturbed = constant_copy::<B, M>(model, delta);
    kl_batchmean(p.detach(), log_q(&perturbed).detach())
}

/// Ŝ_ρ of Algorithm 1 (steps 1–4): finds δ* and returns `KL(p ‖ p(x; θ + δ*))` with δ*.
pub fn local_inconsistency<B, M, F>(
    model: &M,
    p: Tensor<B, 2>,
    mut log_q: F,
    cfg: &Inconsistency,
    rng: &mut dyn rand::RngCore,
) -> (Tensor<B, 1>, GradientsParams)
where
    B: TrainBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M) -> Tensor<B, 2>,
{
    let delta = worst_case_delta(model, p.clone(), &mut log_q, cfg, rng);
    let s = inconsistency_at(model, p, &delta, &mut log_q);
    (s, delta)
}

/// Ŝ_ρ of a classifier on images `x`, once per restart (restart r draws its δ₀ from `rng_for(&[seed, r])`).
///
/// Both the clean and the perturbed passes normalise with the batch's statistics, as training's perturbed passes
/// do, and none of them touches the running statistics.
pub fn measure_classifier<B: TrainBackend>(
    model: &Net<B>,
    x: Tensor<B, 4>,
    cfg: &Inconsistency,
    restarts: usize,
    seed: u64,
) -> Vec<f64> {
    let p = softmax(model.forward(x.clone(), BnMode::TrainNoStats).logits, 1).detach();
    let log_q = |m: &Net<B>| log_softmax(m.forward(x.clone(), BnMode::TrainNoStats).logits, 1);
    (0..restarts)
        .map(|r| {
            let (s, _) = local_inconsistency(model, p.clone(), log_q, cfg, &mut rng_for(&[seed, r as u64]));
            s.into_scalar().elem::<f64>()
        })
        .collect()
}
