//! Layer constructors with the initialisations the reference implementations use.

use burn::module::{Initializer, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// PyTorch's `kaiming_normal_(mode="fan_out", nonlinearity="relu" | "leaky_relu")` with the default
/// slope argument 0: std = √2 / √(out·k·k). Burn passes fan-out = out·k·k for convolutions.
pub(crate) fn kaiming_normal_fan_out() -> Initializer {
    Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: true }
}

/// PyTorch's default for `Conv2d` and `Linear` weights and biases, `kaiming_uniform_(a=√5)`:
/// U(±1/√fan_in). It is also Burn's default.
pub(crate) fn pytorch_default() -> Initializer {
    Initializer::KaimingUniform { gain: 1.0 / 3f64.sqrt(), fan_out_only: false }
}

/// A bias-free `kernel`×`kernel` convolution with padding `kernel / 2` ("same" at stride 1).
pub(crate) fn conv<B: Backend>(
    [c_in, c_out]: [usize; 2],
    kernel: usize,
    stride: usize,
    init: Initializer,
    device: &B::Device,
) -> Conv2d<B> {
    let pad = kernel / 2;
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(init)
        .init(device)
}

/// A linear layer with PyTorch's default initialisation (weight and bias U(±1/√d_in)).
pub(crate) fn linear_default<B: Backend>(d_in: usize, d_out: usize, bias: bool, device: &B::Device) -> Linear<B> {
    LinearConfig::new(d_in, d_out).with_bias(bias).with_initializer(pytorch_default()).init(device)
}

/// A linear layer initialised as the WRN reference: `xavier_normal_` weight, zero bias.
pub(crate) fn linear_xavier<B: Backend>(d_in: usize, d_out: usize, device: &B::Device) -> Linear<B> {
    let mut layer =
        LinearConfig::new(d_in, d_out).with_initializer(Initializer::XavierNormal { gain: 1.0 }).init(device);
    layer.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    layer
}
