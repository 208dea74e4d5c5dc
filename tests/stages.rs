//! The stage registry: every kind a recipe can name builds into a runnable stage whose views, kind and metrics are
//! the ones its spec declares, and the `entropy` stage (the README's example of adding a stage) computes what it
//! says.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use burnish::pipeline::Pipeline;
use burnish::plan;
use burnish::recipe::Recipe;
use burnish::stage::{mean_entropy, StageSpec};
use burnish::step::StepBatch;
use burnish::{model::BnMode, train::Trainer};

type AD = Autodiff<Flex>;

/// A recipe that supplies everything a stage may read: labelled weak images with labels, unlabeled weak and strong
/// views, a projection head; then one `[[stage]]` of every registered kind with its defaults.
fn every_kind() -> String {
    let mut text = String::from(
        r#"
name = "every-kind"
seed = 1
[data]
dataset = "synthetic"
labels_per_class = 2
batch_size = 4
mu = 2
workers = 1
labeled_views = ["weak"]
unlabeled_views = ["weak", "strong"]
synthetic_train_size = 60
synthetic_test_size = 10
[model]
arch = "cnn-small"
[model.projection]
hidden = 16
dim = 8
[schedule]
steps = 2
"#,
    );
    for kind in StageSpec::KINDS {
        text.push_str(&format!("[[stage]]\nkind = \"{kind}\"\n"));
    }
    text
}

#[test]
fn every_registered_kind_builds_runs_and_reports_what_it_declares() {
    let r = Recipe::from_str(&every_kind(), "every-kind.toml", &[]).unwrap_or_else(|e| panic!("{e}"));
    let objective = plan::objective::<AD>(&r).unwrap_or_else(|e| panic!("every parsed kind must build: {e}"));
    let supply = r.supply();
    for (i, (spec, built)) in r.stages.iter().zip(&objective.stages).enumerate() {
        assert_eq!(built.stage.kind(), spec.kind(), "stage {i}");
        let needs = spec.needs(i, &supply).unwrap_or_else(|p| panic!("stage {i}: {} {}", p.key, p.message));
        assert_eq!(built.stage.views(), needs.views, "stage {i} ({}) reads what it declares", spec.kind());
    }
    let data = plan::data(&r).expect("synthetic data");
    let mut pipeline =
        Pipeline::new(data.train.clone(), data.norm.clone(), data.streams.clone(), &plan::pipeline_config(&r, 0))
            .expect("valid pipeline");
    let device = Default::default();
    let batch = StepBatch::<AD>::from_batch(&pipeline.next_batch().expect("in-memory data"), &device);
    let net = plan::net(&r, 3, data.dataset.num_classes);
    let model = Trainer::<AD>::init_model(&net, r.seed, &device);
    let eval = objective.evaluate(&model, &batch, BnMode::Train, 7, None).expect("an evaluation");
    let reported: Vec<String> = eval.metrics.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(reported, objective.metric_names(), "metrics are reported by their declared names, in order");
    for (name, value) in &eval.metrics {
        let v = value.clone().into_data().convert::<f64>().to_vec::<f64>().expect("f64")[0];
        assert!(v.is_finite(), "{name} = {v}");
    }
}

#[test]
fn a_stage_view_the_data_section_does_not_draw_is_reported_at_the_stage_key() {
    let text = every_kind();
    let err = Recipe::from_str(&text, "e.toml", &["stage.4.view=simclr".into()]).expect_err("no simclr view drawn");
    assert!(
        err.to_string().contains(r#"stage.4.view: "simclr" is not among data.unlabeled_views ["weak", "strong"]"#),
        "{err}"
    );
    let err = Recipe::from_str(&text, "e.toml", &["data.mu=0".into()]).expect_err("no unlabeled stream");
    assert!(err.to_string().contains("data.mu: must be > 0: stage.1 (fixmatch) needs an unlabeled stream"), "{err}");
}

fn logits(rows: &[&[f32]]) -> Tensor<AD, 2> {
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), rows[0].len()]), &Default::default())
}

fn value(t: Tensor<AD, 1>) -> f64 {
    t.into_data().convert::<f64>().to_vec::<f64>().expect("f64")[0]
}

#[test]
fn entropy_matches_hand_computed_values() {
    // Uniform over 4 classes: ln 4. Two classes with logits (ln 3, 0): p = (3/4, 1/4), H = −(3/4 ln 3/4 + 1/4 ln 1/4).
    let uniform = value(mean_entropy(logits(&[&[0.5, 0.5, 0.5, 0.5]])));
    assert!((uniform - 4f64.ln()).abs() < 1e-6, "{uniform}");
    let h = -(0.75 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
    let two = value(mean_entropy(logits(&[&[3f32.ln(), 0.0], &[0.0, 3f32.ln()]])));
    assert!((two - h).abs() < 1e-6, "{two} vs {h}");
    // A confident row has almost no entropy; the mean is over rows.
    let mixed = value(mean_entropy(logits(&[&[30.0, 0.0], &[0.0, 0.0]])));
    assert!((mixed - 2f64.ln() / 2.0).abs() < 1e-6, "{mixed}");
}

#[test]
fn entropy_gradient_matches_central_differences() {
    let rows: [[f32; 3]; 2] = [[0.3, -1.2, 0.8], [2.0, 0.1, -0.4]];
    let x = logits(&[&rows[0], &rows[1]]).require_grad();
    let grads = mean_entropy(x.clone()).backward();
    let analytic = x.grad(&grads).expect("a gradient").into_data().convert::<f64>().to_vec::<f64>().expect("f64");
    let h = 1e-3f32;
    for i in 0..6 {
        let at = |d: f32| {
            let mut r = rows;
            r[i / 3][i % 3] += d;
            value(mean_entropy(logits(&[&r[0], &r[1]])))
        };
        let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
        assert!((numeric - analytic[i]).abs() < 1e-3, "d/dx{i}: {numeric} vs {}", analytic[i]);
    }
}

/// The mean `entropy/loss` of the last 5 of 30 steps of supervised + entropy at `weight`.
fn entropy_after_training(weight: f64) -> f64 {
    let header = every_kind().split("[[stage]]").next().expect("a header").to_string();
    let text =
        header + &format!("[[stage]]\nkind = \"supervised\"\n[[stage]]\nkind = \"entropy\"\nweight = {weight:?}\n");
    let r = Recipe::from_str(&text, "sup-entropy.toml", &["schedule.steps=30".into(), "optimizer.lr=0.1".into()])
        .unwrap_or_else(|e| panic!("{e}"));
    let data = plan::data(&r).expect("synthetic data");
    let net = plan::net(&r, 3, data.dataset.num_classes);
    let model = Trainer::<AD>::init_model(&net, r.seed, &Default::default());
    let objective = plan::objective::<AD>(&r).expect("runnable stages");
    let mut t = Trainer::new(model, objective, plan::update_rule(&r), plan::train_settings(&r), Default::default());
    let mut p =
        Pipeline::new(data.train.clone(), data.norm.clone(), data.streams.clone(), &plan::pipeline_config(&r, 0))
            .expect("valid pipeline");
    let mut last = Vec::new();
    for step in 0..30 {
        let report = t.train_step(&p.next_batch().expect("a batch")).expect("a step");
        let h = report.metrics.iter().find(|(n, _)| n == "entropy/loss").map(|(_, v)| *v).expect("entropy/loss");
        if step >= 25 {
            last.push(h);
        }
    }
    last.iter().sum::<f64>() / last.len() as f64
}

#[test]
fn the_entropy_stage_sharpens_unlabeled_predictions_beyond_supervised_training() {
    // Weight 0 still evaluates and logs the entropy, so the same run without its gradient is the baseline.
    let (baseline, with_entropy) = (entropy_after_training(0.0), entropy_after_training(3.0));
    assert!(with_entropy < 0.7 * baseline, "entropy {with_entropy} with the stage, {baseline} without");
}
