//! What a run measures besides its steps: test accuracy of the raw and EMA weights with the generalisation gap of the
//! evaluation model, the linear probe and kNN of the frozen encoder, and Ŝ_ρ on a fixed batch.

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

/// One evaluation: test accuracy of the raw and EMA weights, and test and training accuracy and loss of the evaluation
/// model (the EMA when there is one), whose differences are the generalisation gap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluated {
    /// Test accuracy of the raw weights.
    pub test_acc: f64,
    /// Test accuracy of the evaluation model (equal to `test_acc` without an EMA).
    pub test_acc_ema: f64,
    /// Mean test cross-entropy of the evaluation model.
    pub test_loss: f64,
    /// Accuracy of the evaluation model on a fixed draw of `eval.train_images` labelled training images.
    pub train_acc: f64,
    /// Mean cross-entropy of the evaluation model on those images.
    pub train_loss: f64,
}

impl Evaluated {
    /// The values under their metric names, in [`super::EVAL_COLUMNS`] order.
    pub fn columns(&self) -> [(&'static str, f64); 5] {
        let c = super::EVAL_COLUMNS;
        [
            (c[0], self.test_acc),
            (c[1], self.test_acc_ema),
            (c[2], self.test_loss),
            (c[3], self.train_acc),
            (c[4], self.train_loss),
        ]
    }
}

/// The evaluations of one run, with what they need loaded once.
pub struct Evaluator<'a, B: TrainBackend> {
    recipe: &'a Recipe,
    data: &'a DataPlan,
    device: B::Device,
    /// The labelled training images the gap is measured on, a fixed draw.
    train_images: Vec<usize>,
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
        let train_images =
            plan::measure_indices(data.labeled.len(), recipe.eval.train_images, recipe.seed ^ 0x0067_6170)
                .into_iter()
                .map(|i| data.labeled[i])
                .collect();
        let measure_settings = plan::inconsistency_settings(recipe);
        Ok(Self { recipe, data, device, train_images, measure_images, measure_settings })
    }

    /// Test accuracy after the step just taken, when `eval.every` asks for one; the last step's is
    /// [`Evaluator::test_accuracy`] at the finish, after the final checkpoint.
    pub fn scheduled_test(&self, trainer: &Trainer<B>) -> Result<Option<Evaluated>> {
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

    /// Test accuracy of the raw and the EMA weights (equal without an EMA), and the evaluation model's test and
    /// training accuracy and loss.
    pub fn test_accuracy(&self, trainer: &Trainer<B>) -> Result<Evaluated> {
        let (test, train) = (&self.data.dataset.test, &self.data.train);
        let (norm, batch) = (&self.data.norm, self.recipe.eval.batch_size);
        let raw = accuracy(&trainer.model.valid(), test, None, norm, batch, &self.device)?;
        let eval_model = trainer.eval_model();
        let ema = if trainer.has_ema() { accuracy(&eval_model, test, None, norm, batch, &self.device)? } else { raw };
        let seen = accuracy(&eval_model, train, Some(&self.train_images), norm, batch, &self.device)?;
        Ok(Evaluated {
            test_acc: raw.value(),
            test_acc_ema: ema.value(),
            test_loss: ema.loss(),
            // A recipe without labelled images (none drawn) has no training accuracy to compare.
            train_acc: if seen.total == 0 { f64::NAN } else { seen.value() },
            train_loss: seen.loss(),
        })
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
