//! SimCLR end to end: the pipeline's two views of an image, a short SimCLR + IAM-D (projection) run, and the probe
//! of that encoder against the probe of its random initialisation.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use burnish::data::Split;
use burnish::pipeline::{Batch, Normalize, Pipeline, PipelineConfig, StreamSpec};
use burnish_augment::View;

fn simclr_batches(seed: u64) -> Vec<Batch> {
    let n = 40;
    let pixels: Vec<u8> = (0..n * 3 * 16 * 16).map(|i| ((i * 7919) % 251) as u8).collect();
    let split = Split::in_memory((3, 16, 16), (0..n).map(|i| (i % 10) as u16).collect(), pixels, "t").expect("split");
    let streams = vec![StreamSpec {
        name: "unlabeled".into(),
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
        let s = batch.stream("unlabeled").expect("stream");
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

const SIMCLR: &str = r#"
name = "ssl-test"
seed = 3

[data]
dataset = "synthetic"
labels_per_class = 20
batch_size = 64
mu = 1
unlabeled_views = ["simclr", "simclr"]
synthetic_train_size = 1000
synthetic_test_size = 300

[model]
arch = "cnn-small"

[model.projection]
hidden = 128
dim = 64

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
lr = 0.3
momentum = 0.9
nesterov = false

[schedule]
kind = "cosine"
steps = 60

[ema]
enabled = false

[eval]
probe_every = 30
probe_epochs = 50

[checkpoint]
every = 30
"#;

fn burnish(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burnish")).args(args).current_dir(cwd).output().expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn field(out: &Output, key: &str) -> f64 {
    let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    last.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {last:?}"))
        .parse()
        .expect("a number")
}

#[test]
fn a_briefly_trained_simclr_encoder_probes_better_than_its_random_init() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("s.toml"), SIMCLR).expect("write recipe");
    let out = burnish(&["train", "s.toml", "--quiet"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let dir = tmp.path().join("runs").join(
        std::fs::read_dir(tmp.path().join("runs")).expect("runs").next().expect("a run").expect("entry").file_name(),
    );
    let jsonl = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics");
    let rows: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let s_rho: Vec<f64> = rows.iter().filter_map(|r| r["iam-d/s_rho"].as_f64()).collect();
    assert_eq!(s_rho.len(), 60, "IAM-D on projections reports Ŝ_ρ every step");
    assert!(s_rho.iter().all(|s| s.is_finite() && *s >= 0.0));
    assert!(rows.iter().all(|r| r.get("supervised/loss").is_none()), "no labelled stage");
    let probes = rows.iter().filter(|r| r.get("probe_acc").is_some() && r.get("knn_acc").is_some()).count();
    assert_eq!(probes, 2, "eval.probe_every = 30 probes at steps 30 and 60");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary")).expect("json");
    assert!(summary["probe_acc"].as_f64().is_some_and(|a| a > 0.0));

    let ckpt = dir.join("checkpoints").join("step-000000060.ckpt");
    let ckpt = ckpt.to_str().expect("utf-8");
    let trained = burnish(&["probe", ckpt], tmp.path());
    assert!(trained.status.success(), "{}", text(&trained));
    let random = burnish(&["probe", ckpt, "--random-init"], tmp.path());
    assert!(random.status.success(), "{}", text(&random));
    let (t, r) = (field(&trained, "linear_acc="), field(&random, "linear_acc="));
    let (tk, rk) = (field(&trained, "knn_acc="), field(&random, "knn_acc="));
    eprintln!("linear probe: trained {t:.3} vs random {r:.3}; kNN: trained {tk:.3} vs random {rk:.3}");
    assert!(t > r + 0.03, "linear probe: trained {t:.3} should beat random init {r:.3}");
    assert!(tk > rk, "kNN: trained {tk:.3} should beat random init {rk:.3}");
}
