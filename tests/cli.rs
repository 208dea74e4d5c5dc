//! The command line end to end: a short training run and its run folder, an interrupted run resumed to the same
//! result as an uninterrupted one, and bad recipes reported without a panic.

use std::path::Path;

mod common;

use common::measures::MeasureBatch;
use common::{burnish, latest_checkpoint, metric_rows, run_dir, summary, text, TINY_RECIPE as RECIPE};

#[test]
fn train_writes_a_complete_run_folder() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("r.toml"), RECIPE).expect("write recipe");
    let out = burnish(&["train", "r.toml", "--quiet"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let dir = tmp.path().join(run_dir(&out));
    for f in ["recipe.toml", "metrics.jsonl", "metrics.csv", "summary.json", "checkpoints"] {
        assert!(dir.join(f).exists(), "{f} missing in {}", dir.display());
    }
    let s = summary(&dir);
    assert_eq!(s["steps"], 20);
    assert_eq!(s["interrupted"], false);
    let acc = s["test_acc_ema"].as_f64().expect("accuracy");
    assert!((0.0..=1.0).contains(&acc));
    // The generalisation gap of the evaluation model: training accuracy and loss on labelled images next to the test
    // set's, and their differences.
    let f = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{k} in summary.json"));
    assert!((0.0..=1.0).contains(&f("train_acc")) && f("train_loss") > 0.0 && f("test_loss") > 0.0);
    assert!((f("gap_acc") - (f("train_acc") - acc)).abs() < 1e-12);
    assert!((f("gap_loss") - (f("test_loss") - f("train_loss"))).abs() < 1e-12);
    let steps = metric_rows(&dir);
    assert_eq!(steps.iter().filter(|v| v.get("loss").is_some()).count(), 20, "one record per step");
    assert!(steps.iter().any(|v| v.get("fixmatch/mask_rate").is_some() && v.get("iam-d/s_rho").is_some()));
    assert!(steps.iter().filter(|v| v.get("test_acc_ema").is_some()).count() >= 2, "mid-run and final evaluation");
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 21, "header + one row per step");
    let header = csv.lines().next().expect("a header");
    assert!(header.ends_with("test_acc,test_acc_ema,test_loss,train_acc,train_loss"), "{header}");
    // The TensorBoard event file of the session holds the same rows (decoded in tests/tensorboard.rs).
    let events: Vec<_> = std::fs::read_dir(&dir)
        .expect("run folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("events.out.tfevents.")))
        .collect();
    assert_eq!(events.len(), 1, "one event file per session: {events:?}");
    let bytes = std::fs::read(&events[0]).expect("event file");
    let has = |tag: &str| bytes.windows(tag.len()).any(|w| w == tag.as_bytes());
    assert!(has("fixmatch/mask_rate") && has("test_acc_ema") && has("recipe"), "the rows and the recipe are in it");
    let kept = std::fs::read_dir(dir.join("checkpoints")).expect("checkpoints").count();
    assert_eq!(kept, 2, "checkpoint.keep = 2 most recent");
    // `measure` reads the checkpoint (and the recipe inside it) and reports Ŝ_ρ per restart and their mean/std.
    let ckpt = latest_checkpoint(&dir);
    let m = burnish(&["measure", ckpt.to_str().expect("utf-8"), "--restarts", "3", "--batch", "32"], tmp.path());
    assert!(m.status.success(), "{}", text(&m));
    let out = String::from_utf8_lossy(&m.stdout).to_string();
    assert_eq!(out.lines().filter(|l| l.starts_with("restart ")).count(), 3);
    let last = out.lines().last().expect("output");
    let field = |k: &str| -> f64 {
        last.split_whitespace().find_map(|w| w.strip_prefix(k)).expect("field").parse().expect("number")
    };
    assert!(last.starts_with("s_rho_mean="), "{last}");
    assert!(field("s_rho_mean=") > 0.0 && field("s_rho_std=") >= 0.0, "{last}");
    // The sharpness measures, asked for by name, on the same images with their labels.
    let args = ["measure", ckpt.to_str().expect("utf-8"), "--batch", "16", "--measures", "lambda_max,sam"];
    let m = burnish(&[&args[..], &["--power-iterations", "3", "--sam-steps", "2"]].concat(), tmp.path());
    assert!(m.status.success(), "{}", text(&m));
    let out = String::from_utf8_lossy(&m.stdout).to_string();
    let value = |k: &str| -> f64 {
        let line = out.lines().find(|l| l.starts_with(k)).unwrap_or_else(|| panic!("no {k} in\n{out}"));
        line.split_whitespace().next().and_then(|w| w.strip_prefix(k)).expect("field").parse().expect("number")
    };
    // Both against their definitions computed here on the same weights and images (tests/common/measures.rs).
    let by_hand = MeasureBatch::open(&ckpt, 16, false);
    let lambda = by_hand.lambda_max(&by_hand.lambda_start(), 3, 1e-3);
    let sam = by_hand.sam(0.05, 2);
    assert!(lambda.abs() > 1e-4 && sam > 1e-6, "λ_max {lambda}, SAM {sam}");
    let close = |k: &str, expect: f64| {
        assert!((value(k) - expect).abs() <= 1e-2 * expect.abs(), "{k} printed {}, by hand {expect}\n{out}", value(k));
    };
    close("lambda_max=", lambda);
    close("sam_sharpness=", sam);
    assert!(!out.contains("s_rho"), "only the measures asked for: {out}");
    // `bench` times steps with and without the pipeline; the last line is the reused-batch median. `--threads`
    // sizes the tensor-math pool whatever RAYON_NUM_THREADS says, and 0 is refused by name.
    let b = burnish(&["bench", "r.toml", "--steps", "2", "--warmup", "0", "--threads", "3"], tmp.path());
    assert!(b.status.success(), "{}", text(&b));
    let stdout = String::from_utf8_lossy(&b.stdout).to_string();
    assert!(stdout.lines().next().is_some_and(|l| l.ends_with(" threads=3")), "{stdout}");
    let last = stdout.lines().last().expect("output").to_string();
    assert!(last.starts_with("step_ms_median=") && last.contains(" peak_rss_mib="), "{last}");
    let zero = burnish(&["--threads", "0", "bench", "r.toml", "--steps", "1"], tmp.path());
    assert!(!zero.status.success() && text(&zero).contains("--threads must be at least 1"), "{}", text(&zero));
    // The resolved recipe in the folder is accepted by `check` and equals the input's resolution.
    let check = burnish(&["check", "r.toml"], tmp.path());
    assert!(check.status.success());
    assert_eq!(
        String::from_utf8_lossy(&check.stdout),
        std::fs::read_to_string(dir.join("recipe.toml")).expect("recipe")
    );
}

#[test]
fn an_interrupted_run_resumes_to_the_same_result() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("r.toml"), RECIPE).expect("write recipe");
    let full = burnish(&["train", "r.toml", "--quiet", "--runs-dir", "a"], tmp.path());
    assert!(full.status.success(), "{}", text(&full));
    let part = burnish(&["train", "r.toml", "--quiet", "--runs-dir", "b", "--stop-after", "7"], tmp.path());
    assert!(part.status.success(), "{}", text(&part));
    assert!(text(&part).contains("stopped at step 7"), "{}", text(&part));
    let dir = run_dir(&part);
    let resumed = burnish(&["train", "r.toml", "--quiet", "--resume", dir.to_str().expect("utf-8")], tmp.path());
    assert!(resumed.status.success(), "{}", text(&resumed));
    let (a, b) = (summary(&tmp.path().join(run_dir(&full))), summary(&tmp.path().join(&dir)));
    assert_eq!(a["steps"], b["steps"]);
    assert_eq!(a["test_acc"], b["test_acc"], "raw accuracy after resume");
    assert_eq!(a["test_acc_ema"], b["test_acc_ema"], "EMA accuracy after resume");
    let lines = |d: &Path| std::fs::read_to_string(d.join("metrics.csv")).expect("csv").lines().count();
    assert_eq!(lines(&tmp.path().join(&dir)), 21, "no duplicated rows after resume");
    // Resuming the finished run trains, evaluates and logs nothing again.
    let jsonl = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).expect("jsonl");
    let before = jsonl(&tmp.path().join(&dir));
    let again = burnish(&["train", "r.toml", "--quiet", "--resume", dir.to_str().expect("utf-8")], tmp.path());
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(jsonl(&tmp.path().join(&dir)), before, "a finished run resumed logs nothing more");
    let c = summary(&tmp.path().join(&dir));
    assert_eq!((&c["steps"], &c["test_acc"], &c["test_acc_ema"]), (&b["steps"], &b["test_acc"], &b["test_acc_ema"]));
    // Resuming with a different recipe is refused.
    let other = burnish(&["train", "r.toml", "--set", "seed=6", "--resume", dir.to_str().expect("utf-8")], tmp.path());
    assert!(!other.status.success());
}

#[test]
fn bad_recipes_fail_cleanly_naming_the_key() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("labels_per_class = 2", "labels_per_clas = 2", "data.labels_per_clas"),
        ("threshold = 0.5", "threshold = 1.5", "stage.1.threshold"),
        ("rho = 0.05", "rho = -1.0", "stage.2.rho"),
        ("arch = \"cnn-small\"", "arch = \"cnn-huge\"", "model.arch"),
    ];
    for (from, to, key) in cases {
        std::fs::write(tmp.path().join("bad.toml"), RECIPE.replace(from, to)).expect("write");
        for cmd in ["check", "train"] {
            let out = burnish(&[cmd, "bad.toml"], tmp.path());
            let msg = text(&out);
            assert_eq!(out.status.code(), Some(1), "{cmd} {key}: {msg}");
            assert!(msg.contains(key) && msg.contains("bad.toml:"), "{cmd}: {msg}");
            assert!(!msg.contains("panicked"), "{msg}");
        }
    }
    let out = burnish(&["check", "missing.toml"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("missing.toml"));
}

#[test]
fn a_run_ends_at_the_first_evaluation_that_fits_its_training_images() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("r.toml"), RECIPE).expect("write recipe");
    let base = ["train", "r.toml", "--quiet", "--set", "schedule.steps=30", "--set", "eval.every=5"];
    let out = burnish(&base, tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    // The training accuracy of every scheduled evaluation (steps 5 to 25) of the run that takes all its steps.
    let evals: Vec<(u64, f64)> = metric_rows(&tmp.path().join(run_dir(&out)))
        .iter()
        .filter_map(|v| Some((v["step"].as_u64()?, v.get("train_acc")?.as_f64()?)))
        .filter(|(step, _)| *step < 30)
        .collect();
    assert_eq!(evals.len(), 5, "{evals:?}");
    // The best of them is a target the same seeded run reaches first at `fit`, before its last step.
    let target = evals.iter().map(|(_, a)| *a).fold(f64::MIN, f64::max);
    let fit = evals.iter().find(|(_, a)| *a >= target).map(|(s, _)| *s).expect("reached");

    let runs = tmp.path().join("fit");
    let runs = runs.to_str().expect("utf-8");
    let target_set = format!("schedule.stop_at_train_acc={target}");
    let out = burnish(&[&base[..], &["--runs-dir", runs, "--set", &target_set]].concat(), tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("reached schedule.stop_at_train_acc"), "{}", text(&out));
    let dir = tmp.path().join(run_dir(&out));
    let s = summary(&dir);
    assert_eq!(s["steps"], fit, "ends at step {fit}, the first evaluation at {target}: {s}");
    assert_eq!((s["interrupted"].as_bool(), s["fitted"].as_bool()), (Some(false), Some(true)), "{s}");
    assert!(s["train_acc"].as_f64().expect("train_acc") >= target, "{s}");
    let rows = metric_rows(&dir);
    let steps = rows.iter().filter(|v| v.get("loss").is_some()).count() as u64;
    assert_eq!(steps, fit, "no step after the fit");
    let evals_at_fit = rows.iter().filter(|v| v["step"] == fit && v.get("test_acc_ema").is_some()).count();
    assert_eq!(evals_at_fit, 1, "the evaluation that found the fit is the final one, logged once");
    assert!(latest_checkpoint(&dir).ends_with(format!("step-{fit:09}.ckpt")), "the final checkpoint is the fit's");

    // Resumed, the fitted run stays ended: no step, no evaluation, the same summary.
    let before = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("jsonl");
    let resume = [&base[..], &["--set", &target_set, "--resume", dir.to_str().expect("utf-8")]].concat();
    let again = burnish(&resume, tmp.path());
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("reached schedule.stop_at_train_acc"), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(dir.join("metrics.jsonl")).expect("jsonl"), before, "no row after the fit");
    let r = summary(&dir);
    assert_eq!((&r["steps"], &r["fitted"], &r["train_acc"]), (&s["steps"], &s["fitted"], &s["train_acc"]), "{r}");
    assert_eq!(r["test_acc_ema"], s["test_acc_ema"], "{r}");

    // Without evaluations there is nothing to check the target against: the recipe says so.
    let out = burnish(&["check", "r.toml", "--set", &target_set, "--set", "eval.every=0"], tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("schedule.stop_at_train_acc") && text(&out).contains("eval.every"), "{}", text(&out));
}
