//! `fixmatch`: pseudo-labels from the weak view, kept where confident, taught to the strong view (docs/stages.md).

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use burnish_augment::View;

use super::spec::{is_zero, Needs, StageKind, Supply, WeightSchedule};
use super::{
    per_sample_cross_entropy, per_sample_soft_cross_entropy, Metric, Stage, StageContext, StageOutput, Targets,
};
use crate::backend::TrainBackend;
use crate::check::{above, at_least, in_open_closed, Check, Problem};
use crate::step::{Stream, ViewKey};
use serde::{Deserialize, Serialize};

/// `[[stage]] kind = "fixmatch"`: Σ mask · CE(f(u_s), ŷ) / μB (docs/stages.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixMatchSpec {
    /// Weight λ_u of the unlabeled loss.
    #[serde(default = "default::weight")]
    pub weight: f64,
    /// Confidence threshold τ in (0, 1].
    #[serde(default = "default::threshold")]
    pub threshold: f64,
    /// `hard` (argmax, FixMatch's default) or `soft` pseudo-labels.
    #[serde(default)]
    pub pseudo_labels: PseudoLabelKind,
    /// Temperature T (> 0) that sharpens soft pseudo-labels; the confidence mask always uses T = 1.
    #[serde(default = "default::temperature")]
    pub temperature: f64,
    /// What the masked loss is divided by.
    #[serde(default)]
    pub normalize: FixMatchNormalize,
    /// First step (0-based) at which the weight is not 0 (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_step: u64,
    /// Steps over which the weight then ramps linearly to full (default 0: at once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ramp_steps: u64,
}

/// The denominator of FixMatch's unlabeled loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixMatchNormalize {
    /// All μB unlabeled samples (the FixMatch reference).
    #[default]
    All,
    /// Only the confident samples (the IAM reference code).
    Confident,
}

/// What the strong view is taught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PseudoLabelKind {
    /// The weak view's argmax.
    #[default]
    Hard,
    /// The weak view's softmax at temperature `temperature`.
    Soft,
}

/// Defaults of the stage's keys.
mod default {
    pub(super) fn weight() -> f64 {
        1.0
    }
    pub(super) fn threshold() -> f64 {
        0.95
    }
    pub(super) fn temperature() -> f64 {
        1.0
    }
}

impl Default for FixMatchSpec {
    fn default() -> Self {
        FixMatchSpec {
            weight: default::weight(),
            threshold: default::threshold(),
            pseudo_labels: PseudoLabelKind::default(),
            temperature: default::temperature(),
            normalize: FixMatchNormalize::default(),
            start_step: 0,
            ramp_steps: 0,
        }
    }
}

impl StageKind for FixMatchSpec {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn schedule(&self) -> WeightSchedule {
        WeightSchedule { start_step: self.start_step, ramp_steps: self.ramp_steps }
    }

    fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.weight"), self.weight, 0.0)?;
        in_open_closed(&format!("{at}.threshold"), self.threshold, 0.0, 1.0)?;
        above(&format!("{at}.temperature"), self.temperature, 0.0)?;
        if self.pseudo_labels == PseudoLabelKind::Hard && self.temperature != default::temperature() {
            // With hard labels the temperature changes nothing (the argmax is the same), so a set value is a mistake.
            return Err(Problem::new(
                format!("{at}.temperature"),
                "only applies with pseudo_labels = \"soft\" (hard pseudo-labels are an argmax, which T does not change)",
            ));
        }
        Ok(())
    }
    fn needs(&self, _at: &str, _supply: &Supply<'_>) -> Result<Needs, Problem> {
        Ok(Needs::views(vec![
            ViewKey::new(Stream::Unlabeled, View::Weak),
            ViewKey::new(Stream::Unlabeled, View::Strong),
        ]))
    }

    fn build<B: TrainBackend>(&self, _supply: &Supply<'_>, _needs: Needs) -> Result<Box<dyn Stage<B>>, Problem> {
        Ok(Box::new(FixMatch {
            threshold: self.threshold,
            labels: match self.pseudo_labels {
                PseudoLabelKind::Hard => PseudoLabels::Hard,
                PseudoLabelKind::Soft => PseudoLabels::Soft { temperature: self.temperature },
            },
            normalize: match self.normalize {
                FixMatchNormalize::All => Normalization::All,
                FixMatchNormalize::Confident => Normalization::Confident,
            },
        }))
    }
}

/// What the masked sum of the unlabeled loss is divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// All μB unlabeled samples, as the FixMatch reference does (the default).
    All,
    /// Only the confident samples, as the IAM reference code does.
    Confident,
}

/// What the strong view is taught: the weak view's argmax, or its temperature-sharpened distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PseudoLabels {
    /// One-hot argmax of the weak view's softmax (FixMatch's default).
    Hard,
    /// `softmax(f(u_w) / T)`: the temperature only shapes these soft targets, never the confidence mask.
    Soft {
        /// Temperature T (> 0).
        temperature: f64,
    },
}

/// FixMatch's unlabeled loss `Σ mask · CE(f(u_s), ŷ) / μB`.
#[derive(Debug, Clone)]
pub struct FixMatch {
    /// Confidence threshold τ in (0, 1] (default 0.95), applied to the weak view's softmax at temperature 1.
    pub threshold: f64,
    /// Hard or soft pseudo-labels (default hard).
    pub labels: PseudoLabels,
    /// Divisor of the masked sum (default: all samples).
    pub normalize: Normalization,
}

impl Default for FixMatch {
    fn default() -> Self {
        Self { threshold: 0.95, labels: PseudoLabels::Hard, normalize: Normalization::All }
    }
}

impl<B: TrainBackend> Stage<B> for FixMatch {
    fn kind(&self) -> &'static str {
        FixMatchSpec::KIND
    }

    fn metric_names(&self) -> &'static [&'static str] {
        &["mask_rate", "pseudo_acc", "pseudo_acc_masked"]
    }

    fn views(&self) -> Vec<ViewKey> {
        vec![ViewKey::new(Stream::Unlabeled, View::Weak), ViewKey::new(Stream::Unlabeled, View::Strong)]
    }

    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B> {
        let weak = ctx.forward.logits(ViewKey::new(Stream::Unlabeled, View::Weak)).expect("listed view");
        let strong = ctx.forward.logits(ViewKey::new(Stream::Unlabeled, View::Strong)).expect("listed view");
        // At θ + ε the pseudo-labels and mask of θ are held (docs/rules.md): the same targets, a perturbed student.
        let targets = match ctx.held {
            Some(held) => held.clone(),
            None => self.targets(weak),
        };
        let loss = self.loss_for(strong, &targets);
        let mask = targets.mask.clone();
        let mut metrics = vec![Metric { name: "mask_rate", value: mask.clone().mean() }];
        if let Some(truth) = ctx.batch.labels(Stream::Unlabeled) {
            let correct = targets.labels.clone().equal(truth.clone()).float();
            metrics.push(Metric { name: "pseudo_acc", value: correct.clone().mean() });
            // Accuracy among the confident pseudo-labels, the ones that are actually trained on.
            let confident_correct = (correct * mask.clone()).sum() / mask.sum().clamp_min(1.0);
            metrics.push(Metric { name: "pseudo_acc_masked", value: confident_correct });
        }
        StageOutput { loss, metrics, targets: Some(targets), gradient: None }
    }
}

/// FixMatch's loss on one unlabeled batch, with the mask and pseudo-labels it used.
#[derive(Debug, Clone)]
pub struct FixMatchTerms<B: Backend> {
    /// The unlabeled loss (carries gradient through the strong view only).
    pub loss: Tensor<B, 1>,
    /// 1 where the weak view's confidence reaches the threshold, else 0.
    pub mask: Tensor<B, 1>,
    /// argmax of the weak view's softmax.
    pub pseudo: Tensor<B, 1, Int>,
}

impl FixMatch {
    /// Pseudo-labels, soft targets (if any) and mask from the weak view's logits, all detached.
    ///
    /// The mask is taken on the temperature-1 softmax, as FixMatch and USB do; the temperature only sharpens
    /// soft targets.
    pub fn targets<B: Backend>(&self, weak: Tensor<B, 2>) -> Targets<B> {
        let weak = weak.detach();
        let q = softmax(weak.clone(), 1);
        let confidence = q.clone().max_dim(1).squeeze_dim::<1>(1);
        let labels = q.argmax(1).squeeze_dim::<1>(1);
        let mask = confidence.greater_equal_elem(self.threshold).float();
        let soft = match self.labels {
            PseudoLabels::Hard => None,
            PseudoLabels::Soft { temperature } => Some(softmax(weak.div_scalar(temperature), 1)),
        };
        Targets { labels, soft, mask }
    }

    /// The masked, normalised loss of the strong view's logits against `targets`.
    pub fn loss_for<B: Backend>(&self, strong: Tensor<B, 2>, targets: &Targets<B>) -> Tensor<B, 1> {
        let per_sample = match &targets.soft {
            None => per_sample_cross_entropy(strong, targets.labels.clone(), 0.0),
            Some(soft) => per_sample_soft_cross_entropy(strong, soft.clone()),
        };
        let mask = targets.mask.clone();
        let masked = (per_sample * mask.clone()).sum();
        let n = mask.dims()[0] as f64;
        match self.normalize {
            Normalization::All => masked.div_scalar(n),
            // The clamp keeps a batch with no confident sample at loss 0 instead of 0/0.
            Normalization::Confident => masked / mask.sum().clamp_min(1.0),
        }
    }

    /// The loss, mask and pseudo-labels for the weak and strong views' logits (`[μB, classes]` each).
    pub fn terms<B: Backend>(&self, weak: Tensor<B, 2>, strong: Tensor<B, 2>) -> FixMatchTerms<B> {
        let targets = self.targets(weak);
        let loss = self.loss_for(strong, &targets);
        FixMatchTerms { loss, mask: targets.mask, pseudo: targets.labels }
    }
}
