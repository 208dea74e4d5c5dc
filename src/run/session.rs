//! One invocation of a run's loop, cut into the units [`super::train`] calls in order: a step, the evaluations it
//! is due, its log row, the divergence policy, the checkpoint it is due, and the finish.

use std::time::Instant;

use anyhow::{bail, Result};

use super::progress::Progress;
use super::{
    due, signal, Diverged, Divergence, Evaluated, Evaluator, MetricsLog, Outcome, RunFolder, RunOptions, StepRow,
    Summary,
};
use crate::backend::TrainBackend;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::devices::DataParallel;
use crate::pipeline::Pipeline;
use crate::plan::{self, DataPlan};
use crate::probe::ProbeResult;
use crate::recipe::{NonFinitePolicy, Recipe};
use crate::train::{StepReport, Trainer};

/// A step just taken, with what its log row and the bar add to its report.
pub(super) struct Taken {
    report: StepReport,
    images_per_s: f64,
    data_wait_s: f64,
}

/// A run's state while its loop goes: what it trains, what it measures and where everything is written.
pub(super) struct Session<'a, B: TrainBackend> {
    recipe: &'a Recipe,
    /// The resolved recipe: stored in every checkpoint, compared on resume.
    resolved: &'a str,
    folder: RunFolder,
    trainer: Trainer<B>,
    /// The other peers, on several devices: `trainer` is then the lead peer's (docs/devices.md).
    group: Option<DataParallel<B>>,
    evaluator: Evaluator<'a, B>,
    pipeline: Pipeline,
    log: MetricsLog,
    progress: Progress,
    summary: Summary,
    /// Non-finite steps in a row, for `train.max_skipped`.
    in_a_row: u64,
    /// The latest Ŝ_ρ of the fixed batch, shown while the objective reports none of its own.
    measured: Option<f64>,
    /// Whether an evaluation found the training accuracy at `schedule.stop_at_train_acc`: the run is done.
    fitted: bool,
    /// Whether `--resume` found the run already ended (every step done, or fitted) with its final evaluation logged:
    /// then nothing is trained, evaluated or written again but the summary.
    ended_before: bool,
    started: Instant,
}

impl<'a, B: TrainBackend> Session<'a, B>
where
    Trainer<B>: Send + 'static,
{
    /// Builds the trainer (from the folder's newest good checkpoint with `--resume`), the evaluations, the metrics
    /// files cut back to that checkpoint, the bar and the pipeline at the step the run continues from.
    pub(super) fn start(
        recipe: &'a Recipe,
        resolved: &'a str,
        options: &RunOptions,
        folder: RunFolder,
        data: &'a DataPlan,
        device: B::Device,
        started: Instant,
    ) -> Result<Self> {
        let mut lead = trainer::<B>(recipe, data, device.clone())?;
        if options.resume.is_some() {
            resume(&mut lead, &folder, resolved)?;
        }
        let group = match options.devices {
            0 | 1 => None,
            n => Some(DataParallel::around(&lead, n, options.ascent, |d| trainer::<B>(recipe, data, d))?),
        };
        let evaluator = Evaluator::new(recipe, data, device)?;
        let start = lead.step();
        let log = MetricsLog::open(&folder.dir, start, resolved)?;
        let stages = lead.objective.stage_names();
        let progress = Progress::new(options.progress, recipe.schedule.steps, start, &stages);
        let pipeline = Pipeline::new(
            data.train.clone(),
            data.norm.clone(),
            data.streams.clone(),
            &plan::pipeline_config(recipe, start),
        )?;
        let mut summary = Summary::new(recipe, &folder, log.skipped_steps());
        let logged = log.evaluation_at_start().filter(|_| options.resume.is_some());
        let fitted = logged.is_some_and(|t| fits(recipe, &t));
        let ended_before = logged.is_some() && (fitted || start >= recipe.schedule.steps);
        if ended_before {
            summary.record_test(logged);
            if let Some((linear, knn)) = log.probe_at_start() {
                summary.record_probe(linear, knn);
            }
        }
        Ok(Self {
            recipe,
            resolved,
            folder,
            trainer: lead,
            group,
            evaluator,
            pipeline,
            log,
            progress,
            summary,
            in_a_row: 0,
            measured: None,
            fitted,
            ended_before,
            started,
        })
    }

    /// Steps done so far.
    pub(super) fn done(&self) -> u64 {
        self.trainer.step()
    }

    /// Takes the next step, timing it and counting it when it was dropped for non-finite values.
    pub(super) fn take_step(&mut self) -> Result<Taken> {
        let t0 = Instant::now();
        let batch = self.pipeline.next_batch()?;
        let data_wait_s = t0.elapsed().as_secs_f64();
        let images: usize = batch.streams.iter().map(|s| s.views.iter().map(|v| v.shape[0]).sum::<usize>()).sum();
        let report = match &mut self.group {
            Some(group) => group.train_step(&mut self.trainer, &batch)?,
            None => self.trainer.train_step(&batch).map_err(anyhow::Error::msg)?,
        };
        let images_per_s = images as f64 / t0.elapsed().as_secs_f64();
        let dropped = report.nonfinite.is_some();
        self.in_a_row = if dropped { self.in_a_row + 1 } else { 0 };
        self.summary.skipped_steps += u64::from(dropped);
        Ok(Taken { report, images_per_s, data_wait_s })
    }

    /// The test accuracy the schedule asks for after this step, kept for the summary.
    pub(super) fn test_on_schedule(&mut self) -> Result<Option<Evaluated>> {
        let test = self.evaluator.scheduled_test(&self.trainer)?;
        self.summary.record_test(test);
        self.fitted |= test.is_some_and(|t| fits(self.recipe, &t));
        Ok(test)
    }

    /// Whether the run takes no further step: it reached `schedule.stop_at_train_acc`, or `--resume` found it
    /// already ended.
    pub(super) fn ended(&self) -> bool {
        self.fitted || self.ended_before
    }

    /// Appends the step's row (with its test accuracy, if any) to the metrics files.
    pub(super) fn log_step(&mut self, step: &Taken, test: Option<Evaluated>) -> Result<()> {
        self.log.step(&StepRow {
            report: &step.report,
            images_per_s: step.images_per_s,
            data_wait_s: step.data_wait_s,
            skipped_steps: self.summary.skipped_steps,
            test,
        })
    }

    /// Ends the run with [`Diverged`] (after `summary.json` records it) when the step was not finite and the
    /// recipe's policy does not allow another dropped step.
    pub(super) fn stop_if_diverged(&mut self, step: &Taken) -> Result<()> {
        let Some(cause) = &step.report.nonfinite else {
            return Ok(());
        };
        let train = &self.recipe.train;
        if train.on_nonfinite != NonFinitePolicy::Stop && self.in_a_row < train.max_skipped {
            return Ok(());
        }
        self.progress.finish();
        self.summary.diverged = Some(Divergence { step: step.report.step + 1, cause: cause.clone() });
        self.summary.finish(step.report.step, Outcome::Paused, self.started);
        self.folder.write_summary(&self.summary)?;
        let last = match self.folder.latest_checkpoint()? {
            Some(c) => format!("The last good checkpoint is {}.", c.display()),
            None => "No checkpoint was written before it.".to_string(),
        };
        let in_a_row = self.in_a_row;
        let skips = if in_a_row > 1 { format!(" ({in_a_row} non-finite steps in a row)") } else { String::new() };
        Err(Diverged { step: step.report.step + 1, cause: cause.clone(), skips, last }.into())
    }

    /// Runs and logs the probe and the Ŝ_ρ measurement the schedule asks for after this step.
    pub(super) fn probe_and_measure_on_schedule(&mut self) -> Result<()> {
        if let Some(r) = self.evaluator.scheduled_probe(&self.trainer)? {
            self.log_probe(r)?;
        }
        if let Some(s) = self.evaluator.scheduled_inconsistency(&self.trainer) {
            self.log.extra(self.done(), &[("s_rho_measured", s)])?;
            self.measured = Some(s);
        }
        Ok(())
    }

    /// Shows the step on the progress bar.
    pub(super) fn show(&self, step: &Taken) {
        self.progress.update(&step.report, step.images_per_s, self.measured);
    }

    /// Writes the checkpoint the schedule asks for after this step (the last step's is the finish's).
    pub(super) fn checkpoint_on_schedule(&self) -> Result<()> {
        if due(self.recipe.checkpoint.every, self.done()) && self.done() < self.recipe.schedule.steps {
            self.save()?;
        }
        Ok(())
    }

    /// Writes the final checkpoint and, when the schedule is done, the final test accuracy and probe; then
    /// `summary.json`.
    pub(super) fn finish(mut self) -> Result<Summary> {
        if !self.ended_before {
            self.save()?;
        }
        self.progress.finish();
        let outcome = match signal::received() {
            Some(s) => Outcome::Interrupted(s),
            None if self.done() < self.recipe.schedule.steps && !self.fitted => Outcome::Paused,
            None => Outcome::Finished,
        };
        if outcome == Outcome::Finished && !self.ended_before {
            // A fitted run ends right after the evaluation that found it fit, of these same weights: that one is
            // already logged and in the summary.
            if !self.fitted {
                let test = self.evaluator.test_accuracy(&self.trainer)?;
                self.log.extra(self.done(), &test.columns())?;
                self.summary.record_test(Some(test));
            }
            if let Some(r) = self.evaluator.final_probe(&self.trainer)? {
                self.log_probe(r)?;
            }
        }
        self.summary.fitted = self.fitted && outcome == Outcome::Finished;
        self.summary.finish(self.done(), outcome, self.started);
        self.folder.write_summary(&self.summary)?;
        Ok(self.summary)
    }

    fn log_probe(&mut self, r: ProbeResult) -> Result<()> {
        self.log.extra(self.done(), &[("probe_acc", r.linear_acc), ("knn_acc", r.knn_acc)])?;
        self.summary.record_probe(r.linear_acc, r.knn_acc);
        Ok(())
    }

    fn save(&self) -> Result<()> {
        self.trainer.save(&self.folder.checkpoint_path(self.done()), self.resolved)?;
        self.folder.prune(self.recipe.checkpoint.keep)
    }
}

/// Whether an evaluation reached the recipe's `schedule.stop_at_train_acc`.
fn fits(recipe: &Recipe, t: &Evaluated) -> bool {
    recipe.schedule.stop_at_train_acc.is_some_and(|target| t.train_acc >= target)
}

/// A trainer for `recipe` at step 0, with the recipe's seeded initial weights.
fn trainer<B: TrainBackend>(recipe: &Recipe, data: &DataPlan, device: B::Device) -> Result<Trainer<B>> {
    let (channels, _, _) = data.dataset.shape();
    let net = plan::net(recipe, channels, data.dataset.num_classes);
    let model = Trainer::<B>::init_model(&net, recipe.seed, &device);
    let objective = plan::objective::<B>(recipe).map_err(anyhow::Error::msg)?;
    Ok(Trainer::new(model, objective, plan::update_rule(recipe), plan::train_settings(recipe), device))
}

/// Loads the folder's newest good checkpoint into `trainer`: a corrupt one (it fails a checksum, is cut short, ...)
/// is skipped for the next older, with a line on stderr naming it and why. A run that crashed before its first
/// checkpoint starts again from step 0, which its seeded initialisation makes the same run; a folder whose every
/// checkpoint is corrupt is an error naming them, never a silent restart.
fn resume<B: TrainBackend>(trainer: &mut Trainer<B>, folder: &RunFolder, resolved: &str) -> Result<()> {
    let mut corrupt = Vec::new();
    for path in folder.checkpoints()?.iter().rev() {
        let saved = match Checkpoint::read(path) {
            Ok(saved) => saved,
            Err(e @ CheckpointError::Format { .. }) => {
                eprintln!("skipping {e}; trying the next older checkpoint");
                corrupt.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if saved.recipe != resolved {
            bail!(
                "{} was written by a different recipe than the one given (compare with {}/recipe.toml)",
                path.display(),
                folder.dir.display()
            );
        }
        trainer.restore(&saved).map_err(|e| anyhow::anyhow!("checkpoint {}: {e}", path.display()))?;
        if !corrupt.is_empty() {
            eprintln!("resuming from {} (step {})", path.display(), saved.step);
        }
        return Ok(());
    }
    if !corrupt.is_empty() {
        bail!(
            "no checkpoint in {} can be loaded:\n  {}\nRemove the corrupt files to train the run again from step 0.",
            folder.dir.join("checkpoints").display(),
            corrupt.join("\n  ")
        );
    }
    Ok(())
}
