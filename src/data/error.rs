//! The one error type of the data module.
//!
//! Every variant names the file (or data set) it is about, because loading runs on worker threads
//! and the message is often all a user sees.

use std::path::PathBuf;

use crate::memory::format_bytes;

/// Everything that can go wrong while finding, reading or splitting a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A data-set name that is not one of [`crate::data::DatasetKind`]'s names.
    #[error("unknown data set {name:?}; known data sets: {known}")]
    UnknownDataset {
        /// The name that was asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },

    /// No directory for the data set exists in any of the look-up places.
    #[error("data set {name:?} not found; looked in: {}{}", display_paths(tried), fix.as_ref().map_or(String::new(), |f| format!("; {f}")))]
    NotFound {
        /// The data set's name.
        name: String,
        /// Every directory tried, in look-up order.
        tried: Vec<PathBuf>,
        /// The command that fetches it, for data sets `burnish data get` can download.
        fix: Option<String>,
    },

    /// A file the data set needs is absent; `path` is the name it was expected under.
    #[error("missing file {}{}", path.display(), alternatives(also_tried))]
    MissingFile {
        /// The expected file.
        path: PathBuf,
        /// Other names tried for the same file (e.g. the `.gz` variant).
        also_tried: Vec<PathBuf>,
    },

    /// An I/O error (including a broken gzip stream) while reading a file or directory.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A file is shorter than its header or record size says it must be.
    #[error("{} is truncated: expected {expected} bytes, found {actual}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The number of bytes the format requires.
        expected: u64,
        /// The number of bytes found (after decompression for `.gz`).
        actual: u64,
    },

    /// A file is longer than its header says, so it is probably not the file it claims to be.
    #[error("{} has trailing data: expected {expected} bytes, found {actual}", path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// The number of bytes the header implies.
        expected: u64,
        /// The number of bytes found.
        actual: u64,
    },

    /// A file, or a header in it, claims more data than the memory available: refused before any of it is read.
    #[error(
        "{} claims {} of data but only {} of memory is available ({figure}); the file is corrupt or not what its name says",
        path.display(),
        format_bytes(*claimed),
        format_bytes(u128::from(*available))
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bytes it claims to hold.
        claimed: u128,
        /// The bytes of memory available.
        available: u64,
        /// Where the available figure came from (see [`crate::memory::available`]).
        figure: String,
    },

    /// An IDX file whose magic number is not the one expected for its role.
    #[error("{} is not an IDX {what} file: magic number 0x{found:08x}, expected 0x{expected:08x}", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// "images" or "labels".
        what: &'static str,
        /// The expected magic number.
        expected: u32,
        /// The magic number found.
        found: u32,
    },

    /// A label is not below the data set's number of classes.
    #[error("{source_name}: label {label} is out of range (the data set has {num_classes} classes)")]
    LabelOutOfRange {
        /// The file and record (or file name) the label came from.
        source_name: String,
        /// The label found.
        label: usize,
        /// The number of classes.
        num_classes: usize,
    },

    /// An image file and its label file disagree on the number of items.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images in it.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels in it.
        labels: usize,
    },

    /// An image file that the decoder rejects.
    #[error("corrupt image {}: {message}", path.display())]
    CorruptImage {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },

    /// A class has fewer images than the labelled split asks for.
    #[error("class {class} has {available} training images but {requested} labelled images per class were asked for")]
    NotEnoughImages {
        /// The class index.
        class: usize,
        /// How many images of that class exist.
        available: usize,
        /// How many were asked for.
        requested: usize,
    },

    /// Any other input that does not fit the expected layout or arguments (the message says which).
    #[error("{0}")]
    Invalid(String),
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "(nowhere)".to_string();
    }
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn alternatives(also: &[PathBuf]) -> String {
    if also.is_empty() {
        String::new()
    } else {
        format!(" (also tried {})", display_paths(also))
    }
}

impl DataError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }
}
