//! Which samples a stream takes at each step: an endless sequence of seeded epoch permutations of its pool.
//!
//! Step `s` of a stream with batch size `B` takes positions `s·B .. (s+1)·B` of the concatenated permutations,
//! so a batch is a pure function of (seed, stream, step). That is what makes the output independent of the
//! worker count and makes resuming at a step exact without saving any sampler state.

use rand::seq::SliceRandom;

use crate::seed::{domain, rng_for};

/// The permutation of `pool` used in `epoch` of stream `stream`.
pub fn epoch_order(seed: u64, stream: u64, epoch: u64, pool: &[usize]) -> Vec<usize> {
    let mut order = pool.to_vec();
    order.shuffle(&mut rng_for(&[seed, domain::SHUFFLE, stream, epoch]));
    order
}

/// Caches the last epoch permutation per stream, because consecutive steps nearly always share an epoch.
#[derive(Default)]
pub struct Sampler {
    cached: Vec<Option<(u64, Vec<usize>)>>,
}

impl Sampler {
    /// The dataset indices stream `stream` (of pool `pool`) takes at `step`.
    pub fn indices(&mut self, seed: u64, stream: usize, pool: &[usize], batch: usize, step: u64) -> Vec<usize> {
        assert!(!pool.is_empty(), "a stream's pool is checked non-empty when the pipeline starts");
        if self.cached.len() <= stream {
            self.cached.resize_with(stream + 1, || None);
        }
        let n = pool.len() as u64;
        let start = step * batch as u64;
        (start..start + batch as u64)
            .map(|pos| {
                let (epoch, offset) = (pos / n, (pos % n) as usize);
                let slot = &mut self.cached[stream];
                if slot.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    *slot = Some((epoch, epoch_order(seed, stream as u64, epoch, pool)));
                }
                slot.as_ref().expect("filled just above").1[offset]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_visits_every_sample_once_and_epochs_differ() {
        let pool: Vec<usize> = (100..110).collect();
        let mut s = Sampler::default();
        let first: Vec<usize> = (0..5).flat_map(|step| s.indices(3, 0, &pool, 2, step)).collect();
        let second: Vec<usize> = (5..10).flat_map(|step| s.indices(3, 0, &pool, 2, step)).collect();
        let mut a = first.clone();
        a.sort_unstable();
        assert_eq!(a, pool);
        let mut b = second.clone();
        b.sort_unstable();
        assert_eq!(b, pool);
        assert_ne!(first, second, "each epoch reshuffles");
    }

    #[test]
    fn batches_straddle_epochs_and_are_independent_of_history() {
        let pool: Vec<usize> = (0..7).collect();
        let mut fresh = Sampler::default();
        let mut warm = Sampler::default();
        for step in 0..20 {
            warm.indices(9, 1, &pool, 3, step);
        }
        assert_eq!(fresh.indices(9, 1, &pool, 3, 5), warm.indices(9, 1, &pool, 3, 5));
        // Step 2 takes positions 6, 7, 8: the last of epoch 0 and the first two of epoch 1.
        let e0 = epoch_order(9, 1, 0, &pool);
        let e1 = epoch_order(9, 1, 1, &pool);
        assert_eq!(fresh.indices(9, 1, &pool, 3, 2), vec![e0[6], e1[0], e1[1]]);
    }
}
