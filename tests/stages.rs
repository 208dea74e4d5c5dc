//! The stage registry: every kind a recipe can name builds into a runnable stage whose views, kind and metrics are
//! the ones its spec declares, every metric it reports equals the value computed by hand (in f64, from the same
//! forward's logits and projections) on a batch where half the unlabeled rows are confident, and the `entropy`
//! stage (the README's example of adding a stage) computes what it says.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor, TensorData};
use burnish::iam::Inconsistency;
use burnish::model::Net;
use burnish::objective::{Evaluation, Objective};
use burnish::params::constant_copy;
use burnish::pipeline::Pipeline;
use burnish::plan;
use burnish::recipe::Recipe;
use burnish::seed::derive_seed;
use burnish::stage::{mean_entropy, IamD, IamSource, StageSpec};
use burnish::step::{StepBatch, Stream, ViewKey};
use burnish::{model::BnMode, train::Trainer};
use burnish_augment::View;

mod common;

use common::fd::{dot, log_sum_exp, norm, rows_of, to_vec};

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

/// A stage's index in [`every_kind`]'s recipe.
fn index_of(kind: &str) -> usize {
    StageSpec::KINDS.iter().position(|k| *k == kind).expect("a registered kind")
}

/// The objective of [`every_kind`] with `sets`, evaluated at seed 7 on the first batch of the seeded model.
fn evaluate_every_kind(sets: &[String]) -> (Recipe, Objective<AD>, Net<AD>, StepBatch<AD>, Evaluation<AD>) {
    let r = Recipe::from_str(&every_kind(), "every-kind.toml", sets).unwrap_or_else(|e| panic!("{e}"));
    let (objective, model, batch, eval) = common::evaluate_first_batch(&r, 7);
    (r, objective, model, batch, eval)
}

/// Integer labels as indices.
fn labels_of(t: &Tensor<AD, 1, Int>) -> Vec<usize> {
    t.clone().into_data().convert::<i64>().to_vec::<i64>().expect("i64").into_iter().map(|v| v as usize).collect()
}

fn softmax_row(row: &[f64]) -> Vec<f64> {
    let lse = log_sum_exp(row);
    row.iter().map(|v| (v - lse).exp()).collect()
}

fn argmax(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}

/// Cross-entropy of one row of logits against a class.
fn ce(row: &[f64], label: usize) -> f64 {
    log_sum_exp(row) - row[label]
}

fn mean(v: impl IntoIterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.into_iter().collect();
    v.iter().sum::<f64>() / v.len() as f64
}

/// The confidence (largest softmax probability) and pseudo-label of each row.
fn confidences(rows: &[Vec<f64>]) -> Vec<(f64, usize)> {
    rows.iter().map(|r| (softmax_row(r).into_iter().fold(0.0, f64::max), argmax(r))).collect()
}

/// A vector over the trainable parameters, flattened in visit order, with zeros where it has no entry (the
/// projection head, for a loss on the logits).
fn flat(model: &Net<AD>, v: &GradientsParams) -> Vec<f64> {
    struct Flat<'a>(&'a GradientsParams, Vec<f64>);
    impl ModuleVisitor<AD> for Flat<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<AD, D>>) {
            if p.is_require_grad() {
                match self.0.get::<Flex, D>(p.id) {
                    Some(t) => self.1.extend(t.into_data().convert::<f64>().to_vec::<f64>().expect("f64")),
                    None => self.1.extend(std::iter::repeat_n(0.0, p.shape().num_elements())),
                }
            }
        }
    }
    let mut f = Flat(v, Vec::new());
    model.visit(&mut f);
    f.1
}

/// The gradient of `loss` at the model's parameters, flattened.
fn flat_gradient(model: &Net<AD>, loss: Tensor<AD, 1>) -> Vec<f64> {
    flat(model, &GradientsParams::from_grads(loss.backward(), model))
}

#[test]
fn every_registered_kind_builds_runs_and_reports_what_it_declares() {
    let (r, objective, _, _, eval) = evaluate_every_kind(&[]);
    let supply = r.supply();
    for (i, (spec, built)) in r.stages.iter().zip(&objective.stages).enumerate() {
        assert_eq!(built.stage.kind(), spec.kind(), "stage {i}");
        let needs = spec.needs(i, &supply).unwrap_or_else(|p| panic!("stage {i}: {} {}", p.key, p.message));
        assert_eq!(built.stage.views(), needs.views, "stage {i} ({}) reads what it declares", spec.kind());
    }
    let reported: Vec<String> = eval.metrics.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(reported, objective.metric_names(), "metrics are reported by their declared names, in order");
}

#[test]
fn every_stage_metric_equals_its_hand_computed_value() {
    let (uw, us) = (ViewKey::new(Stream::Unlabeled, View::Weak), ViewKey::new(Stream::Unlabeled, View::Strong));
    // A first evaluation finds the weak view's confidences; the thresholds of fixmatch and ggcr then sit between
    // the two middle ones, so that half the rows are confident and half are not.
    let (.., first) = evaluate_every_kind(&[]);
    let mut conf: Vec<f64> =
        confidences(&rows_of(first.forward.logits(uw).expect("weak"))).iter().map(|c| c.0).collect();
    conf.sort_by(f64::total_cmp);
    let half = conf.len() / 2;
    assert!(conf[half] - conf[half - 1] > 1e-5, "distinct middle confidences: {conf:?}");
    let threshold = (conf[half - 1] + conf[half]) / 2.0;
    let sets = [index_of("fixmatch"), index_of("ggcr")].map(|i| format!("stage.{i}.threshold={threshold}"));
    let (r, _, model, batch, eval) = evaluate_every_kind(&sets);
    let metric = |name: &str| -> f64 {
        let (_, v) = eval.metrics.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no metric {name}"));
        to_vec(v.clone())[0]
    };
    let check = |name: &str, by_hand: f64, tol: f64| {
        let got = metric(name);
        assert!((got - by_hand).abs() <= tol * by_hand.abs() + 1e-7, "{name} = {got}, by hand {by_hand}");
    };
    let logits = |key: ViewKey| rows_of(eval.forward.logits(key).expect("a forwarded view"));

    // supervised: mean cross-entropy and accuracy on the labelled weak view.
    let lw = logits(ViewKey::new(Stream::Labeled, View::Weak));
    let y = labels_of(batch.labels(Stream::Labeled).expect("labels"));
    check("supervised/loss", mean(lw.iter().zip(&y).map(|(row, &c)| ce(row, c))), 1e-5);
    check("supervised/acc", mean(lw.iter().zip(&y).map(|(row, &c)| f64::from(argmax(row) == c))), 1e-7);

    // fixmatch: the weak view's confident rows (half of them, by the threshold) teach the strong view their argmax.
    let (weak, strong) = (logits(uw), logits(us));
    let pseudo = confidences(&weak);
    let mask: Vec<f64> = pseudo.iter().map(|&(c, _)| f64::from(c >= threshold)).collect();
    let confident = mask.iter().sum::<f64>();
    assert_eq!(confident as usize, half, "the threshold splits the rows: {pseudo:?}");
    let n = weak.len() as f64;
    let truth = labels_of(batch.labels(Stream::Unlabeled).expect("synthetic unlabeled images keep their labels"));
    let fixmatch_loss = strong.iter().zip(&pseudo).zip(&mask).map(|((row, &(_, l)), m)| m * ce(row, l)).sum::<f64>();
    check("fixmatch/loss", fixmatch_loss / n, 1e-5);
    check("fixmatch/mask_rate", confident / n, 1e-7);
    let correct: Vec<f64> = pseudo.iter().zip(&truth).map(|(&(_, l), &t)| f64::from(l == t)).collect();
    check("fixmatch/pseudo_acc", mean(correct.iter().copied()), 1e-7);
    check("fixmatch/pseudo_acc_masked", correct.iter().zip(&mask).map(|(c, m)| c * m).sum::<f64>() / confident, 1e-7);

    // iam-d (source "batch"): KL(p(x; θ) ‖ p(x; θ + δ*)) over the labelled and unlabeled weak images, both passes
    // normalising x alone; δ* from the stage's own ascent with the stage's seed, checked to lie on the ρ-sphere.
    let keys = vec![ViewKey::new(Stream::Labeled, View::Weak), uw];
    let x = batch.images(&keys).expect("both weak views");
    let clean = model.forward(x.clone(), BnMode::TrainNoStats).logits;
    let iam = IamD {
        inconsistency: Inconsistency::default(),
        source: IamSource::Batch(keys),
        ascent_fraction: 1.0,
        batch_fraction: 1.0,
    };
    let seed = derive_seed(&[7, index_of("iam-d") as u64]);
    let delta = iam.delta_star(&model, &x, softmax(clean.clone(), 1), seed);
    let rho = Inconsistency::default().rho;
    let delta_norm = norm(&flat(&model, &delta));
    assert!((delta_norm - rho).abs() < 1e-5 * rho, "‖δ*‖ = {delta_norm}, ρ = {rho}");
    let perturbed = rows_of(constant_copy(&model, &delta).forward(x, BnMode::TrainNoStats).logits);
    let kl = mean(rows_of(clean).iter().zip(&perturbed).map(|(a, b)| {
        let (la, lb) = (log_sum_exp(a), log_sum_exp(b));
        a.iter().zip(b).map(|(u, v)| (u - la).exp() * ((u - la) - (v - lb))).sum::<f64>()
    }));
    assert!(kl > 1e-6, "a measurable inconsistency: {kl}");
    check("iam-d/s_rho", kl, 1e-3);
    check("iam-d/loss", kl, 1e-3);

    // ntxent: the 2N normalised projections of the two unlabeled views, similarities over T = 0.5, each row's
    // partner (the other view of its image) against every other row.
    let z: Vec<Vec<f64>> = [uw, us]
        .iter()
        .flat_map(|&k| rows_of(eval.forward.projections(k).expect("projections")))
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            row.iter().map(|v| v / norm).collect()
        })
        .collect();
    let rows = z.len();
    let (mut loss, mut hits) = (0.0, 0.0);
    for i in 0..rows {
        let partner = (i + rows / 2) % rows;
        let sim = |j: usize| z[i].iter().zip(&z[j]).map(|(a, b)| a * b).sum::<f64>() / 0.5;
        let others: Vec<usize> = (0..rows).filter(|&j| j != i).collect();
        let s: Vec<f64> = others.iter().map(|&j| sim(j)).collect();
        loss += log_sum_exp(&s) - sim(partner);
        hits += f64::from(others[argmax(&s)] == partner);
    }
    check("ntxent/loss", loss / rows as f64, 1e-5);
    check("ntxent/acc", hits / rows as f64, 1e-7);

    // entropy: mean entropy and mean largest probability of the unlabeled weak view.
    let probs: Vec<Vec<f64>> = weak.iter().map(|r| softmax_row(r)).collect();
    check("entropy/loss", mean(probs.iter().map(|p| -p.iter().map(|v| v * v.ln()).sum::<f64>())), 1e-5);
    check("entropy/max_prob", mean(probs.iter().map(|p| p.iter().cloned().fold(0.0, f64::max))), 1e-6);

    // ggcr: the cosine between the gradients of the masked cross-entropies of the weak and the strong view against
    // the weak view's confident pseudo-labels, both views in one batch.
    let both = Tensor::cat(vec![batch.view(uw).expect("weak").clone(), batch.view(us).expect("strong").clone()], 0);
    let dev = both.device();
    let labels: Vec<i64> = pseudo.iter().map(|&(_, l)| l as i64).collect();
    let labels = Tensor::<AD, 1, Int>::from_data(TensorData::new(labels, [pseudo.len()]), &dev);
    let m = Tensor::<AD, 1>::from_data(TensorData::new(mask.iter().map(|&v| v as f32).collect(), [mask.len()]), &dev);
    let gradient = |part: usize| {
        let out = model.forward(both.clone(), BnMode::TrainNoStats).logits.narrow(0, part * pseudo.len(), pseudo.len());
        let picked = log_softmax(out, 1).gather(1, labels.clone().unsqueeze_dim(1)).squeeze_dim::<1>(1);
        flat_gradient(&model, (picked.neg() * m.clone()).sum().div_scalar(n))
    };
    let (gw, gs) = (gradient(0), gradient(1));
    let cosine = dot(&gw, &gs) / (norm(&gw) * norm(&gs));
    check("ggcr/cosine", cosine, 1e-4);
    check("ggcr/loss", 1.0 - cosine, 1e-4);
    check("ggcr/mask_rate", confident / n, 1e-7);

    // The total: each stage's loss times its weight.
    let names = ["supervised", "fixmatch", "iam-d", "ntxent", "entropy", "ggcr"];
    assert_eq!(names.as_slice(), StageSpec::KINDS, "every kind is checked above");
    let total: f64 = names.iter().map(|k| r.stages[index_of(k)].weight() * metric(&format!("{k}/loss"))).sum();
    check("loss", total, 1e-6);
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
