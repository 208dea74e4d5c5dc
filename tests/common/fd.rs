//! Finite-difference helpers shared by the f64 gradient tests: parameters as flat vectors in the model's visit
//! order, models rebuilt from such vectors, and small vector algebra.
//!
//! f64 on flex is a process-wide device setting, so only test binaries that call [`device`] first use these.
#![allow(dead_code)]

use std::sync::Once;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{FloatDType, Tensor, TensorData};
use rand::SeedableRng;

/// The autodiff backend of the gradient tests.
pub type AD = Autodiff<Flex>;

/// The flex device, switched to f64 (once per process) before any tensor is made.
pub fn device() -> burn::tensor::Device<Flex> {
    static ONCE: Once = Once::new();
    let dev = Default::default();
    ONCE.call_once(|| {
        burn::tensor::backend::set_default_float_dtype::<Flex>(&dev, FloatDType::F64).expect("flex supports f64");
        <Flex as Backend>::seed(&dev, 7);
    });
    dev
}

/// A tensor's values as f64.
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec::<f64>().expect("f64 data")
}

/// A matrix's rows as f64.
pub fn rows_of(t: Tensor<AD, 2>) -> Vec<Vec<f64>> {
    let cols = t.dims()[1];
    to_vec(t).chunks(cols).map(<[f64]>::to_vec).collect()
}

/// log Σ exp of a row, shifted by its maximum so that large logits do not overflow.
pub fn log_sum_exp(row: &[f64]) -> f64 {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// A one-element tensor's value.
pub fn scalar(t: Tensor<AD, 1>) -> f64 {
    to_vec(t)[0]
}

/// Gaussian values of standard deviation `scale`, drawn from `seed`.
pub fn gaussian_values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng) * scale).collect()
}

/// A `[rows, cols]` tensor of Gaussian values.
pub fn tensor2(rows: usize, cols: usize, seed: u64, scale: f64) -> Tensor<AD, 2> {
    Tensor::from_data(TensorData::new(gaussian_values(rows * cols, seed, scale), [rows, cols]), &device())
}

/// All trainable parameters, flattened in visit order (buffers such as running statistics are left out).
pub fn flatten<B: Backend, M: Module<B>>(m: &M) -> Vec<f64> {
    struct Flat(Vec<f64>);
    impl<B: Backend> ModuleVisitor<B> for Flat {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            if p.is_require_grad() {
                self.0.extend(to_vec(p.val()));
            }
        }
    }
    let mut f = Flat(Vec::new());
    m.visit(&mut f);
    f.0
}

/// A vector (gradient or perturbation) over the trainable parameters, flattened in the model's visit order.
pub fn flatten_vector<M: AutodiffModule<AD>>(m: &M, v: &GradientsParams) -> Vec<f64> {
    flatten_vector_on::<AD, M>(m, v)
}

/// [`flatten_vector`] on any autodiff backend.
pub fn flatten_vector_on<B: AutodiffBackend, M: AutodiffModule<B>>(m: &M, v: &GradientsParams) -> Vec<f64> {
    struct Flat<'a>(&'a GradientsParams, Vec<f64>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Flat<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            if p.is_require_grad() {
                let t = self.0.get::<B::InnerBackend, D>(p.id).expect("every trainable parameter has an entry");
                self.1.extend(to_vec(t));
            }
        }
    }
    let mut f = Flat(v, Vec::new());
    m.visit(&mut f);
    f.1
}

/// The model with its trainable parameters replaced by `values` (same order as [`flatten`]), as fresh leaves.
pub fn with_params<M: Module<AD>>(m: &M, values: &[f64]) -> M {
    with_params_on::<AD, M>(m, values)
}

/// [`with_params`] on any autodiff backend, in the parameters' own float type.
pub fn with_params_on<B: AutodiffBackend, M: Module<B>>(m: &M, values: &[f64]) -> M {
    struct Set<'a>(&'a [f64]);
    impl<B: AutodiffBackend> ModuleMapper<B> for Set<'_> {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, t, mapper) = p.consume();
            if !t.is_require_grad() {
                return Param::from_mapped_value(id, t, mapper);
            }
            let shape = t.shape();
            let n = shape.num_elements();
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            let data = TensorData::new(head.to_vec(), shape).convert_dtype(t.dtype());
            let v = Tensor::from_data(data, &t.device()).require_grad();
            Param::from_mapped_value(id, v, mapper)
        }
    }
    m.clone().map(&mut Set(values))
}

/// Euclidean norm.
pub fn norm(v: &[f64]) -> f64 {
    dot(v, v).sqrt()
}

/// Inner product.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `a + c·b`.
pub fn axpy(a: &[f64], c: f64, b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + c * y).collect()
}

/// ‖a − b‖ / ‖b‖.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&d) / norm(b)
}

/// Central difference `(f(θ + h u) − f(θ − h u)) / 2h` of a function of the flat parameters.
pub fn directional(f: impl Fn(&[f64]) -> f64, theta: &[f64], u: &[f64], h: f64) -> f64 {
    (f(&axpy(theta, h, u)) - f(&axpy(theta, -h, u))) / (2.0 * h)
}
