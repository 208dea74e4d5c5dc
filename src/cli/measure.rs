//! `burnish measure CKPT`: Ŝ_ρ of a checkpoint, R restarts of Algorithm 1 from fresh noise on one fixed batch.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::activation::{log_softmax, softmax};
use clap::ValueEnum;
use rand::seq::SliceRandom;

use crate::backend::{device, Train};
use crate::iam::{local_inconsistency, Inconsistency};
use crate::model::{BnMode, Net};
use crate::pipeline::seed::rng_for;
use crate::plan;
use crate::recipe::{Recipe, StageSpec, UpdateRuleKind};
use crate::train::checkpoint;
use crate::train::{load_images, load_model_bytes, Trainer};

/// Which split `measure` draws its batch from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitChoice {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

/// Arguments of `burnish measure`.
#[derive(Debug, Clone, clap::Args)]
pub struct MeasureArgs {
    /// A checkpoint written by `burnish train` (runs/<run>/checkpoints/step-*.ckpt).
    pub ckpt: PathBuf,
    /// Restarts R, each from new Gaussian noise δ₀.
    #[arg(long, default_value_t = 10)]
    pub restarts: usize,
    /// Ascent steps K per restart.
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    /// Radius ρ (default: the recipe's iam-d or iam-s ρ, else 0.1).
    #[arg(long)]
    pub rho: Option<f64>,
    /// Initial noise norm σ.
    #[arg(long, default_value_t = 1e-3)]
    pub sigma: f64,
    /// Split the batch is drawn from.
    #[arg(long, value_enum, default_value_t = SplitChoice::Train)]
    pub split: SplitChoice,
    /// Images in the batch.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Measure the EMA weights instead of the raw ones.
    #[arg(long)]
    pub ema: bool,
    /// Seed for the batch and the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The radius a recipe trains with: its `iam-d` stage's ρ, else its `iam-s` rule's ρ.
fn recipe_rho(recipe: &Recipe) -> Option<f64> {
    recipe.stages.iter().find_map(|s| if let StageSpec::IamD(d) = s { Some(d.rho) } else { None }).or((recipe
        .update
        .rule
        == UpdateRuleKind::IamS)
        .then_some(recipe.update.rho))
}

/// Runs `burnish measure`.
pub fn run(args: &MeasureArgs) -> Result<()> {
    anyhow::ensure!(args.restarts >= 1, "--restarts must be at least 1");
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    let mut sections = checkpoint::read(&args.ckpt)?;
    let meta = sections.take("meta").context("the checkpoint has no recipe (meta section)")?;
    let origin = format!("{} (embedded recipe)", args.ckpt.display());
    let recipe = Recipe::from_str(&String::from_utf8(meta).context("embedded recipe is not UTF-8")?, &origin, &[])?;
    let data = plan::data(&recipe)?;
    let (channels, _, _) = data.dataset.shape();
    let dev = device();
    let model: Net<Train> =
        Trainer::<Train>::init_model(&plan::net(&recipe, channels, data.dataset.num_classes), recipe.seed, &dev);
    let section = if args.ema { "ema" } else { "model" };
    let bytes = sections.take(section).with_context(|| format!("the checkpoint has no `{section}` weights"))?;
    let model = load_model_bytes(model, bytes, &dev).map_err(anyhow::Error::msg)?;
    let split = match args.split {
        SplitChoice::Train => &data.dataset.train,
        SplitChoice::Test => &data.dataset.test,
    };
    let mut order: Vec<usize> = (0..split.len()).collect();
    order.shuffle(&mut rng_for(&[args.seed, 0x6d65_6173]));
    order.truncate(args.batch);
    let (x, _) = load_images::<Train>(split, &order, &data.norm, &dev)?;
    let cfg =
        Inconsistency { rho: args.rho.or(recipe_rho(&recipe)).unwrap_or(0.1), sigma: args.sigma, steps: args.steps };
    anyhow::ensure!(cfg.rho > 0.0, "--rho must be positive");
    // Measurement normalises with batch statistics, as the perturbed passes do, and never stores them.
    let p = softmax(model.forward(x.clone(), BnMode::TrainNoStats).logits, 1).detach();
    let log_q = |m: &Net<Train>| log_softmax(m.forward(x.clone(), BnMode::TrainNoStats).logits, 1);
    let mut values = Vec::with_capacity(args.restarts);
    for r in 0..args.restarts {
        let (s, _) = local_inconsistency(&model, p.clone(), log_q, &cfg, &mut rng_for(&[args.seed, r as u64]));
        let s: f64 = s.into_data().convert::<f64>().to_vec::<f64>().map_err(|e| anyhow::anyhow!("{e:?}"))?[0];
        println!("restart {r}: s_rho={s:.6e}");
        values.push(s);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    println!(
        "rho={} sigma={} K={} R={} batch={} split={:?} weights={section}",
        cfg.rho,
        cfg.sigma,
        cfg.steps,
        args.restarts,
        order.len(),
        args.split
    );
    println!("s_rho_mean={mean:.6e} s_rho_std={std:.6e}");
    Ok(())
}
