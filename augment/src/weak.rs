//! FixMatch's weak augmentation: random horizontal flip, then a random reflect-padded translation.

use crate::ops::reflect_pad_crop_flip;
use crate::rng::{below, coin};
use crate::transform::Transform;
use crate::Image;
use rand::RngCore;

/// Flip-and-shift: `RandomHorizontalFlip(p)` then `RandomCrop(size, padding = pad_fraction * size, "reflect")`.
#[derive(Clone, Debug, PartialEq)]
pub struct Weak {
    /// Probability of mirroring left-right.
    pub flip_probability: f64,
    /// Reflect padding on each side as a fraction of that side, before cropping back to size (4 px at 32 px).
    pub pad_fraction: f64,
}

impl Default for Weak {
    fn default() -> Self {
        Weak { flip_probability: 0.5, pad_fraction: 0.125 }
    }
}

impl Transform for Weak {
    fn apply(&self, img: &Image, rng: &mut dyn RngCore) -> Image {
        let flip = coin(rng, self.flip_probability);
        // At most the side, so that `2 pad + 1` cannot overflow whatever the configured fraction.
        let pad_x = ((img.width() as f64 * self.pad_fraction) as u32).min(img.width());
        let pad_y = ((img.height() as f64 * self.pad_fraction) as u32).min(img.height());
        // torchvision draws the row offset first.
        let top = below(rng, 2 * pad_y + 1);
        let left = below(rng, 2 * pad_x + 1);
        reflect_pad_crop_flip(img, pad_x, pad_y, left, top, flip)
    }
}
