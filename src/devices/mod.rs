//! Data parallelism over N devices (`--devices N`, docs/devices.md): one peer per device, each a thread with its own
//! copy of the trainer, each training on its shard of the global batch, all of them applying the same update.
//!
//! A peer learns that it is one of several from a thread-local [`Peer`] that [`DataParallel`] sets on every peer's
//! thread while it steps. The functions here are the points where the peers meet: every gradient pass goes
//! through [`gradients`] (or [`mean_gradients`]), the step's metrics through [`mean_metrics`], the BatchNorm running
//! statistics through [`average_running_stats`] and SimCLR's negatives through [`gather_rows`]. Outside a peer's
//! step (one device, evaluation, `burnish measure`) they are the identity, so single-device code pays nothing.
//!
//! The collectives are burn-collective's local level (peers are threads of this process). Its all-reduce sums in
//! an order that depends on a hash map when there are more than two peers; to give the same numbers for the same
//! seed whatever the order, every reduction here is an all-gather (each peer adds its rows into a zeroed buffer,
//! which is exact) followed by a sum in rank order, identical on every peer.

mod group;

pub use group::{check_recipe, run_peers, shard_batch, DataParallel, DevicesError};

use std::cell::Cell;

use burn::collective::{all_reduce, PeerId, ReduceOperation};
use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::params::{map_vector, Inner};

/// Whose gradient direction the ascent passes of SAM, ASAM, IAM-S and Algorithm 1 follow on several devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ascent {
    /// The global batch's: the ascent gradients are averaged over the peers, so N devices compute what one does.
    #[default]
    Global,
    /// Each peer's own shard's (m-sharpness with m = the per-device batch, as SAM's multi-device runs did); the
    /// gradient of the objective is still averaged.
    PerDevice,
}

/// One peer of a data-parallel run, as its own thread sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// 0-based position; peer 0 logs, evaluates and writes checkpoints.
    pub rank: usize,
    /// Number of peers N.
    pub count: usize,
    /// Whose ascent direction the perturbed rules use.
    pub ascent: Ascent,
}

thread_local! {
    static PEER: Cell<Option<Peer>> = const { Cell::new(None) };
}

/// The peer the calling thread is stepping as, if any.
pub fn current() -> Option<Peer> {
    PEER.with(Cell::get)
}

/// Marks the calling thread as `peer` until the guard is dropped (the previous marking is restored then).
pub(crate) fn enter(peer: Option<Peer>) -> PeerGuard {
    PeerGuard(PEER.with(|p| p.replace(peer)))
}

/// Restores the thread's previous [`Peer`] when dropped.
pub(crate) struct PeerGuard(Option<Peer>);

impl Drop for PeerGuard {
    fn drop(&mut self) {
        PEER.with(|p| p.set(self.0));
    }
}

/// Whether the calling peer chooses its ascent directions from its own shard alone ([`Ascent::PerDevice`]).
pub fn ascent_per_device() -> bool {
    current().is_some_and(|p| p.count > 1 && p.ascent == Ascent::PerDevice)
}

/// What a gradient pass is for, which decides whether it is averaged over the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// A gradient the update applies (or GGCR's Hessian products): always averaged.
    Objective,
    /// A gradient that only chooses a perturbation direction: averaged under [`Ascent::Global`].
    Ascent,
}

/// The peer to average with for a pass of kind `pass`, if any.
fn synced(pass: Pass) -> Option<Peer> {
    current().filter(|p| p.count > 1 && (pass == Pass::Objective || p.ascent == Ascent::Global))
}

/// The gradient of `loss` with respect to `model`'s parameters, averaged over the peers when the pass is synced.
pub fn gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    loss: Tensor<B, 1>,
    model: &M,
    pass: Pass,
) -> GradientsParams {
    use crate::profile::{scope, Class};
    let tape = {
        let _t = scope(Class::BackwardOther);
        loss.backward()
    };
    let _t = scope(Class::Gradients);
    mean_gradients(model, GradientsParams::from_grads(tape, model), pass)
}

/// `grads` averaged over the peers (one collective over all parameters, flattened in module order), when the pass
/// is synced; unchanged otherwise.
pub fn mean_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: GradientsParams,
    pass: Pass,
) -> GradientsParams {
    let Some(peer) = synced(pass) else {
        return grads;
    };
    let mut flats = Vec::new();
    map_vector(model, &grads, |e| {
        flats.push(e.flat.clone());
        e
    });
    // Which parameters have a gradient follows from the model and the stages, the same on every peer.
    if flats.is_empty() {
        return grads;
    }
    let mean = mean_over(peer, Tensor::cat(flats, 0));
    let mut offset = 0;
    map_vector(model, &grads, |mut e| {
        let n = e.flat.dims()[0];
        e.flat = mean.clone().narrow(0, offset, n);
        offset += n;
        e
    })
}

/// The step's metrics averaged over the peers (one collective for all of them), on a peer; unchanged otherwise.
/// Every metric is a mean over its peer's rows, so with equal shards the average is the global batch's value;
/// ratios of sums (`fixmatch/pseudo_acc_masked`) become the mean of the peers' ratios (docs/devices.md).
pub fn mean_metrics<B: AutodiffBackend>(metrics: Vec<(String, Tensor<B, 1>)>) -> Vec<(String, Tensor<B, 1>)> {
    let Some(peer) = current().filter(|p| p.count > 1) else {
        return metrics;
    };
    if metrics.is_empty() {
        return metrics;
    }
    let values: Vec<Tensor<Inner<B>, 1>> = metrics.iter().map(|(_, v)| v.clone().inner()).collect();
    let mean = mean_over(peer, Tensor::cat(values, 0));
    metrics.into_iter().enumerate().map(|(i, (k, _))| (k, Tensor::from_inner(mean.clone().narrow(0, i, 1)))).collect()
}

/// The mean over the peers of a host value, on a peer; the value itself otherwise. For decisions every peer must
/// take alike (GGCR skips its passes when no image of the global batch is confident).
pub fn mean_value<B: Backend>(value: f64, device: &B::Device) -> f64 {
    let Some(peer) = current().filter(|p| p.count > 1) else {
        return value;
    };
    let t = Tensor::<B, 1>::from_data(burn::tensor::TensorData::new(vec![value], [1]), device);
    mean_over(peer, t).into_data().convert::<f64>().to_vec::<f64>().map_or(f64::NAN, |v| v[0])
}

/// The rows of `x` from every peer, stacked in rank order (`[N·n, ..]` from `[n, ..]` each), on a peer; `x` otherwise.
/// Untracked: a caller that needs gradients through the other peers' rows routes them itself (the `ntxent` stage).
pub fn gather_rows<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let Some(peer) = current().filter(|p| p.count > 1) else {
        return x;
    };
    let [n, d] = x.dims();
    gather(peer, x.flatten(0, 1)).reshape([peer.count * n, d])
}

/// Averages the BatchNorm running statistics (every float of the model that is not trained) over the peers, so
/// that evaluation, the EMA and checkpoints do not depend on which peer wrote them; on a peer only.
pub fn average_running_stats<B: AutodiffBackend, M: AutodiffModule<B>>(model: M) -> M {
    struct Collect<B: AutodiffBackend>(Vec<Tensor<Inner<B>, 1>>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if !param.is_require_grad() {
                self.0.push(param.val().inner().flatten(0, D - 1));
            }
        }
    }
    struct Replace<B: AutodiffBackend> {
        mean: Tensor<Inner<B>, 1>,
        offset: usize,
    }
    impl<B: AutodiffBackend> ModuleMapper<B> for Replace<B> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            if param.is_require_grad() {
                return param;
            }
            let (id, t, mapper) = param.consume();
            let shape = t.shape();
            let n = shape.num_elements();
            let value = self.mean.clone().narrow(0, self.offset, n).reshape(shape);
            self.offset += n;
            Param::from_mapped_value(id, Tensor::from_inner(value), mapper)
        }
    }
    let Some(peer) = current().filter(|p| p.count > 1) else {
        return model;
    };
    let mut c = Collect::<B>(Vec::new());
    model.visit(&mut c);
    if c.0.is_empty() {
        return model;
    }
    let mean = mean_over(peer, Tensor::cat(c.0, 0));
    model.map(&mut Replace::<B> { mean, offset: 0 })
}

/// The mean over the peers of a flat tensor, summed in rank order so every peer gets the same bits.
fn mean_over<B: Backend>(peer: Peer, x: Tensor<B, 1>) -> Tensor<B, 1> {
    let n = x.dims()[0];
    let all = gather(peer, x);
    let mut sum = all.clone().narrow(0, 0, n);
    for r in 1..peer.count {
        sum = sum + all.clone().narrow(0, r * n, n);
    }
    sum.div_scalar(peer.count as f64)
}

/// Every peer's `x`, concatenated in rank order: each peer writes its `x` into its slot of a zeroed `[N·n]` buffer
/// and the buffers are summed, which is exact whatever order burn-collective adds them in.
fn gather<B: Backend>(peer: Peer, x: Tensor<B, 1>) -> Tensor<B, 1> {
    let n = x.dims()[0];
    let device = x.device();
    let started = std::time::Instant::now();
    let slot = peer.rank * n..(peer.rank + 1) * n;
    let padded = Tensor::<B, 1>::zeros([peer.count * n], &device).slice_assign(slot, x);
    let summed = all_reduce::<B>(PeerId::from(peer.rank), padded.into_primitive().tensor(), ReduceOperation::Sum)
        // Another peer failed and the group was torn down (docs/devices.md, "When a peer fails"): unwind this peer's
        // step too, so that the run stops with that peer's error instead of waiting for it forever.
        .unwrap_or_else(|_| std::panic::panic_any(group::PeerGone));
    group::add_collective_time(started.elapsed());
    Tensor::from_primitive(TensorPrimitive::Float(summed))
}
