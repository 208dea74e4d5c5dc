//! Small file helpers shared by the readers: find a file under one of several names, open it (gunzipping `.gz`),
//! read it whole.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::DataError;
use crate::memory;

/// The first of `dir/<name>` for `name` in `names` that is a file; otherwise a `MissingFile` error naming
/// the first candidate and listing the others.
pub(crate) fn find_file(dir: &Path, names: &[&str]) -> Result<PathBuf, DataError> {
    let candidates: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let mut rest = candidates.into_iter();
    let path = rest.next().unwrap_or_else(|| dir.to_path_buf());
    Err(DataError::MissingFile { path, also_tried: rest.collect() })
}

/// `dir/<name>` or, failing that, `dir/<name>.gz`.
pub(crate) fn find_maybe_gz(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    find_file(dir, &[name, &format!("{name}.gz")])
}

/// `path` opened for reading, gunzipped when its name ends in `.gz`, with the length of what it yields when that is
/// known without reading it (a raw file's size).
pub(crate) fn open_maybe_gz(path: &Path) -> Result<(Box<dyn Read>, Option<u64>), DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = std::io::BufReader::new(file);
    if is_gz(path) {
        Ok((Box::new(flate2::read::GzDecoder::new(reader)), None))
    } else {
        let len = reader.get_ref().metadata().map_err(|e| DataError::io(path, e))?.len();
        Ok((Box::new(reader), Some(len)))
    }
}

/// Whether `path` names a gzipped file.
pub(crate) fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// The whole content of the raw file `path`, refused before reading when it is larger than the memory available.
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>, DataError> {
    let (mut reader, len) = open_maybe_gz(path)?;
    let available = memory::available();
    match len {
        Some(len) if len > available.bytes => {
            return Err(DataError::TooLarge {
                path: path.to_path_buf(),
                claimed: len.into(),
                available: available.bytes,
                figure: available.source,
            })
        }
        _ => {}
    }
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|e| DataError::io(path, e))?;
    Ok(bytes)
}
