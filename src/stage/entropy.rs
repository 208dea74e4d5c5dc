//! `entropy`: entropy minimisation on an unlabeled view (docs/stages.md), pushing the model towards confident
//! predictions on the images it has no labels for. Added as the worked example of a stage in one file (docs/stages.md).

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burnish_augment::View;
use serde::{Deserialize, Serialize};

use super::spec::{is_zero, Needs, StageKind, Supply, WeightSchedule};
use super::{Metric, Stage, StageContext, StageOutput};
use crate::backend::TrainBackend;
use crate::check::{at_least, Check, Problem};
use crate::named;
use crate::step::{Stream, ViewKey};

/// `[[stage]] kind = "entropy"`: mean over unlabeled rows of H(p) = −Σ_c p_c log p_c, p = softmax(f(u)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntropySpec {
    /// Weight of the loss in the sum.
    #[serde(default = "default::weight")]
    pub weight: f64,
    /// The unlabeled view the entropy is taken on; must be one of `data.unlabeled_views`.
    #[serde(default = "default::view", with = "named::one")]
    pub view: View,
    /// First step (0-based) at which the weight is not 0 (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_step: u64,
    /// Steps over which the weight then ramps linearly to full (default 0: at once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ramp_steps: u64,
}

/// Defaults of the stage's keys: weight 0.1, as entropy minimisation usually runs next to a supervised loss.
mod default {
    use super::*;

    pub(super) fn weight() -> f64 {
        0.1
    }
    pub(super) fn view() -> View {
        View::Weak
    }
}

impl Default for EntropySpec {
    fn default() -> Self {
        EntropySpec { weight: default::weight(), view: default::view(), start_step: 0, ramp_steps: 0 }
    }
}

impl StageKind for EntropySpec {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn schedule(&self) -> WeightSchedule {
        WeightSchedule { start_step: self.start_step, ramp_steps: self.ramp_steps }
    }

    fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.weight"), self.weight, 0.0)
    }

    fn needs(&self, _at: &str, _supply: &Supply<'_>) -> Result<Needs, Problem> {
        Ok(Needs {
            views: vec![ViewKey::new(Stream::Unlabeled, self.view)],
            chosen_by: Some("view"),
            ..Needs::default()
        })
    }

    fn build<B: TrainBackend>(&self, _supply: &Supply<'_>, _needs: Needs) -> Result<Box<dyn Stage<B>>, Problem> {
        Ok(Box::new(Entropy { view: self.view }))
    }
}

/// Entropy minimisation on one unlabeled view; the gradient flows through p in both of H's factors.
#[derive(Debug, Clone)]
pub struct Entropy {
    /// The unlabeled view whose predictions are sharpened.
    pub view: View,
}

impl<B: TrainBackend> Stage<B> for Entropy {
    fn kind(&self) -> &'static str {
        EntropySpec::KIND
    }

    fn views(&self) -> Vec<ViewKey> {
        vec![ViewKey::new(Stream::Unlabeled, self.view)]
    }

    fn metric_names(&self) -> &'static [&'static str] {
        &["max_prob"]
    }

    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B> {
        let logits = ctx.forward.logits(ViewKey::new(Stream::Unlabeled, self.view)).expect("listed view");
        let max_prob = softmax(logits.clone().detach(), 1).max_dim(1).mean().reshape([1]);
        StageOutput::new(mean_entropy(logits), vec![Metric { name: "max_prob", value: max_prob }])
    }
}

/// Mean over rows of the entropy −Σ_c p_c log p_c of `softmax(logits)`, in nats.
pub fn mean_entropy<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    let log_p = log_softmax(logits, 1);
    (log_p.clone().exp() * log_p).sum_dim(1).mean().neg().reshape([1])
}
