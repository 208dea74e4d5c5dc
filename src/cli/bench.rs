//! `burnish bench RECIPE --steps N`: median training-step time, with the data pipeline and on one reused batch.

use std::time::Instant;

use anyhow::Result;

use super::RecipeArgs;
use crate::backend::{device, Train, NAME};
use crate::devices::DataParallel;
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
    /// After the timed steps, time as many again by op class and count their allocations (docs/kernels.md,
    /// "Profile"); the profiled steps are not in the medians.
    #[arg(long)]
    pub profile: bool,
    #[command(flatten)]
    /// Devices to split each step over; with N > 1 the time spent in collectives is reported too.
    pub devices: super::train::DevicesArgs,
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
    let make = |model, dev| -> Result<Trainer<Train>> {
        let objective = plan::objective::<Train>(&recipe).map_err(anyhow::Error::msg)?;
        Ok(Trainer::new(model, objective, plan::update_rule(&recipe), plan::train_settings(&recipe), dev))
    };
    let mut trainer = make(model, dev)?;
    crate::devices::check_recipe(&recipe, args.devices.count())?;
    let mut group = match args.devices.count() {
        1 => None,
        n => Some(DataParallel::around(&trainer, n, args.devices.ascent(), |d| {
            let model =
                Trainer::<Train>::init_model(&plan::net(&recipe, channels, data.dataset.num_classes), recipe.seed, &d);
            make(model, d)
        })?),
    };
    let mut collective = Vec::with_capacity(args.steps);
    let mut step = |trainer: &mut Trainer<Train>, batch: &crate::pipeline::Batch| -> Result<f64> {
        match &mut group {
            Some(g) => {
                g.train_step(trainer, batch)?;
                Ok(g.last_collective_s())
            }
            None => {
                trainer.train_step(batch).map_err(anyhow::Error::msg)?;
                Ok(0.0)
            }
        }
    };
    let mut pipeline =
        Pipeline::new(data.train.clone(), data.norm.clone(), data.streams.clone(), &plan::pipeline_config(&recipe, 0))?;
    let mut with_pipeline = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        let batch = pipeline.next_batch()?;
        step(&mut trainer, &batch)?;
        if i >= args.warmup {
            with_pipeline.push(t.elapsed().as_secs_f64());
        }
    }
    let batch = pipeline.next_batch()?;
    drop(pipeline);
    let mut reused = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        let t = Instant::now();
        let in_collectives = step(&mut trainer, &batch)?;
        if i >= args.warmup {
            reused.push(t.elapsed().as_secs_f64());
            collective.push(in_collectives);
        }
    }
    let profile = args.profile.then(|| -> Result<(crate::profile::Totals, f64)> {
        crate::profile::reset();
        crate::profile::enable(true);
        let t = Instant::now();
        for _ in 0..args.steps {
            step(&mut trainer, &batch)?;
        }
        let wall_ms = t.elapsed().as_secs_f64() * 1e3;
        crate::profile::enable(false);
        Ok((crate::profile::totals(), wall_ms))
    });
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
    let step_ms = median_ms(reused);
    outln!("step_ms_median={step_ms:.1} peak_rss_mib={rss}")?;
    if let Some(profile) = profile {
        report_profile(profile?, args.steps, args.devices.count())?;
    }
    if args.devices.count() > 1 {
        // The lead's time inside collectives, waiting for the other peers included (docs/devices.md, "Cost").
        let collective_ms = median_ms(collective);
        outln!(
            "devices={} collective_ms_median={collective_ms:.1} collective_share={:.3}",
            args.devices.count(),
            collective_ms / step_ms
        )?;
    }
    Ok(())
}

/// Prints the op-class profile: one `profile.<class>_ms` (per step) line each, then the step total and allocations.
/// With several peers every peer's thread is timed, so the class times are each peer's mean.
fn report_profile((totals, wall_ms): (crate::profile::Totals, f64), steps: usize, peers: usize) -> Result<()> {
    let per_step = |v: f64| v / steps as f64;
    let timed: f64 = totals.ms.iter().map(|(_, ms)| ms).sum::<f64>() / peers as f64;
    for (class, ms) in &totals.ms {
        let ms = ms / peers as f64;
        outln!("profile.{}_ms={:.1} share={:.3}", class.name(), per_step(ms), ms / timed.max(1e-9))?;
    }
    outln!(
        "profile.step_ms={:.1} profile.timed_ms={:.1} profile.allocations_per_step={:.0} \
         profile.allocated_mib_per_step={:.1}",
        per_step(wall_ms),
        per_step(timed),
        per_step(totals.allocations as f64),
        per_step(totals.allocated_bytes as f64) / (1024.0 * 1024.0)
    )?;
    Ok(())
}
