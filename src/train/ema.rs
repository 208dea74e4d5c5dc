//! Exponential moving average of the parameters (docs/data-flow.md, "Train"): `θ_ema ← d·θ_ema + (1 − d)·θ`, buffers
//! copied.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::backend::TrainBackend;
use crate::params::Inner;

/// The EMA of a model's trainable parameters, kept on the inner backend.
pub struct Ema {
    /// Decay d (default 0.999).
    pub decay: f64,
    values: GradientsParams,
}

impl Ema {
    /// Starts the average at the model's current parameters.
    pub fn new<B: TrainBackend, M: AutodiffModule<B>>(model: &M, decay: f64) -> Self {
        let mut ema = Self { decay, values: GradientsParams::new() };
        ema.blend::<B, M>(model, 0.0, false);
        ema
    }

    /// One EMA step after an optimiser step.
    pub fn update<B: TrainBackend, M: AutodiffModule<B>>(&mut self, model: &M) {
        self.blend::<B, M>(model, self.decay, false);
    }

    /// Blends `model`'s parameters in; with `known_only`, only those the average already tracks (a model read from
    /// a checkpoint has no gradient flags to tell parameters from buffers).
    fn blend<B: TrainBackend, M: AutodiffModule<B>>(&mut self, model: &M, decay: f64, known_only: bool) {
        struct Blend<'a> {
            decay: f64,
            known_only: bool,
            values: &'a mut GradientsParams,
        }
        impl<B: TrainBackend> ModuleVisitor<B> for Blend<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                // Buffers (BatchNorm running statistics) are copied from the live model, not averaged.
                let tracked = self.values.get::<Inner<B>, D>(param.id).is_some();
                if (self.known_only && !tracked) || (!self.known_only && !param.is_require_grad()) {
                    return;
                }
                let theta = param.val().inner();
                let next = match self.values.remove::<Inner<B>, D>(param.id) {
                    Some(old) if self.decay > 0.0 => old.mul_scalar(self.decay) + theta.mul_scalar(1.0 - self.decay),
                    _ => theta,
                };
                self.values.register::<Inner<B>, D>(param.id, next);
            }
        }
        model.visit(&mut Blend { decay, known_only, values: &mut self.values });
    }

    /// The model for evaluation: the EMA parameters with the live model's buffers (running statistics).
    pub fn model<B: TrainBackend, M: AutodiffModule<B>>(&self, model: &M) -> M::InnerModule {
        struct Swap<'a>(&'a GradientsParams);
        impl<B: burn::tensor::backend::Backend> ModuleMapper<B> for Swap<'_> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
                match self.0.get::<B, D>(param.id) {
                    Some(v) => {
                        let (id, _, mapper) = param.consume();
                        Param::from_mapped_value(id, v, mapper)
                    }
                    None => param,
                }
            }
        }
        model.valid().map(&mut Swap(&self.values))
    }

    /// Restarts the average from the parameters of `saved` (an EMA model read from a checkpoint).
    pub fn load<B: TrainBackend, M: AutodiffModule<B>>(&mut self, saved: &M) {
        self.blend::<B, M>(saved, 0.0, true);
    }
}
