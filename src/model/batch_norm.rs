//! Batch normalisation with an explicit, caller-controlled running-statistics update.
//!
//! One implementation serves images (`[N, C, H, W]`) and feature vectors (`[N, C]`): the input is
//! viewed as `[N, C, L]` so every reduction runs over the contiguous last axis and then over the
//! (short) batch axis, and every per-channel factor is laid out as `[N, C, 1]`. Both shapes hit
//! flex's fast paths; Burn 0.21's own `BatchNorm` swaps axes and broadcasts `[1, C, 1, 1]`, and
//! is about 25× slower forward + backward on `[128, 32, 28, 28]`.
//!
//! The batch variance is `E[x²] − E[x]²` (one pass over x instead of two, 1.5× faster forward +
//! backward than centring first). In f32 it loses about `log10(mean²/var)` of its ~7 digits: harmless
//! for activations, whose per-channel mean is within a few standard deviations of zero.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::RunningStat;

/// What a BatchNorm forward normalises with, and whether it records statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BnMode {
    /// Batch statistics, and the running statistics move towards them (the clean training pass).
    Train,
    /// Batch statistics, running statistics untouched (passes at perturbed weights θ + δ, θ + ε).
    TrainNoStats,
    /// Running statistics (evaluation, pseudo-labels from an EMA model).
    Eval,
}

impl BnMode {
    /// Whether this mode normalises with the current batch's statistics.
    pub fn uses_batch_stats(self) -> bool {
        matches!(self, BnMode::Train | BnMode::TrainNoStats)
    }
}

/// Hyper-parameters of a [`BatchNorm`]; PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Number of channels (dimension 1 of the input).
    pub num_features: usize,
    /// PyTorch convention: `running = (1 − momentum)·running + momentum·batch`.
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl BatchNormConfig {
    /// PyTorch's default momentum.
    pub const DEFAULT_MOMENTUM: f64 = 0.1;
    /// PyTorch's default epsilon.
    pub const DEFAULT_EPSILON: f64 = 1e-5;

    /// A configuration with PyTorch's defaults (momentum 0.1, epsilon 1e-5).
    pub fn new(num_features: usize) -> Self {
        Self { num_features, momentum: Self::DEFAULT_MOMENTUM, epsilon: Self::DEFAULT_EPSILON }
    }

    /// Sets the running-statistics momentum.
    pub fn with_momentum(self, momentum: f64) -> Self {
        Self { momentum, ..self }
    }

    /// Sets epsilon.
    pub fn with_epsilon(self, epsilon: f64) -> Self {
        Self { epsilon, ..self }
    }

    /// A layer with weight 1, bias 0, running mean 0 and running variance 1 (as PyTorch).
    pub fn init<B: Backend>(&self, device: &B::Device) -> BatchNorm<B> {
        let c = self.num_features;
        BatchNorm {
            weight: Param::from_tensor(Tensor::ones([c], device)),
            bias: Param::from_tensor(Tensor::zeros([c], device)),
            running_mean: RunningStat::new(Tensor::zeros([c], device)),
            running_var: RunningStat::new(Tensor::ones([c], device)),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

/// Batch normalisation over dimension 1; fields named as PyTorch's so parameter paths match.
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// Per-channel scale γ.
    pub weight: Param<Tensor<B, 1>>,
    /// Per-channel shift β.
    pub bias: Param<Tensor<B, 1>>,
    /// Running mean, used in [`BnMode::Eval`].
    pub running_mean: RunningStat<B>,
    /// Running (unbiased) variance, used in [`BnMode::Eval`].
    pub running_var: RunningStat<B>,
    /// Running-statistics momentum (PyTorch convention).
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl<B: Backend> BatchNorm<B> {
    /// Normalises `x` (`[N, C, ...]`, rank ≥ 2) per channel; see [`BnMode`] for the statistics used.
    ///
    /// In [`BnMode::Train`] the running statistics become
    /// `(1 − momentum)·running + momentum·batch`, with the unbiased batch variance (PyTorch).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>, mode: BnMode) -> Tensor<B, D> {
        let dims = x.dims();
        assert!(D >= 2, "BatchNorm needs an input of rank >= 2 ([N, C, ...]), got rank {D}");
        let [n, c] = [dims[0], dims[1]];
        let channels = self.weight.dims()[0];
        assert_eq!(c, channels, "BatchNorm over {channels} channels got an input of shape {dims:?}");
        let l: usize = dims[2..].iter().product();
        let x = x.reshape([n, c, l]);

        let (mean, var) = match mode {
            BnMode::Eval => (self.running_mean.value(), self.running_var.value()),
            BnMode::Train | BnMode::TrainNoStats => {
                let count = n * l;
                let mean = channel_sum(x.clone()).div_scalar(count as f64);
                let mean_sq = channel_sum(x.clone().square()).div_scalar(count as f64);
                // max(0, ·) only absorbs rounding: the true value is never negative.
                let var = (mean_sq - mean.clone().square()).clamp_min(0.0);
                if mode == BnMode::Train {
                    self.update_running(mean.clone(), var.clone(), count);
                }
                (mean, var)
            }
        };
        // y = x·scale + shift touches the full-size tensor twice; the statistics are [C]-sized.
        let scale = self.weight.val() * var.add_scalar(self.epsilon).sqrt().recip();
        let shift = self.bias.val() - mean * scale.clone();
        let y = x * per_row(scale, n) + per_row(shift, n);
        y.reshape(dims)
    }

    fn update_running(&self, mean: Tensor<B, 1>, biased_var: Tensor<B, 1>, count: usize) {
        // PyTorch records the unbiased variance; with a single value per channel it is undefined
        // (PyTorch refuses to train then), so the biased one (0) is kept instead of a NaN.
        let unbias = if count > 1 { count as f64 / (count - 1) as f64 } else { 1.0 };
        let m = self.momentum;
        let new_mean = self.running_mean.value().mul_scalar(1.0 - m) + mean.detach().mul_scalar(m);
        let new_var = self.running_var.value().mul_scalar(1.0 - m) + biased_var.detach().mul_scalar(m * unbias);
        self.running_mean.set(new_mean);
        self.running_var.set(new_var);
    }
}

/// Sums `[N, C, L]` over N and L into `[C]`, both reductions over contiguous memory.
fn channel_sum<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 1> {
    let c = x.dims()[1];
    x.sum_dim(2).sum_dim(0).reshape([c])
}

/// Lays a per-channel vector out as a contiguous `[N, C, 1]`: flex broadcasts that shape over
/// `[N, C, L]` with its SIMD per-row kernel, while `[1, C, 1]` falls back to a strided loop.
fn per_row<B: Backend>(v: Tensor<B, 1>, n: usize) -> Tensor<B, 3> {
    let c = v.dims()[0];
    v.reshape([1, c, 1]).repeat_dim(0, n)
}
