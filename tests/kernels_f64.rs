//! `burnish::kernels` in f64 on `Autodiff<Flex>`: the checks of `tests/kernels.rs` at a tolerance only rounding
//! meets. f64 on flex is a process-wide device setting, so this is its own test binary; every test sets it first.

mod kernels_common;

use std::sync::Once;

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};
use kernels_common::*;

/// Summation order is the only difference from the composed ops.
const TOL: Tol = Tol { abs: 1e-11, rel: 1e-10 };

fn f64_mode() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dev = Default::default();
        burn::tensor::backend::set_default_float_dtype::<Flex>(&dev, FloatDType::F64).expect("flex supports f64");
        <Flex as Backend>::seed(&dev, 7);
    });
    let probe = Tensor::<Flex, 1>::zeros([1], &Default::default());
    assert_eq!(probe.dtype(), burn::tensor::DType::F64, "the checks below must run in f64");
}

#[test]
fn batch_norm_act_matches_composed_ops_f64() {
    f64_mode();
    for shape in BN_SHAPES_4D {
        for act in ACTIVATIONS {
            check_batch_norm(shape, act, 0.5, TOL);
        }
    }
    for act in ACTIVATIONS {
        check_batch_norm([6, 19], act, -0.3, TOL);
    }
    check_batch_norm([4, 3, 5, 6], ACTIVATIONS[1], 1000.0, Tol { abs: 1e-9, rel: 1e-9 });
}

#[test]
fn affine_act_matches_composed_ops_f64() {
    f64_mode();
    for act in ACTIVATIONS {
        check_affine([4, 17, 6, 9], act, TOL);
        check_affine([5, 21], act, TOL);
    }
}

#[test]
fn conv2d_matches_burn_conv2d_f64() {
    f64_mode();
    for (x, w, stride, padding) in CONV_CASES {
        check_conv(x, w, stride, padding, 1, TOL);
    }
    check_conv_tracked([2, 5, 9, 6], [7, 5, 3, 3], [2, 2], [1, 1], 1, [false, true], TOL);
    check_conv([2, 6, 5, 7], [4, 3, 3, 3], [1, 1], [1, 1], 2, TOL);
}

#[test]
fn reference_module_matches_autodiff_f64() {
    f64_mode();
    for act in ACTIVATIONS {
        check_reference_module([3, 5, 4, 6], act, TOL);
    }
}
