//! A loaded data set and the one entry point, [`load`].

use std::ffi::OsStr;
use std::path::Path;

use super::cifar::{load_cifar, Variant};
use super::idx::load_idx;
use super::image_folder::load_image_folder;
use super::lookup::{find_dataset_dir, DATA_ENV};
use super::synthetic::{self, SyntheticOptions};
use super::{DataError, DatasetKind, Split};

/// Default side of image-folder images after resizing.
pub const DEFAULT_IMAGE_SIZE: usize = 32;
/// Default channel count of image-folder images (RGB).
pub const DEFAULT_IMAGE_CHANNELS: usize = 3;
/// Normalisation mean used for image folders (not computed, to avoid decoding every file at load).
pub const IMAGE_FOLDER_MEAN: f32 = 0.5;
/// Normalisation standard deviation used for image folders.
pub const IMAGE_FOLDER_STD: f32 = 0.25;

/// A data set: its official train and test splits and what is needed to normalise and report on it.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The data set's name (its [`DatasetKind`] name).
    pub name: String,
    /// The training split (labelled and unlabeled images are both drawn from it).
    pub train: Split,
    /// The official test split.
    pub test: Split,
    /// Number of classes; every label is below it.
    pub num_classes: usize,
    /// A name per class, in label order.
    pub class_names: Vec<String>,
    /// Per-channel normalisation mean, in [0, 1] pixel units.
    pub mean: Vec<f32>,
    /// Per-channel normalisation standard deviation, in [0, 1] pixel units.
    pub std: Vec<f32>,
}

impl Dataset {
    /// (channels, height, width) of every image, in both splits.
    pub fn shape(&self) -> (usize, usize, usize) {
        self.train.shape()
    }

    /// Number of channels (1 or 3).
    pub fn channels(&self) -> usize {
        self.train.shape().0
    }

    /// Checks the invariants the rest of the crate relies on.
    fn validate(self) -> Result<Dataset, DataError> {
        let invalid = |what: String| Err(DataError::Invalid(format!("data set {}: {what}", self.name)));
        if self.train.shape() != self.test.shape() {
            return invalid(format!(
                "train images are {:?} but test images are {:?} (channels, height, width)",
                self.train.shape(),
                self.test.shape()
            ));
        }
        if self.class_names.len() != self.num_classes {
            return invalid(format!("{} class names for {} classes", self.class_names.len(), self.num_classes));
        }
        if self.mean.len() != self.channels() || self.std.len() != self.channels() {
            return invalid("normalisation constants do not match the channel count".to_string());
        }
        Ok(self)
    }
}

/// Options of [`load`] that only some data sets use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// image-folder: side every image is resized to (triangle filter) when it has another size.
    pub image_size: usize,
    /// image-folder: channels every image is converted to, 1 (gray) or 3 (RGB).
    pub image_channels: usize,
    /// synthetic: sizes and seed.
    pub synthetic: SyntheticOptions,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            image_size: DEFAULT_IMAGE_SIZE,
            image_channels: DEFAULT_IMAGE_CHANNELS,
            synthetic: SyntheticOptions::default(),
        }
    }
}

/// Loads a data set, looking its directory up at `path`, then `$BURNISH_DATA/<name>`, then the default root's
/// `<name>` (`~/.local/share/burnish/data`, where `burnish data get` installs), then `/usr/share/datasets/<name>`
/// (see [`crate::data::lookup`]); `synthetic` ignores `path` and is generated.
///
/// Normalisation constants: the standard ones for MNIST (0.1307/0.3081), Fashion-MNIST (0.2860/0.3530),
/// CIFAR-10 and CIFAR-100; [`IMAGE_FOLDER_MEAN`]/[`IMAGE_FOLDER_STD`] for image folders; computed from
/// the training images for `synthetic`.
pub fn load(kind: DatasetKind, path: Option<&Path>, options: &LoadOptions) -> Result<Dataset, DataError> {
    let env = std::env::var_os(DATA_ENV);
    load_with_env(kind, path, options, env.as_deref())
}

/// [`load`] with the value of `$BURNISH_DATA` passed in rather than read from the process environment
/// (for tests, which run in parallel threads sharing one environment).
pub fn load_with_env(
    kind: DatasetKind,
    path: Option<&Path>,
    options: &LoadOptions,
    env_value: Option<&OsStr>,
) -> Result<Dataset, DataError> {
    if kind == DatasetKind::Synthetic {
        return synthetic::generate(&options.synthetic)?.validate();
    }
    let dir = find_dataset_dir(kind.name(), path, env_value)?;
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let dataset = match kind {
        DatasetKind::FashionMnist | DatasetKind::Mnist => {
            let (train, test) = load_idx(&dir, 10)?;
            let (mean, std, class_names) = if kind == DatasetKind::Mnist {
                (0.1307, 0.3081, names(&MNIST_NAMES))
            } else {
                (0.2860, 0.3530, names(&FASHION_MNIST_NAMES))
            };
            Dataset {
                name: kind.name().to_string(),
                train,
                test,
                num_classes: 10,
                class_names,
                mean: vec![mean],
                std: vec![std],
            }
        }
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
            let (variant, mean, std) = if kind == DatasetKind::Cifar10 {
                (Variant::Ten, [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
            } else {
                (Variant::Hundred, [0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762])
            };
            let (train, test, class_names) = load_cifar(&dir, variant)?;
            Dataset {
                name: kind.name().to_string(),
                train,
                test,
                num_classes: class_names.len(),
                class_names,
                mean: mean.to_vec(),
                std: std.to_vec(),
            }
        }
        DatasetKind::ImageFolder => {
            let channels = options.image_channels;
            let (train, test, class_names) = load_image_folder(&dir, channels, options.image_size)?;
            Dataset {
                name: kind.name().to_string(),
                train,
                test,
                num_classes: class_names.len(),
                class_names,
                mean: vec![IMAGE_FOLDER_MEAN; channels],
                std: vec![IMAGE_FOLDER_STD; channels],
            }
        }
        DatasetKind::Synthetic => unreachable!("handled above"),
    };
    dataset.validate()
}

/// MNIST's class names.
const MNIST_NAMES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Fashion-MNIST's class names, in label order.
const FASHION_MNIST_NAMES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
