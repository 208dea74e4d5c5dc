//! Fused per-channel kernels over `[N, C, L]` (NCHW with `L = H·W`): training-mode BatchNorm + activation and the
//! eval-mode affine + activation, forward and backward.
//!
//! Channel `c` owns the `N` rows `x[n, c, ..]` of `L` contiguous values. Work is split by channel across rayon
//! tasks; each task reads its rows once for the statistics and again (mostly from L2, a channel's rows being at
//! most a few hundred KiB on the benchmark shapes) to write the output. Within a row, sums run in the element type
//! over 32 independent accumulators (which LLVM turns into vector registers); rows are combined in f64. The variance
//! is centred per row and rows are merged with Chan et al.'s pairwise update, so it keeps full precision whatever
//! the mean.

use rayon::prelude::*;

use super::super::{simd, Activation};
use super::{Real, SendPtr};

const LANES: usize = 32;

/// `[N, C, L]`: batch, channels, values per channel and image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ncl {
    /// Batch size N.
    pub n: usize,
    /// Channels C.
    pub c: usize,
    /// Values per (image, channel), `H·W`.
    pub l: usize,
}

impl Ncl {
    fn len(self) -> usize {
        self.n * self.c * self.l
    }

    fn row(self, image: usize, channel: usize) -> usize {
        (image * self.c + channel) * self.l
    }
}

/// Training-mode forward: `y = act(γ(x − μ)/√(σ² + ε) + β)`, returning `(y, μ, σ²)` with the biased variance.
pub fn batch_norm_act<T: Real>(
    x: &[T],
    shape: Ncl,
    gamma: &[T],
    beta: &[T],
    epsilon: f64,
    act: Activation,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    assert_eq!(x.len(), shape.len(), "batch_norm_act: input length");
    let mut y = vec![T::ZERO; x.len()];
    let out = SendPtr(y.as_mut_ptr());
    let stats: Vec<(T, T)> = (0..shape.c)
        .into_par_iter()
        .map(|ch| {
            simd::dispatch(|| {
                let (mean, var) = channel_stats(x, shape, ch);
                let (mean, var) = (T::from_f64(mean), T::from_f64(var));
                let affine = Affine::batch_norm(gamma[ch], beta[ch], mean, var, epsilon);
                for i in 0..shape.n {
                    let start = shape.row(i, ch);
                    // SAFETY: row (i, ch) belongs to this channel's task alone.
                    let dst = unsafe { out.slice_mut(start, shape.l) };
                    affine_act_row(&x[start..start + shape.l], dst, affine, act);
                }
                (mean, var)
            })
        })
        .collect();
    let (mean, var) = stats.into_iter().unzip();
    (y, mean, var)
}

/// Training-mode backward from the saved input and batch statistics: `(∂x, ∂γ, ∂β)`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_act_backward<T: Real>(
    x: &[T],
    grad: &[T],
    shape: Ncl,
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    var: &[T],
    epsilon: f64,
    act: Activation,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    assert_eq!(x.len(), shape.len(), "batch_norm_act_backward: input length");
    assert_eq!(grad.len(), shape.len(), "batch_norm_act_backward: gradient length");
    let mut dx = vec![T::ZERO; x.len()];
    let out = SendPtr(dx.as_mut_ptr());
    let count = (shape.n * shape.l) as f64;
    let sums: Vec<(T, T)> = (0..shape.c)
        .into_par_iter()
        .map(|ch| {
            simd::dispatch(|| {
                let affine = Affine::batch_norm(gamma[ch], beta[ch], mean[ch], var[ch], epsilon);
                // Σg and Σg·(x − μ) with g = ∂L/∂z, the pre-activation gradient.
                let (mut sum_g, mut sum_gc) = (0.0f64, 0.0f64);
                for i in 0..shape.n {
                    let start = shape.row(i, ch);
                    let (a, b) = grad_sums_row(&x[start..start + shape.l], &grad[start..start + shape.l], affine, act);
                    sum_g += a;
                    sum_gc += b;
                }
                let inv_std = 1.0 / (var[ch].to_f64() + epsilon).sqrt();
                let k = gamma[ch].to_f64() * inv_std;
                // ∂x = k·(g − Σg/M − x̂·Σg·x̂/M) with x̂ = (x − μ)/σ, i.e. k·g + p·(x − μ) + q.
                let p = -k * inv_std * inv_std * sum_gc / count;
                let q = -k * sum_g / count;
                let coefficients = (T::from_f64(k), T::from_f64(p), T::from_f64(q));
                for i in 0..shape.n {
                    let start = shape.row(i, ch);
                    // SAFETY: row (i, ch) belongs to this channel's task alone.
                    let dst = unsafe { out.slice_mut(start, shape.l) };
                    let rows = (&x[start..start + shape.l], &grad[start..start + shape.l]);
                    input_grad_row(rows, dst, affine, coefficients, act);
                }
                (T::from_f64(sum_gc * inv_std), T::from_f64(sum_g))
            })
        })
        .collect();
    let (d_gamma, d_beta) = sums.into_iter().unzip();
    (dx, d_gamma, d_beta)
}

/// Eval-mode forward: `y = act(x·scale + shift)` per channel.
pub fn affine_act<T: Real>(x: &[T], shape: Ncl, scale: &[T], shift: &[T], act: Activation) -> Vec<T> {
    assert_eq!(x.len(), shape.len(), "affine_act: input length");
    let mut y = vec![T::ZERO; x.len()];
    let out = SendPtr(y.as_mut_ptr());
    (0..shape.c).into_par_iter().for_each(|ch| {
        simd::dispatch(|| {
            for i in 0..shape.n {
                let start = shape.row(i, ch);
                // SAFETY: row (i, ch) belongs to this channel's task alone.
                let dst = unsafe { out.slice_mut(start, shape.l) };
                affine_act_row(&x[start..start + shape.l], dst, Affine::plain(scale[ch], shift[ch]), act);
            }
        })
    });
    y
}

/// Eval-mode backward: `(∂x, ∂scale, ∂shift)`.
pub fn affine_act_backward<T: Real>(
    x: &[T],
    grad: &[T],
    shape: Ncl,
    scale: &[T],
    shift: &[T],
    act: Activation,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    assert_eq!(x.len(), shape.len(), "affine_act_backward: input length");
    assert_eq!(grad.len(), shape.len(), "affine_act_backward: gradient length");
    let mut dx = vec![T::ZERO; x.len()];
    let out = SendPtr(dx.as_mut_ptr());
    let sums: Vec<(T, T)> = (0..shape.c)
        .into_par_iter()
        .map(|ch| {
            simd::dispatch(|| {
                let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
                let affine = Affine::plain(scale[ch], shift[ch]);
                for i in 0..shape.n {
                    let start = shape.row(i, ch);
                    let (xr, gr) = (&x[start..start + shape.l], &grad[start..start + shape.l]);
                    let (a, c) = grad_sums_row(xr, gr, affine, act);
                    sum_g += a;
                    sum_gx += c;
                    // SAFETY: row (i, ch) belongs to this channel's task alone.
                    let dst = unsafe { out.slice_mut(start, shape.l) };
                    input_grad_row((xr, gr), dst, affine, (affine.scale, T::ZERO, T::ZERO), act);
                }
                (T::from_f64(sum_gx), T::from_f64(sum_g))
            })
        })
        .collect();
    let (d_scale, d_shift) = sums.into_iter().unzip();
    (dx, d_scale, d_shift)
}

/// The pre-activation `z = (x − centre)·scale + shift`. BatchNorm centres on the mean before scaling (instead of
/// folding `β − μ·scale` into one shift), so a large mean costs no precision.
#[derive(Clone, Copy)]
struct Affine<T> {
    centre: T,
    scale: T,
    shift: T,
}

impl<T: Real> Affine<T> {
    /// BatchNorm's `γ(x − μ)/√(σ² + ε) + β`; the backward pass rebuilds it from the same rounded μ and σ², so
    /// its activation mask matches the forward output's exactly.
    #[inline(always)]
    fn batch_norm(gamma: T, beta: T, mean: T, var: T, epsilon: f64) -> Self {
        let scale = gamma.to_f64() / (var.to_f64() + epsilon).sqrt();
        Self { centre: mean, scale: T::from_f64(scale), shift: beta }
    }

    #[inline(always)]
    fn plain(scale: T, shift: T) -> Self {
        Self { centre: T::ZERO, scale, shift }
    }

    #[inline(always)]
    fn z(self, v: T) -> T {
        (v - self.centre) * self.scale + self.shift
    }
}

/// Mean and biased variance of channel `ch`: per-row centred sums merged in f64 (Chan et al.).
#[inline(always)]
fn channel_stats<T: Real>(x: &[T], shape: Ncl, ch: usize) -> (f64, f64) {
    let (mut count, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
    let l = shape.l as f64;
    for i in 0..shape.n {
        let start = shape.row(i, ch);
        let row = &x[start..start + shape.l];
        let row_mean = sum(row).to_f64() / l;
        let row_m2 = centred_square_sum(row, T::from_f64(row_mean)).to_f64();
        let total = count + l;
        let delta = row_mean - mean;
        mean += delta * l / total;
        m2 += row_m2 + delta * delta * count * l / total;
        count = total;
    }
    (mean, (m2 / count).max(0.0))
}

#[inline(always)]
fn sum<T: Real>(row: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for j in 0..LANES {
            acc[j] = acc[j] + chunk[j];
        }
    }
    reduce(acc) + tail.iter().fold(T::ZERO, |a, &v| a + v)
}

#[inline(always)]
fn centred_square_sum<T: Real>(row: &[T], centre: T) -> T {
    let mut acc = [T::ZERO; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for j in 0..LANES {
            let d = chunk[j] - centre;
            acc[j] = acc[j] + d * d;
        }
    }
    reduce(acc)
        + tail.iter().fold(T::ZERO, |a, &v| {
            let d = v - centre;
            a + d * d
        })
}

#[inline(always)]
fn reduce<T: Real>(mut acc: [T; LANES]) -> T {
    let mut width = LANES / 2;
    while width > 0 {
        for j in 0..width {
            acc[j] = acc[j] + acc[j + width];
        }
        width /= 2;
    }
    acc[0]
}

/// `dst = act(z(src))`, with the activation hoisted out of the loop so each variant vectorises.
#[inline(always)]
fn affine_act_row<T: Real>(src: &[T], dst: &mut [T], affine: Affine<T>, act: Activation) {
    match act {
        Activation::None => map_row(src, dst, |v| affine.z(v)),
        Activation::Relu => map_row(src, dst, |v| {
            let z = affine.z(v);
            if z > T::ZERO {
                z
            } else {
                T::ZERO
            }
        }),
        Activation::LeakyRelu(slope) => {
            let slope = T::from_f64(slope);
            map_row(src, dst, |v| {
                let z = affine.z(v);
                if z < T::ZERO {
                    z * slope
                } else {
                    z
                }
            })
        }
    }
}

#[inline(always)]
fn map_row<T: Real>(src: &[T], dst: &mut [T], f: impl Fn(T) -> T) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f(s);
    }
}

/// `g = grad·act'(z(x))` over a row, returning `(Σg, Σg·(x − centre))`.
#[inline(always)]
fn grad_sums_row<T: Real>(x: &[T], grad: &[T], affine: Affine<T>, act: Activation) -> (f64, f64) {
    let centre = affine.centre;
    match act {
        Activation::None => sums_row(x, grad, centre, |_, g| g),
        Activation::Relu => sums_row(x, grad, centre, |v, g| if affine.z(v) > T::ZERO { g } else { T::ZERO }),
        Activation::LeakyRelu(slope) => {
            let slope = T::from_f64(slope);
            sums_row(x, grad, centre, |v, g| if affine.z(v) < T::ZERO { g * slope } else { g })
        }
    }
}

#[inline(always)]
fn sums_row<T: Real>(x: &[T], grad: &[T], centre: T, g_of: impl Fn(T, T) -> T) -> (f64, f64) {
    let mut acc_g = [T::ZERO; LANES];
    let mut acc_gc = [T::ZERO; LANES];
    let xs = x.chunks_exact(LANES);
    let gs = grad.chunks_exact(LANES);
    let (x_tail, g_tail) = (xs.remainder(), gs.remainder());
    for (xc, gc) in xs.zip(gs) {
        for j in 0..LANES {
            let g = g_of(xc[j], gc[j]);
            acc_g[j] = acc_g[j] + g;
            acc_gc[j] = acc_gc[j] + g * (xc[j] - centre);
        }
    }
    let (mut sum_g, mut sum_gc) = (reduce(acc_g), reduce(acc_gc));
    for (&v, &gr) in x_tail.iter().zip(g_tail) {
        let g = g_of(v, gr);
        sum_g = sum_g + g;
        sum_gc = sum_gc + g * (v - centre);
    }
    (sum_g.to_f64(), sum_gc.to_f64())
}

/// `dst = k·g + p·(x − centre) + q` with `g = grad·act'(z(x))`.
#[inline(always)]
fn input_grad_row<T: Real>(
    (x, grad): (&[T], &[T]),
    dst: &mut [T],
    affine: Affine<T>,
    (k, p, q): (T, T, T),
    act: Activation,
) {
    let c = affine.centre;
    let rows = dst.iter_mut().zip(x.iter().zip(grad));
    match act {
        Activation::None => rows.for_each(|(d, (&v, &g))| *d = k * g + p * (v - c) + q),
        Activation::Relu => rows.for_each(|(d, (&v, &g))| {
            let g = if affine.z(v) > T::ZERO { g } else { T::ZERO };
            *d = k * g + p * (v - c) + q
        }),
        Activation::LeakyRelu(slope) => {
            let slope = T::from_f64(slope);
            rows.for_each(|(d, (&v, &g))| {
                let g = if affine.z(v) < T::ZERO { g * slope } else { g };
                *d = k * g + p * (v - c) + q
            })
        }
    }
}
