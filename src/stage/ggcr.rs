//! `ggcr`: gradient-consistency regularisation, λ · (1 − cos(∇θ ℓ(u_w), ∇θ ℓ(u_s))), on top of FixMatch
//! (docs/stages.md).
//!
//! ℓ(u_w) and ℓ(u_s) are the masked cross-entropies of the weak and strong unlabeled views against the weak view's
//! confident pseudo-labels. Pseudo-labels and mask come from the step's clean forward at θ and are held fixed while
//! the regulariser and its gradient are computed. Burn cannot differentiate twice, so the gradient of the cosine is
//! assembled from two Hessian-vector products taken by central differences of gradients ([`hessian_vector`]):
//! with ĝ = g/‖g‖ and c = cos(g_w, g_s),
//!
//!   ∇θ (1 − c) = −[ H_w (ĝ_s − c ĝ_w) / ‖g_w‖ + H_s (ĝ_w − c ĝ_s) / ‖g_s‖ ].
//!
//! Cost per step: two forward + backward passes for g_w and g_s, and four for the two products, each over the
//! 2μB unlabeled images with BatchNorm normalising them in batch mode without touching the running statistics (none
//! while no image is confident, the products only while the scheduled weight is above 0). The
//! stage returns that gradient itself ([`StageOutput::gradient`]), so it combines only with the `plain` rule.

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};
use burnish_augment::View;
use serde::{Deserialize, Serialize};

use super::spec::{is_zero, Needs, StageKind, Supply, WeightSchedule};
use super::{per_sample_cross_entropy, FixMatchSpec, Metric, Stage, StageContext, StageOutput};
use crate::backend::TrainBackend;
use crate::check::{above, at_least, in_open_closed, Check, Problem};
use crate::model::{BnMode, Net};
use crate::params::{axpy, dot, gradient_at, hessian_vector, scale};
use crate::step::{Stream, ViewKey};

/// `[[stage]] kind = "ggcr"`: λ · (1 − cos(∇ℓ(u_w), ∇ℓ(u_s))) with the batch-level cosine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgcrSpec {
    /// Weight λ of the regulariser.
    #[serde(default = "default::weight")]
    pub weight: f64,
    /// Confidence threshold τ in (0, 1] of the pseudo-labels both losses use (FixMatch's 0.95 by default).
    #[serde(default = "default::threshold")]
    pub threshold: f64,
    /// Relative finite-difference step of the Hessian-vector products: the step h·v has norm h · max(‖θ‖, 1).
    #[serde(default = "default::h")]
    pub h: f64,
    /// `batch`: one cosine between the two views' batch gradients (the only granularity available).
    #[serde(default)]
    pub granularity: Granularity,
    /// First step (0-based) at which the weight is not 0 (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_step: u64,
    /// Steps over which the weight then ramps linearly to full (default 0: at once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ramp_steps: u64,
}

/// Over what the gradients are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Granularity {
    /// The gradients of the two views' batch losses.
    #[default]
    Batch,
    /// One cosine per unlabeled image (the draft's per-sample form): refused, see [`GgcrSpec::validate`].
    Sample,
}

/// Defaults of the stage's keys.
mod default {
    pub(super) fn weight() -> f64 {
        1.0
    }
    pub(super) fn threshold() -> f64 {
        0.95
    }
    pub(super) fn h() -> f64 {
        1e-3
    }
}

impl Default for GgcrSpec {
    fn default() -> Self {
        GgcrSpec {
            weight: default::weight(),
            threshold: default::threshold(),
            h: default::h(),
            granularity: Granularity::default(),
            start_step: 0,
            ramp_steps: 0,
        }
    }
}

impl StageKind for GgcrSpec {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn schedule(&self) -> WeightSchedule {
        WeightSchedule { start_step: self.start_step, ramp_steps: self.ramp_steps }
    }

    fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.weight"), self.weight, 0.0)?;
        in_open_closed(&format!("{at}.threshold"), self.threshold, 0.0, 1.0)?;
        above(&format!("{at}.h"), self.h, 0.0)?;
        if self.granularity == Granularity::Sample {
            // Per-sample gradients need one backward pass per unlabeled image and view, and the products two more
            // each: 6μB passes a step instead of 6.
            return Err(Problem::new(
                format!("{at}.granularity"),
                "\"sample\" is not available: its per-image gradients and Hessian-vector products would cost 6 passes \
                 per unlabeled image; use \"batch\"",
            ));
        }
        Ok(())
    }

    fn needs(&self, _at: &str, _supply: &Supply<'_>) -> Result<Needs, Problem> {
        Ok(Needs {
            views: vec![ViewKey::new(Stream::Unlabeled, View::Weak), ViewKey::new(Stream::Unlabeled, View::Strong)],
            stages: vec![FixMatchSpec::KIND],
            own_gradient: true,
            ..Needs::default()
        })
    }

    fn build<B: TrainBackend>(&self, _supply: &Supply<'_>, _needs: Needs) -> Result<Box<dyn Stage<B>>, Problem> {
        Ok(Box::new(Ggcr { threshold: self.threshold, h: self.h }))
    }
}

/// The GGCR regulariser; its recipe weight is λ.
#[derive(Debug, Clone)]
pub struct Ggcr {
    /// Confidence threshold τ of the pseudo-labels.
    pub threshold: f64,
    /// Relative finite-difference step of the Hessian-vector products.
    pub h: f64,
}

/// The regulariser and its parts at θ, as [`Ggcr::evaluate`] computes them.
pub struct GgcrTerms {
    /// cos(∇ℓ(u_w), ∇ℓ(u_s)); 1 when either gradient is 0 (no confident image), so that the regulariser is 0.
    pub cosine: f64,
    /// ∇θ (1 − cos), keyed by the model's parameter ids; `None` when not asked for or when the cosine is undefined.
    pub gradient: Option<burn::optim::GradientsParams>,
}

impl Ggcr {
    /// The cosine between the two views' loss gradients at `model` for unlabeled weak and strong images `weak` and
    /// `strong`, with pseudo-labels `labels` and `mask` held fixed; with `with_gradient`, also ∇θ(1 − cos).
    pub fn evaluate<B: TrainBackend>(
        &self,
        model: &Net<B>,
        weak: &Tensor<B, 4>,
        strong: &Tensor<B, 4>,
        labels: &Tensor<B, 1, burn::tensor::Int>,
        mask: &Tensor<B, 1>,
        with_gradient: bool,
    ) -> GgcrTerms {
        let n = weak.dims()[0];
        // No confident image: both losses are 0 and so are their gradients, without running a pass.
        let confident = mask.clone().sum().into_data().convert::<f64>().to_vec::<f64>().map_or(0.0, |v| v[0]);
        // Every peer must take the same branch: the passes below meet in collectives.
        let confident = crate::devices::mean_value::<B::InnerBackend>(confident, &mask.device());
        if confident == 0.0 {
            return GgcrTerms { cosine: 1.0, gradient: None };
        }
        let x = Tensor::cat(vec![weak.clone(), strong.clone()], 0);
        // Both views in one batch, as in the step's forward; the running statistics stay as the clean pass left them.
        let view_loss = |part: usize| {
            let (x, labels, mask) = (x.clone(), labels.clone(), mask.clone());
            move |m: &Net<B>| {
                let logits = m.forward(x.clone(), BnMode::TrainNoStats).logits.narrow(0, part * n, n);
                (per_sample_cross_entropy(logits, labels.clone(), 0.0) * mask.clone()).sum().div_scalar(n as f64)
            }
        };
        let none = burn::optim::GradientsParams::new();
        let g_w = gradient_at(model, &none, view_loss(0));
        let g_s = gradient_at(model, &none, view_loss(1));
        let (nw, ns) = (dot(model, &g_w, &g_w).sqrt(), dot(model, &g_s, &g_s).sqrt());
        if !(nw > 0.0 && ns > 0.0) {
            return GgcrTerms { cosine: 1.0, gradient: None };
        }
        let c = dot(model, &g_w, &g_s) / (nw * ns);
        if !with_gradient {
            return GgcrTerms { cosine: c, gradient: None };
        }
        // a = (ĝ_s − c ĝ_w)/‖g_w‖ and b = (ĝ_w − c ĝ_s)/‖g_s‖, the directions the two Hessians are applied to.
        let a = axpy(model, &scale(model, &g_s, 1.0 / (nw * ns)), -c / (nw * nw), &g_w);
        let b = axpy(model, &scale(model, &g_w, 1.0 / (nw * ns)), -c / (ns * ns), &g_s);
        let hw_a = hessian_vector(model, &a, self.h, view_loss(0));
        let hs_b = hessian_vector(model, &b, self.h, view_loss(1));
        GgcrTerms { cosine: c, gradient: Some(scale(model, &axpy(model, &hw_a, 1.0, &hs_b), -1.0)) }
    }
}

impl<B: TrainBackend> Stage<B> for Ggcr {
    fn kind(&self) -> &'static str {
        GgcrSpec::KIND
    }

    fn views(&self) -> Vec<ViewKey> {
        vec![ViewKey::new(Stream::Unlabeled, View::Weak), ViewKey::new(Stream::Unlabeled, View::Strong)]
    }

    fn metric_names(&self) -> &'static [&'static str] {
        &["cosine", "mask_rate"]
    }

    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B> {
        let (wk, sk) = (ViewKey::new(Stream::Unlabeled, View::Weak), ViewKey::new(Stream::Unlabeled, View::Strong));
        let q = softmax(ctx.forward.logits(wk).expect("listed view").detach(), 1);
        let labels = q.clone().argmax(1).squeeze_dim::<1>(1);
        let mask = q.max_dim(1).squeeze_dim::<1>(1).greater_equal_elem(self.threshold).float();
        let weak = ctx.batch.view(wk).expect("listed view");
        let strong = ctx.batch.view(sk).expect("listed view");
        // At weight 0 (before the schedule starts) only the cosine is logged: the four product passes are skipped.
        let terms = self.evaluate(ctx.model, weak, strong, &labels, &mask, ctx.weight > 0.0);
        let device = mask.device();
        let value = |v: f64| Tensor::<B, 1>::from_data(TensorData::new(vec![v as f32], [1]), &device);
        let metrics = vec![
            Metric { name: "cosine", value: value(terms.cosine) },
            Metric { name: "mask_rate", value: mask.mean() },
        ];
        StageOutput { loss: value(1.0 - terms.cosine), metrics, targets: None, gradient: terms.gradient }
    }
}
