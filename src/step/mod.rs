//! One training step's inputs: the pipeline batch on the device ([`StepBatch`], keyed by [`Stream`] and
//! [`ViewKey`]) and the one clean forward over every view the stages read ([`Forward`]). The objective that sums the
//! stages over them is `crate::objective`; update rules (`crate::update`) evaluate it at θ and at θ + ε.

mod batch;
mod forward;

pub use batch::{StepBatch, Stream, ViewKey};
pub use forward::Forward;

/// Why a step could not be computed: the batch lacks what the objective or rule reads, or the objective cannot
/// form the loss a rule asks for. Recipe validation rules these out for recipes; they reach code that assembles
/// objectives or batches by hand.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// A view some stage or rule reads is not in the step's batch.
    #[error("the step has no `{0}` images")]
    MissingView(ViewKey),
    /// An objective without stages has no loss.
    #[error("a recipe needs at least one stage")]
    NoStages,
    /// `sam`/`asam` with `loss = "labeled"`, but no stage reads labelled views alone.
    #[error("update.loss = \"labeled\" needs a stage that reads labelled views only")]
    NoLabeledStage,
    /// A stage computes its gradient itself (`ggcr`), which only the `plain` rule can apply.
    #[error("a stage that computes its own gradient (ggcr) combines only with update.rule = \"plain\"")]
    OwnGradient,
}
