//! The step profiler (`burnish bench --profile`, src/profile.rs): nested spans are charged exclusively, profiling
//! computes the same convolution gradients it times apart, and the CLI's profile of a real step covers the step.
//! One test per concern, in one binary with no other tests, because the timers are process-wide.

use burn::backend::Flex;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorPrimitive};
use burnish::kernels::Kernels;
use burnish::profile::{self, Class};
use std::sync::Mutex;
use std::time::Duration;

mod common;
use common::{burnish, text, TINY_RECIPE};

/// The timers are global: tests that switch them on take turns.
static TIMERS: Mutex<()> = Mutex::new(());

fn ms(t: &profile::Totals, c: Class) -> f64 {
    t.ms.iter().find(|(k, _)| *k == c).map_or(0.0, |(_, v)| *v)
}

#[test]
fn nested_spans_are_charged_to_the_innermost_class_only() {
    let _g = TIMERS.lock().unwrap_or_else(|e| e.into_inner());
    profile::reset();
    profile::enable(true);
    {
        let _outer = profile::scope(Class::Other);
        std::thread::sleep(Duration::from_millis(10));
        {
            let _inner = profile::scope(Class::Optimizer);
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    profile::enable(false);
    {
        let _off = profile::scope(Class::Ema);
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = profile::totals();
    let (outer, inner) = (ms(&t, Class::Other), ms(&t, Class::Optimizer));
    assert!(inner >= 200.0, "inner span {inner} ms");
    // Charged inclusively the outer span would hold at least 220 ms; exclusively it holds its own 20 and whatever a
    // loaded machine adds to two short sleeps.
    assert!((20.0..200.0).contains(&outer), "outer span {outer} ms against inner {inner} ms");
    assert_eq!(ms(&t, Class::Ema), 0.0, "a span opened while profiling is off is not charged");
}

#[test]
fn profiling_splits_the_convolution_backward_without_changing_it() {
    let _g = TIMERS.lock().unwrap_or_else(|e| e.into_inner());
    let device = Default::default();
    let x = Tensor::<Flex, 4>::random([3, 5, 9, 7], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<Flex, 4>::random([6, 5, 3, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let dy = Tensor::<Flex, 4>::random([3, 6, 5, 4], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let options = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
    let grads = || {
        let g = <Flex as Kernels>::kernel_conv2d_backward(
            x.clone().into_primitive().tensor(),
            w.clone().into_primitive().tensor(),
            dy.clone().into_primitive().tensor(),
            options.clone(),
            true,
            true,
        );
        let back = |t: Option<_>| {
            Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(t.expect("asked for")))
                .into_data()
                .to_vec::<f32>()
                .expect("f32")
        };
        (back(g.x), back(g.weight))
    };
    let fused = grads();
    profile::reset();
    profile::enable(true);
    let split = grads();
    profile::enable(false);
    assert_eq!(fused, split, "the profiled convolution backward must give the same bits");
    let t = profile::totals();
    assert!(ms(&t, Class::ConvInputGrad) > 0.0 && ms(&t, Class::ConvWeightGrad) > 0.0, "{t:?}");
}

#[test]
fn bench_profile_accounts_for_the_whole_step() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("r.toml"), TINY_RECIPE).expect("write recipe");
    let out = burnish(&["bench", "r.toml", "--steps", "3", "--warmup", "1", "--profile"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let value = |key: &str| -> f64 {
        let at = stdout.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in {stdout}"));
        stdout[at + key.len() + 1..].split_whitespace().next().and_then(|v| v.parse().ok()).expect("a number")
    };
    for class in Class::ALL {
        value(&format!("profile.{}_ms", class.name()));
    }
    // The tiny recipe trains a convolutional net with BatchNorm: the kernels' classes must see time.
    for class in ["conv_forward", "conv_input_grad", "conv_weight_grad", "norm_act_forward", "norm_act_backward"] {
        assert!(value(&format!("profile.{class}_ms")) > 0.0, "{class}: {stdout}");
    }
    // Every span of the step sits inside the step's own span, so the classes add up to the step's wall time.
    let (timed, wall) = (value("profile.timed_ms"), value("profile.step_ms"));
    assert!(timed <= wall * 1.001 && timed >= 0.9 * wall, "classes {timed} ms of a {wall} ms step\n{stdout}");
    assert!(value("profile.allocations_per_step") >= 1.0, "{stdout}");
}
