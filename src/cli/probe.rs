//! `burnish probe CKPT`: linear-probe and kNN accuracy of a checkpoint's frozen encoder.

use std::path::PathBuf;

use anyhow::Result;
use burn::module::AutodiffModule;

use super::ckpt::Loaded;
use crate::backend::Train;
use crate::checkpoint::weights_section;
use crate::data::labeled_indices;
use crate::plan;
use crate::probe::probe;
use crate::recipe::ProbeOptimizer;

/// Arguments of `burnish probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// A checkpoint written by `burnish train` (runs/<run>/checkpoints/step-*.ckpt).
    pub ckpt: PathBuf,
    /// Probe the EMA weights instead of the raw ones.
    #[arg(long)]
    pub ema: bool,
    /// Probe the recipe's untrained initialisation instead (the floor a trained encoder must beat).
    #[arg(long, conflicts_with = "ema")]
    pub random_init: bool,
    /// Labelled training images per class the probe learns from (default: the recipe's split; all if it has none).
    #[arg(long, value_name = "N")]
    pub labels_per_class: Option<usize>,
    /// Epochs of linear-classifier training (default: the recipe's eval.probe_epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate of the linear classifier (default: the recipe's eval.probe_lr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Optimiser of the linear classifier (default: the recipe's eval.probe_optimizer).
    #[arg(long, value_enum)]
    pub optimizer: Option<ProbeOptimizer>,
    /// Neighbours of the kNN score (default: the recipe's eval.knn_k, 200).
    #[arg(long)]
    pub knn_k: Option<usize>,
    /// Images per forward pass when extracting features.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
}

/// Runs `burnish probe`; the last line is `linear_acc=<x> knn_acc=<y>`.
pub fn run(args: &ProbeArgs) -> Result<()> {
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    let loaded = Loaded::open(&args.ckpt)?;
    let mut recipe = loaded.recipe.clone();
    if let Some(e) = args.epochs {
        anyhow::ensure!(e >= 1, "--epochs must be at least 1");
        recipe.eval.probe_epochs = e;
    }
    if let Some(lr) = args.lr {
        anyhow::ensure!(lr > 0.0, "--lr must be positive");
        recipe.eval.probe_lr = lr;
    }
    if let Some(o) = args.optimizer {
        recipe.eval.probe_optimizer = o;
    }
    if let Some(k) = args.knn_k {
        anyhow::ensure!(k >= 1, "--knn-k must be at least 1");
        recipe.eval.knn_k = k;
    }
    let data = &loaded.data;
    let train_indices = match args.labels_per_class {
        Some(k) => {
            anyhow::ensure!(k >= 1, "--labels-per-class must be at least 1");
            labeled_indices(data.dataset.train.labels(), data.dataset.num_classes, k, recipe.split_seed())?
        }
        None => data.labeled.clone(),
    };
    let model = if args.random_init { loaded.initial_model() } else { loaded.model(args.ema)? };
    let weights = if args.random_init { "random-init" } else { weights_section(args.ema) };
    let r = probe::<Train>(
        &model.valid(),
        &data.dataset.train,
        &train_indices,
        &data.dataset.test,
        data.dataset.num_classes,
        &data.norm,
        args.batch,
        &plan::probe_config(&recipe),
    )?;
    outln!(
        "recipe={} step={} weights={weights} train_images={} test_images={} epochs={} k={}",
        recipe.name,
        loaded.step,
        r.train_size,
        r.test_size,
        recipe.eval.probe_epochs,
        recipe.eval.knn_k
    )?;
    outln!("linear_acc={:.4} knn_acc={:.4}", r.linear_acc, r.knn_acc)?;
    Ok(())
}
