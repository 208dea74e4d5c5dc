//! The named subset of the suite that runs on the build's own backend (`burnish::backend::Train`): flex by default,
//! Burn's wgpu backend with `--features wgpu` (on Mesa's software Vulkan where no GPU is present), CUDA on a GPU
//! (bench/gpu_check.sh). The rest of the suite pins flex; these tests are what the GPU builds share with it, the generic
//! path every non-flex backend takes: the portable bodies of src/kernels (reference.rs: BatchNorm and its backward)
//! and Burn's convolution instead of flex's kernels, device transfers, reductions, checkpoints from device memory
//! (docs/burn.md, "The wgpu backend").
//!
//! Every check is in f32, the GPUs' precision, with tolerances stated where they are set.

mod common;

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use burnish::backend::{device, Train};
use burnish::devices::{Ascent, DataParallel};
use burnish::iam::kl_batchmean;
use burnish::model::{BnMode, Net};
use burnish::objective::Objective;
use burnish::params::fresh_leaf_copy;
use burnish::plan;
use burnish::recipe::Recipe;
use burnish::step::StepBatch;
use burnish::train::Trainer;
use common::fd::flatten;
use common::state::{batches, max_abs_diff, mirrored, trainer};

/// A shipped or inline recipe cut down to seconds a step on a software GPU: synthetic 32×32 images, B = 8, μ = 1,
/// cnn-small, a small projection head where there is one.
fn small(text: &str, origin: &str) -> Recipe {
    let mut sets = vec![
        "data.dataset=\"synthetic\"".to_string(),
        "data.batch_size=8".into(),
        "data.labels_per_class=4".into(),
        "data.synthetic_train_size=120".into(),
        "data.synthetic_test_size=20".into(),
        "model.arch=\"cnn-small\"".into(),
    ];
    if text.contains("mu =") || text.contains("mu=") {
        sets.push("data.mu=1".into());
    }
    if text.contains("[model.projection]") {
        sets.extend(["model.projection.hidden=32".into(), "model.projection.dim=16".into()]);
    }
    Recipe::from_str(text, origin, &sets).unwrap_or_else(|e| panic!("{origin}: {e}"))
}

const SUPERVISED: &str = r#"
name = "backend-supervised"
seed = 4
[data]
dataset = "synthetic"
batch_size = 8
labeled_views = ["weak"]
[model]
arch = "cnn-small"
[[stage]]
kind = "supervised"
[schedule]
steps = 10
"#;

/// [`SUPERVISED`] with FixMatch's unlabelled weak and strong views (μ = 2) and `stages` after its supervised stage.
fn fixmatch(stages: &str) -> String {
    SUPERVISED.replace(
        "labeled_views = [\"weak\"]",
        "labeled_views = [\"weak\"]\nmu = 2\nunlabeled_views = [\"weak\", \"strong\"]",
    ) + stages
}

/// FixMatch + IAM-D's stages after the supervised one: the recipe kind whose step has the most gradient passes.
const FIXMATCH_IAM_D: &str =
    "[[stage]]\nkind = \"fixmatch\"\nthreshold = 0.3\n[[stage]]\nkind = \"iam-d\"\nrho = 0.05\nsigma = 0.05\n";

/// `(objective, model, batch)` of a recipe's first step on the build's backend.
fn first_step(r: &Recipe) -> (Objective<Train>, Net<Train>, StepBatch<Train>) {
    let t = trainer::<Train>(r, &device());
    let batch = StepBatch::<Train>::from_batch(&batches(r, 1)[0], &device());
    (t.objective, t.model, batch)
}

#[test]
fn the_gradient_through_batchnorm_matches_finite_differences() {
    // Directional differences along u = (ĝ + r)/‖ĝ + r‖ (r a random unit vector): g·u is of the order of ‖g‖, so the
    // f32 difference quotient at h = 1e-3 keeps ~1e-4 relative precision; a ReLU or max-pool that switches inside
    // ±h moves it by up to ~1e-3. A wrong BatchNorm backward is off by 10 % or more.
    let r = small(SUPERVISED, "supervised");
    let (objective, model, batch) = first_step(&r);
    let loss_at = |m: &Net<Train>| -> f64 {
        let e = objective.evaluate(m, &batch, BnMode::TrainNoStats, 0, None).expect("evaluates");
        e.total.into_data().convert::<f64>().to_vec::<f64>().expect("f64")[0]
    };
    let eval = objective.evaluate(&model, &batch, BnMode::TrainNoStats, 0, None).expect("evaluates");
    let grads = GradientsParams::from_grads(eval.total.backward(), &model);
    let g = common::fd::flatten_vector_on::<Train, _>(&model, &grads);
    let theta = flatten(&model);
    let gn = common::fd::norm(&g);
    for seed in 0..3 {
        let noise = common::fd::gaussian_values(g.len(), 100 + seed, 1.0);
        let nn = common::fd::norm(&noise);
        let u: Vec<f64> = g.iter().zip(&noise).map(|(a, b)| a / gn + b / nn).collect();
        let un = common::fd::norm(&u);
        let u: Vec<f64> = u.iter().map(|x| x / un).collect();
        let h = 1e-3;
        let shifted = |s: f64| {
            let v: Vec<f64> = theta.iter().zip(&u).map(|(t, d)| t + s * d).collect();
            loss_at(&common::fd::with_params_on::<Train, _>(&model, &v))
        };
        let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
        let analytic = common::fd::dot(&g, &u);
        let rel = (fd - analytic).abs() / analytic.abs();
        assert!(rel < 2e-2, "direction {seed}: finite difference {fd} against gradient {analytic} (rel {rel})");
    }
}

#[test]
fn the_kl_has_its_known_value_on_the_backend() {
    // KL(p ‖ q) averaged over rows, p = [0.5, 0.5] and [0.9, 0.1], q = [0.25, 0.75] and [0.5, 0.5].
    let dev = device();
    let p = Tensor::<Train, 2>::from_data(TensorData::new(vec![0.5f32, 0.5, 0.9, 0.1], [2, 2]), &dev);
    let q = Tensor::<Train, 2>::from_data(TensorData::new(vec![0.25f32, 0.75, 0.5, 0.5], [2, 2]), &dev);
    let kl = kl_batchmean(p, q.log()).into_data().convert::<f64>().to_vec::<f64>().expect("f64")[0];
    let row = |p: [f64; 2], q: [f64; 2]| p[0] * (p[0] / q[0]).ln() + p[1] * (p[1] / q[1]).ln();
    let expected = 0.5 * (row([0.5, 0.5], [0.25, 0.75]) + row([0.9, 0.1], [0.5, 0.5]));
    assert!((kl - expected).abs() < 1e-6, "KL {kl}, expected {expected}");
}

#[test]
fn iam_d_vanishes_as_rho_goes_to_zero_in_every_recipe_shape() {
    let iam = "[[stage]]\nkind = \"iam-d\"\nrho = 1e-9\nsigma = 1e-12\n";
    let shapes = [
        ("supervised", format!("{SUPERVISED}{iam}")),
        ("fixmatch", fixmatch(&format!("[[stage]]\nkind = \"fixmatch\"\n{iam}"))),
        (
            "simclr",
            SUPERVISED
                .replace("labeled_views = [\"weak\"]", "mu = 1\nunlabeled_views = [\"simclr\", \"simclr\"]")
                .replace("kind = \"supervised\"", "kind = \"ntxent\"")
                .replace(
                    "[model]\narch = \"cnn-small\"",
                    "[model]\narch = \"cnn-small\"\n[model.projection]\nhidden = 32\ndim = 16",
                )
                + &iam.replace("rho = 1e-9", "rho = 1e-9\nsource = \"projection\""),
        ),
    ];
    for (name, text) in shapes {
        let r = small(&text, name);
        let (objective, model, batch) = first_step(&r);
        let e = objective.evaluate(&model, &batch, BnMode::Train, 0, None).expect("evaluates");
        let kl = e.metrics.iter().find(|(k, _)| k == "iam-d/s_rho").expect("s_rho").1.clone();
        let kl = kl.into_data().convert::<f64>().to_vec::<f64>().expect("f64")[0];
        assert!(kl.abs() < 1e-7, "{name}: KL at rho 1e-9 is {kl}");
    }
}

#[test]
fn sam_asam_and_iam_s_return_the_gradient_at_their_perturbation() {
    for (rule, rho) in [("sam", 0.05), ("asam", 0.5), ("iam-s", 0.05)] {
        let text = format!("{SUPERVISED}[update]\nrule = \"{rule}\"\nrho = {rho}\n");
        let r = small(&text, rule);
        let (objective, model, batch) = first_step(&r);
        let out = plan::update_rule(&r).gradients(&model, &batch, &objective, 7).expect("a gradient");
        let epsilon = out.perturbations.first().expect("one perturbation");
        let clean = objective.evaluate(&model, &batch, BnMode::TrainNoStats, 7, None).expect("evaluates");
        let perturbed = fresh_leaf_copy(&model, epsilon);
        let at = objective.evaluate(&perturbed, &batch, BnMode::TrainNoStats, 7, Some(&clean)).expect("evaluates");
        let expected = GradientsParams::from_grads(at.total.backward(), &perturbed);
        let got = common::fd::flatten_vector_on::<Train, _>(&model, &out.grads);
        let want = common::fd::flatten_vector_on::<Train, _>(&model, &expected);
        let rel = common::fd::rel_err(&got, &want);
        assert!(rel < 1e-5, "{rule}: the returned gradient is {rel} away from ∇L(θ + ε)");
        let eps = common::fd::flatten_vector_on::<Train, _>(&model, epsilon);
        if rule != "asam" {
            let norm = common::fd::norm(&eps);
            assert!((norm - rho).abs() < 1e-4 * rho, "{rule}: ‖ε‖ = {norm}, ρ = {rho}");
        }
    }
}

/// The shipped recipes, one of each kind (their files as written, cut down by [`small`]).
fn shipped() -> Vec<(String, Recipe)> {
    // From the working directory when it is a checkout (bench/gpu_check.sh runs the carried test binary there),
    // else from the checkout the test was built in.
    let here = Path::new("recipes");
    let root = if here.join("cifar10").is_dir() {
        here.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes")
    };
    let mut out = Vec::new();
    for dir in ["fashion-mnist", "cifar10"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir)).expect("recipes").filter_map(|e| e.ok()).collect();
        files.sort_by_key(|e| e.path());
        for f in files {
            let path = f.path();
            let text = std::fs::read_to_string(&path).expect("readable");
            let name = format!("{dir}/{}", path.file_name().expect("name").to_string_lossy());
            out.push((name.clone(), small(&text, &name)));
        }
    }
    out
}

#[test]
fn two_steps_of_every_shipped_recipe_on_small_shapes() {
    let recipes = shipped();
    assert!(recipes.len() >= 15, "every shipped recipe: {}", recipes.len());
    for (name, r) in recipes {
        let mut t = trainer::<Train>(&r, &device());
        let before = flatten(&t.model);
        for b in batches(&r, 2) {
            let report = t.train_step(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(report.nonfinite.is_none(), "{name}: {:?}", report.nonfinite);
        }
        assert!(max_abs_diff(&before, &flatten(&t.model)) > 0.0, "{name}: two steps left the weights where they were");
    }
}

#[test]
fn a_checkpoint_written_on_the_backend_resumes_on_it() {
    let r = small(&format!("{SUPERVISED}[update]\nrule = \"sam\"\nrho = 0.05\n[ema]\ndecay = 0.9\n"), "checkpoint");
    let steps = batches(&r, 4);
    let mut through = trainer::<Train>(&r, &device());
    for b in &steps {
        through.train_step(b).expect("step");
    }
    let mut first = trainer::<Train>(&r, &device());
    for b in &steps[..2] {
        first.train_step(b).expect("step");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("step-2.ckpt");
    first.save(&path, "recipe").expect("written");
    let mut resumed = trainer::<Train>(&r, &device());
    resumed.load(&path).expect("read back");
    assert_eq!(resumed.step(), 2);
    assert_eq!(flatten(&resumed.model), flatten(&first.model), "the checkpoint reads back bit for bit");
    assert_eq!(flatten(&resumed.eval_model()), flatten(&first.eval_model()), "the EMA reads back bit for bit");
    for b in &steps[2..] {
        resumed.train_step(b).expect("step");
    }
    // flex's kernels are fixed, so resuming is exact there. CubeCL autotunes its kernels at run time and may pick
    // another variant (another summation order) for the same op later in a process, so on wgpu or CUDA two runs of
    // the same steps agree to rounding, amplified over the steps as in the agreement test (docs/burn.md).
    let (model, ema) = (
        max_abs_diff(&flatten(&resumed.model), &flatten(&through.model)),
        max_abs_diff(&flatten(&resumed.eval_model()), &flatten(&through.eval_model())),
    );
    if burnish::backend::NAME == "flex" {
        assert_eq!((model, ema), (0.0, 0.0), "resumed training differs from training through");
    } else {
        assert!(model < 1e-3 && ema < 1e-3, "resumed training is {model} (EMA {ema}) away from training through");
    }
}

#[test]
fn flex_and_the_build_agree_over_seeded_steps() {
    // The build's backend against flex on three steps of FixMatch + IAM-D, each from flex's state carried over by a
    // checkpoint (seeded initialisation draws from each backend's own generator; a checkpoint moves a state between
    // backends bit for bit). Both compute in f32 and sum in different orders (GPU reductions are trees over
    // workgroups): one step from one state lands within 1e-5 of flex's weights (measured on llvmpipe: 1.4e-6 at most,
    // for steps that move them by 1e-2; a BatchNorm backward missing one term is 4e-3 away). Chained, the steps
    // amplify those differences (a ReLU or max-pool input near its switching point can go either way), so three steps
    // in a row drift further (1.8e-4 measured) and get a looser bound (docs/burn.md, "The wgpu backend"). On the flex build the two
    // are one backend and must agree exactly.
    let text = fixmatch(FIXMATCH_IAM_D);
    let r = small(&text, "agreement");
    let steps = batches(&r, 3);
    let mut flex = trainer::<burn::backend::Autodiff<burn::backend::Flex>>(&r, &Default::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("flex-state.ckpt");
    let on_build = |flex: &Trainer<burn::backend::Autodiff<burn::backend::Flex>>| {
        flex.save(&path, "recipe").expect("written on flex");
        let mut build = trainer::<Train>(&r, &device());
        build.load(&path).expect("read on the build's backend");
        assert_eq!(
            flatten(&build.model),
            flatten(&flex.model),
            "a checkpoint carries weights between backends exactly"
        );
        build
    };
    let start = flatten(&flex.model);
    let mut chained = on_build(&flex);
    let exact = burnish::backend::NAME == "flex";
    for (i, b) in steps.iter().enumerate() {
        let mut one = on_build(&flex);
        let before = flatten(&flex.model);
        let got = one.train_step(b).expect("step");
        let want = flex.train_step(b).expect("step");
        chained.train_step(b).expect("step");
        let moved = max_abs_diff(&before, &flatten(&flex.model));
        let diff = max_abs_diff(&flatten(&flex.model), &flatten(&one.model));
        eprintln!(
            "{} against flex, step {i} from flex's state: max |difference| {diff:e}, the step moved {moved:e}",
            burnish::backend::NAME
        );
        assert!(moved > 1e-3, "step {i} moved the weights by only {moved}");
        for ((k, w), (_, g)) in want.metrics.iter().zip(&got.metrics) {
            assert!((w - g).abs() <= 1e-5 * w.abs().max(1.0), "step {i}: {k} is {w} on flex, {g} on the build");
        }
        if exact {
            assert_eq!(diff, 0.0, "one backend, one result");
        } else {
            assert!(
                diff < 1e-5,
                "step {i}: {} is {diff} away from flex (the step moved {moved})",
                burnish::backend::NAME
            );
        }
    }
    let moved = max_abs_diff(&start, &flatten(&flex.model));
    let drift = max_abs_diff(&flatten(&flex.model), &flatten(&chained.model));
    eprintln!(
        "{} against flex after three chained steps: max |difference| {drift:e}, they moved {moved:e}",
        burnish::backend::NAME
    );
    if exact {
        assert_eq!(drift, 0.0, "one backend, one result");
    } else {
        assert!(drift < 1e-3, "three chained steps ended {drift} away from flex (they moved {moved})");
    }
}

#[test]
fn two_peers_on_the_backend_take_the_step_of_one() {
    // `--devices 2` on the build's backend (both peers on its one device): burn-collective's all-reduce on that
    // backend's tensors, FixMatch + IAM-D's gradient passes and the averaged running statistics. With
    // mirrored shards both peers normalise the global batch's statistics, so one step of the pair is the step of one
    // device up to summation order (tests/devices.rs has the full set on flex).
    let text = fixmatch(FIXMATCH_IAM_D);
    let r = small(&text, "two peers");
    let classes = plan::data(&r).expect("data").dataset.num_classes as i64;
    let batch = mirrored(&batches(&r, 1)[0], classes);
    let mut one = trainer::<Train>(&r, &device());
    let mut lead = trainer::<Train>(&r, &device());
    lead.restore(&one.checkpoint("").expect("a state")).expect("same start");
    let mut group = DataParallel::around(&lead, 2, Ascent::Global, |d| Ok(trainer::<Train>(&r, &d))).expect("a group");
    group.train_step(&mut lead, &batch).expect("step on two peers");
    drop(group);
    let start = flatten(&one.model);
    one.train_step(&batch).expect("step on one");
    let moved = max_abs_diff(&start, &flatten(&one.model));
    let diff = max_abs_diff(&flatten(&one.model), &flatten(&lead.model));
    assert!(moved > 1e-3, "the step moved the weights by only {moved}");
    assert!(diff < 1e-5, "two peers ended {diff} away from one device (the step moved {moved})");
}
