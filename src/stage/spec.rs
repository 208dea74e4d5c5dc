//! What a stage's recipe table declares: its keys (the spec type itself, with serde defaults), its own range
//! checks, what it reads from the step, and how the runtime stage is built. The recipe checks the data and model
//! sections against [`Needs`] once, for every kind (`src/recipe/validate.rs`), so no stage restates them.

use burnish_augment::View;

use super::{Stage, StageSpec};
use crate::backend::TrainBackend;
use crate::check::{Check, Problem};
use crate::step::{Stream, ViewKey};

/// What the recipe's data and model sections provide to the stages.
#[derive(Debug, Clone, Copy)]
pub struct Supply<'a> {
    /// The labelled stream's views, in pipeline order.
    pub labeled_views: &'a [View],
    /// The unlabeled stream's views, in pipeline order (listed even when the stream is not drawn).
    pub unlabeled_views: &'a [View],
    /// Whether an unlabeled stream is drawn (`data.mu > 0`).
    pub unlabeled_stream: bool,
    /// Labelled images per class (`None`: every image is labelled).
    pub labels_per_class: Option<usize>,
    /// Whether the model has a projection head.
    pub projection: bool,
    /// Every stage of the recipe, for stages that depend on another (IAM-D on NT-Xent's distribution).
    pub stages: &'a [StageSpec],
}

/// What a stage reads from the step, declared once by its spec.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Needs {
    /// The views the stage reads from the step's clean forward, in the order it reads them.
    pub views: Vec<ViewKey>,
    /// Whether it reads the labelled stream's labels.
    pub labels: bool,
    /// Whether it reads projection-head outputs.
    pub projection: bool,
    /// Other stage kinds the stage builds on.
    pub stages: Vec<&'static str>,
    /// Whether the stage computes its gradient itself (by extra passes, as `ggcr` does) instead of through its loss:
    /// then only the `plain` rule can use it, since perturbed evaluations cannot repeat those passes.
    pub own_gradient: bool,
    /// The stage's own key whose value made these needs (`view`, `source`): an unmet view or head is reported
    /// there rather than at the data or model key.
    pub chosen_by: Option<&'static str>,
}

impl Needs {
    /// Needs of a stage that reads `views`, nothing else.
    pub fn views(views: Vec<ViewKey>) -> Self {
        Needs { views, ..Needs::default() }
    }

    /// The stream's views among [`Needs::views`], in order.
    pub fn of(&self, stream: Stream) -> Vec<View> {
        self.views.iter().filter(|k| k.stream == stream).map(|k| k.view).collect()
    }
}

/// A stage's weight over training: 0 before `start_step`, then a linear ramp to full weight over `ramp_steps` steps
/// (every stage's `start_step` and `ramp_steps` keys; both 0, the default, is the constant weight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WeightSchedule {
    /// First step at which the stage's weight is not 0.
    pub start_step: u64,
    /// Steps over which the weight ramps linearly from 1/ramp_steps of full to full (0: full at once).
    pub ramp_steps: u64,
}

impl WeightSchedule {
    /// Whether the weight is the same at every step.
    pub fn is_constant(&self) -> bool {
        self.start_step == 0 && self.ramp_steps == 0
    }

    /// The multiplier of the stage's weight at (0-based) `step`, in [0, 1].
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.start_step {
            0.0
        } else if self.ramp_steps == 0 {
            1.0
        } else {
            ((step - self.start_step + 1) as f64 / self.ramp_steps as f64).min(1.0)
        }
    }
}

/// Serde's `skip_serializing_if` for the schedule keys, so recipes without them resolve to the same text as before.
pub(crate) fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The recipe side of a stage kind: implemented by the serde type of its `[[stage]]` table and listed once in
/// the registry in `src/stage/mod.rs`, which derives parsing, `kind` names, validation and building from it.
pub trait StageKind: Sized {
    /// The stage's weight in the summed loss.
    fn weight(&self) -> f64;

    /// How the weight changes over training (its `start_step` and `ramp_steps` keys).
    fn schedule(&self) -> WeightSchedule;

    /// Checks the ranges of the stage's own keys; `at` is its key prefix (`stage.N`).
    fn validate(&self, at: &str) -> Check;

    /// What the stage reads, given what the recipe supplies; a problem when that cannot be decided (the message
    /// names the key at fault, `at` being the stage's key prefix).
    fn needs(&self, at: &str, supply: &Supply<'_>) -> Result<Needs, Problem>;

    /// The runtime stage, reading `needs` (as [`StageKind::needs`] returned them, after the recipe checked them).
    fn build<B: TrainBackend>(&self, supply: &Supply<'_>, needs: Needs) -> Result<Box<dyn Stage<B>>, Problem>;
}
