//! The training objective: the recipe's weighted stages, evaluated over one step's batch. The clean forward runs
//! once over every view the stages read, then every stage reads its rows and the weighted losses are summed.
//! Update rules (`crate::update`) evaluate it at θ and, for SAM-like rules, at θ + ε (docs/rules.md).

use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::backend::TrainBackend;
use crate::model::{BnMode, Net};
use crate::params::{add, scale};
use crate::seed::derive_seed;
use crate::stage::{StageContext, Targets, Weighted};
use crate::step::{Forward, StepBatch, StepError, Stream, ViewKey};

/// The weighted stages of a recipe: the training objective.
pub struct Objective<B: TrainBackend> {
    /// Stages in recipe order.
    pub stages: Vec<Weighted<B>>,
    /// The (0-based) step being trained, which the stages' weight schedules read; the trainer sets it.
    pub step: u64,
}

/// The objective evaluated once: its loss, the forward it came from, its metrics and the stages' targets.
pub struct Evaluation<B: TrainBackend> {
    /// Σ weight · stage loss (carries gradient).
    pub total: Tensor<B, 1>,
    /// The clean forward the stages read.
    pub forward: Forward<B>,
    /// `(name, value)` pairs: each stage's loss and metrics, and the total.
    pub metrics: Vec<(String, Tensor<B, 1>)>,
    /// Each evaluated stage's model-derived targets, by stage index, to hold fixed at θ + ε.
    pub targets: Vec<(usize, Targets<B>)>,
    /// Σ weight · gradient of the stages that compute their gradient themselves (`ggcr`), to add to the gradient of
    /// `total`; `None` when no stage does.
    pub gradient: Option<GradientsParams>,
}

impl<B: TrainBackend> Evaluation<B> {
    /// The targets stage `index` derived, if any.
    pub fn targets_of(&self, index: usize) -> Option<&Targets<B>> {
        self.targets.iter().find(|(i, _)| *i == index).map(|(_, t)| t)
    }
}

impl<B: TrainBackend> Objective<B> {
    /// An objective of `stages`, at step 0.
    pub fn new(stages: Vec<Weighted<B>>) -> Self {
        Self { stages, step: 0 }
    }

    /// Every view some stage reads, each once, in first-use order (so labelled views come first).
    pub fn views(&self) -> Vec<ViewKey> {
        self.views_of(&self.all())
    }

    /// The views the stages at `indices` read, each once, in first-use order.
    fn views_of(&self, indices: &[usize]) -> Vec<ViewKey> {
        let mut keys: Vec<ViewKey> = Vec::new();
        for &i in indices {
            for k in self.stages[i].stage.views() {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        keys
    }

    /// Indices of every stage.
    pub fn all(&self) -> Vec<usize> {
        (0..self.stages.len()).collect()
    }

    /// Indices of the stages that read labelled views only: the loss `sam`/`asam` perturb with `loss = "labeled"`.
    pub fn labeled(&self) -> Vec<usize> {
        (0..self.stages.len())
            .filter(|&i| self.stages[i].stage.views().iter().all(|k| k.stream == Stream::Labeled))
            .collect()
    }

    /// Every metric name an evaluation reports, in its order: each stage's `<name>/loss` and `<name>/<metric>` for
    /// its declared metrics, then `loss` (the total). Consumers look metrics up by these exact names.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (s, prefix) in self.stages.iter().zip(self.stage_names()) {
            names.push(format!("{prefix}/loss"));
            names.extend(s.stage.metric_names().iter().map(|m| format!("{prefix}/{m}")));
            if !s.schedule.is_constant() {
                names.push(format!("{prefix}/weight"));
            }
        }
        names.push("loss".into());
        names
    }

    /// Metric-name prefix of each stage: its kind, with its index when the kind repeats.
    pub fn stage_names(&self) -> Vec<String> {
        let kinds: Vec<&str> = self.stages.iter().map(|s| s.stage.kind()).collect();
        kinds
            .iter()
            .enumerate()
            .map(|(i, k)| if kinds.iter().filter(|o| *o == k).count() > 1 { format!("{k}.{i}") } else { k.to_string() })
            .collect()
    }

    /// Runs the forward over every needed view with `mode`, then every stage, and sums the weighted losses.
    ///
    /// `held` is the evaluation at θ whose targets the stages reuse (at θ + ε); `None` derives them afresh.
    pub fn evaluate(
        &self,
        model: &Net<B>,
        batch: &StepBatch<B>,
        mode: BnMode,
        seed: u64,
        held: Option<&Evaluation<B>>,
    ) -> Result<Evaluation<B>, StepError> {
        self.evaluate_stages(&self.all(), model, batch, mode, seed, held)
    }

    /// Like [`Objective::evaluate`] for the stages at `indices` only; the forward holds just the views they read.
    pub fn evaluate_stages(
        &self,
        indices: &[usize],
        model: &Net<B>,
        batch: &StepBatch<B>,
        mode: BnMode,
        seed: u64,
        held: Option<&Evaluation<B>>,
    ) -> Result<Evaluation<B>, StepError> {
        let _t = crate::profile::scope(crate::profile::Class::Loss);
        let forward = Forward::run(model, batch, &self.views_of(indices), mode)?;
        let names = self.stage_names();
        let mut total: Option<Tensor<B, 1>> = None;
        let mut metrics = Vec::new();
        let mut targets = Vec::new();
        let mut gradient: Option<GradientsParams> = None;
        for &i in indices {
            let (s, name) = (&self.stages[i], &names[i]);
            let weight = s.weight_at(self.step);
            let ctx = StageContext {
                forward: &forward,
                batch,
                model,
                seed: derive_seed(&[seed, i as u64]),
                held: held.and_then(|h| h.targets_of(i)),
                weight,
            };
            let out = s.stage.loss(&ctx);
            debug_assert!(
                out.metrics.iter().all(|m| s.stage.metric_names().contains(&m.name)),
                "stage {name} reported a metric it does not declare"
            );
            metrics.push((format!("{name}/loss"), out.loss.clone().detach()));
            for m in out.metrics {
                metrics.push((format!("{name}/{}", m.name), m.value));
            }
            if !s.schedule.is_constant() {
                let w = Tensor::from_data(burn::tensor::TensorData::new(vec![weight as f32], [1]), &out.loss.device());
                metrics.push((format!("{name}/weight"), w));
            }
            if let Some(t) = out.targets {
                targets.push((i, t));
            }
            if let Some(g) = out.gradient {
                let g = scale(model, &g, weight);
                gradient = Some(match gradient {
                    Some(acc) => add(model, &acc, &g),
                    None => g,
                });
            }
            let term = out.loss.mul_scalar(weight);
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
        let total = total.ok_or(StepError::NoStages)?;
        metrics.push(("loss".into(), total.clone().detach()));
        Ok(Evaluation { total, forward, metrics, targets, gradient })
    }
}
