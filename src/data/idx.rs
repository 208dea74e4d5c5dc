//! The IDX format of MNIST and Fashion-MNIST (<http://yann.lecun.com/exdb/mnist/>).
//!
//! A file is a big-endian header — magic `0x00000803` (u8 data, 3 dimensions) for images or `0x00000801`
//! (u8 data, 1 dimension) for labels, then one u32 per dimension — followed by the raw bytes. Files may
//! be gzipped (`.gz`), as distributed and as Debian's `dataset-fashion-mnist` installs them.
//!
//! The header's sizes are never trusted for an allocation: a raw file's length is compared with what the header
//! claims before the body is read, a gzipped stream is read only up to the claim (anything after it is counted,
//! not kept), and a claim larger than the memory available is refused before reading. So a corrupt 16-byte header
//! claiming 10⁹ images is an error naming the file, not gigabytes allocated.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use super::files::{find_maybe_gz, is_gz, open_maybe_gz};
use super::{DataError, Split};
use crate::memory;

/// Magic number of an IDX file of u8 images (3 dimensions: count, rows, columns).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels (1 dimension: count).
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Training and test file names, without the optional `.gz`.
const TRAIN_FILES: (&str, &str) = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte");
const TEST_FILES: (&str, &str) = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");

/// Bytes reserved up front for a body whose length only the header vouches for (a gzipped stream); the buffer
/// grows from there as data actually arrives.
const UNVOUCHED_RESERVE: usize = 1 << 20;

/// Loads the training and test splits from `dir` (the four standard IDX files, each raw or `.gz`).
pub(crate) fn load_idx(dir: &Path, num_classes: usize) -> Result<(Split, Split), DataError> {
    let train = load_pair(dir, TRAIN_FILES, num_classes)?;
    let test = load_pair(dir, TEST_FILES, num_classes)?;
    Ok((train, test))
}

fn load_pair(dir: &Path, (images_name, labels_name): (&str, &str), num_classes: usize) -> Result<Split, DataError> {
    let images_path = find_maybe_gz(dir, images_name)?;
    let labels_path = find_maybe_gz(dir, labels_name)?;
    let (source, len) = open_maybe_gz(&images_path)?;
    let images = read_images(&images_path, source, len)?;
    let (source, len) = open_maybe_gz(&labels_path)?;
    let labels = read_labels(&labels_path, source, len)?;
    make_split(images, &images_path, labels, &labels_path, num_classes)
}

/// Reads an IDX image file and its label file from memory into a split, exactly as [`crate::data::load`] reads them
/// from disk: contents whose name ends in `.gz` are gunzipped, the names appear in errors, and every label must be
/// below `num_classes`. For tests and fuzzing of the reader.
pub fn idx_split_from_bytes(
    (images_path, images): (&Path, &[u8]),
    (labels_path, labels): (&Path, &[u8]),
    num_classes: usize,
) -> Result<Split, DataError> {
    let images = if is_gz(images_path) {
        read_images(images_path, GzDecoder::new(images), None)?
    } else {
        read_images(images_path, images, Some(images.len() as u64))?
    };
    let labels = if is_gz(labels_path) {
        read_labels(labels_path, GzDecoder::new(labels), None)?
    } else {
        read_labels(labels_path, labels, Some(labels.len() as u64))?
    };
    make_split(images, images_path, labels, labels_path, num_classes)
}

/// The images of an IDX file: `count` images of `rows` × `cols` pixels, back to back.
struct Images {
    count: usize,
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
}

/// Checks that images and labels agree and the labels are in range, and makes the split.
fn make_split(
    images: Images,
    images_path: &Path,
    labels: Vec<u8>,
    labels_path: &Path,
    num_classes: usize,
) -> Result<Split, DataError> {
    if labels.len() != images.count {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: images.count,
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
        });
    }
    if let Some((i, &bad)) = labels.iter().enumerate().find(|(_, &l)| usize::from(l) >= num_classes) {
        return Err(DataError::LabelOutOfRange {
            source_name: format!("{}[#{i}]", labels_path.display()),
            label: usize::from(bad),
            num_classes,
        });
    }
    let labels = labels.into_iter().map(u16::from).collect();
    Split::in_memory((1, images.rows, images.cols), labels, images.pixels, images_path.display().to_string())
}

/// Reads an IDX image file from `source` (already gunzipped); `len` is its length when known (a raw file).
fn read_images(path: &Path, mut source: impl Read, len: Option<u64>) -> Result<Images, DataError> {
    let dims = read_header(path, &mut source, "images", IMAGES_MAGIC)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::Invalid(format!("{}: images of size {rows}x{cols}", path.display())));
    }
    // Each dimension is a u32, so the product fits in a u128.
    let body = count as u128 * rows as u128 * cols as u128;
    let pixels = read_body(path, &mut source, header_len(IMAGES_MAGIC), body, len)?;
    Ok(Images { count, rows, cols, pixels })
}

/// Reads an IDX label file from `source` (already gunzipped); `len` is its length when known (a raw file).
fn read_labels(path: &Path, mut source: impl Read, len: Option<u64>) -> Result<Vec<u8>, DataError> {
    let dims = read_header(path, &mut source, "labels", LABELS_MAGIC)?;
    read_body(path, &mut source, header_len(LABELS_MAGIC), dims[0] as u128, len)
}

/// Bytes of the header of a file with this magic number: the magic and one u32 per dimension.
fn header_len(magic: u32) -> u64 {
    4 + 4 * u64::from(magic & 0xff)
}

/// Reads the header of an IDX file: checks the magic and returns the dimensions.
fn read_header(path: &Path, source: &mut impl Read, what: &'static str, magic: u32) -> Result<Vec<usize>, DataError> {
    let truncated = |expected: u64, actual: usize| DataError::Truncated {
        path: path.to_path_buf(),
        expected,
        actual: actual as u64,
    };
    let mut word = [0u8; 4];
    let n = read_up_to(path, source, &mut word)?;
    if n < word.len() {
        return Err(truncated(4, n));
    }
    let found = u32::from_be_bytes(word);
    if found != magic {
        return Err(DataError::BadMagic { path: path.to_path_buf(), what, expected: magic, found });
    }
    let mut dims = Vec::new();
    for d in 0..(magic & 0xff) as usize {
        let n = read_up_to(path, source, &mut word)?;
        if n < word.len() {
            return Err(truncated(header_len(magic), 4 + 4 * d + n));
        }
        dims.push(u32::from_be_bytes(word) as usize);
    }
    Ok(dims)
}

/// Fills `buf` from `source` as far as the data goes; returns how many bytes were read.
fn read_up_to(path: &Path, source: &mut impl Read, buf: &mut [u8]) -> Result<usize, DataError> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    Ok(filled)
}

/// Reads the `body` bytes the header claims after a `header`-byte header, refusing a claim the file (`len`, when
/// known) or the machine's memory cannot hold before reading it, and data after the claimed body.
fn read_body(
    path: &Path,
    source: &mut impl Read,
    header: u64,
    body: u128,
    len: Option<u64>,
) -> Result<Vec<u8>, DataError> {
    let expected = u128::from(header) + body;
    let as_u64 = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
    if let Some(len) = len {
        if expected > u128::from(len) {
            return Err(DataError::Truncated { path: path.to_path_buf(), expected: as_u64(expected), actual: len });
        }
        if expected < u128::from(len) {
            return Err(DataError::TrailingData { path: path.to_path_buf(), expected: as_u64(expected), actual: len });
        }
    }
    let available = memory::available();
    let body = match usize::try_from(body) {
        Ok(body) if body as u64 <= available.bytes => body,
        _ => {
            return Err(DataError::TooLarge {
                path: path.to_path_buf(),
                claimed: body,
                available: available.bytes,
                figure: available.source,
            })
        }
    };
    // A raw file's length vouches for the body; a gzipped stream's header alone does not.
    let reserve = if len.is_some() { body } else { body.min(UNVOUCHED_RESERVE) };
    let mut bytes = Vec::with_capacity(reserve);
    source.by_ref().take(body as u64).read_to_end(&mut bytes).map_err(|e| DataError::io(path, e))?;
    if bytes.len() < body {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: as_u64(expected),
            actual: header + bytes.len() as u64,
        });
    }
    // Whatever follows the claimed body is counted, not kept.
    let extra = std::io::copy(source, &mut std::io::sink()).map_err(|e| DataError::io(path, e))?;
    if extra > 0 {
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            expected: as_u64(expected),
            actual: as_u64(expected + u128::from(extra)),
        });
    }
    Ok(bytes)
}
