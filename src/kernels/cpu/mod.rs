//! CPU kernels over contiguous slices (f32 and f64), used by the `Flex` implementation of
//! [`Kernels`](super::Kernels). Layouts are Burn's: NCHW activations, `[C_out, C_in, k_h, k_w]` weights.

pub mod batch_norm;
pub mod conv;
pub mod direct;

use std::ops::{Add, Mul, Sub};

/// A float type the kernels run on (f32 or f64); statistics are accumulated in f64 across rows.
pub trait Real:
    Copy + Send + Sync + PartialOrd + Default + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + 'static
{
    /// Zero.
    const ZERO: Self;
    /// Converts from f64 (rounding for f32).
    fn from_f64(v: f64) -> Self;
    /// Converts to f64 (exact).
    fn to_f64(self) -> f64;
    /// The forward convolution by a kernel that gives im2col + gemm's bits faster, where one applies to this type
    /// and shape.
    fn conv2d_direct(_x: &[Self], _weight: &[Self], _s: conv::ConvShape) -> Option<Vec<Self>> {
        None
    }
    /// The input gradient of the convolution by such a kernel, where one applies.
    fn conv2d_input_grad_direct(_weight: &[Self], _grad: &[Self], _s: conv::ConvShape) -> Option<Vec<Self>> {
        None
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn conv2d_direct(x: &[Self], weight: &[Self], s: conv::ConvShape) -> Option<Vec<Self>> {
        direct::applies(&s).then(|| direct::conv2d(x, weight, s))
    }
    fn conv2d_input_grad_direct(weight: &[Self], grad: &[Self], s: conv::ConvShape) -> Option<Vec<Self>> {
        direct::applies_input_grad(&s).then(|| direct::conv2d_input_grad(weight, grad, s))
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

/// A raw pointer that rayon tasks may share, for writes to disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);

// SAFETY: every user writes disjoint index ranges from different tasks and reads nothing another task writes.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The sub-slice `[start, start + len)`.
    ///
    /// # Safety
    /// In bounds of the original buffer, and no other live reference overlaps it.
    #[inline(always)]
    pub(crate) unsafe fn slice_mut<'a>(self, start: usize, len: usize) -> &'a mut [T] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Rayon's worker count (what `RAYON_NUM_THREADS` sets).
pub(crate) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}
