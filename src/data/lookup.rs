//! Where a data set's directory is looked up (SPEC §8): the given path, then `$BURNISH_DATA/<name>`,
//! then `/usr/share/datasets/<name>` (where Debian's `dataset-fashion-mnist` installs
//! `/usr/share/datasets/fashion-mnist/*-ubyte.gz`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::DataError;

/// The environment variable naming a root directory of data sets.
pub const DATA_ENV: &str = "BURNISH_DATA";

/// The system-wide root of data sets (Debian's `dataset-*` packages).
pub const SYSTEM_DATA_DIR: &str = "/usr/share/datasets";

/// The directories tried for data set `name`, in order: `path` (the data set's own directory) when
/// given, `<env_value>/<name>` when `env_value` (the value of `$BURNISH_DATA`) is set and non-empty,
/// then `/usr/share/datasets/<name>`.
pub fn candidate_dirs(name: &str, path: Option<&Path>, env_value: Option<&OsStr>) -> Vec<PathBuf> {
    let mut dirs = Vec::with_capacity(3);
    if let Some(path) = path {
        dirs.push(path.to_path_buf());
    }
    if let Some(root) = env_value.filter(|v| !v.is_empty()) {
        dirs.push(Path::new(root).join(name));
    }
    dirs.push(Path::new(SYSTEM_DATA_DIR).join(name));
    dirs
}

/// The first of [`candidate_dirs`] that is an existing directory, or a `NotFound` error listing them all.
///
/// A directory that exists is taken even when it lacks some files, so that a wrong `path` is reported as
/// the missing file there rather than silently replaced by another copy of the data set.
pub fn find_dataset_dir(name: &str, path: Option<&Path>, env_value: Option<&OsStr>) -> Result<PathBuf, DataError> {
    let tried = candidate_dirs(name, path, env_value);
    match tried.iter().find(|d| d.is_dir()) {
        Some(dir) => Ok(dir.clone()),
        None => Err(DataError::NotFound { name: name.to_string(), tried }),
    }
}
