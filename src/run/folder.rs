//! A run's folder on disk: `runs/<name>-<timestamp>/` with the resolved `recipe.toml`, `checkpoints/` and
//! `summary.json` (the metrics files are `log.rs`'s).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The folder of one run and its checkpoints.
#[derive(Debug, Clone)]
pub struct RunFolder {
    /// The run folder.
    pub dir: PathBuf,
    checkpoints: PathBuf,
}

impl RunFolder {
    /// Creates `<root>/<name>-<timestamp>/` (with a `-k` suffix when two runs start within the same second) and
    /// writes the resolved recipe into it.
    pub fn create(root: &Path, name: &str, recipe: &str) -> Result<Self> {
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
        let mut k = 0;
        let dir = loop {
            let dir = root.join(if k == 0 { format!("{name}-{stamp}") } else { format!("{name}-{stamp}-{k}") });
            match fs::create_dir(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => k += 1,
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
            }
        };
        let folder = Self::open(dir)?;
        fs::write(folder.dir.join("recipe.toml"), recipe).context("cannot write recipe.toml")?;
        Ok(folder)
    }

    /// An existing run folder (for `--resume`); leftovers of a checkpoint write that a crash cut short are removed.
    pub fn open(dir: PathBuf) -> Result<Self> {
        let checkpoints = dir.join("checkpoints");
        fs::create_dir_all(&checkpoints).with_context(|| format!("cannot create {}", checkpoints.display()))?;
        for entry in fs::read_dir(&checkpoints).with_context(|| format!("cannot list {}", checkpoints.display()))? {
            let path = entry.with_context(|| format!("cannot list {}", checkpoints.display()))?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(crate::checkpoint::is_temporary) {
                fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
        Ok(Self { dir, checkpoints })
    }

    /// Where the checkpoint after `step` steps goes.
    pub fn checkpoint_path(&self, step: u64) -> PathBuf {
        self.checkpoints.join(format!("step-{step:09}.ckpt"))
    }

    /// Every complete checkpoint, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<PathBuf>> {
        checkpoints_in(&self.checkpoints)
    }

    /// The checkpoint with the most steps, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<PathBuf>> {
        Ok(self.checkpoints()?.pop())
    }

    /// Removes all but the `keep` newest checkpoints (at least one is always kept).
    pub fn prune(&self, keep: usize) -> Result<()> {
        let all = self.checkpoints()?;
        for old in all.iter().take(all.len().saturating_sub(keep.max(1))) {
            fs::remove_file(old).with_context(|| format!("cannot remove {}", old.display()))?;
        }
        Ok(())
    }

    /// Writes `summary.json` (replacing it whole, so a crash leaves the previous one or the new one).
    pub fn write_summary<T: serde::Serialize>(&self, summary: &T) -> Result<()> {
        replace_file(&self.dir.join("summary.json"), (serde_json::to_string_pretty(summary)? + "\n").as_bytes())
    }
}

/// Replaces `path` whole with `bytes` (through a temporary file beside it and a rename), so a reader or a crash sees
/// the old file or the new one, never half of one; for small result files (summaries, sweep tables).
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The complete checkpoints (`step-*.ckpt`) in `dir`, oldest first; temporary files of unfinished writes are not
/// checkpoints.
pub fn checkpoints_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("step-") && n.ends_with(".ckpt"))
        })
        .collect();
    found.sort();
    Ok(found)
}
