//! Convolutions at stride 1 in f32 without im2col — the forward pass and the input gradient — giving the bits of
//! [`super::conv`]'s im2col + gemm (+ col2im).
//!
//! Each input plane is copied once with its zero padding into rows of width `Wq`. On that grid the tap `(i, j)` of
//! output position `q = oy·Wq + ox` reads input position `q + i·Wq + j`, so for a run of consecutive `q` every tap
//! is one contiguous vector load, whatever the kernel size. The kernel keeps a block of output channels × a run of
//! `q` in registers and runs chains of fused multiply-adds from zero over a list of terms (an input plane and a tap
//! each), adding each chain onto the sum of the earlier ones:
//!
//! - forward: `y = W ⋆ x`, terms `(c, i, j)` in im2col's row order, chains of gemm's reduction blocks;
//! - input gradient: `dx = W_flipped ⋆ dy` on `dy` padded by `k − 1 − p`, for each tap `(i, j)` in col2im's order one
//!   chain over the output channels, as gemm computes `dcol = Wᵀ · dy` and col2im adds its rows.
//!
//! Each output is thus the same sequence of roundings as on the im2col path. The grid's last `k_w − 1` columns of
//! each row are computed and dropped; the `applies` functions skip shapes where that waste outweighs the saved
//! copies (small planes). The weight gradient stays with im2col + gemm, whose order (a chain over positions for
//! each weight) a kernel vectorised over positions cannot follow. docs/kernels.md, "Direct convolution", has the
//! measurements.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rayon::prelude::*;

use super::conv::ConvShape;

/// The longest run of a reduction gemm computes as one chain of fused multiply-adds (gemm-common 0.19's `kc`).
const GEMM_KC: usize = 512;

/// The reduction block gemm-common 0.19 takes for an `m × n × k` product: products of at most 64 × 64 take blocks
/// of 512 terms and a remainder; larger ones split the reduction evenly into `ceil(k / 512)` blocks. (gemm computes
/// a cache-derived block first and raises it to 512; it stays below 512 for L1 caches up to 64 KiB, so the even
/// split holds on the CPUs this runs on, and the tests here check the bits wherever they run.) Each block is a
/// chain from zero, added onto the earlier blocks' sum.
fn gemm_block(m: usize, n: usize, k: usize) -> usize {
    if m <= 64 && n <= 64 {
        k.min(GEMM_KC)
    } else {
        k.div_ceil(k.div_ceil(GEMM_KC))
    }
}

/// The columns of the gemm call that image `n` is part of on the im2col path (images are grouped into units).
fn unit_columns(s: &ConvShape, n: usize) -> usize {
    let g = s.images_per_unit();
    g.min(s.n - n / g * g) * s.oh * s.ow
}

/// The largest share of wasted grid columns (`Wq / W_out`) worth computing: at 16×16 planes (18/16) the direct
/// kernel is faster than im2col + gemm, at 8×8 (10/8) slower (docs/kernels.md, "Direct convolution").
const MAX_WASTE: f64 = 1.15;

/// The vector unit the direct kernel runs on, detected once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    None,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// Detected from the CPU alone, not from `BURNISH_NO_SIMD`: like gemm's, these chains of fused multiply-adds give
/// the same bits at every vector width, so the im2col path they replace (whose gemm ignores that variable too) and
/// this one agree wherever both run.
fn cpu_isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::None
    })
}

/// Whether the kernels are on: `BURNISH_NO_DIRECT_CONV` (read once) turns them off, [`set_enabled`] either way.
fn enabled() -> &'static AtomicBool {
    static ON: OnceLock<AtomicBool> = OnceLock::new();
    ON.get_or_init(|| AtomicBool::new(std::env::var_os("BURNISH_NO_DIRECT_CONV").is_none()))
}

/// Turns the kernels on or off for this process (benchmarks compare the two paths).
pub fn set_enabled(on: bool) {
    enabled().store(on, Ordering::Relaxed);
}

/// The vector unit the kernels run on now: none where the CPU lacks one or they are off.
fn isa() -> Isa {
    if enabled().load(Ordering::Relaxed) {
        cpu_isa()
    } else {
        Isa::None
    }
}

/// Where a pass gives im2col's bits: stride 1 and a kernel larger than 1×1 (those skip im2col already), and at
/// least two outputs per channel (gemm treats a single column as a matrix-vector product).
fn valid(s: &ConvShape) -> bool {
    s.stride == [1, 1] && s.kernel != [1, 1] && s.oh * s.ow >= 2
}

/// Where the forward pass gives im2col + gemm's bits: gemm takes other paths for k ≤ 2 terms and one output channel.
fn valid_forward(s: &ConvShape) -> bool {
    valid(s) && s.c_in * s.kernel[0] * s.kernel[1] > 2 && s.c_out >= 2
}

/// Where the input gradient gives im2col + gemm + col2im's bits: `dy` is padded by `k − 1 − p`; gemm's `dcol = Wᵀ ·
/// dy` is one chain of C_out terms for up to 512 of them, and takes another path for k ≤ 2.
fn valid_input_grad(s: &ConvShape) -> bool {
    valid(s)
        && s.padding[0] < s.kernel[0]
        && s.padding[1] < s.kernel[1]
        && s.c_out > 2
        && s.c_out <= GEMM_KC
        && s.c_in * s.kernel[0] * s.kernel[1] >= 2
}

/// Where the direct kernel is worth it: planes wide enough for the grid's waste, and `outputs` channels that fill
/// the kernel's blocks (a block computes all its channels, so 1 or 3 outputs in blocks of 8 would waste most of it).
fn worth_it(s: &ConvShape, outputs: usize) -> bool {
    let block = match isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => AVX512_BLOCK,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => AVX2_BLOCK,
        Isa::None => return false,
    };
    (s.w + 2 * s.padding[1]) as f64 <= MAX_WASTE * s.ow as f64
        && (outputs.div_ceil(block) * block) as f64 <= MAX_WASTE * outputs as f64
}

/// Output channels per block of the AVX-512 kernel (8 × 2 vectors of 16 lanes: 16 of its 32 registers).
const AVX512_BLOCK: usize = 8;
/// Output channels per block of the AVX2 kernel (6 × 2 vectors of 8 lanes: 12 of its 16 registers).
const AVX2_BLOCK: usize = 6;

/// Whether [`conv2d`] computes this convolution (and gives im2col + gemm's bits for it).
pub fn applies(s: &ConvShape) -> bool {
    valid_forward(s) && worth_it(s, s.c_out) && s.c_in * s.kernel[0] * s.kernel[1] >= MIN_FORWARD_TERMS
}

/// The shortest reduction worth the forward kernel: with 9 terms (a 3×3 kernel on one channel) the copies around it
/// cost more than the FMAs it saves (0.93–0.95× im2col + gemm on cnn-small's first layer; 27 terms, 1.14×).
const MIN_FORWARD_TERMS: usize = 16;

/// Whether [`conv2d_input_grad`] computes this input gradient (and gives im2col + gemm + col2im's bits for it).
pub fn applies_input_grad(s: &ConvShape) -> bool {
    valid_input_grad(s) && worth_it(s, s.c_in)
}

/// Forward convolution `y` `[N, C_out, H_out, W_out]` of `x` `[N, C_in, H, W]` with `weight` `[C_out, C_in, k_h,
/// k_w]`; only for shapes where [`applies`] holds.
pub fn conv2d(x: &[f32], weight: &[f32], s: ConvShape) -> Vec<f32> {
    assert!(valid_forward(&s) && isa() != Isa::None, "direct conv2d: shape {s:?} is not for this kernel");
    forward_on(isa(), x, weight, s)
}

/// The input gradient `dx` `[N, C_in, H, W]` of [`conv2d`] from the output gradient `grad` `[N, C_out, H_out,
/// W_out]`; only for shapes where [`applies_input_grad`] holds.
pub fn conv2d_input_grad(weight: &[f32], grad: &[f32], s: ConvShape) -> Vec<f32> {
    assert!(valid_input_grad(&s) && isa() != Isa::None, "direct conv2d input gradient: {s:?} is not for this kernel");
    input_grad_on(isa(), weight, grad, s)
}

/// How one pass maps onto the grid: the planes it reads, the outputs it writes, the terms each output sums.
struct Pass {
    /// Planes read per image and their size `[rows, cols]` before padding.
    planes: usize,
    source: [usize; 2],
    /// Zero rows above and columns left of each plane on the grid.
    pad: [usize; 2],
    /// Grid row width and rows per plane.
    wq: usize,
    rows: usize,
    /// Output channels per image and their size `[rows, cols]`.
    outputs: usize,
    target: [usize; 2],
    /// For each term, where it reads from the output position (plane and tap) and its weight `weight(o, term)`.
    offsets: Vec<usize>,
    weights: Vec<f32>,
    /// Kernel width (the last run reads up to `k_w` past the last plane).
    kw: usize,
}

impl Pass {
    fn forward(weight: &[f32], s: &ConvShape) -> Self {
        let ([kh, kw], [ph, pw]) = (s.kernel, s.padding);
        let (wq, rows) = (s.w + 2 * pw, s.h + 2 * ph);
        let taps = kh * kw;
        let offsets = (0..s.c_in * taps).map(|r| (r / taps) * rows * wq + (r % taps / kw) * wq + r % kw).collect();
        Self {
            planes: s.c_in,
            source: [s.h, s.w],
            pad: [ph, pw],
            wq,
            rows,
            outputs: s.c_out,
            target: [s.oh, s.ow],
            offsets,
            weights: weight.to_vec(),
            kw,
        }
    }

    fn input_grad(weight: &[f32], s: &ConvShape) -> Self {
        let ([kh, kw], [ph, pw]) = (s.kernel, s.padding);
        let pad = [kh - 1 - ph, kw - 1 - pw];
        let (wq, rows) = (s.ow + 2 * pad[1], s.oh + 2 * pad[0]);
        let taps = kh * kw;
        // Terms (t, co), tap-major; tap (i, j) of dx reads dy at (i', j') = (k_h − 1 − i, k_w − 1 − j).
        let offsets = (0..taps * s.c_out)
            .map(|r| {
                let (t, co) = (r / s.c_out, r % s.c_out);
                co * rows * wq + (kh - 1 - t / kw) * wq + (kw - 1 - t % kw)
            })
            .collect();
        // weight(c, (t, co)) = W[co][c][t], as [C_in][taps·C_out].
        let mut weights = vec![0.0f32; s.c_in * taps * s.c_out];
        for co in 0..s.c_out {
            for c in 0..s.c_in {
                for t in 0..taps {
                    weights[c * taps * s.c_out + t * s.c_out + co] = weight[(co * s.c_in + c) * taps + t];
                }
            }
        }
        Self {
            planes: s.c_out,
            source: [s.oh, s.ow],
            pad,
            wq,
            rows,
            outputs: s.c_in,
            target: [s.h, s.w],
            offsets,
            weights,
            kw,
        }
    }

    fn terms(&self) -> usize {
        self.offsets.len()
    }
}

/// The forward pass on the given vector unit, which the CPU must have.
fn forward_on(isa: Isa, x: &[f32], weight: &[f32], s: ConvShape) -> Vec<f32> {
    let pass = Pass::forward(weight, &s);
    let k = pass.terms();
    run(isa, x, s.n, &pass, |n| gemm_block(s.c_out, unit_columns(&s, n), k))
}

/// The input gradient on the given vector unit, which the CPU must have.
fn input_grad_on(isa: Isa, weight: &[f32], grad: &[f32], s: ConvShape) -> Vec<f32> {
    let pass = Pass::input_grad(weight, &s);
    run(isa, grad, s.n, &pass, |_| s.c_out)
}

/// The pass over `n` images of `src` on the vector unit `isa`, each output a sum of chains of `chain(image)` terms.
fn run(isa: Isa, src: &[f32], n: usize, pass: &Pass, chain: impl Fn(usize) -> usize + Sync) -> Vec<f32> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            assert!(is_x86_feature_detected!("avx512f"), "direct conv2d: no avx512f");
            run_with::<16, AVX512_BLOCK, 2>(src, n, pass, chain, |g, chain, wt, xp, out| {
                // SAFETY: avx512f is there (above); the kernel asserts its buffers' sizes.
                unsafe { x86::avx512(g, chain, wt, xp, out) }
            })
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"), "direct conv2d: no avx2");
            run_with::<8, AVX2_BLOCK, 2>(src, n, pass, chain, |g, chain, wt, xp, out| {
                // SAFETY: avx2 and fma are there (above); the kernel asserts its buffers' sizes.
                unsafe { x86::avx2(g, chain, wt, xp, out) }
            })
        }
        Isa::None => unreachable!("the applies functions are false without a vector unit"),
    }
}

/// What the kernel needs of a pass: its terms' offsets and the runs of `q` it covers.
#[derive(Clone, Copy)]
struct Grid<'a> {
    /// For each term, where it reads relative to the output position.
    offsets: &'a [usize],
    /// Runs of `q` per output block: `ceil(rows_out·Wq / (L·NQ))`.
    runs: usize,
    /// The padded input's length the kernel may read.
    input_len: usize,
}

/// Copies each image onto its padded grid and runs `kernel` over the output channel blocks of `CB`, images in
/// parallel, `L` lanes × `NQ` vectors a run.
fn run_with<const L: usize, const CB: usize, const NQ: usize>(
    src: &[f32],
    n: usize,
    pass: &Pass,
    chain: impl Fn(usize) -> usize + Sync,
    kernel: impl Fn(Grid, usize, &[f32], &[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    let (wq, plane) = (pass.wq, pass.rows * pass.wq);
    let step = L * NQ;
    let [oh, ow] = pass.target;
    let [sh, sw] = pass.source;
    let runs = (oh * wq).div_ceil(step);
    let terms = pass.terms();
    // The last run of the last plane reads up to `step + k_w` past the planes.
    let g = Grid { offsets: &pass.offsets, runs, input_len: pass.planes * plane + step + pass.kw };
    let blocks = pass.outputs.div_ceil(CB);
    // Weights as [block][term][CB], zero for the channels past the last output in the last block.
    let mut wt = vec![0.0f32; blocks * terms * CB];
    for o in 0..pass.outputs {
        for r in 0..terms {
            wt[((o / CB) * terms + r) * CB + o % CB] = pass.weights[o * terms + r];
        }
    }
    let (out_len, image) = (pass.outputs * oh * ow, pass.planes * sh * sw);
    let mut y = vec![0.0f32; n * out_len];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(out_len).enumerate().for_each_init(
        || (vec![0.0f32; g.input_len], vec![0.0f32; CB * runs * step]),
        |(xp, out), (i, y_image)| {
            let src_image = &src[i * image..][..image];
            // The borders stay zero from the allocation; the interior is overwritten for every image.
            for c in 0..pass.planes {
                for row in 0..sh {
                    xp[c * plane + (row + pass.pad[0]) * wq + pass.pad[1]..][..sw]
                        .copy_from_slice(&src_image[(c * sh + row) * sw..][..sw]);
                }
            }
            let chain = chain(i);
            for b in 0..blocks {
                kernel(g, chain, &wt[b * terms * CB..][..terms * CB], xp, out);
                for o in b * CB..(b * CB + CB).min(pass.outputs) {
                    let grid = &out[(o - b * CB) * runs * step..];
                    for row in 0..oh {
                        y_image[(o * oh + row) * ow..][..ow].copy_from_slice(&grid[row * wq..][..ow]);
                    }
                }
            }
        },
    );
    y
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Grid;

    /// One output channel block: `out[b][q]` for the block's `CB` channels and every run of `q`, from the padded
    /// input `xp` and the block's weights `wt` `[term][CB]`, as chains of `chain` terms, each added onto the sum of
    /// the earlier ones. Written once per vector unit because the intrinsics must sit inside a function compiled
    /// for it.
    macro_rules! block_kernel {
        ($name:ident, $feature:literal, $vec:ty, $lanes:literal, $cb:expr, $nq:literal,
         $zero:ident, $load:ident, $store:ident, $splat:ident, $fma:ident, $add:ident) => {
            /// # Safety
            /// The CPU has the feature.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $name(g: Grid, chain: usize, wt: &[f32], xp: &[f32], out: &mut [f32]) {
                const STEP: usize = $lanes * $nq;
                let terms = g.offsets.len();
                assert!(chain > 0 && xp.len() >= g.input_len, "direct conv2d: bad chain or padded input");
                assert!(wt.len() >= terms * $cb && out.len() >= $cb * g.runs * STEP, "direct conv2d: short buffers");
                assert!(g.offsets.iter().all(|&o| o + g.runs * STEP <= g.input_len), "direct conv2d: offsets");
                for run in 0..g.runs {
                    let q0 = run * STEP;
                    let mut r0 = 0;
                    while r0 < terms {
                        let r1 = (r0 + chain).min(terms);
                        let mut acc: [[$vec; $nq]; $cb] = [[$zero(); $nq]; $cb];
                        for r in r0..r1 {
                            let at = q0 + g.offsets[r];
                            let mut xv: [$vec; $nq] = [$zero(); $nq];
                            for (v, x) in xv.iter_mut().enumerate() {
                                // SAFETY: at + STEP ≤ input_len ≤ xp.len() (asserted above).
                                *x = unsafe { $load(xp.as_ptr().add(at + v * $lanes)) };
                            }
                            for (a, &wb) in acc.iter_mut().zip(&wt[r * $cb..][..$cb]) {
                                let wv = $splat(wb);
                                for (av, &x) in a.iter_mut().zip(&xv) {
                                    *av = $fma(wv, x, *av);
                                }
                            }
                        }
                        for (b, a) in acc.iter().enumerate() {
                            for (v, &av) in a.iter().enumerate() {
                                let at = (b * g.runs + run) * STEP + v * $lanes;
                                // SAFETY: inside `out` (asserted above). A chain never ends at −0 (it starts at +0),
                                // so storing the first one equals adding it onto zeros, as col2im does.
                                unsafe {
                                    let sum = if r0 == 0 { av } else { $add($load(out.as_ptr().add(at)), av) };
                                    $store(out.as_mut_ptr().add(at), sum);
                                }
                            }
                        }
                        r0 = r1;
                    }
                }
            }
        };
    }

    block_kernel!(
        avx512,
        "avx512f",
        __m512,
        16,
        super::AVX512_BLOCK,
        2,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps
    );
    block_kernel!(
        avx2,
        "avx2,fma",
        __m256,
        8,
        super::AVX2_BLOCK,
        2,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps
    );
}

#[cfg(test)]
mod tests {
    use super::super::conv::{self, tests::values};
    use super::*;

    /// The bits of the im2col + gemm path, on odd shapes and the models' shapes, wherever the kernel applies.
    #[test]
    fn direct_conv2d_and_input_grad_give_the_bits_of_im2col_gemm() {
        let shapes: &[([usize; 4], [usize; 4], [usize; 2])] = &[
            ([2, 3, 32, 32], [16, 3, 3, 3], [1, 1]),
            ([3, 32, 28, 28], [32, 32, 3, 3], [1, 1]),
            ([2, 16, 32, 32], [32, 16, 3, 3], [1, 1]),
            ([1, 56, 16, 16], [64, 56, 3, 3], [1, 1]),
            ([5, 1, 28, 28], [32, 1, 3, 3], [1, 1]),
            ([2, 7, 19, 23], [13, 7, 3, 3], [1, 1]),
            ([1, 5, 20, 17], [3, 5, 3, 3], [0, 0]),
            ([3, 4, 21, 30], [9, 4, 5, 5], [2, 2]),
            ([2, 6, 15, 40], [17, 6, 2, 3], [0, 1]),
            ([1, 2, 33, 50], [2, 2, 3, 1], [1, 0]),
            // Reductions gemm splits: evenly (576 = 2 × 288, 1152 = 3 × 384), and 512 + 88 for a small product.
            ([2, 64, 16, 16], [64, 64, 3, 3], [1, 1]),
            ([3, 128, 16, 16], [40, 128, 3, 3], [1, 1]),
            ([1, 200, 8, 8], [5, 200, 3, 1], [0, 0]),
            ([2, 70, 14, 14], [66, 70, 3, 3], [1, 1]),
        ];
        let mut checked_grads = 0;
        // Every vector unit this CPU has, not only the one `isa()` picks, so an AVX-512 machine checks AVX2 too.
        let mut units = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                units.push(Isa::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                units.push(Isa::Avx2);
            }
        }
        for (i, &(x_shape, w_shape, padding)) in shapes.iter().enumerate() {
            let s = ConvShape::new(x_shape, w_shape, [1, 1], padding).expect("shape");
            // Whether a shape is worth the direct kernel is a speed question; the bits are checked on all of them.
            assert!(valid_forward(&s), "{s:?}");
            let x = values(x_shape.iter().product(), 3 * i as u64);
            let w = values(w_shape.iter().product(), 3 * i as u64 + 1);
            let dy = values(s.n * s.c_out * s.oh * s.ow, 3 * i as u64 + 2);
            let y = conv::conv2d_im2col(&x, &w, s);
            let dx = conv::conv2d_backward_im2col(&x, &w, &dy, s, true, false).0.expect("dx");
            for &unit in &units {
                same_bits(&forward_on(unit, &x, &w, s), &y, &format!("{unit:?} forward {s:?}"));
                if valid_input_grad(&s) {
                    same_bits(&input_grad_on(unit, &w, &dy, s), &dx, &format!("{unit:?} input gradient {s:?}"));
                    checked_grads += 1;
                }
            }
        }
        // All but the one with C_out = 2 (gemm's k ≤ 2 path), on each unit.
        assert_eq!(checked_grads, (shapes.len() - 1) * units.len(), "input gradients checked {checked_grads} times");
    }

    fn same_bits(direct: &[f32], im2col: &[f32], what: &str) {
        assert_eq!(direct.len(), im2col.len(), "{what}: length");
        for (j, (a, b)) in direct.iter().zip(im2col).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{what}: output {j}: direct {a} vs im2col + gemm {b}");
        }
    }

    #[test]
    fn direct_conv2d_takes_the_models_wide_planes_and_leaves_the_rest() {
        let shape = |x: [usize; 4], w: [usize; 4], stride: usize, pad: usize| {
            ConvShape::new(x, w, [stride, stride], [pad, pad]).expect("shape")
        };
        let on = isa() != Isa::None;
        // cnn-small on 28×28 and 14×14, wrn-28-2's first two groups: both passes where the CPU has a vector unit.
        for s in [
            shape([128, 32, 28, 28], [32, 32, 3, 3], 1, 1),
            shape([128, 32, 14, 14], [64, 32, 3, 3], 1, 1),
            shape([128, 64, 14, 14], [64, 64, 3, 3], 1, 1),
            shape([64, 16, 32, 32], [32, 16, 3, 3], 1, 1),
            shape([64, 64, 16, 16], [64, 64, 3, 3], 1, 1),
        ] {
            assert_eq!((applies(&s), applies_input_grad(&s)), (on, on), "{s:?}");
        }
        // wrn-28-2's stem forward, but not its input gradient (3 channels fill no block); cnn-small's first layer
        // (9 terms) neither.
        let stem = shape([64, 3, 32, 32], [16, 3, 3, 3], 1, 1);
        assert_eq!((applies(&stem), applies_input_grad(&stem)), (on, false), "{stem:?}");
        let first = shape([128, 1, 28, 28], [32, 1, 3, 3], 1, 1);
        assert_eq!((applies(&first), applies_input_grad(&first)), (false, false), "{first:?}");
        for s in [
            shape([2, 8, 16, 16], [8, 8, 3, 3], 2, 1),  // stride 2
            shape([2, 8, 16, 16], [8, 8, 1, 1], 1, 0),  // 1×1
            shape([2, 32, 8, 8], [32, 32, 3, 3], 1, 1), // small planes
            shape([2, 8, 16, 16], [1, 8, 3, 3], 1, 1),  // one output channel
            shape([2, 8, 16, 16], [13, 8, 3, 3], 1, 1), // 13 channels in blocks of 8 or 6
            shape([2, 8, 16, 16], [2, 8, 3, 3], 1, 1),  // input gradient: gemm's k ≤ 2 path
        ] {
            assert!(!applies(&s) || !applies_input_grad(&s), "{s:?} should stay with im2col + gemm");
        }
    }
}
