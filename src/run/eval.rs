//! What a run measures besides its steps: test accuracy of the raw and EMA weights, the linear probe and kNN of the
//! frozen encoder, and Ŝ_ρ on a fixed batch.

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::tensor::Tensor;

use crate::backend::TrainBackend;
use crate::iam::{measure_classifier, Inconsistency};
use crate::plan::{self, DataPlan};
use crate::probe::ProbeResult;
use crate::recipe::Recipe;
use crate::seed::derive_seed;
use crate::train::{accuracy, load_images, Trainer};

/// The evaluations of one run, with what they need loaded once.
pub struct Evaluator<'a, B: TrainBackend> {
    recipe: &'a Recipe,
    data: &'a DataPlan,
    device: B::Device,
    /// The fixed batch Ŝ_ρ is measured on (with `eval.measure_every > 0`).
    measure_images: Option<Tensor<B, 4>>,
    measure_settings: Inconsistency,
}

impl<'a, B: TrainBackend> Evaluator<'a, B> {
    /// Prepares the evaluations `recipe` asks for.
    pub fn new(recipe: &'a Recipe, data: &'a DataPlan, device: B::Device) -> Result<Self> {
        // Ŝ_ρ during training is measured on one fixed batch, loaded once, so its curve compares like with like: of
        // the held-out images when the recipe sets some aside, else of the training images.
        let measure_images = if recipe.eval.measure_every > 0 {
            let pool: Vec<usize> =
                if data.holdout.is_empty() { (0..data.train.len()).collect() } else { data.holdout.clone() };
            let indices: Vec<usize> = plan::measure_indices(pool.len(), recipe.eval.batch_size, recipe.seed)
                .into_iter()
                .map(|i| pool[i])
                .collect();
            Some(load_images::<B>(&data.train, &indices, &data.norm, &device)?.0)
        } else {
            None
        };
        Ok(Self { recipe, data, device, measure_images, measure_settings: plan::inconsistency_settings(recipe) })
    }

    /// Test accuracy after the step just taken, when `eval.every` asks for one; the last step's is
    /// [`Evaluator::test_accuracy`] at the finish, after the final checkpoint.
    pub fn scheduled_test(&self, trainer: &Trainer<B>) -> Result<Option<(f64, f64)>> {
        let done = trainer.step();
        let due = super::due(self.recipe.eval.every, done) && done < self.recipe.schedule.steps;
        due.then(|| self.test_accuracy(trainer)).transpose()
    }

    /// The probe after the step just taken, when `eval.probe_every` asks for one.
    pub fn scheduled_probe(&self, trainer: &Trainer<B>) -> Result<Option<ProbeResult>> {
        super::due(self.recipe.eval.probe_every, trainer.step()).then(|| self.probe(trainer)).transpose()
    }

    /// The probe of a finished run, unless the schedule probed its last step already.
    pub fn final_probe(&self, trainer: &Trainer<B>) -> Result<Option<ProbeResult>> {
        let every = self.recipe.eval.probe_every;
        let due = every > 0 && !self.recipe.schedule.steps.is_multiple_of(every);
        due.then(|| self.probe(trainer)).transpose()
    }

    /// Ŝ_ρ after the step just taken, when `eval.measure_every` asks for it.
    pub fn scheduled_inconsistency(&self, trainer: &Trainer<B>) -> Option<f64> {
        if super::due(self.recipe.eval.measure_every, trainer.step()) {
            self.inconsistency(trainer)
        } else {
            None
        }
    }

    /// Test accuracy of the raw and the EMA weights (equal without an EMA).
    pub fn test_accuracy(&self, trainer: &Trainer<B>) -> Result<(f64, f64)> {
        let test = &self.data.dataset.test;
        let (norm, batch) = (&self.data.norm, self.recipe.eval.batch_size);
        let raw = accuracy(&trainer.model.valid(), test, None, norm, batch, &self.device)?.value();
        let ema = if trainer.has_ema() {
            accuracy(&trainer.eval_model(), test, None, norm, batch, &self.device)?.value()
        } else {
            raw
        };
        Ok((raw, ema))
    }

    /// Linear-probe and kNN accuracy of the evaluation model's frozen encoder.
    pub fn probe(&self, trainer: &Trainer<B>) -> Result<ProbeResult> {
        let ds = &self.data.dataset;
        let cfg = plan::probe_config(self.recipe);
        Ok(crate::probe::probe::<B>(
            &trainer.eval_model(),
            &ds.train,
            &self.data.labeled,
            &ds.test,
            ds.num_classes,
            &self.data.norm,
            self.recipe.eval.batch_size,
            &cfg,
        )?)
    }

    /// Ŝ_ρ of the raw weights on the fixed measurement batch (one restart, seeded by the step), when measured.
    pub fn inconsistency(&self, trainer: &Trainer<B>) -> Option<f64> {
        let x = self.measure_images.as_ref()?;
        let seed = derive_seed(&[self.recipe.seed, trainer.step()]);
        Some(measure_classifier(&trainer.model, x.clone(), &self.measure_settings, 1, seed)[0])
    }
}
