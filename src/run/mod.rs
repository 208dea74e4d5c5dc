//! A training run: the loop over steps with its folder (`folder.rs`), metrics files (`log.rs`), evaluations
//! (`eval.rs`), progress bar (`progress.rs`), checkpoints and divergence policy (`session.rs`, the units the loop
//! calls) and interruption by signal (`signal.rs`), all exact under `--resume`.

mod eval;
mod folder;
mod log;
mod progress;
mod session;
pub mod signal;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

pub use eval::{Evaluated, Evaluator};
pub use folder::{checkpoints_in, replace_file, RunFolder};
pub use log::{MetricsLog, StepRow, EVAL_COLUMNS, TIMING_COLUMNS};
pub use signal::Signal;

use crate::backend::TrainBackend;
use crate::plan;
use crate::recipe::Recipe;
use session::Session;

/// How a run is started.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Folder under which `<name>-<timestamp>/` is created (default `runs`).
    pub runs_dir: PathBuf,
    /// Continue the run in this folder from its newest good checkpoint (from step 0 if it has none yet).
    pub resume: Option<PathBuf>,
    /// Stop (with a checkpoint, as a signal does) once this many steps are done; the schedule is unchanged.
    pub stop_after: Option<u64>,
    /// Draw a progress bar.
    pub progress: bool,
    /// Peers (devices) the global batch is split over; 0 and 1 both mean one (docs/devices.md).
    pub devices: usize,
    /// Whose ascent direction the perturbed rules use on several devices.
    pub ascent: crate::devices::Ascent,
}

/// How an invocation of the loop ended (divergence is an error: [`Diverged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every step of the schedule is done, or the run reached `schedule.stop_at_train_acc`.
    Finished,
    /// `--stop-after` was reached.
    Paused,
    /// A signal asked the run to stop.
    Interrupted(Signal),
}

/// What `summary.json` holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Recipe name.
    pub name: String,
    /// Steps taken.
    pub steps: u64,
    /// Whether the run stopped before its last step (signal, `--stop-after` or divergence).
    pub interrupted: bool,
    /// Whether the run finished before `schedule.steps` because its training accuracy reached
    /// `schedule.stop_at_train_acc`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fitted: bool,
    /// The signal that stopped the run, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<&'static str>,
    /// Where and why the run diverged, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diverged: Option<Divergence>,
    /// Steps dropped for non-finite values (`train.on_nonfinite = "skip"`).
    pub skipped_steps: u64,
    /// Test accuracy of the raw model (of the last evaluation when the run stopped early; NaN if none).
    pub test_acc: f64,
    /// Test accuracy of the EMA model (equal to the raw one without EMA).
    pub test_acc_ema: f64,
    /// Mean test cross-entropy of the evaluation model (the EMA when there is one).
    pub test_loss: f64,
    /// Accuracy of the evaluation model on `eval.train_images` labelled training images.
    pub train_acc: f64,
    /// Its mean cross-entropy on them.
    pub train_loss: f64,
    /// The generalisation gap in accuracy: `train_acc − test_acc_ema`.
    pub gap_acc: f64,
    /// The generalisation gap in loss: `test_loss − train_loss`.
    pub gap_loss: f64,
    /// Linear-probe accuracy of the final encoder (only with `eval.probe_every > 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_acc: Option<f64>,
    /// kNN accuracy of the final encoder (only with `eval.probe_every > 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knn_acc: Option<f64>,
    /// Wall time of this invocation in seconds.
    pub wall_s: f64,
    /// The run folder.
    pub run_dir: PathBuf,
    /// How this invocation ended.
    #[serde(skip)]
    pub outcome: Option<Outcome>,
}

/// Where a run diverged.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Divergence {
    /// The step (1-based, as in `metrics.jsonl`) whose values were not finite.
    pub step: u64,
    /// What was not finite.
    pub cause: String,
}

/// The error of a run stopped by a non-finite step (after `summary.json` recorded it); no checkpoint holds the
/// diverged state.
#[derive(Debug, thiserror::Error)]
#[error(
    "training diverged at step {step}: {cause} is not finite{skips}; the update was not applied and no checkpoint \
     of it was written. {last}"
)]
pub struct Diverged {
    /// The step (1-based) that diverged.
    pub step: u64,
    /// What was not finite.
    pub cause: String,
    /// How many steps in a row were dropped (with `skip`), as text.
    pub skips: String,
    /// Where the last good state is, as a sentence.
    pub last: String,
}

/// The exit code of a diverged run (1 is any other error, 130/143 an interruption by SIGINT/SIGTERM).
pub const DIVERGED_EXIT_CODE: u8 = 4;

/// Trains `recipe` on `device`; returns the summary also written to `summary.json`.
pub fn train<B: TrainBackend>(recipe: &Recipe, options: &RunOptions, device: B::Device) -> Result<Summary> {
    let started = Instant::now();
    // Before the run folder exists: a refused run leaves nothing behind.
    crate::devices::check_recipe(recipe, options.devices.max(1))?;
    let resolved = recipe.to_toml();
    let folder = match &options.resume {
        Some(dir) => RunFolder::open(dir.clone())?,
        None => RunFolder::create(&options.runs_dir, &recipe.name, &resolved)?,
    };
    let data = plan::data(recipe)?;
    let mut run = Session::<B>::start(recipe, &resolved, options, folder, &data, device, started)?;
    let total = recipe.schedule.steps;
    let stop_at = options.stop_after.map_or(total, |s| s.min(total));
    while run.done() < stop_at && !run.ended() {
        let step = run.take_step()?;
        let test = run.test_on_schedule()?;
        run.log_step(&step, test)?;
        run.stop_if_diverged(&step)?;
        run.probe_and_measure_on_schedule()?;
        run.show(&step);
        run.checkpoint_on_schedule()?;
        if signal::received().is_some() {
            break;
        }
    }
    run.finish()
}

/// Whether a schedule of one event every `every` steps (0: never) has one after `done` steps.
fn due(every: u64, done: u64) -> bool {
    every > 0 && done.is_multiple_of(every)
}

impl Summary {
    fn new(recipe: &Recipe, folder: &RunFolder, skipped_steps: u64) -> Self {
        Summary {
            name: recipe.name.clone(),
            steps: 0,
            interrupted: false,
            fitted: false,
            signal: None,
            diverged: None,
            skipped_steps,
            test_acc: f64::NAN,
            test_acc_ema: f64::NAN,
            test_loss: f64::NAN,
            train_acc: f64::NAN,
            train_loss: f64::NAN,
            gap_acc: f64::NAN,
            gap_loss: f64::NAN,
            probe_acc: None,
            knn_acc: None,
            wall_s: 0.0,
            run_dir: folder.dir.clone(),
            outcome: None,
        }
    }

    fn record_test(&mut self, test: Option<Evaluated>) {
        if let Some(t) = test {
            (self.test_acc, self.test_acc_ema, self.test_loss) = (t.test_acc, t.test_acc_ema, t.test_loss);
            (self.train_acc, self.train_loss) = (t.train_acc, t.train_loss);
            (self.gap_acc, self.gap_loss) = (t.train_acc - t.test_acc_ema, t.test_loss - t.train_loss);
        }
    }

    fn record_probe(&mut self, linear_acc: f64, knn_acc: f64) {
        (self.probe_acc, self.knn_acc) = (Some(linear_acc), Some(knn_acc));
    }

    fn finish(&mut self, steps: u64, outcome: Outcome, started: Instant) {
        self.steps = steps;
        self.interrupted = outcome != Outcome::Finished;
        self.signal = match outcome {
            Outcome::Interrupted(s) => Some(s.name()),
            _ => None,
        };
        self.outcome = Some(outcome);
        self.wall_s = started.elapsed().as_secs_f64();
    }
}
