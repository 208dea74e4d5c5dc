//! Where a training step's time goes: wall-clock timers by op class and an allocation count, off unless
//! `burnish bench --profile` turns them on (docs/kernels.md, "Profile").
//!
//! A [`scope`] charges the wall time between its creation and its drop to one [`Class`], minus the time of the scopes
//! opened inside it on the same thread, so the classes of a step add up to the step. Switched off, a scope costs one
//! relaxed atomic load: the timers stay compiled in every build, so the profile measures the binary users run.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What a span of a training step is spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Convolution forward (`src/kernels`).
    ConvForward,
    /// Convolution input gradient.
    ConvInputGrad,
    /// Convolution weight gradient.
    ConvWeightGrad,
    /// BatchNorm + activation (and eval-mode affine + activation) forward.
    NormForward,
    /// BatchNorm + activation backward.
    NormBackward,
    /// The rest of the model's forward: pooling, linear layers, residual adds, reshapes.
    ForwardOther,
    /// Losses and stage math on the logits: cross-entropy, softmax, KL, pseudo-labels and masks.
    Loss,
    /// The rest of the backward pass: element-wise, pooling and linear gradients and Burn's autodiff bookkeeping.
    BackwardOther,
    /// Collecting the tape's gradients into parameter vectors (and averaging them over peers).
    Gradients,
    /// Building perturbations (ε, δ, their norms) and the perturbed copies of the model.
    Perturb,
    /// The optimiser's update of the parameters.
    Optimizer,
    /// The EMA of the weights.
    Ema,
    /// Metrics read back to the host, the gradient norm and the finiteness check of the new state.
    Checks,
    /// Everything else inside the step (batch upload, clones of module handles).
    Other,
}

impl Class {
    /// Every class, in the order the profile table lists them.
    pub const ALL: [Class; 14] = [
        Class::ConvForward,
        Class::ConvInputGrad,
        Class::ConvWeightGrad,
        Class::NormForward,
        Class::NormBackward,
        Class::ForwardOther,
        Class::Loss,
        Class::BackwardOther,
        Class::Gradients,
        Class::Perturb,
        Class::Optimizer,
        Class::Ema,
        Class::Checks,
        Class::Other,
    ];

    /// The class's name in the profile table (and `bench --profile`'s `profile.<name>_ms` keys).
    pub fn name(self) -> &'static str {
        match self {
            Class::ConvForward => "conv_forward",
            Class::ConvInputGrad => "conv_input_grad",
            Class::ConvWeightGrad => "conv_weight_grad",
            Class::NormForward => "norm_act_forward",
            Class::NormBackward => "norm_act_backward",
            Class::ForwardOther => "forward_other",
            Class::Loss => "loss",
            Class::BackwardOther => "backward_other",
            Class::Gradients => "gradients",
            Class::Perturb => "perturb",
            Class::Optimizer => "optimizer",
            Class::Ema => "ema",
            Class::Checks => "checks",
            Class::Other => "other",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; Class::ALL.len()] = [const { AtomicU64::new(0) }; Class::ALL.len()];
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static OPEN: RefCell<Vec<(Class, Instant)>> = const { RefCell::new(Vec::new()) };
}

/// Turns the timers and the allocation count on or off for the whole process.
pub fn enable(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// Whether profiling is on (kernels use it to time their parts separately).
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

fn charge(class: Class, d: Duration) {
    NANOS[class as usize].fetch_add(d.as_nanos() as u64, Relaxed);
}

/// Charges the time until the returned guard drops to `class` (exclusive of nested scopes on this thread).
#[must_use = "the span ends when the guard drops"]
pub fn scope(class: Class) -> Scope {
    if !enabled() {
        return Scope(false);
    }
    let now = Instant::now();
    OPEN.with(|open| {
        let mut open = open.borrow_mut();
        if let Some((parent, since)) = open.last_mut() {
            charge(*parent, now - *since);
        }
        open.push((class, now));
    });
    Scope(true)
}

/// An open span of [`scope`]; it closes on drop.
pub struct Scope(bool);

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.0 {
            return;
        }
        let now = Instant::now();
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            if let Some((class, since)) = open.pop() {
                charge(class, now - since);
            }
            // The enclosing span resumes from here: its own time excludes the nested one.
            if let Some((_, since)) = open.last_mut() {
                *since = now;
            }
        });
    }
}

/// The totals since the last [`reset`]: milliseconds per class and the allocations counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// Milliseconds charged to each class, in [`Class::ALL`] order.
    pub ms: Vec<(Class, f64)>,
    /// Heap allocations made.
    pub allocations: u64,
    /// Bytes those allocations asked for.
    pub allocated_bytes: u64,
}

/// Zeroes the timers and the allocation count.
pub fn reset() {
    for n in &NANOS {
        n.store(0, Relaxed);
    }
    ALLOCS.store(0, Relaxed);
    ALLOC_BYTES.store(0, Relaxed);
}

/// The timers and allocation count accumulated since the last [`reset`].
pub fn totals() -> Totals {
    Totals {
        ms: Class::ALL.iter().map(|&c| (c, NANOS[c as usize].load(Relaxed) as f64 / 1e6)).collect(),
        allocations: ALLOCS.load(Relaxed),
        allocated_bytes: ALLOC_BYTES.load(Relaxed),
    }
}

/// A global allocator that counts allocations while profiling is on and otherwise only forwards to `A`.
pub struct Counting<A>(pub A);

fn count_allocation(bytes: usize) {
    if enabled() {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(bytes as u64, Relaxed);
    }
}

// SAFETY: every call forwards to the wrapped allocator unchanged; the counters have no effect on memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation(layout.size());
        // SAFETY: the caller's contract is passed on as is.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation(layout.size());
        // SAFETY: as above.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation(new_size);
        // SAFETY: as above.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}
