//! Optimisers (docs/data-flow.md, "Train"): SGD with momentum/Nesterov and AdamW, with weight decay kept off biases and
//! BatchNorm parameters unless asked.
//!
//! Burn's optimisers decay every parameter, so their own decay is set to zero and burnish applies it:
//! coupled (`g + wd·θ`, PyTorch's SGD) for SGD, decoupled (`θ·(1 − lr·wd)`, PyTorch's AdamW) for AdamW.

use burn::module::{AutodiffModule, ModuleMapper, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;

use crate::backend::TrainBackend;
use crate::params::{map_vector, Inner};

/// Which optimiser and its hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerSpec {
    /// SGD with momentum.
    Sgd {
        /// Momentum (default 0.9).
        momentum: f64,
        /// Nesterov momentum (default true).
        nesterov: bool,
        /// Weight decay (default 5e-4).
        weight_decay: f64,
        /// Decay biases and BatchNorm parameters too (default false).
        decay_bias_and_norm: bool,
    },
    /// AdamW.
    AdamW {
        /// β₁ (default 0.9).
        beta1: f64,
        /// β₂ (default 0.999).
        beta2: f64,
        /// ε (default 1e-8, PyTorch's; burn's own default is 1e-5).
        epsilon: f64,
        /// Decoupled weight decay (default 1e-2).
        weight_decay: f64,
        /// Decay biases and BatchNorm parameters too (default false).
        decay_bias_and_norm: bool,
    },
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec::Sgd { momentum: 0.9, nesterov: true, weight_decay: 5e-4, decay_bias_and_norm: false }
    }
}

enum Kind<B: TrainBackend, M: AutodiffModule<B>> {
    Sgd(OptimizerAdaptor<Sgd<Inner<B>>, M, B>),
    AdamW(OptimizerAdaptor<AdamW, M, B>),
}

/// The state of an [`Optim`] at one moment (see [`Optim::snapshot`]).
pub enum OptimSnapshot<B: TrainBackend, M: AutodiffModule<B>> {
    /// SGD's momentum buffers.
    Sgd(<OptimizerAdaptor<Sgd<Inner<B>>, M, B> as Optimizer<M, B>>::Record),
    /// AdamW's moment estimates.
    AdamW(<OptimizerAdaptor<AdamW, M, B> as Optimizer<M, B>>::Record),
}

/// A configured optimiser for model type `M`.
pub struct Optim<B: TrainBackend, M: AutodiffModule<B>> {
    spec: OptimizerSpec,
    inner: Kind<B, M>,
}

type Bytes = BinBytesRecorder<FullPrecisionSettings>;

impl<B: TrainBackend, M: AutodiffModule<B>> Optim<B, M> {
    /// Builds the optimiser `spec` describes.
    pub fn new(spec: OptimizerSpec) -> Self {
        let inner = match &spec {
            OptimizerSpec::Sgd { momentum, nesterov, .. } => {
                // PyTorch's SGD has no dampening; burn's default is 0.1.
                let m = MomentumConfig::new().with_momentum(*momentum).with_dampening(0.0).with_nesterov(*nesterov);
                let config = SgdConfig::new().with_momentum((*momentum > 0.0).then_some(m));
                Kind::Sgd(config.init())
            }
            OptimizerSpec::AdamW { beta1, beta2, epsilon, .. } => {
                let config = AdamWConfig::new()
                    .with_beta_1(*beta1 as f32)
                    .with_beta_2(*beta2 as f32)
                    .with_epsilon(*epsilon as f32)
                    .with_weight_decay(0.0);
                Kind::AdamW(config.init())
            }
        };
        Self { spec, inner }
    }

    /// Applies one update with learning rate `lr`.
    pub fn step(&mut self, lr: f64, model: M, grads: GradientsParams) -> M {
        match (&mut self.inner, &self.spec) {
            (Kind::Sgd(o), OptimizerSpec::Sgd { weight_decay, decay_bias_and_norm, .. }) => {
                let grads = if *weight_decay > 0.0 {
                    map_vector::<B, M, _>(&model, &grads, |mut e| {
                        if e.weight_like || *decay_bias_and_norm {
                            e.flat = e.flat + e.theta.clone().mul_scalar(*weight_decay);
                        }
                        e
                    })
                } else {
                    grads
                };
                o.step(lr, model, grads)
            }
            (Kind::AdamW(o), OptimizerSpec::AdamW { weight_decay, decay_bias_and_norm, .. }) => {
                let factor = 1.0 - lr * weight_decay;
                let model = if factor != 1.0 { decay(model, factor, *decay_bias_and_norm) } else { model };
                o.step(lr, model, grads)
            }
            _ => unreachable!("the inner optimiser is built from the spec"),
        }
    }

    /// The optimiser state, serialised at full precision.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let r = match &self.inner {
            Kind::Sgd(o) => Recorder::<B>::record(&Bytes::default(), o.to_record(), ()),
            Kind::AdamW(o) => Recorder::<B>::record(&Bytes::default(), o.to_record(), ()),
        };
        r.map_err(|e| format!("cannot serialise the optimiser state: {e}"))
    }

    /// The optimiser state as it is now (tensor handles, no copy), to put back with [`Optim::restore`] when an
    /// update must be undone.
    pub fn snapshot(&self) -> OptimSnapshot<B, M> {
        match &self.inner {
            Kind::Sgd(o) => OptimSnapshot::Sgd(o.to_record()),
            Kind::AdamW(o) => OptimSnapshot::AdamW(o.to_record()),
        }
    }

    /// Puts back a state taken by [`Optim::snapshot`].
    pub fn restore(self, snapshot: OptimSnapshot<B, M>) -> Self {
        let inner = match (self.inner, snapshot) {
            (Kind::Sgd(o), OptimSnapshot::Sgd(r)) => Kind::Sgd(o.load_record(r)),
            (Kind::AdamW(o), OptimSnapshot::AdamW(r)) => Kind::AdamW(o.load_record(r)),
            _ => unreachable!("a snapshot is restored into the optimiser it was taken from"),
        };
        Self { spec: self.spec, inner }
    }

    /// Restores state written by [`Optim::to_bytes`].
    pub fn load_bytes(self, bytes: Vec<u8>, device: &B::Device) -> Result<Self, String> {
        let err = |e| format!("cannot read the optimiser state: {e}");
        let inner = match self.inner {
            Kind::Sgd(o) => {
                Kind::Sgd(o.load_record(Recorder::<B>::load(&Bytes::default(), bytes, device).map_err(err)?))
            }
            Kind::AdamW(o) => {
                Kind::AdamW(o.load_record(Recorder::<B>::load(&Bytes::default(), bytes, device).map_err(err)?))
            }
        };
        Ok(Self { spec: self.spec, inner })
    }
}

/// `θ ← θ · factor` on decayed parameters (weights, and biases/norms when `all`), keeping them trainable leaves.
fn decay<B: TrainBackend, M: AutodiffModule<B>>(model: M, factor: f64, all: bool) -> M {
    struct Decay {
        factor: f64,
        all: bool,
    }
    impl<B: TrainBackend> ModuleMapper<B> for Decay {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            if !(param.is_require_grad() && (D > 1 || self.all)) {
                return param;
            }
            let (id, t, mapper) = param.consume();
            let leaf = Tensor::from_inner(t.inner().mul_scalar(self.factor)).require_grad();
            Param::from_mapped_value(id, leaf, mapper)
        }
    }
    model.map(&mut Decay { factor, all })
}
