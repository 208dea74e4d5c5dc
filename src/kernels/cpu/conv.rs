//! Bias-free 2-D convolution (groups 1, dilation 1) and both its gradients, by im2col + gemm on NCHW data.
//!
//! For one image, the column matrix `col[K, P]` (`K = C_in·k_h·k_w`, `P = H_out·W_out`) has row
//! `(c, i, j)` = input plane `c` shifted by `(i, j)`: for stride 1 every output row of it is one contiguous copy
//! of an input row plus zero borders. Then
//!
//! - forward: `y[C_out, P] = W[C_out, K] · col` — the weight is already `[C_out, K]` row-major and the result is
//!   already the image's NCHW output, so nothing is transposed;
//! - input gradient: `dcol[K, P] = Wᵀ · dy`, scattered back by col2im (a shifted add per row);
//! - weight gradient: `dW[C_out, K] += dy[C_out, P] · colᵀ`, summed over images (one partial sum per rayon task),
//!   computed as its transpose `col · dyᵀ` (same bits, faster in gemm).
//!
//! Images with small outputs (`P` < 256, e.g. 7×7) are batched `g` to a unit, `col[K, g·P]`, so gemm sees at least
//! 256 columns. Units run in parallel across rayon tasks, each gemm single-threaded; only a batch with fewer units
//! than threads lets gemm split its own work. 1×1 convolutions at stride 1 without padding skip im2col.

use gemm::Parallelism;
use rayon::prelude::*;

use super::super::simd;
use super::{threads, Real, SendPtr};

/// Columns gemm should see at least in one call, for its micro-kernels to run at full width.
const MIN_COLUMNS: usize = 256;

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride (height, width).
    pub stride: [usize; 2],
    /// Zero padding on each side (height, width).
    pub padding: [usize; 2],
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl ConvShape {
    /// The shape of a convolution of `x` `[N, C_in, H, W]` with `weight` `[C_out, C_in, k_h, k_w]`, or why it has
    /// no output.
    pub fn new(x: [usize; 4], weight: [usize; 4], stride: [usize; 2], padding: [usize; 2]) -> Result<Self, String> {
        let [n, c_in, h, w] = x;
        let [c_out, c_w, kh, kw] = weight;
        if c_w != c_in {
            return Err(format!("weight {weight:?} does not take {c_in} input channels"));
        }
        if stride.contains(&0) {
            return Err(format!("stride {stride:?} must be positive"));
        }
        let out = |size: usize, k: usize, s: usize, p: usize| (size + 2 * p).checked_sub(k).map(|d| d / s + 1);
        match (out(h, kh, stride[0], padding[0]), out(w, kw, stride[1], padding[1])) {
            (Some(oh), Some(ow)) if oh > 0 && ow > 0 && kh > 0 && kw > 0 => {
                Ok(Self { n, c_in, h, w, c_out, kernel: [kh, kw], stride, padding, oh, ow })
            }
            _ => Err(format!("kernel {kh}x{kw} does not fit input {h}x{w} with padding {padding:?}")),
        }
    }

    fn k(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    fn p(&self) -> usize {
        self.oh * self.ow
    }

    fn image_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Images per gemm call, so each call sees at least [`MIN_COLUMNS`] columns.
    pub(crate) fn images_per_unit(&self) -> usize {
        MIN_COLUMNS.div_ceil(self.p()).clamp(1, self.n.max(1))
    }
}

/// Forward convolution: `y` `[N, C_out, H_out, W_out]`. f32 convolutions at stride 1 on large enough planes take
/// the direct kernel of [`super::direct`], which gives the same bits.
pub fn conv2d<T: Real>(x: &[T], weight: &[T], s: ConvShape) -> Vec<T> {
    T::conv2d_direct(x, weight, s).unwrap_or_else(|| conv2d_im2col(x, weight, s))
}

/// Forward convolution by im2col + gemm, for every shape.
pub(crate) fn conv2d_im2col<T: Real>(x: &[T], weight: &[T], s: ConvShape) -> Vec<T> {
    assert_eq!(x.len(), s.n * s.image_len(), "conv2d: input length");
    assert_eq!(weight.len(), s.c_out * s.k(), "conv2d: weight length");
    let (k, p) = (s.k(), s.p());
    let g = s.images_per_unit();
    let units = s.n.div_ceil(g);
    let parallelism = gemm_parallelism(units);
    let mut y = vec![T::ZERO; s.n * s.c_out * p];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(g * s.c_out * p).enumerate().for_each_init(Scratch::<T>::default, |scratch, (u, y_unit)| {
        simd::dispatch(|| {
            let first = u * g;
            let images = y_unit.len() / (s.c_out * p);
            let cols = images * p;
            let (rhs, rhs_rs): (&[T], usize) = if s.pointwise() && images == 1 {
                (&x[first * s.image_len()..][..s.image_len()], p)
            } else {
                let col = Scratch::take(&mut scratch.col, k * cols);
                for i in 0..images {
                    im2col(&x[(first + i) * s.image_len()..][..s.image_len()], &s, col, cols, i * p);
                }
                (col, cols)
            };
            let lhs = Matrix { data: weight, rs: k, cs: 1 };
            let rhs = Matrix { data: rhs, rs: rhs_rs, cs: 1 };
            if images == 1 {
                gemm(y_unit, p, [s.c_out, p, k], lhs, rhs, false, parallelism);
            } else {
                let out = Scratch::take(&mut scratch.out, s.c_out * cols);
                gemm(out, cols, [s.c_out, cols, k], lhs, rhs, false, parallelism);
                for i in 0..images {
                    for co in 0..s.c_out {
                        y_unit[(i * s.c_out + co) * p..][..p].copy_from_slice(&out[co * cols + i * p..][..p]);
                    }
                }
            }
        })
    });
    y
}

/// Gradients of [`conv2d`] with respect to its input and/or its weight. f32 input gradients at stride 1 on large
/// enough planes take the direct kernel of [`super::direct`], which gives the same bits.
pub fn conv2d_backward<T: Real>(
    x: &[T],
    weight: &[T],
    grad: &[T],
    s: ConvShape,
    need_x: bool,
    need_weight: bool,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    if need_x {
        if let Some(dx) = T::conv2d_input_grad_direct(weight, grad, s) {
            let dw = if need_weight { conv2d_backward_im2col(x, weight, grad, s, false, true).1 } else { None };
            return (Some(dx), dw);
        }
    }
    conv2d_backward_im2col(x, weight, grad, s, need_x, need_weight)
}

/// Gradients of [`conv2d`] by im2col + gemm (+ col2im for the input), for every shape.
pub(crate) fn conv2d_backward_im2col<T: Real>(
    x: &[T],
    weight: &[T],
    grad: &[T],
    s: ConvShape,
    need_x: bool,
    need_weight: bool,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    assert_eq!(x.len(), s.n * s.image_len(), "conv2d_backward: input length");
    assert_eq!(weight.len(), s.c_out * s.k(), "conv2d_backward: weight length");
    assert_eq!(grad.len(), s.n * s.c_out * s.p(), "conv2d_backward: gradient length");
    let (k, p) = (s.k(), s.p());
    let g = s.images_per_unit();
    let units = s.n.div_ceil(g);
    let parallelism = gemm_parallelism(units);
    // One weight-gradient partial per task: two tasks a thread balance a shared machine at little summing cost.
    let tasks = units.min(threads() * 2).max(1);
    let mut dx = need_x.then(|| vec![T::ZERO; x.len()]);
    let dx_ptr = SendPtr(dx.as_mut().map_or(std::ptr::null_mut(), |v| v.as_mut_ptr()));
    let partials: Vec<Vec<T>> = (0..tasks)
        .into_par_iter()
        .map(|task| {
            simd::dispatch(|| {
                let mut scratch = Scratch::<T>::default();
                let mut dw = if need_weight { vec![T::ZERO; s.c_out * k] } else { Vec::new() };
                let mut accumulate = false;
                for u in task * units / tasks..(task + 1) * units / tasks {
                    let first = u * g;
                    let images = g.min(s.n - first);
                    let cols = images * p;
                    let dy_unit: Matrix<T> = if images == 1 {
                        Matrix { data: &grad[first * s.c_out * p..][..s.c_out * p], rs: p, cs: 1 }
                    } else {
                        let dy = Scratch::take(&mut scratch.out, s.c_out * cols);
                        for i in 0..images {
                            for co in 0..s.c_out {
                                dy[co * cols + i * p..][..p]
                                    .copy_from_slice(&grad[((first + i) * s.c_out + co) * p..][..p]);
                            }
                        }
                        Matrix { data: dy, rs: cols, cs: 1 }
                    };
                    if need_weight {
                        let col: Matrix<T> = if s.pointwise() && images == 1 {
                            Matrix { data: &x[first * s.image_len()..][..s.image_len()], rs: p, cs: 1 }
                        } else {
                            let col = Scratch::take(&mut scratch.col, k * cols);
                            for i in 0..images {
                                im2col(&x[(first + i) * s.image_len()..][..s.image_len()], &s, col, cols, i * p);
                            }
                            Matrix { data: col, rs: cols, cs: 1 }
                        };
                        // dWᵀ[K, C_out] += col[K, cols] · dyᵀ[cols, C_out]: each output is the same chain as in
                        // dy · colᵀ (gemm's order per output does not depend on which operand is which), and
                        // gemm runs this orientation up to twice as fast (docs/kernels.md, "Convolution").
                        gemm(&mut dw, s.c_out, [k, s.c_out, cols], col, dy_unit.t(), accumulate, parallelism);
                        accumulate = true;
                    }
                    if need_x {
                        // SAFETY: the images of unit `u` belong to this task alone.
                        let dx_unit = unsafe { dx_ptr.slice_mut(first * s.image_len(), images * s.image_len()) };
                        let w_t = Matrix { data: weight, rs: 1, cs: k };
                        if s.pointwise() && images == 1 {
                            gemm(dx_unit, p, [k, p, s.c_out], w_t, dy_unit, false, parallelism);
                        } else {
                            let dcol = Scratch::take(&mut scratch.col, k * cols);
                            gemm(dcol, cols, [k, cols, s.c_out], w_t, dy_unit, false, parallelism);
                            for i in 0..images {
                                col2im(dcol, cols, i * p, &s, &mut dx_unit[i * s.image_len()..][..s.image_len()]);
                            }
                        }
                    }
                }
                dw
            })
        })
        .collect();
    let dw = need_weight.then(|| {
        let mut parts = partials.into_iter();
        let mut total = parts.next().unwrap_or_else(|| vec![T::ZERO; s.c_out * k]);
        for part in parts {
            for (t, v) in total.iter_mut().zip(part) {
                *t = *t + v;
            }
        }
        // [K, C_out] → [C_out, K].
        let mut dw = vec![T::ZERO; s.c_out * k];
        for (r, row) in total.chunks_exact(s.c_out).enumerate() {
            for (co, &v) in row.iter().enumerate() {
                dw[co * k + r] = v;
            }
        }
        dw
    });
    (dx, dw)
}

/// A strided read-only matrix view: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct Matrix<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

impl<'a, T> Matrix<'a, T> {
    fn t(self) -> Self {
        Self { data: self.data, rs: self.cs, cs: self.rs }
    }
}

/// `dst[m, n]` (row stride `dst_rs`) = `lhs[m, k] · rhs[k, n]`, or `+=` when `accumulate`.
fn gemm<T: Real>(
    dst: &mut [T],
    dst_rs: usize,
    [m, n, k]: [usize; 3],
    lhs: Matrix<T>,
    rhs: Matrix<T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * dst_rs + n <= dst.len(), "gemm: destination too small");
    assert!(k == 0 || (m - 1) * lhs.rs + (k - 1) * lhs.cs < lhs.data.len(), "gemm: lhs too small");
    assert!(k == 0 || (k - 1) * rhs.rs + (n - 1) * rhs.cs < rhs.data.len(), "gemm: rhs too small");
    let one = T::from_f64(1.0);
    // SAFETY: the asserts above keep every index gemm touches inside the three slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            one,
            one,
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn gemm_parallelism(units: usize) -> Parallelism {
    if units < threads() {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// Per-task buffers, grown on demand and reused across units.
struct Scratch<T> {
    col: Vec<T>,
    out: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Self { col: Vec::new(), out: Vec::new() }
    }
}

impl<T: Real> Scratch<T> {
    fn take(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
        if buffer.len() < len {
            buffer.resize(len, T::ZERO);
        }
        &mut buffer[..len]
    }
}

/// The output columns `[lo, hi)` of a kernel column `kj` that read inside the input row (the rest read padding).
#[inline(always)]
fn valid_range(kj: usize, pad: usize, stride: usize, size: usize, out: usize) -> (usize, usize) {
    // Output column o reads input column o·stride + kj − pad, which must lie in [0, size).
    let lo = pad.saturating_sub(kj).div_ceil(stride);
    let hi = if size + pad > kj { ((size + pad - kj - 1) / stride + 1).min(out) } else { 0 };
    (lo.min(hi), hi)
}

/// Writes the columns of one image into `col` (row stride `ld`, starting at column `offset`).
#[inline(always)]
fn im2col<T: Real>(x: &[T], s: &ConvShape, col: &mut [T], ld: usize, offset: usize) {
    let ([kh, kw], [sh, sw], [ph, pw]) = (s.kernel, s.stride, s.padding);
    let (h, w, ow) = (s.h, s.w, s.ow);
    for c in 0..s.c_in {
        let plane = &x[c * h * w..][..h * w];
        for ki in 0..kh {
            let (y_lo, y_hi) = valid_range(ki, ph, sh, h, s.oh);
            for kj in 0..kw {
                let row = &mut col[((c * kh + ki) * kw + kj) * ld + offset..][..s.p()];
                let (lo, hi) = valid_range(kj, pw, sw, w, ow);
                row[..y_lo * ow].fill(T::ZERO);
                row[y_hi * ow..].fill(T::ZERO);
                for oy in y_lo..y_hi {
                    let src = &plane[(oy * sh + ki - ph) * w..][..w];
                    let dst = &mut row[oy * ow..][..ow];
                    dst[..lo].fill(T::ZERO);
                    dst[hi..].fill(T::ZERO);
                    if sw == 1 {
                        dst[lo..hi].copy_from_slice(&src[lo + kj - pw..hi + kj - pw]);
                    } else {
                        for (o, d) in dst[lo..hi].iter_mut().enumerate() {
                            *d = src[(lo + o) * sw + kj - pw];
                        }
                    }
                }
            }
        }
    }
}

/// Adds the columns of one image (row stride `ld`, starting at column `offset`) back onto its input gradient.
#[inline(always)]
fn col2im<T: Real>(col: &[T], ld: usize, offset: usize, s: &ConvShape, dx: &mut [T]) {
    let ([kh, kw], [sh, sw], [ph, pw]) = (s.kernel, s.stride, s.padding);
    let (h, w, ow) = (s.h, s.w, s.ow);
    for c in 0..s.c_in {
        let plane = &mut dx[c * h * w..][..h * w];
        for ki in 0..kh {
            let (y_lo, y_hi) = valid_range(ki, ph, sh, h, s.oh);
            for kj in 0..kw {
                let row = &col[((c * kh + ki) * kw + kj) * ld + offset..][..s.p()];
                let (lo, hi) = valid_range(kj, pw, sw, w, ow);
                for oy in y_lo..y_hi {
                    let dst = &mut plane[(oy * sh + ki - ph) * w..][..w];
                    let src = &row[oy * ow..][..ow];
                    if sw == 1 {
                        for (d, &v) in dst[lo + kj - pw..hi + kj - pw].iter_mut().zip(&src[lo..hi]) {
                            *d = *d + v;
                        }
                    } else {
                        for (o, &v) in src[lo..hi].iter().enumerate() {
                            let d = &mut dst[(lo + o) * sw + kj - pw];
                            *d = *d + v;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Seeded values in [−0.5, 0.5), for the kernels' bit-for-bit tests.
    pub(crate) fn values<T: Real>(len: usize, seed: u64) -> Vec<T> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                T::from_f64((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
            })
            .collect()
    }

    /// The weight gradient's transposed product `col · dyᵀ` gives, transposed back, the bits of `dy · colᵀ`,
    /// accumulated over two units as the backward pass does, including reductions gemm splits.
    fn transposed_weight_gradient_gives_the_same_bits<T: Real + std::fmt::Debug>() {
        // (C_out, K, cols): wrn-28-2's groups, cnn-small's layers, 2 and 3 reduction blocks, a small product.
        for (i, &(c_out, k, cols)) in
            [(32, 288, 1024), (16, 27, 1024), (64, 576, 256), (64, 288, 784), (128, 1152, 320), (5, 600, 48)]
                .iter()
                .enumerate()
        {
            let (mut dw, mut dw_t) = (vec![T::ZERO; c_out * k], vec![T::ZERO; k * c_out]);
            for unit in 0..2 {
                let seed = 10 * i as u64 + 2 * unit as u64;
                let dy = values::<T>(c_out * cols, seed);
                let col = values::<T>(k * cols, seed + 1);
                let dy = Matrix { data: &dy, rs: cols, cs: 1 };
                let col = Matrix { data: &col, rs: cols, cs: 1 };
                let accumulate = unit > 0;
                gemm(&mut dw, k, [c_out, k, cols], dy, col.t(), accumulate, Parallelism::None);
                gemm(&mut dw_t, c_out, [k, c_out, cols], col, dy.t(), accumulate, Parallelism::None);
            }
            for co in 0..c_out {
                for r in 0..k {
                    let (a, b) = (dw[co * k + r], dw_t[r * c_out + co]);
                    assert!(
                        a.to_f64().to_bits() == b.to_f64().to_bits(),
                        "({c_out}, {k}, {cols}) [{co}, {r}]: {a:?} vs {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn transposed_weight_gradient_gives_the_same_bits_f32() {
        transposed_weight_gradient_gives_the_same_bits::<f32>();
    }

    #[test]
    fn transposed_weight_gradient_gives_the_same_bits_f64() {
        transposed_weight_gradient_gives_the_same_bits::<f64>();
    }
}
