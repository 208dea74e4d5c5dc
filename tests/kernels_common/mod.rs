//! Checks of `burnish::kernels` shared by the f32 (`tests/kernels.rs`) and f64 (`tests/kernels_f64.rs`) test
//! binaries: every op's output and gradients (through `Autodiff<Flex>`) against the same computation composed of
//! Burn's own ops on flex, on odd shapes.
#![allow(dead_code)]

use burn::backend::{Autodiff, Flex};
use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burnish::kernels::{self, Activation};
use rand::SeedableRng;

/// The autodiff backend every check runs on.
pub type AD = Autodiff<Flex>;

/// Absolute and relative tolerance: `|actual − expected| ≤ abs + rel·|expected|`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub abs: f64,
    pub rel: f64,
}

/// Standard-normal values `·scale + offset`, reproducible from `seed`.
pub fn values(len: usize, seed: u64, offset: f64, scale: f64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len)
        .map(|_| rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng) * scale + offset)
        .collect()
}

/// A tensor of [`values`] in the device's default float dtype.
pub fn randn<B: Backend, const D: usize>(shape: [usize; D], seed: u64, offset: f64, scale: f64) -> Tensor<B, D> {
    let len = shape.iter().product();
    Tensor::from_data(TensorData::new(values(len, seed, offset, scale), shape), &Default::default())
}

/// A tensor's values as f64.
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec::<f64>().expect("float data")
}

/// Panics with the worst element when `actual` and `expected` differ beyond `tol`.
pub fn assert_close(actual: &[f64], expected: &[f64], tol: Tol, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let mut worst = (0.0f64, 0usize);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(a.is_finite(), "{what}: element {i} is {a}");
        let excess = (a - e).abs() / (tol.abs + tol.rel * e.abs());
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    let (excess, i) = worst;
    assert!(
        excess <= 1.0,
        "{what}: element {i} is {} against {} (|diff| {:.3e}, {excess:.1}x the tolerance {tol:?})",
        actual[i],
        expected[i],
        (actual[i] - expected[i]).abs()
    );
}

fn act_fn<B: Backend, const D: usize>(z: Tensor<B, D>, act: Activation) -> Tensor<B, D> {
    match act {
        Activation::None => z,
        Activation::Relu => relu(z),
        Activation::LeakyRelu(slope) => leaky_relu(z, slope),
    }
}

/// BatchNorm + activation from Burn's ops: `(y, mean, biased var)`, statistics centred, over `[N, C, L]`.
fn bn_composed<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
    act: Activation,
) -> (Tensor<B, D>, Tensor<B, 1>, Tensor<B, 1>) {
    let dims = x.dims();
    let (n, c) = (dims[0], dims[1]);
    let l = dims[2..].iter().product::<usize>();
    let x3 = x.reshape([n, c, l]);
    let mean = x3.clone().mean_dim(2).mean_dim(0);
    let centred = x3 - mean.clone();
    let var = centred.clone().square().mean_dim(2).mean_dim(0);
    let z = centred / var.clone().add_scalar(epsilon).sqrt() * gamma.reshape([1, c, 1]) + beta.reshape([1, c, 1]);
    (act_fn(z, act).reshape(dims), mean.reshape([c]), var.reshape([c]))
}

/// Upstream gradient weights: a loss `Σ y·r` sends a different gradient to every output.
fn loss_weights<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<AD, D> {
    randn(shape, seed, 0.0, 1.0)
}

/// `batch_norm_act` on `Autodiff<Flex>` against [`bn_composed`]: output, statistics and the gradients of x, γ, β.
pub fn check_batch_norm<const D: usize>(shape: [usize; D], act: Activation, offset: f64, tol: Tol) {
    let c = shape[1];
    let epsilon = 1e-3;
    let x_data = randn::<AD, D>(shape, 1, offset, 1.5);
    // γ with both signs: the activation mask depends on its sign.
    let gamma_data = randn::<AD, 1>([c], 2, 0.3, 1.0);
    let beta_data = randn::<AD, 1>([c], 3, 0.0, 0.5);
    let r = loss_weights(shape, 4);
    let what = format!("batch_norm_act {shape:?} {act:?} offset {offset}");

    let run = |fused: bool| {
        let (x, gamma, beta) =
            (x_data.clone().require_grad(), gamma_data.clone().require_grad(), beta_data.clone().require_grad());
        let (y, mean, var) = if fused {
            let out = kernels::batch_norm_act(x.clone(), gamma.clone(), beta.clone(), epsilon, act);
            (out.output, out.mean, out.var)
        } else {
            bn_composed(x.clone(), gamma.clone(), beta.clone(), epsilon, act)
        };
        let grads = (y.clone() * r.clone()).sum().backward();
        let g = |t: &Tensor<AD, 1>| to_vec(t.grad(&grads).expect("gradient"));
        let gx = to_vec(x.grad(&grads).expect("input gradient"));
        [to_vec(y), to_vec(mean), to_vec(var), gx, g(&gamma), g(&beta)]
    };
    let (fused, composed) = (run(true), run(false));
    for (i, name) in ["output", "mean", "var", "d input", "d gamma", "d beta"].iter().enumerate() {
        assert_close(&fused[i], &composed[i], tol, &format!("{what}: {name}"));
    }
}

/// `affine_act` (and `batch_norm_eval_act`) against `act(x·scale + shift)` from Burn's ops, with gradients.
pub fn check_affine<const D: usize>(shape: [usize; D], act: Activation, tol: Tol) {
    let c = shape[1];
    let x_data = randn::<AD, D>(shape, 11, 0.2, 1.0);
    let scale_data = randn::<AD, 1>([c], 12, 0.5, 1.0);
    let shift_data = randn::<AD, 1>([c], 13, 0.0, 0.5);
    let r = loss_weights(shape, 14);
    let run = |fused: bool| {
        let (x, scale, shift) =
            (x_data.clone().require_grad(), scale_data.clone().require_grad(), shift_data.clone().require_grad());
        let y = if fused {
            kernels::affine_act(x.clone(), scale.clone(), shift.clone(), act)
        } else {
            let mut per_channel = [1; D];
            per_channel[1] = c;
            act_fn(x.clone() * scale.clone().reshape(per_channel) + shift.clone().reshape(per_channel), act)
        };
        let grads = (y.clone() * r.clone()).sum().backward();
        let g = |t: &Tensor<AD, 1>| to_vec(t.grad(&grads).expect("gradient"));
        [to_vec(y), to_vec(x.grad(&grads).expect("input gradient")), g(&scale), g(&shift)]
    };
    let (fused, composed) = (run(true), run(false));
    for (i, name) in ["output", "d input", "d scale", "d shift"].iter().enumerate() {
        assert_close(&fused[i], &composed[i], tol, &format!("affine_act {shape:?} {act:?}: {name}"));
    }
}

/// `kernels::conv2d` against `burn::tensor::module::conv2d`: output and the gradients of the input and weight,
/// with only the tensors in `grad_of` (input, weight) tracked.
pub fn check_conv(
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
    tol: Tol,
) {
    check_conv_tracked(x_shape, w_shape, stride, padding, groups, [true, true], tol)
}

/// [`check_conv`] with a choice of which of (input, weight) require gradients.
pub fn check_conv_tracked(
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    stride: [usize; 2],
    padding: [usize; 2],
    groups: usize,
    grad_of: [bool; 2],
    tol: Tol,
) {
    let x_data = randn::<AD, 4>(x_shape, 21, 0.1, 1.0);
    let w_data = randn::<AD, 4>(w_shape, 22, 0.0, 0.3);
    let options = ConvOptions::new(stride, padding, [1, 1], groups);
    let what = format!("conv2d x {x_shape:?} w {w_shape:?} stride {stride:?} padding {padding:?} groups {groups}");
    let run = |fused: bool| {
        let track = |t: Tensor<AD, 4>, on: bool| if on { t.require_grad() } else { t };
        let (x, w) = (track(x_data.clone(), grad_of[0]), track(w_data.clone(), grad_of[1]));
        let y = if fused {
            kernels::conv2d(x.clone(), w.clone(), None, options.clone())
        } else {
            burn::tensor::module::conv2d(x.clone(), w.clone(), None, options.clone())
        };
        let r = loss_weights(y.dims(), 23);
        let grads = (y.clone() * r).sum().backward();
        let gx = x.grad(&grads).map(to_vec);
        let gw = w.grad(&grads).map(to_vec);
        (to_vec(y), gx, gw)
    };
    let ((y, gx, gw), (y_ref, gx_ref, gw_ref)) = (run(true), run(false));
    assert_close(&y, &y_ref, tol, &format!("{what}: output"));
    assert_eq!(gx.is_some(), grad_of[0], "{what}: input gradient presence");
    assert_eq!(gw.is_some(), grad_of[1], "{what}: weight gradient presence");
    if let (Some(a), Some(e)) = (gx, gx_ref) {
        assert_close(&a, &e, tol, &format!("{what}: d input"));
    }
    if let (Some(a), Some(e)) = (gw, gw_ref) {
        assert_close(&a, &e, tol, &format!("{what}: d weight"));
    }
}

/// The portable `reference` module (what CUDA and ndarray run) on flex against the same composition through
/// autodiff: forward and backward of BatchNorm + activation and of the affine + activation.
pub fn check_reference_module(shape: [usize; 4], act: Activation, tol: Tol) {
    let c = shape[1];
    let epsilon = 1e-5;
    let prim = |t: Tensor<Flex, 4>| t.into_primitive().tensor();
    let vec1 = |t: Tensor<Flex, 1>| t.into_primitive().tensor();
    let back4 = |p| to_vec(Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(p)));
    let back1 = |p| to_vec(Tensor::<Flex, 1>::from_primitive(TensorPrimitive::Float(p)));
    let x = randn::<Flex, 4>(shape, 31, 0.4, 1.2);
    let gamma = randn::<Flex, 1>([c], 32, 0.2, 1.0);
    let beta = randn::<Flex, 1>([c], 33, 0.0, 0.5);
    let r = randn::<Flex, 4>(shape, 34, 0.0, 1.0);

    let out = kernels::reference::batch_norm_act::<Flex>(
        prim(x.clone()),
        vec1(gamma.clone()),
        vec1(beta.clone()),
        epsilon,
        act,
    );
    let (mean, var) = (out.mean.clone(), out.var.clone());
    let grads = kernels::reference::batch_norm_act_backward::<Flex>(
        prim(x.clone()),
        vec1(gamma.clone()),
        vec1(beta.clone()),
        mean,
        var,
        prim(r.clone()),
        epsilon,
        act,
    );
    let (xa, ga, ba) = (
        Tensor::<AD, 4>::from_inner(x.clone()).require_grad(),
        Tensor::<AD, 1>::from_inner(gamma.clone()).require_grad(),
        Tensor::<AD, 1>::from_inner(beta.clone()).require_grad(),
    );
    let (y, m, v) = bn_composed(xa.clone(), ga.clone(), ba.clone(), epsilon, act);
    let g = (y.clone() * Tensor::from_inner(r.clone())).sum().backward();
    let what = format!("reference::batch_norm_act {shape:?} {act:?}");
    assert_close(&back4(out.output), &to_vec(y), tol, &format!("{what}: output"));
    assert_close(&back1(out.mean), &to_vec(m), tol, &format!("{what}: mean"));
    assert_close(&back1(out.var), &to_vec(v), tol, &format!("{what}: var"));
    assert_close(&back4(grads.x), &to_vec(xa.grad(&g).expect("dx")), tol, &format!("{what}: d input"));
    assert_close(&back1(grads.gamma), &to_vec(ga.grad(&g).expect("dγ")), tol, &format!("{what}: d gamma"));
    assert_close(&back1(grads.beta), &to_vec(ba.grad(&g).expect("dβ")), tol, &format!("{what}: d beta"));

    let y = kernels::reference::affine_act::<Flex>(prim(x.clone()), vec1(gamma.clone()), vec1(beta.clone()), act);
    let grads = kernels::reference::affine_act_backward::<Flex>(
        prim(x.clone()),
        vec1(gamma.clone()),
        vec1(beta.clone()),
        prim(r.clone()),
        act,
    );
    let (xa, sa, ba) = (
        Tensor::<AD, 4>::from_inner(x).require_grad(),
        Tensor::<AD, 1>::from_inner(gamma).require_grad(),
        Tensor::<AD, 1>::from_inner(beta).require_grad(),
    );
    let y_ref = act_fn(xa.clone() * sa.clone().reshape([1, c, 1, 1]) + ba.clone().reshape([1, c, 1, 1]), act);
    let g = (y_ref.clone() * Tensor::from_inner(r)).sum().backward();
    let what = format!("reference::affine_act {shape:?} {act:?}");
    assert_close(&back4(y), &to_vec(y_ref), tol, &format!("{what}: output"));
    assert_close(&back4(grads.x), &to_vec(xa.grad(&g).expect("dx")), tol, &format!("{what}: d input"));
    assert_close(&back1(grads.scale), &to_vec(sa.grad(&g).expect("ds")), tol, &format!("{what}: d scale"));
    assert_close(&back1(grads.shift), &to_vec(ba.grad(&g).expect("db")), tol, &format!("{what}: d shift"));
}

/// The odd BatchNorm shapes: batch 1, channels that are no multiple of 16 (or of 32), H ≠ W, rows shorter and
/// longer than the 32-value accumulator width, and a rank-2 `[N, C]` input.
pub const BN_SHAPES_4D: [[usize; 4]; 4] = [[1, 3, 5, 7], [4, 17, 6, 9], [3, 33, 2, 1], [2, 5, 11, 13]];

/// Every activation the kernels fuse.
pub const ACTIVATIONS: [Activation; 3] = [Activation::None, Activation::Relu, Activation::LeakyRelu(0.1)];

/// One convolution case: input shape, weight shape, stride, padding.
pub type ConvCase = ([usize; 4], [usize; 4], [usize; 2], [usize; 2]);

/// Convolution cases `(x, w, stride, padding)`: batch 1, odd channels, H ≠ W, stride 2, padding 0 and 1, 1×1 and
/// 3×3 (and 3×2) kernels; batches that fill several images per gemm unit, with a ragged last unit; and batches
/// with more units than the weight gradient has partial sums (units are summed within a task, then across).
pub const CONV_CASES: [ConvCase; 11] = [
    ([1, 3, 7, 5], [4, 3, 3, 3], [1, 1], [1, 1]),
    ([2, 5, 9, 6], [7, 5, 3, 3], [2, 2], [1, 1]),
    ([2, 3, 6, 5], [4, 3, 3, 3], [1, 1], [0, 0]),
    ([3, 17, 8, 11], [19, 17, 1, 1], [1, 1], [0, 0]),
    ([2, 6, 7, 7], [5, 6, 1, 1], [2, 2], [0, 0]),
    ([2, 3, 5, 4], [2, 3, 3, 2], [1, 2], [1, 0]),
    ([13, 4, 5, 5], [6, 4, 3, 3], [1, 1], [1, 1]),
    ([1, 33, 17, 18], [20, 33, 3, 3], [1, 1], [1, 1]),
    ([3, 2, 4, 4], [3, 2, 3, 3], [2, 1], [2, 1]),
    ([9, 3, 16, 17], [4, 3, 3, 3], [1, 1], [1, 1]),
    ([100, 2, 4, 4], [3, 2, 3, 3], [1, 1], [1, 1]),
];
