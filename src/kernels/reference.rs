//! The portable implementations behind [`Kernels`](super::Kernels)' default methods, composed of Burn's own tensor
//! ops; public so tests can check them on any backend.
//!
//! The input is viewed as `[N, C, L]` and per-channel vectors as `[1, C, 1]`. The batch statistics are centred
//! (mean first, then the mean of squared deviations), which keeps all seven f32 digits whatever the mean.

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorMetadata, TensorPrimitive};

use super::{Activation, AffineActGrads, BatchNormActGrads, BatchNormActOutput};

/// Reference [`Kernels::batch_norm_act`](super::Kernels::batch_norm_act).
pub fn batch_norm_act<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    act: Activation,
) -> BatchNormActOutput<B> {
    let shape = x.shape();
    let (x, [n, _, l]) = as_ncl::<B>(x);
    let count = (n * l) as f64;
    let mean = channel_sum(x.clone()).div_scalar(count);
    let centred = x - per_channel(mean.clone());
    let var = channel_sum(centred.clone().square()).div_scalar(count);
    let scale = vector::<B>(gamma) * var.clone().add_scalar(epsilon).sqrt().recip();
    let z = centred * per_channel(scale) + per_channel(vector::<B>(beta));
    let y = activate(z, act);
    BatchNormActOutput {
        output: B::float_reshape(y.into_primitive().tensor(), shape),
        mean: mean.detach().into_primitive().tensor(),
        var: var.detach().into_primitive().tensor(),
    }
}

/// Reference [`Kernels::batch_norm_act_backward`](super::Kernels::batch_norm_act_backward): with
/// `x̂ = (x − mean)/σ`, `z = γx̂ + β` and `g = ∂L/∂z`, `∂L/∂β = Σg`, `∂L/∂γ = Σg·x̂` and
/// `∂L/∂x = γ/σ · (g − ∂L/∂β/M − x̂·∂L/∂γ/M)` over the `M = N·L` values of a channel.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_act_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    grad: FloatTensor<B>,
    epsilon: f64,
    act: Activation,
) -> BatchNormActGrads<B> {
    let shape = x.shape();
    let (x, [n, _, l]) = as_ncl::<B>(x);
    let (grad, _) = as_ncl::<B>(grad);
    let count = (n * l) as f64;
    let gamma = vector::<B>(gamma);
    let inv_std = vector::<B>(var).add_scalar(epsilon).sqrt().recip();
    let x_hat = (x - per_channel(vector::<B>(mean))) * per_channel(inv_std.clone());
    let z = x_hat.clone() * per_channel(gamma.clone()) + per_channel(vector::<B>(beta));
    let g = activation_grad(z, grad, act);
    let grad_beta = channel_sum(g.clone());
    let grad_gamma = channel_sum(g.clone() * x_hat.clone());
    let grad_x = (g
        - per_channel(grad_beta.clone().div_scalar(count))
        - x_hat * per_channel(grad_gamma.clone().div_scalar(count)))
        * per_channel(gamma * inv_std);
    BatchNormActGrads {
        x: B::float_reshape(grad_x.into_primitive().tensor(), shape),
        gamma: grad_gamma.into_primitive().tensor(),
        beta: grad_beta.into_primitive().tensor(),
    }
}

/// Reference [`Kernels::affine_act`](super::Kernels::affine_act).
pub fn affine_act<B: Backend>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
    act: Activation,
) -> FloatTensor<B> {
    let shape = x.shape();
    let (x, _) = as_ncl::<B>(x);
    let z = x * per_channel(vector::<B>(scale)) + per_channel(vector::<B>(shift));
    B::float_reshape(activate(z, act).into_primitive().tensor(), shape)
}

/// Reference [`Kernels::affine_act_backward`](super::Kernels::affine_act_backward).
pub fn affine_act_backward<B: Backend>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
    grad: FloatTensor<B>,
    act: Activation,
) -> AffineActGrads<B> {
    let shape = x.shape();
    let (x, _) = as_ncl::<B>(x);
    let (grad, _) = as_ncl::<B>(grad);
    let scale = vector::<B>(scale);
    let z = x.clone() * per_channel(scale.clone()) + per_channel(vector::<B>(shift));
    let g = activation_grad(z, grad, act);
    AffineActGrads {
        scale: channel_sum(g.clone() * x).into_primitive().tensor(),
        shift: channel_sum(g.clone()).into_primitive().tensor(),
        x: B::float_reshape((g * per_channel(scale)).into_primitive().tensor(), shape),
    }
}

/// `act(z)` with Burn's activations.
pub fn activate<B: Backend, const D: usize>(z: Tensor<B, D>, act: Activation) -> Tensor<B, D> {
    match act {
        Activation::None => z,
        Activation::Relu => burn::tensor::activation::relu(z),
        Activation::LeakyRelu(slope) => burn::tensor::activation::leaky_relu(z, slope),
    }
}

/// `grad · act'(z)`: zero (ReLU) or `slope` (LeakyReLU) where `z < 0`, as Burn's own backward passes (at `z = 0`
/// ReLU passes no gradient, LeakyReLU the full gradient).
pub fn activation_grad<B: Backend, const D: usize>(
    z: Tensor<B, D>,
    grad: Tensor<B, D>,
    act: Activation,
) -> Tensor<B, D> {
    match act {
        Activation::None => grad,
        Activation::Relu => grad.mask_fill(z.lower_equal_elem(0.0), 0.0),
        Activation::LeakyRelu(slope) => {
            let negative = z.lower_elem(0.0);
            grad.clone().mask_where(negative, grad.mul_scalar(slope))
        }
    }
}

fn as_ncl<B: Backend>(x: FloatTensor<B>) -> (Tensor<B, 3>, [usize; 3]) {
    let dims = x.shape().to_vec();
    assert!(dims.len() >= 2, "per-channel ops need an input of rank >= 2 ([N, C, ...]), got {dims:?}");
    let ncl = [dims[0], dims[1], dims[2..].iter().product()];
    let t = Tensor::from_primitive(TensorPrimitive::Float(B::float_reshape(x, Shape::new(ncl))));
    (t, ncl)
}

fn vector<B: Backend>(v: FloatTensor<B>) -> Tensor<B, 1> {
    Tensor::from_primitive(TensorPrimitive::Float(v))
}

fn per_channel<B: Backend>(v: Tensor<B, 1>) -> Tensor<B, 3> {
    let c = v.dims()[0];
    v.reshape([1, c, 1])
}

fn channel_sum<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 1> {
    let c = x.dims()[1];
    x.sum_dim(2).sum_dim(0).reshape([c])
}
