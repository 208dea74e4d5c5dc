//! Random draws used by the transforms, all from the caller's RNG, none of which can panic on odd parameters.

use rand::{Rng, RngCore};

/// True with probability `p` (never for `p <= 0`, always for `p >= 1`).
pub(crate) fn coin(rng: &mut dyn RngCore, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// Uniform in `[lo, hi)` (just `lo` when the range is empty).
pub(crate) fn uniform(rng: &mut dyn RngCore, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Uniform integer in `0..n` (0 when `n` is 0).
pub(crate) fn below(rng: &mut dyn RngCore, n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        rng.random_range(0..n)
    }
}
