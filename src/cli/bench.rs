//! `burnish bench RECIPE --steps N`: median training-step time, with the data pipeline and on one reused batch.

use std::time::Instant;

use anyhow::Result;

use super::RecipeArgs;
use crate::backend::{device, Train, NAME};
use crate::pipeline::Pipeline;
use crate::plan;
use crate::train::Trainer;

/// Arguments of `burnish bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    /// The recipe and its overrides.
    pub recipe: RecipeArgs,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps before each measurement.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2] * 1e3
    } else {
        (v[n / 2 - 1] + v[n / 2]) * 0.5e3
    }
}

/// Peak resident set size of this process in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs `burnish bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    anyhow::ensure!(args.steps >= 1, "--steps must be at least 1");
    let recipe = args.recipe.load()?;
    let data = plan::data(&recipe)?;
    let (channels, _, _) = data.dataset.shape();
    let dev = device();
    let model =
        Trainer::<Train>::init_model(&plan::net(&recipe, channels, data.dataset.num_classes), recipe.seed, &dev);
    let objective = plan::objective::<Train>(&recipe).map_err(anyhow::Error::msg)?;
    let mut trainer = Trainer::new(model, objective, plan::update_rule(&recipe), plan::train_settings(&recipe), dev);
    let mut pipeline =
        Pipeline::new(data.train.clone(), data.norm.clone(), data.streams.clone(), &plan::pipeline_config(&recipe, 0))?;
    let mut with_pipeline = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        let batch = pipeline.next_batch()?;
        trainer.train_step(&batch).map_err(anyhow::Error::msg)?;
        if i >= args.warmup {
            with_pipeline.push(t.elapsed().as_secs_f64());
        }
    }
    let batch = pipeline.next_batch()?;
    drop(pipeline);
    let mut reused = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        trainer.train_step(&batch).map_err(anyhow::Error::msg)?;
        if i >= args.warmup {
            reused.push(t.elapsed().as_secs_f64());
        }
    }
    let images: usize = batch.streams.iter().map(|s| s.views.iter().map(|v| v.shape[0]).sum::<usize>()).sum();
    outln!(
        "recipe={} backend={NAME} arch={} rule={} images_per_step={images} steps={} warmup={} threads={}",
        recipe.name,
        recipe.model.arch,
        recipe.update.name(),
        args.steps,
        args.warmup,
        rayon::current_num_threads()
    )?;
    outln!("with_pipeline_step_ms_median={:.1}", median_ms(with_pipeline))?;
    let rss = peak_rss_mib().map_or("unknown".to_string(), |m| format!("{m:.0}"));
    outln!("step_ms_median={:.1} peak_rss_mib={rss}", median_ms(reused))?;
    Ok(())
}
