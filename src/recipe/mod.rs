//! Recipes: one TOML file that says everything about a training run (data, model, loss stages, update rule,
//! optimiser, schedule, EMA, evaluation, checkpoints, divergence).
//!
//! Loading goes: parse (keeping spans) → apply `--set KEY=VALUE` overrides → deserialise through a path-tracking
//! deserializer → fill the split seed → validate what types cannot express, ending with the memory budget (the least
//! memory the recipe needs against what the machine has; see `budget.rs`). Every error names the key path
//! (`stage.1.threshold`; stage indices are 0-based) and where it came from: `file:line:column`, or the `--set`
//! argument that wrote it. Defaults sit next to each section's definition; [`Recipe::to_toml`] writes the
//! resolved recipe with every default filled in.

mod budget;
mod checkpoint;
mod data;
mod ema;
mod error;
mod eval;
mod locate;
mod model;
mod optimizer;
mod overrides;
mod schedule;
mod stage;
mod tracked;
mod train;
mod update;
mod validate;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::model::{Arch, ArchError};
pub use crate::stage::{
    EntropySpec, FixMatchNormalize, FixMatchSpec, GgcrSpec, IamDDistribution, IamDSource, IamDSpec, NtXentSpec,
    PseudoLabelKind, StageSpec, SupervisedSpec,
};
pub use crate::update::{AsamSpec, IamSSpec, PerturbedLossKind, PlainSpec, SamSpec, UpdateSection};
pub use checkpoint::CheckpointSection;
pub use data::{DataSection, UnlabeledPool};
pub use ema::EmaSection;
pub use error::{Location, RecipeError};
pub use eval::{EvalSection, ProbeOptimizer};
pub use model::{ModelSection, ProjectionSection};
pub use optimizer::{OptimizerKind, OptimizerSection};
pub use schedule::{ScheduleKind, ScheduleSection};
pub use train::{NonFinitePolicy, TrainSection};

use crate::stage::Supply;
use crate::step::ViewKey;
use locate::{syntax_error, Locator};
use tracked::Tracked;

/// A training recipe, as read from a TOML file and validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Short name (letters, digits, `-`, `_`, `.`); names run folders.
    pub name: String,
    /// One line shown by `burnish recipes`.
    #[serde(default)]
    pub description: String,
    /// Run seed: initialisation, sampling and augmentation.
    #[serde(default)]
    pub seed: u64,
    /// `[data]`: data set, split, batches and views.
    pub data: DataSection,
    /// `[model]`: backbone and projection head.
    pub model: ModelSection,
    /// `[[stage]]`: the loss terms, in file order.
    #[serde(rename = "stage")]
    pub stages: Vec<StageSpec>,
    /// `[update]`: the update rule.
    #[serde(default)]
    pub update: UpdateSection,
    /// `[optimizer]`: the optimiser.
    #[serde(default)]
    pub optimizer: OptimizerSection,
    /// `[schedule]`: training length and learning-rate schedule.
    pub schedule: ScheduleSection,
    /// `[ema]`: the parameter EMA.
    #[serde(default)]
    pub ema: EmaSection,
    /// `[eval]`: evaluation during training.
    #[serde(default)]
    pub eval: EvalSection,
    /// `[checkpoint]`: checkpointing.
    #[serde(default)]
    pub checkpoint: CheckpointSection,
    /// `[train]`: the loop's response to diverging steps.
    #[serde(default)]
    pub train: TrainSection,
}

impl Recipe {
    /// Reads and validates the recipe at `path`, then applies `overrides` (`KEY=VALUE`, as given to `--set`).
    pub fn from_file(path: &Path, overrides: &[String]) -> Result<Recipe, RecipeError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| RecipeError::Read { path: path.to_path_buf(), source })?;
        Recipe::from_str(&text, &path.display().to_string(), overrides)
    }

    /// Parses and validates recipe `text`; `origin` (usually the file name) starts every error message.
    pub fn from_str(text: &str, origin: &str, overrides: &[String]) -> Result<Recipe, RecipeError> {
        let doc = toml_edit::ImDocument::parse(text.to_string())
            .map_err(|e| syntax_error(origin, text, e.message(), e.span()))?;
        let mut tree: toml::Table =
            toml::from_str(text).map_err(|e| syntax_error(origin, text, e.message(), e.span()))?;
        let applied = overrides::apply(&mut tree, overrides)?;
        let locator = Locator::new(origin, doc, applied);

        stage::check_tables(&tree).map_err(|e| locator.path_error(e, &tree))?;
        update::check_table(&mut tree).map_err(|e| locator.path_error(e, &tree))?;
        let mut recipe = Recipe::deserialize(Tracked::new(toml::Value::Table(tree.clone()), Vec::new()))
            .map_err(|e| locator.path_error(e, &tree))?;
        recipe.data.split_seed.get_or_insert(recipe.seed);
        validate::recipe(&recipe).map_err(|p| locator.problem(p))?;
        Ok(recipe)
    }

    /// The resolved recipe as TOML, every default written out: what `burnish check` prints and run folders keep.
    /// [`Recipe::from_str`] reads it back to an equal recipe.
    ///
    /// # Panics
    /// If an integer exceeds TOML's `i64` range, which no recipe read from TOML can contain.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a recipe holds only TOML-representable values (integers within i64)")
    }

    /// Seed of the labelled/unlabeled split (the top-level seed unless `data.split_seed` says otherwise).
    pub fn split_seed(&self) -> u64 {
        self.data.split_seed.unwrap_or(self.seed)
    }

    /// Whether any stage is of the given `kind` (as recipes name it, e.g. `"fixmatch"`).
    pub fn has_stage(&self, kind: &str) -> bool {
        self.stages.iter().any(|s| s.kind() == kind)
    }

    /// What the data and model sections provide to the stages.
    pub fn supply(&self) -> Supply<'_> {
        Supply {
            labeled_views: &self.data.labeled_views,
            unlabeled_views: &self.data.unlabeled_views,
            unlabeled_stream: self.data.has_unlabeled_stream(),
            labels_per_class: self.data.labels_per_class,
            projection: self.model.projection.is_some(),
            stages: &self.stages,
        }
    }

    /// Every view some stage reads, each once, in first-use order (the views of the step's clean forward). Stages
    /// whose needs cannot be decided are skipped: validation has reported them before this is used.
    pub fn stage_views(&self) -> Vec<ViewKey> {
        let supply = self.supply();
        let mut keys: Vec<ViewKey> = Vec::new();
        for (i, stage) in self.stages.iter().enumerate() {
            for k in stage.needs(i, &supply).map(|n| n.views).unwrap_or_default() {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        keys
    }
}
