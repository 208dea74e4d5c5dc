//! The trainer: optimiser, schedule, EMA, evaluation and checkpoints around the step of [`crate::step`].
//!
//! One call of [`Trainer::train_step`] takes a pipeline batch, asks the update rule for a gradient (which runs
//! the clean forward and the stages, plus any perturbed passes), applies the optimiser at the scheduled learning
//! rate and updates the EMA. Everything random is seeded by (run seed, step), so a run resumed from a checkpoint
//! continues bit for bit.

mod ema;
mod eval;
mod optim;
mod schedule;

pub use ema::Ema;
pub use eval::{accuracy, load_images, Accuracy};
pub use optim::{Optim, OptimizerSpec};
pub use schedule::Schedule;

// The weight encoding is the checkpoint's; re-exported where it has always been found.
pub use crate::checkpoint::{load_model_bytes, model_bytes};

use burn::module::Module;

use crate::backend::TrainBackend;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::model::{Net, NetConfig};
use crate::objective::Objective;
use crate::params::{all_finite, global_norm};
use crate::pipeline::Batch;
use crate::seed::derive_seed;
use crate::step::{StepBatch, StepError};
use crate::update::UpdateRule;

/// Settings of the optimisation loop (everything except the objective and the update rule).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// Run seed.
    pub seed: u64,
    /// Total optimiser steps.
    pub steps: u64,
    /// Base learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Optimiser.
    pub optimizer: OptimizerSpec,
    /// EMA decay, `None` to keep no EMA.
    pub ema_decay: Option<f64>,
    /// Whether the run goes on after a non-finite step (`on_nonfinite = "skip"`), so a bad update must be undone.
    pub skip_nonfinite: bool,
}

/// The first stage (or the total) whose loss is not finite, as a phrase for messages.
fn nonfinite_loss(metrics: &[(String, f64)]) -> Option<String> {
    let stage = metrics.iter().find_map(|(k, v)| {
        let stage = k.strip_suffix("/loss")?;
        (!v.is_finite()).then(|| format!("the loss of stage `{stage}` ({v})"))
    });
    stage.or_else(|| {
        metrics.iter().find(|(k, v)| k == "loss" && !v.is_finite()).map(|(_, v)| format!("the total loss ({v})"))
    })
}

/// One step's outcome, read back to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The step just taken (0-based).
    pub step: u64,
    /// Learning rate used.
    pub lr: f64,
    /// `(name, value)` of every metric of the step.
    pub metrics: Vec<(String, f64)>,
    /// Why the step was dropped, when its loss, gradient or updated parameters were not finite: the update was
    /// not applied (parameters, optimiser state and EMA are as before the step), only the step counter moved.
    pub nonfinite: Option<String>,
}

/// Model, optimiser state, EMA and position of a training run.
pub struct Trainer<B: TrainBackend> {
    /// The model being trained.
    pub model: Net<B>,
    /// The objective (weighted stages).
    pub objective: Objective<B>,
    /// How gradients are obtained.
    pub rule: UpdateRule,
    /// Loop settings.
    pub settings: TrainSettings,
    optim: Optim<B, Net<B>>,
    ema: Option<Ema>,
    step: u64,
    device: B::Device,
}

impl<B: TrainBackend> Trainer<B> {
    /// A trainer starting at step 0 from `model`.
    pub fn new(
        model: Net<B>,
        objective: Objective<B>,
        rule: UpdateRule,
        settings: TrainSettings,
        device: B::Device,
    ) -> Self {
        let optim = Optim::new(settings.optimizer.clone());
        let ema = settings.ema_decay.map(|d| Ema::new(&model, d));
        Self { model, objective, rule, settings, optim, ema, step: 0, device }
    }

    /// Builds a model from `config` with weights fixed by `seed` (see [`seeded_init`]).
    pub fn init_model(config: &NetConfig, seed: u64, device: &B::Device) -> Net<B> {
        seeded_init::<B, _>(seed, device, || {
            let model = config.init::<B>(device);
            force_init::<B, _>(&model);
            model
        })
    }

    /// The next step to take (= steps taken so far).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The EMA model for evaluation, or the raw one when no EMA is kept.
    pub fn eval_model(&self) -> Net<B::InnerBackend> {
        match &self.ema {
            Some(e) => e.model(&self.model),
            None => burn::module::AutodiffModule::valid(&self.model),
        }
    }

    /// The device the trainer runs on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Whether an EMA is kept.
    pub fn has_ema(&self) -> bool {
        self.ema.is_some()
    }

    /// Takes one optimiser step on `batch`, unless its loss, gradient or updated parameters are not finite (see
    /// [`StepReport::nonfinite`]); the checks cost one reduction each and a single read back per check.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepReport, StepError> {
        use crate::profile::{scope, Class};
        let _t = scope(Class::Other);
        let step = self.step;
        let lr = self.settings.schedule.lr(self.settings.lr, step, self.settings.steps);
        let on_device = StepBatch::<B>::from_batch(batch, &self.device);
        let seed = derive_seed(&[self.settings.seed, 0x5745_5000, step]);
        // The clean forward moves the running statistics; a dropped step must undo that too. A clone is cheap:
        // tensors are shared handles.
        let before = self.model.clone();
        self.objective.step = step;
        let out = self.rule.gradients(&self.model, &on_device, &self.objective, seed)?;
        let checks = scope(Class::Checks);
        // On several devices every peer logs, and decides on non-finite steps from, the peers' mean.
        let mut metrics: Vec<(String, f64)> = crate::devices::mean_metrics(out.metrics)
            .into_iter()
            .map(|(k, v)| (k, v.into_data().convert::<f64>().to_vec::<f64>().map(|v| v[0]).unwrap_or(f64::NAN)))
            .collect();
        let grad_norm = global_norm(&self.model, &out.grads).into_data().convert::<f64>().to_vec::<f64>();
        let grad_norm = grad_norm.ok().and_then(|v| v.first().copied()).unwrap_or(f64::NAN);
        metrics.push(("grad_norm".into(), grad_norm));
        self.step += 1;
        let mut nonfinite = nonfinite_loss(&metrics)
            .or_else(|| (!grad_norm.is_finite()).then(|| format!("the gradient (global norm {grad_norm})")));
        drop(checks);
        if nonfinite.is_some() {
            self.model = before;
        } else {
            // Only a `skip` run can go on after a bad update, so only it keeps the optimiser state to undo one.
            let snapshot = self.settings.skip_nonfinite.then(|| self.optim.snapshot());
            let model = self.model.clone();
            self.model = {
                let _t = scope(Class::Optimizer);
                self.optim.step(lr, model, out.grads)
            };
            // Each peer's clean pass moved its statistics on its own shard; all peers keep their mean.
            self.model = crate::devices::average_running_stats(self.model.clone());
            let finite = {
                let _t = scope(Class::Checks);
                all_finite(&self.model)
            };
            if !finite {
                nonfinite = Some("the model state after the update (parameters and BatchNorm statistics)".into());
                self.model = before;
                if let Some(snapshot) = snapshot {
                    let optim = std::mem::replace(&mut self.optim, Optim::new(self.settings.optimizer.clone()));
                    self.optim = optim.restore(snapshot);
                }
            } else if let Some(e) = &mut self.ema {
                let _t = scope(Class::Ema);
                e.update(&self.model);
            }
        }
        Ok(StepReport { step, lr, metrics, nonfinite })
    }

    /// The optimiser state, serialised (the checkpoint's `optimizer` section).
    pub fn optimizer_state(&self) -> Result<Vec<u8>, String> {
        self.optim.to_bytes()
    }

    /// The run's state (step, weights, optimiser state, EMA) as a checkpoint, with the resolved `recipe` alongside.
    pub fn checkpoint(&self, recipe: &str) -> Result<Checkpoint, String> {
        Ok(Checkpoint {
            step: self.step,
            recipe: recipe.to_string(),
            model: model_bytes(self.model.clone())?,
            optimizer: self.optimizer_state()?,
            // With an EMA, the evaluation model is the average.
            ema: self.has_ema().then(|| model_bytes(self.eval_model())).transpose()?,
        })
    }

    /// Writes the run's state to `path` atomically (see [`Trainer::checkpoint`]); `recipe` (the resolved recipe)
    /// is stored alongside.
    pub fn save(&self, path: &std::path::Path, recipe: &str) -> Result<(), CheckpointError> {
        let fail = |reason: String| CheckpointError::Format { path: path.to_path_buf(), reason };
        self.checkpoint(recipe).map_err(fail)?.write(path)
    }

    /// Restores a state written by [`Trainer::save`]; returns the stored recipe text.
    pub fn load(&mut self, path: &std::path::Path) -> Result<String, CheckpointError> {
        let c = Checkpoint::read(path)?;
        self.restore(&c).map_err(|reason| CheckpointError::Format { path: path.to_path_buf(), reason })?;
        Ok(c.recipe)
    }

    /// Takes the step, weights, optimiser state and (when the settings keep one) EMA of `c`, a checkpoint of a
    /// model of this trainer's architecture.
    pub fn restore(&mut self, c: &Checkpoint) -> Result<(), String> {
        self.step = c.step;
        self.model = c.load_model(self.model.clone(), &self.device)?;
        let optim = std::mem::replace(&mut self.optim, Optim::new(self.settings.optimizer.clone()));
        self.optim = optim.load_bytes(c.optimizer.clone(), &self.device)?;
        if let Some(decay) = self.settings.ema_decay {
            // Loading gave the model the checkpoint's parameter ids; the average must be keyed by them too.
            let mut ema = Ema::new(&self.model, decay);
            let saved = c.load_ema_to_resume(self.model.clone(), &self.device)?;
            ema.load(&saved);
            self.ema = Some(ema);
        }
        Ok(())
    }
}

/// Runs `init` with the backend's generator seeded by `seed`, under a lock, so that models built with the same
/// seed have the same weights even while other threads draw random numbers.
pub fn seeded_init<B: burn::tensor::backend::Backend, T>(seed: u64, device: &B::Device, init: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    B::seed(device, seed);
    init()
}

/// Materialises lazily initialised parameters now, so their random draws happen under [`seeded_init`]'s seed and a
/// later `clone` cannot re-run the initialiser.
pub fn force_init<B: burn::tensor::backend::Backend, M: Module<B>>(model: &M) {
    struct Touch;
    impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}
