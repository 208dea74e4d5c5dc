//! Batch normalisation with an explicit, caller-controlled running-statistics update.
//!
//! One implementation serves images (`[N, C, H, W]`) and feature vectors (`[N, C]`). The work runs in the fused
//! BatchNorm + activation of `crate::kernels` (docs/kernels.md): on flex one pass over x for the statistics (centred
//! per row, merged pairwise, so the variance keeps full precision) and one for the output, and a single autodiff node
//! whose backward is one more fused pass; other backends run the same math as composed Burn ops.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::RunningStat;
use crate::kernels::{self, Activation, Kernels};

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

impl<B: Kernels> BatchNorm<B> {
    /// `bn(x)` over `[N, C, ...]`: batch statistics in the train modes (recorded in `Train` only), running ones in
    /// `Eval`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>, mode: BnMode) -> Tensor<B, D> {
        self.forward_act(x, mode, Activation::None)
    }

    /// `act(bn(x))` in one fused kernel (docs/kernels.md): one pass over x forward and one backward, instead of
    /// a pass per composed op.
    pub fn forward_act<const D: usize>(&self, x: Tensor<B, D>, mode: BnMode, act: Activation) -> Tensor<B, D> {
        let dims = x.dims();
        assert!(D >= 2, "BatchNorm needs an input of rank >= 2 ([N, C, ...]), got rank {D}");
        let channels = self.weight.dims()[0];
        assert_eq!(dims[1], channels, "BatchNorm over {channels} channels got an input of shape {dims:?}");
        let (gamma, beta) = (self.weight.val(), self.bias.val());
        match mode {
            BnMode::Eval => kernels::batch_norm_eval_act(
                x,
                gamma,
                beta,
                self.running_mean.value(),
                self.running_var.value(),
                self.epsilon,
                act,
            ),
            BnMode::Train | BnMode::TrainNoStats => {
                let count = dims[0] * dims[2..].iter().product::<usize>();
                let out = kernels::batch_norm_act(x, gamma, beta, self.epsilon, act);
                if mode == BnMode::Train {
                    self.update_running(out.mean, out.var, count);
                }
                out.output
            }
        }
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
