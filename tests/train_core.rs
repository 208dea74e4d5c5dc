//! The training step's invariants on the CPU backend: perturbed passes never touch BatchNorm running
//! statistics, a rule with learning rate 0 leaves θ bit-identical, and resuming from a checkpoint is exact.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burnish::model::{BnMode, Net};
use burnish::pipeline::{Batch, Pipeline};
use burnish::plan;
use burnish::recipe::Recipe;
use burnish::step::{Forward, StepBatch};
use burnish::train::Trainer;

type AD = Autodiff<Flex>;

mod common;

use common::TINY_RECIPE as RECIPE;

fn recipe(overrides: &[&str]) -> Recipe {
    // A short schedule: these tests take a handful of steps.
    let o: Vec<String> = ["schedule.steps=6"].iter().chain(overrides).map(|s| s.to_string()).collect();
    Recipe::from_str(RECIPE, "core-test.toml", &o).expect("a valid recipe")
}

fn trainer(r: &Recipe) -> (Trainer<AD>, plan::DataPlan) {
    let data = plan::data(r).expect("synthetic data");
    let net = plan::net(r, 3, data.dataset.num_classes);
    let model = Trainer::<AD>::init_model(&net, r.seed, &Default::default());
    let objective = plan::objective::<AD>(r).expect("known stages");
    let t = Trainer::new(model, objective, plan::update_rule(r), plan::train_settings(r), Default::default());
    (t, data)
}

fn batches(r: &Recipe, data: &plan::DataPlan, start: u64, n: usize) -> Vec<Batch> {
    let mut p =
        Pipeline::new(data.train.clone(), data.norm.clone(), data.streams.clone(), &plan::pipeline_config(r, start))
            .expect("valid pipeline");
    (0..n).map(|_| p.next_batch().expect("in-memory data")).collect()
}

/// Every float tensor of the model, split into (trainable parameters, buffers such as running statistics).
fn state(model: &Net<AD>) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    struct Collect(Vec<Vec<f32>>, Vec<Vec<f32>>);
    impl ModuleVisitor<AD> for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<AD, D>>) {
            let v = p.val().into_data().convert::<f32>().to_vec::<f32>().expect("f32 data");
            if p.is_require_grad() {
                self.0.push(v);
            } else {
                self.1.push(v);
            }
        }
    }
    let mut c = Collect(Vec::new(), Vec::new());
    model.visit(&mut c);
    (c.0, c.1)
}

/// Every float tensor of a module, in visit order.
fn values<B: burn::tensor::backend::Backend, M: Module<B>>(m: &M) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl<B: burn::tensor::backend::Backend> ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.0.push(p.val().into_data().convert::<f32>().to_vec::<f32>().expect("f32 data"));
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

#[test]
fn perturbed_passes_leave_running_statistics_as_the_clean_pass_left_them() {
    for rule in ["plain", "sam", "asam", "iam-s"] {
        let r = recipe(&[&format!("update.rule={rule}")]);
        let (t, data) = trainer(&r);
        let batch = &batches(&r, &data, 0, 1)[0];
        let on_device = StepBatch::<AD>::from_batch(batch, &Default::default());
        let (_, before) = state(&t.model);
        assert!(!before.is_empty(), "the model has running statistics");
        // Reference: the clean forward alone, on an independent copy of the same model.
        let reference = t.model.clone();
        Forward::run(&reference, &on_device, &t.objective.views(), BnMode::Train).expect("views present");
        let (_, expected) = state(&reference);
        assert_ne!(before, expected, "the clean pass updates running statistics");
        t.rule.gradients(&t.model, &on_device, &t.objective, 1).expect("a step");
        let (_, after) = state(&t.model);
        assert_eq!(after, expected, "rule {rule}: perturbed passes changed running statistics");
    }
}

#[test]
fn learning_rate_zero_leaves_parameters_bit_identical() {
    for rule in ["plain", "sam", "asam", "iam-s"] {
        let r = recipe(&[&format!("update.rule={rule}")]);
        let (mut t, data) = trainer(&r);
        // Recipes reject lr 0, so set it on the loop directly.
        t.settings.lr = 0.0;
        let (before, _) = state(&t.model);
        for b in batches(&r, &data, 0, 2) {
            t.train_step(&b).expect("a step");
        }
        let (after, _) = state(&t.model);
        assert_eq!(before, after, "rule {rule} with lr 0 changed θ");
    }
    // The check can fail: a real learning rate does move θ.
    let r = recipe(&[]);
    let (mut t, data) = trainer(&r);
    let (before, _) = state(&t.model);
    t.train_step(&batches(&r, &data, 0, 1)[0]).expect("a step");
    assert_ne!(before, state(&t.model).0);
}

#[test]
fn resuming_from_a_checkpoint_is_bit_identical() {
    let r = recipe(&["update.rule=sam"]);
    let n = 3;
    let (mut straight, data) = trainer(&r);
    for b in batches(&r, &data, 0, 2 * n) {
        straight.train_step(&b).expect("a step");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let ckpt = dir.path().join("half.ckpt");
    let (mut first, _) = trainer(&r);
    for b in batches(&r, &data, 0, n) {
        first.train_step(&b).expect("a step");
    }
    first.save(&ckpt, "meta").expect("save");
    drop(first);
    // A fresh process would build the model from a different random state: make that explicit.
    let (mut resumed, _) = trainer(&recipe(&["update.rule=sam", "seed=99"]));
    resumed.settings = plan::train_settings(&r);
    assert_eq!(resumed.load(&ckpt).expect("load"), "meta");
    assert_eq!(resumed.step(), n as u64);
    for b in batches(&r, &data, n as u64, n) {
        resumed.train_step(&b).expect("a step");
    }
    assert_eq!(state(&straight.model), state(&resumed.model), "parameters and buffers after 2N steps");
    assert_eq!(values(&straight.eval_model()), values(&resumed.eval_model()), "EMA after 2N steps");
    assert_ne!(values(&straight.eval_model()), state(&straight.model).0, "the EMA is not the raw model");
}

#[test]
fn a_non_finite_step_is_reported_and_leaves_the_state_as_it_was() {
    for policy in ["stop", "skip"] {
        let r = recipe(&[&format!("train.on_nonfinite=\"{policy}\"")]);
        let (mut t, data) = trainer(&r);
        let mut steps = batches(&r, &data, 0, 2);
        // One NaN pixel in a labelled image: the supervised loss of that step is NaN.
        steps[0].streams[0].views[0].data[0] = f32::NAN;
        let (before, buffers) = state(&t.model);
        let ema = values(&t.eval_model());
        let report = t.train_step(&steps[0]).expect("a step");
        let cause = report.nonfinite.expect("the NaN is detected");
        assert!(cause.starts_with("the loss of stage `"), "{cause}");
        assert_eq!(t.step(), 1, "the dropped step still counts, so the next batch is the next step's");
        assert_eq!(state(&t.model), (before.clone(), buffers), "{policy}: parameters and running statistics unchanged");
        assert_eq!(values(&t.eval_model()), ema, "{policy}: the EMA did not move");
        let next = t.train_step(&steps[1]).expect("a step");
        assert!(next.nonfinite.is_none(), "a finite batch trains again: {:?}", next.nonfinite);
        assert_ne!(state(&t.model).0, before, "{policy}: the next step updates θ");
        let g = next.metrics.iter().find(|(k, _)| k == "grad_norm").map(|(_, v)| *v).expect("grad_norm");
        assert!(g.is_finite() && g > 0.0, "grad_norm {g}");
    }
}
