//! SimCLR projection head: Linear(d→h)-BN-ReLU-Linear(h→out), as lightly's `SimCLRProjectionHead`.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::init::linear_default;
use super::{BatchNorm, BatchNormConfig, BnMode};
use crate::kernels::{Activation, Kernels};

/// Builds a [`ProjectionHead`] on top of features of a given dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjectionConfig {
    /// Hidden width h.
    pub hidden_dim: usize,
    /// Output (projection) dimension.
    pub output_dim: usize,
}

impl Default for ProjectionConfig {
    /// SimCLR's CIFAR head: h = 512, 128 outputs.
    fn default() -> Self {
        Self { hidden_dim: 512, output_dim: 128 }
    }
}

impl ProjectionConfig {
    /// A head from `input_dim` features; the first linear has no bias since BN follows it (as lightly).
    pub fn init<B: Backend>(&self, input_dim: usize, device: &B::Device) -> ProjectionHead<B> {
        ProjectionHead {
            linear1: linear_default(input_dim, self.hidden_dim, false, device),
            bn: BatchNormConfig::new(self.hidden_dim).init(device),
            linear2: linear_default(self.hidden_dim, self.output_dim, true, device),
        }
    }
}

/// Linear-BN-ReLU-Linear.
#[derive(Module, Debug)]
pub struct ProjectionHead<B: Backend> {
    /// Features → hidden, bias-free.
    pub linear1: Linear<B>,
    /// BatchNorm over the hidden units.
    pub bn: BatchNorm<B>,
    /// Hidden → projection.
    pub linear2: Linear<B>,
}

impl<B: Kernels> ProjectionHead<B> {
    /// Projections `[N, out]` of features `[N, d]`.
    pub fn forward(&self, features: Tensor<B, 2>, mode: BnMode) -> Tensor<B, 2> {
        let h = self.bn.forward_act(self.linear1.forward(features), mode, Activation::Relu);
        self.linear2.forward(h)
    }
}
