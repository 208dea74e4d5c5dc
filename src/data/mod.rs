//! Datasets: loading, look-up and labelled/unlabeled splits (docs/data-flow.md, "Data").
//!
//! [`load`] finds and reads a data set into a [`Dataset`] of two [`Split`]s; a split hands out each
//! image as interleaved HWC `u8` pixels through [`Split::read_pixels`], which worker threads call
//! concurrently. [`labeled_indices`] and [`unlabeled_indices`] make the semi-supervised split.
//! Every failure is a [`DataError`] naming the file and what was wrong. [`download`] fetches the public data sets'
//! official files (`burnish data get`).

mod cifar;
mod dataset;
pub mod download;
mod error;
mod files;
mod idx;
pub mod image_folder;
mod kind;
mod labels;
pub mod lookup;
mod split;
pub mod synthetic;

pub use cifar::cifar_split_from_bytes;
pub use dataset::{
    load, load_with_env, Dataset, LoadOptions, DEFAULT_IMAGE_CHANNELS, DEFAULT_IMAGE_SIZE, IMAGE_FOLDER_MEAN,
    IMAGE_FOLDER_STD,
};
pub use error::DataError;
pub use idx::idx_split_from_bytes;
pub use kind::DatasetKind;
pub use labels::{holdout_indices, labeled_indices, unlabeled_indices};
pub use lookup::{
    candidate_dirs, candidate_dirs_with, default_data_root, download_root, find_dataset_dir, find_dataset_dir_with,
    DATA_ENV, SYSTEM_DATA_DIR,
};
pub use split::{decode_image, Split};
pub use synthetic::SyntheticOptions;
