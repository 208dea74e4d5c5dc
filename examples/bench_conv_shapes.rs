//! Each convolution shape of cnn-small and wrn-28-2, pass by pass, and the gemm crate alone on each shape's
//! matrix product: what `bench/conv_shapes.sh` sets beside PyTorch's oneDNN convolutions and MKL's sgemm
//! (`bench/torch_conv_shapes.py`), to show where burnish's convolutions lose (docs/kernels.md, "Shape by shape").
//!
//!     cargo run --release --example bench_conv_shapes [-- --rounds 7]   (RAYON_NUM_THREADS sets the threads)
//!     cargo run --release --example bench_conv_shapes -- --list         (the shapes, for the PyTorch script)
//!
//! Convolutions: forward + backward of `kernels::conv2d` through `Autodiff<Flex>` (loss `Σ y·r`), the way a model
//! runs it, with `burnish::profile` on so the convolution computes the input and weight gradients in two calls and
//! times forward, input gradient and weight gradient apart. The first layer of each model needs no input gradient
//! and gets none, as in training.
//!
//! gemm: the product the im2col path hands to gemm for a forward unit (`C_out × cols × K`, cols = the positions of
//! the images grouped into one call, at least 256), on one thread, from the crate's own entry point. This is the
//! gemm crate's speed on the shape with no im2col around it.
//!
//! Lines are `model label pass ms gflop_per_s` with medians over rounds; `count` says how many times the model
//! runs the shape in one forward.

use std::time::Instant;

use burn::tensor::ops::ConvOptions;
use burnish::kernels;
use burnish::profile::{self, Class};
use common::{randn, stats};

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One convolution of a model: its input, output channels, kernel side, stride and how often the model runs it.
struct Shape {
    model: &'static str,
    label: &'static str,
    x: [usize; 4],
    c_out: usize,
    k: usize,
    stride: usize,
    count: usize,
    /// Whether training needs its input gradient (not for a model's first layer).
    input_grad: bool,
}

impl Shape {
    fn padding(&self) -> usize {
        self.k / 2
    }

    fn out_side(&self, side: usize) -> usize {
        (side + 2 * self.padding() - self.k) / self.stride + 1
    }

    /// Multiply-adds of one pass (forward, input gradient and weight gradient each do as many).
    fn macs(&self) -> f64 {
        let [n, c, h, w] = self.x;
        (n * self.c_out * c * self.k * self.k * self.out_side(h) * self.out_side(w)) as f64
    }

    /// The im2col path's forward gemm for one unit: `[C_out, cols, K]`.
    fn unit_gemm(&self) -> [usize; 3] {
        let [n, c, h, w] = self.x;
        let p = self.out_side(h) * self.out_side(w);
        // As `ConvShape::images_per_unit`: enough images for 256 columns.
        let images = 256usize.div_ceil(p).clamp(1, n);
        [self.c_out, images * p, c * self.k * self.k]
    }
}

/// cnn-small at batch 128 on 1×28×28 and wrn-28-2 at batch 64 on 3×32×32, the benchmark recipes' shapes.
fn shapes() -> Vec<Shape> {
    let s = |model, label, x, c_out, k, stride, count, input_grad| Shape {
        model,
        label,
        x,
        c_out,
        k,
        stride,
        count,
        input_grad,
    };
    vec![
        s("cnn-small", "L1", [128, 1, 28, 28], 32, 3, 1, 1, false),
        s("cnn-small", "L2", [128, 32, 28, 28], 32, 3, 1, 1, true),
        s("cnn-small", "L3", [128, 32, 14, 14], 64, 3, 1, 1, true),
        s("cnn-small", "L4", [128, 64, 14, 14], 64, 3, 1, 1, true),
        s("cnn-small", "L5", [128, 64, 7, 7], 128, 3, 1, 1, true),
        s("wrn-28-2", "stem", [64, 3, 32, 32], 16, 3, 1, 1, false),
        s("wrn-28-2", "g1-first", [64, 16, 32, 32], 32, 3, 1, 1, true),
        s("wrn-28-2", "g1-shortcut", [64, 16, 32, 32], 32, 1, 1, 1, true),
        s("wrn-28-2", "g1", [64, 32, 32, 32], 32, 3, 1, 7, true),
        s("wrn-28-2", "g2-first", [64, 32, 32, 32], 64, 3, 2, 1, true),
        s("wrn-28-2", "g2-shortcut", [64, 32, 32, 32], 64, 1, 2, 1, true),
        s("wrn-28-2", "g2", [64, 64, 16, 16], 64, 3, 1, 7, true),
        s("wrn-28-2", "g3-first", [64, 64, 16, 16], 128, 3, 2, 1, true),
        s("wrn-28-2", "g3-shortcut", [64, 64, 16, 16], 128, 1, 2, 1, true),
        s("wrn-28-2", "g3", [64, 128, 8, 8], 128, 3, 1, 7, true),
    ]
}

/// Median milliseconds of forward, input gradient and weight gradient over `rounds`, after one untimed round.
fn time_conv(s: &Shape, rounds: usize) -> [f64; 3] {
    let x = randn(s.x, 3);
    let x = if s.input_grad { x.require_grad() } else { x };
    let w = (randn([s.c_out, s.x[1], s.k, s.k], 4) * 0.1).require_grad();
    let options = ConvOptions::new([s.stride; 2], [s.padding(); 2], [1, 1], 1);
    let r = randn([s.x[0], s.c_out, s.out_side(s.x[2]), s.out_side(s.x[3])], 5);
    let mut passes = [Vec::new(), Vec::new(), Vec::new()];
    profile::enable(true);
    for round in 0..=rounds {
        profile::reset();
        let y = kernels::conv2d(x.clone(), w.clone(), None, options.clone());
        let _ = (y * r.clone()).sum().backward();
        if round == 0 {
            continue;
        }
        let totals = profile::totals();
        for (i, class) in [Class::ConvForward, Class::ConvInputGrad, Class::ConvWeightGrad].into_iter().enumerate() {
            let ms = totals.ms.iter().find(|(c, _)| *c == class).map_or(0.0, |(_, ms)| *ms);
            passes[i].push(ms);
        }
    }
    profile::enable(false);
    passes.map(|v| stats(&v).0)
}

/// Median milliseconds of gemm's `m × n × k` product on one thread, operands laid out as the im2col forward's; each
/// round repeats it [`gemm_reps`] times, so that a round is long enough to time.
fn time_gemm([m, n, k]: [usize; 3], rounds: usize) -> f64 {
    let reps = gemm_reps(m * n * k);
    let lhs: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let rhs: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
    let mut dst = vec![0f32; m * n];
    let mut times = Vec::new();
    for round in 0..=rounds {
        let t = Instant::now();
        for _ in 0..reps {
            // SAFETY: lhs is m × k (row stride k), rhs k × n (row stride n), dst m × n (row stride n); column stride 1.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    lhs.as_ptr(),
                    1,
                    k as isize,
                    rhs.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
        if round > 0 {
            times.push(t.elapsed().as_secs_f64() * 1e3 / reps as f64);
        }
    }
    std::hint::black_box(&dst);
    stats(&times).0
}

/// Repetitions of a gemm of `macs` multiply-adds that make about 2·10^8 of them (a few milliseconds); the PyTorch
/// script uses the same rule.
fn gemm_reps(macs: usize) -> usize {
    (200_000_000 / macs.max(1)).max(1)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = common::rounds(&args);
    if args.iter().any(|a| a == "--list") {
        // model label n c h w c_out k stride count input_grad
        for s in shapes() {
            let [n, c, h, w] = s.x;
            let [m, cols, k] = s.unit_gemm();
            println!(
                "{} {} {n} {c} {h} {w} {} {} {} {} {} {m} {cols} {k}",
                s.model, s.label, s.c_out, s.k, s.stride, s.count, s.input_grad as u8
            );
        }
        return;
    }
    println!(
        "# burnish, {} threads, vector unit {}, {rounds} rounds",
        rayon::current_num_threads(),
        kernels::simd_level()
    );
    for s in shapes() {
        let gflops = |ms: f64, macs: f64| if ms > 0.0 { 2.0 * macs / ms / 1e6 } else { 0.0 };
        let [fwd, dx, dw] = time_conv(&s, rounds);
        let macs = s.macs();
        let head = format!("{} {}", s.model, s.label);
        println!("{head} forward {fwd:.3} {:.1}", gflops(fwd, macs));
        if s.input_grad {
            println!("{head} input_grad {dx:.3} {:.1}", gflops(dx, macs));
        }
        println!("{head} weight_grad {dw:.3} {:.1}", gflops(dw, macs));
        let [m, n, k] = s.unit_gemm();
        let g = time_gemm([m, n, k], rounds);
        println!("{head} gemm_1t {g:.3} {:.1}", gflops(g, (m * n * k) as f64));
    }
}
