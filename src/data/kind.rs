//! The names of the supported data sets.

use std::fmt;
use std::str::FromStr;

use super::DataError;

/// Which data set to load; parsed from and displayed as its recipe name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// Fashion-MNIST (IDX files): 28x28 gray, 10 classes.
    FashionMnist,
    /// MNIST (IDX files): 28x28 gray, 10 classes.
    Mnist,
    /// CIFAR-10 (binary version): 32x32 RGB, 10 classes.
    Cifar10,
    /// CIFAR-100 (binary version, fine labels): 32x32 RGB, 100 classes.
    Cifar100,
    /// A directory of image files, one sub-directory per class (see [`crate::data::image_folder`]).
    ImageFolder,
    /// The built-in seeded generator (see [`crate::data::synthetic`]).
    Synthetic,
}

impl DatasetKind {
    /// Every kind, in the order they are listed in messages.
    pub const ALL: [DatasetKind; 6] = [
        DatasetKind::FashionMnist,
        DatasetKind::Mnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
        DatasetKind::ImageFolder,
        DatasetKind::Synthetic,
    ];

    /// The recipe name, also the directory name looked up under the data roots.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::ImageFolder => "image-folder",
            DatasetKind::Synthetic => "synthetic",
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| DataError::UnknownDataset {
            name: s.to_string(),
            known: DatasetKind::ALL.map(|k| k.name()).join(", "),
        })
    }
}
