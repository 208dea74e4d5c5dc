//! Checkpoint files: one [`Checkpoint`] (step, resolved recipe, model, optimiser state, EMA) written as named byte
//! sections in one file, atomically (temporary file, fsync, rename, fsync of the folder), so that a crash at any
//! moment leaves the previous checkpoint or the new one, never a torn file. The format is in `docs/checkpoints.md`.
//!
//! This module is the only place that knows the section names and how each is encoded (weights included), so the
//! trainer that writes checkpoints and the commands that inspect them cannot drift apart. It depends on no trainer:
//! the trainer builds its [`Checkpoint`] (`Trainer::checkpoint`) and restores from one.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;

const MAGIC: &[u8; 16] = b"burnish-ckpt-v1\n";

/// Section names, in file order.
const STEP: &str = "step";
const META: &str = "meta";
const MODEL: &str = "model";
const OPTIMIZER: &str = "optimizer";
const EMA: &str = "ema";

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused.
    #[error("checkpoint {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error (in the message, not chained, so it is printed once).
        error: std::io::Error,
    },
    /// The file is not a burnish checkpoint, is cut short or lacks a section.
    #[error("checkpoint {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Everything a run needs to continue exactly where it stopped: the step and recipe decoded, the weights and the
/// optimiser state as their encoded bytes. The trainer builds one (`Trainer::checkpoint`); read weights back with
/// [`Checkpoint::load_model`] and [`Checkpoint::load_ema`], which know the encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Optimiser steps taken.
    pub step: u64,
    /// The resolved recipe the run trains (TOML), so a checkpoint can be inspected on its own.
    pub recipe: String,
    /// Model weights and buffers (Burn's binary record at full precision).
    pub model: Vec<u8>,
    /// Optimiser state (Burn's binary record).
    pub optimizer: Vec<u8>,
    /// EMA weights, when the run keeps an EMA.
    pub ema: Option<Vec<u8>>,
}

type Bytes = BinBytesRecorder<FullPrecisionSettings>;

/// Serialises model weights and buffers at full precision (the encoding of the `model` and `ema` sections).
pub fn model_bytes<B: Backend, M: Module<B>>(m: M) -> Result<Vec<u8>, String> {
    Bytes::default().record(m.into_record(), ()).map_err(|e| format!("cannot serialise the model: {e}"))
}

/// Loads weights written by [`model_bytes`] into `m`.
pub fn load_model_bytes<B: Backend, M: Module<B>>(m: M, bytes: Vec<u8>, device: &B::Device) -> Result<M, String> {
    let record = Bytes::default().load(bytes, device).map_err(|e| format!("cannot read the model weights: {e}"))?;
    Ok(m.load_record(record))
}

impl Checkpoint {
    /// Whether the checkpoint holds EMA weights.
    pub fn has_ema(&self) -> bool {
        self.ema.is_some()
    }

    /// The raw weights loaded into `m`, a model of the checkpoint's architecture.
    pub fn load_model<B: Backend, M: Module<B>>(&self, m: M, device: &B::Device) -> Result<M, String> {
        load_model_bytes(m, self.model.clone(), device)
    }

    /// The EMA weights loaded into `m`, for a command that inspects them; an error when the run kept no EMA.
    pub fn load_ema<B: Backend, M: Module<B>>(&self, m: M, device: &B::Device) -> Result<M, String> {
        let bytes =
            self.ema.clone().ok_or_else(|| format!("the checkpoint has no `{EMA}` weights (the run kept no EMA)"))?;
        load_model_bytes(m, bytes, device)
    }

    /// The EMA weights loaded into `m`, for a resumed run whose recipe keeps an EMA (so their absence is an error
    /// of the checkpoint, not of the command).
    pub fn load_ema_to_resume<B: Backend, M: Module<B>>(&self, m: M, device: &B::Device) -> Result<M, String> {
        let bytes = self.ema.clone().ok_or_else(|| format!("has no `{EMA}` section, but the recipe keeps an EMA"))?;
        load_model_bytes(m, bytes, device)
    }

    /// Writes the checkpoint to `path` atomically; on failure no partial file is left behind.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let step = self.step.to_le_bytes();
        let mut sections: Vec<(&str, &[u8])> =
            vec![(STEP, &step), (META, self.recipe.as_bytes()), (MODEL, &self.model), (OPTIMIZER, &self.optimizer)];
        if let Some(ema) = &self.ema {
            sections.push((EMA, ema));
        }
        write_atomic(path, &encode(&sections))
    }

    /// Reads a checkpoint written by [`Checkpoint::write`].
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let bad = |reason: String| CheckpointError::Format { path: path.to_path_buf(), reason };
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|error| CheckpointError::Io { path: path.to_path_buf(), error })?;
        let mut sections = decode(&bytes).map_err(|r| bad(r.to_string()))?;
        let mut take = |name: &str| {
            let i = sections.iter().position(|(n, _)| n == name);
            i.map(|i| sections.remove(i).1)
        };
        let step = take(STEP).ok_or_else(|| bad(format!("has no `{STEP}` section")))?;
        let step = u64::from_le_bytes(step.as_slice().try_into().map_err(|_| bad("bad step".into()))?);
        let recipe = take(META).ok_or_else(|| bad(format!("has no `{META}` section (the recipe)")))?;
        let recipe = String::from_utf8(recipe).map_err(|_| bad("the embedded recipe is not UTF-8".into()))?;
        let model = take(MODEL).ok_or_else(|| bad(format!("has no `{MODEL}` section")))?;
        let optimizer = take(OPTIMIZER).ok_or_else(|| bad(format!("has no `{OPTIMIZER}` section")))?;
        let ema = take(EMA);
        Ok(Self { step, recipe, model, optimizer, ema })
    }
}

/// The name of the section holding the EMA (`ema = true`) or the raw weights, as commands name the weights they read.
pub fn weights_section(ema: bool) -> &'static str {
    if ema {
        EMA
    } else {
        MODEL
    }
}

/// Whether a file name in a checkpoint folder is the temporary file of an unfinished write.
pub fn is_temporary(file_name: &str) -> bool {
    file_name.starts_with(".step-") && file_name.contains(".tmp-")
}

/// The file image: magic, section count, then (name length, name, data length, data) per section.
fn encode(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(sections.iter().map(|(n, b)| n.len() + b.len() + 12).sum::<usize>() + 20);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    for (name, data) in sections {
        bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
        bytes.extend_from_slice(data);
    }
    bytes
}

/// The sections of a file image made by [`encode`].
fn decode(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, &'static str> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not a burnish checkpoint")?;
    let mut take = |n: usize| -> Result<&[u8], &'static str> {
        if rest.len() < n {
            return Err("truncated");
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let count = u32_at(take(4)?);
    let mut sections = Vec::new();
    for _ in 0..count {
        let name_len = u32_at(take(4)?) as usize;
        let name = String::from_utf8(take(name_len)?.to_vec()).map_err(|_| "section name is not UTF-8")?;
        let len = u64::from_le_bytes(take(8)?.try_into().map_err(|_| "truncated")?);
        let len = usize::try_from(len).map_err(|_| "truncated")?;
        sections.push((name, take(len)?.to_vec()));
    }
    Ok(sections)
}

/// Writes `bytes` to `path` through a temporary file in the same folder (`.<name>.tmp-<pid>`, which
/// [`is_temporary`] recognises), then renames it into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let io = |error| CheckpointError::Io { path: path.to_path_buf(), error };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(error) = written {
        // A full disk must not leave a half-written file that eats the space the next attempt needs.
        let _ = fs::remove_file(&tmp);
        return Err(io(error));
    }
    // The rename is durable only once the directory entry is on disk.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ema: bool) -> Checkpoint {
        Checkpoint {
            step: 3,
            recipe: "name = \"x\"".into(),
            model: vec![1, 2, 3, 4, 5],
            optimizer: vec![9; 7],
            ema: ema.then(|| vec![6, 6]),
        }
    }

    #[test]
    fn round_trip_and_truncation_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.ckpt");
        for ema in [true, false] {
            sample(ema).write(&path).expect("write");
            assert_eq!(Checkpoint::read(&path).expect("read"), sample(ema));
        }
        let full = fs::read(&path).expect("bytes");
        fs::write(&path, &full[..full.len() - 2]).expect("truncate");
        let err = Checkpoint::read(&path).expect_err("truncated file").to_string();
        assert!(err.contains("truncated") && err.contains("c.ckpt"), "{err}");
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn a_file_without_the_model_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.ckpt");
        write_atomic(&path, &encode(&[(STEP, &1u64.to_le_bytes()), (META, b"")])).expect("write");
        let err = Checkpoint::read(&path).expect_err("no model").to_string();
        assert!(err.contains("no `model` section"), "{err}");
    }

    #[test]
    fn temporary_names_are_recognised() {
        assert!(is_temporary(".step-000000010.ckpt.tmp-1234"));
        assert!(!is_temporary("step-000000010.ckpt"));
    }
}
