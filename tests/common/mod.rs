//! What several integration tests share.

pub mod fd;
pub mod hessian;
pub mod measures;
pub mod state;

use burnish::model::{BnMode, Net};
use burnish::objective::{Evaluation, Objective};
use burnish::pipeline::Pipeline;
use burnish::plan;
use burnish::recipe::Recipe;
use burnish::step::StepBatch;
use burnish::train::Trainer;

use fd::AD;

/// The objective of `r`, its seeded model, its first batch, and that batch evaluated with BatchNorm in training mode
/// at `eval_seed`: what each stage reports before any training, for tests that recompute it by hand.
#[allow(dead_code)]
pub fn evaluate_first_batch(r: &Recipe, eval_seed: u64) -> (Objective<AD>, Net<AD>, StepBatch<AD>, Evaluation<AD>) {
    let objective = plan::objective::<AD>(r).unwrap_or_else(|e| panic!("every parsed stage must build: {e}"));
    let data = plan::data(r).expect("synthetic data");
    let mut pipeline =
        Pipeline::new(data.train.clone(), data.norm.clone(), data.streams.clone(), &plan::pipeline_config(r, 0))
            .expect("valid pipeline");
    let device = Default::default();
    let batch = StepBatch::<AD>::from_batch(&pipeline.next_batch().expect("in-memory data"), &device);
    let model = Trainer::<AD>::init_model(&plan::net(r, 3, data.dataset.num_classes), r.seed, &device);
    let eval = objective.evaluate(&model, &batch, BnMode::Train, eval_seed, None).expect("an evaluation");
    (objective, model, batch, eval)
}

#[allow(dead_code)]
/// A tiny FixMatch + IAM-D recipe on 200 synthetic images: seconds per run in the test profile.
pub const TINY_RECIPE: &str = r#"
name = "cli-test"
description = "a tiny FixMatch + IAM-D run for the CLI tests"
seed = 5

[data]
dataset = "synthetic"
labels_per_class = 2
batch_size = 8
mu = 2
workers = 2
synthetic_train_size = 200
synthetic_test_size = 50

[model]
arch = "cnn-small"

[[stage]]
kind = "supervised"

[[stage]]
kind = "fixmatch"
threshold = 0.5

[[stage]]
kind = "iam-d"
rho = 0.05

[schedule]
kind = "cosine"
steps = 20

[eval]
every = 10

[checkpoint]
every = 5
"#;

// Not every test binary that includes this module uses every helper.
#[allow(dead_code)]
/// Runs the `burnish` binary with `args` in `cwd`.
pub fn burnish(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_burnish"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

#[allow(dead_code)]
/// stdout and stderr of a finished command, for assertion messages.
pub fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[allow(dead_code)]
/// The run folder a `burnish train` printed (relative to its working directory).
pub fn run_dir(out: &std::process::Output) -> std::path::PathBuf {
    let line =
        text(out).lines().find_map(|l| l.strip_prefix("run folder: ").map(str::to_string)).expect("run folder line");
    std::path::PathBuf::from(line)
}

#[allow(dead_code)]
/// A run folder's `summary.json`.
pub fn summary(run_dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).expect("summary.json")).expect("json")
}

#[allow(dead_code)]
/// A run folder's `metrics.jsonl`, one value per line.
pub fn metric_rows(run_dir: &std::path::Path) -> Vec<serde_json::Value> {
    let jsonl = std::fs::read_to_string(run_dir.join("metrics.jsonl")).expect("metrics.jsonl");
    jsonl.lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

#[allow(dead_code)]
/// The checkpoint with the highest step in a run folder.
pub fn latest_checkpoint(run_dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(run_dir.join("checkpoints"))
        .expect("checkpoints")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .max()
        .expect("a checkpoint")
}
