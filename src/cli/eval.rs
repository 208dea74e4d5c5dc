//! `burnish eval CKPT`: top-1 accuracy of a checkpoint's raw and EMA weights on a split, without augmentation.

use std::path::PathBuf;

use anyhow::Result;
use burn::module::AutodiffModule;

use super::ckpt::{Loaded, SplitChoice};
use crate::backend::device;
use crate::train::accuracy;

/// Arguments of `burnish eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// A checkpoint written by `burnish train` (runs/<run>/checkpoints/step-*.ckpt).
    pub ckpt: PathBuf,
    /// Split to evaluate on.
    #[arg(long, value_enum, default_value_t = SplitChoice::Test)]
    pub split: SplitChoice,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
}

/// Runs `burnish eval`; the last line is `<split>_acc_ema=<x> <split>_acc=<y>` (EMA equals raw without EMA).
pub fn run(args: &EvalArgs) -> Result<()> {
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    let loaded = Loaded::open(&args.ckpt)?;
    let data = &loaded.data;
    let (split, subset) = args.split.of(data)?;
    let dev = device();
    let score = |ema: bool| -> Result<f64> {
        let model = loaded.model(ema)?.valid();
        Ok(accuracy(&model, split, subset, &data.norm, args.batch, &dev)?.value())
    };
    let raw = score(false)?;
    let ema = if loaded.has_ema() { score(true)? } else { raw };
    let name = args.split.name();
    let images = subset.map_or(split.len(), <[usize]>::len);
    outln!("recipe={} step={} images={images}", loaded.recipe.name, loaded.step)?;
    outln!("{name}_acc_ema={ema:.4} {name}_acc={raw:.4}")?;
    Ok(())
}
