//! `burnish train RECIPE`: runs the training loop and reports how it ended through the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::RecipeArgs;
use crate::recipe::Recipe;
use crate::run::{self, Outcome, RunOptions};

/// Arguments of `burnish train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    /// The recipe and its overrides.
    pub recipe: RecipeArgs,
    /// Continue the run in this folder from its latest checkpoint (give the same recipe and overrides).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Folder that holds run folders.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Stop with a checkpoint after this many steps (as Ctrl-C would, but exiting 0), e.g. to test resuming.
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
    /// No progress bar (logs still go to the run folder).
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    /// How many devices, and whose ascent direction.
    pub devices: DevicesArgs,
}

/// The data-parallel options of `train` and `bench` (docs/devices.md).
#[derive(Debug, Clone, clap::Args)]
pub struct DevicesArgs {
    /// Split every step's global batch over N devices (peers), averaging every gradient: CUDA devices 0..N-1 on the
    /// cuda build; on the CPU builds all N peers share the CPU.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub devices: u16,
    /// With --devices N > 1: SAM, ASAM, IAM-S and Algorithm 1 take their ascent direction from each device's own
    /// shard (m-sharpness with m = the per-device batch) instead of the global batch.
    #[arg(long)]
    pub per_device_ascent: bool,
}

impl DevicesArgs {
    /// Number of peers.
    pub fn count(&self) -> usize {
        usize::from(self.devices)
    }

    /// The ascent the options ask for.
    pub fn ascent(&self) -> crate::devices::Ascent {
        if self.per_device_ascent {
            crate::devices::Ascent::PerDevice
        } else {
            crate::devices::Ascent::Global
        }
    }
}

/// Runs `burnish train`: exit 0 when the run finished or reached `--stop-after`, 130/143 when SIGINT/SIGTERM
/// stopped it (after a checkpoint), 4 when it diverged, 1 on any other error.
pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    let r = match &args.resume {
        Some(dir) => {
            let saved = dir.join("recipe.toml");
            let text = std::fs::read_to_string(&saved).with_context(|| format!("cannot read {}", saved.display()))?;
            let given = args.recipe.load()?;
            let r = Recipe::from_str(&text, &saved.display().to_string(), &[])?;
            anyhow::ensure!(
                r == given,
                "{} differs from the recipe {} resolves to; resume with the recipe and --set options the run started with",
                saved.display(),
                args.recipe.recipe.display()
            );
            r
        }
        None => args.recipe.load()?,
    };
    run::signal::install()?;
    if !args.quiet {
        eprintln!("training on {}", crate::backend::describe());
    }
    let options = RunOptions {
        runs_dir: args.runs_dir.clone(),
        resume: args.resume.clone(),
        stop_after: args.stop_after,
        progress: !args.quiet,
        devices: args.devices.count(),
        ascent: args.devices.ascent(),
    };
    let s = run::train::<crate::backend::Train>(&r, &options, crate::backend::device())?;
    // Echoes of what the run folder already records: a closed stdout must not turn the run's outcome into an error.
    outln!("run folder: {}", s.run_dir.display()).ok();
    match s.outcome {
        Some(Outcome::Finished) | None => {
            outln!("steps={} wall_s={:.1}", s.steps, s.wall_s).ok();
            if s.fitted {
                outln!("training accuracy {:.4} reached schedule.stop_at_train_acc; the run is done", s.train_acc).ok();
            }
            outln!("test_acc_ema={:.4} test_acc={:.4}", s.test_acc_ema, s.test_acc).ok();
            Ok(ExitCode::SUCCESS)
        }
        Some(outcome) => {
            let how = match outcome {
                Outcome::Interrupted(sig) => format!("stopped by {}", sig.name()),
                _ => "stopped".to_string(),
            };
            outln!(
                "{how} at step {} of {} with a checkpoint; continue with --resume {}",
                s.steps,
                r.schedule.steps,
                s.run_dir.display()
            )
            .ok();
            Ok(match outcome {
                Outcome::Interrupted(sig) => ExitCode::from(sig.exit_code()),
                _ => ExitCode::SUCCESS,
            })
        }
    }
}
