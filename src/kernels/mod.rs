//! Faster kernels for the ops a training step spends its time in, as a Burn backend extension.
//!
//! [`Kernels`] extends [`Backend`] with a fused training-mode BatchNorm + activation, an eval-mode per-channel
//! affine + activation and a bias-free 2-D convolution, each with its backward pass. Every method has a default
//! body built from Burn's own ops ([`reference`]), so any backend can implement the trait with an empty `impl`
//! (CUDA and ndarray do); `Flex` overrides them with the CPU kernels of [`cpu`], and `Autodiff<B>` records each op
//! as one node whose backward calls `B`'s backward kernel (instead of one node per composed op).
//!
//! Models call the plain functions of this module ([`batch_norm_act`], [`affine_act`], [`conv2d`],
//! [`conv2d_module`]) on `Tensor<B, D>`, in the style of `burn::tensor::module`. See `docs/kernels.md` for the
//! algorithms, their memory traffic and the measured speedups.

mod autodiff;
mod cpu;
#[cfg(feature = "flex")]
mod flex;
pub mod reference;
mod simd;

use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{Tensor, TensorPrimitive};

/// The activation fused after a per-channel normalisation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(0, z)`.
    Relu,
    /// `z` for `z ≥ 0`, `slope · z` below (LeakyReLU; the slope must be positive).
    LeakyRelu(f64),
}

impl Activation {
    /// The activation applied to one value.
    #[inline(always)]
    pub fn apply(self, z: f64) -> f64 {
        match self {
            Activation::None => z,
            Activation::Relu => z.max(0.0),
            Activation::LeakyRelu(slope) => {
                if z < 0.0 {
                    z * slope
                } else {
                    z
                }
            }
        }
    }
}

/// What a training-mode [`Kernels::batch_norm_act`] returns: the output and the batch statistics it used.
#[derive(Debug, Clone)]
pub struct BatchNormActOutput<B: Backend> {
    /// `act(γ · (x − mean) / √(var + ε) + β)`, the shape of `x`.
    pub output: FloatTensor<B>,
    /// Per-channel batch mean `[C]` (no gradient flows through it).
    pub mean: FloatTensor<B>,
    /// Per-channel biased batch variance `[C]` (no gradient flows through it).
    pub var: FloatTensor<B>,
}

/// Gradients of a training-mode BatchNorm + activation.
#[derive(Debug, Clone)]
pub struct BatchNormActGrads<B: Backend> {
    /// Gradient of the input, the shape of `x`.
    pub x: FloatTensor<B>,
    /// Gradient of the scale γ, `[C]`.
    pub gamma: FloatTensor<B>,
    /// Gradient of the shift β, `[C]`.
    pub beta: FloatTensor<B>,
}

/// Gradients of a per-channel affine + activation.
#[derive(Debug, Clone)]
pub struct AffineActGrads<B: Backend> {
    /// Gradient of the input, the shape of `x`.
    pub x: FloatTensor<B>,
    /// Gradient of the per-channel scale, `[C]`.
    pub scale: FloatTensor<B>,
    /// Gradient of the per-channel shift, `[C]`.
    pub shift: FloatTensor<B>,
}

/// Gradients of a bias-free 2-D convolution; each is computed only when asked for.
#[derive(Debug, Clone)]
pub struct Conv2dGrads<B: Backend> {
    /// Gradient of the input `[N, C_in, H, W]`.
    pub x: Option<FloatTensor<B>>,
    /// Gradient of the weight `[C_out, C_in / groups, k_h, k_w]`.
    pub weight: Option<FloatTensor<B>>,
}

/// A backend with the fused and faster ops burnish's models use; every method has a portable default.
///
/// Tensors are Burn's float primitives. Per-channel means dimension 1 of an `[N, C, ...]` input (rank ≥ 2).
pub trait Kernels: Backend {
    /// Training-mode BatchNorm + activation over batch statistics (biased variance, as PyTorch normalises with).
    fn batch_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        act: Activation,
    ) -> BatchNormActOutput<Self> {
        reference::batch_norm_act::<Self>(x, gamma, beta, epsilon, act)
    }

    /// Backward of [`Kernels::batch_norm_act`], from its input, parameters, batch mean and variance.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_act_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
        act: Activation,
    ) -> BatchNormActGrads<Self> {
        reference::batch_norm_act_backward::<Self>(x, gamma, beta, mean, var, grad, epsilon, act)
    }

    /// `act(x · scale + shift)` per channel (eval-mode BatchNorm once scale and shift are folded).
    fn affine_act(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        act: Activation,
    ) -> FloatTensor<Self> {
        reference::affine_act::<Self>(x, scale, shift, act)
    }

    /// Backward of [`Kernels::affine_act`].
    fn affine_act_backward(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        act: Activation,
    ) -> AffineActGrads<Self> {
        reference::affine_act_backward::<Self>(x, scale, shift, grad, act)
    }

    /// Bias-free 2-D convolution of `x` `[N, C_in, H, W]` with `weight` `[C_out, C_in / groups, k_h, k_w]`.
    fn kernel_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// Backward of [`Kernels::kernel_conv2d`]: the input and/or weight gradient from the output gradient.
    fn kernel_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        need_x: bool,
        need_weight: bool,
    ) -> Conv2dGrads<Self> {
        let x_grad = need_x.then(|| Self::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options.clone()));
        let weight_grad = need_weight.then(|| Self::conv2d_weight_backward(x, weight, grad, options));
        Conv2dGrads { x: x_grad, weight: weight_grad }
    }
}

// The GPU builds' backend (a `CubeBackend` named in src/backend.rs: cuda's, else wgpu's).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
impl Kernels for crate::backend::Inner {}

#[cfg(feature = "ndarray")]
impl Kernels for burn::backend::NdArray {}

/// A training-mode BatchNorm + activation and the batch statistics it normalised with.
#[derive(Debug, Clone)]
pub struct BatchNormAct<B: Backend, const D: usize> {
    /// The activated output.
    pub output: Tensor<B, D>,
    /// Per-channel batch mean `[C]`, detached (for the running statistics).
    pub mean: Tensor<B, 1>,
    /// Per-channel biased batch variance `[C]`, detached; PyTorch's running variance takes `var · n / (n − 1)`.
    pub var: Tensor<B, 1>,
}

/// `act(γ · (x − mean) / √(var + ε) + β)` with the batch statistics of `x` `[N, C, ...]` per channel.
///
/// One autodiff node: its backward saves `x` (already alive as the previous op's output) and the `[C]` statistics.
pub fn batch_norm_act<B: Kernels, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
    act: Activation,
) -> BatchNormAct<B, D> {
    check_channels("batch_norm_act", &x.dims(), gamma.dims()[0], beta.dims()[0]);
    let out = B::batch_norm_act(float(x), float(gamma), float(beta), epsilon, act);
    BatchNormAct { output: tensor(out.output), mean: tensor(out.mean), var: tensor(out.var) }
}

/// `act(x · scale + shift)` with per-channel `scale` and `shift` `[C]` over `x` `[N, C, ...]`.
pub fn affine_act<B: Kernels, const D: usize>(
    x: Tensor<B, D>,
    scale: Tensor<B, 1>,
    shift: Tensor<B, 1>,
    act: Activation,
) -> Tensor<B, D> {
    check_channels("affine_act", &x.dims(), scale.dims()[0], shift.dims()[0]);
    tensor(B::affine_act(float(x), float(scale), float(shift), act))
}

/// Eval-mode BatchNorm + activation: [`affine_act`] with `scale = γ / √(running_var + ε)` and
/// `shift = β − running_mean · scale` (the `[C]` folding runs as ordinary tensor ops, so γ and β get gradients).
pub fn batch_norm_eval_act<B: Kernels, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    running_mean: Tensor<B, 1>,
    running_var: Tensor<B, 1>,
    epsilon: f64,
    act: Activation,
) -> Tensor<B, D> {
    let scale = gamma * running_var.add_scalar(epsilon).sqrt().recip();
    let shift = beta - running_mean * scale.clone();
    affine_act(x, scale, shift, act)
}

/// 2-D convolution `[N, C_in, H, W]` → `[N, C_out, H_out, W_out]`, as `burn::tensor::module::conv2d` with
/// symmetric padding; the bias, if any, is added as a separate broadcast op.
pub fn conv2d<B: Kernels>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    let [_, c_in, _, _] = x.dims();
    let [c_out, c_per_group, _, _] = weight.dims();
    assert!(
        options.groups > 0 && c_in == c_per_group * options.groups && c_out % options.groups == 0,
        "conv2d: input with {c_in} channels, weight {:?}, groups {}",
        weight.dims(),
        options.groups
    );
    let y: Tensor<B, 4> = tensor(B::kernel_conv2d(float(x), float(weight), options));
    match bias {
        Some(b) => y + b.reshape([1, c_out, 1, 1]),
        None => y,
    }
}

/// `conv.forward(x)` through [`conv2d`] when the module's padding is symmetric (explicit with equal sides, or
/// valid); "same" padding goes through Burn's own `Conv2d::forward`, which may pad asymmetrically.
pub fn conv2d_module<B: Kernels>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => [top, left],
        _ => return conv.forward(x),
    };
    let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
    conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), options)
}

fn check_channels(op: &str, dims: &[usize], a: usize, b: usize) {
    assert!(dims.len() >= 2, "{op} needs an input of rank >= 2 ([N, C, ...]), got {dims:?}");
    assert!(
        dims[1] == a && dims[1] == b,
        "{op}: input {dims:?} has {} channels, per-channel parameters have {a} and {b}",
        dims[1]
    );
}

fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

fn tensor<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// The vector instruction set the CPU kernels run with here ("avx512", "avx2+fma" or "baseline"), for reports.
pub fn simd_level() -> &'static str {
    simd::level_name()
}

/// Turns the direct convolution kernels (f32, stride 1; docs/kernels.md, "Direct convolution") on or off for this
/// process, to time them against im2col + gemm; both give the same bits. On unless `BURNISH_NO_DIRECT_CONV` is set.
pub fn set_direct_conv(on: bool) {
    cpu::direct::set_enabled(on);
}
