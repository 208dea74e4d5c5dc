//! burnish's BatchNorm: equivalence with Burn's, the PyTorch running-statistics formula, explicit
//! control of the update, and state that is saved and owned per copy.

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, Param, RunningState};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use burnish::model::{num_params, BatchNorm, BatchNormConfig, BnMode};

type B = Flex;
type AD = Autodiff<Flex>;

fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 data")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Burn's BatchNorm with given scale/shift and running statistics.
fn burn_bn<Bk: Backend>(
    gamma: Tensor<Bk, 1>,
    beta: Tensor<Bk, 1>,
    mean: Tensor<Bk, 1>,
    var: Tensor<Bk, 1>,
) -> burn::nn::BatchNorm<Bk> {
    burn::nn::BatchNorm {
        gamma: Param::from_tensor(gamma),
        beta: Param::from_tensor(beta),
        running_mean: RunningState::new(mean),
        running_var: RunningState::new(var),
        momentum: 0.1,
        epsilon: 1e-5,
    }
}

/// Ours with the same scale/shift.
fn our_bn<Bk: Backend>(gamma: Tensor<Bk, 1>, beta: Tensor<Bk, 1>) -> BatchNorm<Bk> {
    let c = gamma.dims()[0];
    let mut bn = BatchNormConfig::new(c).init::<Bk>(&gamma.device());
    bn.weight = Param::from_tensor(gamma);
    bn.bias = Param::from_tensor(beta);
    bn
}

/// Output and gradients (input, gamma, beta) of sum(bn(x) · w), for ours and for Burn's.
fn compare_train<const D: usize>(shape: [usize; D]) {
    let dev = Default::default();
    let c = shape[1];
    let x = Tensor::<AD, D>::random(shape, Distribution::Normal(0.7, 1.9), &dev);
    let w = Tensor::<AD, D>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    let gamma = Tensor::<AD, 1>::random([c], Distribution::Uniform(0.5, 1.5), &dev);
    let beta = Tensor::<AD, 1>::random([c], Distribution::Uniform(-0.5, 0.5), &dev);

    let ours = our_bn(gamma.clone(), beta.clone());
    let x1 = x.clone().require_grad();
    let y1 = ours.forward(x1.clone(), BnMode::Train);
    let g1 = (y1.clone() * w.clone()).sum().backward();

    let theirs = burn_bn(gamma, beta, Tensor::zeros([c], &dev), Tensor::ones([c], &dev));
    let x2 = x.require_grad();
    let y2 = theirs.forward(x2.clone());
    let g2 = (y2.clone() * w).sum().backward();

    let pairs = [
        ("output", values(y1.inner()), values(y2.inner())),
        ("input gradient", values(x1.grad(&g1).expect("x grad")), values(x2.grad(&g2).expect("x grad"))),
        ("gamma gradient", values(ours.weight.grad(&g1).expect("w grad")), values(theirs.gamma.grad(&g2).expect("g"))),
        ("beta gradient", values(ours.bias.grad(&g1).expect("b grad")), values(theirs.beta.grad(&g2).expect("b"))),
    ];
    for (what, a, b) in pairs {
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(&a, &b);
        assert!(diff <= 1e-5 * scale, "{what} of {shape:?} differs from Burn's BatchNorm by {diff}");
    }
    // Same batch statistics: the running means agree (Burn records the biased variance, we the unbiased).
    let ours_mean = values(ours.running_mean.value().inner());
    let theirs_mean = values(theirs.running_mean.value_sync().inner()); // Burn applies updates lazily
    assert!(max_abs_diff(&ours_mean, &theirs_mean) < 1e-6, "running means differ");
}

#[test]
fn train_forward_and_backward_match_burn_batch_norm_2d() {
    compare_train([4, 3, 5, 6]);
}

#[test]
fn train_forward_and_backward_match_burn_batch_norm_1d() {
    compare_train([16, 7]);
}

#[test]
fn eval_matches_burn_inference_with_the_same_running_statistics() {
    let dev = Default::default();
    let c = 4;
    let gamma = Tensor::<B, 1>::from_floats([0.5, 1.0, 1.5, 2.0], &dev);
    let beta = Tensor::<B, 1>::from_floats([-1.0, 0.0, 0.5, 1.0], &dev);
    let mean = Tensor::<B, 1>::from_floats([0.1, -0.2, 0.3, 2.0], &dev);
    let var = Tensor::<B, 1>::from_floats([0.5, 1.0, 2.0, 4.0], &dev);
    let ours = our_bn(gamma.clone(), beta.clone());
    ours.running_mean.set(mean.clone());
    ours.running_var.set(var.clone());
    let theirs = burn_bn(gamma, beta, mean, var);
    let x = Tensor::<B, 4>::random([3, c, 4, 4], Distribution::Normal(0.0, 2.0), &dev);
    let a = values(ours.forward(x.clone(), BnMode::Eval));
    let b = values(theirs.forward(x)); // plain backend: Burn normalises with its running statistics
    assert!(max_abs_diff(&a, &b) < 1e-5);
}

/// x[n, c, 0, l] with channel 0 = 1, 2, 3, 4 and channel 1 = 10, 10, 10, 14.
fn known_input<Bk: Backend>(dev: &Bk::Device) -> Tensor<Bk, 4> {
    let data = vec![1.0f32, 2.0, 10.0, 10.0, 3.0, 4.0, 10.0, 14.0];
    Tensor::from_data(TensorData::new(data, [2, 2, 1, 2]), dev)
}

#[test]
fn running_statistics_follow_the_pytorch_formula() {
    let dev = Default::default();
    let bn = BatchNormConfig::new(2).init::<B>(&dev);
    let x = known_input::<B>(&dev);

    // Batch means 2.5 and 11; unbiased variances 5/3 and 12/3 = 4 (biased: 1.25 and 3).
    let y = values(bn.forward(x.clone(), BnMode::Train));
    assert!(max_abs_diff(&values(bn.running_mean.value()), &[0.25, 1.1]) < 1e-6);
    assert!(max_abs_diff(&values(bn.running_var.value()), &[0.9 + 0.1 * 5.0 / 3.0, 0.9 + 0.1 * 4.0]) < 1e-6);

    // The output uses the biased batch variance: (x − mean) / √(var + eps).
    let s0 = (1.25f32 + 1e-5).sqrt();
    let s1 = (3.0f32 + 1e-5).sqrt();
    let expected = [-1.5 / s0, -0.5 / s0, -1.0 / s1, -1.0 / s1, 0.5 / s0, 1.5 / s0, -1.0 / s1, 3.0 / s1];
    assert!(max_abs_diff(&y, &expected) < 1e-5, "{y:?} vs {expected:?}");

    // A second step compounds: running = 0.9 · running + 0.1 · batch.
    bn.forward(x, BnMode::Train);
    assert!(max_abs_diff(&values(bn.running_mean.value()), &[0.9 * 0.25 + 0.25, 0.9 * 1.1 + 1.1]) < 1e-6);
    let v0 = 0.9 * (0.9 + 0.5 / 3.0) + 0.5 / 3.0;
    let v1 = 0.9 * 1.3 + 0.4;
    assert!(max_abs_diff(&values(bn.running_var.value()), &[v0, v1]) < 1e-6);
}

#[test]
fn momentum_and_epsilon_are_configurable() {
    let dev = Default::default();
    let bn = BatchNormConfig::new(2).with_momentum(0.001).with_epsilon(1e-3).init::<B>(&dev);
    let y = values(bn.forward(known_input::<B>(&dev), BnMode::Train));
    assert!(max_abs_diff(&values(bn.running_mean.value()), &[0.0025, 0.011]) < 1e-7);
    assert!((y[0] - (-1.5 / (1.25f32 + 1e-3).sqrt())).abs() < 1e-6);
}

#[test]
fn only_train_mode_changes_running_statistics() {
    let dev = Default::default();
    let bn = BatchNormConfig::new(3).init::<AD>(&dev);
    let x = Tensor::<AD, 4>::random([4, 3, 3, 3], Distribution::Normal(1.0, 2.0), &dev);
    bn.forward(x.clone(), BnMode::Train); // move away from the 0/1 initial values first
    let before = (values(bn.running_mean.value()), values(bn.running_var.value()));

    for mode in [BnMode::TrainNoStats, BnMode::Eval] {
        bn.forward(x.clone().mul_scalar(3.0).add_scalar(1.0), mode);
        let after = (values(bn.running_mean.value()), values(bn.running_var.value()));
        assert_eq!(before, after, "{mode:?} changed the running statistics");
    }
    bn.forward(x, BnMode::Train);
    let after = (values(bn.running_mean.value()), values(bn.running_var.value()));
    assert_ne!(before.0, after.0, "Train left the running mean unchanged");
    assert_ne!(before.1, after.1, "Train left the running variance unchanged");
}

#[test]
fn train_no_stats_normalises_with_batch_statistics_and_eval_with_running_ones() {
    let dev = Default::default();
    let x = known_input::<B>(&dev);
    let a = BatchNormConfig::new(2).init::<B>(&dev);
    let b = BatchNormConfig::new(2).init::<B>(&dev);
    assert_eq!(values(a.forward(x.clone(), BnMode::Train)), values(b.forward(x.clone(), BnMode::TrainNoStats)));
    // Fresh running statistics (0, 1): Eval is x / √(1 + eps).
    let eval = values(b.forward(x.clone(), BnMode::Eval));
    let expected: Vec<f32> = values(x).iter().map(|v| v / (1.0f32 + 1e-5).sqrt()).collect();
    assert!(max_abs_diff(&eval, &expected) < 1e-6);
}

#[test]
fn clones_and_inner_copies_own_their_running_statistics() {
    let dev = Default::default();
    let original = BatchNormConfig::new(2).init::<AD>(&dev);
    let x = known_input::<AD>(&dev);
    let initial = values(original.running_mean.value());

    let copy = original.clone();
    copy.forward(x.clone(), BnMode::Train);
    assert_eq!(values(original.running_mean.value()), initial, "a clone's update reached the original");
    assert_ne!(values(copy.running_mean.value()), initial);

    let fresh = BatchNorm::<AD>::from_inner(original.valid());
    fresh.forward(x, BnMode::Train);
    assert_eq!(values(original.running_mean.value()), initial, "a from_inner copy's update reached the original");
    assert_eq!(fresh.running_mean.id(), original.running_mean.id(), "ids survive valid()/from_inner");
}

#[test]
fn running_statistics_are_saved_in_records() {
    let dev = Default::default();
    let trained = BatchNormConfig::new(2).init::<B>(&dev);
    trained.forward(known_input::<B>(&dev), BnMode::Train);
    let expected = (values(trained.running_mean.value()), values(trained.running_var.value()));

    let restored = BatchNormConfig::new(2).init::<B>(&dev).load_record(trained.clone().into_record());
    assert_eq!((values(restored.running_mean.value()), values(restored.running_var.value())), expected);
}

#[test]
fn running_statistics_are_buffers_not_parameters() {
    let dev = Default::default();
    let bn = BatchNormConfig::new(5).init::<B>(&dev);
    assert_eq!(num_params(&bn), 10, "weight and bias only, as PyTorch's parameters()");
    assert_eq!(bn.num_params(), 10, "Burn's count of a bare layer agrees");
}

#[test]
fn batch_statistics_stay_accurate_for_offset_channels() {
    // E[x²] − E[x]² cancels digits when |mean| ≫ std; check a mean of 5 std-devs against f64.
    let dev = Default::default();
    let shape = [32, 2, 16, 16];
    let x = Tensor::<B, 4>::random(shape, Distribution::Normal(5.0, 1.0), &dev);
    let data = values(x.clone());
    let y = values(BatchNormConfig::new(2).init::<B>(&dev).forward(x, BnMode::TrainNoStats));

    let plane = 16 * 16;
    let channel_of = |i: usize| (i / plane) % 2;
    for c in 0..2 {
        let xs: Vec<f64> = (0..data.len()).filter(|&i| channel_of(i) == c).map(|i| data[i] as f64).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        for i in (0..data.len()).filter(|&i| channel_of(i) == c) {
            let expected = (data[i] as f64 - mean) / (var + 1e-5).sqrt();
            assert!((y[i] as f64 - expected).abs() < 1e-4, "channel {c}: {} vs {expected}", y[i]);
        }
    }
}

#[test]
fn the_finiteness_check_covers_running_statistics() {
    // A checkpoint saves the running statistics too, so a step that overflows them must count as non-finite.
    let dev = Default::default();
    let bn = BatchNormConfig::new(3).init::<AD>(&dev);
    assert!(burnish::params::all_finite(&bn));
    bn.running_var.set(Tensor::from_floats([1.0, f32::INFINITY, 1.0], &dev));
    assert!(!burnish::params::all_finite(&bn));
    bn.running_var.set(Tensor::ones([3], &dev));
    bn.running_mean.set(Tensor::from_floats([0.0, 0.0, f32::NAN], &dev));
    assert!(!burnish::params::all_finite(&bn));
}
