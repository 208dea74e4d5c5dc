//! `burnish train` as a process under faults:
//! - SIGKILL at seeded random moments, and in the middle of a checkpoint write, each followed by `--resume`, ends
//!   with the same weights (raw and EMA, bit for bit) and the same metrics as an uninterrupted run, every step
//!   logged once in `metrics.jsonl` and `metrics.csv`;
//! - a full disk during a checkpoint exits non-zero, leaves no partial file and keeps the previous checkpoint
//!   loadable;
//!
//! The faults need no hook in the binary. A checkpoint is written to `.step-NNNNNNNNN.ckpt.tmp-<pid>` in the run's
//! `checkpoints/` folder (docs/checkpoints.md), opened with `File::create`, which follows a symbolic link and opens
//! a FIFO: knowing the child's pid, a test puts a link to `/dev/full` there (the write fails with "no space left on
//! device") or a FIFO it reads only the start of (the child blocks in the middle of the write, to be killed there).
//! - SIGINT and SIGTERM write a checkpoint and exit 130 and 143; a second signal exits at once;
//! - a diverging run exits 4 naming the step and the stage, and leaves only finite checkpoints.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

mod common;

use common::{burnish, summary, text, TINY_RECIPE};

/// Columns that differ between identical runs: wall-clock timings.
const TIMING: [&str; 2] = ["images_per_s", "data_wait_s"];

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("r.toml"), TINY_RECIPE).expect("write recipe");
    tmp
}

/// Starts `burnish train r.toml` in `cwd` with run folders under `runs`, resuming `resume` if given.
fn spawn(cwd: &Path, runs: &Path, resume: Option<&Path>) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_burnish"));
    c.args(["train", "r.toml", "--quiet", "--runs-dir"]).arg(runs).current_dir(cwd);
    if let Some(dir) = resume {
        c.arg("--resume").arg(dir);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the binary starts")
}

/// Where the process `pid` writes the checkpoint after `step` steps before renaming it into place.
fn temporary_path(checkpoints: &Path, step: u64, pid: u32) -> PathBuf {
    checkpoints.join(format!(".step-{step:09}.ckpt.tmp-{pid}"))
}

/// The steps whose checkpoints a run of the tiny recipe (20 steps, one checkpoint every 5) may write next, after
/// `done` steps (the last step's again if it is already written: its final evaluation may still be missing).
fn checkpoint_steps_after(done: u64) -> Vec<u64> {
    let steps: Vec<u64> = (done / 5 + 1..=4).map(|k| 5 * k).collect();
    if steps.is_empty() {
        vec![20]
    } else {
        steps
    }
}

/// The step of the newest checkpoint under `runs` (0 when there is none).
fn checkpointed(runs: &Path) -> u64 {
    let Some(dir) = the_run(runs) else { return 0 };
    let ckpts = burnish::run::checkpoints_in(&dir.join("checkpoints")).unwrap_or_default();
    let name = ckpts.last().and_then(|c| c.file_name()).map(|n| n.to_string_lossy().to_string());
    name.map_or(0, |n| n["step-".len()..n.len() - ".ckpt".len()].parse().expect("a step"))
}

/// A checkpoint write of another process caught in the middle: the read end of the FIFO it writes into (the
/// write blocks until the process dies, since nobody reads on), and the bytes read so far.
struct Stalled {
    _fifo: File,
    head: Vec<u8>,
}

/// Makes the next checkpoint write of `child`, training under `runs` with `done` steps checkpointed, stall
/// half-way: a FIFO (made in `cwd`) is linked at every temporary name it may write to, and read only up to its
/// first 4 KiB. The links are made again while the child's start removes them as leftovers of a crash. `None` if
/// the child exits first (it had nothing left to write) or no write began within `limit`.
fn stall_next_checkpoint(cwd: &Path, runs: &Path, done: u64, child: &mut Child, limit: Duration) -> Option<Stalled> {
    let pid = child.id();
    let fifo = cwd.join(format!("fifo-{pid}"));
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let (tx, rx) = mpsc::channel();
    let reader = fifo.clone();
    // Opening a FIFO for reading waits for a writer: the child's `File::create` of the temporary file.
    std::thread::spawn(move || {
        let Ok(mut f) = File::open(&reader) else { return };
        let mut head = vec![0; 4096];
        if f.read_exact(&mut head).is_ok() {
            let _ = tx.send(Stalled { _fifo: f, head });
        }
    });
    let stalled = wait_for(limit, || {
        if let Some(dir) = the_run(runs) {
            for step in checkpoint_steps_after(done) {
                let link = temporary_path(&dir.join("checkpoints"), step, pid);
                if link.symlink_metadata().is_err() {
                    // The folder may not exist yet, or the child's start may remove the link: both are retried.
                    let _ = std::fs::hard_link(&fifo, &link);
                }
            }
        }
        match rx.try_recv() {
            Ok(stalled) => Some(Some(stalled)),
            Err(_) if child.try_wait().expect("try_wait").is_some() => Some(None),
            Err(_) => None,
        }
    })
    .flatten();
    if stalled.is_none() {
        // Free the reading thread: a writer that closes at once gives it end-of-file.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo));
    }
    stalled
}

/// The only run folder under `runs`, once it exists.
fn the_run(runs: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    assert!(dirs.len() <= 1, "one run folder, found {dirs:?}");
    dirs.pop()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().expect("kill");
    assert!(status.success(), "kill -{name} failed");
}

fn kill9(mut child: Child) {
    signal(&child, "KILL");
    child.wait().expect("reaped");
}

/// `metrics.jsonl` without its timing fields, one string per row.
fn jsonl_rows(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("every line is JSON");
            let obj = v.as_object_mut().expect("an object");
            TIMING.iter().for_each(|k| drop(obj.remove(*k)));
            v.to_string()
        })
        .collect()
}

/// `metrics.csv` without its timing columns.
fn csv_rows(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).expect("metrics.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let keep: Vec<usize> = (0..header.len()).filter(|&i| !TIMING.contains(&header[i])).collect();
    std::iter::once(header.join(","))
        .chain(lines.map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            assert_eq!(cells.len(), header.len(), "a complete row: {l}");
            keep.iter().map(|&i| cells[i]).collect::<Vec<_>>().join(",")
        }))
        .collect()
}

/// The final checkpoint's raw and EMA weights, exported with PyTorch names (parameter ids differ between processes,
/// values must not), as (name, raw bytes) per tensor.
fn final_weights(cwd: &Path, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let ckpt = dir.join("checkpoints/step-000000020.ckpt");
    let export = |ema: bool, out: &str| {
        let mut args = vec!["export", ckpt.to_str().expect("utf-8"), "--out", out];
        if ema {
            args.push("--ema");
        }
        let o = burnish(&args, cwd);
        assert!(o.status.success(), "{}", text(&o));
        let bytes = std::fs::read(cwd.join(out)).expect("exported");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        let mut tensors: Vec<(String, Vec<u8>)> =
            st.tensors().into_iter().map(|(n, v)| (format!("{out}:{n}"), v.data().to_vec())).collect();
        tensors.sort();
        tensors
    };
    [export(false, "raw"), export(true, "ema")].concat()
}

/// Asserts two runs' final weights are equal, naming the first tensor that differs.
fn assert_same_weights(a: &[(String, Vec<u8>)], b: &[(String, Vec<u8>)]) {
    assert_eq!(a.iter().map(|t| &t.0).collect::<Vec<_>>(), b.iter().map(|t| &t.0).collect::<Vec<_>>());
    for ((name, x), (_, y)) in a.iter().zip(b) {
        let differ = x.chunks_exact(4).zip(y.chunks_exact(4)).filter(|(p, q)| p != q).count();
        assert!(differ == 0 && x.len() == y.len(), "{name}: {differ} of {} values differ", x.len() / 4);
    }
}

/// Every step 1..=20 appears once among the step rows (rows with a loss) of `metrics.jsonl`.
fn assert_each_step_once(dir: &Path) {
    let steps: Vec<u64> = jsonl_rows(dir)
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(r).expect("json"))
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().expect("step"))
        .collect();
    assert_eq!(steps, (1..=20).collect::<Vec<_>>(), "each step logged once, in order");
}

#[test]
fn sigkill_at_random_moments_then_resume_gives_the_uninterrupted_result() {
    let tmp = setup();
    let cwd = tmp.path();
    let t0 = Instant::now();
    let reference = burnish(&["train", "r.toml", "--quiet", "--runs-dir", "reference"], cwd);
    assert!(reference.status.success(), "{}", text(&reference));
    let full = t0.elapsed();
    let ref_dir = the_run(&cwd.join("reference")).expect("reference run");

    let runs = cwd.join("crashed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let (mut kills, mut mid_write) = (0, 0);
    // Seeded random kill times within the first half of a run's length (a resumed run has less left to do); every
    // third attempt instead has its first checkpoint write stall half-way (in a FIFO) and is killed there.
    let finished = loop {
        let dir = the_run(&runs);
        let stall = kills % 3 == 2 && kills < 9;
        let done = checkpointed(&runs);
        let mut child = spawn(cwd, &runs, dir.as_deref());
        if kills >= 9 {
            break child.wait_with_output().expect("runs to the end");
        }
        if stall {
            let Some(stalled) = stall_next_checkpoint(cwd, &runs, done, &mut child, Duration::from_secs(120)) else {
                // Only a run killed after its last checkpoint and evaluation has no checkpoint left to write.
                assert!(child.try_wait().expect("try_wait").is_some(), "no checkpoint write began");
                break child.wait_with_output().expect("finished");
            };
            assert!(stalled.head.starts_with(b"burnish-ckpt-v"), "the child was writing a checkpoint");
            assert!(child.try_wait().expect("try_wait").is_none(), "the child waits in the middle of the write");
            mid_write += 1;
            kill9(child);
            drop(stalled);
        } else {
            let delay = full.mul_f64(rng.random_range(0.05..0.5));
            if wait_exit(&mut child, delay) {
                break child.wait_with_output().expect("finished");
            }
            kill9(child);
        }
        kills += 1;
    };
    assert!(finished.status.success(), "{}", text(&finished));
    assert!(kills >= 3 && mid_write >= 1, "{kills} kills, {mid_write} of them mid-write");
    let dir = the_run(&runs).expect("crashed run");
    assert_each_step_once(&dir);
    assert_eq!(jsonl_rows(&dir), jsonl_rows(&ref_dir), "metrics.jsonl");
    assert_eq!(csv_rows(&dir), csv_rows(&ref_dir), "metrics.csv");
    assert_same_weights(&final_weights(cwd, &dir), &final_weights(cwd, &ref_dir));
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .expect("checkpoints")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no temporary checkpoint files remain: {leftovers:?}");
}

/// Polls `probe` every millisecond until it gives a value or `limit` passes.
fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = probe() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// Waits up to `delay` for `child` to exit on its own; true if it did.
fn wait_exit(child: &mut Child, delay: Duration) -> bool {
    wait_for(delay, || child.try_wait().expect("try_wait")).is_some()
}

#[test]
fn a_full_disk_during_a_checkpoint_fails_cleanly_and_keeps_the_previous_one() {
    let tmp = setup();
    let cwd = tmp.path();
    let runs = cwd.join("runs");
    let child = spawn(cwd, &runs, None);
    // The second checkpoint's temporary file is a link to /dev/full, where every write fails with ENOSPC. It is
    // made once `recipe.toml` exists: the run folder is then created and cleared of crash leftovers.
    let dir = wait_for(Duration::from_secs(120), || the_run(&runs).filter(|d| d.join("recipe.toml").exists()))
        .expect("the run folder appears");
    std::os::unix::fs::symlink("/dev/full", temporary_path(&dir.join("checkpoints"), 10, child.id()))
        .expect("link to /dev/full");
    let out = child.wait_with_output().expect("runs");
    assert!(!out.status.success(), "a failed checkpoint is an error: {}", text(&out));
    let message = text(&out);
    assert!(message.contains("No space left on device") && message.contains("step-000000010.ckpt"), "{message}");
    let files: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .expect("checkpoints")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .collect();
    assert_eq!(files, vec!["step-000000005.ckpt".to_string()], "only the previous, complete checkpoint");
    let eval = burnish(&["eval", dir.join("checkpoints/step-000000005.ckpt").to_str().expect("utf-8")], cwd);
    assert!(eval.status.success(), "the previous checkpoint loads: {}", text(&eval));
}

#[test]
fn sigint_and_sigterm_checkpoint_and_exit_with_their_codes() {
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let tmp = setup();
        let cwd = tmp.path();
        let runs = cwd.join("runs");
        let child = spawn(cwd, &runs, None);
        // Once the first checkpoint exists the loop is under way.
        wait_for(Duration::from_secs(120), || {
            the_run(&runs).filter(|d| d.join("checkpoints/step-000000005.ckpt").exists())
        })
        .expect("a checkpoint appears");
        signal(&child, name);
        let out = child.wait_with_output().expect("exits");
        assert_eq!(out.status.code(), Some(code), "SIG{name}: {}", text(&out));
        let dir = the_run(&runs).expect("run folder");
        let s = summary(&dir);
        assert_eq!(s["signal"], format!("SIG{name}"));
        assert_eq!(s["interrupted"], true);
        let steps = s["steps"].as_u64().expect("steps");
        assert!(dir.join(format!("checkpoints/step-{steps:09}.ckpt")).exists(), "a checkpoint at the stop");
        let resumed = spawn(cwd, &runs, Some(&dir)).wait_with_output().expect("resumes");
        assert!(resumed.status.success(), "{}", text(&resumed));
        assert_each_step_once(&dir);
    }
}

#[test]
fn a_second_sigint_exits_at_once() {
    let tmp = setup();
    let cwd = tmp.path();
    let runs = cwd.join("runs");
    // The first checkpoint write stalls (in a FIFO), so the loop cannot act on the first signal: only the
    // immediate exit on the second one ends the process.
    let mut child = spawn(cwd, &runs, None);
    let stalled = stall_next_checkpoint(cwd, &runs, 0, &mut child, Duration::from_secs(120));
    let stalled = stalled.expect("the checkpoint write stalls");
    signal(&child, "INT");
    // Signals of one kind that arrive together are merged by the kernel: let the first be handled.
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().expect("try_wait").is_none(), "one signal waits for the checkpoint");
    signal(&child, "INT");
    assert!(wait_exit(&mut child, Duration::from_secs(30)), "the second signal ends the process");
    let out = child.wait_with_output().expect("exits");
    drop(stalled);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(!the_run(&runs).expect("run folder").join("summary.json").exists(), "it did not wait for the summary");
}

#[test]
fn a_diverging_run_stops_naming_the_step_and_keeps_only_finite_checkpoints() {
    let tmp = setup();
    let cwd = tmp.path();
    let out = burnish(
        &[
            "train",
            "r.toml",
            "--quiet",
            "--set",
            "optimizer.lr=1e8",
            "--set",
            "checkpoint.every=1",
            "--runs-dir",
            "runs",
        ],
        cwd,
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let message = text(&out);
    // Whichever overflows first is named: a stage's loss, or the weights and BatchNorm statistics after the update.
    let what = message.contains("the loss of stage `") || message.contains("the model state after the update");
    assert!(message.contains("training diverged at step ") && what, "{message}");
    assert!(message.contains("The last good checkpoint is "), "{message}");
    let dir = the_run(&cwd.join("runs")).expect("run folder");
    let s = summary(&dir);
    let step = s["diverged"]["step"].as_u64().expect("the divergence is recorded");
    assert!(step >= 2, "the first step starts from finite weights: {s}");
    let ckpts = burnish::run::checkpoints_in(&dir.join("checkpoints")).expect("list");
    assert!(!ckpts.is_empty());
    for c in ckpts {
        let name = c.file_name().expect("name").to_string_lossy().to_string();
        let at: u64 = name["step-".len()..name.len() - ".ckpt".len()].parse().expect("step");
        assert!(at < step, "{name} is from before the diverged step {step}");
        let o = burnish(&["export", c.to_str().expect("utf-8"), "--out", "w.safetensors"], cwd);
        assert!(o.status.success(), "{}", text(&o));
        let bytes = std::fs::read(cwd.join("w.safetensors")).expect("exported");
        let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        for (tname, view) in tensors.tensors() {
            if view.dtype() == safetensors::Dtype::F32 {
                let finite =
                    view.data().chunks_exact(4).all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite());
                assert!(finite, "{name}: {tname} holds a non-finite value");
            }
        }
    }
}

#[test]
fn skip_drops_non_finite_steps_and_gives_up_after_max_skipped_in_a_row() {
    let tmp = setup();
    let cwd = tmp.path();
    let args = [
        "train",
        "r.toml",
        "--quiet",
        "--runs-dir",
        "runs",
        "--set",
        "optimizer.lr=1e8",
        "--set",
        "train.on_nonfinite=\"skip\"",
        "--set",
        "train.max_skipped=3",
    ];
    let out = burnish(&args, cwd);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("(3 non-finite steps in a row)"), "{}", text(&out));
    let dir = the_run(&cwd.join("runs")).expect("run folder");
    assert_eq!(summary(&dir)["skipped_steps"], 3);
    let rows = common::metric_rows(&dir);
    let skipped: Vec<u64> = rows.iter().filter_map(|r| r["skipped_steps"].as_u64()).collect();
    assert_eq!(skipped.iter().rev().take(3).copied().collect::<Vec<_>>(), vec![3, 2, 1], "counted per step");
}
