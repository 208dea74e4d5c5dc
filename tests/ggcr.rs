//! The `ggcr` stage in f64: its cosine against a hand-written loss, its gradient (two finite-difference
//! Hessian-vector products) against central differences of the regulariser itself on cnn-small (BatchNorm), zero
//! when both views are the same image, the finite-difference Hessian-vector product against an exactly built
//! Hessian, and the plain rule adding the scheduled, weighted GGCR gradient to the loss gradient.
//!
//! f64 on flex is a process-wide device setting, so these tests live in their own test binary.

use burn::optim::GradientsParams;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use burnish::model::{Arch, BnMode, Net, NetConfig};
use burnish::params::{gaussian, gradient_at, hessian_vector};
use burnish::recipe::Recipe;
use burnish::stage::Ggcr;
use rand::SeedableRng;

mod common;

use common::fd::{device, directional, dot, flatten, flatten_vector, gaussian_values, norm, with_params, AD};
use common::hessian::SoftmaxRegression;

const N: usize = 10;
const CLASSES: usize = 4;
/// The finite-difference step of the checks: small enough that no ReLU or max-pool switches (as in
/// tests/update_gradients.rs), large enough for f64.
const H: f64 = 1e-7;

fn images(seed: u64) -> Tensor<AD, 4> {
    Tensor::from_data(TensorData::new(gaussian_values(N * 3 * 8 * 8, seed, 1.0), [N, 3, 8, 8]), &device())
}

fn model() -> Net<AD> {
    let dev = device();
    <AD as Backend>::seed(&dev, 5);
    NetConfig::new(Arch::CnnSmall, 3, CLASSES).expect("valid config").init(&dev)
}

/// Pseudo-labels and a mask that keeps 7 of the 10 rows.
fn targets() -> (Tensor<AD, 1, Int>, Tensor<AD, 1>) {
    let labels: Vec<i64> = (0..N as i64).map(|i| (i * 3) % CLASSES as i64).collect();
    let mask: Vec<f64> = (0..N).map(|i| if i % 3 == 1 { 0.0 } else { 1.0 }).collect();
    (
        Tensor::from_data(TensorData::new(labels, [N]), &device()),
        Tensor::from_data(TensorData::new(mask, [N]), &device()),
    )
}

/// The masked cross-entropy of one view's rows, written out here: −Σ mask · log softmax(z)[y] / N.
fn view_loss(
    m: &Net<AD>,
    x: &Tensor<AD, 4>,
    part: usize,
    labels: &Tensor<AD, 1, Int>,
    mask: &Tensor<AD, 1>,
) -> Tensor<AD, 1> {
    let logits = m.forward(x.clone(), BnMode::TrainNoStats).logits.narrow(0, part * N, N);
    let picked = log_softmax(logits, 1).gather(1, labels.clone().unsqueeze_dim(1)).squeeze_dim::<1>(1);
    (picked * mask.clone()).sum().neg().div_scalar(N as f64)
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    dot(a, b) / (norm(a) * norm(b))
}

#[test]
fn the_cosine_is_that_of_the_two_views_loss_gradients() {
    let (m, weak, strong) = (model(), images(1), images(2));
    let (labels, mask) = targets();
    let x = Tensor::cat(vec![weak.clone(), strong.clone()], 0);
    let none = GradientsParams::new();
    let g_w = flatten_vector(&m, &gradient_at(&m, &none, |c: &Net<AD>| view_loss(c, &x, 0, &labels, &mask)));
    let g_s = flatten_vector(&m, &gradient_at(&m, &none, |c: &Net<AD>| view_loss(c, &x, 1, &labels, &mask)));
    let stage = Ggcr { threshold: 0.95, h: 1e-6 };
    let terms = stage.evaluate(&m, &weak, &strong, &labels, &mask, false);
    let expected = cosine(&g_w, &g_s);
    assert!((terms.cosine - expected).abs() < 1e-12, "{} vs {expected}", terms.cosine);
    assert!(terms.cosine.abs() < 0.99, "distinct views give distinct gradients: {}", terms.cosine);
}

#[test]
fn the_gradient_matches_central_differences_of_the_regulariser() {
    let (m, weak, strong) = (model(), images(3), images(4));
    let (labels, mask) = targets();
    // The products' own step: h·v has norm 1e-9 · ‖θ‖, far below any kink, and f64 keeps its rounding small.
    let stage = Ggcr { threshold: 0.95, h: 1e-9 };
    let terms = stage.evaluate(&m, &weak, &strong, &labels, &mask, true);
    let g = flatten_vector(&m, &terms.gradient.expect("a gradient"));
    let theta = flatten(&m);
    let r = |t: &[f64]| 1.0 - stage.evaluate(&with_params(&m, t), &weak, &strong, &labels, &mask, false).cosine;
    for seed in 0..3u64 {
        let u = gaussian_values(g.len(), 200 + seed, 1.0);
        let u: Vec<f64> = u.iter().map(|x| x / norm(&u)).collect();
        let fd = directional(r, &theta, &u, H);
        let analytic = dot(&g, &u);
        let err = (fd - analytic).abs() / analytic.abs().max(1e-8);
        assert!(err < 1e-4, "direction {seed}: ∇R·u = {analytic:e}, finite difference {fd:e} (rel. err {err:e})");
    }
}

#[test]
fn the_regulariser_is_zero_when_both_views_are_the_same_image() {
    let (m, weak) = (model(), images(5));
    let (labels, mask) = targets();
    let terms = Ggcr { threshold: 0.95, h: 1e-6 }.evaluate(&m, &weak, &weak, &labels, &mask, true);
    assert!((1.0 - terms.cosine).abs() < 1e-12, "cos = {}", terms.cosine);
    let g = flatten_vector(&m, &terms.gradient.expect("a gradient"));
    assert!(norm(&g) < 1e-9, "‖∇R‖ = {}", norm(&g));
}

#[test]
fn the_finite_difference_product_matches_an_exactly_built_hessian() {
    let problem = SoftmaxRegression::new();
    let v = gaussian::<AD, _>(&problem.model, 1.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(4));
    let vf = flatten_vector(&problem.model, &v);
    let exact: Vec<f64> = problem.hessian().iter().map(|row| dot(row, &vf)).collect();
    let approx = flatten_vector(&problem.model, &hessian_vector(&problem.model, &v, 1e-5, problem.loss()));
    let err = norm(&common::fd::axpy(&approx, -1.0, &exact)) / norm(&exact);
    assert!(err < 1e-8, "relative error {err:e}\nexact  {exact:?}\napprox {approx:?}");
}

#[test]
fn ggcr_runs_with_the_plain_rule_only_and_needs_fixmatch() {
    let text = r#"
name = "ggcr"
[data]
dataset = "synthetic"
labels_per_class = 2
mu = 2
unlabeled_views = ["weak", "strong"]
[model]
arch = "cnn-small"
[[stage]]
kind = "supervised"
[[stage]]
kind = "fixmatch"
[[stage]]
kind = "ggcr"
weight = 0.5
start_step = 10
ramp_steps = 20
[schedule]
steps = 40
"#;
    let r = Recipe::from_str(text, "g.toml", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.stages[2].schedule().factor(9), 0.0);
    assert_eq!(r.stages[2].schedule().factor(10), 1.0 / 20.0);
    assert_eq!(r.stages[2].schedule().factor(29), 1.0);
    let err = Recipe::from_str(text, "g.toml", &["update.rule=sam".into()]).expect_err("sam cannot repeat its passes");
    assert!(err.to_string().contains("update.rule: stage.2 (ggcr) computes its gradient by extra passes"), "{err}");
    let err = Recipe::from_str(&text.replace("kind = \"fixmatch\"", "kind = \"entropy\""), "g.toml", &[])
        .expect_err("no fixmatch stage");
    assert!(err.to_string().contains("stage.2 (ggcr) builds on a [[stage]] kind = \"fixmatch\""), "{err}");
    let err = Recipe::from_str(text, "g.toml", &["stage.2.granularity=sample".into()]).expect_err("per-sample form");
    assert!(err.to_string().contains("stage.2.granularity: \"sample\" is not available"), "{err}");
}

#[test]
fn the_plain_rule_applies_the_weighted_ggcr_gradient_on_top_of_the_loss_gradient() {
    use burnish::objective::Objective;
    use burnish::stage::{FixMatch, WeightSchedule, Weighted};
    use burnish::step::{StepBatch, Stream, ViewKey};
    use burnish::update::{Rule, UpdateRule};
    use burnish_augment::View;

    let (m, weak, strong) = (model(), images(6), images(7));
    let labels: Vec<i64> = (0..N as i64).map(|i| i % CLASSES as i64).collect();
    let batch = StepBatch::<AD> {
        images: vec![
            (ViewKey::new(Stream::Unlabeled, View::Weak), weak.clone()),
            (ViewKey::new(Stream::Unlabeled, View::Strong), strong.clone()),
        ],
        labels: vec![(Stream::Unlabeled, Tensor::from_data(TensorData::new(labels, [N]), &device()))],
    };
    // A threshold every row passes, so that both losses have gradients.
    let fixmatch = || Box::new(FixMatch { threshold: 1e-3, ..FixMatch::default() });
    let ggcr = Ggcr { threshold: 1e-3, h: 1e-6 };
    let rule = UpdateRule::new(Rule::Plain);
    let grads = |objective: &Objective<AD>| {
        flatten_vector(&m, &rule.gradients(&m, &batch, objective, 1).expect("a step").grads)
    };
    let alone = grads(&Objective::new(vec![Weighted::new(1.0, fixmatch())]));
    // Ramping from step 4 over 4 steps: at step 5 the weight is 0.5 · 2/4.
    let mut both = Objective::new(vec![
        Weighted::new(1.0, fixmatch()),
        Weighted {
            weight: 0.5,
            schedule: WeightSchedule { start_step: 4, ramp_steps: 4 },
            stage: Box::new(ggcr.clone()),
        },
    ]);
    both.step = 5;
    let combined = grads(&both);
    let clean = m.forward(Tensor::cat(vec![weak.clone(), strong.clone()], 0), BnMode::TrainNoStats).logits;
    let probs = softmax(clean.narrow(0, 0, N).detach(), 1);
    let pseudo = probs.clone().argmax(1).squeeze_dim::<1>(1);
    let mask = probs.max_dim(1).squeeze_dim::<1>(1).greater_equal_elem(1e-3).float();
    let r = flatten_vector(&m, &ggcr.evaluate(&m, &weak, &strong, &pseudo, &mask, true).gradient.expect("a gradient"));
    let expected = common::fd::axpy(&alone, 0.25, &r);
    let err = norm(&common::fd::axpy(&combined, -1.0, &expected)) / norm(&expected);
    assert!(err < 1e-9, "relative error {err:e}");
    both.step = 3;
    assert!(norm(&common::fd::axpy(&grads(&both), -1.0, &alone)) / norm(&alone) < 1e-12, "weight 0 before step 4");
}
