//! The trainer: optimiser, schedule, EMA, evaluation and checkpoints around the step of [`crate::step`].
//!
//! One call of [`Trainer::train_step`] takes a pipeline batch, asks the update rule for a gradient (which runs
//! the clean forward and the stages, plus any perturbed passes), applies the optimiser at the scheduled learning
//! rate and updates the EMA. Everything random is seeded by (run seed, step), so a run resumed from a checkpoint
//! continues bit for bit.

pub mod checkpoint;
mod ema;
mod eval;
mod optim;
mod schedule;

pub use ema::Ema;
pub use eval::{accuracy, load_images, Accuracy};
pub use optim::{Optim, OptimizerSpec};
pub use schedule::Schedule;

use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;

use crate::model::{Net, NetConfig};
use crate::pipeline::seed::derive_seed;
use crate::pipeline::Batch;
use crate::step::{Objective, StepBatch};
use crate::update::UpdateRule;
use checkpoint::{CheckpointError, Sections};

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
}

/// Model, optimiser state, EMA and position of a training run.
pub struct Trainer<B: AutodiffBackend> {
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

type Bytes = BinBytesRecorder<FullPrecisionSettings>;

/// Serialises model weights and buffers at full precision.
pub fn model_bytes<B: burn::tensor::backend::Backend, M: Module<B>>(m: M) -> Result<Vec<u8>, String> {
    Bytes::default().record(m.into_record(), ()).map_err(|e| format!("cannot serialise the model: {e}"))
}

/// Loads weights written by [`model_bytes`] into `m`.
pub fn load_model_bytes<B: burn::tensor::backend::Backend, M: Module<B>>(
    m: M,
    bytes: Vec<u8>,
    device: &B::Device,
) -> Result<M, String> {
    let record = Bytes::default().load(bytes, device).map_err(|e| format!("cannot read the model weights: {e}"))?;
    Ok(m.load_record(record))
}

impl<B: AutodiffBackend> Trainer<B> {
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

    /// Whether an EMA is kept.
    pub fn has_ema(&self) -> bool {
        self.ema.is_some()
    }

    /// Takes one optimiser step on `batch`.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepReport, String> {
        let step = self.step;
        let lr = self.settings.schedule.lr(self.settings.lr, step, self.settings.steps);
        let on_device = StepBatch::<B>::from_batch(batch, &self.device);
        let seed = derive_seed(&[self.settings.seed, 0x5745_5000, step]);
        let out = self.rule.gradients(&self.model, &on_device, &self.objective, seed)?;
        let model = self.model.clone();
        self.model = self.optim.step(lr, model, out.grads);
        if let Some(e) = &mut self.ema {
            e.update(&self.model);
        }
        self.step += 1;
        let metrics = out
            .metrics
            .into_iter()
            .map(|(k, v)| (k, v.into_data().convert::<f64>().to_vec::<f64>().map(|v| v[0]).unwrap_or(f64::NAN)))
            .collect();
        Ok(StepReport { step, lr, metrics })
    }

    /// Writes model, optimiser state, EMA and step to `path` atomically; `meta` is stored alongside (e.g. the recipe).
    pub fn save(&self, path: &std::path::Path, meta: &str) -> Result<(), CheckpointError> {
        let fail = |reason: String| CheckpointError::Format { path: path.to_path_buf(), reason };
        let mut s = Sections::default();
        s.push("step", self.step.to_le_bytes().to_vec());
        s.push("meta", meta.as_bytes().to_vec());
        s.push("model", model_bytes(self.model.clone()).map_err(fail)?);
        s.push("optimizer", self.optim.to_bytes().map_err(fail)?);
        if let Some(e) = &self.ema {
            s.push("ema", model_bytes(e.model(&self.model)).map_err(fail)?);
        }
        checkpoint::write_atomic(path, &s)
    }

    /// Restores a state written by [`Trainer::save`]; returns the stored `meta` text.
    pub fn load(&mut self, path: &std::path::Path) -> Result<String, CheckpointError> {
        let fail = |reason: String| CheckpointError::Format { path: path.to_path_buf(), reason };
        let mut s = checkpoint::read(path)?;
        let mut section = |name: &str| s.take(name).ok_or_else(|| fail(format!("has no `{name}` section")));
        let step = section("step")?;
        self.step = u64::from_le_bytes(step.as_slice().try_into().map_err(|_| fail("bad step".into()))?);
        let meta = String::from_utf8(section("meta")?).map_err(|_| fail("meta is not UTF-8".into()))?;
        self.model = load_model_bytes(self.model.clone(), section("model")?, &self.device).map_err(fail)?;
        let optim = std::mem::replace(&mut self.optim, Optim::new(self.settings.optimizer.clone()));
        self.optim = optim.load_bytes(section("optimizer")?, &self.device).map_err(fail)?;
        if let Some(decay) = self.settings.ema_decay {
            // Loading gave the model the checkpoint's parameter ids; the average must be keyed by them too.
            let mut ema = Ema::new(&self.model, decay);
            let saved = load_model_bytes(self.model.clone(), section("ema")?, &self.device).map_err(fail)?;
            ema.load(&saved);
            self.ema = Some(ema);
        }
        Ok(meta)
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
