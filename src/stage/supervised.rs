//! `supervised`: cross-entropy on the labelled view, with optional label smoothing (docs/stages.md).

use burnish_augment::View;
use serde::{Deserialize, Serialize};

use super::spec::{is_zero, Needs, StageKind, Supply, WeightSchedule};
use super::{cross_entropy, Metric, Stage, StageContext, StageOutput};
use crate::backend::TrainBackend;
use crate::check::{at_least, in_closed_open, Check, Problem};
use crate::named;
use crate::step::{Stream, ViewKey};

/// `[[stage]] kind = "supervised"`: CE(f(x_l), y) with optional label smoothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisedSpec {
    /// Weight of the loss in the sum.
    #[serde(default = "default::weight")]
    pub weight: f64,
    /// The labelled view the loss is computed on; must be one of `data.labeled_views`.
    #[serde(default = "default::view", with = "named::one")]
    pub view: View,
    /// Label smoothing ε in [0, 1).
    #[serde(default)]
    pub label_smoothing: f64,
    /// First step (0-based) at which the weight is not 0 (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_step: u64,
    /// Steps over which the weight then ramps linearly to full (default 0: at once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ramp_steps: u64,
}

/// Defaults of the stage's keys.
mod default {
    use super::*;

    pub(super) fn weight() -> f64 {
        1.0
    }
    pub(super) fn view() -> View {
        View::Weak
    }
}

impl Default for SupervisedSpec {
    fn default() -> Self {
        SupervisedSpec {
            weight: default::weight(),
            view: default::view(),
            label_smoothing: 0.0,
            start_step: 0,
            ramp_steps: 0,
        }
    }
}

impl StageKind for SupervisedSpec {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn schedule(&self) -> WeightSchedule {
        WeightSchedule { start_step: self.start_step, ramp_steps: self.ramp_steps }
    }

    fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.weight"), self.weight, 0.0)?;
        in_closed_open(&format!("{at}.label_smoothing"), self.label_smoothing, 0.0, 1.0)
    }

    fn needs(&self, _at: &str, _supply: &Supply<'_>) -> Result<Needs, Problem> {
        Ok(Needs {
            views: vec![ViewKey::new(Stream::Labeled, self.view)],
            labels: true,
            chosen_by: Some("view"),
            ..Needs::default()
        })
    }

    fn build<B: TrainBackend>(&self, _supply: &Supply<'_>, _needs: Needs) -> Result<Box<dyn Stage<B>>, Problem> {
        Ok(Box::new(Supervised { view: self.view, label_smoothing: self.label_smoothing }))
    }
}

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
        SupervisedSpec::KIND
    }

    fn views(&self) -> Vec<ViewKey> {
        vec![ViewKey::new(Stream::Labeled, self.view)]
    }

    fn metric_names(&self) -> &'static [&'static str] {
        &["acc"]
    }

    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B> {
        let key = ViewKey::new(Stream::Labeled, self.view);
        let logits = ctx.forward.logits(key).expect("the step forwards every view a stage lists");
        let labels = ctx.batch.labels(Stream::Labeled).expect("a labelled view comes with labels").clone();
        let acc = logits.clone().detach().argmax(1).squeeze_dim::<1>(1).equal(labels.clone()).float().mean();
        StageOutput::new(cross_entropy(logits, labels, self.label_smoothing), vec![Metric { name: "acc", value: acc }])
    }
}
