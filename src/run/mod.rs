//! A training run: the loop over steps with its folder (`folder.rs`), metrics files (`log.rs`), evaluations
//! (`eval.rs`), checkpoints, progress bar, divergence policy and interruption by signal (`signal.rs`), all exact
//! under `--resume`.

mod eval;
mod folder;
mod log;
mod progress;
pub mod signal;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;

pub use eval::Evaluator;
pub use folder::{checkpoints_in, RunFolder};
pub use log::{MetricsLog, StepRow, EVAL_COLUMNS, TIMING_COLUMNS};
pub use signal::Signal;

use crate::backend::TrainBackend;
use crate::pipeline::Pipeline;
use crate::plan::{self, DataPlan};
use crate::probe::ProbeResult;
use crate::recipe::{NonFinitePolicy, Recipe};
use crate::train::{StepReport, Trainer};
use progress::Progress;

/// How a run is started.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Folder under which `<name>-<timestamp>/` is created (default `runs`).
    pub runs_dir: PathBuf,
    /// Continue the run in this folder from its latest checkpoint (from step 0 if it has none yet).
    pub resume: Option<PathBuf>,
    /// Stop (with a checkpoint, as a signal does) once this many steps are done; the schedule is unchanged.
    pub stop_after: Option<u64>,
    /// Draw a progress bar.
    pub progress: bool,
}

/// How an invocation of the loop ended (divergence is an error: [`Diverged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every step of the schedule is done.
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
    let resolved = recipe.to_toml();
    let folder = match &options.resume {
        Some(dir) => RunFolder::open(dir.clone())?,
        None => RunFolder::create(&options.runs_dir, &recipe.name, &resolved)?,
    };
    let data = plan::data(recipe)?;
    let mut trainer = trainer::<B>(recipe, &data, device.clone())?;
    if options.resume.is_some() {
        resume(&mut trainer, &folder, &resolved)?;
    }
    let evaluator = Evaluator::new(recipe, &data, device)?;
    let (start, total) = (trainer.step(), recipe.schedule.steps);
    let stop_at = options.stop_after.map_or(total, |s| s.min(total));
    let mut log = MetricsLog::open(&folder.dir, start, &resolved)?;
    let bar = Progress::new(options.progress, total, start, &trainer.objective.stage_names());
    let mut pipeline = Pipeline::new(
        data.train.clone(),
        data.norm.clone(),
        data.streams.clone(),
        &plan::pipeline_config(recipe, start),
    )?;
    let mut summary = Summary::new(recipe, &folder, log.skipped_steps());
    let mut in_a_row = 0;
    let mut measured = None;
    while trainer.step() < stop_at {
        let t0 = Instant::now();
        let batch = pipeline.next_batch()?;
        let waited = t0.elapsed().as_secs_f64();
        let images: usize = batch.streams.iter().map(|s| s.views.iter().map(|v| v.shape[0]).sum::<usize>()).sum();
        let report = trainer.train_step(&batch).map_err(anyhow::Error::msg)?;
        let images_per_s = images as f64 / t0.elapsed().as_secs_f64();
        let done = trainer.step();
        in_a_row = if report.nonfinite.is_some() { in_a_row + 1 } else { 0 };
        summary.skipped_steps += u64::from(report.nonfinite.is_some());
        let every = |n: u64| n > 0 && done % n == 0;
        let test =
            if every(recipe.eval.every) && done < total { Some(evaluator.test_accuracy(&trainer)?) } else { None };
        summary.record_test(test);
        let skipped_steps = summary.skipped_steps;
        log.step(&StepRow { report: &report, images_per_s, data_wait_s: waited, skipped_steps, test })?;
        if let Some(cause) = &report.nonfinite {
            let give_up = recipe.train.on_nonfinite == NonFinitePolicy::Stop || in_a_row >= recipe.train.max_skipped;
            if give_up {
                bar.finish();
                return Err(diverge(&folder, &mut summary, &report, cause, in_a_row, started)?.into());
            }
        }
        if every(recipe.eval.probe_every) {
            let r = evaluator.probe(&trainer)?;
            log.extra(done, &[("probe_acc", r.linear_acc), ("knn_acc", r.knn_acc)])?;
            summary.record_probe(r);
        }
        if every(recipe.eval.measure_every) {
            if let Some(s) = evaluator.inconsistency(&trainer) {
                log.extra(done, &[("s_rho_measured", s)])?;
                measured = Some(s);
            }
        }
        bar.update(&report, images_per_s, measured);
        if every(recipe.checkpoint.every) && done < total {
            save(&trainer, &folder, &resolved, recipe.checkpoint.keep)?;
        }
        if signal::received().is_some() {
            break;
        }
    }
    save(&trainer, &folder, &resolved, recipe.checkpoint.keep)?;
    bar.finish();
    let outcome = match signal::received() {
        Some(s) => Outcome::Interrupted(s),
        None if trainer.step() < total => Outcome::Paused,
        None => Outcome::Finished,
    };
    if outcome == Outcome::Finished {
        let (raw, ema) = evaluator.test_accuracy(&trainer)?;
        log.extra(trainer.step(), &[(EVAL_COLUMNS[0], raw), (EVAL_COLUMNS[1], ema)])?;
        summary.record_test(Some((raw, ema)));
        if recipe.eval.probe_every > 0 && !total.is_multiple_of(recipe.eval.probe_every) {
            let r = evaluator.probe(&trainer)?;
            log.extra(trainer.step(), &[("probe_acc", r.linear_acc), ("knn_acc", r.knn_acc)])?;
            summary.record_probe(r);
        }
    }
    summary.finish(trainer.step(), outcome, started);
    folder.write_summary(&summary)?;
    Ok(summary)
}

/// A trainer for `recipe` at step 0, with the recipe's seeded initial weights.
fn trainer<B: TrainBackend>(recipe: &Recipe, data: &DataPlan, device: B::Device) -> Result<Trainer<B>> {
    let (channels, _, _) = data.dataset.shape();
    let net = plan::net(recipe, channels, data.dataset.num_classes);
    let model = Trainer::<B>::init_model(&net, recipe.seed, &device);
    let objective = plan::objective::<B>(recipe).map_err(anyhow::Error::msg)?;
    Ok(Trainer::new(model, objective, plan::update_rule(recipe), plan::train_settings(recipe), device))
}

/// Loads the folder's latest checkpoint into `trainer`; a run that crashed before its first checkpoint starts again
/// from step 0, which its seeded initialisation makes the same run.
fn resume<B: TrainBackend>(trainer: &mut Trainer<B>, folder: &RunFolder, resolved: &str) -> Result<()> {
    let Some(latest) = folder.latest_checkpoint()? else {
        return Ok(());
    };
    let saved = trainer.load(&latest)?;
    if saved != resolved {
        bail!(
            "{} was written by a different recipe than the one given (compare with {}/recipe.toml)",
            latest.display(),
            folder.dir.display()
        );
    }
    Ok(())
}

fn save<B: TrainBackend>(trainer: &Trainer<B>, folder: &RunFolder, recipe: &str, keep: usize) -> Result<()> {
    trainer.save(&folder.checkpoint_path(trainer.step()), recipe)?;
    folder.prune(keep)
}

/// Records a divergence in `summary.json` and builds the error that ends the run.
fn diverge(
    folder: &RunFolder,
    summary: &mut Summary,
    report: &StepReport,
    cause: &str,
    in_a_row: u64,
    started: Instant,
) -> Result<Diverged> {
    let step = report.step + 1;
    summary.diverged = Some(Divergence { step, cause: cause.to_string() });
    summary.finish(report.step, Outcome::Paused, started);
    folder.write_summary(summary)?;
    let last = match folder.latest_checkpoint()? {
        Some(c) => format!("The last good checkpoint is {}.", c.display()),
        None => "No checkpoint was written before it.".to_string(),
    };
    let skips = if in_a_row > 1 { format!(" ({in_a_row} non-finite steps in a row)") } else { String::new() };
    Ok(Diverged { step, cause: cause.to_string(), skips, last })
}

impl Summary {
    fn new(recipe: &Recipe, folder: &RunFolder, skipped_steps: u64) -> Self {
        Summary {
            name: recipe.name.clone(),
            steps: 0,
            interrupted: false,
            signal: None,
            diverged: None,
            skipped_steps,
            test_acc: f64::NAN,
            test_acc_ema: f64::NAN,
            probe_acc: None,
            knn_acc: None,
            wall_s: 0.0,
            run_dir: folder.dir.clone(),
            outcome: None,
        }
    }

    fn record_test(&mut self, test: Option<(f64, f64)>) {
        if let Some((raw, ema)) = test {
            (self.test_acc, self.test_acc_ema) = (raw, ema);
        }
    }

    fn record_probe(&mut self, r: ProbeResult) {
        (self.probe_acc, self.knn_acc) = (Some(r.linear_acc), Some(r.knn_acc));
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
