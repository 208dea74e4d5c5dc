//! Architectures: names, output shapes, parameter counts (from hand formulas) and initialisation.

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use burnish::kernels::Kernels;
use burnish::model::{
    num_params, param_infos, Arch, ArchError, Backbone, BnMode, NetConfig, NetConfigError, ProjectionConfig,
};

type B = Flex;
type AD = Autodiff<Flex>;

fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 data")
}

// ---- names ----

#[test]
fn arch_names_parse_and_display_round_trip() {
    let cases = [
        ("cnn-small", Arch::CnnSmall),
        ("wrn-28-2", Arch::Wrn { depth: 28, widen: 2 }),
        ("wrn-16-8", Arch::Wrn { depth: 16, widen: 8 }),
        ("wrn-28-10", Arch::Wrn { depth: 28, widen: 10 }),
        ("resnet18-cifar", Arch::ResNet18Cifar),
    ];
    for (name, arch) in cases {
        assert_eq!(name.parse::<Arch>(), Ok(arch), "{name}");
        assert_eq!(arch.to_string(), name);
    }
}

#[test]
fn bad_arch_names_get_errors_listing_the_valid_ones() {
    for name in ["resnet50", "wrn", "wrn-28", "wrn-x-2", "wrn-28-2-1", "CNN-small", ""] {
        let err = name.parse::<Arch>().expect_err(name);
        assert_eq!(err, ArchError::Unknown { name: name.to_string() });
        let msg = err.to_string();
        assert!(msg.contains("cnn-small") && msg.contains("wrn-28-2") && msg.contains("resnet18-cifar"), "{msg}");
    }
    let err = "wrn-27-2".parse::<Arch>().expect_err("27 − 4 is not a multiple of 6");
    assert_eq!(err, ArchError::WrnDepth { name: "wrn-27-2".into(), depth: 27 });
    assert!(err.to_string().contains("multiple of 6"), "{err}");
    assert!(matches!("wrn-4-2".parse::<Arch>(), Err(ArchError::WrnDepth { depth: 4, .. })), "no blocks at depth 4");
    assert!(matches!("wrn-28-0".parse::<Arch>(), Err(ArchError::WrnWiden { .. })));
}

#[test]
fn zero_sizes_are_rejected_with_their_name() {
    let err = NetConfig::new(Arch::CnnSmall, 0, 10).expect_err("0 channels");
    assert_eq!(err, NetConfigError::Zero { what: "in_channels" });
    let err = NetConfig::new(Arch::CnnSmall, 1, 0).expect_err("0 classes");
    assert!(err.to_string().contains("num_classes"), "{err}");
    let err = NetConfig::new(Arch::CnnSmall, 1, 10)
        .and_then(|c| c.with_projection(ProjectionConfig { hidden_dim: 0, output_dim: 128 }))
        .expect_err("0 hidden");
    assert!(err.to_string().contains("hidden_dim"), "{err}");
    let err = NetConfig::new(Arch::Wrn { depth: 20, widen: 2 }, 3, 10).expect_err("bad depth built directly");
    assert!(matches!(err, NetConfigError::Arch(ArchError::WrnDepth { depth: 20, .. })));
}

// ---- shapes ----

fn check_shapes<Bk: Kernels>(arch: Arch, input: [usize; 4], with_projection: bool) {
    let dev = Default::default();
    let mut config = NetConfig::new(arch, input[1], 7).expect("valid config");
    if with_projection {
        config = config.with_projection(ProjectionConfig::default()).expect("valid projection");
    }
    let net = config.init::<Bk>(&dev);
    let x = Tensor::<Bk, 4>::random(input, Distribution::Normal(0.0, 1.0), &dev);
    for mode in [BnMode::Train, BnMode::Eval] {
        let out = net.forward(x.clone(), mode);
        assert_eq!(out.features.dims(), [input[0], arch.feature_dim()], "{arch} features on {input:?}");
        assert_eq!(out.logits.dims(), [input[0], 7], "{arch} logits on {input:?}");
        match (with_projection, out.projections) {
            (true, Some(p)) => assert_eq!(p.dims(), [input[0], 128], "{arch} projections"),
            (false, None) => {}
            (expected, got) => panic!("projection expected: {expected}, got {:?}", got.map(|p| p.dims())),
        }
        assert!(values(out.logits).iter().all(|v| v.is_finite()), "{arch}: non-finite logits");
    }
}

#[test]
fn cnn_small_shapes() {
    check_shapes::<AD>(Arch::CnnSmall, [2, 1, 28, 28], false);
    check_shapes::<AD>(Arch::CnnSmall, [2, 3, 32, 32], true);
    check_shapes::<B>(Arch::CnnSmall, [2, 1, 28, 28], true);
}

#[test]
fn wrn_shapes() {
    check_shapes::<AD>(Arch::Wrn { depth: 10, widen: 2 }, [2, 1, 28, 28], false);
    check_shapes::<AD>(Arch::Wrn { depth: 16, widen: 1 }, [2, 3, 32, 32], true);
    check_shapes::<B>(Arch::Wrn { depth: 28, widen: 2 }, [2, 3, 32, 32], false);
}

#[test]
fn resnet18_cifar_shapes() {
    // Small images keep the 11 M-parameter network fast; odd sizes exercise the stride-2 padding.
    check_shapes::<AD>(Arch::ResNet18Cifar, [2, 1, 14, 14], false);
    check_shapes::<B>(Arch::ResNet18Cifar, [2, 3, 16, 16], true);
}

// ---- parameter counts, by hand formulas ----

/// Weights of a bias-free k×k conv.
fn conv(c_in: usize, c_out: usize, k: usize) -> usize {
    c_in * c_out * k * k
}
/// BatchNorm scale + shift.
fn bn(c: usize) -> usize {
    2 * c
}
/// Linear with bias.
fn linear(d_in: usize, d_out: usize) -> usize {
    d_in * d_out + d_out
}

fn count(arch: Arch, in_channels: usize, classes: usize) -> usize {
    num_params(&NetConfig::new(arch, in_channels, classes).expect("valid").init::<B>(&Default::default()))
}

#[test]
fn cnn_small_parameter_count() {
    for c in [1, 3] {
        let widths = [c, 32, 32, 64, 64, 128];
        let layers: usize = widths.windows(2).map(|w| conv(w[0], w[1], 3) + bn(w[1])).sum();
        assert_eq!(count(Arch::CnnSmall, c, 10), layers + linear(128, 10), "{c} channels");
    }
}

/// Wide ResNet: stem, three groups of (D − 4) / 6 pre-activation blocks, final BN, classifier.
fn wrn_formula(depth: usize, k: usize, c: usize, classes: usize) -> usize {
    let n = (depth - 4) / 6;
    let widths = [16, 16 * k, 32 * k, 64 * k];
    let block = |c_in: usize, c_out: usize| {
        let shortcut = if c_in != c_out { conv(c_in, c_out, 1) } else { 0 };
        bn(c_in) + conv(c_in, c_out, 3) + bn(c_out) + conv(c_out, c_out, 3) + shortcut
    };
    let groups: usize =
        (0..3).map(|g| block(widths[g], widths[g + 1]) + (n - 1) * block(widths[g + 1], widths[g + 1])).sum();
    conv(c, 16, 3) + groups + bn(64 * k) + linear(64 * k, classes)
}

#[test]
fn wrn_28_2_has_the_fixmatch_parameter_count() {
    let expected = wrn_formula(28, 2, 3, 10);
    let got = count(Arch::Wrn { depth: 28, widen: 2 }, 3, 10);
    assert_eq!(got, expected);
    assert_eq!(expected, 1_467_610, "the count published with FixMatch-pytorch's WRN-28-2");
    assert!((got as f64 - 1.47e6).abs() / 1.47e6 < 0.01);
    assert_eq!(count(Arch::Wrn { depth: 16, widen: 8 }, 1, 100), wrn_formula(16, 8, 1, 100));
}

#[test]
fn resnet18_cifar_parameter_count() {
    let widths = [64, 128, 256, 512];
    let basic = |c_in: usize, c_out: usize, stride: usize| {
        let down = if stride != 1 || c_in != c_out { conv(c_in, c_out, 1) + bn(c_out) } else { 0 };
        conv(c_in, c_out, 3) + bn(c_out) + conv(c_out, c_out, 3) + bn(c_out) + down
    };
    let mut c_in = 64;
    let mut stages = 0;
    for (i, &w) in widths.iter().enumerate() {
        stages += basic(c_in, w, if i == 0 { 1 } else { 2 }) + basic(w, w, 1);
        c_in = w;
    }
    let expected = conv(3, 64, 3) + bn(64) + stages + linear(512, 10);
    assert_eq!(count(Arch::ResNet18Cifar, 3, 10), expected);
    assert_eq!(expected, 11_173_962, "torchvision ResNet-18 with the CIFAR stem and 10 classes");
}

#[test]
fn projection_head_adds_its_parameters() {
    let dev = Default::default();
    let plain = NetConfig::new(Arch::CnnSmall, 1, 10).expect("valid");
    let head = ProjectionConfig { hidden_dim: 64, output_dim: 32 };
    let with_head = plain.with_projection(head).expect("valid");
    let extra = num_params(&with_head.init::<B>(&dev)) - num_params(&plain.init::<B>(&dev));
    // Bias-free first linear (BN follows), BN, linear with bias.
    assert_eq!(extra, 128 * 64 + bn(64) + linear(64, 32));
}

// ---- initialisation ----

fn std_of(v: &[f32]) -> f64 {
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

#[test]
fn wrn_is_initialised_as_the_reference() {
    let net = NetConfig::new(Arch::Wrn { depth: 28, widen: 2 }, 3, 10).expect("valid").init::<B>(&Default::default());
    let Backbone::Wrn(wrn) = &net.backbone else { panic!("expected a WRN backbone") };

    // kaiming_normal_(fan_out, leaky_relu): std = √(2 / (out · 3 · 3)).
    let w = values(wrn.block3.layer[3].conv2.weight.val());
    let expected = (2.0 / (128.0 * 9.0f64)).sqrt();
    assert!((std_of(&w) / expected - 1.0).abs() < 0.02, "conv std {} vs {expected}", std_of(&w));
    let w = values(wrn.block2.layer[0].conv_shortcut.as_ref().expect("width changes").weight.val());
    let expected = (2.0 / 64.0f64).sqrt();
    assert!((std_of(&w) / expected - 1.0).abs() < 0.05, "shortcut std {} vs {expected}", std_of(&w));

    // BN 1 / 0.
    assert!(values(wrn.bn1.weight.val()).iter().all(|&v| v == 1.0));
    assert!(values(wrn.block1.layer[0].bn2.bias.val()).iter().all(|&v| v == 0.0));

    // Classifier: xavier_normal_ (std = √(2 / (128 + 10))) and a zero bias.
    let w = values(net.classifier.weight.val());
    let expected = (2.0 / 138.0f64).sqrt();
    assert!((std_of(&w) / expected - 1.0).abs() < 0.1, "classifier std {} vs {expected}", std_of(&w));
    assert!(values(net.classifier.bias.as_ref().expect("bias").val()).iter().all(|&v| v == 0.0));

    // BatchNorm settings of the reference.
    assert_eq!((wrn.bn1.momentum, wrn.bn1.epsilon), (0.001, 0.001));
    assert_eq!(wrn.leaky_slope, 0.1);
    assert!(wrn.block1.layer[0].activate_before_residual && !wrn.block2.layer[0].activate_before_residual);
}

#[test]
fn cloned_nets_have_identical_parameters() {
    // Burn initialises lazily and re-draws on clone of an untouched parameter; init() materialises.
    let net = NetConfig::new(Arch::CnnSmall, 1, 10).expect("valid").init::<AD>(&Default::default());
    let copy = net.clone();
    let a = values(net.classifier.weight.val());
    let b = values(copy.classifier.weight.val());
    assert_eq!(a, b);
    let infos = param_infos(&net);
    assert_eq!(infos, param_infos(&copy), "same names, ids and shapes");
    assert_eq!(num_params(&net), num_params(&copy));
}
