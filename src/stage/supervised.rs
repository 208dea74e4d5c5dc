//! `supervised`: cross-entropy on the labelled view, with optional label smoothing.

use burnish_augment::View;

use super::{cross_entropy, Metric, Stage, StageContext, StageOutput};
use crate::backend::TrainBackend;
use crate::step::{Stream, ViewKey};

/// Cross-entropy `CE(f(x_l), y)` on the labelled stream's view.
#[derive(Debug, Clone)]
pub struct Supervised {
    /// The labelled view the loss reads (default: weak).
    pub view: View,
    /// Label smoothing ε (default 0).
    pub label_smoothing: f64,
}

impl Default for Supervised {
    fn default() -> Self {
        Self { view: View::Weak, label_smoothing: 0.0 }
    }
}

impl<B: TrainBackend> Stage<B> for Supervised {
    fn kind(&self) -> &'static str {
        "supervised"
    }

    fn views(&self) -> Vec<ViewKey> {
        vec![ViewKey::new(Stream::Labeled, self.view)]
    }

    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B> {
        let key = ViewKey::new(Stream::Labeled, self.view);
        let logits = ctx.forward.logits(key).expect("the step forwards every view a stage lists");
        let labels = ctx.batch.labels(Stream::Labeled).expect("a labelled view comes with labels").clone();
        let acc = logits.clone().detach().argmax(1).squeeze_dim::<1>(1).equal(labels.clone()).float().mean();
        StageOutput::new(cross_entropy(logits, labels, self.label_smoothing), vec![Metric { name: "acc", value: acc }])
    }
}
