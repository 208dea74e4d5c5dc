//! Small file helpers shared by the readers: find a file under one of several names, read it whole
//! (gunzipping `.gz`).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::DataError;

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

/// The whole content of `path`, decompressed when its name ends in `.gz`.
///
/// A broken gzip stream (e.g. a truncated download) is an `Io` error naming the file.
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let mut bytes = Vec::new();
    let result = if gz {
        flate2::read::GzDecoder::new(std::io::BufReader::new(file)).read_to_end(&mut bytes)
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes)
    };
    result.map_err(|e| DataError::io(path, e))?;
    Ok(bytes)
}
