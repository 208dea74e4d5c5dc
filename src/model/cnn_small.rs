//! `cnn-small`: five conv3×3-BN-ReLU layers with two max-pools, for CPU recipes on 28×28 or 32×32.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;
use burn::tensor::Tensor;

use super::init::{conv, pytorch_default};
use super::{BatchNorm, BatchNormConfig, BnMode};
use crate::kernels::{self, Activation, Kernels};

/// Builds a [`CnnSmall`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CnnSmallConfig {
    /// Image channels (1 for grayscale, 3 for RGB).
    pub in_channels: usize,
}

impl CnnSmallConfig {
    /// Output channels of the five conv layers, in order.
    pub const WIDTHS: [usize; 5] = [32, 32, 64, 64, 128];
    /// A max-pool 2×2 follows the layers at these indices.
    pub const POOL_AFTER: [usize; 2] = [1, 3];

    /// A configuration for `in_channels`-channel images.
    pub fn new(in_channels: usize) -> Self {
        Self { in_channels }
    }

    /// Dimension of the pooled features.
    pub fn feature_dim(&self) -> usize {
        Self::WIDTHS[4]
    }

    /// A network with PyTorch's default initialisation and default BatchNorm (momentum 0.1, eps 1e-5).
    pub fn init<B: Backend>(&self, device: &B::Device) -> CnnSmall<B> {
        let mut c_in = self.in_channels;
        let layers = Self::WIDTHS
            .iter()
            .map(|&c_out| {
                let layer = ConvBn::new([c_in, c_out], device);
                c_in = c_out;
                layer
            })
            .collect();
        CnnSmall { layers }
    }
}

/// conv3×3(c→32)-BN-ReLU, conv3×3(32→32)-BN-ReLU, maxpool2, conv3×3(32→64)-BN-ReLU,
/// conv3×3(64→64)-BN-ReLU, maxpool2, conv3×3(64→128)-BN-ReLU, global average pool.
#[derive(Module, Debug)]
pub struct CnnSmall<B: Backend> {
    /// The five conv-BN-ReLU layers.
    pub layers: Vec<ConvBn<B>>,
}

impl<B: Kernels> CnnSmall<B> {
    /// Pooled features `[N, 128]` of images `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BnMode) -> Tensor<B, 2> {
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, mode);
            if CnnSmallConfig::POOL_AFTER.contains(&i) {
                x = max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        global_avg_pool(x)
    }
}

/// A bias-free conv3×3 (padding 1) followed by BatchNorm and ReLU.
#[derive(Module, Debug)]
pub struct ConvBn<B: Backend> {
    /// The convolution.
    pub conv: Conv2d<B>,
    /// Its BatchNorm.
    pub bn: BatchNorm<B>,
}

impl<B: Backend> ConvBn<B> {
    fn new(channels: [usize; 2], device: &B::Device) -> Self {
        Self {
            conv: conv(channels, 3, 1, pytorch_default(), device),
            bn: BatchNormConfig::new(channels[1]).init(device),
        }
    }

    /// relu(bn(conv(x))).
    pub fn forward(&self, x: Tensor<B, 4>, mode: BnMode) -> Tensor<B, 4>
    where
        B: Kernels,
    {
        self.bn.forward_act(kernels::conv2d_module(&self.conv, x), mode, Activation::Relu)
    }
}

/// Mean over the spatial positions: `[N, C, H, W]` → `[N, C]` (a reshape and a contiguous mean).
pub fn global_avg_pool<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
}
