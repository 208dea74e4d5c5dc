//! Reading a checkpoint back for the commands that inspect one (`eval`, `measure`, `probe`, `export`): the recipe
//! embedded in it, its data set and its raw and EMA weights.

use std::path::Path;

use anyhow::{Context, Result};

use crate::backend::{device, Train};
use crate::data::{Dataset, Split};
use crate::model::Net;
use crate::plan::{self, DataPlan};
use crate::recipe::Recipe;
use crate::train::checkpoint::{self, Sections};
use crate::train::{load_model_bytes, Trainer};

/// Which split of the data set a command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitChoice {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

impl SplitChoice {
    /// The chosen split of `dataset`.
    pub fn of(self, dataset: &Dataset) -> &Split {
        match self {
            SplitChoice::Train => &dataset.train,
            SplitChoice::Test => &dataset.test,
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
    sections: Sections,
}

impl Loaded {
    /// Opens `path` and loads the recipe's data set (it also fixes the model's input channels and classes).
    pub fn open(path: &Path) -> Result<Self> {
        let mut sections = checkpoint::read(path)?;
        let meta = sections.take("meta").context("the checkpoint has no recipe (meta section)")?;
        let origin = format!("{} (embedded recipe)", path.display());
        let recipe = Recipe::from_str(&String::from_utf8(meta).context("embedded recipe is not UTF-8")?, &origin, &[])?;
        let step = sections
            .take("step")
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_le_bytes)
            .with_context(|| format!("{}: has no valid `step` section", path.display()))?;
        let data = plan::data(&recipe)?;
        Ok(Self { recipe, data, step, sections })
    }

    /// Whether the checkpoint holds EMA weights.
    pub fn has_ema(&self) -> bool {
        self.sections.0.iter().any(|(n, _)| n == "ema")
    }

    /// The raw (`ema = false`) or EMA weights as a model on the default device.
    pub fn model(&self, ema: bool) -> Result<Net<Train>> {
        let section = if ema { "ema" } else { "model" };
        let bytes = self
            .sections
            .0
            .iter()
            .find(|(n, _)| n == section)
            .map(|(_, b)| b.clone())
            .with_context(|| format!("the checkpoint has no `{section}` weights"))?;
        load_model_bytes(self.initial_model(), bytes, &device()).map_err(anyhow::Error::msg)
    }

    /// The model the run started from (the recipe's seeded initialisation): the floor a probe is compared with.
    pub fn initial_model(&self) -> Net<Train> {
        let (channels, _, _) = self.data.dataset.shape();
        let net = plan::net(&self.recipe, channels, self.data.dataset.num_classes);
        Trainer::<Train>::init_model(&net, self.recipe.seed, &device())
    }
}
