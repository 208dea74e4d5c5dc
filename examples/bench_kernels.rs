//! Speed of `burnish::kernels` against the flex composition burnish runs today, on the benchmark recipes' shapes.
//!
//!     cargo run --release --example bench_kernels [-- --rounds 7] [--ops-only | --steps-only | --direct]
//!     RAYON_NUM_THREADS=1 cargo run --release --example bench_kernels
//!
//! Ops: forward + backward (through `Autodiff<Flex>`, loss `Σ y·r`) of each BatchNorm + activation and each
//! convolution of cnn-small (batch 128, 1×28×28) and wrn-28-2 (batch 64, 3×32×32), the kernel against
//! the BatchNorm burnish composed from Burn ops before the kernels (`bn_composed` below) + Burn's activation, and
//! against `burn::tensor::module::conv2d`.
//!
//! Steps: one plain SGD step (forward, cross-entropy, backward, Nesterov momentum with weight decay) of the real
//! `burnish::model::Net`, once through its own `forward` (the kernels) and once through `composed_forward` below,
//! which runs the same parameters through Burn's composed ops as burnish did before the kernels.
//!
//! `--direct`: each stride-1 3×3 convolution of both models with the direct kernels off (im2col + gemm) and on.
//!
//! Old and new alternate within each round, so both see the same machine load; medians with min–max over rounds.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Int, Tensor, TensorData};
use burnish::kernels::{self, Activation};
use burnish::model::{
    global_avg_pool, Arch, Backbone, BatchNorm, BatchNormConfig, BnMode, CnnSmall, Net, NetConfig, WideBasicBlock,
    WideResNet,
};
use common::{randn, stats, AD};

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Timings of two alternatives over rounds.
struct Pair {
    old: Vec<f64>,
    new: Vec<f64>,
}

impl Pair {
    fn run(rounds: usize, mut old: impl FnMut(), mut new: impl FnMut()) -> Self {
        // One untimed call each: first-touch page faults and lazy initialisation are not the steady state.
        old();
        new();
        let mut pair = Pair { old: Vec::new(), new: Vec::new() };
        for _ in 0..rounds {
            let t = Instant::now();
            old();
            pair.old.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            new();
            pair.new.push(t.elapsed().as_secs_f64() * 1e3);
        }
        pair
    }

    fn line(&self, label: &str) -> String {
        let (o, n) = (stats(&self.old), stats(&self.new));
        format!(
            "{label:<44} flex {:>8.2} ms [{:.2}-{:.2}]   kernel {:>8.2} ms [{:.2}-{:.2}]   speedup {:>5.2}x",
            o.0,
            o.1,
            o.2,
            n.0,
            n.1,
            n.2,
            o.0 / n.0
        )
    }
}

fn act_of(act: Activation) -> impl Fn(Tensor<AD, 4>) -> Tensor<AD, 4> {
    move |z| match act {
        Activation::None => z,
        Activation::Relu => relu(z),
        Activation::LeakyRelu(s) => leaky_relu(z, s),
    }
}

fn bench_batch_norm(label: &str, shape: [usize; 4], act: Activation, rounds: usize) {
    let c = shape[1];
    let x = randn(shape, 1).require_grad();
    let r = randn(shape, 2);
    let bn = BatchNormConfig::new(c).init::<AD>(&Default::default());
    let f = act_of(act);
    let pair = Pair::run(
        rounds,
        || {
            let y = f(bn_composed(&bn, x.clone(), Activation::None));
            let _ = (y * r.clone()).sum().backward();
        },
        || {
            let out = kernels::batch_norm_act(x.clone(), bn.weight.val(), bn.bias.val(), bn.epsilon, act);
            let _ = (out.output * r.clone()).sum().backward();
        },
    );
    println!("{}", pair.line(&format!("{label} bn+{act:?} {shape:?}")));
}

fn bench_conv(label: &str, x_shape: [usize; 4], c_out: usize, k: usize, stride: usize, rounds: usize) {
    let x = randn(x_shape, 3).require_grad();
    let w = (randn([c_out, x_shape[1], k, k], 4) * 0.1).require_grad();
    let options = ConvOptions::new([stride, stride], [k / 2, k / 2], [1, 1], 1);
    let y_shape = burn::tensor::module::conv2d(x.clone().inner(), w.clone().inner(), None, options.clone()).dims();
    let r = randn(y_shape, 5);
    let pair = Pair::run(
        rounds,
        || {
            let y = burn::tensor::module::conv2d(x.clone(), w.clone(), None, options.clone());
            let _ = (y * r.clone()).sum().backward();
        },
        || {
            let y = kernels::conv2d(x.clone(), w.clone(), None, options.clone());
            let _ = (y * r.clone()).sum().backward();
        },
    );
    println!("{}", pair.line(&format!("{label} conv{k}x{k}/{stride} {x_shape:?}->{c_out}")));
}

/// One convolution's forward + backward through `kernels::conv2d` with the direct kernels off (old) and on (new).
fn bench_direct(label: &str, x_shape: [usize; 4], c_out: usize, rounds: usize) {
    let x = randn(x_shape, 3).require_grad();
    let w = (randn([c_out, x_shape[1], 3, 3], 4) * 0.1).require_grad();
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let r = randn([x_shape[0], c_out, x_shape[2], x_shape[3]], 5);
    let pass = |on: bool| {
        kernels::set_direct_conv(on);
        let y = kernels::conv2d(x.clone(), w.clone(), None, options.clone());
        let _ = (y * r.clone()).sum().backward();
    };
    let pair = Pair::run(rounds, || pass(false), || pass(true));
    kernels::set_direct_conv(true);
    let line = pair.line(&format!("{label} conv3x3/1 {x_shape:?}->{c_out}"));
    println!("{}", line.replace("flex ", "im2col ").replace("kernel ", "direct "));
}

/// The stride-1 3×3 convolutions of both models, im2col + gemm against the direct kernels (same bits).
fn bench_direct_ops(rounds: usize) {
    println!("== direct convolution vs im2col + gemm: forward + backward, Autodiff<Flex> f32");
    for (i, (c_in, c_out, side)) in
        [(1, 32, 28), (32, 32, 28), (32, 64, 14), (64, 64, 14), (64, 128, 7)].into_iter().enumerate()
    {
        bench_direct(&format!("cnn-small L{}", i + 1), [128, c_in, side, side], c_out, rounds);
    }
    bench_direct("wrn stem", [64, 3, 32, 32], 16, rounds);
    bench_direct("wrn g1", [64, 32, 32, 32], 32, rounds);
    bench_direct("wrn g2", [64, 64, 16, 16], 64, rounds);
    bench_direct("wrn g3", [64, 128, 8, 8], 128, rounds);
}

fn bench_ops(rounds: usize) {
    println!("== ops: forward + backward, Autodiff<Flex> f32");
    // cnn-small, batch 128, 1×28×28: conv-BN-ReLU ×5, pools after layers 2 and 4.
    for (i, (c_in, c_out, side)) in
        [(1, 32, 28), (32, 32, 28), (32, 64, 14), (64, 64, 14), (64, 128, 7)].into_iter().enumerate()
    {
        let label = format!("cnn-small L{}", i + 1);
        bench_conv(&label, [128, c_in, side, side], c_out, 3, 1, rounds);
        bench_batch_norm(&label, [128, c_out, side, side], Activation::Relu, rounds);
    }
    // wrn-28-2, batch 64, 3×32×32: one of each distinct shape.
    bench_conv("wrn stem", [64, 3, 32, 32], 16, 3, 1, rounds);
    bench_conv("wrn g1", [64, 32, 32, 32], 32, 3, 1, rounds);
    bench_conv("wrn g2 first", [64, 32, 32, 32], 64, 3, 2, rounds);
    bench_conv("wrn g2 shortcut", [64, 32, 32, 32], 64, 1, 2, rounds);
    bench_conv("wrn g2", [64, 64, 16, 16], 64, 3, 1, rounds);
    bench_conv("wrn g3", [64, 128, 8, 8], 128, 3, 1, rounds);
    let leaky = Activation::LeakyRelu(0.1);
    bench_batch_norm("wrn g1", [64, 32, 32, 32], leaky, rounds);
    bench_batch_norm("wrn g2", [64, 64, 16, 16], leaky, rounds);
    bench_batch_norm("wrn g3", [64, 128, 8, 8], leaky, rounds);
}

/// `BnMode::Train` as burnish's BatchNorm composed it from Burn ops before the kernels: `[N, C, L]` view,
/// `E[x²] − E[x]²` variance, `[N, C, 1]` factors, running statistics updated as `BnMode::Train` does.
fn bn_composed<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>, act: Activation) -> Tensor<B, 4> {
    let dims = x.dims();
    let [n, c, h, w] = dims;
    let (l, count) = (h * w, n * h * w);
    let x = x.reshape([n, c, l]);
    let channel_sum = |t: Tensor<B, 3>| t.sum_dim(2).sum_dim(0).reshape([c]);
    let mean = channel_sum(x.clone()).div_scalar(count as f64);
    let var = (channel_sum(x.clone().square()).div_scalar(count as f64) - mean.clone().square()).clamp_min(0.0);
    let unbias = if count > 1 { count as f64 / (count - 1) as f64 } else { 1.0 };
    let m = bn.momentum;
    bn.running_mean.set(bn.running_mean.value().mul_scalar(1.0 - m) + mean.clone().detach().mul_scalar(m));
    bn.running_var.set(bn.running_var.value().mul_scalar(1.0 - m) + var.clone().detach().mul_scalar(m * unbias));
    let scale = bn.weight.val() * var.add_scalar(bn.epsilon).sqrt().recip();
    let shift = bn.bias.val() - mean * scale.clone();
    let per_row = |v: Tensor<B, 1>| v.reshape([1, c, 1]).repeat_dim(0, n);
    let y = (x * per_row(scale) + per_row(shift)).reshape(dims);
    match act {
        Activation::None => y,
        Activation::Relu => relu(y),
        Activation::LeakyRelu(s) => leaky_relu(y, s),
    }
}

fn cnn_small_composed<B: Backend>(net: &CnnSmall<B>, x: Tensor<B, 4>) -> Tensor<B, 2> {
    let mut x = x;
    for (i, layer) in net.layers.iter().enumerate() {
        x = bn_composed(&layer.bn, layer.conv.forward(x), Activation::Relu);
        if i == 1 || i == 3 {
            x = max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false);
        }
    }
    global_avg_pool(x)
}

fn wrn_block_composed<B: Backend>(block: &WideBasicBlock<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let act = Activation::LeakyRelu(block.leaky_slope);
    match &block.conv_shortcut {
        None => {
            let out = bn_composed(&block.bn1, x.clone(), act);
            let out = bn_composed(&block.bn2, block.conv1.forward(out), act);
            block.conv2.forward(out) + x
        }
        Some(shortcut) => {
            let x = if block.activate_before_residual { bn_composed(&block.bn1, x, act) } else { x };
            let out = bn_composed(&block.bn2, block.conv1.forward(x.clone()), act);
            block.conv2.forward(out) + shortcut.forward(x)
        }
    }
}

fn wrn_composed<B: Backend>(net: &WideResNet<B>, x: Tensor<B, 4>) -> Tensor<B, 2> {
    let mut x = net.conv1.forward(x);
    for group in [&net.block1, &net.block2, &net.block3] {
        for block in &group.layer {
            x = wrn_block_composed(block, x);
        }
    }
    global_avg_pool(bn_composed(&net.bn1, x, Activation::LeakyRelu(net.leaky_slope)))
}

/// Logits of `net` with its backbone run through Burn's composed ops (classifier unchanged), as before the kernels.
fn composed_forward<B: Backend>(net: &Net<B>, x: Tensor<B, 4>) -> Tensor<B, 2> {
    let features = match &net.backbone {
        Backbone::CnnSmall(b) => cnn_small_composed(b, x),
        Backbone::Wrn(b) => wrn_composed(b, x),
        Backbone::ResNet18Cifar(_) => unimplemented!("the benchmark covers cnn-small and wrn-28-2"),
    };
    net.classifier.forward(features)
}

fn bench_step(label: &str, arch: Arch, shape: [usize; 4], rounds: usize) {
    let dev = Default::default();
    let config = NetConfig::new(arch, shape[1], 10).expect("valid benchmark model");
    let x = randn(shape, 7);
    let labels = Tensor::<AD, 1, Int>::from_data(
        TensorData::new((0..shape[0] as i64).map(|i| i % 10).collect::<Vec<_>>(), [shape[0]]),
        &dev,
    );
    let loss_fn = CrossEntropyLossConfig::new().init(&dev);
    let momentum = MomentumConfig::new().with_momentum(0.9).with_dampening(0.0).with_nesterov(true);
    let sgd = || {
        SgdConfig::new()
            .with_momentum(Some(momentum.clone()))
            .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(5e-4)))
            .init::<AD, Net<AD>>()
    };

    // The same starting weights for both paths: their first logits must agree to f32 rounding.
    let net0 = config.init::<AD>(&dev);
    let logits_old = composed_forward(&net0, x.clone());
    let logits_new = net0.forward(x.clone(), BnMode::Train).logits;
    let diff = (logits_old.clone() - logits_new).abs().max().into_scalar();
    let scale = logits_old.abs().max().into_scalar();
    println!("{label}: first logits, max |flex - kernels| {diff:.2e} (max |logit| {scale:.2e})");

    let mut old_net = Some(Net::<AD>::from_inner(net0.valid()));
    let mut new_net = Some(Net::<AD>::from_inner(net0.valid()));
    let (mut old_opt, mut new_opt) = (sgd(), sgd());
    let pair = Pair::run(
        rounds,
        || {
            let net = old_net.take().expect("model");
            let loss = loss_fn.forward(composed_forward(&net, x.clone()), labels.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            old_net = Some(old_opt.step(0.03, net, grads));
        },
        || {
            let net = new_net.take().expect("model");
            let loss = loss_fn.forward(net.forward(x.clone(), BnMode::Train).logits, labels.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            new_net = Some(new_opt.step(0.03, net, grads));
        },
    );
    println!("{}", pair.line(&format!("{label} plain SGD step")));
}

fn profile(arch: &str, rounds: usize) {
    let (arch, shape) = match arch {
        "wrn" => (Arch::Wrn { depth: 28, widen: 2 }, [64, 3, 32, 32]),
        _ => (Arch::CnnSmall, [128, 1, 28, 28]),
    };
    let dev = Default::default();
    let net = NetConfig::new(arch, shape[1], 10).expect("valid benchmark model").init::<AD>(&dev);
    let x = randn(shape, 7);
    let labels = Tensor::<AD, 1, Int>::zeros([shape[0]], &dev);
    let loss_fn = CrossEntropyLossConfig::new().init(&dev);
    let mut opt = SgdConfig::new().init::<AD, Net<AD>>();
    let mut net = Some(net);
    for _ in 0..rounds {
        let t = Instant::now();
        let n = net.take().expect("model");
        let loss = loss_fn.forward(n.forward(x.clone(), BnMode::Train).logits, labels.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &n);
        net = Some(opt.step(0.03, n, grads));
        println!("step {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = common::rounds(&args);
    if args.iter().any(|a| a == "--direct") {
        bench_direct_ops(rounds);
        return;
    }
    let (ops, steps) = (!args.iter().any(|a| a == "--steps-only"), !args.iter().any(|a| a == "--ops-only"));
    println!(
        "bench_kernels: rayon threads {}, simd {}, rounds {rounds}",
        rayon::current_num_threads(),
        kernels::simd_level()
    );
    if ops {
        bench_ops(rounds);
    }
    if let Some(arch) = args.iter().position(|a| a == "--profile").and_then(|i| args.get(i + 1)) {
        // Only the kernel path's steps, for `perf record`.
        profile(arch, rounds);
        return;
    }
    if steps {
        println!("== whole step (forward, cross-entropy, backward, SGD)");
        bench_step("cnn-small B128 1x28x28", Arch::CnnSmall, [128, 1, 28, 28], rounds);
        bench_step("wrn-28-2 B64 3x32x32", Arch::Wrn { depth: 28, widen: 2 }, [64, 3, 32, 32], rounds);
    }
}
