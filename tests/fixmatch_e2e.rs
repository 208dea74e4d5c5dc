//! FixMatch end to end: on the synthetic data with 4 labels per class, 300 steps of FixMatch beat 300 steps of
//! supervised-only training on the same labelled split by a clear margin (the property the data set is built for).

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::{run_dir, summary, text};

/// What the two runs share: data (so the labelled split is the same), model, optimiser and schedule; `MU` is the
/// unlabeled batch ratio (0: no unlabeled stream).
const COMMON: &str = r#"
seed = 0

[data]
dataset = "synthetic"
labels_per_class = 4
batch_size = 16
mu = MU
labeled_views = ["weak"]
unlabeled_views = ["weak", "strong"]
workers = 1
synthetic_test_size = 1000

[model]
arch = "cnn-small"

[optimizer]
kind = "sgd"
lr = 0.05
momentum = 0.9
nesterov = true
weight_decay = 5e-4

[schedule]
kind = "cosine"
steps = 300

[ema]
decay = 0.99

[eval]
every = 300

[checkpoint]
every = 300

[[stage]]
kind = "supervised"
"#;

const FIXMATCH_STAGE: &str = r#"
[[stage]]
kind = "fixmatch"
threshold = 0.95
"#;

/// Starts `burnish train` on `recipe` in `dir` with `threads` compute threads (the two runs share the CI's two cores:
/// the supervised one is short, so FixMatch gets the second core to itself once it ends).
fn start(dir: &Path, name: &str, recipe: &str, threads: &str) -> std::process::Child {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, format!("name = \"{name}\"\n{recipe}")).expect("write recipe");
    Command::new(env!("CARGO_BIN_EXE_burnish"))
        .args(["train", file.to_str().expect("utf-8 path"), "--quiet", "--runs-dir"])
        .arg(dir)
        .env("RAYON_NUM_THREADS", threads)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// The EMA test accuracy a finished run wrote to its summary.
fn ema_accuracy(out: &Output) -> f64 {
    assert!(out.status.success(), "training failed:\n{}", text(out));
    summary(&run_dir(out))["test_acc_ema"].as_f64().expect("test_acc_ema")
}

#[test]
fn fixmatch_beats_supervised_only_on_the_same_four_labels_per_class() {
    let dir = tempfile::tempdir().expect("tempdir");
    let supervised = start(dir.path(), "supervised", &COMMON.replace("MU", "0"), "1");
    let fixmatch = start(dir.path(), "fixmatch", &format!("{}{FIXMATCH_STAGE}", COMMON.replace("MU", "2")), "2");
    let supervised = ema_accuracy(&supervised.wait_with_output().expect("supervised run"));
    let fixmatch = ema_accuracy(&fixmatch.wait_with_output().expect("fixmatch run"));
    eprintln!("EMA test accuracy after 300 steps: FixMatch {fixmatch:.4}, supervised-only {supervised:.4}");
    // Measured: 84 % vs 96 % on this split (80–87 % vs 96–99 % over three splits).
    assert!(
        fixmatch >= supervised + 0.08 && fixmatch >= 0.9,
        "FixMatch {fixmatch:.3} vs supervised-only {supervised:.3}: expected a margin of at least 8 points"
    );
}
