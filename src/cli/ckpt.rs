//! Reading a checkpoint back for the commands that inspect one (`eval`, `measure`, `probe`, `export`): the recipe
//! embedded in it, its data set and its raw and EMA weights.

use std::path::Path;

use anyhow::Result;

use crate::backend::{device, Train};
use crate::checkpoint::Checkpoint;
use crate::data::Split;
use crate::model::Net;
use crate::plan::{self, DataPlan};
use crate::recipe::Recipe;
use crate::train::Trainer;

/// Which images of the data set a command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitChoice {
    /// The training split.
    Train,
    /// The test split.
    Test,
    /// The training images the recipe holds out (`data.holdout`) and never trains on.
    Holdout,
}

impl SplitChoice {
    /// The split the images come from, and which of its images (`None`: all of them).
    pub fn of(self, data: &DataPlan) -> Result<(&Split, Option<&[usize]>)> {
        Ok(match self {
            SplitChoice::Train => (&data.dataset.train, None),
            SplitChoice::Test => (&data.dataset.test, None),
            SplitChoice::Holdout => {
                anyhow::ensure!(
                    !data.holdout.is_empty(),
                    "--split holdout: the run's recipe holds out no images (set data.holdout, e.g. 5000, and train again)"
                );
                (&data.dataset.train, Some(data.holdout.as_slice()))
            }
        })
    }

    /// The split's name in printed results.
    pub fn name(self) -> &'static str {
        match self {
            SplitChoice::Train => "train",
            SplitChoice::Test => "test",
            SplitChoice::Holdout => "holdout",
        }
    }
}

/// A checkpoint opened for inspection.
pub struct Loaded {
    /// The recipe the run was trained with.
    pub recipe: Recipe,
    /// Its data set and split.
    pub data: DataPlan,
    /// Steps done when the checkpoint was written.
    pub step: u64,
    checkpoint: Checkpoint,
}

impl Loaded {
    /// Opens `path` and loads the recipe's data set (it also fixes the model's input channels and classes).
    pub fn open(path: &Path) -> Result<Self> {
        let checkpoint = Checkpoint::read(path)?;
        let origin = format!("{} (embedded recipe)", path.display());
        let recipe = Recipe::from_str(&checkpoint.recipe, &origin, &[])?;
        let data = plan::data(&recipe)?;
        Ok(Self { recipe, data, step: checkpoint.step, checkpoint })
    }

    /// Whether the checkpoint holds EMA weights.
    pub fn has_ema(&self) -> bool {
        self.checkpoint.has_ema()
    }

    /// The raw (`ema = false`) or EMA weights as a model on the default device.
    pub fn model(&self, ema: bool) -> Result<Net<Train>> {
        let model = if ema {
            self.checkpoint.load_ema(self.initial_model(), &device())
        } else {
            self.checkpoint.load_model(self.initial_model(), &device())
        };
        model.map_err(anyhow::Error::msg)
    }

    /// The model the run started from (the recipe's seeded initialisation): the floor a probe is compared with.
    pub fn initial_model(&self) -> Net<Train> {
        let (channels, _, _) = self.data.dataset.shape();
        let net = plan::net(&self.recipe, channels, self.data.dataset.num_classes);
        Trainer::<Train>::init_model(&net, self.recipe.seed, &device())
    }
}
