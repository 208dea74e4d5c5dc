//! `burnish export CKPT --out model.safetensors [--ema]`: a checkpoint's weights as a safetensors file with
//! PyTorch-style tensor names, to load with `safetensors.torch.load_file` and `model.load_state_dict`.
//!
//! Name mapping (the names of [`crate::model::param_infos`]): the dotted path of Burn's module fields, list
//! indices kept and enum variants left out, as a PyTorch `state_dict` would name the same module tree, e.g.
//! `backbone.layers.0.conv.weight`, `backbone.layers.0.bn.running_mean`, `classifier.weight`,
//! `projection.linear1.weight`.
//!
//! - Convolutions: `weight` `[out, in, kh, kw]` (PyTorch's layout already), `bias` when the layer has one.
//! - Linear layers: Burn stores `weight` as `[in, out]`; it is written transposed, `[out, in]` as in
//!   `torch.nn.Linear`. `bias` is `[out]`.
//! - BatchNorm: `weight` (γ), `bias` (β), `running_mean`, `running_var` as in `torch.nn.BatchNorm*d`, plus
//!   `num_batches_tracked` (an I64 scalar 0: PyTorch only reads it when `momentum=None`), so a PyTorch module with
//!   the same structure loads the file with `strict=True`.
//!
//! Every other tensor is F32 (the checkpoint's values converted). `__metadata__` holds `format = "pt"`, the
//! recipe `name`, the `arch`, the training `step` and which `weights` were written (`raw` or `ema`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::backend::Backend;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::model::{param_values, ParamKind};

/// Arguments of `burnish export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// A checkpoint written by `burnish train` (runs/<run>/checkpoints/step-*.ckpt).
    pub ckpt: PathBuf,
    /// Where to write the safetensors file (its folder must exist).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Export the EMA weights instead of the raw ones (the checkpoint must hold them).
    #[arg(long)]
    pub ema: bool,
}

/// One tensor to write: its name, shape and values in PyTorch's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// PyTorch-style dotted name.
    pub name: String,
    /// Shape in PyTorch's layout (a linear weight is `[out, in]`).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// Runs `burnish export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    let loaded = super::ckpt::Loaded::open(&args.ckpt).map_err(|e| naming(e, &args.ckpt))?;
    anyhow::ensure!(
        !args.ema || loaded.has_ema(),
        "checkpoint {} has no EMA weights (the recipe keeps no EMA); export without --ema",
        args.ckpt.display()
    );
    let model =
        loaded.model(args.ema).with_context(|| format!("cannot load the weights of {}", args.ckpt.display()))?;
    let tensors = tensors(&model)?;
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("name".to_string(), loaded.recipe.name.clone()),
        ("arch".to_string(), loaded.recipe.model.arch.to_string()),
        ("step".to_string(), loaded.step.to_string()),
        ("weights".to_string(), if args.ema { "ema" } else { "raw" }.to_string()),
    ]);
    write(&tensors, metadata, &args.out)?;
    let scalars: usize = tensors.iter().map(|t| t.values.len()).sum();
    outln!(
        "wrote {} ({} tensors, {} values, {} weights of step {})",
        args.out.display(),
        tensors.len(),
        scalars,
        if args.ema { "EMA" } else { "raw" },
        loaded.step
    )?;
    Ok(())
}

/// `e`, with the checkpoint's path added when its message does not name it already.
fn naming(e: anyhow::Error, ckpt: &Path) -> anyhow::Error {
    let path = ckpt.display().to_string();
    if format!("{e:#}").contains(&path) {
        e
    } else {
        e.context(format!("checkpoint {path}"))
    }
}

/// Every float tensor of `module` under its PyTorch-style name, linear weights transposed to `[out, in]`.
pub fn tensors<B: Backend, M: Module<B>>(module: &M) -> Result<Vec<Exported>> {
    param_values(module)
        .into_iter()
        .map(|(info, values)| {
            let values = values.map_err(|e| anyhow::anyhow!("cannot read tensor {}: {e}", info.name))?;
            let (shape, values) = if info.linear_weight && info.kind == ParamKind::Weight {
                let (rows, cols) = (info.shape[0], info.shape[1]);
                (vec![cols, rows], transpose(&values, rows, cols))
            } else {
                (info.shape, values)
            };
            Ok(Exported { name: info.name, shape, values })
        })
        .collect()
}

/// `[rows, cols]` row-major → `[cols, rows]` row-major.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Writes `tensors` (plus a `num_batches_tracked` per BatchNorm) and `metadata` to `path` as safetensors.
fn write(tensors: &[Exported], metadata: HashMap<String, String>, path: &Path) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let zero = 0i64.to_le_bytes();
    let mut views = Vec::with_capacity(tensors.len() * 2);
    for (t, b) in tensors.iter().zip(&bytes) {
        let view =
            TensorView::new(Dtype::F32, t.shape.clone(), b).map_err(|e| anyhow::anyhow!("tensor {}: {e}", t.name))?;
        views.push((t.name.clone(), view));
        if let Some(prefix) = t.name.strip_suffix(".running_var") {
            let counter = TensorView::new(Dtype::I64, Vec::new(), &zero)
                .map_err(|e| anyhow::anyhow!("tensor {prefix}.num_batches_tracked: {e}"))?;
            views.push((format!("{prefix}.num_batches_tracked"), counter));
        }
    }
    let data = safetensors::serialize(views, Some(metadata)).context("cannot serialise the tensors")?;
    std::fs::write(path, data).with_context(|| format!("cannot write {}", path.display()))
}
