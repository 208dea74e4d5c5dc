//! A model small enough to build its loss Hessian exactly: softmax regression z = x W + b with mean cross-entropy.
//! Per row, the Hessian in z is S = diag(p) − p pᵀ, and ∂z_k/∂W_jk = x_j, ∂z_k/∂b_k = 1, so
//! H[(j,k),(j',k')] = mean over rows of x_j x_j' S_kk' (with x_j = 1 for the bias).
#![allow(dead_code)]

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::fd::{device, gaussian_values, to_vec, AD};

/// The model: one linear layer.
#[derive(Module, Debug)]
pub struct Linear1<B: Backend> {
    /// z = x W + b.
    pub l: Linear<B>,
}

/// The model with its data: 5 rows of 3 features, 3 classes.
pub struct SoftmaxRegression {
    /// The model.
    pub model: Linear1<AD>,
    xv: Vec<f64>,
    x: Tensor<AD, 2>,
    y: Tensor<AD, 1, Int>,
}

const DIN: usize = 3;
const DOUT: usize = 3;
const ROWS: usize = 5;

impl SoftmaxRegression {
    /// The seeded model and data.
    pub fn new() -> Self {
        let dev = device();
        <AD as Backend>::seed(&dev, 11);
        let model = Linear1 { l: LinearConfig::new(DIN, DOUT).init(&dev) };
        let xv = gaussian_values(ROWS * DIN, 9, 1.0);
        let x = Tensor::<AD, 2>::from_data(TensorData::new(xv.clone(), [ROWS, DIN]), &dev);
        let y = Tensor::<AD, 1, Int>::from_data(TensorData::new(vec![0i64, 2, 1, 1, 0], [ROWS]), &dev);
        Self { model, xv, x, y }
    }

    /// The mean cross-entropy as a function of the model.
    pub fn loss(&self) -> impl FnMut(&Linear1<AD>) -> Tensor<AD, 1> {
        let (x, y) = (self.x.clone(), self.y.clone());
        move |m: &Linear1<AD>| {
            let lp = log_softmax(m.l.forward(x.clone()), 1);
            lp.gather(1, y.clone().unsqueeze_dim(1)).squeeze_dim::<1>(1).mean().neg()
        }
    }

    /// The exact Hessian at the model's parameters, in visit order: W ([DIN, DOUT], row-major), then b.
    pub fn hessian(&self) -> Vec<Vec<f64>> {
        let p = to_vec(softmax(self.model.l.forward(self.x.clone()), 1));
        let n = DIN * DOUT + DOUT;
        let index = |j: Option<usize>, k: usize| j.map_or(DIN * DOUT + k, |j| j * DOUT + k);
        let inputs = |r: usize| -> Vec<(Option<usize>, f64)> {
            (0..DIN).map(Some).chain([None]).map(|j| (j, j.map_or(1.0, |j| self.xv[r * DIN + j]))).collect()
        };
        let mut hess = vec![vec![0.0; n]; n];
        for r in 0..ROWS {
            let pr = &p[r * DOUT..(r + 1) * DOUT];
            for (j, xj) in inputs(r) {
                for (j2, xj2) in inputs(r) {
                    for k in 0..DOUT {
                        for k2 in 0..DOUT {
                            let s = if k == k2 { pr[k] } else { 0.0 } - pr[k] * pr[k2];
                            hess[index(j, k)][index(j2, k2)] += xj * xj2 * s / ROWS as f64;
                        }
                    }
                }
            }
        }
        hess
    }
}

/// The largest eigenvalue of a symmetric positive semi-definite matrix, by 5,000 steps of power iteration.
pub fn top_eigenvalue_of(h: &[Vec<f64>]) -> f64 {
    let mut v = vec![1.0; h.len()];
    let mut lambda = 0.0;
    for _ in 0..5000 {
        let w: Vec<f64> = h.iter().map(|row| row.iter().zip(&v).map(|(a, b)| a * b).sum()).collect();
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        lambda = w.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>() / v.iter().map(|x| x * x).sum::<f64>();
        v = w.iter().map(|x| x / norm).collect();
    }
    lambda
}
