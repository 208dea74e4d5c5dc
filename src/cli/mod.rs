//! The `burnish` command line: argument parsing (clap) and one function per command.

/// `println!` to stdout that returns the write's error instead of panicking, so that a closed pipe
/// (`burnish recipes | head`) ends the command quietly; [`main`] counts a broken pipe as success.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` to stdout that returns the write's error instead of panicking (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod analyze;
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
mod sweep;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::recipe::Recipe;

/// Semi- and self-supervised image training with Inconsistency-Aware Minimization (IAM), on Burn.
#[derive(Debug, Parser)]
#[command(name = "burnish", version, about, long_about = None)]
pub struct Cli {
    /// Threads for tensor math (rayon's pool; default: RAYON_NUM_THREADS, else one per core). To run seeds side
    /// by side on a small machine, give each run `--threads 1` (docs/benchmarks.md, "Training steps").
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
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
    Train(train::TrainArgs),
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
    /// Train a grid of overrides (`--grid KEY=V1,V2,…`, `--seeds N`), `--jobs` at a time, resumable; writes sweep.csv.
    Sweep(sweep::SweepArgs),
    /// Relate a sweep's measures (Ŝ_ρ, λ_max, SAM sharpness) to its runs' generalisation gap: τ, ρ, ψ and plots.
    Analyze(analyze::AnalyzeArgs),
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

/// Parses the process arguments, runs the command and turns errors into a message and an exit code: 1 for an
/// error, 4 for a diverged run (see `burnish train --help`).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let ran = set_threads(cli.threads).and_then(|()| run_command(cli.command));
    match ran {
        Ok(code) => code,
        // The reader of stdout has gone (`| head`): nothing more can be shown, which is no failure of the command.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<crate::run::Diverged>().is_some() {
                ExitCode::from(crate::run::DIVERGED_EXIT_CODE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader has closed it.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Sizes rayon's global pool, which flex and the kernels run on; it must happen before any tensor op.
fn set_threads(threads: Option<usize>) -> Result<()> {
    let Some(n) = threads else { return Ok(()) };
    anyhow::ensure!(n >= 1, "--threads must be at least 1 (got {n})");
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| anyhow::anyhow!("--threads {n}: cannot size the thread pool: {e}"))
}

fn run_command(command: Command) -> Result<ExitCode> {
    let uses_device = !matches!(
        command,
        Command::Check { .. }
            | Command::Sweep(_)
            | Command::Analyze(_)
            | Command::Recipes(_)
            | Command::Preview(_)
            | Command::Plot(_)
            | Command::Data(_)
    );
    if uses_device {
        crate::backend::check_device()?;
    }
    match command {
        Command::Train(args) => train::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Analyze(args) => analyze::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Check { recipe } => {
            let r = recipe.load()?;
            out!("{}", r.to_toml())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => eval::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Probe(args) => probe::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Recipes(args) => recipes::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Measure(args) => measure::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Preview(args) => preview::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Plot(args) => plot::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Export(args) => export::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Data(args) => data::run(&args).map(|()| ExitCode::SUCCESS),
    }
}
