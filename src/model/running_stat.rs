//! A non-trainable tensor (BatchNorm running mean/variance) that is saved in records, seen by
//! visitors and mappers, updated explicitly, and owned by exactly one module copy.
//!
//! Burn's `RunningState` shares its buffer between clones (an `Arc`), so a forward on a perturbed
//! clone writes into the original's statistics. `RunningStat` clones by value instead: tensors are
//! immutable handles, so a clone is a cheap independent copy, and only an explicit
//! [`RunningStat::set`] on that very copy changes it.

use std::sync::Mutex;

use burn::module::{
    AutodiffModule, Content, Devices, HasAutodiffModule, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper,
    ModuleVisitor, Param, ParamId,
};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

/// A per-channel buffer of a [`BatchNorm`](super::BatchNorm): not a parameter, but part of the model state.
#[derive(Debug)]
pub struct RunningStat<B: Backend> {
    id: ParamId,
    // A mutex (not a `Cell`) so the module stays `Sync` and `forward(&self)` can update it.
    value: Mutex<Tensor<B, 1>>,
}

impl<B: Backend> RunningStat<B> {
    /// A buffer holding `value`, with a fresh id.
    pub fn new(value: Tensor<B, 1>) -> Self {
        Self::with_id(ParamId::new(), value)
    }

    /// A buffer holding `value` under a given id (records and inner/autodiff conversions keep ids).
    pub fn with_id(id: ParamId, value: Tensor<B, 1>) -> Self {
        Self { id, value: Mutex::new(value) }
    }

    /// The identifier visitors see, stable across clones, records and `valid()`.
    pub fn id(&self) -> ParamId {
        self.id
    }

    /// The current value.
    pub fn value(&self) -> Tensor<B, 1> {
        self.lock().clone()
    }

    /// Replaces the value (detached: a running statistic never carries a gradient).
    pub fn set(&self, value: Tensor<B, 1>) {
        *self.lock() = value.detach();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tensor<B, 1>> {
        // A poisoned lock only means another thread panicked mid-assignment of a whole tensor
        // handle; the handle itself is always valid, so keep going.
        self.value.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn as_param(&self) -> Param<Tensor<B, 1>> {
        Param::initialized(self.id, self.value())
    }
}

impl<B: Backend> Clone for RunningStat<B> {
    fn clone(&self) -> Self {
        Self::with_id(self.id, self.value())
    }
}

impl<B: Backend> Module<B> for RunningStat<B> {
    type Record = Param<Tensor<B, 1>>;

    fn collect_devices(&self, mut devices: Devices<B>) -> Devices<B> {
        let device = self.lock().device();
        if !devices.contains(&device) {
            devices.push(device);
        }
        devices
    }

    fn fork(self, device: &B::Device) -> Self {
        self.to_device(device)
    }

    fn to_device(self, device: &B::Device) -> Self {
        let value = self.value().to_device(device);
        Self::with_id(self.id, value)
    }

    /// Buffers are state, not parameters: PyTorch's `parameters()` does not count them either.
    fn num_params(&self) -> usize {
        0
    }

    fn visit<V: ModuleVisitor<B>>(&self, visitor: &mut V) {
        visitor.visit_float(&self.as_param());
    }

    fn map<M: ModuleMapper<B>>(self, mapper: &mut M) -> Self {
        let (id, value, _) = mapper.map_float(self.as_param()).consume();
        Self::with_id(id, value)
    }

    fn load_record(self, record: Self::Record) -> Self {
        let device = self.lock().device();
        let (id, value, _) = record.consume();
        Self::with_id(id, value.to_device(&device))
    }

    fn into_record(self) -> Self::Record {
        self.as_param()
    }
}

impl<B: AutodiffBackend> AutodiffModule<B> for RunningStat<B> {
    type InnerModule = RunningStat<B::InnerBackend>;

    fn valid(&self) -> Self::InnerModule {
        RunningStat::with_id(self.id, self.value().inner())
    }

    fn from_inner(module: Self::InnerModule) -> Self {
        RunningStat::with_id(module.id, Tensor::from_inner(module.value()))
    }
}

impl<B: AutodiffBackend> HasAutodiffModule<B> for RunningStat<B::InnerBackend> {
    type TrainModule = RunningStat<B>;
}

impl<B: Backend> ModuleDisplayDefault for RunningStat<B> {
    fn content(&self, content: Content) -> Option<Content> {
        content.add_formatted(&format!("RunningStat {:?}", self.lock().dims())).optional()
    }
}

impl<B: Backend> ModuleDisplay for RunningStat<B> {}

impl<B: Backend> std::fmt::Display for RunningStat<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunningStat(id={})", self.id)
    }
}
