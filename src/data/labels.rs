//! The semi-supervised split of a training set into labelled and unlabeled indices (docs/data-flow.md, "Data").

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::DataError;

/// Picks `labels_per_class` training indices of every class, chosen by `seed`; returned sorted ascending.
///
/// Each class's indices are shuffled with an RNG seeded by (`seed`, class) and the first
/// `labels_per_class` are taken, so with one seed a smaller labelled set is a subset of a larger one, and
/// the choice for one class does not depend on the other classes. Errors when a label is not below
/// `num_classes` or a class has fewer than `labels_per_class` images.
pub fn labeled_indices(
    labels: &[u16],
    num_classes: usize,
    labels_per_class: usize,
    seed: u64,
) -> Result<Vec<usize>, DataError> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &label) in labels.iter().enumerate() {
        match by_class.get_mut(usize::from(label)) {
            Some(members) => members.push(i),
            None => {
                return Err(DataError::LabelOutOfRange {
                    source_name: format!("training label #{i}"),
                    label: usize::from(label),
                    num_classes,
                })
            }
        }
    }
    let mut chosen = Vec::with_capacity(num_classes * labels_per_class);
    for (class, mut members) in by_class.into_iter().enumerate() {
        if members.len() < labels_per_class {
            return Err(DataError::NotEnoughImages { class, available: members.len(), requested: labels_per_class });
        }
        // Mix the class into the seed so each class gets its own stream.
        let class_seed = seed ^ (class as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        members.shuffle(&mut ChaCha8Rng::seed_from_u64(class_seed));
        chosen.extend_from_slice(&members[..labels_per_class]);
    }
    chosen.sort_unstable();
    Ok(chosen)
}

/// `count` of the `n` training indices, drawn by `seed`, set aside from training (sorted ascending); errors when
/// fewer than one training image would remain.
pub fn holdout_indices(n: usize, count: usize, seed: u64) -> Result<Vec<usize>, DataError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if count >= n {
        return Err(DataError::Invalid(format!(
            "data.holdout = {count} leaves no training images: the training split has {n}"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    // A stream of its own (not the per-class label streams), so adding a holdout never reuses their draws.
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x686f_6c64_6f75_7421));
    order.truncate(count);
    order.sort_unstable();
    Ok(order)
}

/// The unlabeled training indices out of `n`: all of them (FixMatch convention), or with `rest` only
/// those not in `labeled`.
pub fn unlabeled_indices(n: usize, labeled: &[usize], rest: bool) -> Vec<usize> {
    if !rest {
        return (0..n).collect();
    }
    let mut is_labeled = vec![false; n];
    for &i in labeled {
        if let Some(flag) = is_labeled.get_mut(i) {
            *flag = true;
        }
    }
    (0..n).filter(|&i| !is_labeled[i]).collect()
}
