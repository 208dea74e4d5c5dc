//! `iam-d`: β · KL(p(x; θ) ‖ p(x; θ + sg(δ*))), the IAM regulariser as a loss term (SPEC §2, §3).
//!
//! Cost model (K = 1): one ascent pass (forward + backward at θ + δ₀) inside Algorithm 1 and one perturbed pass
//! (forward at θ + sg(δ*), back-propagated with the task loss). The clean branch reuses the step's forward; its
//! KL gradient rides on the same backward as the task loss, so there is never a second clean forward.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;

use super::{Metric, Stage, StageContext, StageOutput};
use crate::iam::{kl_batchmean, worst_case_delta, Inconsistency};
use crate::model::{BnMode, Net};
use crate::params::linked_copy;
use crate::pipeline::seed::rng_for;
use crate::step::ViewKey;

/// Where the distributions compared by IAM-D come from.
#[derive(Debug, Clone, PartialEq)]
pub enum IamSource {
    /// Classifier softmax over these views (e.g. labelled weak + unlabeled weak), concatenated.
    Batch(Vec<ViewKey>),
}

/// The IAM-D stage; its weight in the recipe is β.
#[derive(Debug, Clone)]
pub struct IamD {
    /// ρ, σ and K of Algorithm 1.
    pub inconsistency: Inconsistency,
    /// The batch and distribution the KL is taken over.
    pub source: IamSource,
}

impl IamD {
    fn keys(&self) -> &[ViewKey] {
        match &self.source {
            IamSource::Batch(keys) => keys,
        }
    }
}

/// Log-probabilities of the classifier at `model` on `x`, normalising with batch statistics that are not stored.
fn perturbed_log_probs<B: AutodiffBackend>(model: &Net<B>, x: &Tensor<B, 4>) -> Tensor<B, 2> {
    log_softmax(model.forward(x.clone(), BnMode::TrainNoStats).logits, 1)
}

impl<B: AutodiffBackend> Stage<B> for IamD {
    fn kind(&self) -> &'static str {
        "iam-d"
    }

    fn views(&self) -> Vec<ViewKey> {
        self.keys().to_vec()
    }

    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B> {
        let keys = self.keys();
        let clean = Tensor::cat(
            keys.iter().map(|&k| ctx.forward.logits(k).expect("the step forwards every view a stage lists")).collect(),
            0,
        );
        let x = ctx.forward.inputs(keys).expect("listed views are in the forward");
        // Tracked: the clean branch's gradient flows through p as well as through the perturbed branch.
        let p = log_softmax(clean, 1).exp();
        let mut rng = rng_for(&[ctx.seed]);
        let delta =
            worst_case_delta(ctx.model, p.clone(), |m| perturbed_log_probs(m, &x), &self.inconsistency, &mut rng);
        let perturbed = linked_copy(ctx.model, &delta);
        let kl = kl_batchmean(p, perturbed_log_probs(&perturbed, &x));
        let s_rho = kl.clone().detach();
        StageOutput { loss: kl, metrics: vec![Metric { name: "s_rho", value: s_rho }] }
    }
}
