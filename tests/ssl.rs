//! SimCLR end to end: the pipeline's two views of an image, a short SimCLR + IAM-D (projection) run, and the probe
//! of that encoder against the probe of its random initialisation.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

mod common;

use common::fd::{log_sum_exp, rows_of};
use common::{burnish, metric_rows, run_dir, summary, text};

use burn::backend::{Autodiff, Flex};
use burn::tensor::activation::softmax;
use burnish::data::Split;
use burnish::iam::Inconsistency;
use burnish::model::{BnMode, Net};
use burnish::objective::Evaluation;
use burnish::params::constant_copy;
use burnish::pipeline::{Batch, Normalize, Pipeline, PipelineConfig, Stream, StreamSpec};
use burnish::recipe::Recipe;
use burnish::seed::derive_seed;
use burnish::stage::{IamD, IamSource, ProjectionDistribution};
use burnish::step::{StepBatch, ViewKey};
use burnish_augment::View;

type AD = Autodiff<Flex>;

fn simclr_batches(seed: u64) -> Vec<Batch> {
    let n = 40;
    let pixels: Vec<u8> = (0..n * 3 * 16 * 16).map(|i| ((i * 7919) % 251) as u8).collect();
    let split = Split::in_memory((3, 16, 16), (0..n).map(|i| (i % 10) as u16).collect(), pixels, "t").expect("split");
    let streams = vec![StreamSpec {
        stream: Stream::Unlabeled,
        pool: (0..n).collect(),
        batch_size: 8,
        views: vec![View::SimClr, View::SimClr],
    }];
    let norm = Normalize { mean: vec![0.5; 3], std: vec![0.25; 3] };
    let config = PipelineConfig { seed, workers: 2, prefetch: 2, start_step: 0 };
    let mut p = Pipeline::new(Arc::new(split), norm, streams, &config).expect("pipeline");
    (0..3).map(|_| p.next_batch().expect("batch")).collect()
}

#[test]
fn the_two_views_of_a_pair_differ_and_the_same_seed_repeats_them() {
    let a = simclr_batches(3);
    for batch in &a {
        let s = batch.stream(Stream::Unlabeled).expect("stream");
        let [v0, v1] = [&s.views[0], &s.views[1]];
        let len = v0.data.len() / 8;
        for i in 0..8 {
            let (x, y) = (&v0.data[i * len..(i + 1) * len], &v1.data[i * len..(i + 1) * len]);
            assert_ne!(x, y, "sample {i} of step {}: its two SimCLR views are identical", batch.step);
        }
    }
    assert_eq!(a, simclr_batches(3), "same seed, same views");
    assert_ne!(a, simclr_batches(4), "another seed, other views");
}

/// SimCLR + IAM-D on projection outputs, small enough for a test: the plumbing, not the representation.
const SIMCLR: &str = r#"
name = "ssl-test"
seed = 3

[data]
dataset = "synthetic"
labels_per_class = 5
batch_size = 16
mu = 1
unlabeled_views = ["simclr", "simclr"]
synthetic_train_size = 300
synthetic_test_size = 100

[model]
arch = "cnn-small"

[model.projection]
hidden = 64
dim = 32

[[stage]]
kind = "ntxent"
temperature = 0.5

[[stage]]
kind = "iam-d"
beta = 1.0
rho = 0.05
source = "projection"

[optimizer]
kind = "sgd"
lr = 0.1

[schedule]
kind = "cosine"
steps = 12

[ema]
enabled = false

[eval]
probe_every = 6
probe_epochs = 5
knn_k = 20
measure_every = 4

[checkpoint]
every = 6
"#;

/// A briefly trained encoder for the probe test: a few supervised steps on every label of the synthetic set.
///
/// SimCLR needs far longer than a test can afford before its features beat a random network's (which score well
/// above chance under a linear probe), so the probe's ability to tell a trained encoder from a random one is
/// checked on an encoder whose training is quick and certain.
const SUPERVISED: &str = r#"
name = "probe-test"
seed = 3

[data]
dataset = "synthetic"
batch_size = 64
mu = 0
synthetic_train_size = 2000
synthetic_test_size = 500

[model]
arch = "cnn-small"

[[stage]]
kind = "supervised"

[optimizer]
kind = "sgd"
lr = 0.05

[schedule]
kind = "cosine"
steps = 80

[ema]
enabled = false

[checkpoint]
every = 80
"#;

fn field(out: &Output, key: &str) -> f64 {
    let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    last.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {last:?}"))
        .parse()
        .expect("a number")
}

/// Trains `recipe` in `dir` and returns its run folder.
fn train(recipe: &str, dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("r.toml"), recipe).expect("write recipe");
    let out = burnish(&["train", "r.toml", "--quiet"], dir);
    assert!(out.status.success(), "{}", text(&out));
    dir.join(run_dir(&out))
}

#[test]
fn simclr_with_iam_d_on_projections_trains_and_probes_periodically() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = train(SIMCLR, tmp.path());
    let rows = metric_rows(&dir);
    let s_rho: Vec<f64> = rows.iter().filter_map(|r| r["iam-d/s_rho"].as_f64()).collect();
    assert_eq!(s_rho.len(), 12, "IAM-D on projections reports Ŝ_ρ every step");
    assert!(s_rho.iter().all(|s| s.is_finite() && *s > 0.0), "{s_rho:?}");
    let ntxent: Vec<f64> = rows.iter().filter_map(|r| r["ntxent/loss"].as_f64()).collect();
    // The loss starts near ln(2N − 1) = ln 31 for 16 pairs, where every other sample looks alike.
    assert!((ntxent[0] - 31f64.ln()).abs() < 0.5, "first NT-Xent loss {}", ntxent[0]);
    assert!(rows.iter().all(|r| r.get("supervised/loss").is_none()), "no labelled stage");
    let probes: Vec<&serde_json::Value> = rows.iter().filter(|r| r.get("probe_acc").is_some()).collect();
    assert_eq!(probes.len(), 2, "eval.probe_every = 6 probes at steps 6 and 12");
    assert!(probes.iter().all(|r| r["knn_acc"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a))));
    // eval.measure_every = 4: Ŝ_ρ of the classifier on one fixed training batch at steps 4, 8 and 12.
    let measured: Vec<(u64, f64)> =
        rows.iter().filter_map(|r| Some((r["step"].as_u64()?, r.get("s_rho_measured")?.as_f64()?))).collect();
    assert_eq!(measured.iter().map(|m| m.0).collect::<Vec<_>>(), vec![4, 8, 12], "{measured:?}");
    assert!(measured.iter().all(|m| m.1.is_finite() && m.1 > 0.0), "{measured:?}");
    assert_eq!(summary(&dir)["probe_acc"], probes[1]["probe_acc"], "the summary carries the last probe");
}

#[test]
fn the_probe_of_a_briefly_trained_encoder_beats_the_probe_of_a_random_one() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = train(SUPERVISED, tmp.path());
    let ckpt = dir.join("checkpoints").join("step-000000080.ckpt");
    let ckpt = ckpt.to_str().expect("utf-8");
    let probe = |extra: &[&str]| {
        let mut args = vec!["probe", ckpt, "--labels-per-class", "10", "--epochs", "30"];
        args.extend_from_slice(extra);
        let out = burnish(&args, tmp.path());
        assert!(out.status.success(), "{}", text(&out));
        (field(&out, "linear_acc="), field(&out, "knn_acc="))
    };
    let (trained, trained_knn) = probe(&[]);
    let (random, random_knn) = probe(&["--random-init"]);
    eprintln!("linear probe: trained {trained:.3} vs random {random:.3}; kNN: {trained_knn:.3} vs {random_knn:.3}");
    assert!(trained > random + 0.05, "linear probe: trained {trained:.3} vs random init {random:.3}");
    assert!(trained_knn > random_knn + 0.05, "kNN: trained {trained_knn:.3} vs random init {random_knn:.3}");
}

/// The first step of `recipe` evaluated at seed 11 (not trained): the seeded model, the batch and the evaluation.
fn first_evaluation(recipe: &str) -> (Net<AD>, StepBatch<AD>, Evaluation<AD>) {
    let r = Recipe::from_str(recipe, "simclr.toml", &[]).unwrap_or_else(|e| panic!("{e}"));
    let (_, model, batch, eval) = common::evaluate_first_batch(&r, 11);
    (model, batch, eval)
}

/// A metric of an evaluation.
fn metric_of(eval: &Evaluation<AD>, name: &str) -> f64 {
    let (_, v) = eval.metrics.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no metric {name}"));
    v.clone().into_data().convert::<f64>().to_vec::<f64>().expect("f64")[0]
}

/// The log-softmax of a row, in f64.
fn log_softmax_row(row: &[f64]) -> Vec<f64> {
    let lse = log_sum_exp(row);
    row.iter().map(|v| v - lse).collect()
}

#[test]
fn the_components_distribution_is_its_own_score_function() {
    // distribution = "components": each row's projection z is itself the score vector, p = softmax(z) over its 32
    // components (docs/iam.md). Ŝ_ρ is then the mean over the 2N rows of KL(softmax(z) ‖ softmax(z')), z' the
    // projection at θ + δ*, both passes normalising the two views of the step alone.
    let short = SIMCLR.replace("steps = 12", "steps = 2");
    let components_recipe =
        short.replace("source = \"projection\"", "source = \"projection\"\ndistribution = \"components\"");
    let (model, batch, eval) = first_evaluation(&components_recipe);
    let keys = ViewKey::for_views(Stream::Unlabeled, &[View::SimClr, View::SimClr]);
    let x = batch.images(&keys).expect("both views");
    let clean = model.forward(x.clone(), BnMode::TrainNoStats).projections.expect("a projection head");
    assert_eq!(clean.dims(), [32, 32], "16 pairs, 32 components");
    let iam = IamD {
        inconsistency: Inconsistency { rho: 0.05, ..Inconsistency::default() },
        source: IamSource::Projection { views: [keys[0], keys[1]], distribution: ProjectionDistribution::Components },
        ascent_fraction: 1.0,
        batch_fraction: 1.0,
    };
    // The iam-d stage is the second: its seed is derived from the evaluation's and its index.
    let delta = iam.delta_star(&model, &x, softmax(clean.clone(), 1), derive_seed(&[11, 1]));
    let perturbed = constant_copy(&model, &delta).forward(x, BnMode::TrainNoStats).projections.expect("a head");
    let rows: Vec<(Vec<f64>, Vec<f64>)> = rows_of(clean).into_iter().zip(rows_of(perturbed)).collect();
    let kl = rows
        .iter()
        .map(|(a, b)| {
            let (la, lb) = (log_softmax_row(a), log_softmax_row(b));
            la.iter().zip(&lb).map(|(p, q)| p.exp() * (p - q)).sum::<f64>()
        })
        .sum::<f64>()
        / rows.len() as f64;
    let components = metric_of(&eval, "iam-d/s_rho");
    assert!(kl > 1e-7, "a measurable inconsistency: {kl}");
    assert!((components - kl).abs() <= 1e-3 * kl + 1e-9, "components Ŝ_ρ {components}, by hand {kl}");
    assert!((metric_of(&eval, "iam-d/loss") - kl).abs() <= 1e-3 * kl + 1e-9, "the loss is the same KL");
    // The default distribution on the same seed, model, batch and δ₀ noise differs: a softmax over the 31
    // similarities of each row instead of over its 32 components.
    let ntxent = metric_of(&first_evaluation(&short).2, "iam-d/s_rho");
    assert!((components - ntxent).abs() > 1e-3 * ntxent.max(components), "components {components} vs ntxent {ntxent}");
}
