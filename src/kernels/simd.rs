//! Runs a closure compiled for the widest vector instructions this CPU has.
//!
//! Rust builds for baseline x86-64 (SSE2, 4 f32 lanes). The element-wise loops of [`super::cpu`] are written so
//! LLVM vectorises them (fixed-width chunks, independent accumulators); calling them inside a function compiled
//! with `target_feature(enable = ...)` lets LLVM inline and vectorise them with AVX2 + FMA (8 lanes) or AVX-512
//! (16 lanes), chosen once at run time. Other architectures run the baseline build.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::env::var_os("BURNISH_NO_SIMD").is_some() {
                return Level::Baseline;
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
            {
                return Level::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Level::Avx2;
            }
        }
        Level::Baseline
    })
}

/// The instruction set [`dispatch`] compiles for on this CPU, for reports.
pub(crate) fn level_name() -> &'static str {
    match level() {
        Level::Baseline => "baseline",
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => "avx2+fma",
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => "avx512",
    }
}

/// Calls `f` from a function compiled for the best instruction set detected (`f` is inlined into it).
#[inline(always)]
pub(crate) fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    match level() {
        Level::Baseline => f(),
        // SAFETY: the level is only chosen after runtime detection of every feature the callee enables.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { avx2(f) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { avx512(f) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}
