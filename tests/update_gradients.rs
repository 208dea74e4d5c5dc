//! The gradients the update rules return, on cnn-small (BatchNorm) with the FixMatch batch layout (labelled weak,
//! unlabeled weak and strong views in one forward), checked in f64 against central finite differences:
//! - SAM, ASAM and IAM-S return ∇L(θ + ε) with FixMatch's pseudo-labels and mask held at θ, keyed to the original
//!   parameters; with m-sharpness, the mean over chunks of each chunk's gradient at its own ε;
//! - SAM with `loss = "labeled"` returns ∇L(θ) − ∇L_lab(θ) + ∇L_lab(θ + ε);
//! - the `iam-d` stage's gradient flows through both branches with the clean pass over the weak views alone;
//! - ASAM scales BatchNorm γ by |γ| + η, so that ‖T⁻¹ε‖ = ρ.
//!
//! Directional differences `(L(θ + h u) − L(θ − h u)) / 2h` along random directions u check the whole gradient
//! vector at the cost of two evaluations each.

use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use burnish::iam::Inconsistency;
use burnish::model::{param_infos, Arch, BnMode, Net, NetConfig};
use burnish::objective::{Evaluation, Objective};
use burnish::params::coverage;
use burnish::stage::{FixMatch, IamD, IamSource, Supervised, Weighted};
use burnish::step::{StepBatch, Stream, ViewKey};
use burnish::update::{asam_perturbation, PerturbedLoss, Rule, UpdateRule};
use burnish_augment::View;

mod common;

use common::fd::{
    axpy, device, directional, dot, flatten, flatten_vector, gaussian_values, norm, scalar, with_params, AD,
};

const LABELED: usize = 8;
const UNLABELED: usize = 12;
const CLASSES: usize = 4;
const SEED: u64 = 17;
/// Finite-difference step along a unit direction over all ~10⁵ parameters: at 1e-6 some ReLU or max-pool already
/// switches within ±h (the difference then drifts from the gradient by ~1e-4 relative); at 1e-7 none does here, and
/// f64 keeps the rounding error near 1e-9.
const H: f64 = 1e-7;

fn images(n: usize, seed: u64) -> Tensor<AD, 4> {
    Tensor::from_data(TensorData::new(gaussian_values(n * 3 * 8 * 8, seed, 1.0), [n, 3, 8, 8]), &device())
}

fn labels(n: usize, seed: u64) -> Tensor<AD, 1, Int> {
    let v: Vec<i64> = (0..n as u64).map(|i| ((i * 7 + seed) % CLASSES as u64) as i64).collect();
    Tensor::from_data(TensorData::new(v, [n]), &device())
}

/// One FixMatch step's images: labelled weak, unlabeled weak and unlabeled strong, on 8×8 RGB inputs.
fn batch() -> StepBatch<AD> {
    StepBatch {
        images: vec![
            (ViewKey::new(Stream::Labeled, View::Weak), images(LABELED, 1)),
            (ViewKey::new(Stream::Unlabeled, View::Weak), images(UNLABELED, 2)),
            (ViewKey::new(Stream::Unlabeled, View::Strong), images(UNLABELED, 3)),
        ],
        labels: vec![(Stream::Labeled, labels(LABELED, 0)), (Stream::Unlabeled, labels(UNLABELED, 1))],
    }
}

fn model() -> Net<AD> {
    let dev = device();
    <AD as burn::tensor::backend::Backend>::seed(&dev, 3);
    NetConfig::new(Arch::CnnSmall, 3, CLASSES).expect("valid config").init(&dev)
}

/// Supervised CE + FixMatch at a threshold that masks some unlabeled rows and keeps others at initialisation.
fn fixmatch_objective() -> Objective<AD> {
    Objective::new(vec![
        Weighted::new(1.0, Box::new(Supervised::default())),
        Weighted::new(1.0, Box::new(FixMatch { threshold: 0.3, ..FixMatch::default() })),
    ])
}

/// The objective at the flat parameters `theta`, with targets held from `held` (or derived afresh).
fn loss_at(
    objective: &Objective<AD>,
    model: &Net<AD>,
    batch: &StepBatch<AD>,
    theta: &[f64],
    held: Option<&Evaluation<AD>>,
) -> f64 {
    let m = with_params(model, theta);
    scalar(objective.evaluate(&m, batch, BnMode::TrainNoStats, SEED, held).expect("views present").total)
}

/// Random unit directions in parameter space.
fn directions(n: usize) -> Vec<Vec<f64>> {
    (0..3u64)
        .map(|s| {
            let u = gaussian_values(n, 100 + s, 1.0);
            let k = norm(&u);
            u.into_iter().map(|x| x / k).collect()
        })
        .collect()
}

/// Asserts `g · u` equals the directional difference of `f` at `at` for each direction u.
fn assert_directional(what: &str, g: &[f64], f: impl Fn(&[f64]) -> f64, at: &[f64]) {
    for (i, u) in directions(g.len()).iter().enumerate() {
        let fd = directional(&f, at, u, H);
        let analytic = dot(g, u);
        let err = (fd - analytic).abs() / analytic.abs().max(1e-8);
        assert!(err < 1e-5, "{what}, direction {i}: g·u = {analytic:e}, finite difference {fd:e} (rel. err {err:e})");
    }
}

/// A rule's gradient on `batch`, flattened and checked to cover every trainable parameter of the original model.
fn rule_gradient(
    rule: &UpdateRule,
    model: &Net<AD>,
    batch: &StepBatch<AD>,
    objective: &Objective<AD>,
) -> (Vec<f64>, Vec<GradientsParams>) {
    let out = rule.gradients(model, batch, objective, SEED).expect("a step");
    let (found, total) = coverage(model, &out.grads);
    assert_eq!(found, total, "the gradient is keyed to the original model's parameters");
    (flatten_vector(model, &out.grads), out.perturbations)
}

/// The targets (pseudo-labels, mask) the objective derives at `theta`.
fn clean(objective: &Objective<AD>, model: &Net<AD>, batch: &StepBatch<AD>, theta: &[f64]) -> Evaluation<AD> {
    objective.evaluate(&with_params(model, theta), batch, BnMode::TrainNoStats, SEED, None).expect("views present")
}

#[test]
fn sam_asam_and_iam_s_return_the_gradient_at_theta_plus_epsilon_with_targets_held_at_theta() {
    let (model, batch, objective) = (model(), batch(), fixmatch_objective());
    let theta = flatten(&model);
    let rules = [
        ("sam", Rule::Sam { rho: 0.5, loss: PerturbedLoss::All }),
        ("asam", Rule::Asam { rho: 0.5, eta: 0.01, loss: PerturbedLoss::All }),
        (
            "iam-s",
            Rule::IamS {
                inconsistency: Inconsistency { rho: 0.5, sigma: 1e-3, steps: 1 },
                views: vec![ViewKey::new(Stream::Labeled, View::Weak), ViewKey::new(Stream::Unlabeled, View::Weak)],
            },
        ),
    ];
    for (what, rule) in rules {
        let (g, eps) = rule_gradient(&UpdateRule::new(rule), &model, &batch, &objective);
        assert_eq!(eps.len(), 1);
        let at = axpy(&theta, 1.0, &flatten_vector(&model, &eps[0]));
        let held = clean(&objective, &model, &batch, &theta);
        assert_directional(what, &g, |t| loss_at(&objective, &model, &batch, t, Some(&held)), &at);
        // At this radius the pseudo-labels or mask derived at θ + ε differ from those at θ, so a rule that derived
        // them again there would return a different gradient: the check above can tell the two apart.
        let fresh = clean(&objective, &model, &batch, &at);
        let (t0, t1) = (&held.targets[0].1, &fresh.targets[0].1);
        let same = t0.labels.clone().equal(t1.labels.clone()).all().into_scalar()
            && t0.mask.clone().equal(t1.mask.clone()).all().into_scalar();
        assert!(!same, "{what}: the targets at θ + ε happen to equal those at θ; pick a larger radius");
    }
}

#[test]
fn m_sharpness_averages_each_chunks_gradient_at_its_own_epsilon() {
    let (model, batch, objective) = (model(), batch(), fixmatch_objective());
    let theta = flatten(&model);
    let rule = UpdateRule { rule: Rule::Sam { rho: 0.2, loss: PerturbedLoss::All }, m: Some(LABELED / 2) };
    let (g, eps) = rule_gradient(&rule, &model, &batch, &objective);
    let chunks = batch.chunks(2);
    assert_eq!(eps.len(), chunks.len());
    let shifts: Vec<Vec<f64>> = eps.iter().map(|e| flatten_vector(&model, e)).collect();
    assert!(norm(&axpy(&shifts[0], -1.0, &shifts[1])) > 1e-3, "each chunk has its own ε");
    let held: Vec<Evaluation<AD>> = chunks.iter().map(|c| clean(&objective, &model, c, &theta)).collect();
    let mean = |t: &[f64]| {
        let sum: f64 = (0..chunks.len())
            .map(|i| loss_at(&objective, &model, &chunks[i], &axpy(t, 1.0, &shifts[i]), Some(&held[i])))
            .sum();
        sum / chunks.len() as f64
    };
    assert_directional("sam with m = 4", &g, mean, &theta);
}

#[test]
fn sam_on_the_labelled_loss_swaps_that_loss_for_its_value_at_theta_plus_epsilon() {
    let (model, batch, objective) = (model(), batch(), fixmatch_objective());
    let theta = flatten(&model);
    let rule = UpdateRule::new(Rule::Sam { rho: 0.5, loss: PerturbedLoss::Labeled });
    let (g, eps) = rule_gradient(&rule, &model, &batch, &objective);
    let eps = flatten_vector(&model, &eps[0]);
    let labeled = objective.labeled();
    assert_eq!(labeled, vec![0], "only the supervised stage reads labelled views alone");
    let held = clean(&objective, &model, &batch, &theta);
    let lab = |t: &[f64]| {
        let m = with_params(&model, t);
        let e = objective.evaluate_stages(&labeled, &m, &batch, BnMode::TrainNoStats, SEED, Some(&held));
        scalar(e.expect("labelled views").total)
    };
    let f = |t: &[f64]| loss_at(&objective, &model, &batch, t, Some(&held)) - lab(t) + lab(&axpy(t, 1.0, &eps));
    assert_directional("sam, loss = labeled", &g, f, &theta);
    // ε is SAM's step along the labelled loss's gradient alone.
    assert!((norm(&eps) - 0.5).abs() < 1e-9, "‖ε‖ = {}", norm(&eps));
}

#[test]
fn iam_d_gradient_flows_through_both_branches_with_the_fixmatch_layout() {
    let (model, batch) = (model(), batch());
    // The whole batch (the paper's estimate) and the whole term on half of it (`batch_fraction`), whose rows are
    // drawn from the stage seed, so they are the same at every θ the differences evaluate.
    for batch_fraction in [1.0, 0.5] {
        // K = 0 keeps δ at its seeded initial draw, independent of θ, so the loss is a plain function of θ that
        // finite differences can check (with K ≥ 1 the stage treats δ* as a constant, which differences cannot see).
        let iam_d = IamD {
            inconsistency: Inconsistency { rho: 0.1, sigma: 2.0, steps: 0 },
            source: IamSource::Batch(vec![
                ViewKey::new(Stream::Labeled, View::Weak),
                ViewKey::new(Stream::Unlabeled, View::Weak),
            ]),
            ascent_fraction: 1.0,
            batch_fraction,
        };
        let mut objective = fixmatch_objective();
        objective.stages.push(Weighted::new(2.0, Box::new(iam_d)));
        let theta = flatten(&model);
        let (g, _) = rule_gradient(&UpdateRule::new(Rule::Plain), &model, &batch, &objective);
        let kl = clean(&objective, &model, &batch, &theta).metrics;
        let s = kl.iter().find(|(k, _)| k == "iam-d/s_rho").map(|(_, v)| scalar(v.clone())).expect("s_rho");
        assert!(s > 1e-4, "a perturbation of norm 2 gives a KL that matters: {s:e} (batch_fraction {batch_fraction})");
        // Pseudo-labels follow θ here: they are piecewise constant, so differences of width 2h do not see them move.
        let what = format!("fixmatch + iam-d, batch_fraction {batch_fraction}");
        assert_directional(&what, &g, |t| loss_at(&objective, &model, &batch, t, None), &theta);
    }
}

#[test]
fn asam_scales_batch_norm_gamma_and_keeps_the_scaled_radius() {
    let (model, batch, objective) = (model(), batch(), fixmatch_objective());
    let e = objective.evaluate(&model, &batch, BnMode::TrainNoStats, SEED, None).expect("views");
    let grads = GradientsParams::from_grads(e.total.backward(), &model);
    let (rho, eta) = (0.3, 0.01);
    let eps = flatten_vector(&model, &asam_perturbation(&model, &grads, rho, eta));
    let g = flatten_vector(&model, &grads);
    let theta = flatten(&model);
    // T per scalar, in visit order: |w| + η on convolution/linear weights and BatchNorm γ, 1 on biases and β.
    let mut t = Vec::with_capacity(theta.len());
    let mut scaled_gamma = 0;
    for info in param_infos(&model).iter().filter(|p| p.kind.is_trainable()) {
        let n: usize = info.shape.iter().product();
        let start = t.len();
        for k in 0..n {
            t.push(if info.is_scale() { theta[start + k].abs() + eta } else { 1.0 });
        }
        if info.kind == burnish::model::ParamKind::Norm && info.is_scale() {
            scaled_gamma += 1;
        }
    }
    assert_eq!(t.len(), theta.len());
    assert_eq!(scaled_gamma, 5, "cnn-small has five BatchNorm layers, each with a γ that ASAM scales");
    let tg: Vec<f64> = t.iter().zip(&g).map(|(t, g)| t * g).collect();
    let expect: Vec<f64> = t.iter().zip(&tg).map(|(t, v)| rho * t * v / norm(&tg)).collect();
    let err = common::fd::rel_err(&eps, &expect);
    assert!(err < 1e-9, "ASAM ε differs from ρ T² g / ‖T g‖ with γ scaled: {err:e}");
    let t_inv_eps: Vec<f64> = eps.iter().zip(&t).map(|(e, t)| e / t).collect();
    assert!((norm(&t_inv_eps) - rho).abs() < 1e-9, "‖T⁻¹ε‖ = {}", norm(&t_inv_eps));
}
