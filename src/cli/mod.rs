//! The `burnish` command line: argument parsing (clap) and one function per command.

mod bench;
mod ckpt;
mod data;
mod eval;
mod export;
mod measure;
mod plot;
mod preview;
mod probe;
mod recipes;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::recipe::Recipe;
use crate::run::{self, RunOptions};

/// Semi- and self-supervised image training with Inconsistency-Aware Minimization (IAM), on Burn.
#[derive(Debug, Parser)]
#[command(name = "burnish", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Arguments every command that reads a recipe takes.
#[derive(Debug, Clone, clap::Args)]
pub struct RecipeArgs {
    /// The recipe (a TOML file, e.g. recipes/quickstart.toml).
    pub recipe: PathBuf,
    /// Override a recipe key, e.g. `--set data.labels_per_class=25 --set stage.1.beta=10` (stages are 0-based).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl RecipeArgs {
    fn load(&self) -> Result<Recipe> {
        Ok(Recipe::from_file(&self.recipe, &self.overrides)?)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a recipe: writes runs/<name>-<timestamp>/ with metrics, checkpoints and summary.json.
    Train {
        #[command(flatten)]
        /// The recipe and its overrides.
        recipe: RecipeArgs,
        /// Continue the run in this folder from its latest checkpoint (give the same recipe and overrides).
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// Folder that holds run folders.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// Stop with a checkpoint after this many steps (as Ctrl-C would), e.g. to test resuming.
        #[arg(long, value_name = "N")]
        stop_after: Option<u64>,
        /// No progress bar (logs still go to the run folder).
        #[arg(long)]
        quiet: bool,
    },
    /// Validate a recipe and print it resolved, every default filled in.
    Check {
        #[command(flatten)]
        /// The recipe and its overrides.
        recipe: RecipeArgs,
    },
    /// Test accuracy of a checkpoint's raw and EMA weights.
    Eval(eval::EvalArgs),
    /// Linear-probe and kNN accuracy of a checkpoint's frozen encoder (SimCLR evaluation).
    Probe(probe::ProbeArgs),
    /// List the shipped recipes with a one-line description each.
    Recipes(recipes::RecipesArgs),
    /// Measure the local inconsistency Ŝ_ρ of a checkpoint (Algorithm 1, R restarts × K steps).
    Measure(measure::MeasureArgs),
    /// Time training steps of a recipe: with the data pipeline, and on one reused batch.
    Bench(bench::BenchArgs),
    /// Write a PNG grid of training images and the augmented views the recipe's pipeline makes of them.
    Preview(preview::PreviewArgs),
    /// Draw PNG figures (loss, accuracy, mask rate, Ŝ_ρ, learning rate) of a run's metrics.jsonl.
    Plot(plot::PlotArgs),
    /// Write a checkpoint's weights as a safetensors file with PyTorch-style names.
    Export(export::ExportArgs),
    /// Download the public data sets (`data get NAME`) and show where they are (`data list`).
    Data(data::DataArgs),
}

/// Parses the process arguments, runs the command and turns errors into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run_command(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(command: Command) -> Result<()> {
    let uses_device = !matches!(
        command,
        Command::Check { .. } | Command::Recipes(_) | Command::Preview(_) | Command::Plot(_) | Command::Data(_)
    );
    if uses_device {
        crate::backend::check_device()?;
    }
    match command {
        Command::Train { recipe, resume, runs_dir, stop_after, quiet } => {
            let r = match &resume {
                Some(dir) => {
                    let saved = dir.join("recipe.toml");
                    let text =
                        std::fs::read_to_string(&saved).with_context(|| format!("cannot read {}", saved.display()))?;
                    let given = recipe.load()?;
                    let r = Recipe::from_str(&text, &saved.display().to_string(), &[])?;
                    anyhow::ensure!(
                        r == given,
                        "{} differs from the recipe {} resolves to; resume with the recipe and --set options the run started with",
                        saved.display(),
                        recipe.recipe.display()
                    );
                    r
                }
                None => recipe.load()?,
            };
            ctrlc::set_handler(|| run::INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed))
                .context("cannot install the Ctrl-C handler")?;
            let options = RunOptions { runs_dir, resume, stop_after, progress: !quiet };
            let s = run::train::<crate::backend::Train>(&r, &options, crate::backend::device())?;
            println!("run folder: {}", s.run_dir.display());
            if s.interrupted {
                println!(
                    "stopped at step {} of {}; continue with --resume {}",
                    s.steps,
                    r.schedule.steps,
                    s.run_dir.display()
                );
            } else {
                println!("steps={} wall_s={:.1}", s.steps, s.wall_s);
                println!("test_acc_ema={:.4} test_acc={:.4}", s.test_acc_ema, s.test_acc);
            }
            Ok(())
        }
        Command::Check { recipe } => {
            let r = recipe.load()?;
            print!("{}", r.to_toml());
            Ok(())
        }
        Command::Eval(args) => eval::run(&args),
        Command::Probe(args) => probe::run(&args),
        Command::Recipes(args) => recipes::run(&args),
        Command::Measure(args) => measure::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Preview(args) => preview::run(&args),
        Command::Plot(args) => plot::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Data(args) => data::run(&args),
    }
}
