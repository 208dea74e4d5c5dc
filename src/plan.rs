//! From a validated recipe to the objects a run is made of: the data set and its split, the pipeline's streams,
//! the model configuration, the objective (weighted stages), the update rule and the loop settings.

use std::sync::Arc;

use rand::seq::SliceRandom;

use crate::backend::TrainBackend;
use crate::check::Problem;
use crate::data::{self, holdout_indices, labeled_indices, DataError, Dataset, LoadOptions, SyntheticOptions};
use crate::iam::Inconsistency;
use crate::model::{NetConfig, ProjectionConfig};
use crate::objective::Objective;
use crate::pipeline::{Normalize, PipelineConfig, StreamSpec};
use crate::probe::ProbeConfig;
use crate::recipe::{
    NonFinitePolicy, OptimizerKind, PerturbedLossKind, ProbeOptimizer, Recipe, ScheduleKind, StageSpec, UnlabeledPool,
    UpdateSection,
};
use crate::seed::rng_for;
use crate::stage::{batch_views, Weighted};
use crate::step::{Stream, ViewKey};
use crate::train::{OptimizerSpec, Schedule, TrainSettings};
use crate::update::{PerturbedLoss, Rule, UpdateRule};

/// The data side of a run: the loaded data set, the split and the streams each step draws.
pub struct DataPlan {
    /// The data set (train and test splits).
    pub dataset: Dataset,
    /// The training split, shared with the pipeline's workers.
    pub train: Arc<data::Split>,
    /// Indices of the labelled training images.
    pub labeled: Vec<usize>,
    /// Indices of the unlabeled training images (empty without an unlabeled stream).
    pub unlabeled: Vec<usize>,
    /// Indices of the held-out training images (`data.holdout`), never trained on.
    pub holdout: Vec<usize>,
    /// The pipeline's streams.
    pub streams: Vec<StreamSpec>,
    /// Per-channel normalisation.
    pub norm: Normalize,
}

/// Loads the recipe's data set and draws the labelled split.
pub fn data(recipe: &Recipe) -> Result<DataPlan, DataError> {
    let d = &recipe.data;
    let options = LoadOptions {
        image_size: d.image_size,
        image_channels: d.image_channels,
        synthetic: SyntheticOptions {
            train_size: d.synthetic_train_size,
            test_size: d.synthetic_test_size,
            seed: recipe.seed,
        },
    };
    let dataset = data::load(d.dataset, d.path.as_deref(), &options)?;
    let n = dataset.train.len();
    let holdout = holdout_indices(n, d.holdout, recipe.split_seed())?;
    // The training pool: every image but the held-out ones (all of them without a holdout).
    let pool: Vec<usize> = if holdout.is_empty() {
        (0..n).collect()
    } else {
        let mut kept = vec![true; n];
        holdout.iter().for_each(|&i| kept[i] = false);
        (0..n).filter(|&i| kept[i]).collect()
    };
    let labeled = match d.labels_per_class {
        Some(k) => {
            let labels: Vec<u16> = pool.iter().map(|&i| dataset.train.labels()[i]).collect();
            let chosen = labeled_indices(&labels, dataset.num_classes, k, recipe.split_seed())?;
            chosen.into_iter().map(|j| pool[j]).collect()
        }
        None => pool.clone(),
    };
    let unlabeled = if d.has_unlabeled_stream() {
        let mut unlabeled = pool.clone();
        if d.unlabeled == UnlabeledPool::Rest {
            unlabeled.retain(|i| labeled.binary_search(i).is_err());
        }
        unlabeled
    } else {
        Vec::new()
    };
    let mut streams = Vec::new();
    if uses_labeled_stream(recipe) {
        streams.push(StreamSpec {
            stream: Stream::Labeled,
            pool: labeled.clone(),
            batch_size: d.batch_size,
            views: d.labeled_views.clone(),
        });
    }
    if d.has_unlabeled_stream() {
        streams.push(StreamSpec {
            stream: Stream::Unlabeled,
            pool: unlabeled.clone(),
            batch_size: d.batch_size * d.mu,
            views: d.unlabeled_views.clone(),
        });
    }
    let norm = Normalize { mean: dataset.mean.clone(), std: dataset.std.clone() };
    let train = Arc::new(dataset.train.clone());
    Ok(DataPlan { dataset, train, labeled, unlabeled, holdout, streams, norm })
}

/// The pipeline settings of a recipe, starting at `start_step`.
pub fn pipeline_config(recipe: &Recipe, start_step: u64) -> PipelineConfig {
    PipelineConfig { seed: recipe.seed, workers: recipe.data.workers, prefetch: recipe.data.prefetch, start_step }
}

/// The network the recipe describes, for images with `channels` channels and `classes` classes.
pub fn net(recipe: &Recipe, channels: usize, classes: usize) -> NetConfig {
    NetConfig {
        arch: recipe.model.arch,
        in_channels: channels,
        num_classes: classes,
        projection: recipe
            .model
            .projection
            .as_ref()
            .map(|p| ProjectionConfig { hidden_dim: p.hidden, output_dim: p.dim }),
    }
}

/// The weak views IAM measures inconsistency on: the labelled weak view and, when drawn, the unlabeled one.
pub fn inconsistency_views(recipe: &Recipe) -> Vec<ViewKey> {
    batch_views(&recipe.supply())
}

/// The recipe's stages as a weighted objective, each built from its spec and the needs it declared.
pub fn objective<B: TrainBackend>(recipe: &Recipe) -> Result<Objective<B>, Problem> {
    let supply = recipe.supply();
    let mut stages: Vec<Weighted<B>> = Vec::new();
    for (i, spec) in recipe.stages.iter().enumerate() {
        let needs = spec.needs(i, &supply)?;
        let stage = spec.build::<B>(&supply, needs)?;
        stages.push(Weighted { weight: spec.weight(), schedule: spec.schedule(), stage });
    }
    Ok(Objective::new(stages))
}

/// Whether some stage reads the labelled stream; SimCLR recipes do not, and then it is not drawn at all.
pub fn uses_labeled_stream(recipe: &Recipe) -> bool {
    recipe.stage_views().iter().any(|k| k.stream == Stream::Labeled)
}

/// The recipe's update rule.
pub fn update_rule(recipe: &Recipe) -> UpdateRule {
    let loss = |l: PerturbedLossKind| match l {
        PerturbedLossKind::All => PerturbedLoss::All,
        PerturbedLossKind::Labeled => PerturbedLoss::Labeled,
    };
    let rule = match &recipe.update {
        UpdateSection::Plain(_) => Rule::Plain,
        UpdateSection::Sam(s) => Rule::Sam { rho: s.rho, loss: loss(s.loss) },
        UpdateSection::Asam(s) => Rule::Asam { rho: s.rho, eta: s.eta, loss: loss(s.loss) },
        UpdateSection::IamS(s) => Rule::IamS {
            inconsistency: Inconsistency { rho: s.rho, sigma: s.sigma, steps: s.steps },
            views: inconsistency_views(recipe),
        },
    };
    UpdateRule { rule, m: recipe.update.m() }
}

/// The recipe's loop settings.
pub fn train_settings(recipe: &Recipe) -> TrainSettings {
    let o = &recipe.optimizer;
    let s = &recipe.schedule;
    TrainSettings {
        seed: recipe.seed,
        steps: s.steps,
        lr: o.lr,
        schedule: match s.kind {
            ScheduleKind::Constant => Schedule::Constant,
            ScheduleKind::FixmatchCosine => Schedule::FixMatchCosine,
            ScheduleKind::Cosine => Schedule::Cosine { warmup: s.warmup },
            ScheduleKind::Multistep => Schedule::MultiStep { milestones: s.milestones.clone(), gamma: s.gamma },
        },
        optimizer: match o.kind {
            OptimizerKind::Sgd => OptimizerSpec::Sgd {
                momentum: o.momentum,
                nesterov: o.nesterov,
                weight_decay: o.weight_decay,
                decay_bias_and_norm: o.decay_bias_and_norm,
            },
            OptimizerKind::AdamW => OptimizerSpec::AdamW {
                beta1: o.beta1,
                beta2: o.beta2,
                epsilon: o.epsilon,
                weight_decay: o.weight_decay,
                decay_bias_and_norm: o.decay_bias_and_norm,
            },
        },
        ema_decay: recipe.ema.enabled.then_some(recipe.ema.decay),
        skip_nonfinite: recipe.train.on_nonfinite == NonFinitePolicy::Skip,
    }
}

/// The recipe's linear-probe and kNN settings.
pub fn probe_config(recipe: &Recipe) -> ProbeConfig {
    let e = &recipe.eval;
    ProbeConfig {
        epochs: e.probe_epochs,
        lr: e.probe_lr,
        optimizer: match e.probe_optimizer {
            ProbeOptimizer::Sgd => {
                OptimizerSpec::Sgd { momentum: 0.9, nesterov: false, weight_decay: 0.0, decay_bias_and_norm: false }
            }
            ProbeOptimizer::Adamw => OptimizerSpec::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
                weight_decay: 0.0,
                decay_bias_and_norm: false,
            },
        },
        batch_size: e.probe_batch_size,
        knn_k: e.knn_k,
        knn_temperature: e.knn_temperature,
        seed: recipe.seed,
    }
}

/// Algorithm 1's settings a recipe trains with: its iam-d stage's ρ, σ, K, else its iam-s rule's, else the
/// paper's defaults. `burnish measure` and `eval.measure_every` measure Ŝ_ρ with them.
pub fn inconsistency_settings(recipe: &Recipe) -> Inconsistency {
    let from_stage = recipe.stages.iter().find_map(|s| match s {
        StageSpec::IamD(d) => Some(Inconsistency { rho: d.rho, sigma: d.sigma, steps: d.steps }),
        _ => None,
    });
    from_stage.or(recipe.update.inconsistency()).unwrap_or_default()
}

/// The `n` images (of a split of `len`) that Ŝ_ρ is measured on: a fixed draw for `seed`, so measurements of
/// different checkpoints compare like with like.
pub fn measure_indices(len: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rng_for(&[seed, 0x6d65_6173]));
    order.truncate(n);
    order
}
