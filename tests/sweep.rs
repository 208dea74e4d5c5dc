//! `burnish sweep`: the grid expands as documented, every run lands in sweep.csv with its summary and measures, a
//! killed sweep continues without redoing finished runs (the interrupted one resumes from its checkpoint to the
//! result of an uninterrupted sweep), and bad grids fail before anything trains.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burnish::sweep::{expand, Axis};

mod common;

use common::measures::MeasureBatch;
use common::{burnish, latest_checkpoint, text, TINY_RECIPE as RECIPE};

#[test]
fn the_grid_expands_as_documented() {
    let axes = vec![
        Axis::seeds(2),
        Axis::parse("optimizer.lr=0.03, 0.1").expect("lr axis"),
        Axis::parse("model.widths=[16,32],[8, 8]").expect("list axis"),
    ];
    assert_eq!(axes[0].values, ["0", "1"]);
    assert_eq!(axes[2].values, ["[16,32]", "[8, 8]"], "commas inside brackets stay in their value");
    let points = expand(&axes).expect("expands");
    assert_eq!(points.len(), 8);
    // The first axis (the seed) varies slowest, the last fastest.
    let values = |i: usize| points[i].overrides.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!(values(0), ["0", "0.03", "[16,32]"]);
    assert_eq!(values(1), ["0", "0.03", "[8, 8]"]);
    assert_eq!(values(2), ["0", "0.1", "[16,32]"]);
    assert_eq!(values(4), ["1", "0.03", "[16,32]"]);
    assert_eq!(values(7), ["1", "0.1", "[8, 8]"]);
    assert_eq!(points[3].id, "003-seed=0_optimizer.lr=0.1_model.widths=-8--8-");
    assert!(points.iter().enumerate().all(|(i, p)| p.index == i && p.id.starts_with(&format!("{i:03}-"))));
    assert_eq!(expand(&[]).expect("no axes").len(), 1, "no grid: the recipe itself, once");

    for (bad, says) in [
        ("optimizer.lr", "expected KEY=V1,V2"),
        ("=1,2", "key before `=` is empty"),
        ("optimizer.lr=0.1,,0.3", "value 2 is empty"),
        ("optimizer.lr=0.1,0.1", "given twice"),
    ] {
        let e = Axis::parse(bad).expect_err(bad).to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let twice = expand(&[Axis::seeds(1), Axis::parse("seed=1,2").expect("axis")]).expect_err("seed twice");
    assert!(twice.to_string().contains("varied twice"), "{twice}");
}

/// The sweep's arguments in the tests: 2 learning rates × 2 seeds of the tiny recipe, measured.
const ARGS: [&str; 16] = [
    "sweep",
    "r.toml",
    "--set",
    "schedule.steps=12",
    "--set",
    "checkpoint.every=2",
    "--grid",
    "optimizer.lr=0.01,0.05",
    "--seeds",
    "2",
    "--measures",
    "s_rho,lambda_max,sam",
    "--measure-batch",
    "16",
    "--measure-restarts",
    "2",
];

fn table(dir: &Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(dir.join("sweep.csv")).expect("sweep.csv");
    r.records().map(|x| x.expect("a row")).collect()
}

fn header(dir: &Path) -> Vec<String> {
    let mut r = csv::Reader::from_path(dir.join("sweep.csv")).expect("sweep.csv");
    r.headers().expect("header").iter().map(str::to_string).collect()
}

#[test]
fn a_sweep_records_every_run_and_a_killed_one_continues() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("r.toml"), RECIPE).expect("write recipe");

    // Uninterrupted, two at a time on one thread each (the thread count changes float sums, so the killed sweep
    // below also runs on one).
    let full =
        burnish(&[&ARGS[..], &["--threads", "2", "--jobs", "2", "--runs-dir", "full", "--quiet"]].concat(), tmp.path());
    assert!(full.status.success(), "{}", text(&full));
    let full_dir = tmp.path().join("full");
    let cols = header(&full_dir);
    assert_eq!(
        cols,
        [
            "run",
            "status",
            "error",
            "set:seed",
            "set:optimizer.lr",
            "test_acc",
            "test_acc_ema",
            "test_loss",
            "train_acc",
            "train_loss",
            "gap_acc",
            "gap_loss",
            "steps",
            "wall_s",
            "s_rho",
            "lambda_max",
            "sam_sharpness"
        ]
    );
    let rows = table(&full_dir);
    assert_eq!(rows.len(), 4);
    let col = |name: &str| cols.iter().position(|c| c == name).expect("column");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(&row[col("status")], "done", "{row:?}");
        assert_eq!(&row[col("set:seed")], ["0", "0", "1", "1"][i]);
        assert_eq!(&row[col("set:optimizer.lr")], ["0.01", "0.05", "0.01", "0.05"][i]);
        let num = |c: &str| row[col(c)].parse::<f64>().unwrap_or_else(|_| panic!("{c} in {row:?}"));
        assert!((num("gap_acc") - (num("train_acc") - num("test_acc_ema"))).abs() < 1e-9, "{row:?}");
        assert!(num("s_rho") > 0.0, "{row:?}");
        // SAM sharpness (ρ = 0.05, one step) of the run's final EMA weights on 16 training images, against its
        // definition computed here (tests/common/measures.rs). λ_max after 20 power iterations from near-initial
        // weights has not converged and last-bit rounding moves it (−17.0 on one thread, −14.9 on two, for the
        // first run), so it is compared with `burnish measure` on the same checkpoint and one thread, as the sweep
        // ran it; tests/cli.rs compares that command's λ_max with the definition where it is well conditioned.
        let home = full_dir.join(&row[col("run")]);
        let run = burnish::sweep::run_folder(&home).expect("list").expect("a run folder");
        let ckpt = latest_checkpoint(&run);
        let sam = MeasureBatch::open(&ckpt, 16, true).sam(0.05, 1);
        assert!(sam > 1e-6 && (num("sam_sharpness") - sam).abs() <= 1e-2 * sam, "by hand {sam}: {row:?}");
        let json = tmp.path().join("measure.json");
        let ckpt_arg = ckpt.to_str().expect("utf-8");
        let json_arg = json.to_str().expect("utf-8");
        let args = ["measure", ckpt_arg, "--ema", "--batch", "16", "--measures", "lambda_max", "--threads", "1"];
        let m = burnish(&[&args[..], &["--json", json_arg]].concat(), tmp.path());
        assert!(m.status.success(), "{}", text(&m));
        let measured: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("measure.json")).expect("json");
        let lambda = measured["lambda_max"].as_f64().expect("lambda_max");
        assert!(lambda != 0.0 && num("lambda_max") == lambda, "burnish measure: {lambda}: {row:?}");
        assert!(num("wall_s") > 0.0);
        assert_eq!(num("steps"), 12.0, "every run took all of schedule.steps: {row:?}");
        // Each run is the recipe with its overrides: its resolved recipe says so.
        let resolved = std::fs::read_to_string(run.join("recipe.toml")).expect("recipe.toml");
        assert!(resolved.contains(&format!("seed = {}", &row[col("set:seed")])), "{resolved}");
    }
    // The two seeds of one learning rate differ, and the two learning rates of one seed differ.
    assert_ne!(rows[0][col("train_loss")], rows[2][col("train_loss")]);
    assert_ne!(rows[0][col("train_loss")], rows[1][col("train_loss")]);

    // The same sweep one at a time, killed (SIGKILL, no chance to clean up) once the first run is done and the
    // second has a checkpoint; its runs get SIGTERM from Linux (PR_SET_PDEATHSIG) and stop with a checkpoint.
    let dir = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_burnish"))
        .args([&ARGS[..], &["--threads", "1", "--runs-dir", "killed", "--quiet"]].concat())
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sweep starts");
    let second = dir.join(&table(&full_dir)[1][0]);
    let deadline = Instant::now() + Duration::from_secs(300);
    let ready = || {
        dir.join("sweep.csv").exists()
            && table(&dir).len() == 1
            && burnish::sweep::run_folder(&second)
                .ok()
                .flatten()
                .is_some_and(|r| burnish::run::checkpoints_in(&r.join("checkpoints")).is_ok_and(|c| !c.is_empty()))
    };
    while !ready() {
        assert!(Instant::now() < deadline, "the first run never finished");
        assert!(child.try_wait().expect("poll").is_none(), "the sweep ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill");
    child.wait().expect("reaped");
    let first = dir.join(&table(&dir)[0][0]);
    let first_run = burnish::sweep::run_folder(&first).expect("list").expect("first run folder");
    let stamp = |p: &Path| std::fs::metadata(p.join("summary.json")).and_then(|m| m.modified()).expect("summary");
    let first_stamp = stamp(&first_run);
    let second_run = burnish::sweep::run_folder(&second).expect("list").expect("second run folder");

    let again = burnish(&[&ARGS[..], &["--threads", "1", "--runs-dir", "killed", "--quiet"]].concat(), tmp.path());
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("(1 already done)"), "{}", text(&again));
    assert_eq!(stamp(&first_run), first_stamp, "the finished run was not trained again");
    assert_eq!(
        burnish::sweep::run_folder(&second).expect("list"),
        Some(second_run.clone()),
        "the interrupted run continued in its own folder"
    );
    let log = std::fs::read_to_string(second.join("sweep.log")).expect("log");
    assert!(log.matches("run folder:").count() >= 2, "trained over two invocations:\n{log}");
    // Resumed runs end exactly where uninterrupted ones do.
    let (a, b) = (table(&full_dir), table(&dir));
    assert_eq!(b.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(&y[col("status")], "done");
        for c in ["test_acc", "test_acc_ema", "train_loss", "gap_acc", "s_rho", "lambda_max", "sam_sharpness"] {
            assert_eq!(x[col(c)], y[col(c)], "{c} of {}", &x[0]);
        }
    }

    // Other measure settings take the measures again, and only them.
    let remeasured = burnish(
        &[&ARGS[..], &["--threads", "1", "--runs-dir", "killed", "--quiet", "--measure-rho", "0.02"]].concat(),
        tmp.path(),
    );
    assert!(remeasured.status.success(), "{}", text(&remeasured));
    assert!(text(&remeasured).contains("(0 already done)"), "{}", text(&remeasured));
    assert_eq!(stamp(&first_run), first_stamp, "measuring again does not train again");
    let c = table(&dir);
    for (before, after) in b.iter().zip(&c) {
        assert_eq!(before[col("train_loss")], after[col("train_loss")]);
        assert_ne!(before[col("s_rho")], after[col("s_rho")], "Ŝ_ρ at another ρ");
        assert_ne!(before[col("sam_sharpness")], after[col("sam_sharpness")], "SAM sharpness at another ρ");
        assert_eq!(before[col("lambda_max")], after[col("lambda_max")], "λ_max has no ρ");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("measures.json")).expect("measures")).expect("json");
    assert_eq!((m["rho"].as_f64(), m["sam_rho"].as_f64()), (Some(0.02), Some(0.02)), "{m}");
}

#[test]
fn a_failing_run_is_recorded_and_bad_grids_fail_before_training() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("r.toml"), RECIPE).expect("write recipe");
    // A value the recipe rejects fails the whole sweep up front, naming the run and the key.
    let bad = burnish(&["sweep", "r.toml", "--grid", "optimizer.lr=0.1,-1", "--runs-dir", "bad"], tmp.path());
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("sweep run 001-optimizer.lr=-1") && text(&bad).contains("optimizer.lr"),
        "{}",
        text(&bad)
    );
    assert!(!tmp.path().join("bad").exists(), "nothing was started");
    // A run that fails while training (here: it diverges) is recorded with its error; the others run.
    let args = ["sweep", "r.toml", "--set", "schedule.steps=6", "--grid", "optimizer.lr=1e30,0.01"];
    let mixed = burnish(&[&args[..], &["--runs-dir", "mixed", "--quiet"]].concat(), tmp.path());
    assert_eq!(mixed.status.code(), Some(1), "{}", text(&mixed));
    let rows = table(&tmp.path().join("mixed"));
    assert_eq!((&rows[0][1], &rows[1][1]), ("failed", "done"), "{rows:?}");
    assert!(rows[0][2].starts_with("training diverged at step"), "{:?}", &rows[0][2]);
    // A different sweep in the same folder is refused.
    let other = burnish(&["sweep", "r.toml", "--grid", "optimizer.lr=0.2", "--runs-dir", "mixed"], tmp.path());
    assert!(!other.status.success() && text(&other).contains("holds a different sweep"), "{}", text(&other));
}
