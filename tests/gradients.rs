//! Gradient paths checked in f64 against central finite differences and explicit formulas: IAM-D through both
//! branches, SAM and ASAM perturbations, and Algorithm 1 against an explicitly built Fisher matrix.
//!
//! f64 on flex is a process-wide device setting, so these tests live in their own test binary.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use burnish::iam::{inconsistency_at, kl_batchmean, worst_case_delta, Inconsistency};
use burnish::params::{coverage, gaussian, linked_copy};
use burnish::update::{asam_perturbation, sam_perturbation};
use rand::SeedableRng;

mod common;

use common::fd::{device, flatten, flatten_vector, norm, rel_err, scalar, tensor2, to_vec, with_params, AD};

#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    l1: Linear<B>,
    l2: Option<Linear<B>>,
}

impl<B: Backend> Mlp<B> {
    /// Weights drawn from the backend's generator seeded with `seed` under burnish's init lock: the tests of this
    /// binary run on parallel threads that share that one generator, so unseeded draws would depend on their order.
    fn new(dims: &[usize], seed: u64, device: &B::Device) -> Self {
        burnish::train::seeded_init::<B, _>(seed, device, || {
            let l1 = LinearConfig::new(dims[0], dims[1]).init(device);
            let l2 = dims.get(2).map(|&d| LinearConfig::new(dims[1], d).init(device));
            let m = Self { l1, l2 };
            burnish::train::force_init::<B, _>(&m);
            m
        })
    }

    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = self.l1.forward(x);
        match &self.l2 {
            Some(l2) => l2.forward(h.tanh()),
            None => h,
        }
    }
}

struct IamDProblem {
    model: Mlp<AD>,
    x: Tensor<AD, 2>,
    y: Tensor<AD, 1, Int>,
    delta: GradientsParams,
    beta: f64,
}

impl IamDProblem {
    fn new() -> Self {
        let dev = device();
        let model = Mlp::<AD>::new(&[3, 5, 4], 1, &dev);
        let x = tensor2(6, 3, 1, 1.0);
        let y = Tensor::from_data(TensorData::new(vec![0i64, 1, 2, 3, 1, 0], [6]), &dev);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let delta = gaussian::<AD, _>(&model, 0.2, &mut rng);
        Self { model, x, y, delta, beta: 2.0 }
    }

    /// `CE + β·KL(p(θ) ‖ p(θ + δ))`; with `detach_clean`, the clean branch of the KL carries no gradient.
    fn loss(&self, model: &Mlp<AD>, detach_clean: bool, with_perturbed: bool) -> Tensor<AD, 1> {
        let logits = model.forward(self.x.clone());
        let ce = burnish::stage::cross_entropy(logits.clone(), self.y.clone(), 0.0);
        let mut p = softmax(logits, 1);
        if detach_clean {
            p = p.detach();
        }
        let perturbed = linked_copy(model, &self.delta);
        let mut log_q = log_softmax(perturbed.forward(self.x.clone()), 1);
        if !with_perturbed {
            log_q = log_q.detach();
        }
        ce + kl_batchmean(p, log_q).mul_scalar(self.beta)
    }

    fn analytic(&self, detach_clean: bool, with_perturbed: bool) -> Vec<f64> {
        let grads =
            GradientsParams::from_grads(self.loss(&self.model, detach_clean, with_perturbed).backward(), &self.model);
        assert_eq!(coverage(&self.model, &grads), (4, 4), "every parameter gets a gradient");
        flatten_vector(&self.model, &grads)
    }

    fn finite_differences(&self) -> Vec<f64> {
        let theta = flatten(&self.model);
        let h = 1e-5;
        (0..theta.len())
            .map(|i| {
                let mut plus = theta.clone();
                plus[i] += h;
                let mut minus = theta.clone();
                minus[i] -= h;
                let lp = scalar(self.loss(&with_params(&self.model, &plus), false, true));
                let lm = scalar(self.loss(&with_params(&self.model, &minus), false, true));
                (lp - lm) / (2.0 * h)
            })
            .collect()
    }
}

#[test]
fn iam_d_gradient_flows_through_both_branches() {
    let problem = IamDProblem::new();
    let fd = problem.finite_differences();
    let both = problem.analytic(false, true);
    let err = rel_err(&both, &fd);
    assert!(err < 1e-6, "IAM-D gradient vs finite differences: relative error {err:e}");
    // Dropping either branch must be visibly wrong, or this check could not catch a missing branch.
    let clean_only = rel_err(&problem.analytic(false, false), &fd);
    let perturbed_only = rel_err(&problem.analytic(true, true), &fd);
    assert!(clean_only > 1e-3 && perturbed_only > 1e-3, "branch errors {clean_only:e} {perturbed_only:e}");
}

/// Gradient of `L = CE(f(x; θ), y)` for SAM/ASAM tests.
fn ce_problem() -> (Mlp<AD>, GradientsParams) {
    let dev = device();
    let model = Mlp::<AD>::new(&[3, 5, 4], 2, &dev);
    let x = tensor2(6, 3, 11, 1.0);
    let y = Tensor::from_data(TensorData::new(vec![3i64, 1, 2, 0, 1, 0], [6]), &dev);
    let loss = burnish::stage::cross_entropy(model.forward(x), y, 0.0);
    let g = GradientsParams::from_grads(loss.backward(), &model);
    (model, g)
}

#[test]
fn sam_perturbation_is_rho_along_the_gradient() {
    let (model, g) = ce_problem();
    let rho = 0.05;
    let eps = flatten_vector(&model, &sam_perturbation(&model, &g, rho));
    let g = flatten_vector(&model, &g);
    assert!((norm(&eps) - rho).abs() < 1e-9, "‖ε‖ = {}", norm(&eps));
    let expect: Vec<f64> = g.iter().map(|v| rho * v / norm(&g)).collect();
    // 1e-9, not exact: the formula adds 1e-12 to the norm.
    assert!(rel_err(&eps, &expect) < 1e-9, "{:e} {:?} {:?}", rel_err(&eps, &expect), &eps[..4], &expect[..4]);
}

#[test]
fn asam_perturbation_matches_its_formula() {
    let (model, g) = ce_problem();
    let (rho, eta) = (0.5, 0.01);
    let eps = flatten_vector(&model, &asam_perturbation(&model, &g, rho, eta));
    let g = flatten_vector(&model, &g);
    // T per scalar: |w| + η on weight matrices, 1 on biases (visit order: l1.weight, l1.bias, l2.weight, l2.bias).
    let theta = flatten(&model);
    let sizes = [(15, true), (5, false), (20, true), (4, false)];
    let mut t = Vec::new();
    let mut k = 0;
    for (n, weight) in sizes {
        for _ in 0..n {
            t.push(if weight { theta[k].abs() + eta } else { 1.0 });
            k += 1;
        }
    }
    assert_eq!(k, theta.len());
    let tg: Vec<f64> = t.iter().zip(&g).map(|(t, g)| t * g).collect();
    let tg_norm = norm(&tg);
    let expect: Vec<f64> = t.iter().zip(&tg).map(|(t, v)| rho * t * v / tg_norm).collect();
    let err = rel_err(&eps, &expect);
    assert!(err < 1e-9, "ASAM ε differs from ρ T² g / ‖T g‖: {err:e}");
    let t_inv_eps: Vec<f64> = eps.iter().zip(&t).map(|(e, t)| e / t).collect();
    assert!((norm(&t_inv_eps) - rho).abs() < 1e-9, "‖T⁻¹ε‖ = {}", norm(&t_inv_eps));
}

/// The Fisher matrix of the softmax outputs, `F = mean_x Jₓᵀ (diag p − p pᵀ) Jₓ`, built from per-logit gradients.
fn fisher(model: &Mlp<AD>, x: &Tensor<AD, 2>) -> (Vec<Vec<f64>>, usize) {
    let [rows, _] = x.dims();
    let n = flatten(model).len();
    let mut f = vec![vec![0.0; n]; n];
    for r in 0..rows {
        let xr = x.clone().narrow(0, r, 1);
        let logits = model.forward(xr.clone());
        let classes = logits.dims()[1];
        let p = to_vec(softmax(logits.clone().detach(), 1));
        let jac: Vec<Vec<f64>> = (0..classes)
            .map(|c| {
                let out = model.forward(xr.clone()).slice([0..1, c..c + 1]).sum();
                flatten_vector(model, &GradientsParams::from_grads(out.backward(), model))
            })
            .collect();
        for a in 0..classes {
            for b in 0..classes {
                let m = if a == b { p[a] - p[a] * p[b] } else { -p[a] * p[b] };
                for i in 0..n {
                    let ji = jac[a][i] * m;
                    for j in 0..n {
                        f[i][j] += ji * jac[b][j] / rows as f64;
                    }
                }
            }
        }
    }
    (f, n)
}

/// Top eigenpair of a symmetric positive semi-definite matrix by power iteration.
fn top_eigen(f: &[Vec<f64>]) -> (f64, Vec<f64>) {
    let n = f.len();
    let mut v = vec![1.0 / (n as f64).sqrt(); n];
    let mut lambda = 0.0;
    for _ in 0..5000 {
        let w: Vec<f64> = (0..n).map(|i| (0..n).map(|j| f[i][j] * v[j]).sum()).collect();
        lambda = norm(&w);
        v = w.iter().map(|x| x / lambda).collect();
    }
    (lambda, v)
}

#[test]
fn algorithm_1_finds_the_top_fisher_direction() {
    let dev = device();
    let model = Mlp::<AD>::new(&[4, 3], 3, &dev);
    let x = tensor2(16, 4, 5, 1.0);
    let (f, n) = fisher(&model, &x);
    let (lambda, top) = top_eigen(&f);
    let rho = 1e-3;
    let cfg = Inconsistency { rho, sigma: 1e-3, steps: 30 };
    let p = softmax(model.forward(x.clone()), 1);
    let log_q = |m: &Mlp<AD>| log_softmax(m.forward(x.clone()), 1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let delta = worst_case_delta(&model, p.clone(), log_q, &cfg, &mut rng);
    let s = scalar(inconsistency_at(&model, p, &delta, log_q));
    let expect = 0.5 * rho * rho * lambda;
    assert!((s - expect).abs() / expect < 0.05, "Ŝ_ρ = {s:e}, ½ρ²λ_max = {expect:e} (n = {n})");
    let d = flatten_vector(&model, &delta);
    assert!((norm(&d) - rho).abs() < 1e-9, "‖δ‖ = {}", norm(&d));
    let cosine = d.iter().zip(&top).map(|(a, b)| a * b).sum::<f64>().abs() / norm(&d);
    assert!(cosine > 0.99, "cosine with the top eigenvector: {cosine}");
}
