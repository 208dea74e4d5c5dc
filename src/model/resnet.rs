//! `resnet18-cifar`: torchvision's ResNet-18 with the SimCLR CIFAR stem (conv3×3 stride 1, no max-pool).
//!
//! Blocks are torchvision's post-activation `BasicBlock`s; convolutions are bias-free and initialised
//! `kaiming_normal_(fan_out, relu)`, BatchNorm has PyTorch's defaults (momentum 0.1, eps 1e-5).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::cnn_small::global_avg_pool;
use super::init::{conv, kaiming_normal_fan_out};
use super::{BatchNorm, BatchNormConfig, BnMode};
use crate::kernels::{self, Activation, Kernels};

/// Builds a [`ResNet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Image channels.
    pub in_channels: usize,
    /// Basic blocks in each of the four stages.
    pub blocks: [usize; 4],
}

impl ResNetConfig {
    /// Channels of the four stages (the stem has the first).
    pub const WIDTHS: [usize; 4] = [64, 128, 256, 512];
    /// Strides of the four stages.
    pub const STRIDES: [usize; 4] = [1, 2, 2, 2];

    /// ResNet-18: two basic blocks per stage.
    pub fn resnet18_cifar(in_channels: usize) -> Self {
        Self { in_channels, blocks: [2, 2, 2, 2] }
    }

    /// Dimension of the pooled features.
    pub fn feature_dim(&self) -> usize {
        Self::WIDTHS[3]
    }

    /// A network initialised as torchvision does.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        let mut c_in = Self::WIDTHS[0];
        let mut stage = |i: usize| {
            let c_out = Self::WIDTHS[i];
            let blocks = (0..self.blocks[i])
                .map(|b| {
                    let (c, s) = if b == 0 { (c_in, Self::STRIDES[i]) } else { (c_out, 1) };
                    ResNetBlock::new([c, c_out], s, device)
                })
                .collect();
            c_in = c_out;
            ResNetStage { blocks }
        };
        let (layer1, layer2, layer3, layer4) = (stage(0), stage(1), stage(2), stage(3));
        ResNet {
            conv1: conv([self.in_channels, Self::WIDTHS[0]], 3, 1, kaiming_normal_fan_out(), device),
            bn1: BatchNormConfig::new(Self::WIDTHS[0]).init(device),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

/// Stem conv-BN-ReLU, four stages of basic blocks, global average pool.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    /// Stem conv3×3, stride 1.
    pub conv1: Conv2d<B>,
    /// Stem BatchNorm.
    pub bn1: BatchNorm<B>,
    /// Stage 1 (64 channels, stride 1).
    pub layer1: ResNetStage<B>,
    /// Stage 2 (128 channels, stride 2).
    pub layer2: ResNetStage<B>,
    /// Stage 3 (256 channels, stride 2).
    pub layer3: ResNetStage<B>,
    /// Stage 4 (512 channels, stride 2).
    pub layer4: ResNetStage<B>,
}

impl<B: Kernels> ResNet<B> {
    /// Pooled features `[N, 512]` of images `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BnMode) -> Tensor<B, 2> {
        let x = self.bn1.forward_act(kernels::conv2d_module(&self.conv1, x), mode, Activation::Relu);
        let x = [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .fold(x, |x, stage| stage.blocks.iter().fold(x, |x, block| block.forward(x, mode)));
        global_avg_pool(x)
    }
}

/// The blocks of one stage.
#[derive(Module, Debug)]
pub struct ResNetStage<B: Backend> {
    /// The basic blocks, the first one carrying the stride.
    pub blocks: Vec<ResNetBlock<B>>,
}

/// torchvision's `BasicBlock`: conv-BN-ReLU-conv-BN, plus the (projected) input, then ReLU.
#[derive(Module, Debug)]
pub struct ResNetBlock<B: Backend> {
    /// First conv3×3 (carries the stride).
    pub conv1: Conv2d<B>,
    /// Its BatchNorm.
    pub bn1: BatchNorm<B>,
    /// Second conv3×3.
    pub conv2: Conv2d<B>,
    /// Its BatchNorm.
    pub bn2: BatchNorm<B>,
    /// 1×1 conv + BN shortcut where the shape changes.
    pub downsample: Option<Downsample<B>>,
}

impl<B: Backend> ResNetBlock<B> {
    fn new([c_in, c_out]: [usize; 2], stride: usize, device: &B::Device) -> Self {
        let downsample = (stride != 1 || c_in != c_out).then(|| Downsample {
            conv: conv([c_in, c_out], 1, stride, kaiming_normal_fan_out(), device),
            bn: BatchNormConfig::new(c_out).init(device),
        });
        Self {
            conv1: conv([c_in, c_out], 3, stride, kaiming_normal_fan_out(), device),
            bn1: BatchNormConfig::new(c_out).init(device),
            conv2: conv([c_out, c_out], 3, 1, kaiming_normal_fan_out(), device),
            bn2: BatchNormConfig::new(c_out).init(device),
            downsample,
        }
    }

    /// The block output.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BnMode) -> Tensor<B, 4>
    where
        B: Kernels,
    {
        let conv = kernels::conv2d_module::<B>;
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(conv(&d.conv, x.clone()), mode),
            None => x.clone(),
        };
        let out = self.bn1.forward_act(conv(&self.conv1, x), mode, Activation::Relu);
        let out = self.bn2.forward(conv(&self.conv2, out), mode);
        relu(out + identity)
    }
}

/// The projection shortcut of a [`ResNetBlock`].
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    /// 1×1 conv with the block's stride.
    pub conv: Conv2d<B>,
    /// Its BatchNorm.
    pub bn: BatchNorm<B>,
}
