//! `burnish measure CKPT`: Ŝ_ρ of a checkpoint, R restarts of Algorithm 1 from fresh noise on one fixed batch, and on
//! request the sharpness measures it is compared with (λ_max of the loss Hessian, SAM sharpness) on the same images.

use std::path::PathBuf;

use anyhow::Result;

use crate::backend::{device, Train};
use crate::checkpoint::weights_section;
use crate::iam::{measure_classifier, Inconsistency};
use crate::plan;
use crate::seed::rng_for;
use crate::sharpness::{classifier_loss, sam_sharpness, top_eigenvalue};
use crate::train::load_images;

use super::ckpt::{Loaded, SplitChoice};

/// Arguments of `burnish measure`.
#[derive(Debug, Clone, clap::Args)]
pub struct MeasureArgs {
    /// A checkpoint written by `burnish train` (runs/<run>/checkpoints/step-*.ckpt).
    pub ckpt: PathBuf,
    /// Restarts R, each from new Gaussian noise δ₀.
    #[arg(long, default_value_t = 10)]
    pub restarts: usize,
    /// Ascent steps K per restart (default: the recipe's iam-d or iam-s K, else 1).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Radius ρ (default: the recipe's iam-d or iam-s ρ, else 0.1).
    #[arg(long)]
    pub rho: Option<f64>,
    /// Initial noise norm σ (default: the recipe's iam-d or iam-s σ, else 1e-3).
    #[arg(long)]
    pub sigma: Option<f64>,
    /// Images the batch is drawn from: `holdout` is the recipe's held-out unlabeled set (`data.holdout`), the
    /// IAM paper's protocol for relating Ŝ_ρ to generalisation (its appendix F.1: 5,000 held-out images).
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
    /// What to measure, comma-separated: `s_rho` (no labels needed), `lambda_max` (top eigenvalue of the loss
    /// Hessian), `sam` (SAM sharpness max_{‖ε‖≤ρ} L(θ+ε) − L(θ)); the last two use the images' true labels.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "s-rho")]
    pub measures: Vec<Measure>,
    /// Power-iteration steps for `lambda_max`, one finite-difference Hessian-vector product each.
    #[arg(long, default_value_t = 20)]
    pub power_iterations: usize,
    /// Relative finite-difference step of those products (the step h·v has norm h·max(‖θ‖, 1)).
    #[arg(long, default_value_t = 1e-3)]
    pub hvp_step: f64,
    /// Radius ρ of `sam`.
    #[arg(long, default_value_t = 0.05)]
    pub sam_rho: f64,
    /// Normalised ascent steps of `sam` (1: SAM's own ε = ρ g/‖g‖).
    #[arg(long, default_value_t = 1)]
    pub sam_steps: usize,
    /// Also write the results as JSON to this file (replaced whole): `s_rho` (the mean over restarts), `s_rho_std`,
    /// `lambda_max`, `sam_sharpness`, each present when measured; `burnish sweep` reads it.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// What `--json` writes.
#[derive(Debug, Default, serde::Serialize)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    s_rho: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s_rho_std: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lambda_max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sam_sharpness: Option<f64>,
    /// ρ of Ŝ_ρ, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    rho: Option<f64>,
    /// Restarts of Ŝ_ρ, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    restarts: Option<usize>,
    /// ρ of the SAM sharpness, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    sam_rho: Option<f64>,
    /// The checkpoint's step, so a reader can tell which checkpoint was measured.
    step: u64,
    /// Which weights were measured: the checkpoint section (`model` or `ema`).
    weights: &'static str,
    /// Which images: `train` or `holdout`.
    split: &'static str,
    /// Images in the batch.
    batch: usize,
}

/// A measure `burnish measure` can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Measure {
    /// Ŝ_ρ, the local inconsistency (IAM's Algorithm 1).
    #[value(name = "s_rho", alias = "s-rho")]
    SRho,
    /// The largest eigenvalue of the loss Hessian.
    #[value(name = "lambda_max", alias = "lambda-max")]
    LambdaMax,
    /// SAM sharpness.
    Sam,
}

/// Runs `burnish measure`.
pub fn run(args: &MeasureArgs) -> Result<()> {
    anyhow::ensure!(args.restarts >= 1, "--restarts must be at least 1");
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    let loaded = Loaded::open(&args.ckpt)?;
    let (recipe, data) = (&loaded.recipe, &loaded.data);
    let dev = device();
    let section = weights_section(args.ema);
    let model = loaded.model(args.ema)?;
    let (split, subset) = args.split.of(data)?;
    let pool: Vec<usize> = subset.map_or_else(|| (0..split.len()).collect(), <[usize]>::to_vec);
    let order: Vec<usize> =
        plan::measure_indices(pool.len(), args.batch, args.seed).into_iter().map(|i| pool[i]).collect();
    let (x, y) = load_images::<Train>(split, &order, &data.norm, &dev)?;
    anyhow::ensure!(args.power_iterations >= 1, "--power-iterations must be at least 1");
    anyhow::ensure!(args.hvp_step > 0.0, "--hvp-step must be positive");
    anyhow::ensure!(args.sam_rho > 0.0, "--sam-rho must be positive");
    anyhow::ensure!(args.sam_steps >= 1, "--sam-steps must be at least 1");
    let mut report = Report {
        step: loaded.step,
        weights: section,
        split: args.split.name(),
        batch: order.len(),
        ..Report::default()
    };
    if args.measures.contains(&Measure::LambdaMax) {
        let mut rng = rng_for(&[args.seed, 0x6865_7373]);
        let lambda = top_eigenvalue(
            &model,
            classifier_loss(x.clone(), y.clone()),
            args.power_iterations,
            args.hvp_step,
            &mut rng,
        );
        report.lambda_max = Some(lambda);
        outln!("lambda_max={lambda:.6e} power_iterations={} hvp_step={}", args.power_iterations, args.hvp_step)?;
    }
    if args.measures.contains(&Measure::Sam) {
        let sharpness = sam_sharpness(&model, classifier_loss(x.clone(), y.clone()), args.sam_rho, args.sam_steps);
        report.sam_sharpness = Some(sharpness);
        report.sam_rho = Some(args.sam_rho);
        outln!("sam_sharpness={sharpness:.6e} sam_rho={} sam_steps={}", args.sam_rho, args.sam_steps)?;
    }
    if args.measures.contains(&Measure::SRho) {
        let (mean, std, rho) = measure_s_rho(args, recipe, &model, x, section, order.len())?;
        report.s_rho = Some(mean);
        report.s_rho_std = Some(std);
        report.rho = Some(rho);
        report.restarts = Some(args.restarts);
    }
    if let Some(path) = &args.json {
        crate::run::replace_file(path, (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
    }
    Ok(())
}

/// Ŝ_ρ over `args.restarts` restarts on `x`, printed per restart; returns its mean, standard deviation and ρ.
fn measure_s_rho(
    args: &MeasureArgs,
    recipe: &crate::recipe::Recipe,
    model: &crate::model::Net<Train>,
    x: burn::tensor::Tensor<Train, 4>,
    section: &str,
    batch: usize,
) -> Result<(f64, f64, f64)> {
    let trained = plan::inconsistency_settings(recipe);
    let cfg = Inconsistency {
        rho: args.rho.unwrap_or(trained.rho),
        sigma: args.sigma.unwrap_or(trained.sigma),
        steps: args.steps.unwrap_or(trained.steps),
    };
    anyhow::ensure!(cfg.rho > 0.0, "--rho must be positive");
    anyhow::ensure!(cfg.sigma >= 0.0, "--sigma must not be negative");
    anyhow::ensure!(cfg.steps >= 1, "--steps must be at least 1");
    let values = measure_classifier(model, x, &cfg, args.restarts, args.seed);
    for (r, s) in values.iter().enumerate() {
        outln!("restart {r}: s_rho={s:.6e}")?;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    outln!(
        "rho={} sigma={} K={} R={} batch={} split={} weights={section}",
        cfg.rho,
        cfg.sigma,
        cfg.steps,
        args.restarts,
        batch,
        args.split.name()
    )?;
    outln!("s_rho_mean={mean:.6e} s_rho_std={std:.6e}")?;
    Ok((mean, std, cfg.rho))
}
