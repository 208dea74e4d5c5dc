//! `ntxent`: SimCLR's normalised-temperature cross-entropy between two views of each image (docs/stages.md).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use serde::{Deserialize, Serialize};

use super::spec::{is_zero, Needs, StageKind, Supply, WeightSchedule};
use super::{cross_entropy, Metric, Stage, StageContext, StageOutput};
use crate::backend::TrainBackend;
use crate::check::{above, at_least, Check, Problem};
use crate::step::{Stream, ViewKey};

/// `[[stage]] kind = "ntxent"`: NT-Xent over the projections of two views (docs/stages.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtXentSpec {
    /// Weight of the loss in the sum.
    #[serde(default = "default::weight")]
    pub weight: f64,
    /// Temperature τ (> 0) of the similarity logits.
    #[serde(default = "default::temperature")]
    pub temperature: f64,
    /// First step (0-based) at which the weight is not 0 (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_step: u64,
    /// Steps over which the weight then ramps linearly to full (default 0: at once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ramp_steps: u64,
}

/// Defaults of the stage's keys (τ = 0.5, SimCLR's CIFAR value).
mod default {
    pub(super) fn weight() -> f64 {
        1.0
    }
    pub(super) fn temperature() -> f64 {
        0.5
    }
}

impl Default for NtXentSpec {
    fn default() -> Self {
        NtXentSpec { weight: default::weight(), temperature: default::temperature(), start_step: 0, ramp_steps: 0 }
    }
}

impl StageKind for NtXentSpec {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn schedule(&self) -> WeightSchedule {
        WeightSchedule { start_step: self.start_step, ramp_steps: self.ramp_steps }
    }

    fn validate(&self, at: &str) -> Check {
        at_least(&format!("{at}.weight"), self.weight, 0.0)?;
        above(&format!("{at}.temperature"), self.temperature, 0.0)
    }

    fn needs(&self, at: &str, supply: &Supply<'_>) -> Result<Needs, Problem> {
        let views = pair(at, supply)?.to_vec();
        Ok(Needs { views, projection: true, ..Needs::default() })
    }

    fn build<B: TrainBackend>(&self, supply: &Supply<'_>, _needs: Needs) -> Result<Box<dyn Stage<B>>, Problem> {
        Ok(Box::new(NtXent { temperature: self.temperature, views: pair("stage", supply)? }))
    }
}

/// The unlabeled stream's two views that SimCLR pairs row by row (copies of one augmentation are numbered).
pub(crate) fn pair(at: &str, supply: &Supply<'_>) -> Result<[ViewKey; 2], Problem> {
    let views = supply.unlabeled_views;
    <[ViewKey; 2]>::try_from(ViewKey::for_views(Stream::Unlabeled, views)).map_err(|_| {
        let names: Vec<String> = views.iter().map(|v| format!("{:?}", v.name())).collect();
        Problem::new(
            "data.unlabeled_views",
            format!(
                "must list exactly two views for {at} (ntxent), e.g. [\"simclr\", \"simclr\"], got [{}]",
                names.join(", ")
            ),
        )
    })
}

/// NT-Xent over the projections of two views: each of the 2N rows must pick its partner among the 2N − 1 others.
#[derive(Debug, Clone)]
pub struct NtXent {
    /// Temperature τ of the similarity logits (default 0.5, SimCLR's CIFAR value).
    pub temperature: f64,
    /// The two views whose projections are paired row by row.
    pub views: [ViewKey; 2],
}

/// Rows of `z` scaled to unit L2 norm (a zero row stays zero).
pub fn l2_normalize<B: Backend>(z: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = z.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    z / norm
}

/// The NT-Xent logits of two views' projections and each row's positive.
///
/// With z = normalise([z1; z2]) (2N rows), row i holds `z_i · z_j / τ` for every j ≠ i in order, so the
/// self-similarity is removed rather than masked (a softmax over a row is then a proper distribution over the
/// other 2N − 1 samples, which `iam-d` with `source = "projection"` relies on). The target of row i is the column
/// of its partner i ± N.
pub fn ntxent_logits<B: Backend>(
    z1: Tensor<B, 2>,
    z2: Tensor<B, 2>,
    temperature: f64,
) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let n = z1.dims()[0];
    let device = z1.device();
    let z = l2_normalize(Tensor::cat(vec![z1, z2], 0));
    let sim = z.clone().matmul(z.transpose()).div_scalar(temperature);
    let rows = 2 * n;
    let others: Vec<i64> =
        (0..rows).flat_map(|i| (0..rows - 1).map(move |k| if k < i { k as i64 } else { k as i64 + 1 })).collect();
    let targets: Vec<i64> = (0..rows)
        .map(|i| {
            let partner = (i + n) % rows;
            if partner < i {
                partner as i64
            } else {
                partner as i64 - 1
            }
        })
        .collect();
    let others = Tensor::<B, 2, Int>::from_data(TensorData::new(others, [rows, rows - 1]), &device);
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [rows]), &device);
    (sim.gather(1, others), targets)
}

/// The NT-Xent loss (mean over the 2N anchors) of two views' projections.
pub fn ntxent_loss<B: Backend>(z1: Tensor<B, 2>, z2: Tensor<B, 2>, temperature: f64) -> Tensor<B, 1> {
    let (logits, targets) = ntxent_logits(z1, z2, temperature);
    cross_entropy(logits, targets, 0.0)
}

impl<B: TrainBackend> Stage<B> for NtXent {
    fn kind(&self) -> &'static str {
        NtXentSpec::KIND
    }

    fn metric_names(&self) -> &'static [&'static str] {
        &["acc"]
    }

    fn views(&self) -> Vec<ViewKey> {
        self.views.to_vec()
    }

    fn loss(&self, ctx: &StageContext<'_, B>) -> StageOutput<B> {
        let [a, b] = self.views.map(|k| {
            ctx.forward.projections(k).expect("the step forwards every listed view through a projection head")
        });
        if crate::devices::current().is_some_and(|p| p.count > 1) {
            return self.global_loss(a, b);
        }
        let (logits, targets) = ntxent_logits(a, b, self.temperature);
        let acc = top1(&logits, &targets);
        StageOutput::new(cross_entropy(logits, targets, 0.0), vec![Metric { name: "acc", value: acc }])
    }
}

/// How often the partner is the most similar sample: SimCLR's contrastive top-1 accuracy.
fn top1<B: Backend>(logits: &Tensor<B, 2>, targets: &Tensor<B, 1, Int>) -> Tensor<B, 1> {
    logits.clone().detach().argmax(1).squeeze_dim::<1>(1).equal(targets.clone()).float().mean()
}

impl NtXent {
    /// NT-Xent with negatives from every peer's projections (docs/devices.md, "NT-Xent"): each peer computes the
    /// global batch's loss L on the gathered projections, takes dL/dz for its own rows by a backward through the
    /// loss alone, and returns a loss whose value is L and whose gradient flows N · dL/dz into its own rows, so that
    /// the peers' averaged parameter gradient is the single-device one.
    fn global_loss<B: TrainBackend>(&self, a: Tensor<B, 2>, b: Tensor<B, 2>) -> StageOutput<B> {
        let peer = crate::devices::current().expect("called on a peer");
        let n = a.dims()[0];
        let all_a = Tensor::<B, 2>::from_inner(crate::devices::gather_rows(a.clone().detach().inner())).require_grad();
        let all_b = Tensor::<B, 2>::from_inner(crate::devices::gather_rows(b.clone().detach().inner())).require_grad();
        let (logits, targets) = ntxent_logits(all_a.clone(), all_b.clone(), self.temperature);
        let acc = top1(&logits, &targets);
        let global = cross_entropy(logits, targets, 0.0);
        let grads = global.clone().backward();
        let own = |all: &Tensor<B, 2>| {
            let g = all.grad(&grads).expect("the loss reads every gathered row");
            Tensor::<B, 2>::from_inner(g.narrow(0, peer.rank * n, n).mul_scalar(peer.count as f64))
        };
        let (da, db) = (own(&all_a), own(&all_b));
        let routed = (a * da).sum() + (b * db).sum();
        let loss = routed.clone() - routed.detach() + global.detach();
        StageOutput::new(loss, vec![Metric { name: "acc", value: acc }])
    }
}
