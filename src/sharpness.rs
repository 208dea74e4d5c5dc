//! The sharpness measures that IAM's local inconsistency is compared against (docs/iam.md, "Sharpness measures"):
//! the largest Hessian eigenvalue of the loss, by power iteration on finite-difference Hessian-vector products, and
//! SAM's sharpness `max_{‖ε‖ ≤ ρ} L(θ + ε) − L(θ)`, by normalised gradient ascent on the sphere. Unlike Ŝ_ρ both need
//! labels. `burnish measure` computes them on the same images as Ŝ_ρ.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor};

use crate::backend::TrainBackend;
use crate::model::{BnMode, Net};
use crate::params::{constant_copy, dot, gaussian, gradient_at, hessian_vector, scale, scale_to_radius};

/// λ_max of the Hessian of `loss` at θ: `iterations` steps of power iteration from a random direction drawn from
/// `rng`, each one finite-difference product ([`hessian_vector`], relative step `h_rel`); returns the last Rayleigh
/// quotient vᵀHv. Power iteration converges to the eigenvalue of largest magnitude, which for a trained network's
/// loss is the top positive one in practice.
pub fn top_eigenvalue<B, M, F>(
    model: &M,
    mut loss: F,
    iterations: usize,
    h_rel: f64,
    rng: &mut dyn rand::RngCore,
) -> f64
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M) -> Tensor<B, 1>,
{
    let mut v = gaussian::<B, M>(model, 1.0, rng);
    let mut lambda = 0.0;
    for _ in 0..iterations.max(1) {
        let norm = dot(model, &v, &v).sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return 0.0;
        }
        v = scale(model, &v, 1.0 / norm);
        let hv = hessian_vector(model, &v, h_rel, &mut loss);
        lambda = dot(model, &v, &hv);
        v = hv;
    }
    lambda
}

/// SAM's sharpness of `loss` at θ: `L(θ + ε) − L(θ)` for the ε on the sphere ‖ε‖ = ρ found by `steps` normalised
/// ascent steps (the first is SAM's own ε = ρ g/‖g‖), the largest value seen.
pub fn sam_sharpness<B, M, F>(model: &M, mut loss: F, rho: f64, steps: usize) -> f64
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M) -> Tensor<B, 1>,
{
    // Through TensorData: `into_scalar` gives the backend's f32 element even when the tensor holds f64.
    let value = |m: &M, loss: &mut F| loss(m).into_data().convert::<f64>().to_vec::<f64>().map_or(f64::NAN, |v| v[0]);
    let base = value(&constant_copy::<B, M>(model, &GradientsParams::new()), &mut loss);
    let mut epsilon = GradientsParams::new();
    let mut best = 0.0f64;
    for _ in 0..steps.max(1) {
        let g = gradient_at(model, &epsilon, &mut loss);
        epsilon = scale_to_radius::<B, M>(model, &g, rho);
        best = best.max(value(&constant_copy::<B, M>(model, &epsilon), &mut loss) - base);
    }
    best
}

/// The mean cross-entropy of a classifier on labelled images, with BatchNorm normalising the batch without touching
/// the running statistics (as Ŝ_ρ is measured).
pub fn classifier_loss<B: TrainBackend>(x: Tensor<B, 4>, y: Tensor<B, 1, Int>) -> impl FnMut(&Net<B>) -> Tensor<B, 1> {
    move |m: &Net<B>| {
        let log_p = log_softmax(m.forward(x.clone(), BnMode::TrainNoStats).logits, 1);
        log_p.gather(1, y.clone().unsqueeze_dim(1)).squeeze_dim::<1>(1).mean().neg()
    }
}
