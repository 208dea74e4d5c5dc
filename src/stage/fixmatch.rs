//! `fixmatch`: pseudo-labels from the weak view, kept where confident, taught to the strong view (SPEC §2).

use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use burnish_augment::View;

use super::{per_sample_cross_entropy, Metric, Stage, StageContext, StageOutput};
use crate::step::{Stream, ViewKey};

/// What the masked sum of the unlabeled loss is divided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// All μB unlabeled samples, as the FixMatch reference does (the default).
    All,
    /// Only the confident samples, as the IAM reference code does.
    Confident,
}

/// FixMatch's unlabeled loss `Σ mask · CE(f(u_s), ŷ) / μB`.
#[derive(Debug, Clone)]
pub struct FixMatch {
    /// Confidence threshold τ in (0, 1] (default 0.95).
    pub threshold: f64,
    /// Temperature T of the pseudo-label softmax (default 1).
    pub temperature: f64,
    /// Divisor of the masked sum (default: all samples).
    pub normalize: Normalization,
}

impl Default for FixMatch {
    fn default() -> Self {
        Self { threshold: 0.95, temperature: 1.0, normalize: Normalization::All }
    }
}

impl<B: AutodiffBackend> Stage<B> for FixMatch {
    fn kind(&self) -> &'static str {
        "fixmatch"
    }

    fn views(&self) -> Vec<ViewKey> {
        vec![ViewKey::new(Stream::Unlabeled, View::Weak), ViewKey::new(Stream::Unlabeled, View::Strong)]
    }

    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B> {
        let weak = ctx.forward.logits(ViewKey::new(Stream::Unlabeled, View::Weak)).expect("listed view");
        let strong = ctx.forward.logits(ViewKey::new(Stream::Unlabeled, View::Strong)).expect("listed view");
        let FixMatchTerms { loss, mask, pseudo } = self.terms(weak, strong);
        let mut metrics = vec![Metric { name: "mask_rate", value: mask.clone().mean() }];
        if let Some(truth) = ctx.batch.labels(Stream::Unlabeled) {
            let correct = pseudo.equal(truth.clone()).float();
            metrics.push(Metric { name: "pseudo_acc", value: correct.clone().mean() });
            // Accuracy among the confident pseudo-labels, the ones that are actually trained on.
            let confident_correct = (correct * mask.clone()).sum() / mask.sum().clamp_min(1.0);
            metrics.push(Metric { name: "pseudo_acc_masked", value: confident_correct });
        }
        StageOutput { loss, metrics }
    }
}

/// FixMatch's loss on one unlabeled batch, with the mask and pseudo-labels it used.
#[derive(Debug, Clone)]
pub struct FixMatchTerms<B: Backend> {
    /// The unlabeled loss (carries gradient through the strong view only).
    pub loss: Tensor<B, 1>,
    /// 1 where the weak view's confidence reaches the threshold, else 0.
    pub mask: Tensor<B, 1>,
    /// argmax of the weak view's (tempered) softmax.
    pub pseudo: Tensor<B, 1, Int>,
}

impl FixMatch {
    /// The loss, mask and pseudo-labels for the weak and strong views' logits (`[μB, classes]` each).
    pub fn terms<B: Backend>(&self, weak: Tensor<B, 2>, strong: Tensor<B, 2>) -> FixMatchTerms<B> {
        let q = softmax(weak.detach().div_scalar(self.temperature), 1);
        let confidence = q.clone().max_dim(1).squeeze_dim::<1>(1);
        let pseudo = q.argmax(1).squeeze_dim::<1>(1);
        let mask = confidence.greater_equal_elem(self.threshold).float();
        let masked = (per_sample_cross_entropy(strong, pseudo.clone(), 0.0) * mask.clone()).sum();
        let n = mask.dims()[0] as f64;
        let loss = match self.normalize {
            Normalization::All => masked.div_scalar(n),
            // The clamp keeps a batch with no confident sample at loss 0 instead of 0/0.
            Normalization::Confident => masked / mask.clone().sum().clamp_min(1.0),
        };
        FixMatchTerms { loss, mask, pseudo }
    }
}
