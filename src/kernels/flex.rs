//! [`Kernels`] for burn's `Flex` CPU backend: f32 and f64 tensors go to the kernels of [`super::cpu`], other
//! dtypes (f16, bf16) and convolutions outside the kernels' reach (groups, dilation) to Burn's own ops.

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::Flex;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{Bytes, DType, Shape, TensorMetadata};

use super::cpu::batch_norm::{self, Ncl};
use super::cpu::conv::{self, ConvShape};
use super::cpu::Real;
use super::{reference, Activation, AffineActGrads, BatchNormActGrads, BatchNormActOutput, Conv2dGrads, Kernels};
use crate::profile::{self, Class};

/// A float dtype the CPU kernels read and write in place in flex's storage.
trait FlexReal: Real {
    fn slice(t: &FlexTensor) -> &[Self];
    fn tensor(data: Vec<Self>, shape: Shape) -> FlexTensor;
}

impl FlexReal for f32 {
    fn slice(t: &FlexTensor) -> &[Self] {
        t.storage()
    }
    fn tensor(data: Vec<Self>, shape: Shape) -> FlexTensor {
        FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(shape), DType::F32)
    }
}

impl FlexReal for f64 {
    fn slice(t: &FlexTensor) -> &[Self] {
        t.storage()
    }
    fn tensor(data: Vec<Self>, shape: Shape) -> FlexTensor {
        FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(shape), DType::F64)
    }
}

/// A contiguous copy (or the tensor itself) whose storage is exactly its elements.
fn dense(t: FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

/// `[N, C, L]` of an `[N, C, ...]` shape.
fn ncl(shape: &Shape) -> Ncl {
    let dims = shape.as_slice();
    assert!(dims.len() >= 2, "per-channel ops need an input of rank >= 2 ([N, C, ...]), got {dims:?}");
    Ncl { n: dims[0], c: dims[1], l: dims[2..].iter().product() }
}

/// The kernels' dtype, when every tensor has it.
fn common_dtype(tensors: &[&FlexTensor]) -> Option<DType> {
    let dtype = tensors.first()?.dtype();
    tensors.iter().all(|t| t.dtype() == dtype).then_some(dtype).filter(|d| matches!(d, DType::F32 | DType::F64))
}

fn bn_forward<T: FlexReal>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
    act: Activation,
) -> BatchNormActOutput<Flex> {
    let shape = x.shape();
    let (x, gamma, beta) = (dense(x), dense(gamma), dense(beta));
    let s = ncl(&shape);
    let (y, mean, var) = batch_norm::batch_norm_act(T::slice(&x), s, T::slice(&gamma), T::slice(&beta), epsilon, act);
    BatchNormActOutput {
        output: T::tensor(y, shape),
        mean: T::tensor(mean, Shape::new([s.c])),
        var: T::tensor(var, Shape::new([s.c])),
    }
}

#[allow(clippy::too_many_arguments)]
fn bn_backward<T: FlexReal>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    var: FlexTensor,
    grad: FlexTensor,
    epsilon: f64,
    act: Activation,
) -> BatchNormActGrads<Flex> {
    let shape = x.shape();
    let s = ncl(&shape);
    let [x, gamma, beta, mean, var, grad] = [x, gamma, beta, mean, var, grad].map(dense);
    let (dx, dg, db) = batch_norm::batch_norm_act_backward(
        T::slice(&x),
        T::slice(&grad),
        s,
        T::slice(&gamma),
        T::slice(&beta),
        T::slice(&mean),
        T::slice(&var),
        epsilon,
        act,
    );
    BatchNormActGrads {
        x: T::tensor(dx, shape),
        gamma: T::tensor(dg, Shape::new([s.c])),
        beta: T::tensor(db, Shape::new([s.c])),
    }
}

fn affine_forward<T: FlexReal>(x: FlexTensor, scale: FlexTensor, shift: FlexTensor, act: Activation) -> FlexTensor {
    let shape = x.shape();
    let [x, scale, shift] = [x, scale, shift].map(dense);
    let y = batch_norm::affine_act(T::slice(&x), ncl(&shape), T::slice(&scale), T::slice(&shift), act);
    T::tensor(y, shape)
}

fn affine_backward<T: FlexReal>(
    x: FlexTensor,
    scale: FlexTensor,
    shift: FlexTensor,
    grad: FlexTensor,
    act: Activation,
) -> AffineActGrads<Flex> {
    let shape = x.shape();
    let s = ncl(&shape);
    let [x, scale, shift, grad] = [x, scale, shift, grad].map(dense);
    let (dx, ds, db) =
        batch_norm::affine_act_backward(T::slice(&x), T::slice(&grad), s, T::slice(&scale), T::slice(&shift), act);
    AffineActGrads {
        x: T::tensor(dx, shape),
        scale: T::tensor(ds, Shape::new([s.c])),
        shift: T::tensor(db, Shape::new([s.c])),
    }
}

/// The kernels' shape for this convolution, or `None` where they do not apply (groups, dilation).
fn conv_shape(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<ConvShape> {
    if options.groups != 1 || options.dilation != [1, 1] {
        return None;
    }
    let (xs, ws) = (x.shape(), weight.shape());
    let (xd, wd): ([usize; 4], [usize; 4]) = (xs.as_slice().try_into().ok()?, ws.as_slice().try_into().ok()?);
    match ConvShape::new(xd, wd, options.stride, options.padding) {
        Ok(s) => Some(s),
        Err(why) => panic!("conv2d: {why}"),
    }
}

fn conv_forward<T: FlexReal>(x: FlexTensor, weight: FlexTensor, s: ConvShape) -> FlexTensor {
    let [x, weight] = [x, weight].map(dense);
    let y = conv::conv2d(T::slice(&x), T::slice(&weight), s);
    T::tensor(y, Shape::new([s.n, s.c_out, s.oh, s.ow]))
}

fn conv_backward<T: FlexReal>(
    x: FlexTensor,
    weight: FlexTensor,
    grad: FlexTensor,
    s: ConvShape,
    need_x: bool,
    need_weight: bool,
) -> Conv2dGrads<Flex> {
    let (x_shape, w_shape) = (x.shape(), weight.shape());
    let [x, weight, grad] = [x, weight, grad].map(dense);
    let (dx, dw) = conv::conv2d_backward(T::slice(&x), T::slice(&weight), T::slice(&grad), s, need_x, need_weight);
    Conv2dGrads { x: dx.map(|d| T::tensor(d, x_shape)), weight: dw.map(|d| T::tensor(d, w_shape)) }
}

impl Kernels for Flex {
    fn batch_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        act: Activation,
    ) -> BatchNormActOutput<Self> {
        let _t = profile::scope(Class::NormForward);
        match common_dtype(&[&x, &gamma, &beta]) {
            Some(DType::F32) => bn_forward::<f32>(x, gamma, beta, epsilon, act),
            Some(DType::F64) => bn_forward::<f64>(x, gamma, beta, epsilon, act),
            _ => reference::batch_norm_act::<Self>(x, gamma, beta, epsilon, act),
        }
    }

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
        let _t = profile::scope(Class::NormBackward);
        match common_dtype(&[&x, &gamma, &beta, &mean, &var, &grad]) {
            Some(DType::F32) => bn_backward::<f32>(x, gamma, beta, mean, var, grad, epsilon, act),
            Some(DType::F64) => bn_backward::<f64>(x, gamma, beta, mean, var, grad, epsilon, act),
            _ => reference::batch_norm_act_backward::<Self>(x, gamma, beta, mean, var, grad, epsilon, act),
        }
    }

    fn affine_act(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        act: Activation,
    ) -> FloatTensor<Self> {
        let _t = profile::scope(Class::NormForward);
        match common_dtype(&[&x, &scale, &shift]) {
            Some(DType::F32) => affine_forward::<f32>(x, scale, shift, act),
            Some(DType::F64) => affine_forward::<f64>(x, scale, shift, act),
            _ => reference::affine_act::<Self>(x, scale, shift, act),
        }
    }

    fn affine_act_backward(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        act: Activation,
    ) -> AffineActGrads<Self> {
        let _t = profile::scope(Class::NormBackward);
        match common_dtype(&[&x, &scale, &shift, &grad]) {
            Some(DType::F32) => affine_backward::<f32>(x, scale, shift, grad, act),
            Some(DType::F64) => affine_backward::<f64>(x, scale, shift, grad, act),
            _ => reference::affine_act_backward::<Self>(x, scale, shift, grad, act),
        }
    }

    fn kernel_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        let _t = profile::scope(Class::ConvForward);
        let shape = conv_shape(&x, &weight, &options);
        match (common_dtype(&[&x, &weight]), shape) {
            (Some(DType::F32), Some(s)) => conv_forward::<f32>(x, weight, s),
            (Some(DType::F64), Some(s)) => conv_forward::<f64>(x, weight, s),
            _ => <Self as burn::tensor::ops::ModuleOps<Self>>::conv2d(x, weight, None, options),
        }
    }

    fn kernel_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        need_x: bool,
        need_weight: bool,
    ) -> Conv2dGrads<Self> {
        if profile::enabled() && need_x && need_weight {
            // Profiling times the two gradients apart; each is computed exactly as in the fused call.
            let dx = {
                let _t = profile::scope(Class::ConvInputGrad);
                Self::kernel_conv2d_backward(x.clone(), weight.clone(), grad.clone(), options.clone(), true, false).x
            };
            let _t = profile::scope(Class::ConvWeightGrad);
            let dw = Self::kernel_conv2d_backward(x, weight, grad, options, false, true).weight;
            return Conv2dGrads { x: dx, weight: dw };
        }
        let _t = profile::scope(if need_weight { Class::ConvWeightGrad } else { Class::ConvInputGrad });
        let shape = conv_shape(&x, &weight, &options);
        match (common_dtype(&[&x, &weight, &grad]), shape) {
            (Some(DType::F32), Some(s)) => conv_backward::<f32>(x, weight, grad, s, need_x, need_weight),
            (Some(DType::F64), Some(s)) => conv_backward::<f64>(x, weight, grad, s, need_x, need_weight),
            _ => {
                use burn::tensor::ops::ModuleOps;
                let dx =
                    need_x.then(|| Self::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options.clone()));
                let dw = need_weight.then(|| Self::conv2d_weight_backward(x, weight, grad, options));
                Conv2dGrads { x: dx, weight: dw }
            }
        }
    }
}
