//! Checkpoint files: one [`Checkpoint`] (step, resolved recipe, model, optimiser state, EMA) written as named byte
//! sections in one file, atomically (temporary file, fsync, rename, fsync of the folder), so that a crash at any
//! moment leaves the previous checkpoint or the new one, never a torn file. Every section and the header carry a
//! CRC32C, so a file whose bytes changed is refused, never loaded. The format is in `docs/checkpoints.md`.
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

/// The magic of the format this module writes: the header and every section carry a CRC32C.
const MAGIC: &[u8; 16] = b"burnish-ckpt-v2\n";
/// The magic of the first format, without checksums: still read, never written.
const MAGIC_V1: &[u8; 16] = b"burnish-ckpt-v1\n";
/// What every version's magic starts with, to tell an unknown version from a file that is no checkpoint.
const MAGIC_STEM: &[u8] = b"burnish-ckpt-v";

/// Section names, in file order.
const STEP: &str = "step";
const META: &str = "meta";
const MODEL: &str = "model";
const OPTIMIZER: &str = "optimizer";
const EMA: &str = "ema";

/// The longest section name a reader accepts, so a corrupt name length is reported as such, not as a huge read.
const MAX_NAME_LEN: usize = 256;

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
    /// The file is not a burnish checkpoint, is cut short, fails a checksum or lacks a section: its bytes are not
    /// what a writer wrote, and nothing of it may be used.
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

    /// Writes the checkpoint to `path` atomically, in the current format (with checksums); on failure no partial
    /// file is left behind.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let step = self.step.to_le_bytes();
        write_atomic(path, &encode(&self.sections(&step)))
    }

    /// The named sections in file order, with `step` (the step's little-endian bytes) as the `step` section.
    fn sections<'a>(&'a self, step: &'a [u8; 8]) -> Vec<(&'static str, &'a [u8])> {
        let mut sections: Vec<(&str, &[u8])> =
            vec![(STEP, step), (META, self.recipe.as_bytes()), (MODEL, &self.model), (OPTIMIZER, &self.optimizer)];
        if let Some(ema) = &self.ema {
            sections.push((EMA, ema));
        }
        sections
    }

    /// Reads a checkpoint written by [`Checkpoint::write`] (or a first-format file, which has no checksums);
    /// a file that fails a checksum, is cut short or has bytes after its last section is an error naming the file
    /// and what failed.
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let bad = |reason: String| CheckpointError::Format { path: path.to_path_buf(), reason };
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|error| CheckpointError::Io { path: path.to_path_buf(), error })?;
        let mut sections = decode(&bytes).map_err(bad)?;
        let mut take = |name: &str| {
            let i = sections.iter().position(|(n, _)| n == name);
            i.map(|i| sections.remove(i).1)
        };
        let step = take(STEP).ok_or_else(|| bad(format!("has no `{STEP}` section")))?;
        let step = step.try_into().map(u64::from_le_bytes);
        let step = step.map_err(|s: Vec<u8>| bad(format!("the `{STEP}` section has {} bytes, not 8", s.len())))?;
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

/// The file image: magic, section count, per section (name length, name, data length, data CRC32C), the CRC32C of
/// all that, then the sections' data back to back.
fn encode(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let data: usize = sections.iter().map(|(_, b)| b.len()).sum();
    let table: usize = sections.iter().map(|(n, _)| 16 + n.len()).sum();
    let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + table + data);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    for (name, data) in sections {
        bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
    }
    let header = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&header.to_le_bytes());
    for (_, data) in sections {
        bytes.extend_from_slice(data);
    }
    bytes
}

/// Reads a file image front to back; every read past the end is the error "truncated".
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let rest = self.bytes.len() - self.at;
        if rest < n {
            return Err(format!("truncated: {what} needs {n} bytes at offset {}, the file has {rest} left", self.at));
        }
        self.at += n;
        Ok(&self.bytes[self.at - n..self.at])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let mut le = [0; 8];
        le.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(le))
    }

    /// A section name: checked for length and UTF-8 (in the first format nothing else protects it).
    fn name(&mut self) -> Result<String, String> {
        let len = self.u32("a section name's length")? as usize;
        if len > MAX_NAME_LEN {
            return Err(format!("a section name of {len} bytes (at most {MAX_NAME_LEN})"));
        }
        String::from_utf8(self.take(len, "a section name")?.to_vec())
            .map_err(|_| "a section name is not UTF-8".to_string())
    }
}

/// The sections of a file image made by [`encode`] (or by the first format's writer), each checked against its
/// CRC32C; a reason naming what failed otherwise.
fn decode(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    if bytes.len() < MAGIC.len() && (MAGIC.starts_with(bytes) || MAGIC_V1.starts_with(bytes)) {
        return Err(format!("truncated: the file has {} bytes, not even the 16 of its magic", bytes.len()));
    }
    let magic = bytes.get(..MAGIC.len()).unwrap_or(bytes);
    if magic == MAGIC_V1 {
        return decode_v1(&bytes[MAGIC.len()..]);
    }
    if magic != MAGIC {
        return Err(match magic.strip_prefix(MAGIC_STEM) {
            Some(v) => format!(
                "unknown checkpoint format `{}` (this burnish reads v1 and v2; the file is corrupt or from a newer \
                 burnish)",
                String::from_utf8_lossy(&[MAGIC_STEM, v].concat()).trim_end()
            ),
            None => "not a burnish checkpoint (it does not start with `burnish-ckpt-v`)".to_string(),
        });
    }
    let mut c = Cursor { bytes, at: MAGIC.len() };
    // Until its checksum is read, a value of the header may be corrupt: a read past the end means either.
    let header = |e: String| format!("the header is corrupt or the file is cut short ({e})");
    let count = c.u32("the section count").map_err(header)?;
    let mut table = Vec::new();
    for _ in 0..count {
        let name = c.name().map_err(header)?;
        let len = c.u64("a section's length").map_err(header)?;
        let crc = c.u32("a section's CRC32C").map_err(header)?;
        table.push((name, len, crc));
    }
    let computed = crc32c::crc32c(&bytes[..c.at]);
    let stored = c.u32("the header's CRC32C").map_err(header)?;
    if stored != computed {
        return Err(format!(
            "the header (magic, section count and table) fails its CRC32C check (stored {stored:#010x}, computed \
             {computed:#010x}): the file is corrupt"
        ));
    }
    let mut sections: Vec<(String, Vec<u8>)> = Vec::with_capacity(table.len());
    for (name, len, stored) in table {
        let what = format!("section `{name}`");
        let len = usize::try_from(len).map_err(|_| format!("truncated: {what} is longer than the file"))?;
        let data = c.take(len, &what)?;
        let computed = crc32c::crc32c(data);
        if stored != computed {
            return Err(format!(
                "section `{name}` fails its CRC32C check (stored {stored:#010x}, computed {computed:#010x}): the \
                 file is corrupt"
            ));
        }
        if sections.iter().any(|(n, _)| *n == name) {
            return Err(format!("the header names section `{name}` twice"));
        }
        sections.push((name, data.to_vec()));
    }
    let after = bytes.len() - c.at;
    if after > 0 {
        return Err(format!("{after} bytes follow the last section: the file is corrupt"));
    }
    Ok(sections)
}

/// The sections of a first-format file (after its magic): count, then (name length, name, data length, data) per
/// section, with no checksums, so only truncation and a malformed header are caught.
fn decode_v1(rest: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut c = Cursor { bytes: rest, at: 0 };
    let count = c.u32("the section count")?;
    let mut sections = Vec::new();
    for _ in 0..count {
        let name = c.name()?;
        let what = format!("section `{name}`");
        let len = usize::try_from(c.u64("a section's length")?)
            .map_err(|_| format!("truncated: {what} is longer than the file"))?;
        sections.push((name, c.take(len, &what)?.to_vec()));
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

    /// The first format's image of `c`, as its writer made it (no checksums).
    fn encode_v1(c: &Checkpoint) -> Vec<u8> {
        let step = c.step.to_le_bytes();
        let sections = c.sections(&step);
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&(sections.len() as u32).to_le_bytes());
        for (name, data) in sections {
            bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
            bytes.extend_from_slice(data);
        }
        bytes
    }

    fn read_image(path: &Path, bytes: &[u8]) -> Result<Checkpoint, String> {
        fs::write(path, bytes).expect("write");
        Checkpoint::read(path).map_err(|e| e.to_string())
    }

    #[test]
    fn round_trip_and_truncation_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.ckpt");
        for ema in [true, false] {
            sample(ema).write(&path).expect("write");
            assert_eq!(Checkpoint::read(&path).expect("read"), sample(ema));
        }
        assert!(fs::read(&path).expect("bytes").starts_with(b"burnish-ckpt-v2\n"), "written in the current format");
        let full = fs::read(&path).expect("bytes");
        let err = read_image(&path, &full[..full.len() - 2]).expect_err("truncated file");
        assert!(err.contains("truncated: section `optimizer`") && err.contains("c.ckpt"), "{err}");
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn every_single_bit_flip_is_refused_naming_what_failed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.ckpt");
        let image = encode(&[(STEP, &3u64.to_le_bytes()), (META, b"name"), (MODEL, &[1, 2, 3]), (OPTIMIZER, &[9])]);
        let header_len = image.len() - 8 - 4 - 3 - 1;
        for bit in 0..image.len() * 8 {
            let mut bytes = image.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            let err = read_image(&path, &bytes).expect_err("a flipped bit is refused");
            let at = bit / 8;
            let expected = if at < 14 {
                "not a burnish checkpoint"
            } else if at < 16 {
                "unknown checkpoint format"
            } else if at < header_len {
                "the header"
            } else if at < header_len + 8 {
                "section `step` fails its CRC32C check"
            } else if at < header_len + 12 {
                "section `meta` fails its CRC32C check"
            } else if at < header_len + 15 {
                "section `model` fails its CRC32C check"
            } else {
                "section `optimizer` fails its CRC32C check"
            };
            assert!(err.contains(expected) && err.contains("c.ckpt"), "bit {bit} (byte {at}): {err}");
        }
    }

    #[test]
    fn every_truncation_and_any_trailing_byte_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.ckpt");
        let image = encode(&[(STEP, &3u64.to_le_bytes()), (META, b"name"), (MODEL, &[1, 2, 3]), (OPTIMIZER, &[9])]);
        for len in 0..image.len() {
            let err = read_image(&path, &image[..len]).expect_err("a truncated file is refused");
            assert!(err.contains("truncated") || err.contains("not a burnish checkpoint"), "{len} bytes: {err}");
        }
        let err = read_image(&path, &[image.as_slice(), &[0]].concat()).expect_err("a trailing byte is refused");
        assert!(err.contains("1 bytes follow the last section"), "{err}");
    }

    #[test]
    fn a_first_format_file_without_checksums_still_loads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.ckpt");
        for ema in [true, false] {
            assert_eq!(read_image(&path, &encode_v1(&sample(ema))), Ok(sample(ema)));
        }
        let v1 = encode_v1(&sample(false));
        let err = read_image(&path, &v1[..v1.len() - 1]).expect_err("a truncated v1 file is refused");
        assert!(err.contains("truncated: section `optimizer`"), "{err}");
    }

    #[test]
    fn an_unknown_version_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.ckpt");
        let mut image = encode(&[(STEP, &3u64.to_le_bytes())]);
        image[14] = b'7';
        let err = read_image(&path, &image).expect_err("v7 is refused");
        assert!(err.contains("unknown checkpoint format `burnish-ckpt-v7`"), "{err}");
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
