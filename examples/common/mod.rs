//! What the benchmark examples share: seeded inputs, the `--rounds` argument and the median of timings.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;

/// The backend every benchmark times: the kernels through autodiff on flex.
pub type AD = Autodiff<Flex>;

/// A tensor of standard-normal values from `seed`, so both sides of a comparison see the same numbers.
pub fn randn<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<AD, D> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let len = shape.iter().product();
    let v: Vec<f32> =
        (0..len).map(|_| rand_distr::Distribution::<f32>::sample(&rand_distr::StandardNormal, &mut rng)).collect();
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

/// The value of `--rounds N` among the program's arguments, else 7.
pub fn rounds(args: &[String]) -> usize {
    args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(7)
}

/// Median, min, max.
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    (median, s[0], s[n - 1])
}
