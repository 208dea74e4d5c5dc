//! The IDX format of MNIST and Fashion-MNIST (<http://yann.lecun.com/exdb/mnist/>).
//!
//! A file is a big-endian header — magic `0x00000803` (u8 data, 3 dimensions) for images or `0x00000801`
//! (u8 data, 1 dimension) for labels, then one u32 per dimension — followed by the raw bytes. Files may
//! be gzipped (`.gz`), as distributed and as Debian's `dataset-fashion-mnist` installs them.

use std::path::Path;

use super::files::{find_maybe_gz, read_all};
use super::{DataError, Split};

/// Magic number of an IDX file of u8 images (3 dimensions: count, rows, columns).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels (1 dimension: count).
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Training and test file names, without the optional `.gz`.
const TRAIN_FILES: (&str, &str) = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte");
const TEST_FILES: (&str, &str) = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");

/// Loads the training and test splits from `dir` (the four standard IDX files, each raw or `.gz`).
pub(crate) fn load_idx(dir: &Path, num_classes: usize) -> Result<(Split, Split), DataError> {
    let train = load_pair(dir, TRAIN_FILES, num_classes)?;
    let test = load_pair(dir, TEST_FILES, num_classes)?;
    Ok((train, test))
}

fn load_pair(dir: &Path, (images_name, labels_name): (&str, &str), num_classes: usize) -> Result<Split, DataError> {
    let images_path = find_maybe_gz(dir, images_name)?;
    let labels_path = find_maybe_gz(dir, labels_name)?;
    let (count, rows, cols, pixels) = parse_images(&images_path, read_all(&images_path)?)?;
    let labels = parse_labels(&labels_path, read_all(&labels_path)?)?;
    if labels.len() != count {
        return Err(DataError::CountMismatch { images_path, images: count, labels_path, labels: labels.len() });
    }
    if let Some((i, &bad)) = labels.iter().enumerate().find(|(_, &l)| usize::from(l) >= num_classes) {
        return Err(DataError::LabelOutOfRange {
            source_name: format!("{}[#{i}]", labels_path.display()),
            label: usize::from(bad),
            num_classes,
        });
    }
    let labels = labels.into_iter().map(u16::from).collect();
    Split::in_memory((1, rows, cols), labels, pixels, images_path.display().to_string())
}

/// Reads the header of an IDX file: checks the magic and returns the dimensions and header length.
fn parse_header(path: &Path, bytes: &[u8], what: &'static str, magic: u32) -> Result<(Vec<usize>, usize), DataError> {
    let truncated = |expected: usize| DataError::Truncated {
        path: path.to_path_buf(),
        expected: expected as u64,
        actual: bytes.len() as u64,
    };
    let word = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if bytes.len() < 4 {
        return Err(truncated(4));
    }
    let found = word(0);
    if found != magic {
        return Err(DataError::BadMagic { path: path.to_path_buf(), what, expected: magic, found });
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(truncated(header));
    }
    let dims = (0..ndims).map(|d| word(4 + 4 * d) as usize).collect();
    Ok((dims, header))
}

/// Checks that `bytes` is exactly `header + body` long, reporting truncation or trailing data.
fn check_size(path: &Path, actual: usize, header: usize, body: Option<usize>) -> Result<(), DataError> {
    let expected = body.and_then(|b| b.checked_add(header));
    match expected {
        Some(e) if e == actual => Ok(()),
        Some(e) if e < actual => {
            Err(DataError::TrailingData { path: path.to_path_buf(), expected: e as u64, actual: actual as u64 })
        }
        _ => Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: expected.map_or(u64::MAX, |e| e as u64),
            actual: actual as u64,
        }),
    }
}

/// Parses an IDX image file into (count, rows, cols, pixels).
fn parse_images(path: &Path, mut bytes: Vec<u8>) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let (dims, header) = parse_header(path, &bytes, "images", IMAGES_MAGIC)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::Invalid(format!("{}: images of size {rows}x{cols}", path.display())));
    }
    let body = count.checked_mul(rows).and_then(|n| n.checked_mul(cols));
    check_size(path, bytes.len(), header, body)?;
    bytes.drain(..header);
    Ok((count, rows, cols, bytes))
}

/// Parses an IDX label file into its labels.
fn parse_labels(path: &Path, mut bytes: Vec<u8>) -> Result<Vec<u8>, DataError> {
    let (dims, header) = parse_header(path, &bytes, "labels", LABELS_MAGIC)?;
    check_size(path, bytes.len(), header, Some(dims[0]))?;
    bytes.drain(..header);
    Ok(bytes)
}
