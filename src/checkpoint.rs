//! Checkpoint files: named byte sections in one file, written atomically (temp file, fsync, rename, fsync dir), so
//! a crash at any moment leaves either the previous checkpoint or the new one, never a torn file.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"burnish-ckpt-v1\n";

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
    /// The file is not a burnish checkpoint or is cut short.
    #[error("checkpoint {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The named sections of a checkpoint.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sections(pub Vec<(String, Vec<u8>)>);

impl Sections {
    /// Adds a section.
    pub fn push(&mut self, name: &str, bytes: Vec<u8>) {
        self.0.push((name.to_string(), bytes));
    }

    /// Takes the section called `name` out.
    pub fn take(&mut self, name: &str) -> Option<Vec<u8>> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }
}

/// Writes `sections` to `path` atomically.
pub fn write_atomic(path: &Path, sections: &Sections) -> Result<(), CheckpointError> {
    let io = |error| CheckpointError::Io { path: path.to_path_buf(), error };
    let mut bytes = Vec::with_capacity(sections.0.iter().map(|(n, b)| n.len() + b.len() + 12).sum::<usize>() + 20);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(sections.0.len() as u32).to_le_bytes());
    for (name, data) in &sections.0 {
        bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
        bytes.extend_from_slice(data);
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    // The rename is durable only once the directory entry is on disk.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a checkpoint written by [`write_atomic`].
pub fn read(path: &Path) -> Result<Sections, CheckpointError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|error| CheckpointError::Io { path: path.to_path_buf(), error })?;
    let bad = |reason: &str| CheckpointError::Format { path: path.to_path_buf(), reason: reason.to_string() };
    let mut rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| bad("not a burnish checkpoint"))?;
    let mut take = |n: usize| -> Result<&[u8], CheckpointError> {
        if rest.len() < n {
            return Err(bad("truncated"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
    let mut sections = Sections::default();
    for _ in 0..count {
        let name_len = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let name = String::from_utf8(take(name_len)?.to_vec()).map_err(|_| bad("section name is not UTF-8"))?;
        let len = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes")) as usize;
        sections.push(&name, take(len)?.to_vec());
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.ckpt");
        let mut s = Sections::default();
        s.push("meta", b"step = 3".to_vec());
        s.push("model", vec![1, 2, 3, 4, 5]);
        write_atomic(&path, &s).expect("write");
        assert_eq!(read(&path).expect("read"), s);
        let full = fs::read(&path).expect("bytes");
        fs::write(&path, &full[..full.len() - 2]).expect("truncate");
        let err = read(&path).expect_err("truncated file").to_string();
        assert!(err.contains("truncated") && err.contains("c.ckpt"), "{err}");
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }
}
