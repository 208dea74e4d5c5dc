//! Datasets: loading, look-up and labelled/unlabeled splits (SPEC §8).
//!
//! [`load`] finds and reads a data set into a [`Dataset`] of two [`Split`]s; a split hands out each
//! image as interleaved HWC `u8` pixels through [`Split::read_pixels`], which worker threads call
//! concurrently. [`labeled_indices`] and [`unlabeled_indices`] make the semi-supervised split.
//! Every failure is a [`DataError`] naming the file and what was wrong.

mod cifar;
mod dataset;
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
pub use labels::{labeled_indices, unlabeled_indices};
pub use lookup::{candidate_dirs, find_dataset_dir, DATA_ENV, SYSTEM_DATA_DIR};
pub use split::{decode_image, Split};
pub use synthetic::SyntheticOptions;
