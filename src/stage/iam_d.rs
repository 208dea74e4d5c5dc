//! `iam-d`: β · KL(p(x; θ) ‖ p(x; θ + sg(δ*))), the IAM regulariser as a loss term (SPEC §2, §3).
//!
//! The clean and perturbed distributions are taken over the same images x with BatchNorm normalising x alone in
//! every pass. Cost model (K = 1): one ascent pass (forward + backward at θ + δ₀) inside Algorithm 1 and one
//! perturbed pass (forward at θ + sg(δ*), back-propagated with the task loss). The clean branch reuses the step's
//! forward when that forward held exactly x (supervised, SimCLR); when it also held other images (FixMatch's
//! strong views) a third pass runs over x alone. Either way the KL's gradient rides on the task loss's backward.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::{ntxent_logits, Metric, Stage, StageContext, StageOutput};
use crate::backend::TrainBackend;
use crate::iam::{kl_batchmean, worst_case_delta, Inconsistency};
use crate::model::{BnMode, Net};
use crate::params::linked_copy;
use crate::seed::rng_for;
use crate::step::ViewKey;

/// Where the distributions compared by IAM-D come from.
#[derive(Debug, Clone, PartialEq)]
pub enum IamSource {
    /// Classifier softmax over these views (e.g. labelled weak + unlabeled weak), concatenated.
    Batch(Vec<ViewKey>),
    /// A distribution made from the projection-head outputs of two paired views (SimCLR).
    Projection {
        /// The two views of each image, in the ntxent stage's order.
        views: [ViewKey; 2],
        /// How projections become a distribution.
        distribution: ProjectionDistribution,
    },
}

/// How `source = "projection"` turns projection-head outputs into a distribution per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProjectionDistribution {
    /// Softmax over each row of the NT-Xent logits with this temperature (the ntxent stage's τ).
    NtXent {
        /// τ of the ntxent stage.
        temperature: f64,
    },
    /// Softmax over the components of each projection vector.
    Components,
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
    fn keys(&self) -> Vec<ViewKey> {
        match &self.source {
            IamSource::Batch(keys) => keys.clone(),
            IamSource::Projection { views, .. } => views.to_vec(),
        }
    }

    /// The logits (before softmax) of the compared distribution, from the rows of every key in order: classifier
    /// logits, or projections turned into NT-Xent logits or used as they are.
    fn scores<B: Backend>(&self, logits: Tensor<B, 2>, projections: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        match &self.source {
            IamSource::Batch(_) => logits,
            IamSource::Projection { distribution, .. } => {
                let z = projections.expect("validation requires a projection head for source = \"projection\"");
                match *distribution {
                    ProjectionDistribution::Components => z,
                    ProjectionDistribution::NtXent { temperature } => {
                        let n = z.dims()[0] / 2;
                        ntxent_logits(z.clone().narrow(0, 0, n), z.narrow(0, n, n), temperature).0
                    }
                }
            }
        }
    }

    /// Log-probabilities at `model` on `x`, normalising with batch statistics that are not stored.
    fn perturbed_log_probs<B: TrainBackend>(&self, model: &Net<B>, x: &Tensor<B, 4>) -> Tensor<B, 2> {
        let out = model.forward(x.clone(), BnMode::TrainNoStats);
        log_softmax(self.scores(out.logits, out.projections), 1)
    }
}

impl<B: TrainBackend> Stage<B> for IamD {
    fn kind(&self) -> &'static str {
        "iam-d"
    }

    fn views(&self) -> Vec<ViewKey> {
        self.keys()
    }

    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B> {
        let keys = self.keys();
        let x =
            ctx.batch.images(&keys).unwrap_or_else(|k| panic!("the step batch has every listed view; {k} is missing"));
        // The clean branch must normalise exactly the batch the perturbed passes see (SPEC §3 step 1), or the KL
        // would not vanish as ρ → 0. The step's forward qualifies only when it held x and nothing else.
        let clean = if ctx.forward.holds_exactly(&keys) {
            self.scores(ctx.forward.output.logits.clone(), ctx.forward.output.projections.clone())
        } else {
            let out = ctx.model.forward(x.clone(), BnMode::TrainNoStats);
            self.scores(out.logits, out.projections)
        };
        // Tracked: the clean branch's gradient flows through p as well as through the perturbed branch.
        let p = log_softmax(clean, 1).exp();
        let mut rng = rng_for(&[ctx.seed]);
        let delta =
            worst_case_delta(ctx.model, p.clone(), |m| self.perturbed_log_probs(m, &x), &self.inconsistency, &mut rng);
        let perturbed = linked_copy(ctx.model, &delta);
        let kl = kl_batchmean(p, self.perturbed_log_probs(&perturbed, &x));
        let s_rho = kl.clone().detach();
        StageOutput::new(kl, vec![Metric { name: "s_rho", value: s_rho }])
    }
}
