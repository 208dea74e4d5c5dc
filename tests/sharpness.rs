//! The sharpness measures of `burnish measure` in f64: λ_max by power iteration on finite-difference
//! Hessian-vector products against the top eigenvalue of an exactly built Hessian, and SAM sharpness against its
//! definition computed by hand.
//!
//! f64 on flex is a process-wide device setting, so these tests live in their own test binary.

use burn::optim::GradientsParams;
use burnish::params::gradient_at;
use burnish::sharpness::{sam_sharpness, top_eigenvalue};
use rand::SeedableRng;

mod common;

use common::fd::{axpy, flatten, flatten_vector, norm, scalar, with_params};
use common::hessian::{top_eigenvalue_of, SoftmaxRegression};

#[test]
fn power_iteration_finds_the_top_eigenvalue_of_the_exact_hessian() {
    let problem = SoftmaxRegression::new();
    let exact = top_eigenvalue_of(&problem.hessian());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let estimate = top_eigenvalue(&problem.model, problem.loss(), 300, 1e-5, &mut rng);
    let err = (estimate - exact).abs() / exact;
    assert!(err < 1e-6, "λ_max {estimate} against {exact} (rel. err {err:e})");
}

#[test]
fn sam_sharpness_is_the_loss_increase_along_rho_times_the_unit_gradient() {
    let problem = SoftmaxRegression::new();
    let rho = 0.3;
    let theta = flatten(&problem.model);
    let mut loss = problem.loss();
    let g = flatten_vector(&problem.model, &gradient_at(&problem.model, &GradientsParams::new(), &mut loss));
    let moved = axpy(&theta, rho / norm(&g), &g);
    let by_hand =
        scalar(loss(&with_params(&problem.model, &moved))) - scalar(loss(&with_params(&problem.model, &theta)));
    let one_step = sam_sharpness(&problem.model, problem.loss(), rho, 1);
    assert!((one_step - by_hand).abs() < 1e-12, "{one_step} against {by_hand}");
    assert!(by_hand > 0.0, "a step along the gradient raises the loss");
    // More ascent steps can only find a larger increase on the sphere (the largest value seen is kept).
    assert!(sam_sharpness(&problem.model, problem.loss(), rho, 5) >= one_step);
}
