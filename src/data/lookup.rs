//! Where a data set's directory is looked up (docs/data-flow.md, "Data"): the given path, then `$BURNISH_DATA/<name>`,
//! then `<default root>/<name>` (where `burnish data get` installs when `$BURNISH_DATA` is unset:
//! `~/.local/share/burnish/data` on Linux), then `/usr/share/datasets/<name>` (where Debian's `dataset-fashion-mnist`
//! installs `/usr/share/datasets/fashion-mnist/*-ubyte.gz`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::download::is_downloadable;
use super::DataError;

/// The environment variable naming a root directory of data sets.
pub const DATA_ENV: &str = "BURNISH_DATA";

/// The system-wide root of data sets (Debian's `dataset-*` packages).
pub const SYSTEM_DATA_DIR: &str = "/usr/share/datasets";

/// The per-user root of data sets, used by `burnish data get` when `$BURNISH_DATA` is unset:
/// `burnish/data` in the user's data folder (`$XDG_DATA_HOME`, else `~/.local/share`, on Linux). `None` when the
/// user has no home folder.
pub fn default_data_root() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("burnish").join("data"))
}

/// The root `burnish data get` installs into without `--dir`: `env_value` (the value of `$BURNISH_DATA`) when set
/// and non-empty, else [`default_data_root`].
pub fn download_root(env_value: Option<&OsStr>) -> Option<PathBuf> {
    match env_value.filter(|v| !v.is_empty()) {
        Some(root) => Some(PathBuf::from(root)),
        None => default_data_root(),
    }
}

/// The directories tried for data set `name`, in order: `path` (the data set's own directory) when given,
/// `<env_value>/<name>` when `env_value` (the value of `$BURNISH_DATA`) is set and non-empty,
/// `<default root>/<name>` ([`default_data_root`]), then `/usr/share/datasets/<name>`.
pub fn candidate_dirs(name: &str, path: Option<&Path>, env_value: Option<&OsStr>) -> Vec<PathBuf> {
    candidate_dirs_with(name, path, env_value, default_data_root().as_deref())
}

/// [`candidate_dirs`] with the default root passed in rather than taken from the user's home folder (for tests).
pub fn candidate_dirs_with(
    name: &str,
    path: Option<&Path>,
    env_value: Option<&OsStr>,
    default_root: Option<&Path>,
) -> Vec<PathBuf> {
    let mut dirs = Vec::with_capacity(4);
    if let Some(path) = path {
        dirs.push(path.to_path_buf());
    }
    let env_root = env_value.filter(|v| !v.is_empty()).map(Path::new);
    if let Some(root) = env_root {
        dirs.push(root.join(name));
    }
    // `BURNISH_DATA` pointing at the default root would list the same folder twice.
    if let Some(root) = default_root.filter(|r| env_root != Some(*r)) {
        dirs.push(root.join(name));
    }
    dirs.push(Path::new(SYSTEM_DATA_DIR).join(name));
    dirs
}

/// The first of [`candidate_dirs`] that is an existing directory, or a `NotFound` error listing them all (and, for a
/// data set `burnish data get` can download, the command that fixes it).
///
/// A directory that exists is taken even when it lacks some files, so that a wrong `path` is reported as
/// the missing file there rather than silently replaced by another copy of the data set.
pub fn find_dataset_dir(name: &str, path: Option<&Path>, env_value: Option<&OsStr>) -> Result<PathBuf, DataError> {
    find_dataset_dir_with(name, path, env_value, default_data_root().as_deref())
}

/// [`find_dataset_dir`] with the default root passed in (for tests).
pub fn find_dataset_dir_with(
    name: &str,
    path: Option<&Path>,
    env_value: Option<&OsStr>,
    default_root: Option<&Path>,
) -> Result<PathBuf, DataError> {
    let tried = candidate_dirs_with(name, path, env_value, default_root);
    if let Some(dir) = tried.iter().find(|d| d.is_dir()) {
        return Ok(dir.clone());
    }
    let download_to = match env_value.filter(|v| !v.is_empty()) {
        Some(root) => Some(Path::new(root).join(name)),
        None => default_root.map(|r| r.join(name)),
    };
    let fix = is_downloadable(name).then(|| match download_to {
        Some(dir) => format!("`burnish data get {name}` downloads it into {}", dir.display()),
        None => format!("`burnish data get {name} --dir DIR` downloads it into DIR/{name}"),
    });
    Err(DataError::NotFound { name: name.to_string(), tried, fix })
}
