//! A data set of image files laid out one directory per class:
//!
//! ```text
//! root/train/<class>/*.png|*.jpg|*.jpeg
//! root/test/<class>/*.png|*.jpg|*.jpeg
//! ```
//!
//! Classes are the sub-directories of `root/train`, sorted by name; class `k` is the `k`-th name. Every
//! class directory of `root/test` must also exist in `root/train` (a test class the model never saw
//! would have no label index). Files are listed in sorted order, so indices are stable; files with other
//! extensions (case-insensitive) and hidden files are ignored. Images are decoded on each read,
//! converted to the split's channel count and resized to the split's size when different (see
//! [`Split::from_files`]), so a corrupt file surfaces as an error naming it when it is read.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{DataError, Split};

/// Image file extensions that are read (compared case-insensitively).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Loads `root/train` and `root/test` as splits of `channels` x `size` x `size` images;
/// returns (train, test, class names).
pub(crate) fn load_image_folder(
    root: &Path,
    channels: usize,
    size: usize,
) -> Result<(Split, Split, Vec<String>), DataError> {
    let train_dir = root.join("train");
    let test_dir = root.join("test");
    for dir in [&train_dir, &test_dir] {
        if !dir.is_dir() {
            return Err(DataError::Invalid(format!(
                "{} is not a directory; an image folder is laid out as \
                 <root>/train/<class>/*.png|jpg and <root>/test/<class>/*.png|jpg",
                dir.display()
            )));
        }
    }
    let classes = sorted_entries(&train_dir, |p| p.is_dir())?;
    if classes.is_empty() {
        return Err(DataError::Invalid(format!("{} has no class sub-directories", train_dir.display())));
    }
    if classes.len() > usize::from(u16::MAX) {
        return Err(DataError::Invalid(format!(
            "{} has {} classes, more than the {} supported",
            train_dir.display(),
            classes.len(),
            u16::MAX
        )));
    }
    // Join with the raw OS names so that non-UTF-8 directory names still resolve.
    let dir_names: Vec<OsString> = classes.iter().filter_map(|p| p.file_name().map(|n| n.to_os_string())).collect();
    let names: Vec<String> = classes.iter().map(|p| file_name(p)).collect();
    let train = list_split(&train_dir, &dir_names, channels, size)?;
    for test_class in sorted_entries(&test_dir, |p| p.is_dir())? {
        if !test_class.file_name().is_some_and(|n| dir_names.iter().any(|d| d == n)) {
            return Err(DataError::Invalid(format!(
                "{} is a class that {} does not have",
                test_class.display(),
                train_dir.display()
            )));
        }
    }
    let test = list_split(&test_dir, &dir_names, channels, size)?;
    Ok((train, test, names))
}

/// The image files of `dir/<class>/` for every class in `names` (absent class directories hold none).
fn list_split(dir: &Path, names: &[OsString], channels: usize, size: usize) -> Result<Split, DataError> {
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    for (label, name) in names.iter().enumerate() {
        let class_dir = dir.join(name);
        if !class_dir.is_dir() {
            continue;
        }
        let files = sorted_entries(&class_dir, |p| p.is_file() && is_image(p))?;
        labels.extend(std::iter::repeat_n(label as u16, files.len()));
        paths.extend(files);
    }
    Split::from_files((channels, size, size), paths, labels)
}

/// The non-hidden entries of `dir` accepted by `keep`, sorted by path.
fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if !file_name(&path).starts_with('.') && keep(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}
