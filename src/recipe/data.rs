//! The `[data]` section: which data set, how it is split and batched, and which views each stream gets.

use std::path::PathBuf;

use burnish_augment::View;
use serde::{Deserialize, Serialize};

use crate::check::{count_at_least, Check, Problem};
use crate::data::{DatasetKind, DEFAULT_IMAGE_CHANNELS, DEFAULT_IMAGE_SIZE};
use crate::named;

/// Where the data comes from and how each step's batch is made (docs/data-flow.md, "Data").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// The data set (required): fashion-mnist, mnist, cifar10, cifar100, image-folder or synthetic.
    #[serde(with = "named::one")]
    pub dataset: DatasetKind,
    /// Where the data set lies; absent = look it up under `$BURNISH_DATA` and the system data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Labelled images per class; absent = every training image is labelled (fully supervised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_per_class: Option<usize>,
    /// Labelled images per step (B).
    #[serde(default = "default::batch_size")]
    pub batch_size: usize,
    /// Unlabeled images per labelled one (μ); 0 = no unlabeled stream.
    #[serde(default)]
    pub mu: usize,
    /// Training images set aside, drawn by the split seed and never trained on: the unlabeled held-out set that
    /// `burnish measure --split holdout` and `eval.measure_every` measure Ŝ_ρ on (the IAM paper's F.1 protocol
    /// holds out 5,000 of CIFAR-10's 50,000). 0 = none.
    #[serde(default)]
    pub holdout: usize,
    /// Which training images form the unlabeled pool.
    #[serde(default)]
    pub unlabeled: UnlabeledPool,
    /// Views made of each labelled image.
    #[serde(default = "default::labeled_views", with = "named::list")]
    pub labeled_views: Vec<View>,
    /// Views made of each unlabeled image.
    #[serde(default = "default::unlabeled_views", with = "named::list")]
    pub unlabeled_views: Vec<View>,
    /// Threads that decode and augment images.
    #[serde(default = "default::workers")]
    pub workers: usize,
    /// Steps prepared ahead of training.
    #[serde(default = "default::prefetch")]
    pub prefetch: usize,
    /// image-folder only: side every image is resized to.
    #[serde(default = "default::image_size")]
    pub image_size: usize,
    /// image-folder only: 1 (gray) or 3 (RGB) channels.
    #[serde(default = "default::image_channels")]
    pub image_channels: usize,
    /// synthetic only: number of training images generated.
    #[serde(default = "default::synthetic_train_size")]
    pub synthetic_train_size: usize,
    /// synthetic only: number of test images generated.
    #[serde(default = "default::synthetic_test_size")]
    pub synthetic_test_size: usize,
    /// Seed of the labelled/unlabeled split; a loaded recipe always has it (absent in the file = the top-level seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
}

/// Which training images the unlabeled stream draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnlabeledPool {
    /// The whole training set, labelled images included (the FixMatch convention).
    #[default]
    All,
    /// Only the images that are not labelled.
    Rest,
}

/// Defaults of the `[data]` keys.
mod default {
    use super::*;

    pub(super) fn batch_size() -> usize {
        64
    }
    pub(super) fn labeled_views() -> Vec<View> {
        vec![View::Weak]
    }
    pub(super) fn unlabeled_views() -> Vec<View> {
        vec![View::Weak, View::Strong]
    }
    pub(super) fn workers() -> usize {
        2
    }
    pub(super) fn prefetch() -> usize {
        4
    }
    pub(super) fn image_size() -> usize {
        DEFAULT_IMAGE_SIZE
    }
    pub(super) fn image_channels() -> usize {
        DEFAULT_IMAGE_CHANNELS
    }
    pub(super) fn synthetic_train_size() -> usize {
        10_000
    }
    pub(super) fn synthetic_test_size() -> usize {
        2_000
    }
}

impl DataSection {
    /// Whether each step also draws μB unlabeled images.
    pub fn has_unlabeled_stream(&self) -> bool {
        self.mu > 0
    }

    /// Checks the ranges of the section's own keys (cross-section rules live in `validate`).
    pub(crate) fn validate(&self) -> Check {
        count_at_least("data.batch_size", self.batch_size, 1)?;
        count_at_least("data.workers", self.workers, 1)?;
        count_at_least("data.prefetch", self.prefetch, 1)?;
        count_at_least("data.image_size", self.image_size, 1)?;
        if !matches!(self.image_channels, 1 | 3) {
            return Err(Problem::new("data.image_channels", format!("must be 1 or 3, got {}", self.image_channels)));
        }
        count_at_least("data.synthetic_train_size", self.synthetic_train_size, 1)?;
        count_at_least("data.synthetic_test_size", self.synthetic_test_size, 1)?;
        if self.labeled_views.is_empty() {
            return Err(Problem::new("data.labeled_views", "must list at least one view"));
        }
        if self.has_unlabeled_stream() && self.unlabeled_views.is_empty() {
            return Err(Problem::new(
                "data.unlabeled_views",
                format!("must list at least one view when data.mu is {}", self.mu),
            ));
        }
        Ok(())
    }
}
