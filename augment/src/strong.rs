//! FixMatch's strong augmentation: the weak transform, RandAugment (2 random ops), then Cutout.

use crate::ops::cutout;
use crate::randaugment::RandOp;
use crate::rng::{below, coin, uniform};
use crate::transform::Transform;
use crate::weak::Weak;
use crate::Image;
use rand::RngCore;

/// Weak flip-and-shift, then `num_ops` ops drawn with replacement from `ops` (the 14 of [`RandOp::ALL`]), each applied
/// with `op_probability` at a level uniform in `1..max_level` (signed ops get a random sign), then a gray square
/// of `cutout_fraction` of the shorter side (plus the end pixel) at a uniformly random centre (FixMatch's
/// `RandAugmentMC(n=2, m=10)`; `docs/augmentations.md` lists where and why burnish departs from it).
#[derive(Clone, Debug, PartialEq)]
pub struct Strong {
    /// The flip-and-shift applied first.
    pub weak: Weak,
    /// The pool the ops are drawn from (an empty pool applies none).
    pub ops: Vec<RandOp>,
    /// Ops drawn per image.
    pub num_ops: usize,
    /// Probability that each drawn op is applied.
    pub op_probability: f64,
    /// The level at which each op reaches the end of its range (see [`RandOp`]); levels are drawn uniformly from
    /// `1..max_level`, without `max_level` itself, as the reference's `randint(1, 10)` (always 1 below 3).
    pub max_level: u32,
    /// Cutout size as a fraction of the shorter image side: 16 at 32 px, which covers 17 px as in the reference
    /// (see [`ops::cutout`](crate::ops::cutout)).
    pub cutout_fraction: f64,
    /// Gray level of the Cutout square.
    pub cutout_fill: u8,
}

impl Default for Strong {
    fn default() -> Self {
        Strong {
            weak: Weak::default(),
            ops: RandOp::ALL.to_vec(),
            num_ops: 2,
            op_probability: 0.5,
            max_level: 10,
            cutout_fraction: 0.5,
            cutout_fill: crate::ops::CUTOUT_FILL,
        }
    }
}

impl Transform for Strong {
    fn apply(&self, img: &Image, rng: &mut dyn RngCore) -> Image {
        let mut out = self.weak.apply(img, rng);
        for _ in 0..self.num_ops {
            // Four draws per op whatever the outcome, so later draws (the Cutout centre) do not depend on
            // which ops were picked or applied.
            let pick = below(rng, self.ops.len() as u32) as usize;
            // numpy's `randint(1, m)` excludes `m`: levels 1..=9 of 10, so no op reaches the end of its range.
            let level = 1 + below(rng, self.max_level.saturating_sub(1));
            let apply = coin(rng, self.op_probability);
            let negate = coin(rng, 0.5);
            if let (true, Some(op)) = (apply, self.ops.get(pick)) {
                out = op.apply(&out, level, self.max_level, negate);
            }
        }
        let (w, h) = (out.width(), out.height());
        // A fraction of the side rather than the reference's fixed 16 px, which is half of CIFAR's 32 px side.
        let size = (w.min(h) as f64 * self.cutout_fraction) as u32;
        // A continuous centre, as the reference's `np.random.uniform(0, w)`: the corner truncates it.
        let x = uniform(rng, 0.0, w as f64);
        let y = uniform(rng, 0.0, h as f64);
        cutout(&out, x, y, size, self.cutout_fill)
    }
}
