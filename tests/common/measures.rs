//! The sharpness measures of `burnish measure` recomputed in the test from their definitions (docs/iam.md,
//! "Sharpness measures"), for comparison with what the command printed: the checkpoint's weights and measure batch
//! are loaded through the library, and the loss (mean cross-entropy, BatchNorm normalising the batch), the
//! Hessian-vector products (central differences of gradients), the power iteration and SAM's ascent run here on flat
//! parameter vectors, without `burnish::sharpness` or `burnish::params`' vector algebra. Only the power iteration's
//! random start direction is the command's own draw, so that both iterate from the same vector.
//!
//! In f32 like the command: only test binaries that never switch flex to f64 ([`super::fd::device`]) use this.
#![allow(dead_code)]

use std::path::Path;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};
use burnish::checkpoint::Checkpoint;
use burnish::model::{BnMode, Net};
use burnish::plan;
use burnish::recipe::Recipe;
use burnish::train::{load_images, Trainer};

use super::fd::{axpy, dot, flatten, flatten_vector, norm, with_params, AD};

/// A checkpoint's weights and the labelled batch `burnish measure --split train --seed 0` draws.
pub struct MeasureBatch {
    model: Net<AD>,
    x: Tensor<AD, 4>,
    y: Tensor<AD, 1, Int>,
}

impl MeasureBatch {
    /// The raw (`ema = false`) or EMA weights of `ckpt` and `batch` training images chosen as the command does.
    pub fn open(ckpt: &Path, batch: usize, ema: bool) -> Self {
        let checkpoint = Checkpoint::read(ckpt).unwrap_or_else(|e| panic!("{}: {e}", ckpt.display()));
        let recipe = Recipe::from_str(&checkpoint.recipe, "embedded recipe", &[]).expect("the embedded recipe");
        let data = plan::data(&recipe).expect("the recipe's data");
        let dev = Default::default();
        let (channels, _, _) = data.dataset.shape();
        let net = plan::net(&recipe, channels, data.dataset.num_classes);
        let init = Trainer::<AD>::init_model(&net, recipe.seed, &dev);
        let model = if ema { checkpoint.load_ema(init, &dev) } else { checkpoint.load_model(init, &dev) };
        let model = model.expect("the checkpoint's weights");
        let split = &data.dataset.train;
        let order = plan::measure_indices(split.len(), batch, 0);
        let (x, y) = load_images::<AD>(split, &order, &data.norm, &dev).expect("the measure batch");
        Self { model, x, y }
    }

    /// The trainable parameters, flattened.
    pub fn theta(&self) -> Vec<f64> {
        flatten(&self.model)
    }

    /// The mean cross-entropy of `m` on the batch.
    fn loss(&self, m: &Net<AD>) -> Tensor<AD, 1> {
        let log_p = log_softmax(m.forward(self.x.clone(), BnMode::TrainNoStats).logits, 1);
        log_p.gather(1, self.y.clone().unsqueeze_dim(1)).squeeze_dim::<1>(1).mean().neg()
    }

    /// The loss at `theta`.
    pub fn loss_at(&self, theta: &[f64]) -> f64 {
        let m = with_params(&self.model, theta).valid();
        let log_p = log_softmax(m.forward(self.x.clone().inner(), BnMode::TrainNoStats).logits, 1);
        let loss = log_p.gather(1, self.y.clone().inner().unsqueeze_dim(1)).squeeze_dim::<1>(1).mean().neg();
        loss.into_data().convert::<f64>().to_vec::<f64>().expect("f64")[0]
    }

    /// The gradient of the loss at `theta`.
    pub fn gradient_at(&self, theta: &[f64]) -> Vec<f64> {
        let m = with_params(&self.model, theta);
        let grads = GradientsParams::from_grads(self.loss(&m).backward(), &m);
        flatten_vector(&m, &grads)
    }

    /// λ_max as `burnish measure --power-iterations n --hvp-step h_rel --seed 0` defines it: `n` steps of power
    /// iteration from the start direction `v0`, each product `(g(θ + h v) − g(θ − h v)) / 2h` with
    /// `h = h_rel · max(‖θ‖, 1)` for the unit vector v; the last Rayleigh quotient vᵀHv.
    pub fn lambda_max(&self, v0: &[f64], iterations: usize, h_rel: f64) -> f64 {
        let theta = self.theta();
        let h = h_rel * norm(&theta).max(1.0);
        let mut v = v0.to_vec();
        let mut lambda = 0.0;
        for _ in 0..iterations {
            let unit: Vec<f64> = v.iter().map(|x| x / norm(&v)).collect();
            let plus = self.gradient_at(&axpy(&theta, h, &unit));
            let minus = self.gradient_at(&axpy(&theta, -h, &unit));
            let hv: Vec<f64> = plus.iter().zip(&minus).map(|(a, b)| (a - b) / (2.0 * h)).collect();
            lambda = dot(&unit, &hv);
            v = hv;
        }
        lambda
    }

    /// The power iteration's start direction of `burnish measure --seed 0`: standard normal values over the
    /// trainable parameters in visit order, from the generator the command seeds for λ_max.
    pub fn lambda_start(&self) -> Vec<f64> {
        let mut rng = burnish::seed::rng_for(&[0, 0x6865_7373]);
        flatten_vector(&self.model, &burnish::params::gaussian::<AD, Net<AD>>(&self.model, 1.0, &mut rng))
    }

    /// SAM sharpness as `burnish measure --sam-rho rho --sam-steps steps` defines it: from ε = 0, each step moves
    /// to ε = ρ g/‖g‖ for the gradient g at θ + ε; the largest `L(θ + ε) − L(θ)` seen (at least 0).
    pub fn sam(&self, rho: f64, steps: usize) -> f64 {
        let theta = self.theta();
        let base = self.loss_at(&theta);
        let mut at = theta.clone();
        let mut best = 0.0f64;
        for _ in 0..steps {
            let g = self.gradient_at(&at);
            at = axpy(&theta, rho / norm(&g), &g);
            best = best.max(self.loss_at(&at) - base);
        }
        best
    }
}
