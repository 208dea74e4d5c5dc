//! Wide ResNet as in the FixMatch reference implementations.
//!
//! Structure and initialisation follow kekmodel's FixMatch-pytorch `wideresnet.py` (also USB's
//! `wrn.py`): pre-activation basic blocks, LeakyReLU 0.1, bias-free convolutions, a 1×1 convolution
//! shortcut where the width changes, `activate_before_residual` in the first group, conv weights
//! `kaiming_normal_(fan_out, leaky_relu)`. With a linear(128→10) head WRN-28-2 has 1 467 610
//! parameters (the "1.47 M" of the FixMatch paper).
//!
//! BatchNorm: momentum 0.001 (PyTorch convention; TensorFlow's 0.999 in the original FixMatch) and
//! epsilon 0.001 as USB and the original TensorFlow FixMatch use (kekmodel keeps PyTorch's 1e-5).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::cnn_small::global_avg_pool;
use super::init::{conv, kaiming_normal_fan_out};
use super::{Arch, ArchError, BatchNorm, BatchNormConfig, BnMode};
use crate::kernels::{self, Activation, Kernels};

/// Builds a [`WideResNet`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WrnConfig {
    /// Depth D; (D − 4) / 6 blocks per group.
    pub depth: usize,
    /// Widen factor K; the groups have 16K, 32K and 64K channels.
    pub widen: usize,
    /// Image channels.
    pub in_channels: usize,
    /// BatchNorm momentum (PyTorch convention).
    pub bn_momentum: f64,
    /// BatchNorm epsilon.
    pub bn_epsilon: f64,
    /// Negative slope of every LeakyReLU.
    pub leaky_slope: f64,
}

impl WrnConfig {
    /// Reference BatchNorm momentum.
    pub const BN_MOMENTUM: f64 = 0.001;
    /// Reference BatchNorm epsilon.
    pub const BN_EPSILON: f64 = 0.001;
    /// Reference LeakyReLU slope.
    pub const LEAKY_SLOPE: f64 = 0.1;

    /// A checked WRN-`depth`-`widen` for `in_channels`-channel images with the reference settings.
    pub fn new(depth: usize, widen: usize, in_channels: usize) -> Result<Self, ArchError> {
        Arch::wrn(depth, widen)?;
        Ok(Self {
            depth,
            widen,
            in_channels,
            bn_momentum: Self::BN_MOMENTUM,
            bn_epsilon: Self::BN_EPSILON,
            leaky_slope: Self::LEAKY_SLOPE,
        })
    }

    /// Basic blocks in each of the three groups.
    pub fn blocks_per_group(&self) -> usize {
        self.depth.saturating_sub(4) / 6
    }

    /// Channels of the stem and of the three groups.
    pub fn widths(&self) -> [usize; 4] {
        [16, 16 * self.widen, 32 * self.widen, 64 * self.widen]
    }

    /// Dimension of the pooled features.
    pub fn feature_dim(&self) -> usize {
        64 * self.widen
    }

    /// A network initialised as the reference (conv kaiming-normal fan-out, BN weight 1 bias 0).
    pub fn init<B: Backend>(&self, device: &B::Device) -> WideResNet<B> {
        let [w0, w1, w2, w3] = self.widths();
        let group = |c_in, c_out, stride, activate_before_residual| {
            WideGroup::new(self, [c_in, c_out], stride, activate_before_residual, device)
        };
        WideResNet {
            conv1: conv([self.in_channels, w0], 3, 1, kaiming_normal_fan_out(), device),
            block1: group(w0, w1, 1, true),
            block2: group(w1, w2, 2, false),
            block3: group(w2, w3, 2, false),
            bn1: self.bn(w3, device),
            leaky_slope: self.leaky_slope,
        }
    }

    fn bn<B: Backend>(&self, channels: usize, device: &B::Device) -> BatchNorm<B> {
        BatchNormConfig::new(channels).with_momentum(self.bn_momentum).with_epsilon(self.bn_epsilon).init(device)
    }
}

/// Stem conv, three groups of pre-activation blocks, final BN-LeakyReLU and global average pool.
/// Field names are the reference's (`conv_shortcut` for its `convShortcut`), so parameter paths
/// read like its `state_dict` keys.
#[derive(Module, Debug)]
pub struct WideResNet<B: Backend> {
    /// Stem conv3×3 to 16 channels.
    pub conv1: Conv2d<B>,
    /// First group (stride 1, `activate_before_residual`).
    pub block1: WideGroup<B>,
    /// Second group (stride 2).
    pub block2: WideGroup<B>,
    /// Third group (stride 2).
    pub block3: WideGroup<B>,
    /// Final BatchNorm before the pool.
    pub bn1: BatchNorm<B>,
    /// LeakyReLU slope.
    pub leaky_slope: f64,
}

impl<B: Kernels> WideResNet<B> {
    /// Pooled features `[N, 64K]` of images `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BnMode) -> Tensor<B, 2> {
        let x = kernels::conv2d_module(&self.conv1, x);
        let x = self.block1.forward(x, mode);
        let x = self.block2.forward(x, mode);
        let x = self.block3.forward(x, mode);
        let x = self.bn1.forward_act(x, mode, Activation::LeakyRelu(self.leaky_slope));
        global_avg_pool(x)
    }
}

/// A group of basic blocks; the first one changes width and stride.
#[derive(Module, Debug)]
pub struct WideGroup<B: Backend> {
    /// The blocks (the reference's `NetworkBlock.layer`).
    pub layer: Vec<WideBasicBlock<B>>,
}

impl<B: Backend> WideGroup<B> {
    fn new(
        config: &WrnConfig,
        [c_in, c_out]: [usize; 2],
        stride: usize,
        activate_before_residual: bool,
        device: &B::Device,
    ) -> Self {
        let layer = (0..config.blocks_per_group())
            .map(|i| {
                let (c, s) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
                WideBasicBlock::new(config, [c, c_out], s, activate_before_residual, device)
            })
            .collect();
        Self { layer }
    }

    /// Runs the blocks in order.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BnMode) -> Tensor<B, 4>
    where
        B: Kernels,
    {
        self.layer.iter().fold(x, |x, block| block.forward(x, mode))
    }
}

/// Pre-activation basic block: BN-LeakyReLU-conv3×3-BN-LeakyReLU-conv3×3 plus a shortcut.
#[derive(Module, Debug)]
pub struct WideBasicBlock<B: Backend> {
    /// BatchNorm on the block input.
    pub bn1: BatchNorm<B>,
    /// First conv3×3 (carries the stride).
    pub conv1: Conv2d<B>,
    /// BatchNorm after the first conv.
    pub bn2: BatchNorm<B>,
    /// Second conv3×3.
    pub conv2: Conv2d<B>,
    /// 1×1 conv shortcut, present exactly when the width changes.
    pub conv_shortcut: Option<Conv2d<B>>,
    /// Whether the shortcut sees the activated input (first group only).
    pub activate_before_residual: bool,
    /// LeakyReLU slope.
    pub leaky_slope: f64,
}

impl<B: Backend> WideBasicBlock<B> {
    fn new(
        config: &WrnConfig,
        [c_in, c_out]: [usize; 2],
        stride: usize,
        activate_before_residual: bool,
        device: &B::Device,
    ) -> Self {
        let shortcut = (c_in != c_out).then(|| conv([c_in, c_out], 1, stride, kaiming_normal_fan_out(), device));
        Self {
            bn1: config.bn(c_in, device),
            conv1: conv([c_in, c_out], 3, stride, kaiming_normal_fan_out(), device),
            bn2: config.bn(c_out, device),
            conv2: conv([c_out, c_out], 3, 1, kaiming_normal_fan_out(), device),
            conv_shortcut: shortcut,
            activate_before_residual,
            leaky_slope: config.leaky_slope,
        }
    }

    /// The block output, same width as `conv2`.
    ///
    /// As in the reference, a width-changing block without `activate_before_residual` feeds the raw
    /// input to both `conv1` and the shortcut, so its `bn1` has no effect on the output: it is kept
    /// for the parameter layout (and count) but not run, and receives no gradient.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BnMode) -> Tensor<B, 4>
    where
        B: Kernels,
    {
        let act = Activation::LeakyRelu(self.leaky_slope);
        let conv = kernels::conv2d_module::<B>;
        match &self.conv_shortcut {
            None => {
                let out = self.bn1.forward_act(x.clone(), mode, act);
                let out = self.bn2.forward_act(conv(&self.conv1, out), mode, act);
                conv(&self.conv2, out) + x
            }
            Some(shortcut) => {
                let x = if self.activate_before_residual { self.bn1.forward_act(x, mode, act) } else { x };
                let out = self.bn2.forward_act(conv(&self.conv1, x.clone()), mode, act);
                conv(&self.conv2, out) + conv(shortcut, x)
            }
        }
    }
}
